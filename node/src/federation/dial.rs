//! Dial only what policy allows.
//!
//! Addresses reach the swarm from Kademlia and identify, that is from peers, and any peer can
//! name any address: without a policy an attacker makes the node connect wherever it likes
//! (175 connections in 40 s to one address in the #32 audit). Every dial, whoever asks for
//! it, passes through [`PolicyTransport`], which consults one [`DialPolicy`]:
//!
//! * the configured bootstrap addresses and addresses dialled on purpose
//!   ([`super::FederationHandle::dial`]) are always allowed — only those addresses: other
//!   addresses a configured peer announces for itself are learned addresses like any other
//!   (a compromised partner must not steer this node's dials either);
//! * any other address must be public: no loopback, private, link-local, shared (CGNAT),
//!   unique-local, multicast, unspecified or documentation range, and no DNS name, unless
//!   `FederationConfig::dial_private_addrs` is set (a federation on one LAN, or tests on
//!   loopback);
//! * and it spends one token of a budget of `FederationConfig::dials_per_minute`.
//!
//! A refused dial fails at once as an unsupported address, is counted in
//! `ephemera_federation_dials_refused_total{reason}` and never logged with its address.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, Transport};

use super::metrics;

/// Why a dial was refused (the metric label).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a public address, and private addresses are not allowed.
    Filtered,
    /// The budget of dials to learned addresses is spent for now.
    Budget,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Filtered => "filtered-address",
            Refusal::Budget => "dial-budget",
        }
    }
}

/// What may be dialled.
#[derive(Debug)]
pub(crate) struct DialPolicy {
    allow_private: bool,
    /// Configured and on-purpose addresses (without their `/p2p/` part).
    explicit: HashSet<Multiaddr>,
    per_minute: f64,
    tokens: f64,
    refilled: Instant,
}

/// The policy, shared by the event loop and the transport.
pub(crate) type SharedPolicy = Arc<Mutex<DialPolicy>>;

fn without_p2p(addr: &Multiaddr) -> (Multiaddr, Option<libp2p::PeerId>) {
    let mut peer = None;
    let bare = addr
        .iter()
        .filter(|p| match p {
            Protocol::P2p(id) => {
                peer = Some(*id);
                false
            }
            _ => true,
        })
        .collect();
    (bare, peer)
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || o[0] >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || s[0] == 0x2001 && s[1] == 0x0db8)
}

/// Whether `addr` names a public IP address (a DNS name does not: it may resolve anywhere).
pub(crate) fn is_public(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => public_v4(ip),
        Some(Protocol::Ip6(ip)) => public_v6(ip),
        _ => false,
    }
}

impl DialPolicy {
    pub(crate) fn new(
        allow_private: bool,
        configured: &[Multiaddr],
        per_minute: u32,
        now: Instant,
    ) -> Self {
        DialPolicy {
            allow_private,
            explicit: configured.iter().map(|a| without_p2p(a).0).collect(),
            per_minute: f64::from(per_minute),
            tokens: f64::from(per_minute),
            refilled: now,
        }
    }

    /// Allows `addr` from now on, whoever named it (an operator's or a test's own dial).
    pub(crate) fn allow(&mut self, addr: &Multiaddr) {
        self.explicit.insert(without_p2p(addr).0);
    }

    /// Whether an address learned from a peer may be kept for dialling (public, or private
    /// allowed). Spends nothing.
    pub(crate) fn may_learn(&self, addr: &Multiaddr) -> bool {
        self.allow_private || is_public(addr)
    }

    /// Decides one dial at `now`, spending a token if it goes to a learned address.
    pub(crate) fn check(&mut self, addr: &Multiaddr, now: Instant) -> Result<(), Refusal> {
        let (bare, _) = without_p2p(addr);
        if self.explicit.contains(&bare) {
            return Ok(());
        }
        if !self.may_learn(&bare) {
            return Err(Refusal::Filtered);
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute);
        self.refilled = now;
        if self.tokens < 1.0 {
            return Err(Refusal::Budget);
        }
        self.tokens -= 1.0;
        Ok(())
    }
}

