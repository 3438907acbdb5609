//! Sealed phone exchanges: a real report and a decoy look alike on the wire, to a proxy that
//! reads HTTP in clear (issue 30; issue 16's decoy-equality test).

use std::collections::BTreeSet;

use ephemera_node::clock::ManualClock;
use ephemera_proto::api::{VerifyRequest, VerifyResponse};
use ephemera_proto::auth::ReportHmacKey;
use ephemera_proto::revision::RevisionSecret;
use ephemera_proto::sealed::{
    self, ResponseOpener, SealedRoute, SealingKeyAnnouncement, SealingPublicKey,
};
use ephemera_proto::signing::TrustedKeys;
use ephemera_proto::upload::{SignedUpload, UploadRequest};
use ephemera_proto::wire;

use crate::util::*;

/// What a proxy sees of one exchange, and what the phone opens.
struct Seen {
    request_len: usize,
    status: u16,
    answer_len: usize,
    header_names: BTreeSet<String>,
    inner_status: u16,
    inner_body: Vec<u8>,
}

async fn exchange(
    node: &TestNode,
    key: SealingPublicKey,
    route: SealedRoute,
    inner: &[u8],
) -> Seen {
    let (body, opener): (Vec<u8>, ResponseOpener) =
        key.seal_request(route, inner, &mut rand::rng()).unwrap();
    let response = node
        .post_raw(route.path(), sealed::CONTENT_TYPE, &body)
        .await;
    let opened = opener.open(&response.body).unwrap();
    Seen {
        request_len: body.len(),
        status: response.status,
        answer_len: response.body.len(),
        // Names only: `date` changes every second for real and decoy alike.
        header_names: response
            .headers
            .iter()
            .map(|(k, _)| k.to_lowercase())
            .collect(),
        inner_status: opened.status,
        inner_body: opened.body,
    }
}

/// The node's sealing key, as a phone that trusts its batch key takes it.
async fn sealing_key(node: &TestNode) -> SealingPublicKey {
    let announcement: SealingKeyAnnouncement =
        serde_json::from_slice(&node.get("/v1/sealing-key").await.body).unwrap();
    let trusted = TrustedKeys::new().with(node.node.keys().batch.public_key());
    announcement.verify(&trusted).unwrap()
}

/// A sealed `real` verify, then a sealed decoy verify.
async fn real_and_decoy_verify(
    node: &TestNode,
    key: SealingPublicKey,
    real: &VerifyRequest,
) -> (Seen, Seen) {
    let real = exchange(node, key, SealedRoute::Verify, &real.to_padded_json()).await;
    let decoy = exchange(
        node,
        key,
        SealedRoute::Verify,
        &VerifyRequest::decoy(&mut rand::rng()).to_padded_json(),
    )
    .await;
    (real, decoy)
}

/// One proxy-visible shape: request length, status, answer length, header set.
fn shape(seen: &Seen) -> (usize, u16, usize, BTreeSet<String>) {
    (
        seen.request_len,
        seen.status,
        seen.answer_len,
        seen.header_names.clone(),
    )
}

