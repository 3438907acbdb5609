//! The node's batch log (`docs/PROTOCOL.md` §6.2): its signed head, served beside the
//! index, and the heads of other nodes heard through federation, watched for equivocation
//! and rollback.

use std::sync::{Mutex, Weak};

use ephemera_node_core::head_watch::{HeadWatch, Heard};
use ephemera_node_core::store::ChainHead;
use ephemera_proto::batch::BatchId;
use ephemera_proto::batch_log::{
    HEAD_GRANULARITY_SECONDS, HeadEvidence, HeadList, MAX_HEADS_PER_LIST, SignedHead,
};

use super::{Inner, Node};
use crate::federation::HeadWitness;

/// The batch log's state in memory.
#[derive(Debug)]
pub(super) struct BatchLog {
    /// The last durable batch (what phones may be shown).
    durable: Mutex<Option<ChainHead>>,
    /// The last head signed, reused while its batch and minute last.
    signed: Mutex<Option<SignedHead>>,
    /// Heads heard, this node's own included.
    watch: Mutex<HeadWatch>,
}

impl BatchLog {
    /// The log of a node whose last durable batch is `durable`.
    pub(super) fn new(durable: Option<ChainHead>) -> Self {
        BatchLog {
            durable: Mutex::new(durable),
            signed: Mutex::new(None),
            watch: Mutex::new(HeadWatch::new()),
        }
    }
}

/// What federation calls: holds the node weakly, like its twin witness.
pub(super) struct NodeHeads(pub(super) Weak<Inner>);

impl HeadWitness for NodeHeads {
    fn heads(&self) -> Vec<SignedHead> {
        self.0
            .upgrade()
            .map(|inner| Node { inner }.heads().heads)
            .unwrap_or_default()
    }

    fn heard(&self, heads: Vec<SignedHead>) {
        if let Some(inner) = self.0.upgrade() {
            Node { inner }.hear_heads(heads);
        }
    }
}

impl Node {
    /// This node's signed head as of now: its last durable batch (sequence 0 and
    /// [`BatchId::NONE`] before any), signed with the batch key, the time rounded down to
    /// the minute. The same minute and batch give the same bytes.
    pub fn signed_head(&self) -> SignedHead {
        let log = &self.inner.batch_log;
        let durable = *log.durable.lock().expect("not poisoned");
        let (sequence, id) = durable.map_or((0, BatchId::NONE), |h| (h.sequence, h.id));
        let now = self.now();
        let minute = now.0 - now.0 % HEAD_GRANULARITY_SECONDS;
        let mut signed = log.signed.lock().expect("not poisoned");
        if let Some(head) = *signed
            && head.head.sequence == sequence
            && head.head.head == id
            && head.head.issued_at.0 == minute
        {
            return head;
        }
        let head = SignedHead::sign(&self.inner.core.keys().batch, sequence, id, now);
        *signed = Some(head);
        drop(signed);
        // Own heads are watched too: a peer reporting another head of this key (a twin, a
        // stolen key) is caught like any other.
        self.hear_heads(vec![head]);
        head
    }

    /// Called once a cut is durable: its last batch is the new head.
    pub(super) fn head_published(&self, head: ChainHead) {
        *self.inner.batch_log.durable.lock().expect("not poisoned") = Some(head);
    }

    /// This node's head, the latest head heard of every other node, and both heads of
    /// each conflict found (at most [`MAX_HEADS_PER_LIST`]), for phones to cross-check
    /// (`GET /v1/heads`) and peers to compare (federation).
    pub fn heads(&self) -> HeadList {
        let own = self.signed_head();
        let watch = self.inner.batch_log.watch.lock().expect("not poisoned");
        let mut heads = vec![own];
        heads.extend(watch.to_pass_on().into_iter().filter(|h| *h != own));
        heads.truncate(MAX_HEADS_PER_LIST);
        HeadList { heads }
    }

    /// Every conflict found between two heads of one node key (`GET /v1/heads/conflicts`).
    pub fn head_conflicts(&self) -> Vec<HeadEvidence> {
        self.inner
            .batch_log
            .watch
            .lock()
            .expect("not poisoned")
            .evidence()
            .to_vec()
    }

    /// Hears heads a peer passed on: each self-signed one is compared with the head held
    /// for its key; a conflict counts in `ephemera_batch_log_conflicts_total{kind}` and is
    /// logged with both heads (signed public data: node key ids, sequences, batch ids).
    pub fn hear_heads(&self, heads: Vec<SignedHead>) {
        let mut found = Vec::new();
        {
            let mut watch = self.inner.batch_log.watch.lock().expect("not poisoned");
            for head in heads {
                if let Heard::Conflict(evidence) = watch.hear(head) {
                    found.push(*evidence);
                }
            }
        }
        for evidence in found {
            self.inner
                .metrics
                .batch_log_conflict(evidence.conflict.name());
            tracing::warn!(
                conflict = evidence.conflict.name(),
                node_key = %evidence.first.head.node.key_id(),
                first = %evidence.first,
                second = %evidence.second,
                evidence = %serde_json::to_string(&evidence).unwrap_or_default(),
                "a node's signed batch-log heads contradict each other"
            );
        }
    }
}
