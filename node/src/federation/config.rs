//! Federation settings, with safe defaults: loopback only, no bootstrap peers, mDNS off.

use std::time::Duration;

use ephemera_proto::ReportLimits;
use ephemera_proto::auth::TrustedAuthorities;
use ephemera_proto::signing::KeyId;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use super::sync::{MAX_FETCH_IDS, MAX_IDS_PER_PAGE};

/// Prefix of the gossipsub topics; the protocol version follows it. Each authority has a
/// topic of its own under it (see [`authority_topic`]).
pub const TOPIC_PREFIX: &str = "ephemera/uploads/v2";

/// Longest region suffix accepted in a topic name.
const MAX_REGION_LEN: usize = 32;

/// How a node federates: where it listens, whom it knows, what it trusts.
///
/// The defaults send nothing off the machine: listeners on 127.0.0.1 (TCP and QUIC, port
/// chosen by the OS), no bootstrap peers, mDNS off. Retention is `limits.retention_days`.
#[derive(Clone, Debug)]
pub struct FederationConfig {
    /// Addresses to listen on. Default: `/ip4/127.0.0.1/tcp/0` and
    /// `/ip4/127.0.0.1/udp/0/quic-v1`.
    pub listen_addrs: Vec<Multiaddr>,
    /// Peers to dial at start and re-dial while disconnected; each ends in `/p2p/<peer id>`.
    pub bootstrap_peers: Vec<Multiaddr>,
    /// Peers of other authorities this node federates with by agreement, besides the
    /// bootstrap peers (whose ids count too): they get reserved connection slots and their
    /// own catch-up response budget, so strangers cannot crowd them out.
    pub reserved_peers: Vec<libp2p::PeerId>,
    /// Find peers beyond the configured ones with Kademlia (and identify's addresses).
    /// Default true. Off: federation with configured peers only (bootstrap and reserved
    /// peers, and peers that dial in); `node/docs/OPERATIONS.md` says which to choose.
    pub discovery: bool,
    /// Dial addresses learned from peers (Kademlia, identify, mDNS) even in loopback,
    /// private, link-local and other non-public ranges. Default false; configured peers'
    /// addresses are always dialled. For a federation on one LAN, and tests on loopback.
    pub dial_private_addrs: bool,
    /// Dials to learned addresses allowed per minute (a token bucket). Default 30.
    pub dials_per_minute: u32,
    /// Discover peers on the local network with mDNS. Off by default: it sends multicast off
    /// the machine. Never enable it in tests.
    pub mdns: bool,
    /// Optional region inserted in the topics (`ephemera/uploads/v2/<region>/authority/…`), for
    /// federations whose nodes trust different authority sets. Lower-case letters, digits
    /// and `-`, at most 32 characters.
    pub region: Option<String>,
    /// Authority keys whose certificates this node accepts: it subscribes to their topics,
    /// stores their reports, publishes them in its batches and serves them in catch-up.
    /// Reports of any other authority are never stored; their sender is not penalised (its
    /// own trust set may hold that authority: partial trust is not misbehaviour).
    pub trusted_authorities: TrustedAuthorities,
    /// Authority keys of the federation directory that this node does not trust but relays
    /// for: it subscribes to their topics, verifies each report in full (signature, HMAC,
    /// report rules, relayed expiry, canonical encoding) and forwards it by gossip, but
    /// never stores, publishes or serves it. A key also in `trusted_authorities` counts as
    /// trusted. Default empty.
    pub relay_authorities: TrustedAuthorities,
    /// Report rules, including the retention period (`retention_days`): nothing older is
    /// accepted, synced or served.
    pub limits: ReportLimits,
    /// Upload ids per catch-up page (clamped to [`MAX_IDS_PER_PAGE`]). Default 1024.
    pub sync_page_size: usize,
    /// Uploads asked for in one catch-up fetch (clamped to [`MAX_FETCH_IDS`]). Default 64.
    pub sync_fetch_batch: usize,
    /// How often the node reconciles with every connected peer, besides once on each new
    /// connection. Default 60 s.
    pub sync_interval: Duration,
    /// How often disconnected bootstrap peers are dialled again. Default 30 s.
    pub redial_interval: Duration,
    /// Re-gossip uploads learnt through catch-up, so peers behind this node converge without
    /// waiting for their own sync round. Default true.
    pub republish_synced: bool,
    /// Start catch-up rounds with peers. Default true; off for a node that holds and wants
    /// no reports (an erased node passing its sunset order on): it still answers peers'
    /// rounds, from what its store holds.
    pub catch_up: bool,
    /// Upper bound of a uniform random delay before an upload is published, to blur the
    /// timing link between a phone's request and the gossip it causes. Default zero (the
    /// node's batch schedule, not gossip, is what hides upload times from phones).
    pub publish_delay_max: Duration,
    /// Most established connections. Default 128. Configured peers (bootstrap and reserved)
    /// always get in: their connections are never refused for this cap, so strangers
    /// filling every slot cannot shut them out.
    pub max_connections: u32,
    /// How long a peer whose score fell below the graylist threshold stays banned.
    /// Default 10 min.
    pub ban_duration: Duration,
    /// How long an idle connection is kept. Default 1 h (libp2p's default is 10 s).
    pub idle_connection_timeout: Duration,
    /// Time a catch-up request may take. Default 30 s.
    pub request_timeout: Duration,
    /// Most catch-up streams open at once on one connection, inbound and outbound. Default 8
    /// (a round uses one at a time).
    pub max_inbound_streams: usize,
    /// Most bytes of uploads in one `Fetch` answer this node builds (the requester asks
    /// again for the rest). Default 1 MiB; at most the protocol's `MAX_UPLOAD_BYTES`.
    pub max_fetch_response_bytes: usize,
    /// Most bytes of catch-up answers built for one peer and not yet written. Default 4 MiB;
    /// at least [`MIN_PEER_RESPONSE_BYTES`], so one upload of the largest size is always
    /// servable.
    pub response_bytes_per_peer: usize,
    /// Most bytes of catch-up answers built for all peers and not yet written. Default
    /// 32 MiB; at least `response_bytes_per_peer`.
    pub response_bytes_total: usize,
    /// How long an answer waits for budget before the request is refused. Default 5 s.
    pub response_budget_wait: Duration,
    /// Most id pages one catch-up round asks a peer for, over all days. Default 1024 (about
    /// a million ids at the default page size); a larger backlog takes several rounds.
    pub sync_round_pages: usize,
    /// Longest a catch-up round may run. Default 10 min; the next round goes on from what
    /// is stored by then.
    pub sync_round_timeout: Duration,
    /// Most inbound connections still in their handshake, in total. Default 64: a flood of
    /// stalled handshakes is refused before it exhausts file descriptors.
    pub max_pending_incoming: u32,
    /// Most established connections of peers that are not configured from one IP address.
    /// Default 8 (several nodes on one host: make them reserved peers, or raise this).
    pub max_connections_per_ip: usize,
    /// Most established connections of peers that are not configured from one subnet (/24
    /// for IPv4, /48 for IPv6). Default 32.
    pub max_connections_per_subnet: usize,
    /// A peer that is not configured and gave this node nothing new (no upload stored from
    /// its gossip or catch-up) for this long is disconnected while more than half the
    /// connection slots are taken. Default 120 s.
    pub stranger_idle_timeout: Duration,
    /// Penalties (application score for catch-up faults, timeouts, malformed answers) halve
    /// this often, and are forgotten once near zero. Default 5 min: two faults, enough for a
    /// ban, have decayed below the ban threshold when a 10-minute ban ends.
    pub penalty_half_life: Duration,
    /// Where federation's metrics go: the node's own recorder. `None`: the global one.
    pub metrics: Option<super::MetricsSink>,
    /// Who signs this node's hellos and judges the twins peers report (the node). `None`:
    /// no hellos are sent; peers' hellos are still answered.
    pub twins: Option<super::TwinSink>,
    /// Who passes on this node's batch-log heads and watches those peers send (the node).
    /// `None`: no heads are sent; peers' are answered with an empty list.
    pub heads: Option<super::HeadSink>,
    /// Who holds this node's sunset order and checks those peers send (the node). `None`:
    /// no order is sent; peers' are answered with none and ignored.
    pub sunset: Option<super::SunsetSink>,
    /// Who holds this node's venue releases and checks those peers send (the node).
    /// `None`: none are asked for; peers' asks are answered with none.
    pub venue_releases: Option<super::ReleaseSink>,
}

