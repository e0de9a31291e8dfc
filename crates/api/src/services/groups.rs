//! Generic volume groups: Cinder's `group/api.py` (create, create from a
//! source, update, delete, reset) over the database's transactions and the
//! RPC casts.
//!
//! As for volumes, every check that can fail on user input runs first and
//! answers with Cinder's text; the database then re-checks the same rules
//! under row locks (the status is the lock), and a write that cannot be
//! dispatched is undone, so a refused request leaves nothing behind.

use clinker_db::{
    DbError, FilterValue, GroupDeleteStart, GroupUpdate, NewGroup, NewVolume, SnapshotColumn,
    SnapshotQuery, VolumeColumn, VolumeQuery,
};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::{ScheduleCreateGroupArgs, ScheduleCreateVolumeArgs};
use clinker_rpc::volume::DeleteGroupArgs;
use clinker_types::group::{Group, GroupType};
use clinker_types::group_status::{GroupStatus, GroupTransition};
use clinker_types::model::{Snapshot, Volume, VolumeType};
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::{GroupId, SnapshotStatus, VolumeId, VolumeStatus, VolumeTypeId};

use super::cast_journaled;
use super::group_snapshots::get_group_snapshot;
use super::rows::{get_owned, rows};
use super::{QuotaAction, lookup_error, quota_error, types};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy::enforce;
use crate::validation::py_str_repr;

rows! {
    Group(GroupId, clinker_db::GroupQuery), "Group", "group:get_all",
    get_group, list_groups
}

/// Cinder's `GroupNotFound` text.
pub fn group_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Group {id} could not be found."))
}

/// Cinder's `InvalidGroup` (400).
pub fn invalid_group(reason: impl AsRef<str>) -> ApiError {
    ApiError::invalid_state(format!("Invalid Group: {}", reason.as_ref()))
}

/// Cinder's `InvalidVolume` (400).
fn invalid_volume(reason: impl AsRef<str>) -> ApiError {
    ApiError::invalid_state(format!("Invalid volume: {}", reason.as_ref()))
}

/// Cinder's `GroupLimitExceeded` (413).
pub(crate) fn group_limit_exceeded(limit: i64) -> ApiError {
    ApiError::over_quota(format!(
        "GroupLimitExceeded: Maximum number of groups allowed ({limit}) exceeded"
    ))
}

/// A Python tuple of strings as Cinder prints its status lists.
fn py_tuple_of(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| py_str_repr(s)).collect();
    if quoted.len() == 1 {
        format!("({},)", quoted[0])
    } else {
        format!("({})", quoted.join(", "))
    }
}

/// Groups of the type reserved for migrated consistency groups are only
/// served by the consistency group API (Cinder's
/// `_check_default_cgsnapshot_type`).
///
/// # Errors
/// 400.
pub fn check_not_cgsnapshot_type(group_type_id: &str, snapshots: bool) -> ApiResult<()> {
    if group_type_id != clinker_types::group::DEFAULT_CGSNAPSHOT_TYPE_ID {
        return Ok(());
    }
    Err(ApiError::bad_request(if snapshots {
        format!(
            "Group_type {group_type_id} is reserved for migrating CGs to groups. Migrated group snapshots can only be operated by CG snapshot APIs."
        )
    } else {
        format!(
            "Group_type {group_type_id} is reserved for migrating CGs to groups. Migrated group can only be operated by CG APIs."
        )
    }))
}

