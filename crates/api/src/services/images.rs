//! What the API asks Glance itself, as Cinder's API does: the image a
//! create names (`_image_uuid_from_ref`, `check_image_metadata`) and the
//! image record upload-to-image creates (`copy_volume_to_image` in
//! `volume/api.py`). The data moves in the volume service.

use std::collections::BTreeMap;
use std::sync::Arc;

use clinker_config::Config;
use clinker_image::{GlanceClient, GlanceSettings, ImageContext, ImageError, ImageMeta};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{CopyVolumeToImageArgs, ReimageArgs};
use clinker_types::AttachStatus;
use clinker_types::model::Volume;
use clinker_types::status::{VolumeStatus, VolumeTransition};
use serde_json::{Map, Value, json};

use super::volumes::get_volume;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;

const GIB: u64 = 1 << 30;

/// The Glance client `cinder.conf` describes; `None` (logged) when it
/// cannot be built.
pub fn glance_client(config: &Config) -> Option<Arc<GlanceClient>> {
    match GlanceClient::new(GlanceSettings::from_options(&config.image)) {
        Ok(client) => Some(Arc::new(client)),
        Err(e) => {
            tracing::error!(error = %e, "no image service: image requests will fail");
            None
        }
    }
}

/// The caller's Glance credentials.
pub fn image_context(ctx: &RequestContext) -> ImageContext {
    ImageContext {
        auth_token: ctx.auth_token.as_ref().map(|t| t.secret().to_owned()),
        service_token: None,
        request_id: Some(
            ctx.global_request_id
                .clone()
                .unwrap_or_else(|| ctx.request_id.clone()),
        ),
        service_catalog: ctx.service_catalog.clone(),
    }
}

fn glance(state: &ApiState) -> Option<&Arc<GlanceClient>> {
    state.glance.as_ref()
}

/// Cinder's fault for an image error (`ImageNotFound` 404,
/// `ImageNotAuthorized` 403, `Invalid*` 400, a connection failure 503).
fn image_fault(e: &ImageError) -> ApiError {
    match e {
        ImageError::NotFound { .. } => ApiError::not_found(e.to_string()),
        ImageError::NotAuthorized { .. } => ApiError::forbidden(e.to_string()),
        ImageError::Invalid(_) | ImageError::Unacceptable { .. } => {
            ApiError::bad_request(e.to_string())
        }
        _ => ApiError::unavailable(),
    }
}

const INVALID_IMAGE_REF: &str = "Invalid image identifier or unable to access requested image.";

/// The id of the image `image_ref` names: the last path segment of an
/// image URL or id that Glance shows, else the one image of that name
/// (Cinder's `_image_uuid_from_ref`).
///
/// # Errors
/// 400 when no image matches, 409 when several images have that name.
pub async fn image_id_from_ref(
    state: &ApiState,
    ctx: &RequestContext,
    image_ref: &str,
) -> ApiResult<String> {
    let Some(glance) = glance(state) else {
        return Err(ApiError::bad_request(INVALID_IMAGE_REF));
    };
    let ictx = image_context(ctx);
    let uuid = image_ref.rsplit('/').next().unwrap_or(image_ref);
    if crate::validation::is_uuid_like(uuid)
        && let Ok(image) = glance.show_image(&ictx, uuid).await
    {
        return Ok(image.id);
    }
    match glance.images_named(&ictx, image_ref).await {
        Ok(images) if images.len() > 1 => Err(ApiError::conflict(format!(
            "Multiple matches found for '{image_ref}', use an ID to be more specific."
        ))),
        Ok(images) if images.len() == 1 => Ok(images[0].id.clone()),
        _ => Err(ApiError::bad_request(INVALID_IMAGE_REF)),
    }
}

/// The image a volume of `size` GiB is created from, checked as Cinder's
/// `check_image_metadata` does: active, its data and `min_disk` and its
/// virtual size within the volume.
///
/// # Errors
/// Cinder's 400 texts; 404 when the image went away.
pub async fn check_image_for_volume(
    state: &ApiState,
    ctx: &RequestContext,
    image_id: &str,
    size: i64,
) -> ApiResult<ImageMeta> {
    let Some(glance) = glance(state) else {
        return Err(ApiError::bad_request(INVALID_IMAGE_REF));
    };
    let image = glance
        .show_image(&image_context(ctx), image_id)
        .await
        .map_err(|e| image_fault(&e))?;
    if image.status != "active" {
        return Err(ApiError::invalid_input(format!(
            "Image {} is not active.",
            image.id
        )));
    }
    let image_gb = image.size.unwrap_or(0).div_ceil(GIB);
    if image_gb > u64::try_from(size).unwrap_or(0) {
        return Err(ApiError::invalid_input(format!(
            "Size of specified image {image_gb}GB is larger than volume size {size}GB."
        )));
    }
    if size < i64::try_from(image.min_disk).unwrap_or(i64::MAX) {
        return Err(ApiError::invalid_input(format!(
            "Volume size {size}GB cannot be smaller than the image minDisk size {}GB.",
            image.min_disk
        )));
    }
    if let Some(virtual_size) = image.virtual_size.filter(|v| *v > 0) {
        let virtual_gb = virtual_size.div_ceil(GIB);
        if virtual_gb > u64::try_from(size).unwrap_or(0) {
            return Err(ApiError::bad_request(format!(
                "Image {} is unacceptable: Image virtual size is {virtual_gb}GB and doesn't fit in a volume of size {size}GB.",
                image.id
            )));
        }
    }
    Ok(image)
}

