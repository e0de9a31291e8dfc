//! Cinder's chunked backup format (`cinder/backup/chunkeddriver.py`,
//! `DRIVER_VERSION` 1.0.0): the `<prefix>_metadata` object listing the data
//! objects, the `<prefix>_sha256file` with one SHA-256 per hash block, and
//! the names of both and of the data objects `<prefix>-<index:05d>`.
//!
//! The two JSON objects are written as Python's `json.dumps(...,
//! sort_keys=True, indent=2)` writes them (keys sorted, two-space indent,
//! non-ASCII escaped), so a Clinker backup is byte for byte what Cinder
//! would have written for the same data, ids and times. They are read
//! leniently: Cinder's reader only needs `version`, `objects` and
//! `volume_meta` of the metadata and `chunk_size` and `sha256s` of the
//! sha256file.

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::BackupError;

/// The only metadata version Cinder's chunked drivers write and read
/// (`DRIVER_VERSION_MAPPING = {'1.0.0': '_restore_v1'}`).
pub const DRIVER_VERSION: &str = "1.0.0";

/// One data object: where its bytes go in the volume and how it is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The compression name as configured when it was written (`none`,
    /// `zlib`, `gzip`, `bz2`, `bzip2`, `zstd`, …).
    pub compression: String,
    /// Uncompressed length in bytes.
    pub length: u64,
    /// MD5 (hex) of the uncompressed bytes.
    pub md5: String,
    /// Byte offset in the volume.
    pub offset: u64,
}

/// One entry of `objects`: Cinder writes each as a one-key map
/// `{"<object name>": {…}}`, in the order the objects were written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The object's name in the container.
    pub name: String,
    /// Its placement and encoding.
    pub info: ObjectInfo,
}

impl Serialize for ObjectEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(&self.name, &self.info)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ObjectEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = ObjectEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of one object name to its offset, length, md5, compression")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectEntry, A::Error> {
                let Some((name, info)) = map.next_entry::<String, ObjectInfo>()? else {
                    return Err(de::Error::custom("empty object entry"));
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("object entry with more than one name"));
                }
                Ok(ObjectEntry { name, info })
            }
        }
        deserializer.deserialize_map(EntryVisitor)
    }
}

/// The `<prefix>_metadata` object. Field order is alphabetical, which is
/// also the order `sort_keys=True` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupMetadata {
    /// `display_description` of the backup (may be null).
    #[serde(default)]
    pub backup_description: Option<String>,
    /// The backup's id.
    pub backup_id: String,
    /// `display_name` of the backup (may be null).
    #[serde(default)]
    pub backup_name: Option<String>,
    /// Python's `str()` of the backup's `created_at`.
    #[serde(default)]
    pub created_at: String,
    /// Driver-specific data passed back to the object reader (none of the
    /// POSIX, S3 and Swift drivers uses it); absent when null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_metadata: Option<serde_json::Value>,
    /// The data objects in the order they were written.
    pub objects: Vec<ObjectEntry>,
    /// The parent backup's id for an incremental backup.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// [`DRIVER_VERSION`].
    pub version: String,
    /// The volume's id.
    pub volume_id: String,
    /// The volume's metadata as Cinder's `BackupMetadataAPI` serialises it
    /// (a JSON text, itself versioned by `backup_metadata_version`), or null.
    #[serde(default)]
    pub volume_meta: Option<String>,
}

/// The `<prefix>_sha256file` object: one SHA-256 per `chunk_size` bytes of
/// the volume, the base of the next incremental backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256File {
    /// As in the metadata.
    #[serde(default)]
    pub backup_description: Option<String>,
    /// As in the metadata.
    pub backup_id: String,
    /// As in the metadata.
    #[serde(default)]
    pub backup_name: Option<String>,
    /// The hash block size (`backup_sha_block_size_bytes` and friends).
    pub chunk_size: u64,
    /// As in the metadata.
    #[serde(default)]
    pub created_at: String,
    /// Hex SHA-256 of each block, the last one possibly short.
    pub sha256s: Vec<String>,
    /// [`DRIVER_VERSION`].
    pub version: String,
    /// The volume's id.
    pub volume_id: String,
}

/// Python's `json.dumps(value, sort_keys=True, indent=2)` for values whose
/// keys are already sorted: `serde_json`'s pretty printer with two spaces,
/// plus `ensure_ascii`'s `\uXXXX` escapes of everything outside printable
/// ASCII.
pub fn to_python_json<T: Serialize>(value: &T) -> Result<Vec<u8>, BackupError> {
    let mut out = Vec::with_capacity(4096);
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, PythonFormatter::default());
    value
        .serialize(&mut serializer)
        .map_err(|e| BackupError::Internal(format!("cannot encode backup metadata: {e}")))?;
    Ok(out)
}

/// Parses a metadata or sha256file object.
pub fn from_json<T: for<'de> Deserialize<'de>>(what: &str, body: &[u8]) -> Result<T, BackupError> {
    serde_json::from_slice(body)
        .map_err(|e| BackupError::InvalidBackup(format!("cannot read the backup's {what}: {e}")))
}

#[derive(Debug, Default)]
struct PythonFormatter<'a> {
    pretty: serde_json::ser::PrettyFormatter<'a>,
}

