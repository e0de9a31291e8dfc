//! Managing existing backend objects and unmanaging (Cinder's
//! `volume/api.py` `manage_existing`, `manage_existing_snapshot`,
//! `get_manageable_*`, `delete(unmanage_only=True)` and
//! `delete_snapshot(unmanage_only=True)`, with the controllers'
//! look-ups).
//!
//! A manage is addressed to a backend by the administrator, so it goes
//! straight to that backend's volume service (Cinder passes it through the
//! scheduler only to run the filters on the named backend; see
//! `docs/deviations-from-cinder.md`). Every check that can fail on input
//! runs before anything is written; a cast that cannot be delivered undoes
//! the row and answers 503.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use clinker_db::{DbError, DeleteOptions, DeleteStart, NewManagedVolume};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{ManageExistingArgs, ManageExistingSnapshotArgs, UnmanageVolumeArgs};
use clinker_types::model::{Service, Snapshot, Volume, VolumeType};
use clinker_types::{Host, VolumeId, VolumeStatus};
use serde_json::Value;

use super::cast_journaled;
use super::snapshots::{CreateSnapshot, new_snapshot};
use super::volumes::{authorized_volume, volume_not_found};
use super::{QuotaAction, VOLUME_BINARY, lookup_error, quota_error, types};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::Pagination;
use crate::policy;

/// `volume_extension:volume_manage`.
pub const VOLUME_MANAGE_POLICY: &str = "volume_extension:volume_manage";
/// `volume_extension:volume_unmanage`.
pub const VOLUME_UNMANAGE_POLICY: &str = "volume_extension:volume_unmanage";
/// `volume_extension:list_manageable`.
pub const VOLUME_LIST_MANAGEABLE_POLICY: &str = "volume_extension:list_manageable";
/// `snapshot_extension:snapshot_manage`.
pub const SNAPSHOT_MANAGE_POLICY: &str = "snapshot_extension:snapshot_manage";
/// `snapshot_extension:snapshot_unmanage`.
pub const SNAPSHOT_UNMANAGE_POLICY: &str = "snapshot_extension:snapshot_unmanage";
/// `snapshot_extension:list_manageable`.
pub const SNAPSHOT_LIST_MANAGEABLE_POLICY: &str = "snapshot_extension:list_manageable";

/// Where a request says the object is: a host or a cluster (Cinder's
/// `get_cluster_host`, already checked for "one and only one").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// `host@backend[#pool]`.
    Host(String),
    /// A cluster name (3.16+ for manage, 3.17+ for the lists).
    Cluster(String),
}

/// Cinder's `get_cluster_host`: with `cluster_allowed`, exactly one of
/// the two; otherwise `host` is required.
///
/// # Errors
/// 400 with Cinder's texts.
pub fn cluster_host(
    host: Option<&str>,
    cluster: Option<&str>,
    cluster_allowed: bool,
) -> ApiResult<Location> {
    let host = host.filter(|h| !h.is_empty());
    let cluster = cluster
        .filter(|c| !c.is_empty())
        .filter(|_| cluster_allowed);
    let msg = if cluster_allowed {
        "One and only one of cluster and host must be set."
    } else {
        "Host field is missing."
    };
    match (host, cluster) {
        (Some(h), None) => Ok(Location::Host(h.to_owned())),
        (None, Some(c)) => Ok(Location::Cluster(c.to_owned())),
        _ => Err(ApiError::invalid_input(msg)),
    }
}

/// `host@backend` of `host@backend#pool` (Cinder's `extract_host(…,
/// 'backend')`).
fn backend_of(host: &str) -> String {
    host.parse::<Host>()
        .map(|h| h.service_host())
        .unwrap_or_else(|_| host.split('#').next().unwrap_or(host).to_owned())
}

/// Why no service could be used.
enum ServiceRefusal {
    /// None with that host or cluster.
    NotFound,
    /// Disabled or down (Cinder's `ServiceUnavailable`).
    Unavailable,
}

