//! The database conformance suite: one set of checks every engine must
//! pass, instantiated for SQLite, PostgreSQL and MariaDB by the tests in
//! `tests/conformance.rs` (and available to other crates with the
//! `testsuite` feature).
//!
//! [`TestDatabase::open`] gives each run a fresh database with a random name
//! on the server and drops it afterwards. Servers come from
//! `CLINKER_TEST_POSTGRES_URL` / `CLINKER_TEST_MYSQL_URL` (defaults: the
//! development machine's local servers). Under `CI=true` an unreachable
//! server fails the run; elsewhere it is skipped with a message.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use clinker_types::status::{SnapshotTransition, VolumeTransition};
use clinker_types::{MessageId, SnapshotId, SnapshotStatus, Timestamp, VolumeId, VolumeStatus};

use crate::*;

mod attachments;
pub use attachments::{
    attachment_lifecycle, concurrent_attachment_creates_reserve_once, legacy_attach_actions,
    multiattach_and_failed_attachments,
};
mod backups;
pub use backups::{
    backup_lifecycle_keeps_quota_and_status, backup_temporaries_and_restores_into_new_volumes,
    snapshot_backups_and_imports,
};
mod groups;
pub use groups::{
    group_lifecycle_keeps_quota_and_journal, group_lists_filter_sort_and_paginate,
    group_snapshots_and_groups_from_sources, group_types_specs_and_access,
};
mod image_cache;
pub use image_cache::image_cache_entries_follow_their_volumes;
mod manage;
pub use manage::{manage_and_unmanage_snapshots, manage_and_unmanage_volumes};
mod surface;
pub use surface::*;
mod migration;
pub use migration::migration_moves_backing_type_quota_and_claims;
mod pressure;
pub use pressure::{HeldConnections, LimitedRole, connection_limits_are_unavailable};
mod scale;
pub use scale::{volume_counters_follow_rows, volume_lists_walk_indexes};

/// A throw-away database on one engine.
#[derive(Debug)]
pub struct TestDatabase {
    pub db: Db,
    /// The connection URL other processes can use (cinder.conf form).
    pub url: String,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A directory removed on drop (no dependency on `tempfile` outside tests).
    #[derive(Debug)]
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Which engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn random_name() -> String {
    format!(
        "clinker_test_{}",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..12)
            .unwrap_or("x")
    )
}

impl TestDatabase {
    /// Opens a fresh, migrated database, or `None` (after printing why) when
    /// the engine's server is unreachable outside CI.
    ///
    /// # Panics
    /// Under `CI=true` when the server cannot be reached.
    pub async fn open(engine: Engine) -> Option<Self> {
        Self::open_with(engine, QuotaDefaults::default()).await
    }

    /// As [`TestDatabase::open`] with chosen quota defaults.
    pub async fn open_with(engine: Engine, quota_defaults: QuotaDefaults) -> Option<Self> {
        let test = Self::open_unmigrated(engine, quota_defaults).await?;
        test.db.migrate("__DEFAULT__").await.unwrap();
        Some(test)
    }

    /// Runs a script of several statements (a database dump) on it.
    ///
    /// # Panics
    /// A statement fails.
    pub async fn execute_script(&self, script: &str) {
        let mut conn = self.db.writer().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()))
            .execute(&mut *conn)
            .await
            .unwrap();
    }

    /// As [`TestDatabase::open_with`], without Clinker's schema (an empty
    /// database, e.g. to load another program's dump into).
    pub async fn open_unmigrated(engine: Engine, quota_defaults: QuotaDefaults) -> Option<Self> {
        match engine {
            Engine::Sqlite => {
                let dir = std::env::temp_dir().join(random_name());
                std::fs::create_dir_all(&dir).unwrap();
                let url = format!("sqlite:///{}/clinker.sqlite", dir.display());
                let mut options = DbOptions::new(url.clone());
                options.quota_defaults = quota_defaults;
                let db = Db::connect(&options).await.unwrap();
                Some(Self {
                    db,
                    url,
                    cleanup: None,
                    _dir: Some(tempfile_dir::TempDir(dir)),
                })
            }
            Engine::Postgres | Engine::Mysql => {
                let (var, default_admin) = if engine == Engine::Postgres {
                    (
                        "CLINKER_TEST_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/postgres",
                    )
                } else {
                    ("CLINKER_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
                };
                let admin_url = std::env::var(var).unwrap_or_else(|_| default_admin.to_owned());
                let admin = match Db::connect(&DbOptions::new(admin_url.clone())).await {
                    Ok(db) => db,
                    Err(e) => {
                        if in_ci() {
                            panic!(
                                "{engine:?} at {admin_url} is required under CI=true but unreachable: {e}"
                            );
                        }
                        eprintln!(
                            "skipping {engine:?} conformance: {admin_url} unreachable ({e}); set {var}"
                        );
                        return None;
                    }
                };
                let name = random_name();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut *admin.writer().await.unwrap())
                    .await
                    .unwrap();
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap();
                let url = format!("{base}/{name}");
                let mut options = DbOptions::new(url.clone());
                options.quota_defaults = quota_defaults;
                let db = Db::connect(&options).await.unwrap();
                admin.close().await;
                Some(Self {
                    db,
                    url,
                    cleanup: Some((admin_url, name)),
                    _dir: None,
                })
            }
        }
    }

    /// Drops the server-side database.
    pub async fn drop_database(self) {
        self.db.close().await;
        if let Some((admin_url, name)) = &self.cleanup
            && let Ok(admin) = Db::connect(&DbOptions::new(admin_url.clone())).await
        {
            let force = if admin.dialect() == Dialect::Postgres {
                " WITH (FORCE)"
            } else {
                ""
            };
            if let Ok(mut conn) = admin.writer().await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name}{force}"
                )))
                .execute(&mut *conn)
                .await;
            }
            admin.close().await;
        }
    }
}

