//! The sunset order at one node (issue 21): taking orders over HTTP, refusing forged and
//! partial ones, publishing the held one, and refusing phones' and staff's work once it
//! takes effect, across a restart.

use ephemera_node::NodeError;
use ephemera_proto::UnixTime;
use ephemera_proto::batch::BatchIndex;
use ephemera_proto::revision::HmacBinding;
use ephemera_proto::signing::Ed25519SigningKey;
use ephemera_proto::sunset::{SignedSunsetOrder, SunsetCommittee, SunsetOrder, SunsetScope};
use ephemera_proto::upload::UploadBody;
use rand::SeedableRng as _;

use ephemera_node::clock::ManualClock;

use crate::util::{T0, TestNode, open_node, pet_contents, test_config};

/// Three sunset keys; the node takes orders approved by two.
fn committee_keys() -> Vec<Ed25519SigningKey> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2_021);
    (0..3)
        .map(|_| Ed25519SigningKey::generate(&mut rng))
        .collect()
}

fn config_with_committee(dir: &std::path::Path) -> ephemera_node::config::NodeConfig {
    let mut config = test_config(dir);
    config.sunset.keys = committee_keys()
        .iter()
        .map(Ed25519SigningKey::public_key)
        .collect();
    config.sunset.threshold = 2;
    config.federation.region = Some("north".into());
    config
}

fn order(effective_at: UnixTime, signers: &[usize]) -> SignedSunsetOrder {
    let keys = committee_keys();
    let publics: Vec<_> = keys.iter().map(Ed25519SigningKey::public_key).collect();
    let mut signed = SignedSunsetOrder::draft(SunsetOrder {
        federation: "north".into(),
        committee: SunsetCommittee::new(&publics, 2).unwrap().id(),
        scope: SunsetScope::Federation,
        issued_at: T0,
        effective_at,
        reason: "The epidemic is declared over.".into(),
    });
    for &i in signers {
        signed.sign(&keys[i]);
    }
    signed
}

async fn offer(node: &TestNode, frame: &[u8]) -> crate::util::Response {
    node.post_raw("/v1/sunset", "application/octet-stream", frame)
        .await
}

#[tokio::test]
async fn a_valid_order_is_held_published_and_stops_the_node_at_its_time_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start_with(config_with_committee(dir.path()), clock.clone()).await;
    let session = node.login().await;
    node.get("/v1/sunset").await.assert_error(404, "not-found");

    // Forged, partial and other-federation orders are refused and say why.
    let effective = UnixTime(T0.0 + 3_600);
    let partial = offer(&node, &order(effective, &[1]).to_bytes()).await;
    partial.assert_error(400, "invalid-sunset-order");
    assert!(
        partial.json()["message"]
            .as_str()
            .unwrap()
            .contains("1 valid approvals, the committee needs 2"),
        "{:?}",
        partial.json()
    );
    let mut forged = order(effective, &[0, 1]);
    forged.order.effective_at = UnixTime(T0.0 + 60);
    offer(&node, &forged.to_bytes())
        .await
        .assert_error(400, "invalid-sunset-order");
    let mut elsewhere = order(effective, &[]);
    elsewhere.order.federation = "south".into();
    for i in [0, 2] {
        elsewhere.sign(&committee_keys()[i]);
    }
    offer(&node, &elsewhere.to_bytes())
        .await
        .assert_error(400, "invalid-sunset-order");
    offer(&node, b"not a frame")
        .await
        .assert_error(400, "invalid-sunset-order");
    node.get("/v1/sunset").await.assert_error(404, "not-found");

    // A valid order is adopted, served and listed in the index; until its time the node
    // works as before.
    let valid = order(effective, &[0, 2]);
    let adopted = offer(&node, &valid.to_bytes()).await;
    assert_eq!(adopted.status, 200, "{:?}", adopted.json());
    assert_eq!(adopted.json()["adopted"], true);
    assert_eq!(adopted.json()["held_order"], valid.order.id().to_string());
    assert_eq!(
        offer(&node, &valid.to_bytes()).await.json()["adopted"],
        false
    );
    let served = node.get("/v1/sunset").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, valid.to_bytes());
    let index: BatchIndex = serde_json::from_slice(&node.get("/v1/batches").await.body).unwrap();
    assert_eq!(index.sunset, Some(valid.clone()));
    let (_, _) = node
        .report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;

    // A later order does not replace it.
    let later = order(UnixTime(T0.0 + 7_200), &[1, 2]);
    let kept = offer(&node, &later.to_bytes()).await;
    assert_eq!(kept.json()["adopted"], false);
    assert_eq!(kept.json()["held_order"], valid.order.id().to_string());

    // At its time: codes, verifies (decoys alike) and uploads are refused with 410.
    let contents = pet_contents(2, T0.day());
    let ready = node
        .certified(&session, "confirmed", &contents, HmacBinding::Unbound)
        .await;
    clock.set(effective);
    let auth = format!("Bearer {session}");
    node.post_json(
        "/v1/codes",
        &[("Authorization", &auth)],
        &serde_json::json!({"test_type": "confirmed", "count": 1}),
    )
    .await
    .assert_error(410, "sunset");
    for decoy in [false, true] {
        let verify = ephemera_proto::api::VerifyRequest {
            code: "0".repeat(16),
            report_hmac: "00".repeat(32),
            decoy,
            padding: String::new(),
        };
        node.post_raw("/v1/verify", "application/json", &verify.to_padded_json())
            .await
            .assert_error(410, "sunset");
    }
    node.upload_body(UploadBody::RealV1(ready))
        .await
        .assert_error(410, "sunset");

    // A restart keeps the order and the stop.
    let (name, password) = node.case_worker.clone().unwrap();
    node.stop().await;
    let node = TestNode::start_with(config_with_committee(dir.path()), clock.clone()).await;
    assert_eq!(node.get("/v1/sunset").await.body, valid.to_bytes());
    let session = node.login_as(&name, &password).await;
    node.post_json(
        "/v1/codes",
        &[("Authorization", &format!("Bearer {session}"))],
        &serde_json::json!({"test_type": "confirmed", "count": 1}),
    )
    .await
    .assert_error(410, "sunset");
    node.stop().await;

    // A node restarted with another committee refuses to start rather than drop the order.
    let mut other = config_with_committee(dir.path());
    other.sunset.threshold = 3;
    let err = open_node(other, &clock).await.unwrap_err();
    assert!(matches!(err, NodeError::Sunset(_)), "{err}");
    assert!(err.to_string().contains("restore the committee"), "{err}");
}

#[tokio::test]
async fn a_node_without_a_committee_takes_no_order_and_none_may_hold_its_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    offer(&node, &order(UnixTime(T0.0 + 60), &[0, 1]).to_bytes())
        .await
        .assert_error(409, "sunset-not-configured");
    node.post_raw("/v1/sunset", "application/json", b"{}")
        .await
        .assert_error(415, "unsupported-media-type");
    let authority = node.node.keys().authority.public_key();
    node.stop().await;

    let mut config = config_with_committee(dir.path());
    config.sunset.keys.push(authority);
    let err = open_node(config, &clock).await.unwrap_err();
    assert!(
        err.to_string().contains("lists this node's authority key"),
        "{err}"
    );
}