/// The smallest per-peer response budget: one answer holding one upload of the largest
/// size (a 1 MiB frame) and its framing.
pub const MIN_PEER_RESPONSE_BYTES: usize = (1 << 20) + (64 << 10);

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            listen_addrs: vec![
                "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"),
                "/ip4/127.0.0.1/udp/0/quic-v1"
                    .parse()
                    .expect("valid multiaddr"),
            ],
            bootstrap_peers: Vec::new(),
            reserved_peers: Vec::new(),
            discovery: true,
            dial_private_addrs: false,
            dials_per_minute: 30,
            mdns: false,
            region: None,
            trusted_authorities: TrustedAuthorities::new(),
            relay_authorities: TrustedAuthorities::new(),
            limits: ReportLimits::default(),
            sync_page_size: 1024,
            sync_fetch_batch: 64,
            sync_interval: Duration::from_secs(60),
            redial_interval: Duration::from_secs(30),
            republish_synced: true,
            catch_up: true,
            publish_delay_max: Duration::ZERO,
            max_connections: 128,
            ban_duration: Duration::from_secs(600),
            idle_connection_timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
            max_inbound_streams: 8,
            max_fetch_response_bytes: 1 << 20,
            response_bytes_per_peer: 4 << 20,
            response_bytes_total: 32 << 20,
            response_budget_wait: Duration::from_secs(5),
            sync_round_pages: 1024,
            sync_round_timeout: Duration::from_secs(600),
            max_pending_incoming: 64,
            max_connections_per_ip: 8,
            max_connections_per_subnet: 32,
            stranger_idle_timeout: Duration::from_secs(120),
            penalty_half_life: Duration::from_secs(300),
            metrics: None,
            twins: None,
            heads: None,
            sunset: None,
            venue_releases: None,
        }
    }
}

