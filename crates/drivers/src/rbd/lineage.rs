//! Clone chains: snapshot protection, flattening at the clone depth, and the
//! hidden volumes that outlive their deletion while clones still read from
//! them (Cinder's `_get_clone_depth`, `_flatten_children`, `_delete_volume`
//! and `_delete_clone_parent_refs`, see the module docs of `driver`).
//!
//! A hidden volume is renamed `volume-<uuid>.deleted`. A volume cloned from
//! a volume hangs off a temporary snapshot `<clone>.clone_snap` of its
//! parent; releasing that snapshot when the clone goes is what lets the
//! hidden parent go too, and so on up the chain.

use super::cli::{ImageSpec, SnapSpec};
use super::driver::{RbdDriver, is_own_name};
use super::error::{CephError, CephErrorKind};
use super::json::{ImageInfo, ParentInfo, SnapInfo};

/// Suffix of a deleted volume kept for its clones.
pub(super) const HIDDEN_SUFFIX: &str = ".deleted";
/// Suffix of the temporary snapshot a volume clone is made from.
pub(super) const CLONE_SNAP_SUFFIX: &str = ".clone_snap";
const MIB: u64 = 1 << 20;

/// Whether `name` is a hidden (deleted, kept for its clones) volume.
pub(super) fn is_hidden_volume_name(name: &str) -> bool {
    name.strip_suffix(HIDDEN_SUFFIX)
        .is_some_and(|base| is_own_name(base, "volume-"))
}

/// The name of the temporary snapshot the clone `volume_name` is made from;
/// a hidden clone keeps the name it was cloned under.
pub(super) fn clone_snap_name(volume_name: &str) -> String {
    let base = volume_name
        .strip_suffix(HIDDEN_SUFFIX)
        .unwrap_or(volume_name);
    format!("{base}{CLONE_SNAP_SUFFIX}")
}

impl RbdDriver {
    /// Hides a volume whose clones still read from it: renamed
    /// `<name>.deleted`, it is no longer a volume to Cinder and is removed
    /// with its last clone.
    pub(super) async fn hide(&self, image: &ImageSpec) -> Result<(), CephError> {
        let hidden = ImageSpec::new(&image.pool, format!("{}{HIDDEN_SUFFIX}", image.image));
        tracing::info!(image = %image, hidden = %hidden, "volume has clones; hiding it until they are deleted");
        self.run(self.cli.rename(image, &hidden)).await.map(drop)
    }

