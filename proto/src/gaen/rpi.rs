//! Rolling Proximity Identifiers and the key they are derived from.
//!
//! GAEN Cryptography v1.2:
//! `RPIK = HKDF-SHA256(TEK, salt = none, info = "EN-RPIK", 16)` and, for each interval `j`,
//! `RPI_j = AES-128(RPIK, "EN-RPI" ‖ 0x00 × 6 ‖ ENIN_j as u32 little-endian)`.

use std::fmt;

use aes::Aes128Enc;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::tek::TemporaryExposureKey;
use crate::time::IntervalNumber;

/// HKDF info string of the Rolling Proximity Identifier Key.
pub const RPIK_INFO: &[u8] = b"EN-RPIK";
/// The first six bytes of every RPI plaintext block.
pub const RPI_PADDING: &[u8; 6] = b"EN-RPI";
/// Bytes in an RPI (one AES block).
pub const RPI_LEN: usize = 16;

/// How many blocks one AES call encrypts at once when deriving a run of identifiers.
///
/// A multiple of every `aes` backend's parallel width (AES-NI: 8 blocks, VAES-512: 64
/// blocks; blocks beyond the last full group are encrypted one at a time, so a batch
/// smaller than the width gives up the pipelining), and 1 KiB, small enough for the stack.
const BATCH: usize = 64;

/// SHA-256's initial state.
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 state after the HMAC inner pad of an all-zero key (`0x36 × 64`): HKDF's extract
/// step with no salt always starts here (checked against the hash in a test).
const ZERO_SALT_INNER: [u32; 8] = [
    0xf454_dead,
    0x9725_214f,
    0x90da_f2a0,
    0xdf12_28ea,
    0x64e5_750f,
    0xa392_4181,
    0x824a_932b,
    0xf8e0_4e32,
];

/// SHA-256 state after the HMAC outer pad of an all-zero key (`0x5c × 64`).
const ZERO_SALT_OUTER: [u32; 8] = [
    0xd385_480f,
    0x7abb_6477,
    0x37c9_c538,
    0x5dd8_2467,
    0x8e04_3a72,
    0x7534_34b0,
    0xdeb8_2818,
    0x361d_45a6,
];

/// Writes a SHA-256 state as its big-endian digest bytes into `out[..32]`.
fn put_state(state: &[u32; 8], out: &mut [u8]) {
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
}

/// Ends a final SHA-256 block whose message part is `len` bytes after one 64-byte block
/// already hashed (the HMAC pad): the `0x80` marker and the big-endian bit length.
fn pad_final(block: &mut [u8; 64], len: usize) {
    block[len] = 0x80;
    block[56..].copy_from_slice(&(((64 + len) as u64) * 8).to_be_bytes());
}