/// Cinder's `_get_service_by_host_cluster`: the volume service of the
/// backend, which must be enabled and up.
async fn service_for(state: &ApiState, location: &Location) -> Result<Service, ServiceRefusal> {
    let services = state
        .db
        .list_services(None, Some(VOLUME_BINARY))
        .await
        .map_err(|_| ServiceRefusal::Unavailable)?;
    let now = state.clock.now();
    let down_time = state.config.default.service_down_time;
    let found: Vec<Service> = match location {
        Location::Host(host) => {
            let wanted = backend_of(host);
            services.into_iter().filter(|s| s.host == wanted).collect()
        }
        Location::Cluster(cluster) => {
            let wanted = backend_of(cluster);
            services
                .into_iter()
                .filter(|s| s.cluster_name.as_deref().map(backend_of) == Some(wanted.clone()))
                .collect()
        }
    };
    if found.is_empty() {
        return Err(ServiceRefusal::NotFound);
    }
    found
        .into_iter()
        .find(|s| !s.disabled && s.is_up(now, down_time))
        .ok_or(ServiceRefusal::Unavailable)
}

/// What `POST /os-volume-manage` (or `/manageable_volumes`) asks for.
#[derive(Clone, Debug)]
pub struct ManageVolume {
    /// Where the object is.
    pub location: Location,
    /// The driver-specific reference.
    pub reference: Value,
    /// Name (trimmed).
    pub name: Option<String>,
    /// Description (trimmed).
    pub description: Option<String>,
    /// Type name or id.
    pub volume_type: Option<String>,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Zone; the service's when absent.
    pub availability_zone: Option<String>,
    /// `bootable`.
    pub bootable: bool,
}

/// Manages an existing backend object as a new volume: the `managing` row
/// (one volume charged) and a cast to the backend, which sizes, renames and
/// finishes it.
///
/// # Errors
/// 400 for a reference already managed or a bad volume type, 503 (with
/// Cinder's "Host 'x' not found") for an unknown backend, 503 for a
/// disabled or down one, 413 over quota.
pub async fn manage_volume(
    state: &ApiState,
    ctx: &RequestContext,
    request: ManageVolume,
) -> ApiResult<Volume> {
    policy::enforce(ctx, VOLUME_MANAGE_POLICY, None)?;
    let volume_type = match request.volume_type.as_deref().filter(|t| !t.is_empty()) {
        Some(wanted) => types::find_type::<VolumeType>(state, ctx, wanted)
            .await
            .map_err(|e| {
                if e.kind() == Some(clinker_types::ErrorKind::NotFound) {
                    ApiError::bad_request(format!(
                        "Invalid volume type: Cannot find requested '{wanted}' volume type"
                    ))
                } else {
                    e
                }
            })?,
        None => super::default_types::default_type_for(state, ctx).await?,
    };
    if let Some(name) = request.reference.get("source-name").and_then(Value::as_str)
        && let Some(id) = name
            .strip_prefix("volume-")
            .and_then(|id| id.parse::<VolumeId>().ok())
        && state.db.volume_exists(id).await.map_err(ApiError::from)?
    {
        return Err(ApiError::invalid_state(
            "Invalid volume: Unable to manage existing volume. The volume is already managed",
        ));
    }
    if state
        .db
        .get_type_encryption(volume_type.id)
        .await
        .map_err(ApiError::from)?
        .is_some()
    {
        return Err(ApiError::bad_request(
            "Managing to an encrypted volume type is not supported.",
        ));
    }
    let service = service_for(state, &request.location)
        .await
        .map_err(|refusal| match refusal {
            ServiceRefusal::NotFound => {
                let (what, value) = match &request.location {
                    Location::Host(h) => ("Host", h),
                    Location::Cluster(c) => ("Cluster", c),
                };
                ApiError::new(
                    clinker_types::ErrorKind::Unavailable,
                    format!("{what} '{value}' not found"),
                )
            }
            ServiceRefusal::Unavailable => ApiError::unavailable(),
        })?;
    // A host with a pool is kept; otherwise the service's host (the volume
    // service fills in its pool).
    let host = match &request.location {
        Location::Host(h) if h.contains('#') => h.clone(),
        _ => service.host.clone(),
    };
    let new = NewManagedVolume {
        id: VolumeId::new_random(),
        user_id: ctx.user_id.clone(),
        project_id: ctx.project_id.clone(),
        host: host.clone(),
        availability_zone: request
            .availability_zone
            .unwrap_or_else(|| service.availability_zone.clone()),
        display_name: request.name,
        display_description: request.description,
        volume_type_id: volume_type.id,
        volume_type_name: volume_type.name.clone(),
        multiattach: volume_type.is_multiattach(),
        bootable: request.bootable,
        metadata: request.metadata,
    };
    let volume = state
        .db
        .create_managed_volume(new)
        .await
        .map_err(|e| match e {
            DbError::OverQuota(over) => quota_error(&over, QuotaAction::CreateVolume { size: 0 }),
            other => other.into(),
        })?;
    let args = ManageExistingArgs {
        volume_id: volume.id,
        reference: request.reference,
    };
    if let Err(err) = state.volume_rpc.manage_existing(ctx, &host, &args).await {
        tracing::error!(volume_id = %volume.id, host = %host, error = %err, "cannot cast manage_existing; removing the volume");
        undo_managed_volume(state, volume.id).await;
        return Err(ApiError::unavailable());
    }
    Ok(volume)
}

