//! The task that owns the swarm: a small dispatcher over the concerns in its submodules.
//!
//! Pattern of libp2p's file-sharing example: one event loop owns the [`Swarm`]; the
//! [`FederationHandle`] sends it commands over a channel. Work that may block (verifying
//! and storing uploads, answering catch-up requests, catch-up rounds) runs in other tasks,
//! which report back over an internal channel ([`Internal`]), so the swarm is always polled
//! promptly.
//!
//! | module | concern |
//! | --- | --- |
//! | [`gossip`] | publishing, verifying received messages, telling gossipsub the verdict |
//! | [`catch_up`] | starting and finishing catch-up rounds, answering peers' requests |
//! | [`connections`] | listen addresses, connections opened and closed |
//! | [`discovery`] | bootstrap redial, Kademlia, identify, mDNS |
//! | [`scoring`] | catch-up penalties, score checks and bans |
//! | [`twins`] | hellos to peers, answering theirs, reports to the node's twin witness |
//! | [`heads`] | batch-log heads to peers and from them, to the node's head witness |
//! | [`sunset`] | the held sunset order to peers, peers' orders to the node's witness |
//! | [`venue_releases`] | asks with the venue releases held, answers with those a peer lacks, peers' releases to the node's keeper |
//!
//! What a verdict costs a peer is decided in [`super::validate::judge`], not here.

mod catch_up;
mod connections;
mod discovery;
mod gossip;
mod heads;
mod offer_budget;
mod scoring;
mod sunset;
mod twins;
mod venue_releases;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ephemera_node_core::twin_guard::HelloLog;
use ephemera_proto::signing::KeyId;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, request_response};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::behaviour::{FederationBehaviour, FederationBehaviourEvent, build_swarm};
use super::budget::ResponseBudget;
use super::config::{FederationConfig, peer_id_of};
use super::dht;
use super::dial::{DialPolicy, SharedPolicy};
use super::handle::{Command, FederationHandle, FederationStatus};
use super::identity::NodeIdentity;
use super::metrics;
use super::shared::{Internal, Shared, SyncFailure};
use super::store::FederationStore;
use super::sync::SyncResponse;
use super::validate::Verifier;
use super::{Clock, FederationError};

/// Most gossip messages verified at once (blocking tasks); the others wait their turn.
const MAX_CONCURRENT_VERIFICATIONS: usize = 64;
/// Most KiB of gossip messages waiting for or under verification (256 MiB). A burst queues
/// here rather than being dropped; past it, a message is ignored (not forwarded, no
/// penalty) and a catch-up round with its sender is started at once, so the gap is filled
/// without waiting for the next `sync_interval`. Every waiting message gets its verdict
/// within gossipsub's validation window (`behaviour::VALIDATION_WINDOW`) at the
/// verification rates measured in `docs/BENCHMARKS.md`.
const MAX_PENDING_VERIFICATION_KIB: usize = 256 << 10;
/// How often bans expire and scores are checked.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
/// Commands queued before `publish` waits.
const COMMAND_QUEUE: usize = 1024;

