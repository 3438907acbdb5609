//! Authority certificates: an Ed25519 signature over a report's HMAC and test facts.
//!
//! A certificate names no one. It holds the report HMAC, test type, optional symptom onset,
//! validity times, the authority's key id and a random unique id that nodes remember so the
//! certificate is used once.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::auth::hmac::{ReportHmac, ReportHmacKey};
use crate::error::CertificateError;
use crate::report::{ReportContents, ReportType};
use crate::revision::HmacBinding;
use crate::signing::{Ed25519PublicKey, Ed25519SigningKey, KeyId, Signature, TrustedKeys};
use crate::time::{DayNumber, UnixTime};
use crate::wire::{self, WireMessage};

/// Domain label of certificate signatures.
const CERTIFICATE_LABEL: &[u8] = b"ephemera/certificate/v1";
/// Version of the certificate layout.
const CERTIFICATE_VERSION: u8 = 1;
/// Clock skew tolerated between an authority and a verifier, in seconds.
const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
/// Certificates carry whole hours: the verify second, kept in every stored and relayed
/// upload, would date a phone's verify request to whoever also logs (address, time).
const CERTIFICATE_TIME_UNIT_SECONDS: u64 = 3600;

/// The random unique id of a certificate; nodes accept each id once.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CertificateId(pub [u8; 16]);

/// What an authority certifies: the phone's report HMAC and what the code says of the test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRequest {
    /// HMAC the phone computed over its report.
    pub report_hmac: ReportHmac,
    /// Test type recorded with the code.
    pub test_type: ReportType,
    /// Symptom onset recorded with the code, if any.
    pub symptom_onset: Option<DayNumber>,
}

/// The signed facts of a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Layout version (1).
    pub version: u8,
    /// Unique id, for single use.
    pub id: CertificateId,
    /// Key id of the signing authority.
    pub authority: KeyId,
    /// HMAC of the certified report.
    pub report_hmac: ReportHmac,
    /// How the positive was established.
    pub test_type: ReportType,
    /// Day symptoms began, if known.
    pub symptom_onset: Option<DayNumber>,
    /// The start of the hour it was signed in (certificates carry whole hours).
    pub issued_at: UnixTime,
    /// The last moment a node accepts it for a first upload: the signing time plus the
    /// lifetime, rounded up to a whole hour.
    pub expires_at: UnixTime,
}

/// A certificate with its authority's Ed25519 signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCertificate {
    /// The signed facts.
    pub certificate: Certificate,
    /// Signature over `"ephemera/certificate/v1" ‖ postcard(certificate)`.
    pub signature: Signature,
}

impl WireMessage for SignedCertificate {
    const KIND: u8 = wire::kind::SIGNED_CERTIFICATE;
    const MAX_SIZE: usize = 512;
}

/// How expiry is judged when a certificate is verified.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExpiryPolicy {
    /// A phone's upload to a node: the certificate must not have expired.
    FirstUpload,
    /// A report relayed by another node: the first node already checked expiry, which
    /// cannot be re-proved later, so only the retention period bounds the certificate's
    /// age (plus single use, which every node enforces itself).
    Relayed {
        /// Days a node keeps reports.
        retention_days: u32,
    },
}

impl Certificate {
    fn signing_input(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encoding into a Vec")
    }
}

impl SignedCertificate {
    /// Verifies the signature against `trusted` and the validity times at `now`.
    ///
    /// # Errors
    /// [`CertificateError::UntrustedAuthority`], [`CertificateError::BadSignature`],
    /// [`CertificateError::Expired`] or [`CertificateError::NotYetValid`].
    pub fn verify(
        &self,
        trusted: &TrustedAuthorities,
        now: UnixTime,
        policy: ExpiryPolicy,
    ) -> Result<&Certificate, CertificateError> {
        self.signer(trusted)?;
        self.check_times(now, policy)?;
        Ok(&self.certificate)
    }

    /// Checks the validity times at `now` alone, as [`Self::verify`] does after the
    /// signature (a phone that pins no authority key checks these before uploading).
    ///
    /// # Errors
    /// [`CertificateError::Expired`] or [`CertificateError::NotYetValid`].
    pub fn check_times(&self, now: UnixTime, policy: ExpiryPolicy) -> Result<(), CertificateError> {
        let cert = &self.certificate;
        if cert.issued_at > now.plus_seconds(MAX_CLOCK_SKEW_SECONDS) {
            return Err(CertificateError::NotYetValid);
        }
        let deadline = match policy {
            ExpiryPolicy::FirstUpload => cert.expires_at,
            ExpiryPolicy::Relayed { retention_days } => cert
                .issued_at
                .plus_seconds(u64::from(retention_days) * crate::time::SECONDS_PER_DAY),
        };
        if now > deadline {
            return Err(CertificateError::Expired {
                expired_at: deadline.0,
                now: now.0,
            });
        }
        Ok(())
    }

