#![allow(dead_code)] // each attack uses a part; items 3-5 of #32 use the rest
//! A hostile federation peer, built on libp2p 0.57 with the node's own protocols: it dials
//! a node under any number of fresh identities, asks catch-up questions and reads the
//! answers slowly or not at all, answers catch-up questions dishonestly, gossips on the
//! node's topic, and announces addresses of its choosing. Loopback only.

use std::io;
use std::time::Duration;

use ephemera_node::federation::frame::{read_frame, write_frame};
use ephemera_node::federation::sync::{SYNC_PROTOCOL, SyncRequest, SyncResponse};
use ephemera_node::federation::{
    IDENTIFY_PROTOCOL, KAD_PROTOCOL, Multiaddr, PeerId, authority_topic,
};
use ephemera_proto::wire;
use futures::{AsyncRead, AsyncWrite, StreamExt};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    StreamProtocol, Swarm, connection_limits, gossipsub, identify, identity::Keypair, kad, noise,
    request_response, tcp, yamux,
};
use ring::digest;

/// How the attacker reads answers to its catch-up requests.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Reading {
    /// Reads and decodes them.
    #[default]
    Normal,
    /// Never reads them: the stream stays open until one side times out.
    Never,
}

/// Catch-up framing (4-byte big-endian length, then a `proto::wire` frame), with the
/// attacker's choice of how to read answers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AttackCodec {
    pub(crate) reading: Reading,
}

/// The largest answer the attacker reads.
const MAX_FRAME: usize = 8 << 20;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl request_response::Codec for AttackCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        wire::decode(&read_frame(io, MAX_FRAME).await?).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        match self.reading {
            Reading::Normal => wire::decode(&read_frame(io, MAX_FRAME).await?).map_err(invalid),
            Reading::Never => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(io::ErrorKind::TimedOut.into())
            }
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &wire::encode(&request)).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &wire::encode(&response)).await
    }
}

/// Every protocol the attacker may speak.
#[derive(NetworkBehaviour)]
pub(crate) struct AttackBehaviour {
    /// Refuses every outbound dial when `Speaks::no_dials` (a poisoner must not dial its
    /// own made-up peers: only the node's dials count).
    pub(crate) no_dials: Toggle<connection_limits::Behaviour>,
    pub(crate) sync: request_response::Behaviour<AttackCodec>,
    pub(crate) gossipsub: Toggle<gossipsub::Behaviour>,
    pub(crate) identify: Toggle<identify::Behaviour>,
    pub(crate) kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
}

/// What an attacking identity speaks besides catch-up.
#[derive(Clone, Debug, Default)]
pub(crate) struct Speaks {
    /// How catch-up answers are read.
    pub(crate) reading: Reading,
    /// Speak gossipsub (anonymous mode, content-hash ids, like the node), to publish on the
    /// node's topics.
    pub(crate) gossip: bool,
    /// Run identify, announcing these listen addresses.
    pub(crate) announce: Option<Vec<Multiaddr>>,
    /// Run Kademlia in server mode (answers the node's queries from its routing table).
    pub(crate) kad: bool,
    /// Dial nothing (peers dial it).
    pub(crate) no_dials: bool,
}

/// The topic an encoded upload travels on at a node without a region: its authority's.
pub(crate) fn topic_of(encoded: &[u8]) -> gossipsub::IdentTopic {
    let upload: ephemera_proto::upload::SignedUpload =
        wire::decode(encoded).expect("an encoded upload");
    gossipsub::IdentTopic::new(authority_topic(
        None,
        &upload.certificate.certificate.authority,
    ))
}

/// A fresh identity's swarm (TCP, Noise, Yamux) speaking `speaks`; connections are kept for
/// an hour unless the node closes them.
pub(crate) fn swarm(speaks: &Speaks) -> Swarm<AttackBehaviour> {
    let speaks = speaks.clone();
    libp2p::SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(move |key: &Keypair| {
            let peer_id = key.public().to_peer_id();
            let sync = request_response::Behaviour::with_codec(
                AttackCodec {
                    reading: speaks.reading,
                },
                [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(120))
                    .with_max_concurrent_streams(256),
            );
            let gossipsub = speaks.gossip.then(|| {
                let config = gossipsub::ConfigBuilder::default()
                    .validation_mode(gossipsub::ValidationMode::Anonymous)
                    .message_id_fn(|m: &gossipsub::Message| {
                        gossipsub::MessageId::new(digest::digest(&digest::SHA256, &m.data).as_ref())
                    })
                    .max_transmit_size(2 << 20)
                    .heartbeat_interval(Duration::from_millis(500))
                    .build()
                    .expect("gossipsub config");
                // Subscribed to nothing: it publishes to the node's topics (fanout).
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
                    .expect("gossipsub")
            });
            let identify = speaks.announce.clone().map(|_| {
                identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_PROTOCOL.to_owned(),
                    key.public(),
                ))
            });
            let kad = speaks.kad.then(|| {
                let mut kad = kad::Behaviour::with_config(
                    peer_id,
                    kad::store::MemoryStore::new(peer_id),
                    kad::Config::new(KAD_PROTOCOL),
                );
                kad.set_mode(Some(kad::Mode::Server));
                kad
            });
            let no_dials = speaks.no_dials.then(|| {
                connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_pending_outgoing(Some(0)),
                )
            });
            AttackBehaviour {
                no_dials: Toggle::from(no_dials),
                sync,
                gossipsub: Toggle::from(gossipsub),
                identify: Toggle::from(identify),
                kad: Toggle::from(kad),
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build()
}

/// Adds the addresses in `speaks.announce` as the swarm's external addresses, so identify
/// announces them (and Kademlia hands them out).
pub(crate) fn announce(swarm: &mut Swarm<AttackBehaviour>, addrs: &[Multiaddr]) {
    for addr in addrs {
        swarm.add_external_address(addr.clone());
    }
}

/// The peer id in the last `/p2p/` component of `addr`.
pub(crate) fn peer_of(addr: &Multiaddr) -> PeerId {
    addr.iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .expect("address ends in /p2p/<peer id>")
}

/// Polls `swarm` until `deadline` or until `on_event`, handed each event, returns true.
pub(crate) async fn drive_until(
    swarm: &mut Swarm<AttackBehaviour>,
    deadline: tokio::time::Instant,
    mut on_event: impl FnMut(&mut Swarm<AttackBehaviour>, SwarmEvent<AttackBehaviourEvent>) -> bool,
) {
    loop {
        tokio::select! {
            event = swarm.select_next_some() => if on_event(swarm, event) { return },
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}