/// A transport that dials only what [`DialPolicy`] allows; listening is untouched.
pub(crate) struct PolicyTransport<T> {
    inner: T,
    policy: SharedPolicy,
}

impl<T> PolicyTransport<T> {
    pub(crate) fn new(inner: T, policy: SharedPolicy) -> Self {
        PolicyTransport { inner, policy }
    }
}

impl<T: Transport + Unpin> Transport for PolicyTransport<T> {
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let verdict = self
            .policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(&addr, Instant::now());
        if let Err(refusal) = verdict {
            metrics::dial_refused(refusal.label());
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        self.inner.dial(addr, opts)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_are_dialled_unless_private_ones_are_allowed() {
        for private in [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.1.2.3/tcp/1",
            "/ip4/172.16.0.1/tcp/1",
            "/ip4/192.168.1.1/udp/1/quic-v1",
            "/ip4/169.254.1.1/tcp/1",
            "/ip4/100.64.0.1/tcp/1",
            "/ip4/0.0.0.0/tcp/1",
            "/ip4/224.0.0.1/tcp/1",
            "/ip4/192.0.2.1/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip6/fe80::1/tcp/1",
            "/ip6/fd00::1/tcp/1",
            "/ip6/::ffff:10.0.0.1/tcp/1",
            "/dns4/internal.example/tcp/1",
        ] {
            assert!(!is_public(&a(private)), "{private}");
        }
        for public in [
            "/ip4/8.8.8.8/tcp/4001",
            "/ip4/1.1.1.1/udp/4001/quic-v1",
            "/ip6/2a00:1450::1/tcp/4001",
        ] {
            assert!(is_public(&a(public)), "{public}");
        }
        let now = Instant::now();
        let mut strict = DialPolicy::new(false, &[], 60, now);
        assert_eq!(
            strict.check(&a("/ip4/127.0.0.1/tcp/1"), now),
            Err(Refusal::Filtered)
        );
        assert_eq!(strict.check(&a("/ip4/8.8.8.8/tcp/1"), now), Ok(()));
        let mut open = DialPolicy::new(true, &[], 60, now);
        assert_eq!(open.check(&a("/ip4/127.0.0.1/tcp/1"), now), Ok(()));
    }

    #[test]
    fn configured_and_explicit_addresses_pass_and_learned_ones_spend_the_budget() {
        let now = Instant::now();
        let configured = libp2p::PeerId::random();
        let home = a("/ip4/10.0.0.2/tcp/4001").with(Protocol::P2p(configured));
        let mut policy = DialPolicy::new(false, std::slice::from_ref(&home), 2, now);
        let learned = a("/ip4/8.8.8.8/tcp/4001");
        assert_eq!(policy.check(&learned, now), Ok(()));
        assert_eq!(policy.check(&learned, now), Ok(()));
        assert_eq!(policy.check(&learned, now), Err(Refusal::Budget));
        // Half a minute refills one of two tokens a minute.
        assert_eq!(
            policy.check(&learned, now + Duration::from_secs(30)),
            Ok(())
        );
        // A configured (private) address: allowed, no token.
        for _ in 0..5 {
            assert_eq!(policy.check(&home, now), Ok(()));
        }
        // Another address the configured peer announces for itself is a learned one.
        let announced = a("/ip4/10.9.9.9/tcp/1").with(Protocol::P2p(configured));
        assert_eq!(policy.check(&announced, now), Err(Refusal::Filtered));
        // An address dialled on purpose: allowed from then on.
        let mine = a("/ip4/127.0.0.1/tcp/9");
        assert_eq!(policy.check(&mine, now), Err(Refusal::Filtered));
        policy.allow(&mine.clone().with(Protocol::P2p(libp2p::PeerId::random())));
        assert_eq!(policy.check(&mine, now), Ok(()));
    }
}
