//! Parsers of LVM's JSON reports (`lvs`/`vgs`/`pvs --reportformat json
//! --units b --nosuffix`) and of `lvm version`.
//!
//! The JSON looks like `{"report": [{"lv": [{"lv_name": "…", "lv_size":
//! "1073741824", …}]}]}`: every value is a string, empty when it does not
//! apply (`origin` of a plain LV, `data_percent` of a thick one).

use serde::Deserialize;
use serde_json::Value;

use crate::DriverError;

/// One LV (`lvs -o` [`super::commands::LVS_FIELDS`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LogicalVolume {
    /// `lv_name`.
    pub name: String,
    /// `lv_size` in bytes (a thick snapshot's is its copy-on-write size).
    pub size_bytes: u64,
    /// `lv_attr`, e.g. `-wi-a-----`, `owi-a-s---`, `Vwi-a-tz--`.
    pub attr: String,
    /// `origin`: the LV a snapshot was taken of.
    pub origin: Option<String>,
    /// `pool_lv`: the thin pool of a thin LV.
    pub pool_lv: Option<String>,
    /// `data_percent` of a thin pool or thin LV.
    pub data_percent: Option<f64>,
}

impl LogicalVolume {
    fn attr_char(&self, index: usize) -> Option<char> {
        self.attr.chars().nth(index)
    }

    /// A thin pool (`t`).
    pub fn is_thin_pool(&self) -> bool {
        self.attr_char(0) == Some('t')
    }

    /// A thin LV (it lives in a pool).
    pub fn is_thin(&self) -> bool {
        self.pool_lv.is_some()
    }

    /// A thick snapshot (`s`, or `S` when invalid).
    pub fn is_thick_snapshot(&self) -> bool {
        matches!(self.attr_char(0), Some('s' | 'S'))
    }

    /// The origin of thick snapshots (`o`, or `O` while merging); Cinder's
    /// `lv_has_snapshot`.
    pub fn is_snapshot_origin(&self) -> bool {
        matches!(self.attr_char(0), Some('o' | 'O'))
    }

    /// Open by someone (a target, a mount); Cinder's `lv_is_open`.
    pub fn is_open(&self) -> bool {
        self.attr_char(5) == Some('o')
    }
}

/// The VG (`vgs -o` [`super::commands::VGS_FIELDS`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeGroup {
    /// `vg_name`.
    pub name: String,
    /// `vg_size` in bytes.
    pub size_bytes: u64,
    /// `vg_free` in bytes.
    pub free_bytes: u64,
    /// `lv_count`.
    pub lv_count: u64,
    /// `vg_uuid`.
    pub uuid: String,
    /// `vg_extent_size` in bytes.
    pub extent_size_bytes: u64,
}

/// One PV (`pvs -o` [`super::commands::PVS_FIELDS`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhysicalVolume {
    /// `vg_name` (empty for a PV in no VG).
    pub vg_name: String,
    /// `pv_name`, e.g. `/dev/sdb`.
    pub name: String,
    /// `pv_size` in bytes.
    pub size_bytes: u64,
    /// `pv_free` in bytes.
    pub free_bytes: u64,
}

#[derive(Deserialize)]
struct LvRow {
    lv_name: String,
    lv_size: String,
    #[serde(default)]
    lv_attr: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    pool_lv: String,
    #[serde(default)]
    data_percent: String,
}

#[derive(Deserialize)]
struct VgRow {
    vg_name: String,
    vg_size: String,
    vg_free: String,
    #[serde(default)]
    lv_count: String,
    #[serde(default)]
    vg_uuid: String,
    #[serde(default)]
    vg_extent_size: String,
}

#[derive(Deserialize)]
struct PvRow {
    #[serde(default)]
    vg_name: String,
    pv_name: String,
    pv_size: String,
    pv_free: String,
}

fn bad(what: &str, detail: impl std::fmt::Display) -> DriverError {
    DriverError::Backend(format!("cannot parse the {what} report: {detail}"))
}

