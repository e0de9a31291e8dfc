//! Clinker's runtime pieces: the cancellation tree, the gate that in-flight
//! driver work passes through, periodic [`Worker`]s with Cinder's fuzzy start,
//! and tracing set-up.
//!
//! Shutdown order (used by every service): stop accepting requests → stop
//! RPC consumers → close the [`Gate`] and wait for in-flight operations up to
//! a deadline → stop periodic workers. Depends on `clinker-types` only.

pub mod http;
pub mod metrics;
pub mod systemd;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// Counts in-flight operations so shutdown can wait for them.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    tracker: TaskTracker,
}

/// Held while an operation is in flight.
#[derive(Debug)]
pub struct GateGuard {
    _token: TaskTrackerToken,
}

impl Gate {
    /// A new, open gate.
    pub fn new() -> Self {
        Self {
            tracker: TaskTracker::new(),
        }
    }

    /// Enters the gate; `None` once it is closed (shutdown has begun, so new
    /// work must not start).
    pub fn enter(&self) -> Option<GateGuard> {
        if self.tracker.is_closed() {
            return None;
        }
        Some(GateGuard {
            _token: self.tracker.token(),
        })
    }

    /// Closes the gate and waits for the operations inside, at most
    /// `deadline`. Returns how many were still running when it gave up.
    pub async fn close_and_wait(&self, deadline: Duration) -> usize {
        self.tracker.close();
        match tokio::time::timeout(deadline, self.tracker.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tracker.len(),
        }
    }

    /// Operations in flight now.
    pub fn in_flight(&self) -> usize {
        self.tracker.len()
    }
}

/// A named periodic task (a heartbeat, a capability report, a cleanup).
#[async_trait::async_trait]
pub trait Worker: Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &str;
    /// Time between runs (measured from the start of one run to the next).
    fn interval(&self) -> Duration;
    /// One run. Errors are the worker's to log; the loop keeps going.
    async fn run_once(&self);
}

/// Runs `worker` every `interval` after `initial_delay`, until `cancel`.
/// A run that outlasts the interval delays the next one instead of piling
/// runs up (Cinder's looping call warns about the same).
pub fn spawn_worker(
    worker: Arc<dyn Worker>,
    initial_delay: Duration,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(initial_delay) => {}
        }
        let mut ticker = tokio::time::interval(worker.interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let started = tokio::time::Instant::now();
            tokio::select! {
                () = cancel.cancelled() => return,
                () = worker.run_once() => {}
            }
            let took = started.elapsed();
            if took > worker.interval() {
                tracing::warn!(
                    worker = worker.name(),
                    took_ms = took.as_millis() as u64,
                    "periodic task outlasted its interval"
                );
            }
        }
    })
}

/// A random delay in `0..=max_secs` seconds: Cinder's `periodic_fuzzy_delay`,
/// which keeps many services from reporting at the same instant.
pub fn fuzzy_delay(max_secs: u64) -> Duration {
    if max_secs == 0 {
        return Duration::ZERO;
    }
    let millis = rand::random_range(0..=max_secs.saturating_mul(1000));
    Duration::from_millis(millis)
}

/// Runs `fut` until it finishes or `cancel` fires.
pub async fn until_cancelled<F: Future<Output = ()>>(cancel: &CancellationToken, fut: F) {
    tokio::select! {
        () = cancel.cancelled() => {}
        () = fut => {}
    }
}

/// Sets up logging to stderr: `info` (or `debug` when `[DEFAULT] debug`),
/// overridable with `RUST_LOG`; one JSON object per line when `json`
/// (`[DEFAULT] use_json` / `log_format = json`), with the fields of the
/// spans it happened in (`request_id`, `global_request_id`, …) under
/// `span` and `spans`. Safe to call twice (the second call is a no-op).
pub fn init_tracing(debug: bool, json: bool) {
    use tracing_subscriber::EnvFilter;
    // lapin logs every message the broker returns (an unroutable cast, which
    // the RPC layer reports to its caller) at warn, payload included.
    let default = if debug {
        "debug,sqlx=warn,hyper=info,lapin::returned_messages=error"
    } else {
        "info,sqlx=warn,lapin::returned_messages=error"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Ctrl-C and SIGTERM, caught from the moment [`ShutdownSignal::install`]
/// returns. Install it before the process starts serving: a signal that
/// arrives before the handler exists gets the default action and kills the
/// process uncleanly (a `systemctl stop` right after start did, and so did a
/// test's SIGTERM sent as soon as the API answered).
pub struct ShutdownSignal {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl std::fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownSignal").finish_non_exhaustive()
    }
}

impl ShutdownSignal {
    /// Registers the handlers now. Must be called inside the runtime.
    #[must_use]
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                terminate: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves when the process receives Ctrl-C or SIGTERM.
    pub async fn recv(self) {
        #[cfg(unix)]
        {
            async fn next(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(self.terminate) => {}
                () = next(self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves when the process receives Ctrl-C or SIGTERM after this call
/// was first polled; prefer [`ShutdownSignal::install`] at start-up.
pub async fn shutdown_signal() {
    ShutdownSignal::install().recv().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SIGTERM that arrives after `install` and before anyone waits is
    /// caught (the process would die of it otherwise) and delivered.
    #[cfg(unix)]
    #[tokio::test]
    // `kill` is the test's own tool, not a storage command for the runner.
    #[allow(clippy::disallowed_methods)]
    async fn a_signal_between_install_and_recv_is_kept() {
        let signal = ShutdownSignal::install();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), signal.recv())
            .await
            .expect("the SIGTERM is delivered to the installed handler");
    }
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Counter(AtomicUsize);

    #[async_trait::async_trait]
    impl Worker for Counter {
        fn name(&self) -> &str {
            "counter"
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(10)
        }
        async fn run_once(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn worker_runs_after_delay_then_every_interval() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let cancel = CancellationToken::new();
        let handle = spawn_worker(counter.clone(), Duration::from_secs(5), cancel.clone());
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 3);
        cancel.cancel();
        handle.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn gate_waits_for_in_flight_work_up_to_a_deadline() {
        let gate = Gate::new();
        let guard = gate.enter().unwrap();
        let g2 = gate.clone();
        let waiter = tokio::spawn(async move { g2.close_and_wait(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(gate.enter().is_none(), "a closed gate admits no new work");
        drop(guard);
        assert_eq!(waiter.await.unwrap(), 0);

        let gate = Gate::new();
        let _stuck = gate.enter().unwrap();
        assert_eq!(gate.close_and_wait(Duration::from_secs(5)).await, 1);
    }

    #[test]
    fn fuzzy_delay_stays_in_range() {
        for _ in 0..100 {
            assert!(fuzzy_delay(2) <= Duration::from_secs(2));
        }
        assert_eq!(fuzzy_delay(0), Duration::ZERO);
    }
}
