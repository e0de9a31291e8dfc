//! Volumes: Cinder's `volume/api.py` (`create`, `delete`, `update`,
//! `extend`, metadata) and the API-side create flow
//! (`volume/flows/api/create_volume.py`), over the database's
//! compare-and-swap operations and the RPC clients.
//!
//! Every check that can fail on user input runs before anything is
//! written; every write that must be undone when a cast cannot be
//! delivered is undone here, so a refused request leaves nothing behind.

use std::collections::BTreeMap;

use clinker_db::{DbError, DeleteOptions, DeleteStart, MetadataKind, NewVolume, VolumeUpdate};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::{ScheduleCreateVolumeArgs, ScheduleExtendVolumeArgs};
use clinker_rpc::volume::DeleteVolumeArgs;
use clinker_types::model::{Snapshot, Volume, VolumeType};
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::{AttachStatus, SnapshotStatus, VolumeId, VolumeStatus};
use serde_json::Value;

use super::{QuotaAction, lookup_error, quota_error, snapshots, types, visible};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::{self, ApiVersion};

/// Cinder's `VolumeNotFound` text.
pub fn volume_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume {id} could not be found."))
}

/// A volume the caller may see; 404 "Volume X could not be found." for
/// unknown ids, ids that are not UUIDs and other projects' volumes.
///
/// # Errors
/// 404, database failures.
pub async fn get_volume(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<Volume> {
    let Ok(volume_id) = id.parse::<VolumeId>() else {
        return Err(volume_not_found(id));
    };
    let volume = state
        .db
        .get_volume(volume_id)
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    if visible(ctx, &volume.project_id) {
        Ok(volume)
    } else {
        Err(volume_not_found(id))
    }
}

/// What a create request asks for, after schema validation.
#[derive(Clone, Debug, Default)]
pub struct CreateVolume {
    /// Requested size; inherited from a source when absent.
    pub size: Option<i64>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Type name or id.
    pub volume_type: Option<String>,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Source snapshot id.
    pub snapshot_id: Option<String>,
    /// Source volume id.
    pub source_volid: Option<String>,
    /// Requested zone.
    pub availability_zone: Option<String>,
    /// `OS-SCH-HNT:scheduler_hints`.
    pub scheduler_hints: BTreeMap<String, Value>,
    /// `consistencygroup_id`.
    pub consistencygroup_id: Option<String>,
    /// `group_id` (3.13).
    pub group_id: Option<String>,
    /// `imageRef` / `image_id`.
    pub image_ref: Option<String>,
    /// `backup_id` (3.47).
    pub backup_id: Option<String>,
    /// The removed `multiattach` flag.
    pub multiattach: bool,
}

const MIN_SIZE_KEY: &str = "provisioning:min_vol_size";
const MAX_SIZE_KEY: &str = "provisioning:max_vol_size";

/// Cinder's `provision_filter_on_size`.
fn provision_filter_on_size(volume_type: &VolumeType, size: i64) -> ApiResult<()> {
    let limit = |key: &str| {
        volume_type
            .extra_specs
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| (v.clone(), v.trim().parse::<i64>().ok()))
    };
    if let Some((text, min)) = limit(MIN_SIZE_KEY)
        && min.is_some_and(|min| size < min)
    {
        return Err(ApiError::invalid_input(format!(
            "Specified volume size of '{size}' is less than the minimum required size of '{text}' for volume type '{}'.",
            volume_type.name
        )));
    }
    if let Some((text, max)) = limit(MAX_SIZE_KEY)
        && max.is_some_and(|max| size > max)
    {
        return Err(ApiError::invalid_input(format!(
            "Specified volume size of '{size}' is greater than the maximum allowable size of '{text}' for volume type '{}'.",
            volume_type.name
        )));
    }
    Ok(())
}

/// The zones a type restricts volumes to (`RESKEY:availability_zones`).
fn type_zones(volume_type: &VolumeType) -> Option<Vec<String>> {
    volume_type
        .extra_specs
        .get("RESKEY:availability_zones")
        .map(|zones| {
            zones
                .split(',')
                .filter(|z| !z.is_empty())
                .map(|z| z.trim().to_owned())
                .collect()
        })
}

