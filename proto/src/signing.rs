//! Ed25519 keys and signatures (over `ring`) used by authorities and nodes.
//!
//! Every signed message is prefixed with its own domain label, so a signature made for one
//! purpose never verifies for another.

use std::collections::BTreeMap;
use std::fmt;

use rand_core::CryptoRng;
use ring::digest;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Domain label hashed with a public key to form its [`KeyId`].
const KEY_ID_LABEL: &[u8] = b"ephemera/key-id/v1";

/// An Ed25519 private key, kept as its 32-byte seed.
///
/// `Debug` never shows the seed.
pub struct Ed25519SigningKey {
    seed: Zeroizing<[u8; 32]>,
    pair: Ed25519KeyPair,
}

impl Ed25519SigningKey {
    /// Draws a new key from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Rebuilds a key from its seed (as stored by [`Self::seed`]).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        // `from_seed_unchecked` only fails for a seed of the wrong length, which the type
        // rules out.
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("32-byte Ed25519 seed");
        Ed25519SigningKey {
            seed: Zeroizing::new(*seed),
            pair,
        }
    }

    /// The seed, for storing the key. Handle it as a secret.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public half.
    pub fn public_key(&self) -> Ed25519PublicKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        Ed25519PublicKey(bytes)
    }

    /// Signs `label ‖ message`.
    pub(crate) fn sign(&self, label: &[u8], message: &[u8]) -> Signature {
        let mut input = Vec::with_capacity(label.len() + message.len());
        input.extend_from_slice(label);
        input.extend_from_slice(message);
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(&input).as_ref());
        Signature(out)
    }
}

impl fmt::Debug for Ed25519SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519SigningKey")
            .field("public_key", &self.public_key())
            .field("seed", &"<redacted>")
            .finish()
    }
}

/// An Ed25519 public key.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ed25519PublicKey(pub [u8; 32]);

impl Ed25519PublicKey {
    /// The short identifier of this key: the first 8 bytes of SHA-256(label ‖ key).
    pub fn key_id(&self) -> KeyId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(KEY_ID_LABEL);
        ctx.update(&self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(&ctx.finish().as_ref()[..8]);
        KeyId(id)
    }

    /// Checks `signature` over `label ‖ message`.
    pub(crate) fn verify(&self, label: &[u8], message: &[u8], signature: &Signature) -> bool {
        let mut input = Vec::with_capacity(label.len() + message.len());
        input.extend_from_slice(label);
        input.extend_from_slice(message);
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(&input, &signature.0)
            .is_ok()
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(Ed25519PublicKey(bytes))
    }

    /// Lower-case hex, as used in configuration files.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519PublicKey({})", self.to_hex())
    }
}

/// The 8-byte identifier of a public key, carried in certificates and batches.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", hex::encode(self.0))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A 64-byte Ed25519 signature.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                let bytes: [u8; 64] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Signature(bytes))
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

/// A set of trusted public keys, by key id (authorities for certificates, nodes for batches).
///
/// A key id is 64 bits: two keys may share one, by chance (about 2^-64 per pair) or because
/// someone ground a key to match another's id (2^64 hashes). The set keeps every key it is
/// given, and a signature naming an id is checked against every trusted key with that id,
/// so a second key never replaces or shadows the first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, Vec<Ed25519PublicKey>>,
}

impl TrustedKeys {
    /// An empty set: nothing verifies.
    pub fn new() -> Self {
        TrustedKeys::default()
    }

    /// Adds a trusted key; returns `self` for chaining.
    pub fn with(mut self, key: Ed25519PublicKey) -> Self {
        self.insert(key);
        self
    }

    /// Adds a trusted key (beside any other key with the same id; once).
    pub fn insert(&mut self, key: Ed25519PublicKey) {
        let same_id = self.keys.entry(key.key_id()).or_default();
        if !same_id.contains(&key) {
            same_id.push(key);
        }
    }

    /// Every trusted key with this id: usually none or one.
    pub fn with_id(&self, id: &KeyId) -> impl Iterator<Item = &Ed25519PublicKey> {
        self.keys.get(id).into_iter().flatten()
    }

    /// Whether some trusted key has this id.
    pub fn knows_id(&self, id: &KeyId) -> bool {
        self.keys.contains_key(id)
    }

    /// Whether this very key is trusted.
    pub fn contains(&self, key: &Ed25519PublicKey) -> bool {
        self.keys
            .get(&key.key_id())
            .is_some_and(|same_id| same_id.contains(key))
    }

