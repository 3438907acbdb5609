//! `pet` matching: published tokens against the peer-role tokens a phone holds.

use super::index::{PrefixIndex, Prefixed, prefix_of};
use crate::batch::TOKEN_RECORD_LEN;
use crate::pet::EncounterToken;
use crate::report::PublishedToken;
use crate::time::DayNumber;

/// One held peer-role token, as stored in the matcher.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    token: [u8; 16],
    day: u32,
    /// Position in the sequence given to [`PetMatcher::new`].
    index: u32,
}

impl Prefixed for Held {
    #[inline(always)]
    fn prefix(&self) -> u64 {
        prefix_of(&self.token)
    }
}

/// A published token that the phone holds, token and day alike.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PetMatch {
    /// The published token (equal to the held one).
    pub token: PublishedToken,
    /// Position of the held token in the sequence given to [`PetMatcher::new`], so the
    /// caller can find its encounter record.
    pub held: usize,
}

/// The peer-role tokens a phone holds, indexed for matching published tokens.
///
/// A published token matches when both its 16 token bytes and its day equal a held one's.
/// A prefilter over the tokens' first eight bytes rejects almost every published token with
/// one memory access; survivors are compared in full, so matching is exact. With the
/// default sizing the prefilter takes 8 bytes per held token (50,000 tokens: 512 KiB), and
/// the exact index about as much again plus the tokens themselves.
#[derive(Clone, Debug)]
pub struct PetMatcher {
    /// Sorted by prefix, then token, day and index.
    held: Box<[Held]>,
    index: PrefixIndex,
    /// Largest difference of days that still matches.
    day_tolerance: u32,
}

impl PetMatcher {
    /// Indexes the peer-role tokens a phone holds, each with the day of its encounter. A
    /// token held twice is reported twice.
    ///
    /// # Panics
    /// With `u32::MAX` or more tokens.
    pub fn new(tokens: impl IntoIterator<Item = PublishedToken>) -> PetMatcher {
        PetMatcher::with_day_tolerance(tokens, 0)
    }

    /// Like [`PetMatcher::new`], but a published token also matches a held one whose day
    /// differs by at most `days` (the two phones of an encounter each record the day of
    /// their own key, which can differ across midnight). The 16 token bytes must still be
    /// equal.
    ///
    /// # Panics
    /// With `u32::MAX` or more tokens.
    pub fn with_day_tolerance(
        tokens: impl IntoIterator<Item = PublishedToken>,
        days: u32,
    ) -> PetMatcher {
        let mut held: Vec<Held> = tokens
            .into_iter()
            .enumerate()
            .map(|(index, t)| Held {
                token: t.token.0,
                day: t.day.0,
                index: u32::try_from(index).expect("fewer than u32::MAX tokens"),
            })
            .collect();
        held.sort_unstable_by_key(|h| (h.prefix(), *h));
        let index = PrefixIndex::build(&held);
        PetMatcher {
            held: held.into_boxed_slice(),
            index,
            day_tolerance: days,
        }
    }

