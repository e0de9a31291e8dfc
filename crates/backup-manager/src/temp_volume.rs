//! The temporary resources a backup reads through (Cinder's
//! `_get_backup_volume_temp_volume` and `_get_backup_volume_temp_snapshot`):
//! a volume made from the snapshot being backed up, and for a `force`
//! backup of an in-use volume a temporary snapshot of it first, so the
//! backup holds one moment's data while the volume stays in use. Both are
//! outside quota, on the volume's backend, recorded on the backup row
//! (`temp_volume_id` before the volume's row exists, `temp_snapshot_id`
//! with the snapshot's row) and deleted when the backup ends or, after a
//! crash, by the backup service's start-up.

use std::time::{Duration, Instant};

use clinker_db::{BackupTemp, DbHandle, DeleteOptions, DeleteStart, NewSnapshot, NewVolume};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::{ScheduleCreateVolumeArgs, SchedulerRpcClient};
use clinker_rpc::volume::{
    CreateSnapshotArgs, DeleteSnapshotArgs, DeleteVolumeArgs, VolumeRpcClient,
};
use clinker_types::backup::Backup;
use clinker_types::model::{Snapshot, Volume};
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::status::SnapshotTransition;
use clinker_types::{BackupId, SnapshotId, SnapshotStatus, VolumeId, VolumeStatus};

/// How long the volume service may take to make a temporary resource.
const CREATE_TIMEOUT: Duration = Duration::from_secs(600);

