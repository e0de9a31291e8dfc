//! Images on this backend (Cinder's `_create_from_image` in
//! `volume/flows/manager/create_volume.py` and `copy_volume_to_image` in
//! `volume/manager.py`): create a volume from a Glance image, and send a
//! volume's data to a new image. The data moves through `clinker-image`
//! ([`ImageTransfer`]) between Glance and the volume's local file or
//! device ([`VolumeDriver::local_device`](clinker_drivers::VolumeDriver)),
//! or the driver's streams where there is none (RBD: `image_sink`,
//! `image_overwrite_sink`, `image_source`); a driver that can make the
//! volume from the image where the backend already stores it
//! (`clone_image`: RBD on Glance's own cluster) moves no data at all.

use std::sync::Arc;

use clinker_db::{DbError, MetadataKind, VolumeUpdate};
use clinker_drivers::{DriverError, ImageLocations, ImageSink, ModelUpdate};
use clinker_image::glance::UploadData;
use clinker_image::{ImageContext, ImageError, ImageMeta, ImageTransfer, VolumeTarget};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{CopyVolumeToImageArgs, ReimageArgs};
use clinker_types::message_field::{self as mf, Action, Detail};
use clinker_types::model::Volume;
use clinker_types::status::VolumeTransition;
use clinker_types::{AttachStatus, RemoteError, VolumeStatus};

use crate::manager::{VolumeManager, db_remote, volume_spec};

const GIB: u64 = 1 << 30;

/// Why a create failed, with what the manager does about it.
#[derive(Debug)]
pub(crate) struct CreateFailure {
    /// The failure.
    pub error: DriverError,
    /// The user message (action, detail) when not the generic one.
    pub message: Option<(Action, Detail)>,
    /// Whether another backend could do better (a transport failure
    /// before any data moved, a driver failure).
    pub reschedulable: bool,
}

impl From<DriverError> for CreateFailure {
    fn from(error: DriverError) -> Self {
        Self {
            error,
            message: None,
            reschedulable: true,
        }
    }
}

/// The Glance credentials of a request (Cinder passes its context).
pub(crate) fn image_context(context: &RequestContext) -> ImageContext {
    ImageContext {
        auth_token: context.auth_token.as_ref().map(|t| t.secret().to_owned()),
        service_token: None,
        request_id: Some(
            context
                .global_request_id
                .clone()
                .unwrap_or_else(|| context.request_id.clone()),
        ),
        service_catalog: context.service_catalog.clone(),
    }
}

/// An image error as a driver error of the same classification.
fn as_driver_error(e: &ImageError) -> DriverError {
    let text = e.to_string();
    match e {
        ImageError::NotFound { .. } => DriverError::NotFound(text),
        ImageError::NotAuthorized { .. }
        | ImageError::Invalid(_)
        | ImageError::Unacceptable { .. } => DriverError::InvalidInput(text),
        ImageError::TooBig { .. } => DriverError::NoSpace(text),
        ImageError::ConnectionFailed(_) => DriverError::Unavailable(text),
        _ => DriverError::Backend(text),
    }
}

/// Where Glance says the image's data is: its `locations`, then its
/// `direct_url` (Cinder's `get_location`). Every scheme is offered to the
/// driver's clone, as Cinder does; `allowed_direct_url_schemes` governs
/// downloads only.
fn image_locations(image: &ImageMeta) -> ImageLocations {
    let mut urls: Vec<String> = image.locations.iter().map(|l| l.url.clone()).collect();
    if let Some(direct) = &image.direct_url
        && !urls.contains(direct)
    {
        urls.push(direct.clone());
    }
    ImageLocations {
        image_id: image.id.clone(),
        disk_format: image.disk_format.clone(),
        urls,
    }
}

/// The user message Cinder records for an image copy that failed.
fn copy_message(e: &ImageError) -> (Action, Detail) {
    let detail = match e {
        ImageError::Unacceptable { .. } => mf::IMAGE_FORMAT_UNACCEPTABLE,
        ImageError::TooBig { .. } => mf::NOT_ENOUGH_SPACE_FOR_IMAGE,
        _ => mf::UNKNOWN_ERROR,
    };
    (mf::COPY_IMAGE_TO_VOLUME, detail)
}

impl VolumeManager {
    /// Gives the manager its image data path (Glance client, qemu-img,
    /// conversion directory); without it image operations fail.
    #[must_use]
    pub fn with_images(mut self, images: Arc<ImageTransfer>) -> Self {
        self.images = Some(images);
        self
    }