fn py_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| crate::validation::py_str_repr(s))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// Cinder's `_extract_availability_zones`: the zone the volume goes to, and
/// the zones the scheduler may use.
async fn choose_zone(
    state: &ApiState,
    requested: Option<String>,
    snapshot_volume: Option<&Volume>,
    source: Option<&Volume>,
    volume_type: &VolumeType,
) -> ApiResult<(Option<String>, Vec<String>)> {
    let defaults = &state.config.default;
    let mut known: Vec<String> = super::availability_zones(state)
        .await?
        .into_iter()
        .map(|(zone, _)| zone)
        .collect();
    if !known.contains(&defaults.storage_availability_zone) {
        known.push(defaults.storage_availability_zone.clone());
    }
    let restricted = type_zones(volume_type);
    let safe: Vec<String> = match &restricted {
        Some(zones) => {
            let safe: Vec<String> = zones
                .iter()
                .filter(|z| known.contains(z))
                .cloned()
                .collect();
            if safe.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "Volume type is only supported in these availability zones: {}",
                    py_list(zones)
                )));
            }
            safe
        }
        None => known,
    };
    let mut zone = requested;
    if zone.is_none() {
        zone = snapshot_volume
            .or(source)
            .map(|v| v.availability_zone.clone());
    }
    if zone.is_none() && restricted.is_none() {
        zone = Some(defaults.default_availability_zone.clone());
    }
    if let Some(z) = &zone
        && !safe.contains(z)
    {
        if defaults.allow_availability_zone_fallback {
            zone = Some(defaults.default_availability_zone.clone());
        } else {
            return Err(ApiError::bad_request(format!(
                "Availability zone '{z}' is invalid."
            )));
        }
    }
    // cloned_volume_same_az (default True).
    if let Some(z) = &zone {
        if snapshot_volume.is_some_and(|v| v.availability_zone != *z) {
            return Err(ApiError::invalid_input(
                "Volume must be in the same availability zone as the snapshot",
            ));
        }
        if source.is_some_and(|v| v.availability_zone != *z) {
            return Err(ApiError::invalid_input(
                "Volume must be in the same availability zone as the source volume",
            ));
        }
    }
    Ok(match zone {
        Some(z) => (Some(z.clone()), vec![z]),
        None => (None, safe),
    })
}

