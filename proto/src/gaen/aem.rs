//! Associated Encrypted Metadata: the 4 bytes broadcast beside each RPI.
//!
//! GAEN Cryptography v1.2:
//! `AEMK = HKDF-SHA256(TEK, salt = none, info = "EN-AEMK", 16)` and
//! `AEM = AES-128-CTR(AEMK, IV = RPI, metadata)`. Four bytes are less than one block, so the
//! whole keystream is the first 4 bytes of `AES-128(AEMK, RPI)`.

use std::fmt;

use aes::Aes128Enc;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::rpi::RollingProximityIdentifier;
use super::tek::TemporaryExposureKey;
use crate::hkdf::hkdf_sha256;

/// HKDF info string of the Associated Encrypted Metadata Key.
pub const AEMK_INFO: &[u8] = b"EN-AEMK";
/// Bytes of metadata (and of its encryption).
pub const AEM_LEN: usize = 4;

/// An Associated Encrypted Metadata Key: 16 bytes derived from one [`TemporaryExposureKey`].
///
/// Zeroized on drop; `Debug` does not print it.
#[derive(Clone)]
pub struct AssociatedEncryptedMetadataKey {
    bytes: [u8; 16],
    cipher: Aes128Enc,
}

impl AssociatedEncryptedMetadataKey {
    /// Derives the AEMK of `tek`: HKDF-SHA256(TEK, no salt, "EN-AEMK", 16).
    pub fn derive(tek: &TemporaryExposureKey) -> Self {
        let mut bytes = [0u8; 16];
        hkdf_sha256(&[], tek.as_bytes(), &[AEMK_INFO], &mut bytes);
        Self::from_bytes(bytes)
    }

    /// Wraps raw AEMK bytes (for test vectors and stored keys).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        let cipher = Aes128Enc::new(&bytes.into());
        AssociatedEncryptedMetadataKey { bytes, cipher }
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.bytes
    }

    /// The first keystream block of AES-128-CTR with IV = `rpi`, cut to 4 bytes.
    fn keystream(&self, rpi: &RollingProximityIdentifier) -> [u8; AEM_LEN] {
        let mut block = aes::Block::from(rpi.0);
        self.cipher.encrypt_block(&mut block);
        let mut stream = [0u8; AEM_LEN];
        stream.copy_from_slice(&block[..AEM_LEN]);
        block.zeroize();
        stream
    }

    /// Encrypts `metadata` for broadcast beside `rpi`.
    pub fn encrypt(
        &self,
        rpi: &RollingProximityIdentifier,
        metadata: &Metadata,
    ) -> AssociatedEncryptedMetadata {
        let stream = self.keystream(rpi);
        AssociatedEncryptedMetadata(std::array::from_fn(|i| metadata.0[i] ^ stream[i]))
    }

    /// Decrypts the `aem` heard beside `rpi`. (CTR mode: any 4 bytes decrypt to something.)
    pub fn decrypt(
        &self,
        rpi: &RollingProximityIdentifier,
        aem: &AssociatedEncryptedMetadata,
    ) -> Metadata {
        let stream = self.keystream(rpi);
        Metadata(std::array::from_fn(|i| aem.0[i] ^ stream[i]))
    }
}

impl PartialEq for AssociatedEncryptedMetadataKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for AssociatedEncryptedMetadataKey {}

impl fmt::Debug for AssociatedEncryptedMetadataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AssociatedEncryptedMetadataKey(<redacted>)")
    }
}

impl Drop for AssociatedEncryptedMetadataKey {
    fn drop(&mut self) {
        // The AES key schedule zeroizes itself (aes feature `zeroize`).
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for AssociatedEncryptedMetadataKey {}

/// The encrypted 4 metadata bytes broadcast beside an RPI.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AssociatedEncryptedMetadata(pub [u8; 4]);

impl AssociatedEncryptedMetadata {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }
}

impl fmt::Debug for AssociatedEncryptedMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssociatedEncryptedMetadata({})", hex::encode(self.0))
    }
}

/// The 4 plaintext metadata bytes of GAEN Bluetooth spec v1.2.
///
/// Byte 0: version (bits 7–6 major, bits 5–4 minor, bits 3–0 reserved); byte 1: transmit
/// power in dBm, signed; bytes 2–3: reserved (zero).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Metadata(pub [u8; 4]);

impl Metadata {
    /// Version byte of metadata format 1.0 (major 1, minor 0).
    pub const VERSION_1_0: u8 = 0b0100_0000;

    /// Metadata v1.0 announcing transmit power `tx_power` dBm.
    pub fn v1_0(tx_power: i8) -> Self {
        Metadata([Self::VERSION_1_0, tx_power.to_le_bytes()[0], 0, 0])
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }

    /// The version byte.
    pub fn version(&self) -> u8 {
        self.0[0]
    }

    /// Major version (bits 7–6 of the version byte).
    pub fn major_version(&self) -> u8 {
        self.0[0] >> 6
    }

    /// Minor version (bits 5–4 of the version byte).
    pub fn minor_version(&self) -> u8 {
        (self.0[0] >> 4) & 0b11
    }

    /// Whether this is a format this implementation reads (major version 1).
    pub fn is_supported(&self) -> bool {
        self.major_version() == 1
    }

    /// Transmit power in dBm, as the broadcaster announced it.
    pub fn tx_power(&self) -> i8 {
        i8::from_le_bytes([self.0[1]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_v1_layout() {
        let m = Metadata::v1_0(8);
        assert_eq!(m.as_bytes(), &[0x40, 0x08, 0x00, 0x00]);
        assert_eq!((m.major_version(), m.minor_version()), (1, 0));
        assert!(m.is_supported());
        assert_eq!(m.tx_power(), 8);
        assert_eq!(Metadata::v1_0(-20).tx_power(), -20);
        assert_eq!(Metadata::v1_0(-20).0[1], 0xec);
        assert!(!Metadata([0x80, 0, 0, 0]).is_supported());
    }

    #[test]
    fn encrypt_decrypt_round_trip() {
        let tek = TemporaryExposureKey([3; 16]);
        let key = AssociatedEncryptedMetadataKey::derive(&tek);
        for i in 0..=255u8 {
            let rpi = RollingProximityIdentifier([i; 16]);
            let metadata = Metadata([0x40, i, i.wrapping_mul(7), 0]);
            let aem = key.encrypt(&rpi, &metadata);
            assert_eq!(key.decrypt(&rpi, &aem), metadata);
        }
    }

    #[test]
    fn keystream_depends_on_the_rpi() {
        let key = AssociatedEncryptedMetadataKey::from_bytes([9; 16]);
        let m = Metadata::v1_0(0);
        let a = key.encrypt(&RollingProximityIdentifier([1; 16]), &m);
        let b = key.encrypt(&RollingProximityIdentifier([2; 16]), &m);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_is_redacted() {
        let key = AssociatedEncryptedMetadataKey::from_bytes([0xab; 16]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "AssociatedEncryptedMetadataKey(<redacted>)");
        assert!(!shown.contains("abab"));
    }
}