/// Every check of the suite that takes a fresh [`Db`], named once:
/// `conformance_checks!(m, args…)` expands to `m! { (args…) check, … }`.
/// `tests/conformance.rs` makes one test per engine and check from it, so
/// one failing check does not hide the others.
#[macro_export]
macro_rules! conformance_checks {
    ($m:ident $(, $arg:tt)*) => {
        $m! {
            ($($arg)*)
            migrations_are_idempotent,
            volume_lifecycle_keeps_quota_and_journal,
            quota_refusal_changes_nothing,
            delete_rules,
            placement_claims_respect_capacity,
            list_filters_sort_and_paginate,
            snapshot_lifecycle,
            extend_lifecycle,
            volume_types,
            services_and_heartbeats,
            messages,
            concurrent_creates_never_exceed_quota,
            concurrent_claims_never_overcommit,
            attachment_lifecycle,
            multiattach_and_failed_attachments,
            legacy_attach_actions,
            concurrent_attachment_creates_reserve_once,
            group_types_specs_and_access,
            group_lifecycle_keeps_quota_and_journal,
            group_snapshots_and_groups_from_sources,
            group_lists_filter_sort_and_paginate,
            qos_specs_lifecycle,
            transfers_move_ownership_and_quota,
            type_encryption_and_volume_keys,
            project_default_types,
            revert_lifecycle,
            retype_moves_type_and_quota,
            migration_moves_backing_type_quota_and_claims,
            manage_and_unmanage_volumes,
            manage_and_unmanage_snapshots,
            backup_lifecycle_keeps_quota_and_status,
            snapshot_backups_and_imports,
            backup_temporaries_and_restores_into_new_volumes,
            volume_lists_walk_indexes,
            volume_counters_follow_rows,
            image_cache_entries_follow_their_volumes,
        }
    };
}

/// Runs `check` on a fresh database of `engine` and drops the database;
/// nothing when the engine's server is unreachable outside CI.
pub async fn run_check(engine: Engine, check: impl AsyncFnOnce(&TestDatabase)) {
    let Some(t) = TestDatabase::open(engine).await else {
        return;
    };
    check(&t).await;
    t.drop_database().await;
}

pub fn new_volume(project: &str, size: i64, type_id: clinker_types::VolumeTypeId) -> NewVolume {
    NewVolume {
        id: VolumeId::new_random(),
        user_id: "u1".into(),
        project_id: project.into(),
        size,
        availability_zone: "nova".into(),
        display_name: Some("vol".into()),
        display_description: None,
        volume_type_id: type_id,
        volume_type_name: "__DEFAULT__".into(),
        snapshot_id: None,
        source_volid: None,
        multiattach: false,
        bootable: false,
        group_id: None,
        use_quota: true,
        metadata: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        glance_metadata: BTreeMap::new(),
        request_spec: None,
    }
}

async fn default_type(db: &Db) -> clinker_types::VolumeTypeId {
    db.get_volume_type_by_name("__DEFAULT__").await.unwrap().id
}

async fn assert_usage_matches_recount(db: &Db, project: &str) {
    let counters: BTreeMap<String, i64> = db
        .quota_usages(project)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    let recount: BTreeMap<String, i64> = db
        .recount_usages(project)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    assert_eq!(counters, recount, "quota usage drifted from a recount");
    let allocations: BTreeMap<String, i64> = db
        .pool_allocations()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    // A volume being managed holds no capacity until its size is known.
    let recount: BTreeMap<String, i64> = db
        .recount_pool_allocations()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    assert_eq!(
        allocations, recount,
        "pool allocations drifted from a recount"
    );
}

