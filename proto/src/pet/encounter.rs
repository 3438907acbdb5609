//! Encounter tokens: what two phones that heard each other derive from their two keys.
//!
//! # Derivation
//! ```text
//! peer public key: refused unless canonical (bit 255 clear, u < 2^255 − 19)
//! shared     = X25519(own private key, peer public key)    (rejected if all zero)
//! low, high  = the two public keys ordered as byte strings (byte 0 first), low < high
//! PRK        = HKDF-Extract(salt = ENCOUNTER_SALT, ikm = shared ‖ low ‖ high)
//! token_low  = HKDF-Expand(PRK, info = TOKEN_LOW_INFO,  L = 16)
//! token_high = HKDF-Expand(PRK, info = TOKEN_HIGH_INFO, L = 16)
//! ```
//! The phone whose key is `low` has [`Role::Low`]: its own token is `token_low` and its
//! peer's is `token_high`; the other phone has the opposite role. A positive phone publishes
//! its own tokens; every phone looks for its peer tokens in what was published.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::PetError;
use crate::hkdf::hkdf_sha256_expand_each;

use super::ephemeral::EphemeralKeyPair;
use super::types::{EncounterToken, EphemeralPublicKey};

/// HKDF salt for the encounter PRK.
pub const ENCOUNTER_SALT: &[u8] = b"ephemera/pet/v1/salt/encounter";
/// HKDF info label for the token of the phone whose key sorts first.
pub const TOKEN_LOW_INFO: &[u8] = b"ephemera/pet/v1/token-low";
/// HKDF info label for the token of the phone whose key sorts last.
pub const TOKEN_HIGH_INFO: &[u8] = b"ephemera/pet/v1/token-high";

/// Where a phone's own public key sorts among the two keys of an encounter.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Our key sorts first: our own token is `token_low`.
    Low,
    /// Our key sorts last: our own token is `token_high`.
    High,
}

impl Role {
    /// The peer's role in the same encounter.
    pub fn opposite(self) -> Role {
        match self {
            Role::Low => Role::High,
            Role::High => Role::Low,
        }
    }
}

/// The two tokens of one encounter, seen from one phone.
///
/// The other phone derives the same two tokens with the opposite role, so
/// `a.own == b.peer` and `a.peer == b.own`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EncounterTokens {
    /// Our key's position in the encounter.
    pub role: Role,
    /// Our token: publish this if we test positive.
    pub own: EncounterToken,
    /// The peer's token: look for this in published sets.
    pub peer: EncounterToken,
}

/// Derives the tokens of an encounter between our key pair `own` and a heard key `peer`.
///
/// # Errors
/// [`PetError::NonCanonicalKey`] if `peer` is not canonical (bit 255 set, or u ≥ p): X25519
/// would read it as another key's point while the tokens hash its bytes, so the two phones
/// would derive different tokens (and our own key with bit 255 set would pass the same-key
/// check); [`PetError::SameKey`] if `peer` is our own public key (our broadcast echoed
/// back), and [`PetError::NonContributory`] if the shared secret is not contributory: `peer` is a
/// low-order point (u = 0, 1, p − 1, p, p + 1, the two order-8 points, each also with the
/// ignored bit 255 set), which would give a shared secret anyone can compute (all zeros).
///
/// # What this protects, and what not
/// The tokens are pseudorandom to anyone without one of the two private keys: a sniffer that
/// logged both broadcasts cannot compute them, so published tokens match nothing it
/// recorded. If both phones test positive, one publishes `token_low` and the other
/// `token_high`: their uploads share no token, and no one learns that they met.
///
/// This does **not** stop a two-way live relay: an attacker who relays broadcasts between
/// two places in real time (both directions) makes two phones that never met derive the same
/// tokens, a fake encounter that matching cannot tell from a real one. A one-way replay of a
/// recorded broadcast yields nothing, since the replayer cannot complete the exchange.
pub fn encounter_tokens(
    own: &EphemeralKeyPair,
    peer: &EphemeralPublicKey,
) -> Result<EncounterTokens, PetError> {
    if !peer.is_canonical() {
        return Err(PetError::NonCanonicalKey);
    }
    let own_public = own.public();
    let (role, low, high) = match own_public.0.cmp(&peer.0) {
        Ordering::Less => (Role::Low, own_public, *peer),
        Ordering::Greater => (Role::High, *peer, own_public),
        Ordering::Equal => return Err(PetError::SameKey),
    };
    let shared = own.diffie_hellman(peer)?;
    let mut ikm = Zeroizing::new([0u8; 96]);
    ikm[..32].copy_from_slice(&shared[..]);
    ikm[32..64].copy_from_slice(&low.0);
    ikm[64..].copy_from_slice(&high.0);
    // One HKDF-Extract, two HKDF-Expands.
    let mut token_low = [0u8; 16];
    let mut token_high = [0u8; 16];
    hkdf_sha256_expand_each(
        ENCOUNTER_SALT,
        &ikm[..],
        [
            (TOKEN_LOW_INFO, &mut token_low),
            (TOKEN_HIGH_INFO, &mut token_high),
        ],
    );
    let (own_token, peer_token) = match role {
        Role::Low => (token_low, token_high),
        Role::High => (token_high, token_low),
    };
    Ok(EncounterTokens {
        role,
        own: EncounterToken(own_token),
        peer: EncounterToken(peer_token),
    })
}