    fn transfer(&self) -> Result<&Arc<ImageTransfer>, DriverError> {
        self.images.as_ref().ok_or_else(|| {
            DriverError::InvalidInput("this volume service has no image service configured".into())
        })
    }

    /// Creates `volume` and fills it with `image_id`: the backend object is
    /// made, the volume goes `downloading`, the image is checked and
    /// written through the volume's local path, and the volume gets the
    /// image's metadata and becomes bootable. On failure the backend
    /// object is removed again.
    pub(crate) async fn create_from_image(
        &self,
        context: &RequestContext,
        volume: &Volume,
        image_id: &str,
    ) -> Result<ModelUpdate, CreateFailure> {
        self.driver_ready()?;
        let transfer = self.transfer()?.clone();
        let ictx = image_context(context);
        // Cinder shows the image again in the flow: it may have changed
        // since the API looked.
        let image = transfer
            .glance()
            .show_image(&ictx, image_id)
            .await
            .map_err(|e| CreateFailure {
                error: as_driver_error(&e),
                message: Some(copy_message(&e)),
                reschedulable: matches!(e, ImageError::ConnectionFailed(_)),
            })?;
        let spec = volume_spec(volume);
        // Cinder asks the driver to clone the image where the backend
        // stores it before anything is downloaded.
        if let Some(update) = self
            .driver
            .clone_image(&spec, &image_locations(&image))
            .await?
        {
            tracing::info!(volume_id = %volume.id, image_id = %image.id, "volume cloned from the image's own storage");
            if let Err(failure) = self.record_image_metadata(volume.id, &image).await {
                self.remove_failed_image_volume(volume).await;
                return Err(failure);
            }
            return Ok(update);
        }
        if self.image_cache_for(volume).is_some() {
            // One download per image and backend at a time, so that two
            // creates of an uncached image fill one entry (Cinder's
            // `synchronized('{image_id}')` around the cache fill).
            let _filling = self.locks.lock(&format!("image-cache-{}", image.id)).await;
            if let Some(update) = self.clone_from_image_cache(context, volume, &image).await {
                if let Err(failure) = self.record_image_metadata(volume.id, &image).await {
                    self.remove_failed_image_volume(volume).await;
                    return Err(failure);
                }
                return Ok(update);
            }
            return self
                .download_and_cache(context, &ictx, &transfer, volume, &image)
                .await;
        }
        let update = self.driver.create_volume(&spec).await?;
        let filled = self.fill_from_image(&ictx, &transfer, volume, &image).await;
        match filled {
            Ok(()) => Ok(update),
            Err(failure) => {
                self.remove_failed_image_volume(volume).await;
                Err(failure)
            }
        }
    }

    async fn remove_failed_image_volume(&self, volume: &Volume) {
        if let Err(e) = self.driver.delete_volume(&volume_spec(volume)).await {
            tracing::warn!(volume_id = %volume.id, error = %e, "cannot remove the volume of a failed image copy");
        }
    }

    /// A cache miss (Cinder's `_create_from_image_cache_or_download` with
    /// a cache entry to make): the volume is made at the image's size,
    /// filled from Glance, cloned into a new cache entry, then extended to
    /// the size asked for.
    async fn download_and_cache(
        &self,
        context: &RequestContext,
        ictx: &ImageContext,
        transfer: &ImageTransfer,
        volume: &Volume,
        image: &ImageMeta,
    ) -> Result<ModelUpdate, CreateFailure> {
        let image_size = crate::image_cache::image_size_gb(image)
            .filter(|size| *size < volume.size)
            .unwrap_or(volume.size);
        let at_image_size = Volume {
            size: image_size,
            ..volume.clone()
        };
        let update = self
            .driver
            .create_volume(&volume_spec(&at_image_size))
            .await?;
        let created = Volume {
            provider_location: update.provider_location.clone(),
            provider_auth: update.provider_auth.clone(),
            provider_id: update.provider_id.clone(),
            ..at_image_size
        };
        let filled = async {
            self.fill_from_image(ictx, transfer, &created, image)
                .await?;
            self.add_to_image_cache(context, &created, image).await;
            if created.size < volume.size {
                self.driver
                    .extend_volume(&volume_spec(&created), volume.size)
                    .await
                    .map_err(|error| CreateFailure {
                        error,
                        message: None,
                        reschedulable: false,
                    })?;
            }
            Ok(())
        }
        .await;
        match filled {
            Ok(()) => Ok(update),
            Err(failure) => {
                self.remove_failed_image_volume(volume).await;
                Err(failure)
            }
        }
    }

