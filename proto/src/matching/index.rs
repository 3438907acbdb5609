//! A bitmap prefilter and an exact index over 16-byte random values, keyed by their first
//! eight bytes.
//!
//! RPIs and encounter tokens are uniformly random, so their first eight bytes (read as a
//! little-endian `u64`, the *prefix*) need no hashing: the prefilter takes its word from the
//! prefix's low bits and two bits within it from bits 32..44, the index its slot from the
//! low bits.

/// Something held in a [`PrefixIndex`]: its entries are sorted by this prefix.
pub(crate) trait Prefixed {
    /// The first eight bytes of the 16-byte value, little-endian.
    fn prefix(&self) -> u64;
}

/// The prefix of a 16-byte value (or of any slice of at least 8 bytes).
#[inline(always)]
pub(crate) fn prefix_of(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// Prefilter bits per held value, before rounding the word count up to a power of two.
///
/// Each value sets two bits of one 64-bit word, so an absent value passes with probability
/// of the order of `(2 / BITS_PER_VALUE)²`, raised by the uneven filling of words: measured
/// 0.12 % to 0.15 % (1 in 700 to 800) between 64 and 85 bits per value (the word count
/// is rounded up).
pub(crate) const BITS_PER_VALUE: usize = 64;

/// The fewest prefilter words (a 512-byte prefilter).
const MIN_WORDS: usize = 64;

/// A register-blocked Bloom filter (two bits in one word per value) plus an
/// open-addressing table from distinct prefixes to the first of their entries in a slice
/// sorted by prefix (owned by the caller).
///
/// A lookup of an absent value costs one load, a mask test and a well-predicted branch;
/// the table is only visited for real hits and rare false positives.
/// Values sharing a prefix form one group, so crafted collisions cannot build probe
/// clusters: a lookup walks at most one group, and the caller compares all 16 bytes.
#[derive(Clone, Debug)]
pub(crate) struct PrefixIndex {
    /// Word `prefix & (len - 1)` holds the two bits of [`filter_mask`] for every entry's
    /// prefix; the length is a power of two.
    bitmap: Box<[u64]>,
    /// Open addressing, linear probing: 0 for empty, else the group's first entry + 1.
    slots: Box<[u32]>,
    slot_mask: usize,
}

impl PrefixIndex {
    /// Indexes `entries`, which must be sorted by prefix and fewer than `u32::MAX`.
    pub(crate) fn build<E: Prefixed>(entries: &[E]) -> PrefixIndex {
        assert!(
            entries.len() < u32::MAX as usize,
            "at most u32::MAX - 1 entries"
        );
        debug_assert!(entries.is_sorted_by_key(Prefixed::prefix));
        let words = (entries.len() * BITS_PER_VALUE / 64)
            .next_power_of_two()
            .max(MIN_WORDS);
        let mut bitmap = vec![0u64; words].into_boxed_slice();

        let groups = entries
            .iter()
            .enumerate()
            .filter(|&(i, e)| i == 0 || entries[i - 1].prefix() != e.prefix());
        let distinct = groups.clone().count();
        // Load factor at most 1/2: probes stay short and an empty slot always ends them.
        let slot_count = (distinct * 2).next_power_of_two().max(16);
        let slot_mask = slot_count - 1;
        let mut slots = vec![0u32; slot_count].into_boxed_slice();
        for (i, entry) in groups {
            let prefix = entry.prefix();
            bitmap[prefix as usize & (words - 1)] |= filter_mask(prefix);
            let mut slot = prefix as usize & slot_mask;
            while slots[slot] != 0 {
                slot = (slot + 1) & slot_mask;
            }
            // `i < u32::MAX` checked above.
            slots[slot] = i as u32 + 1;
        }
        PrefixIndex {
            bitmap,
            slots,
            slot_mask,
        }
    }

    /// The prefilter, for a hot loop over many values: see [`Prefilter::maybe`].
    #[inline(always)]
    pub(crate) fn prefilter(&self) -> Prefilter<'_> {
        Prefilter {
            words: &self.bitmap,
        }
    }

    /// Whether some entry may have `prefix` (no false negatives).
    #[inline(always)]
    pub(crate) fn maybe(&self, prefix: u64) -> bool {
        self.prefilter().maybe(prefix)
    }

    /// The index in `entries` (the slice this was built from) of the first entry with
    /// `prefix`; the group continues while the prefix stays the same.
    #[inline]
    pub(crate) fn group_start<E: Prefixed>(&self, entries: &[E], prefix: u64) -> Option<usize> {
        let mut slot = prefix as usize & self.slot_mask;
        loop {
            let held = self.slots[slot];
            if held == 0 {
                return None;
            }
            let start = (held - 1) as usize;
            if entries[start].prefix() == prefix {
                return Some(start);
            }
            slot = (slot + 1) & self.slot_mask;
        }
    }

    /// The entries of `entries` whose prefix is `prefix` (empty when there are none).
    #[inline]
    pub(crate) fn group<'e, E: Prefixed>(&self, entries: &'e [E], prefix: u64) -> &'e [E] {
        match self.group_start(entries, prefix) {
            None => &[],
            Some(start) => {
                let len = entries[start..]
                    .iter()
                    .take_while(|e| e.prefix() == prefix)
                    .count();
                &entries[start..start + len]
            }
        }
    }

    /// Heap bytes held (the prefilter and the slots).
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.bitmap) + std::mem::size_of_val(&*self.slots)
    }
}