/// Creates a volume: validates, writes the `creating` row (quota and
/// journal in the same transaction) and casts it to the scheduler. If the
/// cast cannot be delivered the row is removed again and 503 answered.
///
/// # Errors
/// Cinder's 400/404/413 texts; 503 when no scheduler consumes.
pub async fn create_volume(
    state: &ApiState,
    ctx: &RequestContext,
    request: CreateVolume,
) -> ApiResult<Volume> {
    // Look-ups, in the order Cinder's controller makes them.
    let requested_type = match request.volume_type.as_deref() {
        Some(t) if !t.is_empty() => Some(types::find_type(state, ctx, t).await?),
        _ => None,
    };
    let snapshot: Option<Snapshot> = match &request.snapshot_id {
        Some(id) => Some(snapshots::get_snapshot(state, ctx, id).await?),
        None => None,
    };
    let source = match &request.source_volid {
        Some(id) => Some(get_volume(state, ctx, id).await?),
        None => None,
    };
    if let Some(group) = request
        .consistencygroup_id
        .as_ref()
        .or(request.group_id.as_ref())
    {
        // Groups are not served by this build, so no group can exist.
        return Err(ApiError::not_found(format!(
            "Group {group} could not be found."
        )));
    }
    if request.image_ref.is_some() {
        // Without an image service Cinder's look-up fails like this.
        return Err(ApiError::bad_request(
            "Invalid image identifier or unable to access requested image.",
        ));
    }
    if let Some(backup) = request.backup_id.as_ref().filter(|b| !b.is_empty()) {
        // No backup service, hence no backups.
        return Err(ApiError::not_found(format!(
            "Backup {backup} could not be found."
        )));
    }
    if request.multiattach {
        return Err(ApiError::bad_request(
            "multiattach parameter has been removed. The default behavior is to use multiattach enabled volume types. Contact your administrator to create a multiattach enabled volume type and use it to create multiattach volumes.",
        ));
    }
    if snapshot.is_some() && source.is_some() {
        return Err(ApiError::invalid_input(
            "May specify only one of backup, imageRef, snapshot, source volume",
        ));
    }
    if let Some(s) = &snapshot
        && s.status != SnapshotStatus::Available
    {
        return Err(ApiError::invalid_state(
            "Invalid snapshot: Originating snapshot status must be one of 'available' values",
        ));
    }
    if let Some(v) = &source
        && !matches!(v.status, VolumeStatus::Available | VolumeStatus::InUse)
    {
        return Err(ApiError::invalid_state(
            "Invalid volume: Originating source volume status must be one of 'available, in-use' values",
        ));
    }

    let size = match (request.size, &source, &snapshot) {
        (Some(size), _, _) => size,
        (None, Some(v), _) => v.size,
        (None, None, Some(s)) => s.volume_size,
        (None, None, None) => {
            return Err(ApiError::invalid_input(
                "Volume size 'None' must be an integer and greater than 0",
            ));
        }
    };
    if size <= 0 {
        return Err(ApiError::invalid_input(format!(
            "Volume size '{size}' must be an integer and greater than 0"
        )));
    }
    if let Some(v) = &source
        && size < v.size
    {
        return Err(ApiError::invalid_input(format!(
            "Volume size '{size}'GB cannot be smaller than original volume size  {}GB. They must be >= original volume size.",
            v.size
        )));
    }
    if let (None, Some(s)) = (&source, &snapshot)
        && size < s.volume_size
    {
        return Err(ApiError::invalid_input(format!(
            "Volume size '{size}'GB cannot be smaller than the snapshot size {}GB. They must be >= original snapshot size.",
            s.volume_size
        )));
    }

    let snapshot_volume = match &snapshot {
        Some(s) => Some(
            state
                .db
                .get_volume(s.volume_id)
                .await
                .map_err(|e| lookup_error(e, || volume_not_found(&s.volume_id.to_string())))?,
        ),
        None => None,
    };
    let volume_type = match requested_type {
        Some(t) => t,
        None => {
            let inherited = source
                .as_ref()
                .map(|v| v.volume_type_id)
                .or(snapshot.as_ref().map(|s| s.volume_type_id));
            match inherited {
                Some(id) => state.db.get_volume_type(id).await.map_err(|e| {
                    lookup_error(e, || {
                        ApiError::not_found(format!("Volume type {id} could not be found."))
                    })
                })?,
                None => types::default_type(state).await?,
            }
        }
    };
    provision_filter_on_size(&volume_type, size)?;
    let (zone, zones) = choose_zone(
        state,
        request.availability_zone.clone(),
        snapshot_volume.as_ref(),
        source.as_ref(),
        &volume_type,
    )
    .await?;

    let origin = source.as_ref().or(snapshot_volume.as_ref());
    let new = NewVolume {
        id: VolumeId::new_random(),
        user_id: ctx.user_id.clone(),
        project_id: ctx.project_id.clone(),
        size,
        availability_zone: zone
            .clone()
            .unwrap_or_else(|| state.config.default.default_availability_zone.clone()),
        display_name: request.name,
        display_description: request.description,
        volume_type_id: volume_type.id,
        volume_type_name: volume_type.name.clone(),
        snapshot_id: snapshot.as_ref().map(|s| s.id),
        source_volid: source.as_ref().map(|v| v.id),
        multiattach: volume_type.is_multiattach(),
        bootable: origin.is_some_and(|v| v.bootable),
        group_id: None,
        use_quota: true,
        metadata: request.metadata,
        glance_metadata: origin
            .map(|v| v.glance_metadata.clone())
            .unwrap_or_default(),
    };
    let volume = state.db.create_volume(new).await.map_err(|e| match e {
        DbError::OverQuota(over) => quota_error(&over, QuotaAction::CreateVolume { size }),
        other => other.into(),
    })?;

    // Creating from a snapshot or a clone must stay on the source's backend.
    let resource_backend = snapshot_volume
        .as_ref()
        .or(source.as_ref())
        .and_then(|v| v.cluster_name.clone().or_else(|| v.host.clone()));
    let spec = RequestSpec {
        volume_id: volume.id,
        size,
        availability_zone: zone,
        availability_zones: zones,
        volume_type: TypeSpec {
            id: Some(volume_type.id),
            name: Some(volume_type.name.clone()),
            extra_specs: volume_type.extra_specs.clone(),
        },
        snapshot_id: volume.snapshot_id,
        source_volid: volume.source_volid,
        resource_backend,
        project_id: ctx.project_id.clone(),
        scheduler_hints: request.scheduler_hints,
    };
    let args = ScheduleCreateVolumeArgs {
        request_spec: spec,
        filter_properties: FilterProperties::default(),
    };
    if let Err(err) = state.scheduler_rpc.create_volume(ctx, &args).await {
        tracing::error!(volume_id = %volume.id, error = %err, "cannot cast create_volume to the scheduler; removing the volume");
        if let Err(undo) = state
            .db
            .begin_volume_delete(volume.id, DeleteOptions::default())
            .await
        {
            tracing::error!(volume_id = %volume.id, error = %undo, "cannot remove the undispatched volume");
        }
        return Err(ApiError::unavailable());
    }
    Ok(volume)
}

