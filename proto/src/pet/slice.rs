//! Key slices: a 32-byte public key carried by legacy BLE advertisements.
//!
//! A legacy advertisement carries 20 bytes of service data (GAEN: a 16-byte RPI and 4 bytes
//! of metadata), too few for a 32-byte X25519 key. Phones that can use extended advertising
//! or GATT send the whole key; the others send a carousel of [`KeySlice`]s, 16 bytes each.
//!
//! # Layout
//! The key is padded with one zero byte to 33 bytes and cut into three data slices of 11
//! bytes, `d0 = pk[0..11]`, `d1 = pk[11..22]`, `d2 = pk[22..32] ‖ 0x00`, plus a parity slice
//! `p = d0 ⊕ d1 ⊕ d2`. Since `d0 ⊕ d1 ⊕ d2 ⊕ p = 0`, any 3 of the 4 rebuild the missing one
//! by XOR, so a receiver that misses one advertisement in four still gets the key.
//!
//! Each slice carries the key's 4-byte tag:
//! ```text
//! tag = HKDF-SHA256(salt = SLICE_TAG_SALT, ikm = pk, info = SLICE_TAG_INFO, L = 4)
//! ```
//! The tag groups slices of one key, and after rebuilding the receiver recomputes it from the
//! rebuilt key: a mismatch (or a non-zero padding byte) means slices of different keys were
//! mixed, and the key is rejected. The tag is an integrity check against accidental mixing,
//! not authentication: anyone can broadcast slices under any tag, just as anyone can
//! broadcast any key. It is derived from the key, so it links nothing the key does not.
//!
//! Encoding, 16 bytes:
//! ```text
//! byte 0      version << 4 | index     (version 1; index 0, 1, 2 = data, 3 = parity)
//! bytes 1..5  tag
//! bytes 5..16 data (11 bytes)
//! ```

use std::collections::HashMap;

use crate::error::PetError;
use crate::hkdf::hkdf_sha256;
use crate::time::UnixTime;

use super::types::EphemeralPublicKey;

/// HKDF salt for a key's slice tag.
pub const SLICE_TAG_SALT: &[u8] = b"ephemera/pet/v1/salt/slice-tag";
/// HKDF info label for a key's slice tag.
pub const SLICE_TAG_INFO: &[u8] = b"ephemera/pet/v1/slice-tag";

/// Length of an encoded [`KeySlice`].
pub const SLICE_LEN: usize = 16;
/// Length of a slice's tag.
pub const SLICE_TAG_LEN: usize = 4;
/// Length of a slice's data.
pub const SLICE_DATA_LEN: usize = 11;
/// The slice encoding version (high nibble of byte 0).
pub const SLICE_VERSION: u8 = 1;
/// Number of slices per key: three data slices and one parity slice.
pub const SLICE_COUNT: usize = 4;
/// The index of the parity slice.
pub const PARITY_INDEX: u8 = 3;

/// The 4-byte tag carried by every slice of `key`.
pub fn slice_tag(key: &EphemeralPublicKey) -> [u8; SLICE_TAG_LEN] {
    let mut tag = [0u8; SLICE_TAG_LEN];
    hkdf_sha256(SLICE_TAG_SALT, &key.0, &[SLICE_TAG_INFO], &mut tag);
    tag
}

/// One of the four slices of a public key, as carried in a legacy BLE advertisement.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeySlice {
    tag: [u8; SLICE_TAG_LEN],
    index: u8,
    data: [u8; SLICE_DATA_LEN],
}

impl KeySlice {
    /// The tag of the key this slice belongs to.
    pub fn tag(&self) -> [u8; SLICE_TAG_LEN] {
        self.tag
    }

    /// The slice's index: 0, 1, 2 for data, 3 ([`PARITY_INDEX`]) for parity.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The slice's 11 data bytes.
    pub fn data(&self) -> &[u8; SLICE_DATA_LEN] {
        &self.data
    }

    /// Whether this is the parity slice.
    pub fn is_parity(&self) -> bool {
        self.index == PARITY_INDEX
    }

