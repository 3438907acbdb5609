//! Federation: nodes exchange verified uploads over libp2p.
//!
//! ```text
//!  phone ──upload──▶ node A ──store──▶ FederationHandle::publish ──gossip──▶ B, C, …
//!                                                                    │
//!            each receiver: wire::decode → SignedUpload::verify (Relayed) → store → forward
//!
//!  node restarted / partitioned ── on connect and every sync_interval ──▶ catch-up (sync)
//! ```
//!
//! * **Transport**: TCP (Noise, Yamux) and QUIC; listeners on 127.0.0.1 by default.
//! * **Gossip**: one gossipsub topic per protocol version ([`TOPIC_PREFIX`], optionally
//!   with a region suffix), in anonymous mode with a content-hash message id, so messages do
//!   not say where a report entered (the reasoning is in `behaviour.rs`). Every
//!   message is validated manually: decoded, re-verified against this node's trusted
//!   authorities with the relayed expiry policy, deduplicated by [`UploadId`], stored, and
//!   only then forwarded. Forgeries are rejected and cost the sender its peer score; a peer
//!   below the graylist threshold is banned for [`FederationConfig::ban_duration`]. A report
//!   under an authority this node does not trust is ignored without penalty, on gossip and
//!   catch-up alike: its relay may trust that authority.
//! * **Twins**: hellos on [`INSTANCE_PROTOCOL`] let two copies of one node learn of each
//!   other through the peers they share (`instance.rs`).
//! * **Batch logs**: nodes pass each other the signed heads they hold on
//!   [`HEADS_PROTOCOL`], so a node that equivocates or rolls back is caught (`heads.rs`).
//! * **Sunset orders**: nodes pass each other the order they hold on [`SUNSET_PROTOCOL`],
//!   on connection, every sync round, and at once when one is adopted; each receiver checks
//!   it against its own committee, and only undecodable or oversized frames cost the
//!   sender (`sunset.rs`).
//! * **Venue releases**: nodes ask each other with the ids of the releases they hold on
//!   [`RELEASES_PROTOCOL`], on connection, every sync round, and at once when one is new;
//!   the answer carries those the asker lacks, each checked against the asker's trusted
//!   authorities (`venue_releases.rs`).
//! * **Catch-up**: the [`sync`] protocol reconciles per-day digests and id pages over the
//!   retention window, with every range clamped.
//! * **Discovery**: bootstrap peers from config (re-dialled while disconnected), Kademlia,
//!   and mDNS only when [`FederationConfig::mdns`] is set (off by default: it sends
//!   multicast off the machine). Every dial passes the dial policy (`dial.rs`): addresses
//!   learned from peers must be public unless [`FederationConfig::dial_private_addrs`], and
//!   spend a per-minute budget; [`FederationConfig::discovery`] off runs no Kademlia.
//! * **Hostile peers** (issue #32): answers to catch-up requests are deduplicated, paged
//!   and held within an in-flight byte budget per peer and in total (`budget.rs`);
//!   configured peers (bootstrap and [`FederationConfig::reserved_peers`]) bypass the
//!   connection caps, strangers are capped per address and subnet and while handshaking
//!   (`admission.rs`) and let go when idle while slots are scarce; a catch-up round stops
//!   past the range its peer advertised, or at its page and time budget; penalties decay
//!   (`event_loop/scoring.rs`).
//!
//! A negative gossipsub score silences gossip with that peer: the heartbeat prunes it from
//! the mesh and refuses its grafts, received messages are forwarded to mesh peers only, and
//! below the gossip threshold it gets no IHAVE either; catch-up (request-response) is not
//! scored and still delivers. Scores outlive reconnections (gossipsub keeps them an hour)
//! and only a restart clears them. That is the likely cause (read from the code, not
//! reproduced) of gossip between two honest nodes stopping until a restart in the #32
//! audit, while catch-up still delivered: a penalty on an honest peer (a relayed report of
//! an authority this node does not trust, or a catch-up penalty, which never decayed).
//! Penalties now hit only what no honest node sends, small ones stay small, and all decay.
//!
//! What a received upload costs its sender (gossipsub acceptance, peer penalty) is decided in
//! one place, `validate::judge`. A failure of the node's store is never read as "not held":
//! the message is ignored without penalty, the catch-up round stops, and a peer's request
//! goes unanswered.
//!
//! The node plugs in through [`FederationStore`] (what federation reads and writes) and
//! [`FederationHandle`] (what the node calls): [`Federation::spawn`] starts one event-loop
//! task that owns the swarm.
//!
//! # Plugging into the node
//! ```no_run
//! # use std::sync::Arc;
//! # use ephemera_node::federation::*;
//! # async fn demo(
//! #     store: Arc<dyn FederationStore>,
//! #     identity_bytes: Vec<u8>,
//! #     trusted: ephemera_proto::auth::TrustedAuthorities,
//! #     upload: ephemera_proto::upload::VerifiedUpload,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! // First start: NodeIdentity::generate(), then persist `identity.to_bytes()`.
//! let identity = NodeIdentity::from_bytes(&identity_bytes)?;
//! let config = FederationConfig::default().with_trusted_authorities(trusted);
//! let (federation, task) = Federation::spawn(config, identity, store, Arc::new(SystemClock))?;
//! println!("libp2p peer id {}", federation.peer_id());
//! // After a phone's upload is verified and durably stored:
//! federation.publish(upload).await?;
//! // Graceful shutdown:
//! federation.shutdown().await?;
//! task.await?;
//! # Ok(()) }
//! ```
//!
//! The node's store must file every upload it holds (phone uploads and relayed ones) under
//! [`sync_day`], so that catch-up serves both.
//!
//! Loopback clusters and upload factories for tests and benches are in `testing`, built
//! only with the `test-util` feature.
//!
//! # Privacy
//! Logs name peers by peer id only; addresses are logged at `debug` level at most, and no
//! upload, token, certificate or key is ever logged.
//!
//! [`UploadId`]: ephemera_proto::upload::UploadId

