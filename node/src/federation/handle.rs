//! The cloneable handle the rest of the node uses to drive federation, and the commands it
//! sends to the event loop.

use std::time::Duration;

use ephemera_proto::upload::VerifiedUpload;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::FederationError;

/// A snapshot of the federation's state, for health checks, tests and operators.
#[derive(Clone, Debug)]
pub struct FederationStatus {
    /// This node's peer id.
    pub peer_id: PeerId,
    /// Peers with at least one open connection.
    pub connected_peers: Vec<PeerId>,
    /// Connected peers subscribed to at least one of this node's authority topics.
    pub topic_peers: usize,
    /// Peers in this node's gossipsub mesh of at least one of its topics.
    pub mesh_peers: usize,
    /// Peers currently banned.
    pub banned_peers: Vec<PeerId>,
    /// Gossipsub score of each connected peer.
    pub peer_scores: Vec<(PeerId, f64)>,
    /// Catch-up rounds currently running.
    pub sync_rounds_running: usize,
    /// Bytes of catch-up answers built for peers and not yet written, now.
    pub response_bytes_in_flight: usize,
    /// The most bytes of catch-up answers ever in flight at once since start.
    pub response_bytes_peak: usize,
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
pub(crate) enum Command {
    Publish(Box<VerifiedUpload>),
    #[cfg(test)]
    PublishRaw(Vec<u8>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), FederationError>>),
    Status(oneshot::Sender<FederationStatus>),
    Ban(PeerId, Option<Duration>),
    Unban(PeerId),
    SyncNow,
    SpreadSunset(Vec<u8>),
    OfferReleases,
    Shutdown,
}

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
    pub(crate) fn new(commands: mpsc::Sender<Command>, peer_id: PeerId) -> Self {
        FederationHandle { commands, peer_id }
    }

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
        self.send(Command::Publish(Box::new(upload))).await
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

    /// Sends `frame`, an order this node has just adopted, to every connected peer at once
    /// (peers connecting later get it on connection). Each peer checks it before it keeps
    /// or passes it on.
    ///
    /// # Errors
    /// [`FederationError::Stopped`] if the event loop has ended.
    pub async fn spread_sunset(&self, frame: Vec<u8>) -> Result<(), FederationError> {
        self.send(Command::SpreadSunset(frame)).await
    }

    /// Tells every connected peer which venue releases this node holds, at once (after it
    /// made one): each asks back for those it lacks. Peers connecting later ask on
    /// connection.
    ///
    /// # Errors
    /// [`FederationError::Stopped`] if the event loop has ended.
    pub async fn offer_releases(&self) -> Result<(), FederationError> {
        self.send(Command::OfferReleases).await
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
