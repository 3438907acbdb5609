//! Federation between real `ephemera-node serve` processes on 127.0.0.1 (issue #16, items 2
//! and 6): partial, asymmetric trust across a chain whose every path crosses a node that
//! does not trust some of what it relays; what a node with no peers logs at start; and two
//! copies of one node facing the same peer (issue #29).
//!
//! Processes on loopback, not network namespaces: discovery is off, so the chain A–B–C of
//! bootstrap peers is the only way between A and C, as separate namespaces joined through
//! B would make it. mDNS stays off; nothing but 127.0.0.1 is bound or dialled.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use ephemera_node::clock::Clock;
use ephemera_node::federation::SystemClock;
use ephemera_node::federation::testing::UploadFactory;
use ephemera_proto::upload::{UploadId, VerifiedUpload};

#[path = "hostile/attacker.rs"]
mod attacker;
#[path = "hostile/target.rs"]
mod target;
#[path = "it/util.rs"]
#[allow(unused_imports, unreachable_pub)]
mod util;

use target::{Target, eventually, factory_key, ids_at};

/// A node of the chain: trusting `trusted`, relaying for `relay`, dialling `bootstrap`.
fn chain_node(
    trusted: &[&UploadFactory],
    relay: &[&UploadFactory],
    bootstrap: &[&Target],
) -> Target {
    let quoted = |keys: Vec<String>| {
        keys.iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let relay = quoted(relay.iter().map(|f| factory_key(f)).collect());
    let bootstrap = quoted(bootstrap.iter().map(|t| t.p2p.to_string()).collect());
    Target::start(
        &trusted.iter().map(|f| factory_key(f)).collect::<Vec<_>>(),
        &format!(
            "sync_interval_seconds = 1\ndiscovery = false\n\
             relay_authorities = [{relay}]\nbootstrap_peers = [{bootstrap}]"
        ),
    )
}

/// What `node` holds today, by catch-up's id listing.
async fn held(node: &Target) -> BTreeSet<UploadId> {
    ids_at(node, SystemClock.now().day())
        .await
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn ids(uploads: &[VerifiedUpload]) -> BTreeSet<UploadId> {
    uploads.iter().map(VerifiedUpload::id).collect()
}

async fn upload_all(node: &Target, uploads: &[VerifiedUpload]) {
    for upload in uploads {
        assert_eq!(node.upload(upload.upload()).await, 200, "a phone's upload");
    }
}

/// Three authorities a, b, c, chained A–B–C by bootstrap peers, discovery off:
///
/// | node | trusts | relays for |
/// | --- | --- | --- |
/// | A | a, c | |
/// | B | b | a, c |
/// | C | a, b, c | |
///
/// Every path between A and C crosses B, which trusts neither a nor c; A does not trust b,
/// which C does. Each node's phones upload under its own authority. Every report reaches
/// every node that trusts its authority (a and c through B's relaying), no node keeps what
/// it does not trust (B keeps none of a or c, A none of b), nobody rejects anything and no
/// honest peer is banned; and A's next report still reaches C after B's own reports went
/// out (before #16, A and C banned B for them, and the chain was cut).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_reaches_every_node_that_trusts_it_across_a_relay_that_does_not() {
    let (a, b, c) = (
        UploadFactory::new(),
        UploadFactory::new(),
        UploadFactory::new(),
    );
    let node_a = chain_node(&[&a, &c], &[], &[]);
    let node_b = chain_node(&[&b], &[&a, &c], &[&node_a]);
    let node_c = chain_node(&[&a, &b, &c], &[], &[&node_b]);
    let linked = eventually(Duration::from_secs(20), || async {
        node_b
            .metric("ephemera_federation_peers_connected", "")
            .await
            >= 2.0
    })
    .await;
    assert!(linked, "B did not connect to both A and C");
    // A few heartbeats for the meshes of each topic.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let from_a: Vec<_> = (0..3).map(|_| a.upload(3)).collect();
    let from_b: Vec<_> = (0..3).map(|_| b.upload(3)).collect();
    let from_c: Vec<_> = (0..3).map(|_| c.upload(3)).collect();
    upload_all(&node_a, &from_a).await;
    upload_all(&node_b, &from_b).await;
    upload_all(&node_c, &from_c).await;

    let want_a: BTreeSet<UploadId> = ids(&from_a).union(&ids(&from_c)).copied().collect();
    let want_b = ids(&from_b);
    let want_c: BTreeSet<UploadId> = want_a.union(&want_b).copied().collect();
    let converged = eventually(Duration::from_secs(30), || async {
        held(&node_a).await == want_a
            && held(&node_b).await == want_b
            && held(&node_c).await == want_c
    })
    .await;
    assert!(
        converged,
        "A holds {} of {}, B {} of {}, C {} of {}",
        held(&node_a).await.intersection(&want_a).count(),
        want_a.len(),
        held(&node_b).await.intersection(&want_b).count(),
        want_b.len(),
        held(&node_c).await.intersection(&want_c).count(),
        want_c.len(),
    );
    // Several catch-up rounds later (one a second), still nothing more anywhere.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(held(&node_a).await, want_a, "A keeps only a and c");
    assert_eq!(held(&node_b).await, want_b, "B keeps only b");
    assert_eq!(held(&node_c).await, want_c);
    // B relayed the reports of a and c: each verified, forwarded once, none stored.
    assert!(
        node_b
            .metric("ephemera_federation_gossip_total", "verdict=\"relayed\"")
            .await
            >= 6.0
    );

    // A's next report still reaches C through B.
    let late = a.upload(2);
    upload_all(&node_a, std::slice::from_ref(&late)).await;
    let arrived = eventually(Duration::from_secs(20), || async {
        held(&node_c).await.contains(&late.id())
    })
    .await;
    assert!(arrived, "A's report did not reach C after B's own reports");

    for (name, node) in [("A", &node_a), ("B", &node_b), ("C", &node_c)] {
        assert_eq!(
            node.metric("ephemera_federation_peers_banned_total", "")
                .await,
            0.0,
            "{name} banned an honest peer"
        );
        assert_eq!(
            node.metric("ephemera_federation_gossip_total", "verdict=\"rejected\"")
                .await,
            0.0,
            "{name} took an honest report for a forgery"
        );
        assert_eq!(
            node.metric("ephemera_federation_peers_penalised_total", "")
                .await,
            0.0,
            "{name} penalised an honest peer"
        );
    }
}

/// Two copies of one node (B started on a copy of A's keys: same batch key, same libp2p
/// identity), both federating with a plain peer P, batches every second. Through P's
/// answers to their hellos (`/ephemera/instance/1`) both learn of the other: both set
/// `ephemera_twin_detected`, B (started later) cuts no batch although it holds reports,
/// and A goes on cutting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_of_a_node_is_detected_and_cuts_nothing_while_the_first_goes_on() {
    let authority = UploadFactory::new();
    let trusted = [factory_key(&authority)];
    let settings = |bootstrap: &[&Target]| {
        let bootstrap = bootstrap
            .iter()
            .map(|t| format!("\"{}\"", t.p2p))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "sync_interval_seconds = 1\ndiscovery = false\nbootstrap_peers = [{bootstrap}]\n\
             [publication]\nbatch_period_seconds = 1"
        )
    };
    let peer = Target::start(&trusted, &settings(&[]));
    let first = Target::start(&trusted, &settings(&[&peer]));
    upload_all(&first, &[authority.upload(3)]).await;
    let cutting = eventually(Duration::from_secs(20), || async {
        first.metric("ephemera_batches_published_total", "").await >= 1.0
    })
    .await;
    assert!(cutting, "A cut no batch alone");
    assert_eq!(first.metric("ephemera_twin_detected", "").await, 0.0);

    // B starts in a later second than A (in the same second the larger instance stops).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let twin = first.start_twin(&trusted, &settings(&[&peer]));
    assert_eq!(twin.peer, first.peer, "the same libp2p identity");
    let detected = eventually(Duration::from_secs(20), || async {
        twin.metric("ephemera_twin_detected", "").await == 1.0
            && first.metric("ephemera_twin_detected", "").await == 1.0
    })
    .await;
    assert!(detected, "the twins did not learn of each other through P");
    assert_eq!(peer.metric("ephemera_twin_detected", "").await, 0.0);

    // Both take reports (B its phone's, and A's by catch-up); only A publishes.
    let twin_before = twin.metric("ephemera_batches_published_total", "").await;
    let first_before = first.metric("ephemera_batches_published_total", "").await;
    upload_all(&twin, &[authority.upload(3)]).await;
    upload_all(&first, &[authority.upload(3)]).await;
    let first_cut_again = eventually(Duration::from_secs(20), || async {
        first.metric("ephemera_batches_published_total", "").await > first_before
    })
    .await;
    assert!(
        first_cut_again,
        "A stopped cutting: {} batches, {} uploads accepted, clock anomaly {}",
        first.metric("ephemera_batches_published_total", "").await,
        first.metric("ephemera_uploads_accepted_total", "").await,
        first.metric("ephemera_clock_anomaly", "").await,
    );
    // Several boundaries (one a second) later, B still cut nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        twin.metric("ephemera_batches_published_total", "").await,
        twin_before,
        "B cut a batch"
    );
}

/// A default start (no bootstrap peers; only the ports are free ones, so that tests run side
/// by side) logs one INFO line that the node runs alone, and no WARN or ERROR line:
/// Kademlia is not asked to bootstrap from an empty routing table.
#[test]
fn a_node_with_no_peers_says_so_once_and_warns_of_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ephemera-node"))
        .current_dir(dir.path())
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--set", "federation.listen=127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ephemera-node");
    // Past start-up: the listeners are up (Kademlia's cue to bootstrap) and a few seconds
    // go by; then stop it and read everything it logged.
    std::thread::sleep(Duration::from_secs(6));
    let _ = child.kill();
    let _ = child.wait();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        stdout.contains("libp2p listening:"),
        "federation did not start:\n{stdout}\n{logs}"
    );
    let bad: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(
        bad.is_empty(),
        "a default start logged:\n{}",
        bad.join("\n")
    );
    let alone: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" INFO ") && l.contains("runs alone"))
        .collect();
    assert_eq!(alone.len(), 1, "{logs}");
}
