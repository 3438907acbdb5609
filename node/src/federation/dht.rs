//! Kademlia, as federation runs it: bootstrapped only when there is someone to ask.
//!
//! libp2p's Kademlia tries a bootstrap whenever a listen address appears while nothing is
//! connected, and every 5 minutes; with an empty routing table each try fails and logs
//! `WARN Failed to trigger bootstrap: No known peers`. A node with no bootstrap peers is the
//! default (the first node of a federation, a node that others dial), not a fault, so
//! [`Dht`] holds those tries back while the routing table is empty, and the event loop
//! refreshes the table itself every [`REFRESH_INTERVAL`] once it holds a peer. Peers that
//! are added (bootstrap peers, addresses learned through identify) still start Kademlia's
//! own bootstrap at once.

use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::kad;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::behaviour::KAD_PROTOCOL;

/// How often the routing table is refreshed (a Kademlia bootstrap) while it holds a peer:
/// libp2p's own default period.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_secs(300);

type Kademlia = kad::Behaviour<kad::store::MemoryStore>;

/// Kademlia that never bootstraps from an empty routing table.
pub(crate) struct Dht {
    kad: Kademlia,
}

impl Dht {
    /// Kademlia in server mode (federation nodes answer queries even without a confirmed
    /// external address; on loopback there is none), without libp2p's periodic bootstrap.
    pub(crate) fn new(peer_id: PeerId) -> Self {
        let mut config = kad::Config::new(KAD_PROTOCOL);
        config.set_periodic_bootstrap_interval(None);
        let mut kad = Kademlia::with_config(peer_id, kad::store::MemoryStore::new(peer_id), config);
        kad.set_mode(Some(kad::Mode::Server));
        Dht { kad }
    }

    /// Whether the routing table holds no peer.
    pub(crate) fn is_empty(&mut self) -> bool {
        self.kad.kbuckets().all(|bucket| bucket.num_entries() == 0)
    }

    /// Adds a peer's address to the routing table.
    pub(crate) fn add_address(&mut self, peer: &PeerId, addr: Multiaddr) {
        self.kad.add_address(peer, addr);
    }

    /// Refreshes the routing table (a Kademlia bootstrap), unless it is empty.
    pub(crate) fn refresh(&mut self) {
        if !self.is_empty() {
            // Only fails on an empty table, checked above.
            let _ = self.kad.bootstrap();
        }
    }
}

impl NetworkBehaviour for Dht {
    type ConnectionHandler = THandler<Kademlia>;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.kad
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.kad
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.kad.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.kad.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // A new listen address is Kademlia's cue to bootstrap: not from an empty table.
        if matches!(event, FromSwarm::NewListenAddr(_)) && self.is_empty() {
            return;
        }
        self.kad.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.kad
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.kad.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_only_a_table_that_holds_a_peer() {
        let mut dht = Dht::new(PeerId::random());
        assert!(dht.is_empty());
        let peer = PeerId::random();
        dht.add_address(&peer, "/ip4/127.0.0.1/tcp/4001".parse().unwrap());
        assert!(!dht.is_empty());
    }
}