    /// The trusted key with id `id` whose signature over `label ‖ message` is `signature`.
    ///
    /// # Errors
    /// [`Untrusted::Id`] when no trusted key has the id, [`Untrusted::Signature`] when none
    /// of those that have it made the signature.
    pub(crate) fn signer(
        &self,
        id: &KeyId,
        label: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> Result<&Ed25519PublicKey, Untrusted> {
        let same_id = self.keys.get(id).ok_or(Untrusted::Id)?;
        same_id
            .iter()
            .find(|key| key.verify(label, message, signature))
            .ok_or(Untrusted::Signature)
    }

    /// Adds `key` under `id` whatever its own id: a collision, for tests.
    #[cfg(test)]
    pub(crate) fn insert_under(&mut self, id: KeyId, key: Ed25519PublicKey) {
        self.keys.entry(id).or_default().push(key);
    }

    /// Every trusted key.
    pub fn iter(&self) -> impl Iterator<Item = &Ed25519PublicKey> {
        self.keys.values().flatten()
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why [`TrustedKeys::signer`] found no signer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Untrusted {
    /// No trusted key has the id.
    Id,
    /// Trusted keys have the id, but none made the signature.
    Signature,
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn sign_verify_and_domain_separation() {
        let key = Ed25519SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let public = key.public_key();
        let sig = key.sign(b"label-a", b"message");
        assert!(public.verify(b"label-a", b"message", &sig));
        assert!(!public.verify(b"label-b", b"message", &sig));
        assert!(!public.verify(b"label-a", b"messagf", &sig));
        let restored = Ed25519SigningKey::from_seed(key.seed());
        assert_eq!(restored.public_key(), public);
    }

    #[test]
    fn debug_hides_the_seed() {
        let key = Ed25519SigningKey::from_seed(&[0x42; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&hex::encode([0x42; 32])));
    }

    /// Two keys under one id, as a grinder (or chance) would make them. Key ids are
    /// compared, not recomputed, so the set is built with a forced id to stand for the
    /// 2^64-hash search.
    #[test]
    fn a_second_key_with_the_same_id_shadows_nothing() {
        let first = Ed25519SigningKey::from_seed(&[1; 32]);
        let second = Ed25519SigningKey::from_seed(&[2; 32]);
        let id = first.public_key().key_id();
        let mut trusted = TrustedKeys::new().with(first.public_key());
        trusted.insert_under(id, second.public_key());
        assert_eq!(trusted.len(), 2);
        let by_first = first.sign(b"label", b"message");
        let by_second = second.sign(b"label", b"message");
        assert_eq!(
            trusted.signer(&id, b"label", b"message", &by_first),
            Ok(&first.public_key())
        );
        assert_eq!(
            trusted.signer(&id, b"label", b"message", &by_second),
            Ok(&second.public_key())
        );
        let stranger = Ed25519SigningKey::from_seed(&[3; 32]);
        assert_eq!(
            trusted.signer(
                &id,
                b"label",
                b"message",
                &stranger.sign(b"label", b"message")
            ),
            Err(Untrusted::Signature)
        );
        assert_eq!(
            trusted.signer(&KeyId([0; 8]), b"label", b"message", &by_first),
            Err(Untrusted::Id)
        );
    }

    #[test]
    fn inserting_keeps_every_key_once() {
        let a = Ed25519SigningKey::from_seed(&[4; 32]).public_key();
        let b = Ed25519SigningKey::from_seed(&[5; 32]).public_key();
        let trusted = TrustedKeys::new().with(a).with(b).with(a);
        assert_eq!(trusted.len(), 2);
        assert!(trusted.contains(&a) && trusted.contains(&b));
        assert_eq!(trusted.with_id(&a.key_id()).collect::<Vec<_>>(), vec![&a]);
        assert!(trusted.knows_id(&b.key_id()) && !trusted.knows_id(&KeyId([0; 8])));
    }

    #[test]
    fn signature_serde_round_trip() {
        let sig = Signature([7; 64]);
        let bytes = postcard::to_allocvec(&sig).unwrap();
        assert_eq!(postcard::from_bytes::<Signature>(&bytes).unwrap(), sig);
        let short = postcard::to_allocvec(&[7u8; 10].as_slice()).unwrap();
        assert!(postcard::from_bytes::<Signature>(&short).is_err());
    }
}
