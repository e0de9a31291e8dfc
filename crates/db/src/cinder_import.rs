//! Adopting a Cinder deployment: reading Cinder's own database (schema of
//! Cinder 29, alembic head `9c74c1c6971f`) into Clinker's
//! (`clinker manage cinder import`).
//!
//! The import is a plan and an apply. [`plan`] reads every live row Clinker
//! models from the Cinder database into memory, checks each against
//! Clinker's vocabulary (statuses, required columns) and counts what it
//! leaves behind (soft-deleted rows, tables Clinker has no model for). A
//! dry run stops there and prints the report. [`import`] then writes the
//! plan into Clinker's database in one transaction: it clears the tables
//! it fills (only a database without user data, or with `--replace`),
//! inserts the rows with their ids and timestamps, recounts quota usage and
//! pool allocations from the inserted rows (Cinder's `quota_usages` and
//! `reservations` are not carried), and records the import in
//! `cinder_imports`, which makes a second run a no-op.
//!
//! Cinder keeps times as naive UTC `DATETIME`s and flags as booleans or
//! tinyints; the source queries turn them into microseconds and 0/1 in SQL
//! (per the source's dialect), so rows travel as integers and strings only.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use clinker_types::group::DEFAULT_CGSNAPSHOT_TYPE_ID;
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use clinker_types::{AttachStatus, SnapshotStatus, Timestamp, VolumeStatus};
use sqlx::Row as _;

use crate::error::DbError;
use crate::pool::{Db, DbOptions, Dialect, in_transaction};

/// Cinder schema revisions (`alembic_version.version_num`) this importer
/// reads, with the releases that have them.
pub const KNOWN_REVISIONS: &[(&str, &str)] = &[(
    "9c74c1c6971f",
    "Cinder 25.0 (2024.2 Dalmatian) to 29.x (2025.x)",
)];

/// How long Cinder keeps a user message when a row has no `expires_at`
/// (`message_ttl`, 30 days).
const MESSAGE_TTL_MICROS: i64 = 30 * 24 * 3600 * 1_000_000;

/// What the operator asked for.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Print the report, write nothing.
    pub dry_run: bool,
    /// Import even into a database that already holds an import or
    /// Clinker's own data (which is removed first).
    pub replace: bool,
    /// Import although Cinder services still report heartbeats.
    pub force: bool,
    /// `service_down_time` in seconds: a Cinder service whose heartbeat is
    /// younger counts as running.
    pub service_down_time: i64,
    /// Clinker's `enabled_backends` (the report names the sections the
    /// volumes' hosts need that are missing).
    pub enabled_backends: Vec<String>,
    /// `default_volume_type`: the one type a freshly synced Clinker
    /// database holds, which does not count as user data.
    pub default_volume_type: String,
    /// The source URL as shown in the report and recorded (passwords
    /// removed by the caller).
    pub source_label: String,
}

/// A row left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The kind (`volume`, `snapshot`, …).
    pub kind: &'static str,
    /// Its id (or key).
    pub id: String,
    /// Why.
    pub reason: String,
}

/// How an import ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `--dry-run`: nothing written.
    DryRun,
    /// Written, in one transaction.
    Imported,
    /// The target already holds an import; nothing written.
    AlreadyImported {
        /// The source recorded then.
        source: String,
        /// When.
        at: Timestamp,
    },
}

/// What an import read, wrote and left behind.
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// The source's alembic revision.
    pub revision: String,
    /// Rows imported (or to import, in a dry run) per kind.
    pub imported: BTreeMap<&'static str, u64>,
    /// Soft-deleted rows per Cinder table (never imported).
    pub soft_deleted: BTreeMap<&'static str, u64>,
    /// Live rows of tables Clinker does not model, with the reason.
    pub not_carried: BTreeMap<&'static str, (u64, &'static str)>,
    /// Live rows left out.
    pub skipped: Vec<Skipped>,
    /// `enabled_backends` sections the volumes' hosts name.
    pub backends_needed: BTreeSet<String>,
    /// Of those, the ones Clinker's configuration lacks.
    pub backends_missing: BTreeSet<String>,
    /// Cinder services whose heartbeat is younger than `service_down_time`.
    pub live_services: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::DryRun => writeln!(f, "dry run: nothing was written")?,
            Outcome::Imported => writeln!(f, "imported in one transaction")?,
            Outcome::AlreadyImported { source, at } => {
                return writeln!(
                    f,
                    "this database already holds an import from {source} (at {}); nothing changed \
                     (--replace starts over)",
                    at.to_iso8601()
                );
            }
        }
        writeln!(f, "Cinder schema revision {}", self.revision)?;
        writeln!(f, "rows imported:")?;
        for (kind, n) in &self.imported {
            writeln!(f, "  {kind:<28} {n}")?;
        }
        if !self.soft_deleted.is_empty() {
            writeln!(f, "soft-deleted rows skipped:")?;
            for (table, n) in &self.soft_deleted {
                writeln!(f, "  {table:<28} {n}")?;
            }
        }
        if !self.not_carried.is_empty() {
            writeln!(f, "live rows not carried:")?;
            for (table, (n, why)) in &self.not_carried {
                writeln!(f, "  {table:<28} {n}  ({why})")?;
            }
        }
        if !self.skipped.is_empty() {
            writeln!(f, "rows skipped:")?;
            for s in &self.skipped {
                writeln!(f, "  {} {}: {}", s.kind, s.id, s.reason)?;
            }
        }
        writeln!(
            f,
            "enabled_backends sections the volumes need: {}",
            join(&self.backends_needed)
        )?;
        if !self.backends_missing.is_empty() {
            writeln!(
                f,
                "missing from Clinker's enabled_backends: {} (add these sections, with the \
                 driver options Cinder used, before starting Clinker)",
                join(&self.backends_missing)
            )?;
        }
        if !self.live_services.is_empty() {
            writeln!(
                f,
                "Cinder services still reporting: {}",
                self.live_services.join(", ")
            )?;
        }
        Ok(())
    }
}

