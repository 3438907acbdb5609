//! GAEN matching: published diagnosis keys against the RPIs a phone heard.

use aes::cipher::BlockCipherEncrypt;

use super::index::{PrefixIndex, Prefixed, prefix_of};
use crate::gaen::{
    DiagnosisKey, MATCH_TOLERANCE_INTERVALS, RPI_PADDING, RollingProximityIdentifier,
    RollingProximityIdentifierKey,
};
use crate::time::{INTERVALS_PER_DAY, IntervalNumber};

/// RPIs derived per AES call: a daily key's window (GAEN's longest); longer windows (a
/// `rolling_period` above 144 breaks GAEN, but the type allows it) take several calls.
const WINDOW: usize = INTERVALS_PER_DAY as usize;

/// Keys whose RPIKs are derived together (see
/// `RollingProximityIdentifierKey::derive_published`).
const LANES: usize = 4;

/// The widest span of sighting intervals indexed by a table of counts (8 bytes each); a
/// wider span (a year and more: a broken clock or crafted input) falls back to a binary
/// search.
const MAX_COUNTED_SPAN: u32 = 1 << 16;

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
    /// When a sighting was heard, to skip keys whose widened window holds none.
    heard: HeardIntervals,
}

/// The set of intervals with at least one sighting, answering "any in `from .. until`?".
#[derive(Clone, Debug)]
enum HeardIntervals {
    /// `before[i]`: how many distinct heard intervals lie below `first + i`, for
    /// `i in 0..=span`; two loads answer a range query.
    Counted { first: u32, before: Box<[u32]> },
    /// The distinct intervals, sorted, when they span too much time for a table.
    Sorted(Box<[u32]>),
}

impl HeardIntervals {
    fn new(mut intervals: Vec<u32>) -> HeardIntervals {
        intervals.sort_unstable();
        intervals.dedup();
        match (intervals.first(), intervals.last()) {
            (Some(&first), Some(&last)) if last - first < MAX_COUNTED_SPAN => {
                let span = (last - first + 1) as usize;
                let mut before = vec![0u32; span + 1];
                for &t in &intervals {
                    before[(t - first) as usize + 1] = 1;
                }
                for i in 1..before.len() {
                    before[i] += before[i - 1];
                }
                HeardIntervals::Counted {
                    first,
                    before: before.into_boxed_slice(),
                }
            }
            _ => HeardIntervals::Sorted(intervals.into_boxed_slice()),
        }
    }

    /// Whether some interval in `from .. until` was heard.
    #[inline]
    fn any_between(&self, from: u32, until: u32) -> bool {
        match self {
            HeardIntervals::Counted { first, before } => {
                let last = before.len() - 1;
                let at = |t: u32| before[(t.saturating_sub(*first) as usize).min(last)];
                at(until) > at(from)
            }
            HeardIntervals::Sorted(sorted) => {
                let i = sorted.partition_point(|&t| t < from);
                sorted.get(i).is_some_and(|&t| t < until)
            }
        }
    }

    fn memory_bytes(&self) -> usize {
        match self {
            HeardIntervals::Counted { before, .. } => size_of_val(&**before),
            HeardIntervals::Sorted(sorted) => size_of_val(&**sorted),
        }
    }
}

/// Reused between keys: the plaintext blocks of the last window start, and the RPIs.
struct Scratch {
    plaintext_start: Option<u32>,
    plaintext: [aes::Block; WINDOW],
    rpis: [aes::Block; WINDOW],
}

impl Scratch {
    fn new() -> Scratch {
        let mut padded = aes::Block::default();
        padded[..6].copy_from_slice(RPI_PADDING);
        Scratch {
            plaintext_start: None,
            plaintext: [padded; WINDOW],
            rpis: [aes::Block::default(); WINDOW],
        }
    }

