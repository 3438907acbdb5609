//! Whether another copy of this node (same keys, same libp2p identity) is running, and
//! which of the two may go on cutting batches.
//!
//! Two copies cutting under one batch key publish different batches at the same sequence
//! numbers (a restore drill beside the live node did exactly that), and phones cannot tell
//! which is right. Twins never hear each other directly (see `ephemera_proto::instance`),
//! so each node says hello to its peers and peers report the other instances they heard
//! under the same batch key:
//!
//! - [`HelloLog`] is the peer's side: the hellos it heard lately, by batch key, and the
//!   answer to one hello (the other instances under its key).
//! - [`TwinGuard`] is the node's side: it judges reported hellos. A report counts only if
//!   it verifies under this node's own batch key (only a twin holds it), names another
//!   instance, and was sent after this run started (a replay of this node's own earlier run
//!   is older). A twin is taken as running once two such hellos of one instance with
//!   different `sent_at` were reported: a run that stopped sends no new hellos, so the last
//!   hello of this node's previous run (which could look newer than this start if the clock
//!   was set back across the restart) never counts. Then the run that started later (ties:
//!   the larger instance) stops cutting until it is restarted; the earlier one goes on.
//!   Both report the twin.
//!
//! Both are pure state machines over (state, observation, now).

use std::collections::HashMap;

use ephemera_proto::UnixTime;
use ephemera_proto::instance::{Hello, HelloResponse, MAX_REPORTED, SignedHello};
use ephemera_proto::signing::Ed25519PublicKey;

/// Most other instances a [`TwinGuard`] keeps a first hello of, waiting for a second.
const MAX_CANDIDATES: usize = 16;

/// Most batch keys a [`HelloLog`] remembers at once; past it the key heard longest ago is
/// forgotten first.
pub const MAX_LOGGED_KEYS: usize = 1024;

/// What a peer heard lately: hellos by batch key, then by instance, with when each was
/// last heard (the peer's clock).
#[derive(Debug, Default)]
pub struct HelloLog {
    keys: HashMap<Ed25519PublicKey, HashMap<[u8; 16], (SignedHello, UnixTime)>>,
}

impl HelloLog {
    /// An empty log.
    pub fn new() -> Self {
        HelloLog::default()
    }

    /// Takes `hello`, heard at `now`, if it verifies; forgets what is older than `keep`
    /// seconds; answers with the other instances heard under its key (at most
    /// [`MAX_REPORTED`], the most recently heard). `None` when the hello does not verify.
    pub fn hear(&mut self, hello: SignedHello, now: UnixTime, keep: u64) -> Option<HelloResponse> {
        if !hello.verifies() {
            return None;
        }
        self.forget_before(UnixTime(now.0.saturating_sub(keep)));
        if !self.keys.contains_key(&hello.signer) && self.keys.len() >= MAX_LOGGED_KEYS {
            self.forget_oldest_key();
        }
        let instances = self.keys.entry(hello.signer).or_default();
        let mut others: Vec<&(SignedHello, UnixTime)> = instances
            .iter()
            .filter(|(instance, _)| **instance != hello.hello.instance)
            .map(|(_, entry)| entry)
            .collect();
        others.sort_by_key(|(_, heard)| std::cmp::Reverse(*heard));
        let answer = HelloResponse {
            others: others
                .into_iter()
                .take(MAX_REPORTED)
                .map(|(h, _)| h.clone())
                .collect(),
        };
        if !instances.contains_key(&hello.hello.instance) && instances.len() > MAX_REPORTED {
            // Keep the log of one key small: drop the instance heard longest ago.
            if let Some(oldest) = instances
                .iter()
                .min_by_key(|(_, (_, heard))| *heard)
                .map(|(i, _)| *i)
            {
                instances.remove(&oldest);
            }
        }
        instances.insert(hello.hello.instance, (hello, now));
        Some(answer)
    }

    /// Batch keys remembered.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn forget_before(&mut self, cutoff: UnixTime) {
        self.keys.retain(|_, instances| {
            instances.retain(|_, (_, heard)| *heard >= cutoff);
            !instances.is_empty()
        });
    }

    fn forget_oldest_key(&mut self) {
        let oldest = self
            .keys
            .iter()
            .map(|(key, instances)| (key, instances.values().map(|(_, t)| *t).max()))
            .min_by_key(|(_, heard)| *heard)
            .map(|(key, _)| *key);
        if let Some(key) = oldest {
            self.keys.remove(&key);
        }
    }
}

/// What the guard concluded about twins.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TwinVerdict {
    /// No twin seen: cut.
    Alone,
    /// A twin that started later was seen: this run goes on cutting (the twin stops).
    TwinStartedLater,
    /// A twin that started earlier was seen: this run cuts nothing until restarted.
    TwinStartedEarlier,
}

impl TwinVerdict {
    /// Whether a cut may run.
    pub fn may_cut(self) -> bool {
        self != TwinVerdict::TwinStartedEarlier
    }
}