async fn place(db: &Db, id: VolumeId, size: i64) {
    assert_eq!(
        db.claim_volume_placement(id, "node1@file#file", size, 1_000_000)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
}

pub async fn migrations_are_idempotent(db: &Db) {
    assert_eq!(db.migrate("__DEFAULT__").await.unwrap(), Vec::<i64>::new());
    assert_eq!(db.schema_version().await.unwrap(), latest_version());
    let types = db.list_volume_types(None, None).await.unwrap();
    assert_eq!(types.iter().filter(|t| t.name == "__DEFAULT__").count(), 1);
    db.ping().await.unwrap();
}

pub async fn volume_lifecycle_keeps_quota_and_journal(db: &Db) {
    let type_id = default_type(db).await;
    let new = new_volume("p1", 3, type_id);
    let id = new.id;
    let v = db.create_volume(new).await.unwrap();
    assert_eq!(v.status, VolumeStatus::Creating);
    assert_eq!(v.volume_type_name.as_deref(), Some("__DEFAULT__"));
    assert_eq!(v.metadata.get("k").map(String::as_str), Some("v"));
    assert_eq!(
        db.quota_usages("p1").await.unwrap().get("gigabytes"),
        Some(&3)
    );
    assert_usage_matches_recount(db, "p1").await;
    // Unplaced create is journaled without a backend.
    let unplaced = db.unplaced_journal(Timestamp(i64::MAX)).await.unwrap();
    assert!(
        unplaced
            .iter()
            .any(|j| j.resource_id == id.to_string() && j.status == "creating")
    );
    // A create's request travels with its journal row, through placement,
    // so a create whose cast was lost keeps its source; rows written
    // without one have none.
    assert_eq!(
        db.journal_request_spec(&id.to_string()).await.unwrap(),
        None
    );
    let mut sourced = new_volume("p1", 1, type_id);
    let spec = clinker_types::request_spec::RequestSpec {
        volume_id: sourced.id,
        size: 1,
        availability_zone: Some("nova".into()),
        availability_zones: Vec::new(),
        volume_type: clinker_types::request_spec::TypeSpec {
            id: Some(type_id),
            name: Some("__DEFAULT__".into()),
            extra_specs: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        },
        snapshot_id: None,
        source_volid: None,
        image_id: Some("0b9c5b3e-3f0e-4f8a-9d8e-1d2c3b4a5f60".into()),
        backup_id: Some(clinker_types::BackupId::new_random()),
        resource_backend: None,
        project_id: "p1".into(),
        scheduler_hints: BTreeMap::from([("same_host".to_owned(), serde_json::json!(["x"]))]),
    };
    sourced.request_spec = Some(spec.clone());
    let sourced_id = sourced.id;
    db.create_volume(sourced).await.unwrap();
    let kept = db.journal_request_spec(&sourced_id.to_string()).await;
    assert_eq!(kept.unwrap(), Some(spec.clone()));
    place(db, sourced_id, 1).await;
    let kept = db.journal_request_spec(&sourced_id.to_string()).await;
    assert_eq!(kept.unwrap(), Some(spec));
    db.release_volume_placement(sourced_id, "node1@file#file")
        .await
        .unwrap();
    let kept = db.journal_request_spec(&sourced_id.to_string()).await;
    assert!(
        kept.unwrap().is_some(),
        "a released placement lost the request"
    );
    db.fail_volume_create(sourced_id).await.unwrap();
    assert_eq!(
        db.journal_request_spec(&sourced_id.to_string())
            .await
            .unwrap(),
        None,
        "a failed create keeps no journal row"
    );
    assert!(matches!(
        db.begin_volume_delete(sourced_id, DeleteOptions::default())
            .await
            .unwrap(),
        DeleteStart::DeletedWithoutBackend(_)
    ));

    place(db, id, 3).await;
    let journal = db.journal_for_backend("node1@file").await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        db.get_volume(id).await.unwrap().host.as_deref(),
        Some("node1@file#file")
    );

    let launched_at = db
        .finish_volume_create(
            id,
            ProviderUpdate {
                provider_location: Some("/x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v = db.get_volume(id).await.unwrap();
    assert_eq!(v.status, VolumeStatus::Available);
    assert_eq!(v.provider_location.as_deref(), Some("/x"));
    assert_eq!(v.launched_at, Some(launched_at));
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    // The CAS refuses a second finish.
    assert!(matches!(
        db.finish_volume_create(id, ProviderUpdate::default()).await,
        Err(DbError::InvalidState(_))
    ));

    let DeleteStart::Started(v) = db
        .begin_volume_delete(id, DeleteOptions::default())
        .await
        .unwrap()
    else {
        panic!("expected a started delete")
    };
    assert_eq!(v.status, VolumeStatus::Deleting);
    assert_eq!(
        db.journal_for_backend("node1@file").await.unwrap()[0].status,
        "deleting"
    );
    // Idempotent repeat.
    assert!(matches!(
        db.begin_volume_delete(id, DeleteOptions::default())
            .await
            .unwrap(),
        DeleteStart::AlreadyDeleting(_)
    ));
    let gone = db.finish_volume_delete(id).await.unwrap();
    assert_eq!(gone.id, id);
    assert!(matches!(
        db.get_volume(id).await,
        Err(DbError::NotFound { .. })
    ));
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.quota_usages("p1").await.unwrap().get("volumes"),
        Some(&0)
    );
    assert_usage_matches_recount(db, "p1").await;
}

pub async fn quota_refusal_changes_nothing(db: &Db) {
    let type_id = default_type(db).await;
    db.set_project_quota("p2", "volumes", 1).await.unwrap();
    db.create_volume(new_volume("p2", 1, type_id))
        .await
        .unwrap();
    let refused = db
        .create_volume(new_volume("p2", 1, type_id))
        .await
        .unwrap_err();
    match refused {
        DbError::OverQuota(o) => {
            assert_eq!(
                (o.resource.as_str(), o.limit, o.in_use, o.requested),
                ("volumes", 1, 1, 1)
            );
        }
        other => panic!("{other:?}"),
    }
    db.set_project_quota("p2", "volumes", 10).await.unwrap();
    db.set_project_quota("p2", "gigabytes", 5).await.unwrap();
    let refused = db
        .create_volume(new_volume("p2", 5, type_id))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, DbError::OverQuota(o) if o.resource == "gigabytes" && o.in_use == 1),
        "{refused:?}"
    );
    db.set_project_quota("p2", "per_volume_gigabytes", 2)
        .await
        .unwrap();
    let refused = db
        .create_volume(new_volume("p2", 3, type_id))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, DbError::OverQuota(o) if o.resource == "per_volume_gigabytes"),
        "{refused:?}"
    );
    let q = VolumeQuery {
        project_id: Some("p2".into()),
        ..Default::default()
    };
    assert_eq!(db.count_volumes(&q).await.unwrap(), 1);
    assert_usage_matches_recount(db, "p2").await;
    let limits = db.quota_limits("p2").await.unwrap();
    assert_eq!(limits.get("volumes"), Some(&10));
    assert_eq!(limits.get("snapshots"), Some(&10));
    assert_eq!(limits.get("volumes___DEFAULT__"), Some(&-1));
    db.delete_project_quotas("p2").await.unwrap();
    assert_eq!(
        db.quota_limits("p2").await.unwrap().get("gigabytes"),
        Some(&1000)
    );
    db.set_quota_class("default", "gigabytes", 77)
        .await
        .unwrap();
    assert_eq!(
        db.quota_limits("p2").await.unwrap().get("gigabytes"),
        Some(&77)
    );
    assert_eq!(
        db.quota_class_limits("default")
            .await
            .unwrap()
            .get("gigabytes"),
        Some(&77)
    );
}

