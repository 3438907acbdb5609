//! The authority's published token keys, signed with its Ed25519 key, and the rule by which
//! a phone knows it got the same keys as everyone else.

use std::collections::BTreeMap;

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthoritySigningKey, TrustedAuthorities};
use crate::signing::{Ed25519PublicKey, Signature};
use crate::time::{DayNumber, UnixTime};
use crate::token::{
    Audience, TokenClass, TokenError, TokenKeyId, TokenPublicKey, TokenSigningKey, TokenVerifier,
};
use crate::wire::{self, WireMessage};

/// Domain label of a key set's signature.
const KEY_SET_LABEL: &[u8] = b"ephemera/token-keys/v2";
/// Domain label of a key set's digest.
const DIGEST_LABEL: &[u8] = b"ephemera/token-keys-digest/v2";

/// The token keys an authority publishes for its audience: normally yesterday's, today's
/// and tomorrow's epochs, one key per class each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenKeySet {
    /// The authority's Ed25519 key, which signs the set (phones pin it already).
    pub authority: Ed25519PublicKey,
    /// The federation the keys authorise uploads for.
    pub audience: Audience,
    /// When the set was signed.
    pub published_at: UnixTime,
    /// The keys, at most one per epoch and class.
    pub keys: Vec<TokenPublicKey>,
}

/// A [`TokenKeySet`] with the authority's signature: `GET /v2/token-keys` serves its frame,
/// and federation peers pass it on unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTokenKeySet {
    /// The set.
    pub set: TokenKeySet,
    /// Ed25519 by `set.authority` over `"ephemera/token-keys/v2" ‖ postcard(set)`.
    pub signature: Signature,
}

impl WireMessage for SignedTokenKeySet {
    const KIND: u8 = wire::kind::TOKEN_KEY_SET;
    /// Three epochs of ten 4096-bit keys fit with room to spare.
    const MAX_SIZE: usize = 64 * 1024;
    const VERSIONS: &'static [u8] = &[wire::WIRE_VERSION_2];

    fn wire_version(&self) -> u8 {
        wire::WIRE_VERSION_2
    }
}

impl SignedTokenKeySet {
    /// Signs `set` with the authority key (whose public half must be `set.authority`).
    pub fn sign(set: TokenKeySet, authority: &AuthoritySigningKey) -> SignedTokenKeySet {
        let signature = authority.ed25519().sign(
            KEY_SET_LABEL,
            &postcard::to_allocvec(&set).expect("postcard into a Vec"),
        );
        SignedTokenKeySet { set, signature }
    }

    /// The set of `keys`' public halves for `audience`, signed by `authority` at
    /// `published_at`: what an authority's node publishes.
    pub fn publish<'k>(
        authority: &AuthoritySigningKey,
        audience: Audience,
        published_at: UnixTime,
        keys: impl IntoIterator<Item = &'k TokenSigningKey>,
    ) -> SignedTokenKeySet {
        let set = TokenKeySet {
            authority: authority.public_key(),
            audience,
            published_at,
            keys: keys.into_iter().map(|key| key.public().clone()).collect(),
        };
        Self::sign(set, authority)
    }

    /// `SHA-256("ephemera/token-keys-digest/v2" ‖ frame)`: what a phone compares with a
    /// second node's copy.
    pub fn digest(&self) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(DIGEST_LABEL);
        ctx.update(&wire::encode(self));
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Checks the set: signed by a trusted authority key, for `audience`, every key
    /// well formed and at most one per epoch and class. Returns the parsed keys.
    ///
    /// # Errors
    /// [`TokenError::UntrustedKeySet`], [`TokenError::WrongAudience`],
    /// [`TokenError::DuplicateKey`], or a key's [`TokenPublicKey::parse`] error.
    pub fn verify(
        &self,
        trusted: &TrustedAuthorities,
        audience: &Audience,
    ) -> Result<TokenKeys, TokenError> {
        let body = postcard::to_allocvec(&self.set).expect("postcard into a Vec");
        if !trusted.contains(&self.set.authority)
            || !self
                .set
                .authority
                .verify(KEY_SET_LABEL, &body, &self.signature)
        {
            return Err(TokenError::UntrustedKeySet);
        }
        if self.set.audience != *audience {
            return Err(TokenError::WrongAudience);
        }
        let mut keys = TokenKeys::default();
        for public in &self.set.keys {
            keys.insert(public.parse()?)?;
        }
        Ok(keys)
    }
}

/// Parsed token keys, by id and by (epoch, class): what a node verifies with and a phone
/// blinds under.
#[derive(Clone, Debug, Default)]
pub struct TokenKeys {
    by_id: BTreeMap<TokenKeyId, TokenVerifier>,
    by_class: BTreeMap<(DayNumber, TokenClass), TokenKeyId>,
}

impl TokenKeys {
    /// Adds a key.
    ///
    /// # Errors
    /// [`TokenError::DuplicateKey`] if a key for its epoch and class is already held.
    pub fn insert(&mut self, key: TokenVerifier) -> Result<(), TokenError> {
        let slot = (key.public.epoch, key.public.class);
        if self.by_class.contains_key(&slot) || self.by_id.contains_key(&key.id) {
            return Err(TokenError::DuplicateKey);
        }
        self.by_class.insert(slot, key.id);
        self.by_id.insert(key.id, key);
        Ok(())
    }

    /// Adds every key of `other` not held yet (another authority's, say); keys of one
    /// epoch and class that differ are refused as [`TokenError::DuplicateKey`].
    ///
    /// # Errors
    /// [`TokenError::DuplicateKey`].
    pub fn merge(&mut self, other: TokenKeys) -> Result<(), TokenError> {
        for (id, key) in other.by_id {
            if self.by_id.contains_key(&id) {
                continue;
            }
            self.insert(key)?;
        }
        Ok(())
    }

    /// The key with `id`.
    pub fn get(&self, id: &TokenKeyId) -> Option<&TokenVerifier> {
        self.by_id.get(id)
    }

    /// The key for `epoch` and `class`.
    pub fn key_for(&self, epoch: DayNumber, class: TokenClass) -> Option<&TokenVerifier> {
        self.by_class
            .get(&(epoch, class))
            .and_then(|id| self.by_id.get(id))
    }

    /// The phone's consistency rule (`docs/PROTOCOL.md` §4.4): a key may be blinded under
    /// only if `other` (the set another node serves) holds the very same key for its epoch
    /// and class. A signer that showed this phone its own key would be caught by the second
    /// node, and the two signed sets are its proof.
    pub fn agrees_with(&self, other: &TokenKeys, epoch: DayNumber, class: TokenClass) -> bool {
        match (self.key_for(epoch, class), other.key_for(epoch, class)) {
            (Some(a), Some(b)) => a.id() == b.id(),
            _ => false,
        }
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