    /// The 16-byte wire form.
    pub fn encode(&self) -> [u8; SLICE_LEN] {
        let mut out = [0u8; SLICE_LEN];
        out[0] = (SLICE_VERSION << 4) | self.index;
        out[1..1 + SLICE_TAG_LEN].copy_from_slice(&self.tag);
        out[1 + SLICE_TAG_LEN..].copy_from_slice(&self.data);
        out
    }

    /// Parses the 16-byte wire form.
    ///
    /// Errors: [`PetError::MalformedSlice`] for a length other than 16 or a version other
    /// than 1, [`PetError::BadSliceIndex`] for an index outside 0..=3.
    pub fn decode(bytes: &[u8]) -> Result<KeySlice, PetError> {
        let bytes: &[u8; SLICE_LEN] = bytes.try_into().map_err(|_| PetError::MalformedSlice)?;
        let (head, rest) = bytes.split_at(1);
        let (tag, data) = rest.split_at(SLICE_TAG_LEN);
        if head[0] >> 4 != SLICE_VERSION {
            return Err(PetError::MalformedSlice);
        }
        let index = head[0] & 0x0f;
        if index > PARITY_INDEX {
            return Err(PetError::BadSliceIndex { got: index });
        }
        let mut slice = KeySlice {
            tag: [0; SLICE_TAG_LEN],
            index,
            data: [0; SLICE_DATA_LEN],
        };
        slice.tag.copy_from_slice(tag);
        slice.data.copy_from_slice(data);
        Ok(slice)
    }
}

/// The four slices of `key`: data slices 0, 1, 2 and the parity slice 3.
pub fn slices(key: &EphemeralPublicKey) -> [KeySlice; SLICE_COUNT] {
    let tag = slice_tag(key);
    let mut padded = [0u8; 3 * SLICE_DATA_LEN];
    padded[..32].copy_from_slice(&key.0);
    let mut parts = [[0u8; SLICE_DATA_LEN]; SLICE_COUNT];
    for (part, chunk) in parts.iter_mut().zip(padded.chunks_exact(SLICE_DATA_LEN)) {
        part.copy_from_slice(chunk);
    }
    parts[PARITY_INDEX as usize] = xor3(&parts[0], &parts[1], &parts[2]);
    let mut index = 0u8;
    parts.map(|data| {
        let slice = KeySlice { tag, index, data };
        index += 1;
        slice
    })
}

/// Rebuilds a key from at least 3 of its slices (any order; duplicates allowed if equal).
///
/// Errors: [`PetError::NotEnoughSlices`] with fewer than 3 distinct indices;
/// [`PetError::InconsistentSlices`] if the tags differ, two slices with the same index
/// disagree, or no 3 of the slices rebuild a key whose tag and padding check out.
pub fn reassemble(slices: &[KeySlice]) -> Result<EphemeralPublicKey, PetError> {
    let first = slices.first().ok_or(PetError::NotEnoughSlices { got: 0 })?;
    let mut parts: [Option<[u8; SLICE_DATA_LEN]>; SLICE_COUNT] = [None; SLICE_COUNT];
    for slice in slices {
        if slice.tag != first.tag {
            return Err(PetError::InconsistentSlices);
        }
        let part = &mut parts[usize::from(slice.index)];
        match part {
            Some(data) if *data != slice.data => return Err(PetError::InconsistentSlices),
            _ => *part = Some(slice.data),
        }
    }
    rebuild(first.tag, &parts)
}

fn xor3(
    a: &[u8; SLICE_DATA_LEN],
    b: &[u8; SLICE_DATA_LEN],
    c: &[u8; SLICE_DATA_LEN],
) -> [u8; SLICE_DATA_LEN] {
    std::array::from_fn(|i| a[i] ^ b[i] ^ c[i])
}

