//! Batch-log heads between nodes: the [`HEADS_PROTOCOL`] request-response protocol
//! (`docs/PROTOCOL.md` §9.5).
//!
//! On every new connection and every `sync_interval` a node sends each peer the heads it
//! holds (its own signed head and the latest it heard of every other node) and gets the
//! peer's back. Each side hands what it got to its [`HeadWitness`] (the node), which keeps
//! the latest head per node key and, where two heads of one key contradict each other
//! (two batches under one sequence, or a later head at a lower sequence), keeps both as
//! evidence and reports them. So a node that shows one log to some phones and another to
//! others is caught once two nodes that were shown different heads meet, and so is a node
//! that goes back in its log.
//!
//! Heads are self-authenticating (each names the key that signed it), so a peer can pass
//! on any head without being trusted; a head whose key did not sign it is dropped. A
//! separate protocol name, as for twins: a peer of an older version does not support it and
//! nobody is penalised; the codec refuses an oversized or malformed list.

use std::sync::Arc;

use ephemera_proto::batch_log::{HeadList, SignedHead};
use libp2p::StreamProtocol;

use super::frame::WireCodec;

/// The head-exchange protocol's name.
pub const HEADS_PROTOCOL: StreamProtocol = StreamProtocol::new("/ephemera/heads/1");

/// The node's side of the head exchange. Called from the event loop: both must be quick.
pub trait HeadWitness: Send + Sync + 'static {
    /// The heads to pass on: the node's own signed head and the latest of every other
    /// node heard.
    fn heads(&self) -> Vec<SignedHead>;
    /// Heads a peer passed on (unchecked: the witness checks each signature).
    fn heard(&self, heads: Vec<SignedHead>);
}

/// The [`HeadWitness`] federation reports to; `None` in the config sends no heads and
/// answers peers' with an empty list.
#[derive(Clone)]
pub struct HeadSink(pub Arc<dyn HeadWitness>);

impl std::fmt::Debug for HeadSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadSink")
    }
}

/// The `request_response` codec of [`HEADS_PROTOCOL`]: a head list each way.
pub(crate) type HeadsCodec = WireCodec<HeadList, HeadList>;
