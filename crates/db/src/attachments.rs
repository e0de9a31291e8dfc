//! [`AttachmentRepository`]: the attach and detach state machine of
//! volumes and their `volume_attachment` rows (Cinder's `_attachment_reserve`,
//! `volume_attached`, `volume_detached`, `reserve_volume`, `begin_detaching`,
//! … in `volume/api.py` and `db/api.py`).
//!
//! Every method is one transaction that first locks the volume row
//! ([`Db::lock_volume`]: `FOR UPDATE` on PostgreSQL and MariaDB, the single
//! writer on SQLite) and then changes the volume (by compare-and-swap along a
//! [`VolumeTransition`]) and its attachment rows together. Two requests for
//! the same volume therefore never interleave: of two concurrent reservations
//! of a volume that is not multiattach exactly one finds it `available`.
//!
//! The invariant other code relies on ([`Db::load_attachments`] skips the
//! query otherwise): whenever a volume has attachment rows, its
//! `attach_status` is not `detached` or its status is `reserved`,
//! `attaching`, `in-use` or `detaching`. Rows are only inserted by
//! transactions that move the volume to `reserved` or `in-use`, and the
//! volume's statuses are recomputed from the remaining rows whenever a row
//! goes ([`VolumeTransition::after_detach`]).

use clinker_types::model::{Attachment, Volume};
use clinker_types::status::VolumeTransition;
use clinker_types::{AttachStatus, AttachmentId, VolumeId, VolumeStatus};
use serde_json::Value;
use sqlx::AnyConnection;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all};
use crate::rows;
use crate::{ProviderUpdate, VolumeRepository};

mod list;

pub use list::{AttachmentColumn, AttachmentQuery};

/// The admin metadata key that records the mode of the current attachment.
const ATTACHED_MODE: &str = "attached_mode";

/// A reservation made by the attachments API (`POST /attachments`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAttachment {
    /// Id (chosen by the caller).
    pub id: AttachmentId,
    /// The volume.
    pub volume_id: VolumeId,
    /// The Nova instance (or any consumer's id); optional.
    pub instance_uuid: Option<String>,
    /// `rw`, `ro`, or Cinder's placeholder `null` when the caller did not
    /// choose (the connector's `mode` then decides at update time).
    pub attach_mode: String,
}

/// What the volume manager stores once a connector has been exported to
/// (Cinder's `_connection_create` and `volume_attached(mark_attached=False)`).
#[derive(Clone, Debug, PartialEq)]
pub struct AttachmentConnection {
    /// The connector the host sent.
    pub connector: Value,
    /// The flattened connection info handed back to the host.
    pub connection_info: Value,
    /// The connector's `host`.
    pub attached_host: Option<String>,
    /// The connector's `mountpoint` (Cinder writes `na` without one).
    pub mountpoint: Option<String>,
    /// The mode in effect (`rw` or `ro`).
    pub attach_mode: String,
}

/// A legacy `os-attach`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyAttach {
    /// The volume.
    pub volume_id: VolumeId,
    /// The instance, when attached to one.
    pub instance_uuid: Option<String>,
    /// The host, when attached to a host rather than an instance.
    pub host_name: Option<String>,
    /// The device path.
    pub mountpoint: String,
    /// `rw` or `ro`.
    pub mode: String,
}

/// Attachments and the attach/detach transitions of volumes.
#[async_trait::async_trait]
pub trait AttachmentRepository {
    /// Reserves a volume for a new attachment (`reserved`), as Cinder's
    /// `_attachment_reserve`: the volume moves to `reserved` from
    /// `available`/`downloading` (also from `in-use` when multiattach). When
    /// it cannot, the same instance may still add an attachment to a volume
    /// it already holds (`in-use` or `reserved`: Nova's live migration); the
    /// volume's status then stays.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] with Cinder's reason ("Volume X status must
    /// be … to reserve, but the current status is …."),
    /// [`DbError::NotFound`] for the volume.
    async fn reserve_attachment(&self, new: NewAttachment) -> Result<Attachment, DbError>;

    /// One attachment.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_attachment(&self, id: AttachmentId) -> Result<Attachment, DbError>;

    /// A page of attachments.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for a marker that is not an attachment in scope.
    async fn list_attachments(&self, query: &AttachmentQuery) -> Result<Vec<Attachment>, DbError>;