    /// Number of tokens held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no tokens are held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Heap bytes the matcher holds.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.held) + self.index.memory_bytes()
    }

    /// Whether `token` (token and day) is held.
    pub fn contains(&self, token: &PublishedToken) -> bool {
        let prefix = prefix_of(&token.token.0);
        self.index.maybe(prefix)
            && self
                .index
                .group(&self.held, prefix)
                .iter()
                .any(|h| h.token == token.token.0 && self.day_matches(h.day, token.day.0))
    }

    /// Calls `on_match` for every record of `records` that holds a held token, in order.
    ///
    /// `records` is a run of batch token records (`day (u32 LE) ‖ token (16)`, 20 bytes
    /// each, as in [`crate::batch`]); bytes after the last whole record are not looked at.
    /// Allocation-free; the loop over records has no data-dependent branch: it tests 64
    /// records at a time against the prefilter and walks a group again only when one of
    /// them passed (real matches, and about 1 in 800 absent tokens).
    pub fn match_records(&self, records: &[u8], mut on_match: impl FnMut(PetMatch)) {
        const GROUP: usize = 64;
        let prefilter = self.index.prefilter();
        let passes = |record: &[u8]| prefilter.maybe(prefix_of(&record[4..]));
        let mut groups = records.chunks_exact(GROUP * TOKEN_RECORD_LEN);
        for group in &mut groups {
            // Branch-free over the group; a group with a prefilter hit (a few percent of
            // groups of absent tokens, and every real match) is walked again.
            let mut any = false;
            for record in group.chunks_exact(TOKEN_RECORD_LEN) {
                any |= passes(record);
            }
            if any {
                self.check_all(group, &passes, &mut on_match);
            }
        }
        self.check_all(groups.remainder(), &passes, &mut on_match);
    }

    /// Checks every record of `records` that `passes` the prefilter.
    #[cold]
    #[inline(never)]
    fn check_all(
        &self,
        records: &[u8],
        passes: &impl Fn(&[u8]) -> bool,
        on_match: &mut impl FnMut(PetMatch),
    ) {
        for record in records.chunks_exact(TOKEN_RECORD_LEN) {
            if passes(record) {
                self.check(record, on_match);
            }
        }
    }

    #[inline]
    fn day_matches(&self, held: u32, published: u32) -> bool {
        held.abs_diff(published) <= self.day_tolerance
    }

    /// The exact check of one record that passed the prefilter.
    fn check(&self, record: &[u8], on_match: &mut impl FnMut(PetMatch)) {
        let mut day = [0u8; 4];
        day.copy_from_slice(&record[..4]);
        let day = u32::from_le_bytes(day);
        let mut token = [0u8; 16];
        token.copy_from_slice(&record[4..TOKEN_RECORD_LEN]);
        for held in self.index.group(&self.held, prefix_of(&token)) {
            if held.token == token && self.day_matches(held.day, day) {
                on_match(PetMatch {
                    token: PublishedToken {
                        day: DayNumber(day),
                        token: EncounterToken(token),
                    },
                    held: held.index as usize,
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

    fn random_tokens(rng: &mut ChaCha20Rng, n: usize, days: u32) -> Vec<PublishedToken> {
        (0..n)
            .map(|_| {
                let mut token = [0u8; 16];
                rng.fill_bytes(&mut token);
                PublishedToken {
                    day: DayNumber(19_000 + rng.next_u32() % days),
                    token: EncounterToken(token),
                }
            })
            .collect()
    }

    fn records(tokens: &[PublishedToken]) -> Vec<u8> {
        tokens
            .iter()
            .flat_map(|t| {
                let mut r = t.day.0.to_le_bytes().to_vec();
                r.extend_from_slice(&t.token.0);
                r
            })
            .collect()
    }

    /// The specification, spelled out: every record against every held token, as
    /// (published token, held position) pairs in record order.
    fn naive(
        held: &[PublishedToken],
        published: &[PublishedToken],
    ) -> Vec<(PublishedToken, usize)> {
        let mut found = Vec::new();
        for t in published {
            for (h, mine) in held.iter().enumerate() {
                if mine == t {
                    found.push((*t, h));
                }
            }
        }
        found
    }

    fn fast(matcher: &PetMatcher, published: &[PublishedToken]) -> Vec<(PublishedToken, usize)> {
        let mut found = Vec::new();
        matcher.match_records(&records(published), |m| found.push((m.token, m.held)));
        found
    }

    #[test]
    fn a_day_tolerance_widens_only_the_day() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let held = random_tokens(&mut rng, 100, 1);
        let shifted = |t: &PublishedToken, by: i64| PublishedToken {
            day: DayNumber((i64::from(t.day.0) + by) as u32),
            token: t.token,
        };
        let strict = PetMatcher::new(held.clone());
        let loose = PetMatcher::with_day_tolerance(held.clone(), 1);
        for by in [-2i64, -1, 0, 1, 2] {
            let published: Vec<_> = held.iter().map(|t| shifted(t, by)).collect();
            assert_eq!(
                fast(&strict, &published).len(),
                if by == 0 { 100 } else { 0 }
            );
            let expected = if by.abs() <= 1 { 100 } else { 0 };
            assert_eq!(fast(&loose, &published).len(), expected);
            assert!(
                published
                    .iter()
                    .all(|t| loose.contains(t) == (expected > 0))
            );
        }
        let mut other = held[0];
        other.token.0[15] ^= 1;
        assert!(!loose.contains(&other));
    }

    #[test]
    fn every_held_token_is_found_and_random_ones_are_not() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let held = random_tokens(&mut rng, 50_000, 14);
        let matcher = PetMatcher::new(held.clone());
        assert_eq!(matcher.len(), 50_000);
        assert!(held.iter().all(|t| matcher.contains(t)));
        let mut seen = vec![false; held.len()];
        matcher.match_records(&records(&held), |m| {
            assert_eq!(held[m.held], m.token);
            seen[m.held] = true;
        });
        assert!(seen.iter().all(|&s| s));

        let strangers = random_tokens(&mut rng, 200_000, 14);
        assert!(strangers.iter().all(|t| !matcher.contains(t)));
        matcher.match_records(&records(&strangers), |m| panic!("false match {m:?}"));
    }

    #[test]
    fn the_day_must_match_too() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let held = random_tokens(&mut rng, 100, 14);
        let matcher = PetMatcher::new(held.clone());
        let shifted: Vec<PublishedToken> = held
            .iter()
            .map(|t| PublishedToken {
                day: DayNumber(t.day.0 + 1),
                token: t.token,
            })
            .collect();
        assert!(shifted.iter().all(|t| !matcher.contains(t)));
        matcher.match_records(&records(&shifted), |m| panic!("wrong day matched {m:?}"));
    }

    #[test]
    fn partial_records_are_ignored_and_empty_matchers_hold_nothing() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let held = random_tokens(&mut rng, 3, 1);
        let matcher = PetMatcher::new(held.clone());
        let bytes = records(&held);
        let mut n = 0;
        matcher.match_records(&bytes[..bytes.len() - 1], |_| n += 1);
        assert_eq!(n, 2);
        let empty = PetMatcher::new([]);
        assert!(empty.is_empty() && !empty.contains(&held[0]));
        empty.match_records(&bytes, |m| panic!("empty matcher matched {m:?}"));
        assert!(matcher.memory_bytes() >= 3 * 24);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Against the naive reference: published runs of random length (whole 64-record
        /// groups and a remainder) mixing held tokens, the same tokens on other days,
        /// duplicates and strangers.
        #[test]
        fn agrees_with_the_naive_reference(
            seed in any::<u64>(),
            held_n in 0usize..200,
            picks in proptest::collection::vec((any::<u8>(), 0usize..1000, 0u32..3), 0..400),
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut held = random_tokens(&mut rng, held_n, 3);
            if held_n > 2 {
                held.push(held[1]); // held twice
            }
            let strangers = random_tokens(&mut rng, 64, 3);
            let published: Vec<PublishedToken> = picks
                .iter()
                .map(|&(kind, i, day_shift)| match (kind % 3, held.is_empty()) {
                    (0, false) => held[i % held.len()],
                    (1, false) => {
                        let t = held[i % held.len()];
                        PublishedToken { day: DayNumber(t.day.0 + day_shift), token: t.token }
                    }
                    _ => strangers[i % strangers.len()],
                })
                .collect();
            let matcher = PetMatcher::new(held.clone());
            let mut expected = naive(&held, &published);
            let mut got = fast(&matcher, &published);
            expected.sort_unstable();
            got.sort_unstable();
            prop_assert_eq!(got, expected);
            for t in &published {
                prop_assert_eq!(matcher.contains(t), held.contains(t));
            }
        }
    }
}
