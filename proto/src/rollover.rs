//! Key rollovers: a node announces its next Ed25519 key under the key phones and peers
//! already trust, so they follow a rotation without an app update or a config change.
//!
//! ```text
//! frame   = version (1) ‖ kind 0x09 (1) ‖ postcard(KeyRollover)
//! signed  = "ephemera/key-rollover/v1" ‖ role (1: 1 batch, 2 authority) ‖ old key (32)
//!           ‖ new key (32) ‖ announced_at (u64 LE)
//! ```
//!
//! The old key signs the message (it vouches for its successor) and so does the new one
//! (its holder proves it has it). Whoever trusts the old key for `role` may add the new
//! key; chains are followed in any order ([`TrustedKeys::follow`]). A rollover never
//! removes a key: what was signed before stays verifiable (batches a phone has seen are
//! history). Anyone holding a trusted key can announce a successor, so a stolen key is
//! recovered from only by an app or config update (`node/docs/OPERATIONS.md`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DecodeError;
use crate::signing::{Ed25519PublicKey, Ed25519SigningKey, KeyId, Signature, TrustedKeys};
use crate::time::UnixTime;
use crate::wire::{self, WireMessage};

/// Domain label of rollover signatures.
const ROLLOVER_LABEL: &[u8] = b"ephemera/key-rollover/v1";
/// Largest rollover frame: header, role, two keys, time (varint), two length-prefixed
/// signatures.
const MAX_FRAME: usize = 2 + 1 + 32 + 32 + 10 + 65 + 65;

/// Which key a rollover replaces.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyRole {
    /// The node's batch-signing key, which phones pin.
    Batch,
    /// The health authority's certificate key, which peers trust.
    Authority,
}

impl KeyRole {
    /// The byte naming the role in the signed message.
    fn code(self) -> u8 {
        match self {
            KeyRole::Batch => 1,
            KeyRole::Authority => 2,
        }
    }

    /// The role's name in files, logs and the command line.
    pub fn name(self) -> &'static str {
        match self {
            KeyRole::Batch => "batch",
            KeyRole::Authority => "authority",
        }
    }
}

/// A rollover did not verify.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RolloverError {
    /// The old key's signature does not verify.
    #[error("the old key's signature on the rollover does not verify")]
    BadOldSignature,
    /// The new key's signature does not verify.
    #[error("the new key's signature on the rollover does not verify")]
    BadNewSignature,
    /// The rollover names the same key twice.
    #[error("the rollover replaces a key with itself")]
    SameKey,
}

/// The announcement that `new` succeeds `old` in `role`, signed by both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRollover {
    /// Which key.
    pub role: KeyRole,
    /// The key being replaced.
    pub old: Ed25519PublicKey,
    /// Its successor.
    pub new: Ed25519PublicKey,
    /// When the rollover was announced (informational; it does not expire).
    pub announced_at: UnixTime,
    /// The old key's signature.
    pub old_signature: Signature,
    /// The new key's signature.
    pub new_signature: Signature,
}

impl WireMessage for KeyRollover {
    const KIND: u8 = wire::kind::KEY_ROLLOVER;
    const MAX_SIZE: usize = MAX_FRAME;
}

impl KeyRollover {
    /// `old` announces `new` as its successor in `role`.
    pub fn announce(
        role: KeyRole,
        old: &Ed25519SigningKey,
        new: &Ed25519SigningKey,
        announced_at: UnixTime,
    ) -> KeyRollover {
        let (old_public, new_public) = (old.public_key(), new.public_key());
        let message = signed_message(role, &old_public, &new_public, announced_at);
        KeyRollover {
            role,
            old: old_public,
            new: new_public,
            announced_at,
            old_signature: old.sign(ROLLOVER_LABEL, &message),
            new_signature: new.sign(ROLLOVER_LABEL, &message),
        }
    }

