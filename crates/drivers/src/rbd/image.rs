//! Glance images and RBD volumes: a volume cloned from the image's own RBD
//! snapshot when Glance stores it on this cluster (Cinder's `clone_image`,
//! `_is_cloneable`, `_parse_location`), image data streamed into a new
//! volume (`rbd import -`) or into an existing one (reimage), and a
//! volume's data streamed out for an upload (`rbd export -`).
//!
//! A reimage must keep the volume's snapshots and their clones valid, so
//! the volume's image is never replaced: the new data is imported into a
//! temporary image `<volume>.reimage`, the volume's head is emptied
//! (shrunk to nothing and grown back: snapshots keep their own data), and
//! the temporary image's extents are written into the head with
//! `rbd export-diff | rbd import-diff` before it is removed.

use percent_encoding::percent_decode_str;

use super::cli::{CephCli, ImageSpec, SnapSpec};
use super::driver::{RbdDriver, size_mib};
use super::error::{CephError, CephErrorKind};
use super::json::{ImageInfo, parse};
use crate::{DriverError, ImageLocations, ImageSink, ImageSource, ModelUpdate, VolumeSpec};

const MIB: u64 = 1 << 20;

/// Suffix of the temporary image a reimage writes first.
const REIMAGE_SUFFIX: &str = ".reimage";

/// An image location `rbd://<fsid>/<pool>/<image>/<snapshot>`, each
/// component percent-decoded (Cinder's `_parse_location`). `None` for
/// anything else: another scheme, blank components, not four of them, or
/// a component the `rbd` command line could mistake for something else
/// (a leading `-`, a `/` or `@` inside).
pub(super) fn parse_location(url: &str) -> Option<[String; 4]> {
    let rest = url.strip_prefix("rbd://")?;
    let pieces: Vec<String> = rest
        .split('/')
        .map(|p| percent_decode_str(p).decode_utf8().map(|p| p.into_owned()))
        .collect::<Result<_, _>>()
        .ok()?;
    let safe = |p: &String| !p.is_empty() && !p.starts_with('-') && !p.contains(['/', '@']);
    if pieces.len() != 4 || !pieces.iter().all(safe) {
        return None;
    }
    pieces.try_into().ok()
}

/// A running `rbd import -` (see [`crate::VolumeDriver::image_sink`]),
/// grown to the volume's size when it is done.
pub(super) struct RbdImport {
    child: clinker_exec::PipedChild,
    what: String,
    cli: CephCli,
    image: ImageSpec,
    size_mib: u64,
}

impl RbdImport {
    /// Waits for `rbd import` on what it got (a stream cut short may still
    /// make an image), then removes the image.
    async fn discard(self) {
        let Self {
            child,
            what,
            cli,
            image,
            ..
        } = self;
        let _ = cli.finish_piped(&what, child).await;
        match cli.run(&cli.rm(&image)).await {
            Ok(_) => {}
            Err(e) if e.kind == CephErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(image = %image, error = %e, "cannot remove the image of a failed import");
            }
        }
    }

    async fn complete(self) -> Result<(), DriverError> {
        let Self {
            child,
            what,
            cli,
            image,
            size_mib,
        } = self;
        cli.finish_piped(&what, child).await?;
        match cli.run(&cli.resize(&image, size_mib)).await {
            Ok(_) => Ok(()),
            Err(e) if e.says("new size is equal to original size") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait::async_trait]
impl ImageSink for RbdImport {
    fn writer(&mut self) -> &mut (dyn tokio::io::AsyncWrite + Send + Unpin) {
        self.child.stdin()
    }

    async fn finish(self: Box<Self>) -> Result<(), DriverError> {
        self.complete().await
    }

    async fn abort(self: Box<Self>) {
        self.discard().await;
    }
}

/// A reimage in progress: the import into the temporary image, then the
/// rewrite of the volume from it (see the module docs).
struct RbdOverwrite {
    import: RbdImport,
    volume: ImageSpec,
    size_gb: i64,
}

#[async_trait::async_trait]
impl ImageSink for RbdOverwrite {
    fn writer(&mut self) -> &mut (dyn tokio::io::AsyncWrite + Send + Unpin) {
        self.import.child.stdin()
    }

    async fn finish(self: Box<Self>) -> Result<(), DriverError> {
        let Self {
            import,
            volume,
            size_gb,
        } = *self;
        let cli = import.cli.clone();
        let temp = import.image.clone();
        let result = async {
            import.complete().await?;
            rewrite_head(&cli, &temp, &volume, size_gb).await
        }
        .await;
        match cli.run(&cli.rm(&temp)).await {
            Ok(_) => {}
            Err(e) if e.kind == CephErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(image = %temp, error = %e, "cannot remove the temporary image of a reimage");
            }
        }
        result
    }

    /// The volume was not touched yet: only the temporary image goes.
    async fn abort(self: Box<Self>) {
        self.import.discard().await;
    }
}

