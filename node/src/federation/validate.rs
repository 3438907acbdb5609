//! Re-verification of every upload a peer sends, and what it costs the peer: [`judge`] is the
//! one place where a [`Verdict`] becomes a gossipsub acceptance, a peer penalty, a refusal
//! to fetch again, or the end of a catch-up round.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use ephemera_proto::auth::{ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::federated::{self, FederatedReport};
use ephemera_proto::signing::KeyId;
use ephemera_proto::upload::{UploadId, VerifiedUpload};
use ephemera_proto::{
    CertificateError, DecodeError, ReportLimits, UnixTime, UploadError, ValidationError,
};

use libp2p::gossipsub::MessageAcceptance;

use super::store::{FederationStore, StoreError, StoreOutcome};

/// What federation does with a received upload, and why (a metric label).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Valid and newly stored: forward it.
    Accept,
    /// Valid under an authority this node relays for without trusting it, and not relayed
    /// before: forward it, store nothing.
    Relay,
    /// Invalid in a way no honest node produces: drop it and penalise the sender.
    Reject(&'static str),
    /// Not stored or forwarded, but no fault of the sender (duplicate, clock skew at a
    /// validity edge).
    Ignore(&'static str),
    /// Valid but not applicable yet (a signed revision of an upload this node does not
    /// hold): not stored or forwarded, no fault of the sender, and catch-up fetches it again
    /// in a later round.
    Later(&'static str),
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
            Verdict::Relay => "relayed",
            Verdict::Reject(_) => "rejected",
            Verdict::Ignore(_) | Verdict::Later(_) | Verdict::StoreFailed => "ignored",
        }
    }

    /// The reason label (`"ok"` for an accepted upload).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Verdict::Accept => "ok",
            Verdict::Relay => "relay",
            Verdict::Reject(reason) | Verdict::Ignore(reason) | Verdict::Later(reason) => reason,
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
/// accept), so it is never stored nor held against the relay, on either path ([`classify`]
/// makes it an `Ignore`); on gossip it is forwarded only by a node that relays for that
/// authority, after full verification ([`Verdict::Relay`]). Only what no honest node sends
/// costs score: a bad signature of an authority this node knows, a wrong HMAC, a malformed
/// or non-canonical message, a report on another authority's topic.
pub(crate) fn judge(verdict: Verdict) -> Judgement {
    let acceptance = match verdict {
        Verdict::Accept | Verdict::Relay => MessageAcceptance::Accept,
        Verdict::Reject(_) => MessageAcceptance::Reject,
        Verdict::Ignore(_) | Verdict::Later(_) | Verdict::StoreFailed => MessageAcceptance::Ignore,
    };
    let penalise = matches!(verdict, Verdict::Reject(_));
    Judgement {
        acceptance,
        penalise,
        refuse: matches!(verdict, Verdict::Reject(_) | Verdict::Ignore(_)),
        abort: verdict == Verdict::StoreFailed,
    }
}

/// Most ids remembered in [`Verifier`]'s relayed set before it is cleared.
const MAX_RELAYED: usize = 65_536;

/// Everything a verifier needs, shared by the gossip and catch-up paths.
pub(crate) struct Verifier {
    pub(crate) trusted: TrustedAuthorities,
    /// Authorities relayed for without being trusted (gossip only; never stored).
    relay: TrustedAuthorities,
    pub(crate) limits: ReportLimits,
    /// Ids relayed lately, so a relay forwards each report once even after gossipsub's
    /// duplicate cache forgot it (a relay has no store to ask). Cleared when full.
    relayed: Mutex<HashSet<UploadId>>,
}

impl Verifier {
    /// A verifier storing the reports of `trusted` and relaying those of `relay` (keys in
    /// both count as trusted).
    pub(crate) fn new(
        trusted: TrustedAuthorities,
        relay: TrustedAuthorities,
        limits: ReportLimits,
    ) -> Self {
        Verifier {
            trusted,
            relay,
            limits,
            relayed: Mutex::new(HashSet::new()),
        }
    }

    /// Remembers `id` as relayed; false if it was already.
    fn first_relay(&self, id: UploadId) -> bool {
        let mut relayed = self.relayed.lock().unwrap_or_else(PoisonError::into_inner);
        if relayed.len() >= MAX_RELAYED {
            relayed.clear();
        }
        relayed.insert(id)
    }

    fn relayed_before(&self, id: &UploadId) -> bool {
        self.relayed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    /// Verifies `report` as a relayed report at `now`: its HMAC must cover its binding's
    /// key, and a revision's signature verify under it.
    pub(crate) fn verify(
        &self,
        report: FederatedReport,
        now: UnixTime,
    ) -> Result<VerifiedUpload, Verdict> {
        self.verify_under(&self.trusted, report, now)
    }

    fn verify_under(
        &self,
        authorities: &TrustedAuthorities,
        report: FederatedReport,
        now: UnixTime,
    ) -> Result<VerifiedUpload, Verdict> {
        report
            .upload
            .verify_bound(
                report.binding,
                authorities,
                now,
                ExpiryPolicy::Relayed {
                    retention_days: self.limits.retention_days,
                },
                &self.limits,
            )
            .map_err(|e| classify(&e))
    }

    /// Decodes, verifies and stores (or only relays) gossiped bytes whose gossipsub message
    /// id (SHA-256 of the bytes) is `message_id`, received on the topic of the authority
    /// `topic`.
    ///
    /// The bytes are a [`SignedUpload`](ephemera_proto::upload::SignedUpload) frame (an
    /// unbound, version 1 upload) or a [`FederatedReport`] frame (an upload with its
    /// revision key, or a signed revision: [`federated::decode`]). Honest nodes publish
    /// only canonical encodings ([`federated::encode`]); a valid upload in another encoding
    /// is rejected, so one report has one message id. A report under another authority
    /// than its topic's is rejected too: honest nodes publish each report on its own
    /// authority's topic.
    ///
    /// A relayed report (authority in the relay set) gets every check a stored one gets
    /// except single use of its certificate, which only a store can enforce: a relay
    /// forwards each valid report once ([`Verdict::Relay`]), and the trusting nodes behind
    /// it enforce single use. So what a relay forwards is always a report its authority
    /// signed, never bytes it could not check.
    pub(crate) fn check_gossip(
        &self,
        store: &dyn FederationStore,
        message_id: &[u8],
        data: &[u8],
        topic: KeyId,
        now: UnixTime,
    ) -> Verdict {
        let claimed = match <[u8; 32]>::try_from(message_id) {
            Ok(id) => UploadId(id),
            Err(_) => return Verdict::Ignore("bad-message-id"),
        };
        let trusted = self.trusted.knows_id(&topic);
        if !trusted && self.relayed_before(&claimed) {
            return Verdict::Ignore("duplicate");
        }
        let report = match federated::decode(data) {
            Ok(report) => report,
            Err(e) => return decode_verdict(&e),
        };
        if report.upload.certificate.certificate.authority != topic {
            return Verdict::Reject("wrong-topic");
        }
        if trusted {
            match store.contains(&report.upload.content_id()) {
                Ok(true) => return Verdict::Ignore("duplicate"),
                Ok(false) => {}
                Err(e) => return Verdict::store_failed(&e),
            }
        }
        let authorities = if trusted {
            &self.trusted
        } else if self.relay.knows_id(&topic) {
            &self.relay
        } else {
            return Verdict::Ignore("untrusted-authority");
        };
        let verified = match self.verify_under(authorities, report, now) {
            Ok(verified) => verified,
            Err(verdict) => return verdict,
        };
        if federated::frame_hash(verified.upload(), verified.binding()) != claimed.0 {
            return Verdict::Reject("non-canonical");
        }
        if trusted {
            store_verdict(store, verified)
        } else if self.first_relay(claimed) {
            Verdict::Relay
        } else {
            Verdict::Ignore("duplicate")
        }
    }
}

/// Stores a verified upload and turns the outcome into a verdict.
pub(crate) fn store_verdict(store: &dyn FederationStore, verified: VerifiedUpload) -> Verdict {
    match store.store_relayed(verified) {
        Ok(StoreOutcome::Stored) => Verdict::Accept,
        Ok(StoreOutcome::AlreadyStored) => Verdict::Ignore("duplicate"),
        Ok(StoreOutcome::CertificateUsed) => Verdict::Ignore("certificate-used"),
        Ok(StoreOutcome::OriginalMissing) => Verdict::Later("original-missing"),
        Ok(StoreOutcome::RevisionRefused) => Verdict::Ignore("revision-refused"),
        Ok(StoreOutcome::AuthorityEnded) => Verdict::Ignore("authority-ended"),
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
        UploadError::RevisionSignature => Verdict::Reject("bad-revision-signature"),
        _ => Verdict::Reject("invalid"),
    }
}
