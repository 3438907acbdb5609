//! The Poisson schedule of decoy requests.

use ephemera_proto::UnixTime;
use ephemera_proto::time::SECONDS_PER_DAY;
use rand_core::Rng;

/// The time of the next decoy after `now` for a Poisson process of `rate_per_day` events a
/// day, drawn from `rng` (exponential gaps); `None` when the rate is 0.
pub fn next_decoy(now: UnixTime, rate_per_day: f64, rng: &mut impl Rng) -> Option<UnixTime> {
    if !(rate_per_day > 0.0 && rate_per_day.is_finite()) {
        return None;
    }
    // A uniform draw in (0, 1]: 53 random bits, never 0, so the logarithm is finite.
    let u = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let gap_days = -u.ln() / rate_per_day;
    let gap = (gap_days * SECONDS_PER_DAY as f64).min(u64::MAX as f64 / 2.0) as u64;
    Some(now.plus_seconds(gap.max(1)))
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn mean_gap_matches_the_rate() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let n = 20_000u64;
        let mut total = 0u64;
        for _ in 0..n {
            total += next_decoy(UnixTime(0), 2.0, &mut rng).unwrap().0;
        }
        let mean_days = total as f64 / n as f64 / SECONDS_PER_DAY as f64;
        assert!((mean_days - 0.5).abs() < 0.02, "{mean_days}");
        assert_eq!(next_decoy(UnixTime(0), 0.0, &mut rng), None);
    }
}
