//! The publication key: a secret shared by the operators of one federation, never by
//! observers, from which every node derives the same release slot for an entry and the same
//! decoys for a batch (`docs/PROTOCOL.md` §6.3).
//!
//! Both must be the same at every node, so that comparing two nodes' batches shows nothing
//! (item 3 of issue 31), and unpredictable to anyone else: a release slot an observer could
//! compute would link an upload's entries again, and decoys it could recompute from the
//! batch's public content could be stripped. A node configured without one draws its own
//! at start: its slots and decoys are then its own, which is all a node that does not
//! federate needs.

use std::fmt;

use ephemera_proto::UnixTime;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use ring::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Bytes of a publication key.
pub const PUBLICATION_KEY_LEN: usize = 32;

/// Label of the release-slot derivation (version 2 of the protocol).
const RELEASE_LABEL: &[u8] = b"ephemera/v2/release-slot";
/// Label of the decoy derivation (version 2 of the protocol).
const PADDING_LABEL: &[u8] = b"ephemera/v2/batch-padding";

/// The federation-wide secret behind release slots and decoys. Its `Debug` shows nothing of
/// it; it is wiped when dropped.
#[derive(Clone)]
pub struct PublicationKey(Zeroizing<[u8; PUBLICATION_KEY_LEN]>);

/// A publication key's text was not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a publication key is 64 hex digits (32 bytes)")]
pub struct PublicationKeyFormatError;

/// Which section of a batch a decoy stream is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Section {
    /// `gaen` diagnosis keys.
    Keys,
    /// `pet` tokens.
    Tokens,
}

impl PublicationKey {
    /// The key of these bytes.
    pub fn from_bytes(bytes: [u8; PUBLICATION_KEY_LEN]) -> Self {
        PublicationKey(Zeroizing::new(bytes))
    }

    /// The key of 64 hex digits (as the configuration holds it).
    ///
    /// # Errors
    /// [`PublicationKeyFormatError`] for anything else.
    pub fn from_hex(text: &str) -> Result<Self, PublicationKeyFormatError> {
        let mut bytes = Zeroizing::new([0u8; PUBLICATION_KEY_LEN]);
        hex::decode_to_slice(text.trim(), bytes.as_mut_slice())
            .map_err(|_| PublicationKeyFormatError)?;
        Ok(PublicationKey(bytes))
    }

    /// A one-way fingerprint of the key: tells two keys apart without revealing either.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.mac(&[b"ephemera/publication-key-fingerprint"])
    }

    /// A fresh random key: a node's own, when it shares none.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = Zeroizing::new([0u8; PUBLICATION_KEY_LEN]);
        rng.fill_bytes(bytes.as_mut_slice());
        PublicationKey(bytes)
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.0.as_slice());
        let mut context = hmac::Context::with_key(&key);
        for part in parts {
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    /// The release class of the entry whose 16 distinguishing bytes (token or TEK) are
    /// `entry`: a number below `classes`, uniform and independent across entries for anyone
    /// without the key.
    pub fn release_class(&self, entry: &[u8; 16], classes: u64) -> u64 {
        let mac = self.mac(&[RELEASE_LABEL, entry]);
        let mut word = [0u8; 8];
        word.copy_from_slice(&mac[..8]);
        // 64 uniform bits reduced modulo a small number: the bias is below 2^-40.
        u64::from_le_bytes(word) % classes.max(1)
    }

    /// The decoy stream of one section of the batch at `position` in the cut of
    /// `boundary`: the same at every node holding the key, unpredictable without it.
    pub fn decoy_rng(&self, boundary: UnixTime, position: u32, section: Section) -> ChaCha20Rng {
        let section = [match section {
            Section::Keys => 0u8,
            Section::Tokens => 1,
        }];
        let seed = self.mac(&[
            PADDING_LABEL,
            &boundary.0.to_le_bytes(),
            &position.to_le_bytes(),
            &section,
        ]);
        ChaCha20Rng::from_seed(seed)
    }
}

impl PartialEq for PublicationKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for PublicationKey {}

impl fmt::Debug for PublicationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicationKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_decoys_depend_on_the_key_only_and_debug_hides_it() {
        let a = PublicationKey::from_bytes([1; 32]);
        let same = PublicationKey::from_hex(&"01".repeat(32)).unwrap();
        let other = PublicationKey::from_bytes([2; 32]);
        assert_eq!(a, same);
        assert_ne!(a, other);
        assert_eq!(format!("{a:?}"), "PublicationKey(..)");
        assert_eq!(
            PublicationKey::from_hex("0102"),
            Err(PublicationKeyFormatError)
        );
        assert_eq!(
            PublicationKey::from_hex(&"zz".repeat(32)),
            Err(PublicationKeyFormatError)
        );

        let classes: Vec<u64> = (0..64u8).map(|i| a.release_class(&[i; 16], 24)).collect();
        let again: Vec<u64> = (0..64u8)
            .map(|i| same.release_class(&[i; 16], 24))
            .collect();
        let others: Vec<u64> = (0..64u8)
            .map(|i| other.release_class(&[i; 16], 24))
            .collect();
        assert_eq!(classes, again);
        assert_ne!(classes, others);
        assert!(classes.iter().all(|c| *c < 24));

        let boundary = UnixTime(1_700_000_000);
        let draw = |k: &PublicationKey, position, section| {
            let mut rng = k.decoy_rng(boundary, position, section);
            let mut out = [0u8; 16];
            rand_core::Rng::fill_bytes(&mut rng, &mut out);
            out
        };
        assert_eq!(
            draw(&a, 0, Section::Tokens),
            draw(&same, 0, Section::Tokens)
        );
        assert_ne!(
            draw(&a, 0, Section::Tokens),
            draw(&other, 0, Section::Tokens)
        );
        assert_ne!(draw(&a, 0, Section::Tokens), draw(&a, 1, Section::Tokens));
        assert_ne!(draw(&a, 0, Section::Tokens), draw(&a, 0, Section::Keys));
    }

    /// The frozen vectors of `docs/PROTOCOL.md` §6.3 and §6.4 (computed apart, with
    /// Python's `hmac`, from the text).
    #[test]
    fn frozen_vectors() {
        let key = PublicationKey::from_bytes([1; 32]);
        assert_eq!(key.release_class(&[7; 16], 24), 15);
        let mut seed = [0u8; 32];
        hex::decode_to_slice(
            "89584565615e5e37da8e2b3a3f89729e461921c4b1e04bdf29545ecf95e842b5",
            &mut seed,
        )
        .unwrap();
        let mut ours = key.decoy_rng(UnixTime(1_700_000_000), 0, Section::Tokens);
        let mut theirs = ChaCha20Rng::from_seed(seed);
        for _ in 0..4 {
            assert_eq!(
                rand_core::Rng::next_u64(&mut ours),
                rand_core::Rng::next_u64(&mut theirs)
            );
        }
    }
}
