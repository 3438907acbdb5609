//! What a phone checks of the certificate a verify returns, before it uploads it.
//!
//! The node checks all of it again; the phone checks first so that it never spends an
//! upload (and, for a revision, its one chance) on a certificate the node would refuse, and
//! never hands a node a report under a certificate it was not meant to get (a certificate
//! for another report, of another authority, or of the wrong kind).

use ephemera_proto::auth::{ExpiryPolicy, ReportHmac, SignedCertificate, TrustedAuthorities};
use ephemera_proto::error::CertificateError;
use ephemera_proto::{ReportType, UnixTime};

/// Checks `certificate` for the report whose HMAC is `hmac`, at `now`:
/// - signed by one of `trusted` (when the app pins authority keys; with none pinned, the
///   signature is left to the node);
/// - not expired and not issued in the future;
/// - certifying this very report (its HMAC);
/// - of a type this report may have: a first report is never `Revoked`, a revision (which
///   changes a `likely` report) is `ConfirmedTest` or `Revoked`.
///
/// # Errors
/// The first check that fails, as [`CertificateError`].
pub(super) fn check_certificate(
    certificate: &SignedCertificate,
    hmac: &ReportHmac,
    revision: bool,
    trusted: &TrustedAuthorities,
    now: UnixTime,
) -> Result<(), CertificateError> {
    if trusted.is_empty() {
        certificate.check_times(now, ExpiryPolicy::FirstUpload)?;
    } else {
        certificate.verify(trusted, now, ExpiryPolicy::FirstUpload)?;
    }
    let facts = &certificate.certificate;
    if facts.report_hmac != *hmac {
        return Err(CertificateError::HmacMismatch);
    }
    let type_fits = if revision {
        matches!(
            facts.test_type,
            ReportType::ConfirmedTest | ReportType::Revoked
        )
    } else {
        facts.test_type != ReportType::Revoked
    };
    if !type_fits {
        return Err(CertificateError::ReportTypeMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ephemera_proto::auth::{AuthoritySigningKey, CertificateRequest};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn issue(by: &AuthoritySigningKey, at: UnixTime, test_type: ReportType) -> SignedCertificate {
        let request = CertificateRequest {
            report_hmac: ReportHmac([7; 32]),
            test_type,
            symptom_onset: None,
        };
        by.issue(&request, at, 900, &mut ChaCha20Rng::seed_from_u64(1))
    }

    #[test]
    fn only_a_certificate_for_this_report_by_a_pinned_authority_passes() {
        let authority = AuthoritySigningKey::from_seed(&[1; 32]);
        let stranger = AuthoritySigningKey::from_seed(&[2; 32]);
        let pinned = TrustedAuthorities::new().with(authority.public_key());
        let hmac = ReportHmac([7; 32]);
        let good = issue(&authority, NOW, ReportType::ConfirmedTest);
        assert_eq!(check_certificate(&good, &hmac, false, &pinned, NOW), Ok(()));
        // Another authority.
        let foreign = issue(&stranger, NOW, ReportType::ConfirmedTest);
        assert_eq!(
            check_certificate(&foreign, &hmac, false, &pinned, NOW),
            Err(CertificateError::UntrustedAuthority)
        );
        // Tampered: the signature no longer holds.
        let mut tampered = good.clone();
        tampered.certificate.symptom_onset = Some(NOW.day());
        assert_eq!(
            check_certificate(&tampered, &hmac, false, &pinned, NOW),
            Err(CertificateError::BadSignature)
        );
        // Expired (signed three hours ago for 15 minutes), or from the future.
        let old = issue(
            &authority,
            UnixTime(NOW.0 - 3 * 3600),
            ReportType::ConfirmedTest,
        );
        for trusted in [&pinned, &TrustedAuthorities::new()] {
            assert!(matches!(
                check_certificate(&old, &hmac, false, trusted, NOW),
                Err(CertificateError::Expired { .. })
            ));
        }
        let future = issue(
            &authority,
            UnixTime(NOW.0 + 2 * 3600),
            ReportType::ConfirmedTest,
        );
        assert_eq!(
            check_certificate(&future, &hmac, false, &pinned, NOW),
            Err(CertificateError::NotYetValid)
        );
        // Another report.
        assert_eq!(
            check_certificate(&good, &ReportHmac([8; 32]), false, &pinned, NOW),
            Err(CertificateError::HmacMismatch)
        );
    }

    #[test]
    fn the_test_type_fits_a_first_report_or_a_revision() {
        let authority = AuthoritySigningKey::from_seed(&[1; 32]);
        let pinned = TrustedAuthorities::new().with(authority.public_key());
        let hmac = ReportHmac([7; 32]);
        let check = |test_type, revision| {
            check_certificate(
                &issue(&authority, NOW, test_type),
                &hmac,
                revision,
                &pinned,
                NOW,
            )
        };
        assert_eq!(
            check(ReportType::Revoked, false),
            Err(CertificateError::ReportTypeMismatch)
        );
        assert_eq!(check(ReportType::ConfirmedClinicalDiagnosis, false), Ok(()));
        assert_eq!(check(ReportType::Revoked, true), Ok(()));
        assert_eq!(check(ReportType::ConfirmedTest, true), Ok(()));
        assert_eq!(
            check(ReportType::ConfirmedClinicalDiagnosis, true),
            Err(CertificateError::ReportTypeMismatch)
        );
    }
}
