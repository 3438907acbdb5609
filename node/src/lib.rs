//! The Ephemera node: the server a health authority runs.
//!
//! - **Authority role.** Case workers sign in (see [`Password`]) and issue one-time upload
//!   codes (stored only as peppered hashes); phones exchange a code and a report HMAC for
//!   a signed certificate at `POST /v1/verify`.
//! - **Uploads.** `POST /v1/uploads` takes a padded postcard `UploadRequest`, verifies it
//!   with `ephemera_proto`, enforces single use of the certificate id, stores it durably
//!   (flushed before the answer) and returns a revision token. Decoys get the same answer.
//! - **Publication.** The core's [`core::publication`], driven by a background task, cuts
//!   signed, decoy-padded, content-addressed batches at fixed boundaries, served immutable
//!   at `GET /v1/batches/{id}`.
//! - **Retention.** Everything about reports is purged continuously after
//!   `[retention] days`; codes after their lifetime.
//! - **Privacy.** The node never reads client addresses, and logs no code, token or key.
//!
//! - **Federation.** [`Node::start_federation`] runs [`federation`] (libp2p) with the
//!   node's persistent identity: accepted phone uploads are gossiped once durable, relayed
//!   ones are stored through the same single-use check and published in this node's own
//!   batches; the node's store serves catch-up by sync day.
//!
//! Storage sits behind [`store::ReportStore`] (sled by default); time behind
//! [`clock::Clock`], shared with federation. Uploads are group-committed: one store
//! transaction and one flush per group of concurrent uploads, each acknowledged only after
//! its group is on disk.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ephemera_node::{clock::SystemClock, config::NodeConfig, node::Node, server};
//!
//! let opened = Node::open(NodeConfig::default(), Arc::new(SystemClock))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! server::serve(opened.node, listener, server::Background::Run, server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod audit_export;
mod batch_cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod federation;
mod group_commit;
pub mod logging;
mod metrics;
pub mod node;
pub mod publish;
mod send_file;
pub mod server;
pub mod stats_chart;
pub mod sunset_erasure;
pub mod venue;

/// The policy core this node drives, and its store and keys (re-exported).
pub use ephemera_node_core::{self as core, keys, store};

pub use accounts::Password;
pub use batch_cache::CachedBatch;
pub use node::{Node, NodeError, Opened};
