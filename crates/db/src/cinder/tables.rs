//! The one mapping between Cinder 29's tables and Clinker's, read by the
//! import (Cinder → Clinker) and the export (Clinker → Cinder).
//!
//! Each [`Table`] pairs a Clinker table with a Cinder table; each [`Col`]
//! a Clinker column with the Cinder column it corresponds to and the
//! [`Conv`] between them. A column only one direction knows says so: the
//! import may read an expression instead of the Cinder column (`read`),
//! the export may compute the Cinder value from Clinker's row (`write`).
//! Clinker columns named `_…` are not stored in Clinker (inputs of an
//! import fix, or values only Cinder keeps). The order of [`tables`] is
//! Cinder's foreign-key order, which both directions write in.

use clinker_types::backup::BackupStatus;
use clinker_types::group::DEFAULT_CGSNAPSHOT_TYPE_ID;
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use clinker_types::{AttachStatus, SnapshotStatus, VolumeStatus};

use super::messages::fix_message;
use super::{Row, V};
use crate::pool::Dialect;

/// How a value converts between the schemas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Conv {
    /// Text; NULL stays NULL.
    Text,
    /// Text; a NULL in Cinder reads as this (Clinker's column is NOT NULL).
    TextOr(&'static str),
    /// An integer; with a default, a NULL in Cinder reads as it.
    Int(Option<i64>),
    /// A Cinder boolean (`tinyint(1)` on MariaDB); NULL reads as the default.
    Bool(i64),
    /// A naive UTC `DATETIME` in Cinder, microseconds in Clinker.
    Time,
    /// `created_at`: as [`Conv::Time`], NULL reads as the epoch.
    Created,
    /// A group type id: Cinder's `default_cgsnapshot_type` has a random id
    /// per deployment, Clinker's a fixed one.
    GroupType,
}

impl Conv {
    /// Whether Clinker keeps the value as an integer.
    pub(super) fn integer(self) -> bool {
        !matches!(self, Conv::Text | Conv::TextOr(_) | Conv::GroupType)
    }

    /// The import's expression for Cinder column `col` (alias included).
    fn read(self, s: &Src, col: &str) -> String {
        match self {
            Conv::Text => col.to_owned(),
            Conv::TextOr(default) => format!("COALESCE({col}, '{default}')"),
            Conv::Int(None) => s.int(col),
            Conv::Int(Some(default)) | Conv::Bool(default) => {
                format!("COALESCE({}, {default})", s.int(col))
            }
            Conv::Time => s.ts(col),
            Conv::Created => format!("COALESCE({}, 0)", s.ts(col)),
            Conv::GroupType => s.group_type(col),
        }
    }
}

/// One Clinker column and its Cinder counterpart.
#[derive(Debug)]
pub(super) struct Col {
    /// Clinker's column (`_…`: not stored in Clinker).
    pub clinker: &'static str,
    /// Cinder's column; `None`: the import computes the value (`read`)
    /// and the export writes nothing.
    pub cinder: Option<&'static str>,
    pub conv: Conv,
    /// The import's SQL on Cinder's tables, instead of the column.
    pub read: Option<String>,
    /// What the export writes instead of Clinker's column.
    pub write: Option<Write>,
}

/// A value the export computes.
#[derive(Debug)]
pub(super) enum Write {
    /// SQL on Clinker's table (alias `x`).
    Sql(String),
    /// A constant.
    Value(V),
}

impl Col {
    fn read(mut self, expr: impl Into<String>) -> Self {
        self.read = Some(expr.into());
        self
    }

    fn write(mut self, expr: impl Into<String>) -> Self {
        self.write = Some(Write::Sql(expr.into()));
        self
    }

    fn constant(mut self, value: V) -> Self {
        self.write = Some(Write::Value(value));
        self
    }

