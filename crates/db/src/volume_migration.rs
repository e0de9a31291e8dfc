//! Moving a volume to another backend ([`MigrationRepository`],
//! `os-migrate_volume` and a retype with `migration_policy = on-demand`).
//!
//! `migration_status` is the lock of a migration, as in Cinder:
//! `starting` (the API or the retype accepted it) → `migrating` (the
//! temporary volume exists on the destination, `target:<id>`) →
//! `completing` (the data is copied) → `success`, or `error` from any of
//! them. The source volume's journal row carries the migration from the
//! moment it starts, so a volume service that restarts finds it.
//!
//! The completion is one transaction: the source row takes the
//! destination's host and backing, the temporary row goes, the per-type
//! quota moves when the migration is a retype's, the pools' claimed
//! capacity moves, and a journal row (keyed by the temporary volume's id,
//! owned by the source backend) remembers the old backing until the source
//! backend has removed it.

use clinker_types::model::{JournalResource, Volume};
use clinker_types::{VolumeId, VolumeStatus, VolumeTypeId};
use sqlx::AnyConnection;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::Arg;
use crate::quota::charge_quota_with_limits;
use crate::retype::type_facts;
use crate::volumes::service_host_of;
use crate::{ProviderUpdate, VolumeRepository};

/// Migration statuses a new migration may start from (Cinder's
/// `AVAILABLE_MIGRATION_STATUS`).
const MIGRATION_MAY_START: &[&str] = &["deleting", "error", "success", "none"];

/// The journal status of the row that remembers a migrated volume's old
/// backing until the source backend has removed it.
pub const MIGRATION_CLEANUP: &str = "migration_cleanup";

/// The `migration_status` of a migration's temporary volume.
pub fn migration_target_status(source: VolumeId) -> String {
    format!("target:{source}")
}

/// Where and how the temporary volume of a migration is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMigrationTarget {
    /// Its id.
    pub id: VolumeId,
    /// The destination pool (`host@backend#pool`).
    pub pool: String,
    /// The destination service's availability zone.
    pub availability_zone: String,
    /// Its type: the retype's new type, or the source's own.
    pub volume_type_id: VolumeTypeId,
}

/// What a finished migration leaves to remove on the source backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldBacking {
    /// The journal key (the temporary volume's id, gone with its row).
    pub journal_id: VolumeId,
    /// The volume whose old backing it is.
    pub volume_id: VolumeId,
    /// Its size in GiB.
    pub size: i64,
    /// The source pool it lives on.
    pub host: String,
    /// The provider fields it had.
    pub provider_location: Option<String>,
    /// Its export credentials.
    pub provider_auth: Option<String>,
}

impl OldBacking {
    /// The journal detail that stands for it.
    pub fn to_detail(&self) -> serde_json::Value {
        serde_json::json!({
            "migrated_volume_id": self.volume_id.to_string(),
            "size": self.size,
            "host": self.host,
            "provider_location": self.provider_location,
            "provider_auth": self.provider_auth,
        })
    }

    /// Reads it back from a journal row (`None` when malformed).
    pub fn from_detail(journal_id: VolumeId, detail: &serde_json::Value) -> Option<Self> {
        Some(Self {
            journal_id,
            volume_id: detail["migrated_volume_id"].as_str()?.parse().ok()?,
            size: detail["size"].as_i64()?,
            host: detail["host"].as_str()?.to_owned(),
            provider_location: detail["provider_location"].as_str().map(str::to_owned),
            provider_auth: detail["provider_auth"].as_str().map(str::to_owned),
        })
    }
}

/// The end of a failed migration.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedMigration {
    /// The source volume, its status restored and `migration_status = error`.
    pub volume: Volume,
    /// The temporary volume, now `deleting` (journaled on its backend), when
    /// it existed; the caller casts its delete.
    pub target: Option<Volume>,
}

/// Migration repository.
#[async_trait::async_trait]
pub trait MigrationRepository {
    /// Starts `os-migrate_volume`: the volume must be `available` or
    /// `in-use`, not migrating, without snapshots, not replicated, not in a
    /// group, and not already on `dest_host` (a backend, or a pool). Sets
    /// `migration_status = starting` and `previous_status`, `maintenance`
    /// when `lock_volume` and available, and journals `detail` on the
    /// volume's backend.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::InvalidState`] (nothing changed).
    async fn begin_volume_migration(
        &self,
        volume_id: VolumeId,
        dest_host: &str,
        lock_volume: bool,
        detail: serde_json::Value,
    ) -> Result<Volume, DbError>;