    /// Records a connection made for an attachment: the attachment becomes
    /// `attaching` with its connector, connection info, host, mountpoint,
    /// mode and attach time, and the volume `attaching`.
    ///
    /// # Errors
    /// [`DbError::NotFound`] (the attachment was deleted meanwhile),
    /// [`DbError::InvalidState`] when the volume is not reserved,
    /// attaching or in use.
    async fn connect_attachment(
        &self,
        id: AttachmentId,
        connection: AttachmentConnection,
    ) -> Result<Attachment, DbError>;

    /// Marks an attachment `error_attaching` after its connection failed on
    /// the backend. The volume keeps its status (Cinder leaves it
    /// `reserved`), so the failed attachment holds it until deleted.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn fail_attachment(&self, id: AttachmentId) -> Result<Attachment, DbError>;

    /// `os-complete`: the attachment becomes `attached`, the volume
    /// `in-use` with `attach_status` `attached`, and the admin metadata
    /// `attached_mode` records the attachment's mode.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::InvalidState`] when the volume is
    /// not reserved, attaching, in use or available.
    async fn complete_attachment(&self, id: AttachmentId) -> Result<Volume, DbError>;

    /// Removes one attachment of a volume (none for `None`) and settles the
    /// volume from the ones that remain ([`VolumeTransition::after_detach`]);
    /// `attached_mode` goes with the last connected attachment. A missing
    /// attachment is not an error: the volume is settled all the same
    /// (Cinder's `finish_detach`). A volume whose status belongs to a
    /// running operation (extending, uploading, …) keeps it; only its
    /// `attach_status` changes.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for the volume.
    async fn detach_attachment(
        &self,
        volume_id: VolumeId,
        attachment_id: Option<AttachmentId>,
    ) -> Result<Volume, DbError>;

    /// Removes every attachment of a volume and settles it (an
    /// administrator's `os-reset_status` to `detached`).
    ///
    /// # Errors
    /// [`DbError::NotFound`] for the volume.
    async fn detach_all_attachments(&self, volume_id: VolumeId) -> Result<Volume, DbError>;

    /// Stores what a driver's `create_export` returned (only the fields it
    /// set).
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn save_export(&self, volume_id: VolumeId, update: ProviderUpdate)
    -> Result<(), DbError>;

    /// Legacy `os-reserve`: `available` (or `in-use` when multiattach) →
    /// `attaching`.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] with Cinder's reason ("Volume status must
    /// be … to reserve, but the status is …."), [`DbError::NotFound`].
    async fn reserve_volume(&self, id: VolumeId) -> Result<Volume, DbError>;

    /// Legacy `os-unreserve`: `attaching` → `in-use` when the volume has
    /// attachments, else `available`; any other status is left alone.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn unreserve_volume(&self, id: VolumeId) -> Result<Volume, DbError>;

    /// Legacy `os-attach`: records an `attached` attachment for the instance
    /// (or host) and makes the volume `in-use`/`attached` with
    /// `attached_mode`; adds `readonly=False` when the volume has no
    /// `readonly` flag (as Cinder's API does). Repeating an attach of the same
    /// instance (or host) returns its attachment.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] ("volume is already attached and multiple
    /// attachments are not enabled", or a status that cannot be attached),
    /// [`DbError::NotFound`].
    async fn attach_volume(&self, attach: LegacyAttach) -> Result<Attachment, DbError>;

    /// Legacy `os-begin_detaching`: `in-use` and `attached` → `detaching`.
    /// A migrating volume is left alone without an error (Cinder hides the
    /// detach from the user during a migration).
    ///
    /// # Errors
    /// [`DbError::InvalidState`] with Cinder's reason, [`DbError::NotFound`].
    async fn begin_detaching(&self, id: VolumeId) -> Result<Volume, DbError>;

    /// Legacy `os-roll_detaching`: `detaching` → `in-use`; any other status
    /// is left alone.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn roll_detaching(&self, id: VolumeId) -> Result<Volume, DbError>;
}

