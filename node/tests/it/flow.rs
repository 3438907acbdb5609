//! The happy paths: code → verify → upload → batch → fetch → verify, for both schemes.

use ephemera_node::clock::ManualClock;
use ephemera_proto::api::{UPLOAD_RESPONSE_SIZE, VERIFY_RESPONSE_SIZE, VerifyRequest};
use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::report::{ReportContents, ReportType};
use ephemera_proto::upload::{SignedUpload, UploadBody};

use crate::util::*;

#[tokio::test]
async fn pet_upload_reaches_a_signed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let session = node.login().await;
    let contents = pet_contents(5, T0.day().minus(1));
    let (token, _) = node.report(&session, "confirmed", contents.clone()).await;
    assert_eq!(token.len(), 64);

    let cut = node.next_batches().await;
    assert_eq!(cut.len(), 1);
    let index = node.index(0).await;
    assert_eq!(index.batches, cut);
    assert_eq!(index.next_cursor, cut[0].sequence);
    assert!(node.index(index.next_cursor).await.batches.is_empty());

    let published = node.all_published().await;
    let ReportContents::Pet(tokens) = contents else {
        unreachable!()
    };
    for t in &tokens {
        assert!(published.tokens.contains(t), "uploaded token published");
    }
    assert_eq!(
        published.tokens.len(),
        16,
        "padded with decoys to the minimum"
    );

    // Immutable, content-addressed, cacheable.
    let id = cut[0].id;
    let first = node.get(&format!("/v1/batches/{id}")).await;
    assert_eq!(first.header("etag"), Some(format!("\"{id}\"").as_str()));
    assert_eq!(
        first.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        first.header("content-type"),
        Some("application/octet-stream")
    );
    let etag = format!("\"{id}\"");
    let again = request(
        node.addr,
        "GET",
        &format!("/v1/batches/{id}"),
        &[("If-None-Match", &etag)],
        b"",
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    // A boundary with no upload still gets a batch (all decoys).
    let quiet = node.next_batches().await;
    assert_eq!(quiet.len(), 1);
    // Numbered by its boundary: the next hour's first batch (`docs/PROTOCOL.md` §6).
    assert_eq!(quiet[0].sequence, cut[0].sequence + 3600 * 1000);
    assert_eq!(quiet[0].tokens, 16);
    node.stop().await;
}

