//! Federation intake: what a report relayed by a peer must pass to be stored here and
//! published in this node's batches. The federation layer has verified it already
//! (signature, HMAC, a trusted authority, the relayed expiry policy, the report rules);
//! here it meets the same single-use rule and embargo as a phone's upload. A revoked
//! report or one of a scheme this node does not accept is stored (so catch-up stays
//! complete) but not published.
//!
//! A relayed upload keeps its [`Binding`](ephemera_proto::revision::Binding) in its certificate's mark: a first upload's
//! revision key, so a revision signed with it is accepted here too, whichever node the phone
//! sent it to; a revision's key and signature, so catch-up serves it as it came. A relayed
//! signed revision is applied as a phone's revision is (`NodeCore::plan_revision`), once:
//! the original's mark becomes revised, and a second copy finds the revision stored.

use ephemera_proto::UnixTime;
use ephemera_proto::report::ReportType;
use ephemera_proto::upload::{UploadId, VerifiedUpload};

use crate::NodeCore;
use crate::intake::{IntakeError, Proof};
use crate::publication::group_entries;
use crate::store::{CommitOutcome, ReportStore, StoreError, StoredUpload, UploadCommit};

/// What to do with a relayed upload.
#[derive(Debug)]
pub enum RelayAdmission {
    /// It is stored here already: nothing to write, nothing to forward.
    AlreadyStored,
    /// Apply this commit durably, then [`NodeCore::settle_relayed`].
    Commit(Box<UploadCommit>),
    /// A revision of an upload this node does not hold (yet): nothing is written. Gossip
    /// ignores it; catch-up fetches it again in a later round, once the original is here.
    OriginalMissing,
    /// A revision this node cannot apply: the upload it names was revised already, is bound
    /// to another key, or the change is not one a revision may make (`docs/PROTOCOL.md`
    /// §5.1). Nothing is written.
    RevisionRefused,
}

/// What became of a relayed upload.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RelayOutcome {
    /// Newly and durably stored: forward it.
    Stored,
    /// Stored before: nothing changed.
    AlreadyStored,
    /// Its certificate was used by another upload: not stored, not forwarded.
    CertificateUsed,
    /// A revision whose original was revised meanwhile: not stored, not forwarded.
    RevisionRefused,
}

