//! One interval's X25519 key pair: the public half is broadcast, the private half stays put.

use std::fmt;

use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::error::PetError;
use crate::time::IntervalNumber;

use super::types::EphemeralPublicKey;

/// The X25519 key pair a phone uses during one 10-minute interval.
///
/// Made by [`DailySecret::ephemeral_key_pair`](super::DailySecret::ephemeral_key_pair). The
/// private key is zeroed on drop (x25519-dalek `zeroize`) and never printed: `Debug` shows
/// only the interval and the public key, which is broadcast anyway.
///
/// With the `aws-lc-x25519` feature the X25519 operations run in AWS-LC (the same function,
/// byte for byte); the pair then also holds AWS-LC's copy of the private key, which AWS-LC
/// zeroes when it frees it.
pub struct EphemeralKeyPair {
    interval: IntervalNumber,
    /// With AWS-LC only AWS-LC's copy is needed (tests keep this one to cross-check).
    #[cfg(any(test, not(feature = "aws-lc-x25519")))]
    secret: StaticSecret,
    public: EphemeralPublicKey,
    #[cfg(feature = "aws-lc-x25519")]
    lc: aws_lc_rs::agreement::PrivateKey,
}

impl EphemeralKeyPair {
    /// Wraps a private key, computing its public key (`X25519(secret, 9)`).
    #[cfg(not(feature = "aws-lc-x25519"))]
    pub(crate) fn new(interval: IntervalNumber, secret: StaticSecret) -> Self {
        let public = EphemeralPublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        EphemeralKeyPair {
            interval,
            secret,
            public,
        }
    }

    /// Wraps a private key, computing its public key (`X25519(secret, 9)`) in AWS-LC.
    #[cfg(feature = "aws-lc-x25519")]
    pub(crate) fn new(interval: IntervalNumber, secret: StaticSecret) -> Self {
        use aws_lc_rs::agreement::{PrivateKey, X25519};
        // A 32-byte X25519 private key is always accepted (AWS-LC clamps it when used), and
        // computing the public key of a valid private key cannot fail.
        let lc = PrivateKey::from_private_key(&X25519, secret.as_bytes())
            .expect("any 32 bytes are an X25519 private key");
        let computed = lc
            .compute_public_key()
            .expect("X25519 public key of a valid private key");
        let mut public = [0u8; 32];
        public.copy_from_slice(computed.as_ref());
        EphemeralKeyPair {
            interval,
            #[cfg(test)]
            secret,
            public: EphemeralPublicKey(public),
            lc,
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

    /// X25519 with `peer` (RFC 7748: the high bit of `peer` ignored, non-canonical values
    /// reduced).
    ///
    /// # Errors
    /// [`PetError::NonContributory`] when the result is all zeros (a low-order `peer`).
    #[cfg(not(feature = "aws-lc-x25519"))]
    pub(crate) fn diffie_hellman(
        &self,
        peer: &EphemeralPublicKey,
    ) -> Result<Zeroizing<[u8; 32]>, PetError> {
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return Err(PetError::NonContributory);
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }

    /// X25519 with `peer` in AWS-LC (RFC 7748: the high bit of `peer` ignored,
    /// non-canonical values reduced).
    ///
    /// # Errors
    /// [`PetError::NonContributory`] when the result is all zeros (a low-order `peer`; AWS-LC
    /// refuses to return it).
    #[cfg(feature = "aws-lc-x25519")]
    pub(crate) fn diffie_hellman(
        &self,
        peer: &EphemeralPublicKey,
    ) -> Result<Zeroizing<[u8; 32]>, PetError> {
        use aws_lc_rs::agreement::{UnparsedPublicKey, X25519, agree};
        let mut shared = Zeroizing::new([0u8; 32]);
        agree(
            &self.lc,
            UnparsedPublicKey::new(&X25519, &peer.0),
            PetError::NonContributory,
            |bytes| {
                shared.copy_from_slice(bytes);
                Ok(())
            },
        )?;
        Ok(shared)
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

    /// Whichever backend is built, the pair's X25519 is RFC 7748's, as x25519-dalek computes
    /// it: random keys, keys with the ignored high bit set, non-canonical values, low-order
    /// points.
    #[test]
    fn diffie_hellman_is_rfc7748_x25519() {
        use rand_chacha::ChaCha20Rng;
        use rand_core::{Rng, SeedableRng};
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut peers: Vec<[u8; 32]> = Vec::new();
        for _ in 0..32 {
            let mut k = [0u8; 32];
            rng.fill_bytes(&mut k);
            peers.push(k);
            let mut on_curve = x25519_dalek::x25519(k, x25519_dalek::X25519_BASEPOINT_BYTES);
            peers.push(on_curve);
            on_curve[31] |= 0x80;
            peers.push(on_curve);
        }
        // p, p + 1, 2^255 - 1: non-canonical encodings.
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        peers.push(p);
        p[0] = 0xee;
        peers.push(p);
        peers.push([0xff; 32]);
        peers.push([0; 32]);
        let mut one = [0; 32];
        one[0] = 1;
        peers.push(one);
        for (i, peer) in peers.iter().enumerate() {
            let pair = DailySecret::from_bytes([i as u8; 32]).ephemeral_key_pair(IntervalNumber(9));
            let expected = x25519_dalek::x25519(pair.secret.to_bytes(), *peer);
            match pair.diffie_hellman(&EphemeralPublicKey(*peer)) {
                Ok(shared) => assert_eq!(*shared, expected, "peer {}", hex::encode(peer)),
                Err(e) => {
                    assert_eq!(e, PetError::NonContributory);
                    assert_eq!(expected, [0; 32], "peer {}", hex::encode(peer));
                }
            }
        }
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
