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
    /// Cinder's table has its bookkeeping columns (`deleted`,
    /// `created_at`), which the export fills when Clinker has no value.
    pub bookkeeping: bool,
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

/// Cinder's `created_at` and `updated_at`, which most tables end with.
fn stamped(mut cols: Vec<Col>) -> Vec<Col> {
    cols.push(same("created_at", Created));
    cols.push(same("updated_at", Time));
    cols
}

/// Text columns of the same name on both sides (`names` separated by
/// white space), then `rest`.
fn texts(names: &'static str, rest: Vec<Col>) -> Vec<Col> {
    names
        .split_whitespace()
        .map(|name| same(name, Text))
        .chain(rest)
        .collect()
}

/// A key/value row of an owner (metadata, extra specs): Cinder's `key`
/// and `value` columns.
fn pairs(owner: &'static str, key: &'static str, value: &'static str) -> Vec<Col> {
    vec![
        same(owner, Text),
        col(key, "key", Text),
        col(value, "value", TextOr("")),
    ]
}

/// A kind's name, Clinker's table, Cinder's table and id column.
type Names = (&'static str, &'static str, &'static str, &'static str);

impl Table {
    /// A kind both directions move; the export writes every row of
    /// Clinker's table.
    /// `names`: the kind, Clinker's table, Cinder's table, the id column.
    fn new(names: Names, cols: Vec<Col>, from: String) -> Self {
        let (kind, clinker, cinder, id) = names;
        Self {
            kind,
            clinker,
            cinder,
            id,
            cols,
            from: Some(from),
            select: Some(String::new()),
            uuid_id: false,
            bookkeeping: true,
            parent: None,
            check: no_check,
            fix: no_fix,
        }
    }

    /// Only the export writes it.
    fn export_only(mut self) -> Self {
        self.from = None;
        self
    }

    /// The export's `WHERE … ORDER BY …` (alias `x`).
    fn exporting(mut self, select: impl Into<String>) -> Self {
        self.select = Some(select.into());
        self
    }

    /// Cinder's table has no `deleted` or `created_at` column.
    fn without_bookkeeping(mut self) -> Self {
        self.bookkeeping = false;
        self
    }

    /// Cinder's row id is generated.
    fn generated_ids(mut self) -> Self {
        self.uuid_id = true;
        self
    }

    /// Column `col` holds the id of a `kind` row: skipped with it.
    fn child_of(self, col: &'static str, kind: &'static str) -> Self {
        Self {
            parent: Some((col, kind)),
            ..self
        }
    }

    fn checked(mut self, check: Check) -> Self {
        self.check = check;
        self
    }

    fn fixed(mut self, fix: Fix) -> Self {
        self.fix = fix;
        self
    }
}