fn join(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "(none)".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// One value in transit.
#[derive(Clone, Debug, PartialEq, Eq)]
enum V {
    I(Option<i64>),
    T(Option<String>),
}

#[derive(Clone, Copy, Debug)]
enum Ty {
    I,
    T,
}

/// One target column and the source expression that fills it. Columns
/// whose name starts with `_` are read but not written (inputs of a fix).
struct Col {
    name: &'static str,
    ty: Ty,
    src: String,
}

type Check = fn(&Row) -> Result<(), String>;
type Fix = fn(&mut Row);

/// One kind of row: where it comes from and where it goes.
struct Spec {
    kind: &'static str,
    table: &'static str,
    /// The column naming the row in the report and for children.
    id: &'static str,
    cols: Vec<Col>,
    /// `FROM … WHERE …` of the source query.
    from: String,
    /// A column holding the id of a parent row of another kind: the row
    /// is skipped with its parent.
    parent: Option<(&'static str, &'static str)>,
    check: Check,
    fix: Fix,
}

/// A row: values by column name, in the spec's column order.
#[derive(Clone, Debug)]
struct Row(Vec<(&'static str, V)>);

impl Row {
    fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| match v {
                V::T(t) => t.as_deref(),
                V::I(_) => None,
            })
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| match v {
                V::I(i) => *i,
                V::T(_) => None,
            })
    }

    fn set(&mut self, name: &str, value: V) {
        if let Some(slot) = self.0.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        }
    }
}

/// SQL fragments in the source's dialect.
struct Src(Dialect);

impl Src {
    /// A `DATETIME` as microseconds since the epoch (NULL stays NULL).
    fn ts(&self, col: &str) -> String {
        match self.0 {
            Dialect::Mysql => {
                format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {col})")
            }
            _ => format!("CAST(EXTRACT(EPOCH FROM {col}) * 1000000 AS BIGINT)"),
        }
    }

    /// A flag or integer as a 64-bit integer.
    fn int(&self, col: &str) -> String {
        match self.0 {
            Dialect::Mysql => format!("CAST({col} AS SIGNED)"),
            _ => format!("CAST(CAST({col} AS INTEGER) AS BIGINT)"),
        }
    }

    /// The row is not soft-deleted.
    fn live(&self, alias: &str) -> String {
        format!("COALESCE({}, 0) = 0", self.int(&format!("{alias}.deleted")))
    }

    /// Cinder's `default_cgsnapshot_type` id → Clinker's fixed one.
    fn group_type(&self, col: &str) -> String {
        format!(
            "CASE WHEN {col} IN (SELECT id FROM group_types WHERE name = 'default_cgsnapshot_type') \
             THEN '{DEFAULT_CGSNAPSHOT_TYPE_ID}' ELSE {col} END"
        )
    }
}

fn t(name: &'static str, src: impl Into<String>) -> Col {
    Col {
        name,
        ty: Ty::T,
        src: src.into(),
    }
}

fn i(name: &'static str, src: impl Into<String>) -> Col {
    Col {
        name,
        ty: Ty::I,
        src: src.into(),
    }
}

fn no_check(_: &Row) -> Result<(), String> {
    Ok(())
}

fn no_fix(_: &mut Row) {}

fn status<S: std::str::FromStr>(row: &Row, col: &str) -> Result<(), String> {
    let value = row.text(col).unwrap_or("");
    value
        .parse::<S>()
        .map(|_| ())
        .map_err(|_| format!("unknown {col} {value:?}"))
}

/// Clinker's unbounded text columns; every other text column holds at
/// most 255 characters.
const UNBOUNDED_COLUMNS: &[&str] = &["connection_info", "connector"];

/// A value longer than Clinker's column (Cinder's glance metadata values
/// are TEXT, `provider_location` 256 characters): the row is reported
/// instead of failing the whole import on engines that enforce lengths.
fn too_long(row: &Row) -> Option<String> {
    row.0.iter().find_map(|(name, value)| match value {
        V::T(Some(text))
            if !name.starts_with('_')
                && !UNBOUNDED_COLUMNS.contains(name)
                && text.chars().count() > 255 =>
        {
            Some(format!(
                "{name} is {} characters long; Clinker keeps at most 255",
                text.chars().count()
            ))
        }
        _ => None,
    })
}

fn check_volume(row: &Row) -> Result<(), String> {
    status::<VolumeStatus>(row, "status")?;
    status::<AttachStatus>(row, "attach_status")?;
    if row.text("volume_type_id").is_none() {
        return Err("no volume type".into());
    }
    let id = row.text("id").unwrap_or("");
    if let Some(name_id) = row.text("_name_id")
        && name_id != id
    {
        return Err(format!(
            "its backend object is named after {name_id} (_name_id, left by a migration); \
             Clinker names backend objects after the volume id"
        ));
    }
    Ok(())
}

fn check_snapshot(row: &Row) -> Result<(), String> {
    status::<SnapshotStatus>(row, "status")
}

fn check_attachment(row: &Row) -> Result<(), String> {
    status::<AttachStatus>(row, "attach_status")
}

fn check_group(row: &Row) -> Result<(), String> {
    status::<GroupStatus>(row, "status")
}

fn check_group_snapshot(row: &Row) -> Result<(), String> {
    status::<GroupSnapshotStatus>(row, "status")
}

fn fix_service(row: &mut Row) {
    if row.text("uuid").is_none_or(str::is_empty) {
        row.set("uuid", V::T(Some(uuid::Uuid::new_v4().to_string())));
    }
}

fn fix_message(row: &mut Row) {
    let action = row.text("_action_id").map(action_text);
    let detail = row.text("_detail_id").map(detail_text);
    let text = match (action, detail) {
        (Some(a), Some(d)) => format!("{a}:{d}"),
        (Some(a), None) => a.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => detail_text("001").to_owned(),
    };
    row.set("user_message", V::T(Some(text)));
    if row.int("expires_at").is_none() {
        let created = row.int("created_at").unwrap_or(0);
        row.set("expires_at", V::I(Some(created + MESSAGE_TTL_MICROS)));
    }
}

/// Cinder's message actions (`cinder/message/message_field.py`, `Action`).
fn action_text(id: &str) -> &'static str {
    match id {
        "001" => "schedule allocate volume",
        "002" => "attach volume",
        "003" => "copy volume to image",
        "004" => "update attachment",
        "005" => "copy image to volume",
        "006" => "unmanage volume",
        "007" => "extend volume",
        "008" => "create volume from backend storage",
        "009" => "create snapshot",
        "010" => "delete snapshot",
        "011" => "update snapshot",
        "012" => "update snapshot metadata",
        "013" => "create backup",
        "014" => "delete backup",
        "015" => "restore backup",
        "016" => "reimage volume",
        _ => "unknown action",
    }
}

