//! Full nodes (HTTP + federation) on 127.0.0.1: uploads travel between nodes and into the
//! receiving node's own signed batches; a restarted node catches up; a node that trusts
//! another authority keeps nothing of it. mDNS off; nothing but 127.0.0.1 is bound.

use std::path::Path;
use std::time::Duration;

use ephemera_node::clock::ManualClock;
use ephemera_node::config::NodeConfig;
use ephemera_node::federation::{Multiaddr, testing::wait_until};
use ephemera_node::store::StatsMetric;
use ephemera_proto::report::ReportContents;
use ephemera_proto::signing::Ed25519PublicKey;

// A test binary of its own (see Cargo.toml): libp2p's trace spans name loopback
// addresses, and must not reach the process-wide log capture of the `it` privacy test.
#[path = "util.rs"]
mod util;

#[path = "sunset_spread.rs"]
mod sunset_spread;

#[path = "venue_release_spread.rs"]
mod venue_release_spread;

#[path = "venue_util.rs"]
mod venue_util;

use util::*;

const WAIT: Duration = Duration::from_secs(20);

fn fed_config(dir: &Path, trusted: Vec<Ed25519PublicKey>) -> NodeConfig {
    let mut config = test_config(dir);
    config.authority.trusted_authorities = trusted;
    config.federation.publish_delay_ms = 0;
    config.federation.sync_interval_seconds = 1;
    config.federation.mdns = false;
    config
}

/// Starts a node and its federation, bootstrapping from `bootstrap`; returns the node and
/// its TCP multiaddr (with `/p2p/`).
async fn start(config: NodeConfig, bootstrap: Vec<Multiaddr>) -> (TestNode, Multiaddr) {
    start_at(config, bootstrap, T0).await
}

async fn start_at(
    config: NodeConfig,
    bootstrap: Vec<Multiaddr>,
    at: ephemera_proto::UnixTime,
) -> (TestNode, Multiaddr) {
    let node = TestNode::start_uncaptured(config, ManualClock::new(at)).await;
    let mut federation = node.node.federation_config();
    assert!(
        federation
            .listen_addrs
            .iter()
            .all(|a| a.to_string().starts_with("/ip4/127.0.0.1/"))
    );
    federation.mdns = false;
    federation.bootstrap_peers = bootstrap;
    let handle = node.node.start_federation(federation).unwrap();
    let addr = handle
        .listen_addrs()
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap()
        .with(libp2p::multiaddr::Protocol::P2p(handle.peer_id()));
    (node, addr)
}

fn peer_id(node: &TestNode) -> ephemera_node::federation::PeerId {
    node.node.federation_handle().unwrap().peer_id()
}

/// Whether `check` comes true within [`WAIT`], asked every 100 ms.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Whether `node` comes to be connected to `peer` within [`WAIT`].
async fn connected(node: &TestNode, peer: ephemera_node::federation::PeerId) -> bool {
    let handle = node.node.federation_handle().unwrap();
    eventually(|| async {
        handle
            .status()
            .await
            .unwrap()
            .connected_peers
            .contains(&peer)
    })
    .await
}

/// `node`'s score of `peer`, if connected to it and not banning it.
async fn score_if_unbanned(
    node: &TestNode,
    peer: ephemera_node::federation::PeerId,
) -> Option<f64> {
    let status = node
        .node
        .federation_handle()
        .unwrap()
        .status()
        .await
        .unwrap();
    let standing = status.connected_peers.contains(&peer) && !status.banned_peers.contains(&peer);
    status.score_of(&peer).filter(|_| standing)
}

fn authority(node: &TestNode) -> Ed25519PublicKey {
    node.node.keys().authority.public_key()
}

fn tokens(contents: &ReportContents) -> Vec<[u8; 16]> {
    match contents {
        ReportContents::Pet(t) => t.iter().map(|t| t.token.0).collect(),
        ReportContents::Gaen(_) => Vec::new(),
    }
}

