//! The batch log (docs/PROTOCOL.md §6.2): chained batches and the signed head served
//! beside the index, across restarts.

use ephemera_node::clock::ManualClock;
use ephemera_proto::batch::{BatchId, SignedBatch, TrustedNodes};
use ephemera_proto::batch_log::HeadList;

use crate::util::*;

/// Fetches and verifies every listed batch; returns (sequence, id, previous) of each.
async fn chain(node: &TestNode) -> Vec<(u64, BatchId, Option<BatchId>)> {
    let trusted = TrustedNodes::new().with(node.node.keys().batch.public_key());
    let mut out = Vec::new();
    for entry in node.index(0).await.batches {
        let body = node.get(&format!("/v1/batches/{}", entry.id)).await.body;
        let (summary, _) = SignedBatch::verify(&body, &trusted).unwrap();
        out.push((summary.sequence, summary.id, summary.previous));
    }
    out
}

#[tokio::test]
async fn batches_chain_across_cuts_and_restarts_and_the_index_carries_the_signed_head() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let trusted = TrustedNodes::new().with(node.node.keys().batch.public_key());
    let empty = node.index(0).await.head.expect("a head before any batch");
    empty.verify(&trusted).unwrap();
    assert_eq!((empty.head.sequence, empty.head.head), (0, BatchId::NONE));

    let (name, password) = node.case_worker.clone().unwrap();
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    node.next_batches().await;
    node.report(&session, "confirmed", pet_contents(2, T0.day()))
        .await;
    node.next_batches().await;
    node.stop().await;

    // A restart keeps the chain: the next batch links to the last one of the former run.
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let session = node.login_as(&name, &password).await;
    node.report(&session, "confirmed", pet_contents(1, T0.day()))
        .await;
    node.next_batches().await;
    let chain = chain(&node).await;
    assert!(chain.len() >= 3, "{chain:?}");
    assert_eq!(
        chain[0].2,
        Some(BatchId::NONE),
        "the first batch links to none"
    );
    for pair in chain.windows(2) {
        assert_eq!(
            pair[1].2,
            Some(pair[0].1),
            "each batch names the one before"
        );
    }
    let index = node.index(0).await;
    let head = index.head.unwrap();
    head.verify(&trusted).unwrap();
    let last = chain.last().unwrap();
    assert_eq!((head.head.sequence, head.head.head), (last.0, last.1));
    assert_eq!(head.head.issued_at.0 % 60, 0, "a coarse time");

    // /v1/heads starts with the node's own head; nothing conflicts.
    let heads: HeadList = serde_json::from_slice(&node.get("/v1/heads").await.body).unwrap();
    assert_eq!(heads.heads.first().map(|h| h.head), Some(head.head));
    let conflicts = node.get("/v1/heads/conflicts").await;
    assert_eq!(conflicts.json(), serde_json::json!([]));
    node.stop().await;
}
