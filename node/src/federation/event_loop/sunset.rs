//! The sunset-order exchange, the event loop's side (see `federation::sunset`): the held
//! order to each peer on connection and every sync round, a newly adopted order to every
//! peer at once, and peers' orders handed to the node's witness within their bounds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ephemera_proto::error::DecodeError;
use ephemera_proto::sunset::SignedSunsetOrder;
use ephemera_proto::wire::WireMessage;
use libp2p::{PeerId, request_response};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::EventLoop;
use super::offer_budget::{OfferBudget, OfferRate};
use crate::federation::metrics;
use crate::federation::sunset::SunsetMessage;

/// Order checks a peer gets: 8 in a burst (each costs up to 16 signature checks), then
/// one per 5 s. An honest peer sends its held order twice per sync round (its request and
/// its answer) and once per adoption; frames equal to the held order cost nothing, so only
/// peers holding another valid order, or senders of invalid ones, ever spend this.
pub(super) const OFFER_RATE: OfferRate = OfferRate {
    burst: 8.0,
    refill: Duration::from_secs(5),
};
/// Orders under check at once, from all peers.
pub(super) const MAX_OFFERS_IN_FLIGHT: usize = 8;

/// The sunset state of the event loop.
pub(super) struct SunsetSpread {
    /// Each connected peer's budget of order checks.
    budgets: HashMap<PeerId, OfferBudget>,
    /// Slots for orders under check.
    slots: Arc<Semaphore>,
}

impl SunsetSpread {
    pub(super) fn new() -> Self {
        SunsetSpread {
            budgets: HashMap::new(),
            slots: Arc::new(Semaphore::new(MAX_OFFERS_IN_FLIGHT)),
        }
    }
}

/// What becomes of a frame a peer sent.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Intake {
    /// Nothing to check: no order, or the order held here.
    Nothing,
    /// Bytes that are not an order frame: the peer is penalised.
    Junk,
    /// An order frame to hand to the witness.
    Check,
}

/// Sorts a frame from a peer, given the frame of the order held here.
pub(super) fn sort(frame: &[u8], held: Option<&[u8]>) -> Intake {
    if frame.is_empty() || held == Some(frame) {
        return Intake::Nothing;
    }
    match SignedSunsetOrder::from_bytes(frame) {
        Ok(_) => Intake::Check,
        // A later version of the order frame (its kind byte says so): a newer peer, not a
        // hostile one.
        Err(DecodeError::UnsupportedVersion { got, supported })
            if got > supported && frame.get(1) == Some(&SignedSunsetOrder::KIND) =>
        {
            Intake::Nothing
        }
        Err(_) => Intake::Junk,
    }
}

impl EventLoop {
    /// The held order's frame, or nothing (also without a witness).
    fn held_sunset(&self) -> SunsetMessage {
        SunsetMessage::Frame(
            self.config
                .sunset
                .as_ref()
                .and_then(|w| w.0.held())
                .unwrap_or_default(),
        )
    }

    /// Sends `peer` the order this node holds (or none, asking for the peer's), if the node
    /// has a sunset witness.
    pub(super) fn exchange_sunset(&mut self, peer: PeerId) {
        if self.config.sunset.is_some() && !self.is_banned(&peer) {
            let held = self.held_sunset();
            self.swarm.behaviour_mut().sunset.send_request(&peer, held);
        }
    }

    /// Sends `frame` (an order the node has just adopted) to every connected peer.
    pub(super) fn spread_sunset(&mut self, frame: Vec<u8>) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        tracing::info!(peers = peers.len(), "sunset order sent to peers");
        for peer in peers {
            if !self.is_banned(&peer) {
                self.swarm
                    .behaviour_mut()
                    .sunset
                    .send_request(&peer, SunsetMessage::Frame(frame.clone()));
            }
        }
    }

    /// Forgets a disconnected peer's budget.
    pub(super) fn forget_sunset_peer(&mut self, peer: &PeerId) {
        self.sunset.budgets.remove(peer);
    }

    /// Takes what `peer` sent: junk and oversized frames cost the peer score, an order goes
    /// to the witness within the peer's budget and the slots free.
    fn take_sunset(&mut self, peer: PeerId, message: SunsetMessage) {
        let Some(witness) = self.config.sunset.clone() else {
            return;
        };
        let frame = match message {
            SunsetMessage::Frame(frame) => frame,
            SunsetMessage::Oversized => return self.penalize(peer, "sunset-oversized"),
        };
        let held = witness.0.held();
        match sort(&frame, held.as_deref()) {
            Intake::Nothing => {}
            Intake::Junk => self.penalize(peer, "sunset-malformed"),
            Intake::Check => {
                let now = Instant::now();
                let budget = self
                    .sunset
                    .budgets
                    .entry(peer)
                    .or_insert_with(|| OfferBudget::full(OFFER_RATE, now));
                if !budget.take(now) {
                    metrics::sunset_dropped("peer-budget");
                    tracing::debug!(%peer, "sunset order dropped: peer over its budget");
                    return;
                }
                let Ok(slot) = self.sunset.slots.clone().try_acquire_owned() else {
                    metrics::sunset_dropped("busy");
                    tracing::debug!(%peer, "sunset order dropped: checks busy");
                    return;
                };
                metrics::spawn(async move {
                    witness.0.offered(frame).await;
                    drop(slot);
                });
            }
        }
    }

    pub(super) fn on_sunset(
        &mut self,
        event: request_response::Event<SunsetMessage, SunsetMessage>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => {
                    // Who sent more than any order gets no answer.
                    if request != SunsetMessage::Oversized {
                        let held = self.held_sunset();
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sunset
                            .send_response(channel, held);
                    }
                    self.take_sunset(peer, request);
                }
                Message::Response { response, .. } => self.take_sunset(peer, response),
            },
            // An older peer does not speak the protocol, a connection closed: no penalty.
            Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "sunset exchange not answered");
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sunset exchange failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_is_told_apart_from_orders_and_from_nothing() {
        assert_eq!(sort(&[], None), Intake::Nothing);
        assert_eq!(sort(b"not an order", None), Intake::Junk);
        // Another kind's frame (version 1, kind 0x01) is junk too.
        assert_eq!(sort(&[1, 1, 0, 0], None), Intake::Junk);
        // A later version of the frame is a newer peer's, not junk.
        assert_eq!(sort(&[0xff, 0x11, 0, 0], None), Intake::Nothing);
        // Any other version byte is junk: "n" is not a version.
        assert_eq!(sort(&[0xff, 0x01, 0, 0], None), Intake::Junk);
        assert_eq!(sort(&[0, 0x11, 0, 0], None), Intake::Junk);
        assert_eq!(sort(b"held", Some(b"held")), Intake::Nothing);
    }
}