pub async fn delete_rules(db: &Db) {
    let type_id = default_type(db).await;
    // Never placed: deleted at once.
    let unplaced = db
        .create_volume(new_volume("p3", 1, type_id))
        .await
        .unwrap();
    assert!(matches!(
        db.begin_volume_delete(unplaced.id, DeleteOptions::default())
            .await
            .unwrap(),
        DeleteStart::DeletedWithoutBackend(_)
    ));
    assert!(!db.volume_exists(unplaced.id).await.unwrap());
    // A placed volume still creating cannot be deleted without force.
    let v = db
        .create_volume(new_volume("p3", 1, type_id))
        .await
        .unwrap();
    place(db, v.id, 1).await;
    assert!(matches!(
        db.begin_volume_delete(v.id, DeleteOptions::default()).await,
        Err(DbError::InvalidState(_))
    ));
    db.finish_volume_create(v.id, ProviderUpdate::default())
        .await
        .unwrap();
    // Snapshots block a plain delete; cascade takes them along.
    let snap = db
        .create_snapshot(NewSnapshot {
            id: SnapshotId::new_random(),
            volume_id: v.id,
            user_id: "u1".into(),
            project_id: "p3".into(),
            display_name: None,
            display_description: None,
            metadata: BTreeMap::new(),
            allow_in_use: false,
            use_quota: true,
        })
        .await
        .unwrap();
    db.finish_snapshot_create(snap.id, None).await.unwrap();
    assert!(matches!(
        db.begin_volume_delete(v.id, DeleteOptions::default()).await,
        Err(DbError::InvalidState(_))
    ));
    assert!(matches!(
        db.begin_volume_delete(
            v.id,
            DeleteOptions {
                cascade: true,
                force: false
            }
        )
        .await
        .unwrap(),
        DeleteStart::Started(_)
    ));
    assert_eq!(
        db.get_snapshot(snap.id).await.unwrap().status,
        SnapshotStatus::Deleting
    );
    assert!(
        matches!(
            db.finish_volume_delete(v.id).await,
            Err(DbError::InvalidState(_))
        ),
        "snapshots must go first"
    );
    db.finish_snapshot_delete(snap.id).await.unwrap();
    db.finish_volume_delete(v.id).await.unwrap();
    assert_usage_matches_recount(db, "p3").await;
    // Failures.
    let v = db
        .create_volume(new_volume("p3", 1, type_id))
        .await
        .unwrap();
    place(db, v.id, 1).await;
    db.finish_volume_create(v.id, ProviderUpdate::default())
        .await
        .unwrap();
    db.begin_volume_delete(v.id, DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        db.fail_volume_delete(v.id, true).await.unwrap().status,
        VolumeStatus::Available
    );
    db.begin_volume_delete(v.id, DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        db.fail_volume_delete(v.id, false).await.unwrap().status,
        VolumeStatus::ErrorDeleting
    );
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    // Force works from any status.
    assert!(matches!(
        db.begin_volume_delete(
            v.id,
            DeleteOptions {
                force: true,
                cascade: false
            }
        )
        .await
        .unwrap(),
        DeleteStart::Started(_)
    ));
    db.finish_volume_delete(v.id).await.unwrap();
    assert_usage_matches_recount(db, "p3").await;
}