/// Every kind both directions move, in Cinder's foreign-key order.
#[expect(
    clippy::too_many_lines,
    reason = "one declaration per kind, read as a table"
)]
pub(super) fn tables(s: &Src) -> Vec<Table> {
    let live = |a: &str| s.live(a);
    // Cinder's live rows of one table (`from` names its alias).
    let own = |from: &str, alias: &str| format!("{from} WHERE {}", live(alias));
    // Cinder's live rows of a child table whose parent is live too.
    let child = |from: &str, a: &str, parent: &str, p: &str, fk: &str| {
        format!(
            "{from} {a} JOIN {parent} {p} ON {p}.id = {a}.{fk} WHERE {} AND {}",
            live(a),
            live(p)
        )
    };
    // Metadata rows of a volume, snapshot or backup.
    let metadata = |kind, clinker, cinder, owner, parent, parent_kind| {
        Table::new(
            (kind, clinker, cinder, "meta_key"),
            pairs(owner, "meta_key", "meta_value"),
            child(cinder, "m", parent, "p", owner),
        )
        .child_of(owner, parent_kind)
    };
    // Clinker keeps the three metadata tables of a volume in one.
    let volume_metadata = |kind, cinder, meta_kind: &str| {
        let mut table = metadata(
            kind,
            "volume_metadata",
            cinder,
            "volume_id",
            "volumes",
            "volume",
        )
        .exporting(format!("WHERE x.kind = '{meta_kind}'"));
        table
            .cols
            .push(computed("kind", Text, format!("'{meta_kind}'")));
        table
    };
    // Cinder's own `default_cgsnapshot_type` does not travel.
    let real_group_type = "g.name <> 'default_cgsnapshot_type'";
    let not_default_group_type =
        |column: &str| format!("WHERE x.{column} <> '{DEFAULT_CGSNAPSHOT_TYPE_ID}'");
    let group_type_child = |kind, table, id, cols| {
        Table::new(
            (kind, table, table, id),
            cols,
            format!(
                "{} AND {real_group_type}",
                child(table, "e", "group_types", "g", "group_type_id")
            ),
        )
        .exporting(not_default_group_type("group_type_id"))
    };
    let quota = |kind, table, owner| {
        Table::new(
            (kind, table, table, "resource"),
            vec![
                same(owner, Text),
                same("resource", Text),
                same("hard_limit", Int(Some(-1))),
            ],
            own(&format!("{table} q"), "q"),
        )
    };
    let services = texts(
        "uuid host disabled_reason replication_status active_backend_id cluster_name",
        vec![
            col("binary_name", "binary", Text),
            same("topic", TextOr("")),
            same("report_count", Int(Some(0))),
            same("disabled", Bool(0)),
            same("availability_zone", TextOr("nova")),
            // Cinder's API and services refuse to start beside a service row
            // without versions (`ServiceTooOld`): a row Clinker made gets
            // Cinder 29's RPC API versions (`rpcapi.py` RPC_API_VERSION per
            // service) and object version (`objects/base.py`, `OBJ_VERSIONS`
            // head).
            same("rpc_current_version", Text).write(
                "COALESCE(x.rpc_current_version, CASE x.binary_name \
             WHEN 'cinder-scheduler' THEN '3.12' WHEN 'cinder-backup' THEN '2.4' \
             ELSE '3.20' END)",
            ),
            col("_object_version", "object_current_version", Text)
                .constant(V::T(Some("1.39".into()))),
            same("frozen", Bool(0)),
            same("modified_at", Time),
        ],
    );
    vec![
        Table::new(
            ("service", "services", "services", "host"),
            stamped(services),
            format!("{} ORDER BY s.id", own("services s", "s")),
        )
        .exporting("ORDER BY x.id")
        .fixed(fix_service),
        Table::new(
            ("qos specs", "qos_specs", "quality_of_service_specs", "id"),
            stamped(vec![
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
            ]),
            format!(
                "{} AND p.specs_id IS NULL",
                own("quality_of_service_specs p", "p")
            ),
        ),
        Table::new(
            (
                "qos specs consumer",
                "qos_specs",
                "quality_of_service_specs",
                "id",
            ),
            vec![
                col("id", "specs_id", Text),
                col("_key", "key", Text).constant(V::T(Some("consumer".into()))),
                col("consumer", "value", Text),
            ],
            String::new(),
        )
        .export_only()
        .generated_ids(),
        Table::new(
            (
                "qos spec key",
                "qos_specs_items",
                "quality_of_service_specs",
                "spec_key",
            ),
            vec![
                col("qos_specs_id", "specs_id", Text),
                col("spec_key", "key", Text),
                col("spec_value", "value", Text),
            ],
            format!(
                "{} AND c.\"key\" <> 'consumer'",
                child(
                    "quality_of_service_specs",
                    "c",
                    "quality_of_service_specs",
                    "p",
                    "specs_id"
                )
            ),
        )
        .generated_ids(),
        Table::new(
            ("volume type", "volume_types", "volume_types", "id"),
            stamped(vec![
                same("id", Text),
                same("name", Text),
                same("description", Text),
                same("is_public", Bool(1)),
                same("qos_specs_id", Text),
            ]),
            own("volume_types t", "t"),
        ),
        Table::new(
            (
                "volume type extra spec",
                "volume_type_extra_specs",
                "volume_type_extra_specs",
                "spec_key",
            ),
            pairs("volume_type_id", "spec_key", "spec_value"),
            child(
                "volume_type_extra_specs",
                "e",
                "volume_types",
                "t",
                "volume_type_id",
            ),
        ),
        Table::new(
            (
                "volume type access",
                "volume_type_projects",
                "volume_type_projects",
                "project_id",
            ),
            vec![same("volume_type_id", Text), same("project_id", Text)],
            child(
                "volume_type_projects",
                "p",
                "volume_types",
                "t",
                "volume_type_id",
            ),
        ),
        Table::new(
            (
                "volume type encryption",
                "encryption",
                "encryption",
                "volume_type_id",
            ),
            stamped(vec![
                same("volume_type_id", Text),
                same("encryption_id", Text).read("COALESCE(e.encryption_id, e.volume_type_id)"),
                same("provider", TextOr("")),
                same("cipher", Text),
                same("key_size", Int(None)),
                same("control_location", TextOr("front-end")),
            ]),
            child("encryption", "e", "volume_types", "t", "volume_type_id"),
        ),
        Table::new(
            (
                "default type",
                "default_volume_types",
                "default_volume_types",
                "project_id",
            ),
            stamped(vec![same("project_id", Text), same("volume_type_id", Text)]),
            own("default_volume_types d", "d"),
        ),
        Table::new(
            ("group type", "group_types", "group_types", "id"),
            stamped(vec![
                same("id", Text),
                same("name", Text),
                same("description", Text),
                same("is_public", Bool(1)),
            ]),
            format!("{} AND {real_group_type}", own("group_types g", "g")),
        )
        .exporting(not_default_group_type("id")),
        group_type_child(
            "group type spec",
            "group_type_specs",
            "spec_key",
            pairs("group_type_id", "spec_key", "spec_value"),
        ),
        group_type_child(
            "group type access",
            "group_type_projects",
            "project_id",
            vec![same("group_type_id", GroupType), same("project_id", Text)],
        ),
        Table::new(
            ("group", "volume_groups", "groups", "id"),
            stamped(texts(
                "id host cluster_name status group_snapshot_id source_group_id \
                     replication_status",
                vec![
                    same("user_id", TextOr("")),
                    same("project_id", TextOr("")),
                    same("availability_zone", TextOr("nova")),
                    col("display_name", "name", Text),
                    col("display_description", "description", Text),
                    same("group_type_id", GroupType),
                ],
            )),
            own("\"groups\" g", "g"),
        )
        .checked(|row| status::<GroupStatus>(row, "status")),
        Table::new(
            (
                "group volume type",
                "group_volume_types",
                "group_volume_type_mapping",
                "volume_type_id",
            ),
            vec![
                same("group_id", Text),
                same("volume_type_id", Text),
                // Cinder's row ids keep the order the types were given;
                // the export inserts in that order.
                computed("type_position", Int(None), s.int("m.id")),
            ],
            child(
                "group_volume_type_mapping",
                "m",
                "\"groups\"",
                "g",
                "group_id",
            ),
        )
        .exporting("ORDER BY x.group_id, x.type_position")
        .child_of("group_id", "group"),
        Table::new(
            ("volume", "volumes", "volumes", "id"),
            stamped(texts(
                "id host status migration_status display_name display_description \
                     provider_location provider_auth provider_id volume_type_id snapshot_id \
                     source_volid encryption_key_id group_id replication_status \
                     previous_status cluster_name",
                vec![
                    same("user_id", TextOr("")),
                    same("project_id", TextOr("")),
                    same("size", Int(Some(0))),
                    same("availability_zone", TextOr("nova")),
                    same("attach_status", TextOr("detached")),
                    same("bootable", Bool(0)),
                    same("multiattach", Bool(0)),
                    // Consistency groups do not travel (Cinder's foreign key).
                    computed("consistencygroup_id", Text, "v.consistencygroup_id"),
                    // Cinder's foreign key: only the uuid of a service row
                    // that travels too.
                    same("service_uuid", Text).write(
                        "CASE WHEN x.service_uuid IN (SELECT uuid FROM services) \
                         THEN x.service_uuid END",
                    ),
                    same("shared_targets", Bool(1)),
                    same("use_quota", Bool(1)),
                    same("scheduled_at", Time),
                    same("launched_at", Time),
                    computed("_name_id", Text, "v._name_id"),
                ],
            )),
            own("volumes v", "v"),
        )
        .checked(check_volume),
        volume_metadata("volume metadata", "volume_metadata", "user"),
        volume_metadata("volume admin metadata", "volume_admin_metadata", "admin"),
        volume_metadata("volume image metadata", "volume_glance_metadata", "glance"),
        Table::new(
            ("attachment", "volume_attachment", "volume_attachment", "id"),
            stamped(texts(
                "id volume_id instance_uuid attached_host mountpoint attach_mode \
                     connection_info connector",
                vec![
                    same("attach_time", Time),
                    same("detach_time", Time),
                    same("attach_status", TextOr("detached")),
                ],
            )),
            child("volume_attachment", "a", "volumes", "v", "volume_id"),
        )
        .child_of("volume_id", "volume")
        .checked(|row| status::<AttachStatus>(row, "attach_status")),
        Table::new(
            ("group snapshot", "group_snapshots", "group_snapshots", "id"),
            stamped(vec![
                same("id", Text),
                same("group_id", Text),
                same("user_id", TextOr("")),
                same("project_id", TextOr("")),
                same("status", Text),
                col("display_name", "name", Text),
                col("display_description", "description", Text),
                same("group_type_id", GroupType),
            ]),
            child("group_snapshots", "x", "\"groups\"", "g", "group_id"),
        )
        .child_of("group_id", "group")
        .checked(|row| status::<GroupSnapshotStatus>(row, "status")),
        Table::new(
            ("snapshot", "snapshots", "snapshots", "id"),
            stamped(texts(
                "id volume_id status progress display_name display_description \
                     provider_location group_snapshot_id",
                vec![
                    same("user_id", TextOr("")),
                    same("project_id", TextOr("")),
                    same("volume_size", Int(Some(0))),
                    same("volume_type_id", Text)
                        .read("COALESCE(x.volume_type_id, v.volume_type_id)"),
                    same("use_quota", Bool(1)),
                ],
            )),
            child("snapshots", "x", "volumes", "v", "volume_id"),
        )
        .child_of("volume_id", "volume")
        .checked(|row| status::<SnapshotStatus>(row, "status")),
        metadata(
            "snapshot metadata",
            "snapshot_metadata",
            "snapshot_metadata",
            "snapshot_id",
            "snapshots",
            "snapshot",
        ),
        Table::new(
            ("transfer", "transfers", "transfers", "id"),
            stamped(texts(
                "id volume_id display_name source_project_id destination_project_id",
                vec![
                    same("salt", TextOr("")),
                    same("crypt_hash", TextOr("")),
                    same("no_snapshots", Bool(0)),
                    same("accepted", Bool(0)),
                ],
            )),
            child("transfers", "x", "volumes", "v", "volume_id"),
        )
        .child_of("volume_id", "volume"),
        // The image-volume cache: Cinder's rows have no `deleted` or
        // `created_at` column and a generated integer id (each side
        // numbers its own).
        Table::new(
            (
                "image-volume cache entry",
                "image_volume_cache_entries",
                "image_volume_cache_entries",
                "volume_id",
            ),
            vec![
                same("host", Text),
                same("cluster_name", Text),
                same("image_id", Text),
                same("image_updated_at", Time),
                same("volume_id", Text),
                same("size", Int(Some(0))),
                same("last_used", Created),
            ],
            format!(
                "image_volume_cache_entries x JOIN volumes v ON v.id = x.volume_id WHERE {}",
                live("v")
            ),
        )
        .without_bookkeeping()
        .child_of("volume_id", "volume"),
        Table::new(
            ("message", "messages", "messages", "id"),
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
            own("messages m", "m"),
        )
        .fixed(fix_message),
        quota("quota", "quotas", "project_id"),
        quota("quota class", "quota_classes", "class_name"),
        // Usage is recounted by the import; Cinder reads its counters.
        Table::new(
            ("quota usage", "quota_usages", "quota_usages", "resource"),
            vec![
                same("project_id", Text),
                same("resource", Text),
                same("in_use", Int(Some(0))),
                col("_reserved", "reserved", Int(Some(0))).constant(V::I(Some(0))),
                col("_race_preventer", "race_preventer", Bool(1)).constant(V::I(Some(1))),
            ],
            String::new(),
        )
        .export_only(),
        // A backup outlives its volume: no parent.
        Table::new(
            ("backup", "backups", "backups", "id"),
            stamped(texts(
                "id volume_id host availability_zone display_name display_description \
                     container status fail_reason service_metadata service parent_id \
                     snapshot_id restore_volume_id encryption_key_id",
                vec![
                    same("user_id", TextOr("")),
                    same("project_id", TextOr("")),
                    same("size", Int(Some(0))),
                    same("object_count", Int(Some(0))),
                    same("data_timestamp", Time),
                    // Clinker counts the dependents from `parent_id`.
                    col("_dependents", "num_dependent_backups", Int(Some(0)))
                        .write("(SELECT COUNT(*) FROM backups c WHERE c.parent_id = x.id)"),
                ],
            )),
            own("backups x", "x"),
        )
        .checked(|row| status::<BackupStatus>(row, "status"))
        .fixed(fix_backup),
        metadata(
            "backup metadata",
            "backup_metadata",
            "backup_metadata",
            "backup_id",
            "backups",
            "backup",
        ),
    ]
}
