//! What a node keeps of *when* something arrived: the batch period, never the second.
//!
//! A stored arrival second, joined with a proxy's or an observer's log of (address, time),
//! would name the address behind an upload. So upload records hold the start of the batch
//! period they arrived in, their purge time is counted from it, and their entries are
//! released at the boundary that ends it: nothing stored orders two uploads of one period.

use ephemera_proto::UnixTime;

use crate::NodeCore;

impl NodeCore {
    /// The start of the batch period `now` falls in: the only arrival time the node stores.
    pub fn arrival_period(&self, now: UnixTime) -> UnixTime {
        self.cutter.boundary_at(now)
    }

    /// The first batch boundary at or after `now`: the earliest release time an entry
    /// arriving at `now` is filed under (it is published by that boundary's cut either way).
    pub fn release_floor(&self, now: UnixTime) -> UnixTime {
        let start = self.arrival_period(now);
        if start == now {
            now
        } else {
            self.cutter.next_boundary(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_within_a_period_are_stored_alike() {
        let core = crate::tests::core();
        let period = core.policy().batch_period_seconds;
        let start = UnixTime(1_700_000_000 / period * period);
        for offset in [0, 1, 59, period - 1] {
            let now = start.plus_seconds(offset);
            assert_eq!(core.arrival_period(now), start);
            let release = core.release_floor(now);
            assert!(release >= now && release.0.is_multiple_of(period));
        }
        assert_eq!(
            core.release_floor(start.plus_seconds(1)),
            start.plus_seconds(period)
        );
    }
}