/// Cinder's message details (`Detail`); an unknown code reads as the
/// unknown error, as Cinder's view does.
fn detail_text(id: &str) -> &'static str {
    match id {
        "002" => "Driver is not initialized at present.",
        "003" => "Could not find any available weighted backend.",
        "004" => "Failed to upload volume to image at backend.",
        "005" => "Volume's attach mode is invalid.",
        "006" => "Not enough quota resource for operation.",
        "007" => "Image used for creating volume exceeds available space.",
        "008" => "Unmanaging encrypted volumes is not supported.",
        "009" => "Compute service failed to extend volume.",
        "010" => "Volume Driver failed to extend volume.",
        "011" => "Image signature verification failed.",
        "012" => "Driver failed to create the volume.",
        "013" => "Snapshot failed to create.",
        "014" => "Volume snapshot update metadata failed.",
        "015" => "Snapshot is busy.",
        "016" => "Snapshot failed to delete.",
        "017" => "Backup status is invalid.",
        "018" => "Backup service is down.",
        "019" => "Failed to get backup device from the volume service.",
        "020" => "Backup driver failed to create backup.",
        "021" => "Failed to attach volume.",
        "022" => "Failed to detach volume.",
        "023" => "Cleanup of temporary volume/snapshot failed.",
        "024" => "Backup failed to schedule. Service not found for creating backup.",
        "025" => "Backup driver failed to delete backup.",
        "026" => "Backup driver failed to restore backup.",
        "027" => "Volume status is invalid.",
        "028" => "Compute service failed to reimage volume.",
        "029" => {
            "The image disk format must be the same as the volume format for the volume type \
             you are requesting."
        }
        "030" => "Incremental backup not possible, forcing full backup.",
        _ => "An unknown error occurred.",
    }
}

