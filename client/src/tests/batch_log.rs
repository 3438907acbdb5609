//! The phone holds its node to one log (issue 31, item 5; docs/PROTOCOL.md §6.2): chain
//! links, gaps, stale heads, rollbacks, forks, and the cross-check with a second node.

use ephemera_proto::batch::{
    BatchContents, BatchId, BatchIndex, BatchIndexEntry, NodeSigningKey, SignedBatch,
};
use ephemera_proto::batch_log::{HeadError, HeadList, SignedHead};
use ephemera_proto::{SchemeKind, UnixTime};

use crate::request::{Purpose, Response};
use crate::store::MemoryStore;
use crate::{ClientConfig, ClientError, HeadCrossCheck, Phone};

const NOW: UnixTime = UnixTime(1_700_000_000);

fn key() -> NodeSigningKey {
    NodeSigningKey::from_seed(&[1; 32])
}

fn phone() -> Phone<MemoryStore> {
    let config = ClientConfig::new(SchemeKind::Pet)
        .with_trusted_node(key().public_key())
        .with_decoy_rate(0.0);
    Phone::new(config, MemoryStore::new(), [9; 32]).unwrap()
}

/// A node's log: batches 1.. chained (or not, as version 1), and heads over them.
struct Log {
    batches: Vec<SignedBatch>,
}

impl Log {
    fn chained(n: u64) -> Log {
        let mut log = Log {
            batches: Vec::new(),
        };
        for _ in 0..n {
            log.push(true);
        }
        log
    }

    /// Appends batch `len + 1`, chained to the last one or unchained (version 1).
    fn push(&mut self, chained: bool) {
        let previous = self.batches.last().map_or(BatchId::NONE, SignedBatch::id);
        self.batches.push(batch(
            self.batches.len() as u64 + 1,
            chained.then_some(previous),
        ));
    }

    fn head(&self, at: UnixTime) -> SignedHead {
        let last = self.batches.last().unwrap();
        SignedHead::sign(&key(), self.batches.len() as u64, last.id(), at)
    }
}

fn batch(sequence: u64, previous: Option<BatchId>) -> SignedBatch {
    BatchContents {
        sequence,
        created_at: NOW,
        previous,
        ..Default::default()
    }
    .sign(&key())
}

fn entry(sequence: u64, batch: &SignedBatch) -> BatchIndexEntry {
    BatchIndexEntry {
        id: batch.id(),
        sequence,
        created_at: NOW,
        size: batch.bytes().len() as u64,
        keys: 0,
        tokens: 0,
    }
}

/// One sync round at `now` against an index listing `listed` (sequence, batch) after the
/// cursor, every page carrying `head`: the first error, or `Ok` once the round ended.
fn round(
    phone: &mut Phone<MemoryStore>,
    now: UnixTime,
    listed: &[(u64, &SignedBatch)],
    head: Option<SignedHead>,
) -> Result<(), ClientError> {
    phone.start_sync(now).unwrap();
    let result = loop {
        let Some(request) = phone.poll_request() else {
            break Ok(());
        };
        let body = match request.purpose {
            Purpose::FetchIndex => {
                let after: u64 = request.path.rsplit('=').next().unwrap().parse().unwrap();
                let batches: Vec<_> = listed
                    .iter()
                    .filter(|(s, _)| *s > after)
                    .map(|(s, b)| entry(*s, b))
                    .collect();
                let index = BatchIndex {
                    next_cursor: batches.last().map_or(after, |e| e.sequence),
                    batches,
                    key_rollovers: Vec::new(),
                    head,
                    token_filters: false,
                    sunset: None,
                };
                serde_json::to_vec(&index).unwrap()
            }
            Purpose::FetchBatch(id) => listed
                .iter()
                .find(|(_, b)| b.id() == id)
                .unwrap()
                .1
                .bytes()
                .to_vec(),
            // The sealing key stays unanswered: only the log matters here.
            _ => continue,
        };
        if let Err(e) = phone.handle_response(now, request.id, Response { status: 200, body }) {
            break Err(e);
        }
    };
    while phone.poll_request().is_some() {}
    result
}

