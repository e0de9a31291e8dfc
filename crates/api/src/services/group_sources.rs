//! `create-from-src` (3.14): a new group made from a group snapshot or
//! from another group (Cinder's `group/api.py` `create_from_src`), each
//! member volume created through the ordinary create path.

use clinker_db::{DbError, FilterValue, NewGroup, NewVolume, SnapshotColumn, SnapshotQuery};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleCreateVolumeArgs;
use clinker_types::group::Group;
use clinker_types::model::{Snapshot, Volume, VolumeType};
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::{GroupId, SnapshotStatus, VolumeId, VolumeStatus, VolumeTypeId};

use super::group_snapshots::get_group_snapshot;
use super::groups::{
    check_not_cgsnapshot_type, get_group, group_limit_exceeded, group_volumes, invalid_group,
    py_tuple_of,
};
use super::{QuotaAction, lookup_error, quota_error};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy::enforce;

struct SourcedVolume {
    new: NewVolume,
    spec: RequestSpec,
}

fn sourced_volume(
    ctx: &RequestContext,
    group: GroupId,
    zone: &str,
    volume_type: &VolumeType,
    size: i64,
    origin: &Volume,
    snapshot: Option<&Snapshot>,
) -> SourcedVolume {
    let mut new = NewVolume {
        id: VolumeId::new_random(),
        user_id: ctx.user_id.clone(),
        project_id: ctx.project_id.clone(),
        size,
        availability_zone: zone.to_owned(),
        display_name: None,
        display_description: None,
        volume_type_id: volume_type.id,
        volume_type_name: volume_type.name.clone(),
        snapshot_id: snapshot.map(|s| s.id),
        source_volid: if snapshot.is_none() {
            Some(origin.id)
        } else {
            None
        },
        multiattach: volume_type.is_multiattach(),
        bootable: origin.bootable,
        group_id: Some(group.to_string()),
        use_quota: true,
        metadata: Default::default(),
        glance_metadata: origin.glance_metadata.clone(),
        request_spec: None,
    };
    let spec = RequestSpec {
        volume_id: new.id,
        size,
        availability_zone: Some(zone.to_owned()),
        availability_zones: vec![zone.to_owned()],
        volume_type: TypeSpec {
            id: Some(volume_type.id),
            name: Some(volume_type.name.clone()),
            extra_specs: volume_type.extra_specs.clone(),
        },
        snapshot_id: new.snapshot_id,
        source_volid: new.source_volid,
        // A copy of a snapshot or a clone stays with its source, which is
        // on the source group's backend: the new group's.
        image_id: None,
        backup_id: None,
        resource_backend: snapshot
            .and_then(|s| s.host.clone())
            .or_else(|| origin.host.clone()),
        project_id: ctx.project_id.clone(),
        scheduler_hints: Default::default(),
    };
    new.request_spec = Some(spec.clone());
    SourcedVolume { new, spec }
}

async fn volume_type_of(state: &ApiState, id: VolumeTypeId) -> ApiResult<VolumeType> {
    state.db.get_volume_type(id).await.map_err(|e| {
        lookup_error(e, || {
            ApiError::not_found(format!("Volume type {id} could not be found."))
        })
    })
}

