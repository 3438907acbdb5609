//! Re-verification of every upload a peer sends, and what it costs the peer: [`judge`] is the
//! one place where a [`Verdict`] becomes a gossipsub acceptance, a peer penalty, a refusal
//! to fetch again, or the end of a catch-up round.

use ephemera_proto::auth::{ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::upload::{SignedUpload, UploadId, VerifiedUpload};
use ephemera_proto::{
    CertificateError, DecodeError, ReportLimits, UnixTime, UploadError, ValidationError, wire,
};

use libp2p::gossipsub::MessageAcceptance;

use super::store::{FederationStore, StoreError, StoreOutcome};

/// What federation does with a received upload, and why (a metric label).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Valid and newly stored: forward it.
    Accept,
    /// Invalid in a way no honest node produces: drop it and penalise the sender.
    Reject(&'static str),
    /// Not stored or forwarded, but no fault of the sender (duplicate, clock skew at a
    /// validity edge).
    Ignore(&'static str),
    /// This node's store failed while checking or storing it: nothing is known about the
    /// upload, so it is neither stored, forwarded, held against the sender, nor taken as
    /// absent.
    StoreFailed,
}

impl Verdict {
    /// The metric label of the verdict.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Verdict::Accept => "accepted",
            Verdict::Reject(_) => "rejected",
            Verdict::Ignore(_) | Verdict::StoreFailed => "ignored",
        }
    }

    /// The reason label (`"ok"` for an accepted upload).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Verdict::Accept => "ok",
            Verdict::Reject(reason) | Verdict::Ignore(reason) => reason,
            Verdict::StoreFailed => "store-error",
        }
    }

    /// The verdict on an upload whose check or storage hit a store failure (logged here).
    fn store_failed(error: &StoreError) -> Verdict {
        tracing::warn!(%error, "federation store failed");
        Verdict::StoreFailed
    }
}

/// What this node does about one received upload.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// What gossipsub is told (it forwards only `Accept`, and scores `Reject` against the
    /// peer that sent the message).
    pub(crate) acceptance: MessageAcceptance,
    /// Whether the sender is penalised: on gossip by gossipsub's invalid-message score (the
    /// loop then checks for a ban), in catch-up by ending the round as a protocol fault.
    pub(crate) penalise: bool,
    /// Whether catch-up remembers the id, so later rounds do not fetch it again.
    pub(crate) refuse: bool,
    /// Whether a catch-up round stops here, without blaming the peer.
    pub(crate) abort: bool,
}

/// Maps a verdict to gossip acceptance and peer penalties: the only place that does, and
/// alike for gossip and catch-up.
///
/// Partial trust is never misbehaviour: an upload under an authority this node does not
/// trust is valid where its sender trusts that authority (authorities choose whom they
/// accept), so it is ignored — neither stored, forwarded nor held against the relay — on
/// both paths ([`classify`] makes it an `Ignore`). Only what no honest node sends costs
/// score: a bad signature of a trusted authority, a wrong HMAC, a malformed or
/// non-canonical message.
pub(crate) fn judge(verdict: Verdict) -> Judgement {
    let acceptance = match verdict {
        Verdict::Accept => MessageAcceptance::Accept,
        Verdict::Reject(_) => MessageAcceptance::Reject,
        Verdict::Ignore(_) | Verdict::StoreFailed => MessageAcceptance::Ignore,
    };
    let penalise = matches!(verdict, Verdict::Reject(_));
    Judgement {
        acceptance,
        penalise,
        refuse: matches!(verdict, Verdict::Reject(_) | Verdict::Ignore(_)),
        abort: verdict == Verdict::StoreFailed,
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
        match store.contains(&claimed) {
            Ok(true) => return Verdict::Ignore("duplicate"),
            Ok(false) => {}
            Err(e) => return Verdict::store_failed(&e),
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
        Err(e) => Verdict::store_failed(&e),
    }
}

fn decode_verdict(error: &DecodeError) -> Verdict {
    match error {
        DecodeError::UnsupportedVersion { .. } => Verdict::Ignore("unsupported-version"),
        _ => Verdict::Reject("malformed"),
    }
}

/// Forgery and rule breaking are rejected; failures that depend on the verifier's clock
/// (a certificate at the edge of its validity, an entry at the edge of retention) or on its
/// trust set (an authority this node does not trust) are ignored, since honest nodes with
/// slightly different clocks or trust sets produce them.
pub(crate) fn classify(error: &UploadError) -> Verdict {
    match error {
        UploadError::Certificate(e) => match e {
            CertificateError::UntrustedAuthority => Verdict::Ignore("untrusted-authority"),
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