/// `HKDF-SHA256(ikm = tek, salt = none, info = "EN-RPIK", L = 16)` of `N` keys at once,
/// hand-rolled on the raw SHA-256 compression function: six compressions a key, no
/// allocation.
///
/// RFC 5869 with an empty salt uses a zero key of hash length for extract, whose HMAC pad
/// states are the constants above; everything else fits one block: extract hashes
/// `ipad ‖ TEK` and `opad ‖ inner`, expand (one output block, `T(1)`) hashes
/// `ipad(PRK) ‖ "EN-RPIK" ‖ 0x01` and `opad(PRK) ‖ inner`. Equal to `ring`'s HKDF (tested)
/// at a fraction of its per-call cost.
///
/// One key's compressions form a dependent chain, so a single derivation waits on the
/// SHA-256 unit's latency; the steps of `N` independent keys are interleaved so that the
/// processor overlaps their chains.
///
/// With `WIPE` the intermediate values are zeroized afterwards (a device's own TEKs pass
/// through here). Matching derives the RPIKs of *published* keys, whose every intermediate
/// value anyone can recompute; it skips the wipe, which costs as much as a compression
/// (volatile byte writes).
fn rpik_hkdf<const N: usize, const WIPE: bool>(teks: [&[u8; 16]; N]) -> [[u8; 16]; N] {
    use sha2::block_api::compress256;

    // Extract, inner: H(ipad(0) ‖ TEK).
    let mut blocks = [[[0u8; 64]; 2]; N];
    let mut inner = [ZERO_SALT_INNER; N];
    for k in 0..N {
        blocks[k][0][..16].copy_from_slice(teks[k]);
        pad_final(&mut blocks[k][0], 16);
        compress256(&mut inner[k], &blocks[k][..1]);
    }
    // Extract, outer: PRK = H(opad(0) ‖ inner).
    let mut prk = [ZERO_SALT_OUTER; N];
    for k in 0..N {
        blocks[k][0] = [0u8; 64];
        put_state(&inner[k], &mut blocks[k][0]);
        pad_final(&mut blocks[k][0], 32);
        compress256(&mut prk[k], &blocks[k][..1]);
    }
    // Expand: T(1) = HMAC(PRK, "EN-RPIK" ‖ 0x01); the inner hash is two blocks,
    // `ipad(PRK)` and the padded message, the outer pad block goes alongside.
    let mut outer = [SHA256_IV; N];
    for k in 0..N {
        let [ipad, message] = &mut blocks[k];
        *ipad = [0u8; 64];
        put_state(&prk[k], ipad);
        let mut opad = [0x5cu8; 64];
        for (i, o) in ipad.iter_mut().zip(opad.iter_mut()) {
            *o ^= *i;
            *i ^= 0x36;
        }
        *message = [0u8; 64];
        message[..RPIK_INFO.len()].copy_from_slice(RPIK_INFO);
        message[RPIK_INFO.len()] = 0x01;
        pad_final(message, RPIK_INFO.len() + 1);
        inner[k] = SHA256_IV;
        compress256(&mut inner[k], &blocks[k]);
        compress256(&mut outer[k], &[opad]);
        if WIPE {
            opad.zeroize();
        }
    }
    // Expand, outer: H(opad(PRK) ‖ inner).
    let mut rpiks = [[0u8; 16]; N];
    for k in 0..N {
        blocks[k][0] = [0u8; 64];
        put_state(&inner[k], &mut blocks[k][0]);
        pad_final(&mut blocks[k][0], 32);
        compress256(&mut outer[k], &blocks[k][..1]);
        let mut digest = [0u8; 32];
        put_state(&outer[k], &mut digest);
        rpiks[k].copy_from_slice(&digest[..16]);
        if WIPE {
            digest.zeroize();
        }
    }
    if WIPE {
        blocks.zeroize();
        inner.zeroize();
        prk.zeroize();
        outer.zeroize();
    }
    rpiks
}

/// The padded plaintext block `"EN-RPI" ‖ 0 × 6 ‖ interval (u32 LE)`.
///
/// Computed as one 128-bit value and stored whole: filling a block on the stack with
/// byte-range writes and reading it back (as the AES backends do) stalls on store
/// forwarding, which cost `rpis_into` several times the AES work itself.
fn padded_data(interval: u32) -> aes::Block {
    const PADDING: u128 = u128::from_le_bytes(*b"EN-RPI\0\0\0\0\0\0\0\0\0\0");
    aes::Block::from((PADDING | (u128::from(interval) << 96)).to_le_bytes())
}

/// A Rolling Proximity Identifier Key: 16 bytes derived from one [`TemporaryExposureKey`].
///
/// Holds the expanded AES key schedule, so deriving many identifiers from one key costs one
/// key expansion. Zeroized on drop; `Debug` does not print it.
#[derive(Clone)]
pub struct RollingProximityIdentifierKey {
    bytes: [u8; 16],
    cipher: Aes128Enc,
}