/// `os-reimage` (3.68): moves the volume to `downloading`, checks the
/// image against it as a create does, and casts the rewrite to its
/// backend (Cinder's `volume/api.py` `reimage`).
///
/// # Errors
/// 404 for the volume or the image, 403 by policy, 409 for a volume
/// attached to several servers, 400 for its status or the image (the
/// status is restored then), 503 when the cast cannot be delivered.
pub async fn reimage(
    state: &ApiState,
    ctx: &RequestContext,
    volume_id: &str,
    image_id: &str,
    reimage_reserved: bool,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, volume_id).await?;
    let rule = if volume.status == VolumeStatus::Reserved {
        "volume:reimage_reserved"
    } else {
        "volume:reimage"
    };
    policy::enforce(ctx, rule, Some(&volume.project_id))?;
    if volume.attachments.len() > 1 {
        return Err(ApiError::conflict(
            "Cannot re-image a volume which is attached to more than one server.",
        ));
    }
    let (begin, expected) = if reimage_reserved {
        (
            VolumeTransition::BeginReimageReserved,
            "available or error or reserved",
        )
    } else {
        (VolumeTransition::BeginReimage, "available or error")
    };
    let status_error = || {
        ApiError::bad_request(format!(
            "Invalid volume: Volume {} status must be {expected}, but current status is {}.",
            volume.id, volume.status
        ))
    };
    if !begin.allows(volume.status) {
        return Err(status_error());
    }
    state
        .db
        .transition_volume(volume.id, begin)
        .await
        .map_err(|_| status_error())?;
    let restore = || async {
        let back = match volume.status {
            VolumeStatus::Available => VolumeTransition::FinishReimageAvailable,
            VolumeStatus::Reserved => VolumeTransition::FinishReimageReserved,
            _ => VolumeTransition::FinishReimageError,
        };
        if let Err(e) = state.db.transition_volume(volume.id, back).await {
            tracing::warn!(volume_id = %volume.id, error = %e, "cannot restore the volume's status");
        }
    };
    if let Err(e) = check_image_for_volume(state, ctx, image_id, volume.size).await {
        restore().await;
        return Err(e);
    }
    let args = ReimageArgs {
        volume_id: volume.id,
        image_id: image_id.to_owned(),
        previous_status: volume.status,
    };
    let host = volume.host.clone().unwrap_or_default();
    if let Err(e) = state.volume_rpc.reimage(ctx, &host, &args).await {
        tracing::error!(volume_id = %volume.id, error = %e, "cannot cast reimage");
        restore().await;
        return Err(ApiError::unavailable());
    }
    Ok(())
}

/// What `os-volume_upload_image` asks for, after schema validation.
#[derive(Clone, Debug)]
pub struct UploadRequest {
    /// `image_name`.
    pub image_name: String,
    /// `force` (honoured only with `enable_force_upload`).
    pub force: bool,
    /// `disk_format` (default `raw`).
    pub disk_format: String,
    /// `container_format` (default `bare`).
    pub container_format: String,
    /// 3.1: `visibility` (default `private`) and `protected`.
    pub visibility: Option<(String, bool)>,
}

