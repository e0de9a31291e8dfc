//! Attachments and the legacy attach actions: Cinder's `volume/api.py`
//! (`attachment_create`, `attachment_update`, `attachment_delete`,
//! `attachment_deletion_allowed`, `reserve_volume`, `unreserve_volume`,
//! `begin_detaching`, `roll_detaching`, `attach`, `detach`,
//! `initialize_connection`, `terminate_connection`) over the database's
//! attach transactions and the volume RPC calls.
//!
//! The status changes are the database's (one locked transaction each);
//! the volume service is asked only for what needs the backend (exports and
//! connections). A request refused for bad input leaves nothing behind: a
//! reservation whose connector the backend refuses is undone.

use clinker_db::{AttachmentQuery, DbError, LegacyAttach, NewAttachment};
use clinker_rpc::volume::{
    AttachmentDeleteArgs, AttachmentUpdateArgs, DetachVolumeArgs, InitializeConnectionArgs,
    RemoveExportArgs, TerminateConnectionArgs,
};
use clinker_rpc::{RequestContext, RpcError};
use clinker_types::connection::{ConnectionInfo, Connector};
use clinker_types::model::{Attachment, Volume};
use clinker_types::{AttachStatus, AttachmentId, ErrorKind, VolumeStatus};

use super::compute::{self, ComputeAuth, ServerVolume};
use super::lookup_error;
use super::volumes::{authorized_volume, get_volume, volume_not_found};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;

/// Cinder's `VolumeAttachmentNotFound` for a lookup by id.
pub fn attachment_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Volume attachment could not be found with filter: attachment_id = {id}."
    ))
}

/// Whether the request comes from a service (Nova with a service token),
/// Cinder's `is_service_request`. Only such requests may remove an
/// attachment a server still uses (OSSA-2023-003): a valid
/// `X-Service-Token` carrying one of `service_token_roles`.
pub fn is_service_request(ctx: &RequestContext) -> bool {
    ctx.is_service
}

/// Whether an attachment was actually connected to a host (Cinder tests the
/// truthiness of `connection_info`: a reservation stores `{}`).
fn is_connected(attachment: &Attachment) -> bool {
    match &attachment.connection_info {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Object(map)) => !map.is_empty(),
        Some(_) => true,
    }
}

/// Which attachment a deletion check is about.
#[derive(Clone, Copy, Debug)]
pub enum AttachmentRef<'a> {
    /// The one being deleted.
    Known(&'a Attachment),
    /// An id a caller named (it may not exist).
    Id(AttachmentId),
    /// None named: the volume's only attachment, if it has one.
    Unnamed,
    /// A name that cannot be an attachment (not a UUID).
    Missing,
}

