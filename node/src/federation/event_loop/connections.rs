//! Listen addresses (and the callers waiting for them), and connections opened and closed:
//! a new peer gets a catch-up round at once.

use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};

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
                self.last_useful
                    .insert(peer_id, tokio::time::Instant::now());
                self.say_hello(peer_id);
                self.exchange_heads(peer_id);
                self.exchange_sunset(peer_id);
                self.ask_releases(peer_id);
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
                self.last_useful.remove(&peer_id);
                self.forget_sunset_peer(&peer_id);
                self.forget_release_peer(&peer_id);
                tracing::info!(peer = %peer_id, "peer disconnected");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            _ => {}
        }
    }

    /// Notes that `peer` gave this node something new (an upload it stored).
    pub(super) fn useful(&mut self, peer: PeerId) {
        if let Some(at) = self.last_useful.get_mut(&peer) {
            *at = tokio::time::Instant::now();
        }
    }

    /// While more than half the connection slots are taken, disconnects every peer that is
    /// not configured and gave nothing new for `stranger_idle_timeout`: slots held by
    /// identities that only sit on them free up, and configured peers are never touched.
    pub(super) fn evict_idle_strangers(&mut self) {
        let connected = self.swarm.connected_peers().count();
        if connected * 2 <= self.config.max_connections as usize {
            return;
        }
        let now = tokio::time::Instant::now();
        let idle: Vec<PeerId> = self
            .last_useful
            .iter()
            .filter(|(peer, at)| {
                !self.configured.contains(peer)
                    && now.duration_since(**at) >= self.config.stranger_idle_timeout
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in idle {
            tracing::info!(%peer, "disconnecting a peer that gave nothing new while slots are scarce");
            metrics::evicted("idle");
            self.last_useful.remove(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
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