    /// The import's select expression.
    pub(super) fn source(&self, s: &Src, alias: &str) -> String {
        match (&self.read, self.cinder) {
            (Some(expr), _) => expr.clone(),
            (None, Some(cinder)) => self.conv.read(s, &format!("{alias}.\"{cinder}\"")),
            (None, None) => "NULL".into(),
        }
    }

    /// The export's select expression on Clinker's table (`None`: a
    /// constant, or nothing to write).
    pub(super) fn target(&self) -> Option<String> {
        match (&self.write, self.cinder) {
            (_, None) | (Some(Write::Value(_)), _) => None,
            (Some(Write::Sql(sql)), _) => Some(sql.clone()),
            (None, Some(_)) => Some(format!("x.{}", self.clinker)),
        }
    }
}

fn col(clinker: &'static str, cinder: &'static str, conv: Conv) -> Col {
    Col {
        clinker,
        cinder: Some(cinder),
        conv,
        read: None,
        write: None,
    }
}

/// The same name on both sides.
fn same(name: &'static str, conv: Conv) -> Col {
    col(name, name, conv)
}

/// A Clinker column the import computes and the export leaves out.
fn computed(clinker: &'static str, conv: Conv, expr: impl Into<String>) -> Col {
    Col {
        clinker,
        cinder: None,
        conv,
        read: Some(expr.into()),
        write: None,
    }
}

use Conv::{Bool, Created, GroupType, Int, Text, TextOr, Time};

pub(super) type Check = fn(&Row) -> Result<(), String>;
pub(super) type Fix = fn(&mut Row);

/// One kind of row in both schemas.
pub(super) struct Table {
    /// The kind, as reports name it (`volume`, `snapshot`, …).
    pub kind: &'static str,
    pub clinker: &'static str,
    pub cinder: &'static str,
    /// The Clinker column naming the row in reports and for children.
    pub id: &'static str,
    pub cols: Vec<Col>,
    /// The import's `FROM … WHERE …` on Cinder's tables; `None`: the
    /// export writes the table, the import does not read it.
    pub from: Option<String>,
    /// The export's `WHERE … ORDER BY …` on Clinker's table (alias `x`);
    /// `None`: only the import moves it.
    pub select: Option<String>,
    /// Cinder's row id is a generated UUID (Clinker keeps none).
    pub uuid_id: bool,
    /// A column holding the id of a parent row of another kind: the row
    /// is skipped with its parent.
    pub parent: Option<(&'static str, &'static str)>,
    pub check: Check,
    pub fix: Fix,
}

/// SQL fragments in the Cinder database's dialect.
pub(super) struct Src(pub Dialect);

