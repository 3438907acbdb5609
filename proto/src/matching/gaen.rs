//! GAEN matching: published diagnosis keys against the RPIs a phone heard.

use aes::cipher::BlockCipherEncrypt;

use super::index::{PrefixIndex, Prefixed, prefix_of};
use crate::gaen::{
    DiagnosisKey, MATCH_TOLERANCE_INTERVALS, RPI_PADDING, RollingProximityIdentifier,
};
use crate::time::IntervalNumber;

/// The most RPIs one key can yield: `rolling_period` is a `u8` (GAEN allows up to 144).
const MAX_RPIS_PER_KEY: usize = u8::MAX as usize;

/// One heard RPI, as stored in the matcher.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Sighting {
    rpi: [u8; 16],
    interval: u32,
    /// Position in the sequence given to [`GaenMatcher::new`].
    index: u32,
}

impl Prefixed for Sighting {
    #[inline(always)]
    fn prefix(&self) -> u64 {
        prefix_of(&self.rpi)
    }
}

/// A heard RPI that a diagnosis key produced, inside the key's window and tolerance.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GaenMatch<'k> {
    /// The diagnosis key that produced the RPI.
    pub key: &'k DiagnosisKey,
    /// The matching identifier (the IV of its Associated Encrypted Metadata).
    pub rpi: RollingProximityIdentifier,
    /// The interval the key derived `rpi` for: `key.rolling_start + k` for some
    /// `k < rolling_period`.
    pub rpi_interval: IntervalNumber,
    /// Position of the sighting in the sequence given to [`GaenMatcher::new`], so the
    /// caller can find what else it stored with it (AEM, signal strength, duration).
    pub sighting: usize,
    /// When the sighting was heard (receiver's clock).
    pub sighting_interval: IntervalNumber,
}

/// The RPIs a phone heard, indexed for matching published [`DiagnosisKey`]s.
///
/// A key matches a sighting when one of the RPIs it derives for its validity window
/// (`rolling_start .. rolling_start + rolling_period`) equals the sighting's RPI and the
/// sighting was heard inside that window widened by [`MATCH_TOLERANCE_INTERVALS`] on each
/// side ([`DiagnosisKey::window_contains`]). A broadcaster only ever derives RPIs for
/// intervals inside its key's window, so the tolerance widens when a sighting may have been
/// *heard* (clock skew, a late rotation), never which RPIs are derived: each key costs one
/// RPIK derivation and `rolling_period` AES blocks, or nothing at all when no sighting lies
/// in its widened window.
///
/// Matching is exact: a prefilter over the RPIs' first eight bytes rejects almost every
/// derived RPI with one memory access; survivors are compared in full. The matcher holds no
/// per-key state, so feeding it keys one at a time from
/// [`BatchStream`](crate::batch::BatchStream) runs in constant memory. Only expired keys
/// are published; checking that is the caller's business (the matcher has no clock).
#[derive(Clone, Debug)]
pub struct GaenMatcher {
    /// Sorted by prefix, then RPI, interval and index.
    sightings: Box<[Sighting]>,
    index: PrefixIndex,
    /// Distinct sighting intervals, sorted: keys whose widened window holds none are skipped.
    intervals: Box<[u32]>,
}

impl GaenMatcher {
    /// Indexes what a phone heard: each RPI with the interval it was heard in. The same RPI
    /// may appear several times (heard in several intervals); each sighting matches on its
    /// own.
    ///
    /// # Panics
    /// With `u32::MAX` or more sightings.
    pub fn new(
        sightings: impl IntoIterator<Item = (RollingProximityIdentifier, IntervalNumber)>,
    ) -> GaenMatcher {
        let mut sightings: Vec<Sighting> = sightings
            .into_iter()
            .enumerate()
            .map(|(index, (rpi, interval))| Sighting {
                rpi: rpi.0,
                interval: interval.0,
                index: u32::try_from(index).expect("fewer than u32::MAX sightings"),
            })
            .collect();
        sightings.sort_unstable_by_key(|s| (s.prefix(), *s));
        let index = PrefixIndex::build(&sightings);
        let mut intervals: Vec<u32> = sightings.iter().map(|s| s.interval).collect();
        intervals.sort_unstable();
        intervals.dedup();
        GaenMatcher {
            sightings: sightings.into_boxed_slice(),
            index,
            intervals: intervals.into_boxed_slice(),
        }
    }

    /// Number of sightings held.
    pub fn len(&self) -> usize {
        self.sightings.len()
    }

    /// Whether no sightings are held.
    pub fn is_empty(&self) -> bool {
        self.sightings.is_empty()
    }

