//! Dynamic SQL for list queries: filters, sorting and keyset pagination,
//! shared by the lists of volumes, snapshots, groups, group snapshots and
//! attachments.

use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// A comparison in a list filter.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterValue {
    /// `= text`.
    Eq(String),
    /// `= integer`.
    EqInt(i64),
    /// `IN (…)`.
    In(Vec<String>),
    /// `IS NULL`.
    IsNull,
    /// Substring match (`name~=` since 3.34).
    Contains(String),
    /// `>`, `>=`, `<`, `<=`, `<>` on an integer (3.60 time comparisons).
    Compare(CompareOp, i64),
}

/// Comparison operators for [`FilterValue::Compare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `gt`.
    Gt,
    /// `gte`.
    Gte,
    /// `lt`.
    Lt,
    /// `lte`.
    Lte,
    /// `eq`.
    Eq,
    /// `neq`.
    Neq,
}

impl CompareOp {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            CompareOp::Gt => ">",
            CompareOp::Gte => ">=",
            CompareOp::Lt => "<",
            CompareOp::Lte => "<=",
            CompareOp::Eq => "=",
            CompareOp::Neq => "<>",
        }
    }
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// Paging shared by the list queries.
#[derive(Clone, Debug)]
pub struct Page<M> {
    /// Rows after this one (keyset pagination).
    pub marker: Option<M>,
    /// At most this many rows.
    pub limit: Option<u32>,
    /// Skip this many rows (after the marker).
    pub offset: Option<u32>,
}

impl<M> Default for Page<M> {
    fn default() -> Self {
        Self {
            marker: None,
            limit: None,
            offset: None,
        }
    }
}

/// A bound value of dynamic SQL.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Null,
}

/// Binds every argument in order.
pub(crate) fn bind_all<'q>(
    mut query: Query<'q, sqlx::Any, AnyArguments>,
    args: &'q [Arg],
) -> Query<'q, sqlx::Any, AnyArguments> {
    for arg in args {
        query = match arg {
            Arg::Text(t) => query.bind(t.as_str()),
            Arg::Int(i) => query.bind(*i),
            Arg::Null => query.bind(Option::<String>::None),
        };
    }
    query
}

/// `?, ?, ?` for `n` values.
pub(crate) fn placeholders(n: usize) -> String {
    let mut out = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('?');
    }
    out
}

/// Escapes `LIKE` wildcards with `!` (an escape character every engine
/// accepts without backslash quirks).
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Appends `AND <column> <op>` for one filter.
pub(crate) fn push_filter(
    sql: &mut String,
    args: &mut Vec<Arg>,
    column: &str,
    is_integer: bool,
    value: &FilterValue,
) {
    match value {
        FilterValue::Eq(text) if is_integer => match text.parse::<i64>() {
            Ok(n) => {
                sql.push_str(&format!(" AND {column} = ?"));
                args.push(Arg::Int(n));
            }
            // A non-numeric value for a numeric column matches nothing.
            Err(_) => sql.push_str(" AND 1 = 0"),
        },
        FilterValue::Eq(text) => {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(Arg::Text(text.clone()));
        }
        FilterValue::EqInt(n) => {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(Arg::Int(*n));
        }
        FilterValue::In(values) if values.is_empty() => sql.push_str(" AND 1 = 0"),
        FilterValue::In(values) => {
            sql.push_str(&format!(
                " AND {column} IN ({})",
                placeholders(values.len())
            ));
            for v in values {
                if is_integer {
                    args.push(v.parse::<i64>().map(Arg::Int).unwrap_or(Arg::Null));
                } else {
                    args.push(Arg::Text(v.clone()));
                }
            }
        }
        FilterValue::IsNull => sql.push_str(&format!(" AND {column} IS NULL")),
        FilterValue::Contains(needle) => {
            sql.push_str(&format!(" AND LOWER({column}) LIKE ? ESCAPE '!'"));
            args.push(Arg::Text(like_pattern(needle)));
        }
        FilterValue::Compare(op, n) => {
            sql.push_str(&format!(" AND {column} {} ?", op.sql()));
            args.push(Arg::Int(*n));
        }
    }
}

/// The sort key expression: nullable columns are coalesced so that ORDER BY
/// and the keyset comparison agree on every engine.
pub(crate) fn sort_expr(column: &str, is_integer: bool) -> String {
    if is_integer {
        format!("COALESCE({column}, 0)")
    } else {
        format!("COALESCE({column}, '')")
    }
}

