//! Venue releases over federation (issue 20, "Warning flow"): a release a case worker makes
//! at node A reaches B and, through B, C, within a second here, and a node that was offline
//! catches up when back; a phone that checked in at the venue is warned from what B and C
//! serve, one that was elsewhere is not. A forged release costs its sender; a valid release
//! of an authority a node does not trust is not kept there, and costs no one.

use std::path::Path;
use std::time::Duration;

use ephemera_node::federation::PeerId;
use ephemera_node_core::keys::venue_key;
use ephemera_proto::auth::TrustedAuthorities;
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::venue::{SignedVenueRelease, check_in, match_check_ins};

use crate::util::{T0, TestNode, contains, read_tree};
use crate::venue_util::{ADDRESS, DESCRIPTION, MESSAGE, trace_body, venue};
use crate::{WAIT, authority, connected, fed_config, peer_id, score_if_unbanned, start};

/// The frame of release `id` that `node` serves, if any.
async fn served(node: &TestNode, id: &str) -> Option<Vec<u8>> {
    let answer = node.get(&format!("/v1/venue-releases/{id}")).await;
    (answer.status == 200).then_some(answer.body)
}

/// Whether `node` comes to serve release `id` within [`WAIT`].
async fn comes_to_serve(node: &TestNode, id: &str) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if served(node, id).await.is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The number of releases `node` lists.
async fn listed(node: &TestNode) -> usize {
    let index = node.get("/v1/venue-releases").await.json();
    index["releases"].as_array().unwrap().len()
}

/// Whether `node` is connected to `peer`, has not banned it and scores it at zero or
/// above: never penalised.
async fn unblamed(node: &TestNode, peer: PeerId) -> bool {
    score_if_unbanned(node, peer)
        .await
        .is_some_and(|s| s >= 0.0)
}

/// A case worker at `node` traces a venue of its authority for a case there from `from`
/// for 50 minutes: the release's id.
async fn trace(node: &TestNode, code: &[u8], from: ephemera_proto::UnixTime) -> String {
    let admin = node.login().await;
    let (worker, _) = node.staff(&admin, "carol", &["case-worker"]).await;
    let body = trace_body(code, from, from.plus_seconds(3000), MESSAGE);
    let traced = node
        .call("POST", "/v1/venue-traces", &worker, Some(body))
        .await;
    assert_eq!(
        traced.status,
        201,
        "{}",
        String::from_utf8_lossy(&traced.body)
    );
    traced.json()["release"].as_str().unwrap().to_owned()
}

