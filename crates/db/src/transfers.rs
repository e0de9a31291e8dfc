//! Volume transfers ([`TransferRepository`], Cinder's `transfer_*` db API
//! plus the quota moves of `transfer/api.py::accept`).
//!
//! A transfer row lives exactly while its volume is `awaiting-transfer`:
//! creating one moves the volume there, deleting or accepting it moves the
//! volume back to `available` — each in one transaction. Accepting moves
//! the volume (and, unless `no_snapshots`, its snapshots) to the accepting
//! project and user, and their quota usage with them, in the same
//! transaction, so both projects' usage always equals a recount.

use std::sync::atomic::{AtomicBool, Ordering};

use clinker_types::model::Volume;
use clinker_types::status::VolumeTransition;
use clinker_types::transfer::Transfer;
use clinker_types::{SnapshotStatus, Timestamp, TransferId, VolumeId};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{DbError, OverQuota};
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all};
use crate::quota::{
    charge_quota, charge_quota_with_limits, limits_for, snapshot_charges, volume_charges,
};
use crate::{Page, SortDir, VolumeRepository};

/// A transfer to create.
#[derive(Clone, Debug)]
pub struct NewTransfer {
    /// Id (chosen by the API).
    pub id: TransferId,
    /// The volume offered; it must be `available`.
    pub volume_id: VolumeId,
    /// Name.
    pub display_name: Option<String>,
    /// Salt of the hash.
    pub salt: String,
    /// Salted hash of the auth key.
    pub crypt_hash: String,
    /// Leave the snapshots with the giving project (3.55).
    pub no_snapshots: bool,
}

/// A column transfer lists filter and sort on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferColumn {
    /// `id`.
    Id,
    /// `volume_id`.
    VolumeId,
    /// `display_name` (API `name`).
    DisplayName,
    /// `source_project_id`.
    SourceProjectId,
    /// `destination_project_id`.
    DestinationProjectId,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `no_snapshots` (0/1).
    NoSnapshots,
    /// `accepted` (0/1).
    Accepted,
}

impl TransferColumn {
    fn sql(self) -> &'static str {
        match self {
            TransferColumn::Id => "t.id",
            TransferColumn::VolumeId => "t.volume_id",
            TransferColumn::DisplayName => "t.display_name",
            TransferColumn::SourceProjectId => "t.source_project_id",
            TransferColumn::DestinationProjectId => "t.destination_project_id",
            TransferColumn::CreatedAt => "t.created_at",
            TransferColumn::UpdatedAt => "t.updated_at",
            TransferColumn::NoSnapshots => "t.no_snapshots",
            TransferColumn::Accepted => "t.accepted",
        }
    }

    fn is_integer(self) -> bool {
        matches!(
            self,
            TransferColumn::CreatedAt
                | TransferColumn::UpdatedAt
                | TransferColumn::NoSnapshots
                | TransferColumn::Accepted
        )
    }
}

/// A transfer list request.
#[derive(Clone, Debug, Default)]
pub struct TransferQuery {
    /// Only transfers of volumes this project owns (`None`: every project).
    pub project_id: Option<String>,
    /// Exact-match filters (integer columns take `0`/`1`).
    pub filters: Vec<(TransferColumn, String)>,
    /// Sort keys; empty means `created_at` descending.
    pub sort: Vec<(TransferColumn, SortDir)>,
    /// Paging.
    pub page: Page<TransferId>,
}

/// Who accepts a transfer.
#[derive(Clone, Debug)]
pub struct TransferAcceptor {
    /// The new owner user.
    pub user_id: String,
    /// The new owner project.
    pub project_id: String,
}

/// Which quota refused an accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptRefusal {
    /// The volume's own charges (`per_volume_gigabytes`, `volumes`,
    /// `gigabytes`, per type).
    Volume(OverQuota),
    /// The snapshots' charges.
    Snapshots(OverQuota),
}

/// Transfer repository.
#[async_trait::async_trait]
pub trait TransferRepository {
    /// Offers an `available` volume: `available → awaiting-transfer` and the
    /// transfer row, in one transaction. Unless `no_snapshots`, every
    /// snapshot of the volume must be `available`.
    ///
    /// # Errors
    /// [`DbError::NotFound`] (volume), [`DbError::InvalidState`] (volume or
    /// snapshot status), [`DbError::Conflict`] (duplicate id).
    async fn create_transfer(&self, new: NewTransfer) -> Result<Transfer, DbError>;

    /// One transfer, whatever project it belongs to.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_transfer(&self, id: TransferId) -> Result<Transfer, DbError>;