/// Completes the sort keys as Cinder's `process_sort_params` does:
/// `created_at` and the id are appended when missing, in the direction of
/// the first key, so the order is total.
pub(crate) fn complete_sort<C: Copy + PartialEq>(
    mut sort: Vec<(C, SortDir)>,
    created_at: C,
    id: C,
) -> Vec<(C, SortDir)> {
    if sort.is_empty() {
        sort.push((created_at, SortDir::Desc));
    }
    let default_dir = sort[0].1;
    if !sort.iter().any(|(c, _)| *c == created_at) {
        sort.push((created_at, default_dir));
    }
    if !sort.iter().any(|(c, _)| *c == id) {
        sort.push((id, default_dir));
    }
    sort
}

/// `ORDER BY` clause for sort expressions.
pub(crate) fn order_by(keys: &[(String, SortDir)]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .map(|(expr, dir)| {
            format!(
                "{expr} {}",
                if *dir == SortDir::Asc { "ASC" } else { "DESC" }
            )
        })
        .collect();
    format!(" ORDER BY {}", parts.join(", "))
}

/// The keyset condition "after the marker row" for sort expressions whose
/// marker values are `marker`, in the form each engine turns into an index
/// range that starts at the marker (so a deep page costs what the first
/// does):
/// - one direction on SQLite and PostgreSQL: the row-value comparison
///   `(k1, k2, k3) > (m1, m2, m3)`, which both seek to directly;
/// - otherwise (MariaDB, whose range optimizer ignores row values; mixed
///   directions) the expansion of [`keyset_condition`] behind the bound
///   `k1 >= m1` (`<=` descending), which every engine seeks to.
pub(crate) fn keyset_range(
    dialect: crate::Dialect,
    keys: &[(String, SortDir)],
    marker: &[Arg],
    args: &mut Vec<Arg>,
) -> String {
    let one_direction = keys.iter().all(|(_, d)| *d == keys[0].1);
    if one_direction && dialect != crate::Dialect::Mysql {
        let exprs: Vec<&str> = keys.iter().map(|(e, _)| e.as_str()).collect();
        args.extend(marker.iter().cloned());
        let op = if keys[0].1 == SortDir::Asc { ">" } else { "<" };
        return format!(
            " AND ({}) {op} ({})",
            exprs.join(", "),
            placeholders(keys.len())
        );
    }
    let op = if keys[0].1 == SortDir::Asc {
        ">="
    } else {
        "<="
    };
    args.push(marker[0].clone());
    let bound = format!(" AND {} {op} ?", keys[0].0);
    bound + &keyset_condition(keys, marker, args)
}

/// The keyset condition "after the marker row" for sort expressions whose
/// marker values are `marker`:
/// `(k1 > m1) OR (k1 = m1 AND k2 > m2) OR …` with `<` for descending keys.
pub(crate) fn keyset_condition(
    keys: &[(String, SortDir)],
    marker: &[Arg],
    args: &mut Vec<Arg>,
) -> String {
    let mut ors = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        let mut ands = Vec::with_capacity(i + 1);
        for (j, (expr, _)) in keys.iter().enumerate().take(i) {
            ands.push(format!("{expr} = ?"));
            args.push(marker[j].clone());
        }
        let (expr, dir) = &keys[i];
        let op = if *dir == SortDir::Asc { ">" } else { "<" };
        ands.push(format!("{expr} {op} ?"));
        args.push(marker[i].clone());
        ors.push(format!("({})", ands.join(" AND ")));
    }
    format!(" AND ({})", ors.join(" OR "))
}

/// Decodes the marker row's sort values.
pub(crate) fn marker_args(
    row: &sqlx::any::AnyRow,
    integer_flags: &[bool],
) -> Result<Vec<Arg>, crate::DbError> {
    use sqlx::Row;
    integer_flags
        .iter()
        .enumerate()
        .map(|(i, is_int)| {
            if *is_int {
                row.try_get::<i64, _>(i).map(Arg::Int)
            } else {
                row.try_get::<String, _>(i).map(Arg::Text)
            }
            .map_err(|e| crate::DbError::Internal(format!("marker value: {e}")))
        })
        .collect()
}

/// `LIMIT ? OFFSET ?` (every engine accepts this form with both values).
pub(crate) fn push_limit(
    sql: &mut String,
    args: &mut Vec<Arg>,
    limit: Option<u32>,
    offset: Option<u32>,
) {
    sql.push_str(" LIMIT ? OFFSET ?");
    args.push(Arg::Int(limit.map_or(i64::from(i32::MAX), i64::from)));
    args.push(Arg::Int(offset.map_or(0, i64::from)));
}

