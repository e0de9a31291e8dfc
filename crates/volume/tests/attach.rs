//! The volume manager's attach paths over a real SQLite database and the
//! file driver, exported through a target helper that records its targets:
//! what a connection returns, when exports come and go, what a failure
//! leaves behind, and the start-up reconcile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clinker_config::{TargetConfig, TargetHelperKind};
use clinker_db::testsuite::{Engine, TestDatabase, new_volume};
use clinker_db::{ClaimOutcome, DbHandle, LegacyAttach, NewAttachment, Page, ProviderUpdate};
use clinker_drivers::file::FileDriver;
use clinker_drivers::targets::{ChapCredentials, IscsiSettings, ListedTarget, TargetHelper};
use clinker_drivers::{DriverError, VolumeDriver, VolumeSpec};
use clinker_exec::HostRunner;
use clinker_rpc::RequestContext;
use clinker_rpc::local::LocalTransport;
use clinker_rpc::notify::Notifier;
use clinker_rpc::scheduler::SchedulerRpcClient;
use clinker_rpc::volume::{
    AttachmentDeleteArgs, AttachmentUpdateArgs, DetachVolumeArgs, InitializeConnectionArgs,
    RemoveExportArgs, TerminateConnectionArgs, VolumeManagerApi,
};
use clinker_types::{AttachStatus, AttachmentId, ErrorKind, SystemClock, VolumeId, VolumeStatus};
use clinker_volume::{ManagerOptions, VolumeManager};
use serde_json::{Map, Value, json};

/// A target helper that keeps its targets in memory and records which
/// initiators were let go.
#[derive(Debug)]
struct RecordingTarget {
    settings: IscsiSettings,
    /// IQN → backing store.
    targets: Mutex<BTreeMap<String, PathBuf>>,
    denied: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl TargetHelper for RecordingTarget {
    fn helper_name(&self) -> &'static str {
        "recording"
    }

    fn settings(&self) -> &IscsiSettings {
        &self.settings
    }

    fn lun(&self) -> u32 {
        1
    }

    async fn create_iscsi_target(
        &self,
        _volume: &VolumeSpec,
        iqn: &str,
        path: &Path,
        _chap: &ChapCredentials,
    ) -> Result<String, DriverError> {
        if !path.exists() {
            return Err(DriverError::NotFound(format!(
                "{} is missing",
                path.display()
            )));
        }
        self.targets
            .lock()
            .unwrap()
            .insert(iqn.to_owned(), path.to_path_buf());
        Ok("1".into())
    }

    async fn remove_iscsi_target(&self, _volume_name: &str, iqn: &str) -> Result<(), DriverError> {
        self.targets.lock().unwrap().remove(iqn);
        Ok(())
    }

    async fn list_targets(&self) -> Result<Vec<ListedTarget>, DriverError> {
        Ok(self
            .targets
            .lock()
            .unwrap()
            .iter()
            .map(|(iqn, path)| ListedTarget {
                iqn: iqn.clone(),
                backing_store: Some(path.clone()),
            })
            .collect())
    }

    async fn target_is_complete(&self, iqn: &str) -> Result<bool, DriverError> {
        Ok(self.targets.lock().unwrap().contains_key(iqn))
    }

    async fn deny_initiator(&self, _iqn: &str, initiator: &str) -> Result<(), DriverError> {
        self.denied.lock().unwrap().push(initiator.to_owned());
        Ok(())
    }
}

struct Bench {
    manager: Arc<VolumeManager>,
    db: DbHandle,
    target: Arc<RecordingTarget>,
    dir: tempfile::TempDir,
    _database: TestDatabase,
}

const POOL: &str = "node1@file#file";

impl Bench {
    async fn start() -> Self {
        let database = TestDatabase::open(Engine::Sqlite).await.unwrap();
        let db: DbHandle = Arc::new(database.db.clone());
        let dir = tempfile::tempdir().unwrap();
        let mut target_config =
            TargetConfig::with_defaults(TargetHelperKind::Fake, dir.path().join("targets"));
        target_config.target_port = 3260;
        let target = Arc::new(RecordingTarget {
            settings: IscsiSettings::from_config(&target_config),
            targets: Mutex::new(BTreeMap::new()),
            denied: Mutex::new(Vec::new()),
        });
        let options = clinker_testkit::config::file_options(&dir.path().join("vols"));
        let backend = clinker_testkit::config::file_backend(&options.volumes_dir, target_config);
        let helper: Arc<dyn TargetHelper> = target.clone();
        let driver: Arc<dyn VolumeDriver> = Arc::new(
            FileDriver::new(&backend, options, Arc::new(HostRunner::new()))
                .with_target(Some(helper)),
        );
        let transport = Arc::new(LocalTransport::new());
        let clock = Arc::new(SystemClock);
        let manager = Arc::new(VolumeManager::new(
            ManagerOptions {
                host: "node1@file".into(),
                message_ttl: 3600,
            },
            backend,
            driver,
            db.clone(),
            SchedulerRpcClient::new(transport.clone(), Duration::from_secs(1)),
            Notifier::new(transport, "volume.node1@file", clock.clone()),
            clock,
        ));
        manager.init_host().await;
        assert!(manager.health().up, "{:?}", manager.health());
        Self {
            manager,
            db,
            target,
            dir,
            _database: database,
        }
    }

