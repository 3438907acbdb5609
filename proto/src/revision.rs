//! Revision keys: only the phone that uploaded a report can revise or revoke it
//! (`docs/PROTOCOL.md` §5.4).
//!
//! The phone draws a [`RevisionSecret`] for each first upload and keeps it with the report.
//! The upload carries its public half, the [`RevisionKey`]; the node keeps the key beside
//! the certificate's single-use mark and nothing else of it. A revision names the original
//! certificate and carries the secret's Ed25519 signature over
//!
//! ```text
//! "ephemera/revision/v2" ‖ original certificate id (16) ‖ SHA-256(wire frame of the revision's certificate)
//! ```
//!
//! so holding the upload's bytes (a federation peer, a proxy) grants nothing, and a revision
//! seen in passing cannot be turned into another one: the signature covers the revision's
//! own certificate, which fixes its report type and, through the report HMAC, its entries.
//!
//! The report HMAC the authority certifies covers the key too ([`HmacBinding`],
//! `docs/PROTOCOL.md` §4.2): a certificate binds the one key that may revise its report, so
//! whoever relays or replays an upload cannot attach a key of their own, and every node that
//! holds the report (nodes gossip the key with it, [`Binding`]) checks revisions alike.

use std::fmt;

use rand_core::CryptoRng;
use ring::digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::auth::{CertificateId, SignedCertificate};
use crate::signing::{Ed25519PublicKey, Ed25519SigningKey, Signature};
use crate::wire;

/// Domain label of the signed revision statement.
const LABEL: &[u8] = b"ephemera/revision/v2";
/// Domain label of the signed statement of a revision authorised by a blind token.
const TOKEN_REVISION_LABEL: &[u8] = b"ephemera/token-revision/v2";

/// The secret a phone keeps to revise its upload: an Ed25519 key, stored as its seed.
///
/// `Debug` never shows it; serialized (for the phone's own store) as the 32-byte seed.
pub struct RevisionSecret(Ed25519SigningKey);

impl RevisionSecret {
    /// Draws a fresh secret from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        RevisionSecret(Ed25519SigningKey::generate(rng))
    }

    /// Rebuilds a secret from its seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        RevisionSecret(Ed25519SigningKey::from_seed(seed))
    }

    /// The seed, for storing the secret. Handle it as a secret.
    pub fn seed(&self) -> &[u8; 32] {
        self.0.seed()
    }

    /// The public half, carried in the upload.
    pub fn key(&self) -> RevisionKey {
        RevisionKey(self.0.public_key())
    }

    /// Signs the revision whose certificate is `revision` of the upload first made with
    /// certificate `original`.
    pub fn sign(&self, original: &CertificateId, revision: &SignedCertificate) -> Signature {
        self.0.sign(LABEL, &statement(original, revision))
    }

    /// Signs a revision authorised by a blind token (`docs/PROTOCOL.md` §4.4): the phone
    /// never sees the certificate its node makes for it, so it signs the id that certificate
    /// will carry, `revision` (the new token's [`crate::token::TokenId`]), over
    /// `"ephemera/token-revision/v2" ‖ original (16) ‖ revision (16)`.
    pub fn sign_token_revision(
        &self,
        original: &CertificateId,
        revision: &CertificateId,
    ) -> Signature {
        self.0
            .sign(TOKEN_REVISION_LABEL, &token_statement(original, revision))
    }
}

impl Clone for RevisionSecret {
    fn clone(&self) -> Self {
        RevisionSecret::from_seed(self.seed())
    }
}

impl fmt::Debug for RevisionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RevisionSecret(<redacted>)")
    }
}

impl PartialEq for RevisionSecret {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for RevisionSecret {}

impl Serialize for RevisionSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.seed().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RevisionSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seed = zeroize::Zeroizing::new(<[u8; 32]>::deserialize(deserializer)?);
        Ok(RevisionSecret::from_seed(&seed))
    }
}

/// The public half of a [`RevisionSecret`]: what an upload commits to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RevisionKey(pub Ed25519PublicKey);

impl RevisionKey {
    /// Whether `signature` is this key's over the revision with certificate `revision` of
    /// the upload made with certificate `original`. (A public-key check: nothing secret is
    /// compared, so no timing leaks a secret.)
    pub fn verify(
        &self,
        original: &CertificateId,
        revision: &SignedCertificate,
        signature: &Signature,
    ) -> bool {
        self.0
            .verify(LABEL, &statement(original, revision), signature)
    }

    /// Whether `signature` is this key's [`RevisionSecret::sign_token_revision`] of the
    /// revision whose certificate id is `revision`.
    pub fn verify_token_revision(
        &self,
        original: &CertificateId,
        revision: &CertificateId,
        signature: &Signature,
    ) -> bool {
        self.0.verify(
            TOKEN_REVISION_LABEL,
            &token_statement(original, revision),
            signature,
        )
    }
}

/// What a report HMAC covers besides the entries (`docs/PROTOCOL.md` §4.2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum HmacBinding {
    /// Version 1: the entries only.
    Unbound,
    /// A version 2 first upload that only the secret of this key may revise.
    Upload(RevisionKey),
    /// A version 2 revision, signed with the secret of this key (the key its original
    /// upload carried).
    Revision(RevisionKey),
}