fn trusting(dir: &Path, authorities: Vec<Ed25519PublicKey>) -> ephemera_node::config::NodeConfig {
    fed_config(dir, authorities)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_at_a_warns_a_visitor_through_b_and_c_and_a_node_back_online_catches_up() {
    let dirs = [(); 4].map(|_| tempfile::tempdir().unwrap());
    let (a, a_addr) = start(trusting(dirs[0].path(), vec![]), vec![]).await;
    let trust_a = vec![authority(&a)];
    let (b, b_addr) = start(trusting(dirs[1].path(), trust_a.clone()), vec![a_addr]).await;
    let (c, _) = start(
        trusting(dirs[2].path(), trust_a.clone()),
        vec![b_addr.clone()],
    )
    .await;
    // D joins through B, then goes offline.
    let (d, _) = start(
        trusting(dirs[3].path(), trust_a.clone()),
        vec![b_addr.clone()],
    )
    .await;
    assert!(connected(&b, peer_id(&d)).await, "D never joined");
    d.stop().await;
    assert!(connected(&b, peer_id(&c)).await, "C never joined");

    // Phones check in: one at A's venue during the case's visit, one at another venue.
    let venue_key = venue_key(&a.node.keys().pepper);
    let (entry, code) = venue(&venue_key);
    let (elsewhere, _) = venue(&venue_key);
    let visit = T0.minus_seconds(3 * 3600);
    let mut rng = rand::rng();
    let visitor = check_in(&entry, visit, visit.plus_seconds(1800), &mut rng).unwrap();
    let stranger = check_in(&elsewhere, visit, visit.plus_seconds(1800), &mut rng).unwrap();

    // The case worker's release at A is offered at once: B asks for it, then offers it to C.
    let started = std::time::Instant::now();
    let id = trace(&a, &code, visit.minus_seconds(600)).await;
    assert!(comes_to_serve(&b, &id).await, "B never got the release");
    assert!(comes_to_serve(&c, &id).await, "C never got the release");
    eprintln!(
        "venue release A -> B -> C in {} ms",
        started.elapsed().as_millis()
    );

    // The phone on C verifies A's signature and is warned; the one elsewhere is not.
    let frame = served(&c, &id).await.unwrap();
    assert_eq!(Some(frame.clone()), served(&a, &id).await, "the same bytes");
    let release = SignedVenueRelease::from_bytes(&frame).unwrap();
    let trusted = TrustedAuthorities::new().with(authority(&a));
    let traces = release.verify(&trusted, T0).unwrap();
    let warnings = match_check_ins(&traces, &visitor);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].message, MESSAGE);
    assert!(match_check_ins(&traces, &stranger).is_empty());

    // D comes back on its old data folder: the first peer it reaches hands the release on,
    // kept across D's restart.
    let (d, _) = start(trusting(dirs[3].path(), trust_a.clone()), vec![b_addr]).await;
    assert!(comes_to_serve(&d, &id).await, "D never caught up");
    d.stop().await;
    let (d, _) = start(trusting(dirs[3].path(), trust_a), vec![]).await;
    assert_eq!(served(&d, &id).await, Some(frame));

    // Held once everywhere, whatever the number of asks; honest peers never blamed.
    for node in [&a, &b, &c, &d] {
        assert_eq!(listed(node).await, 1);
    }
    for (node, peer) in [(&b, peer_id(&a)), (&b, peer_id(&c)), (&c, peer_id(&b))] {
        assert!(unblamed(node, peer).await);
    }
    // Nothing of the venue, the visit or the message in clear in the receivers' folders.
    let visit_text = visit.minus_seconds(600).0.to_string();
    for dir in &dirs[1..] {
        let folder = read_tree(dir.path());
        for (what, secret) in [
            ("message", MESSAGE.as_bytes()),
            ("description", DESCRIPTION.as_bytes()),
            ("address", ADDRESS.as_bytes()),
            ("entry code", &entry.to_bytes()[1..49]),
            ("case time", visit_text.as_bytes()),
        ] {
            assert!(!contains(&folder, secret), "{what} in a receiver's folder");
        }
    }
    for node in [d, c, b, a] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_release_costs_its_sender_and_another_authoritys_is_left_without_blame() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    // H's authority is trusted by B, X's is not.
    let (h, h_addr) = start(trusting(dirs[0].path(), vec![]), vec![]).await;
    let (b, b_addr) = start(trusting(dirs[1].path(), vec![authority(&h)]), vec![h_addr]).await;
    let (x, _) = start(trusting(dirs[2].path(), vec![]), vec![b_addr]).await;
    assert!(connected(&b, peer_id(&x)).await, "X never joined");
    assert!(connected(&b, peer_id(&h)).await, "H never joined");
    let visit = T0.minus_seconds(3600);

    // X's own valid release: B does not trust X's authority, so it keeps none of it, and
    // X keeps its standing over several sync rounds (1 s each).
    let (_, x_code) = venue(&venue_key(&x.node.keys().pepper));
    let x_release = trace(&x, &x_code, visit).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served(&b, &x_release).await, None);
    assert_eq!(listed(&b).await, 0);
    assert!(unblamed(&b, peer_id(&x)).await);

    // H's valid release is taken; then H's store holds a forgery of it (a byte of the
    // signature flipped: its own content address), which B refuses and blames H for.
    let (_, h_code) = venue(&venue_key(&h.node.keys().pepper));
    let genuine = trace(&h, &h_code, visit).await;
    assert!(
        comes_to_serve(&b, &genuine).await,
        "B never got H's release"
    );
    assert!(unblamed(&b, peer_id(&h)).await);
    let mut forged = served(&h, &genuine).await.unwrap();
    *forged.last_mut().unwrap() ^= 1;
    let forged_release = SignedVenueRelease::from_bytes(&forged).unwrap();
    let forged_id = forged_release.id();
    h.node
        .store()
        .insert_venue_release(&forged_id, &forged, T0, T0.plus_seconds(86_400))
        .unwrap()
        .expect("new at H");
    let b_federation = b.node.federation_handle().unwrap();
    let h_peer = peer_id(&h);
    let deadline = std::time::Instant::now() + WAIT;
    let mut blamed = false;
    while !blamed && std::time::Instant::now() < deadline {
        let status = b_federation.status().await.unwrap();
        blamed = status.banned_peers.contains(&h_peer)
            || status.score_of(&h_peer).is_some_and(|s| s < 0.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(blamed, "B never blamed H for the forgery");
    assert_eq!(served(&b, &forged_id.to_hex()).await, None);
    assert_eq!(listed(&b).await, 1, "only H's genuine release");
    assert!(unblamed(&b, peer_id(&x)).await);
    for node in [x, b, h] {
        node.stop().await;
    }
}