impl NodeCore {
    /// Plans the storing of an upload a peer relayed. Nobody holds a revision token for it
    /// here: its single-use mark says it was relayed, and keeps its binding. A signed
    /// revision (its [`Binding`](ephemera_proto::revision::Binding) names the upload it
    /// revises, and verified under its key) is planned as a phone's is.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn admit_relayed(
        &self,
        store: &dyn ReportStore,
        upload: VerifiedUpload,
        now: UnixTime,
    ) -> Result<RelayAdmission, StoreError> {
        let id = upload.id();
        if store.upload(&id)?.is_some() {
            return Ok(RelayAdmission::AlreadyStored);
        }
        let scheme = upload.contents().scheme();
        let binding = *upload.binding();
        if let Some(revises) = binding.revises() {
            if store.certificate_use(&revises)?.is_none() {
                return Ok(RelayAdmission::OriginalMissing);
            }
            return match self.plan_revision(store, upload, Proof::Signed, true, now) {
                Ok(mut commit) => {
                    if !self.policy.accepts(scheme) {
                        // Never published here: nothing to publish again either.
                        commit.enqueue.clear();
                        commit.upload.1.releases.fill(None);
                    }
                    Ok(RelayAdmission::Commit(Box::new(commit)))
                }
                Err(IntakeError::Store(e)) => Err(e),
                Err(_) => Ok(RelayAdmission::RevisionRefused),
            };
        }
        let upload = upload.into_inner();
        let certificate = upload.certificate.certificate.clone();
        let publish = certificate.test_type != ReportType::Revoked && self.policy.accepts(scheme);
        let releases = self.release_times(&upload.contents, now);
        let enqueue = if publish {
            group_entries(id, &upload.contents, &releases)
        } else {
            Vec::new()
        };
        Ok(RelayAdmission::Commit(Box::new(UploadCommit {
            certificate: (certificate.id, self.certificate_purge_at(&certificate)),
            relayed: true,
            binding,
            consume_revision: None,
            upload: (
                id,
                StoredUpload {
                    received_at: self.arrival_period(now),
                    upload,
                    releases: releases.into_iter().map(|r| publish.then_some(r)).collect(),
                },
                self.relayed_upload_purge_at(&certificate, now),
            ),
            update_original: None,
            dequeue: Vec::new(),
            enqueue,
        })))
    }

    /// What a relayed upload's applied commit means.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn settle_relayed(
        &self,
        store: &dyn ReportStore,
        id: &UploadId,
        outcome: CommitOutcome,
    ) -> Result<RelayOutcome, StoreError> {
        Ok(match outcome {
            CommitOutcome::Committed => RelayOutcome::Stored,
            // A concurrent relay of the same upload won.
            _ if store.upload(id)?.is_some() => RelayOutcome::AlreadyStored,
            CommitOutcome::RevisionTokenUnknown => RelayOutcome::RevisionRefused,
            CommitOutcome::CertificateUsed => RelayOutcome::CertificateUsed,
        })
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::auth::{CertificateRequest, ExpiryPolicy, ReportHmacKey};
    use ephemera_proto::pet::EncounterToken;
    use ephemera_proto::report::{PublishedToken, ReportContents};
    use ephemera_proto::revision::{Binding, HmacBinding, RevisionKey, RevisionSecret};
    use ephemera_proto::upload::SignedUpload;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::store::{CertificateState, MemoryReportStore, ReportStore};

    const NOW: UnixTime = UnixTime(1_700_000_000);

    /// `contents` certified by `core`'s authority as `test_type`, its HMAC bound to `binding`.
    fn certified(
        core: &NodeCore,
        rng: &mut ChaCha20Rng,
        test_type: ReportType,
        binding: HmacBinding,
    ) -> SignedUpload {
        let contents = ReportContents::Pet(vec![PublishedToken {
            day: NOW.day(),
            token: EncounterToken([6; 16]),
        }]);
        let hmac_key = ReportHmacKey::generate(rng);
        let request = CertificateRequest {
            report_hmac: hmac_key.authenticate_bound(&contents, binding),
            test_type,
            symptom_onset: None,
        };
        SignedUpload {
            contents,
            certificate: core.keys().authority.issue(&request, NOW, 3600, rng),
            hmac_key,
        }
    }

    /// A revision to `test_type` of `original`, certified for `key` and signed by `signer`,
    /// verified as a peer's relay.
    fn revision(
        core: &NodeCore,
        rng: &mut ChaCha20Rng,
        original: &SignedUpload,
        test_type: ReportType,
        key: RevisionKey,
        signer: &RevisionSecret,
    ) -> VerifiedUpload {
        let upload = certified(core, rng, test_type, HmacBinding::Revision(key));
        let revises = original.certificate.certificate.id;
        let binding = Binding::Revision {
            key,
            revises,
            signature: signer.sign(&revises, &upload.certificate),
        };
        relayed(core, upload, binding)
    }

    fn relayed(core: &NodeCore, upload: SignedUpload, binding: Binding) -> VerifiedUpload {
        upload
            .verify_bound(
                binding,
                core.trusted(),
                NOW,
                ExpiryPolicy::Relayed { retention_days: 14 },
                core.limits(),
            )
            .unwrap()
    }

    fn apply(core: &NodeCore, store: &dyn ReportStore, upload: VerifiedUpload) -> RelayOutcome {
        let id = upload.id();
        match core.admit_relayed(store, upload, NOW).unwrap() {
            RelayAdmission::Commit(commit) => {
                let outcome = store.commit_upload(&commit).unwrap();
                core.settle_relayed(store, &id, outcome).unwrap()
            }
            other => panic!("not planned: {other:?}"),
        }
    }

    /// A relayed signed revision waits for its report, is refused under another key than
    /// the one kept with the report (a forger's own, certified for it), is applied once
    /// under the report's key, and nothing revises the report again.
    #[test]
    fn a_relayed_revision_needs_its_report_here_under_its_key_and_applies_once() {
        let core = crate::tests::core();
        let store = MemoryReportStore::new();
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        let phone = RevisionSecret::from_seed(&[1; 32]);
        let forger = RevisionSecret::from_seed(&[2; 32]);
        let key = phone.key();
        let original = certified(
            &core,
            &mut rng,
            ReportType::ConfirmedClinicalDiagnosis,
            HmacBinding::Upload(key),
        );
        let confirmed = revision(
            &core,
            &mut rng,
            &original,
            ReportType::ConfirmedTest,
            key,
            &phone,
        );

        assert!(matches!(
            core.admit_relayed(&store, confirmed.clone(), NOW).unwrap(),
            RelayAdmission::OriginalMissing
        ));
        let first = relayed(&core, original.clone(), Binding::Upload(key));
        assert_eq!(apply(&core, &store, first), RelayOutcome::Stored);
        let mark = store
            .certificate_use(&original.certificate.certificate.id)
            .unwrap()
            .unwrap();
        assert_eq!(
            (mark.state, mark.binding),
            (CertificateState::Relayed, Binding::Upload(key))
        );

        let forged = revision(
            &core,
            &mut rng,
            &original,
            ReportType::Revoked,
            forger.key(),
            &forger,
        );
        assert!(matches!(
            core.admit_relayed(&store, forged, NOW).unwrap(),
            RelayAdmission::RevisionRefused
        ));

        assert_eq!(
            apply(&core, &store, confirmed.clone()),
            RelayOutcome::Stored
        );
        assert!(matches!(
            core.admit_relayed(&store, confirmed, NOW).unwrap(),
            RelayAdmission::AlreadyStored
        ));
        let revoked = revision(&core, &mut rng, &original, ReportType::Revoked, key, &phone);
        assert!(matches!(
            core.admit_relayed(&store, revoked, NOW).unwrap(),
            RelayAdmission::RevisionRefused
        ));
    }
}
