//! Twin detection: the [`INSTANCE_PROTOCOL`] request-response protocol.
//!
//! Two copies of one node (a restore drill beside the live node, a stray container) share
//! the keys and the libp2p identity, so they never hear each other: libp2p dials no node's
//! own peer id and returns no gossip to its source. They do share peers. So on every new
//! connection and every `sync_interval` a node sends each peer a hello (its random
//! per-start instance, its start time and the time now, signed with its batch key:
//! [`ephemera_proto::instance`]); the peer keeps the hellos it heard for two sync
//! intervals ([`ephemera_node_core::twin_guard::HelloLog`]) and answers with the other
//! instances it heard under the same batch key. The node hands what peers report to its
//! [`TwinWitness`], which decides (`ephemera_node_core::twin_guard::TwinGuard`).
//!
//! A separate protocol name rather than a new catch-up message: a peer of an older version
//! does not support it, the request fails with "unsupported protocol", and nobody is
//! penalised. A malformed or oversized message is refused by the codec (a 4-byte length
//! checked against the kind's cap, then a `proto::wire` frame) and costs nothing but the
//! read; a hello that does not verify is not kept and gets no answer.

use std::sync::Arc;

use ephemera_proto::instance::{HelloRequest, HelloResponse, SignedHello};
use libp2p::StreamProtocol;

use super::frame::WireCodec;

/// The twin-detection protocol's name.
pub const INSTANCE_PROTOCOL: StreamProtocol = StreamProtocol::new("/ephemera/instance/1");

/// The node's side of twin detection: its signed hello, and what it makes of the other
/// instances peers report. Called from the event loop: both must be quick (a signature).
pub trait TwinWitness: Send + Sync + 'static {
    /// This run's hello as of now, signed with the batch key (`None`: the node is gone).
    fn hello(&self) -> Option<SignedHello>;
    /// Hellos of other instances under this node's batch key, as a peer reported them
    /// (unchecked: the witness verifies them).
    fn reported(&self, others: Vec<SignedHello>);
}

/// The [`TwinWitness`] federation reports to; `None` in the config sends no hellos (peers'
/// hellos are still answered).
#[derive(Clone)]
pub struct TwinSink(pub Arc<dyn TwinWitness>);

impl std::fmt::Debug for TwinSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TwinSink")
    }
}

/// The `request_response` codec of [`INSTANCE_PROTOCOL`].
pub(crate) type InstanceCodec = WireCodec<HelloRequest, HelloResponse>;