/// Rebuilds from whichever 3-subsets are present, returning the first that checks out.
fn rebuild(
    tag: [u8; SLICE_TAG_LEN],
    parts: &[Option<[u8; SLICE_DATA_LEN]>; SLICE_COUNT],
) -> Result<EphemeralPublicKey, PetError> {
    let present = parts.iter().filter(|p| p.is_some()).count();
    if present < 3 {
        return Err(PetError::NotEnoughSlices { got: present });
    }
    // Leave out each slice in turn (parity first: no XOR needed). With 3 present exactly one
    // choice is possible; with 4, a single bad slice is outvoted by the tag check.
    for left_out in [3usize, 0, 1, 2] {
        let mut all = [[0u8; SLICE_DATA_LEN]; SLICE_COUNT];
        let mut complete = true;
        for (i, slot) in all.iter_mut().enumerate() {
            match parts[i] {
                Some(data) if i != left_out => *slot = data,
                Some(_) => {}
                None => complete &= i == left_out,
            }
        }
        if !complete {
            continue;
        }
        // d0 ⊕ d1 ⊕ d2 ⊕ p = 0: the left-out slice (still zero here) is the XOR of the others.
        all[left_out] = std::array::from_fn(|b| all.iter().fold(0, |acc, part| acc ^ part[b]));
        let mut key = [0u8; 32];
        key[..11].copy_from_slice(&all[0]);
        key[11..22].copy_from_slice(&all[1]);
        key[22..].copy_from_slice(&all[2][..10]);
        let padding = all[2][10];
        let key = EphemeralPublicKey(key);
        if padding == 0 && slice_tag(&key) == tag {
            return Ok(key);
        }
    }
    Err(PetError::InconsistentSlices)
}

/// Which slice a phone puts in each legacy advertisement: round robin 0, 1, 2, 3, 0, …
///
/// Any 3 consecutive advertisements rebuild the key, and so does any set of advertisements
/// that misses at most one index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceCarousel {
    encoded: [[u8; SLICE_LEN]; SLICE_COUNT],
}

impl SliceCarousel {
    /// The carousel for `key` (one per interval: a new key needs a new carousel).
    pub fn new(key: &EphemeralPublicKey) -> Self {
        SliceCarousel {
            encoded: slices(key).map(|s| s.encode()),
        }
    }

    /// The slice index to advertise at advertisement number `counter`.
    pub fn index_at(counter: u64) -> u8 {
        (counter % SLICE_COUNT as u64) as u8
    }

    /// The encoded slice to advertise at advertisement number `counter`.
    pub fn advertisement(&self, counter: u64) -> [u8; SLICE_LEN] {
        self.encoded[usize::from(Self::index_at(counter))]
    }
}

/// Slices received for one tag.
#[derive(Clone, Debug)]
struct Group {
    /// When the first slice of this group arrived; the group expires `max_age` later.
    first_seen: UnixTime,
    /// Value of the assembler's event counter at the last slice: orders groups for eviction.
    touched: u64,
    /// The latest data seen for each index (emptied once the key is rebuilt).
    parts: [Option<[u8; SLICE_DATA_LEN]>; SLICE_COUNT],
    /// The key was rebuilt and returned; later slices of it are ignored.
    done: bool,
}

/// Sans-IO reassembler: feed it received slices, get each key once when first rebuildable.
///
/// Memory is bounded by `capacity` groups (one per tag, about a hundred bytes each): when a
/// slice with a new tag arrives and the assembler is full, the least recently fed group that
/// has not yet produced a key is evicted (or, if every group is complete, the least recently
/// fed complete one), so a flood of random slices cannot grow memory. A flood can still push
/// out a real key's partial group; the carousel repeats every four advertisements, so the
/// key is rebuilt once the flood stops or the three slices arrive close enough together.
///
/// A group is forgotten `max_age_seconds` after its first slice (by [`purge`](Self::purge),
/// or when a later slice of the same tag finds it expired): keys rotate every 10 minutes, so
/// slices that far apart do not belong together. When two slices of one tag and index
/// differ, the latest wins; when all four indices are present, a bad one is outvoted.
#[derive(Clone, Debug)]
pub struct SliceAssembler {
    /// By tag. A hash map: lookups and the eviction scan touch contiguous memory (a tree
    /// chased pointers for both), and std's keyed hashing keeps radio-chosen tags from
    /// colliding on purpose. Iteration order never shows: eviction picks the unique least
    /// `touched`.
    groups: HashMap<[u8; SLICE_TAG_LEN], Group>,
    capacity: usize,
    max_age_seconds: u64,
    events: u64,
}

