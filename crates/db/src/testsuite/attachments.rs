//! Conformance checks of [`AttachmentRepository`]: the attachments API
//! state machine, the legacy attach actions, and the race a reservation must
//! win exactly once.

use std::sync::Arc;

use clinker_types::model::Volume;
use clinker_types::{AttachStatus, AttachmentId, VolumeId, VolumeStatus};
use serde_json::json;

use super::{assert_usage_matches_recount, default_type, new_volume, place};
use crate::*;

/// An `available` volume of project `project` (multiattach when asked).
async fn available_volume(db: &Db, project: &str, multiattach: bool) -> Volume {
    let type_id = default_type(db).await;
    let mut new = new_volume(project, 1, type_id);
    new.multiattach = multiattach;
    let v = db.create_volume(new).await.unwrap();
    place(db, v.id, 1).await;
    db.finish_volume_create(v.id, ProviderUpdate::default())
        .await
        .unwrap();
    db.get_volume(v.id).await.unwrap()
}

fn reservation(volume: VolumeId, instance: Option<&str>) -> NewAttachment {
    NewAttachment {
        id: AttachmentId::new_random(),
        volume_id: volume,
        instance_uuid: instance.map(str::to_owned),
        attach_mode: "null".into(),
    }
}

fn connection(host: &str) -> AttachmentConnection {
    AttachmentConnection {
        connector: json!({"initiator": "iqn.2004-10.org.clinker:test", "host": host}),
        connection_info: json!({"driver_volume_type": "iscsi", "target_lun": 1}),
        attached_host: Some(host.into()),
        mountpoint: Some("/dev/vdb".into()),
        attach_mode: "rw".into(),
    }
}

/// The invariant `Db::load_attachments` relies on, checked against the
/// rows themselves (listed without that shortcut).
async fn assert_invariant(db: &Db, id: VolumeId) -> Volume {
    let volume = db.get_volume(id).await.unwrap();
    let rows = db
        .list_attachments(&AttachmentQuery {
            filters: vec![(AttachmentColumn::VolumeId, FilterValue::Eq(id.to_string()))],
            ..AttachmentQuery::default()
        })
        .await
        .unwrap();
    if !rows.is_empty() {
        assert!(
            volume.attach_status != AttachStatus::Detached
                || matches!(
                    volume.status,
                    VolumeStatus::Reserved
                        | VolumeStatus::Attaching
                        | VolumeStatus::InUse
                        | VolumeStatus::Detaching
                ),
            "volume {id} is {} / {} with {} attachment rows",
            volume.status,
            volume.attach_status,
            rows.len()
        );
    }
    assert_eq!(
        volume.attachments.len(),
        rows.len(),
        "get_volume must load every live attachment row"
    );
    volume
}

