//! Per-address and per-subnet connection limits, and what a handshake flood may hold.
//!
//! libp2p's `connection_limits` caps connections in total, per peer and while pending, and
//! lets configured peers bypass its caps (their reserved slots). It does not look at
//! addresses: one host with many free identities can take every slot. [`AddressLimits`]
//! counts connections by remote IP and by subnet (/24 for IPv4, /48 for IPv6), refuses a
//! stranger's connection past [`AddressLimits`]' caps, and refuses a pending inbound
//! connection from an address that already has too many handshakes in progress. Configured
//! peers are exempt once their peer id is known (after the handshake).
//!
//! Addresses are counted in memory only and never logged.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::{ConnectionEstablished, DialFailure, ListenFailure};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// The caps, from `FederationConfig`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AddressCaps {
    /// Established connections of strangers from one IP address.
    pub(crate) per_ip: usize,
    /// Established connections of strangers from one subnet.
    pub(crate) per_subnet: usize,
    /// Handshakes in progress from one IP address.
    pub(crate) pending_per_ip: usize,
}

/// Why a connection was refused (shown in libp2p's connection errors; names no address).
#[derive(Debug, thiserror::Error)]
#[error("too many connections from one {0}")]
pub(crate) struct TooMany(&'static str);

/// A subnet key: the first 3 bytes of an IPv4 address, the first 6 of an IPv6 one.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Subnet {
    V4([u8; 3]),
    V6([u8; 6]),
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

fn subnet_of(ip: IpAddr) -> Subnet {
    match ip {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            Subnet::V4([o[0], o[1], o[2]])
        }
        IpAddr::V6(ip) => {
            let o = ip.octets();
            Subnet::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
        }
    }
}

fn bump<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K, up: bool) {
    if up {
        *counts.entry(key).or_default() += 1;
    } else if let Some(n) = counts.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

/// The behaviour: counts and refuses, emits nothing.
pub(crate) struct AddressLimits {
    caps: AddressCaps,
    exempt: HashSet<PeerId>,
    /// Strangers' established connections, with their remote IP.
    established: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
    per_subnet: HashMap<Subnet, usize>,
    /// Inbound handshakes in progress, with their remote IP.
    pending: HashMap<ConnectionId, IpAddr>,
    pending_per_ip: HashMap<IpAddr, usize>,
}

impl AddressLimits {
    pub(crate) fn new(caps: AddressCaps, exempt: HashSet<PeerId>) -> Self {
        AddressLimits {
            caps,
            exempt,
            established: HashMap::new(),
            per_ip: HashMap::new(),
            per_subnet: HashMap::new(),
            pending: HashMap::new(),
            pending_per_ip: HashMap::new(),
        }
    }

    fn end_pending(&mut self, connection_id: ConnectionId) {
        if let Some(ip) = self.pending.remove(&connection_id) {
            bump(&mut self.pending_per_ip, ip, false);
        }
    }

    fn check(&self, peer: &PeerId, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        if self.exempt.contains(peer) {
            return Ok(());
        }
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.caps.per_ip {
            return Err(ConnectionDenied::new(TooMany("address")));
        }
        if self.per_subnet.get(&subnet_of(ip)).copied().unwrap_or(0) >= self.caps.per_subnet {
            return Err(ConnectionDenied::new(TooMany("subnet")));
        }
        Ok(())
    }
}

impl NetworkBehaviour for AddressLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        if self.pending_per_ip.get(&ip).copied().unwrap_or(0) >= self.caps.pending_per_ip {
            return Err(ConnectionDenied::new(TooMany("address (handshakes)")));
        }
        self.pending.insert(connection_id, ip);
        bump(&mut self.pending_per_ip, ip, true);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.end_pending(connection_id);
        self.check(&peer, remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        remote: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(&peer, remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                self.end_pending(connection_id);
                if self.exempt.contains(&peer_id) {
                    return;
                }
                let remote = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                if let Some(ip) = ip_of(remote) {
                    self.established.insert(connection_id, ip);
                    bump(&mut self.per_ip, ip, true);
                    bump(&mut self.per_subnet, subnet_of(ip), true);
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                if let Some(ip) = self.established.remove(&connection_id) {
                    bump(&mut self.per_ip, ip, false);
                    bump(&mut self.per_subnet, subnet_of(ip), false);
                }
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. })
            | FromSwarm::DialFailure(DialFailure { connection_id, .. }) => {
                self.end_pending(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn strangers_are_capped_per_address_and_subnet_and_configured_peers_are_not() {
        let configured = PeerId::random();
        let mut limits = AddressLimits::new(
            AddressCaps {
                per_ip: 2,
                per_subnet: 3,
                pending_per_ip: 1,
            },
            HashSet::from([configured]),
        );
        let a = addr("/ip4/192.0.2.1/tcp/1");
        let b = addr("/ip4/192.0.2.2/tcp/1");
        let mut next = 0usize;
        let mut establish = |limits: &mut AddressLimits, peer: PeerId, remote: &Multiaddr| {
            next += 1;
            let id = ConnectionId::new_unchecked(next);
            limits.handle_established_inbound_connection(id, peer, remote, remote)?;
            limits.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id: peer,
                connection_id: id,
                endpoint: &ConnectedPoint::Listener {
                    local_addr: remote.clone(),
                    send_back_addr: remote.clone(),
                },
                failed_addresses: &[],
                other_established: 0,
            }));
            Ok::<_, ConnectionDenied>(id)
        };
        let first = establish(&mut limits, PeerId::random(), &a).unwrap();
        establish(&mut limits, PeerId::random(), &a).unwrap();
        assert!(
            establish(&mut limits, PeerId::random(), &a).is_err(),
            "per address"
        );
        establish(&mut limits, PeerId::random(), &b).unwrap();
        assert!(
            establish(&mut limits, PeerId::random(), &b).is_err(),
            "per subnet"
        );
        // Another subnet is not affected; a configured peer gets in from the full address.
        establish(
            &mut limits,
            PeerId::random(),
            &addr("/ip4/198.51.100.1/tcp/1"),
        )
        .unwrap();
        establish(&mut limits, configured, &a).unwrap();
        // A closed connection frees its slot.
        limits.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: PeerId::random(),
            connection_id: first,
            endpoint: &ConnectedPoint::Listener {
                local_addr: a.clone(),
                send_back_addr: a.clone(),
            },
            cause: None,
            remaining_established: 0,
        }));
        establish(&mut limits, PeerId::random(), &a).unwrap();

        // One handshake at a time per address.
        let pending = ConnectionId::new_unchecked(1000);
        limits
            .handle_pending_inbound_connection(pending, &a, &a)
            .unwrap();
        assert!(
            limits
                .handle_pending_inbound_connection(ConnectionId::new_unchecked(1001), &a, &a)
                .is_err()
        );
        limits.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &a,
            send_back_addr: &a,
            error: &libp2p::swarm::ListenError::Aborted,
            connection_id: pending,
            peer_id: None,
        }));
        assert!(
            limits
                .handle_pending_inbound_connection(ConnectionId::new_unchecked(1002), &a, &a)
                .is_ok()
        );
    }
}
