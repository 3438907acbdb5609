//! Sunset orders over federation (issue 21, "Spread"): an order posted at one node reaches
//! every node that holds the same committee, through nodes in between, and a node that was
//! offline gets it when it comes back; an order that does not verify goes nowhere, even
//! when a peer puts it on the wire; a node without that committee ignores it and blames
//! no one.

use std::path::Path;
use std::time::Duration;

use ephemera_node::config::NodeConfig;
use ephemera_node::federation::{PeerId, testing::wait_until};
use ephemera_proto::UnixTime;
use ephemera_proto::signing::Ed25519SigningKey;
use ephemera_proto::sunset::{SignedSunsetOrder, SunsetCommittee, SunsetOrder, SunsetScope};
use rand::SeedableRng as _;

use crate::util::{T0, TestNode};
use crate::{WAIT, connected, eventually, fed_config, peer_id, score_if_unbanned, start, start_at};

/// The lowest gossipsub score a peer may have and still be sent gossip.
const GOSSIP_THRESHOLD: f64 = -10.0;

/// `n` sunset keys drawn from `seed`.
fn sunset_keys(seed: u64, n: usize) -> Vec<Ed25519SigningKey> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| Ed25519SigningKey::generate(&mut rng))
        .collect()
}

/// The federation's committee: 2 of 3.
fn committee() -> Vec<Ed25519SigningKey> {
    sunset_keys(21, 3)
}

/// A federating node of federation "north" taking orders approved by 2 of `keys` (none: no
/// committee).
fn sunset_config(dir: &Path, keys: &[Ed25519SigningKey]) -> NodeConfig {
    let mut config = fed_config(dir, vec![]);
    config.sunset.keys = keys.iter().map(Ed25519SigningKey::public_key).collect();
    config.sunset.threshold = 2;
    config.federation.region = Some("north".into());
    config
}

/// An order of the federation's committee, effective in an hour, approved by `signers`.
fn order(signers: &[usize]) -> SignedSunsetOrder {
    let keys = committee();
    let publics: Vec<_> = keys.iter().map(Ed25519SigningKey::public_key).collect();
    let mut signed = SignedSunsetOrder::draft(SunsetOrder {
        federation: "north".into(),
        committee: SunsetCommittee::new(&publics, 2).unwrap().id(),
        scope: SunsetScope::Federation,
        issued_at: T0,
        effective_at: UnixTime(T0.0 + 3_600),
        reason: "The epidemic is over; every node erases.".into(),
    });
    for &i in signers {
        signed.sign(&keys[i]);
    }
    signed
}

/// The order `node` serves, if any.
async fn served(node: &TestNode) -> Option<Vec<u8>> {
    let answer = node.get("/v1/sunset").await;
    (answer.status == 200).then_some(answer.body)
}

/// Whether `node` holds `order` within [`WAIT`].
async fn comes_to_hold(node: &TestNode, order: &SignedSunsetOrder) -> bool {
    let node = node.node.clone();
    let id = order.order.id();
    wait_until(WAIT, || {
        node.sunset_order()
            .is_some_and(|held| held.order.id() == id)
    })
    .await
}

