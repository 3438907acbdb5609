//! The free-space reserve (`[storage] free_space_reserve_mb`): below it uploads and verifies
//! get 503 `insufficient-storage` with `Retry-After`, `/healthz` stays 200 and says
//! `"ready": false`, batches are still cut, and nothing acknowledged is lost. A reserve
//! larger than any disk stands in for a full one (`.ci/extra/disk-full.sh` checks a real,
//! nearly full filesystem).

use ephemera_node::api::error::DISK_RESERVE_RETRY_AFTER_SECONDS;
use ephemera_node::clock::ManualClock;
use ephemera_proto::api::VerifyRequest;
use ephemera_proto::auth::ReportHmacKey;
use ephemera_proto::report::ReportContents;
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadRequest};
use ephemera_proto::wire;

use crate::util::*;

/// Megabytes no filesystem has free.
const LARGER_THAN_ANY_DISK: u64 = 1 << 30;

/// A refusal of the reserve: 503, `Retry-After`, the JSON error.
fn assert_insufficient_storage(response: &Response) {
    response.assert_error(503, "insufficient-storage");
    assert_eq!(
        response.header("retry-after"),
        Some(DISK_RESERVE_RETRY_AFTER_SECONDS.to_string().as_str())
    );
}

#[tokio::test]
async fn below_the_disk_reserve_uploads_and_verifies_wait_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut config = test_config(dir.path());
    config.storage.free_space_reserve_mb = 0;
    // The certificate held across the reserve outlives the cut below (an hour of clock).
    config.authority.certificate_lifetime_seconds = 2 * 3600;

    // Room: one report acknowledged, one certificate held for later, one code kept.
    let node = TestNode::start_with(config.clone(), clock.clone()).await;
    let health = node.get("/healthz").await.json();
    assert_eq!(health["ready"], true, "{health}");
    assert!(health.get("reason").is_none(), "{health}");
    let session = node.login().await;
    let (_, acknowledged) = node
        .report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    let contents = pet_contents(4, T0.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let code = node
        .issue(&session, "confirmed", None, 2)
        .await
        .codes
        .remove(0)
        .code;
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    let held = SignedUpload {
        contents,
        certificate,
        hmac_key,
    };
    let spare = node.one_code(&session).await;
    node.stop().await;

    // Below the reserve.
    let mut short = config.clone();
    short.storage.free_space_reserve_mb = LARGER_THAN_ANY_DISK;
    let node = TestNode::start_with(short, clock.clone()).await;
    let health = node.get("/healthz").await;
    assert_eq!(health.status, 200, "liveness stays 200");
    let health = health.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ready"], false, "{health}");
    assert_eq!(health["reason"], "disk-reserve", "{health}");

    let spare_contents = pet_contents(2, T0.day());
    let spare_key = ReportHmacKey::generate(&mut rand::rng());
    let refused = node
        .certify(&spare, &spare_contents, &spare_key)
        .await
        .unwrap_err();
    assert_insufficient_storage(&refused);
    assert_insufficient_storage(&node.upload_body(UploadBody::RealV1(held.clone())).await);
    // Decoys get exactly the same answers.
    let decoy_verify = node
        .post_raw(
            "/v1/verify",
            "application/json",
            &VerifyRequest::decoy(&mut rand::rng()).to_padded_json(),
        )
        .await;
    assert_insufficient_storage(&decoy_verify);
    assert_eq!(decoy_verify.body, refused.body);
    let decoy_upload = node
        .post_raw(
            "/v1/uploads",
            "application/octet-stream",
            &wire::encode(&UploadRequest::decoy(512)),
        )
        .await;
    assert_insufficient_storage(&decoy_upload);
    assert_eq!(decoy_upload.body, decoy_verify.body);

    // What was acknowledged is still there and is published: cuts go on below the reserve.
    assert_eq!(node.node.store().upload_count().unwrap(), 1);
    assert!(!node.next_batches().await.is_empty());
    let published = node.all_published().await;
    let ReportContents::Pet(tokens) = &acknowledged.contents else {
        unreachable!("pet contents")
    };
    assert!(tokens.iter().all(|t| published.tokens.contains(t)));
    let metrics = scrape(&node).await;
    assert_eq!(
        sample(&metrics, "ephemera_disk_reserve_active"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "ephemera_uploads_rejected_total{reason=\"insufficient-storage\"}"
        ),
        Some(2.0),
        "{metrics}"
    );
    assert!(captured_logs().contains("free disk space is below [storage] free_space_reserve_mb"));
    node.stop().await;

    // Space again: the refused code was not spent, the held certificate still uploads.
    let node = TestNode::start_with(config, clock).await;
    assert_eq!(node.get("/healthz").await.json()["ready"], true);
    let certificate = node
        .certify(&spare, &spare_contents, &spare_key)
        .await
        .unwrap();
    for upload in [
        held,
        SignedUpload {
            contents: spare_contents,
            certificate,
            hmac_key: spare_key,
        },
    ] {
        let response = node.upload_body(UploadBody::RealV1(upload)).await;
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
    }
    assert_eq!(node.node.store().upload_count().unwrap(), 3);
    node.stop().await;
}