    /// Starts the migration of a `retyping` volume (policy `on-demand`):
    /// `migration_status = starting`, its journal detail replaced by
    /// `detail`.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless retyping and free to migrate, or
    /// when it has snapshots.
    async fn begin_retype_migration(
        &self,
        volume_id: VolumeId,
        detail: serde_json::Value,
    ) -> Result<Volume, DbError>;

    /// Inserts the temporary volume on the destination (`creating`,
    /// `target:<source>`, not counted in quota, its capacity claimed on the
    /// destination pool, journaled there) and moves the source from
    /// `starting` to `migrating`, in one transaction.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless the source is `starting`.
    async fn create_migration_target(
        &self,
        source_id: VolumeId,
        target: NewMigrationTarget,
    ) -> Result<Volume, DbError>;

    /// Compare-and-swap of `migration_status` (`migrating → completing`).
    ///
    /// # Errors
    /// [`DbError::InvalidState`] when it is not `from`.
    async fn cas_migration_status(
        &self,
        volume_id: VolumeId,
        from: &str,
        to: &str,
    ) -> Result<Volume, DbError>;

    /// The temporary volume of `source_id`'s migration, if any.
    ///
    /// # Errors
    /// Database failures.
    async fn migration_target_of(&self, source_id: VolumeId) -> Result<Option<Volume>, DbError>;

    /// Completes a `completing` migration in one transaction: the source
    /// takes the destination's host, zone and `update`'s backing, the new
    /// type when `new_type_id` (with its per-type quota moved), its status
    /// back and `migration_status = success`; the temporary row goes; the
    /// pools' claims move; the old backing is journaled on the source
    /// backend.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] when either row is not where the migration
    /// left it.
    async fn finish_volume_migration(
        &self,
        source_id: VolumeId,
        target_id: VolumeId,
        new_type_id: Option<VolumeTypeId>,
        update: ProviderUpdate,
    ) -> Result<(Volume, OldBacking), DbError>;

    /// Forgets an old backing the source backend has removed.
    ///
    /// # Errors
    /// Database failures.
    async fn finish_migration_cleanup(&self, journal_id: VolumeId) -> Result<(), DbError>;

    /// Ends a migration that failed before its completion: the source gets
    /// `migration_status = error` and its status back (a retype is
    /// abandoned with it), its journal row goes; the temporary volume, if
    /// any, becomes `deleting` on its backend.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] when the source is not migrating.
    async fn fail_volume_migration(&self, source_id: VolumeId) -> Result<FailedMigration, DbError>;
}

/// The status a migration gives back: the one before `retyping` or
/// `maintenance`, any other unchanged.
fn restored_status(volume: &Volume) -> VolumeStatus {
    match volume.status {
        VolumeStatus::Retyping | VolumeStatus::Maintenance => volume
            .previous_status
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(VolumeStatus::Available),
        other => other,
    }
}

/// Whether `dest` names the backend or pool `current` lives on.
fn same_place(current: Option<&str>, dest: &str) -> bool {
    let Some(current) = current else {
        return false;
    };
    if dest.contains('#') {
        current == dest
    } else {
        service_host_of(current) == dest
    }
}

impl Db {
    async fn volume_has_snapshots(
        &self,
        conn: &mut AnyConnection,
        id: VolumeId,
    ) -> Result<bool, DbError> {
        let count: i64 =
            sqlx::query_scalar(self.q("SELECT COUNT(*) FROM snapshots WHERE volume_id = ?"))
                .bind(id.to_string())
                .fetch_one(&mut *conn)
                .await?;
        Ok(count > 0)
    }

    async fn target_in_tx(
        &self,
        conn: &mut AnyConnection,
        source_id: VolumeId,
    ) -> Result<Option<Volume>, DbError> {
        let id: Option<String> =
            sqlx::query_scalar(self.q("SELECT id FROM volumes WHERE migration_status = ?"))
                .bind(migration_target_status(source_id))
                .fetch_optional(&mut *conn)
                .await?;
        match id.and_then(|i| i.parse::<VolumeId>().ok()) {
            Some(id) => Ok(Some(self.lock_volume(conn, id).await?)),
            None => Ok(None),
        }
    }