impl RollingProximityIdentifierKey {
    /// Derives the RPIK of `tek`: HKDF-SHA256(TEK, no salt, "EN-RPIK", 16).
    pub fn derive(tek: &TemporaryExposureKey) -> Self {
        let [bytes] = rpik_hkdf::<1, true>([tek.as_bytes()]);
        Self::from_bytes(bytes)
    }

    /// Derives the RPIKs of `N` *published* keys together, faster per key than one at a
    /// time (their hash chains overlap, and intermediate values are not wiped: they are
    /// public). For matching; a device's own keys go through [`Self::derive`].
    pub(crate) fn derive_published<const N: usize>(teks: [&TemporaryExposureKey; N]) -> [Self; N] {
        rpik_hkdf::<N, false>(teks.map(TemporaryExposureKey::as_bytes)).map(Self::from_bytes)
    }

    /// Wraps raw RPIK bytes (for test vectors and stored keys).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        let cipher = Aes128Enc::new(&bytes.into());
        RollingProximityIdentifierKey { bytes, cipher }
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.bytes
    }

    /// The expanded AES key, for matching code that encrypts blocks it laid out itself.
    pub(crate) fn cipher(&self) -> &Aes128Enc {
        &self.cipher
    }

    /// The identifier broadcast during `interval`.
    pub fn rpi(&self, interval: IntervalNumber) -> RollingProximityIdentifier {
        let mut block = padded_data(interval.0);
        self.cipher.encrypt_block(&mut block);
        RollingProximityIdentifier(block.into())
    }

    /// Fills `out[i]` with the identifier of interval `start + i` (u32 arithmetic wraps).
    ///
    /// The fast path for matching: one AES key schedule, multi-block encryption, no
    /// allocation.
    pub fn rpis_into(&self, start: IntervalNumber, out: &mut [RollingProximityIdentifier]) {
        let mut blocks = [aes::Block::default(); BATCH];
        let mut interval = start.0;
        for chunk in out.chunks_mut(BATCH) {
            let blocks = &mut blocks[..chunk.len()];
            for block in blocks.iter_mut() {
                *block = padded_data(interval);
                interval = interval.wrapping_add(1);
            }
            self.cipher.encrypt_blocks(blocks);
            for (rpi, block) in chunk.iter_mut().zip(blocks.iter()) {
                rpi.0 = (*block).into();
            }
        }
    }

    /// The identifiers of `count` consecutive intervals from `start`, lazily, in batches.
    pub fn rpis(&self, start: IntervalNumber, count: u32) -> Rpis<'_> {
        Rpis {
            key: self,
            next_interval: start.0,
            remaining: count,
            buffer: [RollingProximityIdentifier([0; 16]); BATCH],
            position: BATCH,
            filled: BATCH,
        }
    }
}

impl PartialEq for RollingProximityIdentifierKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for RollingProximityIdentifierKey {}

impl fmt::Debug for RollingProximityIdentifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RollingProximityIdentifierKey(<redacted>)")
    }
}

impl Drop for RollingProximityIdentifierKey {
    fn drop(&mut self) {
        // The AES key schedule zeroizes itself (aes feature `zeroize`).
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for RollingProximityIdentifierKey {}

/// Iterator over the RPIs of consecutive intervals; see [`RollingProximityIdentifierKey::rpis`].
#[derive(Debug)]
pub struct Rpis<'a> {
    key: &'a RollingProximityIdentifierKey,
    next_interval: u32,
    remaining: u32,
    buffer: [RollingProximityIdentifier; BATCH],
    position: usize,
    filled: usize,
}

impl Iterator for Rpis<'_> {
    type Item = RollingProximityIdentifier;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position == self.filled {
            if self.remaining == 0 {
                return None;
            }
            // `BATCH` fits a u32, and the result is at most `remaining`.
            let n = self.remaining.min(BATCH as u32);
            self.filled = n as usize;
            self.key.rpis_into(
                IntervalNumber(self.next_interval),
                &mut self.buffer[..self.filled],
            );
            self.next_interval = self.next_interval.wrapping_add(n);
            self.remaining -= n;
            self.position = 0;
        }
        let rpi = self.buffer[self.position];
        self.position += 1;
        Some(rpi)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.filled - self.position).saturating_add(self.remaining as usize);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Rpis<'_> {}

