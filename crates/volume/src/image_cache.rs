//! The image-volume cache of one backend (Cinder's `cinder/image/cache.py`
//! and the cache half of `_create_from_image_cache_or_download` in
//! `volume/flows/manager/create_volume.py`).
//!
//! A cached image is a volume `image-<image id>` owned by the internal
//! tenant (`cinder_internal_tenant_project_id` / `_user_id`), on the backend
//! that filled it, with an `image_volume_cache_entries` row. The first
//! create of an image on the backend downloads into the user's volume made
//! at the image's size, clones that into a new cache volume, then extends
//! the user's volume to the size asked for (Cinder's order); later creates
//! clone the cache volume with the driver's `create_cloned_volume` (file:
//! reflink or sparse copy, LVM: snapshot-based copy, RBD: clone). Entries
//! are evicted least recently used first within
//! `image_volume_cache_max_size_gb` / `_max_count`, and an entry older than
//! the image's `updated_at` is evicted rather than served.

use clinker_config::ImageOptions;
use clinker_db::{
    DbError, DeleteOptions, DeleteStart, ImageCacheEntry, NewImageCacheEntry, NewVolume,
};
use clinker_drivers::ModelUpdate;
use clinker_image::ImageMeta;
use clinker_rpc::RequestContext;
use clinker_rpc::volume::DeleteVolumeArgs;
use clinker_types::model::Volume;
use clinker_types::{Timestamp, VolumeId, VolumeStatus};

use crate::manager::{VolumeManager, provider, volume_spec};

const GIB: u64 = 1 << 30;

/// The cache settings of a backend whose cache is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageCacheSettings {
    /// `image_volume_cache_max_size_gb` (0: unlimited).
    pub max_size_gb: i64,
    /// `image_volume_cache_max_count` (0: unlimited).
    pub max_count: i64,
    /// `cinder_internal_tenant_project_id`: owner of the cache volumes.
    pub project_id: String,
    /// `cinder_internal_tenant_user_id`.
    pub user_id: String,
}

impl ImageCacheSettings {
    /// The settings of backend section `backend`, or `None` when its
    /// cache is off. A cache enabled without the internal tenant is off,
    /// with a warning (Cinder logs "Unable to get Cinder internal context,
    /// will not use image-volume cache.").
    pub fn from_options(options: &ImageOptions, backend: &str) -> Option<Self> {
        let section = options.backend(backend);
        if !section.image_volume_cache_enabled {
            return None;
        }
        let (Some(project_id), Some(user_id)) = (
            options.cinder_internal_tenant_project_id.clone(),
            options.cinder_internal_tenant_user_id.clone(),
        ) else {
            tracing::warn!(
                backend,
                "image_volume_cache_enabled is set but cinder_internal_tenant_project_id and \
                 cinder_internal_tenant_user_id are not: the image-volume cache is off"
            );
            return None;
        };
        Some(Self {
            max_size_gb: i64::try_from(section.image_volume_cache_max_size_gb).unwrap_or(i64::MAX),
            max_count: i64::try_from(section.image_volume_cache_max_count).unwrap_or(i64::MAX),
            project_id,
            user_id,
        })
    }
}

/// The entries to evict so that one more entry of `size` GiB fits within
/// the limits (Cinder's `ensure_space`), from `entries` ordered most
/// recently used first; `None` when it cannot fit even in an empty cache.
fn entries_to_evict(
    settings: &ImageCacheSettings,
    entries: &[ImageCacheEntry],
    size: i64,
) -> Option<Vec<ImageCacheEntry>> {
    if settings.max_size_gb == 0 && settings.max_count == 0 {
        return Some(Vec::new());
    }
    if settings.max_size_gb > 0 && size > settings.max_size_gb {
        return None;
    }
    let mut total_size = entries.iter().map(|e| e.size).sum::<i64>() + size;
    let mut total_count = i64::try_from(entries.len()).unwrap_or(i64::MAX) + 1;
    let mut evict = Vec::new();
    let mut remaining = entries.to_vec();
    while (settings.max_size_gb > 0 && total_size > settings.max_size_gb)
        || (settings.max_count > 0 && total_count > settings.max_count)
    {
        let Some(oldest) = remaining.pop() else {
            break;
        };
        total_size -= oldest.size;
        total_count -= 1;
        evict.push(oldest);
    }
    Some(evict)
}

/// Whether an entry still holds the image as Glance has it now.
fn is_fresh(entry: &ImageCacheEntry, image: &ImageMeta) -> bool {
    let current = image
        .updated_at
        .as_deref()
        .and_then(Timestamp::parse_iso8601);
    entry.image_updated_at == current
}

