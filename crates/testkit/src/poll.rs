//! Waiting for asynchronous work to land: polling a probe until it says
//! done, failing with the last state it saw when a deadline passes. The
//! deadline only bounds a hung test; nothing is asserted about how long the
//! work took.

use std::time::{Duration, Instant};

/// How long to keep polling and how often.
#[derive(Clone, Copy, Debug)]
pub struct Every {
    /// The pause between two probes.
    pub interval: Duration,
    /// When to give up.
    pub limit: Duration,
}

impl Every {
    /// Probes every `interval_ms` milliseconds for at most `limit_secs`.
    pub const fn ms(interval_ms: u64, limit_secs: u64) -> Self {
        Self {
            interval: Duration::from_millis(interval_ms),
            limit: Duration::from_secs(limit_secs),
        }
    }
}

/// Runs `probe` until it returns `Ok`, sleeping `every.interval` between
/// tries, and returns what it found.
///
/// # Panics
/// When `every.limit` passes first, with the `Err` text of the last probe
/// (which says what state things were stuck in).
pub async fn until<T>(every: Every, mut probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + every.limit;
    loop {
        match probe().await {
            Ok(done) => return done,
            Err(state) => assert!(
                Instant::now() < deadline,
                "{state} (still so after {:?})",
                every.limit
            ),
        }
        tokio::time::sleep(every.interval).await;
    }
}

/// [`until`] for a yes/no condition; `what` names what never happened.
pub async fn until_true(every: Every, what: &str, mut done: impl AsyncFnMut() -> bool) {
    until(every, async || {
        if done().await {
            Ok(())
        } else {
            Err(what.to_owned())
        }
    })
    .await;
}
