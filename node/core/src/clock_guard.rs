//! Whether the wall clock can be trusted to purge and to cut.
//!
//! Purging and cutting act on the wall clock: a step of +15 days would purge every report
//! and publish a batch dated 15 days ahead, which phones and peers keep. So the node judges
//! each reading against a monotonic clock (which never steps) before it purges or cuts:
//!
//! - **Forward step** (the wall clock ran ahead of the monotonic one by more than the
//!   tolerance): nothing is purged or cut until the wall clock is back in step, or the
//!   operator restarts the node and accepts the new time.
//! - **Behind the last cut** (a backward step, or a restart with a clock set back): cutting
//!   waits (no boundary at or before the last cut is cut twice); purging with an earlier
//!   time only deletes less, so it goes on. Publication resumes at the first boundary after
//!   the last cut, by itself.
//! - **At start**, a wall clock more than the allowed gap past the last cut is treated as a
//!   forward step until the operator accepts it (a long outage looks the same as a step).
//!
//! The guard is a pure state machine: the driver feeds it (wall time, monotonic seconds,
//! last cut) and logs and exports its verdicts.

use ephemera_proto::UnixTime;

/// Verdict on one reading of the wall clock.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClockVerdict {
    /// In step: purge and cut.
    Trusted,
    /// The wall clock is `seconds` behind the last cut: purge, but cut nothing yet.
    BehindLastCut {
        /// How far behind.
        seconds: u64,
    },
    /// The wall clock is `seconds` ahead of where it should be: purge and cut nothing.
    SteppedForward {
        /// How far ahead.
        seconds: u64,
    },
}

impl ClockVerdict {
    /// Whether a purge may run.
    pub fn may_purge(self) -> bool {
        !matches!(self, ClockVerdict::SteppedForward { .. })
    }

    /// Whether a cut may run.
    pub fn may_cut(self) -> bool {
        self == ClockVerdict::Trusted
    }
}

/// Judges wall-clock readings against a monotonic clock (see the module docs).
#[derive(Clone, Debug)]
pub struct ClockGuard {
    /// Largest difference between the two clocks taken as drift rather than a step.
    tolerance_seconds: u64,
    /// Largest gap between the last cut and the first reading after a start.
    max_start_gap_seconds: u64,
    /// The last trusted reading: (wall time, monotonic seconds).
    anchor: Option<(UnixTime, u64)>,
    /// The operator accepted the wall clock at start.
    accepted_at_start: bool,
}

impl ClockGuard {
    /// A guard for a node that just started. With `accept_start`, the first reading is taken
    /// as true whatever its gap to the last cut (the operator checked the clock).
    pub fn new(tolerance_seconds: u64, max_start_gap_seconds: u64, accept_start: bool) -> Self {
        ClockGuard {
            tolerance_seconds,
            max_start_gap_seconds,
            anchor: None,
            accepted_at_start: accept_start,
        }
    }

    /// Judges the wall clock reading `wall`, taken at `monotonic` seconds of a clock that
    /// never steps, given the boundary of the last cut.
    pub fn observe(
        &mut self,
        wall: UnixTime,
        monotonic: u64,
        last_cut: Option<UnixTime>,
    ) -> ClockVerdict {
        match self.anchor {
            None => {
                let gap = last_cut.map_or(0, |cut| wall.0.saturating_sub(cut.0));
                if gap > self.max_start_gap_seconds && !self.accepted_at_start {
                    // No anchor yet: judged again from the last cut at the next reading.
                    return ClockVerdict::SteppedForward {
                        seconds: gap - self.max_start_gap_seconds,
                    };
                }
            }
            Some((anchor_wall, anchor_mono)) => {
                let expected = anchor_wall.0 + monotonic.saturating_sub(anchor_mono);
                if wall.0 > expected + self.tolerance_seconds {
                    return ClockVerdict::SteppedForward {
                        seconds: wall.0 - expected,
                    };
                }
            }
        }
        // In step, or stepped back: the wall clock is taken from here (a step back makes
        // the node cut later and purge less, never wrongly).
        self.anchor = Some((wall, monotonic));
        match last_cut {
            Some(cut) if wall < cut => ClockVerdict::BehindLastCut {
                seconds: cut.0 - wall.0,
            },
            _ => ClockVerdict::Trusted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixTime = UnixTime(1_700_000_000);
    const DAY: u64 = 86_400;

    fn guard() -> ClockGuard {
        ClockGuard::new(300, 2 * DAY, false)
    }

    #[test]
    fn a_clock_in_step_is_trusted_and_drift_is_absorbed() {
        let mut g = guard();
        assert_eq!(g.observe(T, 0, Some(T)), ClockVerdict::Trusted);
        assert_eq!(
            g.observe(T.plus_seconds(3600), 3600, Some(T)),
            ClockVerdict::Trusted
        );
        // 4 minutes of drift in a day: in step.
        assert_eq!(
            g.observe(T.plus_seconds(DAY + 240), DAY, Some(T)),
            ClockVerdict::Trusted
        );
    }

    #[test]
    fn a_forward_step_stops_purge_and_cut_until_the_clock_is_back() {
        let mut g = guard();
        g.observe(T, 0, Some(T));
        let jumped = g.observe(T.plus_seconds(15 * DAY + 60), 60, Some(T));
        assert_eq!(jumped, ClockVerdict::SteppedForward { seconds: 15 * DAY });
        assert!(!jumped.may_purge() && !jumped.may_cut());
        // Still ahead an hour later (monotonic time moved too).
        assert!(matches!(
            g.observe(T.plus_seconds(15 * DAY + 3660), 3660, Some(T)),
            ClockVerdict::SteppedForward { .. }
        ));
        // Set right again: trusted at once.
        assert_eq!(
            g.observe(T.plus_seconds(3700), 3700, Some(T)),
            ClockVerdict::Trusted
        );
    }

    #[test]
    fn a_backward_step_behind_the_last_cut_waits_to_cut_and_resumes_by_itself() {
        let mut g = guard();
        let cut = T.plus_seconds(3600);
        g.observe(cut.plus_seconds(10), 10, Some(cut));
        let back = g.observe(cut.plus_seconds(20).minus_seconds(7200), 20, Some(cut));
        assert_eq!(back, ClockVerdict::BehindLastCut { seconds: 7180 });
        assert!(back.may_purge() && !back.may_cut());
        // Two hours later by both clocks, the wall clock has passed the last cut again.
        assert_eq!(
            g.observe(cut.plus_seconds(40), 7220, Some(cut)),
            ClockVerdict::Trusted
        );
    }

    #[test]
    fn a_start_far_past_the_last_cut_needs_the_operator() {
        let late = T.plus_seconds(15 * DAY);
        let mut g = guard();
        assert_eq!(
            g.observe(late, 0, Some(T)),
            ClockVerdict::SteppedForward { seconds: 13 * DAY }
        );
        // A start within the gap, or with no cut yet, is trusted.
        assert_eq!(
            guard().observe(T.plus_seconds(DAY), 0, Some(T)),
            ClockVerdict::Trusted
        );
        assert_eq!(guard().observe(late, 0, None), ClockVerdict::Trusted);
        // Accepted by the operator.
        let mut accepted = ClockGuard::new(300, 2 * DAY, true);
        assert_eq!(accepted.observe(late, 0, Some(T)), ClockVerdict::Trusted);
        assert_eq!(
            accepted.observe(late.plus_seconds(60), 60, Some(T)),
            ClockVerdict::Trusted
        );
    }
}
