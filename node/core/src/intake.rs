//! Intake: what an upload from a phone must pass to be stored (`docs/PROTOCOL.md` §4.3 and
//! §5), and revisions of an upload (`likely` → `confirmed` or
//! revoked), as the GAEN reference server allows them.
//!
//! The flow, in the driver: [`NodeCore::decode_upload`] → [`NodeCore::admit_upload`] →
//! apply [`PlannedUpload::commit`] durably → [`NodeCore::settle_upload`] → answer. A
//! revision rewrites publication queue groups, so the driver must not cut batches between
//! admitting a revision and applying its commit: it holds its publication lock for a
//! request whose body is a revision ([`UploadBody::is_revision`]).
//!
//! Who may revise (`docs/PROTOCOL.md` §5.4): a version 2 upload carries a revision key,
//! which its certified HMAC covers and its certificate's mark keeps, and only a revision
//! signed with that key's secret (and certified bound to that key) passes; the answer to a
//! version 2 upload carries no token, so replaying its bytes grants nothing. A version 1
//! upload (the transition) is revised by the token of §5.1, which is never handed out for,
//! nor accepted against, a version 2 upload. A signed revision is accepted alike for an
//! upload a phone sent here and one a peer relayed with its key, and is relayed in turn
//! ([`PlannedUpload::gossip`]; peers take it through
//! [`NodeCore::admit_relayed`](crate::NodeCore::admit_relayed)).

use std::collections::BTreeMap;

use ephemera_proto::auth::{CertificateId, ExpiryPolicy};
use ephemera_proto::report::ReportType;
use ephemera_proto::revision::Binding;
use ephemera_proto::token::{TokenError, TokenUpload};
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadId, UploadRequest, VerifiedUpload};
use ephemera_proto::{DecodeError, SchemeKind, UnixTime, UploadError, wire};
use thiserror::Error;

use crate::NodeCore;
use crate::publication::{entries_of, group_entries};
use crate::store::{
    CertificateState, CertificateUse, CommitOutcome, QueueKey, QueuedEntry, QueuedGroup,
    ReportStore, StoreError, StoredUpload, UploadCommit,
};

/// A revision token as the phone receives it (hex in the JSON answer).
pub type RevisionToken = [u8; crate::revision_token::TOKEN_LEN];

/// What an accepted upload is answered with: the revision token for a version 1 upload of
/// a version 1 phone, nothing for anything else (empty in the JSON answer).
pub type UploadAnswer = Option<RevisionToken>;

/// Why an upload was refused, or could not be handled.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IntakeError {
    /// The body is larger than the policy's `max_upload_bytes`.
    #[error("upload body is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The body is not a well-formed upload request.
    #[error("malformed upload: {0}")]
    Decode(DecodeError),
    /// The certificate, its binding to the report, or a report rule failed.
    #[error(transparent)]
    Rejected(UploadError),
    /// The report's scheme is not one this node accepts.
    #[error("this node does not accept {0:?} reports")]
    SchemeNotAccepted(SchemeKind),
    /// A first upload certified with a type only revisions may carry.
    #[error("report type {0:?} is not accepted for a first upload")]
    ReportTypeNotAllowed(ReportType),
    /// The blind token does not authorise this upload at this node: a key of another
    /// authority or day, expired, or a signature over another report, revision key or
    /// federation.
    #[error("the upload token is refused: {0}")]
    Token(TokenError),
    /// The certificate (or, for a token upload, the token) was used for another upload
    /// before.
    #[error("this certificate was already used for an upload")]
    CertificateUsed,
    /// The revision token is unknown, spent, or its upload gone (or made with a revision
    /// key, which only a signed revision may revise).
    #[error("the revision token is unknown, already used or expired")]
    InvalidRevisionToken,
    /// A version 2 revision whose signature does not verify under the revision key of the
    /// upload it names: that upload is unknown, revised already, purged, uploaded without
    /// a key, or the signer is not the phone that uploaded it.
    #[error("the revision is not signed by the phone that uploaded the report it revises")]
    InvalidRevisionSignature,
    /// The report-type change is not one a revision may make.
    #[error("a report of type {from:?} cannot be revised to {to:?}")]
    RevisionNotAllowed {
        /// The current type.
        from: ReportType,
        /// The requested type.
        to: ReportType,
    },
    /// The revision holds entries the original upload did not, or another scheme.
    #[error("a revision may only hold entries of the upload it revises")]
    RevisionMismatch,
    /// The revision's certificate is signed by another authority than the original's:
    /// only the authority that certified a report may change or revoke it.
    #[error("a revision must be certified by the authority that certified the original")]
    RevisionAuthorityMismatch,
    /// Storage failed.
    #[error("storage failure")]
    Store(#[from] StoreError),
}