    async fn fill_from_image(
        &self,
        ictx: &ImageContext,
        transfer: &ImageTransfer,
        volume: &Volume,
        image: &ImageMeta,
    ) -> Result<(), CreateFailure> {
        let not_rescheduled = |error: DriverError, message| CreateFailure {
            error,
            message,
            reschedulable: false,
        };
        match self
            .db
            .transition_volume(volume.id, VolumeTransition::BeginDownload)
            .await
        {
            Ok(_) => {}
            // Deleted by force meanwhile.
            Err(e) => {
                return Err(not_rescheduled(
                    DriverError::NotFound(format!("volume {}: {e}", volume.id)),
                    None,
                ));
            }
        }
        let spec = volume_spec(volume);
        let size_bytes = u64::try_from(volume.size).unwrap_or(0) * GIB;
        let copy_failed = |e: ImageError| {
            tracing::warn!(volume_id = %volume.id, image_id = %image.id, error = %e, "cannot copy the image to the volume");
            not_rescheduled(as_driver_error(&e), Some(copy_message(&e)))
        };
        let fetched = if let Some(device) = self.driver.local_device(&spec).await? {
            transfer
                .fetch_image_to_volume(
                    ictx,
                    image,
                    VolumeTarget::Path {
                        path: &device.path,
                        reads_as_zero: device.new_reads_as_zero,
                    },
                    size_bytes,
                )
                .await
                .map_err(copy_failed)?
        } else if let Some(mut sink) = self.driver.image_sink(&spec).await? {
            let fetched = transfer
                .fetch_image_to_volume(ictx, image, VolumeTarget::Writer(sink.writer()), size_bytes)
                .await;
            let fetched = match fetched {
                Ok(fetched) => fetched,
                Err(e) => {
                    sink.abort().await;
                    return Err(copy_failed(e));
                }
            };
            sink.finish().await.map_err(|e| {
                not_rescheduled(e, Some((mf::COPY_IMAGE_TO_VOLUME, mf::UNKNOWN_ERROR)))
            })?;
            fetched
        } else {
            return Err(not_rescheduled(
                DriverError::NotSupported(format!(
                    "the {} driver gives no way to write an image into a volume",
                    self.driver.driver_name()
                )),
                Some((mf::COPY_IMAGE_TO_VOLUME, mf::UNKNOWN_ERROR)),
            ));
        };
        tracing::info!(volume_id = %volume.id, image_id = %image.id, format = fetched.format.as_str(),
            converted = fetched.converted, "image copied to volume");
        self.record_image_metadata(volume.id, image).await
    }

    /// The volume gets the image's metadata and becomes bootable (Cinder's
    /// `_handle_bootable_volume_glance_meta`).
    async fn record_image_metadata(
        &self,
        volume_id: clinker_types::VolumeId,
        image: &ImageMeta,
    ) -> Result<(), CreateFailure> {
        let metadata = clinker_image::metadata::volume_glance_metadata(image);
        let recorded = async {
            self.db
                .set_volume_metadata(volume_id, MetadataKind::Glance, &metadata, true)
                .await?;
            self.db
                .update_volume(
                    volume_id,
                    VolumeUpdate {
                        bootable: Some(true),
                        ..VolumeUpdate::default()
                    },
                )
                .await
        }
        .await;
        recorded.map(|_| ()).map_err(|e: DbError| CreateFailure {
            error: DriverError::Backend(format!("cannot record the image metadata: {e}")),
            message: None,
            reschedulable: false,
        })
    }

