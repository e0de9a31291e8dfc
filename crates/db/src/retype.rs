//! Changing a volume's type ([`RetypeRepository`], `os-retype`).
//!
//! The volume goes `available|in-use → retyping` (its status saved in
//! `previous_status`) with a journal row; the new type's per-type quota is
//! checked then, so a refusal is immediate. The type change itself — the
//! volume's and its snapshots' `volume_type_id`, `multiattach`, and the
//! per-type usage moving from the old type's resources to the new type's —
//! happens in the one transaction that also restores the status and
//! removes the journal row, so usage equals a recount at every moment.

use std::collections::BTreeMap;

use clinker_types::model::{JournalResource, Volume};
use clinker_types::status::VolumeTransition;
use clinker_types::{VolumeId, VolumeStatus, VolumeTypeId};
use sqlx::{AnyConnection, Row};

use crate::VolumeRepository;
use crate::error::{DbError, OverQuota};
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all, placeholders};
use crate::quota::{charge_quota, limits_for};

/// Migration statuses that do not block a retype (Cinder's
/// `AVAILABLE_MIGRATION_STATUS`, plus `none`).
const RETYPE_MIGRATION_STATUSES: &[&str] = &["deleting", "error", "success", "none"];

/// Retype repository.
#[async_trait::async_trait]
pub trait RetypeRepository {
    /// Starts a retype to `new_type_id`: the volume must be `available` or
    /// `in-use`, not migrating, not in a group, of another type, and the new
    /// type's per-type quota must have room for it. Moves it to `retyping`
    /// and journals `detail` (what the volume service needs to resume or
    /// settle it).
    ///
    /// # Errors
    /// [`DbError::NotFound`] (volume or type), [`DbError::InvalidState`],
    /// [`DbError::OverQuota`] (nothing changed then).
    async fn begin_volume_retype(
        &self,
        volume_id: VolumeId,
        new_type_id: VolumeTypeId,
        detail: serde_json::Value,
    ) -> Result<Volume, DbError>;

    /// Finishes a retype: type, `multiattach` and the snapshots' type
    /// change, the per-type usage moves, the previous status comes back and
    /// the journal row goes, in one transaction.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `retyping`, [`DbError::OverQuota`]
    /// when the new type's quota filled up meanwhile (nothing changed).
    async fn finish_volume_retype(
        &self,
        volume_id: VolumeId,
        new_type_id: VolumeTypeId,
    ) -> Result<Volume, DbError>;

    /// Abandons a retype: the previous status comes back, the journal row
    /// goes, the type is unchanged.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `retyping`.
    async fn abort_volume_retype(&self, volume_id: VolumeId) -> Result<Volume, DbError>;
}