/// This run's identity and its verdict on the reports it got (see the module docs).
#[derive(Clone, Debug)]
pub struct TwinGuard {
    own: Hello,
    key: Ed25519PublicKey,
    verdict: TwinVerdict,
    /// Other instances reported once: the `sent_at` of that first hello.
    candidates: HashMap<[u8; 16], UnixTime>,
}

impl TwinGuard {
    /// A guard for the run with this random `instance`, started at `started_at`, whose
    /// batch public key is `key`.
    pub fn new(instance: [u8; 16], started_at: UnixTime, key: Ed25519PublicKey) -> Self {
        TwinGuard {
            own: Hello {
                instance,
                started_at,
                sent_at: started_at,
            },
            key,
            verdict: TwinVerdict::Alone,
            candidates: HashMap::new(),
        }
    }

    /// This run's hello as of `now`, to be signed with the batch key.
    pub fn hello(&self, now: UnixTime) -> Hello {
        Hello {
            sent_at: now,
            ..self.own
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> TwinVerdict {
        self.verdict
    }

    /// Whether a cut may run.
    pub fn may_cut(&self) -> bool {
        self.verdict.may_cut()
    }

    /// Judges one hello a peer reported (a twin counts at its second hello with another
    /// `sent_at`). Returns the new verdict when it changed (only ever
    /// from `Alone`, or from `TwinStartedLater` to `TwinStartedEarlier`: once stopped, a run
    /// stays stopped until restarted).
    pub fn observe(&mut self, reported: &SignedHello) -> Option<TwinVerdict> {
        let other = reported.hello;
        if reported.signer != self.key
            || other.instance == self.own.instance
            || other.sent_at <= self.own.started_at
            || !reported.verifies()
        {
            return None;
        }
        match self.candidates.get(&other.instance) {
            Some(first) if *first != other.sent_at => {}
            Some(_) => return None,
            None => {
                if self.candidates.len() < MAX_CANDIDATES {
                    self.candidates.insert(other.instance, other.sent_at);
                }
                return None;
            }
        }
        let this_later =
            (self.own.started_at, self.own.instance) > (other.started_at, other.instance);
        let verdict = if this_later {
            TwinVerdict::TwinStartedEarlier
        } else {
            TwinVerdict::TwinStartedLater
        };
        if verdict == self.verdict || self.verdict == TwinVerdict::TwinStartedEarlier {
            return None;
        }
        self.verdict = verdict;
        Some(verdict)
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::signing::Ed25519SigningKey;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const T: UnixTime = UnixTime(1_700_000_000);
    const KEEP: u64 = 120;

    fn key(seed: u64) -> Ed25519SigningKey {
        Ed25519SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(seed))
    }

    fn hello(key: &Ed25519SigningKey, instance: u8, started: u64, sent: u64) -> SignedHello {
        SignedHello::sign(
            Hello {
                instance: [instance; 16],
                started_at: T.plus_seconds(started),
                sent_at: T.plus_seconds(sent),
            },
            key,
        )
    }

    #[test]
    fn a_peer_reports_the_other_instances_under_the_same_key_only() {
        let (k, other) = (key(1), key(2));
        let mut log = HelloLog::new();
        assert_eq!(
            log.hear(hello(&k, 1, 0, 0), T, KEEP),
            Some(HelloResponse::default())
        );
        assert_eq!(
            log.hear(hello(&other, 9, 0, 0), T, KEEP),
            Some(HelloResponse::default()),
            "another node's key is another node"
        );
        // The same instance again: nothing new.
        assert_eq!(
            log.hear(hello(&k, 1, 0, 5), T.plus_seconds(5), KEEP),
            Some(HelloResponse::default())
        );
        // A twin: told of instance 1; instance 1 is then told of the twin.
        let twin = hello(&k, 2, 10, 10);
        let answer = log.hear(twin.clone(), T.plus_seconds(10), KEEP).unwrap();
        assert_eq!(answer.others, vec![hello(&k, 1, 0, 5)]);
        let answer = log
            .hear(hello(&k, 1, 0, 20), T.plus_seconds(20), KEEP)
            .unwrap();
        assert_eq!(answer.others, vec![twin]);
    }

    #[test]
    fn a_peer_forgets_old_hellos_and_ignores_forged_ones() {
        let k = key(1);
        let mut log = HelloLog::new();
        log.hear(hello(&k, 1, 0, 0), T, KEEP);
        let answer = log.hear(hello(&k, 2, 200, 200), T.plus_seconds(KEEP + 1), KEEP);
        assert_eq!(
            answer,
            Some(HelloResponse::default()),
            "instance 1 went quiet"
        );
        let mut forged = hello(&k, 3, 300, 300);
        forged.hello.instance = [4; 16];
        assert_eq!(log.hear(forged, T.plus_seconds(130), KEEP), None);
        let answer = log
            .hear(hello(&k, 2, 200, 140), T.plus_seconds(140), KEEP)
            .unwrap();
        assert!(answer.others.is_empty(), "the forgery was not kept");
    }

    #[test]
    fn a_peer_keeps_its_log_bounded() {
        let k = key(1);
        let mut log = HelloLog::new();
        for i in 0..50u8 {
            log.hear(hello(&k, i, 0, 0), T.plus_seconds(u64::from(i)), KEEP);
        }
        let answer = log
            .hear(hello(&k, 200, 0, 0), T.plus_seconds(60), KEEP)
            .unwrap();
        assert_eq!(answer.others.len(), MAX_REPORTED);
        assert_eq!(answer.others[0].hello.instance, [49; 16], "newest first");
        let many: Vec<Ed25519SigningKey> = (0..(MAX_LOGGED_KEYS as u64 + 5))
            .map(|s| key(100 + s))
            .collect();
        for (i, k) in many.iter().enumerate() {
            log.hear(hello(k, 1, 0, 0), T.plus_seconds(61 + i as u64 / 100), KEEP);
        }
        assert_eq!(log.len(), MAX_LOGGED_KEYS);
    }

    #[test]
    fn the_later_twin_stops_cutting_and_the_earlier_goes_on() {
        let k = key(1);
        let mut earlier = TwinGuard::new([1; 16], T, k.public_key());
        let mut later = TwinGuard::new([2; 16], T.plus_seconds(30), k.public_key());
        assert!(earlier.may_cut() && later.may_cut());
        // One hello of a twin is not yet proof that it runs.
        let first_of_earlier = SignedHello::sign(earlier.hello(T.plus_seconds(40)), &k);
        let first_of_later = SignedHello::sign(later.hello(T.plus_seconds(40)), &k);
        assert_eq!(later.observe(&first_of_earlier), None);
        assert_eq!(earlier.observe(&first_of_later), None);
        let earlier_hello = SignedHello::sign(earlier.hello(T.plus_seconds(41)), &k);
        let later_hello = SignedHello::sign(later.hello(T.plus_seconds(41)), &k);
        assert_eq!(
            later.observe(&earlier_hello),
            Some(TwinVerdict::TwinStartedEarlier)
        );
        assert!(!later.may_cut());
        assert_eq!(
            earlier.observe(&later_hello),
            Some(TwinVerdict::TwinStartedLater)
        );
        assert!(earlier.may_cut());
        // Reported again: no new verdict (logged once).
        assert_eq!(later.observe(&earlier_hello), None);
        assert_eq!(earlier.observe(&later_hello), None);
    }

    #[test]
    fn twins_started_in_the_same_second_stop_the_larger_instance() {
        let k = key(1);
        let mut small = TwinGuard::new([1; 16], T, k.public_key());
        let mut large = TwinGuard::new([2; 16], T, k.public_key());
        large.observe(&SignedHello::sign(small.hello(T.plus_seconds(1)), &k));
        small.observe(&SignedHello::sign(large.hello(T.plus_seconds(1)), &k));
        let from_small = SignedHello::sign(small.hello(T.plus_seconds(2)), &k);
        let from_large = SignedHello::sign(large.hello(T.plus_seconds(2)), &k);
        assert_eq!(
            large.observe(&from_small),
            Some(TwinVerdict::TwinStartedEarlier)
        );
        assert_eq!(
            small.observe(&from_large),
            Some(TwinVerdict::TwinStartedLater)
        );
    }

    #[test]
    fn reports_that_prove_no_twin_are_ignored() {
        let k = key(1);
        let mut guard = TwinGuard::new([1; 16], T.plus_seconds(100), k.public_key());
        // This node's previous run, replayed by a peer: sent before this run started.
        assert_eq!(guard.observe(&hello(&k, 7, 0, 100)), None);
        // Another node's key (anyone can make those).
        assert_eq!(guard.observe(&hello(&key(2), 7, 0, 200)), None);
        // Its own instance.
        assert_eq!(guard.observe(&hello(&k, 1, 100, 200)), None);
        // A hello under its key whose signature does not verify.
        let mut forged = hello(&key(2), 7, 0, 200);
        forged.signer = k.public_key();
        assert_eq!(guard.observe(&forged), None);
        // Each of these again, sent later: still nothing.
        assert_eq!(guard.observe(&hello(&k, 7, 0, 99)), None);
        assert_eq!(guard.observe(&hello(&key(2), 7, 0, 201)), None);
        assert_eq!(guard.observe(&hello(&k, 1, 100, 201)), None);
        assert!(guard.may_cut());
        assert_eq!(guard.verdict(), TwinVerdict::Alone);
    }

    #[test]
    fn the_last_hello_of_a_stopped_run_never_stops_the_next_one() {
        // The previous run's last hello (sent at +150) looks newer than this start (+100,
        // the clock was set back across the restart), and a peer reports it every round.
        let k = key(1);
        let mut guard = TwinGuard::new([1; 16], T.plus_seconds(100), k.public_key());
        let last = hello(&k, 7, 0, 150);
        for _ in 0..5 {
            assert_eq!(guard.observe(&last), None);
        }
        assert!(guard.may_cut());
        // A run that really goes on sends newer hellos: then it counts.
        assert_eq!(
            guard.observe(&hello(&k, 7, 0, 151)),
            Some(TwinVerdict::TwinStartedEarlier)
        );
    }
}
