//! The clock contract: the phone takes time from the app and distrusts it.
//!
//! - Before the first input the phone knows no time: [`Phone::poll_timeout`] is `None`.
//! - A time earlier than the latest seen, within [`ClockConfig::tolerance_seconds`], is
//!   taken as the latest (threads racing to the lock). Earlier than that, or earlier than
//!   the interval of the last broadcast kept across a restart, is refused with
//!   [`ClientError::ClockWentBack`]: a past interval's key is never broadcast again.
//! - A forward jump beyond [`ClockConfig::max_forward_jump_seconds`] from the last
//!   confirmed time is followed for broadcasting (a fresh key is harmless) but not for
//!   retention: nothing is purged until the time is confirmed, by a node's `Date` given to
//!   [`Phone::confirm_time`], or by going back to the confirmed timeline (the jump was a
//!   mistake, undone).
//!
//! [`ClockConfig::tolerance_seconds`]: crate::ClockConfig::tolerance_seconds
//! [`ClockConfig::max_forward_jump_seconds`]: crate::ClockConfig::max_forward_jump_seconds

use ephemera_proto::UnixTime;
use serde::{Deserialize, Serialize};

use super::Phone;
use crate::error::ClientError;
use crate::store::{MetaKey, Store};

/// Where the clock stands; kept in the store (meta [`MetaKey::Clock`]) whenever the
/// latest time enters a new interval.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ClockState {
    /// The latest time seen (0: none yet).
    pub(super) latest: u64,
    /// The latest time trusted for retention (0: none yet).
    pub(super) trusted: u64,
    /// A forward jump is waiting for confirmation.
    pub(super) jump_pending: bool,
    /// Inputs refused because time went back, since the phone was made.
    pub(super) refused: u64,
}

impl ClockState {
    pub(super) fn load(store: &impl Store) -> Result<Self, ClientError> {
        Ok(match store.meta(MetaKey::Clock)? {
            Some(bytes) => {
                postcard::from_bytes(&bytes).map_err(|_| crate::error::StoreError::Corrupt {
                    what: "clock state",
                })?
            }
            None => ClockState::default(),
        })
    }
}

/// How strictly an input treats a past time.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Strictness {
    /// Key choice, sightings, purges: refuse a past time.
    Strict,
    /// Answers to requests: use the latest time instead (the answer is not lost).
    Lenient,
}

impl<S: Store> Phone<S> {
    /// Checks `now` against the clock contract and gives the time to act on.
    pub(super) fn observe_time(
        &mut self,
        now: UnixTime,
        strictness: Strictness,
    ) -> Result<UnixTime, ClientError> {
        let clock = &mut self.clock;
        let tolerance = self.config.clock.tolerance_seconds;
        if clock.latest == 0 {
            clock.latest = now.0;
            clock.trusted = now.0;
            self.save_clock()?;
            return Ok(now);
        }
        let max_jump = self.config.clock.max_forward_jump_seconds;
        if now.0 < clock.latest {
            // Back near the confirmed timeline while a jump waits: the jump was a mistake,
            // now undone (a small step back inside the jumped time undoes nothing).
            if clock.jump_pending
                && now.0 + tolerance >= clock.trusted
                && now.0.saturating_sub(clock.trusted) <= max_jump
            {
                clock.latest = now.0.max(clock.trusted);
                clock.jump_pending = false;
                clock.trusted = clock.latest;
                self.save_clock()?;
                return Ok(UnixTime(self.clock.latest));
            }
            let behind = clock.latest - now.0;
            if behind > tolerance && strictness == Strictness::Strict {
                clock.refused += 1;
                return Err(ClientError::ClockWentBack { seconds: behind });
            }
            return Ok(UnixTime(clock.latest));
        }
        let old_interval = UnixTime(clock.latest).interval();
        let was_pending = clock.jump_pending;
        clock.latest = now.0;
        if !clock.jump_pending {
            if now.0.saturating_sub(clock.trusted) > max_jump {
                clock.jump_pending = true;
            } else {
                clock.trusted = now.0;
            }
        }
        if now.interval() != old_interval || clock.jump_pending != was_pending {
            self.save_clock()?;
        }
        Ok(now)
    }