/// Removes the row of a manage that was never dispatched.
async fn undo_managed_volume(state: &ApiState, id: VolumeId) {
    let outcome = async {
        state.db.fail_volume_manage(id).await?;
        match state
            .db
            .begin_volume_delete(id, DeleteOptions::default())
            .await?
        {
            DeleteStart::Started(_) | DeleteStart::AlreadyDeleting(_) => {
                state.db.finish_volume_delete(id).await.map(|_| ())
            }
            DeleteStart::DeletedWithoutBackend(_) => Ok(()),
        }
    }
    .await;
    if let Err(e) = outcome {
        tracing::error!(volume_id = %id, error = %e, "cannot remove the undispatched managed volume");
    }
}

/// What `POST /os-snapshot-manage` (or `/manageable_snapshots`) asks for.
#[derive(Clone, Debug)]
pub struct ManageSnapshot {
    /// The volume the snapshot belongs to.
    pub volume_id: String,
    /// The driver-specific reference.
    pub reference: Value,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
}

/// Manages an existing backend object as a snapshot of a volume: a
/// `creating` snapshot (charged like any snapshot) and a cast to the
/// volume's backend.
///
/// # Errors
/// 404 for the volume or its service, 400 for its status, 503, 413.
pub async fn manage_snapshot(
    state: &ApiState,
    ctx: &RequestContext,
    request: ManageSnapshot,
) -> ApiResult<Snapshot> {
    let volume = authorized_volume(state, ctx, &request.volume_id, SNAPSHOT_MANAGE_POLICY).await?;
    let Some(host) = volume.host.clone() else {
        return Err(ApiError::not_found("Service None could not be found."));
    };
    service_for(state, &Location::Host(host.clone()))
        .await
        .map_err(|refusal| match refusal {
            ServiceRefusal::NotFound => ApiError::not_found(format!(
                "Service None could not be found on host {}.",
                backend_of(&host)
            )),
            ServiceRefusal::Unavailable => ApiError::unavailable(),
        })?;
    if volume.status == VolumeStatus::Maintenance {
        return Err(ApiError::invalid_state(
            "Invalid volume: The snapshot cannot be created when the volume is in maintenance mode.",
        ));
    }
    let refused = |status: VolumeStatus| {
        ApiError::invalid_state(format!(
            "Invalid volume: Volume {} status must be available, in-use, but current status is: {status}.",
            volume.id
        ))
    };
    if !matches!(volume.status, VolumeStatus::Available | VolumeStatus::InUse) {
        return Err(refused(volume.status));
    }
    let asked = CreateSnapshot {
        volume_id: Some(request.volume_id.clone()),
        name: request.name,
        description: request.description,
        metadata: request.metadata,
        allow_in_use: true,
    };
    let new = new_snapshot(ctx, volume.id, asked);
    let snapshot = state.db.create_snapshot(new).await.map_err(|e| match e {
        DbError::OverQuota(over) => {
            quota_error(&over, QuotaAction::CreateSnapshot { size: volume.size })
        }
        DbError::InvalidState(_) => refused(volume.status),
        other => lookup_error(other, || volume_not_found(&request.volume_id)),
    })?;
    let args = ManageExistingSnapshotArgs {
        snapshot_id: snapshot.id,
        reference: request.reference,
    };
    if let Err(err) = state
        .volume_rpc
        .manage_existing_snapshot(ctx, &host, &args)
        .await
    {
        tracing::error!(snapshot_id = %snapshot.id, host = %host, error = %err, "cannot cast manage_existing_snapshot; discarding the snapshot");
        if let Err(undo) = state.db.discard_snapshot_create(snapshot.id).await {
            tracing::error!(snapshot_id = %snapshot.id, error = %undo, "cannot discard the undispatched snapshot");
        }
        return Err(ApiError::unavailable());
    }
    Ok(snapshot)
}

