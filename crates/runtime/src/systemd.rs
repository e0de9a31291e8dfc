//! systemd's service notification protocol (`Type=notify`): `READY=1` once
//! the process serves, `STOPPING=1` when it begins to stop, and `WATCHDOG=1`
//! at half the interval systemd asks for in `WATCHDOG_USEC`. Outside
//! systemd (`NOTIFY_SOCKET` unset) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(false, states) {
        tracing::warn!(error = %err, "cannot notify systemd");
    }
}

/// `READY=1` with a status line (`systemctl status` shows it).
pub fn notify_ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STOPPING=1`: shutdown has begun, in-flight work is finishing.
pub fn notify_stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// When systemd set `WATCHDOG_USEC` for this process, sends `WATCHDOG=1`
/// every half of it until `cancel`, from a task on the runtime: a runtime
/// that stops making progress stops the pings and systemd restarts the
/// service. `None` without a watchdog.
pub fn spawn_watchdog(cancel: CancellationToken) -> Option<JoinHandle<()>> {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2).max(Duration::from_millis(10));
    tracing::info!(
        interval_ms = every.as_millis() as u64,
        "systemd watchdog on"
    );
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => send(&[NotifyState::Watchdog]),
            }
        }
    }))
}
