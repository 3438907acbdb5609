//! Catch-up: the `SYNC_PROTOCOL` request-response protocol and its messages.
//!
//! A node reconciles with a peer day by day over the retention window, in three steps, each
//! bounded:
//!
//! 1. [`SyncRequest::Digests`]: the peer's [`DayDigest`](super::DayDigest) (count and XOR
//!    of ids) for each day of the window. Days whose digests match are done.
//! 2. [`SyncRequest::Ids`]: for a day that differs, the peer's ids of that day in ascending
//!    pages after a cursor. The node keeps those it lacks.
//! 3. [`SyncRequest::FetchReports`]: those uploads with their bindings (revision keys,
//!    revisions' signatures), a batch at a time, each re-verified exactly like gossip before
//!    it is stored. (A node of version 1 asks [`SyncRequest::Fetch`] and gets the unbound
//!    uploads only, which are all it can check.)
//!
//! Both sides start a round on every new connection and every `sync_interval`, so after a
//! restart or a partition each side pulls what it missed and the two converge. The
//! responder clamps every range: never a day outside the retention window, never more than
//! [`MAX_DIGEST_DAYS`] digests, [`MAX_IDS_PER_PAGE`] ids or [`MAX_FETCH_IDS`] uploads, and
//! never more than [`MAX_UPLOAD_BYTES`] (or the node's smaller page,
//! `FederationConfig::max_fetch_response_bytes`) of uploads in one response. A `Fetch` that
//! names one id many times is answered once per id: the ids are deduplicated before
//! anything is read.
//!
//! An answer is encoded as soon as it is built and travels to the stream as a
//! [`SyncReply`]: its frame bytes, and the share of the node's in-flight response budget
//! (per peer and in total) that it holds until the frame is written or dropped (the
//! request timed out, the connection closed). So what slow readers can pin in memory is the
//! budget, not the number of streams times the largest answer.
//!
//! On the stream a message is a 4-byte big-endian length, then a [`proto::wire`] frame
//! (`SYNC_REQUEST` or `SYNC_RESPONSE` kind); the length is checked against the kind's cap
//! before anything is read.
//!
//! [`proto::wire`]: ephemera_proto::wire

use std::collections::HashSet;
use std::io;

use ephemera_proto::DayNumber;
use ephemera_proto::federated::{self, FederatedReport};
use ephemera_proto::revision::Binding;
pub use ephemera_proto::sync::{
    MAX_DIGEST_DAYS, MAX_FETCH_IDS, MAX_IDS_PER_PAGE, MAX_UPLOAD_BYTES, SyncRequest, SyncResponse,
};
use ephemera_proto::upload::UploadId;
use ephemera_proto::wire::WireMessage;
use futures::{AsyncRead, AsyncWrite};
use libp2p::StreamProtocol;
use libp2p::request_response;
use tokio::sync::OwnedSemaphorePermit;

use super::frame::{decode, encode_capped, read_frame, write_frame};
use super::store::{FederationStore, StoreError, sync_day};

/// The catch-up protocol's name.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/ephemera/sync/1");

/// The retention window at `today`: the oldest day still kept, and the newest day accepted
/// (tomorrow, for clock skew).
pub(crate) fn window(today: DayNumber, retention_days: u32) -> (DayNumber, DayNumber) {
    (today.minus(retention_days), today.plus(1))
}

/// Answers `request` from `store` at `today`, with uploads up to [`MAX_UPLOAD_BYTES`] in one
/// response. Pure apart from reading the store.
///
/// # Errors
/// [`StoreError`] if a read failed: the caller sends no answer rather than a partial or
/// empty one, which the peer would take for what this node holds.
#[cfg(test)]
pub(crate) fn answer(
    store: &dyn FederationStore,
    request: SyncRequest,
    today: DayNumber,
    retention_days: u32,
) -> Result<SyncResponse, StoreError> {
    answer_within(store, request, today, retention_days, MAX_UPLOAD_BYTES)
}

/// Answers `request` from `store` at `today`; a `Fetch` answer stops before
/// `max_upload_bytes` of uploads (but always holds one upload if any is found, so a single
/// large upload can still be fetched). Duplicate ids in a `Fetch` are looked up once.
///
/// # Errors
/// [`StoreError`] if a read failed: the caller sends no answer rather than a partial or
/// empty one, which the peer would take for what this node holds.
pub(crate) fn answer_within(
    store: &dyn FederationStore,
    request: SyncRequest,
    today: DayNumber,
    retention_days: u32,
    max_upload_bytes: usize,
) -> Result<SyncResponse, StoreError> {
    let max_upload_bytes = max_upload_bytes.min(MAX_UPLOAD_BYTES);
    let (oldest, newest) = window(today, retention_days);
    let in_window = |day: DayNumber| day >= oldest && day <= newest;
    match request {
        SyncRequest::Digests { from, to } => {
            let from = from.max(oldest);
            let to = to.min(newest).min(from.plus(MAX_DIGEST_DAYS - 1));
            let mut days = Vec::new();
            let mut day = from;
            while day <= to {
                let digest = store.day_digest(day)?;
                if digest.count > 0 {
                    days.push(digest);
                }
                if day == to {
                    break;
                }
                day = day.plus(1);
            }
            Ok(SyncResponse::Digests { from, to, days })
        }
        SyncRequest::Ids { day, after, limit } => {
            if !in_window(day) {
                return Ok(SyncResponse::Ids {
                    day,
                    ids: Vec::new(),
                    more: false,
                });
            }
            let limit = (limit as usize).clamp(1, MAX_IDS_PER_PAGE);
            let mut ids = store.ids_for_day(day, after, limit + 1)?;
            let more = ids.len() > limit;
            ids.truncate(limit);
            Ok(SyncResponse::Ids { day, ids, more })
        }
        SyncRequest::Fetch { ids } => {
            // A node of version 1 could not check a bound upload's HMAC: it gets only the
            // unbound ones.
            let reports = fetch(store, &ids, in_window, max_upload_bytes, true)?;
            Ok(SyncResponse::Uploads {
                uploads: reports.into_iter().map(|r| r.upload).collect(),
            })
        }
        SyncRequest::FetchReports { ids } => Ok(SyncResponse::Reports {
            reports: fetch(store, &ids, in_window, max_upload_bytes, false)?,
        }),
    }
}

