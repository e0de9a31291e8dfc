//! Moving a volume to another backend (Cinder's `VolumeManager.migrate_volume`,
//! `_migrate_volume_generic`, `migrate_volume_completion` and
//! `update_migrated_volume`).
//!
//! Host-assisted ("generic") migration, run by the source backend's
//! manager:
//! 1. the temporary volume's row is inserted on the destination pool
//!    (`migration_status = target:<id>`, outside quota, capacity claimed)
//!    and its create is cast to the destination like any other create;
//! 2. once it is `available`, both volumes are connected to this host and
//!    the data is copied, skipping zero blocks so holes stay holes; only
//!    local paths are copied (the file backend's `local` exports), any
//!    other pair fails the migration cleanly, with a user message;
//! 3. `completing`: the destination renames the temporary backing to the
//!    volume's name (`update_migrated_volume`), then one transaction moves
//!    the row (host, backing, type and quota for a retype, claims) and drops
//!    the temporary row, journaling the old backing on this backend;
//! 4. the old backing is removed and its journal row with it.
//!
//! Every step before 3 fails back to the volume as it was (`migration_status
//! = error`, its status restored, the temporary volume deleted on its
//! backend). A restart settles what a crash interrupted: before
//! `completing` the migration fails; at `completing` it is finished (the
//! rename is idempotent); an old backing still journaled is removed.
//! Attached volumes would need Nova's `swap_volume`; that path is refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clinker_db::{DbError, MIGRATION_CLEANUP, NewMigrationTarget, OldBacking, ProviderUpdate};
use clinker_drivers::{DriverError, VolumeSpec};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{
    CreateVolumeArgs, DeleteVolumeArgs, InitializeConnectionArgs, MigrateVolumeArgs,
    MigrateVolumeCompletionArgs, MigratedVolumeUpdate, RemoveExportArgs, TerminateConnectionArgs,
    UpdateMigratedVolumeArgs,
};
use clinker_types::connection::{ConnectionInfo, Connector};
use clinker_types::message_field::{self as mf, Detail};
use clinker_types::model::{JournalEntry, Volume};
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::{ErrorKind, Host, RemoteError, VolumeId, VolumeStatus, VolumeTypeId};
use serde_json::{Value, json};

use crate::manager::{VolumeManager, db_remote, volume_spec};
use crate::usage::volume_payload;

/// How long the destination may take to create the temporary volume
/// (Cinder's `migration_create_volume_timeout_secs`).
const CREATE_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest pause between two looks at the temporary volume.
const POLL_CAP: Duration = Duration::from_secs(2);
/// Copy unit; an all-zero unit is skipped (a hole in a fresh sparse file).
const COPY_CHUNK: usize = 1 << 20;

/// Why a migration stopped, with the user message it leaves.
struct Failure {
    detail: Detail,
    reason: String,
}

impl Failure {
    fn new(detail: Detail, reason: impl Into<String>) -> Self {
        Self {
            detail,
            reason: reason.into(),
        }
    }
}

/// `host@backend` of a pool string.
fn service_host(pool: &str) -> String {
    pool.parse::<Host>()
        .map(|h| h.service_host())
        .unwrap_or_else(|_| pool.to_owned())
}

/// The local path a connection reaches, when it is one this process can
/// open.
fn local_path(info: &ConnectionInfo) -> Option<PathBuf> {
    if info.driver_volume_type != "local" {
        return None;
    }
    let path = PathBuf::from(info.data.get("device_path")?.as_str()?);
    path.exists().then_some(path)
}

/// Copies `src` into `dst` (a volume of the same size), leaving zero
/// chunks unwritten when `dst` is a regular file (a freshly created sparse
/// file reads zero there already), so holes stay holes. Returns the bytes
/// written.
fn copy_keeping_holes(src: &Path, dst: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut input = std::fs::File::open(src)?;
    let mut output = std::fs::OpenOptions::new().write(true).open(dst)?;
    let sparse = output.metadata()?.is_file();
    let mut buf = vec![0u8; COPY_CHUNK];
    let zeros = vec![0u8; COPY_CHUNK];
    let mut offset = 0u64;
    let mut written = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = input.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        let chunk = &buf[..filled];
        // A slice comparison is a memcmp: fast even in debug builds.
        if !(sparse && chunk == &zeros[..filled]) {
            output.seek(SeekFrom::Start(offset))?;
            output.write_all(chunk)?;
            written += filled as u64;
        }
        offset += filled as u64;
    }
    if sparse && output.metadata()?.len() < offset {
        output.set_len(offset)?;
    }
    output.sync_all()?;
    Ok(written)
}

impl VolumeManager {
    /// The connector of this host, for connecting both sides of a copy.
    fn local_connector(&self) -> Connector {
        let mut connector = Connector::new();
        connector.insert("host".into(), json!(clinker_drivers::local_hostname()));
        connector.insert("multipath".into(), json!(false));
        connector.insert("platform".into(), json!(std::env::consts::ARCH));
        connector.insert("os_type".into(), json!(std::env::consts::OS));
        connector
    }