/// Empties `volume`'s head and writes `temp`'s extents into it.
async fn rewrite_head(
    cli: &CephCli,
    temp: &ImageSpec,
    volume: &ImageSpec,
    size_gb: i64,
) -> Result<(), DriverError> {
    // Shrinking discards the head's objects (and a clone's overlap with
    // its parent); snapshots keep theirs. Growing back reads as zeros.
    cli.run(&cli.resize_allow_shrink(volume, 0)).await?;
    cli.run(&cli.resize(volume, size_mib(size_gb)?)).await?;
    let export = cli.export_diff(temp, size_gb);
    let import = cli.import_diff(volume, size_gb);
    let mut exporter = cli.spawn_reading(&export).await?;
    let mut importer = match cli.spawn_piped(&import).await {
        Ok(importer) => importer,
        Err(e) => {
            let (stdout, exit) = exporter.into_parts();
            drop(stdout);
            let _ = cli.finish_reading(&export.what, exit).await;
            return Err(e.into());
        }
    };
    let copied = tokio::io::copy(exporter.stdout(), importer.stdin()).await;
    // The importer's verdict first: it saw the whole stream (it ends with
    // `e`) or refused it.
    let imported = cli.finish_piped(&import.what, importer).await;
    // Dropping the rest of its stdout ends an exporter the importer
    // stopped reading (EPIPE).
    let (stdout, exit) = exporter.into_parts();
    drop(stdout);
    let exported = cli.finish_reading(&export.what, exit).await;
    imported?;
    copied.map_err(|e| DriverError::Backend(format!("{} | {}: {e}", export.what, import.what)))?;
    if let Err(e) = exported {
        if e.kind == CephErrorKind::Crashed {
            // Ceph 16's tools may abort in librados as they exit; the
            // importer accepted a complete stream.
            tracing::warn!(error = %e, "rbd export-diff exited badly after a complete stream");
        } else {
            return Err(e.into());
        }
    }
    Ok(())
}

