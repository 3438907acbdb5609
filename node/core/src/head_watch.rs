//! Watching nodes' batch-log heads (`docs/PROTOCOL.md` §6.2, §9): the latest signed head
//! of each node key heard, and the evidence of any node that contradicts itself.
//!
//! Nodes pass each other the heads they hold (their own and their peers'), so a node that
//! shows one log to some readers and another to others, or goes back in its log, is caught
//! wherever two of its heads meet. A head is kept only if its own key signed it; trust is
//! not needed, because evidence is two heads of the same key and anyone can check both.

use std::collections::BTreeMap;

use ephemera_proto::batch_log::{HeadConflict, HeadEvidence, SignedHead};
use ephemera_proto::signing::Ed25519PublicKey;

/// Most node keys whose heads are kept: a federation has a few dozen nodes; past this,
/// heads of keys not seen yet are dropped (a peer inventing keys fills nothing more).
pub const MAX_WATCHED_NODES: usize = 256;
/// Most pieces of evidence kept (the first ones: a node that equivocates once is caught).
pub const MAX_EVIDENCE: usize = 64;

/// What hearing one head did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Newer than what was held for its key (or the first of it): now the latest.
    Newer,
    /// Not newer, and consistent with what is held, or a conflict already reported (or
    /// past [`MAX_EVIDENCE`]): nothing to do.
    Known,
    /// Its own key did not sign it: dropped.
    Unsigned,
    /// A new key while [`MAX_WATCHED_NODES`] are watched: dropped.
    Full,
    /// It contradicts the head held for its key, a conflict not seen before: the evidence,
    /// now kept.
    Conflict(Box<HeadEvidence>),
}

/// The latest head of each node key heard, and the conflicts found.
#[derive(Debug, Default)]
pub struct HeadWatch {
    latest: BTreeMap<Ed25519PublicKey, SignedHead>,
    evidence: Vec<HeadEvidence>,
}

impl HeadWatch {
    /// Nothing heard yet.
    pub fn new() -> Self {
        HeadWatch::default()
    }

    /// Hears one head (from a peer, or this node's own).
    pub fn hear(&mut self, head: SignedHead) -> Heard {
        if !head.is_self_signed() {
            return Heard::Unsigned;
        }
        let key = head.head.node;
        let Some(held) = self.latest.get(&key) else {
            if self.latest.len() >= MAX_WATCHED_NODES {
                return Heard::Full;
            }
            self.latest.insert(key, head);
            return Heard::Newer;
        };
        if let Some(evidence) = HeadEvidence::of(held, &head) {
            // Keep the later head: the next one is compared with the freshest claim.
            if evidence.conflict == HeadConflict::Equivocation
                && head.head.issued_at > held.head.issued_at
            {
                self.latest.insert(key, head);
            }
            // Peers pass evidence on every round: a conflict is reported once.
            let known = self.evidence.iter().any(|e| same_pair(e, &evidence));
            if known || self.evidence.len() >= MAX_EVIDENCE {
                return Heard::Known;
            }
            self.evidence.push(evidence.clone());
            return Heard::Conflict(Box::new(evidence));
        }
        let newer =
            (head.head.sequence, head.head.issued_at) > (held.head.sequence, held.head.issued_at);
        if newer {
            self.latest.insert(key, head);
            Heard::Newer
        } else {
            Heard::Known
        }
    }

    /// The latest head of every key watched.
    pub fn latest(&self) -> impl Iterator<Item = &SignedHead> {
        self.latest.values()
    }

    /// The evidence found, oldest first.
    pub fn evidence(&self) -> &[HeadEvidence] {
        &self.evidence
    }

    /// What to pass on to peers: the latest head of every key, then both heads of each
    /// piece of evidence (so every node can check a conflict for itself), each once.
    pub fn to_pass_on(&self) -> Vec<SignedHead> {
        let mut out: Vec<SignedHead> = self.latest.values().copied().collect();
        for evidence in &self.evidence {
            for head in [evidence.first, evidence.second] {
                if !out.contains(&head) {
                    out.push(head);
                }
            }
        }
        out
    }
}

/// Whether two pieces of evidence hold the same two heads, in either order.
fn same_pair(a: &HeadEvidence, b: &HeadEvidence) -> bool {
    (a.first == b.first && a.second == b.second) || (a.first == b.second && a.second == b.first)
}

#[cfg(test)]
mod tests {
    use ephemera_proto::UnixTime;
    use ephemera_proto::batch::{BatchId, NodeSigningKey};

    use super::*;

    const T: UnixTime = UnixTime(1_700_000_000);

    fn key(byte: u8) -> NodeSigningKey {
        NodeSigningKey::from_seed(&[byte; 32])
    }

    fn head(k: &NodeSigningKey, sequence: u64, id: u8, minutes: u64) -> SignedHead {
        SignedHead::sign(k, sequence, BatchId([id; 32]), T.plus_seconds(minutes * 60))
    }

    #[test]
    fn progress_is_followed_and_conflicts_are_kept_as_evidence() {
        let (a, b) = (key(1), key(2));
        let mut watch = HeadWatch::new();
        assert_eq!(watch.hear(head(&a, 5, 5, 0)), Heard::Newer);
        assert_eq!(watch.hear(head(&a, 5, 5, 0)), Heard::Known);
        assert_eq!(watch.hear(head(&a, 6, 6, 1)), Heard::Newer);
        assert_eq!(watch.hear(head(&a, 6, 6, 0)), Heard::Known, "an older copy");
        assert_eq!(watch.hear(head(&b, 6, 9, 1)), Heard::Newer, "another node");
        let Heard::Conflict(forked) = watch.hear(head(&a, 6, 7, 2)) else {
            panic!("equivocation not seen");
        };
        assert_eq!(forked.conflict, HeadConflict::Equivocation);
        let Heard::Conflict(back) = watch.hear(head(&a, 3, 3, 5)) else {
            panic!("rollback not seen");
        };
        assert_eq!(back.conflict, HeadConflict::Rollback);
        assert_eq!(watch.evidence(), [*forked.clone(), *back.clone()]);
        // The same conflict heard again, in either order, is neither kept nor reported twice.
        assert_eq!(watch.hear(head(&a, 6, 7, 2)), Heard::Known);
        assert_eq!(watch.hear(head(&a, 6, 6, 1)), Heard::Known);
        assert_eq!(watch.evidence().len(), 2);
        assert_eq!(watch.latest().count(), 2);
        // Both heads of each conflict are passed on, each once, beside the latest ones.
        let passed = watch.to_pass_on();
        for head in [forked.first, forked.second, back.first, back.second] {
            assert_eq!(passed.iter().filter(|h| **h == head).count(), 1);
        }
    }

    #[test]
    fn forged_heads_and_strangers_past_the_cap_are_dropped() {
        let mut watch = HeadWatch::new();
        let mut forged = head(&key(1), 5, 5, 0);
        forged.head.sequence = 4;
        assert_eq!(watch.hear(forged), Heard::Unsigned);
        for i in 0..MAX_WATCHED_NODES {
            let k = NodeSigningKey::from_seed(
                &[(i % 251) as u8, (i / 251) as u8, 1, 2]
                    .repeat(8)
                    .try_into()
                    .unwrap(),
            );
            assert_eq!(watch.hear(head(&k, 1, 1, 0)), Heard::Newer);
        }
        let late = NodeSigningKey::from_seed(&[0xee; 32]);
        assert_eq!(watch.hear(head(&late, 1, 1, 0)), Heard::Full);
    }
}
