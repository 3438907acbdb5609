//! The node's source of time, injected so tests can step a fake clock instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ephemera_proto::UnixTime;

/// Tells the current time. Everything in the node that depends on time asks a `Clock`.
pub trait Clock: Send + Sync + 'static {
    /// The current time, whole seconds since the unix epoch.
    fn now(&self) -> UnixTime;

    /// Seconds of a clock that never steps (from an arbitrary start): what the wall clock
    /// is judged against before the node purges or cuts.
    fn monotonic_seconds(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Copy, Clone, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        // A clock before 1970 is a broken host; treat it as the epoch rather than panic.
        UnixTime(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        )
    }

    fn monotonic_seconds(&self) -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_secs()
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    wall: Arc<AtomicU64>,
    monotonic: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: UnixTime) -> Self {
        ManualClock {
            wall: Arc::new(AtomicU64::new(start.0)),
            monotonic: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Lets `seconds` pass (both clocks move).
    pub fn advance(&self, seconds: u64) {
        self.wall.fetch_add(seconds, Ordering::SeqCst);
        self.monotonic.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Lets time pass until `time`; a `time` in the past is a step back of the wall clock.
    pub fn set(&self, time: UnixTime) {
        let before = self.wall.swap(time.0, Ordering::SeqCst);
        self.monotonic
            .fetch_add(time.0.saturating_sub(before), Ordering::SeqCst);
    }

    /// Steps the wall clock to `time` without time passing (an operator or NTP step).
    pub fn step(&self, time: UnixTime) {
        self.wall.store(time.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.wall.load(Ordering::SeqCst))
    }

    fn monotonic_seconds(&self) -> u64 {
        self.monotonic.load(Ordering::SeqCst)
    }
}

/// Civil-calendar helpers for the few places that show or read dates (UTC only).
pub mod civil {
    use ephemera_proto::{DayNumber, UnixTime};

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date of a day number as (year, month, day).
    pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    /// Parses `YYYY-MM-DD` into a UTC day number.
    pub fn parse_date(text: &str) -> Option<DayNumber> {
        let mut parts = text.trim().splitn(3, '-');
        let year: i64 = parts.next()?.parse().ok()?;
        let month: u32 = parts.next()?.parse().ok()?;
        let day: u32 = parts.next()?.parse().ok()?;
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day)
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        // Reject dates like 2023-02-30 that roll over into the next month.
        if civil_from_days(days) != (year, month, day) {
            return None;
        }
        u32::try_from(days).ok().map(DayNumber)
    }

    /// Formats a day as `YYYY-MM-DD`.
    pub fn format_date(day: DayNumber) -> String {
        let (y, m, d) = civil_from_days(i64::from(day.0));
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Formats an instant as RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn format_time(time: UnixTime) -> String {
        let secs = time.0 % 86_400;
        format!(
            "{}T{:02}:{:02}:{:02}Z",
            format_date(time.day()),
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::civil::*;
    use super::*;
    use ephemera_proto::DayNumber;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(UnixTime(100));
        let shared = clock.clone();
        assert_eq!(clock.now(), UnixTime(100));
        shared.advance(50);
        assert_eq!(clock.now(), UnixTime(150));
        clock.set(UnixTime(7));
        assert_eq!(shared.now(), UnixTime(7));
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_date("1970-01-01"), Some(DayNumber(0)));
        assert_eq!(
            parse_date("2020-07-01"),
            Some(UnixTime(1_593_561_600).day())
        );
        assert_eq!(
            parse_date("2024-02-29").map(format_date).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(
            format_time(UnixTime(1_593_561_600 + 3661)),
            "2020-07-01T01:01:01Z"
        );
    }
}
