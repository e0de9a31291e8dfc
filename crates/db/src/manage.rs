//! Managing existing backend objects and unmanaging volumes and snapshots
//! ([`ManageRepository`]; Cinder's `manage_existing` flows and
//! `delete(unmanage_only=True)`).
//!
//! A managed volume's row is inserted `managing` with size 0, already
//! placed on the backend named in the request, charging one volume (the
//! API's part of Cinder's flow); the manager then records the size the
//! driver reports, charging its gigabytes and claiming the pool capacity
//! (the manager's part), before the driver renames anything. Every step is
//! one transaction, so quota usage always equals a recount.
//!
//! Unmanaging removes the row like a delete does, and in the same
//! transaction records the name the data stays under in
//! `unmanaged_objects`: the start-up orphan sweep never removes a
//! recorded object, and managing it again forgets the record.

use std::collections::BTreeMap;

use clinker_types::model::{JournalResource, Snapshot, Volume};
use clinker_types::status::{SnapshotTransition, VolumeTransition};
use clinker_types::{
    AttachStatus, SnapshotId, SnapshotStatus, VolumeId, VolumeStatus, VolumeTypeId,
};
use sqlx::AnyConnection;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::Arg;
use crate::quota::{charge_quota, volume_charges};
use crate::volumes::service_host_of;
use crate::{MetadataKind, ProviderUpdate, SnapshotRepository, VolumeRepository};

/// A volume to be managed from an existing backend object.
#[derive(Clone, Debug)]
pub struct NewManagedVolume {
    /// Id (chosen by the API).
    pub id: VolumeId,
    /// Owner.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// Where the object is: `host@backend` or `host@backend#pool`.
    pub host: String,
    /// Zone.
    pub availability_zone: String,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// Type (must exist).
    pub volume_type_id: VolumeTypeId,
    /// Type name, for per-type quota resources.
    pub volume_type_name: String,
    /// Multiattach (from the type).
    pub multiattach: bool,
    /// `bootable` as requested.
    pub bootable: bool,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
}

/// Manage / unmanage repository.
#[async_trait::async_trait]
pub trait ManageRepository {
    /// Inserts a `managing` volume of size 0 placed on `new.host`, charges
    /// one volume and journals it, in one transaction.
    ///
    /// # Errors
    /// [`DbError::OverQuota`] (nothing written).
    async fn create_managed_volume(&self, new: NewManagedVolume) -> Result<Volume, DbError>;

    /// Records the size of the object being managed: charges its
    /// gigabytes (limits and `per_volume_gigabytes` enforced), claims the
    /// pool capacity (without a limit: the data already exists), and sets
    /// the volume's `host` (with the pool filled in).
    ///
    /// # Errors
    /// [`DbError::OverQuota`], [`DbError::InvalidState`] unless `managing`.
    async fn size_managed_volume(
        &self,
        id: VolumeId,
        size: i64,
        host: &str,
    ) -> Result<Volume, DbError>;

    /// `managing → available` with the driver's provider fields; removes
    /// the journal row and forgets `source_name` as an unmanaged object.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `managing`.
    async fn finish_volume_manage(
        &self,
        id: VolumeId,
        provider: ProviderUpdate,
        source_name: &str,
    ) -> Result<Volume, DbError>;

    /// `managing → error_managing`: the size goes back to 0 with its
    /// gigabytes and pool capacity, as Cinder never saves the size of a
    /// failed manage.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `managing`.
    async fn fail_volume_manage(&self, id: VolumeId) -> Result<Volume, DbError>;

    /// Starts an unmanage with the conditions of a delete (Cinder's
    /// `delete(unmanage_only=True)`): a deletable status, not attached,
    /// migrating or in a group, no snapshots; `→ unmanaging`, journaled.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn begin_volume_unmanage(&self, id: VolumeId) -> Result<Volume, DbError>;

    /// Ends an unmanage: the rows go with their quota and pool capacity,
    /// and `object_name` is recorded as unmanaged on the volume's backend,
    /// in one transaction.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `unmanaging`.
    async fn finish_volume_unmanage(
        &self,
        id: VolumeId,
        object_name: &str,
    ) -> Result<Volume, DbError>;

