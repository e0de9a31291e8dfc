//! Usage notifications (`volume.create.start`, …) in oslo.messaging's
//! envelope, published through the transport.

use clinker_types::Clock;
use serde_json::Value;

use crate::{Notification, TransportHandle};

/// Publishes notifications as one publisher (`volume.<host>`,
/// `scheduler.<host>`).
#[derive(Clone, Debug)]
pub struct Notifier {
    transport: TransportHandle,
    publisher_id: String,
    clock: std::sync::Arc<dyn Clock>,
}

impl Notifier {
    /// A notifier for `publisher_id`.
    pub fn new(
        transport: TransportHandle,
        publisher_id: impl Into<String>,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Self {
        Self {
            transport,
            publisher_id: publisher_id.into(),
            clock,
        }
    }

    /// Publishes an `INFO` notification; failures are logged, never raised
    /// (a lost usage event must not fail a volume operation).
    pub async fn info(&self, event_type: &str, payload: Value) {
        self.publish("INFO", event_type, payload).await;
    }

    /// Publishes an `ERROR` notification.
    pub async fn error(&self, event_type: &str, payload: Value) {
        self.publish("ERROR", event_type, payload).await;
    }

    async fn publish(&self, priority: &str, event_type: &str, payload: Value) {
        let timestamp = self.clock.now().to_iso8601().replacen('T', " ", 1);
        let notification = Notification {
            message_id: uuid::Uuid::new_v4().to_string(),
            publisher_id: self.publisher_id.clone(),
            event_type: event_type.to_owned(),
            priority: priority.to_owned(),
            payload,
            timestamp,
        };
        if let Err(e) = self.transport.notify(notification).await {
            tracing::warn!(event_type, error = %e, "notification not published");
        }
    }
}