/// Every kind Clinker models, in the order they are written.
#[expect(
    clippy::too_many_lines,
    reason = "one declaration per kind, read as a table"
)]
fn specs(s: &Src) -> Vec<Spec> {
    let ts = |c: &str| s.ts(c);
    let int = |c: &str| s.int(c);
    let flag = |c: &str, default: i64| format!("COALESCE({}, {default})", s.int(c));
    let live = |a: &str| s.live(a);
    let created = |a: &str| format!("COALESCE({}, 0)", s.ts(&format!("{a}.created_at")));
    let spec = |kind, table, id, cols, from: String| Spec {
        kind,
        table,
        id,
        cols,
        from,
        parent: None,
        check: no_check,
        fix: no_fix,
    };
    let metadata = |kind: &'static str, source: &str, meta_kind: &str| Spec {
        parent: Some(("volume_id", "volume")),
        ..spec(
            kind,
            "volume_metadata",
            "meta_key",
            vec![
                t("volume_id", "m.volume_id"),
                t("kind", format!("'{meta_kind}'")),
                t("meta_key", "m.\"key\""),
                t("meta_value", "COALESCE(m.value, '')"),
            ],
            format!(
                "{source} m JOIN volumes v ON v.id = m.volume_id WHERE {} AND {}",
                live("m"),
                live("v")
            ),
        )
    };
    vec![
        Spec {
            fix: fix_service,
            ..spec(
                "service",
                "services",
                "host",
                vec![
                    t("uuid", "s.uuid"),
                    t("host", "s.host"),
                    t("binary_name", "s.\"binary\""),
                    t("topic", "COALESCE(s.topic, '')"),
                    i("report_count", flag("s.report_count", 0)),
                    i("disabled", flag("s.disabled", 0)),
                    t("disabled_reason", "s.disabled_reason"),
                    t("availability_zone", "COALESCE(s.availability_zone, 'nova')"),
                    t("rpc_current_version", "s.rpc_current_version"),
                    i("frozen", flag("s.frozen", 0)),
                    t("replication_status", "s.replication_status"),
                    t("active_backend_id", "s.active_backend_id"),
                    t("cluster_name", "s.cluster_name"),
                    i("created_at", created("s")),
                    i("updated_at", ts("s.updated_at")),
                    i("modified_at", ts("s.modified_at")),
                ],
                format!("services s WHERE {} ORDER BY s.id", live("s")),
            )
        },
        spec(
            "volume type",
            "volume_types",
            "id",
            vec![
                t("id", "t.id"),
                t("name", "t.name"),
                t("description", "t.description"),
                i("is_public", flag("t.is_public", 1)),
                t("qos_specs_id", "t.qos_specs_id"),
                i("created_at", created("t")),
                i("updated_at", ts("t.updated_at")),
            ],
            format!("volume_types t WHERE {}", live("t")),
        ),
        spec(
            "volume type extra spec",
            "volume_type_extra_specs",
            "spec_key",
            vec![
                t("volume_type_id", "e.volume_type_id"),
                t("spec_key", "e.\"key\""),
                t("spec_value", "COALESCE(e.value, '')"),
            ],
            format!(
                "volume_type_extra_specs e JOIN volume_types t ON t.id = e.volume_type_id \
                 WHERE {} AND {}",
                live("e"),
                live("t")
            ),
        ),
        spec(
            "volume type access",
            "volume_type_projects",
            "project_id",
            vec![
                t("volume_type_id", "p.volume_type_id"),
                t("project_id", "p.project_id"),
            ],
            format!(
                "volume_type_projects p JOIN volume_types t ON t.id = p.volume_type_id \
                 WHERE {} AND {}",
                live("p"),
                live("t")
            ),
        ),
        spec(
            "volume type encryption",
            "encryption",
            "volume_type_id",
            vec![
                t("volume_type_id", "e.volume_type_id"),
                t(
                    "encryption_id",
                    "COALESCE(e.encryption_id, e.volume_type_id)",
                ),
                t("provider", "COALESCE(e.provider, '')"),
                t("cipher", "e.cipher"),
                i("key_size", int("e.key_size")),
                t(
                    "control_location",
                    "COALESCE(e.control_location, 'front-end')",
                ),
                i("created_at", created("e")),
                i("updated_at", ts("e.updated_at")),
            ],
            format!(
                "encryption e JOIN volume_types t ON t.id = e.volume_type_id WHERE {} AND {}",
                live("e"),
                live("t")
            ),
        ),
        spec(
            "qos specs",
            "qos_specs",
            "id",
            vec![
                t("id", "p.id"),
                t("name", "p.value"),
                t(
                    "consumer",
                    format!(
                        "COALESCE((SELECT MAX(c.value) FROM quality_of_service_specs c \
                         WHERE c.specs_id = p.id AND c.\"key\" = 'consumer' AND {}), 'back-end')",
                        live("c")
                    ),
                ),
                i("created_at", created("p")),
                i("updated_at", ts("p.updated_at")),
            ],
            format!(
                "quality_of_service_specs p WHERE p.specs_id IS NULL AND {}",
                live("p")
            ),
        ),
        spec(
            "qos spec key",
            "qos_specs_items",
            "spec_key",
            vec![
                t("qos_specs_id", "c.specs_id"),
                t("spec_key", "c.\"key\""),
                t("spec_value", "c.value"),
            ],
            format!(
                "quality_of_service_specs c JOIN quality_of_service_specs p ON p.id = c.specs_id \
                 WHERE c.\"key\" <> 'consumer' AND {} AND {}",
                live("c"),
                live("p")
            ),
        ),
        spec(
            "default type",
            "default_volume_types",
            "project_id",
            vec![
                t("project_id", "d.project_id"),
                t("volume_type_id", "d.volume_type_id"),
                i("created_at", created("d")),
                i("updated_at", ts("d.updated_at")),
            ],
            format!("default_volume_types d WHERE {}", live("d")),
        ),
        Spec {
            check: check_volume,
            ..spec(
                "volume",
                "volumes",
                "id",
                vec![
                    t("id", "v.id"),
                    t("user_id", "COALESCE(v.user_id, '')"),
                    t("project_id", "COALESCE(v.project_id, '')"),
                    t("host", "v.host"),
                    i("size", flag("v.size", 0)),
                    t("availability_zone", "COALESCE(v.availability_zone, 'nova')"),
                    t("status", "v.status"),
                    t("attach_status", "COALESCE(v.attach_status, 'detached')"),
                    t("migration_status", "v.migration_status"),
                    t("display_name", "v.display_name"),
                    t("display_description", "v.display_description"),
                    t("provider_location", "v.provider_location"),
                    t("provider_auth", "v.provider_auth"),
                    t("provider_id", "v.provider_id"),
                    t("volume_type_id", "v.volume_type_id"),
                    t("snapshot_id", "v.snapshot_id"),
                    t("source_volid", "v.source_volid"),
                    i("bootable", flag("v.bootable", 0)),
                    i("multiattach", flag("v.multiattach", 0)),
                    t("encryption_key_id", "v.encryption_key_id"),
                    t("consistencygroup_id", "v.consistencygroup_id"),
                    t("group_id", "v.group_id"),
                    t("replication_status", "v.replication_status"),
                    t("previous_status", "v.previous_status"),
                    t("service_uuid", "v.service_uuid"),
                    i("shared_targets", int("v.shared_targets")),
                    i("use_quota", flag("v.use_quota", 1)),
                    t("cluster_name", "v.cluster_name"),
                    i("created_at", created("v")),
                    i("updated_at", ts("v.updated_at")),
                    i("scheduled_at", ts("v.scheduled_at")),
                    i("launched_at", ts("v.launched_at")),
                    t("_name_id", "v._name_id"),
                ],
                format!("volumes v WHERE {}", live("v")),
            )
        },
        metadata("volume metadata", "volume_metadata", "user"),
        metadata("volume admin metadata", "volume_admin_metadata", "admin"),
        metadata("volume image metadata", "volume_glance_metadata", "glance"),
        Spec {
            parent: Some(("volume_id", "volume")),
            check: check_attachment,
            ..spec(
                "attachment",
                "volume_attachment",
                "id",
                vec![
                    t("id", "a.id"),
                    t("volume_id", "a.volume_id"),
                    t("instance_uuid", "a.instance_uuid"),
                    t("attached_host", "a.attached_host"),
                    t("mountpoint", "a.mountpoint"),
                    i("attach_time", ts("a.attach_time")),
                    i("detach_time", ts("a.detach_time")),
                    t("attach_status", "COALESCE(a.attach_status, 'detached')"),
                    t("attach_mode", "a.attach_mode"),
                    t("connection_info", "a.connection_info"),
                    t("connector", "a.connector"),
                    i("created_at", created("a")),
                    i("updated_at", ts("a.updated_at")),
                ],
                format!(
                    "volume_attachment a JOIN volumes v ON v.id = a.volume_id WHERE {} AND {}",
                    live("a"),
                    live("v")
                ),
            )
        },
        Spec {
            parent: Some(("volume_id", "volume")),
            check: check_snapshot,
            ..spec(
                "snapshot",
                "snapshots",
                "id",
                vec![
                    t("id", "x.id"),
                    t("volume_id", "x.volume_id"),
                    t("user_id", "COALESCE(x.user_id, '')"),
                    t("project_id", "COALESCE(x.project_id, '')"),
                    t("status", "x.status"),
                    t("progress", "x.progress"),
                    i("volume_size", flag("x.volume_size", 0)),
                    t("display_name", "x.display_name"),
                    t("display_description", "x.display_description"),
                    t("provider_location", "x.provider_location"),
                    t(
                        "volume_type_id",
                        "COALESCE(x.volume_type_id, v.volume_type_id)",
                    ),
                    t("group_snapshot_id", "x.group_snapshot_id"),
                    i("use_quota", flag("x.use_quota", 1)),
                    i("created_at", created("x")),
                    i("updated_at", ts("x.updated_at")),
                ],
                format!(
                    "snapshots x JOIN volumes v ON v.id = x.volume_id WHERE {} AND {}",
                    live("x"),
                    live("v")
                ),
            )
        },
        Spec {
            parent: Some(("snapshot_id", "snapshot")),
            ..spec(
                "snapshot metadata",
                "snapshot_metadata",
                "meta_key",
                vec![
                    t("snapshot_id", "m.snapshot_id"),
                    t("meta_key", "m.\"key\""),
                    t("meta_value", "COALESCE(m.value, '')"),
                ],
                format!(
                    "snapshot_metadata m JOIN snapshots x ON x.id = m.snapshot_id \
                     WHERE {} AND {}",
                    live("m"),
                    live("x")
                ),
            )
        },
        spec(
            "group type",
            "group_types",
            "id",
            vec![
                t("id", "g.id"),
                t("name", "g.name"),
                t("description", "g.description"),
                i("is_public", flag("g.is_public", 1)),
                i("created_at", created("g")),
                i("updated_at", ts("g.updated_at")),
            ],
            format!(
                "group_types g WHERE g.name <> 'default_cgsnapshot_type' AND {}",
                live("g")
            ),
        ),
        spec(
            "group type spec",
            "group_type_specs",
            "spec_key",
            vec![
                t("group_type_id", "e.group_type_id"),
                t("spec_key", "e.\"key\""),
                t("spec_value", "COALESCE(e.value, '')"),
            ],
            format!(
                "group_type_specs e JOIN group_types g ON g.id = e.group_type_id \
                 WHERE g.name <> 'default_cgsnapshot_type' AND {} AND {}",
                live("e"),
                live("g")
            ),
        ),
        spec(
            "group type access",
            "group_type_projects",
            "project_id",
            vec![
                t("group_type_id", "p.group_type_id"),
                t("project_id", "p.project_id"),
            ],
            format!(
                "group_type_projects p JOIN group_types g ON g.id = p.group_type_id \
                 WHERE g.name <> 'default_cgsnapshot_type' AND {} AND {}",
                live("p"),
                live("g")
            ),
        ),
        Spec {
            check: check_group,
            ..spec(
                "group",
                "volume_groups",
                "id",
                vec![
                    t("id", "g.id"),
                    t("user_id", "COALESCE(g.user_id, '')"),
                    t("project_id", "COALESCE(g.project_id, '')"),
                    t("host", "g.host"),
                    t("cluster_name", "g.cluster_name"),
                    t("availability_zone", "COALESCE(g.availability_zone, 'nova')"),
                    t("status", "g.status"),
                    t("display_name", "g.name"),
                    t("display_description", "g.description"),
                    t("group_type_id", s.group_type("g.group_type_id")),
                    t("group_snapshot_id", "g.group_snapshot_id"),
                    t("source_group_id", "g.source_group_id"),
                    t("replication_status", "g.replication_status"),
                    i("created_at", created("g")),
                    i("updated_at", ts("g.updated_at")),
                ],
                format!("\"groups\" g WHERE {}", live("g")),
            )
        },
        Spec {
            parent: Some(("group_id", "group")),
            ..spec(
                "group volume type",
                "group_volume_types",
                "volume_type_id",
                vec![
                    t("group_id", "m.group_id"),
                    t("volume_type_id", "m.volume_type_id"),
                    // Cinder's row ids keep the order the types were given.
                    i("type_position", int("m.id")),
                ],
                format!(
                    "group_volume_type_mapping m JOIN \"groups\" g ON g.id = m.group_id \
                     WHERE {} AND {}",
                    live("m"),
                    live("g")
                ),
            )
        },
        Spec {
            parent: Some(("group_id", "group")),
            check: check_group_snapshot,
            ..spec(
                "group snapshot",
                "group_snapshots",
                "id",
                vec![
                    t("id", "x.id"),
                    t("group_id", "x.group_id"),
                    t("user_id", "COALESCE(x.user_id, '')"),
                    t("project_id", "COALESCE(x.project_id, '')"),
                    t("status", "x.status"),
                    t("display_name", "x.name"),
                    t("display_description", "x.description"),
                    t("group_type_id", s.group_type("x.group_type_id")),
                    i("created_at", created("x")),
                    i("updated_at", ts("x.updated_at")),
                ],
                format!(
                    "group_snapshots x JOIN \"groups\" g ON g.id = x.group_id WHERE {} AND {}",
                    live("x"),
                    live("g")
                ),
            )
        },
        Spec {
            parent: Some(("volume_id", "volume")),
            ..spec(
                "transfer",
                "transfers",
                "id",
                vec![
                    t("id", "x.id"),
                    t("volume_id", "x.volume_id"),
                    t("display_name", "x.display_name"),
                    t("salt", "COALESCE(x.salt, '')"),
                    t("crypt_hash", "COALESCE(x.crypt_hash, '')"),
                    i("no_snapshots", flag("x.no_snapshots", 0)),
                    t("source_project_id", "x.source_project_id"),
                    t("destination_project_id", "x.destination_project_id"),
                    i("accepted", flag("x.accepted", 0)),
                    i("created_at", created("x")),
                    i("updated_at", ts("x.updated_at")),
                ],
                format!(
                    "transfers x JOIN volumes v ON v.id = x.volume_id WHERE {} AND {}",
                    live("x"),
                    live("v")
                ),
            )
        },
        Spec {
            fix: fix_message,
            ..spec(
                "message",
                "messages",
                "id",
                vec![
                    t("id", "m.id"),
                    t("project_id", "m.project_id"),
                    t("request_id", "m.request_id"),
                    t("resource_type", "COALESCE(m.resource_type, 'VOLUME')"),
                    t("resource_uuid", "m.resource_uuid"),
                    t("event_id", "m.event_id"),
                    t("message_level", "m.message_level"),
                    t("user_message", "''"),
                    i("created_at", created("m")),
                    i("expires_at", ts("m.expires_at")),
                    t("_action_id", "m.action_id"),
                    t("_detail_id", "m.detail_id"),
                ],
                format!("messages m WHERE {}", live("m")),
            )
        },
        spec(
            "quota",
            "quotas",
            "resource",
            vec![
                t("project_id", "q.project_id"),
                t("resource", "q.resource"),
                i("hard_limit", flag("q.hard_limit", -1)),
            ],
            format!("quotas q WHERE {}", live("q")),
        ),
        spec(
            "quota class",
            "quota_classes",
            "resource",
            vec![
                t("class_name", "q.class_name"),
                t("resource", "q.resource"),
                i("hard_limit", flag("q.hard_limit", -1)),
            ],
            format!("quota_classes q WHERE {}", live("q")),
        ),
    ]
}

