//! The volume list at scale: every supported order is an index walk from
//! the marker (checked on each engine's own plan), and the counters behind
//! `volumes/summary` and `with_count` equal a count of the rows through
//! every path that adds, removes, resizes or moves volumes.

use super::*;
use crate::query::Arg;

/// Asserts that a plan walks `index` in the query's order: no sort of the
/// matching rows, and (MariaDB, after a marker) a range that starts there.
/// In the default order the index of every project's volumes gives the
/// same order, and a planner may take it for a table this small.
fn assert_walks(dialect: Dialect, plan: &[String], index: &str, after_marker: bool, what: &str) {
    let text = plan.join("\n");
    let index = if index == "volumes_list_created"
        && text.contains("volumes_all_created")
        && !text.contains(index)
    {
        "volumes_all_created"
    } else {
        // `a|b`: either index gives the order; the first the plan names.
        let mut choices = index.split('|');
        let first = choices.next().unwrap_or(index);
        std::iter::once(first)
            .chain(choices)
            .find(|i| text.contains(i))
            .unwrap_or(first)
    };
    match dialect {
        Dialect::Sqlite => {
            assert!(
                plan.iter().any(|l| l.contains(&format!("INDEX {index} "))),
                "{what}: SQLite does not walk {index}:\n{text}"
            );
            assert!(
                !text.contains("TEMP B-TREE FOR ORDER BY"),
                "{what}: SQLite sorts:\n{text}"
            );
        }
        Dialect::Postgres => {
            assert!(
                plan.iter()
                    .any(|l| l.contains(&format!(" using {index} on "))),
                "{what}: PostgreSQL does not walk {index}:\n{text}"
            );
            assert!(
                !text.contains("Sort  ("),
                "{what}: PostgreSQL sorts:\n{text}"
            );
        }
        Dialect::Mysql => {
            let line = plan
                .iter()
                .find(|l| l.starts_with("v "))
                .unwrap_or_else(|| panic!("{what}: no row for v:\n{text}"));
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields[2], index, "{what}: MariaDB's key:\n{text}");
            assert!(!line.contains("filesort"), "{what}: MariaDB sorts:\n{text}");
            // On a table this small MariaDB may take the project's `ref`
            // with the marker as an index condition; at scale the hint
            // makes it a `range` from the marker (clinker-bench --scale).
            if after_marker {
                assert!(
                    matches!(fields[1], "range" | "ref"),
                    "{what}: MariaDB's access:\n{text}"
                );
            }
        }
    }
}

async fn plan_of(db: &Db, query: &VolumeQuery) -> Vec<String> {
    let (sql, args): (String, Vec<Arg>) = db.volume_page_query(query).await.unwrap();
    db.explain(&sql, &args).await.unwrap()
}

pub async fn volume_lists_walk_indexes(db: &Db) {
    let type_id = default_type(db).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut new = new_volume("scale", 1 + i, type_id);
        new.display_name = (i % 2 == 1).then(|| format!("v{i}"));
        ids.push(db.create_volume(new).await.unwrap().id);
    }
    let dialect = db.dialect();
    let orders = [
        (VolumeColumn::CreatedAt, "volumes_list_created"),
        (VolumeColumn::DisplayName, "volumes_list_name"),
        (VolumeColumn::Status, "volumes_list_status"),
        (VolumeColumn::Size, "volumes_list_size"),
        (VolumeColumn::UpdatedAt, "volumes_list_updated"),
        (VolumeColumn::Id, "volumes_list_id"),
    ];
    for (column, index) in orders {
        for dir in [SortDir::Asc, SortDir::Desc] {
            for marker in [None, Some(ids[3])] {
                let query = VolumeQuery {
                    project_id: Some("scale".into()),
                    sort: vec![(column, dir)],
                    page: Page {
                        marker,
                        limit: Some(1000),
                        offset: None,
                    },
                    hide_migration_targets: true,
                    ..VolumeQuery::default()
                };
                let what = format!("{column:?} {dir:?} marker={}", marker.is_some());
                assert_walks(
                    dialect,
                    &plan_of(db, &query).await,
                    index,
                    marker.is_some(),
                    &what,
                );
                // The page continues the full order right after the marker.
                let page: Vec<VolumeId> = db
                    .list_volumes(&query)
                    .await
                    .unwrap()
                    .iter()
                    .map(|v| v.id)
                    .collect();
                let all: Vec<VolumeId> = db
                    .list_volumes(&VolumeQuery {
                        page: Page::default(),
                        ..query.clone()
                    })
                    .await
                    .unwrap()
                    .iter()
                    .map(|v| v.id)
                    .collect();
                assert_eq!(all.len(), 6, "{what}");
                let after = marker.map_or(0, |m| all.iter().position(|id| *id == m).unwrap() + 1);
                assert_eq!(page, all[after..], "{what}");
            }
        }
    }
    // A page after the marker `ids[3]` in the default order (no sort key).
    let after_marker = |project_id: Option<&str>, filters| VolumeQuery {
        project_id: project_id.map(str::to_owned),
        filters,
        page: Page {
            marker: Some(ids[3]),
            limit: Some(1000),
            offset: None,
        },
        ..VolumeQuery::default()
    };
    // With a status filter.
    let query = after_marker(
        Some("scale"),
        vec![(VolumeColumn::Status, FilterValue::Eq("creating".into()))],
    );
    assert_walks(
        dialect,
        &plan_of(db, &query).await,
        // The project's status index; with every row in one status (as
        // here) a planner may walk the created-at order and filter.
        "volumes_list_status|volumes_list_created|volumes_all_created",
        true,
        "status filter",
    );
    assert_eq!(db.list_volumes(&query).await.unwrap().len(), 3);
    // Every project.
    let query = after_marker(None, Vec::new());
    assert_walks(
        dialect,
        &plan_of(db, &query).await,
        "volumes_all_created",
        true,
        "all projects",
    );
    // A metadata filter is driven by the matching metadata rows.
    let query = VolumeQuery {
        project_id: Some("scale".into()),
        metadata: vec![("k".into(), "v".into())],
        ..VolumeQuery::default()
    };
    let plan = plan_of(db, &query).await.join("\n");
    // MariaDB's optimizer joins a table this small from the volumes side
    // (its plan at 100,000 rows is what `clinker-bench --scale` measures).
    if dialect != Dialect::Mysql {
        assert!(
            plan.contains("volume_metadata_value"),
            "metadata filter does not use volume_metadata_value:\n{plan}"
        );
    }
    assert_eq!(db.list_volumes(&query).await.unwrap().len(), 6);
}