impl SliceAssembler {
    /// Default number of groups held: room for several hundred phones in range.
    pub const DEFAULT_CAPACITY: usize = 1024;
    /// Default group lifetime: 30 minutes, three key intervals.
    pub const DEFAULT_MAX_AGE_SECONDS: u64 = 30 * 60;

    /// An empty assembler holding at most `capacity` groups (at least 1), each for at most
    /// `max_age_seconds`.
    pub fn new(capacity: usize, max_age_seconds: u64) -> Self {
        SliceAssembler {
            groups: HashMap::new(),
            capacity: capacity.max(1),
            max_age_seconds,
            events: 0,
        }
    }

    /// The most groups this assembler holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of groups held now.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group is held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Records a slice received at `now`; returns the key the first time it can be rebuilt.
    pub fn handle_slice(&mut self, now: UnixTime, slice: KeySlice) -> Option<EphemeralPublicKey> {
        self.events += 1;
        let max_age = self.max_age_seconds;
        let expired = |g: &Group| now.0.saturating_sub(g.first_seen.0) > max_age;
        if self.groups.get(&slice.tag).is_some_and(expired) {
            self.groups.remove(&slice.tag);
        }
        if !self.groups.contains_key(&slice.tag) && self.groups.len() >= self.capacity {
            self.evict_one();
        }
        let group = self.groups.entry(slice.tag).or_insert(Group {
            first_seen: now,
            touched: 0,
            parts: [None; SLICE_COUNT],
            done: false,
        });
        group.touched = self.events;
        if group.done {
            return None;
        }
        group.parts[usize::from(slice.index)] = Some(slice.data);
        let key = rebuild(slice.tag, &group.parts).ok()?;
        group.done = true;
        group.parts = [None; SLICE_COUNT];
        Some(key)
    }

    /// Drops every group whose first slice arrived more than the max age before `now`.
    pub fn purge(&mut self, now: UnixTime) {
        let max_age = self.max_age_seconds;
        self.groups
            .retain(|_, g| now.0.saturating_sub(g.first_seen.0) <= max_age);
    }

    /// Evicts the least recently fed partial group, or else the least recently fed group.
    fn evict_one(&mut self) {
        let victim = self
            .groups
            .iter()
            .min_by_key(|(_, g)| (g.done, g.touched))
            .map(|(tag, _)| *tag);
        if let Some(tag) = victim {
            self.groups.remove(&tag);
        }
    }
}

