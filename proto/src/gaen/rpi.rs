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
use crate::hkdf::hkdf_sha256;
use crate::time::IntervalNumber;

/// HKDF info string of the Rolling Proximity Identifier Key.
pub const RPIK_INFO: &[u8] = b"EN-RPIK";
/// The first six bytes of every RPI plaintext block.
pub const RPI_PADDING: &[u8; 6] = b"EN-RPI";
/// Bytes in an RPI (one AES block).
pub const RPI_LEN: usize = 16;

/// How many blocks one AES call encrypts at once when deriving a run of identifiers.
///
/// Large enough for the AES backends to pipeline (AES-NI works on 8 blocks at a time),
/// small enough to live on the stack.
const BATCH: usize = 16;

/// The padded plaintext block `"EN-RPI" ‖ 0 × 6 ‖ interval (u32 LE)`.
fn padded_data(interval: u32) -> aes::Block {
    let mut block = aes::Block::default();
    block[..6].copy_from_slice(RPI_PADDING);
    block[12..].copy_from_slice(&interval.to_le_bytes());
    block
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
        let mut bytes = [0u8; 16];
        hkdf_sha256(&[], tek.as_bytes(), &[RPIK_INFO], &mut bytes);
        Self::from_bytes(bytes)
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
