//! Listen addresses (and the callers waiting for them), and connections opened and closed:
//! a new peer gets a catch-up round at once.

use libp2p::Multiaddr;
use libp2p::swarm::SwarmEvent;

use super::EventLoop;
use crate::federation::behaviour::FederationBehaviourEvent;
use crate::federation::metrics;

impl EventLoop {
    /// Every swarm event but the behaviours' own.
    pub(super) fn on_connection_event(&mut self, event: SwarmEvent<FederationBehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::debug!("listening"); // the address is for the operator (stdout), not logs
                if let Some(addrs) = self.listeners.get_mut(&listener_id) {
                    addrs.push(address);
                }
                self.answer_addr_waiters();
            }
            SwarmEvent::ExpiredListenAddr {
                listener_id,
                address,
            } => {
                if let Some(addrs) = self.listeners.get_mut(&listener_id) {
                    addrs.retain(|a| *a != address);
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                tracing::warn!(?reason, "listener closed");
                // Do not keep `listen_addrs` callers waiting for a listener that is gone.
                self.listeners.remove(&listener_id);
                self.answer_addr_waiters();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => {
                metrics::connection("established");
                metrics::peers_connected(self.swarm.connected_peers().count());
                tracing::info!(peer = %peer_id, "peer connected");
                self.start_session(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                metrics::connection("closed");
                metrics::peers_connected(self.swarm.connected_peers().count());
                self.budget.forget(&peer_id);
                tracing::info!(peer = %peer_id, "peer disconnected");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            _ => {}
        }
    }

    pub(super) fn answer_addr_waiters(&mut self) {
        if self.addr_waiters.is_empty() || self.listeners.values().any(Vec::is_empty) {
            return;
        }
        let addrs: Vec<Multiaddr> = self.listeners.values().flatten().cloned().collect();
        for waiter in self.addr_waiters.drain(..) {
            let _ = waiter.send(addrs.clone());
        }
    }
}
