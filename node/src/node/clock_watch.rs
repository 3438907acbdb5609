//! The wall clock, judged before the node purges or cuts (`ephemera_node_core::clock_guard`):
//! logged when its verdict changes, exported as metrics.

use std::mem::discriminant;

use ephemera_node_core::clock_guard::{ClockGuard, ClockVerdict};
use ephemera_proto::UnixTime;

use super::{Node, NodeError};
use crate::config::NodeConfig;

/// The guard and the verdict last logged.
#[derive(Debug)]
pub(super) struct ClockWatch {
    guard: ClockGuard,
    reported: ClockVerdict,
}

impl ClockWatch {
    pub(super) fn new(config: &NodeConfig) -> ClockWatch {
        ClockWatch {
            guard: guard(config, false),
            reported: ClockVerdict::Trusted,
        }
    }
}

fn guard(config: &NodeConfig, accept_start: bool) -> ClockGuard {
    ClockGuard::new(
        config.publication.clock_step_tolerance_seconds,
        config.publication.clock_max_start_gap_seconds,
        accept_start,
    )
}

impl Node {
    /// Reads the wall clock and judges it. Logs an ERROR when purging or cutting stops for
    /// a clock anomaly, an INFO when it resumes, and exports the node's time and the anomaly
    /// flag.
    ///
    /// # Errors
    /// [`NodeError::Store`] when the last cut cannot be read.
    pub(super) fn judge_clock(&self) -> Result<(UnixTime, ClockVerdict), NodeError> {
        let last_cut = self.inner.store.cutter_state()?.last_boundary;
        let clock = &self.inner.clock;
        let mut watch = self.inner.clock_watch.lock().expect("not poisoned");
        let now = clock.now();
        let verdict = watch
            .guard
            .observe(now, clock.monotonic_seconds(), last_cut);
        self.inner
            .metrics
            .clock(now.0, verdict != ClockVerdict::Trusted);
        if discriminant(&verdict) != discriminant(&watch.reported) {
            match verdict {
                ClockVerdict::Trusted => {
                    tracing::info!("wall clock in step again: purging and cutting resume")
                }
                ClockVerdict::BehindLastCut { seconds } => tracing::error!(
                    behind_seconds = seconds,
                    last_cut = last_cut.map_or(0, |c| c.0),
                    "wall clock is behind the last batch cut: no batch is cut until it passes \
                     the next boundary (check NTP)"
                ),
                ClockVerdict::SteppedForward { seconds } => tracing::error!(
                    ahead_seconds = seconds,
                    last_cut = last_cut.map_or(0, |c| c.0),
                    "wall clock stepped forward: purging and cutting stop until it is back in \
                     step; if the new time is right, restart with `serve --accept-clock`"
                ),
            }
            watch.reported = verdict;
        }
        Ok((now, verdict))
    }

    /// Takes the wall clock as right, whatever its gap to the last cut: what
    /// `serve --accept-clock` does once the operator has checked the time.
    pub fn accept_clock(&self) {
        let mut watch = self.inner.clock_watch.lock().expect("not poisoned");
        watch.guard = guard(&self.inner.config, true);
    }
}
