//! Cinder's names for what the Ceph driver keeps in the backup pool
//! (`cinder/backup/drivers/ceph.py`), so backups either side made stay
//! restorable by the other:
//!
//! * a full backup's base image `volume-<volume_id>.backup.<backup_id>`,
//!   which its incremental backups share; older Cinders used one base
//!   `volume-<volume_id>.backup.base` per volume, and Cinder still uses it
//!   for backups of snapshots;
//! * `service_metadata` `{"base": "<base image>"}` (absent from Cinder's
//!   full copies of non-RBD volumes);
//! * one snapshot per backup on the base image (and on an RBD source),
//!   `backup.<backup_id>.snap.<timestamp>`;
//! * the volume's metadata in the object `backup.<backup_id>.meta`.

use serde::Deserialize;

/// The base image a new full backup gets.
pub(crate) fn full_base(volume_id: &str, backup_id: &str) -> String {
    format!("volume-{volume_id}.backup.{backup_id}")
}

/// The one base image per volume of older Cinders (and of Cinder's
/// backups of snapshots).
pub(crate) fn legacy_base(volume_id: &str) -> String {
    format!("volume-{volume_id}.backup.base")
}

/// `service_metadata` naming a base image, formatted as Cinder does.
pub(crate) fn service_metadata(base: &str) -> String {
    format!("{{\"base\": \"{base}\"}}")
}

#[derive(Deserialize)]
struct ServiceMetadata {
    base: String,
}

/// The base image a row's `service_metadata` names, if it names one.
pub(crate) fn base_of(service_metadata: &str) -> Option<String> {
    serde_json::from_str::<ServiceMetadata>(service_metadata)
        .ok()
        .map(|m| m.base)
}

/// The snapshot a backup made at `at`: Cinder's `_get_new_snap_name`
/// (seconds since the epoch, as Python's `time.time()` prints them).
pub(crate) fn new_snap(backup_id: &str, at: jiff::Timestamp) -> String {
    let micros = at.as_microsecond();
    format!(
        "backup.{backup_id}.snap.{}.{:06}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000)
    )
}

/// The backup id of a backup snapshot's name (Cinder's
/// `backup_snapshot_name_pattern`, `^backup\.([a-z0-9\-]+?)\.snap\.(.+)$`).
pub(crate) fn snap_backup_id(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("backup.")?;
    // The id is the shortest run of [a-z0-9-] followed by ".snap." and
    // something.
    let end = rest.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))?;
    let (id, tail) = rest.split_at(end);
    (!id.is_empty() && tail.strip_prefix(".snap.").is_some_and(|t| !t.is_empty())).then_some(id)
}

/// The object holding a backup's volume metadata.
pub(crate) fn meta_object(backup_id: &str) -> String {
    format!("backup.{backup_id}.meta")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cinders() {
        assert_eq!(full_base("v", "b"), "volume-v.backup.b");
        assert_eq!(legacy_base("v"), "volume-v.backup.base");
        assert_eq!(
            service_metadata("volume-v.backup.b"),
            r#"{"base": "volume-v.backup.b"}"#
        );
        assert_eq!(base_of(r#"{"base": "x"}"#).as_deref(), Some("x"));
        assert_eq!(base_of(""), None);
        assert_eq!(base_of("prefix/of/objects"), None);
        let at = jiff::Timestamp::from_microsecond(1_733_590_000_012_345).unwrap();
        assert_eq!(new_snap("b-1", at), "backup.b-1.snap.1733590000.012345");
        assert_eq!(meta_object("b"), "backup.b.meta");
    }

    #[test]
    fn backup_snapshots_are_recognised_by_cinders_pattern() {
        let id = "0b9c5b3e-3f0e-4f8a-9d8e-1d2c3b4a5f60";
        assert_eq!(
            snap_backup_id(&format!("backup.{id}.snap.1733590000.5")),
            Some(id)
        );
        assert_eq!(snap_backup_id(&format!("backup.{id}.snap.")), None);
        assert_eq!(snap_backup_id("snapshot-1"), None);
        assert_eq!(snap_backup_id("backup..snap.1"), None);
        assert_eq!(snap_backup_id("backup.ID.snap.1"), None);
    }
}