/// A column a paginated list may be sorted by; the order is completed with
/// `CREATED_AT` and `ID` (Cinder's `process_sort_params`).
pub(crate) trait SortColumn: Copy + PartialEq {
    const CREATED_AT: Self;
    const ID: Self;
    /// The column in SQL, with its table alias.
    fn sql(self) -> &'static str;
    /// Whether the column holds integers (timestamps, sizes, flags).
    fn is_integer(self) -> bool;
    /// The column's NOT NULL sort key when it has one (the column itself,
    /// or the generated column that coalesces it, which the list indexes
    /// hold); `None` sorts by the coalesced column, which no index holds.
    fn sort_sql(self) -> Option<&'static str> {
        None
    }
    /// The sort expression: [`Self::sort_sql`], else the coalesced column.
    fn sort_key(self) -> String {
        self.sort_sql()
            .map_or_else(|| sort_expr(self.sql(), self.is_integer()), str::to_owned)
    }
}

/// Implements [`SortColumn`] for column enums with `CreatedAt` and `Id`
/// variants and inherent `sql` and `is_integer` methods (and `sort_sql`,
/// when named after `=>`).
macro_rules! sort_column {
    ($($column:ty $(=> $sort_sql:ident)?),* $(,)?) => {$(
        impl $crate::query::SortColumn for $column {
            const CREATED_AT: Self = <$column>::CreatedAt;
            const ID: Self = <$column>::Id;
            fn sql(self) -> &'static str {
                <$column>::sql(self)
            }
            fn is_integer(self) -> bool {
                <$column>::is_integer(self)
            }
            $(fn sort_sql(self) -> Option<&'static str> {
                <$column>::$sort_sql(self)
            })?
        }
    )*};
}
pub(crate) use sort_column;

sort_column!(
    crate::VolumeColumn => sort_sql,
    crate::SnapshotColumn => sort_sql,
    crate::groups::GroupColumn,
    crate::groups::GroupSnapshotColumn,
);

/// The table side of a keyset-paginated list: what the marker lookup and
/// the page query need to know of it.
pub(crate) struct ListTable<'a> {
    /// The selected columns.
    pub columns: &'a str,
    /// The `FROM` clause (the table with its alias, and any joins).
    pub from: &'a str,
    /// The id column, with its alias (`v.id`).
    pub id: &'a str,
    /// The project column, with its alias (`v.project_id`).
    pub project: &'a str,
}

impl crate::Db {
    /// One page of a list: `SELECT columns FROM from` with the caller's
    /// `WHERE` clause (`where_sql`, starting with ` WHERE`, and its
    /// `args`), ordered by `sort` completed to a total order, and continued
    /// after `page.marker`, which must be a row of `project` when one is
    /// given (a marker the caller may not see is "not found", as Cinder
    /// says).
    pub(crate) async fn fetch_page<C: SortColumn, M: std::fmt::Display>(
        &self,
        table: &ListTable<'_>,
        where_sql: &str,
        args: Vec<Arg>,
        sort: &[(C, SortDir)],
        project: Option<&str>,
        page: &crate::Page<M>,
    ) -> Result<Vec<sqlx::any::AnyRow>, crate::DbError> {
        self.fetch_page_from(table, None, where_sql, args, sort, project, page)
            .await
    }

