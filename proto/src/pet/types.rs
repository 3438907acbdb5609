//! Value types shared by the `pet` modules.

use serde::{Deserialize, Serialize};

/// An ephemeral X25519 public key as broadcast (32 bytes, Montgomery u-coordinate).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EphemeralPublicKey(pub [u8; 32]);

/// A 16-byte token derived from one encounter for one role.
///
/// A positive phone publishes its own-role tokens; a phone that met it holds the same token
/// as its peer-role token. `Debug` shows no bytes: tokens never go into logs.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EncounterToken(pub [u8; 16]);

impl std::fmt::Debug for EncounterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncounterToken(<redacted>)")
    }
}