/// A federation setting is out of its domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No listen address.
    #[error("at least one listen address is needed")]
    NoListenAddress,
    /// A bootstrap address does not end in `/p2p/<peer id>`.
    #[error("bootstrap peer {index} has no /p2p/<peer id> component")]
    BootstrapWithoutPeerId {
        /// Position in `bootstrap_peers`.
        index: usize,
    },
    /// The region is empty, too long or has characters outside `a-z0-9-`.
    #[error("region must be 1..=32 characters of a-z, 0-9 and '-'")]
    BadRegion,
    /// Retention must be 1..=365 days.
    #[error("retention of {got} days is outside 1..=365")]
    BadRetention {
        /// Days configured.
        got: u32,
    },
    /// A page or batch size of zero.
    #[error("sync page size and fetch batch must be at least 1")]
    ZeroSyncSize,
    /// A zero interval would spin.
    #[error("sync and redial intervals must be non-zero")]
    ZeroInterval,
    /// Response budgets too small to serve one upload, or a total below the per-peer share,
    /// or no stream per connection.
    #[error(
        "response budgets must be at least {MIN_PEER_RESPONSE_BYTES} bytes per peer, the total at least the per-peer budget, and streams per connection at least 1"
    )]
    BadResponseBudget,
    /// A connection limit of zero.
    #[error(
        "connection limits, the stranger idle timeout and the penalty half-life must be non-zero"
    )]
    ZeroConnectionLimit,
}

impl FederationConfig {
    /// Sets the bootstrap peers.
    pub fn with_bootstrap_peers(mut self, peers: Vec<Multiaddr>) -> Self {
        self.bootstrap_peers = peers;
        self
    }

    /// Sets the trusted authorities.
    pub fn with_trusted_authorities(mut self, trusted: TrustedAuthorities) -> Self {
        self.trusted_authorities = trusted;
        self
    }