/// Takes the temporary snapshot of the `backing-up` volume of a `force`
/// backup (Cinder's `_create_temp_snapshot`: `backup-snap-<volume id>`,
/// outside quota) and waits until it is `available`.
///
/// # Errors
/// The reason, as the backup's `fail_reason`; a snapshot made in part is
/// removed.
pub async fn snapshot_of_volume(
    db: &DbHandle,
    volume_rpc: &VolumeRpcClient,
    context: &RequestContext,
    backup: &Backup,
    volume: &Volume,
) -> Result<Snapshot, String> {
    let host = volume
        .host
        .clone()
        .ok_or_else(|| format!("volume {} is on no backend", volume.id))?;
    let new = NewSnapshot {
        id: SnapshotId::new_random(),
        volume_id: volume.id,
        user_id: backup.user_id.clone(),
        project_id: backup.project_id.clone(),
        display_name: Some(format!("backup-snap-{}", volume.id)),
        display_description: None,
        metadata: Default::default(),
        allow_in_use: true,
        use_quota: false,
    };
    let snapshot = db
        .create_backup_temp_snapshot(backup.id, new)
        .await
        .map_err(|e| format!("cannot create a temporary snapshot: {e}"))?;
    let args = CreateSnapshotArgs {
        snapshot_id: snapshot.id,
        volume_id: volume.id,
    };
    if let Err(e) = volume_rpc.create_snapshot(context, &host, &args).await {
        remove_snapshot(db, volume_rpc, context, backup.id, snapshot.id).await;
        return Err(format!(
            "cannot ask the volume service for a temporary snapshot: {e}"
        ));
    }
    let started = Instant::now();
    loop {
        match db.get_snapshot(snapshot.id).await {
            Ok(s) if s.status == SnapshotStatus::Available => return Ok(s),
            Ok(s) if s.status != SnapshotStatus::Creating => {
                remove_snapshot(db, volume_rpc, context, backup.id, snapshot.id).await;
                return Err(format!(
                    "the temporary snapshot {} is {}",
                    snapshot.id, s.status
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("temporary snapshot {}: {e}", snapshot.id)),
        }
        if started.elapsed() > CREATE_TIMEOUT {
            remove_snapshot(db, volume_rpc, context, backup.id, snapshot.id).await;
            return Err(format!(
                "timeout creating the temporary snapshot {}",
                snapshot.id
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes a backup's temporary snapshot and forgets it on the backup row
/// (failures are logged: an administrator can delete it by its name).
pub async fn remove_snapshot(
    db: &DbHandle,
    volume_rpc: &VolumeRpcClient,
    context: &RequestContext,
    backup_id: BackupId,
    id: SnapshotId,
) {
    match db
        .begin_snapshot_delete(id, SnapshotTransition::ForceDelete)
        .await
    {
        Ok(started) => {
            if let Some(host) = started.host.clone() {
                let args = DeleteSnapshotArgs { snapshot_id: id };
                if let Err(e) = volume_rpc.delete_snapshot(context, &host, &args).await {
                    tracing::warn!(snapshot_id = %id, error = %e, "backup: cannot cast the temporary snapshot's delete");
                }
            }
        }
        Err(clinker_db::DbError::NotFound { .. }) => {}
        Err(e) => {
            tracing::warn!(snapshot_id = %id, error = %e, "backup: cannot delete the temporary snapshot");
            return;
        }
    }
    forget(db, backup_id, BackupTemp::Snapshot(None)).await;
}

async fn forget(db: &DbHandle, backup_id: BackupId, temp: BackupTemp) {
    if let Err(e) = db.set_backup_temp(backup_id, temp).await {
        tracing::warn!(%backup_id, error = %e, "backup: cannot forget a removed temporary resource");
    }
}

/// Creates the temporary volume from `snapshot_id` of `volume` and waits
/// until it is `available`.
///
/// # Errors
/// The reason, as the backup's `fail_reason`; a volume made in part is
/// removed.
pub async fn from_snapshot(
    db: &DbHandle,
    volume_rpc: &VolumeRpcClient,
    context: &RequestContext,
    backup: &Backup,
    volume: &Volume,
    snapshot_id: SnapshotId,
) -> Result<Volume, String> {
    let snapshot = db
        .get_snapshot(snapshot_id)
        .await
        .map_err(|e| format!("snapshot {snapshot_id}: {e}"))?;
    let volume_type = db
        .get_volume_type(snapshot.volume_type_id)
        .await
        .map_err(|e| format!("volume type of snapshot {snapshot_id}: {e}"))?;
    let temp_id = VolumeId::new_random();
    // Recorded first: a crash between here and the end leaves an id the
    // backup service's start-up removes (or finds already gone).
    db.set_backup_temp(backup.id, BackupTemp::Volume(Some(temp_id)))
        .await
        .map_err(|e| format!("cannot record the temporary volume: {e}"))?;
    let spec = RequestSpec {
        volume_id: temp_id,
        size: snapshot.volume_size,
        availability_zone: Some(volume.availability_zone.clone()),
        availability_zones: Vec::new(),
        volume_type: TypeSpec {
            id: Some(volume_type.id),
            name: Some(volume_type.name.clone()),
            extra_specs: volume_type.extra_specs.clone(),
        },
        snapshot_id: Some(snapshot_id),
        source_volid: None,
        image_id: None,
        backup_id: None,
        // A volume from a snapshot stays on the snapshot's backend.
        resource_backend: volume.cluster_name.clone().or_else(|| volume.host.clone()),
        project_id: backup.project_id.clone(),
        scheduler_hints: Default::default(),
    };
    let new = NewVolume {
        id: temp_id,
        user_id: backup.user_id.clone(),
        project_id: backup.project_id.clone(),
        size: snapshot.volume_size,
        availability_zone: volume.availability_zone.clone(),
        display_name: Some(format!("backup-vol-{}", backup.id)),
        display_description: Some(format!(
            "temporary volume for backup {} of snapshot {snapshot_id}",
            backup.id
        )),
        volume_type_id: volume_type.id,
        volume_type_name: volume_type.name.clone(),
        snapshot_id: Some(snapshot_id),
        source_volid: None,
        multiattach: false,
        bootable: volume.bootable,
        group_id: None,
        use_quota: false,
        metadata: Default::default(),
        glance_metadata: Default::default(),
        request_spec: Some(spec.clone()),
    };
    let temp = db
        .create_volume(new)
        .await
        .map_err(|e| format!("cannot create a temporary volume: {e}"))?;
    let scheduler = SchedulerRpcClient::new(volume_rpc.transport(), volume_rpc.timeout());
    let args = ScheduleCreateVolumeArgs {
        request_spec: spec,
        filter_properties: FilterProperties::default(),
    };
    if let Err(e) = scheduler.create_volume(context, &args).await {
        remove(db, volume_rpc, context, backup.id, temp.id).await;
        return Err(format!(
            "cannot ask the scheduler for a temporary volume: {e}"
        ));
    }
    let started = Instant::now();
    loop {
        match db.get_volume(temp.id).await {
            Ok(v) if v.status == VolumeStatus::Available => return Ok(v),
            Ok(v) if v.status != VolumeStatus::Creating => {
                remove(db, volume_rpc, context, backup.id, temp.id).await;
                return Err(format!("the temporary volume {} is {}", temp.id, v.status));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("temporary volume {}: {e}", temp.id)),
        }
        if started.elapsed() > CREATE_TIMEOUT {
            remove(db, volume_rpc, context, backup.id, temp.id).await;
            return Err(format!("timeout creating the temporary volume {}", temp.id));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes a backup's temporary volume and forgets it on the backup row
/// (failures are logged: an administrator can delete it by its name).
pub async fn remove(
    db: &DbHandle,
    volume_rpc: &VolumeRpcClient,
    context: &RequestContext,
    backup_id: BackupId,
    id: VolumeId,
) {
    let options = DeleteOptions {
        force: true,
        cascade: false,
    };
    let started = match db.begin_volume_delete(id, options).await {
        Ok(DeleteStart::Started(v) | DeleteStart::AlreadyDeleting(v)) => Some(v),
        Ok(DeleteStart::DeletedWithoutBackend(_)) | Err(clinker_db::DbError::NotFound { .. }) => {
            None
        }
        Err(e) => {
            tracing::warn!(volume_id = %id, error = %e, "backup: cannot delete the temporary volume");
            return;
        }
    };
    if let Some(host) = started.and_then(|v| v.host) {
        let args = DeleteVolumeArgs {
            volume_id: id,
            cascade: false,
        };
        if let Err(e) = volume_rpc.delete_volume(context, &host, &args).await {
            tracing::warn!(volume_id = %id, error = %e, "backup: cannot cast the temporary volume's delete");
        }
    }
    forget(db, backup_id, BackupTemp::Volume(None)).await;
}