pub async fn placement_claims_respect_capacity(db: &Db) {
    let type_id = default_type(db).await;
    let a = db
        .create_volume(new_volume("p4", 6, type_id))
        .await
        .unwrap();
    let b = db
        .create_volume(new_volume("p4", 6, type_id))
        .await
        .unwrap();
    let pool = "n@b#small";
    assert_eq!(
        db.claim_volume_placement(a.id, pool, 6, 10).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        db.claim_volume_placement(b.id, pool, 6, 10).await.unwrap(),
        ClaimOutcome::NoCapacity
    );
    assert_eq!(
        db.get_volume(b.id).await.unwrap().host,
        None,
        "a refused claim places nothing"
    );
    assert_eq!(
        db.claim_volume_placement(a.id, pool, 6, 100).await.unwrap(),
        ClaimOutcome::NotWaiting
    );
    assert_eq!(db.pool_allocations().await.unwrap().get(pool), Some(&6));
    // Reschedule: release and claim elsewhere.
    assert!(db.release_volume_placement(a.id, pool).await.unwrap());
    assert_eq!(db.pool_allocations().await.unwrap().get(pool), Some(&0));
    assert!(
        db.unplaced_journal(Timestamp(i64::MAX))
            .await
            .unwrap()
            .iter()
            .any(|j| j.resource_id == a.id.to_string())
    );
    assert_eq!(
        db.claim_volume_placement(b.id, pool, 6, 10).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        db.claim_extend(pool, 4, 10).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        db.claim_extend(pool, 1, 10).await.unwrap(),
        ClaimOutcome::NoCapacity
    );
}

