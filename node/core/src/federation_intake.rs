//! Federation intake: what a report relayed by a peer must pass to be stored here and
//! published in this node's batches. The federation layer has verified it already
//! (signature, HMAC, a trusted authority, the relayed expiry policy, the report rules);
//! here it meets the same single-use rule and embargo as a phone's upload. A revoked
//! report or one of a scheme this node does not accept is stored (so catch-up stays
//! complete) but not published.

use ephemera_proto::UnixTime;
use ephemera_proto::report::ReportType;
use ephemera_proto::upload::{UploadId, VerifiedUpload};

use crate::NodeCore;
use crate::publication::{group_entries, release_times};
use crate::store::{CommitOutcome, ReportStore, StoreError, StoredUpload, UploadCommit};

/// What to do with a relayed upload.
#[derive(Debug)]
pub enum RelayAdmission {
    /// It is stored here already: nothing to write, nothing to forward.
    AlreadyStored,
    /// Apply this commit durably, then [`NodeCore::settle_relayed`].
    Commit(Box<UploadCommit>),
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
}

impl NodeCore {
    /// Plans the storing of an upload a peer relayed. Nobody holds a revision token for it
    /// here: its single-use mark says it was relayed.
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
        let upload = upload.into_inner();
        let certificate = upload.certificate.certificate.clone();
        let publish = certificate.test_type != ReportType::Revoked && self.policy.accepts(scheme);
        let releases = release_times(&upload.contents, self.release_floor(now));
        let enqueue = if publish {
            group_entries(id, &upload.contents, &releases)
        } else {
            Vec::new()
        };
        Ok(RelayAdmission::Commit(Box::new(UploadCommit {
            certificate: (certificate.id, self.certificate_purge_at(&certificate)),
            relayed: true,
            revision_key: None,
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
            _ => RelayOutcome::CertificateUsed,
        })
    }
}
