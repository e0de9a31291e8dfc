//! The image-volume cache (Cinder's `image_volume_cache_entries` and its
//! `image_volume_cache_*` database API): which volume holds which image on
//! which backend, since when, and when it was last used.

use clinker_types::model::Volume;
use clinker_types::{Timestamp, VolumeId, VolumeStatus};
use sqlx::Row;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::{NewVolume, VolumeRepository};

/// One cached image-volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageCacheEntry {
    /// Row id.
    pub id: i64,
    /// `host@backend#pool` of the cached volume.
    pub host: String,
    /// The cluster, when clustered.
    pub cluster_name: Option<String>,
    /// The Glance image.
    pub image_id: String,
    /// The image's `updated_at` when the volume was filled (`None` when
    /// Glance gave none): an image updated since is not served from it.
    pub image_updated_at: Option<Timestamp>,
    /// The cached volume (`image-<image_id>`, owned by the internal tenant).
    pub volume_id: VolumeId,
    /// Its size in GiB.
    pub size: i64,
    /// Last time it was cloned or made: the LRU order of eviction.
    pub last_used: Timestamp,
}

/// A cache entry to record for a volume just filled.
#[derive(Clone, Debug)]
pub struct NewImageCacheEntry {
    /// `host@backend#pool` of the cached volume.
    pub host: String,
    /// The cluster, when clustered.
    pub cluster_name: Option<String>,
    /// The Glance image.
    pub image_id: String,
    /// The image's `updated_at`.
    pub image_updated_at: Option<Timestamp>,
    /// The cached volume.
    pub volume_id: VolumeId,
    /// Its size in GiB.
    pub size: i64,
}

/// The image-volume cache entries. An entry's row goes with its volume's
/// rows (`finish_volume_delete` and every other removal of a volume row
/// delete it in the same transaction), so an entry never names a volume
/// that is gone.
#[async_trait::async_trait]
pub trait ImageCacheRepository {
    /// Inserts the row of a cache volume already placed on `pool` (the
    /// backend filling it chose itself, as Cinder's manager does): status
    /// `creating`, journaled on the pool's backend, the pool's capacity
    /// claimed and its owner's (the internal tenant's) quota charged, in
    /// one transaction.
    ///
    /// # Errors
    /// [`DbError::OverQuota`] (nothing written).
    async fn create_image_cache_volume(
        &self,
        new: NewVolume,
        pool: &str,
    ) -> Result<Volume, DbError>;

    /// Records a cache entry (last used now).
    ///
    /// # Errors
    /// [`DbError::Conflict`] when the volume already has an entry.
    async fn create_image_cache_entry(
        &self,
        new: NewImageCacheEntry,
    ) -> Result<ImageCacheEntry, DbError>;

    /// The entries of backend `service_host` (`host@backend`, every pool),
    /// most recently used first (Cinder's `image_volume_cache_get_all`).
    ///
    /// # Errors
    /// Database failures.
    async fn image_cache_entries(
        &self,
        service_host: &str,
    ) -> Result<Vec<ImageCacheEntry>, DbError>;

    /// Marks an entry used now (a clone was served from it).
    ///
    /// # Errors
    /// Database failures (an entry gone meanwhile is not an error).
    async fn touch_image_cache_entry(&self, id: i64) -> Result<(), DbError>;

    /// Forgets the entry of `volume_id`, if any; returns whether there was
    /// one (Cinder's `image_volume_cache_delete`).
    ///
    /// # Errors
    /// Database failures.
    async fn delete_image_cache_entry(&self, volume_id: VolumeId) -> Result<bool, DbError>;
}

fn entry(row: &sqlx::any::AnyRow) -> Result<ImageCacheEntry, DbError> {
    let volume_id: String = row.try_get(5)?;
    Ok(ImageCacheEntry {
        id: row.try_get(0)?,
        host: row.try_get(1)?,
        cluster_name: row.try_get(2)?,
        image_id: row.try_get(3)?,
        image_updated_at: row.try_get::<Option<i64>, _>(4)?.map(Timestamp),
        volume_id: volume_id.parse().map_err(|_| {
            DbError::Internal(format!("bad volume id {volume_id} in the image cache"))
        })?,
        size: row.try_get(6)?,
        last_used: Timestamp(row.try_get(7)?),
    })
}

