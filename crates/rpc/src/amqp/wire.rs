//! What goes into AMQP message bodies: RPC requests, replies and
//! notifications.
//!
//! Requests are the JSON of [`RpcMessage`] and replies the JSON of
//! [`ReplyBody`]: Clinker talks to Clinker on these queues, so they need no
//! oslo envelope. Notifications are read by other programs (Ceilometer,
//! billing), so they use oslo.messaging's 2.0 envelope exactly as the
//! `messagingv2` notification driver sends it (`oslo_messaging/_drivers/
//! common.py::serialize_msg` over the dict built by `notify/notifier.py::
//! _notify` plus `amqp.py::_add_unique_id`):
//!
//! ```json
//! {"oslo.version": "2.0",
//!  "oslo.message": "{\"message_id\": …, \"publisher_id\": …, \"event_type\": …,
//!                    \"priority\": \"INFO\", \"payload\": {…}, \"timestamp\": …,
//!                    \"_unique_id\": \"<uuid hex>\"}"}
//! ```
//!
//! `oslo.message` is a JSON *string* holding the JSON of the notification.
//! oslo also flattens the request context into `_context_*` keys; a
//! [`Notification`] carries no context, so none are sent (consumers read
//! them as optional).

use clinker_types::RemoteError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Notification, RpcError, RpcMessage};

/// The envelope version oslo.messaging writes and accepts.
pub const OSLO_ENVELOPE_VERSION: &str = "2.0";

/// The content type of every body this transport publishes.
pub const CONTENT_TYPE: &str = "application/json";

/// The body of a reply to a call: `{"result": …}` or
/// `{"failure": {"kind": …, "message": …}}` (oslo's reply keys).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyBody {
    /// The handler's value.
    Result(Value),
    /// The handler's error, kind preserved.
    Failure(RemoteError),
}

impl From<Result<Value, RemoteError>> for ReplyBody {
    fn from(result: Result<Value, RemoteError>) -> Self {
        match result {
            Ok(value) => ReplyBody::Result(value),
            Err(error) => ReplyBody::Failure(error),
        }
    }
}

impl From<ReplyBody> for Result<Value, RemoteError> {
    fn from(body: ReplyBody) -> Self {
        match body {
            ReplyBody::Result(value) => Ok(value),
            ReplyBody::Failure(error) => Err(error),
        }
    }
}

/// Serializes a request.
pub fn encode_message(message: &RpcMessage) -> Result<Vec<u8>, RpcError> {
    serde_json::to_vec(message).map_err(|e| RpcError::Payload(e.to_string()))
}

/// Deserializes a request.
pub fn decode_message(body: &[u8]) -> Result<RpcMessage, serde_json::Error> {
    serde_json::from_slice(body)
}

/// Serializes a reply.
pub fn encode_reply(result: Result<Value, RemoteError>) -> Result<Vec<u8>, RpcError> {
    serde_json::to_vec(&ReplyBody::from(result)).map_err(|e| RpcError::Payload(e.to_string()))
}

/// Deserializes a reply into what the caller gets.
pub fn decode_reply(body: &[u8]) -> Result<Value, RpcError> {
    let body: ReplyBody =
        serde_json::from_slice(body).map_err(|e| RpcError::Payload(format!("reply: {e}")))?;
    Result::<Value, RemoteError>::from(body).map_err(RpcError::Remote)
}

/// The routing key (and queue name) of a notification priority:
/// `<topic>.<priority lowercase>`, e.g. `notifications.info`.
pub fn notification_routing_key(topic: &str, priority: &str) -> String {
    format!("{topic}.{}", priority.to_ascii_lowercase())
}

/// Wraps a notification in oslo.messaging's 2.0 envelope.
pub fn encode_notification(notification: &Notification) -> Result<Vec<u8>, RpcError> {
    let message = json!({
        "message_id": notification.message_id,
        "publisher_id": notification.publisher_id,
        "event_type": notification.event_type,
        "priority": notification.priority,
        "payload": notification.payload,
        "timestamp": notification.timestamp,
        "_unique_id": uuid::Uuid::new_v4().simple().to_string(),
    });
    let inner = serde_json::to_string(&message).map_err(|e| RpcError::Payload(e.to_string()))?;
    let envelope = json!({
        "oslo.version": OSLO_ENVELOPE_VERSION,
        "oslo.message": inner,
    });
    serde_json::to_vec(&envelope).map_err(|e| RpcError::Payload(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clinker_types::ErrorKind;

    use super::*;

    #[test]
    fn replies_round_trip_with_their_kind() {
        let ok = encode_reply(Ok(json!({"a": 1}))).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&ok).unwrap(),
            json!({"result": {"a": 1}})
        );
        assert_eq!(decode_reply(&ok).unwrap(), json!({"a": 1}));
        let failed = encode_reply(Err(RemoteError::new(ErrorKind::NotFound, "no volume"))).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&failed).unwrap(),
            json!({"failure": {"kind": "not_found", "message": "no volume"}})
        );
        let err = decode_reply(&failed).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(matches!(decode_reply(b"{]"), Err(RpcError::Payload(_))));
    }

    #[test]
    fn notification_envelope_is_oslos() {
        let notification = Notification {
            message_id: "m-1".into(),
            publisher_id: "volume.node1@lvm".into(),
            event_type: "volume.create.end".into(),
            priority: "INFO".into(),
            payload: json!({"volume_id": "v-1"}),
            timestamp: "2026-01-01 00:00:00.000000".into(),
        };
        let body: Value =
            serde_json::from_slice(&encode_notification(&notification).unwrap()).unwrap();
        let object = body.as_object().unwrap();
        assert_eq!(object.len(), 2);
        assert_eq!(body["oslo.version"], "2.0");
        let inner: Value = serde_json::from_str(body["oslo.message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["message_id"], "m-1");
        assert_eq!(inner["publisher_id"], "volume.node1@lvm");
        assert_eq!(inner["event_type"], "volume.create.end");
        assert_eq!(inner["priority"], "INFO");
        assert_eq!(inner["payload"], json!({"volume_id": "v-1"}));
        assert_eq!(inner["timestamp"], "2026-01-01 00:00:00.000000");
        assert_eq!(inner["_unique_id"].as_str().unwrap().len(), 32);
        assert_eq!(
            notification_routing_key("notifications", "ERROR"),
            "notifications.error"
        );
    }
}