    /// The trusted key that signed this certificate: the one among the keys with its
    /// authority's id (usually one; every one of them is tried) whose signature it carries.
    /// Times are not checked.
    ///
    /// # Errors
    /// [`CertificateError::UntrustedAuthority`] or [`CertificateError::BadSignature`].
    pub fn signer<'t>(
        &self,
        trusted: &'t TrustedAuthorities,
    ) -> Result<&'t Ed25519PublicKey, CertificateError> {
        let cert = &self.certificate;
        if !trusted.knows_id(&cert.authority) {
            return Err(CertificateError::UntrustedAuthority);
        }
        if cert.version != CERTIFICATE_VERSION {
            return Err(CertificateError::BadSignature);
        }
        trusted
            .signer(
                &cert.authority,
                CERTIFICATE_LABEL,
                &cert.signing_input(),
                &self.signature,
            )
            .map_err(|_| CertificateError::BadSignature)
    }

    /// Checks that `contents` with `binding`, authenticated with `hmac_key`, is the certified
    /// report.
    ///
    /// # Errors
    /// [`CertificateError::HmacMismatch`].
    pub fn check_report(
        &self,
        contents: &ReportContents,
        hmac_key: &ReportHmacKey,
        binding: HmacBinding,
    ) -> Result<(), CertificateError> {
        if hmac_key.authenticate_bound(contents, binding) == self.certificate.report_hmac {
            Ok(())
        } else {
            Err(CertificateError::HmacMismatch)
        }
    }
}

fn whole_hour_down(t: UnixTime) -> UnixTime {
    UnixTime(t.0 - t.0 % CERTIFICATE_TIME_UNIT_SECONDS)
}

fn whole_hour_up(t: UnixTime) -> UnixTime {
    let down = whole_hour_down(t);
    if down == t {
        t
    } else {
        down.plus_seconds(CERTIFICATE_TIME_UNIT_SECONDS)
    }
}

/// A health authority's Ed25519 certificate-signing key.
#[derive(Debug)]
pub struct AuthoritySigningKey(Ed25519SigningKey);

impl AuthoritySigningKey {
    /// Draws a new key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        AuthoritySigningKey(Ed25519SigningKey::generate(rng))
    }

    /// Rebuilds a stored key from its seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        AuthoritySigningKey(Ed25519SigningKey::from_seed(seed))
    }

    /// The seed, for storage. A secret.
    pub fn seed(&self) -> &[u8; 32] {
        self.0.seed()
    }

    /// The public key other nodes configure as trusted.
    pub fn public_key(&self) -> Ed25519PublicKey {
        self.0.public_key()
    }

    /// The Ed25519 key, to sign a rollover with.
    pub fn ed25519(&self) -> &Ed25519SigningKey {
        &self.0
    }

    /// Signs a certificate for `request`, valid from `now` for at least `lifetime_seconds`
    /// (times in whole hours: `issued_at` rounded down, `expires_at` up).
    pub fn issue(
        &self,
        request: &CertificateRequest,
        now: UnixTime,
        lifetime_seconds: u64,
        rng: &mut impl CryptoRng,
    ) -> SignedCertificate {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let certificate = Certificate {
            version: CERTIFICATE_VERSION,
            id: CertificateId(id),
            authority: self.public_key().key_id(),
            report_hmac: request.report_hmac,
            test_type: request.test_type,
            symptom_onset: request.symptom_onset,
            issued_at: whole_hour_down(now),
            expires_at: whole_hour_up(now.plus_seconds(lifetime_seconds)),
        };
        self.sign_certificate(certificate)
    }

    /// Signs a certificate whose id and times the caller chose: the one a node makes for a
    /// blind-token upload (`crate::token::TokenUpload::certify`). `version` and `authority`
    /// are set here.
    pub(crate) fn sign_certificate(&self, mut certificate: Certificate) -> SignedCertificate {
        certificate.version = CERTIFICATE_VERSION;
        certificate.authority = self.public_key().key_id();
        let signature = self.0.sign(CERTIFICATE_LABEL, &certificate.signing_input());
        SignedCertificate {
            certificate,
            signature,
        }
    }
}

