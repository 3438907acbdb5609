//! Every error path answers JSON `{"error","message"}` with its status and code.

use ephemera_node::clock::ManualClock;
use ephemera_proto::api::VerifyRequest;
use ephemera_proto::auth::{AuthoritySigningKey, CertificateRequest, ReportHmacKey};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents, ReportType};
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadRequest};
use ephemera_proto::wire;

use crate::util::*;

fn verify_body(code: &str, hmac: &str) -> Vec<u8> {
    VerifyRequest {
        code: code.to_owned(),
        report_hmac: hmac.to_owned(),
        decoy: false,
        padding: String::new(),
    }
    .to_padded_json()
}

#[tokio::test]
async fn verify_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let hmac = "ab".repeat(32);
    node.post_raw("/v1/verify", "application/json", b"{not json")
        .await
        .assert_error(400, "malformed-json");
    node.post_raw(
        "/v1/verify",
        "application/json",
        &verify_body("short", &hmac),
    )
    .await
    .assert_error(400, "malformed-code");
    node.post_raw(
        "/v1/verify",
        "application/json",
        &verify_body("0000-0000-0000-0000", &hmac),
    )
    .await
    .assert_error(400, "invalid-code");
    let session = node.login().await;
    let code = node.one_code(&session).await;
    node.post_raw("/v1/verify", "application/json", &verify_body(&code, "zz"))
        .await
        .assert_error(400, "malformed-hmac");
    assert_eq!(
        node.post_raw("/v1/verify", "application/json", &verify_body(&code, &hmac))
            .await
            .status,
        200
    );
    node.post_raw("/v1/verify", "application/json", &verify_body(&code, &hmac))
        .await
        .assert_error(400, "invalid-code");
    // Expired codes read as unknown too.
    let code = node.one_code(&session).await;
    node.clock
        .advance(node.node.config().authority.code_lifetime_seconds);
    node.post_raw("/v1/verify", "application/json", &verify_body(&code, &hmac))
        .await
        .assert_error(400, "invalid-code");
    // Oversized control bodies.
    let big = vec![b' '; 20_000];
    node.post_raw("/v1/verify", "application/json", &big)
        .await
        .assert_error(413, "payload-too-large");
    node.stop().await;
}

#[tokio::test]
async fn verify_has_no_guessing_budget_and_sign_in_is_budgeted_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.authority.login_failures_per_user = 2;
    let node = TestNode::start_with(config, ManualClock::new(T0)).await;
    let hmac = "ab".repeat(32);
    // 80-bit codes need no budget (docs/SECURITY.md): wrong codes never turn into a 429
    // that would lock out phones with good ones.
    for _ in 0..20 {
        node.post_raw(
            "/v1/verify",
            "application/json",
            &verify_body("0000-0000-0000-0000", &hmac),
        )
        .await
        .assert_error(400, "invalid-code");
    }

    let wrong = serde_json::json!({"name": "caseworker", "password": "wrong"});
    node.post_json("/v1/session", &[], &wrong)
        .await
        .assert_error(401, "invalid-credentials");
    node.post_json("/v1/session", &[], &wrong)
        .await
        .assert_error(401, "invalid-credentials");
    node.post_json("/v1/session", &[], &wrong)
        .await
        .assert_error(429, "too-many-attempts");
    let (name, password) = node.case_worker.clone().unwrap();
    let right = serde_json::json!({"name": name, "password": password});
    node.post_json("/v1/session", &[], &right)
        .await
        .assert_error(429, "too-many-attempts");
    node.clock.advance(15 * 60);
    assert_eq!(node.post_json("/v1/session", &[], &right).await.status, 200);
    node.stop().await;
}