/// Delegates to the pretty formatter, escaping non-ASCII as Python does.
impl serde_json::ser::Formatter for PythonFormatter<'_> {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object_value(w)
    }
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            // Python's ensure_ascii escapes every character outside
            // ' '..='~' (serde already escaped the control characters).
            if (' '..='~').contains(&c) {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// How a driver names a backup's container and objects (Cinder's
/// `update_container_name` and `_generate_object_name_prefix`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectNaming {
    /// POSIX: prefix `volume_<volume id>_<YYYYmmddHHMMSS>_backup_<backup id>`;
    /// container the requested one, else `<id[0:2]>/<id[2:4]>/<id>`. (Cinder's
    /// POSIX driver never falls back to `backup_container`: its
    /// `update_container_name` always names one.)
    Posix,
    /// S3 and Swift: prefix
    /// `volume_<volume id>/<YYYYmmddHHMMSS>/az_<zone>_backup_<backup id>`;
    /// container the requested one, else the configured bucket/container.
    ObjectStore {
        /// `backup_s3_store_bucket` / `backup_swift_container`.
        default_container: String,
        /// `storage_availability_zone` of the backup service.
        availability_zone: String,
    },
}

impl ObjectNaming {
    /// The container a new backup goes to.
    pub fn container(&self, backup_id: &str, requested: Option<&str>) -> String {
        if let Some(requested) = requested.filter(|c| !c.is_empty()) {
            return requested.to_owned();
        }
        match self {
            ObjectNaming::Posix => {
                let head = |range: std::ops::Range<usize>| backup_id.get(range).unwrap_or_default();
                format!("{}/{}/{backup_id}", head(0..2), head(2..4))
            }
            ObjectNaming::ObjectStore {
                default_container, ..
            } => default_container.clone(),
        }
    }

    /// The object name prefix (the backup row's `service_metadata`), from
    /// the time the backup starts.
    pub fn prefix(&self, volume_id: &str, backup_id: &str, started: jiff::Timestamp) -> String {
        let stamp = started.strftime("%Y%m%d%H%M%S");
        match self {
            ObjectNaming::Posix => {
                format!("volume_{volume_id}_{stamp}_backup_{backup_id}")
            }
            ObjectNaming::ObjectStore {
                availability_zone, ..
            } => format!("volume_{volume_id}/{stamp}/az_{availability_zone}_backup_{backup_id}"),
        }
    }
}

/// `<prefix>_metadata`.
pub fn metadata_name(prefix: &str) -> String {
    format!("{prefix}_metadata")
}

/// `<prefix>_sha256file`.
pub fn sha256file_name(prefix: &str) -> String {
    format!("{prefix}_sha256file")
}

/// `<prefix>-<index:05d>`, the data objects, numbered from 1.
pub fn data_object_name(prefix: &str, index: u64) -> String {
    format!("{prefix}-{index:05}")
}

/// Python's `str(datetime)` of a backup's `created_at` as Cinder's backup
/// objects hold it (UTC, timezone-aware): `2026-11-25 05:00:00+00:00`, with
/// `.ffffff` when there are microseconds. `aware = false` gives the naive
/// form (`2026-11-25 05:00:00`) that a naive datetime prints.
pub fn python_datetime_str(at: jiff::Timestamp, aware: bool) -> String {
    let micros = at.subsec_microsecond();
    let mut text = at.strftime("%Y-%m-%d %H:%M:%S").to_string();
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    if aware {
        text.push_str("+00:00");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_escapes_like_ensure_ascii() {
        let value = serde_json::json!({"a": "é\u{7f}\u{1F600}\"\n", "b": [1, {}], "c": []});
        let text = String::from_utf8(to_python_json(&value).unwrap()).unwrap();
        // What Python 3 prints for json.dumps(that, sort_keys=True, indent=2).
        let python = "{\n  \"a\": \"\\u00e9\\u007f\\ud83d\\ude00\\\"\\n\",\n  \"b\": [\n    1,\n    {}\n  ],\n  \"c\": []\n}";
        assert_eq!(text, python);
    }

    #[test]
    fn names_follow_cinder() {
        let t: jiff::Timestamp = "2026-11-25T04:46:17.5Z".parse().unwrap();
        let posix = ObjectNaming::Posix;
        let id = "00000000-0000-0000-0000-0000000000f1";
        assert_eq!(posix.container(id, None), format!("00/00/{id}"));
        assert_eq!(posix.container(id, Some("mine")), "mine");
        assert_eq!(
            posix.prefix("v1", id, t),
            format!("volume_v1_20261125044617_backup_{id}")
        );
        let s3 = ObjectNaming::ObjectStore {
            default_container: "volumebackups".into(),
            availability_zone: "nova".into(),
        };
        assert_eq!(s3.container(id, None), "volumebackups");
        assert_eq!(
            s3.prefix("v1", id, t),
            format!("volume_v1/20261125044617/az_nova_backup_{id}")
        );
        assert_eq!(data_object_name("p", 7), "p-00007");
        assert_eq!(
            python_datetime_str(t, true),
            "2026-11-25 04:46:17.500000+00:00"
        );
        let whole: jiff::Timestamp = "2026-11-25T05:00:00Z".parse().unwrap();
        assert_eq!(python_datetime_str(whole, false), "2026-11-25 05:00:00");
    }
}