/// Whether an upload is a phone's first one or a revision of it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UploadKind {
    /// A first upload.
    First,
    /// A revision of an earlier upload.
    Revision,
}

/// What to do with an upload request that passed every check.
#[derive(Debug)]
pub enum Admission {
    /// A decoy: nothing is stored. It is answered as a real upload of its version is, after
    /// a flush (a version 1 decoy with a random token).
    Decoy,
    /// A real upload or revision: apply the commit durably, then [`NodeCore::settle_upload`].
    Commit(Box<PlannedUpload>),
    /// A retried revision whose first request went through: answer this once the store is
    /// flushed.
    Replayed(UploadAnswer),
}

/// An accepted upload, planned: what to write, and what to answer once written.
#[derive(Debug)]
pub struct PlannedUpload {
    /// Everything the upload writes, atomically: the driver moves it to the store.
    pub commit: UploadCommit,
    /// What [`NodeCore::settle_upload`] needs once the commit is applied.
    pub receipt: UploadReceipt,
    /// For a first upload or signed revision admitted with `keep_for_gossip`: the
    /// verified upload with its binding, to gossip to peers once durable.
    pub gossip: Option<VerifiedUpload>,
}

/// What an applied upload is answered from (a few ids: the commit itself has gone to the
/// store).
#[derive(Copy, Clone, Debug)]
pub struct UploadReceipt {
    /// First upload or revision.
    pub kind: UploadKind,
    certificate: CertificateId,
    upload: UploadId,
    /// Whether the request was of version 1 (only those are answered with a token).
    v1: bool,
    answer: UploadAnswer,
}

/// The answer to an applied upload.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Stored now: answer this.
    Accepted(UploadAnswer),
    /// This very upload was stored by an earlier request whose answer was lost: answer this
    /// once the store is flushed (the first request may still be in flight).
    Replayed(UploadAnswer),
}

impl NodeCore {
    /// Decodes an upload request body, refusing it first if it is larger than the policy
    /// allows.
    ///
    /// # Errors
    /// [`IntakeError::TooLarge`], [`IntakeError::Decode`].
    pub fn decode_upload(&self, body: &[u8]) -> Result<UploadRequest, IntakeError> {
        let max = self.policy.max_upload_bytes;
        if body.len() > max {
            return Err(IntakeError::TooLarge { max });
        }
        wire::decode(body).map_err(IntakeError::Decode)
    }