    /// A page of transfers.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for a marker that does not exist in scope.
    async fn list_transfers(&self, query: &TransferQuery) -> Result<Vec<Transfer>, DbError>;

    /// Withdraws an offer: removes the row and moves its volume back from
    /// `awaiting-transfer` to `available` (a volume found in another status
    /// is left alone, as Cinder does). Returns the removed transfer.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn delete_transfer(&self, id: TransferId) -> Result<Transfer, DbError>;

    /// Accepts an offer: in one transaction the volume goes
    /// `awaiting-transfer → available` owned by `acceptor`, its snapshots
    /// follow unless the offer said `no_snapshots`, the quota usage moves
    /// from the giving to the accepting project (the accepting project's
    /// limits enforced), and the offer is removed. Returns the volume.
    ///
    /// # Errors
    /// [`DbError::NotFound`] (transfer), [`DbError::InvalidState`] (volume
    /// or a snapshot in an unexpected status, or the volume is in a
    /// group), `Ok(Err(refusal))` when a quota refuses — nothing changes
    /// then.
    async fn accept_transfer(
        &self,
        id: TransferId,
        acceptor: &TransferAcceptor,
    ) -> Result<Result<Volume, AcceptRefusal>, DbError>;
}

const TRANSFER_FROM: &str = "transfers t JOIN volumes v ON v.id = t.volume_id";

const TRANSFER_COLUMNS: &str = "t.id, t.volume_id, t.display_name, t.salt, t.crypt_hash, t.no_snapshots, \
     t.source_project_id, t.destination_project_id, t.accepted, t.created_at, t.updated_at, \
     v.project_id AS volume_project_id";

fn decode(row: &AnyRow) -> Result<Transfer, DbError> {
    let get = |e: sqlx::Error| DbError::Internal(format!("transfers row: {e}"));
    let id: String = row.try_get("id").map_err(get)?;
    let volume_id: String = row.try_get("volume_id").map_err(get)?;
    Ok(Transfer {
        id: id
            .parse()
            .map_err(|_| DbError::Internal(format!("corrupt transfer id {id:?}")))?,
        volume_id: volume_id
            .parse()
            .map_err(|_| DbError::Internal(format!("corrupt volume id {volume_id:?}")))?,
        display_name: row.try_get("display_name").map_err(get)?,
        salt: row.try_get("salt").map_err(get)?,
        crypt_hash: row.try_get("crypt_hash").map_err(get)?,
        no_snapshots: row.try_get::<i64, _>("no_snapshots").map_err(get)? != 0,
        source_project_id: row.try_get("source_project_id").map_err(get)?,
        destination_project_id: row.try_get("destination_project_id").map_err(get)?,
        accepted: row.try_get::<i64, _>("accepted").map_err(get)? != 0,
        volume_project_id: row.try_get("volume_project_id").map_err(get)?,
        created_at: Timestamp(row.try_get("created_at").map_err(get)?),
        updated_at: row
            .try_get::<Option<i64>, _>("updated_at")
            .map_err(get)?
            .map(Timestamp),
    })
}

impl Db {
    /// Loads a transfer inside a transaction, locking its row.
    async fn lock_transfer(
        &self,
        conn: &mut AnyConnection,
        id: TransferId,
    ) -> Result<Transfer, DbError> {
        let lock = match self.dialect {
            crate::Dialect::Postgres => " FOR UPDATE OF t",
            other => other.for_update(),
        };
        let sql = self.dynamic(format!(
            "SELECT {TRANSFER_COLUMNS} FROM {TRANSFER_FROM} WHERE t.id = ?{lock}"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found("transfer", id))?;
        decode(&row)
    }

    /// `(id, status, volume_size, use_quota, type name)` of a volume's
    /// snapshots.
    async fn snapshots_for_transfer(
        &self,
        conn: &mut AnyConnection,
        volume_id: VolumeId,
    ) -> Result<Vec<(String, String, i64, bool, Option<String>)>, DbError> {
        let rows: Vec<(String, String, i64, i64, Option<String>)> = sqlx::query_as(self.q(
            "SELECT s.id, s.status, s.volume_size, s.use_quota, ty.name FROM snapshots s \
             LEFT JOIN volume_types ty ON ty.id = s.volume_type_id WHERE s.volume_id = ?",
        ))
        .bind(volume_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, status, size, use_quota, name)| (id, status, size, use_quota != 0, name))
            .collect())
    }
}

