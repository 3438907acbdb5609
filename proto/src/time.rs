//! Protocol time: unix seconds, 10-minute intervals and UTC days.
//!
//! An [`IntervalNumber`] is unix seconds / 600, exactly GAEN's `ENIntervalNumber`.
//! A [`DayNumber`] is unix seconds / 86 400; day `d` starts at interval `d * 144`,
//! aligned to UTC midnight. `proto` never reads a clock: callers pass the time in.

use serde::{Deserialize, Serialize};

/// Seconds in one interval (GAEN: 10 minutes).
pub const INTERVAL_SECONDS: u64 = 600;
/// Intervals in one UTC day.
pub const INTERVALS_PER_DAY: u32 = 144;
/// Seconds in one UTC day.
pub const SECONDS_PER_DAY: u64 = 86_400;

/// A point in time as whole seconds since the unix epoch (UTC).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The interval this instant falls in.
    pub fn interval(self) -> IntervalNumber {
        IntervalNumber((self.0 / INTERVAL_SECONDS).min(u64::from(u32::MAX)) as u32)
    }

    /// The UTC day this instant falls in.
    pub fn day(self) -> DayNumber {
        DayNumber((self.0 / SECONDS_PER_DAY).min(u64::from(u32::MAX)) as u32)
    }

    /// This instant plus `seconds`, saturating at the end of time.
    pub fn plus_seconds(self, seconds: u64) -> UnixTime {
        UnixTime(self.0.saturating_add(seconds))
    }

    /// This instant minus `seconds`, saturating at the epoch.
    pub fn minus_seconds(self, seconds: u64) -> UnixTime {
        UnixTime(self.0.saturating_sub(seconds))
    }
}

/// A 10-minute interval: unix seconds / 600 (GAEN `ENIntervalNumber`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IntervalNumber(pub u32);

impl IntervalNumber {
    /// The first second of this interval.
    pub fn start(self) -> UnixTime {
        UnixTime(u64::from(self.0) * INTERVAL_SECONDS)
    }

    /// The UTC day this interval belongs to.
    pub fn day(self) -> DayNumber {
        DayNumber(self.0 / INTERVALS_PER_DAY)
    }

    /// The first interval of this interval's day (GAEN's `rolling start` for a daily key).
    pub fn day_start(self) -> IntervalNumber {
        self.day().first_interval()
    }

    /// This interval plus `n` intervals, saturating.
    pub fn plus(self, n: u32) -> IntervalNumber {
        IntervalNumber(self.0.saturating_add(n))
    }

    /// This interval minus `n` intervals, saturating at zero.
    pub fn minus(self, n: u32) -> IntervalNumber {
        IntervalNumber(self.0.saturating_sub(n))
    }
}

/// A UTC day: unix seconds / 86 400.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DayNumber(pub u32);

impl DayNumber {
    /// The first interval of the day (at UTC midnight).
    pub fn first_interval(self) -> IntervalNumber {
        IntervalNumber(self.0.saturating_mul(INTERVALS_PER_DAY))
    }

    /// The first second of the day.
    pub fn start(self) -> UnixTime {
        UnixTime(u64::from(self.0) * SECONDS_PER_DAY)
    }

    /// This day plus `n` days, saturating.
    pub fn plus(self, n: u32) -> DayNumber {
        DayNumber(self.0.saturating_add(n))
    }

    /// This day minus `n` days, saturating at day zero.
    pub fn minus(self, n: u32) -> DayNumber {
        DayNumber(self.0.saturating_sub(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_unix_seconds_over_600() {
        // 2020-07-01T00:00:00Z, a day boundary.
        let t = UnixTime(1_593_561_600);
        assert_eq!(t.interval(), IntervalNumber(2_655_936));
        assert_eq!(t.interval().day_start(), t.interval());
        assert_eq!(t.plus_seconds(599).interval(), IntervalNumber(2_655_936));
        assert_eq!(t.plus_seconds(600).interval(), IntervalNumber(2_655_937));
    }

    #[test]
    fn days_align_to_utc_midnight() {
        let midnight = UnixTime(1_593_561_600);
        assert_eq!(midnight.day().start(), midnight);
        assert_eq!(midnight.minus_seconds(1).day(), midnight.day().minus(1));
        assert_eq!(midnight.day().first_interval().0 % INTERVALS_PER_DAY, 0);
        let last = midnight.plus_seconds(SECONDS_PER_DAY - 1).interval();
        assert_eq!(last.0 - midnight.interval().0, INTERVALS_PER_DAY - 1);
        assert_eq!(last.day(), midnight.day());
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        assert_eq!(UnixTime(0).minus_seconds(5), UnixTime(0));
        assert_eq!(IntervalNumber(u32::MAX).plus(3), IntervalNumber(u32::MAX));
        assert_eq!(UnixTime(u64::MAX).interval(), IntervalNumber(u32::MAX));
        assert_eq!(DayNumber(0).minus(1), DayNumber(0));
    }
}
