//! Running a cast to its end.
//!
//! A cast has no caller waiting for it: the API answered 202 and the
//! operation's only chance is this handler run. A handler that fails for a
//! transient reason — the database at its connection limit, a broker or
//! service briefly away (`ErrorKind::Unavailable`) — is therefore run again
//! with backoff until it succeeds, fails for a reason of its own, or the
//! consumer stops (then the message is left for redelivery). Every failure
//! is logged with the request id. Handlers are idempotent: the broker
//! redelivers unacknowledged messages after a crash anyway.

use std::time::Duration;

use clinker_runtime::CancellationToken;
use clinker_types::ErrorKind;

use crate::backoff::Backoff;
use crate::{RpcHandler, RpcMessage};

/// The first wait before a cast is run again; it doubles up to
/// [`RETRY_MAX_DELAY`].
pub const RETRY_INITIAL_DELAY: Duration = Duration::from_millis(200);
/// The longest wait between two runs of a cast.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// How a cast ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastOutcome {
    /// The handler succeeded (possibly after retries).
    Done,
    /// The handler failed for a reason of its own (logged); the message is
    /// consumed.
    Failed,
    /// The consumer stopped while the cast was still failing transiently:
    /// leave the message to be redelivered.
    Interrupted,
}

/// Runs `message` on `handler` until it succeeds, fails for a non-transient
/// reason, or `stop` is cancelled.
pub async fn run_cast(
    handler: &dyn RpcHandler,
    message: RpcMessage,
    queue: &str,
    stop: &CancellationToken,
) -> CastOutcome {
    let mut backoff = Backoff::new(RETRY_INITIAL_DELAY, RETRY_MAX_DELAY);
    let mut attempt = 1u32;
    loop {
        let error = match handler.handle(message.clone()).await {
            Ok(_) => {
                if attempt > 1 {
                    tracing::info!(
                        queue,
                        method = %message.method,
                        request_id = %message.context.request_id,
                        attempt,
                        "cast succeeded after retries"
                    );
                }
                return CastOutcome::Done;
            }
            Err(error) => error,
        };
        if error.kind != ErrorKind::Unavailable {
            tracing::error!(
                queue,
                method = %message.method,
                request_id = %message.context.request_id,
                kind = ?error.kind,
                error = %error.message,
                "cast failed"
            );
            return CastOutcome::Failed;
        }
        let delay = backoff.next_delay();
        tracing::warn!(
            queue,
            method = %message.method,
            request_id = %message.context.request_id,
            attempt,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %error.message,
            "cast failed for a transient reason; running it again"
        );
        tokio::select! {
            () = stop.cancelled() => {
                tracing::warn!(
                    queue,
                    method = %message.method,
                    request_id = %message.context.request_id,
                    "consumer stopping; leaving the cast for redelivery"
                );
                return CastOutcome::Interrupted;
            }
            () = tokio::time::sleep(delay) => {}
        }
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use clinker_types::RemoteError;
    use serde_json::Value;

    use super::*;
    use crate::RequestContext;

    /// Fails with `kind` `failures` times, then succeeds.
    struct Flaky {
        kind: ErrorKind,
        failures: u32,
        runs: AtomicU32,
    }

    #[async_trait::async_trait]
    impl RpcHandler for Flaky {
        async fn handle(&self, _message: RpcMessage) -> Result<Value, RemoteError> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst);
            if run < self.failures {
                Err(RemoteError::new(self.kind, "too many connections"))
            } else {
                Ok(Value::Null)
            }
        }
    }

    fn message() -> RpcMessage {
        RpcMessage {
            method: "create_volume".into(),
            version: "3.0".parse().unwrap(),
            args: serde_json::json!({}),
            context: RequestContext::default(),
        }
    }

    fn flaky(kind: ErrorKind, failures: u32) -> Arc<Flaky> {
        Arc::new(Flaky {
            kind,
            failures,
            runs: AtomicU32::new(0),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_success() {
        let handler = flaky(ErrorKind::Unavailable, 4);
        let stop = CancellationToken::new();
        let outcome = run_cast(handler.as_ref(), message(), "q", &stop).await;
        assert_eq!(outcome, CastOutcome::Done);
        assert_eq!(handler.runs.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_s_own_failure_is_not_retried() {
        let handler = flaky(ErrorKind::InvalidState, 1);
        let stop = CancellationToken::new();
        let outcome = run_cast(handler.as_ref(), message(), "q", &stop).await;
        assert_eq!(outcome, CastOutcome::Failed);
        assert_eq!(handler.runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_leaves_a_failing_cast_for_redelivery() {
        let handler = flaky(ErrorKind::Unavailable, u32::MAX);
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            stopper.cancel();
        });
        let outcome = run_cast(handler.as_ref(), message(), "q", &stop).await;
        assert_eq!(outcome, CastOutcome::Interrupted);
        assert!(handler.runs.load(Ordering::SeqCst) > 3);
    }
}
