//! The temporary volume a snapshot's backup reads (Cinder's
//! `_get_backup_volume_temp_volume`): a volume made from the snapshot on
//! the snapshot's backend, outside quota, deleted when the backup ends.

use std::time::{Duration, Instant};

use clinker_db::{DbHandle, DeleteOptions, DeleteStart, NewVolume};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::{ScheduleCreateVolumeArgs, SchedulerRpcClient};
use clinker_rpc::volume::{DeleteVolumeArgs, VolumeRpcClient};
use clinker_types::backup::Backup;
use clinker_types::model::Volume;
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::{SnapshotId, VolumeId, VolumeStatus};

/// How long the volume service may take to make the temporary volume.
const CREATE_TIMEOUT: Duration = Duration::from_secs(600);

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
    let new = NewVolume {
        id: VolumeId::new_random(),
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
    };
    let temp = db
        .create_volume(new)
        .await
        .map_err(|e| format!("cannot create a temporary volume: {e}"))?;
    let spec = RequestSpec {
        volume_id: temp.id,
        size: temp.size,
        availability_zone: Some(temp.availability_zone.clone()),
        availability_zones: Vec::new(),
        volume_type: TypeSpec {
            id: Some(volume_type.id),
            name: Some(volume_type.name.clone()),
            extra_specs: volume_type.extra_specs.clone(),
        },
        snapshot_id: Some(snapshot_id),
        source_volid: None,
        image_id: None,
        // A volume from a snapshot stays on the snapshot's backend.
        resource_backend: volume.cluster_name.clone().or_else(|| volume.host.clone()),
        project_id: temp.project_id.clone(),
        scheduler_hints: Default::default(),
    };
    let scheduler = SchedulerRpcClient::new(volume_rpc.transport(), volume_rpc.timeout());
    let args = ScheduleCreateVolumeArgs {
        request_spec: spec,
        filter_properties: FilterProperties::default(),
    };
    if let Err(e) = scheduler.create_volume(context, &args).await {
        remove(db, volume_rpc, context, temp.id).await;
        return Err(format!(
            "cannot ask the scheduler for a temporary volume: {e}"
        ));
    }
    let started = Instant::now();
    loop {
        match db.get_volume(temp.id).await {
            Ok(v) if v.status == VolumeStatus::Available => return Ok(v),
            Ok(v) if v.status != VolumeStatus::Creating => {
                remove(db, volume_rpc, context, temp.id).await;
                return Err(format!("the temporary volume {} is {}", temp.id, v.status));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("temporary volume {}: {e}", temp.id)),
        }
        if started.elapsed() > CREATE_TIMEOUT {
            remove(db, volume_rpc, context, temp.id).await;
            return Err(format!("timeout creating the temporary volume {}", temp.id));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes a temporary volume (failures are logged: an administrator can
/// delete it by its name).
pub async fn remove(
    db: &DbHandle,
    volume_rpc: &VolumeRpcClient,
    context: &RequestContext,
    id: VolumeId,
) {
    let options = DeleteOptions {
        force: true,
        cascade: false,
    };
    let started = match db.begin_volume_delete(id, options).await {
        Ok(DeleteStart::Started(v) | DeleteStart::AlreadyDeleting(v)) => v,
        Ok(DeleteStart::DeletedWithoutBackend(_)) => return,
        Err(e) => {
            tracing::warn!(volume_id = %id, error = %e, "backup: cannot delete the temporary volume");
            return;
        }
    };
    let Some(host) = started.host.clone() else {
        return;
    };
    let args = DeleteVolumeArgs {
        volume_id: id,
        cascade: false,
    };
    if let Err(e) = volume_rpc.delete_volume(context, &host, &args).await {
        tracing::warn!(volume_id = %id, error = %e, "backup: cannot cast the temporary volume's delete");
    }
}