    /// Sets the region suffix of the topic.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets how often the node reconciles with its peers.
    pub fn with_sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = interval;
        self
    }

    /// The configured peers: bootstrap peers and reserved peers.
    pub(crate) fn configured_peers(&self) -> std::collections::HashSet<libp2p::PeerId> {
        self.bootstrap_peers
            .iter()
            .filter_map(peer_id_of)
            .chain(self.reserved_peers.iter().copied())
            .collect()
    }

    /// Sets the authorities this node relays for without trusting them.
    pub fn with_relay_authorities(mut self, relay: TrustedAuthorities) -> Self {
        self.relay_authorities = relay;
        self
    }

    /// The gossipsub topic of the authority `key` in this node's region.
    pub fn topic_for(&self, key: &KeyId) -> String {
        authority_topic(self.region.as_deref(), key)
    }

    /// The authorities whose topics this node joins, with whether it trusts each (`false`:
    /// it only relays): trusted ones first, then relay-only ones.
    pub fn gossip_authorities(&self) -> Vec<(KeyId, bool)> {
        let trusted = self.trusted_authorities.iter().map(|k| (k.key_id(), true));
        let relayed = self
            .relay_authorities
            .iter()
            .map(|k| k.key_id())
            .filter(|id| !self.trusted_authorities.knows_id(id))
            .map(|id| (id, false));
        trusted.chain(relayed).collect()
    }

    /// Days kept (`limits.retention_days`).
    pub fn retention_days(&self) -> u32 {
        self.limits.retention_days
    }

    /// Ids per catch-up page after clamping.
    pub(crate) fn page_size(&self) -> usize {
        self.sync_page_size.clamp(1, MAX_IDS_PER_PAGE)
    }

    /// Bytes of uploads in one `Fetch` answer after clamping.
    pub(crate) fn fetch_response_bytes(&self) -> usize {
        self.max_fetch_response_bytes
            .clamp(1, super::sync::MAX_UPLOAD_BYTES)
            .min(self.response_bytes_per_peer)
    }

    /// Uploads per catch-up fetch after clamping.
    pub(crate) fn fetch_batch(&self) -> usize {
        self.sync_fetch_batch.clamp(1, MAX_FETCH_IDS)
    }

    /// Checks the rules that span fields.
    ///
    /// # Errors
    /// The first broken rule, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen_addrs.is_empty() {
            return Err(ConfigError::NoListenAddress);
        }
        for (index, addr) in self.bootstrap_peers.iter().enumerate() {
            if peer_id_of(addr).is_none() {
                return Err(ConfigError::BootstrapWithoutPeerId { index });
            }
        }
        if let Some(region) = &self.region
            && (region.is_empty()
                || region.len() > MAX_REGION_LEN
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            return Err(ConfigError::BadRegion);
        }
        let retention = self.limits.retention_days;
        if !(1..=365).contains(&retention) {
            return Err(ConfigError::BadRetention { got: retention });
        }
        if self.sync_page_size == 0 || self.sync_fetch_batch == 0 || self.sync_round_pages == 0 {
            return Err(ConfigError::ZeroSyncSize);
        }
        if self.sync_interval.is_zero()
            || self.redial_interval.is_zero()
            || self.sync_round_timeout.is_zero()
        {
            return Err(ConfigError::ZeroInterval);
        }
        if self.response_bytes_per_peer < MIN_PEER_RESPONSE_BYTES
            || self.response_bytes_total < self.response_bytes_per_peer
            || self.max_inbound_streams == 0
            || self.max_fetch_response_bytes == 0
        {
            return Err(ConfigError::BadResponseBudget);
        }
        if self.max_connections == 0
            || self.max_pending_incoming == 0
            || self.dials_per_minute == 0
            || self.max_connections_per_ip == 0
            || self.max_connections_per_subnet == 0
            || self.stranger_idle_timeout.is_zero()
            || self.penalty_half_life.is_zero()
        {
            return Err(ConfigError::ZeroConnectionLimit);
        }
        Ok(())
    }
}