    /// Checks both signatures.
    ///
    /// # Errors
    /// [`RolloverError`] naming what does not hold.
    pub fn verify(&self) -> Result<(), RolloverError> {
        if self.old == self.new {
            return Err(RolloverError::SameKey);
        }
        let message = signed_message(self.role, &self.old, &self.new, self.announced_at);
        if !self
            .old
            .verify(ROLLOVER_LABEL, &message, &self.old_signature)
        {
            return Err(RolloverError::BadOldSignature);
        }
        if !self
            .new
            .verify(ROLLOVER_LABEL, &message, &self.new_signature)
        {
            return Err(RolloverError::BadNewSignature);
        }
        Ok(())
    }

    /// The versioned frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self)
    }

    /// Decodes a frame (signatures unchecked: call [`KeyRollover::verify`]).
    ///
    /// # Errors
    /// [`DecodeError`] for a frame that is not a rollover.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyRollover, DecodeError> {
        wire::decode(bytes)
    }

    /// The ids of the old and new key, for logs.
    pub fn key_ids(&self) -> (KeyId, KeyId) {
        (self.old.key_id(), self.new.key_id())
    }
}

impl fmt::Display for KeyRollover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (old, new) = self.key_ids();
        write!(f, "{} key {old} -> {new}", self.role.name())
    }
}

fn signed_message(
    role: KeyRole,
    old: &Ed25519PublicKey,
    new: &Ed25519PublicKey,
    at: UnixTime,
) -> Vec<u8> {
    let mut message = Vec::with_capacity(1 + 32 + 32 + 8);
    message.push(role.code());
    message.extend_from_slice(&old.0);
    message.extend_from_slice(&new.0);
    message.extend_from_slice(&at.0.to_le_bytes());
    message
}

impl TrustedKeys {
    /// Adds every key announced for `role` by a verified rollover under a trusted key,
    /// following chains whatever their order; returns the rollovers followed, in the order
    /// followed. Rollovers of another role, under untrusted keys or that do not verify are
    /// skipped.
    pub fn follow<'r>(
        &mut self,
        role: KeyRole,
        rollovers: &'r [KeyRollover],
    ) -> Vec<&'r KeyRollover> {
        let mut added = Vec::new();
        loop {
            let next = rollovers.iter().find(|r| {
                r.role == role
                    && !self.contains(&r.new)
                    && self.contains(&r.old)
                    && r.verify().is_ok()
            });
            let Some(rollover) = next else {
                return added;
            };
            self.insert(rollover.new);
            added.push(rollover);
        }
    }
}

/// Serde for a list of rollovers as hex frames in human-readable formats (the JSON batch
/// index), as structures otherwise.
pub mod as_hex_frames {
    use super::*;