/// Builds the swarm and starts the event loop on the current tokio runtime.
pub(crate) fn spawn(
    config: FederationConfig,
    identity: NodeIdentity,
    store: Arc<dyn FederationStore>,
    clock: Arc<dyn Clock>,
) -> Result<(FederationHandle, JoinHandle<()>), FederationError> {
    config.validate()?;
    let topics = Topics::new(&config);
    let policy: SharedPolicy = Arc::new(std::sync::Mutex::new(DialPolicy::new(
        config.dial_private_addrs,
        &config.bootstrap_peers,
        config.dials_per_minute,
        std::time::Instant::now(),
    )));
    let mut swarm = build_swarm(&identity, &config, &topics.all(), policy.clone())?;

    let mut listeners = HashMap::new();
    for addr in &config.listen_addrs {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| FederationError::transport(&format!("listening on {addr}"), &e))?;
        listeners.insert(id, Vec::new());
    }
    let mut bootstrap = Vec::new();
    for addr in &config.bootstrap_peers {
        if let Some(peer) = peer_id_of(addr) {
            if let Some(kad) = swarm.behaviour_mut().kad.as_mut() {
                kad.add_address(&peer, addr.clone());
            }
            bootstrap.push((peer, addr.clone()));
        }
    }

    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::new(
        store,
        clock,
        Verifier::new(
            config.trusted_authorities.clone(),
            config.relay_authorities.clone(),
            config.limits.clone(),
        ),
        config.page_size(),
        config.fetch_batch(),
        config.republish_synced,
        config.sync_round_pages,
    ));
    let peer_id = *swarm.local_peer_id();
    if bootstrap.is_empty() {
        tracing::info!(
            "no bootstrap peers: this node runs alone until a peer dials it (the default; \
             set [federation] bootstrap_peers to join a federation)"
        );
    }
    tracing::info!(
        %peer_id,
        trusted = config.trusted_authorities.len(),
        relayed = topics.by_authority.len() - config.trusted_authorities.len(),
        "federation starting"
    );
    let event_loop = EventLoop {
        swarm,
        commands: commands_rx,
        internal_rx,
        internal_tx,
        shared,
        topics,
        listeners,
        addr_waiters: Vec::new(),
        pending_requests: HashMap::new(),
        sessions: HashSet::new(),
        resync: HashSet::new(),
        bans: HashMap::new(),
        app_scores: HashMap::new(),
        bootstrap,
        verify_slots: Arc::new(Semaphore::new(MAX_CONCURRENT_VERIFICATIONS)),
        pending_kib: Arc::new(Semaphore::new(MAX_PENDING_VERIFICATION_KIB)),
        configured: config.configured_peers(),
        policy,
        last_useful: HashMap::new(),
        hellos: HelloLog::new(),
        sunset: sunset::SunsetSpread::new(),
        releases: venue_releases::ReleaseSpread::new(),
        budget: ResponseBudget::new(
            config.response_bytes_total,
            config.response_bytes_per_peer,
            config.response_budget_wait,
        ),
        config,
    };
    let sink = event_loop.config.metrics.clone();
    let join = tokio::spawn(metrics::scope(sink, event_loop.run()));
    Ok((FederationHandle::new(commands_tx, peer_id), join))
}

/// The gossip topics this node joined: one per authority it trusts or relays for.
struct Topics {
    /// Each topic's authority.
    by_hash: HashMap<gossipsub::TopicHash, KeyId>,
    /// Each authority's topic.
    by_authority: HashMap<KeyId, gossipsub::IdentTopic>,
}

impl Topics {
    fn new(config: &FederationConfig) -> Self {
        let mut topics = Topics {
            by_hash: HashMap::new(),
            by_authority: HashMap::new(),
        };
        for (key, _) in config.gossip_authorities() {
            let topic = gossipsub::IdentTopic::new(config.topic_for(&key));
            topics.by_hash.insert(topic.hash(), key);
            topics.by_authority.insert(key, topic);
        }
        topics
    }

    fn all(&self) -> Vec<gossipsub::IdentTopic> {
        self.by_authority.values().cloned().collect()
    }
}

struct EventLoop {
    swarm: Swarm<FederationBehaviour>,
    commands: mpsc::Receiver<Command>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    shared: Arc<Shared>,
    topics: Topics,
    listeners: HashMap<ListenerId, Vec<Multiaddr>>,
    addr_waiters: Vec<oneshot::Sender<Vec<Multiaddr>>>,
    /// Catch-up requests sent for a round, by request id.
    pending_requests: HashMap<
        request_response::OutboundRequestId,
        oneshot::Sender<Result<SyncResponse, SyncFailure>>,
    >,
    /// Peers with a catch-up round running.
    sessions: HashSet<PeerId>,
    /// Peers to start another round with when the running one ends.
    resync: HashSet<PeerId>,
    /// Banned peers, until when (`None`: until unbanned).
    bans: HashMap<PeerId, Option<Instant>>,
    /// Application score (catch-up faults, costly answers) of each penalised peer, decaying.
    app_scores: HashMap<PeerId, scoring::Penalty>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    verify_slots: Arc<Semaphore>,
    /// KiB of gossip messages waiting for or under verification.
    pending_kib: Arc<Semaphore>,
    /// What may be dialled (shared with the transport).
    policy: SharedPolicy,
    /// Bootstrap and reserved peers (see `FederationConfig::reserved_peers`).
    configured: HashSet<PeerId>,
    /// When each connected peer last gave this node something new (or connected).
    last_useful: HashMap<PeerId, Instant>,
    /// Bytes of catch-up answers in flight, per peer and in total.
    budget: ResponseBudget,
    /// Peers' hellos heard lately (twin detection).
    hellos: HelloLog,
    /// Peers' budgets of sunset-order checks, and the checks in flight.
    sunset: sunset::SunsetSpread,
    /// Peers' budgets of release checks, asks out, releases refused here.
    releases: venue_releases::ReleaseSpread,
    config: FederationConfig,
}