pub async fn attachment_lifecycle(db: &Db) {
    let v = available_volume(db, "pa", false).await;
    // Reserve: the volume is held, the attachment has Cinder's `null` mode.
    let first = db
        .reserve_attachment(reservation(v.id, Some("inst-a")))
        .await
        .unwrap();
    assert_eq!(first.attach_status, AttachStatus::Reserved);
    assert_eq!(first.attach_mode.as_deref(), Some("null"));
    assert_eq!(first.instance_uuid.as_deref(), Some("inst-a"));
    assert_eq!(first.connection_info, Some(json!({})));
    let held = assert_invariant(db, v.id).await;
    assert_eq!(held.status, VolumeStatus::Reserved);
    // Another instance is refused with Cinder's reason; nothing is written.
    let err = db
        .reserve_attachment(reservation(v.id, Some("inst-b")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::InvalidState(m) if m == &format!(
            "Volume {} status must be available or downloading to reserve, but the current status is reserved.",
            v.id
        )),
        "{err:?}"
    );
    assert_eq!(assert_invariant(db, v.id).await.attachments.len(), 1);
    // The same instance may reserve again (live migration).
    let second = db
        .reserve_attachment(reservation(v.id, Some("inst-a")))
        .await
        .unwrap();
    assert_eq!(assert_invariant(db, v.id).await.attachments.len(), 2);
    let after = db.detach_attachment(v.id, Some(second.id)).await.unwrap();
    assert_eq!(after.status, VolumeStatus::Reserved);
    assert_eq!(after.attach_status, AttachStatus::Reserved);

    // Connect: attachment and volume are attaching, the connection stored.
    let connected = db
        .connect_attachment(first.id, connection("compute-1"))
        .await
        .unwrap();
    assert_eq!(connected.attach_status, AttachStatus::Attaching);
    assert_eq!(connected.attached_host.as_deref(), Some("compute-1"));
    assert_eq!(connected.mountpoint.as_deref(), Some("/dev/vdb"));
    assert_eq!(connected.attach_mode.as_deref(), Some("rw"));
    assert!(connected.attach_time.is_some());
    assert_eq!(
        connected.connector.as_ref().unwrap()["initiator"],
        "iqn.2004-10.org.clinker:test"
    );
    assert_eq!(connected.connection_info.as_ref().unwrap()["target_lun"], 1);
    let attaching = assert_invariant(db, v.id).await;
    assert_eq!(
        (attaching.status, attaching.attach_status),
        (VolumeStatus::Attaching, AttachStatus::Attaching)
    );

    // Complete: in use, attached, the mode recorded in admin metadata.
    let in_use = db.complete_attachment(first.id).await.unwrap();
    assert_eq!(
        (in_use.status, in_use.attach_status),
        (VolumeStatus::InUse, AttachStatus::Attached)
    );
    assert_eq!(
        in_use
            .admin_metadata
            .get("attached_mode")
            .map(String::as_str),
        Some("rw")
    );
    assert_eq!(in_use.attachments.len(), 1);
    assert_eq!(in_use.attachments[0].attach_status, AttachStatus::Attached);
    assert_invariant(db, v.id).await;
    // An attached volume cannot be deleted.
    assert!(matches!(
        db.begin_volume_delete(v.id, DeleteOptions::default()).await,
        Err(DbError::InvalidState(_))
    ));

    // Lists: by volume, instance, status, project scope and pages.
    let other = available_volume(db, "pb", false).await;
    let foreign = db
        .reserve_attachment(reservation(other.id, None))
        .await
        .unwrap();
    let list = |query: AttachmentQuery| async move {
        db.list_attachments(&query)
            .await
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(AttachmentQuery {
            project_id: Some("pa".into()),
            ..AttachmentQuery::default()
        })
        .await,
        [first.id]
    );
    assert_eq!(list(AttachmentQuery::default()).await.len(), 2);
    assert_eq!(
        list(AttachmentQuery {
            filters: vec![(
                AttachmentColumn::InstanceUuid,
                FilterValue::Eq("inst-a".into())
            )],
            ..AttachmentQuery::default()
        })
        .await,
        [first.id]
    );
    assert_eq!(
        list(AttachmentQuery {
            filters: vec![(
                AttachmentColumn::AttachStatus,
                FilterValue::Eq("reserved".into())
            )],
            ..AttachmentQuery::default()
        })
        .await,
        [foreign.id]
    );
    let oldest_first = list(AttachmentQuery {
        sort: vec![(AttachmentColumn::CreatedAt, SortDir::Asc)],
        page: Page {
            limit: Some(1),
            ..Page::default()
        },
        ..AttachmentQuery::default()
    })
    .await;
    assert_eq!(oldest_first, [first.id]);
    let next = list(AttachmentQuery {
        sort: vec![(AttachmentColumn::CreatedAt, SortDir::Asc)],
        page: Page {
            marker: Some(first.id),
            limit: Some(1),
            offset: None,
        },
        ..AttachmentQuery::default()
    })
    .await;
    assert_eq!(next, [foreign.id]);
    assert!(matches!(
        db.list_attachments(&AttachmentQuery {
            project_id: Some("pa".into()),
            page: Page {
                marker: Some(foreign.id),
                ..Page::default()
            },
            ..AttachmentQuery::default()
        })
        .await,
        Err(DbError::NotFound { .. })
    ));

    // Delete the last attachment: available and detached, mode gone.
    let gone = db.detach_attachment(v.id, Some(first.id)).await.unwrap();
    assert_eq!(
        (gone.status, gone.attach_status),
        (VolumeStatus::Available, AttachStatus::Detached)
    );
    assert!(!gone.admin_metadata.contains_key("attached_mode"));
    assert!(gone.attachments.is_empty());
    assert!(matches!(
        db.get_attachment(first.id).await,
        Err(DbError::NotFound { .. })
    ));
    // Deleting it again only settles the volume.
    assert_eq!(
        db.detach_attachment(v.id, Some(first.id))
            .await
            .unwrap()
            .status,
        VolumeStatus::Available
    );
    // A deleted attachment cannot be connected or completed.
    assert!(matches!(
        db.connect_attachment(first.id, connection("x")).await,
        Err(DbError::NotFound { .. })
    ));
    assert!(matches!(
        db.complete_attachment(first.id).await,
        Err(DbError::NotFound { .. })
    ));
    db.detach_attachment(other.id, Some(foreign.id))
        .await
        .unwrap();
    assert_eq!(
        assert_invariant(db, other.id).await.status,
        VolumeStatus::Available
    );
    // Volumes in error cannot be reserved; deletes still work.
    db.reset_volume_status(v.id, Some(VolumeStatus::Error), None, None)
        .await
        .unwrap();
    assert!(matches!(
        db.reserve_attachment(reservation(v.id, None)).await,
        Err(DbError::InvalidState(_))
    ));
    assert_usage_matches_recount(db, "pa").await;
}