/// The gossipsub topic of the authority `key`: [`TOPIC_PREFIX`], `/<region>` if one is set,
/// then `/authority/<key id in hex>`. A node subscribes to the topics of the authorities it
/// trusts or relays for, so gossipsub's subscriptions are how peers advertise what they
/// accept, and a report is never sent to a peer that neither trusts nor relays its
/// authority.
pub fn authority_topic(region: Option<&str>, key: &KeyId) -> String {
    match region {
        Some(region) => format!("{TOPIC_PREFIX}/{region}/authority/{key}"),
        None => format!("{TOPIC_PREFIX}/authority/{key}"),
    }
}

/// The peer id in the last `/p2p/` component of `addr`, if any.
pub(crate) fn peer_id_of(addr: &Multiaddr) -> Option<libp2p::PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_only_and_valid() {
        let config = FederationConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert!(!config.mdns);
        assert!(config.bootstrap_peers.is_empty());
        for addr in &config.listen_addrs {
            assert!(
                addr.iter()
                    .any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback())),
                "{addr}"
            );
        }
        assert!(config.gossip_authorities().is_empty());
        let key = KeyId([0xab; 8]);
        assert_eq!(
            config.topic_for(&key),
            "ephemera/uploads/v2/authority/abababababababab"
        );
        assert_eq!(config.retention_days(), 14);
    }

    #[test]
    fn bad_settings_are_refused() {
        let no_peer_id = FederationConfig::default()
            .with_bootstrap_peers(vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()]);
        assert_eq!(
            no_peer_id.validate(),
            Err(ConfigError::BootstrapWithoutPeerId { index: 0 })
        );
        assert_eq!(
            FederationConfig::default().with_region("EU").validate(),
            Err(ConfigError::BadRegion)
        );
        let regional = FederationConfig::default().with_region("eu-west");
        assert_eq!(regional.validate(), Ok(()));
        assert_eq!(
            regional.topic_for(&KeyId([1; 8])),
            "ephemera/uploads/v2/eu-west/authority/0101010101010101"
        );
        let mut forever = FederationConfig::default();
        forever.limits.retention_days = 0;
        assert_eq!(
            forever.validate(),
            Err(ConfigError::BadRetention { got: 0 })
        );
        // Relay-only authorities are those not trusted already.
        let (a, b) = (
            ephemera_proto::signing::Ed25519SigningKey::generate(&mut rand::rng()).public_key(),
            ephemera_proto::signing::Ed25519SigningKey::generate(&mut rand::rng()).public_key(),
        );
        let both = FederationConfig::default()
            .with_trusted_authorities(TrustedAuthorities::new().with(a))
            .with_relay_authorities(TrustedAuthorities::new().with(a).with(b));
        assert_eq!(
            both.gossip_authorities(),
            vec![(a.key_id(), true), (b.key_id(), false)]
        );
        let mut huge = FederationConfig {
            sync_page_size: 1_000_000,
            ..FederationConfig::default()
        };
        assert_eq!(huge.page_size(), MAX_IDS_PER_PAGE);
        huge.sync_fetch_batch = 0;
        assert_eq!(huge.validate(), Err(ConfigError::ZeroSyncSize));
        for bad in [
            FederationConfig {
                response_bytes_per_peer: MIN_PEER_RESPONSE_BYTES - 1,
                ..FederationConfig::default()
            },
            FederationConfig {
                response_bytes_total: (4 << 20) - 1,
                ..FederationConfig::default()
            },
            FederationConfig {
                max_inbound_streams: 0,
                ..FederationConfig::default()
            },
        ] {
            assert_eq!(bad.validate(), Err(ConfigError::BadResponseBudget));
        }
        let no_ip = FederationConfig {
            max_connections_per_ip: 0,
            ..FederationConfig::default()
        };
        assert_eq!(no_ip.validate(), Err(ConfigError::ZeroConnectionLimit));
        // A page larger than a peer's budget is clamped to it.
        let small = FederationConfig {
            response_bytes_per_peer: MIN_PEER_RESPONSE_BYTES,
            max_fetch_response_bytes: 8 << 20,
            ..FederationConfig::default()
        };
        assert_eq!(small.fetch_response_bytes(), MIN_PEER_RESPONSE_BYTES);
    }
}
