//! The group methods of the volume and scheduler RPC APIs: what the clients
//! put on the bus, and how the endpoints dispatch it (a manager that does
//! not serve groups answers `NotImplemented`, not a dispatch error).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clinker_rpc::local::LocalTransport;
use clinker_rpc::scheduler::{
    GetPoolsArgs, ScheduleCreateGroupArgs, ScheduleCreateVolumeArgs, ScheduleExtendVolumeArgs,
    SchedulerEndpoint, SchedulerManagerApi, SchedulerRpcClient, UpdateServiceCapabilitiesArgs,
};
use clinker_rpc::volume::{
    AttachmentDeleteArgs, AttachmentUpdateArgs, CreateGroupArgs, CreateGroupSnapshotArgs,
    CreateSnapshotArgs, CreateVolumeArgs, DeleteGroupArgs, DeleteGroupSnapshotArgs,
    DeleteSnapshotArgs, DeleteVolumeArgs, DetachVolumeArgs, ExtendVolumeArgs, GetCapabilitiesArgs,
    InitializeConnectionArgs, RemoveExportArgs, TerminateConnectionArgs, VolumeEndpoint,
    VolumeManagerApi, VolumeRpcClient,
};
use clinker_rpc::{
    RequestContext, RpcHandler, RpcMessage, Subscription, Target, Transport, Version,
};
use clinker_types::connection::ConnectionInfo;
use clinker_types::{ErrorKind, GroupId, GroupSnapshotId, RemoteError};
use serde_json::Value;

/// The answer for the attach methods, which these tests do not exercise.
fn not_here(method: &str) -> RemoteError {
    RemoteError::new(
        ErrorKind::NotImplemented,
        format!("{method} is not served here"),
    )
}

/// A volume manager that serves only `create_group` among the group
/// methods, and records it.
#[derive(Default)]
struct PartialManager {
    groups: Mutex<Vec<GroupId>>,
}