/// A group the caller may see (`group:get`); 404 for unknown ids,
/// non-UUIDs and other projects' groups.
///
/// # Errors
/// 404.
pub async fn get_group(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<Group> {
    let group: Group = get_owned(state, ctx, id).await?;
    enforce(ctx, "group:get", Some(&group.project_id))?;
    Ok(group)
}

/// The volumes of a group (every project: a group's volumes are its
/// project's).
///
/// # Errors
/// Database failures.
pub async fn group_volumes(state: &ApiState, group_id: GroupId) -> ApiResult<Vec<Volume>> {
    state
        .db
        .list_volumes(&VolumeQuery {
            filters: vec![(VolumeColumn::GroupId, FilterValue::Eq(group_id.to_string()))],
            ..VolumeQuery::default()
        })
        .await
        .map_err(ApiError::from)
}

/// An administrator's view of the request, for look-ups Cinder makes
/// elevated (volume types' extra specs).
fn elevated(ctx: &RequestContext) -> RequestContext {
    RequestContext {
        is_admin: true,
        ..ctx.clone()
    }
}

/// Cinder's `group/api.py::_extract_availability_zone`.
async fn choose_zone(state: &ApiState, requested: Option<String>) -> ApiResult<String> {
    let defaults = &state.config.default;
    let mut known: Vec<String> = super::availability_zones(state)
        .await?
        .into_iter()
        .map(|(zone, _)| zone)
        .collect();
    known.push(defaults.storage_availability_zone.clone());
    let zone = requested.unwrap_or_else(|| defaults.default_availability_zone.clone());
    if known.contains(&zone) {
        return Ok(zone);
    }
    if defaults.allow_availability_zone_fallback {
        tracing::warn!(zone = %zone, fallback = %defaults.default_availability_zone,
            "availability zone not found, falling back");
        return Ok(defaults.default_availability_zone.clone());
    }
    Err(ApiError::invalid_input(format!(
        "Availability zone '{zone}' is invalid."
    )))
}

/// What `POST /groups` asks for, after schema validation.
#[derive(Clone, Debug, Default)]
pub struct CreateGroup {
    /// Name (trimmed).
    pub name: Option<String>,
    /// Description (trimmed).
    pub description: Option<String>,
    /// Group type name or id.
    pub group_type: String,
    /// Volume type names or ids (at least one).
    pub volume_types: Vec<String>,
    /// Requested zone.
    pub availability_zone: Option<String>,
}

/// Creates a group: `creating` with its `groups` quota and journal row,
/// then cast to the scheduler, which places it on a backend that supports
/// all its volume types. An undeliverable cast removes the row (503).
///
/// # Errors
/// Cinder's 400/404/413 texts; 503 when no scheduler consumes.
pub async fn create_group(
    state: &ApiState,
    ctx: &RequestContext,
    request: CreateGroup,
) -> ApiResult<Group> {
    enforce(ctx, "group:create", Some(&ctx.project_id))?;
    let group_type = types::find_type::<GroupType>(state, ctx, &request.group_type).await?;
    check_not_cgsnapshot_type(&group_type.id.to_string(), false)?;
    let admin = elevated(ctx);
    let mut volume_types: Vec<VolumeType> = Vec::new();
    for name in &request.volume_types {
        volume_types.push(types::find_type(state, &admin, name).await?);
    }
    let zone = choose_zone(state, request.availability_zone).await?;
    let new = NewGroup {
        id: GroupId::new_random(),
        user_id: ctx.user_id.clone(),
        project_id: ctx.project_id.clone(),
        availability_zone: zone,
        display_name: request.name,
        display_description: request.description,
        group_type_id: group_type.id,
        volume_type_ids: volume_types.iter().map(|t| t.id).collect(),
        host: None,
        group_snapshot_id: None,
        source_group_id: None,
    };
    let group = state.db.create_group(new).await.map_err(|e| match e {
        DbError::OverQuota(over) => group_limit_exceeded(over.limit),
        other => other.into(),
    })?;
    let args = ScheduleCreateGroupArgs { group_id: group.id };
    if let Err(err) = state.scheduler_rpc.create_group(ctx, &args).await {
        tracing::error!(group_id = %group.id, error = %err, "cannot cast create_group to the scheduler; removing the group");
        if let Err(undo) = state.db.discard_group_create(group.id).await {
            tracing::error!(group_id = %group.id, error = %undo, "cannot remove the undispatched group");
        }
        return Err(ApiError::unavailable());
    }
    Ok(group)
}

/// One volume to create for a group from a source, with where it comes
/// from.
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
    let new = NewVolume {
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
        resource_backend: snapshot
            .and_then(|s| s.host.clone())
            .or_else(|| origin.host.clone()),
        project_id: ctx.project_id.clone(),
        scheduler_hints: Default::default(),
    };
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

/// What `PUT /groups/{id}` asks for.
#[derive(Clone, Debug, Default)]
pub struct UpdateGroup {
    /// New name (trimmed).
    pub name: Option<String>,
    /// New description (trimmed).
    pub description: Option<String>,
    /// Comma-separated volume ids to add.
    pub add_volumes: Option<String>,
    /// Comma-separated volume ids to remove.
    pub remove_volumes: Option<String>,
}

/// Cinder's split of `add_volumes` / `remove_volumes`.
fn volume_list(text: Option<&str>) -> Vec<String> {
    match text.map(|t| t.trim_matches(',')) {
        Some(t) if !t.is_empty() => t.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn py_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| py_str_repr(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// Cinder's `_validate_add_volumes`: the volumes to add that are not in
/// the group yet, each checked with Cinder's texts.
async fn validate_add_volumes(
    state: &ApiState,
    ctx: &RequestContext,
    group: &Group,
    current: &[Volume],
    wanted: Vec<String>,
) -> ApiResult<Vec<VolumeId>> {
    let gid = group.id;
    let mut add = Vec::new();
    for vid in wanted
        .into_iter()
        .filter(|w| !current.iter().any(|v| v.id.to_string() == *w))
    {
        let not_found = || {
            invalid_volume(format!(
                "Cannot add volume {vid} to group {gid} because volume cannot be found."
            ))
        };
        let volume = match super::volumes::get_volume(state, ctx, &vid).await {
            Ok(v) => v,
            Err(e) if e.kind() == Some(clinker_types::ErrorKind::NotFound) => {
                return Err(not_found());
            }
            Err(e) => return Err(e),
        };
        let id = volume.id;
        if let Some(other) = &volume.group_id {
            return Err(invalid_volume(format!(
                "Cannot add volume {id} to group {gid} because it is already in group {other}."
            )));
        }
        if volume.project_id != group.project_id {
            return Err(invalid_volume(format!(
                "Cannot add volume {id} to group {gid} as they belong to different projects."
            )));
        }
        if !group.volume_type_ids.contains(&volume.volume_type_id) {
            return Err(invalid_volume(format!(
                "Cannot add volume {id} to group {gid} because volume type {} is not supported by the group.",
                volume.volume_type_id
            )));
        }
        if !matches!(volume.status, VolumeStatus::Available | VolumeStatus::InUse) {
            return Err(invalid_volume(format!(
                "Cannot add volume {id} to group {gid} because volume is in an invalid state: {}. Valid states are: {}.",
                volume.status,
                py_tuple_of(&["available", "in-use"])
            )));
        }
        let backend = |host: Option<&str>| {
            host.and_then(|h| h.parse::<clinker_types::Host>().ok())
                .map(|h| h.service_host())
        };
        if backend(group.host.as_deref()) != backend(volume.host.as_deref()) {
            return Err(invalid_volume("Volume is not local to this node."));
        }
        add.push(id);
    }
    Ok(add)
}

/// Cinder's `_validate_remove_volumes`.
fn validate_remove_volumes(
    group: &Group,
    current: &[Volume],
    wanted: &[String],
) -> ApiResult<Vec<VolumeId>> {
    let gid = group.id;
    let mut remove = Vec::new();
    for volume in current
        .iter()
        .filter(|v| wanted.contains(&v.id.to_string()))
    {
        if !matches!(
            volume.status,
            VolumeStatus::Available
                | VolumeStatus::InUse
                | VolumeStatus::Error
                | VolumeStatus::ErrorDeleting
        ) {
            return Err(invalid_volume(format!(
                "Cannot remove volume {} from group {gid} because volume is in an invalid state: {}. Valid states are: {}.",
                volume.id,
                volume.status,
                py_tuple_of(&["available", "in-use", "error", "error_deleting"])
            )));
        }
        remove.push(volume.id);
    }
    for vid in wanted {
        if !remove.iter().any(|r| r.to_string() == *vid) {
            return Err(invalid_volume(format!(
                "Cannot remove volume {vid} from group {gid} because it is not in the group."
            )));
        }
    }
    Ok(remove)
}

/// Renames a group and adds or removes volumes. Cinder's generic groups
/// change membership only in the database; Clinker does that in one
/// transaction, so the group never shows `updating`.
///
/// # Errors
/// 404, Cinder's 400 texts.
pub async fn update_group(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    request: UpdateGroup,
) -> ApiResult<Group> {
    let group = get_group(state, ctx, id).await?;
    check_not_cgsnapshot_type(&group.group_type_id.to_string(), false)?;
    enforce(ctx, "group:update", Some(&group.project_id))?;
    let name = request
        .name
        .filter(|n| Some(n) != group.display_name.as_ref());
    let description = request
        .description
        .filter(|d| Some(d) != group.display_description.as_ref());
    let add = volume_list(request.add_volumes.as_deref());
    let remove = volume_list(request.remove_volumes.as_deref());
    let both: Vec<String> = add.iter().filter(|a| remove.contains(a)).cloned().collect();
    if !both.is_empty() {
        return Err(invalid_volume(format!(
            "UUIDs {} are in both add and remove volume list.",
            py_list(&both)
        )));
    }
    let current = group_volumes(state, group.id).await?;
    let add = if add.is_empty() {
        Vec::new()
    } else {
        validate_add_volumes(state, ctx, &group, &current, add).await?
    };
    let remove = if remove.is_empty() {
        Vec::new()
    } else {
        validate_remove_volumes(&group, &current, &remove)?
    };
    if name.is_none() && description.is_none() && add.is_empty() && remove.is_empty() {
        return Err(invalid_group(format!(
            "Cannot update group {} because no valid name, description, add_volumes, or remove_volumes were provided.",
            group.id
        )));
    }
    if (!add.is_empty() || !remove.is_empty())
        && !GroupTransition::UpdateMembers.allows(group.status)
    {
        return Err(invalid_group("Group status must be available."));
    }
    let update = GroupUpdate {
        display_name: name.map(Some),
        display_description: description.map(Some),
        add_volumes: add,
        remove_volumes: remove,
    };
    state
        .db
        .update_group(group.id, update)
        .await
        .map_err(|e| match e {
            // A volume or the group changed since the checks above.
            DbError::InvalidState(_) => invalid_group("Group status must be available."),
            other => lookup_error(other, || group_not_found(id)),
        })
}

/// Cinder's group delete checks, with its texts, before the database
/// re-checks them under the locks.
async fn check_deletable(state: &ApiState, group: &Group, delete_volumes: bool) -> ApiResult<()> {
    if !delete_volumes && !matches!(group.status, GroupStatus::Available | GroupStatus::Error) {
        return Err(invalid_group(format!(
            "Group status must be available or error, but current status is: {}",
            group.status
        )));
    }
    let group_snapshots = state
        .db
        .list_group_snapshots(&clinker_db::GroupSnapshotQuery {
            filters: vec![(
                clinker_db::GroupSnapshotColumn::GroupId,
                FilterValue::Eq(group.id.to_string()),
            )],
            page: clinker_db::Page {
                marker: None,
                limit: Some(1),
                offset: None,
            },
            ..Default::default()
        })
        .await
        .map_err(ApiError::from)?;
    if !group_snapshots.is_empty() {
        return Err(invalid_group("Group has existing snapshots."));
    }
    let volumes = group_volumes(state, group.id).await?;
    if !volumes.is_empty() && !delete_volumes {
        return Err(invalid_group(format!(
            "Group {} still contains volumes. The delete-volumes flag is required to delete it.",
            group.id
        )));
    }
    for volume in &volumes {
        if volume.attach_status == clinker_types::AttachStatus::Attached {
            return Err(invalid_group(format!(
                "Volume in group {} is attached. Need to detach first.",
                group.id
            )));
        }
        let snapshots = state
            .db
            .snapshots_of_volume(volume.id)
            .await
            .map_err(ApiError::from)?;
        if !snapshots.is_empty() {
            return Err(invalid_group(
                "Volume in group still has dependent snapshots.",
            ));
        }
    }
    Ok(())
}

/// Deletes a group (`delete`, with `delete-volumes` its volumes too): a
/// group never placed goes at once; otherwise it and its volumes become
/// `deleting` with one journal row, and the delete is cast to its backend,
/// which deletes each volume through the volume delete path. A repeat on
/// a group already deleting is accepted and re-cast.
///
/// # Errors
/// 404, Cinder's 400 texts.
pub async fn delete_group(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    delete_volumes: bool,
) -> ApiResult<()> {
    let group = get_group(state, ctx, id).await?;
    check_not_cgsnapshot_type(&group.group_type_id.to_string(), false)?;
    enforce(ctx, "group:delete", Some(&group.project_id))?;
    if group.host.is_some() && group.status != GroupStatus::Deleting {
        check_deletable(state, &group, delete_volumes).await?;
    }
    let outcome = state
        .db
        .begin_group_delete(group.id, delete_volumes)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => {
                let reason = if delete_volumes {
                    "Group status must be available or error and must not have dependent group snapshots"
                } else {
                    "Group must not have attached volumes, volumes with snapshots, or dependent group snapshots"
                };
                invalid_group(format!(
                    "Cannot delete group {}. {reason}, and it cannot be the source for an ongoing group or group snapshot creation.",
                    group.id
                ))
            }
            other => lookup_error(other, || group_not_found(id)),
        })?;
    let started = match outcome {
        GroupDeleteStart::DeletedWithoutBackend(_) => return Ok(()),
        GroupDeleteStart::Started(g) | GroupDeleteStart::AlreadyDeleting(g) => g,
    };
    let Some(host) = started.host.clone() else {
        return Ok(());
    };
    let args = DeleteGroupArgs {
        group_id: started.id,
    };
    let sent = state.volume_rpc.delete_group(ctx, &host, &args).await;
    cast_journaled(sent, "delete_group", &started.id, &host);
    Ok(())
}

/// `reset_status` (3.20, admin): any of Cinder's accepted statuses,
/// without checks.
///
/// # Errors
/// 404, 403.
pub async fn reset_group_status(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    status: GroupStatus,
) -> ApiResult<()> {
    let group = get_group(state, ctx, id).await?;
    enforce(ctx, "group:reset_status", Some(&group.project_id))?;
    state
        .db
        .reset_group_status(group.id, status)
        .await
        .map_err(|e| lookup_error(e, || group_not_found(id)))?;
    Ok(())
}

/// Cinder's checks of a volume created in a group (`volume/api.py` and the
/// create flow's `_extract_group`): a type must be named and be one of the
/// group's, and the group must be available or creating. Returns the
/// group's backend (`host@backend`), where the volume must be placed.
///
/// Cinder places a volume of a group that has no backend yet anywhere;
/// Clinker refuses it, so every volume of a group is on the group's
/// backend. A volume copied from a snapshot or cloned stays with its
/// source, which therefore must be on that backend too.
///
/// # Errors
/// 400 with Cinder's texts.
pub fn check_volume_for_group(
    group: &Group,
    requested_type: Option<&str>,
    volume_type: &VolumeType,
    origin: Option<&Volume>,
) -> ApiResult<String> {
    if requested_type.is_none() {
        return Err(ApiError::invalid_input(
            "volume_type must be provided when creating a volume in a group.",
        ));
    }
    if !group.volume_type_ids.contains(&volume_type.id) {
        return Err(ApiError::invalid_input(format!(
            "Invalid volume_type provided: {} (requested type must be supported by this group).",
            volume_type.name
        )));
    }
    if !matches!(group.status, GroupStatus::Available | GroupStatus::Creating) {
        return Err(invalid_group(
            "Originating group status must be one of 'available, creating' values",
        ));
    }
    let backend = |host: &str| {
        host.parse::<clinker_types::Host>()
            .map(|h| h.service_host())
            .unwrap_or_else(|_| host.to_owned())
    };
    let Some(group_backend) = group.host.as_deref().map(backend) else {
        return Err(invalid_group(format!(
            "Group {} has not been placed on a backend yet.",
            group.id
        )));
    };
    if let Some(source_host) = origin.and_then(|v| v.host.as_deref())
        && backend(source_host) != group_backend
    {
        return Err(ApiError::invalid_input(
            "Volume must be created on the same backend as its group.",
        ));
    }
    Ok(group_backend)
}