#[tokio::test]
async fn gaen_keys_are_embargoed_until_two_hours_after_their_window() {
    let dir = tempfile::tempdir().unwrap();
    // Noon UTC.
    let noon = ephemera_proto::UnixTime(T0.day().start().0 + 12 * 3600);
    let node = TestNode::start(dir.path(), ManualClock::new(noon)).await;
    let session = node.login().await;
    let key = |byte: u8, day: ephemera_proto::DayNumber| DiagnosisKey {
        key: TemporaryExposureKey([byte; 16]),
        rolling_start: day.first_interval(),
        rolling_period: 144,
        report_type: ReportType::SelfReport,
        days_since_onset: None,
    };
    let yesterday = key(1, noon.day().minus(1));
    let today = key(2, noon.day());
    let onset = ephemera_node::clock::civil::format_date(noon.day().minus(3));
    let code = node
        .issue(&session, "confirmed", Some(&onset), 1)
        .await
        .codes
        .remove(0)
        .code;
    let contents = ReportContents::Gaen(vec![yesterday.clone(), today.clone()]);
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    let response = node
        .upload_body(UploadBody::RealV1(SignedUpload {
            contents,
            certificate,
            hmac_key,
        }))
        .await;
    assert_eq!(response.status, 200);

    node.next_batches().await;
    let published = node.all_published().await;
    let found: Vec<_> = published
        .diagnosis_keys
        .iter()
        .filter(|k| k.key == yesterday.key)
        .collect();
    assert_eq!(found.len(), 1, "yesterday's key is out");
    assert_eq!(
        found[0].report_type,
        ReportType::ConfirmedTest,
        "type from the certificate"
    );
    assert_eq!(found[0].days_since_onset, Some(2), "onset from the code");
    assert!(
        !published.diagnosis_keys.iter().any(|k| k.key == today.key),
        "today's key is held back"
    );

    // The same keys as a GAEN export zip, verified with the published PEM key.
    let index = String::from_utf8(node.get("/v1/exports/index.txt").await.body).unwrap();
    let path = index.lines().last().expect("an export file").to_owned();
    assert!(
        path.starts_with("v1/exports/") && path.ends_with("-00001.zip"),
        "{path}"
    );
    let zip = node.get(&format!("/{path}")).await;
    assert_eq!(zip.status, 200);
    assert_eq!(zip.header("content-type"), Some("application/zip"));
    assert_eq!(
        zip.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let pem = String::from_utf8(node.get("/v1/authority/export-key.pem").await.body).unwrap();
    let point = ephemera_proto::gaen::p256_public_key_from_pem(&pem).unwrap();
    let file = ephemera_proto::gaen::decode_export_zip(&zip.body, &point).unwrap();
    assert!(
        file.keys
            .iter()
            .any(|k| k.key == yesterday.key && k.report_type == ReportType::ConfirmedTest)
    );
    assert_eq!(file.keys.len(), 16, "padded like the batch");
    assert_eq!(file.region, "ZZ");
    let mut listed = Vec::new();
    ephemera_node::cli::write_verified_keys(&pem, &zip.body, &mut listed).unwrap();
    let expected = format!(
        "{} {} 144",
        hex::encode([1u8; 16]),
        yesterday.rolling_start.0
    );
    assert!(
        String::from_utf8(listed)
            .unwrap()
            .lines()
            .any(|l| l == expected)
    );

    // Tomorrow 02:00 plus a boundary: today's key is released.
    node.clock.set(ephemera_proto::UnixTime(
        noon.day().plus(1).start().0 + 2 * 3600,
    ));
    node.next_batches().await;
    let published = node.all_published().await;
    assert!(published.diagnosis_keys.iter().any(|k| k.key == today.key));
    node.stop().await;
}

#[tokio::test]
async fn decoys_get_same_size_answers_and_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let decoy = node
        .post_raw(
            "/v1/verify",
            "application/json",
            &VerifyRequest::decoy(&mut rand::rng()).to_padded_json(),
        )
        .await;
    assert_eq!(decoy.status, 200);
    assert_eq!(decoy.body.len(), VERIFY_RESPONSE_SIZE);

    let session = node.login().await;
    let code = node.one_code(&session).await;
    let contents = pet_contents(3, T0.day());
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    let real = VerifyRequest {
        code,
        report_hmac: hex::encode(hmac_key.authenticate(&contents).0),
        decoy: false,
        padding: String::new(),
    };
    let real = node
        .post_raw("/v1/verify", "application/json", &real.to_padded_json())
        .await;
    assert_eq!(real.status, 200);
    assert_eq!(real.body.len(), decoy.body.len());
    assert_eq!(real.headers.len(), decoy.headers.len());

    let upload = node.upload_body(UploadBody::Decoy).await;
    assert_eq!(upload.status, 200);
    assert_eq!(upload.body.len(), UPLOAD_RESPONSE_SIZE);
    assert_eq!(
        node.node.store().upload_count().unwrap(),
        0,
        "decoys are not stored"
    );
    let metrics = String::from_utf8(node.get("/metrics").await.body).unwrap();
    assert!(
        metrics.contains("ephemera_decoys_total{endpoint=\"upload\"} 1"),
        "{metrics}"
    );
    node.stop().await;
}

#[tokio::test]
async fn likely_reports_are_revised_to_confirmed_or_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let noon = ephemera_proto::UnixTime(T0.day().start().0 + 12 * 3600);
    let node = TestNode::start(dir.path(), ManualClock::new(noon)).await;
    let session = node.login().await;
    let key = |byte: u8, days_ago: u32| DiagnosisKey {
        key: TemporaryExposureKey([byte; 16]),
        rolling_start: noon.day().minus(days_ago).first_interval(),
        rolling_period: 144,
        report_type: ReportType::SelfReport,
        days_since_onset: None,
    };
    let contents = ReportContents::Gaen(vec![key(1, 1), key(2, 2)]);
    let (token, _) = node.report(&session, "likely", contents.clone()).await;

    // Revise before publication: the keys go out once, as confirmed.
    let code = node.one_code(&session).await;
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    let revision = UploadBody::RevisionV1 {
        upload: SignedUpload {
            contents: contents.clone(),
            certificate,
            hmac_key,
        },
        revision_token: hex::decode(&token).unwrap(),
    };
    let response = node.upload_body(revision).await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let new_token = response.json()["revision_token"]
        .as_str()
        .unwrap()
        .to_owned();
    node.next_batches().await;
    let published = node.all_published().await;
    let ours: Vec<_> = published
        .diagnosis_keys
        .iter()
        .filter(|k| k.key.0 == [1; 16] || k.key.0 == [2; 16])
        .collect();
    assert_eq!(ours.len(), 2);
    assert!(
        ours.iter()
            .all(|k| k.report_type == ReportType::ConfirmedTest)
    );

    // Confirmed cannot be revised again (GAEN allows only likely → confirmed | revoked).
    let code = node
        .issue(&session, "negative", None, 1)
        .await
        .codes
        .remove(0)
        .code;
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    let revision = UploadBody::RevisionV1 {
        upload: SignedUpload {
            contents: contents.clone(),
            certificate,
            hmac_key,
        },
        revision_token: hex::decode(&new_token).unwrap(),
    };
    node.upload_body(revision)
        .await
        .assert_error(400, "revision-not-allowed");

    // A likely report revoked after publication is published again as revoked.
    let other = ReportContents::Gaen(vec![key(3, 1)]);
    let (token, _) = node.report(&session, "likely", other.clone()).await;
    node.next_batches().await;
    let code = node
        .issue(&session, "negative", None, 1)
        .await
        .codes
        .remove(0)
        .code;
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &other, &hmac_key).await.unwrap();
    let revision = UploadBody::RevisionV1 {
        upload: SignedUpload {
            contents: other,
            certificate,
            hmac_key,
        },
        revision_token: hex::decode(&token).unwrap(),
    };
    assert_eq!(node.upload_body(revision).await.status, 200);
    node.next_batches().await;
    let types: Vec<ReportType> = node
        .all_published()
        .await
        .diagnosis_keys
        .iter()
        .filter(|k| k.key.0 == [3; 16])
        .map(|k| k.report_type)
        .collect();
    assert_eq!(types.len(), 2);
    assert!(types.contains(&ReportType::ConfirmedClinicalDiagnosis));
    assert!(types.contains(&ReportType::Revoked));
    node.stop().await;
}