/// How an upload is bound to a revision key, with the proof a revision carries: what a
/// node keeps beside an upload and relays with it (`docs/PROTOCOL.md` §5.4, §9.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Binding {
    /// A version 1 upload or revision: no key.
    Unbound,
    /// A first upload; its certificate's HMAC covers this key.
    Upload(RevisionKey),
    /// A revision of the upload made with certificate `revises`; its certificate's HMAC
    /// covers `key`, and `signature` is `key`'s over `revises` and that certificate.
    Revision {
        /// The key of the original upload, whose secret signed this revision.
        key: RevisionKey,
        /// The certificate id of the upload it revises.
        revises: CertificateId,
        /// [`RevisionSecret::sign`] over `revises` and the revision's certificate.
        signature: Signature,
    },
    /// A revision authorised by a blind token: as [`Binding::Revision`], but `signature`
    /// is [`RevisionSecret::sign_token_revision`] over `revises` and the revision's
    /// certificate id (its token's id), which the phone knows before the node certifies it.
    TokenRevision {
        /// The key of the original upload, whose secret signed this revision.
        key: RevisionKey,
        /// The certificate id of the upload it revises.
        revises: CertificateId,
        /// [`RevisionSecret::sign_token_revision`] over `revises` and the revision's
        /// certificate id.
        signature: Signature,
    },
}

impl Binding {
    /// What the report HMAC of an upload so bound covers besides its entries.
    pub fn hmac(&self) -> HmacBinding {
        match self {
            Binding::Unbound => HmacBinding::Unbound,
            Binding::Upload(key) => HmacBinding::Upload(*key),
            Binding::Revision { key, .. } | Binding::TokenRevision { key, .. } => {
                HmacBinding::Revision(*key)
            }
        }
    }

    /// The certificate id of the upload a revision revises (`None`: no revision).
    pub fn revises(&self) -> Option<CertificateId> {
        match self {
            Binding::Unbound | Binding::Upload(_) => None,
            Binding::Revision { revises, .. } | Binding::TokenRevision { revises, .. } => {
                Some(*revises)
            }
        }
    }

    /// The revision key: the one a first upload may be revised with, or the one that
    /// signed a revision.
    pub fn key(&self) -> Option<RevisionKey> {
        match self {
            Binding::Unbound => None,
            Binding::Upload(key)
            | Binding::Revision { key, .. }
            | Binding::TokenRevision { key, .. } => Some(*key),
        }
    }

    /// Whether a revision's signature verifies over its certificate `certificate` (true
    /// for anything that is not a revision: there is no signature to check).
    pub fn signature_holds(&self, certificate: &SignedCertificate) -> bool {
        match self {
            Binding::Unbound | Binding::Upload(_) => true,
            Binding::Revision {
                key,
                revises,
                signature,
            } => key.verify(revises, certificate, signature),
            Binding::TokenRevision {
                key,
                revises,
                signature,
            } => key.verify_token_revision(revises, &certificate.certificate.id, signature),
        }
    }
}

/// `original certificate id ‖ revision certificate id`.
fn token_statement(original: &CertificateId, revision: &CertificateId) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&original.0);
    out[16..].copy_from_slice(&revision.0);
    out
}

/// `original certificate id ‖ SHA-256(wire frame of the revision's certificate)`.
fn statement(original: &CertificateId, revision: &SignedCertificate) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 32);
    out.extend_from_slice(&original.0);
    out.extend_from_slice(digest::digest(&digest::SHA256, &wire::encode(revision)).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::auth::{AuthoritySigningKey, CertificateRequest, ReportHmac};
    use crate::report::ReportType;
    use crate::time::UnixTime;

    fn certificate(rng: &mut ChaCha20Rng, test_type: ReportType) -> SignedCertificate {
        let authority = AuthoritySigningKey::from_seed(&[3; 32]);
        let request = CertificateRequest {
            report_hmac: ReportHmac([5; 32]),
            test_type,
            symptom_onset: None,
        };
        authority.issue(&request, UnixTime(1_700_000_000), 3600, rng)
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_original_and_revision() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let secret = RevisionSecret::generate(&mut rng);
        let original = CertificateId([1; 16]);
        let revision = certificate(&mut rng, ReportType::ConfirmedTest);
        let signature = secret.sign(&original, &revision);
        let key = secret.key();
        assert!(key.verify(&original, &revision, &signature));
        // Another original, another revision certificate, another key: refused.
        assert!(!key.verify(&CertificateId([2; 16]), &revision, &signature));
        let other = certificate(&mut rng, ReportType::Revoked);
        assert!(!key.verify(&original, &other, &signature));
        let stranger = RevisionSecret::generate(&mut rng).key();
        assert!(!stranger.verify(&original, &revision, &signature));
        let mut altered = signature;
        altered.0[0] ^= 1;
        assert!(!key.verify(&original, &revision, &altered));
    }

    #[test]
    fn the_secret_round_trips_and_never_shows() {
        let secret = RevisionSecret::from_seed(&[0x42; 32]);
        let bytes = postcard::to_allocvec(&secret).unwrap();
        assert_eq!(bytes, [0x42; 32]);
        let back: RevisionSecret = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.key(), secret.key());
        assert_eq!(secret.clone(), secret);
        assert!(!format!("{secret:?}").contains("42"));
    }
}
