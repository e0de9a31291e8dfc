//! What keeps the volume list, count and summary paths O(page) or O(1) at
//! 100,000 volumes in a project: the per-project counters of
//! `volume_counts` (migration 11), changed in the same transactions as the
//! rows they count, and MariaDB's hint to the list indexes.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::AnyConnection;

use crate::VolumeQuery;
use crate::batch::Batch;
use crate::error::DbError;
use crate::pool::{Db, Dialect};
use crate::query::{Arg, bind_all};

/// The indexes of the volume list (migration 11), one per supported sort
/// key. MariaDB's optimizer prefers walking the project's `ref` range in
/// index order and filtering it (a deep page reads every row before the
/// marker) over the range that starts at the marker; naming the indexes
/// makes it take the range, and still lets it choose among them (a status
/// filter takes `volumes_list_status`).
const VOLUME_LIST_INDEXES: &str = "volumes_list_created, volumes_list_name, volumes_list_status, \
     volumes_list_size, volumes_list_updated, volumes_list_id, volumes_all_created";

/// The `FROM` clause of a volume page query where it differs from
/// [`crate::rows::VOLUME_FROM`] (MariaDB: the index hint).
pub(crate) fn volume_page_from(dialect: Dialect) -> Option<String> {
    (dialect == Dialect::Mysql).then(|| {
        format!(
            "volumes v FORCE INDEX ({VOLUME_LIST_INDEXES}) \
             LEFT JOIN volume_types t ON t.id = v.volume_type_id"
        )
    })
}

/// The statement that adds `volumes` and `gigabytes` to a project's
/// counters, creating the row the first time: an upsert when volumes are
/// added, a plain update (a row lock, no gap lock on MariaDB) otherwise.
fn count_change(db: &Db, project: &str, volumes: i64, gigabytes: i64) -> (String, Vec<Arg>) {
    let args = vec![
        Arg::Text(project.to_owned()),
        Arg::Int(volumes),
        Arg::Int(gigabytes),
    ];
    if volumes <= 0 {
        return (
            "UPDATE volume_counts SET volumes = volumes + ?, gigabytes = gigabytes + ? \
             WHERE project_id = ?"
                .to_owned(),
            vec![Arg::Int(volumes), Arg::Int(gigabytes), args[0].clone()],
        );
    }
    let insert = "INSERT INTO volume_counts (project_id, volumes, gigabytes) VALUES (?, ?, ?)";
    let sql = match db.dialect() {
        Dialect::Sqlite | Dialect::Postgres => format!(
            "{insert} ON CONFLICT (project_id) DO UPDATE SET \
             volumes = volume_counts.volumes + excluded.volumes, \
             gigabytes = volume_counts.gigabytes + excluded.gigabytes"
        ),
        Dialect::Mysql => format!(
            "{insert} ON DUPLICATE KEY UPDATE volumes = volumes + VALUES(volumes), \
             gigabytes = gigabytes + VALUES(gigabytes)"
        ),
    };
    (sql, args)
}

impl Db {
    /// Adds the counter change of `volumes` volumes and `gigabytes` GB in
    /// `project` to a batch (run in the transaction that writes the rows).
    pub(crate) fn push_volume_count(
        &self,
        batch: &mut Batch,
        project: &str,
        volumes: i64,
        gigabytes: i64,
    ) {
        if volumes == 0 && gigabytes == 0 {
            return;
        }
        let (sql, args) = count_change(self, project, volumes, gigabytes);
        batch.push(self, sql, args);
    }

    /// [`Self::push_volume_count`] run at once on the caller's transaction.
    pub(crate) async fn change_volume_count(
        &self,
        conn: &mut AnyConnection,
        project: &str,
        volumes: i64,
        gigabytes: i64,
    ) -> Result<(), DbError> {
        let mut batch = Batch::new();
        self.push_volume_count(&mut batch, project, volumes, gigabytes);
        if !batch.is_empty() {
            batch.run(self, conn).await?;
        }
        Ok(())
    }

    /// Count and total size of a project's volumes (every project's with
    /// `None`) from the counters.
    pub(crate) async fn counted_volumes(
        &self,
        project: Option<&str>,
    ) -> Result<(i64, i64), DbError> {
        let mut sql = format!(
            "SELECT {}, {} FROM volume_counts",
            self.dialect.sum_int("volumes"),
            self.dialect.sum_int("gigabytes")
        );
        let mut args = Vec::new();
        if let Some(project) = project {
            sql.push_str(" WHERE project_id = ?");
            args.push(Arg::Text(project.to_owned()));
        }
        let sql = self.dynamic(sql);
        let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok((
            sqlx::Row::try_get::<i64, _>(&row, 0)?,
            sqlx::Row::try_get::<i64, _>(&row, 1)?,
        ))
    }

    /// The count of a volume list from the counters when the query has no
    /// filter but its project (and the migration targets hidden from
    /// non-administrators, counted apart through `volumes_migration`: only
    /// rows with a migration status are read). `None` when the query
    /// filters on more.
    pub(crate) async fn fast_volume_count(
        &self,
        query: &VolumeQuery,
    ) -> Result<Option<i64>, DbError> {
        if !query.metadata.is_empty()
            || !query.glance_metadata.is_empty()
            || !query.filters.is_empty()
        {
            return Ok(None);
        }
        let (count, _) = self.counted_volumes(query.project_id.as_deref()).await?;
        if !query.hide_migration_targets {
            return Ok(Some(count));
        }
        let mut sql = String::from(
            "SELECT COUNT(*) FROM volumes v WHERE v.migration_status IS NOT NULL \
             AND v.migration_status LIKE 'target:%'",
        );
        let mut args = Vec::new();
        if let Some(project) = &query.project_id {
            sql.push_str(" AND v.project_id = ?");
            args.push(Arg::Text(project.clone()));
        }
        let sql = self.dynamic(sql);
        let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok(Some(count - sqlx::Row::try_get::<i64, _>(&row, 0)?))
    }

    /// The distinct user metadata of a project's volumes: one row per
    /// distinct pair from the database, not every volume into memory.
    pub(crate) async fn distinct_volume_metadata(
        &self,
        project: Option<&str>,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, DbError> {
        let mut sql = String::from(
            "SELECT DISTINCT m.meta_key, m.meta_value FROM volume_metadata m \
             JOIN volumes v ON v.id = m.volume_id WHERE m.kind = 'user'",
        );
        let mut args = Vec::new();
        if let Some(project) = project {
            sql.push_str(" AND v.project_id = ?");
            args.push(Arg::Text(project.to_owned()));
        }
        let sql = self.dynamic(sql);
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?
        {
            let key: String = sqlx::Row::try_get(&row, 0)?;
            let value: String = sqlx::Row::try_get(&row, 1)?;
            out.entry(key).or_default().insert(value);
        }
        Ok(out)
    }

    /// Recounts every project's counters from the rows (after a bulk
    /// write: `clinker manage cinder import`), inside the caller's
    /// transaction.
    pub(crate) async fn recount_volume_counts(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<(), DbError> {
        sqlx::query("DELETE FROM volume_counts")
            .execute(&mut *conn)
            .await?;
        let sql = format!(
            "INSERT INTO volume_counts (project_id, volumes, gigabytes) \
             SELECT project_id, COUNT(*), {} FROM volumes GROUP BY project_id",
            self.dialect.sum_int("size")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
