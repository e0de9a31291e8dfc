//! Timestamps and the injectable clock.
//!
//! Persisted times are microseconds since the Unix epoch in UTC: an integer
//! compares and indexes the same way on SQLite, PostgreSQL and MariaDB. The
//! API renders them as Cinder does (oslo's naive-UTC ISO-8601 with
//! microseconds and no zone suffix).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A UTC instant with microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Microseconds since the epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Returns this instant moved forward (or back, for a negative) by `micros`.
    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    /// Returns the time elapsed from `earlier` to `self` (zero if negative).
    pub fn since(self, earlier: Timestamp) -> Duration {
        let micros = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_micros(micros.unsigned_abs())
    }

    /// Renders `YYYY-MM-DDTHH:MM:SS.ffffff`, the form Cinder's API emits.
    pub fn to_iso8601(self) -> String {
        let (date, secs_of_day, micros) = self.split();
        let (y, m, d) = civil_from_days(date);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}",
            secs_of_day / 3600,
            (secs_of_day / 60) % 60,
            secs_of_day % 60
        )
    }

    /// Renders `YYYY-MM-DDTHH:MM:SSZ`, used in version documents and tokens.
    pub fn to_iso8601_seconds_z(self) -> String {
        let (date, secs_of_day, _) = self.split();
        let (y, m, d) = civil_from_days(date);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs_of_day / 3600,
            (secs_of_day / 60) % 60,
            secs_of_day % 60
        )
    }

    fn split(self) -> (i64, i64, i64) {
        let micros = self.0.rem_euclid(1_000_000);
        let secs = self.0.div_euclid(1_000_000);
        (secs.div_euclid(86_400), secs.rem_euclid(86_400), micros)
    }

    /// Parses the ISO-8601 forms clients send in filters (`2020-01-01`,
    /// `2020-01-01T00:00:00`, with optional fraction and `Z` or `+00:00`).
    /// Returns `None` for anything else.
    pub fn parse_iso8601(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_suffix('Z').unwrap_or(text);
        let text = text.strip_suffix("+00:00").unwrap_or(text);
        let (date, time) = match text.split_once(['T', ' ']) {
            Some((d, t)) => (d, Some(t)),
            None => (text, None),
        };
        let mut parts = date.splitn(3, '-');
        let y: i64 = parts.next()?.parse().ok()?;
        let m: u32 = parts.next()?.parse().ok()?;
        let d: u32 = parts.next()?.parse().ok()?;
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        let mut micros_of_day: i64 = 0;
        if let Some(time) = time {
            let (hms, frac) = match time.split_once('.') {
                Some((hms, frac)) => (hms, Some(frac)),
                None => (time, None),
            };
            let mut hms = hms.splitn(3, ':');
            let h: i64 = hms.next()?.parse().ok()?;
            let mi: i64 = hms.next().unwrap_or("0").parse().ok()?;
            let s: i64 = hms.next().unwrap_or("0").parse().ok()?;
            if h > 23 || mi > 59 || s > 60 {
                return None;
            }
            micros_of_day = ((h * 60 + mi) * 60 + s) * 1_000_000;
            if let Some(frac) = frac {
                if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let padded = format!("{frac:0<6}");
                let us: i64 = padded[..6].parse().ok()?;
                micros_of_day += us;
            }
        }
        let days = days_from_civil(y, m, d);
        Some(Self(days * 86_400 * 1_000_000 + micros_of_day))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso8601())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso8601())
    }
}

// Howard Hinnant's days <-> civil date algorithms (public domain), valid for
// the whole i64 day range we can produce.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let d = i64::from(d);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A source of the current time, injected so that time-dependent logic
/// (service liveness, periodic tasks) is testable without sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cinder_format() {
        assert_eq!(Timestamp(0).to_iso8601(), "1970-01-01T00:00:00.000000");
        // 2026-01-01T12:00:00.000123
        let t = Timestamp::parse_iso8601("2026-01-01T12:00:00.000123").unwrap();
        assert_eq!(t.to_iso8601(), "2026-01-01T12:00:00.000123");
        assert_eq!(t.to_iso8601_seconds_z(), "2026-01-01T12:00:00Z");
    }

    #[test]
    fn round_trips_many_days() {
        for day in (0..800_000).step_by(997) {
            let t = Timestamp(day * 86_400_000_000 + 3_723_000_042);
            assert_eq!(Timestamp::parse_iso8601(&t.to_iso8601()), Some(t), "{t}");
        }
    }

    #[test]
    fn parses_client_forms_and_rejects_junk() {
        assert!(Timestamp::parse_iso8601("2020-01-01").is_some());
        assert!(Timestamp::parse_iso8601("2020-01-01T00:00:00Z").is_some());
        assert!(Timestamp::parse_iso8601("2020-01-01 00:00:00+00:00").is_some());
        assert_eq!(Timestamp::parse_iso8601("2020-13-01"), None);
        assert_eq!(Timestamp::parse_iso8601("yesterday"), None);
        assert_eq!(Timestamp::parse_iso8601("2020-01-01T25:00:00"), None);
    }
}