/// `os-unmanage` of a volume: like a delete (same conditions and texts),
/// but the backend keeps the data.
///
/// # Errors
/// 404, 403, 400 with Cinder's delete text.
pub async fn unmanage_volume(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<()> {
    let volume = authorized_volume(state, ctx, id, VOLUME_UNMANAGE_POLICY).await?;
    policy::enforce(ctx, "volume:delete", Some(&volume.project_id))?;
    if volume.host.is_none() {
        // Never placed: nothing on a backend to keep; the row goes now, as
        // Cinder's delete does.
        state
            .db
            .begin_volume_delete(volume.id, DeleteOptions::default())
            .await
            .map_err(|e| match e {
                DbError::InvalidState(_) => super::volumes::delete_refused(false),
                other => lookup_error(other, || volume_not_found(id)),
            })?;
        return Ok(());
    }
    if volume.encryption_key_id.is_some() {
        // Cinder raises `Invalid`, whose text ignores the reason.
        return Err(ApiError::bad_request("Unacceptable parameters."));
    }
    let started = state
        .db
        .begin_volume_unmanage(volume.id)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => super::volumes::delete_refused(false),
            other => lookup_error(other, || volume_not_found(id)),
        })?;
    let Some(host) = started.host.clone() else {
        return Ok(());
    };
    let args = UnmanageVolumeArgs {
        volume_id: started.id,
    };
    let sent = state.volume_rpc.unmanage_volume(ctx, &host, &args).await;
    cast_journaled(sent, "unmanage_volume", &started.id, &host);
    Ok(())
}

/// Which manageable list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manageable {
    /// `manageable_volumes`.
    Volumes,
    /// `manageable_snapshots`.
    Snapshots,
}

/// The sort keys a manageable list accepts.
pub const VALID_SORT_KEYS: &[&str] = &["reference", "size"];

/// A manageable list's entries from the backend, sorted and paginated as
/// Cinder's `paginate_entries_list` does.
///
/// # Errors
/// 404 for an unknown backend, 503 for one that is disabled, down or
/// unreachable, 400 for a bad marker.
pub async fn list_manageable(
    state: &ApiState,
    ctx: &RequestContext,
    kind: Manageable,
    location: &Location,
    sort: &[(String, bool)],
    page: &Pagination,
) -> ApiResult<Vec<Value>> {
    let service = service_for(state, location)
        .await
        .map_err(|refusal| match refusal {
            ServiceRefusal::NotFound => {
                let host = match location {
                    Location::Host(h) | Location::Cluster(h) => backend_of(h),
                };
                ApiError::not_found(format!("Service None could not be found on host {host}."))
            }
            ServiceRefusal::Unavailable => ApiError::unavailable(),
        })?;
    let reply = match kind {
        Manageable::Volumes => {
            state
                .volume_rpc
                .get_manageable_volumes(ctx, &service.host)
                .await
        }
        Manageable::Snapshots => {
            state
                .volume_rpc
                .get_manageable_snapshots(ctx, &service.host)
                .await
        }
    };
    let entries = reply.map_err(|err| {
        tracing::warn!(host = %service.host, error = %err, "cannot list manageable objects");
        ApiError::unavailable()
    })?;
    paginate(entries, page, sort)
}

