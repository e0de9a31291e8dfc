//! Jittered exponential backoff for reconnects, consumer re-declares and
//! retried casts.
//!
//! Every client of a broker that restarts loses its connection at the same
//! instant; reconnecting on a fixed schedule turns that into a thundering
//! herd (cinder-inventory §5 item 7, "reconnect storms"). Each delay is
//! therefore drawn uniformly from `[d/2, d]` ("equal jitter"), where `d`
//! doubles from `initial` up to `max`: clients spread out, yet none waits
//! much longer than the nominal schedule.

use std::time::Duration;

use rand::Rng;

/// A reconnect schedule: `initial`, doubling, capped at `max`, jittered.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    nominal: Duration,
}

impl Backoff {
    /// A schedule starting at `initial` (at least 1 ms) and capped at `max`
    /// (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Self {
            initial,
            max,
            nominal: initial,
        }
    }

    /// The next delay to wait, then doubles the nominal delay.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal;
        self.nominal = nominal.saturating_mul(2).min(self.max);
        let low = nominal / 2;
        let jitter = rand::rng().random_range(0..=nominal.saturating_sub(low).as_micros());
        low + Duration::from_micros(u64::try_from(jitter).unwrap_or(u64::MAX))
    }

    /// Starts over from `initial` (after a success).
    pub fn reset(&mut self) {
        self.nominal = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_cap_within_jitter_bounds() {
        let mut backoff = Backoff::new(200 * MS, 10_000 * MS);
        let nominal = [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000];
        for expected in nominal {
            let delay = backoff.next_delay();
            let expected = expected * MS;
            assert!(
                delay >= expected / 2 && delay <= expected,
                "{delay:?} outside [{:?}, {expected:?}]",
                expected / 2
            );
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let delays: std::collections::HashSet<Duration> = (0..50)
            .map(|_| Backoff::new(10_000 * MS, 10_000 * MS).next_delay())
            .collect();
        assert!(delays.len() > 10, "delays should differ: {delays:?}");
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(200 * MS, 10_000 * MS);
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= 200 * MS);
    }

    #[test]
    fn degenerate_settings_are_clamped() {
        let mut backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
        let delay = backoff.next_delay();
        assert!(delay <= MS);
        let mut backoff = Backoff::new(500 * MS, 100 * MS);
        for _ in 0..5 {
            assert!(backoff.next_delay() <= 500 * MS, "max is raised to initial");
        }
    }
}
