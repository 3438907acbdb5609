//! Privacy in logs and at rest (`docs/SECURITY.md`, "The data folder"): no client address,
//! code, password or bearer token in the logs or on disk; no report material in the logs
//! at `trace`, none in the database or keys folder, and none anywhere once retention
//! has passed.

use std::path::Path;

use ephemera_node::clock::ManualClock;
use ephemera_proto::auth::{ReportHmacKey, UploadCode};
use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::report::{ReportContents, ReportType};
use ephemera_proto::upload::{SignedUpload, UploadBody};

use crate::util::*;

/// A secret and a name for failure messages.
type Secret = (String, Vec<u8>);

/// Every way a log line could print `bytes`: raw, hex, base64 and decimal byte lists.
fn encodings(what: &str, bytes: &[u8]) -> Vec<Secret> {
    let decimal: Vec<String> = bytes.iter().map(u8::to_string).collect();
    vec![
        (format!("{what} (raw)"), bytes.to_vec()),
        (format!("{what} (hex)"), hex::encode(bytes).into_bytes()),
        (
            format!("{what} (HEX)"),
            hex::encode_upper(bytes).into_bytes(),
        ),
        (
            format!("{what} (base64)"),
            base64(bytes, false).into_bytes(),
        ),
        (
            format!("{what} (base64url)"),
            base64(bytes, true).into_bytes(),
        ),
        (
            format!("{what} (Debug list)"),
            format!("{bytes:?}").into_bytes(),
        ),
        (
            format!("{what} (JSON list)"),
            decimal.join(",").into_bytes(),
        ),
    ]
}

