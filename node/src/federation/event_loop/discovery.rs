//! Discovery: bootstrap peers re-dialled while disconnected, Kademlia and identify, and mDNS
//! when configured.

use libp2p::{PeerId, identify, kad, mdns};

use super::EventLoop;

impl EventLoop {
    /// Dials every bootstrap peer that is neither connected nor banned.
    pub(super) fn redial(&mut self) {
        for (peer, addr) in self.bootstrap.clone() {
            if self.swarm.is_connected(&peer) || self.is_banned(&peer) {
                continue;
            }
            if let Err(e) = self.swarm.dial(addr) {
                // A dial error names addresses: log only the peer id.
                let _ = e;
                tracing::debug!(%peer, "bootstrap dial failed");
            }
        }
    }

    /// Adds the listen addresses a peer announces to Kademlia (when discovery is on), except
    /// those the dial policy would refuse: a peer's word does not make a private address
    /// dialable, nor is it handed on to other peers.
    pub(super) fn on_identify(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            let policy = self
                .policy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
                return;
            };
            for addr in info.listen_addrs {
                if policy.may_learn(&addr) {
                    kad.add_address(&peer_id, addr);
                }
            }
        }
    }

    /// Dials peers new to the routing table.
    pub(super) fn on_kad(&mut self, event: kad::Event) {
        if let kad::Event::RoutingUpdated {
            peer,
            is_new_peer: true,
            ..
        } = event
        {
            self.maybe_dial(peer);
        }
    }

    /// Adds peers found on the local network to Kademlia, and dials them.
    pub(super) fn on_mdns(&mut self, event: mdns::Event) {
        if let mdns::Event::Discovered(found) = event {
            for (peer, addr) in found {
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    kad.add_address(&peer, addr);
                }
                self.maybe_dial(peer);
            }
        }
    }

    /// Dials a discovered peer unless connected, banned, or holding half the connection cap
    /// already (the other half is left for inbound connections).
    fn maybe_dial(&mut self, peer: PeerId) {
        let connected = self.swarm.connected_peers().count();
        if peer == *self.swarm.local_peer_id()
            || self.swarm.is_connected(&peer)
            || self.is_banned(&peer)
            || connected >= self.config.max_connections as usize / 2
        {
            return;
        }
        if let Err(e) = self.swarm.dial(peer) {
            let _ = e;
            tracing::debug!(%peer, "dial of discovered peer failed");
        }
    }
}
