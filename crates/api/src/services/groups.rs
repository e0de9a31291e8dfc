//! Generic volume groups: Cinder's `group/api.py` (create, create from a
//! source, update, delete, reset) over the database's transactions and the
//! RPC casts.
//!
//! As for volumes, every check that can fail on user input runs first and
//! answers with Cinder's text; the database then re-checks the same rules
//! under row locks (the status is the lock), and a write that cannot be
//! dispatched is undone, so a refused request leaves nothing behind.

use clinker_db::{
    DbError, FilterValue, GroupDeleteStart, GroupUpdate, NewGroup, VolumeColumn, VolumeQuery,
};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleCreateGroupArgs;
use clinker_rpc::volume::DeleteGroupArgs;
use clinker_types::group::{Group, GroupType};
use clinker_types::group_status::{GroupStatus, GroupTransition};
use clinker_types::model::{Volume, VolumeType};
use clinker_types::{GroupId, VolumeId, VolumeStatus};

use super::cast_journaled;
use super::rows::{get_owned, rows};
use super::{lookup_error, types};
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
pub(crate) fn py_tuple_of(items: &[&str]) -> String {
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
