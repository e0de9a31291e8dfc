//! The attach half of the volume RPC client: method names, versions (Cinder's
//! history), arguments on the wire, and the typed replies.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clinker_rpc::local::LocalTransport;
use clinker_rpc::volume::{
    AttachmentDeleteArgs, AttachmentUpdateArgs, DetachVolumeArgs, InitializeConnectionArgs,
    RemoveExportArgs, TerminateConnectionArgs, VolumeRpcClient,
};
use clinker_rpc::{
    RequestContext, RpcError, RpcHandler, RpcMessage, Subscription, Target, Transport, Version,
};
use clinker_types::{AttachmentId, RemoteError, VolumeId};
use serde_json::{Value, json};

/// Answers like a volume manager would, and records what arrived.
#[derive(Default)]
struct Backend {
    seen: Mutex<Vec<RpcMessage>>,
    malformed: bool,
}

#[async_trait::async_trait]
impl RpcHandler for Backend {
    async fn handle(&self, message: RpcMessage) -> Result<Value, RemoteError> {
        let method = message.method.clone();
        self.seen.lock().unwrap().push(message);
        if self.malformed {
            return Ok(json!("not a connection"));
        }
        Ok(match method.as_str() {
            "attachment_update" => {
                json!({"driver_volume_type": "iscsi", "target_lun": 1, "attachment_id": "a"})
            }
            "initialize_connection" => {
                json!({"driver_volume_type": "iscsi", "data": {"target_lun": 1}})
            }
            _ => Value::Null,
        })
    }
}

async fn client(backend: Arc<Backend>) -> (VolumeRpcClient, clinker_rpc::ConsumerHandle) {
    let transport = Arc::new(LocalTransport::new());
    let consumer = transport
        .consume(
            vec![Subscription::Queue(Target::server(
                "cinder-volume",
                "node1@lvm",
            ))],
            backend,
        )
        .await
        .unwrap();
    (
        VolumeRpcClient::new(transport, Duration::from_secs(5)),
        consumer,
    )
}

fn connector() -> serde_json::Map<String, Value> {
    json!({"initiator": "iqn.x", "host": "h"})
        .as_object()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn attach_calls_carry_cinder_versions_and_typed_replies() {
    let backend = Arc::new(Backend::default());
    let (rpc, _consumer) = client(backend.clone()).await;
    let ctx = RequestContext {
        request_id: "req-1".into(),
        ..RequestContext::default()
    };
    let volume_id = VolumeId::new_random();
    let attachment_id = AttachmentId::new_random();
    // The pool suffix is stripped: the message goes to the backend's queue.
    let host = "node1@lvm#lvm";

    let flat = rpc
        .attachment_update(
            &ctx,
            host,
            &AttachmentUpdateArgs {
                volume_id,
                attachment_id,
                connector: connector(),
            },
        )
        .await
        .unwrap();
    assert_eq!(flat["driver_volume_type"], "iscsi");
    let nested = rpc
        .initialize_connection(
            &ctx,
            host,
            &InitializeConnectionArgs {
                volume_id,
                connector: connector(),
            },
        )
        .await
        .unwrap();
    assert_eq!(nested.driver_volume_type, "iscsi");
    assert_eq!(nested.data["target_lun"], 1);
    rpc.attachment_delete(
        &ctx,
        host,
        &AttachmentDeleteArgs {
            volume_id,
            attachment_id,
        },
    )
    .await
    .unwrap();
    rpc.terminate_connection(
        &ctx,
        host,
        &TerminateConnectionArgs {
            volume_id,
            connector: None,
            force: true,
        },
    )
    .await
    .unwrap();
    rpc.detach_volume(
        &ctx,
        host,
        &DetachVolumeArgs {
            volume_id,
            attachment_id: Some(attachment_id),
        },
    )
    .await
    .unwrap();
    rpc.remove_export(&ctx, host, &RemoveExportArgs { volume_id })
        .await
        .unwrap();
    // The cast is delivered on the bus's task.
    for _ in 0..200 {
        if backend.seen.lock().unwrap().len() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = backend.seen.lock().unwrap();
    let calls: Vec<(String, Version)> =
        seen.iter().map(|m| (m.method.clone(), m.version)).collect();
    assert_eq!(
        calls,
        [
            ("attachment_update".to_owned(), Version::new(3, 9)),
            ("initialize_connection".to_owned(), Version::new(3, 0)),
            ("attachment_delete".to_owned(), Version::new(3, 9)),
            ("terminate_connection".to_owned(), Version::new(3, 0)),
            ("detach_volume".to_owned(), Version::new(3, 0)),
            ("remove_export".to_owned(), Version::new(3, 0)),
        ]
    );
    assert_eq!(seen[0].args["connector"]["initiator"], "iqn.x");
    assert_eq!(seen[0].args["attachment_id"], attachment_id.to_string());
    assert_eq!(seen[3].args["connector"], Value::Null);
    assert_eq!(seen[3].args["force"], true);
    assert!(seen.iter().all(|m| m.context.request_id == "req-1"));
}

#[tokio::test]
async fn malformed_replies_and_pinned_services_are_errors() {
    let backend = Arc::new(Backend {
        malformed: true,
        ..Backend::default()
    });
    let (rpc, _consumer) = client(backend).await;
    let ctx = RequestContext::default();
    let err = rpc
        .initialize_connection(
            &ctx,
            "node1@lvm",
            &InitializeConnectionArgs {
                volume_id: VolumeId::new_random(),
                connector: connector(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Payload(_)), "{err:?}");
    // A volume service pinned below 3.9 cannot be sent the new attach calls.
    rpc.set_version_cap(Version::new(3, 8));
    let err = rpc
        .attachment_delete(
            &ctx,
            "node1@lvm",
            &AttachmentDeleteArgs {
                volume_id: VolumeId::new_random(),
                attachment_id: AttachmentId::new_random(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Transport(_)), "{err:?}");
}
