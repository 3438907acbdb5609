//! Uploads, driven: the core admits and settles them; group commit makes them durable
//! before the answer; accepted first uploads are gossiped.

use ephemera_node_core::intake::{Admission, PlannedUpload, Settled, UploadKind};
use ephemera_proto::api::UploadResponse;
use ephemera_proto::wire;

use crate::api::error::ApiError;

use super::{Answered, Node, random_bytes};

impl Node {
    /// Handles a `POST /v1/uploads` body: verifies, stores durably, then answers.
    ///
    /// # Errors
    /// The [`ApiError`] of the first failed check ([`ApiError::InsufficientStorage`] first,
    /// while free disk is below the reserve); rejections are counted by code.
    pub async fn upload(&self, body: &[u8]) -> Result<UploadResponse, ApiError> {
        self.upload_classified(body)
            .await
            .map(|(response, _)| response)
    }

    /// As [`Node::upload`], also saying whether the body was a decoy (for the sealed
    /// route's timing, `crate::node::phone_timing`).
    ///
    /// # Errors
    /// As [`Node::upload`].
    pub async fn upload_classified(
        &self,
        body: &[u8],
    ) -> Result<(UploadResponse, Answered), ApiError> {
        let result = self.upload_inner(body).await;
        if let Err(e) = &result {
            // Counted, never logged: a line per upload would date it (docs/SECURITY.md).
            self.inner.metrics.upload_rejected(e.code());
        }
        result
    }

    async fn upload_inner(&self, body: &[u8]) -> Result<(UploadResponse, Answered), ApiError> {
        // Before the body is read: a decoy is refused exactly like a real upload.
        self.refuse_after_sunset()?;
        self.refuse_below_disk_reserve()?;
        let core = &self.inner.core;
        let store = self.inner.store.as_ref();
        let request = core.decode_upload(body)?;
        if let Some(ended) = self.ended_authority() {
            use ephemera_proto::upload::UploadBody;
            let signed = match &request.body {
                UploadBody::RealV1(upload)
                | UploadBody::RevisionV1 { upload, .. }
                | UploadBody::Real { upload, .. }
                | UploadBody::Revision { upload, .. } => Some(upload),
                _ => None,
            };
            if signed.is_some_and(|u| u.certificate.certificate.authority == ended) {
                return Err(ApiError::Sunset);
            }
        }
        // A revision rewrites queue groups: hold publication still until it is applied.
        let _publication = match request.body.is_revision() {
            true => Some(self.inner.publication.lock().await),
            false => None,
        };
        // A decoy is answered as a real upload of its frame's version is.
        let v1 = body.first() == Some(&wire::WIRE_VERSION);
        let federation = self.federation_handle();
        let admission = core.admit_upload(store, request, self.now(), federation.is_some())?;
        let token = match admission {
            Admission::Decoy => {
                self.inner.metrics.decoy("upload");
                // A durable write's cost, as for a real upload.
                self.inner.flusher.flush().await?;
                let answer = v1.then(random_bytes::<32>);
                return Ok((upload_response(answer), Answered::Decoy));
            }
            Admission::Replayed(token) => {
                // The first request may still be in its group: answer only what is on disk.
                self.inner.flusher.flush().await?;
                self.inner.metrics.upload_replayed();
                token
            }
            Admission::Commit(planned) => {
                let PlannedUpload {
                    commit,
                    receipt,
                    gossip,
                } = *planned;
                let authority = commit.upload.1.upload.certificate.certificate.authority;
                // Group commit: returns once this upload's group is flushed to disk.
                let outcome = self.inner.committer.commit(commit).await?;
                let token = match core.settle_upload(store, &receipt, outcome)? {
                    Settled::Accepted(token) => token,
                    Settled::Replayed(token) => {
                        self.inner.flusher.flush().await?;
                        self.inner.metrics.upload_replayed();
                        return Ok((upload_response(token), Answered::Real));
                    }
                };
                let kind = match receipt.kind {
                    UploadKind::First => "real",
                    UploadKind::Revision => "revision",
                };
                self.inner.metrics.upload_accepted(kind, authority);
                // Gossip only what is durably stored. The federation adds its own random
                // delay (`[federation] publish_delay_ms`), so gossip timing does not mirror
                // the request.
                if let (Some(verified), Some(handle)) = (gossip, federation)
                    && let Err(e) = handle.publish(verified).await
                {
                    tracing::warn!(error = %e, "upload not gossiped (peers fetch it by catch-up)");
                }
                token
            }
        };
        Ok((upload_response(token), Answered::Real))
    }
}

/// The answer to an upload: its revision token in hex (version 1), or empty (version 2:
/// nothing that grants a power, `docs/PROTOCOL.md` §5.4).
fn upload_response(token: Option<[u8; 32]>) -> UploadResponse {
    UploadResponse {
        revision_token: token.map(hex::encode).unwrap_or_default(),
        padding: String::new(),
    }
}
