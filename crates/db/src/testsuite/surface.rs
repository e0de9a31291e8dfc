//! Conformance checks for QoS specs, transfers, type encryption, default
//! types, revert and retype (run on every engine by `conformance_checks!`).

use std::collections::BTreeMap;

use clinker_types::volume_type_extras::{ControlLocation, QosConsumer};
use clinker_types::{SnapshotId, SnapshotStatus, TransferId, VolumeId, VolumeStatus};

use super::{assert_usage_matches_recount, default_type, new_volume, place};
use crate::*;

/// An `available` volume of `type_name` placed on the test pool.
async fn available_volume(
    db: &Db,
    project: &str,
    size: i64,
    type_id: clinker_types::VolumeTypeId,
    type_name: &str,
) -> VolumeId {
    let mut new = new_volume(project, size, type_id);
    new.volume_type_name = type_name.to_owned();
    let v = db.create_volume(new).await.unwrap();
    place(db, v.id, size).await;
    db.finish_volume_create(v.id, ProviderUpdate::default())
        .await
        .unwrap();
    v.id
}

/// An `available` snapshot of `volume`.
pub(crate) async fn available_snapshot(db: &Db, project: &str, volume: VolumeId) -> SnapshotId {
    let s = db
        .create_snapshot(NewSnapshot {
            id: SnapshotId::new_random(),
            volume_id: volume,
            user_id: "u1".into(),
            project_id: project.into(),
            display_name: None,
            display_description: None,
            metadata: BTreeMap::new(),
            allow_in_use: false,
            use_quota: true,
        })
        .await
        .unwrap();
    db.finish_snapshot_create(s.id, None).await.unwrap();
    s.id
}

fn spec(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
        .collect()
}