    /// [`Self::fetch_page`] with the page query reading `page_from`
    /// instead of `table.from` (MariaDB's index hints, which must not
    /// reach the marker lookup by id).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch_page_from<C: SortColumn, M: std::fmt::Display>(
        &self,
        table: &ListTable<'_>,
        page_from: Option<&str>,
        where_sql: &str,
        args: Vec<Arg>,
        sort: &[(C, SortDir)],
        project: Option<&str>,
        page: &crate::Page<M>,
    ) -> Result<Vec<sqlx::any::AnyRow>, crate::DbError> {
        let (sql, args) = self
            .page_query(table, page_from, where_sql, args, sort, project, page)
            .await?;
        Ok(
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .fetch_all(&mut *self.reader().await?)
                .await?,
        )
    }

    /// The page query of [`Self::fetch_page_from`] with its arguments (the
    /// marker row is read to build it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn page_query<C: SortColumn, M: std::fmt::Display>(
        &self,
        table: &ListTable<'_>,
        page_from: Option<&str>,
        where_sql: &str,
        mut args: Vec<Arg>,
        sort: &[(C, SortDir)],
        project: Option<&str>,
        page: &crate::Page<M>,
    ) -> Result<(String, Vec<Arg>), crate::DbError> {
        let sort = complete_sort(sort.to_vec(), C::CREATED_AT, C::ID);
        let keys: Vec<(String, SortDir)> = sort
            .iter()
            .map(|(column, dir)| (column.sort_key(), *dir))
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {}{where_sql}",
            table.columns,
            page_from.unwrap_or(table.from)
        );
        if let Some(marker) = &page.marker {
            let exprs: Vec<&str> = keys.iter().map(|(e, _)| e.as_str()).collect();
            let mut marker_sql = format!(
                "SELECT {} FROM {} WHERE {} = ?",
                exprs.join(", "),
                table.from,
                table.id
            );
            let mut lookup_args = vec![Arg::Text(marker.to_string())];
            if let Some(project) = project {
                marker_sql.push_str(&format!(" AND {} = ?", table.project));
                lookup_args.push(Arg::Text(project.to_owned()));
            }
            let marker_sql = self.dynamic(marker_sql);
            let row = bind_all(
                sqlx::query(sqlx::AssertSqlSafe(marker_sql.as_str())),
                &lookup_args,
            )
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| crate::DbError::not_found("marker", marker))?;
            let flags: Vec<bool> = sort.iter().map(|(c, _)| c.is_integer()).collect();
            let values = marker_args(&row, &flags)?;
            sql.push_str(&keyset_range(self.dialect, &keys, &values, &mut args));
        }
        sql.push_str(&order_by(&keys));
        push_limit(&mut sql, &mut args, page.limit, page.offset);
        Ok((self.dynamic(sql), args))
    }

    /// The engine's plan of a query, one line per step: SQLite's `EXPLAIN
    /// QUERY PLAN` details; PostgreSQL's `EXPLAIN` with sequential scans
    /// and sorts priced out (so the plan is the one a large table gets:
    /// an index walk wherever an index gives the order); MariaDB's
    /// `EXPLAIN` rows as `table type key Extra`. Used by the conformance
    /// suite's plan checks.
    #[cfg(any(test, feature = "testsuite"))]
    pub(crate) async fn explain(
        &self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<String>, crate::DbError> {
        use sqlx::{Executor, Row};
        let mut conn = self.reader().await?;
        let prefix = match self.dialect {
            crate::Dialect::Sqlite => "EXPLAIN QUERY PLAN ",
            crate::Dialect::Postgres | crate::Dialect::Mysql => "EXPLAIN ",
        };
        if self.dialect == crate::Dialect::Postgres {
            conn.execute("SET enable_seqscan = off").await?;
            conn.execute("SET enable_sort = off").await?;
        }
        let explain = format!("{prefix}{sql}");
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(explain.as_str())), args)
            .fetch_all(&mut *conn)
            .await;
        if self.dialect == crate::Dialect::Postgres {
            conn.execute("RESET enable_seqscan").await?;
            conn.execute("RESET enable_sort").await?;
        }
        rows?
            .iter()
            .map(|row| {
                Ok(match self.dialect {
                    crate::Dialect::Sqlite => row.try_get::<String, _>(3)?,
                    crate::Dialect::Postgres => row.try_get::<String, _>(0)?,
                    crate::Dialect::Mysql => {
                        let text = |name: &str| {
                            row.try_get::<Option<String>, _>(name)
                                .ok()
                                .flatten()
                                .unwrap_or_default()
                        };
                        format!(
                            "{} {} {} {}",
                            text("table"),
                            text("type"),
                            text("key"),
                            text("Extra")
                        )
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_condition_expands_lexicographically() {
        let keys = vec![
            ("a".to_owned(), SortDir::Asc),
            ("id".to_owned(), SortDir::Desc),
        ];
        let mut args = Vec::new();
        let sql = keyset_condition(&keys, &[Arg::Int(1), Arg::Text("x".into())], &mut args);
        assert_eq!(sql, " AND ((a > ?) OR (a = ? AND id < ?))");
        assert_eq!(args, vec![Arg::Int(1), Arg::Int(1), Arg::Text("x".into())]);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("A_b%c!"), "%a!_b!%c!!%");
    }

    #[test]
    fn sort_is_completed_like_cinder() {
        let s = complete_sort(vec![("name", SortDir::Asc)], "created_at", "id");
        assert_eq!(
            s,
            vec![
                ("name", SortDir::Asc),
                ("created_at", SortDir::Asc),
                ("id", SortDir::Asc)
            ]
        );
        let s = complete_sort(Vec::new(), "created_at", "id");
        assert_eq!(
            s,
            vec![("created_at", SortDir::Desc), ("id", SortDir::Desc)]
        );
    }
}