#[tokio::test]
async fn real_decoy_and_refused_exchanges_look_alike_and_only_the_real_one_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    // The phone's view of the key: served signed by the batch key it trusts.
    let key = sealing_key(&node).await;

    let session = node.login().await;
    let code = node.one_code(&session).await;
    let contents = pet_contents(3, T0.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let real = VerifyRequest {
        code,
        report_hmac: hex::encode(hmac_key.authenticate(&contents).0),
        decoy: false,
        padding: String::new(),
    };
    let (real_verify, decoy_verify) = real_and_decoy_verify(&node, key, &real).await;
    // A mistyped code: refused inside the seal.
    let mut wrong = real.clone();
    wrong.code = "0000-0000-0000-0000".to_owned();
    let wrong_verify = exchange(&node, key, SealedRoute::Verify, &wrong.to_padded_json()).await;
    assert_eq!(real_verify.inner_status, 200);
    assert_eq!(decoy_verify.inner_status, 200);
    assert_eq!(wrong_verify.inner_status, 400);
    assert_eq!(shape(&real_verify), shape(&decoy_verify));
    assert_eq!(shape(&real_verify), shape(&wrong_verify));
    assert_eq!(real_verify.status, 200);
    assert_eq!(
        real_verify.answer_len,
        SealedRoute::Verify.sealed_response_size()
    );

    let certificate = serde_json::from_slice::<VerifyResponse>(&real_verify.inner_body)
        .unwrap()
        .certificate()
        .unwrap();
    let real_upload = wire::encode(&UploadRequest::real_v1(SignedUpload {
        contents,
        certificate,
        hmac_key,
    }));
    let decoy_upload = wire::encode(&UploadRequest::decoy(real_upload.len()));
    assert_eq!(real_upload.len(), decoy_upload.len());
    let real_upload = exchange(&node, key, SealedRoute::Upload, &real_upload).await;
    let decoy_upload = exchange(&node, key, SealedRoute::Upload, &decoy_upload).await;
    assert_eq!(real_upload.inner_status, 200);
    assert_eq!(decoy_upload.inner_status, 200);
    assert_eq!(shape(&real_upload), shape(&decoy_upload));
    assert_eq!(
        real_upload.answer_len,
        SealedRoute::Upload.sealed_response_size()
    );
    // The real report is kept, the decoy is not.
    assert_eq!(node.node.store().upload_count().unwrap(), 1);

    // Before opening, a body sealed to another key gets a clear, documented error.
    let stranger = sealed::SealingSecretKey::generate(&mut rand::rng()).public_key();
    let (body, _) = stranger
        .seal_request(SealedRoute::Upload, b"x", &mut rand::rng())
        .unwrap();
    let refused = node
        .post_raw("/v1/uploads", sealed::CONTENT_TYPE, &body)
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        String::from_utf8_lossy(&refused.body).contains("unknown-sealing-key"),
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    node.stop().await;
}

/// Below the disk reserve a sealed real request and a sealed decoy get the same answer: 200
/// outside, 503 `insufficient-storage` inside, byte for byte the same inner body; the phone
/// reads the inner 503 as "retry later" (`client::phone::report::definitive`).
#[tokio::test]
async fn below_the_disk_reserve_sealed_decoys_are_refused_like_real_requests() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut config = test_config(dir.path());
    config.storage.free_space_reserve_mb = 0;
    let node = TestNode::start_with(config.clone(), clock.clone()).await;
    let session = node.login().await;
    let mut codes = node.issue(&session, "confirmed", None, 2).await.codes;
    let contents = pet_contents(3, T0.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let secret = RevisionSecret::generate(&mut rand::rng());
    let certificate = node
        .certify_bound(
            &codes.remove(0).code,
            &contents,
            &hmac_key,
            ephemera_proto::revision::HmacBinding::Upload(secret.key()),
        )
        .await
        .unwrap();
    let real = VerifyRequest {
        code: codes.remove(0).code,
        report_hmac: hex::encode(hmac_key.authenticate(&contents).0),
        decoy: false,
        padding: String::new(),
    };
    node.stop().await;

    config.storage.free_space_reserve_mb = 1 << 30;
    let node = TestNode::start_with(config, clock).await;
    let key = sealing_key(&node).await;
    let (real_verify, decoy_verify) = real_and_decoy_verify(&node, key, &real).await;
    let real_upload = wire::encode(&UploadRequest::real(
        SignedUpload {
            contents,
            certificate,
            hmac_key,
        },
        secret.key(),
    ));
    let decoy_upload = wire::encode(&UploadRequest::decoy(real_upload.len()));
    let real_upload = exchange(&node, key, SealedRoute::Upload, &real_upload).await;
    let decoy_upload = exchange(&node, key, SealedRoute::Upload, &decoy_upload).await;
    for (real, decoy) in [(&real_verify, &decoy_verify), (&real_upload, &decoy_upload)] {
        assert_eq!(real.status, 200);
        assert_eq!(shape(real), shape(decoy));
        assert_eq!(real.inner_status, 503);
        assert_eq!(decoy.inner_status, 503);
        assert_eq!(real.inner_body, decoy.inner_body);
        let body: serde_json::Value = serde_json::from_slice(&real.inner_body).unwrap();
        assert_eq!(body["error"], "insufficient-storage", "{body}");
    }
    assert_eq!(node.node.store().upload_count().unwrap(), 0);
    node.stop().await;
}
