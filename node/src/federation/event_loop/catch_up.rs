//! Catch-up, the event loop's side: starting a round per peer (run by
//! [`crate::federation::session`] in its own task), carrying its requests, finishing it, and
//! answering peers' requests from the store in blocking tasks.

use libp2p::{PeerId, request_response};
use tokio::sync::oneshot;

use super::EventLoop;
use super::scoring::{SYNC_FAULT_PENALTY, TIMEOUT_PENALTY};
use crate::federation::metrics;
use crate::federation::session;
use crate::federation::shared::{Internal, SessionReport, SyncFailure};
use crate::federation::sync::{
    MAX_DIGEST_DAYS, MAX_IDS_PER_PAGE, OutgoingReply, SyncReply, SyncRequest, SyncResponse,
    answer_within,
};

/// Bytes an answer's frame adds around its contents (wire header, lengths), reserved on
/// top of the estimate.
const FRAME_OVERHEAD: usize = 256;

impl EventLoop {
    /// Starts a round with every connected peer.
    pub(super) fn sync_all(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.say_hello(peer);
            self.exchange_heads(peer);
            self.exchange_sunset(peer);
            self.ask_releases(peer);
            self.start_session(peer);
        }
    }

    /// Starts a round with `peer`, or another one after the round already running.
    pub(super) fn start_session(&mut self, peer: PeerId) {
        if !self.config.catch_up || self.is_banned(&peer) {
            return;
        }
        if !self.sessions.insert(peer) {
            self.resync.insert(peer);
            return;
        }
        let shared = self.shared.clone();
        let tx = self.internal_tx.clone();
        let budget = self.config.sync_round_timeout;
        metrics::spawn(async move {
            let result = tokio::time::timeout(budget, session::run(peer, shared, tx.clone()))
                .await
                .unwrap_or(Err(SyncFailure::Budget("time")));
            let _ = tx.send(Internal::SessionDone { peer, result });
        });
    }

    pub(super) fn session_done(
        &mut self,
        peer: PeerId,
        result: Result<SessionReport, SyncFailure>,
    ) {
        self.sessions.remove(&peer);
        match result {
            Ok(report) => {
                metrics::sync_round("ok");
                metrics::sync_lag(report.days_differing, report.missing);
                if report.stored > 0 {
                    self.useful(peer);
                    tracing::info!(%peer, stored = report.stored, missing = report.missing, "caught up from peer");
                } else {
                    tracing::debug!(%peer, days = report.days_differing, "sync round done");
                }
            }
            Err(SyncFailure::Store(e)) => {
                metrics::sync_round("store-error");
                metrics::store_error("catch-up");
                tracing::warn!(%peer, error = %e, "sync round stopped: this node's store failed");
            }
            Err(SyncFailure::Budget(what)) => {
                metrics::sync_round("budget");
                tracing::info!(%peer, budget = what, "sync round stopped at its budget");
            }
            Err(e) => {
                metrics::sync_round(e.label());
                tracing::debug!(%peer, error = %e, "sync round failed");
            }
        }
        if self.resync.remove(&peer) && self.swarm.is_connected(&peer) {
            self.start_session(peer);
        }
    }

    /// Sends a round's request to its peer; the response goes to `reply`.
    pub(super) fn send_sync_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, SyncFailure>>,
    ) {
        if !self.swarm.is_connected(&peer) {
            let _ = reply.send(Err(SyncFailure::Outbound("not connected".into())));
            return;
        }
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.pending_requests.insert(id, reply);
    }

    pub(super) fn respond(
        &mut self,
        channel: request_response::ResponseChannel<SyncReply>,
        response: SyncReply,
    ) {
        if self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response)
            .is_err()
        {
            tracing::debug!("sync response dropped: connection closed");
        }
    }

    pub(super) fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncReply>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.answer_request(peer, request, channel),
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let response = response
                        .into_response()
                        .map_err(|e| SyncFailure::Outbound(e.to_string()));
                    let _ = reply.send(response);
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let cost = match &error {
                    request_response::OutboundFailure::Timeout => {
                        Some((TIMEOUT_PENALTY, "timeout"))
                    }
                    // Over the size cap, or not a valid frame: the answer cost this node a
                    // read for nothing. (A stream closed early is how an honest peer refuses
                    // when its budget is full: no cost.)
                    request_response::OutboundFailure::Io(e)
                        if e.kind() == std::io::ErrorKind::InvalidData =>
                    {
                        Some((SYNC_FAULT_PENALTY, "malformed-response"))
                    }
                    _ => None,
                };
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(SyncFailure::Outbound(error.to_string())));
                }
                if let Some((penalty, reason)) = cost {
                    self.charge(peer, penalty, reason);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed");
                match &error {
                    request_response::InboundFailure::Io(e)
                        if e.kind() == std::io::ErrorKind::InvalidData =>
                    {
                        self.charge(peer, SYNC_FAULT_PENALTY, "malformed-request");
                    }
                    // It did not read this node's answer in time.
                    request_response::InboundFailure::Timeout => {
                        self.charge(peer, TIMEOUT_PENALTY, "slow-reader");
                    }
                    _ => {}
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Answers a peer's request from the store in a blocking task, within the in-flight
    /// response budget (see `budget.rs`): the answer's largest size is reserved first
    /// (waiting a bounded time, else the request is refused), and the encoded answer holds
    /// its exact size until written. If the store fails, the request goes unanswered (the
    /// peer sees a failed request, not an empty store).
    fn answer_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: request_response::ResponseChannel<SyncReply>,
    ) {
        metrics::sync_request("inbound", request.kind());
        tracing::debug!(%peer, kind = request.kind(), "sync request");
        let page_bytes = self.config.fetch_response_bytes();
        let estimate = match &request {
            SyncRequest::Digests { .. } => MAX_DIGEST_DAYS as usize * 48,
            SyncRequest::Ids { limit, .. } => (*limit as usize).clamp(1, MAX_IDS_PER_PAGE) * 32,
            SyncRequest::Fetch { .. } | SyncRequest::FetchReports { .. } => page_bytes,
        } + FRAME_OVERHEAD;
        let reserver = self.budget.reserver(peer, self.configured.contains(&peer));
        let shared = self.shared.clone();
        let tx = self.internal_tx.clone();
        metrics::spawn(async move {
            let Some(held) = reserver.reserve(estimate).await else {
                metrics::sync_refused("budget");
                tracing::debug!(%peer, "sync request refused: response budget full");
                return;
            };
            let retention = shared.verifier.limits.retention_days;
            let today = shared.clock.now().day();
            let built = tokio::task::spawn_blocking(move || {
                let response =
                    answer_within(&*shared.store, request, today, retention, page_bytes)?;
                Ok::<_, crate::federation::StoreError>(OutgoingReply::encode(&response, held))
            })
            .await;
            let mut reply = match built {
                Ok(Ok(Ok(reply))) => reply,
                Ok(Ok(Err(e))) => {
                    tracing::warn!(%peer, error = %e, "sync answer not encodable");
                    return;
                }
                Ok(Err(e)) => {
                    metrics::store_error("serve");
                    tracing::warn!(%peer, error = %e, "sync request unanswered: this node's store failed");
                    return;
                }
                Err(_) => return,
            };
            // Hold exactly the frame's size from now until it is written.
            let held = reply.take_held();
            let Some(held) = reserver.fit(held, reply.len()).await else {
                metrics::sync_refused("budget");
                tracing::debug!(%peer, "sync request refused: answer larger than the budget left");
                return;
            };
            reply.hold(held);
            let _ = tx.send(Internal::Respond {
                channel,
                response: SyncReply::Outgoing(reply),
            });
        });
    }
}