/// Unpadded base64 (standard or URL alphabet); a padded encoding contains it.
fn base64(bytes: &[u8], url: bool) -> String {
    let alphabet: &[u8] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// The report material of an upload: its entries, report HMAC and HMAC key.
fn material(upload: &SignedUpload) -> Vec<Secret> {
    let mut out = vec![
        (
            "report HMAC".to_owned(),
            upload.certificate.certificate.report_hmac.0.to_vec(),
        ),
        ("report HMAC key".to_owned(), upload.hmac_key.0.to_vec()),
    ];
    out.extend(entries(upload));
    out
}

/// An upload's tokens or TEKs.
fn entries(upload: &SignedUpload) -> Vec<Secret> {
    match &upload.contents {
        ReportContents::Pet(tokens) => tokens
            .iter()
            .map(|t| ("pet token".to_owned(), t.token.0.to_vec()))
            .collect(),
        ReportContents::Gaen(keys) => keys
            .iter()
            .map(|k| ("gaen key".to_owned(), k.key.0.to_vec()))
            .collect(),
    }
}

/// Two keys old enough to be published at the next cut.
fn gaen_contents(now: ephemera_proto::UnixTime) -> ReportContents {
    let key = |days_ago: u32| {
        let mut bytes = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
        DiagnosisKey {
            key: TemporaryExposureKey(bytes),
            rolling_start: now.day().minus(days_ago).first_interval(),
            rolling_period: 144,
            report_type: ReportType::ConfirmedTest,
            days_since_onset: None,
        }
    };
    ReportContents::Gaen(vec![key(2), key(3)])
}

/// Verifies and uploads `contents` with `code`; the upload and its revision token.
async fn report(node: &TestNode, code: &str, contents: ReportContents) -> (SignedUpload, String) {
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(code, &contents, &hmac_key).await.unwrap();
    let upload = SignedUpload {
        contents,
        certificate,
        hmac_key,
    };
    let response = node.upload_body(UploadBody::RealV1(upload.clone())).await;
    assert_eq!(response.status, 200);
    let token = response.json()["revision_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (upload, token)
}

fn data_key_files(dir: &Path) -> usize {
    std::fs::read_dir(
        dir.join(ephemera_node::keys::KEYS_DIR)
            .join(ephemera_node::store::DATA_KEYS_DIR),
    )
    .unwrap()
    .count()
}

#[tokio::test]
async fn logs_and_storage_hold_no_codes_tokens_or_addresses() {
    let dir = tempfile::tempdir().unwrap();
    // The `it` binary's logs go through the node's own pipeline at `trace` (`capture_logs`).
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let (_, password) = node.case_worker.clone().unwrap();
    let session = node.login().await;
    let issued = node.issue(&session, "confirmed", None, 3).await;
    let code = issued.codes[0].code.clone();
    let (upload, revision_token) = report(&node, &code, pet_contents(3, T0.day())).await;
    // A retry answers the same token again; failures log too: make sure both stay clean.
    let replay = node.upload_body(UploadBody::RealV1(upload.clone())).await;
    assert_eq!(replay.json()["revision_token"], revision_token.as_str());
    let mut forged = upload.clone();
    forged.hmac_key.0[0] ^= 1;
    node.upload_body(UploadBody::RealV1(forged))
        .await
        .assert_error(400, "hmac-mismatch");
    let (gaen, _) = report(&node, &issued.codes[1].code, gaen_contents(T0)).await;
    node.post_json(
        "/v1/session",
        &[],
        &serde_json::json!({"name": "caseworker", "password": "guess"}),
    )
    .await
    .assert_error(401, "invalid-credentials");
    node.next_batches().await;
    node.node.purge().unwrap();
    node.stop().await;

    let mut secrets: Vec<Secret> = vec![
        ("code".into(), code.as_bytes().to_vec()),
        (
            "code without dashes".into(),
            code.replace('-', "").into_bytes(),
        ),
        (
            "second code".into(),
            issued.codes[1].code.replace('-', "").into_bytes(),
        ),
        ("password".into(), password.clone().into_bytes()),
        ("session token".into(), session.clone().into_bytes()),
        ("session token bytes".into(), hex::decode(&session).unwrap()),
        ("revision token".into(), revision_token.clone().into_bytes()),
        (
            "revision token bytes".into(),
            hex::decode(&revision_token).unwrap(),
        ),
        ("loopback address".into(), b"127.0.0.1".to_vec()),
    ];
    let report_material: Vec<Secret> = [&upload, &gaen]
        .into_iter()
        .flat_map(material)
        .flat_map(|(what, bytes)| encodings(&what, &bytes))
        .collect();
    let logs = captured_logs();
    assert!(
        logs.contains("staff sign-in failed"),
        "the capture works: {logs}"
    );
    for (what, secret) in secrets.iter().chain(&report_material) {
        assert!(!contains(logs.as_bytes(), secret), "{what} in the logs");
    }
    assert_no_request_lines(&logs);

    // The published batch holds the tokens in clear (it is public): the scan reads files.
    let blobs = read_tree(&dir.path().join(ephemera_node::node::BLOB_DIR));
    let token = &entries(&upload)[0].1;
    assert!(contains(&blobs, token), "the scan sees the batch files");
    // The database and keys folders hold none of it: records are sealed.
    let private = [
        read_tree(&dir.path().join(ephemera_node::node::DB_DIR)),
        read_tree(&dir.path().join(ephemera_node::keys::KEYS_DIR)),
    ]
    .concat();
    secrets.extend(material(&upload));
    secrets.extend(material(&gaen));
    for (what, secret) in &secrets {
        assert!(
            !contains(&private, secret),
            "{what} in the database or keys"
        );
    }
    for (what, secret) in secrets.iter().filter(|(w, _)| w.starts_with("report HMAC")) {
        assert!(!contains(&blobs, secret), "{what} in the batch files");
    }
}

/// No line of the phone paths at all, at any level: a dated line per upload or verify
/// would let a proxy's (address, time) log name who reported. (The capture holds every
/// test of this binary, so this covers every flow they drive.)
fn assert_no_request_lines(logs: &str) {
    for line in logs.lines() {
        for target in [
            "ephemera_node::node::uploads",
            "ephemera_node_core::intake",
            "ephemera_node::api::page",
        ] {
            assert!(!line.contains(target), "a per-request line: {line}");
        }
        let lower = line.to_lowercase();
        for event in [
            "certificate issued",
            "upload accepted",
            "upload rejected",
            "retried upload",
            "verif",
        ] {
            assert!(
                !lower.contains(event),
                "a line about an upload or verify: {line}"
            );
        }
    }
}

#[tokio::test]
async fn retention_shreds_every_report_and_code_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let session = node.login().await;
    let issued = node.issue(&session, "confirmed", None, 3).await;
    let (pet, _) = report(&node, &issued.codes[0].code, pet_contents(4, T0.day())).await;
    let (gaen, _) = report(&node, &issued.codes[1].code, gaen_contents(T0)).await;
    node.next_batches().await;
    let pepper = &node.node.keys().pepper;
    let code_hashes: Vec<Secret> = issued
        .codes
        .iter()
        .map(|c| {
            let hash = UploadCode::parse(&c.code).unwrap().hash(pepper);
            ("code hash".to_owned(), hash.0.to_vec())
        })
        .collect();
    let mut secrets: Vec<Secret> = [&pet, &gaen].into_iter().flat_map(material).collect();
    secrets.extend(code_hashes);

    // Before retention: the batch files hold the tokens (the scan sees them) and a data key
    // of the arrival day exists.
    let before = read_tree(dir.path());
    assert!(contains(&before, &entries(&pet)[0].1));
    assert!(contains(&before, &entries(&gaen)[0].1));
    assert_eq!(data_key_files(dir.path()), 1);

    // Retention passes (plus the day the keys of the arrival day wait for).
    let retention = node.node.core().policy().retention_seconds();
    node.clock.advance(retention + 2 * 86_400);
    let purged = node.node.purge().unwrap();
    assert_eq!(purged.uploads, 2);
    assert_eq!(purged.data_keys, 1);
    node.stop().await;

    assert_eq!(
        data_key_files(dir.path()),
        0,
        "the arrival day's key is gone"
    );
    let after = read_tree(dir.path());
    for (what, secret) in &secrets {
        assert!(!contains(&after, secret), "{what} still on disk");
    }
}
