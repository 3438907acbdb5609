//! The daily secret from which a phone derives one ephemeral X25519 key pair per interval.
//!
//! # Derivation
//! ```text
//! sk(interval) = HKDF-SHA256(salt = EPHEMERAL_KEY_SALT,
//!                            ikm  = daily secret (32 bytes),
//!                            info = EPHEMERAL_KEY_INFO ‖ interval as u32 little-endian,
//!                            L    = 32)
//! pk(interval) = X25519(sk(interval), 9)     (RFC 7748: the scalar is clamped)
//! ```
//!
//! # Why one key per 10-minute interval
//! Keys rotate on the same 10-minute grid as GAEN's `ENIntervalNumber`. Phones rotate their
//! random BLE MAC address every 10–20 minutes; the payload must change together with the MAC,
//! or a receiver could link two MAC addresses through an unchanged payload (and an unchanged
//! MAC through a changed payload). Using GAEN's grid lets a phone rotate both at once with the
//! machinery it already has, and keeps a stable key short enough that it links only a few
//! minutes of one person's movements.
//!
//! # Why derive instead of store
//! A phone must be able to compute the tokens of past encounters (it only stores the peer's
//! public key and the interval), so it needs the private key of each past interval. Deriving
//! them from one daily secret means no private key is ever stored: they are re-derived while
//! the daily secret is kept, and all of a day's keys are forgotten at once when the daily
//! secret is deleted after the retention period.

use std::fmt;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::hkdf::hkdf_sha256;
use crate::time::IntervalNumber;

use super::ephemeral::EphemeralKeyPair;

/// HKDF salt for deriving an interval's X25519 private key from the daily secret.
pub const EPHEMERAL_KEY_SALT: &[u8] = b"ephemera/pet/v1/salt/ephemeral-key";
/// HKDF info label for an interval's X25519 private key; the interval (u32 LE) follows it.
pub const EPHEMERAL_KEY_INFO: &[u8] = b"ephemera/pet/v1/ephemeral-key";

/// A phone's secret for one UTC day: 32 random bytes, the seed of that day's ephemeral keys.
///
/// # Privacy
/// Anyone holding it can compute every public key the phone broadcast that day, so it never
/// leaves the phone (a positive phone uploads encounter tokens, never this). `Debug` does not
/// print it, equality is constant-time, and the bytes are zeroed when it is dropped.
#[derive(Clone)]
pub struct DailySecret([u8; 32]);

impl DailySecret {
    /// Draws a fresh daily secret from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        DailySecret(bytes)
    }

    /// Restores a daily secret from its bytes (as kept in the phone's storage).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DailySecret(bytes)
    }

    /// The raw secret bytes, for the phone's own storage only.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The X25519 key pair this phone broadcasts during `interval`.
    ///
    /// Deterministic: the same secret and interval always give the same key pair.
    pub fn ephemeral_key_pair(&self, interval: IntervalNumber) -> EphemeralKeyPair {
        let mut okm = Zeroizing::new([0u8; 32]);
        hkdf_sha256(
            EPHEMERAL_KEY_SALT,
            &self.0,
            &[EPHEMERAL_KEY_INFO, &interval.0.to_le_bytes()],
            &mut okm[..],
        );
        EphemeralKeyPair::new(interval, StaticSecret::from(*okm))
    }
}

impl PartialEq for DailySecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for DailySecret {}

impl fmt::Debug for DailySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DailySecret(<redacted>)")
    }
}

impl Drop for DailySecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for DailySecret {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn different_intervals_give_different_keys() {
        let secret = DailySecret::from_bytes([7; 32]);
        let day = IntervalNumber(2_655_936);
        let keys: Vec<_> = (0..144)
            .map(|i| secret.ephemeral_key_pair(day.plus(i)).public())
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn different_secrets_give_different_keys() {
        let interval = IntervalNumber(2_655_936);
        let a = DailySecret::from_bytes([1; 32]).ephemeral_key_pair(interval);
        let b = DailySecret::from_bytes([2; 32]).ephemeral_key_pair(interval);
        assert_ne!(a.public(), b.public());
    }

    #[test]
    fn deterministic_from_a_seeded_rng() {
        let interval = IntervalNumber(2_655_936);
        let a = DailySecret::generate(&mut ChaCha20Rng::seed_from_u64(42));
        let b = DailySecret::generate(&mut ChaCha20Rng::seed_from_u64(42));
        let c = DailySecret::generate(&mut ChaCha20Rng::seed_from_u64(43));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a.ephemeral_key_pair(interval).public(),
            b.ephemeral_key_pair(interval).public()
        );
        // Re-deriving a past interval's key gives the same key again.
        assert_eq!(
            a.ephemeral_key_pair(interval).public(),
            DailySecret::from_bytes(*a.as_bytes())
                .ephemeral_key_pair(interval)
                .public()
        );
    }

    #[test]
    fn public_key_is_x25519_of_the_hkdf_output() {
        let secret = DailySecret::from_bytes([9; 32]);
        let interval = IntervalNumber(123_456);
        let mut sk = [0u8; 32];
        hkdf_sha256(
            EPHEMERAL_KEY_SALT,
            &[9; 32],
            &[EPHEMERAL_KEY_INFO, &123_456u32.to_le_bytes()],
            &mut sk,
        );
        let expected = x25519_dalek::x25519(sk, x25519_dalek::X25519_BASEPOINT_BYTES);
        assert_eq!(secret.ephemeral_key_pair(interval).public().0, expected);
    }

    #[test]
    fn debug_is_redacted() {
        let secret = DailySecret::from_bytes([0xab; 32]);
        let shown = format!("{secret:?}");
        assert_eq!(shown, "DailySecret(<redacted>)");
        assert!(!shown.contains("ab"));
        assert!(!shown.contains("171"));
    }
}