#[cfg(test)]
mod tests {
    use super::super::DailySecret;
    use super::*;
    use crate::time::IntervalNumber;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn pair(seed: u64, interval: u32) -> EphemeralKeyPair {
        DailySecret::generate(&mut ChaCha20Rng::seed_from_u64(seed))
            .ephemeral_key_pair(IntervalNumber(interval))
    }

    fn hex32(s: &str) -> EphemeralPublicKey {
        let mut key = [0u8; 32];
        hex::decode_to_slice(s, &mut key).expect("test constant is 64 hex digits");
        EphemeralPublicKey(key)
    }

    #[test]
    fn tokens_are_symmetric_between_two_phones() {
        for seed in 0..20 {
            let a = pair(2 * seed, 1000);
            let b = pair(2 * seed + 1, 1000);
            let ta = encounter_tokens(&a, &b.public()).expect("honest keys");
            let tb = encounter_tokens(&b, &a.public()).expect("honest keys");
            assert_eq!(ta.own, tb.peer);
            assert_eq!(ta.peer, tb.own);
            assert_ne!(ta.own, ta.peer);
            assert_eq!(ta.role, tb.role.opposite());
            let a_is_low = a.public() < b.public();
            assert_eq!(ta.role, if a_is_low { Role::Low } else { Role::High });
        }
    }

    #[test]
    fn both_positive_uploads_share_no_token() {
        let a = pair(1, 5000);
        let b = pair(2, 5000);
        let c = pair(3, 5000);
        // a met b and c; b met c too. Everyone tests positive and uploads own tokens.
        let a_up = [
            encounter_tokens(&a, &b.public()).unwrap().own,
            encounter_tokens(&a, &c.public()).unwrap().own,
        ];
        let b_up = [
            encounter_tokens(&b, &a.public()).unwrap().own,
            encounter_tokens(&b, &c.public()).unwrap().own,
        ];
        let c_up = [
            encounter_tokens(&c, &a.public()).unwrap().own,
            encounter_tokens(&c, &b.public()).unwrap().own,
        ];
        let all: Vec<_> = a_up.iter().chain(&b_up).chain(&c_up).collect();
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        // Yet each of them finds each exposure by its peer token.
        let published: Vec<_> = all.into_iter().copied().collect();
        assert!(published.contains(&encounter_tokens(&a, &b.public()).unwrap().peer));
        assert!(published.contains(&encounter_tokens(&c, &b.public()).unwrap().peer));
    }

    #[test]
    fn a_sniffer_that_heard_both_cannot_match_published_tokens() {
        let a = pair(10, 7000);
        let b = pair(11, 7000);
        let published = [
            encounter_tokens(&a, &b.public()).unwrap().own,
            encounter_tokens(&b, &a.public()).unwrap().own,
        ];
        // The sniffer has both public keys and its own key pairs; everything it can derive
        // from what it heard is unrelated to the published tokens.
        for seed in 100..110 {
            let sniffer = pair(seed, 7000);
            for heard in [a.public(), b.public()] {
                let t = encounter_tokens(&sniffer, &heard).unwrap();
                assert!(!published.contains(&t.own) && !published.contains(&t.peer));
            }
        }
        // Nor does any published token contain broadcast bytes.
        for token in published {
            for key in [a.public(), b.public()] {
                assert!(!key.0.windows(4).any(|w| token.0.windows(4).any(|t| t == w)));
            }
        }
    }