/// The counters equal a count of the rows, for every project.
async fn assert_counts_match(db: &Db) {
    let counted: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT project_id, COUNT(*), {} FROM volumes GROUP BY project_id ORDER BY project_id",
        db.dialect().sum_int("size")
    )))
    .fetch_all(&mut *db.reader().await.unwrap())
    .await
    .unwrap();
    for (project, n, gb) in &counted {
        assert_eq!(
            db.volume_summary(Some(project)).await.unwrap(),
            (*n, *gb),
            "counters of {project}"
        );
    }
    let total = counted
        .iter()
        .fold((0, 0), |(n, g), (_, a, b)| (n + a, g + b));
    assert_eq!(db.volume_summary(None).await.unwrap(), total);
}

pub async fn volume_counters_follow_rows(db: &Db) {
    let type_id = default_type(db).await;
    assert_eq!(db.volume_summary(Some("c1")).await.unwrap(), (0, 0));
    let mut ids = Vec::new();
    for size in [1, 2, 3] {
        let id = db
            .create_volume(new_volume("c1", size, type_id))
            .await
            .unwrap()
            .id;
        place(db, id, size).await;
        db.finish_volume_create(id, ProviderUpdate::default())
            .await
            .unwrap();
        ids.push(id);
    }
    db.create_volume(new_volume("c2", 5, type_id))
        .await
        .unwrap();
    assert_counts_match(db).await;
    assert_eq!(db.volume_summary(Some("c1")).await.unwrap(), (3, 6));
    let unfiltered = VolumeQuery {
        project_id: Some("c1".into()),
        hide_migration_targets: true,
        ..VolumeQuery::default()
    };
    assert_eq!(db.count_volumes(&unfiltered).await.unwrap(), 3);
    // A filtered count counts the rows.
    let filtered = VolumeQuery {
        filters: vec![(VolumeColumn::Size, FilterValue::Eq("2".into()))],
        ..unfiltered.clone()
    };
    assert_eq!(db.count_volumes(&filtered).await.unwrap(), 1);

    // Extend: the size grows when the extend finishes.
    db.begin_volume_extend(ids[0], 10, false).await.unwrap();
    assert_counts_match(db).await;
    db.finish_volume_extend(ids[0], 10).await.unwrap();
    assert_eq!(db.volume_summary(Some("c1")).await.unwrap(), (3, 15));
    assert_counts_match(db).await;

    // A migration target is counted by the summary (as Cinder's), not by
    // a non-administrator's list count.
    sqlx::query(db.q("UPDATE volumes SET migration_status = ? WHERE id = ?"))
        .bind(format!("target:{}", ids[2]))
        .bind(ids[1].to_string())
        .execute(&mut *db.writer().await.unwrap())
        .await
        .unwrap();
    assert_eq!(db.count_volumes(&unfiltered).await.unwrap(), 2);
    let admin = VolumeQuery {
        hide_migration_targets: false,
        ..unfiltered.clone()
    };
    assert_eq!(db.count_volumes(&admin).await.unwrap(), 3);
    assert_eq!(
        db.count_volumes(&unfiltered).await.unwrap() as usize,
        db.list_volumes(&unfiltered).await.unwrap().len()
    );

    // Delete.
    db.begin_volume_delete(ids[2], DeleteOptions::default())
        .await
        .unwrap();
    db.finish_volume_delete(ids[2]).await.unwrap();
    assert_eq!(db.volume_summary(Some("c1")).await.unwrap(), (2, 12));
    assert_counts_match(db).await;

    // Transfer moves the volume's count and size to the taker.
    let transfer = db
        .create_transfer(NewTransfer {
            id: clinker_types::TransferId::new_random(),
            volume_id: ids[0],
            display_name: Some("t".into()),
            salt: "s".into(),
            crypt_hash: "h".into(),
            no_snapshots: true,
        })
        .await
        .unwrap();
    db.accept_transfer(
        transfer.id,
        &TransferAcceptor {
            user_id: "u2".into(),
            project_id: "c3".into(),
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(db.volume_summary(Some("c1")).await.unwrap(), (1, 2));
    assert_eq!(db.volume_summary(Some("c3")).await.unwrap(), (1, 10));
    assert_counts_match(db).await;

    // A recount (after a bulk import) gives the same counters.
    let mut conn = db.writer().await.unwrap();
    db.recount_volume_counts(&mut conn).await.unwrap();
    drop(conn);
    assert_counts_match(db).await;
}