    /// `unmanaging → error_unmanaging` (the driver refused).
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `unmanaging`.
    async fn fail_volume_unmanage(&self, id: VolumeId) -> Result<Volume, DbError>;

    /// Records the size of a snapshot being managed (its row is `creating`
    /// with its volume's size): charges the gigabytes difference.
    ///
    /// # Errors
    /// [`DbError::OverQuota`], [`DbError::InvalidState`] unless `creating`.
    async fn size_managed_snapshot(&self, id: SnapshotId, size: i64) -> Result<Snapshot, DbError>;

    /// `creating → available` for a managed snapshot; removes the journal
    /// row and forgets `source_name` as an unmanaged object.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `creating`.
    async fn finish_snapshot_manage(
        &self,
        id: SnapshotId,
        provider_location: Option<String>,
        source_name: &str,
    ) -> Result<Snapshot, DbError>;

    /// Starts a snapshot unmanage: `available|error → unmanaging`, not in
    /// a group snapshot, journaled.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn begin_snapshot_unmanage(&self, id: SnapshotId) -> Result<Snapshot, DbError>;

    /// Ends a snapshot unmanage: the rows go with their quota and
    /// `object_name` is recorded as unmanaged, in one transaction.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `unmanaging`.
    async fn finish_snapshot_unmanage(
        &self,
        id: SnapshotId,
        object_name: &str,
    ) -> Result<Snapshot, DbError>;

    /// `unmanaging → error_deleting` (the driver refused; Cinder's status).
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `unmanaging`.
    async fn fail_snapshot_unmanage(&self, id: SnapshotId) -> Result<Snapshot, DbError>;

    /// Whether an unmanage left an object of this name on some backend
    /// (the orphan sweep must not remove it).
    ///
    /// # Errors
    /// Database failures.
    async fn is_unmanaged_object(&self, name: &str) -> Result<bool, DbError>;
}