pub async fn qos_specs_lifecycle(db: &Db) {
    let new = |name: &str, consumer| NewQosSpecs {
        name: name.into(),
        consumer,
        specs: BTreeMap::from([("read_iops_sec".to_owned(), "2000".to_owned())]),
    };
    let fast = db
        .create_qos_specs(new("fast", QosConsumer::FrontEnd))
        .await
        .unwrap();
    assert_eq!(fast.consumer, QosConsumer::FrontEnd);
    assert_eq!(fast.specs, spec(&[("read_iops_sec", Some("2000"))]));
    assert!(matches!(
        db.create_qos_specs(new("fast", QosConsumer::Both)).await,
        Err(DbError::Conflict(_))
    ));
    let slow = db
        .create_qos_specs(new("slow", QosConsumer::BackEnd))
        .await
        .unwrap();

    // Lists: filters, sort, keyset pages.
    let by_name = |sort| QosSpecsQuery {
        sort: vec![(QosSpecsColumn::Name, sort)],
        ..Default::default()
    };
    let names: Vec<String> = db
        .list_qos_specs(&by_name(SortDir::Asc))
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["fast", "slow"]);
    let mut page = by_name(SortDir::Asc);
    page.page = Page {
        marker: Some(fast.id),
        limit: Some(1),
        offset: None,
    };
    let after: Vec<_> = db.list_qos_specs(&page).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, slow.id);
    let filtered = db
        .list_qos_specs(&QosSpecsQuery {
            filters: vec![(QosSpecsColumn::Consumer, "back-end".into())],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].id, slow.id);
    assert!(matches!(
        db.list_qos_specs(&QosSpecsQuery {
            page: Page {
                marker: Some(clinker_types::QosSpecsId::new_random()),
                limit: None,
                offset: None
            },
            ..Default::default()
        })
        .await,
        Err(DbError::NotFound { .. })
    ));

    // Update merges, nulls included; the consumer changes.
    let updated = db
        .update_qos_specs(
            fast.id,
            Some(QosConsumer::Both),
            &spec(&[("iops_bytes", Some("500")), ("burst", None)]),
        )
        .await
        .unwrap();
    assert_eq!(updated.consumer, QosConsumer::Both);
    assert_eq!(
        updated.specs,
        spec(&[
            ("burst", None),
            ("iops_bytes", Some("500")),
            ("read_iops_sec", Some("2000"))
        ])
    );
    assert!(updated.updated_at.is_some());

    // Key deletion is all or nothing.
    let missing = db
        .delete_qos_specs_keys(fast.id, &["iops_bytes".into(), "nope".into()])
        .await;
    assert!(
        matches!(&missing, Err(DbError::NotFound { resource: "qos spec key", id }) if id == "nope"),
        "{missing:?}"
    );
    assert!(
        db.get_qos_specs(fast.id)
            .await
            .unwrap()
            .specs
            .contains_key("iops_bytes")
    );
    db.delete_qos_specs_keys(fast.id, &["iops_bytes".into(), "burst".into()])
        .await
        .unwrap();
    assert_eq!(
        db.get_qos_specs(fast.id).await.unwrap().specs,
        spec(&[("read_iops_sec", Some("2000"))])
    );

    // Associations.
    let gold = db
        .create_volume_type(NewVolumeType {
            name: "gold".into(),
            description: None,
            is_public: true,
            extra_specs: BTreeMap::new(),
        })
        .await
        .unwrap();
    let default = default_type(db).await;
    db.associate_qos_specs(fast.id, gold.id).await.unwrap();
    db.associate_qos_specs(fast.id, gold.id).await.unwrap();
    db.associate_qos_specs(fast.id, default).await.unwrap();
    match db.associate_qos_specs(slow.id, gold.id).await {
        Err(DbError::Conflict(other)) => assert_eq!(other, fast.id.to_string()),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        db.associate_qos_specs(fast.id, clinker_types::VolumeTypeId::new_random())
            .await,
        Err(DbError::NotFound {
            resource: "volume type",
            ..
        })
    ));
    let associated: Vec<_> = db
        .qos_associations(fast.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.volume_type_id)
        .collect();
    assert_eq!(associated.len(), 2);
    assert!(associated.contains(&gold.id) && associated.contains(&default));
    assert_eq!(
        db.get_volume_type(gold.id).await.unwrap().qos_specs_id,
        Some(fast.id.to_string())
    );
    // Disassociating from specs it is not associated with changes nothing.
    db.disassociate_qos_specs(slow.id, gold.id).await.unwrap();
    assert_eq!(db.qos_associations(fast.id).await.unwrap().len(), 2);
    db.disassociate_qos_specs(fast.id, gold.id).await.unwrap();
    assert_eq!(
        db.get_volume_type(gold.id).await.unwrap().qos_specs_id,
        None
    );
    db.associate_qos_specs(fast.id, gold.id).await.unwrap();
    db.disassociate_all_qos_specs(fast.id).await.unwrap();
    assert!(db.qos_associations(fast.id).await.unwrap().is_empty());

    // Delete: refused while associated unless forced.
    db.associate_qos_specs(fast.id, gold.id).await.unwrap();
    assert!(matches!(
        db.delete_qos_specs(fast.id, false).await,
        Err(DbError::InvalidState(_))
    ));
    db.delete_qos_specs(fast.id, true).await.unwrap();
    assert_eq!(
        db.get_volume_type(gold.id).await.unwrap().qos_specs_id,
        None
    );
    assert!(matches!(
        db.get_qos_specs(fast.id).await,
        Err(DbError::NotFound { .. })
    ));
    assert!(matches!(
        db.qos_associations(fast.id).await,
        Err(DbError::NotFound { .. })
    ));
    db.delete_qos_specs(slow.id, false).await.unwrap();
    assert!(
        db.list_qos_specs(&QosSpecsQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    // The name is free again.
    db.create_qos_specs(new("fast", QosConsumer::BackEnd))
        .await
        .unwrap();
}

fn new_transfer(volume: VolumeId, no_snapshots: bool) -> NewTransfer {
    NewTransfer {
        id: TransferId::new_random(),
        volume_id: volume,
        display_name: Some("t".into()),
        salt: "salt".into(),
        crypt_hash: "hash".into(),
        no_snapshots,
    }
}

pub async fn transfers_move_ownership_and_quota(db: &Db) {
    let type_id = default_type(db).await;
    let v = available_volume(db, "giver", 3, type_id, "__DEFAULT__").await;
    let snap = available_snapshot(db, "giver", v).await;

    let t = db.create_transfer(new_transfer(v, false)).await.unwrap();
    assert_eq!(t.volume_project_id, "giver");
    assert_eq!(t.source_project_id.as_deref(), Some("giver"));
    assert!(!t.accepted && !t.no_snapshots);
    assert_eq!(
        db.get_volume(v).await.unwrap().status,
        VolumeStatus::AwaitingTransfer
    );
    // One offer per volume.
    assert!(matches!(
        db.create_transfer(new_transfer(v, false)).await,
        Err(DbError::InvalidState(_))
    ));
    // Visible to the owner's project only.
    let of = |project: &str| TransferQuery {
        project_id: Some(project.into()),
        ..Default::default()
    };
    assert_eq!(db.list_transfers(&of("giver")).await.unwrap().len(), 1);
    assert!(db.list_transfers(&of("taker")).await.unwrap().is_empty());
    assert_eq!(
        db.list_transfers(&TransferQuery {
            filters: vec![(TransferColumn::VolumeId, v.to_string())],
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );

    // Withdrawing the offer makes the volume available again.
    let gone = db.delete_transfer(t.id).await.unwrap();
    assert_eq!(gone.id, t.id);
    assert_eq!(
        db.get_volume(v).await.unwrap().status,
        VolumeStatus::Available
    );
    assert!(matches!(
        db.get_transfer(t.id).await,
        Err(DbError::NotFound { .. })
    ));

    // A quota refusal changes nothing on either side.
    let t = db.create_transfer(new_transfer(v, false)).await.unwrap();
    let giver_before = db.quota_usages("giver").await.unwrap();
    db.set_project_quota("taker", "snapshots", 0).await.unwrap();
    let acceptor = TransferAcceptor {
        user_id: "u2".into(),
        project_id: "taker".into(),
    };
    match db.accept_transfer(t.id, &acceptor).await.unwrap() {
        Err(AcceptRefusal::Snapshots(over)) => assert_eq!(over.resource, "snapshots"),
        other => panic!("expected a snapshot quota refusal, got {other:?}"),
    }
    db.set_project_quota("taker", "snapshots", 10)
        .await
        .unwrap();
    db.set_project_quota("taker", "gigabytes", 2).await.unwrap();
    match db.accept_transfer(t.id, &acceptor).await.unwrap() {
        Err(AcceptRefusal::Volume(over)) => {
            assert_eq!(
                (over.resource.as_str(), over.limit, over.requested),
                ("gigabytes", 2, 3)
            );
        }
        other => panic!("expected a volume quota refusal, got {other:?}"),
    }
    assert_eq!(
        db.get_volume(v).await.unwrap().status,
        VolumeStatus::AwaitingTransfer
    );
    assert_eq!(db.quota_usages("giver").await.unwrap(), giver_before);
    assert!(
        db.quota_usages("taker")
            .await
            .unwrap()
            .values()
            .all(|v| *v == 0)
    );
    db.get_transfer(t.id).await.unwrap();

    // Accepted: owner, snapshots and usage move in one go.
    db.set_project_quota("taker", "gigabytes", 100)
        .await
        .unwrap();
    let moved = db.accept_transfer(t.id, &acceptor).await.unwrap().unwrap();
    assert_eq!(
        (
            moved.status,
            moved.project_id.as_str(),
            moved.user_id.as_str()
        ),
        (VolumeStatus::Available, "taker", "u2")
    );
    let s = db.get_snapshot(snap).await.unwrap();
    assert_eq!((s.project_id.as_str(), s.user_id.as_str()), ("taker", "u2"));
    assert!(matches!(
        db.get_transfer(t.id).await,
        Err(DbError::NotFound { .. })
    ));
    let taker = db.quota_usages("taker").await.unwrap();
    assert_eq!(
        (
            taker.get("volumes"),
            taker.get("snapshots"),
            taker.get("gigabytes")
        ),
        (Some(&1), Some(&1), Some(&6))
    );
    assert_eq!(
        db.quota_usages("giver").await.unwrap().get("gigabytes"),
        Some(&0)
    );
    assert_usage_matches_recount(db, "giver").await;
    assert_usage_matches_recount(db, "taker").await;
    // An accepted offer cannot be accepted again.
    assert!(matches!(
        db.accept_transfer(t.id, &acceptor).await,
        Err(DbError::NotFound { .. })
    ));

    // With no_snapshots the snapshots stay (with their usage).
    let t = db.create_transfer(new_transfer(v, true)).await.unwrap();
    assert!(t.no_snapshots);
    let back = TransferAcceptor {
        user_id: "u1".into(),
        project_id: "giver".into(),
    };
    db.accept_transfer(t.id, &back).await.unwrap().unwrap();
    assert_eq!(db.get_snapshot(snap).await.unwrap().project_id, "taker");
    assert_usage_matches_recount(db, "giver").await;
    assert_usage_matches_recount(db, "taker").await;

    // Snapshots that are not available block an offer that includes them.
    db.set_snapshot_status(snap, SnapshotStatus::Error, None)
        .await
        .unwrap();
    assert!(matches!(
        db.create_transfer(new_transfer(v, false)).await,
        Err(DbError::InvalidState(_))
    ));
    db.create_transfer(new_transfer(v, true)).await.unwrap();
}

pub async fn type_encryption_and_volume_keys(db: &Db) {
    let secret = db
        .create_volume_type(NewVolumeType {
            name: "secret".into(),
            description: None,
            is_public: true,
            extra_specs: BTreeMap::new(),
        })
        .await
        .unwrap();
    assert!(db.get_type_encryption(secret.id).await.unwrap().is_none());
    let new = NewEncryption {
        provider: "luks".into(),
        cipher: Some("aes-xts-plain64".into()),
        key_size: Some(256),
        control_location: ControlLocation::FrontEnd,
    };
    let created = db
        .create_type_encryption(secret.id, new.clone())
        .await
        .unwrap();
    assert_eq!(
        (
            created.provider.as_str(),
            created.key_size,
            created.control_location
        ),
        ("luks", Some(256), ControlLocation::FrontEnd)
    );
    assert!(uuid::Uuid::parse_str(&created.encryption_id).is_ok());
    assert!(matches!(
        db.create_type_encryption(secret.id, new.clone()).await,
        Err(DbError::Conflict(_))
    ));
    assert!(matches!(
        db.create_type_encryption(clinker_types::VolumeTypeId::new_random(), new.clone())
            .await,
        Err(DbError::NotFound { .. })
    ));
    let updated = db
        .update_type_encryption(
            secret.id,
            EncryptionUpdate {
                cipher: Some(None),
                key_size: Some(Some(128)),
                control_location: Some(ControlLocation::BackEnd),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.cipher, updated.key_size, updated.control_location),
        (None, Some(128), ControlLocation::BackEnd)
    );
    assert_eq!(updated.encryption_id, created.encryption_id);
    assert!(updated.updated_at.is_some());

    // Volumes of an encrypted type get a key id; others do not.
    let mut encrypted = new_volume("p-enc", 1, secret.id);
    encrypted.volume_type_name = "secret".into();
    let a = db.create_volume(encrypted.clone()).await.unwrap();
    let mut second = encrypted;
    second.id = VolumeId::new_random();
    let b = db.create_volume(second).await.unwrap();
    let key = a.encryption_key_id.clone().expect("an encryption key id");
    assert!(uuid::Uuid::parse_str(&key).is_ok());
    assert_ne!(a.encryption_key_id, b.encryption_key_id);
    let plain = db
        .create_volume(new_volume("p-enc", 1, default_type(db).await))
        .await
        .unwrap();
    assert_eq!(plain.encryption_key_id, None);

    // In use: no changes.
    assert!(matches!(
        db.update_type_encryption(secret.id, EncryptionUpdate::default())
            .await,
        Err(DbError::InvalidState(_))
    ));
    assert!(matches!(
        db.delete_type_encryption(secret.id).await,
        Err(DbError::InvalidState(_))
    ));
    for id in [a.id, b.id] {
        assert!(matches!(
            db.begin_volume_delete(id, DeleteOptions::default())
                .await
                .unwrap(),
            DeleteStart::DeletedWithoutBackend(_)
        ));
    }
    db.delete_type_encryption(secret.id).await.unwrap();
    assert!(db.get_type_encryption(secret.id).await.unwrap().is_none());
    assert!(matches!(
        db.delete_type_encryption(secret.id).await,
        Err(DbError::NotFound { .. })
    ));
    assert!(matches!(
        db.update_type_encryption(secret.id, EncryptionUpdate::default())
            .await,
        Err(DbError::NotFound { .. })
    ));
    // Deleting an encrypted type takes its encryption row with it.
    db.create_type_encryption(secret.id, new).await.unwrap();
    db.delete_volume_type(secret.id).await.unwrap();
    assert!(db.get_type_encryption(secret.id).await.unwrap().is_none());
}

pub async fn project_default_types(db: &Db) {
    let default = default_type(db).await;
    let silver = db
        .create_volume_type(NewVolumeType {
            name: "silver".into(),
            description: None,
            is_public: true,
            extra_specs: BTreeMap::new(),
        })
        .await
        .unwrap();
    assert!(db.get_project_default_type("p1").await.unwrap().is_none());
    db.set_project_default_type("p1", default).await.unwrap();
    let set = db.set_project_default_type("p1", silver.id).await.unwrap();
    assert_eq!(set.volume_type_id, silver.id);
    assert_eq!(
        db.get_project_default_type("p1")
            .await
            .unwrap()
            .map(|d| d.volume_type_id),
        Some(silver.id)
    );
    db.set_project_default_type("p2", silver.id).await.unwrap();
    let all = db.list_project_default_types().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|d| d.project_id.as_str())
            .collect::<Vec<_>>(),
        ["p1", "p2"]
    );
    assert_eq!(
        db.projects_with_default_type(silver.id).await.unwrap(),
        ["p1", "p2"]
    );
    assert!(matches!(
        db.set_project_default_type("p3", clinker_types::VolumeTypeId::new_random())
            .await,
        Err(DbError::NotFound { .. })
    ));
    // A project's default type cannot be deleted.
    assert!(matches!(
        db.delete_volume_type(silver.id).await,
        Err(DbError::InvalidState(_))
    ));
    db.unset_project_default_type("p1").await.unwrap();
    db.unset_project_default_type("p1").await.unwrap();
    db.unset_project_default_type("p2").await.unwrap();
    assert!(db.list_project_default_types().await.unwrap().is_empty());
    db.delete_volume_type(silver.id).await.unwrap();
}

pub async fn revert_lifecycle(db: &Db) {
    let type_id = default_type(db).await;
    let v = available_volume(db, "p-rev", 1, type_id, "__DEFAULT__").await;
    assert_eq!(db.latest_snapshot_of_volume(v).await.unwrap(), None);
    let older = available_snapshot(db, "p-rev", v).await;
    let latest = available_snapshot(db, "p-rev", v).await;
    assert_eq!(db.latest_snapshot_of_volume(v).await.unwrap(), Some(latest));
    assert!(matches!(
        db.begin_volume_revert(v, older).await,
        Err(DbError::InvalidState(_))
    ));

    let (volume, snapshot) = db.begin_volume_revert(v, latest).await.unwrap();
    assert_eq!(volume.status, VolumeStatus::Reverting);
    assert_eq!(snapshot.status, SnapshotStatus::Restoring);
    let journal = db.journal_for_backend("node1@file").await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, "reverting");
    assert_eq!(
        db.journal_detail(&v.to_string()).await.unwrap().unwrap()["snapshot_id"],
        latest.to_string()
    );
    // The status is the lock: a second revert is refused.
    match db.begin_volume_revert(v, latest).await {
        Err(DbError::InvalidState(m)) => assert!(m.starts_with("volume"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let done = db
        .finish_volume_revert(v, latest, RevertOutcome::Reverted)
        .await
        .unwrap();
    assert_eq!(done.status, VolumeStatus::Available);
    assert_eq!(
        db.get_snapshot(latest).await.unwrap().status,
        SnapshotStatus::Available
    );
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        db.finish_volume_revert(v, latest, RevertOutcome::Reverted)
            .await,
        Err(DbError::InvalidState(_))
    ));

    // A snapshot that is not available refuses, and nothing changes.
    db.set_snapshot_status(latest, SnapshotStatus::Error, None)
        .await
        .unwrap();
    match db.begin_volume_revert(v, latest).await {
        Err(DbError::InvalidState(m)) => assert!(m.starts_with("snapshot"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        db.get_volume(v).await.unwrap().status,
        VolumeStatus::Available
    );
    db.set_snapshot_status(latest, SnapshotStatus::Available, None)
        .await
        .unwrap();

    db.begin_volume_revert(v, latest).await.unwrap();
    let untouched = db
        .finish_volume_revert(v, latest, RevertOutcome::Untouched)
        .await
        .unwrap();
    assert_eq!(untouched.status, VolumeStatus::Available);
    db.begin_volume_revert(v, latest).await.unwrap();
    let failed = db
        .finish_volume_revert(v, latest, RevertOutcome::Failed)
        .await
        .unwrap();
    assert_eq!(failed.status, VolumeStatus::Error);
    assert_eq!(
        db.get_snapshot(latest).await.unwrap().status,
        SnapshotStatus::Available
    );
}

pub async fn retype_moves_type_and_quota(db: &Db) {
    let old = default_type(db).await;
    let multi = db
        .create_volume_type(NewVolumeType {
            name: "multi".into(),
            description: None,
            is_public: true,
            extra_specs: BTreeMap::from([("multiattach".to_owned(), "<is> True".to_owned())]),
        })
        .await
        .unwrap();
    let v = available_volume(db, "p-rt", 2, old, "__DEFAULT__").await;
    let snap = available_snapshot(db, "p-rt", v).await;
    let detail = serde_json::json!({"new_type_id": multi.id.to_string()});

    // Refused by the new type's quota: nothing changes.
    db.set_project_quota("p-rt", "gigabytes_multi", 3)
        .await
        .unwrap();
    match db.begin_volume_retype(v, multi.id, detail.clone()).await {
        Err(DbError::OverQuota(over)) => {
            assert_eq!((over.resource.as_str(), over.limit), ("gigabytes_multi", 3))
        }
        other => panic!("expected a quota refusal, got {other:?}"),
    }
    assert_eq!(
        db.get_volume(v).await.unwrap().status,
        VolumeStatus::Available
    );
    db.set_project_quota("p-rt", "gigabytes_multi", -1)
        .await
        .unwrap();
    assert!(matches!(
        db.begin_volume_retype(v, old, detail.clone()).await,
        Err(DbError::InvalidState(_))
    ));
    assert!(matches!(
        db.begin_volume_retype(v, clinker_types::VolumeTypeId::new_random(), detail.clone())
            .await,
        Err(DbError::NotFound { .. })
    ));

    let retyping = db
        .begin_volume_retype(v, multi.id, detail.clone())
        .await
        .unwrap();
    assert_eq!(retyping.status, VolumeStatus::Retyping);
    assert_eq!(retyping.previous_status.as_deref(), Some("available"));
    assert_eq!(
        db.journal_detail(&v.to_string()).await.unwrap(),
        Some(detail.clone())
    );
    assert!(matches!(
        db.begin_volume_retype(v, multi.id, detail.clone()).await,
        Err(DbError::InvalidState(_))
    ));
    // Aborting restores the status and keeps the type.
    let aborted = db.abort_volume_retype(v).await.unwrap();
    assert_eq!(
        (aborted.status, aborted.volume_type_id),
        (VolumeStatus::Available, old)
    );
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );

    db.begin_volume_retype(v, multi.id, detail).await.unwrap();
    let done = db.finish_volume_retype(v, multi.id).await.unwrap();
    assert_eq!(done.status, VolumeStatus::Available);
    assert_eq!(done.volume_type_id, multi.id);
    assert_eq!(done.volume_type_name.as_deref(), Some("multi"));
    assert!(done.multiattach);
    assert_eq!(done.previous_status, None);
    assert_eq!(
        db.get_snapshot(snap).await.unwrap().volume_type_id,
        multi.id
    );
    let usage = db.quota_usages("p-rt").await.unwrap();
    assert_eq!(usage.get("volumes_multi"), Some(&1));
    assert_eq!(usage.get("gigabytes_multi"), Some(&4));
    assert_eq!(usage.get("snapshots_multi"), Some(&1));
    assert_eq!(usage.get("volumes___DEFAULT__"), Some(&0));
    assert_eq!(usage.get("gigabytes"), Some(&4));
    assert_usage_matches_recount(db, "p-rt").await;
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        db.finish_volume_retype(v, multi.id).await,
        Err(DbError::InvalidState(_))
    ));
}
