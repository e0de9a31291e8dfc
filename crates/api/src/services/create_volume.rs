//! The API side of a volume create (Cinder's
//! `volume/flows/api/create_volume.py` and the controller's look-ups):
//! sources, size, type, zone, the `creating` row with its quota and
//! journal, and the cast to the scheduler — undone when the cast cannot be
//! delivered.

use std::collections::BTreeMap;

use clinker_db::{DbError, DeleteOptions, NewVolume};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleCreateVolumeArgs;
use clinker_types::backup::BackupStatus;
use clinker_types::model::{Snapshot, Volume, VolumeType};
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::{SnapshotStatus, VolumeId, VolumeStatus};
use serde_json::Value;

use super::volumes::{get_volume, provision_filter_on_size, volume_not_found};
use super::{QuotaAction, groups, images, lookup_error, quota_error, snapshots, types};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;

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
    let restricted = type_zones(volume_type);
    // Every zone this create may be checked against: one the cached list
    // lacks makes the list be read again.
    let wanted: Vec<&str> = requested
        .iter()
        .chain(restricted.iter().flatten())
        .map(String::as_str)
        .chain(
            snapshot_volume
                .iter()
                .chain(source.iter())
                .map(|v| v.availability_zone.as_str()),
        )
        .collect();
    let known = state.zones.known(state, &wanted).await?;
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
        Some(t) if !t.is_empty() => Some(types::find_type::<VolumeType>(state, ctx, t).await?),
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
    // Cinder looks a consistency group id up as a group too; `group_id`
    // wins when both are given.
    let mut group = None;
    for id in [&request.consistencygroup_id, &request.group_id]
        .into_iter()
        .flatten()
    {
        group = Some(groups::get_group(state, ctx, id).await?);
    }
    let image_id = match &request.image_ref {
        Some(image_ref) => Some(images::image_id_from_ref(state, ctx, image_ref).await?),
        None => None,
    };
    // Cinder's controller reads `backup_id` at every version (the 3.47
    // schema only validates it as a UUID); an empty one means none.
    let backup = match request.backup_id.as_deref().filter(|b| !b.is_empty()) {
        Some(id) => Some(super::backups::get_backup(state, ctx, id).await?),
        None => None,
    };
    if request.multiattach {
        return Err(ApiError::bad_request(
            "multiattach parameter has been removed. The default behavior is to use multiattach enabled volume types. Contact your administrator to create a multiattach enabled volume type and use it to create multiattach volumes.",
        ));
    }
    // Cinder's controller looks the sources up first; `volume_api.create`
    // then authorizes before its own checks.
    policy::enforce(ctx, "volume:create", None)?;
    if [
        snapshot.is_some(),
        source.is_some(),
        image_id.is_some(),
        backup.is_some(),
    ]
    .iter()
    .filter(|given| **given)
    .count()
        > 1
    {
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

    if let Some(b) = &backup
        && b.status != BackupStatus::Available
    {
        return Err(ApiError::invalid_state(
            "Invalid backup: Originating backup status must be one of 'available' values",
        ));
    }

    let size = match (request.size, &source, &snapshot, &backup) {
        (Some(size), ..) => size,
        (None, Some(v), _, _) => v.size,
        (None, None, Some(s), _) => s.volume_size,
        (None, None, None, Some(b)) => b.size,
        (None, None, None, None) => {
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

    if let Some(b) = &backup
        && size < b.size
    {
        return Err(ApiError::invalid_input(format!(
            "Volume size {size}GB cannot be smaller than the backup size {}GB. It must be >= backup size.",
            b.size
        )));
    }

    // Cinder's `_get_image_metadata`: the image is shown again and checked
    // against the size.
    let image = match &image_id {
        Some(id) => Some(images::check_image_for_volume(state, ctx, id, size).await?),
        None => None,
    };

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
            // An image may name its volume type (`cinder_img_volume_type`);
            // one that does not exist falls back to the default.
            let from_image = match image
                .as_ref()
                .and_then(|i| i.properties.get("cinder_img_volume_type"))
                .and_then(Value::as_str)
            {
                Some(name) if inherited.is_none() => {
                    match types::find_type::<VolumeType>(state, ctx, name).await {
                        Ok(t) => Some(t),
                        Err(_) => {
                            tracing::warn!(
                                volume_type = name,
                                "the image's cinder_img_volume_type does not exist; using the default type"
                            );
                            None
                        }
                    }
                }
                _ => None,
            };
            match (inherited, from_image) {
                (_, Some(t)) => t,
                (Some(id), None) => state.db.get_volume_type(id).await.map_err(|e| {
                    lookup_error(e, || {
                        ApiError::not_found(format!("Volume type {id} could not be found."))
                    })
                })?,
                (None, None) => super::default_types::default_type_for(state, ctx).await?,
            }
        }
    };
    provision_filter_on_size(&volume_type, size)?;
    if volume_type.is_multiattach() {
        policy::enforce(ctx, "volume:multiattach", None)?;
    }
    let group_backend = match &group {
        Some(g) => Some(groups::check_volume_for_group(
            g,
            request.volume_type.as_deref().filter(|t| !t.is_empty()),
            &volume_type,
            snapshot_volume.as_ref().or(source.as_ref()),
        )?),
        None => None,
    };
    // A volume of a group is created in the group's zone.
    let requested_zone = match &group {
        Some(g) => Some(g.availability_zone.clone()),
        None => request.availability_zone.clone(),
    };
    let (zone, zones) = choose_zone(
        state,
        requested_zone,
        snapshot_volume.as_ref(),
        source.as_ref(),
        &volume_type,
    )
    .await?;

    let origin = source.as_ref().or(snapshot_volume.as_ref());
    let volume_id = VolumeId::new_random();
    // Creating from a snapshot or a clone must stay on the source's backend.
    let resource_backend = snapshot_volume
        .as_ref()
        .or(source.as_ref())
        .and_then(|v| v.cluster_name.clone().or_else(|| v.host.clone()))
        // A volume of a group lives on the group's backend (any pool).
        .or(group_backend);
    let spec = RequestSpec {
        volume_id,
        size,
        availability_zone: zone.clone(),
        availability_zones: zones,
        volume_type: TypeSpec {
            id: Some(volume_type.id),
            name: Some(volume_type.name.clone()),
            extra_specs: volume_type.extra_specs.clone(),
        },
        snapshot_id: snapshot.as_ref().map(|s| s.id),
        source_volid: source.as_ref().map(|v| v.id),
        image_id,
        backup_id: backup.as_ref().map(|b| b.id),
        resource_backend,
        project_id: ctx.project_id.clone(),
        scheduler_hints: request.scheduler_hints,
    };
    let new = NewVolume {
        id: volume_id,
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
        snapshot_id: spec.snapshot_id,
        source_volid: spec.source_volid,
        multiattach: volume_type.is_multiattach(),
        bootable: origin.is_some_and(|v| v.bootable),
        group_id: group.as_ref().map(|g| g.id.to_string()),
        use_quota: true,
        metadata: request.metadata,
        glance_metadata: origin
            .map(|v| v.glance_metadata.clone())
            .unwrap_or_default(),
        request_spec: Some(spec.clone()),
    };
    let volume = state.db.create_volume(new).await.map_err(|e| match e {
        DbError::OverQuota(over) => quota_error(&over, QuotaAction::CreateVolume { size }),
        other => other.into(),
    })?;

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