    /// An `available` volume whose file exists.
    async fn volume(&self, multiattach: bool) -> VolumeId {
        let type_id = self
            .db
            .get_volume_type_by_name("__DEFAULT__")
            .await
            .unwrap()
            .id;
        let mut new = new_volume("p", 1, type_id);
        new.multiattach = multiattach;
        let id = new.id;
        self.db.create_volume(new).await.unwrap();
        assert_eq!(
            self.db
                .claim_volume_placement(id, POOL, 1, 1_000_000)
                .await
                .unwrap(),
            ClaimOutcome::Claimed
        );
        // What the driver's create_volume does: a sparse file.
        std::fs::File::create(self.dir.path().join("vols").join(format!("volume-{id}")))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        self.db
            .finish_volume_create(id, ProviderUpdate::default())
            .await
            .unwrap();
        assert!(
            self.dir
                .path()
                .join("vols")
                .join(format!("volume-{id}"))
                .exists()
        );
        id
    }

    fn iqn(&self, id: VolumeId) -> String {
        format!("iqn.2010-10.org.openstack:volume-{id}")
    }

    fn targets(&self) -> BTreeSet<String> {
        self.target
            .targets
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    async fn reserve(&self, volume: VolumeId, instance: &str, mode: &str) -> AttachmentId {
        self.db
            .reserve_attachment(NewAttachment {
                id: AttachmentId::new_random(),
                volume_id: volume,
                instance_uuid: Some(instance.into()),
                attach_mode: mode.into(),
            })
            .await
            .unwrap()
            .id
    }

    async fn update(
        &self,
        volume: VolumeId,
        attachment: AttachmentId,
        connector: Value,
    ) -> Result<Map<String, Value>, clinker_types::RemoteError> {
        self.manager
            .attachment_update(
                RequestContext::default(),
                AttachmentUpdateArgs {
                    volume_id: volume,
                    attachment_id: attachment,
                    connector: connector.as_object().unwrap().clone(),
                },
            )
            .await
    }

    async fn delete(&self, volume: VolumeId, attachment: AttachmentId) {
        self.manager
            .attachment_delete(
                RequestContext::default(),
                AttachmentDeleteArgs {
                    volume_id: volume,
                    attachment_id: attachment,
                },
            )
            .await
            .unwrap();
    }
}

fn connector(initiator: &str) -> Value {
    json!({"initiator": initiator, "ip": "127.0.0.1", "host": "compute-1", "multipath": false})
}

#[tokio::test]
async fn attachment_update_exports_and_returns_the_flattened_connection() {
    let bench = Bench::start().await;
    let v = bench.volume(false).await;
    let a = bench.reserve(v, "vm-1", "null").await;

    // A connector without an initiator is refused and changes nothing.
    let refused = bench
        .update(v, a, json!({"host": "compute-1"}))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::InvalidInput);
    assert_eq!(
        refused.message,
        "Invalid input received: Connector doesn't have required information: initiator"
    );
    assert_eq!(
        bench.db.get_attachment(a).await.unwrap().attach_status,
        AttachStatus::Reserved
    );
    assert!(bench.targets().is_empty());
    assert!(
        bench
            .db
            .get_volume(v)
            .await
            .unwrap()
            .provider_auth
            .is_none()
    );

    let info = bench
        .update(v, a, connector("iqn.2004-10.org.clinker:test"))
        .await
        .unwrap();
    // Flattened: data keys at the top, plus the type and the attachment.
    assert_eq!(info["driver_volume_type"], "iscsi");
    assert_eq!(info["attachment_id"], a.to_string());
    assert_eq!(info["target_iqn"], bench.iqn(v));
    assert_eq!(info["target_portal"], "127.0.0.1:3260");
    assert_eq!(info["target_lun"], 1);
    assert_eq!(info["auth_method"], "CHAP");
    assert_eq!(info["access_mode"], "rw");
    assert_eq!(info["discard"], true, "sparse files discard");
    assert_eq!(info["encrypted"], false);
    assert_eq!(info["cacheable"], false);
    assert_eq!(info["qos_specs"], Value::Null);
    assert_eq!(info["enforce_multipath"], false);
    assert!(info.get("data").is_none());
    assert_eq!(bench.targets(), BTreeSet::from([bench.iqn(v)]));