/// Fields of `PUT /volumes/{id}`.
#[derive(Clone, Debug, Default)]
pub struct UpdateVolume {
    /// New name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New description.
    pub description: Option<Option<String>>,
    /// Replaces the user metadata.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Updates name, description and metadata.
///
/// # Errors
/// 404, 400 during maintenance.
pub async fn update_volume(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    update: UpdateVolume,
) -> ApiResult<Volume> {
    let volume = get_volume(state, ctx, id).await?;
    if volume.status == VolumeStatus::Maintenance {
        return Err(ApiError::invalid_state(
            "Invalid volume: The volume cannot be updated during maintenance.",
        ));
    }
    if let Some(metadata) = &update.metadata {
        state
            .db
            .set_volume_metadata(volume.id, MetadataKind::User, metadata, true)
            .await
            .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    }
    if update.name.is_some() || update.description.is_some() {
        state
            .db
            .update_volume(
                volume.id,
                VolumeUpdate {
                    display_name: update.name,
                    display_description: update.description,
                    bootable: None,
                },
            )
            .await
            .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    }
    state
        .db
        .get_volume(volume.id)
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))
}

fn delete_refused(force: bool) -> ApiError {
    let status = if force {
        String::new()
    } else {
        "status must be available or error or error_restoring or error_extending or error_managing and"
            .to_owned()
    };
    ApiError::invalid_state(format!(
        "Invalid volume: Volume {status} must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."
    ))
}

/// Deletes a volume (Cinder's `delete`): a volume never placed goes at
/// once; otherwise it becomes `deleting` with its journal row and the
/// delete is cast to its backend. A volume already `deleting` is accepted
/// again and re-cast. If the backend cannot be reached the journal row
/// makes the volume service resume the delete, so the request still
/// succeeds.
///
/// # Errors
/// 404, 400 with Cinder's text when the volume may not be deleted.
pub async fn delete_volume(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    force: bool,
    cascade: bool,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, id).await?;
    let outcome = state
        .db
        .begin_volume_delete(volume.id, DeleteOptions { force, cascade })
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => delete_refused(force),
            other => lookup_error(other, || volume_not_found(id)),
        })?;
    let started = match outcome {
        DeleteStart::DeletedWithoutBackend(_) => return Ok(()),
        DeleteStart::Started(v) | DeleteStart::AlreadyDeleting(v) => v,
    };
    let Some(host) = started.host.clone() else {
        return Ok(());
    };
    let args = DeleteVolumeArgs {
        volume_id: started.id,
        cascade,
    };
    if let Err(err) = state.volume_rpc.delete_volume(ctx, &host, &args).await {
        tracing::warn!(volume_id = %started.id, host = %host, error = %err,
            "cannot cast delete_volume; the volume service resumes it from the journal");
    }
    Ok(())
}