#[tokio::test]
async fn case_worker_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let body = serde_json::json!({"test_type": "confirmed"});
    node.post_json("/v1/codes", &[], &body)
        .await
        .assert_error(401, "unauthorized");
    node.post_json("/v1/codes", &[("Authorization", "Bearer nope")], &body)
        .await
        .assert_error(401, "unauthorized");
    let session = node.login().await;
    let auth = format!("Bearer {session}");
    let auth = [("Authorization", auth.as_str())];
    node.post_json(
        "/v1/codes",
        &auth,
        &serde_json::json!({"test_type": "confirmed", "count": 0}),
    )
    .await
    .assert_error(400, "invalid-parameter");
    node.post_json(
        "/v1/codes",
        &auth,
        &serde_json::json!({"test_type": "confirmed", "count": 100_000}),
    )
    .await
    .assert_error(400, "invalid-parameter");
    node.post_json(
        "/v1/codes",
        &auth,
        &serde_json::json!({"test_type": "confirmed", "symptom_onset": "2023-02-30"}),
    )
    .await
    .assert_error(400, "invalid-parameter");
    node.post_json(
        "/v1/codes",
        &auth,
        &serde_json::json!({"test_type": "confirmed", "symptom_onset": "2099-01-01"}),
    )
    .await
    .assert_error(400, "invalid-parameter");
    node.post_json(
        "/v1/codes",
        &auth,
        &serde_json::json!({"test_type": "positive"}),
    )
    .await
    .assert_error(400, "malformed-json");
    node.post_json(
        "/v1/session",
        &[],
        &serde_json::json!({"name": "nobody", "password": "x"}),
    )
    .await
    .assert_error(401, "invalid-credentials");
    // Outside the documented lengths, or with a field the document does not have.
    for body in [
        serde_json::json!({"name": "", "password": "x"}),
        serde_json::json!({"name": "n".repeat(65), "password": "x"}),
        serde_json::json!({"name": "n", "password": "x".repeat(257)}),
    ] {
        node.post_json("/v1/session", &[], &body)
            .await
            .assert_error(400, "invalid-parameter");
    }
    node.post_json(
        "/v1/session",
        &[],
        &serde_json::json!({"name": "n", "password": "x", "remember": true}),
    )
    .await
    .assert_error(400, "malformed-json");
    // JSON bodies come as JSON (charset or not), or not at all.
    let login = br#"{"name":"n","password":"x"}"#;
    node.post_raw("/v1/session", "text/plain", login)
        .await
        .assert_error(415, "unsupported-media-type");
    node.post_raw("/v1/session", "application/json; charset=utf-8", login)
        .await
        .assert_error(401, "invalid-credentials");
    request(
        node.addr,
        "POST",
        "/v1/codes",
        &[("Authorization", auth[0].1)],
        br#"{"test_type":"confirmed"}"#,
    )
    .await
    .assert_error(415, "unsupported-media-type");
    node.post_json(
        "/v1/codes",
        &auth,
        &serde_json::json!({"test_type": "likely", "symptom_onset": "2023-11-1"}),
    )
    .await
    .assert_error(400, "invalid-parameter");
    // Sessions end.
    node.clock
        .advance(node.node.config().authority.session_lifetime_seconds);
    node.post_json("/v1/codes", &auth, &body)
        .await
        .assert_error(401, "unauthorized");
    node.stop().await;
}

/// An upload for `contents` whose certificate the node's own authority issues with the id
/// drawn from `seed`: two calls with one seed share a certificate id.
fn upload_with_certificate_seed(
    node: &TestNode,
    seed: u8,
    contents: ReportContents,
) -> SignedUpload {
    use rand_chacha::rand_core::SeedableRng as _;
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let request = CertificateRequest {
        report_hmac: hmac_key.authenticate(&contents),
        test_type: ReportType::ConfirmedTest,
        symptom_onset: None,
    };
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([seed; 32]);
    let certificate = node
        .node
        .keys()
        .authority
        .issue(&request, T0, 3600, &mut rng);
    SignedUpload {
        contents,
        certificate,
        hmac_key,
    }
}