/// `(name, multiattach)` of a type, read in the transaction.
pub(crate) async fn type_facts(
    db: &Db,
    conn: &mut AnyConnection,
    id: VolumeTypeId,
) -> Result<(String, bool), DbError> {
    let name: Option<String> =
        sqlx::query_scalar(db.q("SELECT name FROM volume_types WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    let name = name.ok_or_else(|| DbError::not_found("volume type", id))?;
    let multiattach: Option<String> = sqlx::query_scalar(db.q(
        "SELECT spec_value FROM volume_type_extra_specs WHERE volume_type_id = ? AND spec_key = 'multiattach'",
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let multiattach = multiattach.is_some_and(|v| v.trim().eq_ignore_ascii_case("<is> true"));
    Ok((name, multiattach))
}

/// Refuses (without changing anything) when adding `charges` would pass
/// one of the project's limits: the first resource over its limit, in
/// order, as Cinder reports it.
async fn check_room(
    db: &Db,
    conn: &mut AnyConnection,
    project_id: &str,
    charges: &[(String, i64)],
) -> Result<(), DbError> {
    let resources: Vec<&str> = charges.iter().map(|(r, _)| r.as_str()).collect();
    let limits = limits_for(db, conn, project_id, &resources).await?;
    let sql = db.dynamic(format!(
        "SELECT resource, in_use FROM quota_usages WHERE project_id = ? AND resource IN ({})",
        placeholders(resources.len())
    ));
    let mut args = vec![Arg::Text(project_id.to_owned())];
    args.extend(resources.iter().map(|r| Arg::Text((*r).to_owned())));
    let mut usage: BTreeMap<String, i64> = BTreeMap::new();
    for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
        .fetch_all(&mut *conn)
        .await?
    {
        usage.insert(row.try_get(0)?, row.try_get(1)?);
    }
    for (resource, delta) in charges {
        let limit = limits.get(resource).copied().unwrap_or(-1);
        let in_use = usage.get(resource).copied().unwrap_or(0);
        if *delta > 0 && limit >= 0 && in_use + delta > limit {
            return Err(DbError::OverQuota(OverQuota {
                resource: resource.clone(),
                limit,
                in_use,
                requested: *delta,
            }));
        }
    }
    Ok(())
}

impl Db {
    /// The per-type charges that move a volume and its snapshots from their
    /// current types to `new_name`: negative for the old resources,
    /// positive for the new ones (positives first, so a refusal names a
    /// new-type resource).
    pub(crate) async fn retype_charges(
        &self,
        conn: &mut AnyConnection,
        volume: &Volume,
        new_name: &str,
    ) -> Result<Vec<(String, i64)>, DbError> {
        // Net deltas per resource: a snapshot may already carry the new
        // type, and one resource must appear once in a charge.
        let mut gains: BTreeMap<String, i64> = BTreeMap::new();
        let mut losses: BTreeMap<String, i64> = BTreeMap::new();
        if volume.use_quota {
            *gains.entry(format!("volumes_{new_name}")).or_default() += 1;
            *gains.entry(format!("gigabytes_{new_name}")).or_default() += volume.size;
            if let Some(old) = &volume.volume_type_name {
                *losses.entry(format!("volumes_{old}")).or_default() -= 1;
                *losses.entry(format!("gigabytes_{old}")).or_default() -= volume.size;
            }
        }
        let snapshots: Vec<(i64, Option<String>)> = sqlx::query_as(self.q(
            "SELECT s.volume_size, t.name FROM snapshots s LEFT JOIN volume_types t \
             ON t.id = s.volume_type_id WHERE s.volume_id = ? AND s.use_quota = 1",
        ))
        .bind(volume.id.to_string())
        .fetch_all(&mut *conn)
        .await?;
        let snapshot_gb = !self.quota_defaults.no_snapshot_gb_quota;
        for (size, old) in snapshots {
            *gains.entry(format!("snapshots_{new_name}")).or_default() += 1;
            if snapshot_gb {
                *gains.entry(format!("gigabytes_{new_name}")).or_default() += size;
            }
            if let Some(old) = old {
                *losses.entry(format!("snapshots_{old}")).or_default() -= 1;
                if snapshot_gb {
                    *losses.entry(format!("gigabytes_{old}")).or_default() -= size;
                }
            }
        }
        for (resource, delta) in losses {
            *gains.entry(resource).or_default() += delta;
        }
        let mut charges: Vec<(String, i64)> = gains.into_iter().filter(|(_, d)| *d != 0).collect();
        // Order Cinder reports in: volumes before gigabytes before snapshots.
        charges.sort_by_key(|(r, d)| {
            (
                *d < 0,
                if r.starts_with("volumes") {
                    0
                } else if r.starts_with("gigabytes") {
                    1
                } else {
                    2
                },
            )
        });
        Ok(charges)
    }
}

#[async_trait::async_trait]
impl RetypeRepository for Db {
    async fn begin_volume_retype(
        &self,
        volume_id: VolumeId,
        new_type_id: VolumeTypeId,
        detail: serde_json::Value,
    ) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, volume_id).await?;
            if !VolumeTransition::BeginRetype.allows(volume.status) {
                return Err(DbError::InvalidState(format!(
                    "volume {volume_id} is {}",
                    volume.status
                )));
            }
            let migrating = volume
                .migration_status
                .as_deref()
                .is_some_and(|m| !RETYPE_MIGRATION_STATUSES.contains(&m));
            let grouped = volume.group_id.is_some() || volume.consistencygroup_id.is_some();
            if migrating || grouped || volume.volume_type_id == new_type_id {
                return Err(DbError::InvalidState(format!(
                    "volume {volume_id} cannot be retyped to {new_type_id}"
                )));
            }
            let (new_name, _) = type_facts(self, &mut tx, new_type_id).await?;
            let charges = self.retype_charges(&mut tx, &volume, &new_name).await?;
            check_room(self, &mut tx, &volume.project_id, &charges).await?;
            let row = VolumeTransition::BeginRetype.transition();
            self.cas_volume_status(
                &mut tx,
                volume_id,
                row.from,
                row.to,
                ", previous_status = ?",
                vec![Arg::Text(volume.status.as_str().to_owned())],
            )
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

    async fn finish_volume_retype(
        &self,
        volume_id: VolumeId,
        new_type_id: VolumeTypeId,
    ) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, volume_id).await?;
            if volume.status != VolumeStatus::Retyping {
                return Err(DbError::InvalidState(format!(
                    "volume {volume_id} is {}, not retyping",
                    volume.status
                )));
            }
            let (new_name, multiattach) = type_facts(self, &mut tx, new_type_id).await?;
            let charges = self.retype_charges(&mut tx, &volume, &new_name).await?;
            charge_quota(self, &mut tx, &volume.project_id, &charges).await?;
            let transition = match volume.previous_status.as_deref() {
                Some("in-use") => VolumeTransition::FinishRetypeInUse,
                _ => VolumeTransition::FinishRetypeAvailable,
            };
            let row = transition.transition();
            self.cas_volume_status(
                &mut tx,
                volume_id,
                row.from,
                row.to,
                ", volume_type_id = ?, multiattach = ?, previous_status = NULL",
                vec![
                    Arg::Text(new_type_id.to_string()),
                    Arg::Int(i64::from(multiattach)),
                ],
            )
            .await?;
            sqlx::query(
                self.q(
                    "UPDATE snapshots SET volume_type_id = ?, updated_at = ? WHERE volume_id = ?",
                ),
            )
            .bind(new_type_id.to_string())
            .bind(self.now().as_micros())
            .bind(volume_id.to_string())
            .execute(&mut *tx)
            .await?;
            self.remove_journal(&mut tx, JournalResource::Volume, &volume_id.to_string())
                .await
        })?;
        self.get_volume(volume_id).await
    }

    async fn abort_volume_retype(&self, volume_id: VolumeId) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, volume_id).await?;
            let transition = match volume.previous_status.as_deref() {
                Some("in-use") => VolumeTransition::FinishRetypeInUse,
                _ => VolumeTransition::FinishRetypeAvailable,
            };
            let row = transition.transition();
            self.cas_volume_status_ending_journal(
                &mut tx,
                volume_id,
                row.from,
                row.to,
                ", previous_status = NULL",
                Vec::new(),
            )
            .await
        })?;
        self.get_volume(volume_id).await
    }
}
