//! The task that owns the swarm, and the cloneable handle the rest of the node uses.
//!
//! Pattern of libp2p's file-sharing example: one event loop owns the [`Swarm`]; the
//! [`FederationHandle`] sends it commands over a channel. Work that may block (verifying
//! and storing uploads, answering catch-up requests, catch-up rounds) runs in other tasks,
//! which report back over an internal channel, so the swarm is always polled promptly.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ephemera_proto::UnixTime;
use ephemera_proto::upload::VerifiedUpload;
use ephemera_proto::wire;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::SwarmEvent;
use libp2p::{
    Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns, noise, request_response, tcp, yamux,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::behaviour::{FederationBehaviour, FederationBehaviourEvent, score_thresholds};
use super::config::{FederationConfig, peer_id_of};
use super::identity::NodeIdentity;
use super::metrics;
use super::session::{self, SessionReport, SyncFailure};
use super::store::FederationStore;
use super::sync::{SyncRequest, SyncResponse, answer};
use super::validate::{Verdict, Verifier};
use super::{Clock, FederationError};

/// Most gossip messages verified at once; beyond that, messages are ignored (not
/// forwarded, no penalty) until a slot frees.
const MAX_CONCURRENT_VERIFICATIONS: usize = 256;
/// Score penalty per protocol fault in catch-up, as gossipsub application score (weight
/// 10): one fault costs as much as one invalid gossip message.
const SYNC_FAULT_PENALTY: f64 = -5.0;
/// How often bans expire and scores are checked.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
/// Commands queued before `publish` waits.
const COMMAND_QUEUE: usize = 1024;

/// A snapshot of the federation's state, for health checks, tests and operators.
#[derive(Clone, Debug)]
pub struct FederationStatus {
    /// This node's peer id.
    pub peer_id: PeerId,
    /// Peers with at least one open connection.
    pub connected_peers: Vec<PeerId>,
    /// Connected peers subscribed to the uploads topic.
    pub topic_peers: usize,
    /// Peers in this node's gossipsub mesh for the topic.
    pub mesh_peers: usize,
    /// Peers currently banned.
    pub banned_peers: Vec<PeerId>,
    /// Gossipsub score of each connected peer.
    pub peer_scores: Vec<(PeerId, f64)>,
    /// Catch-up rounds currently running.
    pub sync_rounds_running: usize,
}

impl FederationStatus {
    /// The score of `peer`, if it is connected.
    pub fn score_of(&self, peer: &PeerId) -> Option<f64> {
        self.peer_scores
            .iter()
            .find(|(p, _)| p == peer)
            .map(|(_, s)| *s)
    }
}

/// Commands from handles.
enum Command {
    Publish(VerifiedUpload),
    #[cfg(test)]
    PublishRaw(Vec<u8>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), FederationError>>),
    Status(oneshot::Sender<FederationStatus>),
    Ban(PeerId, Option<Duration>),
    Unban(PeerId),
    SyncNow,
    Shutdown,
}

/// Messages from the loop's own tasks.
pub(crate) enum Internal {
    Verdict {
        message_id: gossipsub::MessageId,
        source: PeerId,
        verdict: Verdict,
    },
    SyncRequest {
        peer: PeerId,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, SyncFailure>>,
    },
    Respond {
        channel: request_response::ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
    SessionDone {
        peer: PeerId,
        result: Result<SessionReport, SyncFailure>,
    },
    Penalize {
        peer: PeerId,
        reason: &'static str,
    },
    Republish(VerifiedUpload),
    PublishNow(VerifiedUpload),
}

/// What the loop's tasks share.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn FederationStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) verifier: Verifier,
    pub(crate) page_size: usize,
    pub(crate) fetch_batch: usize,
    pub(crate) republish_synced: bool,
    /// Ids fetched by catch-up and not stored (too old here, certificate already used,
    /// invalid), so later rounds do not fetch them again. Cleared when full.
    pub(crate) refused: std::sync::Mutex<HashSet<ephemera_proto::upload::UploadId>>,
}

/// Most ids remembered in [`Shared::refused`].
pub(crate) const MAX_REFUSED: usize = 65_536;