    /// The RPIs of intervals `start .. start + count` (`count <= WINDOW`; intervals wrap
    /// like [`RollingProximityIdentifierKey::rpis_into`]'s).
    fn derive(
        &mut self,
        rpik: &RollingProximityIdentifierKey,
        start: u32,
        count: usize,
    ) -> &[aes::Block] {
        // "EN-RPI" ‖ 0 × 6 is in place since `new`; only the 4-byte interval changes, and
        // only when the start does. (Writing whole blocks measured slower here.)
        if self.plaintext_start != Some(start) {
            for (k, block) in (0u32..).zip(self.plaintext.iter_mut()) {
                block[12..].copy_from_slice(&start.wrapping_add(k).to_le_bytes());
            }
            self.plaintext_start = Some(start);
        }
        // One call: the backend pipelines full groups (8 blocks for AES-NI, 64 for VAES).
        rpik.cipher()
            .encrypt_blocks_b2b(&self.plaintext[..count], &mut self.rpis[..count])
            .expect("equal lengths");
        &self.rpis[..count]
    }
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
        let heard = HeardIntervals::new(sightings.iter().map(|s| s.interval).collect());
        GaenMatcher {
            sightings: sightings.into_boxed_slice(),
            index,
            heard,
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
        size_of_val(&*self.sightings) + self.heard.memory_bytes() + self.index.memory_bytes()
    }

    /// Whether some sighting was heard inside `key`'s window widened by the tolerance.
    fn may_match(&self, key: &DiagnosisKey) -> bool {
        key.rolling_period > 0
            && self.heard.any_between(
                key.rolling_start.minus(MATCH_TOLERANCE_INTERVALS).0,
                key.rolling_end().plus(MATCH_TOLERANCE_INTERVALS).0,
            )
    }

    /// Calls `on_match` once for every sighting that `key` produced inside its window and
    /// tolerance (none for a key with `rolling_period` 0).
    ///
    /// Allocation-free (about 5 KiB of stack). [`GaenMatcher::match_keys`] is faster per
    /// key: prefer it when keys arrive in runs.
    pub fn match_key<'k>(&self, key: &'k DiagnosisKey, on_match: impl FnMut(GaenMatch<'k>)) {
        self.match_keys(std::slice::from_ref(key), on_match);
    }

    /// Calls `on_match` once for every sighting that one of `keys` produced inside its
    /// window and tolerance, key by key in order.
    ///
    /// Allocation-free (about 5 KiB of stack). Derives the RPIKs of four keys together,
    /// which overlaps their SHA-256 chains; a caller streaming keys out of a
    /// [`BatchStream`](crate::batch::BatchStream) can collect them into a small buffer (a
    /// few dozen keys) and call this per buffer, in bounded memory.
    pub fn match_keys<'k>(
        &self,
        keys: &'k [DiagnosisKey],
        mut on_match: impl FnMut(GaenMatch<'k>),
    ) {
        let mut scratch = Scratch::new();
        let mut lanes: [&'k DiagnosisKey; LANES] = match keys.first() {
            Some(key) => [key; LANES],
            None => return,
        };
        let mut filled = 0;
        for key in keys.iter().filter(|key| self.may_match(key)) {
            lanes[filled] = key;
            filled += 1;
            if filled == LANES {
                let rpiks = RollingProximityIdentifierKey::derive_published(lanes.map(|k| &k.key));
                for (key, rpik) in lanes.iter().zip(&rpiks) {
                    self.match_derived(key, rpik, &mut scratch, &mut on_match);
                }
                filled = 0;
            }
        }
        for key in &lanes[..filled] {
            self.match_derived(key, &key.key.rpik(), &mut scratch, &mut on_match);
        }
    }

    /// Derives `key`'s RPIs with its `rpik` and looks each up.
    fn match_derived<'k>(
        &self,
        key: &'k DiagnosisKey,
        rpik: &RollingProximityIdentifierKey,
        scratch: &mut Scratch,
        on_match: &mut impl FnMut(GaenMatch<'k>),
    ) {
        let count = usize::from(key.rolling_period);
        for first in (0..count).step_by(WINDOW) {
            // `first < 256`.
            let start = key.rolling_start.0.wrapping_add(first as u32);
            let rpis = scratch.derive(rpik, start, (count - first).min(WINDOW));
            // The prefilter rejects all but about 1 in 700 absent RPIs: a branch that is
            // (almost) never taken costs less than collecting a mask.
            let prefilter = self.index.prefilter();
            for (k, block) in (0u32..).zip(rpis) {
                if prefilter.maybe(prefix_of(block)) {
                    let rpi_interval = IntervalNumber(start.wrapping_add(k));
                    self.exact(key, (*block).into(), rpi_interval, on_match);
                }
            }
        }
    }

