//! Counter-based random streams: every draw is a pure function of the seed and of what it is
//! for (agent, day, episode, scan time), so a run repeats exactly whatever the thread count
//! and whatever order the work is done in.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// What a stream is for; part of every stream's key so no two uses share draws.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Domain {
    Population = 1,
    Household = 2,
    Occupation = 3,
    Random = 4,
    Shuffle = 5,
    Episode = 6,
    Scan = 7,
    Schedule = 8,
    Infection = 9,
    Course = 10,
    Phone = 11,
    Authority = 12,
    Sniffer = 13,
    RadioStats = 14,
    EpisodeRadio = 16,
    Projection = 17,
    Linking = 18,
    Rooms = 19,
    Intervention = 20,
    Bystander = 21,
    Trial = 22,
    FederatedNode = 23,
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes a key of several words into one.
#[inline]
pub(crate) fn hash(seed: u64, domain: Domain, parts: &[u64]) -> u64 {
    let mut h = mix(seed ^ 0x9e37_79b9_7f4a_7c15);
    h = mix(h ^ (domain as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for p in parts {
        h = mix(h.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ *p);
    }
    h
}

/// A small deterministic generator (SplitMix64) keyed by `(seed, domain, parts)`.
#[derive(Clone, Debug)]
pub(crate) struct Stream {
    state: u64,
}

impl Stream {
    /// The stream for `(seed, domain, parts)`.
    pub(crate) fn new(seed: u64, domain: Domain, parts: &[u64]) -> Stream {
        Stream {
            state: hash(seed, domain, parts),
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    #[inline]
    pub(crate) fn range_f(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n); 0 when n is 0.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box–Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-space standard deviation.
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Gamma(shape, scale) by Marsaglia and Tsang (shape < 1 boosted).
    pub(crate) fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape < 1.0 {
            let u = self.uniform().max(f64::MIN_POSITIVE);
            return self.gamma(shape + 1.0, scale) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v * scale;
            }
        }
    }

    /// Poisson(lambda) (inversion; lambda is small here).
    pub(crate) fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = self.uniform();
        while p > limit {
            k += 1;
            p *= self.uniform();
        }
        k
    }

    /// Index drawn with probability proportional to `weights` (cumulative, ascending).
    pub(crate) fn pick_cumulative(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let x = self.uniform() * total;
        cumulative
            .partition_point(|c| *c <= x)
            .min(cumulative.len().saturating_sub(1))
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A ChaCha20 generator for the protocol's key material, keyed like a [`Stream`].
pub(crate) fn crypto_rng(seed: u64, domain: Domain, parts: &[u64]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(seed32(seed, domain, parts))
}

/// 32 seed bytes keyed like a [`Stream`].
pub(crate) fn seed32(seed: u64, domain: Domain, parts: &[u64]) -> [u8; 32] {
    let mut stream = Stream::new(seed, domain, parts);
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&stream.next_u64().to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_repeat_and_differ_by_key() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(Stream::new(1, Domain::Scan, &[2, 3]), |s, _| {
                Some(s.next_u64())
            })
            .collect();
        let mut again = Stream::new(1, Domain::Scan, &[2, 3]);
        assert!(a.iter().all(|x| *x == again.next_u64()));
        assert_ne!(
            Stream::new(1, Domain::Scan, &[2, 4]).next_u64(),
            Stream::new(1, Domain::Scan, &[2, 3]).next_u64()
        );
        assert_ne!(
            Stream::new(1, Domain::Episode, &[2, 3]).next_u64(),
            Stream::new(1, Domain::Scan, &[2, 3]).next_u64()
        );
    }

    #[test]
    fn moments_are_right() {
        let mut s = Stream::new(9, Domain::RadioStats, &[]);
        let n = 200_000;
        let (mut sum, mut sq) = (0.0, 0.0);
        for _ in 0..n {
            let x = s.normal();
            sum += x;
            sq += x * x;
        }
        let mean = sum / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((sq / n as f64 - 1.0).abs() < 0.02);
        let g: f64 = (0..n).map(|_| s.gamma(3.0, 2.0)).sum::<f64>() / n as f64;
        assert!((g - 6.0).abs() < 0.05, "{g}");
        let p: f64 = (0..n).map(|_| f64::from(s.poisson(3.5))).sum::<f64>() / n as f64;
        assert!((p - 3.5).abs() < 0.03, "{p}");
    }
}