/// The user metadata of a volume.
///
/// # Errors
/// 404.
pub async fn get_metadata(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<BTreeMap<String, String>> {
    Ok(get_volume(state, ctx, id).await?.metadata)
}

/// Merges (`replace = false`) or replaces user metadata.
///
/// # Errors
/// 404, 400 while in maintenance or uploading.
pub async fn set_metadata(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    metadata: &BTreeMap<String, String>,
    replace: bool,
) -> ApiResult<BTreeMap<String, String>> {
    let volume = get_volume(state, ctx, id).await?;
    if matches!(
        volume.status,
        VolumeStatus::Maintenance | VolumeStatus::Uploading
    ) {
        return Err(ApiError::invalid_state(format!(
            "Invalid volume: Updating volume metadata is not allowed for volumes in {} status.",
            volume.status
        )));
    }
    state
        .db
        .set_volume_metadata(volume.id, MetadataKind::User, metadata, replace)
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))
}

/// Deletes one user metadata key.
///
/// # Errors
/// 404 for the volume or the key, 400 while in maintenance or uploading.
pub async fn delete_metadata(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    key: &str,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, id).await?;
    let missing = || ApiError::not_found(format!("Volume {id} has no metadata with key {key}."));
    if !volume.metadata.contains_key(key) {
        return Err(missing());
    }
    if matches!(
        volume.status,
        VolumeStatus::Maintenance | VolumeStatus::Uploading
    ) {
        return Err(ApiError::invalid_state(format!(
            "Invalid volume: Deleting volume metadata is not allowed for volumes in {} status.",
            volume.status
        )));
    }
    state
        .db
        .delete_volume_metadata(volume.id, MetadataKind::User, key)
        .await
        .map_err(|e| lookup_error(e, missing))
}

/// `os-extend`: checks the size, the status, the per-volume limit and the
/// gigabytes quota, moves the volume to `extending` (quota charged and the
/// new size journaled in one transaction) and casts to the scheduler. If the
/// cast cannot be delivered the extend is aborted and 503 answered.
///
/// # Errors
/// Cinder's 400/413 texts, 503.
pub async fn extend_volume(
    state: &ApiState,
    ctx: &RequestContext,
    version: ApiVersion,
    id: &str,
    new_size: i64,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, id).await?;
    let attached =
        version.matches(microversion::VOLUME_EXTEND_INUSE) && volume.status == VolumeStatus::InUse;
    if new_size <= volume.size {
        return Err(ApiError::invalid_input(format!(
            "New size for extend must be greater than current size. (current: {}, extended: {new_size}).",
            volume.size
        )));
    }
    let volume_type = state.db.get_volume_type(volume.volume_type_id).await.ok();
    if let Some(t) = &volume_type {
        provision_filter_on_size(t, new_size)?;
    }
    let expected = if attached { "in-use" } else { "available" };
    let status_refused = |status: VolumeStatus| {
        ApiError::invalid_state(format!(
            "Invalid volume: Volume {} status must be '{{'status': '{expected}'}}' to extend, currently {status}.",
            volume.id
        ))
    };
    let expected_status = if attached {
        VolumeStatus::InUse
    } else {
        VolumeStatus::Available
    };
    if volume.status != expected_status {
        return Err(status_refused(volume.status));
    }
    let limits = state
        .db
        .quota_limits(&volume.project_id)
        .await
        .map_err(ApiError::from)?;
    if let Some(limit) = limits.get("per_volume_gigabytes").copied()
        && limit >= 0
        && new_size > limit
    {
        return Err(ApiError::over_quota(format!(
            "VolumeSizeExceedsLimit: Requested volume size {new_size}G is larger than maximum allowed limit {limit}G."
        )));
    }
    let delta = new_size - volume.size;
    state
        .db
        .begin_volume_extend(volume.id, new_size, attached)
        .await
        .map_err(|e| match e {
            DbError::OverQuota(over) => quota_error(&over, QuotaAction::Extend { delta }),
            DbError::InvalidState(_) => status_refused(volume.status),
            other => lookup_error(other, || volume_not_found(id)),
        })?;
    let args = ScheduleExtendVolumeArgs {
        volume_id: volume.id,
        new_size,
    };
    if let Err(err) = state.scheduler_rpc.extend_volume(ctx, &args).await {
        tracing::error!(volume_id = %volume.id, error = %err, "cannot cast extend_volume to the scheduler; aborting the extend");
        if let Err(undo) = state.db.abort_volume_extend(volume.id, new_size).await {
            tracing::error!(volume_id = %volume.id, error = %undo, "cannot abort the undispatched extend");
        }
        return Err(ApiError::unavailable());
    }
    Ok(())
}