    /// Sends an `uploading` volume's data to the queued image
    /// `args.image_id` (raw, or converted to the image's `disk_format`),
    /// then puts the volume back to `available` or `in-use`. A failure
    /// deletes the image and records a user message.
    pub(crate) async fn copy_volume_to_image(
        &self,
        context: &RequestContext,
        args: CopyVolumeToImageArgs,
    ) -> Result<(), RemoteError> {
        let volume = match self.db.get_volume(args.volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.status != VolumeStatus::Uploading {
            return Ok(());
        }
        let ictx = image_context(context);
        let outcome = self.upload(&ictx, &volume, &args.image_id).await;
        if let Err(e) = &outcome {
            tracing::warn!(volume_id = %volume.id, image_id = %args.image_id, error = %e, "upload to image failed");
            if let Ok(transfer) = self.transfer()
                && let Err(undo) = transfer.glance().delete_image(&ictx, &args.image_id).await
                && !matches!(undo, ImageError::NotFound { .. })
            {
                tracing::warn!(image_id = %args.image_id, error = %undo, "cannot delete the half-made image");
            }
            self.record_message(
                context,
                &volume.project_id,
                mf::RESOURCE_VOLUME,
                volume.id.to_string(),
                mf::COPY_VOLUME_TO_IMAGE,
                mf::FAILED_TO_UPLOAD_VOLUME,
            )
            .await;
        }
        // Back to where it was, whatever the outcome (Cinder's `finally`).
        let back = match self.db.get_volume(volume.id).await {
            Ok(v) if v.attach_status == AttachStatus::Attached => {
                VolumeTransition::FinishUploadInUse
            }
            _ => VolumeTransition::FinishUploadAvailable,
        };
        match self.db.transition_volume(volume.id, back).await {
            Ok(_) | Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => Ok(()),
            Err(e) => Err(db_remote(e)),
        }
    }

    /// Rewrites a `downloading` volume from `args.image_id` (Cinder's
    /// `reimage`): the same checks and data path as a create, the image
    /// metadata replaced, then back to the previous status; a failure
    /// leaves it `error`.
    pub(crate) async fn reimage(
        &self,
        context: &RequestContext,
        args: ReimageArgs,
    ) -> Result<(), RemoteError> {
        let volume = match self.db.get_volume(args.volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.status != VolumeStatus::Downloading {
            return Ok(());
        }
        let outcome = self
            .rewrite_from_image(context, &volume, &args.image_id)
            .await;
        let back = match (&outcome, args.previous_status) {
            (Ok(()), VolumeStatus::Available) => VolumeTransition::FinishReimageAvailable,
            (Ok(()), VolumeStatus::Reserved) => VolumeTransition::FinishReimageReserved,
            _ => VolumeTransition::FinishReimageError,
        };
        if let Err((e, message)) = &outcome {
            tracing::warn!(volume_id = %volume.id, image_id = %args.image_id, error = %e, "reimage failed");
            if let Some((_, detail)) = message {
                self.record_message(
                    context,
                    &volume.project_id,
                    mf::RESOURCE_VOLUME,
                    volume.id.to_string(),
                    mf::REIMAGE_VOLUME,
                    *detail,
                )
                .await;
            }
        }
        match self.db.transition_volume(volume.id, back).await {
            Ok(_) | Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => Ok(()),
            Err(e) => Err(db_remote(e)),
        }
    }

    async fn rewrite_from_image(
        &self,
        context: &RequestContext,
        volume: &Volume,
        image_id: &str,
    ) -> Result<(), (String, Option<(Action, Detail)>)> {
        let failed = |e: ImageError| {
            let message = copy_message(&e);
            (e.to_string(), Some(message))
        };
        self.driver_ready().map_err(|e| (e.to_string(), None))?;
        let transfer = self.transfer().map_err(|e| (e.to_string(), None))?.clone();
        let ictx = image_context(context);
        let image = transfer
            .glance()
            .show_image(&ictx, image_id)
            .await
            .map_err(failed)?;
        let spec = volume_spec(volume);
        let size_bytes = u64::try_from(volume.size).unwrap_or(0) * GIB;
        let driver_failed = |e: DriverError| (e.to_string(), None);
        match self.rewrite_target(&spec).await.map_err(driver_failed)? {
            RewriteTarget::Device(device) => {
                transfer
                    .fetch_image_to_volume(
                        &ictx,
                        &image,
                        VolumeTarget::Path {
                            path: &device.path,
                            reads_as_zero: false,
                        },
                        size_bytes,
                    )
                    .await
                    .map_err(failed)?;
            }
            RewriteTarget::Sink(mut sink) => {
                let fetched = transfer
                    .fetch_image_to_volume(
                        &ictx,
                        &image,
                        VolumeTarget::Writer(sink.writer()),
                        size_bytes,
                    )
                    .await;
                if let Err(e) = fetched {
                    sink.abort().await;
                    return Err(failed(e));
                }
                sink.finish()
                    .await
                    .map_err(|e| (e.to_string(), Some((mf::REIMAGE_VOLUME, mf::UNKNOWN_ERROR))))?;
            }
            RewriteTarget::None => {
                return Err((
                    format!(
                        "the {} driver gives no way to rewrite a volume",
                        self.driver.driver_name()
                    ),
                    Some((mf::REIMAGE_VOLUME, mf::UNKNOWN_ERROR)),
                ));
            }
        }
        let metadata = clinker_image::metadata::volume_glance_metadata(&image);
        self.db
            .set_volume_metadata(volume.id, MetadataKind::Glance, &metadata, true)
            .await
            .map_err(|e| (format!("cannot record the image metadata: {e}"), None))?;
        Ok(())
    }

    /// At start-up: an upload a restart interrupted is over (Cinder's
    /// `init_host` puts `uploading` volumes back); the volume returns to
    /// `available` or `in-use`. The half-made image stays `queued` in
    /// Glance, as Cinder leaves it.
    pub(crate) async fn settle_uploads(&self) {
        let volumes = match self.db.volumes_on_backend(self.host()).await {
            Ok(volumes) => volumes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the backend's volumes to settle uploads");
                return;
            }
        };
        for volume in volumes
            .iter()
            .filter(|v| v.status == VolumeStatus::Downloading)
        {
            // Creates were settled from the journal before: what is still
            // downloading is an interrupted reimage.
            tracing::warn!(volume_id = %volume.id, "reimage was interrupted; the volume is in error");
            if let Err(e) = self
                .db
                .transition_volume(volume.id, VolumeTransition::FinishReimageError)
                .await
            {
                tracing::warn!(volume_id = %volume.id, error = %e, "cannot fail the interrupted reimage");
            }
        }
        for volume in volumes
            .into_iter()
            .filter(|v| v.status == VolumeStatus::Uploading)
        {
            let back = if volume.attach_status == AttachStatus::Attached {
                VolumeTransition::FinishUploadInUse
            } else {
                VolumeTransition::FinishUploadAvailable
            };
            tracing::warn!(volume_id = %volume.id, "upload to image was interrupted; restoring the volume's status");
            if let Err(e) = self.db.transition_volume(volume.id, back).await {
                tracing::warn!(volume_id = %volume.id, error = %e, "cannot restore the volume's status");
            }
        }
    }

    async fn upload(
        &self,
        ictx: &ImageContext,
        volume: &Volume,
        image_id: &str,
    ) -> Result<(), String> {
        self.driver_ready().map_err(|e| e.to_string())?;
        let transfer = self.transfer().map_err(|e| e.to_string())?;
        let image = transfer
            .glance()
            .show_image(ictx, image_id)
            .await
            .map_err(|e| e.to_string())?;
        let spec = volume_spec(volume);
        let uploaded = if let Some(device) = self
            .driver
            .local_device(&spec)
            .await
            .map_err(|e| e.to_string())?
        {
            transfer
                .upload_volume_to_image(ictx, &image, UploadData::File(device.path))
                .await
                .map_err(|e| e.to_string())?
        } else if let Some(source) = self
            .driver
            .image_source(&spec)
            .await
            .map_err(|e| e.to_string())?
        {
            let data = UploadData::Reader {
                reader: source.reader,
                length: source.length,
            };
            let sent = transfer.upload_volume_to_image(ictx, &image, data).await;
            // The reader is consumed or dropped: the producer can be
            // waited for; its failure means the data may be incomplete.
            let produced = source.finish.await;
            let uploaded = sent.map_err(|e| e.to_string())?;
            produced.map_err(|e| e.to_string())?;
            uploaded
        } else {
            return Err(format!(
                "the {} driver gives no way to read a volume's data",
                self.driver.driver_name()
            ));
        };
        tracing::info!(volume_id = %volume.id, image_id, format = uploaded.format.as_str(),
            converted = uploaded.converted, "volume uploaded to image");
        Ok(())
    }
}

/// Where a reimage writes (see [`VolumeManager::rewrite_target`]).
enum RewriteTarget {
    /// The volume's local file or device, written in place.
    Device(clinker_drivers::LocalDevice),
    /// A stream that replaces the volume's data, keeping its snapshots.
    Sink(Box<dyn ImageSink>),
    /// The driver offers neither.
    None,
}

impl VolumeManager {
    /// The volume's local path, or else the driver's overwrite stream.
    async fn rewrite_target(
        &self,
        spec: &clinker_drivers::VolumeSpec,
    ) -> Result<RewriteTarget, DriverError> {
        if let Some(device) = self.driver.local_device(spec).await? {
            return Ok(RewriteTarget::Device(device));
        }
        Ok(match self.driver.image_overwrite_sink(spec).await? {
            Some(sink) => RewriteTarget::Sink(sink),
            None => RewriteTarget::None,
        })
    }
}