    // Stored: the export's credentials on the volume, the connection on
    // the attachment, both attaching.
    let volume = bench.db.get_volume(v).await.unwrap();
    assert_eq!(volume.status, VolumeStatus::Attaching);
    let auth = volume.provider_auth.unwrap();
    assert_eq!(info["auth_password"], auth.split(' ').nth(2).unwrap());
    let attachment = bench.db.get_attachment(a).await.unwrap();
    assert_eq!(attachment.attach_status, AttachStatus::Attaching);
    assert_eq!(attachment.connection_info.unwrap(), Value::Object(info));
    assert_eq!(attachment.attached_host.as_deref(), Some("compute-1"));
    assert_eq!(attachment.mountpoint.as_deref(), Some("na"));
    assert_eq!(attachment.attach_mode.as_deref(), Some("rw"));

    // Delete: the connection ends, the export goes, the volume is free.
    bench.db.complete_attachment(a).await.unwrap();
    bench.delete(v, a).await;
    assert!(bench.targets().is_empty());
    assert_eq!(
        bench.target.denied.lock().unwrap().as_slice(),
        ["iqn.2004-10.org.clinker:test"]
    );
    let free = bench.db.get_volume(v).await.unwrap();
    assert_eq!(free.status, VolumeStatus::Available);
    assert!(free.attachments.is_empty());
    // Deleting again is a no-op.
    bench.delete(v, a).await;
}

