//! Time at the node says nothing about a sealed phone request.
//!
//! A real verify or upload writes and flushes before it answers; a decoy, a wrong code or a
//! refused upload does less. Next to the server (a proxy, a co-located observer) that
//! difference told real from decoy with an AUC of 0.99 (issue 30). So every sealed answer
//! (real, decoy, refused) leaves no earlier than a floor after the request was opened:
//! `[http] phone_answer_floor_ms`, raised to the p99 of the recent real successes' own
//! times when the disk is slower than that. Answers then leave at the floor, whatever the
//! disk and the load; only a real answer slower than the floor (at most the 1 % above the
//! p99) shows its own time. A floor, unlike holding decoys to drawn real times, needs no
//! real traffic first, so a fresh or restarted node is covered at once.
//!
//! Only durations are kept, in memory: no time of day, no source, nothing about a request.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ephemera_proto::sealed::SealedRoute;

/// Recent real latencies kept per route.
pub(crate) const SAMPLES: usize = 512;
/// Real successes needed before their p99 can raise the floor.
pub(crate) const MIN_SAMPLES: usize = 64;
/// The highest the floor goes: a slow outlier never keeps every phone waiting longer.
const MAX_FLOOR: Duration = Duration::from_secs(5);

/// How a sealed request was answered, as far as timing goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Answered {
    /// A real request that succeeded: its time joins the samples.
    Real,
    /// A decoy, or a real request refused.
    Decoy,
}

/// Recent real times of one route, and the p99 they give.
#[derive(Debug, Default)]
struct Samples {
    recent: VecDeque<Duration>,
    p99: Option<Duration>,
}

/// The floor of the two sealed routes.
#[derive(Debug)]
pub(crate) struct PhoneTiming {
    configured: Duration,
    verify: Mutex<Samples>,
    upload: Mutex<Samples>,
}

impl PhoneTiming {
    /// Timing with the configured floor.
    pub(crate) fn new(floor: Duration) -> Self {
        PhoneTiming {
            configured: floor.min(MAX_FLOOR),
            verify: Mutex::default(),
            upload: Mutex::default(),
        }
    }

    fn samples(&self, route: SealedRoute) -> &Mutex<Samples> {
        match route {
            SealedRoute::Verify => &self.verify,
            SealedRoute::Upload => &self.upload,
        }
    }

    /// Keeps the time of a real success on `route`.
    pub(crate) fn record(&self, route: SealedRoute, latency: Duration) {
        let Ok(mut samples) = self.samples(route).lock() else {
            return;
        };
        if samples.recent.len() == SAMPLES {
            samples.recent.pop_front();
        }
        samples.recent.push_back(latency);
        if samples.recent.len() >= MIN_SAMPLES {
            let mut sorted: Vec<Duration> = samples.recent.iter().copied().collect();
            sorted.sort_unstable();
            samples.p99 = sorted.get(sorted.len() * 99 / 100).copied();
        }
    }

    /// The floor on `route` now.
    pub(crate) fn floor(&self, route: SealedRoute) -> Duration {
        let p99 = self
            .samples(route)
            .lock()
            .ok()
            .and_then(|s| s.p99)
            .unwrap_or_default();
        self.configured.max(p99).min(MAX_FLOOR)
    }

    /// Waits until the floor has passed since `started`; a real success's own time (to
    /// this point) joins the samples first.
    pub(crate) async fn settle(&self, route: SealedRoute, started: Instant, answered: Answered) {
        if answered == Answered::Real {
            self.record(route, started.elapsed());
        }
        tokio::time::sleep_until((started + self.floor(route)).into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_configured_one_until_real_answers_are_slower() {
        let timing = PhoneTiming::new(Duration::from_millis(50));
        assert_eq!(timing.floor(SealedRoute::Upload), Duration::from_millis(50));
        // A fast disk: the p99 stays under the floor.
        for _ in 0..SAMPLES {
            timing.record(SealedRoute::Upload, Duration::from_millis(3));
        }
        assert_eq!(timing.floor(SealedRoute::Upload), Duration::from_millis(50));
        // A slow disk: the floor rises to the p99 of the recent real times...
        for i in 0..SAMPLES as u64 {
            timing.record(SealedRoute::Upload, Duration::from_millis(60 + i % 40));
        }
        let floor = timing.floor(SealedRoute::Upload);
        assert!(floor >= Duration::from_millis(98), "{floor:?}");
        // ...on that route only.
        assert_eq!(timing.floor(SealedRoute::Verify), Duration::from_millis(50));
    }

    #[test]
    fn too_few_samples_do_not_move_the_floor_and_outliers_are_capped() {
        let timing = PhoneTiming::new(Duration::from_millis(10));
        for _ in 0..MIN_SAMPLES - 1 {
            timing.record(SealedRoute::Verify, Duration::from_secs(1));
        }
        assert_eq!(timing.floor(SealedRoute::Verify), Duration::from_millis(10));
        for _ in 0..SAMPLES {
            timing.record(SealedRoute::Verify, Duration::from_secs(600));
        }
        assert_eq!(timing.floor(SealedRoute::Verify), MAX_FLOOR);
    }

    #[tokio::test]
    async fn every_answer_waits_for_the_floor() {
        let timing = PhoneTiming::new(Duration::from_millis(40));
        for answered in [Answered::Real, Answered::Decoy] {
            let started = Instant::now();
            timing.settle(SealedRoute::Upload, started, answered).await;
            assert!(
                started.elapsed() >= Duration::from_millis(40),
                "{answered:?}"
            );
        }
    }
}
