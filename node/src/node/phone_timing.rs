//! Time at the node says nothing about a sealed phone request.
//!
//! A real verify or upload writes and flushes before it answers; a decoy, a wrong code or a
//! refused upload does less. Next to the server (a proxy, a co-located observer) that
//! difference told real from decoy with an AUC of 0.99 (issue 30). So every sealed answer
//! (real, decoy, refused) leaves a drawn time after the request was opened: the floor plus
//! up to half of it more, uniformly. The floor is `[http] phone_answer_floor_ms`, raised to
//! the p99 of the recent real successes' own times when the disk is slower than that. A
//! real answer leaves at the later of its hold and its own time; every other answer at the
//! later of its hold and the own time of a recent real success drawn at random, so the
//! real answers slower than their hold (a loaded or slow disk) have their twins among the
//! decoys too: a loaded node read 0.531 on verify latency without that draw. The drawn
//! part of the hold hides what a fixed floor left. Held answers are released by one thread
//! that ticks every [`RELEASE_TICK`] on the OS clock while any answer waits, never by a
//! runtime timer: a runtime timer fires when its worker next wakes from its millisecond
//! park, which fell a few tenths of a millisecond differently after a flush than after
//! none, and a classifier next to the server read that from the fraction of the
//! millisecond (AUC 0.59-0.60 on loopback, with the draw; first with each request's own
//! timer, then with one clock task on the runtime). Released by one clock that no request's
//! work moves, every answer leaves on the same grid the same way. A floor, unlike holding
//! decoys to drawn real times, needs no real traffic first, so a fresh or restarted node is
//! covered at once.
//!
//! Only durations are kept, in memory: no time of day, no source, nothing about a request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use ephemera_proto::sealed::SealedRoute;
use rand::RngExt;

/// Recent real latencies kept per route.
pub(crate) const SAMPLES: usize = 512;
/// Real successes needed before their p99 can raise the floor.
pub(crate) const MIN_SAMPLES: usize = 64;
/// The highest the floor goes: a slow outlier never keeps every phone waiting longer.
const MAX_FLOOR: Duration = Duration::from_secs(5);
/// The release clock's period: held answers leave on its ticks.
pub(crate) const RELEASE_TICK: Duration = Duration::from_millis(2);

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

/// The floor of each sealed route, and the clock that releases held answers.
#[derive(Debug)]
pub(crate) struct PhoneTiming {
    configured: Duration,
    verify: Mutex<Samples>,
    upload: Mutex<Samples>,
    token_verify: Mutex<Samples>,
    clock: OnceLock<ReleaseClock>,
}

/// One thread's ticks, shared by every held answer; it ticks only while answers wait.
///
/// A thread of its own, sleeping to each tick on the OS clock, not a task on the node's
/// runtime: a runtime timer fires when its worker next wakes from its millisecond park,
/// and when it parked depended on the work just done (a real verify's flush, a decoy's
/// none), so the ticks after a real request fell at another phase of the millisecond
/// than after a decoy's. A classifier next to the server read that at 0.596 on verify
/// latency (issue 30, a quiet 2-core machine).
#[derive(Debug)]
struct ReleaseClock {
    /// The latest tick's time.
    ticks: watch::Receiver<Instant>,
    waiting: Arc<AtomicUsize>,
    /// The ticking thread; none when the process could not start one.
    ticker: Option<std::thread::Thread>,
    stopped: Arc<AtomicBool>,
}

impl ReleaseClock {
    /// Starts the ticking thread.
    fn start() -> Self {
        let (sender, ticks) = watch::channel(Instant::now());
        let waiting = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let (thread_waiting, thread_stopped) = (Arc::clone(&waiting), Arc::clone(&stopped));
        // Ticks fall on one grid from the clock's start, whenever answers begin to wait:
        // a grid restarted by the first waiter would put the ticks at a phase of its
        // arrival, which differs by the work done before waiting.
        let epoch = Instant::now();
        let tick = RELEASE_TICK.as_nanos().max(1);
        let ticker = std::thread::Builder::new()
            .name("phone-answer-release".to_owned())
            .spawn(move || {
                while !thread_stopped.load(Ordering::SeqCst) {
                    if thread_waiting.load(Ordering::SeqCst) == 0 {
                        std::thread::park();
                        continue;
                    }
                    let next = (Instant::now() - epoch).as_nanos() / tick + 1;
                    let at = epoch
                        + Duration::from_nanos(u64::try_from(next * tick).unwrap_or(u64::MAX));
                    // `sleep` returns no earlier than asked.
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    sender.send_replace(Instant::now());
                }
            })
            .map(|handle| handle.thread().clone());
        let ticker = ticker
            .inspect_err(|e| {
                tracing::error!(error = %e, "the phone-answer release clock could not start");
            })
            .ok();
        ReleaseClock {
            ticks,
            waiting,
            ticker,
            stopped,
        }
    }

    /// Waits for the first tick at or after `at`.
    async fn release_at(&self, at: Instant) {
        let Some(ticker) = &self.ticker else {
            // No thread to be had (the process's limit): each answer keeps its hold on
            // the runtime's timer, less exact but held.
            tokio::time::sleep_until(at.into()).await;
            return;
        };
        let _waiting = Waiting::enter(&self.waiting);
        ticker.unpark();
        let mut ticks = self.ticks.clone();
        let _ = ticks.wait_for(|tick| *tick >= at).await;
    }
}

/// One answer counted as waiting, until dropped: also when its request is cancelled (the
/// phone hung up), so the clock never ticks on for an answer nobody waits for.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for ReleaseClock {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(ticker) = &self.ticker {
            ticker.unpark();
        }
    }
}

