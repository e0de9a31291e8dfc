//! Upload to image: a volume's raw data sent to Glance as it is (`raw`),
//! or converted by `qemu-img` (read with `-f raw`, so nothing inside the
//! volume is ever interpreted) into the image's `disk_format` in a staged
//! file, checked, then sent (Cinder's `image_utils.upload_volume`).

use std::path::Path;

use tokio::io::AsyncRead;

use super::staging::StagedFile;
use super::{ImageTransfer, unacceptable};
use crate::error::ImageError;
use crate::glance::{ImageContext, ImageMeta, UploadData};
use crate::inspect::{QemuFormat, Unacceptable, check_image, inspect_file};
use crate::qemu::ConvertOptions;

/// A volume's data to upload: a volume file or block device
/// ([`UploadData::File`]) or a reader of its raw bytes
/// ([`UploadData::Reader`], e.g. `rbd export -`'s stdout).
pub type VolumeSource = UploadData;

/// What an upload sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedImage {
    /// The format sent.
    pub format: QemuFormat,
    /// Whether `qemu-img convert` ran.
    pub converted: bool,
}

impl ImageTransfer {
    /// Sends the volume's data as the content of `image` (a `queued` image
    /// the caller created with [`crate::glance::GlanceClient::create_image`]),
    /// in the image's `disk_format`. On failure the caller deletes the
    /// half-made image, as Cinder does.
    ///
    /// # Errors
    /// `Unacceptable` for a `disk_format` Clinker cannot write, a compressed
    /// container or a disabled conversion; `Conversion` when qemu-img
    /// fails or produces something else; Glance's errors.
    pub async fn upload_volume_to_image(
        &self,
        ctx: &ImageContext,
        image: &ImageMeta,
        source: VolumeSource,
    ) -> Result<UploadedImage, ImageError> {
        let refuse = |reason: String| ImageError::Unacceptable {
            image_id: image.id.clone(),
            reason,
        };
        let disk_format = image.disk_format.as_deref().unwrap_or("raw");
        let Some(format) = QemuFormat::for_disk_format(disk_format) else {
            return Err(refuse(format!(
                "Clinker cannot upload volumes as disk_format {disk_format}"
            )));
        };
        if image.container_format.as_deref() == Some("compressed") {
            return Err(refuse(if self.settings.allow_compressed_container {
                "compressed container_format is not supported by Clinker yet".into()
            } else {
                "Image compression upload disallowed, but container_format is compressed".into()
            }));
        }
        if format == QemuFormat::Raw {
            self.glance.upload(ctx, &image.id, source).await?;
            return Ok(UploadedImage {
                format,
                converted: false,
            });
        }
        if self.settings.conversion_disabled {
            return Err(ImageError::Unacceptable {
                image_id: image.id.clone(),
                reason: format!(
                    "Image Conversion disallowed for image {}: Image conversion is disabled. \
                     The image disk_format you have requested is '{disk_format}', but your \
                     volume can only be uploaded in the format 'raw'.",
                    image.id
                ),
            });
        }
        // qemu-img needs a path: a reader is staged first.
        let (staged_source, source_path) = match source {
            UploadData::File(path) => (None, path),
            UploadData::Reader { reader, length } => {
                let staged = self.stage_reader(&image.id, reader, length).await?;
                let path = staged.path().to_path_buf();
                (Some(staged), path)
            }
        };
        let result = async {
            let converted = StagedFile::create(
                &self.settings.conversion_dir,
                &self.settings.backend,
                &format!("upload-{}", image.id),
            )
            .await?;
            let sent = self
                .convert_and_send(ctx, image, format, &source_path, converted.path())
                .await;
            converted.remove().await;
            sent
        }
        .await;
        if let Some(staged) = staged_source {
            staged.remove().await;
        }
        result.map(|()| UploadedImage {
            format,
            converted: true,
        })
    }

    async fn convert_and_send(
        &self,
        ctx: &ImageContext,
        image: &ImageMeta,
        format: QemuFormat,
        source: &Path,
        converted: &Path,
    ) -> Result<(), ImageError> {
        self.qemu
            .convert(
                source,
                QemuFormat::Raw,
                converted,
                format,
                ConvertOptions {
                    compress: self.settings.compress_on_upload && format == QemuFormat::Qcow2,
                    ..ConvertOptions::default()
                },
            )
            .await?;
        // What qemu-img made must be the format asked for, and safe.
        let inspected = inspect_file(converted)
            .await
            .map_err(|e| ImageError::io("cannot inspect the converted image", e))?;
        let disk_format = image.disk_format.as_deref().unwrap_or("raw");
        if let Err(verdict) = check_image(disk_format, &inspected, u64::MAX) {
            return Err(unacceptable(
                &image.id,
                Unacceptable {
                    reason: format!(
                        "Converted to {}, but format is now {}",
                        format.as_str(),
                        inspected.format
                    ),
                    detail: verdict.detail,
                },
            ));
        }
        self.glance
            .upload(ctx, &image.id, UploadData::File(converted.to_path_buf()))
            .await
    }

    async fn stage_reader(
        &self,
        image_id: &str,
        reader: Box<dyn AsyncRead + Send + Unpin>,
        length: u64,
    ) -> Result<StagedFile, ImageError> {
        use tokio::io::AsyncReadExt;
        let staged = StagedFile::create(
            &self.settings.conversion_dir,
            &self.settings.backend,
            &format!("volume-{image_id}"),
        )
        .await?;
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .open(staged.path())
            .await
            .map_err(|e| ImageError::io("cannot stage the volume data", e))?;
        let copied = tokio::io::copy(&mut reader.take(length), &mut out)
            .await
            .map_err(|e| ImageError::io("cannot stage the volume data", e))?;
        if copied != length {
            return Err(ImageError::io(
                "cannot stage the volume data",
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("read {copied} of {length} bytes"),
                ),
            ));
        }
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(|e| ImageError::io("cannot stage the volume data", e))?;
        Ok(staged)
    }
}