/// A cloneable handle to a running federation. Dropping every handle stops the loop.
#[derive(Clone, Debug)]
pub struct FederationHandle {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl FederationHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn send(&self, command: Command) -> Result<(), FederationError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| FederationError::Stopped)
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, FederationError> {
        let (tx, rx) = oneshot::channel();
        self.send(command(tx)).await?;
        rx.await.map_err(|_| FederationError::Stopped)
    }

    /// Gossips an upload the node has verified and durably stored (a phone's upload).
    ///
    /// Returns once the command is queued for the event loop (waiting if 1024 commands are
    /// already queued). If no peer is connected the upload is not lost: peers fetch it by
    /// catch-up when they connect.
    ///
    /// # Errors
    /// [`FederationError::Stopped`] if the event loop has ended.
    pub async fn publish(&self, upload: VerifiedUpload) -> Result<(), FederationError> {
        self.send(Command::Publish(upload)).await
    }

    /// Publishes raw bytes, bypassing verification: only for tests of forged traffic.
    #[cfg(test)]
    pub(crate) async fn publish_raw(&self, bytes: Vec<u8>) -> Result<(), FederationError> {
        self.send(Command::PublishRaw(bytes)).await
    }

    /// The addresses the node listens on, once every configured listener is bound.
    ///
    /// # Errors
    /// [`FederationError::Stopped`] if the event loop has ended.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, FederationError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Dials `addr` (which should end in `/p2p/<peer id>`).
    ///
    /// # Errors
    /// [`FederationError::Dial`] if the dial could not start, or
    /// [`FederationError::Stopped`].
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), FederationError> {
        self.ask(|tx| Command::Dial(addr, tx)).await?
    }

    /// A snapshot of peers, mesh, bans and scores.
    ///
    /// # Errors
    /// [`FederationError::Stopped`] if the event loop has ended.
    pub async fn status(&self) -> Result<FederationStatus, FederationError> {
        self.ask(Command::Status).await
    }

    /// Closes every connection to `peer` and refuses new ones, for `duration` or until
    /// [`Self::unban`] when `None`.
    ///
    /// # Errors
    /// [`FederationError::Stopped`] if the event loop has ended.
    pub async fn ban(
        &self,
        peer: PeerId,
        duration: Option<Duration>,
    ) -> Result<(), FederationError> {
        self.send(Command::Ban(peer, duration)).await
    }

    /// Lifts a ban.
    ///
    /// # Errors
    /// [`FederationError::Stopped`] if the event loop has ended.
    pub async fn unban(&self, peer: PeerId) -> Result<(), FederationError> {
        self.send(Command::Unban(peer)).await
    }

    /// Starts a catch-up round with every connected peer now.
    ///
    /// # Errors
    /// [`FederationError::Stopped`] if the event loop has ended.
    pub async fn sync_now(&self) -> Result<(), FederationError> {
        self.send(Command::SyncNow).await
    }

    /// Stops the event loop; its connections close. Await the `JoinHandle` from
    /// [`super::Federation::spawn`] to know it has ended.
    ///
    /// # Errors
    /// [`FederationError::Stopped`] if it had already ended.
    pub async fn shutdown(&self) -> Result<(), FederationError> {
        self.send(Command::Shutdown).await
    }
}

/// Builds the swarm and starts the event loop on the current tokio runtime.
pub(crate) fn spawn(
    config: FederationConfig,
    identity: NodeIdentity,
    store: Arc<dyn FederationStore>,
    clock: Arc<dyn Clock>,
) -> Result<(FederationHandle, JoinHandle<()>), FederationError> {
    config.validate()?;
    let topic = gossipsub::IdentTopic::new(config.topic());
    let behaviour_config = config.clone();
    let behaviour_topic = topic.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity.keypair().clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| FederationError::Transport(e.to_string()))?
        .with_quic()
        .with_behaviour(|key| FederationBehaviour::new(key, &behaviour_config, &behaviour_topic))
        .map_err(|e| FederationError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_connection_timeout))
        .build();

    let mut listeners = HashMap::new();
    for addr in &config.listen_addrs {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| FederationError::Transport(e.to_string()))?;
        listeners.insert(id, Vec::new());
    }
    let mut bootstrap = Vec::new();
    for addr in &config.bootstrap_peers {
        if let Some(peer) = peer_id_of(addr) {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            bootstrap.push((peer, addr.clone()));
        }
    }

    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        store,
        clock,
        verifier: Verifier {
            trusted: config.trusted_authorities.clone(),
            limits: config.limits.clone(),
        },
        page_size: config.page_size(),
        fetch_batch: config.fetch_batch(),
        republish_synced: config.republish_synced,
        refused: std::sync::Mutex::new(HashSet::new()),
    });
    let peer_id = *swarm.local_peer_id();
    tracing::info!(%peer_id, topic = %topic, "federation starting");
    let event_loop = EventLoop {
        swarm,
        commands: commands_rx,
        internal_rx,
        internal_tx,
        shared,
        topic,
        listeners,
        addr_waiters: Vec::new(),
        pending_requests: HashMap::new(),
        sessions: HashSet::new(),
        resync: HashSet::new(),
        bans: HashMap::new(),
        app_scores: HashMap::new(),
        bootstrap,
        verify_slots: Arc::new(Semaphore::new(MAX_CONCURRENT_VERIFICATIONS)),
        config,
    };
    let join = tokio::spawn(event_loop.run());
    Ok((
        FederationHandle {
            commands: commands_tx,
            peer_id,
        },
        join,
    ))
}