/// The rows under `report[*].<key>`.
fn rows<T: for<'de> Deserialize<'de>>(json: &str, key: &str) -> Result<Vec<T>, DriverError> {
    let value: Value = serde_json::from_str(json.trim()).map_err(|e| bad(key, e))?;
    let Some(reports) = value.get("report").and_then(Value::as_array) else {
        return Err(bad(key, "no \"report\" array"));
    };
    let mut out = Vec::new();
    for report in reports {
        let Some(list) = report.get(key) else {
            continue;
        };
        let parsed: Vec<T> = serde_json::from_value(list.clone()).map_err(|e| bad(key, e))?;
        out.extend(parsed);
    }
    Ok(out)
}

fn bytes(what: &str, field: &str, text: &str) -> Result<u64, DriverError> {
    text.trim()
        .parse()
        .map_err(|_| bad(what, format!("{field} {text:?} is not a byte count")))
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// Parses `lvs` JSON.
///
/// # Errors
/// Not LVM's JSON report, or sizes that are not numbers.
pub fn parse_lvs(json: &str) -> Result<Vec<LogicalVolume>, DriverError> {
    rows::<LvRow>(json, "lv")?
        .into_iter()
        .map(|row| {
            Ok(LogicalVolume {
                size_bytes: bytes("lv", "lv_size", &row.lv_size)?,
                name: row.lv_name,
                attr: row.lv_attr,
                origin: non_empty(row.origin),
                pool_lv: non_empty(row.pool_lv),
                data_percent: row.data_percent.trim().parse().ok(),
            })
        })
        .collect()
}

/// Parses `vgs` JSON.
///
/// # Errors
/// Not LVM's JSON report, or sizes that are not numbers.
pub fn parse_vgs(json: &str) -> Result<Vec<VolumeGroup>, DriverError> {
    rows::<VgRow>(json, "vg")?
        .into_iter()
        .map(|row| {
            Ok(VolumeGroup {
                size_bytes: bytes("vg", "vg_size", &row.vg_size)?,
                free_bytes: bytes("vg", "vg_free", &row.vg_free)?,
                lv_count: row.lv_count.trim().parse().unwrap_or(0),
                extent_size_bytes: row.vg_extent_size.trim().parse().unwrap_or(0),
                name: row.vg_name,
                uuid: row.vg_uuid,
            })
        })
        .collect()
}

/// Parses `pvs` JSON.
///
/// # Errors
/// Not LVM's JSON report, or sizes that are not numbers.
pub fn parse_pvs(json: &str) -> Result<Vec<PhysicalVolume>, DriverError> {
    rows::<PvRow>(json, "pv")?
        .into_iter()
        .map(|row| {
            Ok(PhysicalVolume {
                size_bytes: bytes("pv", "pv_size", &row.pv_size)?,
                free_bytes: bytes("pv", "pv_free", &row.pv_free)?,
                vg_name: row.vg_name,
                name: row.pv_name,
            })
        })
        .collect()
}

/// The `(major, minor, patch)` of `lvm version`'s `LVM version:` line
/// (`2.03.16(2) (2022-05-18)` → `(2, 3, 16)`).
pub fn parse_lvm_version(text: &str) -> Option<(u32, u32, u32)> {
    let line = text.lines().find(|l| l.contains("LVM version"))?;
    let version = line.split_whitespace().nth(2)?;
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    Some((major, minor, patch))
}

/// The free space a mirrored LV can use, in bytes: each mirror leg must sit
/// on a different PV, so repeatedly take the smallest PV's free space and
/// consume as much from the `mirrors` largest (Cinder's
/// `vg_mirror_free_space`).
pub fn mirror_free_space(pv_free: &[u64], mirrors: u32) -> u64 {
    let mirrors = mirrors as usize;
    let mut disks: Vec<u64> = pv_free.to_vec();
    let mut free = 0u64;
    loop {
        disks.retain(|d| *d > 0);
        disks.sort_unstable_by(|a, b| b.cmp(a));
        if disks.len() <= mirrors {
            break;
        }
        let Some(smallest) = disks.pop() else {
            break;
        };
        for disk in disks.iter_mut().take(mirrors) {
            *disk = disk.saturating_sub(smallest);
        }
        free += smallest;
    }
    free
}