/// `os-set_bootable`.
///
/// # Errors
/// 404, 400 during maintenance.
pub async fn set_bootable(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    bootable: bool,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, id).await?;
    if volume.status == VolumeStatus::Maintenance {
        return Err(ApiError::invalid_state(
            "Invalid volume: The volume cannot be updated during maintenance.",
        ));
    }
    state
        .db
        .update_volume(
            volume.id,
            VolumeUpdate {
                bootable: Some(bootable),
                ..VolumeUpdate::default()
            },
        )
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    Ok(())
}

/// `os-update_readonly_flag`: the `readonly` admin metadata of an
/// `available` volume.
///
/// # Errors
/// 404, 400 unless available.
pub async fn update_readonly_flag(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    readonly: bool,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, id).await?;
    if volume.status != VolumeStatus::Available {
        return Err(ApiError::invalid_state(format!(
            "Invalid volume: Volume {} status must be available to update readonly flag, but current status is: {}.",
            volume.id, volume.status
        )));
    }
    let flag = if readonly { "True" } else { "False" };
    let metadata = BTreeMap::from([("readonly".to_owned(), flag.to_owned())]);
    state
        .db
        .set_volume_metadata(volume.id, MetadataKind::Admin, &metadata, false)
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    Ok(())
}

/// What `os-reset_status` asks for (lowercased, validated).
#[derive(Clone, Debug, Default)]
pub struct ResetStatus {
    /// New status.
    pub status: Option<VolumeStatus>,
    /// New attach status.
    pub attach_status: Option<AttachStatus>,
    /// New migration status (`Some(None)` for `none`).
    pub migration_status: Option<Option<String>>,
}

/// `os-reset_status` (admin): sets the statuses without the usual checks.
///
/// # Errors
/// 404, 400 for `deleting` or `in-use` without attachments.
pub async fn reset_status(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    reset: ResetStatus,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, id).await?;
    require_admin(ctx)?;
    if reset.status == Some(VolumeStatus::Deleting) {
        return Err(ApiError::bad_request("Cannot reset-state to deleting"));
    }
    if reset.status == Some(VolumeStatus::InUse) && volume.attachments.is_empty() {
        return Err(ApiError::bad_request(
            "Cannot reset-state to in-use because volume does not have any attachments.",
        ));
    }
    state
        .db
        .reset_volume_status(
            volume.id,
            reset.status,
            reset.attach_status,
            reset.migration_status,
        )
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    Ok(())
}

/// `os-force_delete` (admin).
///
/// # Errors
/// 404, 400.
pub async fn force_delete(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<()> {
    get_volume(state, ctx, id).await?;
    require_admin(ctx)?;
    delete_volume(state, ctx, id, true, false).await
}

/// Policy stand-in until policies arrive: admin-only operations.
pub(crate) fn require_admin(ctx: &RequestContext) -> ApiResult<()> {
    if ctx.is_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "Policy doesn't allow this operation to be performed.",
        ))
    }
}