#[async_trait::async_trait]
impl VolumeManagerApi for PartialManager {
    async fn create_volume(
        &self,
        _: RequestContext,
        _: CreateVolumeArgs,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn delete_volume(
        &self,
        _: RequestContext,
        _: DeleteVolumeArgs,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn create_snapshot(
        &self,
        _: RequestContext,
        _: CreateSnapshotArgs,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn delete_snapshot(
        &self,
        _: RequestContext,
        _: DeleteSnapshotArgs,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn extend_volume(
        &self,
        _: RequestContext,
        _: ExtendVolumeArgs,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn get_capabilities(
        &self,
        _: RequestContext,
        _: GetCapabilitiesArgs,
    ) -> Result<Value, RemoteError> {
        Ok(Value::Null)
    }
    async fn publish_service_capabilities(&self, _: RequestContext) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn attachment_update(
        &self,
        _: RequestContext,
        _: AttachmentUpdateArgs,
    ) -> Result<serde_json::Map<String, Value>, RemoteError> {
        Err(not_here("attachment_update"))
    }
    async fn attachment_delete(
        &self,
        _: RequestContext,
        _: AttachmentDeleteArgs,
    ) -> Result<(), RemoteError> {
        Err(not_here("attachment_delete"))
    }
    async fn initialize_connection(
        &self,
        _: RequestContext,
        _: InitializeConnectionArgs,
    ) -> Result<ConnectionInfo, RemoteError> {
        Err(not_here("initialize_connection"))
    }
    async fn terminate_connection(
        &self,
        _: RequestContext,
        _: TerminateConnectionArgs,
    ) -> Result<(), RemoteError> {
        Err(not_here("terminate_connection"))
    }
    async fn detach_volume(
        &self,
        _: RequestContext,
        _: DetachVolumeArgs,
    ) -> Result<(), RemoteError> {
        Err(not_here("detach_volume"))
    }
    async fn remove_export(
        &self,
        _: RequestContext,
        _: RemoveExportArgs,
    ) -> Result<(), RemoteError> {
        Err(not_here("remove_export"))
    }
    async fn create_group(
        &self,
        _: RequestContext,
        args: CreateGroupArgs,
    ) -> Result<(), RemoteError> {
        self.groups.lock().unwrap().push(args.group_id);
        Ok(())
    }
}

/// A scheduler that serves nothing but the required methods.
struct PlainScheduler;

#[async_trait::async_trait]
impl SchedulerManagerApi for PlainScheduler {
    async fn create_volume(
        &self,
        _: RequestContext,
        _: ScheduleCreateVolumeArgs,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn extend_volume(
        &self,
        _: RequestContext,
        _: ScheduleExtendVolumeArgs,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn update_service_capabilities(
        &self,
        _: RequestContext,
        _: UpdateServiceCapabilitiesArgs,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn get_pools(&self, _: RequestContext, _: GetPoolsArgs) -> Result<Value, RemoteError> {
        Ok(Value::Null)
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<RpcMessage>>);

#[async_trait::async_trait]
impl RpcHandler for Recorder {
    async fn handle(&self, message: RpcMessage) -> Result<Value, RemoteError> {
        self.0.lock().unwrap().push(message);
        Ok(Value::Null)
    }
}

fn message(method: &str, args: Value) -> RpcMessage {
    RpcMessage {
        method: method.into(),
        version: Version::new(3, 0),
        args,
        context: RequestContext::internal("test"),
    }
}

#[tokio::test]
async fn volume_endpoint_dispatches_group_methods() {
    let manager = Arc::new(PartialManager::default());
    let endpoint = VolumeEndpoint::new(manager.clone());
    let group = GroupId::new_random();
    let served = endpoint
        .handle(message(
            "create_group",
            serde_json::to_value(CreateGroupArgs { group_id: group }).unwrap(),
        ))
        .await;
    assert_eq!(served, Ok(Value::Null));
    assert_eq!(*manager.groups.lock().unwrap(), vec![group]);

    // The methods this manager does not override answer NotImplemented.
    for (method, args) in [
        (
            "delete_group",
            serde_json::to_value(DeleteGroupArgs { group_id: group }).unwrap(),
        ),
        (
            "create_group_snapshot",
            serde_json::to_value(CreateGroupSnapshotArgs {
                group_snapshot_id: GroupSnapshotId::new_random(),
            })
            .unwrap(),
        ),
        (
            "delete_group_snapshot",
            serde_json::to_value(DeleteGroupSnapshotArgs {
                group_snapshot_id: GroupSnapshotId::new_random(),
            })
            .unwrap(),
        ),
    ] {
        let err = endpoint.handle(message(method, args)).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotImplemented, "{method}: {err}");
    }
    // Bad arguments are refused before reaching the manager.
    assert!(
        endpoint
            .handle(message(
                "create_group",
                serde_json::json!({"group_id": "x"})
            ))
            .await
            .is_err()
    );
    assert_eq!(manager.groups.lock().unwrap().len(), 1);

    let scheduler = SchedulerEndpoint::new(Arc::new(PlainScheduler));
    let err = scheduler
        .handle(message(
            "create_group",
            serde_json::to_value(ScheduleCreateGroupArgs { group_id: group }).unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotImplemented);
}

#[tokio::test]
async fn clients_cast_group_methods_to_the_right_queues() {
    let transport = Arc::new(LocalTransport::new());
    let backend = Arc::new(Recorder::default());
    let scheduler = Arc::new(Recorder::default());
    let _b = transport
        .consume(
            vec![Subscription::Queue(Target::server(
                "cinder-volume",
                "node1@file",
            ))],
            backend.clone(),
        )
        .await
        .unwrap();
    let _s = transport
        .consume(
            vec![Subscription::Queue(Target::topic("cinder-scheduler"))],
            scheduler.clone(),
        )
        .await
        .unwrap();
    let volume_rpc = VolumeRpcClient::new(transport.clone(), Duration::from_secs(5));
    let scheduler_rpc = SchedulerRpcClient::new(transport.clone(), Duration::from_secs(5));
    let ctx = RequestContext::internal("test");
    let group = GroupId::new_random();
    let snap = GroupSnapshotId::new_random();
    // The pool part of a group's host does not matter for the queue.
    let host = "node1@file#file";
    volume_rpc
        .create_group(&ctx, host, &CreateGroupArgs { group_id: group })
        .await
        .unwrap();
    volume_rpc
        .delete_group(&ctx, host, &DeleteGroupArgs { group_id: group })
        .await
        .unwrap();
    volume_rpc
        .create_group_snapshot(
            &ctx,
            host,
            &CreateGroupSnapshotArgs {
                group_snapshot_id: snap,
            },
        )
        .await
        .unwrap();
    volume_rpc
        .delete_group_snapshot(
            &ctx,
            host,
            &DeleteGroupSnapshotArgs {
                group_snapshot_id: snap,
            },
        )
        .await
        .unwrap();
    scheduler_rpc
        .create_group(&ctx, &ScheduleCreateGroupArgs { group_id: group })
        .await
        .unwrap();
    // A backend nobody serves is an immediate error, not a lost message.
    assert!(
        volume_rpc
            .create_group(
                &ctx,
                "node2@file#file",
                &CreateGroupArgs { group_id: group }
            )
            .await
            .is_err()
    );
    for _ in 0..200 {
        if backend.0.lock().unwrap().len() == 4 && scheduler.0.lock().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen: Vec<(String, Version, Value)> = backend
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.method.clone(), m.version, m.args.clone()))
        .collect();
    let v30 = Version::new(3, 0);
    assert_eq!(
        seen,
        vec![
            (
                "create_group".to_owned(),
                v30,
                serde_json::json!({"group_id": group.to_string()})
            ),
            (
                "delete_group".to_owned(),
                v30,
                serde_json::json!({"group_id": group.to_string()})
            ),
            (
                "create_group_snapshot".to_owned(),
                v30,
                serde_json::json!({"group_snapshot_id": snap.to_string()})
            ),
            (
                "delete_group_snapshot".to_owned(),
                v30,
                serde_json::json!({"group_snapshot_id": snap.to_string()})
            ),
        ]
    );
    let scheduled = scheduler.0.lock().unwrap();
    assert_eq!(scheduled[0].method, "create_group");
    assert_eq!(scheduled[0].args["group_id"], group.to_string());
}