    /// Checks a decoded upload request and plans what it writes. A decoy costs what a real
    /// upload costs here: one certificate verification. With `keep_for_gossip`, a first
    /// upload also comes back verified for federation (a copy only a federating node pays).
    ///
    /// # Errors
    /// The first failed check as an [`IntakeError`].
    pub fn admit_upload(
        &self,
        store: &dyn ReportStore,
        request: UploadRequest,
        now: UnixTime,
        keep_for_gossip: bool,
    ) -> Result<Admission, IntakeError> {
        match request.body {
            UploadBody::Decoy => {
                let _ =
                    self.decoy_certificate
                        .verify(&self.trusted, now, ExpiryPolicy::FirstUpload);
                Ok(Admission::Decoy)
            }
            UploadBody::RealV1(upload) => {
                self.admit_first(upload, Binding::Unbound, now, keep_for_gossip)
            }
            UploadBody::Real {
                upload,
                revision_key,
            } => self.admit_first(upload, Binding::Upload(revision_key), now, keep_for_gossip),
            UploadBody::RevisionV1 {
                upload,
                revision_token,
            } => {
                let verified = self.verify(upload, Binding::Unbound, now)?;
                self.admit_revision(store, verified, Proof::Token(&revision_token), now, false)
            }
            UploadBody::Revision {
                upload,
                revises,
                signature,
            } => {
                // The key is the one the revised upload carried: the revision's HMAC must
                // cover it and its signature verify under it.
                let key = match store.certificate_use(&revises)?.map(|mark| mark.binding) {
                    Some(Binding::Upload(key)) => key,
                    // Unknown, purged or keyless (a revision that went through keeps its
                    // original's mark, so its retry is answered below as a replay).
                    _ => return Err(IntakeError::InvalidRevisionSignature),
                };
                let binding = Binding::Revision {
                    key,
                    revises,
                    signature,
                };
                let verified = match self.verify(upload, binding, now) {
                    Err(IntakeError::Rejected(UploadError::RevisionSignature)) => {
                        return Err(IntakeError::InvalidRevisionSignature);
                    }
                    other => other?,
                };
                self.admit_revision(store, verified, Proof::Signed, now, keep_for_gossip)
            }
            UploadBody::Tokened {
                upload,
                revision_key,
            } => {
                let verified = self.verify_token(upload, Binding::Upload(revision_key), now)?;
                self.admit_verified_first(verified, now, keep_for_gossip)
            }
            UploadBody::TokenRevision {
                upload,
                revises,
                signature,
            } => {
                let key = match store.certificate_use(&revises)?.map(|mark| mark.binding) {
                    Some(Binding::Upload(key))
                        if key.verify_token_revision(
                            &revises,
                            &upload.certificate_id(),
                            &signature,
                        ) =>
                    {
                        key
                    }
                    _ => return Err(IntakeError::InvalidRevisionSignature),
                };
                let binding = Binding::TokenRevision {
                    key,
                    revises,
                    signature,
                };
                let verified = self.verify_token(upload, binding, now)?;
                self.admit_revision(store, verified, Proof::Signed, now, keep_for_gossip)
            }
        }
    }

    /// Verifies a token upload against this node's token keys, certifies it in its
    /// authority's name and runs the checks every upload passes
    /// ([`TokenUpload::certify_checked`]: the certificate just made is not checked again).
    fn verify_token(
        &self,
        upload: TokenUpload,
        binding: Binding,
        now: UnixTime,
    ) -> Result<VerifiedUpload, IntakeError> {
        let ring = self.token_keys();
        let verified = upload
            .certify_checked(
                ring.verifiers(),
                ring.audience(),
                binding,
                &self.keys.authority,
                now,
                &self.limits,
            )
            .map_err(|e| match e {
                UploadError::Token(e) => IntakeError::Token(e),
                e => IntakeError::Rejected(e),
            })?;
        self.check_scheme(&verified)?;
        Ok(verified)
    }

    /// Answers an upload once its commit was applied with `outcome`.
    ///
    /// # Errors
    /// [`IntakeError::CertificateUsed`] when another upload used the certificate,
    /// [`IntakeError::InvalidRevisionToken`] when the revised upload changed meanwhile,
    /// [`IntakeError::Store`].
    pub fn settle_upload(
        &self,
        store: &dyn ReportStore,
        receipt: &UploadReceipt,
        outcome: CommitOutcome,
    ) -> Result<Settled, IntakeError> {
        match outcome {
            CommitOutcome::Committed => Ok(Settled::Accepted(receipt.answer)),
            CommitOutcome::CertificateUsed => self
                .replayed(store, &receipt.certificate, receipt.upload, receipt.v1)?
                .map(Settled::Replayed)
                .ok_or(IntakeError::CertificateUsed),
            CommitOutcome::RevisionTokenUnknown if receipt.v1 => {
                Err(IntakeError::InvalidRevisionToken)
            }
            CommitOutcome::RevisionTokenUnknown => Err(IntakeError::InvalidRevisionSignature),
        }
    }

    fn verify(
        &self,
        upload: SignedUpload,
        binding: Binding,
        now: UnixTime,
    ) -> Result<VerifiedUpload, IntakeError> {
        let verified = upload
            .verify_bound(
                binding,
                &self.trusted,
                now,
                ExpiryPolicy::FirstUpload,
                &self.limits,
            )
            .map_err(IntakeError::Rejected)?;
        self.check_scheme(&verified)?;
        Ok(verified)
    }