#[tokio::test]
async fn operations_endpoints_and_the_console_page() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let health = node.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");

    let doc = node.get("/v1/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert!(doc.json()["paths"]["/v1/uploads"]["post"].is_object());

    let authority = node.get("/v1/authority").await.json();
    assert_eq!(
        authority["authority_public_key"],
        node.node.keys().authority.public_key().to_hex()
    );
    assert_eq!(
        authority["batch_public_key"],
        node.node.keys().batch.public_key().to_hex()
    );
    assert!(
        authority["export_public_key_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let pem = node.get("/v1/authority/export-key.pem").await;
    assert_eq!(
        String::from_utf8(pem.body).unwrap(),
        authority["export_public_key_pem"].as_str().unwrap()
    );

    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(2, T0.day()))
        .await;
    node.next_batches().await;
    let metrics = String::from_utf8(node.get("/metrics").await.body).unwrap();
    for needle in [
        "ephemera_uploads_accepted_total{kind=\"real\"} 1",
        "ephemera_batches_published_total 1",
        "ephemera_codes_issued_total 1",
        "ephemera_storage_bytes",
    ] {
        assert!(metrics.contains(needle), "{needle} in {metrics}");
    }

    // Bulk issue as CSV.
    let auth = format!("Bearer {session}");
    let csv = request(
        node.addr,
        "POST",
        "/v1/codes",
        &[
            ("Authorization", &auth),
            ("Accept", "text/csv"),
            ("Content-Type", "application/json"),
        ],
        br#"{"test_type":"likely","symptom_onset":"2023-11-12","count":5}"#,
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let text = String::from_utf8(csv.body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "code,expires_at,expires_at_utc,test_type,symptom_onset,reference"
    );
    assert_eq!(lines.len(), 6);
    assert!(lines[1].contains(",likely,2023-11-12,"), "{}", lines[1]);
    // The reference, last: 12 Crockford characters, one per code.
    let reference = lines[1].rsplit(',').next().unwrap();
    assert_eq!(reference.len(), 12, "{}", lines[1]);
    assert!(ephemera_node::store::CodeReference::parse(reference).is_some());

    // The old address sends browsers on to the console.
    let moved = node.get("/case-worker").await;
    assert_eq!(moved.status, 308);
    assert_eq!(moved.header("location"), Some("/console"));
    let root = node.get("/").await;
    assert_eq!(root.status, 303);
    assert_eq!(root.header("location"), Some("/console"));
    let page = node.get("/console").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = String::from_utf8(page.body).unwrap();
    for id in [
        "sign-in-form",
        "issue-form",
        "issued-code",
        "issued-expiry",
        "issued-reference",
        "bulk-count",
        "bulk-download",
        "status-reference",
        "accounts-table",
        "keys-table",
        "audit-table",
        "password-form",
        "totp-begin",
        "sign-out-everywhere",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no outside assets"
    );
    assert_eq!(node.get("/console.js").await.status, 200);
    assert_eq!(node.get("/console.css").await.status, 200);

    assert_eq!(node.logout(&session).await.status, 204);
    node.post_json(
        "/v1/codes",
        &[("Authorization", &auth)],
        &serde_json::json!({"test_type": "confirmed"}),
    )
    .await
    .assert_error(401, "unauthorized");
    node.stop().await;
}