#[tokio::test]
async fn modes_and_readonly_decide_access_mode() {
    let bench = Bench::start().await;
    let v = bench.volume(false).await;
    let a = bench.reserve(v, "vm-1", "ro").await;
    let info = bench.update(v, a, connector("iqn.a")).await.unwrap();
    assert_eq!(info["access_mode"], "ro");
    let stored = bench.db.get_attachment(a).await.unwrap();
    assert_eq!(stored.attach_mode.as_deref(), Some("ro"));
    assert_eq!(stored.connector.unwrap()["mode"], "ro");
    bench.delete(v, a).await;
    // The legacy path: the readonly flag decides.
    bench
        .db
        .set_volume_metadata(
            v,
            clinker_db::MetadataKind::Admin,
            &[("readonly".to_owned(), "True".to_owned())].into(),
            false,
        )
        .await
        .unwrap();
    let legacy = bench
        .manager
        .initialize_connection(
            RequestContext::default(),
            InitializeConnectionArgs {
                volume_id: v,
                connector: connector("iqn.a").as_object().unwrap().clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(legacy.driver_volume_type, "iscsi");
    assert_eq!(legacy.data["access_mode"], "ro");
    assert_eq!(legacy.data["enforce_multipath"], false);
}

#[tokio::test]
async fn exports_stay_while_another_attachment_uses_them() {
    let bench = Bench::start().await;
    let v = bench.volume(true).await;
    let first = bench.reserve(v, "vm-1", "null").await;
    bench
        .update(v, first, connector("iqn.host-1"))
        .await
        .unwrap();
    bench.db.complete_attachment(first).await.unwrap();
    let second = bench.reserve(v, "vm-2", "null").await;
    bench
        .update(v, second, connector("iqn.host-1"))
        .await
        .unwrap();
    bench.db.complete_attachment(second).await.unwrap();
    // The first goes: same host, so its connection stays, and the export
    // stays for the second.
    bench.delete(v, first).await;
    assert!(bench.target.denied.lock().unwrap().is_empty());
    assert_eq!(bench.targets(), BTreeSet::from([bench.iqn(v)]));
    assert_eq!(
        bench.db.get_volume(v).await.unwrap().status,
        VolumeStatus::InUse
    );
    // A remove_export cast while the second is attached changes nothing.
    bench
        .manager
        .remove_export(RequestContext::default(), RemoveExportArgs { volume_id: v })
        .await
        .unwrap();
    assert_eq!(bench.targets().len(), 1);
    bench.delete(v, second).await;
    assert!(bench.targets().is_empty());
    assert_eq!(
        bench.target.denied.lock().unwrap().as_slice(),
        ["iqn.host-1"]
    );
}

#[tokio::test]
async fn a_backend_failure_leaves_error_attaching_and_a_message() {
    let bench = Bench::start().await;
    let v = bench.volume(false).await;
    let a = bench.reserve(v, "vm-1", "null").await;
    // The backing file vanished: the export cannot be created.
    std::fs::remove_file(bench.dir.path().join("vols").join(format!("volume-{v}"))).unwrap();
    let err = bench.update(v, a, connector("iqn.a")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(
        err.message.contains("Create export for volume failed"),
        "{}",
        err.message
    );
    assert_eq!(
        bench.db.get_attachment(a).await.unwrap().attach_status,
        AttachStatus::ErrorAttaching
    );
    // The volume stays reserved, held by the failed attachment.
    assert_eq!(
        bench.db.get_volume(v).await.unwrap().status,
        VolumeStatus::Reserved
    );
    let messages = bench
        .db
        .list_messages(Some("p"), &Page::default())
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].user_message,
        "update attachment:Failed to attach volume."
    );
    assert_eq!(messages[0].event_id, "VOLUME_VOLUME_004_021");
    assert!(bench.targets().is_empty());
    // Deleting the failed attachment frees the volume.
    bench.delete(v, a).await;
    assert_eq!(
        bench.db.get_volume(v).await.unwrap().status,
        VolumeStatus::Available
    );
}

#[tokio::test]
async fn legacy_flow_keeps_the_export_until_the_detach() {
    let bench = Bench::start().await;
    let v = bench.volume(false).await;
    bench.db.reserve_volume(v).await.unwrap();
    let info = bench
        .manager
        .initialize_connection(
            RequestContext::default(),
            InitializeConnectionArgs {
                volume_id: v,
                connector: connector("iqn.legacy").as_object().unwrap().clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(info.data["target_iqn"], bench.iqn(v));
    // os-reserve + os-initialize_connection: an attach is under way, so a
    // stray remove_export must not take the export away.
    bench
        .manager
        .remove_export(RequestContext::default(), RemoveExportArgs { volume_id: v })
        .await
        .unwrap();
    assert_eq!(bench.targets().len(), 1);
    let attachment = bench
        .db
        .attach_volume(LegacyAttach {
            volume_id: v,
            instance_uuid: Some("vm-1".into()),
            host_name: None,
            mountpoint: "/dev/vdb".into(),
            mode: "rw".into(),
        })
        .await
        .unwrap();
    bench
        .manager
        .terminate_connection(
            RequestContext::default(),
            TerminateConnectionArgs {
                volume_id: v,
                connector: Some(connector("iqn.legacy").as_object().unwrap().clone()),
                force: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        bench.target.denied.lock().unwrap().as_slice(),
        ["iqn.legacy"]
    );
    bench
        .manager
        .detach_volume(
            RequestContext::default(),
            DetachVolumeArgs {
                volume_id: v,
                attachment_id: Some(attachment.id),
            },
        )
        .await
        .unwrap();
    assert!(bench.targets().is_empty());
    let free = bench.db.get_volume(v).await.unwrap();
    assert_eq!(
        (free.status, free.attach_status),
        (VolumeStatus::Available, AttachStatus::Detached)
    );
    // A detach of an attachment that is gone only settles the volume.
    bench
        .manager
        .detach_volume(
            RequestContext::default(),
            DetachVolumeArgs {
                volume_id: v,
                attachment_id: Some(attachment.id),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn start_up_removes_stale_exports_and_keeps_wanted_ones() {
    let bench = Bench::start().await;
    let attached = bench.volume(false).await;
    let a = bench.reserve(attached, "vm-1", "null").await;
    bench.update(attached, a, connector("iqn.a")).await.unwrap();
    bench.db.complete_attachment(a).await.unwrap();
    // A crash between a detach and its export removal leaves a target of a
    // volume nobody uses.
    let stale = bench.volume(false).await;
    let b = bench.reserve(stale, "vm-2", "null").await;
    bench.update(stale, b, connector("iqn.b")).await.unwrap();
    bench.db.detach_attachment(stale, Some(b)).await.unwrap();
    assert_eq!(bench.targets().len(), 2);
    // And the attached volume's target was lost (a tgtd restart).
    bench
        .target
        .targets
        .lock()
        .unwrap()
        .remove(&bench.iqn(attached));
    // Another backend on this host exports through the same tgtd, with
    // the same IQN prefix: its target is not this backend's to remove
    // (found by scripts/nested-vm-test.sh: restarting the service took
    // the other backends' in-use exports away).
    let other_backend = format!(
        "iqn.2010-10.org.openstack:volume-{}",
        VolumeId::new_random()
    );
    bench.target.targets.lock().unwrap().insert(
        other_backend.clone(),
        PathBuf::from("/dev/other-vg/volume-of-another-backend"),
    );
    bench.manager.init_host().await;
    assert_eq!(
        bench.targets(),
        BTreeSet::from([bench.iqn(attached), other_backend])
    );
    assert_eq!(
        bench.db.get_volume(attached).await.unwrap().status,
        VolumeStatus::InUse
    );
}