/// Cinder's `utils.build_or_str`.
fn or_list(statuses: &[VolumeStatus]) -> String {
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Migration statuses that mean "not migrating" (Cinder's
/// `AVAILABLE_MIGRATION_STATUS`).
fn is_migrating(volume: &Volume) -> bool {
    volume
        .migration_status
        .as_deref()
        .is_some_and(|m| !matches!(m, "deleting" | "error" | "success" | "none"))
}

impl Db {
    /// The live attachment rows of a volume, read inside a transaction.
    async fn live_attachments(
        &self,
        conn: &mut AnyConnection,
        volume_id: VolumeId,
    ) -> Result<Vec<Attachment>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {} FROM volume_attachment WHERE volume_id = ? \
             AND attach_status NOT IN ('detached', 'deleted') ORDER BY created_at, id",
            rows::ATTACHMENT_COLUMNS
        ));
        let found = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(volume_id.to_string())
            .fetch_all(&mut *conn)
            .await?;
        found.iter().map(rows::attachment).collect()
    }

    /// One attachment row, read inside a transaction.
    async fn attachment_in(
        &self,
        conn: &mut AnyConnection,
        id: AttachmentId,
    ) -> Result<Attachment, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {} FROM volume_attachment WHERE id = ?",
            rows::ATTACHMENT_COLUMNS
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found("attachment", id))?;
        rows::attachment(&row)
    }

    /// Locks the volume an attachment belongs to, then re-reads the
    /// attachment under that lock (it may have been deleted meanwhile).
    /// Volume first, always: every attach path locks in this order.
    async fn lock_attachment(
        &self,
        conn: &mut AnyConnection,
        id: AttachmentId,
    ) -> Result<(Volume, Attachment), DbError> {
        let unlocked = self.attachment_in(conn, id).await?;
        let volume = self.lock_volume(conn, unlocked.volume_id).await?;
        let attachment = self.attachment_in(conn, id).await?;
        Ok((volume, attachment))
    }

    /// Sets (`Some`) or removes (`None`) one admin metadata key.
    async fn set_admin_metadata(
        &self,
        conn: &mut AnyConnection,
        volume_id: VolumeId,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query(self.q(
            "DELETE FROM volume_metadata WHERE volume_id = ? AND kind = 'admin' AND meta_key = ?",
        ))
        .bind(volume_id.to_string())
        .bind(key)
        .execute(&mut *conn)
        .await?;
        if let Some(value) = value {
            sqlx::query(self.q(
                "INSERT INTO volume_metadata (volume_id, kind, meta_key, meta_value) VALUES (?, 'admin', ?, ?)",
            ))
            .bind(volume_id.to_string())
            .bind(key)
            .bind(value)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_attachment(
        &self,
        conn: &mut AnyConnection,
        id: AttachmentId,
        volume_id: VolumeId,
        instance_uuid: Option<&str>,
        attached_host: Option<&str>,
        mountpoint: Option<&str>,
        attach_status: AttachStatus,
        attach_mode: &str,
        connection_info: Option<&str>,
    ) -> Result<(), DbError> {
        let now = self.now().as_micros();
        let attach_time = (attach_status == AttachStatus::Attached).then_some(now);
        sqlx::query(self.q(
            "INSERT INTO volume_attachment (id, volume_id, instance_uuid, attached_host, mountpoint, attach_time, \
             detach_time, attach_status, attach_mode, connection_info, connector, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, NULL, ?, NULL)",
        ))
        .bind(id.to_string())
        .bind(volume_id.to_string())
        .bind(instance_uuid)
        .bind(attached_host)
        .bind(mountpoint)
        .bind(attach_time)
        .bind(attach_status.as_str())
        .bind(attach_mode)
        .bind(connection_info)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Moves the volume to `attached` in use (`os-complete`, `os-attach`).
    async fn mark_volume_attached(
        &self,
        conn: &mut AnyConnection,
        volume: &Volume,
        mode: &str,
    ) -> Result<(), DbError> {
        let row = VolumeTransition::Attach.transition();
        if !row.from.contains(&volume.status) {
            return Err(DbError::InvalidState(format!(
                "Volume {} status must be {} to attach, but the current status is {}.",
                volume.id,
                or_list(row.from),
                volume.status
            )));
        }
        self.cas_volume_status(
            conn,
            volume.id,
            row.from,
            row.to,
            ", attach_status = ?",
            vec![Arg::Text(AttachStatus::Attached.as_str().to_owned())],
        )
        .await?;
        self.set_admin_metadata(conn, volume.id, ATTACHED_MODE, Some(mode))
            .await
    }

    /// Recomputes a locked volume's statuses from its remaining attachment
    /// rows (see [`AttachmentRepository::detach_attachment`]).
    async fn settle_volume(
        &self,
        conn: &mut AnyConnection,
        volume: &Volume,
    ) -> Result<(), DbError> {
        let remaining: Vec<AttachStatus> = self
            .live_attachments(conn, volume.id)
            .await?
            .iter()
            .map(|a| a.attach_status)
            .collect();
        let (transition, attach_status) = VolumeTransition::after_detach(&remaining);
        let row = transition.transition();
        if row.from.contains(&volume.status) {
            self.cas_volume_status(
                conn,
                volume.id,
                row.from,
                row.to,
                ", attach_status = ?",
                vec![Arg::Text(attach_status.as_str().to_owned())],
            )
            .await?;
        } else {
            // The status belongs to a running operation that restores it;
            // the attach status still has to tell the truth.
            sqlx::query(
                self.q("UPDATE volumes SET attach_status = ?, updated_at = ? WHERE id = ?"),
            )
            .bind(attach_status.as_str())
            .bind(self.now().as_micros())
            .bind(volume.id.to_string())
            .execute(&mut *conn)
            .await?;
        }
        if !remaining
            .iter()
            .any(|s| matches!(s, AttachStatus::Attached | AttachStatus::Attaching))
        {
            self.set_admin_metadata(conn, volume.id, ATTACHED_MODE, None)
                .await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl AttachmentRepository for Db {
    async fn reserve_attachment(&self, new: NewAttachment) -> Result<Attachment, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, new.volume_id).await?;
            let transition = if volume.multiattach {
                VolumeTransition::ReserveMultiattach
            } else {
                VolumeTransition::ReserveAvailable
            };
            let row = transition.transition();
            if row.from.contains(&volume.status) {
                self.cas_volume_status(&mut tx, volume.id, row.from, row.to, "", Vec::new())
                    .await?;
            } else {
                // The same instance may hold two attachments of a volume
                // (Nova's live migration, Cinder LP #1694530).
                let same_instance = match (&new.instance_uuid, volume.status) {
                    (Some(instance), VolumeStatus::InUse | VolumeStatus::Reserved) => self
                        .live_attachments(&mut tx, volume.id)
                        .await?
                        .iter()
                        .any(|a| a.instance_uuid.as_deref() == Some(instance.as_str())),
                    _ => false,
                };
                if !same_instance {
                    return Err(DbError::InvalidState(format!(
                        "Volume {} status must be {} to reserve, but the current status is {}.",
                        volume.id,
                        or_list(row.from),
                        volume.status
                    )));
                }
            }
            self.insert_attachment(
                &mut tx,
                new.id,
                volume.id,
                new.instance_uuid.as_deref(),
                None,
                None,
                AttachStatus::Reserved,
                &new.attach_mode,
                // Cinder's attachment_create saves an empty connection.
                Some("{}"),
            )
            .await
        })?;
        self.get_attachment(new.id).await
    }

    async fn get_attachment(&self, id: AttachmentId) -> Result<Attachment, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {} FROM volume_attachment WHERE id = ?",
            rows::ATTACHMENT_COLUMNS
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("attachment", id))?;
        rows::attachment(&row)
    }

    async fn list_attachments(&self, query: &AttachmentQuery) -> Result<Vec<Attachment>, DbError> {
        self.query_attachments(query).await
    }

    async fn connect_attachment(
        &self,
        id: AttachmentId,
        connection: AttachmentConnection,
    ) -> Result<Attachment, DbError> {
        let connector = connection.connector.to_string();
        let connection_info = connection.connection_info.to_string();
        in_transaction!(self, |tx| {
            let (volume, _) = self.lock_attachment(&mut tx, id).await?;
            let row = VolumeTransition::AttachmentUpdate.transition();
            if !row.from.contains(&volume.status) {
                return Err(DbError::InvalidState(format!(
                    "Volume {} status must be {} to connect an attachment, but the current status is {}.",
                    volume.id,
                    or_list(row.from),
                    volume.status
                )));
            }
            self.cas_volume_status(
                &mut tx,
                volume.id,
                row.from,
                row.to,
                ", attach_status = ?",
                vec![Arg::Text(AttachStatus::Attaching.as_str().to_owned())],
            )
            .await?;
            let now = self.now().as_micros();
            sqlx::query(self.q(
                "UPDATE volume_attachment SET attach_status = ?, connector = ?, connection_info = ?, \
                 attached_host = ?, mountpoint = ?, attach_mode = ?, attach_time = ?, updated_at = ? WHERE id = ?",
            ))
            .bind(AttachStatus::Attaching.as_str())
            .bind(connector.as_str())
            .bind(connection_info.as_str())
            .bind(connection.attached_host.as_deref())
            .bind(connection.mountpoint.as_deref())
            .bind(connection.attach_mode.as_str())
            .bind(now)
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(())
        })?;
        self.get_attachment(id).await
    }

    async fn fail_attachment(&self, id: AttachmentId) -> Result<Attachment, DbError> {
        let updated = sqlx::query(
            self.q("UPDATE volume_attachment SET attach_status = ?, updated_at = ? WHERE id = ?"),
        )
        .bind(AttachStatus::ErrorAttaching.as_str())
        .bind(self.now().as_micros())
        .bind(id.to_string())
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(DbError::not_found("attachment", id));
        }
        self.get_attachment(id).await
    }

    async fn complete_attachment(&self, id: AttachmentId) -> Result<Volume, DbError> {
        let volume_id = in_transaction!(self, |tx| {
            let (volume, attachment) = self.lock_attachment(&mut tx, id).await?;
            let mode = match attachment.attach_mode.as_deref() {
                Some(m @ ("rw" | "ro")) => m.to_owned(),
                _ => "rw".to_owned(),
            };
            self.mark_volume_attached(&mut tx, &volume, &mode).await?;
            sqlx::query(self.q(
                "UPDATE volume_attachment SET attach_status = ?, attach_time = COALESCE(attach_time, ?), \
                 updated_at = ? WHERE id = ?",
            ))
            .bind(AttachStatus::Attached.as_str())
            .bind(self.now().as_micros())
            .bind(self.now().as_micros())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(volume.id)
        })?;
        self.get_volume(volume_id).await
    }

    async fn detach_attachment(
        &self,
        volume_id: VolumeId,
        attachment_id: Option<AttachmentId>,
    ) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, volume_id).await?;
            if let Some(id) = attachment_id {
                sqlx::query(self.q("DELETE FROM volume_attachment WHERE id = ? AND volume_id = ?"))
                    .bind(id.to_string())
                    .bind(volume_id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            self.settle_volume(&mut tx, &volume).await
        })?;
        self.get_volume(volume_id).await
    }

    async fn detach_all_attachments(&self, volume_id: VolumeId) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, volume_id).await?;
            sqlx::query(self.q("DELETE FROM volume_attachment WHERE volume_id = ?"))
                .bind(volume_id.to_string())
                .execute(&mut *tx)
                .await?;
            self.settle_volume(&mut tx, &volume).await
        })?;
        self.get_volume(volume_id).await
    }

    async fn save_export(
        &self,
        volume_id: VolumeId,
        update: ProviderUpdate,
    ) -> Result<(), DbError> {
        let mut sets = String::new();
        let mut args = vec![Arg::Int(self.now().as_micros())];
        for (column, value) in [
            ("provider_location", update.provider_location),
            ("provider_auth", update.provider_auth),
            ("provider_id", update.provider_id),
        ] {
            if let Some(value) = value {
                sets.push_str(&format!(", {column} = ?"));
                args.push(Arg::Text(value));
            }
        }
        args.push(Arg::Text(volume_id.to_string()));
        let sql = self.dynamic(format!(
            "UPDATE volumes SET updated_at = ?{sets} WHERE id = ?"
        ));
        let updated = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .execute(&mut *self.writer().await?)
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(DbError::not_found("volume", volume_id));
        }
        Ok(())
    }

    async fn reserve_volume(&self, id: VolumeId) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            let transition = if volume.multiattach {
                VolumeTransition::LegacyReserveMultiattach
            } else {
                VolumeTransition::LegacyReserve
            };
            let row = transition.transition();
            if !row.from.contains(&volume.status) {
                return Err(DbError::InvalidState(format!(
                    "Volume status must be {} to reserve, but the status is {}.",
                    or_list(row.from),
                    volume.status
                )));
            }
            self.cas_volume_status(&mut tx, id, row.from, row.to, "", Vec::new())
                .await
        })?;
        self.get_volume(id).await
    }

    async fn unreserve_volume(&self, id: VolumeId) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            if volume.status != VolumeStatus::Attaching {
                // Cinder: "Attempted to unreserve volume that was not
                // reserved, nothing to do."
                return Ok(());
            }
            let attached = !self.live_attachments(&mut tx, id).await?.is_empty();
            let row = if attached {
                VolumeTransition::UnreserveToInUse
            } else {
                VolumeTransition::UnreserveToAvailable
            }
            .transition();
            self.cas_volume_status(&mut tx, id, row.from, row.to, "", Vec::new())
                .await
        })?;
        self.get_volume(id).await
    }

    async fn attach_volume(&self, attach: LegacyAttach) -> Result<Attachment, DbError> {
        let attachment_id = in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, attach.volume_id).await?;
            let live = self.live_attachments(&mut tx, volume.id).await?;
            let same = live.iter().find(|a| match &attach.instance_uuid {
                Some(instance) => a.instance_uuid.as_deref() == Some(instance.as_str()),
                None => {
                    a.instance_uuid.is_none()
                        && a.attached_host.as_deref() == attach.host_name.as_deref()
                }
            });
            if volume.status == VolumeStatus::InUse
                && !volume.multiattach
                && !is_migrating(&volume)
                && same.is_none()
            {
                return Err(DbError::InvalidState(
                    "volume is already attached and multiple attachments are not enabled".into(),
                ));
            }
            let has_readonly: Option<String> = sqlx::query_scalar(self.q(
                "SELECT meta_value FROM volume_metadata WHERE volume_id = ? AND kind = 'admin' AND meta_key = 'readonly'",
            ))
            .bind(volume.id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if has_readonly.is_none() {
                self.set_admin_metadata(&mut tx, volume.id, "readonly", Some("False"))
                    .await?;
            }
            self.mark_volume_attached(&mut tx, &volume, &attach.mode)
                .await?;
            if let Some(existing) = same {
                // A repeated attach (Nova retries): the attachment stays,
                // now attached.
                sqlx::query(self.q(
                    "UPDATE volume_attachment SET attach_status = ?, attach_time = COALESCE(attach_time, ?), \
                     updated_at = ? WHERE id = ?",
                ))
                .bind(AttachStatus::Attached.as_str())
                .bind(self.now().as_micros())
                .bind(self.now().as_micros())
                .bind(existing.id.to_string())
                .execute(&mut *tx)
                .await?;
                return Ok(existing.id);
            }
            let id = AttachmentId::new_random();
            self.insert_attachment(
                &mut tx,
                id,
                volume.id,
                attach.instance_uuid.as_deref(),
                attach.host_name.as_deref(),
                Some(attach.mountpoint.as_str()),
                AttachStatus::Attached,
                &attach.mode,
                None,
            )
            .await?;
            Ok::<_, DbError>(id)
        })?;
        self.get_attachment(attachment_id).await
    }

    async fn begin_detaching(&self, id: VolumeId) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            if is_migrating(&volume) {
                // Cinder keeps the user from seeing `detaching` during a
                // migration; `migration_status` already guards the volume.
                return Ok(());
            }
            if volume.status != VolumeStatus::InUse
                || volume.attach_status != AttachStatus::Attached
            {
                return Err(DbError::InvalidState(
                    "Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach."
                        .into(),
                ));
            }
            let row = VolumeTransition::BeginDetaching.transition();
            self.cas_volume_status(&mut tx, id, row.from, row.to, "", Vec::new())
                .await
        })?;
        self.get_volume(id).await
    }

    async fn roll_detaching(&self, id: VolumeId) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            let row = VolumeTransition::RollDetaching.transition();
            if !row.from.contains(&volume.status) {
                return Ok(());
            }
            self.cas_volume_status(&mut tx, id, row.from, row.to, "", Vec::new())
                .await
        })?;
        self.get_volume(id).await
    }
}
