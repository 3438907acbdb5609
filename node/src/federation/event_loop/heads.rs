//! The head exchange, the event loop's side (see `federation::heads`): the node's heads
//! to each peer on connection and every sync round, and peers' heads handed to the node's
//! witness, which answers with its own.

use ephemera_proto::batch_log::{HeadList, MAX_HEADS_PER_LIST};
use libp2p::{PeerId, request_response};

use super::EventLoop;

impl EventLoop {
    /// The node's heads (its own first), at most [`MAX_HEADS_PER_LIST`].
    fn own_heads(&self) -> HeadList {
        let mut heads = self
            .config
            .heads
            .as_ref()
            .map(|h| h.0.heads())
            .unwrap_or_default();
        heads.truncate(MAX_HEADS_PER_LIST);
        HeadList { heads }
    }

    /// Sends `peer` the heads this node holds, if the node has a head witness.
    pub(super) fn exchange_heads(&mut self, peer: PeerId) {
        if self.config.heads.is_some() {
            let list = self.own_heads();
            self.swarm.behaviour_mut().heads.send_request(&peer, list);
        }
    }

    /// Hands what a peer sent to the witness.
    fn heard(&self, mut list: HeadList) {
        if let Some(witness) = &self.config.heads {
            list.heads.truncate(MAX_HEADS_PER_LIST);
            witness.0.heard(list.heads);
        }
    }

    pub(super) fn on_heads(&mut self, event: request_response::Event<HeadList, HeadList>) {
        match event {
            request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                self.heard(request);
                let answer = self.own_heads();
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .heads
                    .send_response(channel, answer);
            }
            request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            } => self.heard(response),
            request_response::Event::OutboundFailure { peer, error, .. } => {
                // An older peer does not speak the protocol: no penalty.
                tracing::debug!(%peer, %error, "heads not answered");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound heads failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