pub async fn multiattach_and_failed_attachments(db: &Db) {
    let v = available_volume(db, "pm", true).await;
    let mut ids = Vec::new();
    for instance in ["vm-1", "vm-2"] {
        let a = db
            .reserve_attachment(reservation(v.id, Some(instance)))
            .await
            .unwrap();
        assert_eq!(
            assert_invariant(db, v.id).await.status,
            VolumeStatus::Reserved
        );
        db.connect_attachment(a.id, connection(instance))
            .await
            .unwrap();
        let done = db.complete_attachment(a.id).await.unwrap();
        assert_eq!(done.status, VolumeStatus::InUse);
        ids.push(a.id);
    }
    let both = assert_invariant(db, v.id).await;
    assert_eq!(both.attachments.len(), 2);
    // A third reservation fails on the backend: it holds the volume.
    let failed = db
        .reserve_attachment(reservation(v.id, Some("vm-3")))
        .await
        .unwrap();
    let failed = db.fail_attachment(failed.id).await.unwrap();
    assert_eq!(failed.attach_status, AttachStatus::ErrorAttaching);
    assert_eq!(
        assert_invariant(db, v.id).await.status,
        VolumeStatus::Reserved
    );
    // Detaching one attached instance: still in use.
    let one_left = db.detach_attachment(v.id, Some(ids[0])).await.unwrap();
    assert_eq!(
        (one_left.status, one_left.attach_status),
        (VolumeStatus::InUse, AttachStatus::Attached)
    );
    assert!(one_left.admin_metadata.contains_key("attached_mode"));
    // The last attached one: the failed attachment keeps it reserved.
    let failed_left = db.detach_attachment(v.id, Some(ids[1])).await.unwrap();
    assert_eq!(
        (failed_left.status, failed_left.attach_status),
        (VolumeStatus::Reserved, AttachStatus::Reserved)
    );
    assert!(!failed_left.admin_metadata.contains_key("attached_mode"));
    assert_invariant(db, v.id).await;
    let free = db.detach_attachment(v.id, Some(failed.id)).await.unwrap();
    assert_eq!(free.status, VolumeStatus::Available);
    assert!(matches!(
        db.fail_attachment(failed.id).await,
        Err(DbError::NotFound { .. })
    ));
    // A detach never moves a volume whose status belongs to an operation.
    let a = db
        .reserve_attachment(reservation(v.id, Some("vm-4")))
        .await
        .unwrap();
    db.connect_attachment(a.id, connection("vm-4"))
        .await
        .unwrap();
    db.complete_attachment(a.id).await.unwrap();
    db.begin_volume_extend(v.id, 2, true).await.unwrap();
    db.claim_extend("node1@file#file", 1, 1_000_000)
        .await
        .unwrap();
    let extending = db.detach_attachment(v.id, Some(a.id)).await.unwrap();
    assert_eq!(
        (extending.status, extending.attach_status),
        (VolumeStatus::Extending, AttachStatus::Detached)
    );
    db.finish_volume_extend(v.id, 2).await.unwrap();
    assert_usage_matches_recount(db, "pm").await;
}