    /// Keeps the clock state (durable at the next flush; key changes flush).
    fn save_clock(&mut self) -> Result<(), ClientError> {
        self.store.set_today(UnixTime(self.clock.trusted).day());
        // Stored at interval granularity: after a restart, any time in an earlier interval
        // than the last one seen is refused.
        let mut stored = self.clock;
        stored.latest = UnixTime(stored.latest).interval().start().0;
        stored.trusted = stored.trusted.min(stored.latest);
        let bytes = postcard::to_allocvec(&stored).expect("postcard into a Vec");
        self.store.set_meta(MetaKey::Clock, &bytes)?;
        Ok(())
    }

    /// Confirms the time with a trusted source: `date` is the node's `Date` header (unix
    /// seconds) of an answer received at `now`. If they agree within the clock tolerance
    /// plus 10 minutes, a pending forward jump is accepted and the retention purge it held
    /// back runs at the next input. A node time far from `now` keeps the jump pending (and
    /// counts as an anomaly in [`status`](Phone::status)).
    ///
    /// # Errors
    /// [`ClientError::Store`].
    pub fn confirm_time(&mut self, now: UnixTime, date: UnixTime) -> Result<bool, ClientError> {
        self.ensure_running()?;
        let now = self.observe_time(now, Strictness::Lenient)?;
        self.enforce_sunset(now)?;
        let slack = self.config.clock.tolerance_seconds + 600;
        if now.0.abs_diff(date.0) > slack {
            self.clock_disagreements += 1;
            return Ok(false);
        }
        if self.clock.jump_pending {
            self.clock.jump_pending = false;
            self.clock.trusted = self.clock.latest;
            self.save_clock()?;
            self.store.flush()?;
        }
        Ok(true)
    }

    /// The time retention acts on: the latest confirmed time.
    pub(super) fn trusted_now(&self) -> UnixTime {
        UnixTime(self.clock.trusted)
    }
}

/// The unix time of an HTTP `Date` header in the IMF-fixdate form every server sends
/// (RFC 9110 §5.6.7: `Sun, 06 Nov 1994 08:49:37 GMT`), for
/// [`Phone::confirm_time`]. `None` for anything else (the obsolete forms included).
pub fn http_date(value: &str) -> Option<UnixTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = value.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = value.get(range)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| value.get(8..11) == Some(*m))? as u64 + 1;
    let year = num(12..16)?;
    let (hour, minute, second) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    if !(1970..=9999).contains(&year)
        || day == 0
        || day > 31
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(UnixTime(days * 86_400 + hour * 3600 + minute * 60 + second))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::http_date;
    use ephemera_proto::UnixTime;

    #[test]
    fn imf_fixdates_parse() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UnixTime(784_111_777))
        );
        assert_eq!(
            http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UnixTime(0))
        );
        assert_eq!(
            http_date("Sat, 05 Dec 2026 18:25:41 GMT"),
            Some(UnixTime(1_796_495_141))
        );
        assert_eq!(
            http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(UnixTime(1_835_438_400))
        );
        for bad in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Xyz 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
    }

    proptest! {
        /// A `Date` header is outside bytes: any text parses or is refused, never panics.
        #[test]
        fn any_text_is_parsed_or_refused(text in ".{0,40}") {
            let _ = http_date(&text);
        }

        /// Every second from 1970 to 2100 round-trips through its IMF-fixdate.
        #[test]
        fn round_trips(t in 0u64..4_102_444_800) {
            let days = t / 86_400;
            // Civil date from days (Hinnant), to format the header independently.
            let z = days + 719_468;
            let era = z / 146_097;
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = doy - (153 * mp + 2) / 5 + 1;
            let m = if mp < 10 { mp + 3 } else { mp - 9 };
            let y = yoe + era * 400 + u64::from(m <= 2);
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let s = t % 86_400;
            let header = format!(
                "Mon, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
                months[(m - 1) as usize], s / 3600, s / 60 % 60, s % 60
            );
            prop_assert_eq!(http_date(&header), Some(UnixTime(t)));
        }
    }
}