impl EventLoop {
    async fn run(mut self) {
        let start = Instant::now();
        let mut sync_tick =
            tokio::time::interval_at(start + self.config.sync_interval, self.config.sync_interval);
        sync_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut redial_tick = tokio::time::interval(self.config.redial_interval);
        redial_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        maintenance.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut dht_tick =
            tokio::time::interval_at(start + dht::REFRESH_INTERVAL, dht::REFRESH_INTERVAL);
        dht_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    None | Some(Command::Shutdown) => break,
                    Some(command) => self.on_command(command),
                },
                Some(message) = self.internal_rx.recv() => self.on_internal(message),
                _ = sync_tick.tick() => self.sync_all(),
                _ = redial_tick.tick() => self.redial(),
                _ = maintenance.tick() => self.maintain(),
                _ = dht_tick.tick() => {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.refresh();
                    }
                }
            }
        }
        tracing::info!(peer_id = %self.swarm.local_peer_id(), "federation stopped");
        metrics::peers_connected(0);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish(upload) => self.publish_later(*upload),
            #[cfg(test)]
            Command::PublishRaw(bytes) => self.publish_raw(bytes),
            Command::ListenAddrs(reply) => {
                self.addr_waiters.push(reply);
                self.answer_addr_waiters();
            }
            Command::Dial(addr, reply) => {
                // Dialled on purpose: allowed whatever its range.
                self.policy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .allow(&addr);
                let result = self
                    .swarm
                    .dial(addr)
                    .map_err(|e| FederationError::Dial(e.to_string()));
                let _ = reply.send(result);
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Ban(peer, duration) => {
                self.ban(
                    peer,
                    duration.map(|d| Instant::now() + d),
                    "asked by the node",
                );
            }
            Command::Unban(peer) => self.unban(peer),
            Command::SyncNow => self.sync_all(),
            Command::SpreadSunset(frame) => self.spread_sunset(frame),
            Command::OfferReleases => self.offer_releases(),
            Command::Shutdown => {}
        }
    }

    fn on_internal(&mut self, message: Internal) {
        match message {
            Internal::Verdict {
                message_id,
                source,
                verdict,
            } => self.report_verdict(message_id, source, verdict),
            Internal::SyncRequest {
                peer,
                request,
                reply,
            } => self.send_sync_request(peer, request, reply),
            Internal::Respond { channel, response } => self.respond(channel, response),
            Internal::SessionDone { peer, result } => self.session_done(peer, result),
            Internal::Penalize { peer, reason } => self.penalize(peer, reason),
            Internal::Republish(upload) | Internal::PublishNow(upload) => self.publish(&upload),
            Internal::AskReleases { peer, have } => self.send_release_ask(peer, have),
            Internal::AnswerReleases { channel, frames } => {
                self.send_release_answer(channel, frames);
            }
            Internal::ReleasesWanted { peer } => self.ask_releases(peer),
            Internal::ReleasesTaken {
                peer,
                stored,
                ask_again,
            } => self.releases_taken(peer, stored, ask_again),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<FederationBehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            event => self.on_connection_event(event),
        }
    }

    fn on_behaviour_event(&mut self, event: FederationBehaviourEvent) {
        match event {
            FederationBehaviourEvent::Gossipsub(event) => self.on_gossip(event),
            FederationBehaviourEvent::Sync(event) => self.on_sync(event),
            FederationBehaviourEvent::Instance(event) => self.on_instance(event),
            FederationBehaviourEvent::Heads(event) => self.on_heads(event),
            FederationBehaviourEvent::Sunset(event) => self.on_sunset(event),
            FederationBehaviourEvent::VenueReleases(event) => self.on_venue_releases(event),
            FederationBehaviourEvent::Identify(event) => self.on_identify(event),
            FederationBehaviourEvent::Kad(event) => self.on_kad(event),
            FederationBehaviourEvent::Mdns(event) => self.on_mdns(event),
            _ => {}
        }
    }

    fn status(&mut self) -> FederationStatus {
        let connected_peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let ours = &self.topics.by_hash;
        let topic_peers = gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.iter().any(|t| ours.contains_key(t)))
            .count();
        // Every topic joined is one of ours.
        let mesh_peers = gossipsub.all_mesh_peers().count();
        let peer_scores = connected_peers
            .iter()
            .filter_map(|p| gossipsub.peer_score(p).map(|s| (*p, s)))
            .collect();
        FederationStatus {
            peer_id: *self.swarm.local_peer_id(),
            connected_peers,
            topic_peers,
            mesh_peers,
            banned_peers: self.bans.keys().copied().collect(),
            peer_scores,
            sync_rounds_running: self.sessions.len(),
            response_bytes_in_flight: self.budget.in_flight(),
            response_bytes_peak: self.budget.peak(),
        }
    }
}