/// Whether `node` is connected to `peer`, not banned, and scores it at or above the gossip
/// threshold.
async fn in_good_standing(node: &TestNode, peer: PeerId) -> bool {
    score_if_unbanned(node, peer)
        .await
        .is_some_and(|s| s >= GOSSIP_THRESHOLD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_at_a_reaches_c_through_b_and_a_node_offline_gets_it_when_back() {
    let dirs = [(); 4].map(|_| tempfile::tempdir().unwrap());
    let keys = committee();
    let (a, a_addr) = start(sunset_config(dirs[0].path(), &keys), vec![]).await;
    let (b, b_addr) = start(sunset_config(dirs[1].path(), &keys), vec![a_addr]).await;
    let (c, _) = start(sunset_config(dirs[2].path(), &keys), vec![b_addr.clone()]).await;
    // D joins through B, then goes offline.
    let (d, _) = start(sunset_config(dirs[3].path(), &keys), vec![b_addr.clone()]).await;
    assert!(connected(&b, peer_id(&d)).await, "D never joined");
    d.stop().await;
    assert!(connected(&b, peer_id(&c)).await, "C never joined");

    // A forged order (its approvals are over another effective time) is refused at A. Put
    // on the wire by A anyway, with a partial one (one approval of the two needed), B
    // refuses both, so neither reaches C, and nobody is blamed: they decode, so they may be
    // orders of a committee A holds and B does not.
    let mut forged = order(&[0, 1]);
    forged.order.effective_at = UnixTime(T0.0 + 60);
    let refused = a
        .post_raw("/v1/sunset", "application/octet-stream", &forged.to_bytes())
        .await;
    refused.assert_error(400, "invalid-sunset-order");
    let a_federation = a.node.federation_handle().unwrap();
    for bad in [forged, order(&[2])] {
        a_federation.spread_sunset(bad.to_bytes()).await.unwrap();
    }
    // Several sync rounds (1 s each) pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for node in [&a, &b, &c] {
        assert_eq!(served(node).await, None, "a forged order was taken");
    }
    assert!(in_good_standing(&b, peer_id(&a)).await);

    // The valid order, posted at A, is pushed to B and from B to C at once: well within a
    // second here, where sync rounds alone would take a round per hop.
    let valid = order(&[0, 2]);
    let started = std::time::Instant::now();
    let posted = a
        .post_raw("/v1/sunset", "application/octet-stream", &valid.to_bytes())
        .await;
    assert_eq!(posted.status, 200, "{:?}", posted.json());
    assert_eq!(posted.json()["adopted"], true);
    assert!(comes_to_hold(&b, &valid).await, "B never got the order");
    assert!(comes_to_hold(&c, &valid).await, "C never got the order");
    eprintln!(
        "sunset order A -> B -> C in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(served(&c).await, Some(valid.to_bytes()));

    // D comes back on its old data folder: the first peer it reaches passes the order on.
    let (d, _) = start(sunset_config(dirs[3].path(), &keys), vec![b_addr]).await;
    assert!(comes_to_hold(&d, &valid).await, "D never got the order");
    assert_eq!(served(&d).await, Some(valid.to_bytes()));
    // Kept across D's restart (it was stored).
    d.stop().await;
    let (d, _) = start(sunset_config(dirs[3].path(), &keys), vec![]).await;
    assert_eq!(served(&d).await, Some(valid.to_bytes()));

    // Honest peers were never penalised on the way.
    for (node, peer) in [(&b, peer_id(&a)), (&b, peer_id(&c)), (&c, peer_id(&b))] {
        assert!(in_good_standing(node, peer).await);
    }
    for node in [d, c, b, a] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_the_committee_ignore_the_order_and_blame_no_one() {
    let dirs = [(); 4].map(|_| tempfile::tempdir().unwrap());
    let (a, a_addr) = start(sunset_config(dirs[0].path(), &committee()), vec![]).await;
    // X has no committee; Y has another one (other keys, 2 of 3); Z has A's.
    let (x, _) = start(sunset_config(dirs[1].path(), &[]), vec![a_addr.clone()]).await;
    let (y, _) = start(
        sunset_config(dirs[2].path(), &sunset_keys(16, 3)),
        vec![a_addr.clone()],
    )
    .await;
    let (z, _) = start(sunset_config(dirs[3].path(), &committee()), vec![a_addr]).await;
    let a_peer = peer_id(&a);
    for node in [&x, &y, &z] {
        assert!(connected(node, a_peer).await);
    }

    let valid = order(&[1, 2]);
    let posted = a
        .post_raw("/v1/sunset", "application/octet-stream", &valid.to_bytes())
        .await;
    assert_eq!(posted.json()["adopted"], true);
    assert!(comes_to_hold(&z, &valid).await, "A did not send the order");
    // A sends it again every sync round (1 s): several times over.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for node in [&x, &y] {
        assert_eq!(
            served(node).await,
            None,
            "a node took an order it cannot check"
        );
        assert!(
            in_good_standing(node, a_peer).await,
            "A was penalised for relaying a valid order"
        );
    }

    // Bytes that are no order at all are provably bad: they cost A its standing at every
    // receiver, committee or not (one such message: below the gossip threshold, not banned).
    a.node
        .federation_handle()
        .unwrap()
        .spread_sunset(b"no order at all".to_vec())
        .await
        .unwrap();
    for node in [&x, &y, &z] {
        let handle = node.node.federation_handle().unwrap();
        assert!(
            eventually(|| async {
                let status = handle.status().await.unwrap();
                status
                    .score_of(&a_peer)
                    .is_some_and(|s| s < GOSSIP_THRESHOLD)
                    && !status.banned_peers.contains(&a_peer)
            })
            .await,
            "junk went unpunished"
        );
    }
    for node in [z, y, x, a] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_node_passes_its_order_to_a_node_back_after_the_effective_time() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let keys = committee();
    let (a, _) = start(sunset_config(dirs[0].path(), &keys), vec![]).await;
    let a_peer = peer_id(&a);
    let valid = order(&[0, 1]);
    let posted = a
        .post_raw("/v1/sunset", "application/octet-stream", &valid.to_bytes())
        .await;
    assert_eq!(posted.json()["adopted"], true);
    // The order takes effect and A erases everything but the order, its receipt and keys.
    let config = a.node.config().clone();
    a.stop().await;
    let erased = ephemera_node::sunset_erasure::erase(&config, valid.order.effective_at).unwrap();
    assert_eq!(erased.order, valid);

    // Erased, A still passes the order on, under its old peer id, and nothing else.
    let beacon = ephemera_node::node::SunsetBeacon::start(&config, &erased.order).unwrap();
    assert_eq!(beacon.handle().peer_id(), a_peer);
    let addr = beacon
        .handle()
        .listen_addrs()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.to_string().contains("/tcp/"))
        .unwrap()
        .with(libp2p::multiaddr::Protocol::P2p(a_peer));
    // D, down until after the effective time, comes up and joins through A.
    let back = UnixTime(valid.order.effective_at.0 + 60);
    let (d, _) = start_at(sunset_config(dirs[1].path(), &keys), vec![addr], back).await;
    assert!(comes_to_hold(&d, &valid).await, "D never got the order");
    assert!(in_good_standing(&d, a_peer).await);
    let status = beacon.handle().status().await.unwrap();
    assert_eq!(status.sync_rounds_running, 0);
    assert_eq!(status.topic_peers + status.mesh_peers, 0);
    d.stop().await;
    beacon.stop().await;
}