/// Whether pool host `host` (`host@backend#pool`) is on `service_host`.
fn on_backend(host: &str, service_host: &str) -> bool {
    host.split_once('#').map_or(host, |(backend, _)| backend) == service_host
}

#[async_trait::async_trait]
impl ImageCacheRepository for Db {
    async fn create_image_cache_volume(
        &self,
        new: NewVolume,
        pool: &str,
    ) -> Result<Volume, DbError> {
        let now = self.now().as_micros();
        in_transaction!(self, |tx| {
            self.insert_new_volume(&mut tx, &new, now).await?;
            sqlx::query(self.q("UPDATE volumes SET host = ?, scheduled_at = ? WHERE id = ?"))
                .bind(pool)
                .bind(now)
                .bind(new.id.to_string())
                .execute(&mut *tx)
                .await?;
            self.ensure_pool_row(&mut tx, pool).await?;
            sqlx::query(
                self.q(
                    "UPDATE pool_allocations SET allocated_gb = allocated_gb + ? WHERE pool = ?",
                ),
            )
            .bind(new.size)
            .bind(pool)
            .execute(&mut *tx)
            .await?;
            self.journal_volume(&mut tx, new.id, VolumeStatus::Creating, Some(pool), None)
                .await
        })?;
        self.get_volume(new.id).await
    }

    async fn create_image_cache_entry(
        &self,
        new: NewImageCacheEntry,
    ) -> Result<ImageCacheEntry, DbError> {
        let now = self.now();
        sqlx::query(self.q("INSERT INTO image_volume_cache_entries \
             (host, cluster_name, image_id, image_updated_at, volume_id, size, last_used) \
             VALUES (?, ?, ?, ?, ?, ?, ?)"))
        .bind(new.host.as_str())
        .bind(new.cluster_name.as_deref())
        .bind(new.image_id.as_str())
        .bind(new.image_updated_at.map(Timestamp::as_micros))
        .bind(new.volume_id.to_string())
        .bind(new.size)
        .bind(now.as_micros())
        .execute(&mut *self.writer().await?)
        .await?;
        let row = sqlx::query(self.q(
            "SELECT id, host, cluster_name, image_id, image_updated_at, volume_id, size, last_used \
             FROM image_volume_cache_entries WHERE volume_id = ?",
        ))
        .bind(new.volume_id.to_string())
        .fetch_one(&mut *self.writer().await?)
        .await?;
        entry(&row)
    }

    async fn image_cache_entries(
        &self,
        service_host: &str,
    ) -> Result<Vec<ImageCacheEntry>, DbError> {
        // The pool part is matched exactly in Rust: `_` in a host name
        // would be a LIKE wildcard.
        let rows = sqlx::query(self.q(
            "SELECT id, host, cluster_name, image_id, image_updated_at, volume_id, size, last_used \
             FROM image_volume_cache_entries WHERE host = ? OR host LIKE ? \
             ORDER BY last_used DESC, id DESC",
        ))
        .bind(service_host)
        .bind(format!("{service_host}#%"))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let found = entry(row)?;
            if on_backend(&found.host, service_host) {
                entries.push(found);
            }
        }
        Ok(entries)
    }

    async fn touch_image_cache_entry(&self, id: i64) -> Result<(), DbError> {
        sqlx::query(self.q("UPDATE image_volume_cache_entries SET last_used = ? WHERE id = ?"))
            .bind(self.now().as_micros())
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    async fn delete_image_cache_entry(&self, volume_id: VolumeId) -> Result<bool, DbError> {
        let done =
            sqlx::query(self.q("DELETE FROM image_volume_cache_entries WHERE volume_id = ?"))
                .bind(volume_id.to_string())
                .execute(&mut *self.writer().await?)
                .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::on_backend;

    #[test]
    fn entries_belong_to_their_backend_only() {
        assert!(on_backend("node@file#file", "node@file"));
        assert!(on_backend("node@file", "node@file"));
        assert!(!on_backend("node@file2#file2", "node@file"));
        assert!(!on_backend("nodeXfile#p", "node_file"));
    }
}