pub async fn legacy_attach_actions(db: &Db) {
    let v = available_volume(db, "pl", false).await;
    // os-reserve / os-unreserve.
    assert_eq!(
        db.reserve_volume(v.id).await.unwrap().status,
        VolumeStatus::Attaching
    );
    let err = db.reserve_volume(v.id).await.unwrap_err();
    assert!(
        matches!(&err, DbError::InvalidState(m)
            if m == "Volume status must be available to reserve, but the status is attaching."),
        "{err:?}"
    );
    assert_eq!(
        db.unreserve_volume(v.id).await.unwrap().status,
        VolumeStatus::Available
    );
    // Unreserving a volume that is not reserved changes nothing.
    assert_eq!(
        db.unreserve_volume(v.id).await.unwrap().status,
        VolumeStatus::Available
    );
    // os-reserve, os-attach.
    db.reserve_volume(v.id).await.unwrap();
    let attach = |instance: &str| LegacyAttach {
        volume_id: v.id,
        instance_uuid: Some(instance.into()),
        host_name: None,
        mountpoint: "/dev/vdc".into(),
        mode: "rw".into(),
    };
    let attached = db.attach_volume(attach("server-1")).await.unwrap();
    assert_eq!(attached.attach_status, AttachStatus::Attached);
    assert_eq!(attached.mountpoint.as_deref(), Some("/dev/vdc"));
    assert!(attached.connection_info.is_none());
    let in_use = assert_invariant(db, v.id).await;
    assert_eq!(
        (in_use.status, in_use.attach_status),
        (VolumeStatus::InUse, AttachStatus::Attached)
    );
    assert_eq!(
        in_use.admin_metadata.get("readonly").map(String::as_str),
        Some("False")
    );
    assert_eq!(
        in_use
            .admin_metadata
            .get("attached_mode")
            .map(String::as_str),
        Some("rw")
    );
    // A repeated attach of the same instance returns the same attachment.
    assert_eq!(
        db.attach_volume(attach("server-1")).await.unwrap().id,
        attached.id
    );
    assert_eq!(assert_invariant(db, v.id).await.attachments.len(), 1);
    // Another instance cannot attach a volume that is not multiattach.
    assert!(matches!(
        db.attach_volume(attach("server-2")).await,
        Err(DbError::InvalidState(m)) if m == "volume is already attached and multiple attachments are not enabled"
    ));
    // os-begin_detaching / os-roll_detaching.
    assert_eq!(
        db.begin_detaching(v.id).await.unwrap().status,
        VolumeStatus::Detaching
    );
    assert!(matches!(
        db.begin_detaching(v.id).await,
        Err(DbError::InvalidState(m)) if m.starts_with("Unable to detach volume.")
    ));
    assert_eq!(
        db.roll_detaching(v.id).await.unwrap().status,
        VolumeStatus::InUse
    );
    assert_eq!(
        db.roll_detaching(v.id).await.unwrap().status,
        VolumeStatus::InUse,
        "rolling back a volume that is not detaching changes nothing"
    );
    // os-detach.
    db.begin_detaching(v.id).await.unwrap();
    let free = db.detach_attachment(v.id, Some(attached.id)).await.unwrap();
    assert_eq!(
        (free.status, free.attach_status),
        (VolumeStatus::Available, AttachStatus::Detached)
    );
    assert!(!free.admin_metadata.contains_key("attached_mode"));
    assert_eq!(
        free.admin_metadata.get("readonly").map(String::as_str),
        Some("False")
    );
    // A host attach (no instance), and a detach of everything (reset).
    let by_host = db
        .attach_volume(LegacyAttach {
            instance_uuid: None,
            host_name: Some("backup-host".into()),
            ..attach("unused")
        })
        .await
        .unwrap();
    assert_eq!(by_host.attached_host.as_deref(), Some("backup-host"));
    assert_invariant(db, v.id).await;
    // Settling alone removes nothing.
    assert_eq!(
        db.detach_attachment(v.id, None).await.unwrap().status,
        VolumeStatus::InUse
    );
    assert_eq!(
        db.detach_all_attachments(v.id).await.unwrap().status,
        VolumeStatus::Available
    );
    // An error volume (administrator reset) detaches to available.
    db.attach_volume(attach("server-3")).await.unwrap();
    db.reset_volume_status(v.id, Some(VolumeStatus::Error), None, None)
        .await
        .unwrap();
    assert_eq!(
        db.detach_all_attachments(v.id).await.unwrap().status,
        VolumeStatus::Available
    );
    // Stored exports keep what the driver did not set.
    db.save_export(
        v.id,
        ProviderUpdate {
            provider_location: Some("127.0.0.1:3260,1 iqn.x 1".into()),
            provider_auth: Some("CHAP u p".into()),
            provider_id: None,
        },
    )
    .await
    .unwrap();
    db.save_export(v.id, ProviderUpdate::default())
        .await
        .unwrap();
    let stored = db.get_volume(v.id).await.unwrap();
    assert_eq!(stored.provider_auth.as_deref(), Some("CHAP u p"));
    assert_eq!(
        stored.provider_location.as_deref(),
        Some("127.0.0.1:3260,1 iqn.x 1")
    );
    assert!(matches!(
        db.save_export(VolumeId::new_random(), ProviderUpdate::default())
            .await,
        Err(DbError::NotFound { .. })
    ));
}