impl Default for SliceAssembler {
    fn default() -> Self {
        SliceAssembler::new(Self::DEFAULT_CAPACITY, Self::DEFAULT_MAX_AGE_SECONDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    fn key(seed: u8) -> EphemeralPublicKey {
        EphemeralPublicKey(std::array::from_fn(|i| seed.wrapping_mul(31) ^ (i as u8)))
    }

    const T0: UnixTime = UnixTime(1_600_000_000);

    /// The 4 ways to choose 3 of the 4 slice indices.
    const TRIPLES: [[usize; 3]; 4] = [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]];

    fn permutations(t: [usize; 3]) -> [[usize; 3]; 6] {
        let [a, b, c] = t;
        [
            [a, b, c],
            [a, c, b],
            [b, a, c],
            [b, c, a],
            [c, a, b],
            [c, b, a],
        ]
    }

    #[test]
    fn layout_is_as_documented() {
        let k = key(1);
        let s = slices(&k);
        assert_eq!(&s[0].data()[..], &k.0[0..11]);
        assert_eq!(&s[1].data()[..], &k.0[11..22]);
        assert_eq!(&s[2].data()[..10], &k.0[22..32]);
        assert_eq!(s[2].data()[10], 0);
        for i in 0..11 {
            assert_eq!(
                s[3].data()[i],
                s[0].data()[i] ^ s[1].data()[i] ^ s[2].data()[i]
            );
        }
        for (i, slice) in s.iter().enumerate() {
            assert_eq!(usize::from(slice.index()), i);
            assert_eq!(slice.tag(), slice_tag(&k));
            let wire = slice.encode();
            assert_eq!(wire[0], 0x10 | i as u8);
            assert_eq!(wire[1..5], slice.tag());
            assert_eq!(wire[5..], slice.data()[..]);
        }
        assert!(s[3].is_parity() && !s[0].is_parity());
    }

    #[test]
    fn any_three_of_four_rebuild_in_any_order() {
        let k = key(2);
        let s = slices(&k);
        for triple in TRIPLES {
            for order in permutations(triple) {
                let chosen: Vec<_> = order.iter().map(|&i| s[i]).collect();
                assert_eq!(reassemble(&chosen), Ok(k), "{order:?}");
                let mut asm = SliceAssembler::default();
                assert_eq!(asm.handle_slice(T0, s[order[0]]), None);
                assert_eq!(asm.handle_slice(T0, s[order[1]]), None);
                assert_eq!(asm.handle_slice(T0, s[order[2]]), Some(k), "{order:?}");
            }
        }
        assert_eq!(reassemble(&s), Ok(k));
    }

    #[test]
    fn duplicates_and_foreign_slices_do_not_disturb_reassembly() {
        let k = key(3);
        let f = key(4);
        let g = key(5);
        let (s, fs, gs) = (slices(&k), slices(&f), slices(&g));
        for triple in TRIPLES {
            for order in permutations(triple) {
                let mut asm = SliceAssembler::default();
                let mut got = Vec::new();
                let feed = [
                    s[order[0]],
                    fs[0],
                    s[order[0]],
                    gs[3],
                    s[order[1]],
                    fs[1],
                    s[order[1]],
                    gs[1],
                    s[order[0]],
                    s[order[2]],
                    s[order[2]],
                    fs[3],
                    s[0],
                    s[1],
                    s[2],
                    s[3],
                ];
                for (n, slice) in feed.into_iter().enumerate() {
                    if let Some(rebuilt) = asm.handle_slice(T0.plus_seconds(n as u64), slice) {
                        got.push((n, rebuilt));
                    }
                }
                // Our key exactly once, at the third distinct slice; then f's (3 slices fed).
                assert_eq!(got, vec![(9, k), (11, f)], "{order:?}");
            }
        }
        // Duplicates in `reassemble` are fine as long as they agree.
        assert_eq!(reassemble(&[s[1], s[1], s[3], s[0], s[3]]), Ok(k));
    }

    #[test]
    fn two_of_four_do_not_rebuild() {
        let k = key(6);
        let s = slices(&k);
        for a in 0..4 {
            for b in 0..4 {
                let mut asm = SliceAssembler::default();
                for _ in 0..3 {
                    assert_eq!(asm.handle_slice(T0, s[a]), None);
                    assert_eq!(asm.handle_slice(T0, s[b]), None);
                }
                let distinct = if a == b { 1 } else { 2 };
                assert_eq!(
                    reassemble(&[s[a], s[b], s[a]]),
                    Err(PetError::NotEnoughSlices { got: distinct })
                );
            }
        }
        assert_eq!(reassemble(&[]), Err(PetError::NotEnoughSlices { got: 0 }));
    }

    #[test]
    fn mixed_or_tampered_slices_are_rejected() {
        let k = key(7);
        let s = slices(&k);
        let other = slices(&key(8));
        // Different tags.
        assert_eq!(
            reassemble(&[s[0], s[1], other[2]]),
            Err(PetError::InconsistentSlices)
        );
        // Same tag, wrong data: the rebuilt key's tag does not match.
        let mut forged = other[2];
        forged.tag = s[0].tag;
        assert_eq!(
            reassemble(&[s[0], s[1], forged]),
            Err(PetError::InconsistentSlices)
        );
        // Two different slices with the same index.
        assert_eq!(
            reassemble(&[s[0], s[1], s[2], forged]),
            Err(PetError::InconsistentSlices)
        );
        // Four slices with one bad one: the other three still rebuild the key.
        let mut bad_parity = s[3];
        bad_parity.data[0] ^= 1;
        assert_eq!(reassemble(&[s[0], s[1], s[2], bad_parity]), Ok(k));
        assert_eq!(
            reassemble(&[s[0], s[1], bad_parity]),
            Err(PetError::InconsistentSlices)
        );
        // The assembler recovers when the genuine slice comes round again.
        let mut asm = SliceAssembler::default();
        assert_eq!(asm.handle_slice(T0, s[0]), None);
        assert_eq!(asm.handle_slice(T0, s[1]), None);
        assert_eq!(asm.handle_slice(T0, bad_parity), None);
        assert_eq!(asm.handle_slice(T0, s[3]), Some(k));
    }

    #[test]
    fn non_zero_padding_is_rejected_even_with_a_matching_tag() {
        let k = key(9);
        let s = slices(&k);
        // Flip the padding byte in d2 and in the parity slice: the XOR relation still holds
        // and the key bytes (so the tag) are unchanged, but the padding is no longer zero.
        let (mut d2, mut p) = (s[2], s[3]);
        d2.data[10] ^= 0x5a;
        p.data[10] ^= 0x5a;
        for set in [
            [s[0], s[1], d2],
            [s[0], s[1], p],
            [s[0], d2, p],
            [s[1], d2, p],
        ] {
            assert_eq!(reassemble(&set), Err(PetError::InconsistentSlices));
        }
    }

    #[test]
    fn decode_rejects_bad_length_version_and_index() {
        let good = slices(&key(10))[1].encode();
        assert_eq!(KeySlice::decode(&good).map(|s| s.index()), Ok(1));
        for len in [0, 1, 15, 17, 32] {
            let mut bytes = vec![0x10; len];
            bytes[..len.min(16)].copy_from_slice(&good[..len.min(16)]);
            assert_eq!(KeySlice::decode(&bytes), Err(PetError::MalformedSlice));
        }
        for version in [0u8, 2, 15] {
            let mut bytes = good;
            bytes[0] = version << 4 | 1;
            assert_eq!(KeySlice::decode(&bytes), Err(PetError::MalformedSlice));
        }
        for index in 4u8..16 {
            let mut bytes = good;
            bytes[0] = 0x10 | index;
            assert_eq!(
                KeySlice::decode(&bytes),
                Err(PetError::BadSliceIndex { got: index })
            );
        }
    }

    #[test]
    fn carousel_cycles_and_any_three_consecutive_rebuild() {
        let k = key(11);
        let carousel = SliceCarousel::new(&k);
        let expected = slices(&k).map(|s| s.encode());
        for counter in 0..12u64 {
            assert_eq!(
                carousel.advertisement(counter),
                expected[(counter % 4) as usize]
            );
        }
        assert_eq!(SliceCarousel::index_at(u64::MAX), 3);
        for start in 0..8u64 {
            let mut asm = SliceAssembler::default();
            let got: Vec<_> = (start..start + 3)
                .filter_map(|c| {
                    let slice = KeySlice::decode(&carousel.advertisement(c)).ok()?;
                    asm.handle_slice(T0, slice)
                })
                .collect();
            assert_eq!(got, vec![k]);
        }
    }

    #[test]
    fn flood_of_random_slices_stays_within_capacity() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut asm = SliceAssembler::new(64, SliceAssembler::DEFAULT_MAX_AGE_SECONDS);
        let k = key(12);
        let s = slices(&k);
        let mut rebuilt = Vec::new();
        for n in 0..20_000u64 {
            let mut bytes = [0u8; SLICE_LEN];
            rng.fill_bytes(&mut bytes);
            bytes[0] = 0x10 | (bytes[0] & 0x03);
            let slice = KeySlice::decode(&bytes).expect("well-formed by construction");
            if let Some(key) = asm.handle_slice(T0.plus_seconds(n / 100), slice) {
                rebuilt.push(key);
            }
            assert!(asm.len() <= asm.capacity());
        }
        assert_eq!(asm.len(), 64);
        // Random data never passes the tag check.
        assert!(rebuilt.is_empty());
        // A real key whose slices arrive together still gets through a full assembler.
        assert_eq!(asm.handle_slice(T0, s[2]), None);
        assert_eq!(asm.handle_slice(T0, s[0]), None);
        assert_eq!(asm.handle_slice(T0, s[3]), Some(k));
        assert_eq!(asm.len(), 64);
    }