    fn check_scheme(&self, verified: &VerifiedUpload) -> Result<(), IntakeError> {
        let scheme = verified.contents().scheme();
        if !self.policy.accepts(scheme) {
            return Err(IntakeError::SchemeNotAccepted(scheme));
        }
        Ok(())
    }

    fn admit_first(
        &self,
        upload: SignedUpload,
        binding: Binding,
        now: UnixTime,
        keep_for_gossip: bool,
    ) -> Result<Admission, IntakeError> {
        let verified = self.verify(upload, binding, now)?;
        self.admit_verified_first(verified, now, keep_for_gossip)
    }

    fn admit_verified_first(
        &self,
        verified: VerifiedUpload,
        now: UnixTime,
        keep_for_gossip: bool,
    ) -> Result<Admission, IntakeError> {
        let binding = *verified.binding();
        let test_type = verified.upload().certificate.certificate.test_type;
        if !matches!(
            test_type,
            ReportType::ConfirmedTest
                | ReportType::ConfirmedClinicalDiagnosis
                | ReportType::SelfReport
        ) {
            return Err(IntakeError::ReportTypeNotAllowed(test_type));
        }
        let upload_id = verified.id();
        let gossip = keep_for_gossip.then(|| verified.clone());
        let upload = verified.into_inner();
        let certificate = upload.certificate.certificate.clone();
        let releases = self.release_times(&upload.contents, now);
        let enqueue = group_entries(upload_id, &upload.contents, &releases);
        let commit = UploadCommit {
            certificate: (certificate.id, self.certificate_purge_at(&certificate)),
            relayed: false,
            binding,
            consume_revision: None,
            upload: (
                upload_id,
                StoredUpload {
                    received_at: self.arrival_period(now),
                    upload,
                    releases: releases.into_iter().map(Some).collect(),
                },
                self.upload_purge_at(now),
            ),
            update_original: None,
            dequeue: Vec::new(),
            enqueue,
        };
        let v1 = binding == Binding::Unbound;
        let receipt = UploadReceipt {
            kind: UploadKind::First,
            certificate: certificate.id,
            upload: upload_id,
            v1,
            answer: v1.then(|| self.revision_tokens.token(&certificate.id)),
        };
        Ok(Admission::Commit(Box::new(PlannedUpload {
            commit,
            receipt,
            gossip,
        })))
    }