/// Cinder's `_merge_volume_image_meta`: the volume's image metadata that
/// is not a core property and not already set becomes image properties;
/// then reserved namespaces are dropped.
fn image_fields(state: &ApiState, volume: &Volume, request: &UploadRequest) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("container_format".into(), json!(request.container_format));
    fields.insert("disk_format".into(), json!(request.disk_format));
    fields.insert("name".into(), json!(request.image_name));
    if let Some((visibility, protected)) = &request.visibility {
        fields.insert("visibility".into(), json!(visibility));
        fields.insert("protected".into(), json!(protected));
    }
    let core = &state.config.image.glance_core_properties;
    let properties: BTreeMap<String, String> = volume
        .glance_metadata
        .iter()
        .filter(|(k, _)| !core.contains(k) && !fields.contains_key(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let properties = clinker_image::metadata::filter_reserved_namespaces(
        &properties,
        &state.config.image.reserved_image_namespaces,
    );
    for (k, v) in properties {
        fields.insert(k, json!(v));
    }
    fields
}

/// `os-volume_upload_image`: moves the volume to `uploading`, creates the
/// image record in Glance and casts the copy to the volume's backend.
/// Returns Cinder's response body (inside `os-volume_upload_image`).
///
/// # Errors
/// 404 for the volume, 403 by policy, 400 for the volume's status and for
/// any Glance refusal (the status is restored then).
pub async fn upload_volume_to_image(
    state: &ApiState,
    ctx: &RequestContext,
    volume_id: &str,
    mut request: UploadRequest,
) -> ApiResult<Value> {
    let volume = get_volume(state, ctx, volume_id).await?;
    policy::enforce(
        ctx,
        "volume_extension:volume_actions:upload_image",
        Some(&volume.project_id),
    )?;
    if let Some((visibility, _)) = &request.visibility
        && visibility == "public"
    {
        policy::enforce(
            ctx,
            "volume_extension:volume_actions:upload_public",
            Some(&volume.project_id),
        )?;
    }
    if request.force && !state.config.image.enable_force_upload {
        tracing::info!(volume_id = %volume.id, "Force upload to image is disabled, Force option will be ignored.");
        request.force = false;
    }
    let (begin, expected) = match volume.status {
        VolumeStatus::InUse if request.force => {
            (VolumeTransition::BeginUploadInUse, "available or in-use")
        }
        _ if request.force => (
            VolumeTransition::BeginUploadAvailable,
            "available or in-use",
        ),
        _ => (VolumeTransition::BeginUploadAvailable, "available"),
    };
    let status_error = || {
        ApiError::bad_request(format!(
            "Invalid volume: Volume {} status must be {expected}",
            volume.id
        ))
    };
    if !begin.allows(volume.status) {
        return Err(status_error());
    }
    let volume = state
        .db
        .transition_volume(volume.id, begin)
        .await
        .map_err(|_| status_error())?;
    let restore = || async {
        let back = if volume.attach_status == AttachStatus::Attached {
            VolumeTransition::FinishUploadInUse
        } else {
            VolumeTransition::FinishUploadAvailable
        };
        if let Err(e) = state.db.transition_volume(volume.id, back).await {
            tracing::warn!(volume_id = %volume.id, error = %e, "cannot restore the volume's status");
        }
    };
    let Some(glance) = glance(state) else {
        restore().await;
        return Err(ApiError::bad_request(
            "Connection to glance failed: no image service",
        ));
    };
    let fields = image_fields(state, &volume, &request);
    let image = match glance.create_image(&image_context(ctx), &fields).await {
        Ok(image) => image,
        Err(e) => {
            restore().await;
            return Err(ApiError::bad_request(e.to_string()));
        }
    };
    if image.container_format.as_deref() == Some("compressed")
        && !state.config.image.allow_compression_on_image_upload
    {
        restore().await;
        if let Err(e) = glance.delete_image(&image_context(ctx), &image.id).await {
            tracing::warn!(image_id = %image.id, error = %e, "cannot delete the refused image");
        }
        return Err(ApiError::bad_request(
            "Image compression upload disallowed, but container_format is compressed",
        ));
    }
    let args = CopyVolumeToImageArgs {
        volume_id: volume.id,
        image_id: image.id.clone(),
    };
    let host = volume.host.clone().unwrap_or_default();
    if let Err(e) = state
        .volume_rpc
        .copy_volume_to_image(ctx, &host, &args)
        .await
    {
        tracing::error!(volume_id = %volume.id, error = %e, "cannot cast copy_volume_to_image");
        restore().await;
        let _ = glance.delete_image(&image_context(ctx), &image.id).await;
        return Err(ApiError::unavailable());
    }
    let volume_type = state
        .db
        .get_volume_type(volume.volume_type_id)
        .await
        .ok()
        .map(|t| {
            crate::views::types::volume_type(&t, ctx.is_admin, crate::views::types::TypeView::Read)
        });
    let mut response = Map::new();
    response.insert("id".into(), json!(volume.id.to_string()));
    response.insert("updated_at".into(), crate::views::time(volume.updated_at));
    response.insert("status".into(), json!("uploading"));
    response.insert(
        "display_description".into(),
        json!(volume.display_description),
    );
    response.insert("size".into(), json!(volume.size));
    response.insert("volume_type".into(), volume_type.unwrap_or(Value::Null));
    response.insert("image_id".into(), json!(image.id));
    response.insert("container_format".into(), json!(image.container_format));
    response.insert("disk_format".into(), json!(image.disk_format));
    response.insert("image_name".into(), json!(image.name));
    if let Some(protected) = image.raw.get("protected") {
        response.insert("protected".into(), protected.clone());
    }
    if let Some(visibility) = image.raw.get("visibility") {
        response.insert("visibility".into(), visibility.clone());
    }
    Ok(Value::Object(response))
}
