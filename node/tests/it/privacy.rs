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
    // Every request claims a forwarded address and a user agent; the node reads the former.
    let mut config = test_config(dir.path());
    config.http.source_header = Some("X-Forwarded-For".into());
    let node = TestNode::start_with(config, ManualClock::new(T0)).await;
    let (_, password) = node.case_worker.clone().unwrap();
    let session = node.login().await;
    let issued = node.issue(&session, "confirmed", None, 3).await;
    let revoked_hash = UploadCode::parse(&issued.codes[2].code)
        .unwrap()
        .hash(&node.node.keys().pepper);
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
    // The third is looked up and revoked by its reference: its status record and the audit
    // trail name the reference, never the code, nor its hash.
    let revoke = format!("/v1/codes/{}/revoke", issued.codes[2].reference);
    assert_eq!(node.call("POST", &revoke, &session, None).await.status, 200);
    let look_up = format!("/v1/codes/{}", issued.codes[2].reference);
    assert_eq!(node.call("GET", &look_up, &session, None).await.status, 200);
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
    // The statistics counters hold days, metrics, test types and numbers only.
    assert!(crate::stats::assert_stats_hold_only_counts(dir.path()).await > 0);

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
        (
            "revoked code".into(),
            issued.codes[2].code.replace('-', "").into_bytes(),
        ),
        ("revoked code's hash".into(), revoked_hash.0.to_vec()),
        ("password".into(), password.clone().into_bytes()),
        ("session token".into(), session.clone().into_bytes()),
        ("session token bytes".into(), hex::decode(&session).unwrap()),
        ("revision token".into(), revision_token.clone().into_bytes()),
        (
            "revision token bytes".into(),
            hex::decode(&revision_token).unwrap(),
        ),
        ("loopback address".into(), b"127.0.0.1".to_vec()),
        (
            "forwarded address".into(),
            FORWARDED_FOR.as_bytes().to_vec(),
        ),
        ("user agent".into(), USER_AGENT.as_bytes().to_vec()),
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

/// Base32 (RFC 4648, no padding) to bytes, for the scan.
fn base32_bytes(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut held, mut out) = (0u64, 0, Vec::new());
    for c in text.bytes() {
        bits = (bits << 5) | alphabet.iter().position(|&a| a == c).unwrap() as u64;
        held += 5;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
        }
    }
    out
}

