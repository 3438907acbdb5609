//! Spreading sunset orders (`docs/PROTOCOL.md` §11, "Spread"): an order this node adopts,
//! from an operator or from a peer, goes to every federation peer at once, and peers' orders
//! are taken through the same checks as an operator's (`Node::offer_sunset`). Once the
//! order has erased the node, [`SunsetBeacon`] goes on passing it on.

use std::sync::{Arc, Weak};

use ephemera_node_core::keys::NodeKeys;
use ephemera_node_core::sunset::Offer;
use ephemera_proto::auth::TrustedAuthorities;
use ephemera_proto::sunset::SignedSunsetOrder;
use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use super::{Inner, Node, NodeError};
use crate::api::error::ApiError;
use crate::config::NodeConfig;
use crate::federation::{
    Federation, FederationHandle, MemoryFederationStore, NodeIdentity, SunsetSink, SunsetWitness,
    SystemClock,
};

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

/// What an erased node passes on: its order, fixed; it takes none.
struct ErasedNodeOrder(Vec<u8>);

impl SunsetWitness for ErasedNodeOrder {
    fn held(&self) -> Option<Vec<u8>> {
        Some(self.0.clone())
    }

    fn offered(&self, _: Vec<u8>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// The federation of a node that a sunset order has erased: under the node's own libp2p
/// identity, on its `[federation]` listeners and peers, it passes the order on
/// (`docs/PROTOCOL.md` §9.6) and does nothing else: it trusts and relays no authority, so
/// it joins no gossip topic, starts no catch-up round, and answers peers' rounds from an
/// empty store. So a node that was down through the effective time still gets the order
/// from its erased peers when it comes back.
#[derive(Debug)]
pub struct SunsetBeacon {
    handle: FederationHandle,
    task: JoinHandle<()>,
}

impl SunsetBeacon {
    /// Starts the beacon of the node whose configuration is `config` (its data folder holds
    /// the keys erasure kept), passing on `order`.
    ///
    /// # Errors
    /// [`NodeError::Keys`] when the kept keys cannot be read; [`NodeError::Federation`] when
    /// the swarm cannot start (a port in use, say).
    pub fn start(config: &NodeConfig, order: &SignedSunsetOrder) -> Result<Self, NodeError> {
        let keys = NodeKeys::load(&config.data_dir)?;
        let identity = NodeIdentity::from_ed25519_seed(&keys.libp2p_seed);
        let mut federation = super::federation::federation_settings(config);
        federation.relay_authorities = TrustedAuthorities::new();
        federation.catch_up = false;
        federation.sunset = Some(SunsetSink(Arc::new(ErasedNodeOrder(order.to_bytes()))));
        let (handle, task) = Federation::spawn(
            federation,
            identity,
            Arc::new(MemoryFederationStore::new()),
            Arc::new(SystemClock),
        )?;
        tracing::info!(peer_id = %handle.peer_id(), "passing the sunset order on to federation peers");
        Ok(SunsetBeacon { handle, task })
    }

    /// Its federation handle (listen addresses, status).
    pub fn handle(&self) -> &FederationHandle {
        &self.handle
    }

    /// Stops it and waits for its event loop to end.
    pub async fn stop(self) {
        let _ = self.handle.shutdown().await;
        let _ = self.task.await;
    }
}