pub async fn list_filters_sort_and_paginate(db: &Db) {
    let type_id = default_type(db).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut new = new_volume(if i < 5 { "p5" } else { "p6" }, i + 1, type_id);
        new.display_name = Some(format!("vol-{i}"));
        new.metadata = BTreeMap::from([(
            "tier".to_owned(),
            if i % 2 == 0 { "gold" } else { "iron" }.to_owned(),
        )]);
        ids.push(db.create_volume(new).await.unwrap().id);
    }
    let project = Some("p5".to_owned());
    let all = db
        .list_volumes(&VolumeQuery {
            project_id: project.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    // Default order: created_at desc, id desc.
    let mut sorted = all.clone();
    sorted.sort_by_key(|v| std::cmp::Reverse((v.created_at, v.id)));
    assert_eq!(
        all.iter().map(|v| v.id).collect::<Vec<_>>(),
        sorted.iter().map(|v| v.id).collect::<Vec<_>>()
    );
    // Keyset pages by size ascending cover everything exactly once.
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = db
            .list_volumes(&VolumeQuery {
                project_id: project.clone(),
                sort: vec![(VolumeColumn::Size, SortDir::Asc)],
                page: Page {
                    marker,
                    limit: Some(2),
                    offset: None,
                },
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        marker = page.last().map(|v| v.id);
        seen.extend(page.into_iter().map(|v| v.size));
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    // A marker from another project is not found in this scope.
    let foreign = ids[6];
    let err = db
        .list_volumes(&VolumeQuery {
            project_id: project.clone(),
            page: Page {
                marker: Some(foreign),
                limit: None,
                offset: None,
            },
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DbError::NotFound {
            resource: "marker",
            ..
        }
    ));
    // Filters.
    let q = VolumeQuery {
        project_id: project.clone(),
        metadata: vec![("tier".into(), "gold".into())],
        filters: vec![(
            VolumeColumn::DisplayName,
            FilterValue::Contains("VOL-".into()),
        )],
        ..Default::default()
    };
    assert_eq!(db.list_volumes(&q).await.unwrap().len(), 3);
    assert_eq!(db.count_volumes(&q).await.unwrap(), 3);
    let q = VolumeQuery {
        filters: vec![
            (
                VolumeColumn::Status,
                FilterValue::In(vec!["creating".into(), "error".into()]),
            ),
            (VolumeColumn::Size, FilterValue::Compare(CompareOp::Gte, 6)),
        ],
        ..Default::default()
    };
    assert_eq!(db.count_volumes(&q).await.unwrap(), 2);
    let q = VolumeQuery {
        filters: vec![(
            VolumeColumn::DisplayName,
            FilterValue::Contains("100%_!".into()),
        )],
        ..Default::default()
    };
    assert_eq!(db.count_volumes(&q).await.unwrap(), 0);
    let offset = db
        .list_volumes(&VolumeQuery {
            project_id: project.clone(),
            sort: vec![(VolumeColumn::Size, SortDir::Desc)],
            page: Page {
                marker: None,
                limit: Some(2),
                offset: Some(1),
            },
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        offset.iter().map(|v| v.size).collect::<Vec<_>>(),
        vec![4, 3]
    );
    assert_eq!(db.volume_summary(Some("p5")).await.unwrap(), (5, 15));
    // Metadata replace and delete.
    let meta = db
        .set_volume_metadata(
            ids[0],
            MetadataKind::User,
            &BTreeMap::from([("a".into(), "1".into())]),
            true,
        )
        .await
        .unwrap();
    assert_eq!(meta, BTreeMap::from([("a".to_owned(), "1".to_owned())]));
    db.delete_volume_metadata(ids[0], MetadataKind::User, "a")
        .await
        .unwrap();
    assert!(matches!(
        db.delete_volume_metadata(ids[0], MetadataKind::User, "a")
            .await,
        Err(DbError::NotFound { .. })
    ));
    let updated = db
        .update_volume(
            ids[0],
            VolumeUpdate {
                display_name: Some(None),
                bootable: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((updated.display_name, updated.bootable), (None, true));
}

pub async fn snapshot_lifecycle(db: &Db) {
    let type_id = default_type(db).await;
    let v = db
        .create_volume(new_volume("p7", 2, type_id))
        .await
        .unwrap();
    let new_snapshot = |allow_in_use| NewSnapshot {
        id: SnapshotId::new_random(),
        volume_id: v.id,
        user_id: "u1".into(),
        project_id: "p7".into(),
        display_name: Some("s".into()),
        display_description: None,
        metadata: BTreeMap::from([("m".to_owned(), "1".to_owned())]),
        allow_in_use,
        use_quota: true,
    };
    assert!(
        matches!(
            db.create_snapshot(new_snapshot(false)).await,
            Err(DbError::InvalidState(_))
        ),
        "creating volume"
    );
    place(db, v.id, 2).await;
    db.finish_volume_create(v.id, ProviderUpdate::default())
        .await
        .unwrap();
    let s = db.create_snapshot(new_snapshot(false)).await.unwrap();
    assert_eq!(
        (s.status, s.volume_size, s.progress.as_deref()),
        (SnapshotStatus::Creating, 2, Some("0%"))
    );
    assert_eq!(s.host.as_deref(), Some("node1@file#file"));
    assert_eq!(db.journal_for_backend("node1@file").await.unwrap().len(), 1);
    assert_eq!(
        db.quota_usages("p7").await.unwrap().get("gigabytes"),
        Some(&4)
    );
    assert_usage_matches_recount(db, "p7").await;
    let s = db
        .finish_snapshot_create(s.id, Some("loc".into()))
        .await
        .unwrap();
    assert_eq!(
        (s.status, s.progress.as_deref()),
        (SnapshotStatus::Available, Some("100%"))
    );
    assert_eq!(s.metadata.get("m").map(String::as_str), Some("1"));
    assert_eq!(
        db.snapshots_on_backend("node1@file").await.unwrap().len(),
        1
    );
    let listed = db
        .list_snapshots(&SnapshotQuery {
            project_id: Some("p7".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let s = db
        .update_snapshot(s.id, Some(Some("renamed".into())), None)
        .await
        .unwrap();
    assert_eq!(s.display_name.as_deref(), Some("renamed"));
    let s = db
        .begin_snapshot_delete(s.id, SnapshotTransition::Delete)
        .await
        .unwrap();
    assert_eq!(s.status, SnapshotStatus::Deleting);
    assert_eq!(
        db.fail_snapshot_delete(s.id, false).await.unwrap().status,
        SnapshotStatus::ErrorDeleting
    );
    assert!(matches!(
        db.begin_snapshot_delete(s.id, SnapshotTransition::Delete)
            .await,
        Err(DbError::InvalidState(_))
    ));
    db.begin_snapshot_delete(s.id, SnapshotTransition::ForceDelete)
        .await
        .unwrap();
    db.finish_snapshot_delete(s.id).await.unwrap();
    assert!(db.snapshots_of_volume(v.id).await.unwrap().is_empty());
    assert_usage_matches_recount(db, "p7").await;
    let discarded = db.create_snapshot(new_snapshot(false)).await.unwrap();
    db.discard_snapshot_create(discarded.id).await.unwrap();
    assert!(matches!(
        db.get_snapshot(discarded.id).await,
        Err(DbError::NotFound { .. })
    ));
    assert_usage_matches_recount(db, "p7").await;
    let failed = db.create_snapshot(new_snapshot(false)).await.unwrap();
    assert_eq!(
        db.fail_snapshot_create(failed.id).await.unwrap().status,
        SnapshotStatus::Error
    );
    let reset = db
        .set_snapshot_status(failed.id, SnapshotStatus::Available, Some("100%".into()))
        .await
        .unwrap();
    assert_eq!(reset.status, SnapshotStatus::Available);
}

pub async fn extend_lifecycle(db: &Db) {
    let type_id = default_type(db).await;
    let v = db
        .create_volume(new_volume("p8", 2, type_id))
        .await
        .unwrap();
    place(db, v.id, 2).await;
    db.finish_volume_create(v.id, ProviderUpdate::default())
        .await
        .unwrap();
    assert!(matches!(
        db.begin_volume_extend(v.id, 2, false).await,
        Err(DbError::InvalidState(_))
    ));
    let e = db.begin_volume_extend(v.id, 5, false).await.unwrap();
    assert_eq!(e.status, VolumeStatus::Extending);
    assert_eq!(
        db.journal_detail(&v.id.to_string()).await.unwrap().unwrap()["new_size"],
        5
    );
    assert_eq!(
        db.quota_usages("p8").await.unwrap().get("gigabytes"),
        Some(&5)
    );
    assert_eq!(
        db.claim_extend("node1@file#file", 3, 1000).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let done = db.finish_volume_extend(v.id, 5).await.unwrap();
    assert_eq!((done.status, done.size), (VolumeStatus::Available, 5));
    assert_usage_matches_recount(db, "p8").await;
    // Scheduler found no room: back to available, quota returned.
    db.begin_volume_extend(v.id, 9, false).await.unwrap();
    let aborted = db.abort_volume_extend(v.id, 9).await.unwrap();
    assert_eq!((aborted.status, aborted.size), (VolumeStatus::Available, 5));
    assert_usage_matches_recount(db, "p8").await;
    // Backend failed after the claim: error_extending, claim returned.
    db.begin_volume_extend(v.id, 7, false).await.unwrap();
    db.claim_extend("node1@file#file", 2, 1000).await.unwrap();
    let failed = db.fail_volume_extend(v.id, 7).await.unwrap();
    assert_eq!(
        (failed.status, failed.size),
        (VolumeStatus::ErrorExtending, 5)
    );
    assert_usage_matches_recount(db, "p8").await;
    let reset = db
        .reset_volume_status(v.id, Some(VolumeStatus::InUse), None, None)
        .await
        .unwrap();
    assert_eq!(reset.status, VolumeStatus::InUse);
    assert!(matches!(
        db.begin_volume_extend(v.id, 6, false).await,
        Err(DbError::InvalidState(_))
    ));
    assert_eq!(
        db.begin_volume_extend(v.id, 6, true).await.unwrap().status,
        VolumeStatus::Extending
    );
    assert_eq!(
        db.finish_volume_extend(v.id, 6).await.unwrap().status,
        VolumeStatus::InUse
    );
    assert!(
        matches!(db.transition_volume(v.id, VolumeTransition::BeginDetaching).await, Ok(v) if v.status == VolumeStatus::Detaching)
    );
}

pub async fn volume_types(db: &Db) {
    let t = db
        .create_volume_type(NewVolumeType {
            name: "gold".into(),
            description: Some("d".into()),
            is_public: false,
            extra_specs: BTreeMap::from([("volume_backend_name".to_owned(), "file".to_owned())]),
        })
        .await
        .unwrap();
    assert!(matches!(
        db.create_volume_type(NewVolumeType {
            name: "gold".into(),
            description: None,
            is_public: true,
            extra_specs: BTreeMap::new()
        })
        .await,
        Err(DbError::Conflict(_))
    ));
    assert_eq!(
        db.get_volume_type_by_name("gold")
            .await
            .unwrap()
            .extra_specs
            .len(),
        1
    );
    assert_eq!(
        db.list_volume_types(Some(true), None).await.unwrap().len(),
        1
    );
    assert_eq!(
        db.list_volume_types(None, Some("pX")).await.unwrap().len(),
        1
    );
    db.add_type_access(t.id, "pX").await.unwrap();
    assert!(matches!(
        db.add_type_access(t.id, "pX").await,
        Err(DbError::Conflict(_))
    ));
    assert_eq!(
        db.list_volume_types(None, Some("pX")).await.unwrap().len(),
        2
    );
    assert_eq!(
        db.list_type_access(t.id).await.unwrap(),
        vec!["pX".to_owned()]
    );
    db.remove_type_access(t.id, "pX").await.unwrap();
    assert!(matches!(
        db.remove_type_access(t.id, "pX").await,
        Err(DbError::NotFound { .. })
    ));
    let specs = db
        .set_extra_specs(t.id, &BTreeMap::from([("a".to_owned(), "b".to_owned())]))
        .await
        .unwrap();
    assert_eq!(specs.len(), 2);
    db.delete_extra_spec(t.id, "a").await.unwrap();
    assert!(matches!(
        db.delete_extra_spec(t.id, "a").await,
        Err(DbError::NotFound { .. })
    ));
    // A volume of the type keeps per-type quota under the type's name.
    let mut new = new_volume("p9", 1, t.id);
    new.volume_type_name = "gold".into();
    let v = db.create_volume(new).await.unwrap();
    assert_eq!(
        db.quota_usages("p9").await.unwrap().get("volumes_gold"),
        Some(&1)
    );
    let renamed = db
        .update_volume_type(t.id, Some("platinum".into()), Some(None), Some(true))
        .await
        .unwrap();
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.description,
            renamed.is_public
        ),
        ("platinum", None, true)
    );
    assert_eq!(
        db.quota_usages("p9").await.unwrap().get("volumes_platinum"),
        Some(&1)
    );
    assert_usage_matches_recount(db, "p9").await;
    assert!(matches!(
        db.delete_volume_type(t.id).await,
        Err(DbError::InvalidState(_))
    ));
    db.begin_volume_delete(v.id, DeleteOptions::default())
        .await
        .unwrap();
    db.delete_volume_type(t.id).await.unwrap();
    assert!(matches!(
        db.get_volume_type(t.id).await,
        Err(DbError::NotFound { .. })
    ));
}

pub async fn services_and_heartbeats(db: &Db) {
    let reg = ServiceRegistration {
        host: "node1@file".into(),
        binary: "cinder-volume".into(),
        topic: "cinder-volume".into(),
        availability_zone: "nova".into(),
        rpc_current_version: "3.20".into(),
    };
    let s = db.register_service(&reg).await.unwrap();
    assert_eq!((s.report_count, s.disabled), (0, false));
    db.report_service_state(s.id, Some(("down", Some("no vg"))))
        .await
        .unwrap();
    db.report_service_state(s.id, None).await.unwrap();
    let listed = db.list_services(Some("node1@file"), None).await.unwrap();
    assert_eq!(listed[0].report_count, 2);
    assert_eq!(listed[0].backend_state.as_deref(), Some("down"));
    let disabled = db
        .set_service_disabled("node1@file", "cinder-volume", true, Some("maintenance"))
        .await
        .unwrap();
    assert_eq!(
        (disabled.disabled, disabled.disabled_reason.as_deref()),
        (true, Some("maintenance"))
    );
    // Re-registration keeps the administrator's decision.
    let again = db.register_service(&reg).await.unwrap();
    assert_eq!((again.id, again.disabled), (s.id, true));
    assert!(again.is_up(again.updated_at.unwrap(), 60));
    assert!(!again.is_up(again.updated_at.unwrap().plus_micros(61_000_000), 60));
    db.delete_service(s.id).await.unwrap();
    assert!(matches!(
        db.report_service_state(s.id, None).await,
        Err(DbError::NotFound { .. })
    ));
    assert!(matches!(
        db.set_service_disabled("x", "y", true, None).await,
        Err(DbError::NotFound { .. })
    ));
}

pub async fn messages(db: &Db) {
    let now = Timestamp(1_000_000_000_000);
    for i in 0..3 {
        db.create_message(&clinker_types::model::UserMessage {
            id: MessageId::new_random(),
            project_id: "p1".into(),
            request_id: Some("req-1".into()),
            resource_type: "VOLUME".into(),
            resource_uuid: None,
            event_id: "VOLUME_VOLUME_001_002".into(),
            message_level: "ERROR".into(),
            user_message: "schedule allocate volume:Could not find any available weighted backend."
                .into(),
            created_at: now.plus_micros(i),
            expires_at: now.plus_micros(1000 + i),
        })
        .await
        .unwrap();
    }
    let all = db
        .list_messages(Some("p1"), &Page::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[0].created_at > all[1].created_at);
    let page = db
        .list_messages(
            Some("p1"),
            &Page {
                marker: Some(all[0].id),
                limit: Some(1),
                offset: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page[0].id, all[1].id);
    assert!(
        db.list_messages(Some("p2"), &Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    db.delete_message(all[0].id).await.unwrap();
    assert!(matches!(
        db.get_message(all[0].id).await,
        Err(DbError::NotFound { .. })
    ));
    assert_eq!(
        db.delete_expired_messages(now.plus_micros(1001))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.list_messages(None, &Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn concurrent_creates_never_exceed_quota(db: &Db) {
    let type_id = default_type(db).await;
    db.set_project_quota("pc", "volumes", 20).await.unwrap();
    let db = Arc::new(db.clone());
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.create_volume(new_volume("pc", 1, type_id)).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(DbError::OverQuota(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 20);
    assert_eq!(
        db.quota_usages("pc").await.unwrap().get("volumes"),
        Some(&20)
    );
    assert_usage_matches_recount(&db, "pc").await;
}

pub async fn concurrent_claims_never_overcommit(db: &Db) {
    let type_id = default_type(db).await;
    db.set_project_quota("pd", "volumes", 100).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(
            db.create_volume(new_volume("pd", 1, type_id))
                .await
                .unwrap()
                .id,
        );
    }
    let db = Arc::new(db.clone());
    let mut tasks = Vec::new();
    for id in ids {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.claim_volume_placement(id, "n@b#tiny", 1, 12).await
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == ClaimOutcome::Claimed {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 12);
    assert_eq!(
        db.pool_allocations().await.unwrap().get("n@b#tiny"),
        Some(&12)
    );
    assert_usage_matches_recount(&db, "pd").await;
}