/// Staff secrets (issue 17): after accounts are created, signed in, reset, given TOTP and
/// recovery codes, a console cookie session is used, a lab's API key issues, looks up and
/// revokes codes, staff issue and look up codes, and the statistics, their chart and the
/// audit trail are read, no password, one-time password, TOTP secret, recovery code,
/// bearer, cookie or CSRF token, API key, code, client address or user agent is in the data
/// folder or the logs in clear.
#[tokio::test]
async fn staff_passwords_totp_secrets_recovery_codes_and_tokens_stay_out_of_disk_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut config = test_config(dir.path());
    config.http.source_header = Some("X-Forwarded-For".into());
    let node = TestNode::start_with(config, clock.clone()).await;
    let (_, admin_password) = node.case_worker.clone().unwrap();
    let admin = node.login().await;
    let auth = format!("Bearer {admin}");
    let post = |path: &'static str, token: String, body: serde_json::Value| {
        let node = &node;
        async move {
            let auth = format!("Bearer {token}");
            node.post_json(path, &[("Authorization", &auth)], &body)
                .await
        }
    };
    let created = node
        .post_json(
            "/v1/accounts",
            &[("Authorization", &auth)],
            &serde_json::json!({"name": "bob", "roles": ["case-worker"]}),
        )
        .await
        .json();
    let one_time = created["password"].as_str().unwrap().to_owned();
    let password = "a long passphrase of his own";
    let bob = node.first_sign_in("bob", &one_time, password).await;
    let enrolment = post("/v1/session/totp", bob.clone(), serde_json::json!({}))
        .await
        .json();
    let secret_text = enrolment["secret"].as_str().unwrap().to_owned();
    let secret = ephemera_node::accounts::TotpSecret::from_base32(&secret_text).unwrap();
    let codes = post(
        "/v1/session/totp/confirm",
        bob.clone(),
        serde_json::json!({"code": secret.code_at(T0)}),
    )
    .await
    .json();
    let recovery: Vec<String> = codes["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    clock.advance(30);
    let second = node
        .post_json(
            "/v1/session",
            &[],
            &serde_json::json!({"name": "bob", "password": password, "totp": secret.code_at(ephemera_node::clock::Clock::now(&clock))}),
        )
        .await
        .json();
    let reset = post(
        "/v1/accounts/bob/reset-password",
        admin.clone(),
        serde_json::json!({}),
    )
    .await
    .json();
    let reset_password = reset["password"].as_str().unwrap().to_owned();
    // The console's cookie session: its token and CSRF token stay out of disk and logs too.
    let admin_name = node.case_worker.clone().unwrap().0;
    let console = node
        .post_json(
            "/v1/session/cookie",
            &[],
            &serde_json::json!({"name": admin_name, "password": admin_password}),
        )
        .await;
    assert_eq!(console.status, 200);
    let cookie = console.header("set-cookie").unwrap().to_owned();
    let cookie_token = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .unwrap()
        .1
        .to_owned();
    let csrf = console.json()["csrf_token"].as_str().unwrap().to_owned();
    let cookie_header = format!("__Host-ephemera-session={cookie_token}");
    for (presented, status) in [(csrf.as_str(), 200), ("00", 403)] {
        let answer = request(
            node.addr,
            "GET",
            "/v1/session",
            &[("Cookie", &cookie_header), ("X-CSRF-Token", presented)],
            b"",
        )
        .await;
        assert_eq!(answer.status, status);
    }
    // A lab's key issues two codes, looks one up and revokes it; staff issue one and look it
    // up; an auditor's reads: statistics as JSON and CSV, the chart, the trail.
    let key = node
        .call(
            "POST",
            "/v1/api-keys",
            &admin,
            Some(serde_json::json!({"name": "lab-east"})),
        )
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_key = node.issue_as("confirmed", &key, 2, false).await.json();
    let key_reference = by_key["codes"][0]["reference"].as_str().unwrap().to_owned();
    for (method, path) in [
        ("GET", format!("/v1/codes/{key_reference}")),
        ("POST", format!("/v1/codes/{key_reference}/revoke")),
    ] {
        assert_eq!(node.call(method, &path, &key, None).await.status, 200);
    }
    let by_staff = node.issue(&admin, "likely", None, 1).await;
    let look_up = format!("/v1/codes/{}", by_staff.codes[0].reference);
    assert_eq!(node.call("GET", &look_up, &admin, None).await.status, 200);
    for path in ["/v1/stats", "/v1/stats/chart.svg", "/v1/audit"] {
        assert_eq!(
            node.call("GET", path, &admin, None).await.status,
            200,
            "{path}"
        );
    }
    let csv = request(
        node.addr,
        "GET",
        "/v1/stats",
        &[("Authorization", &auth), ("Accept", "text/csv")],
        b"",
    )
    .await;
    assert_eq!(csv.status, 200);
    node.stop().await;

    let mut secrets: Vec<Secret> = vec![
        ("admin password".into(), admin_password.into_bytes()),
        ("one-time password".into(), one_time.into_bytes()),
        ("reset password".into(), reset_password.into_bytes()),
        ("chosen password".into(), password.as_bytes().to_vec()),
        ("TOTP secret".into(), secret_text.clone().into_bytes()),
        ("TOTP secret bytes".into(), base32_bytes(&secret_text)),
        ("loopback address".into(), b"127.0.0.1".to_vec()),
        (
            "forwarded address".into(),
            FORWARDED_FOR.as_bytes().to_vec(),
        ),
        ("user agent".into(), USER_AGENT.as_bytes().to_vec()),
    ];
    secrets.extend(encodings("CSRF token", csrf.as_bytes()));
    secrets.push(("API key".into(), key.clone().into_bytes()));
    let key_secret = hex::decode(key.rsplit('_').next().unwrap()).unwrap();
    secrets.extend(encodings("API key secret", &key_secret));
    let codes = by_key["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .chain(by_staff.codes.iter().map(|c| c.code.clone()));
    for code in codes {
        secrets.push(("code".into(), code.clone().into_bytes()));
        secrets.push((
            "code without dashes".into(),
            code.replace('-', "").into_bytes(),
        ));
    }
    for token in [
        &admin,
        &bob,
        &second["token"].as_str().unwrap().to_owned(),
        &cookie_token,
    ] {
        secrets.extend(encodings("bearer token", token.as_bytes()));
        secrets.push(("bearer token bytes".into(), hex::decode(token).unwrap()));
    }
    for code in &recovery {
        secrets.push(("recovery code".into(), code.clone().into_bytes()));
        secrets.push(("recovery code".into(), code.replace('-', "").into_bytes()));
    }
    let stored = [
        read_tree(&dir.path().join(ephemera_node::node::DB_DIR)),
        read_tree(&dir.path().join(ephemera_node::keys::KEYS_DIR)),
        read_tree(&dir.path().join(ephemera_node::node::BLOB_DIR)),
    ]
    .concat();
    assert!(contains(&stored, b"bob"), "the scan sees the accounts");
    let logs = captured_logs();
    for (what, secret) in &secrets {
        assert!(!contains(&stored, secret), "{what} in the data folder");
        assert!(!contains(logs.as_bytes(), secret), "{what} in the logs");
    }
}

/// An API key is shown once: neither its secret (in any encoding) nor the whole key is in
/// the database, the keys folder, the batch files or the logs; the store keeps its SHA-256.
#[tokio::test]
async fn api_key_secrets_stay_out_of_disk_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let created = node
        .call(
            "POST",
            "/v1/api-keys",
            &admin,
            Some(serde_json::json!({"name": "lab-south"})),
        )
        .await
        .json();
    let key = created["key"].as_str().unwrap().to_owned();
    let issued = node.issue_as("likely", &key, 2, false).await;
    assert_eq!(issued.status, 200);
    let codes: Vec<String> = issued.json()["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().replace('-', ""))
        .collect();
    let mut wrong = key.clone();
    wrong.replace_range(wrong.len() - 4.., "0000");
    node.issue_as("likely", &wrong, 1, false)
        .await
        .assert_error(401, "unauthorized");
    node.stop().await;

    let secret_hex = key.rsplit('_').next().unwrap().to_owned();
    let mut secrets: Vec<Secret> = vec![("API key".into(), key.clone().into_bytes())];
    secrets.extend(encodings(
        "API key secret",
        &hex::decode(&secret_hex).unwrap(),
    ));
    secrets.push(("wrong key".into(), wrong.into_bytes()));
    for code in codes {
        secrets.push(("code issued with a key".into(), code.into_bytes()));
    }
    let logs = captured_logs();
    let disk = [
        read_tree(&dir.path().join(ephemera_node::node::DB_DIR)),
        read_tree(&dir.path().join(ephemera_node::keys::KEYS_DIR)),
        read_tree(&dir.path().join(ephemera_node::node::BLOB_DIR)),
    ]
    .concat();
    for (what, secret) in &secrets {
        assert!(!contains(logs.as_bytes(), secret), "{what} in the logs");
        assert!(!contains(&disk, secret), "{what} on disk");
    }
}
