//! The data path between Glance and a volume, for the volume manager:
//! [`ImageTransfer::fetch_image_to_volume`] (create from image, reimage,
//! filling an image-volume cache entry) and
//! [`ImageTransfer::upload_volume_to_image`] (upload to image).
//!
//! Raw images (and the raw-data claims `ami`, `aki`, `ari`, `iso`) stream
//! from Glance straight into the volume: the first [`HEAD_BYTES`] are held
//! back and inspected before anything is written, so bytes that are really
//! qcow2 (or any other format) never reach the volume. Other formats need
//! a seekable input for `qemu-img`: they stream into a staged file in
//! `image_conversion_dir`, are inspected there, checked again with
//! `qemu-img info -f`, and converted into the volume. Staged files are
//! removed on every path out, and by [`cleanup_conversion_dir`] at start-up.
//!
//! The destination is the driver's: a path written in place (the file
//! driver's volume file, an LVM logical volume, an attached device) or a
//! writer (e.g. the stdin of `rbd import -`). Undoing a half-written volume
//! is the caller's (it deletes the volume, as a failed create does).

mod staging;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use clinker_config::ImageOptions;
use clinker_exec::CommandRunner;
use tokio::io::{AsyncSeekExt, AsyncWrite, AsyncWriteExt};

pub use staging::cleanup_conversion_dir;
pub use upload::{UploadedImage, VolumeSource};

use crate::error::ImageError;
use crate::glance::{GlanceClient, ImageContext, ImageData, ImageMeta};
use crate::inspect::{
    DetectedFormat, HEAD_BYTES, ImageBytes, QemuFormat, Unacceptable, check_image, inspect,
    inspect_file,
};
use crate::qemu::{CacheMode, ConvertOptions, QemuImg, QemuImgLimits};
use staging::StagedFile;

const GIB: u64 = 1 << 30;
/// Zero detection granularity for destinations that read as zeros.
const ZERO_BLOCK: usize = 64 * 1024;

/// Claimed formats whose bytes are the disk: streamed, never converted.
const RAW_DATA_CLAIMS: &[&str] = &["raw", "ami", "aki", "ari", "iso"];

/// Where a volume's data goes.
pub enum VolumeTarget<'a> {
    /// A volume file or block device that exists, has the volume's size and
    /// is written in place (`qemu-img convert -n`).
    Path {
        /// The file or device.
        path: &'a Path,
        /// The destination reads as zeros where nothing is written (a new
        /// sparse file, a thin LV): zero blocks of the image are skipped
        /// and stay holes.
        reads_as_zero: bool,
    },
    /// A sink for the raw disk bytes from offset 0 (e.g. `rbd import -`'s
    /// stdin). It is flushed, not closed: the caller owns it.
    Writer(&'a mut (dyn AsyncWrite + Send + Unpin)),
}

impl std::fmt::Debug for VolumeTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VolumeTarget::Path {
                path,
                reads_as_zero,
            } => f
                .debug_struct("Path")
                .field("path", path)
                .field("reads_as_zero", reads_as_zero)
                .finish(),
            VolumeTarget::Writer(_) => f.write_str("Writer"),
        }
    }
}

/// What a fetch wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedImage {
    /// The format the data was read as.
    pub format: QemuFormat,
    /// The size of the disk written (bytes).
    pub virtual_size: u64,
    /// Bytes received from Glance.
    pub downloaded: u64,
    /// Whether `qemu-img convert` ran.
    pub converted: bool,
}

/// The options a transfer follows.
#[derive(Clone, Debug)]
pub struct TransferSettings {
    /// `image_conversion_dir`.
    pub conversion_dir: PathBuf,
    /// The backend's name (staged files carry it).
    pub backend: String,
    /// `image_conversion_disable`.
    pub conversion_disabled: bool,
    /// `image_compress_on_upload`.
    pub compress_on_upload: bool,
    /// `allow_compression_on_image_upload`.
    pub allow_compressed_container: bool,
    /// `vmdk_allowed_types`.
    pub vmdk_allowed_types: Vec<String>,
}

impl TransferSettings {
    /// The settings `cinder.conf` asks for on `backend`.
    pub fn from_options(options: &ImageOptions, backend: &str) -> Self {
        Self {
            conversion_dir: options.image_conversion_dir.clone(),
            backend: backend.to_owned(),
            conversion_disabled: options.image_conversion_disable,
            compress_on_upload: options.image_compress_on_upload,
            allow_compressed_container: options.allow_compression_on_image_upload,
            vmdk_allowed_types: options.vmdk_allowed_types.clone(),
        }
    }
}