struct EventLoop {
    swarm: Swarm<FederationBehaviour>,
    commands: mpsc::Receiver<Command>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    shared: Arc<Shared>,
    topic: gossipsub::IdentTopic,
    listeners: HashMap<ListenerId, Vec<Multiaddr>>,
    addr_waiters: Vec<oneshot::Sender<Vec<Multiaddr>>>,
    pending_requests: HashMap<
        request_response::OutboundRequestId,
        oneshot::Sender<Result<SyncResponse, SyncFailure>>,
    >,
    sessions: HashSet<PeerId>,
    resync: HashSet<PeerId>,
    bans: HashMap<PeerId, Option<Instant>>,
    app_scores: HashMap<PeerId, f64>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    verify_slots: Arc<Semaphore>,
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
            }
        }
        tracing::info!(peer_id = %self.swarm.local_peer_id(), "federation stopped");
        metrics::peers_connected(0);
    }

    fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(peer)
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish(upload) => {
                let max = self.config.publish_delay_max;
                if max.is_zero() {
                    self.publish(&upload);
                } else {
                    let delay = Duration::from_millis(rand::random_range(
                        0..=max.as_millis().min(u128::from(u64::MAX)) as u64,
                    ));
                    let tx = self.internal_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(Internal::PublishNow(upload));
                    });
                }
            }
            #[cfg(test)]
            Command::PublishRaw(bytes) => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.topic.clone(), bytes);
                tracing::debug!(ok = result.is_ok(), "published raw test bytes");
            }
            Command::ListenAddrs(reply) => {
                self.addr_waiters.push(reply);
                self.answer_addr_waiters();
            }
            Command::Dial(addr, reply) => {
                let result = self
                    .swarm
                    .dial(addr)
                    .map_err(|e| FederationError::Dial(e.to_string()));
                let _ = reply.send(result);
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Ban(peer, duration) => self.ban(peer, duration.map(|d| Instant::now() + d)),
            Command::Unban(peer) => {
                self.bans.remove(&peer);
                self.swarm.behaviour_mut().block_list.unblock_peer(peer);
                tracing::info!(%peer, "peer unbanned");
            }
            Command::SyncNow => self.sync_all(),
            Command::Shutdown => {}
        }
    }

    fn publish(&mut self, upload: &VerifiedUpload) {
        let data = wire::encode(upload.upload());
        let result = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), data);
        let label = match result {
            Ok(_) => "ok",
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => "no-peers",
            Err(gossipsub::PublishError::Duplicate) => "duplicate",
            Err(e) => {
                tracing::warn!(error = %e, "gossip publish failed");
                "error"
            }
        };
        tracing::debug!(result = label, "upload published");
        metrics::published(label);
    }

    fn status(&mut self) -> FederationStatus {
        let hash = self.topic.hash();
        let connected_peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let topic_peers = gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .count();
        let mesh_peers = gossipsub.mesh_peers(&hash).count();
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
        }
    }

    fn answer_addr_waiters(&mut self) {
        if self.addr_waiters.is_empty() || self.listeners.values().any(Vec::is_empty) {
            return;
        }
        let addrs: Vec<Multiaddr> = self.listeners.values().flatten().cloned().collect();
        for waiter in self.addr_waiters.drain(..) {
            let _ = waiter.send(addrs.clone());
        }
    }

    fn ban(&mut self, peer: PeerId, until: Option<Instant>) {
        self.bans.insert(peer, until);
        self.swarm.behaviour_mut().block_list.block_peer(peer);
        tracing::info!(%peer, "peer banned");
    }

    /// Bans `peer` if its score fell below the graylist threshold.
    fn check_score(&mut self, peer: &PeerId) {
        if self.is_banned(peer) {
            return;
        }
        let Some(score) = self.swarm.behaviour().gossipsub.peer_score(peer) else {
            return;
        };
        if score < score_thresholds().graylist_threshold {
            tracing::info!(%peer, score, "banning peer for a low score");
            metrics::banned();
            self.ban(*peer, Some(Instant::now() + self.config.ban_duration));
        }
    }

    fn maintain(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| until.is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.bans.remove(&peer);
            self.swarm.behaviour_mut().block_list.unblock_peer(peer);
            tracing::info!(%peer, "ban expired");
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.check_score(&peer);
        }
    }

    fn redial(&mut self) {
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

    fn sync_all(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.start_session(peer);
        }
    }

    fn start_session(&mut self, peer: PeerId) {
        if self.is_banned(&peer) {
            return;
        }
        if !self.sessions.insert(peer) {
            self.resync.insert(peer);
            return;
        }
        let shared = self.shared.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = session::run(peer, shared, tx.clone()).await;
            let _ = tx.send(Internal::SessionDone { peer, result });
        });
    }

    fn on_internal(&mut self, message: Internal) {
        match message {
            Internal::Verdict {
                message_id,
                source,
                verdict,
            } => {
                let acceptance = match verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Reject(_) => gossipsub::MessageAcceptance::Reject,
                    Verdict::Ignore(_) => gossipsub::MessageAcceptance::Ignore,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &source, acceptance);
                metrics::gossip(verdict);
                match verdict {
                    Verdict::Accept => tracing::debug!(peer = %source, "gossiped upload stored"),
                    Verdict::Reject(reason) => {
                        tracing::info!(peer = %source, reason, "gossiped upload rejected");
                        self.check_score(&source);
                    }
                    Verdict::Ignore(reason) => {
                        tracing::debug!(peer = %source, reason, "gossiped upload ignored");
                    }
                }
            }
            Internal::SyncRequest {
                peer,
                request,
                reply,
            } => {
                if !self.swarm.is_connected(&peer) {
                    let _ = reply.send(Err(SyncFailure::Outbound("not connected".into())));
                    return;
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.pending_requests.insert(id, reply);
            }
            Internal::Respond { channel, response } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!("sync response dropped: connection closed");
                }
            }
            Internal::SessionDone { peer, result } => {
                self.sessions.remove(&peer);
                match result {
                    Ok(report) => {
                        metrics::sync_round("ok");
                        metrics::sync_lag(report.days_differing, report.missing);
                        if report.stored > 0 {
                            tracing::info!(%peer, stored = report.stored, missing = report.missing, "caught up from peer");
                        } else {
                            tracing::debug!(%peer, days = report.days_differing, "sync round done");
                        }
                    }
                    Err(e) => {
                        metrics::sync_round("failed");
                        tracing::debug!(%peer, error = %e, "sync round failed");
                    }
                }
                if self.resync.remove(&peer) && self.swarm.is_connected(&peer) {
                    self.start_session(peer);
                }
            }
            Internal::Penalize { peer, reason } => {
                tracing::info!(%peer, reason, "peer broke the sync protocol");
                let score = self.app_scores.entry(peer).or_default();
                *score += SYNC_FAULT_PENALTY;
                let score = *score;
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .set_application_score(&peer, score);
                self.check_score(&peer);
            }
            Internal::Republish(upload) | Internal::PublishNow(upload) => self.publish(&upload),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<FederationBehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
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
                tracing::info!(peer = %peer_id, "peer disconnected");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: FederationBehaviourEvent) {
        match event {
            FederationBehaviourEvent::Gossipsub(event) => self.on_gossip(event),
            FederationBehaviourEvent::Sync(event) => self.on_sync(event),
            FederationBehaviourEvent::Identify(identify::Event::Received {
                peer_id, info, ..
            }) => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                for addr in info.listen_addrs {
                    kad.add_address(&peer_id, addr);
                }
            }
            FederationBehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                is_new_peer: true,
                ..
            }) => self.maybe_dial(peer),
            FederationBehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                    self.maybe_dial(peer);
                }
            }
            _ => {}
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

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let verdict_now = if message.topic != self.topic.hash() {
            Some(Verdict::Ignore("wrong-topic"))
        } else {
            None
        };
        let permit = match (verdict_now, self.verify_slots.clone().try_acquire_owned()) {
            (None, Ok(permit)) => permit,
            (verdict, _) => {
                let verdict = verdict.unwrap_or(Verdict::Ignore("overloaded"));
                self.on_internal(Internal::Verdict {
                    message_id,
                    source: propagation_source,
                    verdict,
                });
                return;
            }
        };
        let shared = self.shared.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let id = message_id.clone();
            let verdict = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let now: UnixTime = shared.clock.now();
                shared
                    .verifier
                    .check_gossip(&*shared.store, &id.0, &message.data, now)
            })
            .await
            .unwrap_or(Verdict::Ignore("internal"));
            let _ = tx.send(Internal::Verdict {
                message_id,
                source: propagation_source,
                verdict,
            });
        });
    }

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                metrics::sync_request("inbound", request.kind());
                tracing::debug!(%peer, kind = request.kind(), "sync request");
                let shared = self.shared.clone();
                let tx = self.internal_tx.clone();
                tokio::spawn(async move {
                    let retention = shared.verifier.limits.retention_days;
                    let today = shared.clock.now().day();
                    let response = tokio::task::spawn_blocking(move || {
                        answer(&*shared.store, request, today, retention)
                    })
                    .await;
                    if let Ok(response) = response {
                        let _ = tx.send(Internal::Respond { channel, response });
                    }
                });
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(SyncFailure::Outbound(error.to_string())));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