/// Many concurrent reservations of one volume that is not multiattach:
/// exactly one wins, on every engine.
pub async fn concurrent_attachment_creates_reserve_once(db: &Db) {
    let v = available_volume(db, "pr", false).await;
    let db = Arc::new(db.clone());
    let mut tasks = Vec::new();
    for i in 0..24 {
        let db = db.clone();
        let instance = format!("instance-{i}");
        tasks.push(tokio::spawn(async move {
            db.reserve_attachment(reservation(v.id, Some(&instance)))
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(DbError::InvalidState(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one reservation may win");
    let held = assert_invariant(&db, v.id).await;
    assert_eq!(held.status, VolumeStatus::Reserved);
    assert_eq!(held.attachments.len(), 1);
    // The legacy reserve races the same way.
    let legacy = available_volume(&db, "pr", false).await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let db = db.clone();
        tasks.push(tokio::spawn(
            async move { db.reserve_volume(legacy.id).await },
        ));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    // A reservation racing a completion and a detach of another attachment
    // of a multiattach volume leaves a consistent volume.
    let shared = available_volume(&db, "pr", true).await;
    let first = db
        .reserve_attachment(reservation(shared.id, Some("a")))
        .await
        .unwrap();
    db.connect_attachment(first.id, connection("a"))
        .await
        .unwrap();
    db.complete_attachment(first.id).await.unwrap();
    let racer = {
        let db = db.clone();
        tokio::spawn(async move {
            db.reserve_attachment(reservation(shared.id, Some("b")))
                .await
        })
    };
    let detacher = {
        let db = db.clone();
        tokio::spawn(async move { db.detach_attachment(shared.id, Some(first.id)).await })
    };
    let reserved = racer.await.unwrap().unwrap();
    detacher.await.unwrap().unwrap();
    let settled = assert_invariant(&db, shared.id).await;
    assert_eq!(settled.status, VolumeStatus::Reserved);
    assert_eq!(settled.attachments.len(), 1);
    assert_eq!(settled.attachments[0].id, reserved.id);
}