/// Moves image data between Glance and one backend's volumes.
#[derive(Debug)]
pub struct ImageTransfer {
    glance: Arc<GlanceClient>,
    qemu: QemuImg,
    settings: TransferSettings,
}

/// An [`Unacceptable`] verdict as Cinder's `ImageUnacceptable`, logged with
/// what the inspector found.
fn unacceptable(image_id: &str, verdict: Unacceptable) -> ImageError {
    tracing::warn!(image_id, reason = %verdict.reason, detail = %verdict.detail, "image refused");
    ImageError::Unacceptable {
        image_id: image_id.to_owned(),
        reason: verdict.reason,
    }
}

fn too_big_for(image_id: &str, size: u64, volume_size_bytes: u64) -> ImageError {
    unacceptable(
        image_id,
        Unacceptable {
            reason: format!(
                "Image virtual size is {}GB and doesn't fit in a volume of size {}GB.",
                size.div_ceil(GIB),
                volume_size_bytes / GIB
            ),
            detail: format!("{size} bytes of data"),
        },
    )
}

/// Where raw bytes are written.
enum Sink<'a> {
    File {
        file: tokio::fs::File,
        skip_zeros: bool,
        /// The next byte's offset in the volume.
        offset: u64,
        /// Where the file's cursor is.
        cursor: u64,
    },
    Writer(&'a mut (dyn AsyncWrite + Send + Unpin)),
}

impl Sink<'_> {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Writer(w) => w.write_all(bytes).await,
            Sink::File {
                file,
                skip_zeros,
                offset,
                cursor,
            } => {
                let blocks: Box<dyn Iterator<Item = &[u8]> + Send> = if *skip_zeros {
                    Box::new(bytes.chunks(ZERO_BLOCK))
                } else {
                    Box::new(std::iter::once(bytes))
                };
                for block in blocks {
                    if !(*skip_zeros && block.iter().all(|b| *b == 0)) {
                        if *cursor != *offset {
                            file.seek(std::io::SeekFrom::Start(*offset)).await?;
                        }
                        file.write_all(block).await?;
                        *cursor = *offset + block.len() as u64;
                    }
                    *offset += block.len() as u64;
                }
                Ok(())
            }
        }
    }

    /// Makes the data durable (files, devices) or flushed (writers).
    async fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Writer(w) => w.flush().await,
            Sink::File { mut file, .. } => {
                file.flush().await?;
                file.sync_data().await
            }
        }
    }
}

impl ImageTransfer {
    /// A transfer for one backend.
    pub fn new(
        glance: Arc<GlanceClient>,
        runner: Arc<dyn CommandRunner>,
        limits: QemuImgLimits,
        settings: TransferSettings,
    ) -> Self {
        Self {
            glance,
            qemu: QemuImg::new(runner, limits),
            settings,
        }
    }

    /// The Glance client.
    pub fn glance(&self) -> &Arc<GlanceClient> {
        &self.glance
    }