#[tokio::test]
async fn retried_uploads_get_their_first_answer_and_other_uploads_409() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let first = upload_with_certificate_seed(&node, 5, pet_contents(3, T0.day()));
    let other = upload_with_certificate_seed(&node, 5, pet_contents(2, T0.day()));
    assert_eq!(
        first.certificate.certificate.id,
        other.certificate.certificate.id
    );
    let answer = node.upload_body(UploadBody::RealV1(first.clone())).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let token = answer.json()["revision_token"].clone();
    for _ in 0..2 {
        let again = node.upload_body(UploadBody::RealV1(first.clone())).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.json()["revision_token"], token, "the same answer");
    }
    node.upload_body(UploadBody::RealV1(other.clone()))
        .await
        .assert_error(409, "certificate-used");
    assert_eq!(node.node.store().upload_count().unwrap(), 1);
    node.stop().await;

    // Still so after a restart: the answer is derived, not kept in memory.
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let again = node.upload_body(UploadBody::RealV1(first)).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["revision_token"], token);
    node.upload_body(UploadBody::RealV1(other))
        .await
        .assert_error(409, "certificate-used");
    node.stop().await;
}

#[tokio::test]
async fn upload_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let session = node.login().await;
    let node_ref = &node;
    let raw = |bytes: Vec<u8>| async move {
        node_ref
            .post_raw("/v1/uploads", "application/octet-stream", &bytes)
            .await
    };

    raw(vec![1, 2, 0xff, 0xff, 0xff])
        .await
        .assert_error(400, "malformed-body");
    raw(vec![]).await.assert_error(400, "malformed-body");
    raw(b"garbage".to_vec())
        .await
        .assert_error(400, "unsupported-version");
    let mut wrong_version = wire::encode(&UploadRequest::decoy(4096));
    wrong_version[0] = 9;
    raw(wrong_version)
        .await
        .assert_error(400, "unsupported-version");
    raw(vec![0; 3 << 20])
        .await
        .assert_error(413, "payload-too-large");

    // A genuine upload, then its replay (an answer lost on the way): the first answer again.
    let (token, upload) = node
        .report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    let replay = node.upload_body(UploadBody::RealV1(upload.clone())).await;
    assert_eq!(
        replay.status,
        200,
        "{}",
        String::from_utf8_lossy(&replay.body)
    );
    assert_eq!(replay.json()["revision_token"], token.as_str());
    // Another upload under a used certificate id.
    let first = upload_with_certificate_seed(&node, 6, pet_contents(3, T0.day()));
    let other = upload_with_certificate_seed(&node, 6, pet_contents(2, T0.day()));
    assert_eq!(
        node.upload_body(UploadBody::RealV1(first)).await.status,
        200
    );
    node.upload_body(UploadBody::RealV1(other))
        .await
        .assert_error(409, "certificate-used");

    // Changed contents no longer match the certified HMAC.
    let mut swapped = upload.clone();
    swapped.contents = pet_contents(3, T0.day());
    node.upload_body(UploadBody::RealV1(swapped))
        .await
        .assert_error(400, "hmac-mismatch");

    // A forged signature, and an authority this node does not trust.
    let mut forged = upload.clone();
    forged.certificate.certificate.test_type = ReportType::SelfReport;
    node.upload_body(UploadBody::RealV1(forged))
        .await
        .assert_error(403, "certificate-invalid");
    let rogue = AuthoritySigningKey::generate(&mut rand::rng());
    let contents = pet_contents(1, T0.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let request = CertificateRequest {
        report_hmac: hmac_key.authenticate(&contents),
        test_type: ReportType::ConfirmedTest,
        symptom_onset: None,
    };
    let certificate = rogue.issue(&request, T0, 900, &mut rand::rng());
    node.upload_body(UploadBody::RealV1(SignedUpload {
        contents,
        certificate,
        hmac_key,
    }))
    .await
    .assert_error(403, "certificate-untrusted");

    // Expired certificate.
    let code = node.one_code(&session).await;
    let contents = pet_contents(2, T0.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    // Its expiry is a whole hour (`docs/PROTOCOL.md`): one second past it.
    let now = ephemera_node::clock::Clock::now(&node.clock);
    node.clock
        .advance(certificate.certificate.expires_at.0 - now.0 + 1);
    node.upload_body(UploadBody::RealV1(SignedUpload {
        contents,
        certificate,
        hmac_key,
    }))
    .await
    .assert_error(400, "certificate-expired");

    // Report rules, checked after the certificate.
    let now = ephemera_node::clock::Clock::now(&node.clock);
    for (contents, code_expected) in [
        (pet_contents(1, now.day().plus(1)), "token-in-future"),
        (pet_contents(1, now.day().minus(15)), "entry-too-old"),
        (ReportContents::Pet(vec![]), "report-empty"),
        (
            ReportContents::Pet(vec![
                PublishedToken {
                    day: now.day(),
                    token: EncounterToken([1; 16]),
                },
                PublishedToken {
                    day: now.day().minus(1),
                    token: EncounterToken([1; 16]),
                },
            ]),
            "duplicate-entry",
        ),
    ] {
        node.upload_certified(&session, contents)
            .await
            .assert_error(400, code_expected);
    }

    // A negative result only revises; it cannot start a report.
    let code = node
        .issue(&session, "negative", None, 1)
        .await
        .codes
        .remove(0)
        .code;
    let contents = pet_contents(1, now.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    node.upload_body(UploadBody::RealV1(SignedUpload {
        contents: contents.clone(),
        certificate: certificate.clone(),
        hmac_key: hmac_key.clone(),
    }))
    .await
    .assert_error(400, "report-type-not-allowed");
    // Revisions with an unknown token, or with entries the original did not have.
    node.upload_body(UploadBody::RevisionV1 {
        upload: SignedUpload {
            contents,
            certificate,
            hmac_key,
        },
        revision_token: vec![7; 32],
    })
    .await
    .assert_error(400, "invalid-revision-token");
    let (token, _) = node
        .report(&session, "likely", pet_contents(2, now.day()))
        .await;
    let code = node.one_code(&session).await;
    let other = pet_contents(2, now.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &other, &hmac_key).await.unwrap();
    node.upload_body(UploadBody::RevisionV1 {
        upload: SignedUpload {
            contents: other,
            certificate,
            hmac_key,
        },
        revision_token: hex::decode(token).unwrap(),
    })
    .await
    .assert_error(400, "revision-mismatch");

    let metrics = String::from_utf8(node.get("/metrics").await.body).unwrap();
    for reason in [
        "certificate-used",
        "hmac-mismatch",
        "certificate-expired",
        "payload-too-large",
        "malformed-body",
    ] {
        assert!(
            metrics.contains(&format!(
                "ephemera_uploads_rejected_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
    node.stop().await;
}

#[tokio::test]
async fn scheme_not_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.publication.accept_schemes = vec![ephemera_proto::SchemeKind::Gaen];
    let node = TestNode::start_with(config, ManualClock::new(T0)).await;
    let session = node.login().await;
    let contents = pet_contents(1, T0.day());
    node.upload_certified(&session, contents)
        .await
        .assert_error(400, "scheme-not-accepted");
    node.stop().await;
}

#[tokio::test]
async fn routing_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    node.get("/nope").await.assert_error(404, "not-found");
    node.get("/v1/batches/xyz")
        .await
        .assert_error(400, "invalid-parameter");
    node.get(&format!("/v1/batches/{}", "0".repeat(64)))
        .await
        .assert_error(404, "not-found");
    node.get("/v1/batches?after=minus-one")
        .await
        .assert_error(400, "invalid-parameter");
    // Past the documented maximum (i64::MAX), though it fits a u64.
    node.get(&format!("/v1/batches?after={}", i64::MAX as u64 + 1))
        .await
        .assert_error(400, "invalid-parameter");
    node.get("/v1/exports/not-an-export.zip")
        .await
        .assert_error(400, "invalid-parameter");
    node.get("/v1/exports/1-2-00001.zip")
        .await
        .assert_error(404, "not-found");
    request(node.addr, "DELETE", "/v1/uploads", &[], b"")
        .await
        .assert_error(405, "method-not-allowed");
    request(node.addr, "POST", "/healthz", &[], b"")
        .await
        .assert_error(405, "method-not-allowed");
    node.stop().await;
}
