//! Hourly identities, exactly as CrowdNotifier v3 derives them from the entry payload
//! (techspec `basic.rst`, "Computing Identities and Keys").
//!
//! ```text
//! nonce_preid ‖ nonce_timekey ‖ notification_key = HKDF-SHA256(ikm = payload, salt = "", info = "CrowdNotifier_v3", 96)
//! preid   = SHA-256("CN-PREID" ‖ payload ‖ nonce_preid)
//! timekey = SHA-256("CN-TIMEKEY" ‖ u32be(length) ‖ u64be(start) ‖ nonce_timekey)
//! id      = SHA-256("CN-ID" ‖ preid ‖ u32be(length) ‖ u64be(start) ‖ timekey)
//! ```
//!
//! None of this touches the curve, so CrowdNotifier's published vectors hold here too
//! (`proto/tests/venue_vectors.rs`). The payload is Ephemera's entry code (`EntryCode`),
//! whose 32-byte random seed gives the input its entropy.

use std::fmt;

use ring::digest;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::hkdf::hkdf_sha256;

/// HKDF `info` of the payload nonces (CrowdNotifier's, kept to match its vectors).
pub const NONCES_INFO: &[u8] = b"CrowdNotifier_v3";
/// Prefix of the pre-identity hash.
pub const PREID_LABEL: &[u8] = b"CN-PREID";
/// Prefix of the hourly time key hash.
pub const TIMEKEY_LABEL: &[u8] = b"CN-TIMEKEY";
/// Prefix of the hourly identity hash.
pub const ID_LABEL: &[u8] = b"CN-ID";
/// Seconds in one venue hour: the length of the interval an identity covers.
pub const VENUE_HOUR_SECONDS: u32 = 3600;

/// The three values HKDF derives from an entry payload.
///
/// `Debug` never shows them: with the payload they identify the venue, and the
/// notification key opens the authority's notices.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PayloadSecrets {
    /// Input of the pre-identity.
    pub nonce_preid: [u8; 32],
    /// Input of every hourly time key.
    pub nonce_timekey: [u8; 32],
    /// The key of the authority's notices for this venue, carried inside each check-in.
    pub notification_key: [u8; 32],
}

impl fmt::Debug for PayloadSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PayloadSecrets(<redacted>)")
    }
}

impl PayloadSecrets {
    /// HKDF-SHA256(ikm = `payload`, salt = empty, info = [`NONCES_INFO`], 96 bytes), split
    /// in three.
    pub fn derive(payload: &[u8]) -> Self {
        let mut okm = zeroize::Zeroizing::new([0u8; 96]);
        hkdf_sha256(&[], payload, &[NONCES_INFO], okm.as_mut());
        let mut secrets = PayloadSecrets {
            nonce_preid: [0; 32],
            nonce_timekey: [0; 32],
            notification_key: [0; 32],
        };
        secrets.nonce_preid.copy_from_slice(&okm[..32]);
        secrets.nonce_timekey.copy_from_slice(&okm[32..64]);
        secrets.notification_key.copy_from_slice(&okm[64..]);
        secrets
    }
}

/// A venue's hourly identity: the string the IBE encrypts to and derives keys for.
///
/// Public once its trace key is published; until then only holders of the entry payload
/// can compute it.
#[derive(Copy, Clone, Debug)]
pub struct Identity(pub [u8; 32]);

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Identity {}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// SHA-256([`PREID_LABEL`] ‖ `payload` ‖ `nonce_preid`).
pub fn pre_identity(payload: &[u8], secrets: &PayloadSecrets) -> [u8; 32] {
    sha256(&[PREID_LABEL, payload, &secrets.nonce_preid])
}

/// SHA-256([`TIMEKEY_LABEL`] ‖ u32be(`length`) ‖ u64be(`start`) ‖ `nonce_timekey`).
pub fn time_key(secrets: &PayloadSecrets, start: u64, length: u32) -> [u8; 32] {
    sha256(&[
        TIMEKEY_LABEL,
        &length.to_be_bytes(),
        &start.to_be_bytes(),
        &secrets.nonce_timekey,
    ])
}

/// The identity of the interval of `length` seconds starting at unix second `start`.
pub fn identity_from_parts(
    pre_identity: &[u8; 32],
    time_key: &[u8; 32],
    start: u64,
    length: u32,
) -> Identity {
    Identity(sha256(&[
        ID_LABEL,
        pre_identity,
        &length.to_be_bytes(),
        &start.to_be_bytes(),
        time_key,
    ]))
}

/// The identity of `payload`'s interval of `length` seconds starting at unix second
/// `start` (CrowdNotifier's `generateIdentity`).
pub fn identity(payload: &[u8], start: u64, length: u32) -> Identity {
    let secrets = PayloadSecrets::derive(payload);
    let preid = pre_identity(payload, &secrets);
    identity_from_parts(&preid, &time_key(&secrets, start, length), start, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_all_differ() {
        let labels = [NONCES_INFO, PREID_LABEL, TIMEKEY_LABEL, ID_LABEL];
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn identities_differ_by_hour_length_and_payload() {
        let a = identity(b"payload a", 3600, 3600);
        assert_eq!(a, identity(b"payload a", 3600, 3600));
        assert_ne!(a, identity(b"payload a", 7200, 3600));
        assert_ne!(a, identity(b"payload a", 3600, 1800));
        assert_ne!(a, identity(b"payload b", 3600, 3600));
    }

    #[test]
    fn debug_redacts_the_secrets() {
        let secrets = PayloadSecrets::derive(b"payload");
        let shown = format!("{secrets:?}");
        assert!(!shown.contains(&hex::encode(secrets.notification_key)));
        assert!(shown.contains("redacted"));
    }
}