    /// `migration_status` of `id` is `from`: set it to `to` with `extra`.
    async fn set_migration_status(
        &self,
        conn: &mut AnyConnection,
        volume: &Volume,
        to: &str,
        status: VolumeStatus,
        extra_sets: &str,
        mut extra_args: Vec<Arg>,
    ) -> Result<(), DbError> {
        let mut args = vec![Arg::Text(to.to_owned())];
        args.append(&mut extra_args);
        self.cas_volume_status(
            conn,
            volume.id,
            &[volume.status],
            status,
            &format!(", migration_status = ?{extra_sets}"),
            args,
        )
        .await
    }
}

#[async_trait::async_trait]
impl MigrationRepository for Db {
    async fn begin_volume_migration(
        &self,
        volume_id: VolumeId,
        dest_host: &str,
        lock_volume: bool,
        detail: serde_json::Value,
    ) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, volume_id).await?;
            let refused =
                || DbError::InvalidState(format!("volume {volume_id} cannot be migrated now"));
            if !matches!(volume.status, VolumeStatus::Available | VolumeStatus::InUse) {
                return Err(refused());
            }
            let free = volume
                .migration_status
                .as_deref()
                .is_none_or(|m| MIGRATION_MAY_START.contains(&m));
            let replicated = volume
                .replication_status
                .as_deref()
                .is_some_and(|r| !matches!(r, "disabled" | "not-capable"));
            let grouped = volume.group_id.is_some() || volume.consistencygroup_id.is_some();
            if !free
                || replicated
                || grouped
                || same_place(volume.host.as_deref(), dest_host)
                || volume.host.is_none()
                || self.volume_has_snapshots(&mut tx, volume_id).await?
            {
                return Err(refused());
            }
            let status = if lock_volume && volume.status == VolumeStatus::Available {
                VolumeStatus::Maintenance
            } else {
                volume.status
            };
            self.set_migration_status(
                &mut tx,
                &volume,
                "starting",
                status,
                ", previous_status = ?",
                vec![Arg::Text(volume.status.as_str().to_owned())],
            )
            .await?;
            self.journal_volume(
                &mut tx,
                volume_id,
                status,
                volume.host.as_deref(),
                Some(detail.clone()),
            )
            .await
        })?;
        self.get_volume(volume_id).await
    }

    async fn begin_retype_migration(
        &self,
        volume_id: VolumeId,
        detail: serde_json::Value,
    ) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, volume_id).await?;
            let free = volume
                .migration_status
                .as_deref()
                .is_none_or(|m| MIGRATION_MAY_START.contains(&m));
            if volume.status != VolumeStatus::Retyping || !free {
                return Err(DbError::InvalidState(format!(
                    "volume {volume_id} is {} and cannot start a migration",
                    volume.status
                )));
            }
            if self.volume_has_snapshots(&mut tx, volume_id).await? {
                return Err(DbError::InvalidState(
                    "Volume must not have snapshots.".into(),
                ));
            }
            self.set_migration_status(&mut tx, &volume, "starting", volume.status, "", Vec::new())
                .await?;
            self.journal_volume(
                &mut tx,
                volume_id,
                VolumeStatus::Retyping,
                volume.host.as_deref(),
                Some(detail.clone()),
            )
            .await
        })?;
        self.get_volume(volume_id).await
    }

    async fn create_migration_target(
        &self,
        source_id: VolumeId,
        target: NewMigrationTarget,
    ) -> Result<Volume, DbError> {
        let now = self.now().as_micros();
        in_transaction!(self, |tx| {
            let source = self.lock_volume(&mut tx, source_id).await?;
            if source.migration_status.as_deref() != Some("starting") {
                return Err(DbError::InvalidState(format!(
                    "volume {source_id} is not starting a migration"
                )));
            }
            let (type_name, multiattach) = type_facts(self, &mut tx, target.volume_type_id).await?;
            let new = crate::NewVolume {
                id: target.id,
                user_id: source.user_id.clone(),
                project_id: source.project_id.clone(),
                size: source.size,
                availability_zone: target.availability_zone.clone(),
                display_name: source.display_name.clone(),
                display_description: source.display_description.clone(),
                volume_type_id: target.volume_type_id,
                volume_type_name: type_name,
                snapshot_id: None,
                source_volid: None,
                multiattach,
                bootable: source.bootable,
                group_id: None,
                use_quota: false,
                metadata: source.metadata.clone(),
                glance_metadata: source.glance_metadata.clone(),
                // Cast straight to the destination, never to a scheduler.
                request_spec: None,
            };
            self.insert_new_volume(&mut tx, &new, now).await?;
            sqlx::query(self.q(
                "UPDATE volumes SET host = ?, scheduled_at = ?, migration_status = ? WHERE id = ?",
            ))
            .bind(target.pool.as_str())
            .bind(now)
            .bind(migration_target_status(source_id))
            .bind(target.id.to_string())
            .execute(&mut *tx)
            .await?;
            // The scheduler checked the destination's room when it chose
            // it; the claim keeps `pool_allocations` equal to a recount.
            self.ensure_pool_row(&mut tx, &target.pool).await?;
            sqlx::query(
                self.q(
                    "UPDATE pool_allocations SET allocated_gb = allocated_gb + ? WHERE pool = ?",
                ),
            )
            .bind(source.size)
            .bind(target.pool.as_str())
            .execute(&mut *tx)
            .await?;
            self.journal_volume(
                &mut tx,
                target.id,
                VolumeStatus::Creating,
                Some(target.pool.as_str()),
                None,
            )
            .await?;
            self.set_migration_status(&mut tx, &source, "migrating", source.status, "", Vec::new())
                .await
        })?;
        self.get_volume(target.id).await
    }

    async fn cas_migration_status(
        &self,
        volume_id: VolumeId,
        from: &str,
        to: &str,
    ) -> Result<Volume, DbError> {
        let updated = sqlx::query(self.q(
            "UPDATE volumes SET migration_status = ?, updated_at = ? WHERE id = ? AND migration_status = ?",
        ))
        .bind(to)
        .bind(self.now().as_micros())
        .bind(volume_id.to_string())
        .bind(from)
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(DbError::InvalidState(format!(
                "volume {volume_id} is not {from}"
            )));
        }
        self.get_volume(volume_id).await
    }

    async fn migration_target_of(&self, source_id: VolumeId) -> Result<Option<Volume>, DbError> {
        let id: Option<String> =
            sqlx::query_scalar(self.q("SELECT id FROM volumes WHERE migration_status = ?"))
                .bind(migration_target_status(source_id))
                .fetch_optional(&mut *self.reader().await?)
                .await?;
        match id.and_then(|i| i.parse::<VolumeId>().ok()) {
            Some(id) => match self.get_volume(id).await {
                Ok(v) => Ok(Some(v)),
                Err(DbError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            },
            None => Ok(None),
        }
    }

    async fn finish_volume_migration(
        &self,
        source_id: VolumeId,
        target_id: VolumeId,
        new_type_id: Option<VolumeTypeId>,
        update: ProviderUpdate,
    ) -> Result<(Volume, OldBacking), DbError> {
        let old = in_transaction!(self, |tx| {
            let source = self.lock_volume(&mut tx, source_id).await?;
            let target = self.lock_volume(&mut tx, target_id).await?;
            if source.migration_status.as_deref() != Some("completing")
                || target.migration_status.as_deref()
                    != Some(migration_target_status(source_id).as_str())
                || target.status != VolumeStatus::Available
            {
                return Err(DbError::InvalidState(format!(
                    "volume {source_id} has no migration to {target_id} to complete"
                )));
            }
            let (Some(old_host), Some(new_host)) = (source.host.clone(), target.host.clone())
            else {
                return Err(DbError::InvalidState(format!(
                    "volume {source_id} or {target_id} has no host"
                )));
            };
            let type_id = new_type_id.unwrap_or(source.volume_type_id);
            let (type_name, multiattach) = type_facts(self, &mut tx, type_id).await?;
            if new_type_id.is_some_and(|t| t != source.volume_type_id) {
                let charges = self.retype_charges(&mut tx, &source, &type_name).await?;
                // The new type's room was checked when the retype
                // began (Cinder reserves it then): by now the data is
                // on the destination under the volume's name, so the
                // move is charged as it stands rather than refused.
                let unchecked = std::collections::BTreeMap::new();
                charge_quota_with_limits(self, &mut tx, &source.project_id, &charges, &unchecked)
                    .await?;
            }
            let text = |v: &Option<String>| v.clone().map(Arg::Text).unwrap_or(Arg::Null);
            self.set_migration_status(
                &mut tx,
                &source,
                "success",
                restored_status(&source),
                ", host = ?, availability_zone = ?, provider_location = ?, provider_auth = ?, \
                 provider_id = ?, volume_type_id = ?, multiattach = ?, previous_status = ?, \
                 cluster_name = ?, service_uuid = ?",
                vec![
                    Arg::Text(new_host.clone()),
                    Arg::Text(target.availability_zone.clone()),
                    text(&update.provider_location),
                    text(&update.provider_auth),
                    text(&update.provider_id),
                    Arg::Text(type_id.to_string()),
                    Arg::Int(i64::from(multiattach)),
                    Arg::Text(source.status.as_str().to_owned()),
                    text(&target.cluster_name),
                    text(&target.service_uuid),
                ],
            )
            .await?;
            // The source's claim moves to the destination, where the
            // temporary volume's claim goes with its row.
            sqlx::query(
                self.q(
                    "UPDATE pool_allocations SET allocated_gb = allocated_gb - ? WHERE pool = ?",
                ),
            )
            .bind(source.size)
            .bind(old_host.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                self.q(
                    "UPDATE pool_allocations SET allocated_gb = allocated_gb + ? WHERE pool = ?",
                ),
            )
            .bind(source.size)
            .bind(new_host.as_str())
            .execute(&mut *tx)
            .await?;
            self.delete_volume_rows(&mut *tx, &target).await?;
            self.remove_journal(&mut tx, JournalResource::Volume, &source_id.to_string())
                .await?;
            let old = OldBacking {
                journal_id: target_id,
                volume_id: source_id,
                size: source.size,
                host: old_host.clone(),
                provider_location: source.provider_location.clone(),
                provider_auth: source.provider_auth.clone(),
            };
            self.insert_journal(
                &mut tx,
                JournalResource::Volume,
                &target_id.to_string(),
                MIGRATION_CLEANUP,
                Some(service_host_of(&old_host).as_str()),
                Some(old.to_detail()),
            )
            .await?;
            Ok::<_, DbError>(old)
        })?;
        Ok((self.get_volume(source_id).await?, old))
    }

    async fn finish_migration_cleanup(&self, journal_id: VolumeId) -> Result<(), DbError> {
        sqlx::query(
            self.q(
                "DELETE FROM workers WHERE resource_type = ? AND resource_id = ? AND status = ?",
            ),
        )
        .bind(JournalResource::Volume.as_str())
        .bind(journal_id.to_string())
        .bind(MIGRATION_CLEANUP)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn fail_volume_migration(&self, source_id: VolumeId) -> Result<FailedMigration, DbError> {
        let target_id = in_transaction!(self, |tx| {
            let source = self.lock_volume(&mut tx, source_id).await?;
            if !matches!(
                source.migration_status.as_deref(),
                Some("starting" | "migrating" | "completing")
            ) {
                return Err(DbError::InvalidState(format!(
                    "volume {source_id} is not migrating"
                )));
            }
            let target = self.target_in_tx(&mut tx, source_id).await?;
            let restored = restored_status(&source);
            let clear_previous = if restored == source.status {
                ""
            } else {
                ", previous_status = NULL"
            };
            self.set_migration_status(
                &mut tx,
                &source,
                "error",
                restored,
                clear_previous,
                Vec::new(),
            )
            .await?;
            self.remove_journal(&mut tx, JournalResource::Volume, &source_id.to_string())
                .await?;
            let Some(target) = target else {
                return Ok(None);
            };
            if target.status != VolumeStatus::Deleting {
                self.cas_volume_status(
                    &mut tx,
                    target.id,
                    &[target.status],
                    VolumeStatus::Deleting,
                    "",
                    Vec::new(),
                )
                .await?;
            }
            self.journal_volume(
                &mut tx,
                target.id,
                VolumeStatus::Deleting,
                target.host.as_deref(),
                Some(serde_json::json!({"cascade": false})),
            )
            .await?;
            Ok::<_, DbError>(Some(target.id))
        })?;
        let target = match target_id {
            Some(id) => Some(self.get_volume(id).await?),
            None => None,
        };
        Ok(FailedMigration {
            volume: self.get_volume(source_id).await?,
            target,
        })
    }
}