/// Cinder tables whose soft-deleted rows the report counts.
const SOFT_DELETABLE: &[&str] = &[
    "volumes",
    "volume_metadata",
    "volume_admin_metadata",
    "volume_glance_metadata",
    "volume_attachment",
    "snapshots",
    "snapshot_metadata",
    "volume_types",
    "volume_type_extra_specs",
    "volume_type_projects",
    "encryption",
    "quality_of_service_specs",
    "default_volume_types",
    "services",
    "groups",
    "group_types",
    "group_type_specs",
    "group_type_projects",
    "group_volume_type_mapping",
    "group_snapshots",
    "transfers",
    "messages",
    "quotas",
    "quota_classes",
    "quota_usages",
    "reservations",
    "backups",
];

/// Cinder tables (or parts) Clinker does not carry: (table, has a
/// `deleted` column, extra condition, reason).
const NOT_CARRIED: &[(&str, bool, &str, &str)] = &[
    (
        "backups",
        true,
        "",
        "Clinker's backup service is not there yet: the rows stay in Cinder's database",
    ),
    (
        "backup_metadata",
        true,
        "",
        "belongs to backups, which are not carried",
    ),
    (
        "reservations",
        true,
        "",
        "Cinder's quota reservations are dropped; usage is recounted",
    ),
    (
        "quota_usages",
        true,
        "",
        "recounted from the imported rows instead",
    ),
    (
        "consistencygroups",
        true,
        "",
        "consistency groups are not modelled (Cinder migrates them to groups)",
    ),
    (
        "cgsnapshots",
        true,
        "",
        "consistency group snapshots are not modelled",
    ),
    (
        "attachment_specs",
        true,
        "",
        "Clinker reads the connector from volume_attachment.connector",
    ),
    (
        "clusters",
        true,
        "",
        "Clinker derives clusters from the services' cluster_name",
    ),
    (
        "workers",
        true,
        "",
        "Cinder's cleanup journal; Clinker keeps its own",
    ),
    (
        "image_volume_cache_entries",
        false,
        "",
        "the image-volume cache is rebuilt by Clinker",
    ),
    (
        "driver_initiator_data",
        false,
        "",
        "driver-private data of drivers Clinker does not have",
    ),
    (
        "volume_glance_metadata",
        true,
        "volume_id IS NULL",
        "image metadata of snapshots is not modelled",
    ),
];