    /// Protects a snapshot; one already protected is fine (a redelivered
    /// request).
    pub(super) async fn protect(&self, snap: &SnapSpec) -> Result<(), CephError> {
        match self.run(self.cli.snap_protect(snap)).await {
            Err(e) if e.kind == CephErrorKind::Busy && e.says("already protected") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Unprotects a snapshot; one already unprotected is fine. `Busy` while
    /// it has children, `NotFound` when it or its image is gone.
    pub(super) async fn unprotect(&self, snap: &SnapSpec) -> Result<(), CephError> {
        match self.run(self.cli.snap_unprotect(snap)).await {
            Err(e) if e.kind == CephErrorKind::InvalidArgument && e.says("already unprotected") => {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// Removes an unprotected snapshot; an absent one is fine.
    pub(super) async fn remove_snapshot(&self, snap: &SnapSpec) -> Result<(), CephError> {
        match self.run(self.cli.snap_rm(snap)).await {
            Err(e) if e.kind == CephErrorKind::NotFound => Ok(()),
            other => other.map(drop),
        }
    }

    /// Unprotects and removes a snapshot, best effort (clean-up paths).
    pub(super) async fn drop_snapshot_quietly(&self, snap: &SnapSpec) {
        let result = match self.unprotect(snap).await {
            Ok(()) => self.remove_snapshot(snap).await,
            Err(e) if e.kind == CephErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(snapshot = %snap, error = %e, "could not remove a temporary snapshot");
        }
    }

    /// Removes an image this call created, best effort, after a later step
    /// failed: a failed create leaves nothing behind.
    pub(super) async fn discard_new_image(&self, image: &ImageSpec) {
        match self.run(self.cli.rm(image)).await {
            Ok(_) => {}
            Err(e) if e.kind == CephErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(image = %image, error = %e, "could not remove a half-made volume")
            }
        }
    }

    /// Copies the parent's data into a clone so it no longer depends on it.
    /// An image that is not (or no longer) a clone is fine.
    pub(super) async fn flatten(&self, image: &ImageSpec, size_gb: i64) -> Result<(), CephError> {
        // A closed semaphore is impossible (never closed); run unthrottled.
        let _slot = match &self.flatten_slots {
            Some(slots) => slots.clone().acquire_owned().await.ok(),
            None => None,
        };
        tracing::info!(image = %image, "flattening");
        match self.run(self.cli.flatten(image, size_gb)).await {
            Err(e) if e.kind == CephErrorKind::InvalidArgument && e.says("has no parent") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Flattens every clone of a snapshot (Cinder's `_flatten_children`).
    /// A clone in the trash cannot be opened by name: `Busy`.
    pub(super) async fn flatten_children(
        &self,
        snap: &SnapSpec,
        size_gb: i64,
    ) -> Result<(), CephError> {
        for child in self.children(snap).await? {
            if child.trash {
                return Err(CephError::new(
                    CephErrorKind::Busy,
                    format!(
                        "{snap} has a clone in the trash ({}/{}) that cannot be flattened",
                        child.pool, child.image
                    ),
                ));
            }
            tracing::info!(snapshot = %snap, child = %child.image, "flattening a clone of the snapshot");
            match self
                .flatten(&ImageSpec::new(child.pool, child.image), size_gb)
                .await
            {
                Err(e) if e.kind == CephErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// How many clone parents stand behind `image` (0 for an independent
    /// image), counted only as far as `rbd_max_clone_depth` matters.
    pub(super) async fn clone_depth(&self, info: &ImageInfo) -> Result<u32, CephError> {
        let mut depth = 0;
        let mut parent = info.parent.clone();
        while let Some(p) = parent {
            depth += 1;
            if depth >= self.options.max_clone_depth || p.trash {
                break;
            }
            parent = self
                .info(&ImageSpec::new(p.pool, p.image))
                .await?
                .and_then(|i| i.parent);
        }
        Ok(depth)
    }

    /// Whether a clone of an image with `parent_info` behind it must be
    /// flattened: the chain behind the new clone would be longer than
    /// `rbd_max_clone_depth` (0: always).
    pub(super) async fn exceeds_clone_depth(
        &self,
        parent_info: &ImageInfo,
    ) -> Result<bool, CephError> {
        if self.options.max_clone_depth == 0 {
            return Ok(true);
        }
        Ok(self.clone_depth(parent_info).await? >= self.options.max_clone_depth)
    }

    /// The object size of a clone: the configured chunk size, or the
    /// parent's stripe unit if larger (Cinder's `_get_stripe_unit`).
    pub(super) fn clone_object_mib(&self, parent: &ImageInfo) -> u64 {
        let chunk = u64::from(self.options.store_chunk_size_mb) * MIB;
        parent.stripe_unit().max(chunk).div_ceil(MIB)
    }

    /// Clones `snap` into `dest`. An existing `dest` is this same request's
    /// earlier attempt (volume ids are unique): the remaining steps run again.
    pub(super) async fn clone_snapshot(
        &self,
        snap: &SnapSpec,
        dest: &ImageSpec,
        object_mib: u64,
    ) -> Result<(), CephError> {
        match self.run(self.cli.clone_image(snap, dest, object_mib)).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == CephErrorKind::Exists => {
                tracing::info!(image = %dest, "clone exists already (redelivered request)");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the `.clone_snap` snapshots of `image` whose clones are gone
    /// and says whether any still has clones (the image must then stay).
    pub(super) async fn has_clone_children(
        &self,
        image: &ImageSpec,
        snapshots: &[SnapInfo],
    ) -> Result<bool, CephError> {
        let mut live = false;
        for snapshot in snapshots {
            if !snapshot.name.ends_with(CLONE_SNAP_SUFFIX) {
                continue;
            }
            let snap = image.snap(&snapshot.name);
            if self.children(&snap).await?.is_empty() {
                // Its clone was flattened or removed without releasing it.
                self.unprotect(&snap).await?;
                self.remove_snapshot(&snap).await?;
            } else {
                live = true;
            }
        }
        Ok(live)
    }

    /// Removes a volume's image. Snapshots Cinder no longer tracks block
    /// `rbd rm`: as Cinder does, their clones are flattened and the removal
    /// retried, and an image whose snapshots remain goes to the trash.
    pub(super) async fn remove_image(
        &self,
        image: &ImageSpec,
        size_gb: i64,
    ) -> Result<(), CephError> {
        match self.run(self.cli.rm(image)).await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind == CephErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind == CephErrorKind::HasSnapshots => {
                tracing::info!(image = %image, "image has snapshots; flattening their clones");
            }
            Err(e) => return Err(e),
        }
        for snapshot in self.snapshots(image).await? {
            self.flatten_children(&image.snap(snapshot.name), size_gb)
                .await?;
        }
        match self.run(self.cli.rm(image)).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == CephErrorKind::NotFound => Ok(()),
            Err(e) if e.kind == CephErrorKind::HasSnapshots => {
                tracing::warn!(image = %image, "moving the image to the RBD trash with its snapshots");
                self.run(self.cli.trash_mv(image)).await.map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// After the clone `child` is removed: releases the parent's temporary
    /// snapshot, and removes the parent too if it is a hidden volume with no
    /// snapshot left, walking up the chain (Cinder's
    /// `_delete_clone_parent_refs`). Best effort: the user's volume is gone
    /// already, so failures are logged, not returned.
    pub(super) async fn release_parent(&self, mut child: String, mut parent: Option<ParentInfo>) {
        while let Some(p) = parent.take() {
            // Only the temporary snapshot made for this clone is ours to
            // remove; a user's snapshot belongs to Cinder's snapshot rows.
            if p.snapshot != clone_snap_name(&child) || p.trash {
                return;
            }
            let parent_image = ImageSpec::new(p.pool, p.image);
            let snap = parent_image.snap(p.snapshot);
            match self.unprotect(&snap).await {
                Ok(()) => {}
                Err(e) if e.kind == CephErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(snapshot = %snap, error = %e, "cannot release the parent snapshot of a removed clone");
                    return;
                }
            }
            if let Err(e) = self.remove_snapshot(&snap).await {
                tracing::warn!(snapshot = %snap, error = %e, "cannot release the parent snapshot of a removed clone");
                return;
            }
            if !is_hidden_volume_name(&parent_image.image) {
                return;
            }
            match self.remove_hidden_volume(&parent_image).await {
                Ok(Some(grandparent)) => {
                    child = parent_image.image;
                    parent = grandparent;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(image = %parent_image, error = %e, "cannot remove a hidden volume whose clones are gone");
                    return;
                }
            }
        }
    }

    /// Removes a hidden volume if nothing depends on it any more. Returns
    /// its own parent when it was removed (`Some(None)` for none), `None`
    /// when it stays.
    pub(super) async fn remove_hidden_volume(
        &self,
        image: &ImageSpec,
    ) -> Result<Option<Option<ParentInfo>>, CephError> {
        let Some(info) = self.info(image).await? else {
            return Ok(None);
        };
        let snapshots = self.snapshots(image).await?;
        if self.has_clone_children(image, &snapshots).await?
            || snapshots
                .iter()
                .any(|s| !s.name.ends_with(CLONE_SNAP_SUFFIX))
        {
            return Ok(None);
        }
        match self.run(self.cli.rm(image)).await {
            Ok(_) => {}
            Err(e) if e.kind == CephErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        tracing::info!(image = %image, "removed a hidden volume: its last clone is gone");
        Ok(Some(info.parent))
    }

    /// Removes hidden volumes whose clones are all gone but that a failed
    /// release left behind (the cluster failed between removing a clone and
    /// releasing its parent). Best effort, at start-up.
    pub(super) async fn collect_hidden_volumes(&self, names: &[String]) {
        for name in names.iter().filter(|n| is_hidden_volume_name(n)) {
            let image = ImageSpec::new(&self.options.pool, name.as_str());
            match self.remove_hidden_volume(&image).await {
                Ok(Some(parent)) => self.release_parent(image.image, parent).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(image = %image, error = %e, "cannot check a hidden volume");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_volumes_keep_the_name_they_were_cloned_under() {
        let v = "volume-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1";
        assert!(is_hidden_volume_name(&format!("{v}.deleted")));
        assert!(!is_hidden_volume_name(v));
        assert!(!is_hidden_volume_name("glance-image.deleted"));
        assert_eq!(clone_snap_name(v), format!("{v}.clone_snap"));
        assert_eq!(
            clone_snap_name(&format!("{v}.deleted")),
            format!("{v}.clone_snap")
        );
    }
}