/// The GiB an image needs (its virtual size rounded up; a raw image's size
/// is its virtual size), when Glance knows.
pub(crate) fn image_size_gb(image: &ImageMeta) -> Option<i64> {
    let raw_size = image
        .size
        .filter(|_| image.disk_format.as_deref() == Some("raw"));
    let bytes = image.virtual_size.or(raw_size)?;
    i64::try_from(bytes.div_ceil(GIB).max(1)).ok()
}

impl VolumeManager {
    /// Turns the image-volume cache of this backend on.
    #[must_use]
    pub fn with_image_cache(mut self, settings: Option<ImageCacheSettings>) -> Self {
        self.image_cache = settings;
        self
    }

    /// The cache settings when `volume` may use the cache (Cinder caches
    /// no encrypted volume).
    pub(crate) fn image_cache_for(&self, volume: &Volume) -> Option<&ImageCacheSettings> {
        self.image_cache
            .as_ref()
            .filter(|_| volume.encryption_key_id.is_none())
    }

    /// The fresh entry of `image` on this backend, marked used; a stale
    /// entry is evicted (Cinder's `get_entry`).
    async fn image_cache_entry(
        &self,
        context: &RequestContext,
        image: &ImageMeta,
    ) -> Option<ImageCacheEntry> {
        let entries = match self.db.image_cache_entries(self.host()).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(image_id = %image.id, error = %e, "cannot read the image-volume cache");
                return None;
            }
        };
        let entry = entries.into_iter().find(|e| e.image_id == image.id)?;
        if !is_fresh(&entry, image) {
            tracing::info!(image_id = %image.id, volume_id = %entry.volume_id,
                "the image changed since it was cached: evicting the cache entry");
            self.evict_image_cache_entry(context, &entry).await;
            return None;
        }
        if let Err(e) = self.db.touch_image_cache_entry(entry.id).await {
            tracing::warn!(image_id = %image.id, error = %e, "cannot mark the image-volume cache entry used");
        }
        Some(entry)
    }

    /// Makes `volume` by cloning the cached volume of `image`, if there is
    /// a fresh one; `None` (after a warning for a failed clone) sends the
    /// create to the download path, as Cinder falls back to Glance.
    pub(crate) async fn clone_from_image_cache(
        &self,
        context: &RequestContext,
        volume: &Volume,
        image: &ImageMeta,
    ) -> Option<ModelUpdate> {
        let entry = self.image_cache_entry(context, image).await?;
        if entry.size > volume.size {
            // Cached from a larger first volume (an image without a
            // virtual size): a clone cannot shrink it.
            return None;
        }
        // A cache volume is not deleted while it is being cloned.
        let _lock = self
            .locks
            .lock(&format!("{}-delete_volume", entry.volume_id))
            .await;
        let source = match self.db.get_volume(entry.volume_id).await {
            Ok(source) if source.status == VolumeStatus::Available => source,
            Ok(source) => {
                tracing::warn!(volume_id = %source.id, status = %source.status,
                    "the cached image-volume is not available: downloading the image");
                return None;
            }
            Err(e) => {
                tracing::warn!(volume_id = %entry.volume_id, error = %e, "cannot read the cached image-volume");
                return None;
            }
        };
        match self
            .driver
            .create_cloned_volume(&volume_spec(volume), &volume_spec(&source))
            .await
        {
            Ok(update) => {
                tracing::info!(volume_id = %volume.id, image_id = %image.id, cache_volume_id = %source.id,
                    "created the volume from the image-volume cache");
                Some(update)
            }
            Err(e) => {
                tracing::warn!(volume_id = %volume.id, image_id = %image.id, error = %e,
                    "cannot create the volume from the image-volume cache: downloading the image");
                if let Err(e) = self.driver.delete_volume(&volume_spec(volume)).await {
                    tracing::warn!(volume_id = %volume.id, error = %e, "cannot remove a failed clone");
                }
                None
            }
        }
    }

    /// Clones `filled` (a volume just filled with `image`, at the image's
    /// size) into a new cache volume with its entry (Cinder's
    /// `_create_image_cache_volume_entry`), evicting least recently used
    /// entries to make room. Failures are logged: the user's create goes
    /// on without a cache entry.
    pub(crate) async fn add_to_image_cache(
        &self,
        context: &RequestContext,
        filled: &Volume,
        image: &ImageMeta,
    ) {
        let Some(settings) = self.image_cache.clone() else {
            return;
        };
        let Some(pool) = filled.host.clone() else {
            return;
        };
        let entries = match self.db.image_cache_entries(self.host()).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(image_id = %image.id, error = %e, "cannot read the image-volume cache");
                return;
            }
        };
        if entries.iter().any(|e| e.image_id == image.id) {
            return;
        }
        let Some(evict) = entries_to_evict(&settings, &entries, filled.size) else {
            tracing::warn!(image_id = %image.id, size = filled.size, max_size_gb = settings.max_size_gb,
                "the image does not fit in the image-volume cache: not cached");
            return;
        };
        for entry in &evict {
            tracing::info!(image_id = %entry.image_id, volume_id = %entry.volume_id,
                "reclaiming image-volume cache space: evicting the least recently used entry");
            self.evict_image_cache_entry(context, entry).await;
        }
        if let Err(e) = self
            .create_cache_volume(&settings, &pool, filled, image)
            .await
        {
            tracing::warn!(image_id = %image.id, error = %e, "cannot create the image-volume cache entry");
        }
    }

    async fn create_cache_volume(
        &self,
        settings: &ImageCacheSettings,
        pool: &str,
        filled: &Volume,
        image: &ImageMeta,
    ) -> Result<(), String> {
        let volume_type_name = match &filled.volume_type_name {
            Some(name) => name.clone(),
            None => {
                self.db
                    .get_volume_type(filled.volume_type_id)
                    .await
                    .map_err(|e| format!("volume type {}: {e}", filled.volume_type_id))?
                    .name
            }
        };
        let new = NewVolume {
            id: VolumeId::new_random(),
            user_id: settings.user_id.clone(),
            project_id: settings.project_id.clone(),
            size: filled.size,
            availability_zone: filled.availability_zone.clone(),
            display_name: Some(format!("image-{}", image.id)),
            display_description: None,
            volume_type_id: filled.volume_type_id,
            volume_type_name,
            snapshot_id: None,
            source_volid: None,
            multiattach: false,
            bootable: true,
            group_id: None,
            // The internal tenant's quota, as Cinder reserves it: never a
            // user's.
            use_quota: true,
            metadata: Default::default(),
            glance_metadata: clinker_image::metadata::volume_glance_metadata(image),
            // Placed when it is made: never rescheduled from the journal.
            request_spec: None,
        };
        let cache_volume = self
            .db
            .create_image_cache_volume(new, pool)
            .await
            .map_err(|e| format!("cannot record the cache volume: {e}"))?;
        let cloned = async {
            let update = self
                .driver
                .create_cloned_volume(&volume_spec(&cache_volume), &volume_spec(filled))
                .await
                .map_err(|e| format!("cannot clone the volume into the cache: {e}"))?;
            self.db
                .finish_volume_create(cache_volume.id, provider(update))
                .await
                .map_err(|e| format!("cannot finish the cache volume: {e}"))?;
            self.db
                .create_image_cache_entry(NewImageCacheEntry {
                    host: pool.to_owned(),
                    cluster_name: filled.cluster_name.clone(),
                    image_id: image.id.clone(),
                    image_updated_at: image
                        .updated_at
                        .as_deref()
                        .and_then(Timestamp::parse_iso8601),
                    volume_id: cache_volume.id,
                    size: cache_volume.size,
                })
                .await
                .map_err(|e| format!("cannot record the cache entry: {e}"))
        }
        .await;
        match cloned {
            Ok(entry) => {
                tracing::info!(image_id = %image.id, volume_id = %entry.volume_id, size = entry.size,
                    "image-volume cache entry created");
                Ok(())
            }
            Err(reason) => {
                self.remove_cache_volume(&RequestContext::internal("image_cache"), cache_volume.id)
                    .await;
                Err(reason)
            }
        }
    }

    /// Forgets `entry` and deletes its volume (Cinder's `evict` then
    /// `_delete_image_volume`).
    async fn evict_image_cache_entry(&self, context: &RequestContext, entry: &ImageCacheEntry) {
        if let Err(e) = self.db.delete_image_cache_entry(entry.volume_id).await {
            tracing::warn!(volume_id = %entry.volume_id, error = %e, "cannot forget the image-volume cache entry");
            return;
        }
        self.remove_cache_volume(context, entry.volume_id).await;
    }

    /// Deletes a cache volume through the ordinary, journaled delete.
    async fn remove_cache_volume(&self, context: &RequestContext, volume_id: VolumeId) {
        let options = DeleteOptions {
            force: true,
            cascade: false,
        };
        match self.db.begin_volume_delete(volume_id, options).await {
            Ok(DeleteStart::Started(_) | DeleteStart::AlreadyDeleting(_)) => {
                let args = DeleteVolumeArgs {
                    volume_id,
                    cascade: false,
                };
                if let Err(e) = self.delete_volume(context, args).await {
                    tracing::warn!(%volume_id, error = %e, "cannot delete the image-volume cache volume");
                }
            }
            Ok(DeleteStart::DeletedWithoutBackend(_)) | Err(DbError::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(%volume_id, error = %e, "cannot delete the image-volume cache volume");
            }
        }
    }

    /// At start-up: entries whose volume is not `available` are evicted
    /// (a delete interrupted, an error), and cache volumes a crash left in
    /// `error` before their entry existed are deleted, so the cache holds
    /// only volumes it can clone.
    pub(crate) async fn settle_image_cache(&self) {
        let Some(settings) = self.image_cache.clone() else {
            return;
        };
        let context = RequestContext::internal("init_host");
        let entries = match self.db.image_cache_entries(self.host()).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the image-volume cache to settle it");
                return;
            }
        };
        for entry in &entries {
            match self.db.get_volume(entry.volume_id).await {
                Ok(v) if v.status == VolumeStatus::Available => {}
                Ok(v) => {
                    tracing::warn!(volume_id = %v.id, status = %v.status, "evicting an image-volume cache entry whose volume is not available");
                    self.evict_image_cache_entry(&context, entry).await;
                }
                Err(DbError::NotFound { .. }) => {
                    let _ = self.db.delete_image_cache_entry(entry.volume_id).await;
                }
                Err(e) => {
                    tracing::warn!(volume_id = %entry.volume_id, error = %e, "cannot read a cached image-volume");
                }
            }
        }
        let volumes = match self.db.volumes_on_backend(self.host()).await {
            Ok(volumes) => volumes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the backend's volumes to settle the image cache");
                return;
            }
        };
        for volume in volumes.iter().filter(|v| {
            v.status == VolumeStatus::Error
                && v.project_id == settings.project_id
                && v.display_name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("image-"))
                && !entries.iter().any(|e| e.volume_id == v.id)
        }) {
            tracing::warn!(volume_id = %volume.id, "removing an image-volume cache volume a crash left unfinished");
            self.remove_cache_volume(&context, volume.id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_size_gb: i64, max_count: i64) -> ImageCacheSettings {
        ImageCacheSettings {
            max_size_gb,
            max_count,
            project_id: "internal".into(),
            user_id: "cinder".into(),
        }
    }

    fn entry(id: i64, size: i64) -> ImageCacheEntry {
        ImageCacheEntry {
            id,
            host: "node@file#file".into(),
            cluster_name: None,
            image_id: format!("image-{id}"),
            image_updated_at: None,
            volume_id: VolumeId::new_random(),
            size,
            last_used: Timestamp(id),
        }
    }

    fn ids(evict: &[ImageCacheEntry]) -> Vec<i64> {
        evict.iter().map(|e| e.id).collect()
    }

    #[test]
    fn unlimited_cache_evicts_nothing() {
        let entries = vec![entry(3, 10), entry(2, 10), entry(1, 10)];
        assert_eq!(
            ids(&entries_to_evict(&settings(0, 0), &entries, 100).unwrap()),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn count_limit_evicts_the_least_recently_used() {
        // Most recently used first: 3, 2, 1.
        let entries = vec![entry(3, 1), entry(2, 1), entry(1, 1)];
        assert_eq!(
            ids(&entries_to_evict(&settings(0, 3), &entries, 1).unwrap()),
            vec![1]
        );
        assert_eq!(
            ids(&entries_to_evict(&settings(0, 1), &entries, 1).unwrap()),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn size_limit_evicts_until_the_new_entry_fits() {
        let entries = vec![entry(3, 4), entry(2, 4), entry(1, 4)];
        assert_eq!(
            ids(&entries_to_evict(&settings(10, 0), &entries, 4).unwrap()),
            vec![1, 2]
        );
        assert!(
            entries_to_evict(&settings(10, 0), &entries, 11).is_none(),
            "larger than the whole cache"
        );
    }

    #[test]
    fn an_entry_is_stale_once_the_image_is_updated() {
        let mut e = entry(1, 1);
        e.image_updated_at = Timestamp::parse_iso8601("2026-12-08T00:00:00Z");
        let mut image = ImageMeta::from_json(serde_json::json!({
            "id": "i", "status": "active", "updated_at": "2026-12-08T00:00:00Z"
        }))
        .unwrap();
        assert!(is_fresh(&e, &image));
        image.updated_at = Some("2026-12-08T00:00:01Z".into());
        assert!(!is_fresh(&e, &image));
    }
}
