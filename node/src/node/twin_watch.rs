//! Twins, judged before the node cuts (`ephemera_node_core::twin_guard`): this run's
//! signed hello for federation, and the other instances peers report, logged once and
//! exported as `ephemera_twin_detected`.

use std::sync::{Mutex, Weak};

use ephemera_node_core::twin_guard::{TwinGuard, TwinVerdict};
use ephemera_proto::UnixTime;
use ephemera_proto::instance::SignedHello;
use ephemera_proto::signing::Ed25519PublicKey;

use super::{Inner, Node};
use crate::federation::TwinWitness;

/// This run's twin guard.
#[derive(Debug)]
pub(super) struct TwinWatch(Mutex<TwinGuard>);

impl TwinWatch {
    /// A guard for a run started at `started_at` under the batch key `key`, with a fresh
    /// random instance.
    pub(super) fn new(started_at: UnixTime, key: Ed25519PublicKey) -> TwinWatch {
        TwinWatch(Mutex::new(TwinGuard::new(rand::random(), started_at, key)))
    }

    /// Whether no twin that started earlier was seen.
    pub(super) fn may_cut(&self) -> bool {
        self.0.lock().expect("not poisoned").may_cut()
    }
}

/// What federation calls: holds the node weakly, like its metrics recorder.
pub(super) struct NodeTwins(pub(super) Weak<Inner>);

impl TwinWitness for NodeTwins {
    fn hello(&self) -> Option<SignedHello> {
        let inner = self.0.upgrade()?;
        let hello = inner
            .twins
            .0
            .lock()
            .expect("not poisoned")
            .hello(inner.clock.now());
        Some(SignedHello::sign(hello, inner.core.keys().batch.ed25519()))
    }

    fn reported(&self, others: Vec<SignedHello>) {
        if let Some(inner) = self.0.upgrade() {
            Node { inner }.twins_reported(&others);
        }
    }
}

impl Node {
    /// Judges hellos of other instances that a peer reported; logs an ERROR and sets
    /// `ephemera_twin_detected` when a twin is first seen, and when this run stops cutting.
    pub(super) fn twins_reported(&self, others: &[SignedHello]) {
        let mut guard = self.inner.twins.0.lock().expect("not poisoned");
        for other in others {
            match guard.observe(other) {
                Some(TwinVerdict::TwinStartedEarlier) => {
                    self.inner.metrics.twin_detected();
                    tracing::error!(
                        twin_started_at = other.hello.started_at.0,
                        "another copy of this node (same keys and identity) has run since \
                         before this one started: this copy cuts no batch until restarted; stop \
                         the stray copy (see OPERATIONS.md, \"Two copies of one node\")"
                    );
                }
                Some(TwinVerdict::TwinStartedLater) => {
                    self.inner.metrics.twin_detected();
                    tracing::error!(
                        twin_started_at = other.hello.started_at.0,
                        "another copy of this node (same keys and identity) started after this \
                         one: it cuts no batch, this copy goes on; stop the stray copy (see \
                         OPERATIONS.md, \"Two copies of one node\")"
                    );
                }
                Some(TwinVerdict::Alone) | None => {}
            }
        }
    }
}
