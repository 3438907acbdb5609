//! Re-verification of every upload a peer sends, and what gossipsub is told about it.

use ephemera_proto::auth::{ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::upload::{SignedUpload, UploadId, VerifiedUpload};
use ephemera_proto::{
    CertificateError, DecodeError, ReportLimits, UnixTime, UploadError, ValidationError, wire,
};

use super::store::{FederationStore, StoreOutcome};

/// What federation does with a received upload, and why (a metric label).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Valid and newly stored: forward it.
    Accept,
    /// Invalid in a way no honest node produces: drop it and penalise the sender.
    Reject(&'static str),
    /// Not stored or forwarded, but no fault of the sender (duplicate, clock skew at a
    /// validity edge, store failure).
    Ignore(&'static str),
}

impl Verdict {
    /// The metric label of the verdict.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Verdict::Accept => "accepted",
            Verdict::Reject(_) => "rejected",
            Verdict::Ignore(_) => "ignored",
        }
    }

    /// The reason label (`"ok"` for an accepted upload).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Verdict::Accept => "ok",
            Verdict::Reject(reason) | Verdict::Ignore(reason) => reason,
        }
    }
}

/// Everything a verifier needs, shared by the gossip and catch-up paths.
pub(crate) struct Verifier {
    pub(crate) trusted: TrustedAuthorities,
    pub(crate) limits: ReportLimits,
}

impl Verifier {
    /// Verifies `upload` as a relayed report at `now`.
    pub(crate) fn verify(
        &self,
        upload: SignedUpload,
        now: UnixTime,
    ) -> Result<VerifiedUpload, Verdict> {
        upload
            .verify(
                &self.trusted,
                now,
                ExpiryPolicy::Relayed {
                    retention_days: self.limits.retention_days,
                },
                &self.limits,
            )
            .map_err(|e| classify(&e))
    }

    /// Decodes, verifies and stores gossiped bytes whose gossipsub message id (SHA-256 of
    /// the bytes) is `message_id`.
    ///
    /// Honest nodes publish only canonical encodings, whose hash is the [`UploadId`]; a
    /// valid upload in another encoding is rejected, so one report has one message id.
    pub(crate) fn check_gossip(
        &self,
        store: &dyn FederationStore,
        message_id: &[u8],
        data: &[u8],
        now: UnixTime,
    ) -> Verdict {
        let claimed = match <[u8; 32]>::try_from(message_id) {
            Ok(id) => UploadId(id),
            Err(_) => return Verdict::Ignore("bad-message-id"),
        };
        if store.contains(&claimed) {
            return Verdict::Ignore("duplicate");
        }
        let upload = match wire::decode::<SignedUpload>(data) {
            Ok(upload) => upload,
            Err(e) => return decode_verdict(&e),
        };
        let verified = match self.verify(upload, now) {
            Ok(verified) => verified,
            Err(verdict) => return verdict,
        };
        if verified.id() != claimed {
            return Verdict::Reject("non-canonical");
        }
        store_verdict(store, verified)
    }
}

/// Stores a verified upload and turns the outcome into a verdict.
pub(crate) fn store_verdict(store: &dyn FederationStore, verified: VerifiedUpload) -> Verdict {
    match store.store_relayed(verified) {
        Ok(StoreOutcome::Stored) => Verdict::Accept,
        Ok(StoreOutcome::AlreadyStored) => Verdict::Ignore("duplicate"),
        Ok(StoreOutcome::CertificateUsed) => Verdict::Ignore("certificate-used"),
        Err(e) => {
            tracing::warn!(error = %e, "federation store failed");
            Verdict::Ignore("store-error")
        }
    }
}

fn decode_verdict(error: &DecodeError) -> Verdict {
    match error {
        DecodeError::UnsupportedVersion { .. } => Verdict::Ignore("unsupported-version"),
        _ => Verdict::Reject("malformed"),
    }
}

/// Forgery and rule breaking are rejected; failures that depend on the verifier's clock
/// (a certificate at the edge of its validity, an entry at the edge of retention) are
/// ignored, since honest nodes with slightly different clocks produce them.
pub(crate) fn classify(error: &UploadError) -> Verdict {
    match error {
        UploadError::Certificate(e) => match e {
            CertificateError::UntrustedAuthority => Verdict::Reject("untrusted-authority"),
            CertificateError::BadSignature => Verdict::Reject("bad-signature"),
            CertificateError::HmacMismatch => Verdict::Reject("hmac-mismatch"),
            CertificateError::ReportTypeMismatch => Verdict::Reject("report-type-mismatch"),
            CertificateError::Expired { .. } => Verdict::Ignore("expired"),
            CertificateError::NotYetValid => Verdict::Ignore("not-yet-valid"),
            _ => Verdict::Reject("certificate"),
        },
        UploadError::Validation(e) => match e {
            ValidationError::TooOld { .. } => Verdict::Ignore("too-old"),
            ValidationError::FutureKey { .. } | ValidationError::FutureToken { .. } => {
                Verdict::Ignore("future")
            }
            _ => Verdict::Reject("invalid-report"),
        },
        _ => Verdict::Reject("invalid"),
    }
}