impl Src {
    /// A `DATETIME` as microseconds since the epoch (NULL stays NULL).
    pub(super) fn ts(&self, col: &str) -> String {
        match self.0 {
            Dialect::Mysql => {
                format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {col})")
            }
            _ => format!("CAST(EXTRACT(EPOCH FROM {col}) * 1000000 AS BIGINT)"),
        }
    }

    /// A flag or integer as a 64-bit integer.
    pub(super) fn int(&self, col: &str) -> String {
        match self.0 {
            Dialect::Mysql => format!("CAST({col} AS SIGNED)"),
            _ => format!("CAST(CAST({col} AS INTEGER) AS BIGINT)"),
        }
    }

    /// The row is not soft-deleted.
    pub(super) fn live(&self, alias: &str) -> String {
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

pub(super) fn check_volume(row: &Row) -> Result<(), String> {
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

fn check_backup(row: &Row) -> Result<(), String> {
    status::<BackupStatus>(row, "status")
}

fn fix_service(row: &mut Row) {
    if row.text("uuid").is_none_or(str::is_empty) {
        row.set("uuid", V::T(Some(uuid::Uuid::new_v4().to_string())));
    }
}

/// A backup without `data_timestamp` (older Cinder rows) took its data
/// when it was created.
fn fix_backup(row: &mut Row) {
    if row.int("data_timestamp").is_none() {
        row.set("data_timestamp", V::I(row.int("created_at")));
    }
}

/// Every kind both directions move, in Cinder's foreign-key order.
#[expect(
    clippy::too_many_lines,
    reason = "one declaration per kind, read as a table"
)]
pub(super) fn tables(s: &Src) -> Vec<Table> {
    let live = |a: &str| s.live(a);
    let table = |kind, clinker, cinder, id, cols, from: String, select: &str| Table {
        kind,
        clinker,
        cinder,
        id,
        cols,
        from: Some(from),
        select: Some(select.to_owned()),
        uuid_id: false,
        parent: None,
        check: no_check,
        fix: no_fix,
    };
    // Clinker keeps the three metadata tables of a volume in one.
    let metadata = |kind: &'static str, cinder: &'static str, meta_kind: &str| Table {
        parent: Some(("volume_id", "volume")),
        ..table(
            kind,
            "volume_metadata",
            cinder,
            "meta_key",
            vec![
                same("volume_id", Text),
                computed("kind", Text, format!("'{meta_kind}'")),
                col("meta_key", "key", Text),
                col("meta_value", "value", TextOr("")),
            ],
            format!(
                "{cinder} m JOIN volumes v ON v.id = m.volume_id WHERE {} AND {}",
                live("m"),
                live("v")
            ),
            &format!("WHERE x.kind = '{meta_kind}'"),
        )
    };
    let not_default_group_type =
        |column: &str| format!("WHERE x.{column} <> '{DEFAULT_CGSNAPSHOT_TYPE_ID}'");
    vec![
        Table {
            fix: fix_service,
            ..table(
                "service",
                "services",
                "services",
                "host",
                vec![
                    same("uuid", Text),
                    same("host", Text),
                    col("binary_name", "binary", Text),
                    same("topic", TextOr("")),
                    same("report_count", Int(Some(0))),
                    same("disabled", Bool(0)),
                    same("disabled_reason", Text),
                    same("availability_zone", TextOr("nova")),
                    // Cinder's API and services refuse to start beside a
                    // service row without versions (`ServiceTooOld`):
                    // a row Clinker made gets Cinder 29's RPC API versions
                    // (`rpcapi.py` RPC_API_VERSION per service) and object
                    // version (`objects/base.py`, `OBJ_VERSIONS` head).
                    same("rpc_current_version", Text).write(
                        "COALESCE(x.rpc_current_version, CASE x.binary_name \
                         WHEN 'cinder-scheduler' THEN '3.12' WHEN 'cinder-backup' THEN '2.4' \
                         ELSE '3.20' END)",
                    ),
                    col("_object_version", "object_current_version", Text)
                        .constant(V::T(Some("1.39".into()))),
                    same("frozen", Bool(0)),
                    same("replication_status", Text),
                    same("active_backend_id", Text),
                    same("cluster_name", Text),
                    same("created_at", Created),
                    same("updated_at", Time),
                    same("modified_at", Time),
                ],
                format!("services s WHERE {} ORDER BY s.id", live("s")),
                "ORDER BY x.id",
            )
        },
        table(
            "qos specs",
            "qos_specs",
            "quality_of_service_specs",
            "id",
            vec![
                same("id", Text),
                col("name", "value", Text),
                // Cinder keeps the consumer as one more key of the spec.
                computed(
                    "consumer",
                    TextOr("back-end"),
                    format!(
                        "COALESCE((SELECT MAX(c.value) FROM quality_of_service_specs c \
                         WHERE c.specs_id = p.id AND c.\"key\" = 'consumer' AND {}), 'back-end')",
                        live("c")
                    ),
                ),
                col("_key", "key", Text).constant(V::T(Some("QoS_Specs_Name".into()))),
                same("created_at", Created),
                same("updated_at", Time),
            ],
            format!(
                "quality_of_service_specs p WHERE p.specs_id IS NULL AND {}",
                live("p")
            ),
            "",
        ),
        Table {
            from: None,
            uuid_id: true,
            ..table(
                "qos specs consumer",
                "qos_specs",
                "quality_of_service_specs",
                "id",
                vec![
                    col("id", "specs_id", Text),
                    col("_key", "key", Text).constant(V::T(Some("consumer".into()))),
                    col("consumer", "value", Text),
                ],
                String::new(),
                "",
            )
        },
        Table {
            uuid_id: true,
            ..table(
                "qos spec key",
                "qos_specs_items",
                "quality_of_service_specs",
                "spec_key",
                vec![
                    col("qos_specs_id", "specs_id", Text),
                    col("spec_key", "key", Text),
                    col("spec_value", "value", Text),
                ],
                format!(
                    "quality_of_service_specs c JOIN quality_of_service_specs p \
                     ON p.id = c.specs_id WHERE c.\"key\" <> 'consumer' AND {} AND {}",
                    live("c"),
                    live("p")
                ),
                "",
            )
        },
        table(
            "volume type",
            "volume_types",
            "volume_types",
            "id",
            vec![
                same("id", Text),
                same("name", Text),
                same("description", Text),
                same("is_public", Bool(1)),
                same("qos_specs_id", Text),
                same("created_at", Created),
                same("updated_at", Time),
            ],
            format!("volume_types t WHERE {}", live("t")),
            "",
        ),
        table(
            "volume type extra spec",
            "volume_type_extra_specs",
            "volume_type_extra_specs",
            "spec_key",
            vec![
                same("volume_type_id", Text),
                col("spec_key", "key", Text),
                col("spec_value", "value", TextOr("")),
            ],
            format!(
                "volume_type_extra_specs e JOIN volume_types t ON t.id = e.volume_type_id \
                 WHERE {} AND {}",
                live("e"),
                live("t")
            ),
            "",
        ),
        table(
            "volume type access",
            "volume_type_projects",
            "volume_type_projects",
            "project_id",
            vec![same("volume_type_id", Text), same("project_id", Text)],
            format!(
                "volume_type_projects p JOIN volume_types t ON t.id = p.volume_type_id \
                 WHERE {} AND {}",
                live("p"),
                live("t")
            ),
            "",
        ),
        table(
            "volume type encryption",
            "encryption",
            "encryption",
            "volume_type_id",
            vec![
                same("volume_type_id", Text),
                same("encryption_id", Text).read("COALESCE(e.encryption_id, e.volume_type_id)"),
                same("provider", TextOr("")),
                same("cipher", Text),
                same("key_size", Int(None)),
                same("control_location", TextOr("front-end")),
                same("created_at", Created),
                same("updated_at", Time),
            ],
            format!(
                "encryption e JOIN volume_types t ON t.id = e.volume_type_id WHERE {} AND {}",
                live("e"),
                live("t")
            ),
            "",
        ),
        table(
            "default type",
            "default_volume_types",
            "default_volume_types",
            "project_id",
            vec![
                same("project_id", Text),
                same("volume_type_id", Text),
                same("created_at", Created),
                same("updated_at", Time),
            ],
            format!("default_volume_types d WHERE {}", live("d")),
            "",
        ),
        table(
            "group type",
            "group_types",
            "group_types",
            "id",
            vec![
                same("id", Text),
                same("name", Text),
                same("description", Text),
                same("is_public", Bool(1)),
                same("created_at", Created),
                same("updated_at", Time),
            ],
            format!(
                "group_types g WHERE g.name <> 'default_cgsnapshot_type' AND {}",
                live("g")
            ),
            &not_default_group_type("id"),
        ),
        table(
            "group type spec",
            "group_type_specs",
            "group_type_specs",
            "spec_key",
            vec![
                same("group_type_id", Text),
                col("spec_key", "key", Text),
                col("spec_value", "value", TextOr("")),
            ],
            format!(
                "group_type_specs e JOIN group_types g ON g.id = e.group_type_id \
                 WHERE g.name <> 'default_cgsnapshot_type' AND {} AND {}",
                live("e"),
                live("g")
            ),
            &not_default_group_type("group_type_id"),
        ),
        table(
            "group type access",
            "group_type_projects",
            "group_type_projects",
            "project_id",
            vec![same("group_type_id", GroupType), same("project_id", Text)],
            format!(
                "group_type_projects p JOIN group_types g ON g.id = p.group_type_id \
                 WHERE g.name <> 'default_cgsnapshot_type' AND {} AND {}",
                live("p"),
                live("g")
            ),
            &not_default_group_type("group_type_id"),
        ),
        Table {
            check: check_group,
            ..table(
                "group",
                "volume_groups",
                "groups",
                "id",
                vec![
                    same("id", Text),
                    same("user_id", TextOr("")),
                    same("project_id", TextOr("")),
                    same("host", Text),
                    same("cluster_name", Text),
                    same("availability_zone", TextOr("nova")),
                    same("status", Text),
                    col("display_name", "name", Text),
                    col("display_description", "description", Text),
                    same("group_type_id", GroupType),
                    same("group_snapshot_id", Text),
                    same("source_group_id", Text),
                    same("replication_status", Text),
                    same("created_at", Created),
                    same("updated_at", Time),
                ],
                format!("\"groups\" g WHERE {}", live("g")),
                "",
            )
        },
        Table {
            parent: Some(("group_id", "group")),
            ..table(
                "group volume type",
                "group_volume_types",
                "group_volume_type_mapping",
                "volume_type_id",
                vec![
                    same("group_id", Text),
                    same("volume_type_id", Text),
                    // Cinder's row ids keep the order the types were
                    // given; the export inserts in that order.
                    computed("type_position", Int(None), s.int("m.id")),
                ],
                format!(
                    "group_volume_type_mapping m JOIN \"groups\" g ON g.id = m.group_id \
                     WHERE {} AND {}",
                    live("m"),
                    live("g")
                ),
                "ORDER BY x.group_id, x.type_position",
            )
        },
        Table {
            check: check_volume,
            ..table(
                "volume",
                "volumes",
                "volumes",
                "id",
                vec![
                    same("id", Text),
                    same("user_id", TextOr("")),
                    same("project_id", TextOr("")),
                    same("host", Text),
                    same("size", Int(Some(0))),
                    same("availability_zone", TextOr("nova")),
                    same("status", Text),
                    same("attach_status", TextOr("detached")),
                    same("migration_status", Text),
                    same("display_name", Text),
                    same("display_description", Text),
                    same("provider_location", Text),
                    same("provider_auth", Text),
                    same("provider_id", Text),
                    same("volume_type_id", Text),
                    same("snapshot_id", Text),
                    same("source_volid", Text),
                    same("bootable", Bool(0)),
                    same("multiattach", Bool(0)),
                    same("encryption_key_id", Text),
                    // Consistency groups do not travel (Cinder's foreign key).
                    computed("consistencygroup_id", Text, "v.consistencygroup_id"),
                    same("group_id", Text),
                    same("replication_status", Text),
                    same("previous_status", Text),
                    // Cinder's foreign key: only the uuid of a service row
                    // that travels too.
                    same("service_uuid", Text).write(
                        "CASE WHEN x.service_uuid IN (SELECT uuid FROM services) \
                         THEN x.service_uuid END",
                    ),
                    same("shared_targets", Bool(1)),
                    same("use_quota", Bool(1)),
                    same("cluster_name", Text),
                    same("created_at", Created),
                    same("updated_at", Time),
                    same("scheduled_at", Time),
                    same("launched_at", Time),
                    computed("_name_id", Text, "v._name_id"),
                ],
                format!("volumes v WHERE {}", live("v")),
                "",
            )
        },
        metadata("volume metadata", "volume_metadata", "user"),
        metadata("volume admin metadata", "volume_admin_metadata", "admin"),
        metadata("volume image metadata", "volume_glance_metadata", "glance"),
        Table {
            parent: Some(("volume_id", "volume")),
            check: check_attachment,
            ..table(
                "attachment",
                "volume_attachment",
                "volume_attachment",
                "id",
                vec![
                    same("id", Text),
                    same("volume_id", Text),
                    same("instance_uuid", Text),
                    same("attached_host", Text),
                    same("mountpoint", Text),
                    same("attach_time", Time),
                    same("detach_time", Time),
                    same("attach_status", TextOr("detached")),
                    same("attach_mode", Text),
                    same("connection_info", Text),
                    same("connector", Text),
                    same("created_at", Created),
                    same("updated_at", Time),
                ],
                format!(
                    "volume_attachment a JOIN volumes v ON v.id = a.volume_id WHERE {} AND {}",
                    live("a"),
                    live("v")
                ),
                "",
            )
        },
        Table {
            parent: Some(("group_id", "group")),
            check: check_group_snapshot,
            ..table(
                "group snapshot",
                "group_snapshots",
                "group_snapshots",
                "id",
                vec![
                    same("id", Text),
                    same("group_id", Text),
                    same("user_id", TextOr("")),
                    same("project_id", TextOr("")),
                    same("status", Text),
                    col("display_name", "name", Text),
                    col("display_description", "description", Text),
                    same("group_type_id", GroupType),
                    same("created_at", Created),
                    same("updated_at", Time),
                ],
                format!(
                    "group_snapshots x JOIN \"groups\" g ON g.id = x.group_id WHERE {} AND {}",
                    live("x"),
                    live("g")
                ),
                "",
            )
        },
        Table {
            parent: Some(("volume_id", "volume")),
            check: check_snapshot,
            ..table(
                "snapshot",
                "snapshots",
                "snapshots",
                "id",
                vec![
                    same("id", Text),
                    same("volume_id", Text),
                    same("user_id", TextOr("")),
                    same("project_id", TextOr("")),
                    same("status", Text),
                    same("progress", Text),
                    same("volume_size", Int(Some(0))),
                    same("display_name", Text),
                    same("display_description", Text),
                    same("provider_location", Text),
                    same("volume_type_id", Text)
                        .read("COALESCE(x.volume_type_id, v.volume_type_id)"),
                    same("group_snapshot_id", Text),
                    same("use_quota", Bool(1)),
                    same("created_at", Created),
                    same("updated_at", Time),
                ],
                format!(
                    "snapshots x JOIN volumes v ON v.id = x.volume_id WHERE {} AND {}",
                    live("x"),
                    live("v")
                ),
                "",
            )
        },
        Table {
            parent: Some(("snapshot_id", "snapshot")),
            ..table(
                "snapshot metadata",
                "snapshot_metadata",
                "snapshot_metadata",
                "meta_key",
                vec![
                    same("snapshot_id", Text),
                    col("meta_key", "key", Text),
                    col("meta_value", "value", TextOr("")),
                ],
                format!(
                    "snapshot_metadata m JOIN snapshots x ON x.id = m.snapshot_id \
                     WHERE {} AND {}",
                    live("m"),
                    live("x")
                ),
                "",
            )
        },
        Table {
            parent: Some(("volume_id", "volume")),
            ..table(
                "transfer",
                "transfers",
                "transfers",
                "id",
                vec![
                    same("id", Text),
                    same("volume_id", Text),
                    same("display_name", Text),
                    same("salt", TextOr("")),
                    same("crypt_hash", TextOr("")),
                    same("no_snapshots", Bool(0)),
                    same("source_project_id", Text),
                    same("destination_project_id", Text),
                    same("accepted", Bool(0)),
                    same("created_at", Created),
                    same("updated_at", Time),
                ],
                format!(
                    "transfers x JOIN volumes v ON v.id = x.volume_id WHERE {} AND {}",
                    live("x"),
                    live("v")
                ),
                "",
            )
        },
        Table {
            fix: fix_message,
            ..table(
                "message",
                "messages",
                "messages",
                "id",
                vec![
                    same("id", Text),
                    same("project_id", Text),
                    same("request_id", Text),
                    same("resource_type", TextOr("VOLUME")),
                    same("resource_uuid", Text),
                    same("event_id", Text),
                    same("message_level", Text),
                    computed("user_message", Text, "''"),
                    same("created_at", Created),
                    same("expires_at", Time),
                    // Cinder's event id ends with `_<action>_<detail>`.
                    col("_action_id", "action_id", Text)
                        .write("SUBSTR(x.event_id, LENGTH(x.event_id) - 6, 3)"),
                    col("_detail_id", "detail_id", Text)
                        .write("SUBSTR(x.event_id, LENGTH(x.event_id) - 2, 3)"),
                ],
                format!("messages m WHERE {}", live("m")),
                "",
            )
        },
        table(
            "quota",
            "quotas",
            "quotas",
            "resource",
            vec![
                same("project_id", Text),
                same("resource", Text),
                same("hard_limit", Int(Some(-1))),
            ],
            format!("quotas q WHERE {}", live("q")),
            "",
        ),
        table(
            "quota class",
            "quota_classes",
            "quota_classes",
            "resource",
            vec![
                same("class_name", Text),
                same("resource", Text),
                same("hard_limit", Int(Some(-1))),
            ],
            format!("quota_classes q WHERE {}", live("q")),
            "",
        ),
        // Usage is recounted by the import; Cinder reads its counters.
        Table {
            from: None,
            ..table(
                "quota usage",
                "quota_usages",
                "quota_usages",
                "resource",
                vec![
                    same("project_id", Text),
                    same("resource", Text),
                    same("in_use", Int(Some(0))),
                    col("_reserved", "reserved", Int(Some(0))).constant(V::I(Some(0))),
                    col("_race_preventer", "race_preventer", Bool(1)).constant(V::I(Some(1))),
                ],
                String::new(),
                "",
            )
        },
        // A backup outlives its volume: no parent.
        Table {
            check: check_backup,
            fix: fix_backup,
            ..table(
                "backup",
                "backups",
                "backups",
                "id",
                vec![
                    same("id", Text),
                    same("volume_id", Text),
                    same("user_id", TextOr("")),
                    same("project_id", TextOr("")),
                    same("host", Text),
                    same("availability_zone", Text),
                    same("display_name", Text),
                    same("display_description", Text),
                    same("container", Text),
                    same("status", Text),
                    same("fail_reason", Text),
                    same("service_metadata", Text),
                    same("service", Text),
                    same("size", Int(Some(0))),
                    same("object_count", Int(Some(0))),
                    same("parent_id", Text),
                    same("snapshot_id", Text),
                    same("data_timestamp", Time),
                    same("restore_volume_id", Text),
                    same("encryption_key_id", Text),
                    same("created_at", Created),
                    same("updated_at", Time),
                    // Clinker counts the dependents from `parent_id`.
                    col("_dependents", "num_dependent_backups", Int(Some(0)))
                        .write("(SELECT COUNT(*) FROM backups c WHERE c.parent_id = x.id)"),
                ],
                format!("backups x WHERE {}", live("x")),
                "",
            )
        },
        Table {
            parent: Some(("backup_id", "backup")),
            ..table(
                "backup metadata",
                "backup_metadata",
                "backup_metadata",
                "meta_key",
                vec![
                    same("backup_id", Text),
                    col("meta_key", "key", Text),
                    col("meta_value", "value", TextOr("")),
                ],
                format!(
                    "backup_metadata m JOIN backups b ON b.id = m.backup_id WHERE {} AND {}",
                    live("m"),
                    live("b")
                ),
                "",
            )
        },
    ]
}