/// `create-from-src` (3.14): a new group on the source's backend, with one
/// volume per snapshot of the group snapshot (or per volume of the source
/// group), each created through the ordinary create path — placed by the
/// scheduler on that backend and made by the driver from its snapshot or
/// source volume. The group becomes available when its last volume does.
///
/// # Errors
/// Cinder's 400/404/413 texts; 503 when no scheduler consumes.
pub async fn create_group_from_source(
    state: &ApiState,
    ctx: &RequestContext,
    name: Option<String>,
    description: Option<String>,
    group_snapshot_id: Option<String>,
    source_group_id: Option<String>,
) -> ApiResult<Group> {
    // The source first: its look-up failures (404) come before policy,
    // as in Cinder's controller.
    let (source_group, group_snapshot) = match (&group_snapshot_id, &source_group_id) {
        (Some(gs), _) => {
            let group_snapshot = get_group_snapshot(state, ctx, gs).await?;
            check_not_cgsnapshot_type(&group_snapshot.group_type_id.to_string(), false)?;
            let source = get_group(state, ctx, &group_snapshot.group_id.to_string()).await?;
            (source, Some(group_snapshot))
        }
        (None, Some(g)) => {
            let source = get_group(state, ctx, g).await?;
            check_not_cgsnapshot_type(&source.group_type_id.to_string(), false)?;
            (source, None)
        }
        (None, None) => return Err(ApiError::bad_request("Malformed request body")),
    };
    enforce(ctx, "group:create", Some(&ctx.project_id))?;
    let group_id = GroupId::new_random();
    let zone = source_group.availability_zone.clone();
    let mut members: Vec<SourcedVolume> = Vec::new();
    match &group_snapshot {
        Some(gs) => {
            let snapshots = state
                .db
                .list_snapshots(&SnapshotQuery {
                    filters: vec![(
                        SnapshotColumn::GroupSnapshotId,
                        FilterValue::Eq(gs.id.to_string()),
                    )],
                    ..SnapshotQuery::default()
                })
                .await
                .map_err(ApiError::from)?;
            if snapshots.is_empty() {
                return Err(invalid_group(
                    "Group snapshot is empty. No group will be created.",
                ));
            }
            for snapshot in &snapshots {
                if snapshot.status != SnapshotStatus::Available {
                    return Err(invalid_group(format!(
                        "Cannot create group {group_id} because snapshot {} is not in a valid state. Valid states are: {}.",
                        snapshot.id,
                        py_tuple_of(&["available"])
                    )));
                }
                let origin = state.db.get_volume(snapshot.volume_id).await.map_err(|e| {
                    lookup_error(e, || {
                        ApiError::not_found(format!(
                            "Volume {} could not be found.",
                            snapshot.volume_id
                        ))
                    })
                })?;
                let volume_type = volume_type_of(state, snapshot.volume_type_id).await?;
                members.push(sourced_volume(
                    ctx,
                    group_id,
                    &zone,
                    &volume_type,
                    snapshot.volume_size,
                    &origin,
                    Some(snapshot),
                ));
            }
        }
        None => {
            let volumes = group_volumes(state, source_group.id).await?;
            if volumes.is_empty() {
                return Err(invalid_group(
                    "Source Group is empty. No group will be created.",
                ));
            }
            for volume in &volumes {
                if !matches!(volume.status, VolumeStatus::Available | VolumeStatus::InUse) {
                    return Err(invalid_group(format!(
                        "Cannot create group {group_id} because source volume {} is not in a valid state. Valid states are: {}.",
                        volume.id,
                        py_tuple_of(&["available", "in-use"])
                    )));
                }
                let volume_type = volume_type_of(state, volume.volume_type_id).await?;
                members.push(sourced_volume(
                    ctx,
                    group_id,
                    &zone,
                    &volume_type,
                    volume.size,
                    volume,
                    None,
                ));
            }
        }
    }
    let Some(host) = source_group.host.clone() else {
        return Err(invalid_group(format!(
            "No valid host to create group {group_id}."
        )));
    };
    let new = NewGroup {
        id: group_id,
        user_id: ctx.user_id.clone(),
        project_id: ctx.project_id.clone(),
        availability_zone: zone,
        display_name: name,
        display_description: description,
        group_type_id: source_group.group_type_id,
        volume_type_ids: source_group.volume_type_ids.clone(),
        host: Some(host),
        group_snapshot_id: group_snapshot.as_ref().map(|g| g.id),
        source_group_id: group_snapshot.is_none().then_some(source_group.id),
    };
    let volumes: Vec<NewVolume> = members.iter().map(|m| m.new.clone()).collect();
    let group = state
        .db
        .create_group_from_source(new, volumes)
        .await
        .map_err(|e| match e {
            DbError::OverQuota(over) if over.resource == "groups" => {
                group_limit_exceeded(over.limit)
            }
            DbError::OverQuota(over) => quota_error(
                &over,
                QuotaAction::CreateVolume {
                    size: over.requested,
                },
            ),
            other => other.into(),
        })?;
    for (index, member) in members.into_iter().enumerate() {
        let args = ScheduleCreateVolumeArgs {
            request_spec: member.spec,
            filter_properties: FilterProperties::default(),
        };
        if let Err(err) = state.scheduler_rpc.create_volume(ctx, &args).await {
            if index == 0 {
                tracing::error!(group_id = %group.id, error = %err,
                    "cannot cast the group's volume creates to the scheduler; removing the group");
                if let Err(undo) = state.db.discard_group_create(group.id).await {
                    tracing::error!(group_id = %group.id, error = %undo, "cannot remove the undispatched group");
                }
                return Err(ApiError::unavailable());
            }
            // Some creates were dispatched: the rest are in the journal,
            // and the scheduler places creates nobody placed.
            tracing::warn!(group_id = %group.id, volume_id = %member.new.id, error = %err,
                "cannot cast a volume create of the group; the scheduler resumes it");
        }
    }
    Ok(group)
}