/// A Rolling Proximity Identifier: the 16 bytes a phone broadcasts during one interval.
///
/// Public by design (anyone nearby hears it), so `Debug` prints it in hex.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RollingProximityIdentifier(pub [u8; 16]);

impl RollingProximityIdentifier {
    /// The raw identifier bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for RollingProximityIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RollingProximityIdentifier({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RollingProximityIdentifierKey {
        RollingProximityIdentifierKey::derive(&TemporaryExposureKey([7; 16]))
    }

    #[test]
    fn zero_salt_pad_states_are_the_hash_of_the_pads() {
        use sha2::block_api::compress256;
        for (pad, expected) in [(0x36u8, ZERO_SALT_INNER), (0x5c, ZERO_SALT_OUTER)] {
            let mut state = SHA256_IV;
            compress256(&mut state, &[[pad; 64]]);
            assert_eq!(state, expected, "pad {pad:#x}");
        }
    }

    #[test]
    fn hand_rolled_hkdf_equals_ring() {
        // Deterministic but varied TEKs: every byte value appears in some position.
        for seed in 0u8..=255 {
            let tek: [u8; 16] =
                std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 17));
            let mut expected = [0u8; 16];
            crate::hkdf::hkdf_sha256(&[], &tek, &[RPIK_INFO], &mut expected);
            assert_eq!(rpik_hkdf::<1, true>([&tek]), [expected], "seed {seed}");
            let other = [seed; 16];
            let mut expected_other = [0u8; 16];
            crate::hkdf::hkdf_sha256(&[], &other, &[RPIK_INFO], &mut expected_other);
            assert_eq!(
                rpik_hkdf::<3, false>([&tek, &other, &tek]),
                [expected, expected_other, expected],
                "seed {seed}"
            );
        }
    }

    #[test]
    fn padded_data_layout() {
        let block = padded_data(0x0403_0201);
        assert_eq!(&block[..], b"EN-RPI\0\0\0\0\0\0\x01\x02\x03\x04");
    }

    #[test]
    fn batch_derivation_matches_single_block() {
        let key = key();
        // More than one batch, and a length that is not a multiple of BATCH.
        let start = IntervalNumber(2_642_976);
        let mut out = [RollingProximityIdentifier([0; 16]); 2 * BATCH + 3];
        key.rpis_into(start, &mut out);
        for (i, rpi) in out.iter().enumerate() {
            assert_eq!(*rpi, key.rpi(start.plus(i as u32)), "interval offset {i}");
        }
        let lazy: Vec<_> = key.rpis(start, out.len() as u32).collect();
        assert_eq!(lazy, out);
    }

    #[test]
    fn iterator_reports_its_length_and_handles_zero() {
        let key = key();
        let mut it = key.rpis(IntervalNumber(10), 20);
        assert_eq!(it.len(), 20);
        it.next();
        assert_eq!(it.len(), 19);
        assert_eq!(it.count(), 19);
        assert_eq!(key.rpis(IntervalNumber(10), 0).next(), None);
    }

    #[test]
    fn intervals_wrap_instead_of_panicking() {
        let key = key();
        let v: Vec<_> = key.rpis(IntervalNumber(u32::MAX), 2).collect();
        assert_eq!(v[1], key.rpi(IntervalNumber(0)));
    }

    #[test]
    fn debug_is_redacted() {
        let key = key();
        let shown = format!("{key:?}");
        assert_eq!(shown, "RollingProximityIdentifierKey(<redacted>)");
        assert!(!shown.contains(&hex::encode(key.as_bytes())));
    }
}