/// Clinker tables an import fills, cleared first (the fixed
/// `default_cgsnapshot_type` group type stays).
pub const TARGET_TABLES: &[&str] = &[
    "services",
    "volume_types",
    "volume_type_extra_specs",
    "volume_type_projects",
    "encryption",
    "qos_specs",
    "qos_specs_items",
    "default_volume_types",
    "volumes",
    "volume_metadata",
    "volume_attachment",
    "snapshots",
    "snapshot_metadata",
    "group_type_projects",
    "volume_groups",
    "group_volume_types",
    "group_snapshots",
    "transfers",
    "messages",
    "quotas",
    "quota_classes",
    "quota_usages",
    "pool_allocations",
    "workers",
    "unmanaged_objects",
    "cinder_imports",
];

/// The rows read from Cinder, ready to write.
pub struct Plan {
    specs: Vec<Spec>,
    rows: Vec<Vec<Row>>,
    /// The report (outcome [`Outcome::DryRun`] until applied).
    pub report: ImportReport,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("report", &self.report)
            .finish()
    }
}

/// Opens a Cinder database (`mysql+pymysql://…`, `postgresql://…`) for
/// reading.
///
/// # Errors
/// A SQLite URL (Cinder does not run on SQLite), a bad URL, an unreachable
/// server.
pub async fn open_source(url: &str) -> Result<Db, DbError> {
    let (dialect, _) = crate::url::translate_url(url)?;
    if dialect == Dialect::Sqlite {
        return Err(DbError::InvalidState(
            "the Cinder database must be MariaDB/MySQL or PostgreSQL".into(),
        ));
    }
    let mut options = DbOptions::new(url);
    options.max_pool_size = 2;
    Db::connect(&options).await
}

async fn count(source: &Db, sql: &str) -> Result<u64, DbError> {
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *source.reader().await?)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn table_exists(db: &Db, table: &str) -> bool {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE 1 = 0");
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *match db.reader().await {
            Ok(c) => c,
            Err(_) => return false,
        })
        .await
        .is_ok()
}

/// The Cinder schema revision of `source`.
///
/// # Errors
/// No `alembic_version` table, or a revision this importer does not know.
pub async fn check_revision(source: &Db) -> Result<String, DbError> {
    let revision: Option<String> =
        sqlx::query_scalar("SELECT MAX(version_num) FROM alembic_version")
            .fetch_one(&mut *source.reader().await?)
            .await
            .map_err(|_| {
                DbError::InvalidState(
                    "the source has no alembic_version table: it is not a Cinder database".into(),
                )
            })?;
    let revision = revision.unwrap_or_default();
    if KNOWN_REVISIONS.iter().any(|(r, _)| *r == revision) {
        Ok(revision)
    } else {
        let known: Vec<String> = KNOWN_REVISIONS
            .iter()
            .map(|(r, what)| format!("{r} ({what})"))
            .collect();
        Err(DbError::InvalidState(format!(
            "unknown Cinder schema revision {revision:?}; this importer reads {}",
            known.join(", ")
        )))
    }
}

