//! A volume created from a backup (3.47; Cinder's `_create_from_backup`
//! for a driver without `create_volume_from_backup`): the backend makes an
//! empty volume, then one transaction moves it `creating →
//! restoring-backup` and the backup `available → restoring`, and the
//! backup service's ordinary restore fills it (`volume_is_new`), ending
//! the volume `available`, or `error` with a user message.

use clinker_drivers::ModelUpdate;
use clinker_rpc::RequestContext;
use clinker_rpc::backup::{BackupRpcClient, RestoreBackupArgs};
use clinker_types::message_field as mf;
use clinker_types::model::Volume;
use clinker_types::{BackupId, RemoteError, VolumeStatus};

use crate::manager::{VolumeManager, db_remote, provider};
use crate::usage::volume_payload;

impl VolumeManager {
    /// Hands the new, empty `volume` to the backup service that holds
    /// `backup_id`. A backup that is no longer `available`, or a backup
    /// service that cannot be reached, fails the volume (`error`) with a
    /// user message; the backup is left as it was.
    pub(crate) async fn restore_into_new_volume(
        &self,
        context: &RequestContext,
        volume: &Volume,
        backup_id: BackupId,
        update: ModelUpdate,
    ) -> Result<(), RemoteError> {
        let backup_host = match self.db.get_backup(backup_id).await {
            Ok(b) => b.host.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(volume_id = %volume.id, %backup_id, error = %e, "the backup of a volume create is gone");
                return self
                    .fail_create_from_backup(context, volume, backup_id)
                    .await;
            }
        };
        if let Err(e) = self
            .db
            .begin_volume_restore_from_backup(backup_id, volume.id, &backup_host, provider(update))
            .await
        {
            tracing::warn!(volume_id = %volume.id, %backup_id, error = %e, "cannot start restoring the backup into the new volume");
            return self
                .fail_create_from_backup(context, volume, backup_id)
                .await;
        }
        self.notifier
            .info(
                "volume.create.end",
                volume_payload(&Volume {
                    status: VolumeStatus::RestoringBackup,
                    ..volume.clone()
                }),
            )
            .await;
        let rpc = BackupRpcClient::new(self.volume_rpc.transport(), self.volume_rpc.timeout());
        let args = RestoreBackupArgs {
            backup_id,
            volume_id: volume.id,
            volume_is_new: true,
        };
        if let Err(e) = rpc.restore_backup(context, &backup_host, &args).await {
            tracing::error!(volume_id = %volume.id, %backup_id, host = %backup_host, error = %e, "cannot cast restore_backup; the volume fails");
            if let Err(e) = self
                .db
                .finish_backup_restore(backup_id, volume.id, false)
                .await
            {
                tracing::warn!(volume_id = %volume.id, %backup_id, error = %e, "cannot settle the undispatched restore");
            }
            self.record_message(
                context,
                &volume.project_id,
                mf::RESOURCE_VOLUME_BACKUP,
                backup_id.to_string(),
                mf::BACKUP_RESTORE,
                mf::BACKUP_RESTORE_ERROR,
            )
            .await;
        } else {
            tracing::info!(volume_id = %volume.id, %backup_id, host = %backup_host, "volume created; the backup service restores the backup into it");
        }
        Ok(())
    }

    async fn fail_create_from_backup(
        &self,
        context: &RequestContext,
        volume: &Volume,
        backup_id: BackupId,
    ) -> Result<(), RemoteError> {
        match self.db.fail_volume_create(volume.id).await {
            Ok(failed) => {
                self.record_message(
                    context,
                    &volume.project_id,
                    mf::RESOURCE_VOLUME_BACKUP,
                    backup_id.to_string(),
                    mf::BACKUP_RESTORE,
                    mf::BACKUP_INVALID_STATE,
                )
                .await;
                self.notifier
                    .error("volume.create.error", volume_payload(&failed))
                    .await;
                Ok(())
            }
            Err(clinker_db::DbError::InvalidState(_) | clinker_db::DbError::NotFound { .. }) => {
                Ok(())
            }
            Err(e) => Err(db_remote(e)),
        }
    }
}