    async fn record_migration_message(
        &self,
        context: &RequestContext,
        volume: &Volume,
        detail: Detail,
    ) {
        self.record_message(
            context,
            &volume.project_id,
            mf::RESOURCE_VOLUME,
            volume.id.to_string(),
            mf::MIGRATE_VOLUME,
            detail,
        )
        .await;
    }

    /// Serves `migrate_volume` (and a retype's migration): the whole
    /// host-assisted migration, start to finish.
    pub(crate) async fn migrate_volume(
        &self,
        context: &RequestContext,
        args: MigrateVolumeArgs,
    ) -> Result<(), RemoteError> {
        let volume = match self.db.get_volume(args.volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.migration_status.as_deref() != Some("starting") {
            return Ok(());
        }
        match self.run_migration(context, &volume, &args).await {
            Ok(()) => Ok(()),
            Err(failure) => {
                tracing::warn!(volume_id = %volume.id, destination = %args.host,
                    reason = %failure.reason, "volume migration failed");
                self.fail_migration(context, &volume, failure.detail).await
            }
        }
    }

    async fn run_migration(
        &self,
        context: &RequestContext,
        volume: &Volume,
        args: &MigrateVolumeArgs,
    ) -> Result<(), Failure> {
        self.driver_ready()
            .map_err(|e| Failure::new(mf::DRIVER_NOT_INITIALIZED, e.to_string()))?;
        let attached = !volume.attachments.is_empty()
            || volume.status == VolumeStatus::InUse
            || volume.previous_status.as_deref() == Some("in-use");
        if attached {
            return Err(Failure::new(
                mf::MIGRATION_ATTACHED_UNSUPPORTED,
                "an attached volume needs Nova's swap_volume",
            ));
        }
        let target = self.create_target(context, volume, args).await?;
        self.wait_for_target(target.id).await?;
        let target = self
            .db
            .get_volume(target.id)
            .await
            .map_err(|e| Failure::new(mf::MIGRATION_TARGET_CREATE_FAILED, e.to_string()))?;
        self.copy_to_target(context, volume, &target).await?;
        match self
            .db
            .cas_migration_status(volume.id, "migrating", "completing")
            .await
        {
            Ok(_) => {}
            // Reset or failed by someone else meanwhile: theirs to settle.
            Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(Failure::new(mf::UNKNOWN_ERROR, e.to_string())),
        }
        self.complete_migration(context, volume.id, &target, args.new_type_id)
            .await
    }

    /// Inserts the temporary volume and casts its create to the destination.
    async fn create_target(
        &self,
        context: &RequestContext,
        volume: &Volume,
        args: &MigrateVolumeArgs,
    ) -> Result<Volume, Failure> {
        let dest_service = service_host(&args.host);
        let zone = match self
            .db
            .list_services(Some(&dest_service), Some("cinder-volume"))
            .await
        {
            Ok(found) => found
                .into_iter()
                .next()
                .map(|s| s.availability_zone)
                .unwrap_or_else(|| volume.availability_zone.clone()),
            Err(e) => return Err(Failure::new(mf::UNKNOWN_ERROR, e.to_string())),
        };
        let type_id = args.new_type_id.unwrap_or(volume.volume_type_id);
        let target = self
            .db
            .create_migration_target(
                volume.id,
                NewMigrationTarget {
                    id: VolumeId::new_random(),
                    pool: args.host.clone(),
                    availability_zone: zone,
                    volume_type_id: type_id,
                },
            )
            .await
            .map_err(|e| Failure::new(mf::MIGRATION_TARGET_CREATE_FAILED, e.to_string()))?;
        let extra_specs = self
            .db
            .get_volume_type(type_id)
            .await
            .map(|t| t.extra_specs)
            .unwrap_or_default();
        let cast = CreateVolumeArgs {
            volume_id: target.id,
            request_spec: RequestSpec {
                volume_id: target.id,
                size: target.size,
                availability_zone: Some(target.availability_zone.clone()),
                availability_zones: Vec::new(),
                volume_type: TypeSpec {
                    id: Some(type_id),
                    name: target.volume_type_name.clone(),
                    extra_specs,
                },
                snapshot_id: None,
                source_volid: None,
                image_id: None,
                backup_id: None,
                resource_backend: Some(args.host.clone()),
                project_id: target.project_id.clone(),
                scheduler_hints: Default::default(),
            },
            filter_properties: FilterProperties::default(),
            allow_reschedule: false,
        };
        if let Err(e) = self
            .volume_rpc
            .create_volume(context, &args.host, &cast)
            .await
        {
            return Err(Failure::new(
                mf::MIGRATION_TARGET_CREATE_FAILED,
                format!("cannot reach the destination {}: {e}", args.host),
            ));
        }
        tracing::info!(volume_id = %volume.id, target_id = %target.id, destination = %args.host,
            "migration: creating the volume on the destination");
        Ok(target)
    }

    /// Waits for the destination to create the temporary volume.
    async fn wait_for_target(&self, target_id: VolumeId) -> Result<(), Failure> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.db.get_volume(target_id).await {
                Ok(t) if t.status == VolumeStatus::Available => return Ok(()),
                Ok(t) if t.status != VolumeStatus::Creating => {
                    return Err(Failure::new(
                        mf::MIGRATION_TARGET_CREATE_FAILED,
                        format!("the new volume on the destination is {}", t.status),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Failure::new(
                        mf::MIGRATION_TARGET_CREATE_FAILED,
                        e.to_string(),
                    ));
                }
            }
            if started.elapsed() > CREATE_TIMEOUT {
                return Err(Failure::new(
                    mf::MIGRATION_TARGET_CREATE_FAILED,
                    "timeout creating the new volume on the destination",
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_CAP);
        }
    }

    /// Connects both volumes to this host and copies the data.
    async fn copy_to_target(
        &self,
        context: &RequestContext,
        volume: &Volume,
        target: &Volume,
    ) -> Result<(), Failure> {
        let dest = target.host.clone().unwrap_or_default();
        let connector = self.local_connector();
        let source_info = self
            .initialize_connection(
                context,
                InitializeConnectionArgs {
                    volume_id: volume.id,
                    connector: connector.clone(),
                },
            )
            .await
            .map_err(|e| Failure::new(mf::MIGRATION_COPY_FAILED, e.message))?;
        let dest_info = match self
            .volume_rpc
            .initialize_connection(
                context,
                &dest,
                &InitializeConnectionArgs {
                    volume_id: target.id,
                    connector: connector.clone(),
                },
            )
            .await
        {
            Ok(info) => info,
            Err(e) => {
                self.disconnect_source(context, volume.id, &connector).await;
                return Err(Failure::new(mf::MIGRATION_COPY_FAILED, e.to_string()));
            }
        };
        let copied = match (local_path(&source_info), local_path(&dest_info)) {
            (Some(src), Some(dst)) => {
                let started = Instant::now();
                let result = tokio::task::spawn_blocking(move || copy_keeping_holes(&src, &dst))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                match result {
                    Ok(written) => {
                        tracing::info!(volume_id = %volume.id, target_id = %target.id, written,
                            elapsed_ms = started.elapsed().as_millis(), "migration: data copied");
                        Ok(())
                    }
                    Err(e) => Err(Failure::new(mf::MIGRATION_COPY_FAILED, e)),
                }
            }
            _ => Err(Failure::new(
                mf::MIGRATION_COPY_UNSUPPORTED,
                format!(
                    "host-assisted copy needs both volumes as local paths; got {} and {}",
                    source_info.driver_volume_type, dest_info.driver_volume_type
                ),
            )),
        };
        self.disconnect_source(context, volume.id, &connector).await;
        let terminate = TerminateConnectionArgs {
            volume_id: target.id,
            connector: Some(connector),
            force: false,
        };
        if let Err(e) = self
            .volume_rpc
            .terminate_connection(context, &dest, &terminate)
            .await
        {
            tracing::warn!(target_id = %target.id, error = %e, "migration: cannot disconnect the new volume");
        }
        let remove = RemoveExportArgs {
            volume_id: target.id,
        };
        if let Err(e) = self.volume_rpc.remove_export(context, &dest, &remove).await {
            tracing::warn!(target_id = %target.id, error = %e, "migration: cannot remove the new volume's export");
        }
        copied
    }

    async fn disconnect_source(
        &self,
        context: &RequestContext,
        volume_id: VolumeId,
        connector: &Connector,
    ) {
        let args = TerminateConnectionArgs {
            volume_id,
            connector: Some(connector.clone()),
            force: false,
        };
        if let Err(e) = self.terminate_connection(context, args).await {
            tracing::warn!(volume_id = %volume_id, error = %e.message, "migration: cannot disconnect the volume");
        }
        let remove = RemoveExportArgs { volume_id };
        if let Err(e) = self.remove_export(context, remove).await {
            tracing::warn!(volume_id = %volume_id, error = %e.message, "migration: cannot remove the volume's export");
        }
    }

    /// Step 3 and 4 of a `completing` migration: the rename on the
    /// destination, the one transaction, the old backing's removal.
    async fn complete_migration(
        &self,
        context: &RequestContext,
        volume_id: VolumeId,
        target: &Volume,
        new_type_id: Option<VolumeTypeId>,
    ) -> Result<(), Failure> {
        let dest = target.host.clone().unwrap_or_default();
        let update = self
            .volume_rpc
            .update_migrated_volume(
                context,
                &dest,
                &UpdateMigratedVolumeArgs {
                    volume_id,
                    new_volume_id: target.id,
                },
            )
            .await
            .map_err(|e| Failure::new(mf::MIGRATION_COMPLETION_FAILED, e.to_string()))?;
        let provider = ProviderUpdate {
            provider_location: update.provider_location,
            provider_auth: update.provider_auth,
            provider_id: update.provider_id,
        };
        let (done, old) = match self
            .db
            .finish_volume_migration(volume_id, target.id, new_type_id, provider)
            .await
        {
            Ok(finished) => finished,
            Err(DbError::InvalidState(e)) => {
                // The rows moved under us (an administrator reset them):
                // the data is safe under the volume's name on the
                // destination; nothing here may guess further.
                tracing::error!(volume_id = %volume_id, error = %e, "migration: cannot complete; leaving the rows as they are");
                return Ok(());
            }
            // A database outage: the journal keeps `completing`, and the
            // next recovery pass finishes it (the rename is idempotent).
            Err(e) => {
                tracing::error!(volume_id = %volume_id, error = %e, "migration: completion not recorded yet");
                return Ok(());
            }
        };
        tracing::info!(volume_id = %volume_id, host = ?done.host, "volume migrated");
        if new_type_id.is_some() {
            self.notifier
                .info("volume.retype", volume_payload(&done))
                .await;
        }
        self.remove_old_backing(&old).await;
        Ok(())
    }

    /// Removes a migrated volume's old backing from this backend and
    /// forgets it; on failure the journal keeps it for the next pass.
    pub(crate) async fn remove_old_backing(&self, old: &OldBacking) {
        if self.driver_ready().is_err() {
            return;
        }
        let spec = VolumeSpec {
            id: old.volume_id,
            name: clinker_types::model::volume_name(old.volume_id),
            size_gb: old.size,
            provider_location: old.provider_location.clone(),
            provider_auth: old.provider_auth.clone(),
        };
        let removed = async {
            match self.driver.remove_export(&spec).await {
                Ok(()) | Err(DriverError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            self.driver.delete_volume(&spec).await
        }
        .await;
        match removed {
            Ok(()) => {
                if let Err(e) = self.db.finish_migration_cleanup(old.journal_id).await {
                    tracing::warn!(volume_id = %old.volume_id, error = %e, "migration: old backing removed, journal row left");
                }
            }
            Err(e) => {
                tracing::warn!(volume_id = %old.volume_id, error = %e, "migration: cannot remove the old backing yet");
            }
        }
    }

    /// Ends a failed migration: the volume as it was, the temporary volume
    /// deleted on its backend, a user message.
    async fn fail_migration(
        &self,
        context: &RequestContext,
        volume: &Volume,
        detail: Detail,
    ) -> Result<(), RemoteError> {
        let failed = match self.db.fail_volume_migration(volume.id).await {
            Ok(f) => f,
            Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if let Some(target) = &failed.target {
            self.cast_target_delete(context, target).await;
        }
        self.record_migration_message(context, volume, detail).await;
        if volume.status == VolumeStatus::Retyping {
            self.record_message(
                context,
                &volume.project_id,
                mf::RESOURCE_VOLUME,
                volume.id.to_string(),
                mf::RETYPE_VOLUME,
                detail,
            )
            .await;
        }
        Ok(())
    }

    async fn cast_target_delete(&self, context: &RequestContext, target: &Volume) {
        let Some(host) = &target.host else { return };
        let args = DeleteVolumeArgs {
            volume_id: target.id,
            cascade: false,
        };
        // A lost cast is not lost work: the journal row makes the
        // destination's recovery delete it.
        if let Err(e) = self.volume_rpc.delete_volume(context, host, &args).await {
            tracing::warn!(target_id = %target.id, error = %e, "migration: cannot cast the temporary volume's delete");
        }
    }

    /// A retype whose volume must move (`migration_policy = on-demand`):
    /// Cinder refuses volumes with snapshots, then migrates with the new
    /// type, which the completion applies with its quota.
    pub(crate) async fn migrate_for_retype(
        &self,
        context: &RequestContext,
        volume: &Volume,
        args: &clinker_rpc::volume::RetypeArgs,
    ) -> Result<(), RemoteError> {
        // The best pool for the new type is this backend's own, and the
        // driver declined the change in place: a migration within one
        // backend would need the volume's name twice on the same storage.
        if service_host(&args.host) == self.host() {
            tracing::info!(volume_id = %volume.id, "retype needs a migration within the same backend; not done");
            return self
                .abandon_retype(context, volume, mf::RETYPE_REQUIRES_MIGRATION)
                .await;
        }
        let snapshots = self
            .db
            .snapshots_of_volume(volume.id)
            .await
            .map_err(db_remote)?;
        if !snapshots.is_empty() {
            return self
                .abandon_retype(context, volume, mf::VOLUME_HAS_SNAPSHOTS)
                .await;
        }
        let detail = json!({
            "new_type_id": args.new_type_id.to_string(),
            "migration_policy": args.migration_policy.as_str(),
            "migration": {"host": args.host, "force_host_copy": false},
        });
        match self.db.begin_retype_migration(volume.id, detail).await {
            Ok(_) => {}
            Err(DbError::InvalidState(reason)) => {
                tracing::info!(volume_id = %volume.id, %reason, "retype cannot migrate the volume");
                return self
                    .abandon_retype(context, volume, mf::VOLUME_INVALID_STATE)
                    .await;
            }
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        }
        tracing::info!(volume_id = %volume.id, destination = %args.host, "retype migrates the volume");
        let migrate = MigrateVolumeArgs {
            volume_id: volume.id,
            host: args.host.clone(),
            force_host_copy: false,
            new_type_id: Some(args.new_type_id),
        };
        self.migrate_volume(context, migrate).await
    }

    /// Serves `migrate_volume_completion` (Nova's call after swapping an
    /// attached volume, or its error). A call is not left waiting behind
    /// another operation on the volume: it is refused.
    pub(crate) async fn migrate_volume_completion(
        &self,
        context: &RequestContext,
        args: MigrateVolumeCompletionArgs,
    ) -> Result<VolumeId, RemoteError> {
        let Some(_active) = self.begin(args.volume_id.to_string())? else {
            return Err(RemoteError::new(
                ErrorKind::InvalidState,
                format!("volume {} is busy with another operation", args.volume_id),
            ));
        };
        let volume = self
            .db
            .get_volume(args.volume_id)
            .await
            .map_err(db_remote)?;
        let target = self
            .db
            .get_volume(args.new_volume_id)
            .await
            .map_err(db_remote)?;
        if args.error {
            tracing::info!(volume_id = %volume.id, target_id = %target.id, "migration completion reports an error; cleaning up");
            self.fail_migration(context, &volume, mf::MIGRATION_COPY_FAILED)
                .await?;
            return Ok(volume.id);
        }
        self.driver_ready()
            .map_err(|e| RemoteError::new(e.kind(), e.to_string()))?;
        if volume.migration_status.as_deref() != Some("completing") {
            self.db
                .cas_migration_status(volume.id, "migrating", "completing")
                .await
                .map_err(db_remote)?;
        }
        let new_type_id = self.migration_new_type(volume.id).await;
        if let Err(failure) = self
            .complete_migration(context, volume.id, &target, new_type_id)
            .await
        {
            tracing::warn!(volume_id = %volume.id, reason = %failure.reason, "migration completion failed");
            self.fail_migration(context, &volume, failure.detail)
                .await?;
            return Err(RemoteError::new(ErrorKind::Internal, failure.reason));
        }
        Ok(volume.id)
    }

    /// The retype's new type recorded with a migration, if it is one.
    async fn migration_new_type(&self, volume_id: VolumeId) -> Option<VolumeTypeId> {
        let detail = self
            .db
            .journal_detail(&volume_id.to_string())
            .await
            .ok()
            .flatten()?;
        detail["migration"].as_object()?;
        detail["new_type_id"].as_str()?.parse().ok()
    }

    /// Serves `update_migrated_volume` on the destination: the temporary
    /// volume's backing takes the migrated volume's name.
    pub(crate) async fn update_migrated_volume(
        &self,
        _context: &RequestContext,
        args: UpdateMigratedVolumeArgs,
    ) -> Result<MigratedVolumeUpdate, RemoteError> {
        let Some(_active) = self.gate.enter() else {
            return Err(RemoteError::new(
                ErrorKind::Unavailable,
                "volume service is shutting down",
            ));
        };
        self.driver_ready()
            .map_err(|e| RemoteError::new(e.kind(), e.to_string()))?;
        let volume = self
            .db
            .get_volume(args.volume_id)
            .await
            .map_err(db_remote)?;
        let target = self
            .db
            .get_volume(args.new_volume_id)
            .await
            .map_err(db_remote)?;
        let mut spec = volume_spec(&volume);
        spec.provider_location = None;
        spec.provider_auth = None;
        let update = self
            .driver
            .update_migrated_volume(&spec, &volume_spec(&target))
            .await
            .map_err(|e| RemoteError::new(e.kind(), e.to_string()))?;
        Ok(MigratedVolumeUpdate {
            provider_location: update.provider_location.or(target.provider_location),
            provider_auth: update.provider_auth.or(target.provider_auth),
            provider_id: update.provider_id.or(target.provider_id),
        })
    }

    /// Settles a journal row about a migration after a restart or a lost
    /// message; returns whether the row was one.
    pub(crate) async fn settle_migration(
        &self,
        context: &RequestContext,
        entry: &JournalEntry,
    ) -> Result<bool, RemoteError> {
        if entry.status == MIGRATION_CLEANUP {
            let Ok(journal_id) = entry.resource_id.parse::<VolumeId>() else {
                return Ok(true);
            };
            let detail = self
                .db
                .journal_detail(&entry.resource_id)
                .await
                .map_err(db_remote)?
                .unwrap_or(Value::Null);
            match OldBacking::from_detail(journal_id, &detail) {
                Some(old) => {
                    tracing::info!(volume_id = %old.volume_id, "removing the old backing of a migrated volume");
                    self.remove_old_backing(&old).await;
                }
                None => {
                    tracing::warn!(resource = %entry.resource_id, "malformed migration cleanup entry; dropping it");
                    let _ = self.db.finish_migration_cleanup(journal_id).await;
                }
            }
            return Ok(true);
        }
        let Ok(volume_id) = entry.resource_id.parse::<VolumeId>() else {
            return Ok(false);
        };
        let volume = match self.db.get_volume(volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(db_remote(e)),
        };
        match volume.migration_status.as_deref() {
            Some("starting" | "migrating") => {
                tracing::warn!(volume_id = %volume.id, "migration was interrupted; failing it");
                self.fail_migration(context, &volume, mf::SERVICE_RESTARTED)
                    .await?;
                Ok(true)
            }
            Some("completing") => {
                if !self.health().up {
                    return Ok(true);
                }
                let target = self
                    .db
                    .migration_target_of(volume.id)
                    .await
                    .map_err(db_remote)?;
                let new_type_id = self.migration_new_type(volume.id).await;
                let outcome = match &target {
                    Some(t) => {
                        tracing::info!(volume_id = %volume.id, "resuming an interrupted migration completion");
                        self.complete_migration(context, volume.id, t, new_type_id)
                            .await
                    }
                    None => Err(Failure::new(
                        mf::SERVICE_RESTARTED,
                        "the temporary volume is gone",
                    )),
                };
                if let Err(failure) = outcome {
                    tracing::warn!(volume_id = %volume.id, reason = %failure.reason, "interrupted migration cannot complete");
                    self.fail_migration(context, &volume, failure.detail)
                        .await?;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    use clinker_db::{NewMigrationTarget, NewVolumeType, ProviderUpdate, VolumeQuery};
    use clinker_rpc::RequestContext;
    use clinker_rpc::volume::{
        MigrateVolumeArgs, MigrationPolicy, RetypeArgs, UpdateMigratedVolumeArgs,
    };
    use clinker_types::{VolumeId, VolumeStatus, VolumeTypeId};

    use crate::test_support::{TwoBackends, read_at};

    const PATTERN: &[u8] = b"clinker-migration-pattern";

    fn ctx() -> RequestContext {
        RequestContext::internal("test")
    }

    async fn backend_type(t: &TwoBackends, name: &str, backend: &str) -> VolumeTypeId {
        t.db.create_volume_type(NewVolumeType {
            name: name.into(),
            description: None,
            is_public: true,
            extra_specs: BTreeMap::from([("volume_backend_name".to_owned(), backend.to_owned())]),
        })
        .await
        .unwrap()
        .id
    }

    async fn volumes(t: &TwoBackends) -> Vec<clinker_types::model::Volume> {
        t.db.list_volumes(&VolumeQuery::default()).await.unwrap()
    }

    /// Waits for the temporary volume of a failed migration to be gone.
    async fn wait_for_one_volume(t: &TwoBackends) {
        for _ in 0..200 {
            if volumes(t).await.len() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("temporary volume not deleted: {:?}", volumes(t).await);
    }

    async fn assert_counters_match_recount(t: &TwoBackends) {
        let usage: BTreeMap<String, i64> =
            t.db.quota_usages("p1")
                .await
                .unwrap()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect();
        let recount: BTreeMap<String, i64> =
            t.db.recount_usages("p1")
                .await
                .unwrap()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect();
        assert_eq!(usage, recount);
        let claimed: BTreeMap<String, i64> =
            t.db.pool_allocations()
                .await
                .unwrap()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect();
        assert_eq!(claimed, t.db.recount_pool_allocations().await.unwrap());
    }

    async fn journal_is_empty(t: &TwoBackends) -> bool {
        t.db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
            && t.db
                .journal_for_backend("node1@file2")
                .await
                .unwrap()
                .is_empty()
    }

    fn source_file(t: &TwoBackends, id: VolumeId) -> std::path::PathBuf {
        t.source_dir.path().join(format!("volume-{id}"))
    }

    fn dest_file(t: &TwoBackends, id: VolumeId) -> std::path::PathBuf {
        t.dest_dir.path().join(format!("volume-{id}"))
    }

    #[tokio::test]
    async fn a_retype_migrates_the_volume_its_data_type_and_quota() {
        let t = TwoBackends::new(None).await;
        let gold = backend_type(&t, "gold", "file2").await;
        let v = t.volume("__DEFAULT__", PATTERN).await;
        t.db.begin_volume_retype(v, gold, serde_json::json!({}))
            .await
            .unwrap();
        let args = RetypeArgs {
            volume_id: v,
            new_type_id: gold,
            host: "node1@file2#file2".into(),
            migration_policy: MigrationPolicy::OnDemand,
        };
        t.source.retype(&ctx(), args).await.unwrap();

        let moved = t.db.get_volume(v).await.unwrap();
        assert_eq!(moved.status, VolumeStatus::Available);
        assert_eq!(moved.migration_status.as_deref(), Some("success"));
        assert_eq!(moved.host.as_deref(), Some("node1@file2#file2"));
        assert_eq!(moved.volume_type_id, gold);
        let path = dest_file(&t, v);
        assert_eq!(
            moved.provider_location.as_deref(),
            Some(path.to_str().unwrap())
        );
        // The data came along, the holes stayed holes, the old file went.
        assert_eq!(read_at(&path, 1024 * 1024 + 7, PATTERN.len()), PATTERN);
        assert_eq!(read_at(&path, 0, 4096), vec![0; 4096]);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 1 << 30);
        assert!(meta.blocks() * 512 <= 4 << 20, "copy kept holes");
        assert!(!source_file(&t, v).exists());
        assert_eq!(volumes(&t).await.len(), 1);
        assert!(journal_is_empty(&t).await);
        assert_counters_match_recount(&t).await;
        let usage = t.db.quota_usages("p1").await.unwrap();
        assert_eq!(usage.get("volumes_gold"), Some(&1));
        assert_eq!(usage.get("volumes___DEFAULT__"), Some(&0));
    }

    #[tokio::test]
    async fn a_locked_migration_keeps_the_volume_in_maintenance_until_done() {
        let t = TwoBackends::new(None).await;
        let v = t.volume("__DEFAULT__", PATTERN).await;
        let started =
            t.db.begin_volume_migration(v, "node1@file2", true, serde_json::json!({}))
                .await
                .unwrap();
        assert_eq!(started.status, VolumeStatus::Maintenance);
        let args = MigrateVolumeArgs {
            volume_id: v,
            host: "node1@file2#file2".into(),
            force_host_copy: true,
            new_type_id: None,
        };
        t.source.migrate_volume(&ctx(), args).await.unwrap();
        let moved = t.db.get_volume(v).await.unwrap();
        assert_eq!(
            (moved.status, moved.migration_status.as_deref()),
            (VolumeStatus::Available, Some("success"))
        );
        assert_eq!(moved.host.as_deref(), Some("node1@file2#file2"));
        assert_eq!(
            read_at(&dest_file(&t, v), 1024 * 1024 + 7, PATTERN.len()),
            PATTERN
        );
        assert!(journal_is_empty(&t).await);
        assert_counters_match_recount(&t).await;
    }

    #[tokio::test]
    async fn backends_without_a_local_path_fail_the_migration_cleanly() {
        // The destination is the fake driver: nothing this host can open.
        let t = TwoBackends::new(Some(false)).await;
        let gold = backend_type(&t, "gold", "file2").await;
        let v = t.volume("__DEFAULT__", PATTERN).await;
        let before = t.db.get_volume(v).await.unwrap();
        t.db.begin_volume_retype(v, gold, serde_json::json!({}))
            .await
            .unwrap();
        let args = RetypeArgs {
            volume_id: v,
            new_type_id: gold,
            host: "node1@file2#file2".into(),
            migration_policy: MigrationPolicy::OnDemand,
        };
        t.source.retype(&ctx(), args).await.unwrap();
        let after = t.db.get_volume(v).await.unwrap();
        assert_eq!(after.status, VolumeStatus::Available);
        assert_eq!(after.migration_status.as_deref(), Some("error"));
        assert_eq!(
            (after.host, after.volume_type_id),
            (before.host, before.volume_type_id)
        );
        assert_eq!(
            read_at(&source_file(&t, v), 1024 * 1024 + 7, PATTERN.len()),
            PATTERN
        );
        let page = clinker_db::Page::default();
        let messages: Vec<String> =
            t.db.list_messages(None, &page)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.user_message)
                .collect();
        assert!(messages.contains(
            &"migrate volume:The volume's data cannot be copied between these backends by the volume service."
                .to_owned()
        ), "{messages:?}");
        wait_for_one_volume(&t).await;
        assert!(journal_is_empty(&t).await);
        assert_counters_match_recount(&t).await;
    }

    #[tokio::test]
    async fn a_destination_that_cannot_create_fails_the_migration() {
        let t = TwoBackends::new(Some(true)).await;
        let v = t.volume("__DEFAULT__", PATTERN).await;
        t.db.begin_volume_migration(v, "node1@file2", false, serde_json::json!({}))
            .await
            .unwrap();
        let args = MigrateVolumeArgs {
            volume_id: v,
            host: "node1@file2#file2".into(),
            force_host_copy: false,
            new_type_id: None,
        };
        t.source.migrate_volume(&ctx(), args).await.unwrap();
        let after = t.db.get_volume(v).await.unwrap();
        assert_eq!(
            (after.status, after.migration_status.as_deref()),
            (VolumeStatus::Available, Some("error"))
        );
        assert_eq!(after.host.as_deref(), Some("node1@file#file"));
        wait_for_one_volume(&t).await;
        assert!(journal_is_empty(&t).await);
        assert_counters_match_recount(&t).await;
        // A failed migration does not block the next one.
        t.db.begin_volume_migration(v, "node1@file2", false, serde_json::json!({}))
            .await
            .unwrap();
    }

    /// The state a crash leaves between the copy and the completion: the
    /// temporary volume holds the data and the source is `completing`.
    async fn crash_while_completing(t: &TwoBackends, v: VolumeId) -> VolumeId {
        t.db.begin_volume_migration(v, "node1@file2", false, serde_json::json!({}))
            .await
            .unwrap();
        let target =
            t.db.create_migration_target(
                v,
                NewMigrationTarget {
                    id: VolumeId::new_random(),
                    pool: "node1@file2#file2".into(),
                    availability_zone: "nova".into(),
                    volume_type_id: t.db.get_volume(v).await.unwrap().volume_type_id,
                },
            )
            .await
            .unwrap();
        let spec = crate::manager::volume_spec(&target);
        let update = t.dest.driver.create_volume(&spec).await.unwrap();
        t.db.finish_volume_create(
            target.id,
            ProviderUpdate {
                provider_location: update.provider_location,
                ..ProviderUpdate::default()
            },
        )
        .await
        .unwrap();
        std::fs::copy(source_file(t, v), dest_file(t, target.id)).unwrap();
        t.db.cas_migration_status(v, "migrating", "completing")
            .await
            .unwrap();
        target.id
    }

    #[tokio::test]
    async fn a_restart_finishes_a_completing_migration_and_the_sweep_keeps_live_backings() {
        let t = TwoBackends::new(None).await;
        let v = t.volume("__DEFAULT__", PATTERN).await;
        let target = crash_while_completing(&t, v).await;
        // The destination renamed the backing before the crash.
        t.dest
            .update_migrated_volume(
                &ctx(),
                UpdateMigratedVolumeArgs {
                    volume_id: v,
                    new_volume_id: target,
                },
            )
            .await
            .unwrap();
        // Both backends restart: the destination's orphan sweep sees
        // `volume-<v>`, whose row still says it lives on the source, and
        // must keep it; the source finishes the completion.
        t.dest.init_host().await;
        assert!(dest_file(&t, v).exists());
        t.source.init_host().await;
        let moved = t.db.get_volume(v).await.unwrap();
        assert_eq!(
            (moved.status, moved.migration_status.as_deref()),
            (VolumeStatus::Available, Some("success"))
        );
        assert_eq!(moved.host.as_deref(), Some("node1@file2#file2"));
        assert_eq!(
            read_at(&dest_file(&t, v), 1024 * 1024 + 7, PATTERN.len()),
            PATTERN
        );
        assert!(!source_file(&t, v).exists());
        assert!(!dest_file(&t, target).exists());
        assert_eq!(volumes(&t).await.len(), 1);
        assert!(journal_is_empty(&t).await);
        assert_counters_match_recount(&t).await;
    }

    #[tokio::test]
    async fn a_restart_removes_an_old_backing_left_after_the_completion() {
        let t = TwoBackends::new(None).await;
        let v = t.volume("__DEFAULT__", PATTERN).await;
        let target = crash_while_completing(&t, v).await;
        t.dest
            .update_migrated_volume(
                &ctx(),
                UpdateMigratedVolumeArgs {
                    volume_id: v,
                    new_volume_id: target,
                },
            )
            .await
            .unwrap();
        // The completion committed; the crash came before the old file went.
        t.db.finish_volume_migration(v, target, None, ProviderUpdate::default())
            .await
            .unwrap();
        assert!(source_file(&t, v).exists());
        t.source.init_host().await;
        assert!(!source_file(&t, v).exists());
        assert!(dest_file(&t, v).exists());
        assert!(journal_is_empty(&t).await);
    }

    #[tokio::test]
    async fn a_restart_fails_an_interrupted_copy_and_deletes_the_temporary_volume() {
        let t = TwoBackends::new(None).await;
        let v = t.volume("__DEFAULT__", PATTERN).await;
        let gold = backend_type(&t, "gold", "file2").await;
        t.db.begin_volume_retype(v, gold, serde_json::json!({}))
            .await
            .unwrap();
        t.db.begin_retype_migration(v, serde_json::json!({"new_type_id": gold.to_string()}))
            .await
            .unwrap();
        t.db.create_migration_target(
            v,
            NewMigrationTarget {
                id: VolumeId::new_random(),
                pool: "node1@file2#file2".into(),
                availability_zone: "nova".into(),
                volume_type_id: gold,
            },
        )
        .await
        .unwrap();
        t.source.recover(&ctx(), None).await;
        let after = t.db.get_volume(v).await.unwrap();
        assert_eq!(
            (after.status, after.migration_status.as_deref()),
            (VolumeStatus::Available, Some("error"))
        );
        assert_ne!(after.volume_type_id, gold);
        wait_for_one_volume(&t).await;
        assert!(journal_is_empty(&t).await);
        assert_counters_match_recount(&t).await;
        assert_eq!(
            read_at(&source_file(&t, v), 1024 * 1024 + 7, PATTERN.len()),
            PATTERN
        );
    }
}