    fn admit_revision(
        &self,
        store: &dyn ReportStore,
        verified: VerifiedUpload,
        proof: Proof<'_>,
        now: UnixTime,
        keep_for_gossip: bool,
    ) -> Result<Admission, IntakeError> {
        let upload_id = verified.id();
        let certificate_id = verified.upload().certificate.certificate.id;
        let v1 = matches!(proof, Proof::Token(_));
        let gossip = keep_for_gossip.then(|| verified.clone());
        match self.plan_revision(store, verified, proof, false, now) {
            // A revision is never revised again (only `likely` is), so its token would
            // grant nothing; a version 1 phone still gets one, as it always did.
            Ok(commit) => Ok(Admission::Commit(Box::new(PlannedUpload {
                commit,
                receipt: UploadReceipt {
                    kind: UploadKind::Revision,
                    certificate: certificate_id,
                    upload: upload_id,
                    v1,
                    answer: v1.then(|| self.revision_tokens.token(&certificate_id)),
                },
                gossip,
            }))),
            // The revision may have gone through already, its answer lost.
            Err(
                e @ (IntakeError::InvalidRevisionToken | IntakeError::InvalidRevisionSignature),
            ) => self
                .replayed(store, &certificate_id, upload_id, v1)?
                .map(Admission::Replayed)
                .ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// A retried request whose first answer was lost: if `certificate` was used by this
    /// very upload (byte for byte: the id is its content address), accepted here from a
    /// phone, the original answer: the token only to a version 1 request (`v1`) for an
    /// upload stored without a revision key, so that wrapping a version 2 upload's bytes in
    /// a version 1 frame gains nothing. `None` when it is no replay.
    fn replayed(
        &self,
        store: &dyn ReportStore,
        certificate: &CertificateId,
        upload: UploadId,
        v1: bool,
    ) -> Result<Option<UploadAnswer>, StoreError> {
        let mark = store.certificate_use(certificate)?;
        Ok(mark
            .filter(|m| m.upload == upload && m.state != CertificateState::Relayed)
            .map(|m| {
                (v1 && m.binding == Binding::Unbound)
                    .then(|| self.revision_tokens.token(certificate))
            }))
    }

    /// Plans a revision: entries not yet published move to the revised upload with the new
    /// type (revoked ones are dropped); `gaen` keys already published are published again
    /// with the new type, so phones learn of the change. (`pet` tokens carry no type:
    /// published ones cannot be withdrawn.) The same for a phone's revision and for one a
    /// peer `relayed`, so every node that holds a report publishes its final state once.
    pub(crate) fn plan_revision(
        &self,
        store: &dyn ReportStore,
        verified: VerifiedUpload,
        proof: Proof<'_>,
        relayed: bool,
        now: UnixTime,
    ) -> Result<UploadCommit, IntakeError> {
        let (original_certificate, record) = self.check_proof(store, &verified, proof)?;
        let upload_id = verified.id();
        let binding = *verified.binding();
        let upload = verified.into_inner();
        let mut original = store.upload(&record.upload)?.ok_or(match proof {
            Proof::Token(_) => IntakeError::InvalidRevisionToken,
            Proof::Signed => IntakeError::InvalidRevisionSignature,
        })?;
        // The same authority: the same key id, and (64-bit ids can collide) the same key,
        // the one of the keys with that id that signed each certificate.
        if original.upload.certificate.certificate.authority
            != upload.certificate.certificate.authority
            || original.upload.certificate.signer(&self.trusted).ok()
                != upload.certificate.signer(&self.trusted).ok()
        {
            return Err(IntakeError::RevisionAuthorityMismatch);
        }
        let from = original.upload.certificate.certificate.test_type;
        let to = upload.certificate.certificate.test_type;
        let allowed = from == ReportType::ConfirmedClinicalDiagnosis
            && matches!(to, ReportType::ConfirmedTest | ReportType::Revoked);
        if !allowed {
            return Err(IntakeError::RevisionNotAllowed { from, to });
        }
        if original.upload.contents.scheme() != upload.contents.scheme() {
            return Err(IntakeError::RevisionMismatch);
        }
        let originals = entries_of(&original.upload.contents);
        let revised = entries_of(&upload.contents);
        let mut regroups: BTreeMap<QueueKey, QueuedGroup> = BTreeMap::new();
        let mut releases = Vec::with_capacity(revised.len());
        let mut revised_entries = Vec::with_capacity(revised.len());
        for (entry_id, entry) in &revised {
            let index = originals
                .iter()
                .position(|(id, _)| id == entry_id)
                .ok_or(IntakeError::RevisionMismatch)?;
            let queued = match original.releases[index] {
                Some(release_at) => {
                    let key = QueueKey {
                        release_at,
                        upload: record.upload,
                    };
                    match regroups.get(&key) {
                        Some(group) => Some(group.clone()),
                        None => store.queued(&key)?,
                    }
                    .map(|group| (key, group))
                }
                None => None,
            };
            let (release, queued_entry) = match queued {
                Some((key, mut group)) => {
                    // Not published yet: take it out of the original's group.
                    group.retain(|e| entry_key(e) != *entry_id);
                    regroups.insert(key, group);
                    original.releases[index] = None;
                    (
                        (to != ReportType::Revoked).then_some(key.release_at),
                        entry.clone(),
                    )
                }
                None => {
                    published_again(entry, self.release_slot(entry_id, self.release_floor(now)))
                }
            };
            releases.push(release);
            revised_entries.push(queued_entry);
        }
        let mut dequeue = Vec::new();
        let mut enqueue: Vec<(QueueKey, QueuedGroup)> = Vec::new();
        for (key, group) in regroups {
            dequeue.push(key);
            if !group.is_empty() {
                enqueue.push((key, group));
            }
        }
        let mut new_groups: BTreeMap<UnixTime, QueuedGroup> = BTreeMap::new();
        for (entry, release) in revised_entries.into_iter().zip(&releases) {
            if let Some(at) = release {
                new_groups.entry(*at).or_default().push(entry);
            }
        }
        enqueue.extend(new_groups.into_iter().map(|(release_at, group)| {
            (
                QueueKey {
                    release_at,
                    upload: upload_id,
                },
                group,
            )
        }));
        let certificate = upload.certificate.certificate.clone();
        // Kept as long as a relayed upload or a phone's, whichever this is.
        let purge_at = if relayed {
            self.relayed_upload_purge_at(&certificate, now)
        } else {
            self.upload_purge_at(now)
        };
        Ok(UploadCommit {
            certificate: (certificate.id, self.certificate_purge_at(&certificate)),
            relayed,
            binding,
            consume_revision: Some(original_certificate),
            upload: (
                upload_id,
                StoredUpload {
                    received_at: self.arrival_period(now),
                    upload,
                    releases,
                },
                purge_at,
            ),
            update_original: Some((record.upload, original)),
            dequeue,
            enqueue,
        })
    }
}

/// What authorises a revision.
#[derive(Copy, Clone)]
pub(crate) enum Proof<'a> {
    /// Version 1: the node's token from the first upload's answer.
    Token(&'a [u8]),
    /// Version 2: the verified upload's [`Binding::Revision`] (its HMAC covers the key, its
    /// signature verified under it), which must name an upload stored with that key.
    Signed,
}

impl NodeCore {
    /// The original upload's certificate id and mark, if `proof` authorises revising it:
    /// a token opens only to a version 1 upload accepted here; a signed revision (already
    /// verified under its key) only to the upload it names, stored (from a phone or a peer)
    /// with that same key, and not revised yet.
    fn check_proof(
        &self,
        store: &dyn ReportStore,
        revision: &VerifiedUpload,
        proof: Proof<'_>,
    ) -> Result<(CertificateId, CertificateUse), IntakeError> {
        match (proof, *revision.binding()) {
            (Proof::Token(token), Binding::Unbound) => {
                let id = self
                    .revision_tokens
                    .open(token)
                    .ok_or(IntakeError::InvalidRevisionToken)?;
                let mark = store
                    .certificate_use(&id)?
                    .filter(|mark| {
                        mark.state == CertificateState::Accepted && mark.binding == Binding::Unbound
                    })
                    .ok_or(IntakeError::InvalidRevisionToken)?;
                Ok((id, mark))
            }
            (
                Proof::Signed,
                Binding::Revision { key, revises, .. }
                | Binding::TokenRevision { key, revises, .. },
            ) => {
                let mark = store
                    .certificate_use(&revises)?
                    .filter(|mark| mark.state.revisable() && mark.binding == Binding::Upload(key))
                    .ok_or(IntakeError::InvalidRevisionSignature)?;
                Ok((revises, mark))
            }
            (Proof::Token(_), _) => Err(IntakeError::InvalidRevisionToken),
            (Proof::Signed, _) => Err(IntakeError::InvalidRevisionSignature),
        }
    }
}

/// How an entry is told apart from others of its report: the TEK or the token bytes.
fn entry_key(entry: &QueuedEntry) -> [u8; 16] {
    match entry {
        QueuedEntry::Key(k) | QueuedEntry::RevisedKey(k) => *k.key.as_bytes(),
        QueuedEntry::Token(t) => t.token.0,
    }
}

/// A revised entry that was published already: `gaen` keys go out again at `slot` (the
/// key's own release slot from the revision's arrival on, so one revision's keys are spread
/// apart as a first upload's are), as revised keys with the new type; `pet` tokens have no
/// type to change.
fn published_again(entry: &QueuedEntry, slot: UnixTime) -> (Option<UnixTime>, QueuedEntry) {
    match entry {
        QueuedEntry::Key(k) | QueuedEntry::RevisedKey(k) => {
            (Some(slot), QueuedEntry::RevisedKey(k.clone()))
        }
        QueuedEntry::Token(_) => (None, entry.clone()),
    }
}