    /// Reports the sightings of `rpi` (derived for `rpi_interval`) in `key`'s widened window.
    #[cold]
    fn exact<'k>(
        &self,
        key: &'k DiagnosisKey,
        rpi: [u8; 16],
        rpi_interval: IntervalNumber,
        on_match: &mut impl FnMut(GaenMatch<'k>),
    ) {
        for sighting in self.index.group(&self.sightings, prefix_of(&rpi)) {
            let heard = IntervalNumber(sighting.interval);
            if sighting.rpi == rpi && key.window_contains(heard, MATCH_TOLERANCE_INTERVALS) {
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
    fn windows_longer_than_a_day_are_derived_in_full() {
        // GAEN caps `rolling_period` at 144, the type at 255: derived in two AES calls.
        let key = diagnosis_key([8; 16], DAY, 255);
        let rpik = key.key.rpik();
        let sightings: Vec<_> = [0u32, 143, 144, 200, 254, 255]
            .iter()
            .map(|&k| (rpik.rpi(IntervalNumber(DAY + k)), IntervalNumber(DAY + k)))
            .collect();
        let matcher = GaenMatcher::new(sightings.clone());
        let found = fast(&matcher, &key);
        assert_eq!(found, naive(&sightings, &key));
        assert_eq!(
            found.len(),
            5,
            "every interval but the one after the window"
        );
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
    fn sightings_spread_over_years_still_match() {
        // Beyond the span a table of counts covers: the sorted fallback answers.
        let key = diagnosis_key([6; 16], DAY, 144);
        let rpi = key.key.rpik().rpi(IntervalNumber(DAY + 5));
        let sightings = vec![
            (RollingProximityIdentifier([1; 16]), IntervalNumber(7)),
            (rpi, IntervalNumber(DAY + 5)),
            (
                RollingProximityIdentifier([2; 16]),
                IntervalNumber(u32::MAX),
            ),
        ];
        let matcher = GaenMatcher::new(sightings.clone());
        assert!(matches!(matcher.heard, HeardIntervals::Sorted(_)));
        assert_eq!(fast(&matcher, &key), vec![(1, DAY + 5)]);
        let elsewhere = diagnosis_key([6; 16], DAY + 2 * 144, 144);
        assert_eq!(fast(&matcher, &elsewhere), vec![]);
    }

    #[test]
    fn heard_intervals_answer_ranges() {
        let heard = HeardIntervals::new(vec![10, 12, 12, 20]);
        assert!(matches!(heard, HeardIntervals::Counted { .. }));
        let sorted = HeardIntervals::Sorted(vec![10, 12, 20].into_boxed_slice());
        for h in [&heard, &sorted] {
            for (from, until, any) in [
                (0, 10, false),
                (0, 11, true),
                (11, 12, false),
                (11, 13, true),
                (13, 20, false),
                (20, 21, true),
                (21, 1000, false),
                (0, u32::MAX, true),
            ] {
                assert_eq!(h.any_between(from, until), any, "{from}..{until}");
            }
        }
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
            planted in proptest::collection::vec((0usize..11, 0u32..144, -30i32..180), 0..60),
            periods in proptest::collection::vec(0u8..=144, 11),
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let keys: Vec<DiagnosisKey> = periods
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    // Mostly midnights, a few keys starting later in the day.
                    let start = DAY - 144 + 144 * (i as u32 % 3) + rng.next_u32() % 2 * 40;
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
            let mut all = Vec::new();
            for key in &keys {
                let expected = naive(&sightings, key);
                prop_assert_eq!(fast(&matcher, key), expected.clone());
                all.extend(expected.into_iter().map(|(s, i)| (key.key.0, s, i)));
            }
            // All keys at once: RPIKs derived four at a time, then the rest one by one.
            let mut together = Vec::new();
            matcher.match_keys(&keys, |m| {
                together.push((m.key.key.0, m.sighting, m.rpi_interval.0));
            });
            all.sort_unstable();
            together.sort_unstable();
            prop_assert_eq!(together, all);
        }
    }
}