    #[test]
    fn eviction_prefers_partial_groups_so_complete_keys_are_returned_once() {
        let mut asm = SliceAssembler::new(3, 1800);
        let done = slices(&key(13));
        for s in &done[..3] {
            asm.handle_slice(T0, *s);
        }
        for seed in 20..40 {
            asm.handle_slice(T0, slices(&key(seed))[0]);
            assert!(asm.len() <= 3);
        }
        // The completed group survived the partial ones: its fourth slice does not re-emit.
        assert_eq!(asm.handle_slice(T0, done[3]), None);
    }

    #[test]
    fn purge_drops_old_groups_and_old_slices_do_not_combine() {
        let mut asm = SliceAssembler::new(16, 1800);
        let k = key(14);
        let s = slices(&k);
        assert_eq!(asm.handle_slice(T0, s[0]), None);
        assert_eq!(asm.handle_slice(T0.plus_seconds(60), s[1]), None);
        asm.handle_slice(T0.plus_seconds(1000), slices(&key(15))[0]);
        asm.purge(T0.plus_seconds(1800));
        assert_eq!(asm.len(), 2);
        asm.purge(T0.plus_seconds(1801));
        assert_eq!(asm.len(), 1);
        // s[0] and s[1] were forgotten: one more slice is not enough.
        assert_eq!(asm.handle_slice(T0.plus_seconds(1802), s[2]), None);
        // Without purge, an expired group is restarted by its next slice.
        let mut asm = SliceAssembler::new(16, 1800);
        asm.handle_slice(T0, s[0]);
        asm.handle_slice(T0, s[1]);
        assert_eq!(asm.handle_slice(T0.plus_seconds(1801), s[2]), None);
        assert_eq!(asm.handle_slice(T0.plus_seconds(1802), s[3]), None);
        assert_eq!(asm.handle_slice(T0.plus_seconds(1803), s[0]), Some(k));
        // A clock that goes backwards does not expire anything.
        asm.purge(UnixTime(0));
        assert_eq!(asm.len(), 1);
    }

