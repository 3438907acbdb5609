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
        if now.0 < clock.latest {
            if clock.jump_pending && now.0 + tolerance >= clock.trusted {
                // Back to the confirmed timeline: the jump was a mistake, now undone.
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
        clock.latest = now.0;
        if !clock.jump_pending {
            if now.0.saturating_sub(clock.trusted) > self.config.clock.max_forward_jump_seconds {
                clock.jump_pending = true;
            } else {
                clock.trusted = now.0;
            }
        }
        if now.interval() != old_interval || clock.jump_pending {
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
        let now = self.observe_time(now, Strictness::Lenient)?;
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
