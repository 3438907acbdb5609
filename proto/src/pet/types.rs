//! Value types shared by the `pet` modules.

use serde::{Deserialize, Serialize};

/// An ephemeral X25519 public key as broadcast (32 bytes, Montgomery u-coordinate).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EphemeralPublicKey(pub [u8; 32]);

/// The field prime p = 2^255 − 19, little-endian.
const FIELD_PRIME: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

impl EphemeralPublicKey {
    /// Whether these are the only bytes of this point: bit 255 clear and u < p.
    ///
    /// X25519 ignores bit 255 and reduces u modulo p, so up to four byte strings name the
    /// same point; the token derivation hashes the bytes, so two phones that saw different
    /// spellings of one key would derive different tokens. Honest phones broadcast
    /// `X25519(sk, 9)`, which is always canonical.
    pub fn is_canonical(&self) -> bool {
        // Compare with p from the most significant byte down; bit 255 set makes byte 31
        // exceed p's 0x7f.
        for (byte, prime) in self.0.iter().zip(FIELD_PRIME.iter()).rev() {
            if byte != prime {
                return byte < prime;
            }
        }
        false
    }
}

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
