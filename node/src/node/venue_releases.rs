//! Venue releases, driven (issue 20, `docs/PROTOCOL.md` §10.1): a case worker's trace made
//! into a release by the core, stored durably, served to phones and relayed to peers.
//!
//! Nothing here logs the trace code, the case's times or the message, nor keeps them: the
//! release holds the message sealed for the venue's visitors, and the rest not at all.
//!
//! Peers' releases come through [`NodeReleases`], federation's keeper: the same checks as
//! this node's own (`NodeCore::admit_venue_release`), then the same store.

use std::sync::Weak;

use ephemera_node_core::venue_release::TraceRequest;
use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};
use ephemera_proto::venue::{ReleaseId, ReleaseIndex, ReleaseIndexEntry};
use futures::future::BoxFuture;

use super::{Inner, Node};
use crate::api::error::ApiError;
use crate::federation::{ReleaseAdmission, ReleaseKeeper};
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
        if let Some(federation) = self.federation_handle()
            && federation.offer_releases().await.is_err()
        {
            tracing::debug!("venue release not offered now: federation has stopped");
        }
        Ok(entry)
    }

    /// Takes a release frame a peer sent: held already, or checked and stored durably.
    async fn take_venue_release(&self, frame: Vec<u8>) -> ReleaseAdmission {
        if self.refuse_after_sunset().is_err() {
            return ReleaseAdmission::Refused { blame: false };
        }
        let node = self.clone();
        let taken = tokio::task::spawn_blocking(move || {
            let core = &node.inner.core;
            let now = node.now();
            let admitted = match core.admit_venue_release(&frame, now) {
                Ok(admitted) => admitted,
                Err(refusal) if refusal.is_for_later() => {
                    tracing::debug!(%refusal, "venue release from a peer not taken yet");
                    return Ok(ReleaseAdmission::Later);
                }
                Err(refusal) => {
                    tracing::debug!(%refusal, "venue release from a peer refused");
                    return Ok(ReleaseAdmission::Refused {
                        blame: refusal.blames_sender(),
                    });
                }
            };
            let stored = core.store_venue_release(node.inner.store.as_ref(), &admitted, now)?;
            Ok::<_, ApiError>(if stored.is_some() {
                ReleaseAdmission::Stored
            } else {
                ReleaseAdmission::Known
            })
        })
        .await;
        match taken {
            Ok(Ok(ReleaseAdmission::Stored)) => match self.inner.flusher.flush().await {
                Ok(()) => ReleaseAdmission::Stored,
                // Not durable: not counted as new, so it is not offered on yet; the peer
                // offers it again next round.
                Err(error) => {
                    tracing::warn!(%error, "venue release from a peer not flushed");
                    ReleaseAdmission::Known
                }
            },
            Ok(Ok(admission)) => admission,
            Ok(Err(error)) => {
                tracing::warn!(%error, "venue release from a peer not stored");
                ReleaseAdmission::Refused { blame: false }
            }
            Err(_) => ReleaseAdmission::Refused { blame: false },
        }
    }

    /// The ids of every release held, oldest first.
    fn held_venue_releases(&self) -> Result<Vec<ReleaseId>, ApiError> {
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .inner
                .store
                .venue_release_index(after, RELEASE_INDEX_PAGE)?;
            let Some(last) = page.last() else {
                return Ok(ids);
            };
            after = last.sequence;
            ids.extend(page.iter().map(|entry| entry.id));
        }
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

/// What federation calls to exchange releases: holds the node weakly, like its other
/// witnesses. A store failure offers nothing and answers with nothing: the peer is not
/// blamed, and the next round tries again.
pub(super) struct NodeReleases(pub(super) Weak<Inner>);

impl NodeReleases {
    fn node(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

impl ReleaseKeeper for NodeReleases {
    fn held(&self) -> BoxFuture<'static, Vec<ReleaseId>> {
        let node = self.node();
        Box::pin(async move {
            let Some(node) = node else {
                return Vec::new();
            };
            let held = tokio::task::spawn_blocking(move || node.held_venue_releases()).await;
            match held {
                Ok(Ok(ids)) => ids,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "venue releases held not read");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            }
        })
    }

    fn frames(&self, ids: Vec<ReleaseId>) -> BoxFuture<'static, Vec<Vec<u8>>> {
        let node = self.node();
        Box::pin(async move {
            let Some(node) = node else {
                return Vec::new();
            };
            tokio::task::spawn_blocking(move || {
                ids.iter()
                    .filter_map(|id| node.venue_release(id).ok().flatten())
                    .collect()
            })
            .await
            .unwrap_or_default()
        })
    }

    fn offered(&self, frame: Vec<u8>) -> BoxFuture<'static, ReleaseAdmission> {
        let node = self.node();
        Box::pin(async move {
            match node {
                Some(node) => node.take_venue_release(frame).await,
                None => ReleaseAdmission::Refused { blame: false },
            }
        })
    }
}
