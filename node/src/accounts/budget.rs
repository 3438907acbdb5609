//! Sign-in guessing budgets, in memory only: per (source, name), per source over all names,
//! and per name over all sources. The source is a keyed hash of the client's address
//! ([`crate::server::Source`]); a name is budgeted whether or not it is an account's, so a
//! refusal says nothing about which names exist.

use std::collections::HashMap;

use ephemera_proto::UnixTime;

/// Failed sign-ins, charged before the password is hashed and refunded on success: per
/// (source, name), per source over all names, and per name over all sources (the last
/// backs off a guesser who spreads over many sources; it can make an account wait, never
/// reveal it). All live in memory only.
#[derive(Debug)]
pub(crate) struct LoginBudget {
    per_name: AttemptBudget,
    per_source: AttemptBudget,
    per_account: AttemptBudget,
}

impl LoginBudget {
    /// `per_name` failures per (source, name), `per_source` per source and `per_account`
    /// per name, per window.
    pub(crate) fn new(
        per_name: u32,
        per_source: u32,
        per_account: u32,
        window_seconds: u64,
    ) -> Self {
        LoginBudget {
            per_name: AttemptBudget::new(per_name, window_seconds),
            per_source: AttemptBudget::new(per_source, window_seconds),
            per_account: AttemptBudget::new(per_account, window_seconds),
        }
    }

    fn keys(source: u64, name: &str) -> (String, String) {
        let source = format!("{source:016x}");
        (format!("{source}/{name}"), source)
    }

    /// Charges one attempt for `name` from `source`, if all three budgets have room: atomically
    /// with the check, before any hashing, so concurrent guesses cannot overrun it.
    pub(crate) fn charge(&mut self, source: u64, name: &str, now: UnixTime) -> bool {
        let (pair, source) = Self::keys(source, name);
        if !self.per_name.allows(&pair, now)
            || !self.per_source.allows(&source, now)
            || !self.per_account.allows(name, now)
        {
            return false;
        }
        self.per_name.record_failure(&pair, now);
        self.per_source.record_failure(&source, now);
        self.per_account.record_failure(name, now);
        true
    }

    /// Gives back an attempt charged by [`LoginBudget::charge`] that succeeded.
    pub(crate) fn refund(&mut self, source: u64, name: &str, now: UnixTime) {
        let (pair, source) = Self::keys(source, name);
        self.per_name.refund(&pair, now);
        self.per_source.refund(&source, now);
        self.per_account.refund(name, now);
    }
}

/// A fixed-window budget of failed attempts per key.
#[derive(Debug)]
pub(crate) struct AttemptBudget {
    capacity: u32,
    window_seconds: u64,
    windows: HashMap<String, (UnixTime, u32)>,
}

/// Most keys a budget tracks. When full, expired windows are dropped, then the oldest one:
/// a new key never shares another's window (sharing one would let a flood of invented
/// names lock out everyone).
const MAX_TRACKED_KEYS: usize = 10_000;

impl AttemptBudget {
    /// `capacity` failures per `window_seconds`.
    pub(crate) fn new(capacity: u32, window_seconds: u64) -> Self {
        AttemptBudget {
            capacity,
            window_seconds: window_seconds.max(1),
            windows: HashMap::new(),
        }
    }

    fn window(&mut self, key: &str, now: UnixTime) -> &mut (UnixTime, u32) {
        let window_seconds = self.window_seconds;
        if self.windows.len() >= MAX_TRACKED_KEYS && !self.windows.contains_key(key) {
            self.windows
                .retain(|_, (start, _)| now.0 < start.0.saturating_add(window_seconds));
            if self.windows.len() >= MAX_TRACKED_KEYS
                && let Some(oldest) = self
                    .windows
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(k, _)| k.clone())
            {
                self.windows.remove(&oldest);
            }
        }
        let window = self.windows.entry(key.to_owned()).or_insert((now, 0));
        if now.0 >= window.0.0.saturating_add(window_seconds) {
            *window = (now, 0);
        }
        window
    }

    /// Whether another attempt for `key` is allowed at `now`.
    pub(crate) fn allows(&mut self, key: &str, now: UnixTime) -> bool {
        let capacity = self.capacity;
        self.window(key, now).1 < capacity
    }

    /// Records a failed attempt for `key`.
    pub(crate) fn record_failure(&mut self, key: &str, now: UnixTime) {
        let window = self.window(key, now);
        window.1 = window.1.saturating_add(1);
    }

    /// Takes back one recorded attempt for `key` (it succeeded).
    pub(crate) fn refund(&mut self, key: &str, now: UnixTime) {
        let window = self.window(key, now);
        window.1 = window.1.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_refill_per_window_and_stay_bounded() {
        let mut budget = AttemptBudget::new(2, 60);
        let t = UnixTime(1000);
        assert!(budget.allows("a", t));
        budget.record_failure("a", t);
        budget.record_failure("a", t);
        assert!(!budget.allows("a", t.plus_seconds(59)));
        assert!(budget.allows("b", t), "per key");
        assert!(budget.allows("a", t.plus_seconds(60)), "a new window");
        for i in 0..(MAX_TRACKED_KEYS + 10) {
            budget.record_failure(&i.to_string(), t);
            budget.record_failure(&i.to_string(), t);
        }
        assert!(budget.windows.len() <= MAX_TRACKED_KEYS);
        assert!(
            budget.allows("a fresh key", t),
            "a full table never makes a new key share a spent window"
        );
    }

    #[test]
    fn login_budget_is_per_source_and_charged_before_the_check_succeeds() {
        let mut budget = LoginBudget::new(2, 5, 100, 900);
        let t = UnixTime(1000);
        assert!(budget.charge(1, "caseworker", t));
        assert!(budget.charge(1, "caseworker", t));
        assert!(!budget.charge(1, "caseworker", t), "spent for source 1");
        assert!(
            budget.charge(2, "caseworker", t),
            "another source is untouched"
        );
        // Invented names from source 1: the per-source budget stops them, and only them.
        assert!(budget.charge(1, "x1", t));
        assert!(budget.charge(1, "x2", t));
        assert!(budget.charge(1, "x3", t));
        assert!(!budget.charge(1, "x4", t), "per source over all names");
        assert!(budget.charge(3, "x4", t));
        // A success gives its charge back.
        assert!(budget.charge(4, "bob", t));
        budget.refund(4, "bob", t);
        assert!(budget.charge(4, "bob", t));
        assert!(budget.charge(4, "bob", t));
        assert!(!budget.charge(4, "bob", t));
    }

    #[test]
    fn an_account_backs_off_over_all_sources_whether_or_not_it_exists() {
        let mut budget = LoginBudget::new(2, 100, 3, 900);
        let t = UnixTime(1000);
        for name in ["caseworker", "no-such-name"] {
            assert!(budget.charge(1, name, t));
            assert!(budget.charge(2, name, t));
            assert!(budget.charge(3, name, t));
            assert!(!budget.charge(4, name, t), "{name}: spent over all sources");
            assert!(budget.charge(4, name, t.plus_seconds(900)), "a new window");
        }
    }
}
