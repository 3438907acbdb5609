//! Twin detection, the event loop's side (see `federation::instance`): a hello to each
//! peer on connection and every sync round, peers' hellos answered from the hello log, and
//! what peers report handed to the node's witness.

use ephemera_proto::instance::{HelloRequest, HelloResponse};
use libp2p::{PeerId, request_response};

use super::EventLoop;

impl EventLoop {
    /// Says hello to `peer`, if the node signs hellos.
    pub(super) fn say_hello(&mut self, peer: PeerId) {
        if let Some(hello) = self.config.twins.as_ref().and_then(|t| t.0.hello()) {
            self.swarm
                .behaviour_mut()
                .instance
                .send_request(&peer, HelloRequest(hello));
        }
    }

    pub(super) fn on_instance(
        &mut self,
        event: request_response::Event<HelloRequest, HelloResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // Kept for two sync rounds: a twin that says hello every round stays known.
                let keep = 2 * self.config.sync_interval.as_secs().max(1);
                let now = self.shared.clock.now();
                match self.hellos.hear(request.0, now, keep) {
                    Some(answer) => {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .instance
                            .send_response(channel, answer);
                    }
                    // Not kept, not answered; costs the sender nothing but the stream.
                    None => tracing::debug!(%peer, "a hello that does not verify"),
                }
            }
            request_response::Event::Message {
                peer,
                message: request_response::Message::Response { response, .. },
                ..
            } => {
                if let (Some(twins), false) = (&self.config.twins, response.others.is_empty()) {
                    tracing::debug!(%peer, reported = response.others.len(), "a peer reports other instances");
                    twins.0.reported(response.others);
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                // An older peer does not speak the protocol: no penalty.
                tracing::debug!(%peer, %error, "hello not answered");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound hello failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
