//! The composed libp2p behaviour and the swarm it runs in.
//!
//! # Why anonymous gossip
//! Gossipsub's default signed mode stamps the publishing node's peer id and a sequence
//! number on every message, so every node in the federation would learn at which node each
//! report entered, and could line that up with the phone traffic of that node. Federation
//! needs no such stamp: an upload authenticates itself (authority certificate + HMAC) and
//! every receiver re-verifies it. So messages are published with
//! [`gossipsub::MessageAuthenticity::Anonymous`] (no author, sequence number or signature;
//! [`gossipsub::ValidationMode::Anonymous`] rejects any message that carries them), and the
//! message id is SHA-256 of the bytes, which for a canonical upload is its `UploadId`: the
//! same report has the same id wherever it enters, and duplicates die at the first hop.
//! `flood_publish` is off, so a node hands its own uploads to its mesh peers only, like any
//! forwarded message, rather than to every peer at once. A direct neighbour can still guess
//! the origin from timing; the optional publish delay blurs that.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::Transport;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, allow_block_list, connection_limits, gossipsub, identify, mdns, noise,
    quic, request_response, tcp, yamux,
};
use ring::digest;

use super::FederationError;
use super::admission::{AddressCaps, AddressLimits};
use super::config::FederationConfig;
use super::dht::Dht;
use super::dial::{PolicyTransport, SharedPolicy};
use super::heads::{HEADS_PROTOCOL, HeadsCodec};
use super::identity::NodeIdentity;
use super::instance::{INSTANCE_PROTOCOL, InstanceCodec};
use super::sunset::{SUNSET_PROTOCOL, SunsetCodec};
use super::sync::{SYNC_PROTOCOL, SyncCodec};
use super::venue_releases::{RELEASES_PROTOCOL, ReleaseCodec};

/// Kademlia protocol name of the Ephemera federation (kept apart from the public IPFS DHT).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ephemera/kad/1");
/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/ephemera/id/1";

/// Most bytes of one gossip message: a `SignedUpload` frame (1 MiB) plus protobuf overhead.
const MAX_GOSSIP_SIZE: usize = (1 << 20) + (16 << 10);

/// Gossipsub heartbeat: mesh upkeep, IHAVE gossip, and the tick of the message cache.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// How long a received message may wait for its verdict, and a message to a peer may wait
/// in that peer's send queue, before gossipsub drops it.
///
/// Gossipsub keeps an unvalidated message in its message cache for `history_length`
/// heartbeats only (default 5, 2.5 s here): a verdict that comes later forwards nothing, and
/// the duplicate cache then drops every later copy, so under a burst whose verification
/// backlog is longer than that, the message went no further than this node, and only
/// catch-up (a minute later) filled the gap. Likewise a forwarded message that waited more
/// than 1 s (default) in a peer's send queue was dropped. Both windows now cover the
/// verification backlog a burst builds up (the backlog itself is bounded: see
/// `event_loop::MAX_PENDING_VERIFICATIONS`).
pub(crate) const VALIDATION_WINDOW: Duration = Duration::from_secs(60);

/// Messages queued for one peer before gossipsub drops more (default 5,000): room for a
/// burst of 20,000 reports published at one node, spread over its mesh peers. Gossipsub
/// bounds the queue by messages, not bytes: with uploads of a few KiB, a peer that reads
/// nothing pins tens of MiB (uploads near the 1 MiB cap could pin more, as with the default).
const SEND_QUEUE: usize = 16_384;

/// Score thresholds: below `graylist` a peer is ignored by gossipsub and banned by us.
pub(crate) fn score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// Peer scoring tuned for a low-traffic topic where every message is checkable: one invalid
/// message costs -50 (the score drops below zero and below the gossip threshold), two cost
/// -200 (below graylist: the peer is ignored and banned). Positive scores are small, so a
/// long honest history cannot buy a forger many free messages. Mesh delivery-rate penalties
/// are off: reports are rare, and a quiet peer is not a faulty one.
pub(crate) fn score_params(topics: &[gossipsub::TopicHash]) -> gossipsub::PeerScoreParams {
    let topic_params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -50.0,
        // Per decay interval (1 s): about half the penalty is gone after 5 minutes.
        invalid_message_deliveries_decay: 0.998,
        ..gossipsub::TopicScoreParams::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        topic_score_cap: 20.0,
        // Loopback peers are co-located by nature (tests, several nodes on one host).
        ip_colocation_factor_whitelist: HashSet::from([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        ..gossipsub::PeerScoreParams::default()
    };
    for topic in topics {
        params.topics.insert(topic.clone(), topic_params.clone());
    }
    params
}

/// Every protocol a federating node speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct FederationBehaviour {
    /// Banned peers (forgers, and partitions made on purpose).
    pub(crate) block_list: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Caps on connections: in total, per peer, and handshakes in progress; configured
    /// peers bypass them (their reserved slots).
    pub(crate) limits: connection_limits::Behaviour,
    /// Caps on strangers' connections per IP address and subnet.
    pub(crate) addresses: AddressLimits,
    /// Uploads, as anonymous gossip.
    pub(crate) gossipsub: gossipsub::Behaviour,
    /// Catch-up.
    pub(crate) sync: request_response::Behaviour<SyncCodec>,
    /// Twin detection: hellos and the other instances peers heard.
    pub(crate) instance: request_response::Behaviour<InstanceCodec>,
    /// Batch-log heads: what each node holds, passed on.
    pub(crate) heads: request_response::Behaviour<HeadsCodec>,
    /// Sunset orders: the one each node holds, passed on.
    pub(crate) sunset: request_response::Behaviour<SunsetCodec>,
    /// Venue releases: the ids each node holds, the releases a peer lacks.
    pub(crate) venue_releases: request_response::Behaviour<ReleaseCodec>,
    /// Peer discovery beyond the bootstrap list; off when `discovery` is off.
    pub(crate) kad: Toggle<Dht>,
    /// Listen addresses and protocols of peers.
    pub(crate) identify: identify::Behaviour,
    /// Local-network discovery; off unless configured.
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
}