    /// Cinder's checks before any byte moves.
    fn precheck<'i>(&self, image: &'i ImageMeta) -> Result<&'i str, ImageError> {
        let refuse = |reason: String| ImageError::Unacceptable {
            image_id: image.id.clone(),
            reason,
        };
        if image.status != "active" {
            return Err(refuse(format!("status is {}, not active", image.status)));
        }
        let Some(claimed) = image.disk_format.as_deref() else {
            return Err(refuse("it has no disk_format".into()));
        };
        if image.container_format.as_deref() == Some("compressed") {
            return Err(refuse(if self.settings.allow_compressed_container {
                "compressed container_format is not supported by Clinker yet".into()
            } else {
                "Image compression disallowed, but container_format is compressed.".into()
            }));
        }
        if self.settings.conversion_disabled && !RAW_DATA_CLAIMS.contains(&claimed) {
            return Err(ImageError::Unacceptable {
                image_id: image.id.clone(),
                reason: format!(
                    "Image Conversion disallowed for image {}: Image conversion is disabled. \
                     The volume type you have requested requires that the image it is being \
                     created from be in 'raw' format, but the image you are using has the \
                     disk_format property '{claimed}'. You must use an image with the \
                     disk_format property 'raw' to create a volume of this type.",
                    image.id
                ),
            });
        }
        Ok(claimed)
    }

    /// Writes `image` (as shown by Glance) into a volume of
    /// `volume_size_bytes` at `target`, checking its data on the way:
    /// inspected before anything is written or any tool opens it, hash
    /// verified, never larger than the volume.
    ///
    /// # Errors
    /// [`ImageError::Unacceptable`] with Cinder's reasons (format mismatch,
    /// backing or data file, outside VMDK extents, too large, not active,
    /// conversion disabled); `DownloadFailed` (transfer broke, or corrupt
    /// data: the target then holds partial data); Glance's errors;
    /// `Conversion` when qemu-img fails; `TooBig` when the conversion
    /// directory fills up; `Io` for the destination.
    pub async fn fetch_image_to_volume(
        &self,
        ctx: &ImageContext,
        image: &ImageMeta,
        target: VolumeTarget<'_>,
        volume_size_bytes: u64,
    ) -> Result<FetchedImage, ImageError> {
        let claimed = self.precheck(image)?;
        if let Some(size) = image.size
            && RAW_DATA_CLAIMS.contains(&claimed)
            && size > volume_size_bytes
        {
            return Err(too_big_for(&image.id, size, volume_size_bytes));
        }
        let started = std::time::Instant::now();
        let data = self.glance.download(ctx, image).await?;
        let fetched = if RAW_DATA_CLAIMS.contains(&claimed) {
            self.stream_raw(image, claimed, data, target, volume_size_bytes)
                .await?
        } else {
            self.stage_and_convert(image, claimed, data, target, volume_size_bytes)
                .await?
        };
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            image_id = %image.id,
            format = fetched.format.as_str(),
            bytes = fetched.downloaded,
            seconds,
            mib_per_second = fetched.downloaded as f64 / (1 << 20) as f64 / seconds.max(1e-6),
            converted = fetched.converted,
            "image written to volume"
        );
        Ok(fetched)
    }

    async fn stream_raw(
        &self,
        image: &ImageMeta,
        claimed: &str,
        mut data: ImageData,
        target: VolumeTarget<'_>,
        volume_size_bytes: u64,
    ) -> Result<FetchedImage, ImageError> {
        // Hold back the head until it is inspected.
        let mut head = Vec::with_capacity(HEAD_BYTES.min(image.size.unwrap_or(0) as usize));
        let mut rest: Option<Bytes> = None;
        let mut ended = false;
        while head.len() < HEAD_BYTES {
            let Some(chunk) = data.chunk().await? else {
                ended = true;
                break;
            };
            let take = (HEAD_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if take < chunk.len() {
                rest = Some(chunk.slice(take..));
            }
        }
        let total_len = if ended {
            head.len() as u64
        } else {
            image.size.unwrap_or(head.len() as u64)
        };
        let inspected = inspect(&mut ImageBytes::head(&head, total_len))
            .map_err(|e| ImageError::io("inspecting image data", e))?;
        let format = check_image(claimed, &inspected, volume_size_bytes)
            .map_err(|v| unacceptable(&image.id, v))?;

        let mut sink = match target {
            VolumeTarget::Writer(writer) => Sink::Writer(writer),
            VolumeTarget::Path {
                path,
                reads_as_zero,
            } => Sink::File {
                file: tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .await
                    .map_err(|e| ImageError::io(format!("cannot open {}", path.display()), e))?,
                skip_zeros: reads_as_zero,
                offset: 0,
                cursor: 0,
            },
        };
        let write_error = |e| ImageError::io("cannot write image data to the volume", e);
        let mut written = head.len() as u64;
        sink.write(&head).await.map_err(write_error)?;
        drop(head);
        let mut next = rest;
        loop {
            let chunk = match next.take() {
                Some(chunk) => chunk,
                None if ended => break,
                None => match data.chunk().await? {
                    Some(chunk) => chunk,
                    None => break,
                },
            };
            written += chunk.len() as u64;
            // Glance's size was checked; this catches a size it lied about.
            if written > volume_size_bytes {
                return Err(too_big_for(&image.id, written, volume_size_bytes));
            }
            sink.write(&chunk).await.map_err(write_error)?;
        }
        sink.finish().await.map_err(write_error)?;
        Ok(FetchedImage {
            format,
            virtual_size: written,
            downloaded: data.received(),
            converted: false,
        })
    }

    async fn stage_and_convert(
        &self,
        image: &ImageMeta,
        claimed: &str,
        data: ImageData,
        target: VolumeTarget<'_>,
        volume_size_bytes: u64,
    ) -> Result<FetchedImage, ImageError> {
        let Staged { file, bytes } = self.stage_download(image, data).await?;
        let result = self
            .convert_staged(image, claimed, file.path(), target, volume_size_bytes)
            .await;
        file.remove().await;
        result.map(|fetched| FetchedImage {
            downloaded: bytes,
            ..fetched
        })
    }

    /// Streams the download into a staged file.
    async fn stage_download(
        &self,
        image: &ImageMeta,
        mut data: ImageData,
    ) -> Result<Staged, ImageError> {
        let file = StagedFile::create(
            &self.settings.conversion_dir,
            &self.settings.backend,
            &format!("image-{}", image.id),
        )
        .await?;
        let no_space = |e: std::io::Error| {
            if e.raw_os_error() == Some(28) {
                ImageError::TooBig {
                    image_id: image.id.clone(),
                    reason: format!(
                        "No space left in image_conversion_dir path ({}) while fetching image {}.",
                        self.settings.conversion_dir.display(),
                        image.id
                    ),
                }
            } else {
                ImageError::io(format!("cannot write {}", file.path().display()), e)
            }
        };
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .open(file.path())
            .await
            .map_err(no_space)?;
        while let Some(chunk) = data.chunk().await? {
            if image.size.is_some_and(|size| data.received() > size) {
                return Err(ImageError::DownloadFailed {
                    image_id: image.id.clone(),
                    reason: "Glance sent more data than the image's size".into(),
                    transient: false,
                });
            }
            out.write_all(&chunk).await.map_err(no_space)?;
        }
        out.flush().await.map_err(no_space)?;
        Ok(Staged {
            file,
            bytes: data.received(),
        })
    }

    async fn convert_staged(
        &self,
        image: &ImageMeta,
        claimed: &str,
        path: &Path,
        target: VolumeTarget<'_>,
        volume_size_bytes: u64,
    ) -> Result<FetchedImage, ImageError> {
        let inspected = inspect_file(path)
            .await
            .map_err(|e| ImageError::io(format!("cannot inspect {}", path.display()), e))?;
        let format = check_image(claimed, &inspected, volume_size_bytes)
            .map_err(|v| unacceptable(&image.id, v))?;
        if inspected.format == DetectedFormat::Vmdk {
            let create_type = inspected.subformat.clone().unwrap_or_default();
            if !self.settings.vmdk_allowed_types.contains(&create_type) {
                return Err(unacceptable(
                    &image.id,
                    Unacceptable {
                        reason: "Invalid VMDK create-type specified".into(),
                        detail: format!("create type {create_type:?} not in vmdk_allowed_types"),
                    },
                ));
            }
        }
        // A second opinion from qemu itself, now that it is safe to ask
        // (explicit format, limits).
        let info = self.qemu.info(path, format).await?;
        let disagreement = if info.format != format.as_str() {
            Some(format!("qemu-img reads it as {}", info.format))
        } else if let Some(backing) = &info.backing_filename {
            Some(format!("fmt={} backed by: {backing}", info.format))
        } else if info.data_file.is_some() {
            Some("A qcow2 format image is not allowed to have a data file".into())
        } else if info.virtual_size > volume_size_bytes {
            Some(format!(
                "Image virtual size is {}GB and doesn't fit in a volume of size {}GB.",
                info.virtual_size.div_ceil(GIB),
                volume_size_bytes / GIB
            ))
        } else {
            None
        };
        if let Some(reason) = disagreement {
            return Err(unacceptable(
                &image.id,
                Unacceptable {
                    detail: format!("qemu-img info: {info:?}"),
                    reason,
                },
            ));
        }
        match target {
            VolumeTarget::Path {
                path: destination,
                reads_as_zero,
            } => {
                self.qemu
                    .convert(
                        path,
                        format,
                        destination,
                        QemuFormat::Raw,
                        ConvertOptions {
                            cache: Some(CacheMode::for_destination(destination)),
                            target_exists: true,
                            target_is_zero: reads_as_zero,
                            compress: false,
                        },
                    )
                    .await?;
            }
            VolumeTarget::Writer(writer) => {
                let raw = StagedFile::create(
                    &self.settings.conversion_dir,
                    &self.settings.backend,
                    &format!("raw-{}", image.id),
                )
                .await?;
                let copied = async {
                    self.qemu
                        .convert(
                            path,
                            format,
                            raw.path(),
                            QemuFormat::Raw,
                            ConvertOptions::default(),
                        )
                        .await?;
                    let mut input = tokio::fs::File::open(raw.path())
                        .await
                        .map_err(|e| ImageError::io("cannot read the converted image", e))?;
                    tokio::io::copy(&mut input, writer)
                        .await
                        .map_err(|e| ImageError::io("cannot write image data to the volume", e))?;
                    writer
                        .flush()
                        .await
                        .map_err(|e| ImageError::io("cannot write image data to the volume", e))
                }
                .await;
                raw.remove().await;
                copied?;
            }
        }
        Ok(FetchedImage {
            format,
            virtual_size: inspected.virtual_size,
            downloaded: 0,
            converted: true,
        })
    }
}

/// A download staged for conversion.
struct Staged {
    file: StagedFile,
    bytes: u64,
}

#[cfg(test)]
mod tests;
