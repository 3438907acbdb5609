//! What the event loop shares with the tasks it spawns (gossip verification, catch-up
//! rounds, answers to catch-up requests): their common state, the messages they send back,
//! and how a catch-up round ends.
//!
//! Both [`super::event_loop`] and [`super::session`] import this module; neither imports the
//! other's internals.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use ephemera_proto::upload::{UploadId, VerifiedUpload};
use ephemera_proto::venue::ReleaseId;
use libp2p::{PeerId, gossipsub, request_response};
use tokio::sync::oneshot;

use super::Clock;
use super::store::{FederationStore, StoreError};
use super::sync::{SyncReply, SyncRequest, SyncResponse};
use super::validate::{Verdict, Verifier};
use super::venue_releases::ReleasesAnswer;

/// Most ids remembered in [`Shared::refused`].
const MAX_REFUSED: usize = 65_536;

/// What the loop's tasks share.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn FederationStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) verifier: Verifier,
    pub(crate) page_size: usize,
    pub(crate) fetch_batch: usize,
    pub(crate) republish_synced: bool,
    /// Most id pages one catch-up round asks for.
    pub(crate) round_pages: usize,
    /// Ids fetched by catch-up and not stored (too old here, certificate already used,
    /// invalid), so later rounds do not fetch them again. Cleared when full.
    refused: Mutex<HashSet<UploadId>>,
}

impl Shared {
    pub(crate) fn new(
        store: Arc<dyn FederationStore>,
        clock: Arc<dyn Clock>,
        verifier: Verifier,
        page_size: usize,
        fetch_batch: usize,
        republish_synced: bool,
        round_pages: usize,
    ) -> Self {
        Shared {
            store,
            clock,
            verifier,
            page_size,
            fetch_batch,
            republish_synced,
            round_pages,
            refused: Mutex::new(HashSet::new()),
        }
    }

    /// Remembers an id not to fetch again.
    pub(crate) fn refuse(&self, id: UploadId) {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.len() >= MAX_REFUSED {
            refused.clear();
        }
        refused.insert(id);
    }

    /// `ids` without those refused earlier.
    pub(crate) fn not_refused(&self, ids: Vec<UploadId>) -> Vec<UploadId> {
        let refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        ids.into_iter().filter(|id| !refused.contains(id)).collect()
    }
}

/// Messages from the loop's own tasks.
pub(crate) enum Internal {
    /// A gossiped message was checked.
    Verdict {
        message_id: gossipsub::MessageId,
        source: PeerId,
        verdict: Verdict,
    },
    /// A catch-up round asks the loop to send a request to its peer.
    SyncRequest {
        peer: PeerId,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, SyncFailure>>,
    },
    /// The answer to a peer's catch-up request is ready.
    Respond {
        channel: request_response::ResponseChannel<SyncReply>,
        response: SyncReply,
    },
    /// A catch-up round ended.
    SessionDone {
        peer: PeerId,
        result: Result<SessionReport, SyncFailure>,
    },
    /// A peer broke the catch-up protocol.
    Penalize { peer: PeerId, reason: &'static str },
    /// An upload stored by catch-up, to gossip on.
    Republish(VerifiedUpload),
    /// A phone's upload whose publish delay has passed.
    PublishNow(VerifiedUpload),
    /// The venue-release ask for a peer is ready: the ids held or refused here.
    AskReleases { peer: PeerId, have: Vec<ReleaseId> },
    /// The answer to a peer's venue-release ask is ready.
    AnswerReleases {
        channel: request_response::ResponseChannel<ReleasesAnswer>,
        frames: Vec<Vec<u8>>,
    },
    /// A peer's ask listed releases missing here: ask it back.
    ReleasesWanted { peer: PeerId },
    /// A peer's venue releases were checked: `stored` were new; `ask_again` when its answer
    /// was full or cut short.
    ReleasesTaken {
        peer: PeerId,
        stored: usize,
        ask_again: bool,
    },
}

/// Why a catch-up round stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncFailure {
    /// The request failed on the network (timeout, connection closed, unsupported, or the
    /// peer could not read its own store and sent no answer).
    #[error("request failed: {0}")]
    Outbound(String),
    /// The peer answered something it should not have; it has been penalised.
    #[error("peer broke the sync protocol: {0}")]
    Protocol(&'static str),
    /// This node's store failed: the round stops, the peer is not blamed, and nothing is
    /// taken as missing here.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The round used up its budget (`"pages"` or `"time"`) and stopped; the next round
    /// goes on from what is stored by then. Not the peer's fault by itself: a long backlog
    /// can need several rounds.
    #[error("round budget used up: {0}")]
    Budget(&'static str),
    /// The event loop is gone.
    #[error("federation stopped")]
    Stopped,
}

impl SyncFailure {
    /// The `result` label of `ephemera_federation_sync_rounds_total`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            SyncFailure::Store(_) => "store-error",
            SyncFailure::Budget(_) => "budget",
            _ => "failed",
        }
    }
}

/// What a round found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SessionReport {
    /// Days whose digests differed.
    pub(crate) days_differing: usize,
    /// Uploads the peer had and this node lacked.
    pub(crate) missing: usize,
    /// Uploads fetched, verified and newly stored.
    pub(crate) stored: usize,
    /// Id pages asked for.
    pub(crate) pages: usize,
}