    /// Heap bytes the matcher holds: constant while keys stream through it.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.sightings)
            + std::mem::size_of_val(&*self.intervals)
            + self.index.memory_bytes()
    }

    /// Whether some sighting was heard in `from .. until`.
    fn heard_between(&self, from: IntervalNumber, until: IntervalNumber) -> bool {
        let first = self.intervals.partition_point(|&t| t < from.0);
        self.intervals.get(first).is_some_and(|&t| t < until.0)
    }

    /// Calls `on_match` once for every sighting that `key` produced inside its window and
    /// tolerance (none for a key with `rolling_period` 0).
    ///
    /// Allocation-free: the RPIs are derived into a stack buffer (4 KiB).
    pub fn match_key<'k>(&self, key: &'k DiagnosisKey, mut on_match: impl FnMut(GaenMatch<'k>)) {
        let from = key.rolling_start.minus(MATCH_TOLERANCE_INTERVALS);
        let until = key.rolling_end().plus(MATCH_TOLERANCE_INTERVALS);
        if !self.heard_between(from, until) {
            return;
        }
        let count = usize::from(key.rolling_period);
        let start = key.rolling_start.0;
        let mut blocks = [aes::Block::default(); MAX_RPIS_PER_KEY];
        let blocks = &mut blocks[..count];
        // "EN-RPI" ‖ 0 × 6 ‖ interval (u32 LE); intervals wrap like `rpis_into`'s.
        for (k, block) in (0u32..).zip(blocks.iter_mut()) {
            block[..6].copy_from_slice(RPI_PADDING);
            block[12..].copy_from_slice(&start.wrapping_add(k).to_le_bytes());
        }
        let rpik = key.key.rpik();
        // One call: the backend pipelines full groups (8 blocks for AES-NI, 64 for VAES).
        rpik.cipher().encrypt_blocks(blocks);

        // Prefilter 64 RPIs into a bit mask without branching, then visit the set bits.
        for (group, chunk) in (0u32..).step_by(64).zip(blocks.chunks(64)) {
            let mut maybe = 0u64;
            for (bit, block) in chunk.iter().enumerate() {
                maybe |= self.index.maybe(prefix_of(block)) << bit;
            }
            while maybe != 0 {
                let bit = maybe.trailing_zeros();
                maybe &= maybe - 1;
                let rpi: [u8; 16] = chunk[bit as usize].into();
                let rpi_interval = IntervalNumber(start.wrapping_add(group + bit));
                for sighting in self.index.group(&self.sightings, prefix_of(&rpi)) {
                    let heard = IntervalNumber(sighting.interval);
                    if sighting.rpi == rpi && key.window_contains(heard, MATCH_TOLERANCE_INTERVALS)
                    {
                        on_match(GaenMatch {
                            key,
                            rpi: RollingProximityIdentifier(rpi),
                            rpi_interval,
                            sighting: sighting.index as usize,
                            sighting_interval: heard,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    use super::*;
    use crate::gaen::TemporaryExposureKey;
    use crate::report::ReportType;

    const DAY: u32 = 2_800_000 / 144 * 144;

    fn diagnosis_key(tek: [u8; 16], start: u32, period: u8) -> DiagnosisKey {
        DiagnosisKey {
            key: TemporaryExposureKey(tek),
            rolling_start: IntervalNumber(start),
            rolling_period: period,
            report_type: ReportType::ConfirmedTest,
            days_since_onset: None,
        }
    }

    /// The specification, spelled out: every RPI of the window against every sighting.
    fn naive(
        sightings: &[(RollingProximityIdentifier, IntervalNumber)],
        key: &DiagnosisKey,
    ) -> Vec<(usize, u32)> {
        let rpik = key.key.rpik();
        let mut found = Vec::new();
        for (k, rpi) in rpik
            .rpis(key.rolling_start, u32::from(key.rolling_period))
            .enumerate()
        {
            for (i, (heard, at)) in sightings.iter().enumerate() {
                if *heard == rpi && key.window_contains(*at, MATCH_TOLERANCE_INTERVALS) {
                    found.push((i, key.rolling_start.0.wrapping_add(k as u32)));
                }
            }
        }
        found.sort_unstable();
        found
    }

    fn fast(matcher: &GaenMatcher, key: &DiagnosisKey) -> Vec<(usize, u32)> {
        let mut found = Vec::new();
        matcher.match_key(key, |m| {
            assert!(std::ptr::eq(m.key, key));
            assert_eq!(m.rpi, key.key.rpik().rpi(m.rpi_interval));
            found.push((m.sighting, m.rpi_interval.0));
        });
        found.sort_unstable();
        found
    }

    fn random_sightings(
        rng: &mut ChaCha20Rng,
        n: usize,
    ) -> Vec<(RollingProximityIdentifier, IntervalNumber)> {
        (0..n)
            .map(|_| {
                let mut rpi = [0u8; 16];
                rng.fill_bytes(&mut rpi);
                let at = DAY - 2 * 144 + rng.next_u32() % (6 * 144);
                (RollingProximityIdentifier(rpi), IntervalNumber(at))
            })
            .collect()
    }

    #[test]
    fn sightings_at_the_tolerance_edges() {
        let key = diagnosis_key([3; 16], DAY, 144);
        let rpik = key.key.rpik();
        let first = rpik.rpi(IntervalNumber(DAY));
        let last = rpik.rpi(IntervalNumber(DAY + 143));
        let sightings = vec![
            (first, IntervalNumber(DAY - 12)),      // earliest allowed
            (first, IntervalNumber(DAY - 13)),      // one interval too early
            (last, IntervalNumber(DAY + 144 + 11)), // latest allowed
            (last, IntervalNumber(DAY + 144 + 12)), // one interval too late
            (last, IntervalNumber(DAY + 143)),      // on time
        ];
        let matcher = GaenMatcher::new(sightings.clone());
        let mut found = Vec::new();
        matcher.match_key(&key, |m| {
            found.push((m.sighting, m.sighting_interval.0, m.rpi_interval.0));
        });
        found.sort_unstable();
        assert_eq!(
            found,
            vec![
                (0, DAY - 12, DAY),
                (2, DAY + 155, DAY + 143),
                (4, DAY + 143, DAY + 143)
            ]
        );
        assert_eq!(fast(&matcher, &key), naive(&sightings, &key));
    }

    #[test]
    fn a_shorter_window_ends_earlier() {
        // A key cut short (uploaded the same day) derives only its own intervals.
        let key = diagnosis_key([4; 16], DAY, 10);
        let rpik = key.key.rpik();
        let inside = rpik.rpi(IntervalNumber(DAY + 9));
        let beyond = rpik.rpi(IntervalNumber(DAY + 10));
        let matcher = GaenMatcher::new([
            (inside, IntervalNumber(DAY + 21)),
            (inside, IntervalNumber(DAY + 22)),
            (beyond, IntervalNumber(DAY + 10)),
        ]);
        assert_eq!(fast(&matcher, &key), vec![(0, DAY + 9)]);
        assert_eq!(fast(&matcher, &diagnosis_key([4; 16], DAY, 0)), vec![]);
    }

    #[test]
    fn random_keys_match_nothing() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let matcher = GaenMatcher::new(random_sightings(&mut rng, 28_000));
        assert_eq!(matcher.len(), 28_000);
        for _ in 0..500 {
            let key = diagnosis_key(TemporaryExposureKey::generate(&mut rng).0, DAY, 144);
            matcher.match_key(&key, |m| panic!("false match {m:?}"));
        }
    }

    #[test]
    fn keys_far_from_every_sighting_are_skipped_and_an_empty_matcher_matches_nothing() {
        let key = diagnosis_key([5; 16], DAY, 144);
        let rpi = key.key.rpik().rpi(IntervalNumber(DAY));
        let matcher = GaenMatcher::new([(rpi, IntervalNumber(DAY + 10 * 144))]);
        assert_eq!(fast(&matcher, &key), vec![]);
        let empty = GaenMatcher::new([]);
        assert!(empty.is_empty());
        assert_eq!(fast(&empty, &key), vec![]);
    }

    #[test]
    fn memory_is_reported() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let matcher = GaenMatcher::new(random_sightings(&mut rng, 1000));
        assert!(matcher.memory_bytes() >= 1000 * 24);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Against the naive reference: random sightings around the keys' windows, some of
        /// them RPIs the keys really derive (also repeated and at the window edges).
        #[test]
        fn agrees_with_the_naive_reference(
            seed in any::<u64>(),
            noise in 0usize..300,
            planted in proptest::collection::vec((0usize..4, 0u32..144, -30i32..180), 0..40),
            periods in proptest::collection::vec(0u8..=144, 4),
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let keys: Vec<DiagnosisKey> = periods
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    let start = DAY - 144 + 144 * (i as u32 % 3) + rng.next_u32() % 3;
                    diagnosis_key(TemporaryExposureKey::generate(&mut rng).0, start, p)
                })
                .collect();
            let mut sightings = random_sightings(&mut rng, noise);
            for &(k, offset, heard) in &planted {
                let key = &keys[k];
                let rpi = key.key.rpik().rpi(IntervalNumber(key.rolling_start.0 + offset));
                let at = key.rolling_start.0.wrapping_add_signed(heard);
                sightings.push((rpi, IntervalNumber(at)));
            }
            let matcher = GaenMatcher::new(sightings.clone());
            for key in &keys {
                prop_assert_eq!(fast(&matcher, key), naive(&sightings, key));
            }
        }
    }
}
