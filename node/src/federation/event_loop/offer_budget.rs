//! A peer's budget of costly checks (sunset orders, venue releases): a token bucket, so a
//! peer gets a burst, then one check per refill period, and past it what it sends is
//! dropped without penalty.

use std::time::Duration;

use tokio::time::Instant;

/// How many checks a peer gets: a burst, then one more per `refill`.
#[derive(Clone, Copy, Debug)]
pub(super) struct OfferRate {
    /// Checks in a burst.
    pub(super) burst: f64,
    /// One more check per this long.
    pub(super) refill: Duration,
}

/// One peer's budget at a rate.
#[derive(Clone, Copy, Debug)]
pub(super) struct OfferBudget {
    rate: OfferRate,
    tokens: f64,
    at: Instant,
}

impl OfferBudget {
    /// A full budget at `now`.
    pub(super) fn full(rate: OfferRate, now: Instant) -> Self {
        OfferBudget {
            rate,
            tokens: rate.burst,
            at: now,
        }
    }

    /// Takes one check if the budget allows it at `now`.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let refill = now
            .duration_since(self.at)
            .div_duration_f64(self.rate.refill);
        self.tokens = (self.tokens + refill).min(self.rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_budget_allows_a_burst_then_one_check_per_refill() {
        let rate = OfferRate {
            burst: 8.0,
            refill: Duration::from_secs(5),
        };
        let start = Instant::now();
        let mut budget = OfferBudget::full(rate, start);
        for _ in 0..8 {
            assert!(budget.take(start));
        }
        assert!(!budget.take(start));
        assert!(!budget.take(start + rate.refill / 2));
        assert!(budget.take(start + rate.refill));
        assert!(!budget.take(start + rate.refill));
        // Idle for long: back to a full burst, no more.
        let later = start + rate.refill * 100;
        for _ in 0..8 {
            assert!(budget.take(later));
        }
        assert!(!budget.take(later));
    }
}