impl PhoneTiming {
    /// Timing with the configured floor.
    pub(crate) fn new(floor: Duration) -> Self {
        PhoneTiming {
            configured: floor.min(MAX_FLOOR),
            verify: Mutex::default(),
            upload: Mutex::default(),
            token_verify: Mutex::default(),
            clock: OnceLock::new(),
        }
    }

    fn samples(&self, route: SealedRoute) -> &Mutex<Samples> {
        match route {
            SealedRoute::Verify => &self.verify,
            SealedRoute::Upload => &self.upload,
            SealedRoute::TokenVerify => &self.token_verify,
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

    /// The own time of a recent real success on `route`, drawn at random; none before the
    /// first.
    fn draw_real_time(&self, route: SealedRoute) -> Option<Duration> {
        let samples = self.samples(route).lock().ok()?;
        let len = samples.recent.len();
        (len > 0).then(|| samples.recent[rand::rng().random_range(0..len)])
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

    /// How long after opening an answer on `route` leaves: the floor plus a uniform draw
    /// of up to half of it.
    pub(crate) fn hold(&self, route: SealedRoute) -> Duration {
        let floor = self.floor(route);
        let spread = u64::try_from(floor.as_micros() / 2).unwrap_or(u64::MAX);
        floor + Duration::from_micros(rand::rng().random_range(0..=spread))
    }

    /// When an answer opened at `started` leaves: a drawn hold after it, and for anything
    /// but a real success no earlier than a drawn real success's own time after it. A real
    /// success's own time (to this point) joins the samples.
    fn release(&self, route: SealedRoute, started: Instant, answered: Answered) -> Instant {
        if answered == Answered::Real {
            self.record(route, started.elapsed());
        }
        let hold = self.hold(route);
        started
            + match answered {
                Answered::Real => hold,
                Answered::Decoy => hold.max(self.draw_real_time(route).unwrap_or_default()),
            }
    }

    /// Waits until the answer opened at `started` may leave (see [`PhoneTiming::release`]).
    pub(crate) async fn settle(&self, route: SealedRoute, started: Instant, answered: Answered) {
        let release = self.release(route, started, answered);
        self.clock
            .get_or_init(ReleaseClock::start)
            .release_at(release)
            .await;
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

    #[test]
    fn holds_spread_over_half_the_floor_above_it() {
        let timing = PhoneTiming::new(Duration::from_millis(50));
        let holds: Vec<Duration> = (0..2000)
            .map(|_| timing.hold(SealedRoute::Verify))
            .collect();
        assert!(
            holds
                .iter()
                .all(|h| (Duration::from_millis(50)..=Duration::from_millis(75)).contains(h))
        );
        let low = holds
            .iter()
            .filter(|h| **h < Duration::from_micros(62_500))
            .count();
        assert!(
            (800..1200).contains(&low),
            "{low} of 2000 in the lower half"
        );
        assert_eq!(
            PhoneTiming::new(Duration::ZERO).hold(SealedRoute::Upload),
            Duration::ZERO
        );
    }

    #[test]
    fn other_answers_wait_as_long_as_a_drawn_real_success_when_that_is_longer() {
        let timing = PhoneTiming::new(Duration::from_millis(10));
        let started = Instant::now();
        // Before any real success, a decoy waits its hold only.
        let release = timing.release(SealedRoute::Verify, started, Answered::Decoy);
        assert!(release <= started + Duration::from_millis(15));
        // Real successes that took 40 ms (longer than every hold, with too few samples to
        // raise the floor): a decoy leaves as late as they did.
        for _ in 0..MIN_SAMPLES - 1 {
            timing.record(SealedRoute::Verify, Duration::from_millis(40));
        }
        for _ in 0..100 {
            let release = timing.release(SealedRoute::Verify, started, Answered::Decoy);
            assert_eq!(release, started + Duration::from_millis(40));
        }
        // Only on that route.
        let release = timing.release(SealedRoute::Upload, started, Answered::Decoy);
        assert!(release <= started + Duration::from_millis(15));
    }

    #[tokio::test]
    async fn answers_waiting_together_leave_on_one_tick() {
        let timing = Arc::new(PhoneTiming::new(Duration::from_millis(20)));
        let started = Instant::now();
        let left: Vec<Instant> = futures::future::join_all((0..8).map(|i| {
            let timing = Arc::clone(&timing);
            async move {
                let answered = if i % 2 == 0 {
                    Answered::Real
                } else {
                    Answered::Decoy
                };
                timing.settle(SealedRoute::Verify, started, answered).await;
                Instant::now()
            }
        }))
        .await;
        assert!(
            left.iter()
                .all(|t| *t >= started + Duration::from_millis(20))
        );
        // Nothing waits now: the clock stops ticking (it waits to be woken).
        assert_eq!(
            timing.clock.get().unwrap().waiting.load(Ordering::SeqCst),
            0
        );
    }

    #[tokio::test]
    async fn an_answer_whose_request_is_dropped_no_longer_counts_as_waiting() {
        let timing = PhoneTiming::new(Duration::from_secs(60));
        let held = timing.settle(SealedRoute::Verify, Instant::now(), Answered::Decoy);
        // The phone hangs up while its answer is held.
        let cut = tokio::time::timeout(Duration::from_millis(20), held).await;
        assert!(cut.is_err());
        assert_eq!(
            timing.clock.get().unwrap().waiting.load(Ordering::SeqCst),
            0
        );
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