    #[test]
    fn zero_capacity_means_one() {
        let mut asm = SliceAssembler::new(0, 1800);
        assert_eq!(asm.capacity(), 1);
        let k = key(16);
        let s = slices(&k);
        asm.handle_slice(T0, s[0]);
        asm.handle_slice(T0, s[1]);
        assert_eq!(asm.handle_slice(T0, s[2]), Some(k));
        assert!(asm.len() == 1 && !asm.is_empty());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = KeySlice::decode(&bytes);
        }

        #[test]
        fn decode_of_16_bytes_accepts_exactly_version_1_index_0_to_3(bytes in any::<[u8; 16]>()) {
            let ok = bytes[0] >> 4 == 1 && bytes[0] & 0x0f <= 3;
            let decoded = KeySlice::decode(&bytes);
            prop_assert_eq!(decoded.is_ok(), ok);
            if let Ok(slice) = decoded {
                prop_assert_eq!(slice.encode(), bytes);
            }
        }

        #[test]
        fn encode_decode_round_trip(tag in any::<[u8; 4]>(), index in 0u8..4, data in any::<[u8; 11]>()) {
            let slice = KeySlice { tag, index, data };
            prop_assert_eq!(KeySlice::decode(&slice.encode()), Ok(slice));
        }

        #[test]
        fn every_key_survives_any_lost_slice(key in any::<[u8; 32]>(), lost in 0usize..4) {
            let key = EphemeralPublicKey(key);
            let kept: Vec<_> = slices(&key)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i != lost)
                .map(|(_, s)| KeySlice::decode(&s.encode()))
                .collect::<Result<_, _>>()?;
            prop_assert_eq!(reassemble(&kept), Ok(key));
        }
    }
}