    /// The X25519 low-order points as listed by libsodium (after Bernstein's curve25519
    /// page), and the same points with bit 255 set, which RFC 7748 X25519 ignores.
    ///
    /// libsodium's longer list also has 256-bit encodings `u + p` (e.g. `cdeb…b880`); with
    /// bit 255 masked, as RFC 7748 requires, those are the ordinary points `u - 19`, so they
    /// are not low order here and not in this list.
    const LOW_ORDER_POINTS: [&str; 14] = [
        // 0 (order 4) and 1 (order 1)
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        // the two points of order 8
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        // p - 1 (order 2), p (= 0), p + 1 (= 1)
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        // the same with bit 255 set
        "0000000000000000000000000000000000000000000000000000000000000080",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ];

    #[test]
    fn low_order_points_are_rejected() {
        for seed in 0..4 {
            let own = pair(seed, 1);
            for point in LOW_ORDER_POINTS {
                let point = hex32(point);
                // p, p + 1 and every key with bit 255 set are not canonical: refused before
                // the Diffie-Hellman; the canonical ones are refused by it.
                let expected = if point.is_canonical() {
                    PetError::NonContributory
                } else {
                    PetError::NonCanonicalKey
                };
                assert_eq!(encounter_tokens(&own, &point), Err(expected), "{point:?}");
            }
        }
    }

    #[test]
    fn another_spelling_of_a_key_is_refused() {
        let a = pair(40, 77);
        let b = pair(41, 77);
        let honest = encounter_tokens(&a, &b.public()).expect("honest keys");
        // Bit 255 set: X25519 ignores it, so the shared secret is the same, but the token
        // input hashes the bytes: without the check, a derived other tokens than b does.
        let mut flipped = b.public();
        flipped.0[31] |= 0x80;
        assert_eq!(
            encounter_tokens(&a, &flipped),
            Err(PetError::NonCanonicalKey)
        );
        // Our own key with bit 255 set is not "another key" either.
        let mut echoed = a.public();
        echoed.0[31] |= 0x80;
        assert_eq!(
            encounter_tokens(&a, &echoed),
            Err(PetError::NonCanonicalKey)
        );
        // u + p for u = 9 (the base point): bit 255 clear, yet not reduced.
        let base_plus_p = hex32("f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        assert!(!base_plus_p.is_canonical());
        assert_eq!(
            encounter_tokens(&a, &base_plus_p),
            Err(PetError::NonCanonicalKey)
        );
        // The honest key still derives the same tokens as before.
        assert_eq!(encounter_tokens(&a, &b.public()), Ok(honest));
    }

    #[test]
    fn canonical_is_exactly_below_the_field_prime() {
        let p_minus_1 = hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        let p = hex32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        assert!(p_minus_1.is_canonical());
        assert!(!p.is_canonical());
        assert!(EphemeralPublicKey([0; 32]).is_canonical());
        assert!(!EphemeralPublicKey([0xff; 32]).is_canonical());
        for seed in 0..50 {
            assert!(pair(seed, 3).public().is_canonical());
        }
    }

    #[test]
    fn our_own_key_echoed_back_is_rejected() {
        let own = pair(5, 9);
        assert_eq!(
            encounter_tokens(&own, &own.public()),
            Err(PetError::SameKey)
        );
    }

    #[test]
    fn tokens_follow_the_documented_derivation() {
        let a = pair(20, 300);
        let b = pair(21, 300);
        let shared = *a.diffie_hellman(&b.public()).expect("honest keys");
        let (low, high) = if a.public() < b.public() {
            (a.public(), b.public())
        } else {
            (b.public(), a.public())
        };
        let ikm = [&shared[..], &low.0, &high.0].concat();
        // Extract once, expand twice, with `ring` directly.
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, ENCOUNTER_SALT).extract(&ikm);
        let expand = |info: &[u8]| {
            let info = [info];
            let mut out = [0u8; 16];
            prk.expand(&info, ring::hkdf::HKDF_SHA256)
                .and_then(|okm| {
                    let mut full = [0u8; 32];
                    okm.fill(&mut full)?;
                    out.copy_from_slice(&full[..16]);
                    Ok(())
                })
                .expect("valid length");
            out
        };
        // HKDF-Expand's first block does not depend on L, so 16 bytes = first 16 of 32.
        let (t_low, t_high) = (expand(TOKEN_LOW_INFO), expand(TOKEN_HIGH_INFO));
        let t = encounter_tokens(&a, &b.public()).unwrap();
        let (own, peer) = match t.role {
            Role::Low => (t_low, t_high),
            Role::High => (t_high, t_low),
        };
        assert_eq!((t.own.0, t.peer.0), (own, peer));
    }

    #[test]
    fn debug_does_not_print_tokens() {
        let t = encounter_tokens(&pair(30, 1), &pair(31, 1).public()).unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains(&hex::encode(t.own.0)));
        assert!(shown.contains("redacted"));
    }
}