/// The behaviour could not be built.
pub(crate) type BuildError = Box<dyn std::error::Error + Send + Sync>;

impl FederationBehaviour {
    pub(crate) fn new(
        key: &Keypair,
        config: &FederationConfig,
        topics: &[gossipsub::IdentTopic],
    ) -> Result<Self, BuildError> {
        let peer_id = key.public().to_peer_id();

        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            .validate_messages()
            .message_id_fn(|message: &gossipsub::Message| {
                gossipsub::MessageId::new(digest::digest(&digest::SHA256, &message.data).as_ref())
            })
            .max_transmit_size(MAX_GOSSIP_SIZE)
            .flood_publish(false)
            .heartbeat_interval(HEARTBEAT)
            // A burst must not outrun the flow (see `VALIDATION_WINDOW`).
            .history_length(VALIDATION_WINDOW.div_duration_f64(HEARTBEAT).ceil() as usize)
            .connection_handler_queue_len(SEND_QUEUE)
            .publish_queue_duration(VALIDATION_WINDOW)
            .forward_queue_duration(VALIDATION_WINDOW)
            .build()?;
        let mut gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)?;
        let hashes: Vec<gossipsub::TopicHash> = topics.iter().map(|t| t.hash()).collect();
        gossipsub.with_peer_score(score_params(&hashes), score_thresholds())?;
        for topic in topics {
            gossipsub.subscribe(topic)?;
        }

        let sync = request_response::Behaviour::new(
            [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(config.max_inbound_streams),
        );

        let instance = request_response::Behaviour::new(
            [(INSTANCE_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(config.max_inbound_streams),
        );

        let heads = request_response::Behaviour::new(
            [(HEADS_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(config.max_inbound_streams),
        );

        let sunset = request_response::Behaviour::new(
            [(SUNSET_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(config.max_inbound_streams),
        );

        let venue_releases = request_response::Behaviour::new(
            [(RELEASES_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(config.max_inbound_streams),
        );

        let kad = config.discovery.then(|| Dht::new(peer_id));

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                // No exact version: it would tell an attacker which known bugs to try.
                .with_agent_version("ephemera-node".to_owned()),
        );

        let mdns = if config.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };

        let mut limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(config.max_connections))
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(config.max_pending_incoming)),
        );
        let configured = config.configured_peers();
        for peer in &configured {
            limits.bypass_peer_id(peer);
        }
        let addresses = AddressLimits::new(
            AddressCaps {
                per_ip: config.max_connections_per_ip,
                per_subnet: config.max_connections_per_subnet,
                pending_per_ip: (config.max_pending_incoming as usize / 4).max(1),
            },
            configured,
        );

        Ok(FederationBehaviour {
            block_list: allow_block_list::Behaviour::default(),
            limits,
            addresses,
            gossipsub,
            sync,
            instance,
            heads,
            sunset,
            venue_releases,
            kad: Toggle::from(kad),
            identify,
            mdns: Toggle::from(mdns),
        })
    }
}

/// The swarm: TCP (Noise, Yamux) and QUIC transports, behind [`PolicyTransport`] so that
/// every dial obeys `policy`, around [`FederationBehaviour`], with the configured
/// idle-connection timeout. Nothing listens yet.
pub(crate) fn build_swarm(
    identity: &NodeIdentity,
    config: &FederationConfig,
    topics: &[gossipsub::IdentTopic],
    policy: SharedPolicy,
) -> Result<Swarm<FederationBehaviour>, FederationError> {
    let transport_error =
        |e: &dyn std::error::Error| FederationError::transport("building the swarm", e);
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(identity.keypair().clone())
            .with_tokio()
            .with_other_transport(|key| -> Result<_, BuildError> {
                // What `with_tcp` and `with_quic` build, in one transport.
                let tcp = tcp::tokio::Transport::new(tcp::Config::default())
                    .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
                let quic = quic::tokio::Transport::new(quic::Config::new(key))
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
                let both = tcp.or_transport(quic).map(|either, _| either.into_inner());
                Ok(PolicyTransport::new(both, policy))
            })
            .map_err(|e| transport_error(&e))?
            .with_behaviour(|key| FederationBehaviour::new(key, config, topics))
            .map_err(|e| transport_error(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_connection_timeout))
            .build(),
    )
}
