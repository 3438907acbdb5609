//! A bitmap prefilter and an exact index over 16-byte random values, keyed by their first
//! eight bytes.
//!
//! RPIs and encounter tokens are uniformly random, so their first eight bytes (read as a
//! little-endian `u64`, the *prefix*) need no hashing: the prefilter takes its bit from the
//! prefix's high bits, the index its slot from the low bits.

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
/// about `(2 / BITS_PER_VALUE)²` to `(1 / BITS_PER_VALUE)²` (rounding): 0.1 % to 0.03 %.
pub(crate) const BITS_PER_VALUE: usize = 64;

/// The fewest prefilter words (a 512-byte prefilter), so the word shift stays below 64.
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
    /// Word `prefix >> shift` holds the two bits of [`filter_mask`] for every entry's prefix.
    bitmap: Box<[u64]>,
    shift: u32,
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
        let shift = 64 - words.trailing_zeros();
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
            bitmap[(prefix >> shift) as usize] |= filter_mask(prefix);
            let mut slot = prefix as usize & slot_mask;
            while slots[slot] != 0 {
                slot = (slot + 1) & slot_mask;
            }
            // `i < u32::MAX` checked above.
            slots[slot] = i as u32 + 1;
        }
        PrefixIndex {
            bitmap,
            shift,
            slots,
            slot_mask,
        }
    }

    /// 1 when some entry may have `prefix`, 0 when none has: no false negatives.
    #[inline(always)]
    pub(crate) fn maybe(&self, prefix: u64) -> u64 {
        let mask = filter_mask(prefix);
        u64::from(self.bitmap[(prefix >> self.shift) as usize] & mask == mask)
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

/// The two filter bits of `prefix` within its word, from bits 32..44: independent of the
/// word index (the top bits) for up to 2^20 words, and of the slot (the low bits).
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
            assert_eq!(index.maybe(e), 1);
            let group = index.group(&entries, e);
            assert_eq!(group.len(), entries.iter().filter(|&&x| x == e).count());
            assert!(group.iter().all(|&x| x == e));
        }
        for absent in [6u64, 3 << 40 | 5, u64::MAX - 1, 1 << 63] {
            assert!(index.group(&entries, absent).is_empty(), "{absent:#x}");
        }
    }

    #[test]
    fn empty_index_holds_nothing() {
        let index = PrefixIndex::build::<u64>(&[]);
        assert_eq!(index.maybe(0), 0);
        assert!(index.group::<u64>(&[], 12).is_empty());
    }
}