/// Reads everything from the Cinder database and checks it; writes
/// nothing anywhere.
///
/// # Errors
/// An unknown schema revision, Cinder services still running (without
/// `force`), a failing query.
pub async fn plan(source: &Db, options: &ImportOptions) -> Result<Plan, DbError> {
    let revision = check_revision(source).await?;
    let s = Src(source.dialect());
    let now = source.now().as_micros();

    // Running services: a heartbeat younger than service_down_time.
    let sql = format!(
        "SELECT host, \"binary\", COALESCE({}, {}), COALESCE({}, 0) FROM services s WHERE {}",
        s.ts("s.updated_at"),
        s.ts("s.created_at"),
        s.int("s.disabled"),
        s.live("s")
    );
    let services: Vec<(String, Option<String>, Option<i64>, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *source.reader().await?)
            .await?;
    let window = options.service_down_time.max(0).saturating_mul(1_000_000);
    let live_services: Vec<String> = services
        .iter()
        .filter(|(_, _, beat, _)| beat.is_some_and(|b| now - b <= window))
        .map(|(host, binary, _, _)| format!("{} on {host}", binary.as_deref().unwrap_or("?")))
        .collect();
    if !live_services.is_empty() && !options.force && !options.dry_run {
        return Err(DbError::InvalidState(format!(
            "Cinder is still running: {} reported within service_down_time ({} s). Stop \
             Cinder's services first (or pass --force)",
            live_services.join(", "),
            options.service_down_time
        )));
    }

    let specs = specs(&s);
    let mut rows = Vec::with_capacity(specs.len());
    let mut skipped = Vec::new();
    let mut skipped_ids: HashMap<&'static str, HashSet<String>> = HashMap::new();
    let mut imported = BTreeMap::new();
    for spec in &specs {
        let select: Vec<&str> = spec.cols.iter().map(|c| c.src.as_str()).collect();
        let sql = format!("SELECT {} FROM {}", select.join(", "), spec.from);
        let fetched = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *source.reader().await?)
            .await
            .map_err(|e| DbError::Internal(format!("reading {}s: {e}", spec.kind)))?;
        let mut kept = Vec::with_capacity(fetched.len());
        for raw in fetched {
            let mut values = Vec::with_capacity(spec.cols.len());
            for (n, col) in spec.cols.iter().enumerate() {
                let value = match col.ty {
                    Ty::I => V::I(raw.try_get::<Option<i64>, _>(n)?),
                    Ty::T => V::T(raw.try_get::<Option<String>, _>(n)?),
                };
                values.push((col.name, value));
            }
            let mut row = Row(values);
            let id = row.text(spec.id).unwrap_or("").to_owned();
            let parent_gone = spec.parent.and_then(|(col, kind)| {
                let parent = row.text(col)?;
                skipped_ids
                    .get(kind)
                    .is_some_and(|set| set.contains(parent))
                    .then(|| format!("its {kind} {parent} is skipped"))
            });
            let verdict = match parent_gone {
                Some(reason) => Err(reason),
                None => too_long(&row).map_or_else(|| (spec.check)(&row), Err),
            };
            match verdict {
                Ok(()) => {
                    (spec.fix)(&mut row);
                    kept.push(row);
                }
                Err(reason) => {
                    skipped_ids.entry(spec.kind).or_default().insert(id.clone());
                    skipped.push(Skipped {
                        kind: spec.kind,
                        id,
                        reason,
                    });
                }
            }
        }
        imported.insert(spec.kind, kept.len() as u64);
        rows.push(kept);
    }

    let mut soft_deleted = BTreeMap::new();
    for table in SOFT_DELETABLE {
        let n = count(
            source,
            &format!(
                "SELECT COUNT(*) FROM \"{table}\" x WHERE NOT ({})",
                s.live("x")
            ),
        )
        .await?;
        if n > 0 {
            soft_deleted.insert(*table, n);
        }
    }
    let mut not_carried = BTreeMap::new();
    for (table, soft, extra, why) in NOT_CARRIED {
        let mut conditions = Vec::new();
        if *soft {
            conditions.push(s.live("x"));
        }
        if !extra.is_empty() {
            conditions.push(format!("x.{extra}"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let n = count(
            source,
            &format!("SELECT COUNT(*) FROM \"{table}\" x{filter}"),
        )
        .await?;
        if n > 0 {
            let label = if extra.is_empty() {
                *table
            } else {
                "volume_glance_metadata of snapshots"
            };
            not_carried.insert(label, (n, *why));
        }
    }

    // The backends the volumes live on: `host@backend#pool`.
    let volume_spec = specs.iter().position(|sp| sp.kind == "volume");
    let mut backends_needed = BTreeSet::new();
    if let Some(index) = volume_spec {
        for row in &rows[index] {
            if let Some(host) = row.text("host")
                && let Some((_, backend)) = host.split_once('@')
            {
                let backend = backend.split('#').next().unwrap_or(backend);
                backends_needed.insert(backend.to_owned());
            }
        }
    }
    let backends_missing = backends_needed
        .iter()
        .filter(|b| !options.enabled_backends.iter().any(|e| e == *b))
        .cloned()
        .collect();

    Ok(Plan {
        specs,
        rows,
        report: ImportReport {
            revision,
            imported,
            soft_deleted,
            not_carried,
            skipped,
            backends_needed,
            backends_missing,
            live_services,
            outcome: Outcome::DryRun,
        },
    })
}

/// Reads the Cinder database and, unless `options.dry_run`, writes it into
/// `target` (already migrated) in one transaction.
///
/// # Errors
/// As [`plan`]; the target holds data of its own (without `replace`); a
/// failing write (nothing is kept).
pub async fn import(
    target: &Db,
    source: &Db,
    options: &ImportOptions,
) -> Result<ImportReport, DbError> {
    if !options.replace
        && let Some((source_label, at)) = previous_import(target).await?
    {
        let revision = check_revision(source).await?;
        return Ok(ImportReport {
            revision,
            imported: BTreeMap::new(),
            soft_deleted: BTreeMap::new(),
            not_carried: BTreeMap::new(),
            skipped: Vec::new(),
            backends_needed: BTreeSet::new(),
            backends_missing: BTreeSet::new(),
            live_services: Vec::new(),
            outcome: Outcome::AlreadyImported {
                source: source_label,
                at: Timestamp(at),
            },
        });
    }
    let mut plan = plan(source, options).await?;
    if options.dry_run {
        return Ok(plan.report);
    }
    if !options.replace {
        let holds = user_data(target, &options.default_volume_type).await?;
        if !holds.is_empty() {
            return Err(DbError::InvalidState(format!(
                "Clinker's database already holds data of its own ({}); --replace removes it \
                 and imports",
                holds.join(", ")
            )));
        }
    }
    plan.report.outcome = Outcome::Imported;
    let summary = plan.report.to_string();
    let now = target.now().as_micros();
    let no_snapshot_gb = target.quota_defaults().no_snapshot_gb_quota;
    in_transaction!(target, |tx| {
        for table in TARGET_TABLES {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
        for table in ["group_types", "group_type_specs"] {
            let column = if table == "group_types" {
                "id"
            } else {
                "group_type_id"
            };
            sqlx::query(sqlx::AssertSqlSafe(
                target.dynamic(format!("DELETE FROM {table} WHERE {column} <> ?")),
            ))
            .bind(DEFAULT_CGSNAPSHOT_TYPE_ID)
            .execute(&mut *tx)
            .await?;
        }
        for (spec, rows) in plan.specs.iter().zip(&plan.rows) {
            let cols: Vec<&str> = spec
                .cols
                .iter()
                .map(|c| c.name)
                .filter(|n| !n.starts_with('_'))
                .collect();
            let sql = target.dynamic(format!(
                "INSERT INTO {} ({}) VALUES ({})",
                spec.table,
                cols.join(", "),
                vec!["?"; cols.len()].join(", ")
            ));
            for row in rows {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for (name, value) in &row.0 {
                    if name.starts_with('_') {
                        continue;
                    }
                    query = match value {
                        V::I(v) => query.bind(*v),
                        V::T(v) => query.bind(v.clone()),
                    };
                }
                query.execute(&mut *tx).await.map_err(|e| {
                    DbError::Internal(format!(
                        "writing {} {}: {e}",
                        spec.kind,
                        row.text(spec.id).unwrap_or("")
                    ))
                })?;
            }
        }
        recount(target, &mut tx, no_snapshot_gb).await?;
        sqlx::query(target.q(
            "INSERT INTO cinder_imports (source, revision, imported_at, report) VALUES (?, ?, ?, ?)",
        ))
        .bind(options.source_label.as_str())
        .bind(plan.report.revision.as_str())
        .bind(now)
        .bind(summary.as_str())
        .execute(&mut *tx)
        .await?;
        Ok::<_, DbError>(())
    })?;
    Ok(plan.report)
}

/// Rewrites `quota_usages` and `pool_allocations` from the rows (as
/// `recount_usages` and `recount_pool_allocations` count them).
async fn recount(
    db: &Db,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    no_snapshot_gb: bool,
) -> Result<(), DbError> {
    let mut usage: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut add = |project: &str, resource: String, n: i64| {
        *usage.entry((project.to_owned(), resource)).or_default() += n;
    };
    for (table, size, kind) in [
        ("volumes", "size", "volumes"),
        ("snapshots", "volume_size", "snapshots"),
    ] {
        let sql = format!(
            "SELECT r.project_id, t.name, COUNT(*), {} FROM {table} r \
             LEFT JOIN volume_types t ON t.id = r.volume_type_id \
             WHERE r.use_quota = 1 GROUP BY r.project_id, t.name",
            db.dialect.sum_int(&format!("r.{size}"))
        );
        let rows: Vec<(String, Option<String>, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut **tx)
                .await?;
        let count_gb = kind == "volumes" || !no_snapshot_gb;
        for (project, type_name, n, gb) in rows {
            add(&project, kind.to_owned(), n);
            if count_gb {
                add(&project, "gigabytes".to_owned(), gb);
            }
            if let Some(name) = type_name {
                add(&project, format!("{kind}_{name}"), n);
                if count_gb {
                    add(&project, format!("gigabytes_{name}"), gb);
                }
            }
        }
    }
    let groups: Vec<(String, i64)> =
        sqlx::query_as("SELECT project_id, COUNT(*) FROM volume_groups GROUP BY project_id")
            .fetch_all(&mut **tx)
            .await?;
    for (project, n) in groups {
        add(&project, "groups".to_owned(), n);
    }
    for ((project, resource), in_use) in usage {
        sqlx::query(
            db.q("INSERT INTO quota_usages (project_id, resource, in_use) VALUES (?, ?, ?)"),
        )
        .bind(project)
        .bind(resource)
        .bind(in_use)
        .execute(&mut **tx)
        .await?;
    }
    let sql = format!(
        "INSERT INTO pool_allocations (pool, allocated_gb) \
         SELECT host, {} FROM volumes WHERE host IS NOT NULL GROUP BY host",
        db.dialect.sum_int("size")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The source and time of an earlier import into `target`, if any.
///
/// # Errors
/// The database is unreachable.
pub async fn previous_import(target: &Db) -> Result<Option<(String, i64)>, DbError> {
    if !table_exists(target, "cinder_imports").await {
        // A database at a schema before version 10 (a dry run does not
        // migrate): nothing was imported into it.
        return Ok(None);
    }
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT source, imported_at FROM cinder_imports ORDER BY imported_at DESC LIMIT 1",
    )
    .fetch_optional(&mut *target.reader().await?)
    .await?;
    Ok(row)
}

/// The number of rows of each table an import fills (`group_types` and
/// `group_type_specs` included).
///
/// # Errors
/// The database is unreachable.
pub async fn row_counts(db: &Db) -> Result<BTreeMap<&'static str, i64>, DbError> {
    let mut counts = BTreeMap::new();
    for table in TARGET_TABLES
        .iter()
        .chain(&["group_types", "group_type_specs"])
    {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *db.reader().await?)
                .await?;
        counts.insert(*table, n);
    }
    Ok(counts)
}

/// What user data `target` holds (empty for a freshly synced database).
async fn user_data(target: &Db, default_type: &str) -> Result<Vec<String>, DbError> {
    let mut found = Vec::new();
    for table in [
        "volumes",
        "snapshots",
        "volume_groups",
        "messages",
        "quotas",
        "quota_classes",
        "transfers",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *target.reader().await?)
                .await?;
        if n > 0 {
            found.push(format!("{n} {table}"));
        }
    }
    let types: i64 =
        sqlx::query_scalar(target.q("SELECT COUNT(*) FROM volume_types WHERE name <> ?"))
            .bind(default_type)
            .fetch_one(&mut *target.reader().await?)
            .await?;
    if types > 0 {
        found.push(format!("{types} volume types"));
    }
    Ok(found)
}

impl Db {
    /// Whether this database holds OpenStack Cinder's schema (an
    /// `alembic_version` table and `volumes`) rather than Clinker's.
    pub async fn holds_cinder_schema(&self) -> bool {
        table_exists(self, "alembic_version").await
            && table_exists(self, "volumes").await
            && !table_exists(self, "clinker_migrations").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[(&'static str, V)]) -> Row {
        Row(values.to_vec())
    }

    #[test]
    fn messages_get_cinder_texts_and_a_default_expiry() {
        let mut m = row(&[
            ("user_message", V::T(Some(String::new()))),
            ("created_at", V::I(Some(5))),
            ("expires_at", V::I(None)),
            ("_action_id", V::T(Some("013".into()))),
            ("_detail_id", V::T(Some("021".into()))),
        ]);
        fix_message(&mut m);
        assert_eq!(
            m.text("user_message"),
            Some("create backup:Failed to attach volume.")
        );
        assert_eq!(m.int("expires_at"), Some(5 + MESSAGE_TTL_MICROS));
        let mut unknown = row(&[
            ("user_message", V::T(None)),
            ("_action_id", V::T(None)),
            ("_detail_id", V::T(Some("999".into()))),
        ]);
        fix_message(&mut unknown);
        assert_eq!(
            unknown.text("user_message"),
            Some("An unknown error occurred.")
        );
    }

    #[test]
    fn long_values_and_unknown_statuses_are_refused_per_row() {
        let long = row(&[("meta_value", V::T(Some("x".repeat(256))))]);
        assert!(too_long(&long).unwrap().contains("256 characters"));
        let info = row(&[("connection_info", V::T(Some("x".repeat(4000))))]);
        assert_eq!(too_long(&info), None);
        let volume = row(&[
            ("id", V::T(Some("a".into()))),
            ("status", V::T(Some("available".into()))),
            ("attach_status", V::T(Some("detached".into()))),
            ("volume_type_id", V::T(Some("t".into()))),
            ("_name_id", V::T(None)),
        ]);
        assert_eq!(check_volume(&volume), Ok(()));
        let mut odd = volume.clone();
        odd.set("status", V::T(Some("frobnicating".into())));
        assert_eq!(
            check_volume(&odd),
            Err("unknown status \"frobnicating\"".into())
        );
        let mut migrated = volume;
        migrated.set("_name_id", V::T(Some("b".into())));
        assert!(check_volume(&migrated).unwrap_err().contains("_name_id"));
    }

    #[test]
    fn sources_read_times_and_flags_per_dialect() {
        let my = Src(Dialect::Mysql);
        assert_eq!(
            my.ts("v.created_at"),
            "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', v.created_at)"
        );
        assert_eq!(my.live("v"), "COALESCE(CAST(v.deleted AS SIGNED), 0) = 0");
        let pg = Src(Dialect::Postgres);
        assert!(pg.ts("x").starts_with("CAST(EXTRACT(EPOCH FROM x)"));
        assert_eq!(
            pg.live("v"),
            "COALESCE(CAST(CAST(v.deleted AS INTEGER) AS BIGINT), 0) = 0"
        );
    }
}