/// Cinder's `attachment_deletion_allowed` (CVE-2023-2088): a user may not
/// remove an attachment that a server is using (it has an instance and was
/// connected), since the host would keep a device onto a volume it no longer
/// owns. Services (Nova, with a service token) may. Otherwise Compute is
/// asked, as the caller, whether the server still uses the volume through
/// this attachment; if it does not (no such server or volume there, or
/// another attachment), the user may delete it. Without a way to ask
/// (`compute` is `None` unless `auth_strategy = keystone`, or the catalog
/// has no Compute endpoint) the attachment is treated as in use.
///
/// # Errors
/// 409 `ConflictNovaUsingAttachment`, 400 for an attachment of another
/// volume, 503 when Compute cannot be asked.
pub async fn attachment_deletion_allowed(
    state: &ApiState,
    ctx: &RequestContext,
    compute: Option<&ComputeAuth>,
    attachment: AttachmentRef<'_>,
    volume: &Volume,
) -> ApiResult<()> {
    if is_service_request(ctx) {
        return Ok(());
    }
    let found: Option<Attachment> = match attachment {
        AttachmentRef::Known(a) => Some(a.clone()),
        AttachmentRef::Id(id) => match state.db.get_attachment(id).await {
            Ok(a) => Some(a),
            Err(DbError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        AttachmentRef::Missing => None,
        AttachmentRef::Unnamed => match volume.attachments.as_slice() {
            [] => return Ok(()),
            [only] => Some(only.clone()),
            _ => None,
        },
    };
    let server_id = match &found {
        Some(a) => {
            if a.volume_id != volume.id {
                return Err(ApiError::invalid_input("Mismatched volume and attachment"));
            }
            match &a.instance_uuid {
                Some(server) if is_connected(a) => server.clone(),
                _ => return Ok(()),
            }
        }
        None => String::new(),
    };
    if let (Some(auth), Some(a)) = (compute, &found) {
        tracing::info!(volume_id = %volume.id, server_id = %server_id,
            "attachment connected to a server; asking the compute service");
        match compute::get_server_volume(auth, &ctx.project_id, &server_id, &volume.id.to_string())
            .await?
        {
            ServerVolume::NotFound => {
                tracing::warn!(volume_id = %volume.id, server_id = %server_id,
                    "server or volume not found by the compute service; deleting the attachment, which may leave devices on the compute host");
                return Ok(());
            }
            ServerVolume::Attached {
                attachment_id: Some(held),
            } if held != a.id.to_string() => {
                tracing::warn!(volume_id = %volume.id, server_id = %server_id, nova_attachment_id = %held,
                    "the compute service holds another attachment of the volume; deleting this one");
                return Ok(());
            }
            ServerVolume::Attached { .. } | ServerVolume::NoComputeService => {}
        }
    }
    tracing::error!(volume_id = %volume.id, server_id = %server_id,
        "refusing a user's delete of an in-use attachment: it must come from the compute service with a service token (bug #2004555)");
    Err(ApiError::conflict(format!(
        "ConflictNovaUsingAttachment: Detach volume from instance {server_id} using the Compute API"
    )))
}

/// An attachment the caller may see, with its volume (404 Cinder's
/// `VolumeAttachmentNotFound` for unknown ids, ids that are not UUIDs and
/// other projects' attachments).
///
/// # Errors
/// 404, database failures.
pub async fn get_attachment(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<(Attachment, Volume)> {
    let Ok(attachment_id) = id.parse::<AttachmentId>() else {
        return Err(attachment_not_found(id));
    };
    let attachment = state
        .db
        .get_attachment(attachment_id)
        .await
        .map_err(|e| lookup_error(e, || attachment_not_found(id)))?;
    let volume = state
        .db
        .get_volume(attachment.volume_id)
        .await
        .map_err(|e| lookup_error(e, || attachment_not_found(id)))?;
    if super::visible(ctx, &volume.project_id) {
        Ok((attachment, volume))
    } else {
        Err(attachment_not_found(id))
    }
}

/// A page of attachments.
///
/// # Errors
/// 404 for a marker that is not an attachment in scope.
pub async fn list_attachments(
    state: &ApiState,
    query: &AttachmentQuery,
) -> ApiResult<Vec<Attachment>> {
    state.db.list_attachments(query).await.map_err(|e| match e {
        DbError::NotFound { id, .. } => attachment_not_found(&id),
        other => other.into(),
    })
}

/// The backend of a volume, for the calls that need it.
fn volume_host(volume: &Volume) -> ApiResult<&str> {
    volume.host.as_deref().ok_or_else(|| {
        ApiError::invalid_state(format!(
            "Invalid volume: Volume {} has no host; it was never created on a backend.",
            volume.id
        ))
    })
}

/// `"error"` in the status: Cinder refuses attachments of such volumes.
fn in_error(volume: &Volume) -> bool {
    volume.status.as_str().contains("error")
}

/// What `POST /attachments` asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateAttachment {
    /// `volume_uuid`.
    pub volume_uuid: String,
    /// `instance_uuid`.
    pub instance_uuid: Option<String>,
    /// `connector`, when the caller has it already.
    pub connector: Option<Connector>,
    /// `mode` (3.54); `None` keeps Cinder's `null` placeholder.
    pub mode: Option<String>,
}

/// Maps the RPC failure of a connection attempt: the caller's mistakes keep
/// their 4xx, an unreachable service is 503, a backend failure is 500 with
/// Cinder's wording (`prefix (reason)`).
fn connection_error(err: RpcError, prefix: &str) -> ApiError {
    match err {
        RpcError::Remote(remote)
            if matches!(
                remote.kind,
                ErrorKind::InvalidInput
                    | ErrorKind::InvalidState
                    | ErrorKind::NotFound
                    | ErrorKind::Conflict
                    | ErrorKind::Unavailable
            ) =>
        {
            ApiError::new(remote.kind, remote.message)
        }
        RpcError::Remote(remote) => ApiError::internal(format!("{prefix} ({}).", remote.message)),
        other => other.into(),
    }
}

/// Whether a failed connection attempt left nothing on the backend, so the
/// reservation can be undone as if the request had not happened.
fn nothing_done(err: &RpcError) -> bool {
    match err {
        RpcError::Remote(remote) => matches!(
            remote.kind,
            ErrorKind::InvalidInput | ErrorKind::NotFound | ErrorKind::InvalidState
        ),
        RpcError::Unroutable { .. } | RpcError::Payload(_) => true,
        RpcError::Timeout { .. } | RpcError::Transport(_) => false,
    }
}

/// `POST /attachments`: reserves the volume and, with a connector, connects
/// at once (Cinder's `attachment_create`).
///
/// # Errors
/// 404, 400 (status, connector), 500/503 from the backend.
pub async fn create_attachment(
    state: &ApiState,
    ctx: &RequestContext,
    request: CreateAttachment,
) -> ApiResult<Attachment> {
    let volume = get_volume(state, ctx, &request.volume_uuid).await?;
    policy::enforce(ctx, "volume:attachment_create", Some(&volume.project_id))?;
    if in_error(&volume) {
        return Err(ApiError::invalid_state(format!(
            "Invalid volume: Volume attachments can not be created if the volume is in an error state. The Volume {} currently has a status of: {} ",
            volume.id, volume.status
        )));
    }
    if volume.multiattach && volume.status == VolumeStatus::InUse && volume.bootable {
        policy::enforce(
            ctx,
            "volume:multiattach_bootable_volume",
            Some(&volume.project_id),
        )?;
    }
    // The deprecated `readonly` flag still forces read-only attachments and
    // overrides the mode argument (Cinder: "NOT compatible").
    let readonly = volume
        .admin_metadata
        .get("readonly")
        .is_some_and(|v| v == "True");
    let attach_mode = if readonly {
        "ro".to_owned()
    } else {
        request.mode.clone().unwrap_or_else(|| "null".to_owned())
    };
    let reserved = state
        .db
        .reserve_attachment(NewAttachment {
            id: AttachmentId::new_random(),
            volume_id: volume.id,
            instance_uuid: request.instance_uuid.clone(),
            attach_mode,
        })
        .await
        .map_err(|e| match e {
            DbError::InvalidState(reason) => {
                ApiError::invalid_state(format!("Invalid volume: {reason}"))
            }
            other => lookup_error(other, || volume_not_found(&request.volume_uuid)),
        })?;
    let Some(connector) = request.connector else {
        return Ok(reserved);
    };
    let args = AttachmentUpdateArgs {
        volume_id: volume.id,
        attachment_id: reserved.id,
        connector,
    };
    let outcome = match volume_host(&volume) {
        Ok(host) => state
            .volume_rpc
            .attachment_update(ctx, host, &args)
            .await
            .map_err(Some),
        Err(e) => {
            undo_reservation(state, &volume, reserved.id).await;
            return Err(e);
        }
    };
    if let Err(Some(err)) = outcome {
        if nothing_done(&err) {
            undo_reservation(state, &volume, reserved.id).await;
        }
        return Err(connection_error(
            err,
            "Unable to create attachment for volume",
        ));
    }
    state
        .db
        .get_attachment(reserved.id)
        .await
        .map_err(|e| lookup_error(e, || attachment_not_found(&reserved.id.to_string())))
}

/// Removes a reservation whose connection was refused, settling the volume
/// back to where it was.
async fn undo_reservation(state: &ApiState, volume: &Volume, attachment_id: AttachmentId) {
    if let Err(e) = state
        .db
        .detach_attachment(volume.id, Some(attachment_id))
        .await
    {
        tracing::error!(volume_id = %volume.id, attachment_id = %attachment_id, error = %e,
            "cannot undo the reservation of a refused attachment");
    }
}

/// `PUT /attachments/{id}`: connects a reserved attachment to a host
/// (Cinder's `attachment_update`).
///
/// # Errors
/// 404, 409 (volume in error, duplicate connectors), 400 (connector), 500/503.
pub async fn update_attachment(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    connector: Connector,
) -> ApiResult<Attachment> {
    let (attachment, volume) = get_attachment(state, ctx, id).await?;
    policy::enforce(ctx, "volume:attachment_update", Some(&volume.project_id))?;
    if in_error(&volume) {
        return Err(ApiError::conflict(format!(
            "Resource conflict: Volume attachments can not be updated if the volume is in an error state. The Volume {} currently has a status of: {} ",
            volume.id, volume.status
        )));
    }
    // A volume that is not multiattach may have two attachments only while
    // an instance moves between hosts; two connections to it mean two
    // requests raced (Cinder LP #1833736).
    if volume.attachments.len() > 1 && !volume.multiattach {
        let connected_hosts: std::collections::BTreeSet<String> = volume
            .attachments
            .iter()
            .filter(|a| is_connected(a))
            .map(|a| {
                a.connector
                    .as_ref()
                    .and_then(|c| c.get("host"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        if !connected_hosts.is_empty() {
            return Err(ApiError::conflict(format!(
                "Resource conflict: duplicate connectors detected on volume {}",
                volume.id
            )));
        }
    }
    let host = volume_host(&volume)?;
    let args = AttachmentUpdateArgs {
        volume_id: volume.id,
        attachment_id: attachment.id,
        connector,
    };
    state
        .volume_rpc
        .attachment_update(ctx, host, &args)
        .await
        .map_err(|e| connection_error(e, "Unable to update attachment"))?;
    state
        .db
        .get_attachment(attachment.id)
        .await
        .map_err(|e| lookup_error(e, || attachment_not_found(id)))
}

/// `os-complete` (3.44): the attachment is attached and the volume in use.
///
/// # Errors
/// 404, 400 when the volume cannot be in use.
pub async fn complete_attachment(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<()> {
    let (attachment, volume) = get_attachment(state, ctx, id).await?;
    policy::enforce(ctx, "volume:attachment_complete", Some(&volume.project_id))?;
    state
        .db
        .complete_attachment(attachment.id)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(reason) => {
                ApiError::invalid_state(format!("Invalid volume: {reason}"))
            }
            other => lookup_error(other, || attachment_not_found(id)),
        })?;
    Ok(())
}

/// `DELETE /attachments/{id}`: disconnects and removes an attachment;
/// returns the volume's remaining attachments (Cinder's
/// `attachment_delete`). A reservation that never connected is removed
/// here; a connection is undone by the volume service. If that service is
/// not running, the attachment is removed all the same and its export is
/// removed by the service's start-up reconcile.
///
/// # Errors
/// 404, 409 while a server uses it, 500/503 when the backend fails.
pub async fn delete_attachment(
    state: &ApiState,
    ctx: &RequestContext,
    compute: Option<&ComputeAuth>,
    id: &str,
) -> ApiResult<Vec<Attachment>> {
    let (attachment, volume) = get_attachment(state, ctx, id).await?;
    policy::enforce(ctx, "volume:attachment_delete", Some(&volume.project_id))?;
    attachment_deletion_allowed(
        state,
        ctx,
        compute,
        AttachmentRef::Known(&attachment),
        &volume,
    )
    .await?;
    let backend = match (&volume.host, attachment.attach_status) {
        (Some(host), status) if status != AttachStatus::Reserved => Some(host.as_str()),
        _ => None,
    };
    let mut removed_by_service = false;
    if let Some(host) = backend {
        let args = AttachmentDeleteArgs {
            volume_id: volume.id,
            attachment_id: attachment.id,
        };
        match state.volume_rpc.attachment_delete(ctx, host, &args).await {
            Ok(()) => removed_by_service = true,
            Err(RpcError::Unroutable { .. }) => {
                tracing::warn!(volume_id = %volume.id, attachment_id = %attachment.id, host,
                    "volume service not running; removing the attachment, its start-up reconcile removes the export");
            }
            Err(e) => return Err(connection_error(e, "Unable to delete attachment")),
        }
    }
    let settled = if removed_by_service {
        state.db.get_volume(volume.id).await
    } else {
        state
            .db
            .detach_attachment(volume.id, Some(attachment.id))
            .await
    }
    .map_err(|e| lookup_error(e, || volume_not_found(&volume.id.to_string())))?;
    Ok(settled.attachments)
}

// ---------------------------------------------------------------------------
// Legacy attach actions (`contrib/volume_actions.py`, `admin_actions.py`).

/// Cinder's message for an `InvalidVolume` raised by the volume service
/// during a legacy attach or detach (`"<what> - InvalidVolume: Invalid
/// volume: <reason>"`).
fn remote_invalid_volume(what: &str, reason: &str) -> ApiError {
    ApiError::invalid_state(format!("{what} - InvalidVolume: Invalid volume: {reason}"))
}

/// The legacy actions that only move a volume's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusStep {
    /// `os-reserve`: `available` (or `in-use` when multiattach) →
    /// `attaching`.
    Reserve,
    /// `os-unreserve`: `attaching` → `in-use`/`available`; otherwise
    /// nothing.
    Unreserve,
    /// `os-begin_detaching`: `in-use` and attached → `detaching`.
    BeginDetaching,
    /// `os-roll_detaching`: `detaching` → `in-use`; otherwise nothing.
    RollDetaching,
}

impl StatusStep {
    /// The step of an action name (`os-reserve`, …).
    pub fn of_action(name: &str) -> Option<Self> {
        Some(match name {
            "os-reserve" => Self::Reserve,
            "os-unreserve" => Self::Unreserve,
            "os-begin_detaching" => Self::BeginDetaching,
            "os-roll_detaching" => Self::RollDetaching,
            _ => return None,
        })
    }

    fn rule(self) -> &'static str {
        match self {
            Self::Reserve => "volume_extension:volume_actions:reserve",
            Self::Unreserve => "volume_extension:volume_actions:unreserve",
            Self::BeginDetaching => "volume_extension:volume_actions:begin_detaching",
            Self::RollDetaching => "volume_extension:volume_actions:roll_detaching",
        }
    }
}

/// Takes a [`StatusStep`].
///
/// # Errors
/// 404, 400 with Cinder's text when a reserve or begin-detaching finds the
/// volume in the wrong status.
pub async fn status_step(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    step: StatusStep,
) -> ApiResult<()> {
    let volume = authorized_volume(state, ctx, id, step.rule()).await?;
    let moved = match step {
        StatusStep::Reserve => state.db.reserve_volume(volume.id).await,
        StatusStep::Unreserve => state.db.unreserve_volume(volume.id).await,
        StatusStep::BeginDetaching => state.db.begin_detaching(volume.id).await,
        StatusStep::RollDetaching => state.db.roll_detaching(volume.id).await,
    };
    let refusable = matches!(step, StatusStep::Reserve | StatusStep::BeginDetaching);
    moved.map_err(|e| match e {
        DbError::InvalidState(reason) if refusable => {
            ApiError::invalid_state(format!("Invalid volume: {reason}"))
        }
        other => lookup_error(other, || volume_not_found(id)),
    })?;
    Ok(())
}

/// What `os-attach` asks for.
#[derive(Clone, Debug)]
pub struct AttachRequest {
    /// `instance_uuid`.
    pub instance_uuid: Option<String>,
    /// `host_name`.
    pub host_name: Option<String>,
    /// `mountpoint`.
    pub mountpoint: String,
    /// `mode` (`rw` by default).
    pub mode: String,
}

/// Cinder's `sanitize_hostname` (RFC 952/1123): spaces and underscores
/// become dashes, other odd characters go, lowercase, no leading or
/// trailing dots and dashes.
pub fn sanitize_hostname(name: &str) -> String {
    let mapped: String = name
        .chars()
        .filter(|c| (*c as u32) < 256)
        .map(|c| if c == ' ' || c == '_' { '-' } else { c })
        .filter(|c| c.is_alphanumeric() || *c == '.' || *c == '-' || *c == '_')
        .collect();
    mapped
        .to_lowercase()
        .trim_matches(|c| c == '.' || c == '-')
        .to_owned()
}

/// `os-attach`: records the attachment and makes the volume `in-use`
/// (Cinder's `attach` and the manager's `attach_volume`; no backend work is
/// involved, so it is one database transaction here).
///
/// # Errors
/// 404, 400 (maintenance, read-only volume, status).
pub async fn attach(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    request: AttachRequest,
) -> ApiResult<()> {
    let volume =
        authorized_volume(state, ctx, id, "volume_extension:volume_actions:attach").await?;
    if volume.status == VolumeStatus::Maintenance {
        return Err(ApiError::invalid_state(
            "Invalid volume: The volume cannot be attached in maintenance mode.",
        ));
    }
    if volume.admin_metadata.get("readonly").map(String::as_str) == Some("True")
        && request.mode != "ro"
    {
        return Err(ApiError::invalid_state(format!(
            "Invalid attaching mode '{}' for volume {}.",
            request.mode, volume.id
        )));
    }
    state
        .db
        .attach_volume(LegacyAttach {
            volume_id: volume.id,
            instance_uuid: request.instance_uuid,
            host_name: request.host_name.as_deref().map(sanitize_hostname),
            mountpoint: request.mountpoint,
            mode: request.mode,
        })
        .await
        .map_err(|e| match e {
            DbError::InvalidState(reason) => {
                remote_invalid_volume("Error attaching volume", &reason)
            }
            other => lookup_error(other, || volume_not_found(id)),
        })?;
    Ok(())
}

/// `os-detach` (and the detach half of `os-force_detach`): checks the
/// attachment may go, then lets the volume service remove the export (when
/// it was the last attachment) and the attachment.
///
/// # Errors
/// 404, 409 while a server uses it, 400 (maintenance, several attachments
/// and none named), 500 when the backend fails.
pub async fn detach(
    state: &ApiState,
    ctx: &RequestContext,
    compute: Option<&ComputeAuth>,
    volume: &Volume,
    attachment_id: Option<&str>,
    what: &str,
) -> ApiResult<()> {
    // Cinder looks a malformed id up and finds nothing.
    let named = attachment_id.map(|text| text.parse::<AttachmentId>().ok());
    let check = match named {
        None => AttachmentRef::Unnamed,
        Some(Some(id)) => AttachmentRef::Id(id),
        Some(None) => AttachmentRef::Missing,
    };
    attachment_deletion_allowed(state, ctx, compute, check, volume).await?;
    if volume.status == VolumeStatus::Maintenance {
        return Err(ApiError::invalid_state(
            "Invalid volume: The volume cannot be detached in maintenance mode.",
        ));
    }
    let resolved = match named {
        Some(id) => id,
        None => match volume.attachments.as_slice() {
            [] => None,
            [only] => Some(only.id),
            _ => {
                return Err(remote_invalid_volume(
                    what,
                    "Detach volume failed: More than one attachment, but no attachment_id provided.",
                ));
            }
        },
    };
    let Some(host) = volume.host.as_deref() else {
        state
            .db
            .detach_attachment(volume.id, resolved)
            .await
            .map_err(|e| lookup_error(e, || volume_not_found(&volume.id.to_string())))?;
        return Ok(());
    };
    let args = DetachVolumeArgs {
        volume_id: volume.id,
        attachment_id: resolved,
    };
    state
        .volume_rpc
        .detach_volume(ctx, host, &args)
        .await
        .map_err(|e| match e {
            RpcError::Remote(remote) if remote.kind == ErrorKind::InvalidState => {
                ApiError::invalid_state(format!("{what} - InvalidVolume: {}", remote.message))
            }
            other => ApiError::from(other),
        })
}

/// `os-initialize_connection`: exports the volume to the connector and
/// returns the nested connection info.
///
/// # Errors
/// 404, 400 (maintenance, connector), 500/503.
pub async fn initialize_connection(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    connector: Connector,
) -> ApiResult<ConnectionInfo> {
    let volume = authorized_volume(
        state,
        ctx,
        id,
        "volume_extension:volume_actions:initialize_connection",
    )
    .await?;
    if volume.status == VolumeStatus::Maintenance {
        return Err(ApiError::invalid_state(
            "Invalid volume: The volume connection cannot be initialized in maintenance mode.",
        ));
    }
    let host = volume_host(&volume)?;
    state
        .volume_rpc
        .initialize_connection(
            ctx,
            host,
            &InitializeConnectionArgs {
                volume_id: volume.id,
                connector,
            },
        )
        .await
        .map_err(|e| connection_error(e, "Unable to fetch connection information from backend"))
}

/// `os-terminate_connection` (and the first half of `os-force_detach`):
/// ends the host's connection, then undoes an `os-reserve`; when the volume
/// is left without attachments its export is removed.
///
/// # Errors
/// 404, 409 while a server uses the attachment, 500/503.
pub async fn terminate_connection(
    state: &ApiState,
    ctx: &RequestContext,
    compute: Option<&ComputeAuth>,
    volume: &Volume,
    connector: Option<Connector>,
) -> ApiResult<()> {
    attachment_deletion_allowed(state, ctx, compute, AttachmentRef::Unnamed, volume).await?;
    if let Some(host) = volume.host.as_deref() {
        state
            .volume_rpc
            .terminate_connection(
                ctx,
                host,
                &TerminateConnectionArgs {
                    volume_id: volume.id,
                    connector,
                    force: false,
                },
            )
            .await
            .map_err(|e| {
                connection_error(e, "Unable to terminate volume connection from backend")
            })?;
    }
    let after = state
        .db
        .unreserve_volume(volume.id)
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(&volume.id.to_string())))?;
    // An attach abandoned after os-initialize_connection leaves an export
    // nobody will use; the volume service keeps it if anything still does.
    if after.attachments.is_empty()
        && let Some(host) = after.host.as_deref()
        && let Err(e) = state
            .volume_rpc
            .remove_export(
                ctx,
                host,
                &RemoveExportArgs {
                    volume_id: after.id,
                },
            )
            .await
    {
        tracing::warn!(volume_id = %after.id, error = %e, "cannot cast remove_export; the start-up reconcile removes the export");
    }
    Ok(())
}