/// A value to order an entry by: a dict reference by its smallest value,
/// as Cinder does.
fn sort_value(value: Option<&Value>) -> Value {
    match value {
        Some(Value::Object(map)) => {
            let mut values: Vec<&Value> = map.values().collect();
            values.sort_by(|a, b| compare(a, b));
            values.first().map(|v| (*v).clone()).unwrap_or(Value::Null)
        }
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Cinder's `paginate_entries_list`: sort by `(key, ascending)` pairs,
/// start after the entry whose `reference` equals the JSON `marker`, skip
/// `offset`, keep `limit`.
///
/// # Errors
/// 400 for a marker that is not JSON or matches no entry.
pub fn paginate(
    mut entries: Vec<Value>,
    page: &Pagination,
    sort: &[(String, bool)],
) -> ApiResult<Vec<Value>> {
    entries.sort_by(|left, right| {
        for (key, ascending) in sort {
            let order = compare(
                &sort_value(left.get(key.as_str())),
                &sort_value(right.get(key.as_str())),
            );
            if order != Ordering::Equal {
                return if *ascending { order } else { order.reverse() };
            }
        }
        Ordering::Equal
    });
    let mut start = 0;
    if let Some(marker) = page.marker.as_deref().filter(|m| !m.is_empty()) {
        let wanted: Value = serde_json::from_str(marker).map_err(|_| {
            ApiError::invalid_input(format!(
                "marker {marker} can not be analysed, please use json like format"
            ))
        })?;
        start = entries
            .iter()
            .position(|e| e.get("reference") == Some(&wanted))
            .map(|i| i + 1)
            .ok_or_else(|| ApiError::invalid_input(format!("marker not found: {marker}")))?;
    }
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    Ok(entries
        .into_iter()
        .skip(start.saturating_add(offset))
        .take(limit)
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn page(marker: Option<&str>, limit: u32, offset: u32) -> Pagination {
        Pagination {
            marker: marker.map(str::to_owned),
            limit,
            offset,
        }
    }

    fn entries() -> Vec<Value> {
        ["b", "a", "c"]
            .iter()
            .zip([3, 1, 2])
            .map(|(name, size)| json!({"reference": {"source-name": name}, "size": size}))
            .collect()
    }

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter()
            .map(|e| e["reference"]["source-name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn paginates_like_cinder() {
        let by_ref = [("reference".to_owned(), false)];
        let all = paginate(entries(), &page(None, 10, 0), &by_ref).unwrap();
        assert_eq!(names(&all), ["c", "b", "a"]);
        let by_size = [("size".to_owned(), true)];
        let all = paginate(entries(), &page(None, 10, 0), &by_size).unwrap();
        assert_eq!(names(&all), ["a", "c", "b"]);
        let next = paginate(
            entries(),
            &page(Some(r#"{"source-name": "c"}"#), 1, 0),
            &by_ref,
        )
        .unwrap();
        assert_eq!(names(&next), ["b"]);
        let skipped = paginate(entries(), &page(None, 5, 2), &by_ref).unwrap();
        assert_eq!(names(&skipped), ["a"]);
        assert_eq!(
            paginate(entries(), &page(Some("nope"), 1, 0), &by_ref)
                .unwrap_err()
                .user_message(),
            "Invalid input received: marker nope can not be analysed, please use json like format"
        );
        assert_eq!(
            paginate(
                entries(),
                &page(Some(r#"{"source-name": "z"}"#), 1, 0),
                &by_ref
            )
            .unwrap_err()
            .user_message(),
            r#"Invalid input received: marker not found: {"source-name": "z"}"#
        );
    }

    #[test]
    fn host_or_cluster_like_cinder() {
        assert_eq!(
            cluster_host(Some("h@b"), None, false).unwrap(),
            Location::Host("h@b".into())
        );
        assert_eq!(
            cluster_host(None, Some("c"), false)
                .unwrap_err()
                .user_message(),
            "Invalid input received: Host field is missing."
        );
        assert_eq!(
            cluster_host(Some("h"), Some("c"), true)
                .unwrap_err()
                .user_message(),
            "Invalid input received: One and only one of cluster and host must be set."
        );
        assert_eq!(
            cluster_host(None, Some("c"), true).unwrap(),
            Location::Cluster("c".into())
        );
        assert_eq!(backend_of("node1@file#file"), "node1@file");
    }
}
