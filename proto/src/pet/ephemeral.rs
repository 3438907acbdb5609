//! One interval's X25519 key pair: the public half is broadcast, the private half stays put.

use std::fmt;

use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};

use crate::time::IntervalNumber;

use super::types::EphemeralPublicKey;

/// The X25519 key pair a phone uses during one 10-minute interval.
///
/// Made by [`DailySecret::ephemeral_key_pair`](super::DailySecret::ephemeral_key_pair). The
/// private key is zeroed on drop (x25519-dalek `zeroize`) and never printed: `Debug` shows
/// only the interval and the public key, which is broadcast anyway.
pub struct EphemeralKeyPair {
    interval: IntervalNumber,
    secret: StaticSecret,
    public: EphemeralPublicKey,
}

impl EphemeralKeyPair {
    /// Wraps a private key, computing its public key (`X25519(secret, 9)`).
    pub(crate) fn new(interval: IntervalNumber, secret: StaticSecret) -> Self {
        let public = EphemeralPublicKey(PublicKey::from(&secret).to_bytes());
        EphemeralKeyPair {
            interval,
            secret,
            public,
        }
    }

    /// The public key to broadcast during this pair's interval.
    pub fn public(&self) -> EphemeralPublicKey {
        self.public
    }

    /// The interval this key pair belongs to.
    pub fn interval(&self) -> IntervalNumber {
        self.interval
    }

    /// Raw X25519 with `peer`; callers must check `was_contributory` before using the result.
    pub(crate) fn diffie_hellman(&self, peer: &EphemeralPublicKey) -> SharedSecret {
        self.secret.diffie_hellman(&PublicKey::from(peer.0))
    }
}

impl fmt::Debug for EphemeralKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralKeyPair")
            .field("interval", &self.interval)
            .field("public", &self.public)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

impl EphemeralPublicKey {
    /// The raw 32 bytes (the Montgomery u-coordinate, little-endian).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for EphemeralPublicKey {
    fn from(bytes: [u8; 32]) -> Self {
        EphemeralPublicKey(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::DailySecret;
    use super::*;

    #[test]
    fn debug_never_prints_the_private_key() {
        let pair = DailySecret::from_bytes([3; 32]).ephemeral_key_pair(IntervalNumber(77));
        let secret_hex = hex::encode(pair.secret.as_bytes());
        let secret_dec = format!("{:?}", pair.secret.as_bytes());
        let shown = format!("{pair:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&secret_hex));
        assert!(!shown.contains(&secret_dec[1..secret_dec.len() - 1]));
        let shown_alt = format!("{pair:#?}");
        assert!(!shown_alt.contains(&secret_hex));
    }

    #[test]
    fn public_matches_the_private_key() {
        let pair = DailySecret::from_bytes([4; 32]).ephemeral_key_pair(IntervalNumber(5));
        assert_eq!(pair.interval(), IntervalNumber(5));
        assert_eq!(
            pair.public().0,
            x25519_dalek::x25519(pair.secret.to_bytes(), x25519_dalek::X25519_BASEPOINT_BYTES)
        );
    }
}
