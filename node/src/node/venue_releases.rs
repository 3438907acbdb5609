//! Venue releases, driven (issue 20, `docs/PROTOCOL.md` §10.1): a case worker's trace made
//! into a release by the core, stored durably, served to phones and relayed to peers.
//!
//! Nothing here logs the trace code, the case's times or the message, nor keeps them: the
//! release holds the message sealed for the venue's visitors, and the rest not at all.

use ephemera_node_core::venue_release::TraceRequest;
use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};
use ephemera_proto::venue::{ReleaseId, ReleaseIndex, ReleaseIndexEntry};

use super::Node;
use crate::api::error::ApiError;
use crate::node::Session;

/// Most releases on one index page.
pub const RELEASE_INDEX_PAGE: usize = 256;

impl Node {
    /// `POST /v1/venue-traces`: makes, stores (durably) and publishes the release of a
    /// case worker's trace request; its index entry. The caller checked the session's
    /// role.
    ///
    /// # Errors
    /// [`ApiError::Sunset`] once a sunset order stopped the node; [`ApiError::VenueTrace`]
    /// for a bad request; [`ApiError::Store`].
    pub async fn trace_venue(
        &self,
        session: &Session,
        request: &TraceRequest<'_>,
    ) -> Result<ReleaseIndexEntry, ApiError> {
        self.refuse_after_sunset()?;
        let core = &self.inner.core;
        let now = self.now();
        let result = core.trace_venue(request, now, &mut rand::rng());
        let release = match result {
            Ok(release) => release,
            Err(error) => {
                let error = ApiError::VenueTrace(error);
                let actor = AuditActor::Account(session.account.clone());
                let action = AuditAction::VenueTraced {
                    release: String::new(),
                };
                return Err(self.refused(actor, action, error).await);
            }
        };
        let admitted = core
            .admit_venue_release(&release.to_bytes(), now)
            .map_err(|_| ApiError::Internal)?;
        let entry = core
            .store_venue_release(self.inner.store.as_ref(), &admitted, now)?
            .ok_or(ApiError::Internal)?;
        self.audit(
            AuditActor::Account(session.account.clone()),
            AuditAction::VenueTraced {
                release: entry.id.to_hex(),
            },
            AuditOutcome::Success,
        )?;
        self.inner.flusher.flush().await?;
        Ok(entry)
    }

    /// The frame of release `id`, if held.
    ///
    /// # Errors
    /// [`ApiError::Store`].
    pub fn venue_release(&self, id: &ReleaseId) -> Result<Option<Vec<u8>>, ApiError> {
        Ok(self.inner.store.venue_release(id)?)
    }

    /// A page of the releases held, after sequence `after`.
    ///
    /// # Errors
    /// [`ApiError::Store`].
    pub fn venue_release_index(&self, after: u64) -> Result<ReleaseIndex, ApiError> {
        let releases = self
            .inner
            .store
            .venue_release_index(after, RELEASE_INDEX_PAGE)?;
        let next_cursor = releases.last().map_or(after, |r| r.sequence);
        Ok(ReleaseIndex {
            releases,
            next_cursor,
        })
    }
}