mod admission;
mod behaviour;
mod budget;
mod config;
mod dht;
mod dial;
mod event_loop;
pub mod frame;
mod handle;
mod heads;
mod identity;
mod instance;
pub(crate) mod metrics;
mod session;
mod shared;
mod store;
mod sunset;
pub mod sync;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
mod validate;
mod venue_releases;

#[cfg(test)]
mod tests;

pub use libp2p::{Multiaddr, PeerId};
use std::sync::Arc;
use tokio::task::JoinHandle;

pub use behaviour::{IDENTIFY_PROTOCOL, KAD_PROTOCOL};
pub use config::{
    ConfigError, FederationConfig, MIN_PEER_RESPONSE_BYTES, TOPIC_PREFIX, authority_topic,
};
pub use handle::{FederationHandle, FederationStatus};
pub use heads::{HEADS_PROTOCOL, HeadSink, HeadWitness};
pub use identity::{IdentityError, NodeIdentity};
pub use instance::{INSTANCE_PROTOCOL, TwinSink, TwinWitness};
pub use metrics::MetricsSink;
pub use store::{
    DayDigest, FederationStore, MemoryFederationStore, StoreError, StoreOutcome, sync_day,
};
pub use sunset::{MAX_SUNSET_FRAME, SUNSET_PROTOCOL, SunsetSink, SunsetWitness};
pub use sync::SYNC_PROTOCOL;
pub use venue_releases::{
    MAX_HAVE_IDS, MAX_RELEASES_PER_ANSWER, RELEASES_PROTOCOL, ReleaseAdmission, ReleaseKeeper,
    ReleaseSink,
};

/// The time source federation verifies against (certificate ages, retention): the node's
/// own [`crate::clock::Clock`], so one clock drives both.
pub use crate::clock::{Clock, SystemClock};

/// Federation failed to start, or its event loop is gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The transports, behaviour or listeners could not be set up.
    #[error("federation transport setup failed: {0}")]
    Transport(String),
    /// A dial could not start.
    #[error("dial failed: {0}")]
    Dial(String),
    /// The event loop has ended.
    #[error("federation has stopped")]
    Stopped,
}

impl FederationError {
    /// A [`FederationError::Transport`] of `what` failing with `error` and every cause
    /// under it: libp2p's transport errors print nothing themselves and keep the reason
    /// (an address in use, say) in their sources.
    pub(crate) fn transport(what: &str, error: &dyn std::error::Error) -> FederationError {
        let mut message = what.to_owned();
        let mut cause = Some(error);
        while let Some(e) = cause {
            let text = e.to_string();
            if !text.is_empty() && !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = e.source();
        }
        FederationError::Transport(message)
    }
}

/// Entry point: starts federation.
#[derive(Debug)]
pub struct Federation;

impl Federation {
    /// Builds the swarm from `config` and `identity`, starts listening, and spawns the
    /// event loop on the current tokio runtime. `store` is the node's storage; `clock` the
    /// time uploads are verified at.
    ///
    /// The returned `JoinHandle` ends after [`FederationHandle::shutdown`] or when every
    /// handle is dropped.
    ///
    /// # Errors
    /// [`FederationError::Config`] for an invalid config, [`FederationError::Transport`] if
    /// a transport or listener could not be set up.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn(
        config: FederationConfig,
        identity: NodeIdentity,
        store: Arc<dyn FederationStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<(FederationHandle, JoinHandle<()>), FederationError> {
        event_loop::spawn(config, identity, store, clock)
    }
}