impl Db {
    async fn record_unmanaged(
        &self,
        conn: &mut AnyConnection,
        name: &str,
        host: Option<&str>,
        resource: JournalResource,
        resource_id: &str,
    ) -> Result<(), DbError> {
        let service_host = host.map(service_host_of).unwrap_or_default();
        sqlx::query(self.q("DELETE FROM unmanaged_objects WHERE service_host = ? AND name = ?"))
            .bind(service_host.as_str())
            .bind(name)
            .execute(&mut *conn)
            .await?;
        sqlx::query(self.q(
            "INSERT INTO unmanaged_objects (name, service_host, resource_type, resource_id, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(name)
        .bind(service_host.as_str())
        .bind(resource.as_str())
        .bind(resource_id)
        .bind(self.now().as_micros())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn forget_unmanaged(
        &self,
        conn: &mut AnyConnection,
        name: &str,
        host: Option<&str>,
    ) -> Result<(), DbError> {
        let service_host = host.map(service_host_of).unwrap_or_default();
        sqlx::query(self.q("DELETE FROM unmanaged_objects WHERE service_host = ? AND name = ?"))
            .bind(service_host.as_str())
            .bind(name)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Moves a volume's size (and the pool capacity it holds) to `size`,
    /// charging the difference (limits enforced when growing).
    async fn resize_managed(
        &self,
        conn: &mut AnyConnection,
        volume: &Volume,
        size: i64,
        host: &str,
    ) -> Result<(), DbError> {
        let delta = size - volume.size;
        if volume.use_quota && delta != 0 {
            let charges: Vec<(String, i64)> =
                volume_charges(volume.volume_type_name.as_deref(), delta, 1)
                    .into_iter()
                    .filter(|(resource, _)| resource.starts_with("gigabytes"))
                    .collect();
            if delta > 0 {
                let mut wanted: Vec<&str> = charges.iter().map(|(r, _)| r.as_str()).collect();
                wanted.push("per_volume_gigabytes");
                let limits =
                    crate::quota::limits_for(self, &mut *conn, &volume.project_id, &wanted).await?;
                let per_volume = limits.get("per_volume_gigabytes").copied().unwrap_or(-1);
                if per_volume >= 0 && size > per_volume {
                    return Err(DbError::OverQuota(crate::OverQuota {
                        resource: "per_volume_gigabytes".into(),
                        limit: per_volume,
                        in_use: 0,
                        requested: size,
                    }));
                }
                crate::quota::charge_quota_with_limits(
                    self,
                    &mut *conn,
                    &volume.project_id,
                    &charges,
                    &limits,
                )
                .await?;
            } else {
                charge_quota(self, &mut *conn, &volume.project_id, &charges).await?;
            }
        }
        if let Some(old) = &volume.host {
            sqlx::query(
                self.q(
                    "UPDATE pool_allocations SET allocated_gb = allocated_gb - ? WHERE pool = ?",
                ),
            )
            .bind(volume.size)
            .bind(old.as_str())
            .execute(&mut *conn)
            .await?;
        }
        self.ensure_pool_row(&mut *conn, host).await?;
        sqlx::query(
            self.q("UPDATE pool_allocations SET allocated_gb = allocated_gb + ? WHERE pool = ?"),
        )
        .bind(size)
        .bind(host)
        .execute(&mut *conn)
        .await?;
        sqlx::query(self.q("UPDATE volumes SET size = ?, host = ?, updated_at = ? WHERE id = ?"))
            .bind(size)
            .bind(host)
            .bind(self.now().as_micros())
            .bind(volume.id.to_string())
            .execute(&mut *conn)
            .await?;
        self.change_volume_count(conn, &volume.project_id, 0, size - volume.size)
            .await
    }

    fn require_volume_status(volume: &Volume, status: VolumeStatus) -> Result<(), DbError> {
        if volume.status == status {
            Ok(())
        } else {
            Err(DbError::InvalidState(format!(
                "volume {} is {}, not {status}",
                volume.id, volume.status
            )))
        }
    }

    async fn remove_snapshot_rows(
        &self,
        conn: &mut AnyConnection,
        snapshot: &Snapshot,
    ) -> Result<(), DbError> {
        if snapshot.use_quota {
            let type_name = self.snapshot_type_name(&mut *conn, snapshot).await?;
            let charges = crate::quota::snapshot_charges(
                self,
                type_name.as_deref(),
                snapshot.volume_size,
                -1,
            );
            charge_quota(self, &mut *conn, &snapshot.project_id, &charges).await?;
        }
        let id = snapshot.id.to_string();
        for sql in [
            "DELETE FROM snapshot_metadata WHERE snapshot_id = ?",
            "DELETE FROM snapshots WHERE id = ?",
        ] {
            sqlx::query(self.q(sql))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
        }
        self.remove_journal(conn, JournalResource::Snapshot, &id)
            .await
    }
}

#[async_trait::async_trait]
impl ManageRepository for Db {
    async fn create_managed_volume(&self, new: NewManagedVolume) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let charges = volume_charges(Some(&new.volume_type_name), 0, 1);
            charge_quota(self, &mut tx, &new.project_id, &charges).await?;
            let now = self.now().as_micros();
            sqlx::query(self.q(
                "INSERT INTO volumes (id, user_id, project_id, host, size, availability_zone, status, attach_status, \
                 display_name, display_description, volume_type_id, bootable, multiattach, use_quota, \
                 replication_status, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, 0, ?, 'managing', 'detached', ?, ?, ?, ?, ?, 1, 'disabled', ?, NULL)",
            ))
            .bind(new.id.to_string())
            .bind(new.user_id.as_str())
            .bind(new.project_id.as_str())
            .bind(new.host.as_str())
            .bind(new.availability_zone.as_str())
            .bind(new.display_name.as_deref())
            .bind(new.display_description.as_deref())
            .bind(new.volume_type_id.to_string())
            .bind(i64::from(new.bootable))
            .bind(i64::from(new.multiattach))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            self.change_volume_count(&mut tx, &new.project_id, 1, 0)
                .await?;
            self.insert_metadata(&mut tx, new.id, MetadataKind::User, &new.metadata)
                .await?;
            self.journal_volume(
                &mut tx,
                new.id,
                VolumeStatus::Managing,
                Some(new.host.as_str()),
                None,
            )
            .await
        })?;
        self.get_volume(new.id).await
    }

    async fn size_managed_volume(
        &self,
        id: VolumeId,
        size: i64,
        host: &str,
    ) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            Self::require_volume_status(&volume, VolumeStatus::Managing)?;
            self.resize_managed(&mut tx, &volume, size, host).await
        })?;
        self.get_volume(id).await
    }

    async fn finish_volume_manage(
        &self,
        id: VolumeId,
        provider: ProviderUpdate,
        source_name: &str,
    ) -> Result<Volume, DbError> {
        let row = VolumeTransition::ManageSucceeded.transition();
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            self.cas_volume_status(
                &mut tx,
                id,
                row.from,
                row.to,
                ", provider_location = ?, provider_auth = ?, provider_id = ?, launched_at = ?",
                vec![
                    provider
                        .provider_location
                        .clone()
                        .map_or(Arg::Null, Arg::Text),
                    provider.provider_auth.clone().map_or(Arg::Null, Arg::Text),
                    provider.provider_id.clone().map_or(Arg::Null, Arg::Text),
                    Arg::Int(self.now().as_micros()),
                ],
            )
            .await?;
            self.forget_unmanaged(&mut tx, source_name, volume.host.as_deref())
                .await?;
            self.remove_journal(&mut tx, JournalResource::Volume, &id.to_string())
                .await
        })?;
        self.get_volume(id).await
    }

    async fn fail_volume_manage(&self, id: VolumeId) -> Result<Volume, DbError> {
        let row = VolumeTransition::ManageFailed.transition();
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            Self::require_volume_status(&volume, VolumeStatus::Managing)?;
            if let Some(host) = volume.host.clone() {
                self.resize_managed(&mut tx, &volume, 0, &host).await?;
            }
            self.cas_volume_status_ending_journal(&mut tx, id, row.from, row.to, "", Vec::new())
                .await
        })?;
        self.get_volume(id).await
    }

    async fn begin_volume_unmanage(&self, id: VolumeId) -> Result<Volume, DbError> {
        let row = VolumeTransition::BeginUnmanage.transition();
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            let migrating = volume
                .migration_status
                .as_deref()
                .is_some_and(|m| !matches!(m, "deleting" | "error" | "success" | "none"));
            let grouped = volume.group_id.is_some() || volume.consistencygroup_id.is_some();
            if volume.attach_status == AttachStatus::Attached || migrating || grouped {
                return Err(DbError::InvalidState(format!(
                    "volume {id} is attached, migrating or in a group"
                )));
            }
            let snapshots: i64 =
                sqlx::query_scalar(self.q("SELECT COUNT(*) FROM snapshots WHERE volume_id = ?"))
                    .bind(id.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
            if snapshots > 0 {
                return Err(DbError::InvalidState(format!("volume {id} has snapshots")));
            }
            self.cas_volume_status(
                &mut tx,
                id,
                row.from,
                row.to,
                ", previous_status = ?",
                vec![Arg::Text(volume.status.as_str().to_owned())],
            )
            .await?;
            self.journal_volume(
                &mut tx,
                id,
                VolumeStatus::Unmanaging,
                volume.host.as_deref(),
                None,
            )
            .await
        })?;
        self.get_volume(id).await
    }

    async fn finish_volume_unmanage(
        &self,
        id: VolumeId,
        object_name: &str,
    ) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            Self::require_volume_status(&volume, VolumeStatus::Unmanaging)?;
            self.record_unmanaged(
                &mut tx,
                object_name,
                volume.host.as_deref(),
                JournalResource::Volume,
                &id.to_string(),
            )
            .await?;
            self.delete_volume_rows(&mut *tx, &volume).await?;
            Ok::<_, DbError>(volume)
        })
    }

    async fn fail_volume_unmanage(&self, id: VolumeId) -> Result<Volume, DbError> {
        let row = VolumeTransition::UnmanageFailed.transition();
        in_transaction!(self, |tx| {
            self.cas_volume_status_ending_journal(&mut tx, id, row.from, row.to, "", Vec::new())
                .await
        })?;
        self.get_volume(id).await
    }

    async fn size_managed_snapshot(&self, id: SnapshotId, size: i64) -> Result<Snapshot, DbError> {
        in_transaction!(self, |tx| {
            let snapshot = self.lock_snapshot(&mut tx, id).await?;
            if snapshot.status != SnapshotStatus::Creating {
                return Err(DbError::InvalidState(format!(
                    "snapshot {id} is {}, not creating",
                    snapshot.status
                )));
            }
            let delta = size - snapshot.volume_size;
            if snapshot.use_quota && delta != 0 && !self.quota_defaults.no_snapshot_gb_quota {
                let type_name = self.snapshot_type_name(&mut tx, &snapshot).await?;
                let mut charges = vec![("gigabytes".to_owned(), delta)];
                if let Some(name) = type_name {
                    charges.push((format!("gigabytes_{name}"), delta));
                }
                charge_quota(self, &mut tx, &snapshot.project_id, &charges).await?;
            }
            sqlx::query(
                self.q("UPDATE snapshots SET volume_size = ?, updated_at = ? WHERE id = ?"),
            )
            .bind(size)
            .bind(self.now().as_micros())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(())
        })?;
        self.get_snapshot(id).await
    }

    async fn finish_snapshot_manage(
        &self,
        id: SnapshotId,
        provider_location: Option<String>,
        source_name: &str,
    ) -> Result<Snapshot, DbError> {
        let row = SnapshotTransition::CreateSucceeded.transition();
        in_transaction!(self, |tx| {
            let snapshot = self.lock_snapshot(&mut tx, id).await?;
            self.cas_snapshot_status(
                &mut tx,
                id,
                row.from,
                row.to,
                ", progress = '100%', provider_location = ?",
                vec![provider_location.clone().map_or(Arg::Null, Arg::Text)],
            )
            .await?;
            self.forget_unmanaged(&mut tx, source_name, snapshot.host.as_deref())
                .await?;
            self.remove_journal(&mut tx, JournalResource::Snapshot, &id.to_string())
                .await
        })?;
        self.get_snapshot(id).await
    }

    async fn begin_snapshot_unmanage(&self, id: SnapshotId) -> Result<Snapshot, DbError> {
        let row = SnapshotTransition::BeginUnmanage.transition();
        in_transaction!(self, |tx| {
            let snapshot = self.lock_snapshot(&mut tx, id).await?;
            if snapshot.group_snapshot_id.is_some() {
                return Err(DbError::InvalidState(format!(
                    "snapshot {id} is part of a group snapshot"
                )));
            }
            self.cas_snapshot_status(&mut tx, id, row.from, row.to, "", Vec::new())
                .await?;
            self.journal_snapshot(
                &mut tx,
                id,
                SnapshotStatus::Unmanaging,
                snapshot.host.as_deref(),
            )
            .await
        })?;
        self.get_snapshot(id).await
    }

    async fn finish_snapshot_unmanage(
        &self,
        id: SnapshotId,
        object_name: &str,
    ) -> Result<Snapshot, DbError> {
        let before = self.get_snapshot(id).await?;
        in_transaction!(self, |tx| {
            let snapshot = self.lock_snapshot(&mut tx, id).await?;
            if snapshot.status != SnapshotStatus::Unmanaging {
                return Err(DbError::InvalidState(format!(
                    "snapshot {id} is {}, not unmanaging",
                    snapshot.status
                )));
            }
            self.record_unmanaged(
                &mut tx,
                object_name,
                before.host.as_deref(),
                JournalResource::Snapshot,
                &id.to_string(),
            )
            .await?;
            self.remove_snapshot_rows(&mut tx, &snapshot).await
        })?;
        Ok(before)
    }

    async fn fail_snapshot_unmanage(&self, id: SnapshotId) -> Result<Snapshot, DbError> {
        let row = SnapshotTransition::UnmanageFailed.transition();
        in_transaction!(self, |tx| {
            self.cas_snapshot_status(&mut tx, id, row.from, row.to, "", Vec::new())
                .await?;
            self.remove_journal(&mut tx, JournalResource::Snapshot, &id.to_string())
                .await
        })?;
        self.get_snapshot(id).await
    }

    async fn is_unmanaged_object(&self, name: &str) -> Result<bool, DbError> {
        let found: Option<String> =
            sqlx::query_scalar(self.q("SELECT name FROM unmanaged_objects WHERE name = ?"))
                .bind(name)
                .fetch_optional(&mut *self.reader().await?)
                .await?;
        Ok(found.is_some())
    }
}