fn all(log: &Log) -> Vec<(u64, &SignedBatch)> {
    log.batches
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u64 + 1, b))
        .collect()
}

#[test]
fn an_honest_log_is_followed_to_its_head() {
    let log = Log::chained(3);
    let mut phone = phone();
    round(&mut phone, NOW, &all(&log), Some(log.head(NOW))).unwrap();
    assert_eq!(phone.sync_cursor(), 3);
    assert_eq!(phone.status().last_error, None);
}

#[test]
fn a_forged_chain_link_is_refused_and_the_cursor_stays() {
    let log = Log::chained(2);
    let mut phone = phone();
    round(&mut phone, NOW, &all(&log)[..1], None).unwrap();
    // Batch 2, signed by the node, but naming another predecessor.
    let forged = batch(2, Some(BatchId([7; 32])));
    let refused = round(&mut phone, NOW, &[(2, &forged)], None);
    assert_eq!(refused, Err(ClientError::BatchChainBroken));
    assert_eq!(phone.sync_cursor(), 1);
    assert_eq!(phone.status().last_error, Some("batch-chain-broken"));
    round(&mut phone, NOW, &all(&log), Some(log.head(NOW))).unwrap();
    assert_eq!(phone.sync_cursor(), 2);
}

#[test]
fn a_withheld_batch_is_a_gap_in_the_chain_or_before_the_head() {
    let log = Log::chained(3);
    let mut phone = phone();
    round(&mut phone, NOW, &all(&log)[..1], None).unwrap();
    // Batch 2 left out of the index: batch 3 does not chain to batch 1.
    let skipping = [(1, &log.batches[0]), (3, &log.batches[2])];
    assert_eq!(
        round(&mut phone, NOW, &skipping, None),
        Err(ClientError::BatchChainBroken)
    );
    // The tail left out: the index ends before the signed head.
    assert_eq!(
        round(&mut phone, NOW, &all(&log)[..2], Some(log.head(NOW))),
        Err(ClientError::IndexBehindHead)
    );
    assert_eq!(phone.status().last_error, Some("index-behind-head"));
    assert_eq!(phone.sync_cursor(), 2, "what did chain was kept");
}

#[test]
fn a_stale_head_is_reported_not_accepted() {
    let log = Log::chained(1);
    let mut phone = phone();
    let later = NOW.plus_seconds(6 * 3600 + 120);
    let refused = round(&mut phone, later, &all(&log), Some(log.head(NOW)));
    assert!(matches!(
        refused,
        Err(ClientError::Head(HeadError::Stale { .. }))
    ));
    assert_eq!(phone.status().last_error, Some("stale-head"));
    assert_eq!(phone.sync_cursor(), 0);
    // An old copy of a head, behind the cursor but older than a head verified since, is a
    // cache's replay: stale, not a rollback.
    let log = Log::chained(2);
    let mut phone = self::phone();
    round(
        &mut phone,
        NOW,
        &all(&log)[..1],
        Some(SignedHead::sign(&key(), 1, log.batches[0].id(), NOW)),
    )
    .unwrap();
    let next = NOW.plus_seconds(60);
    round(&mut phone, next, &all(&log), Some(log.head(next))).unwrap();
    let replayed = SignedHead::sign(&key(), 1, log.batches[0].id(), NOW);
    let refused = round(&mut phone, next.plus_seconds(60), &[], Some(replayed));
    assert!(
        matches!(refused, Err(ClientError::Head(HeadError::Stale { .. }))),
        "{refused:?}"
    );
    // A head of a stranger's key is refused too.
    let stranger = SignedHead::sign(
        &NodeSigningKey::from_seed(&[2; 32]),
        1,
        BatchId::NONE,
        later,
    );
    assert_eq!(
        round(&mut phone, later, &all(&log), Some(stranger)),
        Err(ClientError::Head(HeadError::UntrustedNode))
    );
}