/// The stored reports of `ids` (the first [`MAX_FETCH_IDS`], each once) filed in the
/// window, up to `max_upload_bytes` (always one if any is found); only unbound ones when
/// `unbound_only`.
fn fetch(
    store: &dyn FederationStore,
    ids: &[UploadId],
    in_window: impl Fn(DayNumber) -> bool,
    max_upload_bytes: usize,
    unbound_only: bool,
) -> Result<Vec<FederatedReport>, StoreError> {
    let mut reports = Vec::new();
    let mut bytes = 0usize;
    let mut seen = HashSet::new();
    for id in ids.iter().take(MAX_FETCH_IDS) {
        if !seen.insert(*id) {
            continue;
        }
        let Some(report) = store.get(id)? else {
            continue;
        };
        if !in_window(sync_day(&report.upload))
            || (unbound_only && report.binding != Binding::Unbound)
        {
            continue;
        }
        let size = federated::encode(&report).len();
        if !reports.is_empty() && bytes + size > max_upload_bytes {
            break;
        }
        bytes += size;
        reports.push(report);
    }
    Ok(reports)
}

/// Checks that an ids page is what was asked for: ascending, after the cursor, no longer
/// than the limit.
pub(crate) fn ids_page_is_valid(ids: &[UploadId], after: Option<UploadId>, limit: usize) -> bool {
    ids.len() <= limit
        && ids.windows(2).all(|w| w[0] < w[1])
        && match (after, ids.first()) {
            (Some(after), Some(first)) => *first > after,
            _ => true,
        }
}

/// A catch-up response as the codec carries it: decoded when read from a peer, already
/// encoded (with the budget it holds) when this node answers.
#[derive(Debug)]
pub enum SyncReply {
    /// A response read from a peer.
    Received(SyncResponse),
    /// A response this node built: its `proto::wire` frame, written as is.
    Outgoing(OutgoingReply),
}

/// An encoded answer and the in-flight budget it holds; the budget returns when the frame
/// has been written or the reply is dropped.
pub struct OutgoingReply {
    frame: Vec<u8>,
    held: Vec<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for OutgoingReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingReply")
            .field("bytes", &self.frame.len())
            .finish()
    }
}

impl OutgoingReply {
    /// Encodes `response` (refusing one over its cap) and attaches `held`.
    ///
    /// # Errors
    /// If the encoding exceeds `SyncResponse::MAX_SIZE`.
    pub(crate) fn encode(
        response: &SyncResponse,
        held: Vec<OwnedSemaphorePermit>,
    ) -> io::Result<Self> {
        Ok(OutgoingReply {
            frame: encode_capped(response)?,
            held,
        })
    }

    /// Bytes of the frame.
    pub(crate) fn len(&self) -> usize {
        self.frame.len()
    }

    /// Takes the budget held, to resize it.
    pub(crate) fn take_held(&mut self) -> Vec<OwnedSemaphorePermit> {
        std::mem::take(&mut self.held)
    }

    /// Replaces the budget held (after the exact size is known).
    pub(crate) fn hold(&mut self, held: Vec<OwnedSemaphorePermit>) {
        self.held = held;
    }
}

impl From<SyncResponse> for SyncReply {
    fn from(response: SyncResponse) -> Self {
        SyncReply::Received(response)
    }
}

impl SyncReply {
    /// The response, decoding an outgoing frame if need be.
    ///
    /// # Errors
    /// If an outgoing frame does not decode (it was encoded here, so only on a bug).
    pub fn into_response(self) -> io::Result<SyncResponse> {
        match self {
            SyncReply::Received(response) => Ok(response),
            SyncReply::Outgoing(reply) => decode(&reply.frame),
        }
    }
}

/// The `request_response` codec of [`SYNC_PROTOCOL`]: a length prefix with a cap, then a
/// `proto::wire` frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncCodec;

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncReply;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_frame(io, SyncRequest::MAX_SIZE).await?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncReply>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(SyncReply::Received(decode(
            &read_frame(io, SyncResponse::MAX_SIZE).await?,
        )?))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode_capped(&request)?).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: SyncReply,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match response {
            SyncReply::Received(response) => write_frame(io, &encode_capped(&response)?).await,
            // The reply, and the budget it holds, is dropped once written.
            SyncReply::Outgoing(reply) => write_frame(io, &reply.frame).await,
        }
    }
}