/// A borrowed prefilter: its word count is a non-zero power of two, which lets the compiler
/// drop the bounds check of every probe.
#[derive(Copy, Clone)]
pub(crate) struct Prefilter<'a> {
    words: &'a [u64],
}

impl Prefilter<'_> {
    /// Whether some entry may have `prefix` (no false negatives).
    #[inline(always)]
    pub(crate) fn maybe(self, prefix: u64) -> bool {
        let mask = filter_mask(prefix);
        // `len` is a power of two from `MIN_WORDS` up: the index is in bounds.
        let word = self.words[prefix as usize & (self.words.len().max(1) - 1)];
        word & mask == mask
    }
}

/// The two filter bits of `prefix` within its word, from bits 32..44: independent of the
/// word index (the low bits) for up to 2^32 words.
#[inline(always)]
fn filter_mask(prefix: u64) -> u64 {
    (1 << ((prefix >> 32) & 63)) | (1 << ((prefix >> 38) & 63))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Prefixed for u64 {
        fn prefix(&self) -> u64 {
            *self
        }
    }

    #[test]
    fn finds_every_group_and_nothing_else() {
        // Shared prefixes, prefixes equal in their low bits (same home slot) and in their
        // high bits (same prefilter bit).
        let mut entries: Vec<u64> = vec![5, 5, 5, 7, 1 << 40 | 5, 2 << 40 | 5, u64::MAX, 0];
        entries.extend((0..100).map(|i| i << 58 | 3));
        entries.sort_unstable();
        let index = PrefixIndex::build(&entries);
        for &e in &entries {
            assert!(index.maybe(e));
            let group = index.group(&entries, e);
            assert_eq!(group.len(), entries.iter().filter(|&&x| x == e).count());
            assert!(group.iter().all(|&x| x == e));
        }
        for absent in [6u64, 3 << 40 | 5, u64::MAX - 1, 1 << 63] {
            assert!(index.group(&entries, absent).is_empty(), "{absent:#x}");
        }
    }

    #[test]
    fn prefilter_false_positive_rate() {
        // A fixed xorshift stream: random prefixes without an RNG dependency.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (held, bound) in [(28_000, 0.002), (50_000, 0.002), (100, 0.002)] {
            let mut entries: Vec<u64> = (0..held).map(|_| next()).collect();
            entries.sort_unstable();
            let index = PrefixIndex::build(&entries);
            let trials = 1_000_000;
            let passed = (0..trials).filter(|_| index.maybe(next())).count();
            let rate = passed as f64 / f64::from(trials);
            assert!(rate < bound, "{held} held: false-positive rate {rate}");
        }
    }

    #[test]
    fn empty_index_holds_nothing() {
        let index = PrefixIndex::build::<u64>(&[]);
        assert!(!index.maybe(0));
        assert!(index.group::<u64>(&[], 12).is_empty());
    }
}