#[test]
fn a_head_behind_the_cursor_or_forked_at_it_is_refused() {
    let log = Log::chained(3);
    let mut phone = phone();
    round(&mut phone, NOW, &all(&log), Some(log.head(NOW))).unwrap();
    let later = NOW.plus_seconds(600);
    let back = SignedHead::sign(&key(), 2, log.batches[1].id(), later);
    assert_eq!(
        round(&mut phone, later, &[], Some(back)),
        Err(ClientError::HeadRolledBack)
    );
    let forked = SignedHead::sign(&key(), 3, BatchId([3; 32]), later);
    assert_eq!(
        round(&mut phone, later, &[], Some(forked)),
        Err(ClientError::HeadForked)
    );
    assert_eq!(phone.sync_cursor(), 3);
}

#[test]
fn version_1_logs_are_accepted_until_the_first_chained_batch() {
    let mut log = Log {
        batches: Vec::new(),
    };
    log.push(false);
    log.push(false);
    log.push(true);
    let mut phone = phone();
    round(&mut phone, NOW, &all(&log), None).unwrap();
    assert_eq!(phone.sync_cursor(), 3);
    // After a chained batch, an unchained one is a downgrade.
    let unchained = batch(4, None);
    assert_eq!(
        round(&mut phone, NOW, &[(4, &unchained)], None),
        Err(ClientError::BatchChainBroken)
    );
    // Across a restart too.
    let mut phone = Phone::new(
        ClientConfig::new(SchemeKind::Pet)
            .with_trusted_node(key().public_key())
            .with_decoy_rate(0.0),
        phone.into_store(),
        [9; 32],
    )
    .unwrap();
    assert_eq!(
        round(&mut phone, NOW, &[(4, &unchained)], None),
        Err(ClientError::BatchChainBroken)
    );
}

#[test]
fn a_second_nodes_heads_are_compared_with_the_phones() {
    let log = Log::chained(3);
    let mut phone = phone();
    let list = |heads: Vec<SignedHead>| serde_json::to_vec(&HeadList { heads }).unwrap();
    assert_eq!(
        phone.cross_check_heads(&list(vec![log.head(NOW)])),
        Ok(HeadCrossCheck::NotSeen),
        "nothing verified yet"
    );
    round(&mut phone, NOW, &all(&log), Some(log.head(NOW))).unwrap();
    let other = SignedHead::sign(&NodeSigningKey::from_seed(&[2; 32]), 9, BatchId::NONE, NOW);
    assert_eq!(
        phone.cross_check_heads(&list(vec![other])),
        Ok(HeadCrossCheck::NotSeen)
    );
    assert_eq!(
        phone.cross_check_heads(&list(vec![other, log.head(NOW.plus_seconds(60))])),
        Ok(HeadCrossCheck::Consistent { peer_sequence: 3 })
    );
    let ahead = SignedHead::sign(&key(), 5, BatchId([5; 32]), NOW.plus_seconds(120));
    assert_eq!(
        phone.cross_check_heads(&list(vec![ahead])),
        Ok(HeadCrossCheck::PeerAhead { peer_sequence: 5 })
    );
    // The node showed the second node another batch 3: equivocation.
    let forked = SignedHead::sign(&key(), 3, BatchId([3; 32]), NOW);
    assert_eq!(
        phone.cross_check_heads(&list(vec![forked])),
        Err(ClientError::HeadMismatch {
            conflict: "equivocation"
        })
    );
    // The second node saw batch 4 before the head this phone was shown: rollback.
    let earlier_four = SignedHead::sign(&key(), 4, BatchId([4; 32]), UnixTime(NOW.0 - 600));
    let err = phone
        .cross_check_heads(&list(vec![earlier_four]))
        .unwrap_err();
    assert_eq!(
        err,
        ClientError::HeadMismatch {
            conflict: "rollback"
        }
    );
    assert_eq!(err.code(), "head-mismatch");
    assert!(matches!(
        phone.cross_check_heads(b"{\"heads\":[\"zz\"]}"),
        Err(ClientError::Decode(_))
    ));
    assert!(matches!(
        phone.cross_check_heads(&vec![b' '; crate::MAX_HEAD_LIST_BYTES + 1]),
        Err(ClientError::Decode(_))
    ));
}