#[async_trait::async_trait]
impl TransferRepository for Db {
    async fn create_transfer(&self, new: NewTransfer) -> Result<Transfer, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, new.volume_id).await?;
            if !new.no_snapshots {
                let snapshots = self.snapshots_for_transfer(&mut tx, volume.id).await?;
                if let Some((id, status, ..)) = snapshots
                    .iter()
                    .find(|(_, status, ..)| status != SnapshotStatus::Available.as_str())
                {
                    return Err(DbError::InvalidState(format!("snapshot {id} is {status}")));
                }
            }
            let row = VolumeTransition::BeginTransfer.transition();
            self.cas_volume_status(&mut tx, volume.id, row.from, row.to, "", Vec::new())
                .await?;
            sqlx::query(self.q(
                "INSERT INTO transfers (id, volume_id, display_name, salt, crypt_hash, no_snapshots, \
                 source_project_id, destination_project_id, accepted, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, NULL)",
            ))
            .bind(new.id.to_string())
            .bind(new.volume_id.to_string())
            .bind(new.display_name.as_deref())
            .bind(new.salt.as_str())
            .bind(new.crypt_hash.as_str())
            .bind(i64::from(new.no_snapshots))
            .bind(volume.project_id.as_str())
            .bind(self.now().as_micros())
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(())
        })?;
        self.get_transfer(new.id).await
    }

    async fn get_transfer(&self, id: TransferId) -> Result<Transfer, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {TRANSFER_COLUMNS} FROM {TRANSFER_FROM} WHERE t.id = ?"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("transfer", id))?;
        decode(&row)
    }

    async fn list_transfers(&self, query: &TransferQuery) -> Result<Vec<Transfer>, DbError> {
        let sort = crate::query::complete_sort(
            query.sort.clone(),
            TransferColumn::CreatedAt,
            TransferColumn::Id,
        );
        let keys: Vec<(String, SortDir)> = sort
            .iter()
            .map(|(c, d)| (crate::query::sort_expr(c.sql(), c.is_integer()), *d))
            .collect();
        let mut args = Vec::new();
        let mut scope = String::from(" WHERE 1 = 1");
        let mut scope_args = Vec::new();
        if let Some(project) = &query.project_id {
            scope.push_str(" AND v.project_id = ?");
            scope_args.push(Arg::Text(project.clone()));
        }
        let mut sql = format!("SELECT {TRANSFER_COLUMNS} FROM {TRANSFER_FROM}{scope}");
        args.extend(scope_args.iter().cloned());
        for (column, value) in &query.filters {
            if column.is_integer() {
                match value.parse::<i64>() {
                    Ok(n) => {
                        sql.push_str(&format!(" AND {} = ?", column.sql()));
                        args.push(Arg::Int(n));
                    }
                    // A non-numeric value for a numeric column matches nothing.
                    Err(_) => sql.push_str(" AND 1 = 0"),
                }
            } else {
                sql.push_str(&format!(" AND {} = ?", column.sql()));
                args.push(Arg::Text(value.clone()));
            }
        }
        if let Some(marker) = query.page.marker {
            let exprs: Vec<&str> = keys.iter().map(|(e, _)| e.as_str()).collect();
            let marker_sql = self.dynamic(format!(
                "SELECT {} FROM {TRANSFER_FROM}{scope} AND t.id = ?",
                exprs.join(", ")
            ));
            let mut marker_args = scope_args.clone();
            marker_args.push(Arg::Text(marker.to_string()));
            let row = bind_all(
                sqlx::query(sqlx::AssertSqlSafe(marker_sql.as_str())),
                &marker_args,
            )
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("marker", marker))?;
            let flags: Vec<bool> = sort.iter().map(|(c, _)| c.is_integer()).collect();
            let values = crate::query::marker_args(&row, &flags)?;
            sql.push_str(&crate::query::keyset_condition(&keys, &values, &mut args));
        }
        sql.push_str(&crate::query::order_by(&keys));
        crate::query::push_limit(&mut sql, &mut args, query.page.limit, query.page.offset);
        let sql = self.dynamic(sql);
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn delete_transfer(&self, id: TransferId) -> Result<Transfer, DbError> {
        in_transaction!(self, |tx| {
            let transfer = self.lock_transfer(&mut tx, id).await?;
            let row = VolumeTransition::FinishTransfer.transition();
            match self
                .cas_volume_status(
                    &mut tx,
                    transfer.volume_id,
                    row.from,
                    row.to,
                    "",
                    Vec::new(),
                )
                .await
            {
                // Cinder logs a volume found in another status and still
                // removes the offer.
                Ok(()) | Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            sqlx::query(self.q("DELETE FROM transfers WHERE id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            Ok::<_, DbError>(transfer)
        })
    }

    async fn accept_transfer(
        &self,
        id: TransferId,
        acceptor: &TransferAcceptor,
    ) -> Result<Result<Volume, AcceptRefusal>, DbError> {
        // Which charges were being applied when a quota refused: a refusal
        // is an error inside the transaction (so it rolls back) and is told
        // apart afterwards. Atomic, not `Cell`, so the future stays `Send`.
        let charging_snapshots = AtomicBool::new(false);
        let outcome = in_transaction!(self, |tx| {
            charging_snapshots.store(false, Ordering::Relaxed);
            let transfer = self.lock_transfer(&mut tx, id).await?;
            let volume = self.lock_volume(&mut tx, transfer.volume_id).await?;
            if volume.consistencygroup_id.is_some() || volume.group_id.is_some() {
                return Err(DbError::InvalidState(format!(
                    "volume {} belongs to a group",
                    volume.id
                )));
            }
            let giver = volume.project_id.clone();
            let row = VolumeTransition::FinishTransfer.transition();
            self.cas_volume_status(
                &mut tx,
                volume.id,
                row.from,
                row.to,
                ", user_id = ?, project_id = ?",
                vec![
                    Arg::Text(acceptor.user_id.clone()),
                    Arg::Text(acceptor.project_id.clone()),
                ],
            )
            .await?;
            self.change_volume_count(&mut tx, &giver, -1, -volume.size)
                .await?;
            self.change_volume_count(&mut tx, &acceptor.project_id, 1, volume.size)
                .await?;
            if volume.use_quota {
                let charges = volume_charges(volume.volume_type_name.as_deref(), volume.size, 1);
                let mut wanted: Vec<&str> = charges.iter().map(|(r, _)| r.as_str()).collect();
                wanted.push("per_volume_gigabytes");
                let limits = limits_for(self, &mut tx, &acceptor.project_id, &wanted).await?;
                let per_volume = limits.get("per_volume_gigabytes").copied().unwrap_or(-1);
                if per_volume >= 0 && volume.size > per_volume {
                    return Err(DbError::OverQuota(OverQuota {
                        resource: "per_volume_gigabytes".into(),
                        limit: per_volume,
                        in_use: 0,
                        requested: volume.size,
                    }));
                }
                charge_quota_with_limits(self, &mut tx, &acceptor.project_id, &charges, &limits)
                    .await?;
                let released = volume_charges(volume.volume_type_name.as_deref(), volume.size, -1);
                charge_quota(self, &mut tx, &giver, &released).await?;
            }
            if !transfer.no_snapshots {
                let snapshots = self.snapshots_for_transfer(&mut tx, volume.id).await?;
                let mut taken: Vec<(String, i64)> = Vec::new();
                for (snapshot_id, status, size, use_quota, type_name) in &snapshots {
                    if status != SnapshotStatus::Available.as_str() {
                        return Err(DbError::InvalidState(format!(
                            "snapshot {snapshot_id} is {status}"
                        )));
                    }
                    if *use_quota {
                        for (resource, delta) in
                            snapshot_charges(self, type_name.as_deref(), *size, 1)
                        {
                            match taken.iter_mut().find(|(r, _)| *r == resource) {
                                Some((_, total)) => *total += delta,
                                None => taken.push((resource, delta)),
                            }
                        }
                    }
                }
                charging_snapshots.store(true, Ordering::Relaxed);
                charge_quota(self, &mut tx, &acceptor.project_id, &taken).await?;
                charging_snapshots.store(false, Ordering::Relaxed);
                let given: Vec<(String, i64)> =
                    taken.iter().map(|(r, d)| (r.clone(), -d)).collect();
                charge_quota(self, &mut tx, &giver, &given).await?;
                sqlx::query(self.q(
                    "UPDATE snapshots SET user_id = ?, project_id = ?, updated_at = ? WHERE volume_id = ?",
                ))
                .bind(acceptor.user_id.as_str())
                .bind(acceptor.project_id.as_str())
                .bind(self.now().as_micros())
                .bind(volume.id.to_string())
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(self.q("DELETE FROM transfers WHERE id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            Ok::<_, DbError>(volume.id)
        });
        match outcome {
            Ok(volume_id) => Ok(Ok(self.get_volume(volume_id).await?)),
            Err(DbError::OverQuota(over)) if charging_snapshots.load(Ordering::Relaxed) => {
                Ok(Err(AcceptRefusal::Snapshots(over)))
            }
            Err(DbError::OverQuota(over)) => Ok(Err(AcceptRefusal::Volume(over))),
            Err(e) => Err(e),
        }
    }
}