/// Nodes A, B and C, each in a data folder of its own: B bootstraps from A, C from B, and
/// B and C trust A's authority.
struct Chain {
    /// The data folders of A, B and C.
    dirs: [tempfile::TempDir; 3],
    a: TestNode,
    b: TestNode,
    b_addr: Multiaddr,
    c: TestNode,
    /// A's authority key.
    trust_a: Vec<Ed25519PublicKey>,
}

async fn chain() -> Chain {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let (a, a_addr) = start(fed_config(dirs[0].path(), vec![]), vec![]).await;
    let trust_a = vec![authority(&a)];
    let (b, b_addr) = start(fed_config(dirs[1].path(), trust_a.clone()), vec![a_addr]).await;
    let (c, _) = start(
        fed_config(dirs[2].path(), trust_a.clone()),
        vec![b_addr.clone()],
    )
    .await;
    Chain {
        dirs,
        a,
        b,
        b_addr,
        c,
        trust_a,
    }
}

async fn has_uploads(node: &TestNode, n: u64) -> bool {
    let store = node.node.store().clone();
    wait_until(WAIT, || store.upload_count().unwrap() >= n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_at_a_reaches_c_batches_and_restarted_c_catches_up() {
    let Chain {
        dirs,
        a,
        b,
        b_addr,
        c,
        trust_a,
    } = chain().await;

    // A phone uploads at A over HTTP.
    let session = a.login().await;
    let (_, upload) = a
        .report(&session, "confirmed", pet_contents(5, T0.day()))
        .await;
    assert!(has_uploads(&b, 1).await, "B never stored the upload");
    assert!(has_uploads(&c, 1).await, "C never stored the upload");

    // It is in C's own signed batches, fetched over C's HTTP API and verified.
    c.next_batches().await;
    let published = c.all_published().await;
    for token in tokens(&upload.contents) {
        assert!(
            published.tokens.iter().any(|t| t.token.0 == token),
            "token missing from C's batches"
        );
    }

    let c_period = c.node.config().publication.batch_period_seconds;
    // C stops; A takes another upload; C restarts on the same data dir and catches up.
    c.stop().await;
    let (_, second) = a
        .report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    assert!(has_uploads(&b, 2).await);
    // Its clock goes on from where the first run's batch cut left it.
    let later = ephemera_proto::UnixTime(T0.0 + 2 * c_period);
    let (c, _) = start_at(fed_config(dirs[2].path(), trust_a), vec![b_addr], later).await;
    assert!(has_uploads(&c, 2).await, "restarted C did not catch up");
    c.next_batches().await;
    let published = c.all_published().await;
    for token in tokens(&second.contents) {
        assert!(published.tokens.iter().any(|t| t.token.0 == token));
    }
    // Statistics: both uploads count as accepted at A and as relayed at B and C (by gossip
    // and by catch-up alike), once at each node; A does not count its own coming back.
    let count = |node: &TestNode, metric: StatsMetric| -> u64 {
        node.node
            .store()
            .stats(T0.day(), T0.day().plus(1))
            .unwrap()
            .into_iter()
            .filter(|(key, _)| key.metric == metric)
            .map(|(_, n)| n)
            .sum()
    };
    assert!(wait_until(WAIT, || count(&b, StatsMetric::UploadsRelayed) == 2).await);
    for (node, accepted, relayed) in [(&a, 2, 0), (&b, 0, 2), (&c, 0, 2)] {
        assert_eq!(count(node, StatsMetric::UploadsAccepted), accepted);
        assert_eq!(count(node, StatsMetric::UploadsRelayed), relayed);
    }
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_trusting_another_authority_keeps_nothing_of_it() {
    let (da, db, dd) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, a_addr) = start(fed_config(da.path(), vec![]), vec![]).await;
    let (b, _) = start(
        fed_config(db.path(), vec![authority(&a)]),
        vec![a_addr.clone()],
    )
    .await;
    // D trusts only its own authority.
    let (d, _) = start(fed_config(dd.path(), vec![]), vec![a_addr]).await;
    let session = a.login().await;
    a.report(&session, "confirmed", pet_contents(4, T0.day()))
        .await;
    assert!(has_uploads(&b, 1).await, "the trusting peer got it");
    // Gossip and a few catch-up rounds later, D still holds nothing and publishes nothing.
    if let Some(h) = d.node.federation_handle() {
        h.sync_now().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(d.node.store().upload_count().unwrap(), 0);
    assert_eq!(d.node.store().upload_count().unwrap(), 0);
    d.stop().await;
    b.stop().await;
    a.stop().await;
}

/// A peer below its disk reserve stores nothing relayed (a store failure to federation: the
/// gossip is ignored without penalty, catch-up rounds stop and mark nothing as fetched);
/// restarted with room, it catches up what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_below_its_disk_reserve_stores_nothing_and_catches_up_with_room() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_addr) = start(fed_config(da.path(), vec![]), vec![]).await;
    let mut config = fed_config(db.path(), vec![authority(&a)]);
    config.storage.free_space_reserve_mb = 1 << 30;
    let (b, _) = start(config.clone(), vec![a_addr.clone()]).await;
    let session = a.login().await;
    a.report(&session, "confirmed", pet_contents(4, T0.day()))
        .await;
    // B received it (gossip or catch-up) and refused to store it.
    let refused = || {
        let text = b.node.metrics().render();
        ["gossip", "catch-up"].iter().any(|path| {
            let series = format!("ephemera_federation_store_errors_total{{path=\"{path}\"}}");
            sample(&text, &series).is_some_and(|n| n >= 1.0)
        })
    };
    assert!(wait_until(WAIT, refused).await, "B never saw the upload");
    assert_eq!(b.node.store().upload_count().unwrap(), 0);
    b.stop().await;

    config.storage.free_space_reserve_mb = 0;
    let (b, _) = start(config, vec![a_addr]).await;
    assert!(has_uploads(&b, 1).await, "B caught up once it had room");
    b.stop().await;
    a.stop().await;
}

/// How often each token of `contents` is in `published`.
fn counts(
    published: &ephemera_proto::batch::BatchContents,
    contents: &ReportContents,
) -> Vec<usize> {
    tokens(contents)
        .iter()
        .map(|token| {
            published
                .tokens
                .iter()
                .filter(|t| t.token.0 == *token)
                .count()
        })
        .collect()
}

/// Revisions federate (issue 31 item 4; `docs/PROTOCOL.md` §5.4, §9.1): a phone's version 2
/// uploads reach B and C with their revision keys, its signed revisions at A reach them too,
/// and every node publishes the final state once: each token of the confirmed report once,
/// none of the revoked one. A hostile peer holding a gossiped report cannot upload it with
/// its own key, nor as version 1, at a node that does not hold it yet (the certified HMAC
/// covers the key), and cannot revise it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_at_a_reaches_b_and_c_and_each_publishes_the_final_state_once() {
    use ephemera_proto::revision::{HmacBinding, RevisionSecret};
    use ephemera_proto::upload::UploadBody;

    // The data folders live as long as `_dirs`.
    let Chain {
        dirs: _dirs,
        a,
        b,
        c,
        trust_a,
        ..
    } = chain().await;
    let dd = tempfile::tempdir().unwrap();
    let session = a.login().await;

    // Two `likely` reports of two phones at A: one to confirm, one to revoke.
    let mut reports = Vec::new();
    for n in [4, 3] {
        let phone = RevisionSecret::generate(&mut rand::rng());
        let contents = pet_contents(n, T0.day());
        let upload = a.report_v2(&session, "likely", &contents, &phone).await;
        reports.push((phone, contents, upload));
    }
    assert!(has_uploads(&b, 2).await, "B never stored the uploads");
    assert!(has_uploads(&c, 2).await, "C never stored the uploads");

    // A hostile peer (it got the first report by gossip) races it to D, which trusts A's
    // authority and has not received it: with its own key, or as version 1, it is refused;
    // a revision of its own finds nothing it may revise.
    let d = TestNode::start_uncaptured(fed_config(dd.path(), trust_a), ManualClock::new(T0)).await;
    let (_, contents, first) = &reports[0];
    let attacker = RevisionSecret::generate(&mut rand::rng());
    d.upload_body(UploadBody::Real {
        upload: first.clone(),
        revision_key: attacker.key(),
    })
    .await
    .assert_error(400, "hmac-mismatch");
    d.upload_body(UploadBody::RealV1(first.clone()))
        .await
        .assert_error(400, "hmac-mismatch");
    let original = first.certificate.certificate.id;
    let own = a
        .certified(
            &session,
            "negative",
            contents,
            HmacBinding::Revision(attacker.key()),
        )
        .await;
    d.upload_body(UploadBody::Revision {
        signature: attacker.sign(&original, &own.certificate),
        upload: own,
        revises: original,
    })
    .await
    .assert_error(400, "invalid-revision-signature");
    assert_eq!(d.node.store().upload_count().unwrap(), 0);
    d.stop().await;

    // The phones revise at A: confirmed, and revoked.
    for ((phone, _, upload), test_type) in reports.iter().zip(["confirmed", "negative"]) {
        a.revise_v2(&session, test_type, upload, phone).await;
    }
    assert!(has_uploads(&b, 4).await, "B never stored the revisions");
    assert!(has_uploads(&c, 4).await, "C never stored the revisions");
    // Catch-up rounds (every second) and gossip from both sides bring each revision again:
    // it is applied once.
    tokio::time::sleep(Duration::from_secs(2)).await;

    for node in [&a, &b, &c] {
        assert_eq!(node.node.store().upload_count().unwrap(), 4);
        node.next_batches().await;
        let published = node.all_published().await;
        assert_eq!(
            counts(&published, &reports[0].1),
            vec![1; 4],
            "confirmed: each token once"
        );
        assert_eq!(
            counts(&published, &reports[1].1),
            vec![0; 3],
            "revoked: never"
        );
    }
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// A node that published the original publishes a relayed revision as the single-node path
/// does: each `gaen` key goes out once as `likely` and, after the revision, once again as
/// `confirmed` (a revised key), at A, where the phone revised, and at B and C alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_after_publication_is_published_again_once_at_every_node() {
    use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
    use ephemera_proto::report::ReportType;
    use ephemera_proto::revision::RevisionSecret;

    // The data folders live as long as `_dirs`.
    let Chain {
        dirs: _dirs,
        a,
        b,
        c,
        ..
    } = chain().await;
    let session = a.login().await;
    // Keys of the two days before, publishable at once (their windows ended over 2 h ago).
    let key = |byte: u8, days_ago: u32| DiagnosisKey {
        key: TemporaryExposureKey([byte; 16]),
        rolling_start: T0.day().minus(days_ago).first_interval(),
        rolling_period: 144,
        report_type: ReportType::SelfReport,
        days_since_onset: None,
    };
    let contents = ReportContents::Gaen(vec![key(0xa1, 1), key(0xa2, 2)]);
    let phone = RevisionSecret::generate(&mut rand::rng());
    let upload = a.report_v2(&session, "likely", &contents, &phone).await;
    assert!(has_uploads(&b, 1).await && has_uploads(&c, 1).await);
    for node in [&a, &b, &c] {
        node.next_batches().await;
    }

    a.revise_v2(&session, "confirmed", &upload, &phone).await;
    assert!(has_uploads(&b, 2).await && has_uploads(&c, 2).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in [&a, &b, &c] {
        node.next_batches().await;
        let published = node.all_published().await;
        for byte in [0xa1, 0xa2] {
            let mut types: Vec<ReportType> = published
                .diagnosis_keys
                .iter()
                .filter(|k| k.key.0 == [byte; 16])
                .map(|k| k.report_type)
                .collect();
            types.sort();
            assert_eq!(
                types,
                [
                    ReportType::ConfirmedTest,
                    ReportType::ConfirmedClinicalDiagnosis
                ],
                "once likely, once revised to confirmed"
            );
        }
    }
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// Batch logs (issue 31 item 5; `docs/PROTOCOL.md` §6.2, §9.5): C's signed head travels to
/// A through B. Someone holding C's batch key (C lying to A's side, a restored copy of C)
/// shows A another batch under C's sequence, then a later head at a lower sequence: A
/// passes them on, and B, which never saw them first-hand, records both as evidence of
/// equivocation and rollback, counts them in its metrics and lists them at
/// `/v1/heads/conflicts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocation_and_rollback_shown_to_one_node_are_detected_by_another() {
    use ephemera_proto::batch::BatchId;
    use ephemera_proto::batch_log::{HeadConflict, HeadEvidence, HeadList, SignedHead};

    let Chain {
        dirs: _dirs,
        a,
        b,
        c,
        ..
    } = chain().await;
    let session = a.login().await;
    a.report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    assert!(has_uploads(&c, 1).await, "C never stored the upload");
    c.next_batches().await;
    let honest = c.node.signed_head();
    assert!(honest.head.sequence > 0);
    let c_key = honest.head.node;
    // C's head reaches A through B (A and C are not connected).
    let a_has_c = || {
        a.node
            .heads()
            .heads
            .iter()
            .any(|h| h.head.node == c_key && h.head.sequence == honest.head.sequence)
    };
    assert!(wait_until(WAIT, a_has_c).await, "C's head never reached A");

    let batch_key = &c.node.keys().batch;
    let at = honest.head.issued_at;
    let forked = SignedHead::sign(
        batch_key,
        honest.head.sequence,
        BatchId([0xee; 32]),
        at.plus_seconds(60),
    );
    a.node.hear_heads(vec![forked]);
    let found = |node: &TestNode, conflict: HeadConflict| {
        node.node
            .head_conflicts()
            .iter()
            .any(|e| e.conflict == conflict && e.first.head.node == c_key)
    };
    assert!(found(&a, HeadConflict::Equivocation));
    assert!(
        wait_until(WAIT, || found(&b, HeadConflict::Equivocation)).await,
        "B never saw the equivocation"
    );

    let back = SignedHead::sign(
        batch_key,
        honest.head.sequence - 1,
        BatchId([0xbb; 32]),
        at.plus_seconds(600),
    );
    a.node.hear_heads(vec![back]);
    assert!(
        wait_until(WAIT, || found(&b, HeadConflict::Rollback)).await,
        "B never saw the rollback"
    );

    // What an operator sees at B: the counter, once per conflict however often peers pass
    // the evidence on (three more rounds here), and both signed heads of each conflict.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = b.node.metrics().render();
    for kind in ["equivocation", "rollback"] {
        let series = format!("ephemera_batch_log_conflicts_total{{kind=\"{kind}\"}}");
        assert_eq!(sample(&text, &series), Some(1.0), "{series}");
    }
    let listed: Vec<HeadEvidence> =
        serde_json::from_slice(&b.get("/v1/heads/conflicts").await.body).unwrap();
    assert!(
        listed
            .iter()
            .all(|e| e.first.is_self_signed() && e.second.is_self_signed())
    );
    assert!(
        listed
            .iter()
            .any(|e| e.second == forked || e.first == forked)
    );
    // B serves C's head to phones that cross-check (the latest it holds).
    let heads: HeadList = serde_json::from_slice(&b.get("/v1/heads").await.body).unwrap();
    assert!(heads.heads.iter().any(|h| h.head.node == c_key));
    // C itself hears what was said under its key.
    assert!(wait_until(WAIT, || found(&c, HeadConflict::Equivocation)).await);

    for node in [a, b, c] {
        node.stop().await;
    }
}