impl RbdDriver {
    /// Starts `rbd import -` into `image`, which must not exist (an
    /// earlier attempt's is removed first).
    pub(super) async fn start_import(
        &self,
        image: ImageSpec,
        size_gb: i64,
    ) -> Result<RbdImport, DriverError> {
        match self.run(self.cli.rm(&image)).await {
            Ok(_) => {}
            Err(e) if e.kind == CephErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let cmd = self.cli.import(&image, size_gb);
        let child = self.cli.spawn_piped(&cmd).await?;
        Ok(RbdImport {
            child,
            what: cmd.what,
            cli: self.cli.clone(),
            image,
            size_mib: size_mib(size_gb)?,
        })
    }

    /// [`crate::VolumeDriver::image_overwrite_sink`]: the volume must
    /// exist; its data is replaced when the sink finishes.
    pub(super) async fn start_overwrite(
        &self,
        volume: &VolumeSpec,
        image: ImageSpec,
    ) -> Result<Box<dyn ImageSink>, DriverError> {
        if self.info(&image).await?.is_none() {
            return Err(DriverError::NotFound(format!(
                "volume image {image} does not exist"
            )));
        }
        let temp = ImageSpec::new(&image.pool, format!("{}{REIMAGE_SUFFIX}", image.image));
        let import = self.start_import(temp, volume.size_gb).await?;
        Ok(Box::new(RbdOverwrite {
            import,
            volume: image,
            size_gb: volume.size_gb,
        }))
    }

    /// [`crate::VolumeDriver::image_source`]: `rbd export <volume> -`.
    pub(super) async fn export_volume(
        &self,
        volume: &VolumeSpec,
        image: ImageSpec,
    ) -> Result<ImageSource, DriverError> {
        let Some(info) = self.info(&image).await? else {
            return Err(DriverError::NotFound(format!(
                "volume image {image} does not exist"
            )));
        };
        let cmd = self.cli.export(&image, volume.size_gb);
        let (reader, exit) = self.cli.spawn_reading(&cmd).await?.into_parts();
        let cli = self.cli.clone();
        Ok(ImageSource {
            reader,
            length: info.size,
            finish: Box::pin(async move {
                cli.finish_reading(&cmd.what, exit)
                    .await
                    .map_err(DriverError::from)
            }),
        })
    }

    /// The snapshot a location names, with its `rbd info`, when the volume
    /// can be cloned from it (Cinder's `_is_cloneable`): an
    /// `rbd://` location on this cluster (same fsid), a `raw` image, and a
    /// snapshot this backend's user can open. `None` otherwise.
    async fn cloneable(
        &self,
        url: &str,
        image: &ImageLocations,
    ) -> Result<Option<(SnapSpec, ImageInfo)>, CephError> {
        let Some([fsid, pool, name, snapshot]) = parse_location(url) else {
            tracing::debug!(image_id = %image.image_id, location = url, "not cloneable: not an rbd snapshot location");
            return Ok(None);
        };
        if fsid != self.fsid().await? {
            tracing::debug!(image_id = %image.image_id, location = url, "not cloneable: in a different ceph cluster");
            return Ok(None);
        }
        if image.disk_format.as_deref() != Some("raw") {
            tracing::debug!(image_id = %image.image_id, disk_format = ?image.disk_format,
                "not cloneable: rbd image clone requires image format to be 'raw'");
            return Ok(None);
        }
        let snap = ImageSpec::new(pool, name).snap(snapshot);
        let cmd = self.cli.snap_info(&snap);
        match self.cli.run(&cmd).await {
            Ok(stdout) => Ok(Some((snap, parse(&cmd.what, &stdout)?))),
            Err(e) => {
                tracing::debug!(image_id = %image.image_id, snapshot = %snap, error = %e, "not cloneable: cannot open the image snapshot");
                Ok(None)
            }
        }
    }

    /// [`crate::VolumeDriver::clone_image`]: the first cloneable location
    /// becomes the volume's parent; flattened with
    /// `rbd_flatten_volume_from_snapshot`, grown to the volume's size.
    pub(super) async fn clone_from_image(
        &self,
        volume: &VolumeSpec,
        dest: ImageSpec,
        image: &ImageLocations,
    ) -> Result<Option<ModelUpdate>, DriverError> {
        let size = size_mib(volume.size_gb)?;
        for url in &image.urls {
            let Some((snap, info)) = self.cloneable(url, image).await? else {
                continue;
            };
            tracing::info!(image_id = %image.image_id, snapshot = %snap, volume = %dest, "cloning the image's rbd snapshot");
            self.clone_snapshot(&snap, &dest, self.clone_object_mib(&info))
                .await?;
            let finish = async {
                if self.options.flatten_volume_from_snapshot {
                    self.flatten(&dest, volume.size_gb).await?;
                }
                if size * MIB > info.size {
                    self.run(self.cli.resize(&dest, size)).await?;
                } else if size * MIB < info.size {
                    return Err(DriverError::InvalidInput(format!(
                        "image {} ({} bytes) is larger than the volume ({} GiB)",
                        image.image_id, info.size, volume.size_gb
                    )));
                }
                Ok::<(), DriverError>(())
            };
            if let Err(e) = finish.await {
                self.discard_new_image(&dest).await;
                return Err(e);
            }
            return Ok(Some(ModelUpdate::default()));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_parsed_like_cinder() {
        assert_eq!(
            parse_location("rbd://f00d/images/1234/snap").unwrap(),
            ["f00d", "images", "1234", "snap"]
        );
        assert_eq!(
            parse_location("rbd://f00d/my%20pool/img/snap").unwrap()[1],
            "my pool"
        );
        for bad in [
            "file:///var/lib/glance/images/1234",
            "rbd://f00d/images/1234",
            "rbd://f00d/images//snap",
            "rbd://f00d/images/1234/snap/extra",
            "rbd://f00d/-rf/1234/snap",
            "rbd://f00d/images/a%40b/snap",
            "rbd://f00d/images/a%2Fb/snap",
        ] {
            assert!(parse_location(bad).is_none(), "{bad}");
        }
    }
}