/// The authority keys a verifier trusts, by key id.
pub type TrustedAuthorities = TrustedKeys;

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::pet::EncounterToken;
    use crate::report::PublishedToken;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn setup() -> (
        AuthoritySigningKey,
        TrustedAuthorities,
        ReportContents,
        ReportHmacKey,
        SignedCertificate,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let authority = AuthoritySigningKey::generate(&mut rng);
        let trusted = TrustedAuthorities::new().with(authority.public_key());
        let contents = ReportContents::Pet(vec![PublishedToken {
            day: NOW.day(),
            token: EncounterToken([5; 16]),
        }]);
        let hmac_key = ReportHmacKey::generate(&mut rng);
        let request = CertificateRequest {
            report_hmac: hmac_key.authenticate(&contents),
            test_type: ReportType::ConfirmedTest,
            symptom_onset: Some(NOW.day().minus(2)),
        };
        let cert = authority.issue(&request, NOW, 3600, &mut rng);
        (authority, trusted, contents, hmac_key, cert)
    }

    /// Two authorities whose keys share an id (64 bits: chance, or a 2^64-hash search):
    /// before, the second key replaced the first in the trusted set, so the first's
    /// certificates stopped verifying; each certificate now names the key that signed it.
    #[test]
    fn certificates_of_two_keys_with_one_id_each_verify_under_their_own_key() {
        let (authority, mut trusted, _, _, cert) = setup();
        let other = AuthoritySigningKey::from_seed(&[9; 32]);
        trusted.insert_under(authority.public_key().key_id(), other.public_key());
        assert!(
            cert.verify(&trusted, NOW, ExpiryPolicy::FirstUpload)
                .is_ok()
        );
        assert_eq!(cert.signer(&trusted), Ok(&authority.public_key()));
        let mut by_other = cert.clone();
        by_other.signature = other
            .0
            .sign(CERTIFICATE_LABEL, &by_other.certificate.signing_input());
        assert_eq!(by_other.signer(&trusted), Ok(&other.public_key()));
        let stranger = AuthoritySigningKey::from_seed(&[10; 32]);
        let mut by_stranger = cert.clone();
        by_stranger.signature = stranger
            .0
            .sign(CERTIFICATE_LABEL, &by_stranger.certificate.signing_input());
        assert_eq!(
            by_stranger.verify(&trusted, NOW, ExpiryPolicy::FirstUpload),
            Err(CertificateError::BadSignature)
        );
    }

    #[test]
    fn certificate_times_are_whole_hours_and_never_shorten_the_lifetime() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (authority, trusted, _, _, _) = setup();
        let request = CertificateRequest {
            report_hmac: ReportHmac([1; 32]),
            test_type: ReportType::ConfirmedTest,
            symptom_onset: None,
        };
        let hour = NOW.0 - NOW.0 % 3600;
        for offset in [0, 1, 800, 3599] {
            let now = UnixTime(hour + offset);
            let cert = authority.issue(&request, now, 900, &mut rng);
            let facts = &cert.certificate;
            assert_eq!(facts.issued_at, UnixTime(hour), "signed at +{offset}");
            assert!(facts.expires_at.0.is_multiple_of(3600));
            assert!(facts.expires_at >= now.plus_seconds(900));
            assert!(facts.expires_at < now.plus_seconds(900 + 3600));
            assert!(
                cert.verify(&trusted, now, ExpiryPolicy::FirstUpload)
                    .is_ok()
            );
        }
    }

    #[test]
    fn a_fresh_certificate_verifies_and_binds_the_report() {
        let (_, trusted, contents, hmac_key, cert) = setup();
        assert!(
            cert.verify(&trusted, NOW.plus_seconds(10), ExpiryPolicy::FirstUpload)
                .is_ok()
        );
        assert_eq!(
            cert.check_report(&contents, &hmac_key, HmacBinding::Unbound),
            Ok(())
        );
        // Bound to a revision key (version 2), the same HMAC key and entries give another
        // HMAC for each key and role.
        let key = crate::revision::RevisionSecret::from_seed(&[8; 32]).key();
        let other_key = crate::revision::RevisionSecret::from_seed(&[9; 32]).key();
        for binding in [
            HmacBinding::Upload(key),
            HmacBinding::Revision(key),
            HmacBinding::Upload(other_key),
        ] {
            assert_eq!(
                cert.check_report(&contents, &hmac_key, binding),
                Err(CertificateError::HmacMismatch),
                "{binding:?}"
            );
        }
        let other = ReportContents::Pet(vec![PublishedToken {
            day: NOW.day(),
            token: EncounterToken([6; 16]),
        }]);
        assert_eq!(
            cert.check_report(&other, &hmac_key, HmacBinding::Unbound),
            Err(CertificateError::HmacMismatch)
        );
        assert_eq!(
            cert.check_report(&contents, &ReportHmacKey([0; 32]), HmacBinding::Unbound),
            Err(CertificateError::HmacMismatch)
        );
    }

    #[test]
    fn expiry_untrusted_and_forgery_are_refused() {
        let (authority, trusted, _, _, cert) = setup();
        // Issued 800 s into an hour for 3,600 s: it expires at the end of the next hour.
        let deadline = NOW.0 - 800 + 2 * 3600;
        assert!(
            cert.verify(&trusted, UnixTime(deadline), ExpiryPolicy::FirstUpload)
                .is_ok()
        );
        assert_eq!(
            cert.verify(&trusted, UnixTime(deadline + 1), ExpiryPolicy::FirstUpload),
            Err(CertificateError::Expired {
                expired_at: deadline,
                now: deadline + 1
            })
        );
        // A relayed report is judged by retention, not by the short upload deadline.
        assert!(
            cert.verify(
                &trusted,
                NOW.plus_seconds(86_400),
                ExpiryPolicy::Relayed { retention_days: 14 }
            )
            .is_ok()
        );
        assert!(matches!(
            cert.verify(
                &trusted,
                NOW.plus_seconds(15 * 86_400),
                ExpiryPolicy::Relayed { retention_days: 14 }
            ),
            Err(CertificateError::Expired { .. })
        ));
        assert_eq!(
            cert.verify(&trusted, NOW.minus_seconds(3600), ExpiryPolicy::FirstUpload),
            Err(CertificateError::NotYetValid)
        );
        assert_eq!(
            cert.verify(&TrustedAuthorities::new(), NOW, ExpiryPolicy::FirstUpload),
            Err(CertificateError::UntrustedAuthority)
        );

        let mut forged = cert.clone();
        forged.certificate.test_type = ReportType::SelfReport;
        assert_eq!(
            forged.verify(&trusted, NOW, ExpiryPolicy::FirstUpload),
            Err(CertificateError::BadSignature)
        );
        let mut extended = cert.clone();
        extended.certificate.expires_at = NOW.plus_seconds(1_000_000);
        assert_eq!(
            extended.verify(&trusted, NOW, ExpiryPolicy::FirstUpload),
            Err(CertificateError::BadSignature)
        );

        // A rogue key claiming the trusted authority's id fails on the signature.
        let rogue = AuthoritySigningKey::generate(&mut ChaCha20Rng::seed_from_u64(99));
        let mut stolen_id = rogue.issue(
            &CertificateRequest {
                report_hmac: cert.certificate.report_hmac,
                test_type: ReportType::ConfirmedTest,
                symptom_onset: None,
            },
            NOW,
            3600,
            &mut ChaCha20Rng::seed_from_u64(100),
        );
        stolen_id.certificate.authority = authority.public_key().key_id();
        assert_eq!(
            stolen_id.verify(&trusted, NOW, ExpiryPolicy::FirstUpload),
            Err(CertificateError::BadSignature)
        );
    }

    #[test]
    fn certificates_have_unique_ids_and_survive_the_wire() {
        let (authority, trusted, _, _, cert) = setup();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let again = authority.issue(
            &CertificateRequest {
                report_hmac: cert.certificate.report_hmac,
                test_type: ReportType::ConfirmedTest,
                symptom_onset: None,
            },
            NOW,
            60,
            &mut rng,
        );
        assert_ne!(again.certificate.id, cert.certificate.id);
        let bytes = wire::encode(&cert);
        let decoded: SignedCertificate = wire::decode(&bytes).unwrap();
        assert!(
            decoded
                .verify(&trusted, NOW, ExpiryPolicy::FirstUpload)
                .is_ok()
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut framed = vec![wire::WIRE_VERSION, wire::kind::SIGNED_CERTIFICATE];
            framed.extend_from_slice(&bytes);
            let _ = wire::decode::<SignedCertificate>(&framed);
            let _ = wire::decode::<SignedCertificate>(&bytes);
        }
    }
}