    /// Serializes each rollover as the hex of its frame.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(list: &[KeyRollover], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_seq(list.iter().map(|r| hex::encode(r.to_bytes())))
        } else {
            list.serialize(s)
        }
    }

    /// Reads hex frames (or structures).
    ///
    /// # Errors
    /// A string that is not the hex of a rollover frame.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<KeyRollover>, D::Error> {
        if d.is_human_readable() {
            let texts = Vec::<String>::deserialize(d)?;
            texts
                .iter()
                .map(|t| {
                    let bytes = hex::decode(t)
                        .map_err(|_| serde::de::Error::custom("a rollover is hex"))?;
                    KeyRollover::from_bytes(&bytes).map_err(serde::de::Error::custom)
                })
                .collect()
        } else {
            Vec::<KeyRollover>::deserialize(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Ed25519SigningKey {
        Ed25519SigningKey::from_seed(&[byte; 32])
    }

    /// Frozen: seeds 0x01 -> 0x02, batch role, at 1 700 000 000. A change here is a
    /// protocol change (docs/PROTOCOL.md, "Key rollovers").
    const FROZEN: &str = include_str!("../tests/vectors/rollover.hex");

    #[test]
    fn frozen_vector_holds() {
        let rollover =
            KeyRollover::announce(KeyRole::Batch, &key(1), &key(2), UnixTime(1_700_000_000));
        assert_eq!(hex::encode(rollover.to_bytes()), FROZEN.trim());
        let decoded = KeyRollover::from_bytes(&hex::decode(FROZEN.trim()).unwrap()).unwrap();
        assert_eq!(decoded, rollover);
        assert_eq!(decoded.verify(), Ok(()));
        assert_eq!(
            rollover.to_bytes().len(),
            MAX_FRAME - 5,
            "a u64 time of today takes 5 bytes"
        );
    }

    #[test]
    fn tampering_and_role_confusion_are_refused() {
        let good = KeyRollover::announce(KeyRole::Batch, &key(1), &key(2), UnixTime(5));
        let mut other_role = good.clone();
        other_role.role = KeyRole::Authority;
        assert_eq!(other_role.verify(), Err(RolloverError::BadOldSignature));
        let mut forged_new = good.clone();
        forged_new.new = key(3).public_key();
        assert_eq!(forged_new.verify(), Err(RolloverError::BadOldSignature));
        // A thief of nothing cannot pair someone's new key with a rollover it signs itself.
        let mut unproven = KeyRollover::announce(KeyRole::Batch, &key(1), &key(3), UnixTime(5));
        unproven.new = key(2).public_key();
        unproven.old_signature = good.old_signature;
        assert_eq!(unproven.verify(), Err(RolloverError::BadNewSignature));
        let same = KeyRollover::announce(KeyRole::Batch, &key(1), &key(1), UnixTime(5));
        assert_eq!(same.verify(), Err(RolloverError::SameKey));
        let mut bytes = good.to_bytes();
        bytes.push(0);
        assert!(KeyRollover::from_bytes(&bytes).is_err());
        assert!(KeyRollover::from_bytes(&bytes[..40]).is_err());
    }

    #[test]
    fn trust_follows_chains_in_any_order_and_only_from_trusted_keys() {
        let at = UnixTime(5);
        let one_two = KeyRollover::announce(KeyRole::Batch, &key(1), &key(2), at);
        let two_three = KeyRollover::announce(KeyRole::Batch, &key(2), &key(3), at);
        let stranger = KeyRollover::announce(KeyRole::Batch, &key(8), &key(9), at);
        let authority = KeyRollover::announce(KeyRole::Authority, &key(1), &key(7), at);
        let mut trusted = TrustedKeys::new().with(key(1).public_key());
        let offered = [two_three.clone(), stranger, authority, one_two.clone()];
        let added = trusted.follow(KeyRole::Batch, &offered);
        assert_eq!(added, vec![&one_two, &two_three]);
        assert_eq!(trusted.len(), 3, "the old key stays trusted: history");
        assert!(
            trusted
                .follow(KeyRole::Batch, &[one_two, two_three])
                .is_empty()
        );
        let mut bad = KeyRollover::announce(KeyRole::Batch, &key(1), &key(4), at);
        bad.new_signature = bad.old_signature;
        assert!(
            TrustedKeys::new()
                .with(key(1).public_key())
                .follow(KeyRole::Batch, &[bad])
                .is_empty()
        );
    }

    #[test]
    fn hex_frames_in_json() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Page {
            #[serde(with = "as_hex_frames")]
            rollovers: Vec<KeyRollover>,
        }
        let page = Page {
            rollovers: vec![KeyRollover::announce(
                KeyRole::Authority,
                &key(1),
                &key(2),
                UnixTime(9),
            )],
        };
        let json = serde_json::to_string(&page).unwrap();
        assert!(json.starts_with(r#"{"rollovers":["0109"#), "{json}");
        assert_eq!(serde_json::from_str::<Page>(&json).unwrap(), page);
        assert!(serde_json::from_str::<Page>(r#"{"rollovers":["zz"]}"#).is_err());
        assert!(serde_json::from_str::<Page>(r#"{"rollovers":["0105"]}"#).is_err());
        let binary = postcard::to_allocvec(&page).unwrap();
        assert_eq!(postcard::from_bytes::<Page>(&binary).unwrap(), page);
    }
}
