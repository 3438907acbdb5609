//! Spreading sunset orders (`docs/PROTOCOL.md` §11, "Spread"): an order this node adopts,
//! from an operator or from a peer, goes to every federation peer at once, and peers' orders
//! are taken through the same checks as an operator's (`Node::offer_sunset`).

use std::sync::Weak;

use ephemera_node_core::sunset::Offer;
use futures::future::BoxFuture;

use super::{Inner, Node};
use crate::api::error::ApiError;
use crate::federation::SunsetWitness;

/// What federation calls: holds the node weakly, like its other witnesses.
pub(super) struct NodeSunset(pub(super) Weak<Inner>);

impl SunsetWitness for NodeSunset {
    fn held(&self) -> Option<Vec<u8>> {
        let inner = self.0.upgrade()?;
        Node { inner }.sunset_order().map(|order| order.to_bytes())
    }

    fn offered(&self, frame: Vec<u8>) -> BoxFuture<'static, ()> {
        let node = self.0.upgrade().map(|inner| Node { inner });
        Box::pin(async move {
            let Some(node) = node else {
                return;
            };
            // A refusal is this node's view (its committee, its federation, its clock), not
            // the peer's fault: logged at debug, the peer keeps its standing.
            match node.take_sunset(&frame).await {
                Ok(Offer::Adopted(_)) => tracing::info!("sunset order adopted from a peer"),
                Ok(Offer::Kept) => {}
                Err(ApiError::SunsetNotConfigured) => {
                    tracing::debug!("sunset order from a peer ignored: no [sunset] keys");
                }
                Err(error) => tracing::debug!(%error, "sunset order from a peer refused"),
            }
        })
    }
}

impl Node {
    /// Takes an order ([`Node::offer_sunset`]) and, when this node adopts it, sends it to
    /// every federation peer at once. The HTTP `POST /v1/sunset` and peers' orders both come
    /// here.
    ///
    /// # Errors
    /// As [`Node::offer_sunset`]. An order adopted while federation has stopped is still
    /// held: peers get it on their next connection.
    pub async fn take_sunset(&self, frame: &[u8]) -> Result<Offer, ApiError> {
        let offer = self.offer_sunset(frame).await?;
        if let Offer::Adopted(order) = &offer
            && let Some(federation) = self.federation_handle()
            && federation.spread_sunset(order.to_bytes()).await.is_err()
        {
            tracing::debug!("sunset order not spread now: federation has stopped");
        }
        Ok(offer)
    }
}
