//! The hostile-client suite (issue 24): each test attacks a node on loopback the way an
//! anonymous client could, bounded in time and count, and asserts what an honest client
//! still gets meanwhile: `/healthz` within 1 s, a phone that verifies and uploads, a case
//! worker who signs in. Each test is a row of the bad-input table in `docs/SECURITY.md`.
//!
//! Attackers send `X-Forwarded-For` (the suite's node trusts it as `[http] source_header`,
//! as behind a proxy), so the node tells their sources apart from the honest clients'.

#[path = "it/util.rs"]
mod util;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ephemera_node::clock::ManualClock;
use ephemera_node::config::NodeConfig;
use ephemera_proto::api::{UploadResponse, VerifyRequest};
use ephemera_proto::auth::ReportHmacKey;
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadRequest};
use ephemera_proto::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::{Response, T0, TestNode, pet_contents, request, test_config};

/// The suite's node: small caps so that floods stay small, short timeouts.
fn hostile_config(dir: &std::path::Path) -> NodeConfig {
    let mut config = test_config(dir);
    config.http.header_read_timeout_ms = 1_000;
    config.http.body_read_timeout_ms = 1_000;
    config.http.request_deadline_ms = 5_000;
    config.http.max_connections = 64;
    config.http.phone_in_flight = 16;
    config.http.console_in_flight = 8;
    config.http.per_source_in_flight = 4;
    config.http.in_flight_body_bytes = 8 << 20;
    config.http.source_header = Some("X-Forwarded-For".to_owned());
    config
}

async fn start(config: NodeConfig) -> TestNode {
    TestNode::start_with(config, ManualClock::new(T0)).await
}

/// `/healthz` answers 200 within 1 s.
async fn healthz_within_1s(node: &TestNode) {
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(1), node.get("/healthz"))
        .await
        .expect("/healthz answered within 1 s");
    assert_eq!(response.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Retries `attempt` while it answers 503 (as an honest client does, after `Retry-After`),
/// for at most 10 s; returns the first other answer.
async fn honestly<F, Fut>(mut attempt: F) -> Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let started = Instant::now();
    loop {
        let response = attempt().await;
        if response.status != 503 || started.elapsed() > Duration::from_secs(10) {
            return response;
        }
        let wait: u64 = response
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("a 503 carries Retry-After");
        assert!(wait <= 5);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An honest phone: verifies `code` and uploads a report, retrying 503s. Panics unless both
/// succeed.
async fn honest_phone_verifies_and_uploads(node: &TestNode, code: &str) {
    let contents = pet_contents(3, T0.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let request = VerifyRequest {
        code: code.to_owned(),
        report_hmac: hex::encode(hmac_key.authenticate(&contents).0),
        decoy: false,
        padding: String::new(),
    };
    let body = request.to_padded_json();
    let response = honestly(|| node.post_raw("/v1/verify", "application/json", &body)).await;
    assert_eq!(
        response.status,
        200,
        "the honest phone verifies: {}",
        String::from_utf8_lossy(&response.body)
    );
    let parsed: ephemera_proto::api::VerifyResponse =
        serde_json::from_slice(&response.body).unwrap();
    let certificate = parsed.certificate().unwrap();
    let upload = UploadRequest::real_v1(SignedUpload {
        contents,
        certificate,
        hmac_key,
    });
    let bytes = wire::encode(&upload);
    let response =
        honestly(|| node.post_raw("/v1/uploads", "application/octet-stream", &bytes)).await;
    assert_eq!(
        response.status,
        200,
        "the honest phone uploads: {}",
        String::from_utf8_lossy(&response.body)
    );
    let _: UploadResponse = serde_json::from_slice(&response.body).unwrap();
}

/// An honest case worker signs in (retrying 503s).
async fn case_worker_signs_in(node: &TestNode) {
    let (name, password) = node.case_worker.clone().unwrap();
    let body = serde_json::json!({"name": name, "password": password});
    let response = honestly(|| node.post_json("/v1/session", &[], &body)).await;
    assert_eq!(
        response.status,
        200,
        "the case worker signs in: {}",
        String::from_utf8_lossy(&response.body)
    );
}

/// A fresh `confirmed` code, issued before an attack starts.
async fn fresh_code(node: &TestNode) -> String {
    let session = node.login().await;
    node.issue(&session, "confirmed", None, 1)
        .await
        .codes
        .remove(0)
        .code
}

/// Opens a connection and sends `bytes` (an attacker's partial request).
async fn stall(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads whatever the node answers on `stream` within `wait` (until EOF).
async fn answer(stream: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends raw request bytes on a fresh connection and parses the answer.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out))
        .await
        .expect("answered within 2 s")
        .unwrap();
    parse(&out)
}

fn parse(out: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let response = util::parse_response(out);
    (response.status, response.headers, response.body)
}

fn assert_json_error(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    want: u16,
    code: &str,
) {
    assert_eq!(status, want, "{}", String::from_utf8_lossy(body));
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json"),
        "{headers:?}"
    );
    let body: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// A verify body with a well-formed but wrong code.
fn wrong_code_body() -> Vec<u8> {
    VerifyRequest {
        code: "0000-0000-0000-0000".to_owned(),
        report_hmac: "ab".repeat(32),
        decoy: false,
        padding: String::new(),
    }
    .to_padded_json()
}

/// A head for `path` from attacker `source`, announcing `length` body bytes.
fn head(method: &str, path: &str, source: u8, length: u64) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: node\r\nX-Forwarded-For: 10.6.6.{source}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// Stalled heads, stalled bodies and slow bodies: they saturate the phone endpoints, which
/// then shed with 503 + Retry-After, while `/healthz` and batch serving answer; the body
/// timeout frees them, and the honest phone, retrying, verifies and uploads.
#[tokio::test]
async fn stalled_heads_and_bodies_shed_phones_but_not_health_or_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(hostile_config(dir.path())).await;
    let code = fresh_code(&node).await;
    let mut stalled = Vec::new();
    // 20 heads that never end.
    for _ in 0..20 {
        stalled.push(stall(node.addr, b"POST /v1/uploads HTTP/1.1\r\nHost: node\r\n").await);
    }
    // A slow body: one byte every 300 ms (it would take 19 s), from a source of its own.
    let addr = node.addr;
    let slow = tokio::spawn(async move {
        let mut stream = stall(addr, &head("POST", "/v1/verify", 9, 64)).await;
        for _ in 0..20 {
            if stream.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        answer(&mut stream, Duration::from_secs(2)).await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // 15 stalled upload bodies from 4 sources: with the slow one, the phone class (16) is
    // full.
    for source in 0..4 {
        for _ in 0..(if source == 3 { 3 } else { 4 }) {
            let mut bytes = head("POST", "/v1/uploads", source, 100_000);
            bytes.extend_from_slice(b"\x01");
            stalled.push(stall(node.addr, &bytes).await);
        }
    }
    // The phone class is full: an honest phone is shed at once, with Retry-After.
    node.post_raw("/v1/verify", "application/json", b"{}")
        .await
        .assert_error(503, "overloaded");
    // A fifth from a source at its cap is shed at once.
    let mut bytes = head("POST", "/v1/uploads", 0, 100_000);
    bytes.push(1);
    let (status, headers, body) = raw(node.addr, &bytes).await;
    assert_json_error(status, &headers, &body, 503, "overloaded");
    assert!(headers.iter().any(|(k, v)| k == "retry-after" && v == "1"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    healthz_within_1s(&node).await;
    let started = Instant::now();
    assert_eq!(node.get("/v1/batches?after=0").await.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "serving answers"
    );
    // The honest phone gets 503 now, and gets through once the body timeout frees slots.
    honest_phone_verifies_and_uploads(&node, &code).await;
    case_worker_signs_in(&node).await;
    // The stalled bodies were answered 408 body-timeout; the stalled heads were closed.
    let text = answer(&mut stalled[20], Duration::from_secs(3)).await;
    assert!(!text.is_empty(), "the stalled body was answered");
    let (status, headers, body) = parse(text.as_bytes());
    assert_json_error(status, &headers, &body, 408, "body-timeout");
    assert_eq!(answer(&mut stalled[0], Duration::from_secs(3)).await, "");
    let text = slow.await.unwrap();
    let (status, headers, body) = parse(text.as_bytes());
    assert_json_error(status, &headers, &body, 408, "body-timeout");
    assert!(util::captured_logs().contains("shedding load"));
    node.stop().await;
}

/// A body announced larger than the endpoint takes is refused with 413 at once on every
/// endpoint, before any credential check and without reading it.
#[tokio::test]
async fn announced_oversize_is_refused_at_once_on_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(hostile_config(dir.path())).await;
    // A published batch, so that its path is served from the in-memory cache.
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    let batch = node.next_batches().await.remove(0);
    let batch_path = format!("/v1/batches/{}", batch.id);
    assert_eq!(node.get(&batch_path).await.status, 200);
    for (method, path) in [
        ("GET", batch_path.as_str()),
        ("POST", "/v1/uploads"),
        ("POST", "/v1/verify"),
        ("POST", "/v1/session"),
        ("DELETE", "/v1/session"),
        ("POST", "/v1/codes"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/authority"),
        ("GET", "/v1/batches"),
        ("GET", "/v1/exports/index.txt"),
        ("GET", "/case-worker"),
        ("GET", "/nowhere"),
    ] {
        let started = Instant::now();
        let (status, headers, body) = raw(node.addr, &head(method, path, 1, 1 << 30)).await;
        assert_json_error(status, &headers, &body, 413, "payload-too-large");
        assert!(started.elapsed() < Duration::from_secs(1), "{path} at once");
    }
    healthz_within_1s(&node).await;
    node.stop().await;
}

/// Heads hyper refuses before the router (a bad Content-Length or header line, a long
/// target, too many headers) get the JSON error shape too.
#[tokio::test]
async fn malformed_heads_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(hostile_config(dir.path())).await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"POST /v1/verify HTTP/1.1\r\nHost: node\r\nContent-Length: abc\r\n\r\n".to_vec(),
            400,
            "malformed-request",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: node\r\nno colon here\r\n\r\n".to_vec(),
            400,
            "malformed-request",
        ),
        // A target longer than the head the node reads (16 KiB) is 431 like a large header
        // block (hyper's 414 needs a 64 KiB target, more than the node's read buffer).
        (
            format!("GET /{} HTTP/1.1\r\nHost: node\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            431,
            "headers-too-large",
        ),
        (
            {
                let mut h = "GET /healthz HTTP/1.1\r\nHost: node\r\n".to_owned();
                for i in 0..200 {
                    h.push_str(&format!("X-H{i}: v\r\n"));
                }
                h.push_str("\r\n");
                h.into_bytes()
            },
            431,
            "headers-too-large",
        ),
    ];
    for (bytes, want, code) in cases {
        let (status, headers, body) = raw(node.addr, &bytes).await;
        assert_json_error(status, &headers, &body, want, code);
    }
    healthz_within_1s(&node).await;
    node.stop().await;
}

/// Connections up to the cap: a new one is answered 503 while all are young; once they are
/// a second old, each new connection replaces the oldest, so honest clients get through.
#[tokio::test]
async fn connection_flood_up_to_the_cap_leaves_honest_clients_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = hostile_config(dir.path());
    // Idle connections stay until evicted (the head timeout would close them first).
    config.http.header_read_timeout_ms = 30_000;
    let node = start(config).await;
    let code = fresh_code(&node).await;
    let mut flood = Vec::new();
    for _ in 0..64 {
        flood.push(TcpStream::connect(node.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, headers, body) = raw(node.addr, b"GET /healthz HTTP/1.1\r\nHost: n\r\n\r\n").await;
    assert_json_error(status, &headers, &body, 503, "overloaded");
    assert!(headers.iter().any(|(k, _)| k == "retry-after"));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    healthz_within_1s(&node).await;
    honest_phone_verifies_and_uploads(&node, &code).await;
    case_worker_signs_in(&node).await;
    // The flood's oldest connections were the ones closed.
    let closed = answer(&mut flood[0], Duration::from_millis(500)).await;
    assert_eq!(closed, "");
    assert!(util::captured_logs().contains("shedding load"));
    node.stop().await;
}

/// 600 wrong codes from four sources: no budget exists to spend, so the phone with a valid
/// code verifies and uploads, and every wrong one gets 400 invalid-code (or 503 while its
/// source is at its in-flight cap), never 429.
#[tokio::test]
async fn wrong_code_flood_does_not_lock_out_a_phone_with_a_valid_code() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(hostile_config(dir.path())).await;
    let code = fresh_code(&node).await;
    let addr = node.addr;
    let wrong = wrong_code_body();
    let mut attackers = tokio::task::JoinSet::new();
    for source in 0..4u8 {
        let wrong = wrong.clone();
        attackers.spawn(async move {
            let mut statuses = Vec::new();
            let xff = format!("10.6.6.{source}");
            for _ in 0..150 {
                let response = request(
                    addr,
                    "POST",
                    "/v1/verify",
                    &[
                        ("Content-Type", "application/json"),
                        ("X-Forwarded-For", &xff),
                    ],
                    &wrong,
                )
                .await;
                statuses.push(response.status);
            }
            statuses
        });
    }
    honest_phone_verifies_and_uploads(&node, &code).await;
    healthz_within_1s(&node).await;
    let mut bad = 0;
    while let Some(statuses) = attackers.join_next().await {
        for status in statuses.unwrap() {
            assert!(status == 400 || status == 503, "{status}");
            bad += usize::from(status == 400);
        }
    }
    assert!(bad > 0);
    node.stop().await;
}

/// 150 guesses at the case worker's password released together from one source: the
/// attempt is charged before the hash, so at most the budget (5) is hashed and the rest get
/// 429 at once (or 503 at the console's cap); the hashing pool leaves the node answering,
/// and the case worker, from elsewhere, signs in.
#[tokio::test]
async fn concurrent_sign_in_burst_cannot_overrun_the_budget_or_lock_out() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(hostile_config(dir.path())).await;
    let addr = node.addr;
    let (name, _) = node.case_worker.clone().unwrap();
    let wrong = serde_json::json!({"name": name, "password": "WRONGWRONGWRONGWRONGWRON"})
        .to_string()
        .into_bytes();
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(151));
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..150 {
        let gate = gate.clone();
        let wrong = wrong.clone();
        burst.spawn(async move {
            gate.wait().await;
            request(
                addr,
                "POST",
                "/v1/session",
                &[
                    ("Content-Type", "application/json"),
                    ("X-Forwarded-For", "10.6.6.6"),
                ],
                &wrong,
            )
            .await
            .status
        });
    }
    gate.wait().await;
    healthz_within_1s(&node).await;
    case_worker_signs_in(&node).await;
    // Invented names from another source cannot lock out the real one either.
    for i in 0..120 {
        let body = serde_json::json!({"name": format!("nobody{i}"), "password": "x"});
        let response = request(
            addr,
            "POST",
            "/v1/session",
            &[
                ("Content-Type", "application/json"),
                ("X-Forwarded-For", "10.6.6.7"),
            ],
            body.to_string().as_bytes(),
        )
        .await;
        assert!(
            matches!(response.status, 401 | 429 | 503),
            "{}",
            response.status
        );
    }
    case_worker_signs_in(&node).await;
    let mut counts = std::collections::BTreeMap::new();
    while let Some(status) = burst.join_next().await {
        *counts.entry(status.unwrap()).or_insert(0) += 1;
    }
    let hashed = counts.get(&401).copied().unwrap_or(0);
    assert!(
        hashed <= 5,
        "{counts:?}: more guesses hashed than the budget"
    );
    assert!(
        counts.keys().all(|s| matches!(s, 401 | 429 | 503)),
        "{counts:?}"
    );
    node.stop().await;
}

/// Status, size and header set of an answer (the `date` value aside).
fn shape(response: &Response) -> (u16, usize, Vec<String>) {
    let mut names: Vec<String> = response
        .headers
        .iter()
        .map(|(k, v)| {
            if k == "date" {
                k.clone()
            } else {
                format!("{k}: {v}")
            }
        })
        .collect();
    names.sort();
    (response.status, response.body.len(), names)
}

/// Posts a real body and then a decoy body to `path`; both answers.
async fn real_and_decoy(
    node: &TestNode,
    path: &str,
    real: &[u8],
    decoy: &[u8],
) -> (Response, Response) {
    let content_type = if path == "/v1/uploads" {
        "application/octet-stream"
    } else {
        "application/json"
    };
    let a = node.post_raw(path, content_type, real).await;
    let b = node.post_raw(path, content_type, decoy).await;
    (a, b)
}

/// Decoys get exactly what real requests get: through a wrong-code flood (the state that
/// used to be a lockout: there is none now) and through load shedding, for verify and
/// upload alike.
#[tokio::test]
async fn decoys_answer_like_real_requests_through_a_flood_and_shedding() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(hostile_config(dir.path())).await;
    let session = node.login().await;
    let codes = node.issue(&session, "confirmed", None, 2).await.codes;
    // A wrong-code flood first.
    let wrong = wrong_code_body();
    for _ in 0..100 {
        node.post_raw("/v1/verify", "application/json", &wrong)
            .await
            .assert_error(400, "invalid-code");
    }
    let contents = pet_contents(3, T0.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let real = VerifyRequest {
        code: codes[0].code.clone(),
        report_hmac: hex::encode(hmac_key.authenticate(&contents).0),
        decoy: false,
        padding: String::new(),
    }
    .to_padded_json();
    let decoy = VerifyRequest::decoy(&mut rand::rng()).to_padded_json();
    assert_eq!(real.len(), decoy.len());
    let real_answer = node.post_raw("/v1/verify", "application/json", &real).await;
    let decoy_answer = node
        .post_raw("/v1/verify", "application/json", &decoy)
        .await;
    assert_eq!(real_answer.status, 200);
    assert_eq!(shape(&real_answer), shape(&decoy_answer));
    let parsed: ephemera_proto::api::VerifyResponse =
        serde_json::from_slice(&real_answer.body).unwrap();
    let upload = UploadRequest::real_v1(SignedUpload {
        contents,
        certificate: parsed.certificate().unwrap(),
        hmac_key,
    });
    let real_upload = wire::encode(&upload);
    let decoy_upload = wire::encode(&UploadRequest::decoy(real_upload.len()));
    assert_eq!(real_upload.len(), decoy_upload.len());
    let (a, b) = real_and_decoy(&node, "/v1/uploads", &real_upload, &decoy_upload).await;
    assert_eq!(a.status, 200);
    assert_eq!(shape(&a), shape(&b));

    // Now shedding: stalled bodies fill the phone class.
    let mut stalled = Vec::new();
    for source in 0..4 {
        for _ in 0..4 {
            let mut bytes = head("POST", "/v1/uploads", source, 100_000);
            bytes.push(1);
            stalled.push(stall(node.addr, &bytes).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let real = VerifyRequest {
        code: codes[1].code.clone(),
        report_hmac: "cd".repeat(32),
        decoy: false,
        padding: String::new(),
    }
    .to_padded_json();
    let (a, b) = real_and_decoy(&node, "/v1/verify", &real, &decoy).await;
    a.assert_error(503, "overloaded");
    assert_eq!(shape(&a), shape(&b));
    let (a, b) = real_and_decoy(&node, "/v1/uploads", &real_upload, &decoy_upload).await;
    a.assert_error(503, "overloaded");
    assert_eq!(shape(&a), shape(&b));
    healthz_within_1s(&node).await;
    drop(stalled);
    node.stop().await;
}

/// The value of a counter line in `/metrics` (0 when absent).
async fn counter(node: &TestNode, line: &str) -> u64 {
    let text = String::from_utf8(node.get("/metrics").await.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Replaying an upload's bytes (one after another, and all at once) gets the first answer
/// again and stores nothing; the accepted count counts the first acceptance only, replays
/// are counted apart.
#[tokio::test]
async fn replayed_uploads_are_counted_apart_from_first_acceptances() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(hostile_config(dir.path())).await;
    let session = node.login().await;
    let (token, upload) = node
        .report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    let bytes = wire::encode(&UploadRequest::real_v1(upload));
    let first = node
        .post_raw("/v1/uploads", "application/octet-stream", &bytes)
        .await;
    let parsed: UploadResponse = serde_json::from_slice(&first.body).unwrap();
    assert_eq!((first.status, parsed.revision_token), (200, token));
    for _ in 0..3 {
        let again = node
            .post_raw("/v1/uploads", "application/octet-stream", &bytes)
            .await;
        assert_eq!((again.status, &again.body), (200, &first.body));
    }
    let mut together = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let addr = node.addr;
        let bytes = bytes.clone();
        together.spawn(async move {
            request(
                addr,
                "POST",
                "/v1/uploads",
                &[("Content-Type", "application/octet-stream")],
                &bytes,
            )
            .await
        });
    }
    while let Some(again) = together.join_next().await {
        let again = again.unwrap();
        assert_eq!((again.status, &again.body), (200, &first.body));
    }
    assert_eq!(
        counter(&node, "ephemera_uploads_accepted_total{kind=\"real\"}").await,
        1
    );
    assert_eq!(counter(&node, "ephemera_uploads_replayed_total").await, 8);
    node.stop().await;
}

/// A replayed upload followed by a revision under another (trusted) authority's
/// certificate: the replay gets the first answer, the foreign revision is refused
/// (`revision-authority-mismatch`) and the victim's own `likely` → `confirmed` revision
/// still succeeds. This runs on a version 1 upload of the transition, whose replay still
/// hands out the token; for a version 2 upload the replay grants nothing and a revision
/// under the same authority by whoever replayed it is refused too
/// (`it::revision::a_replayed_upload_cannot_revise_and_the_victims_signed_revision_succeeds`).
#[tokio::test]
async fn replayed_upload_then_foreign_revision_is_refused_and_the_victims_succeeds() {
    use ephemera_proto::auth::{AuthoritySigningKey, CertificateRequest};
    use ephemera_proto::report::ReportType;
    let dir = tempfile::tempdir().unwrap();
    let foreign = AuthoritySigningKey::generate(&mut rand::rng());
    let mut config = hostile_config(dir.path());
    config.authority.trusted_authorities = vec![foreign.public_key()];
    let node = start(config).await;
    let session = node.login().await;
    let contents = pet_contents(3, T0.day());
    let (token, upload) = node.report(&session, "likely", contents.clone()).await;
    // Anyone holding the bytes replays them and gets the first answer.
    let replay = node.upload_body(UploadBody::RealV1(upload.clone())).await;
    let replayed: UploadResponse = serde_json::from_slice(&replay.body).unwrap();
    assert_eq!(replayed.revision_token, token);
    // A revocation certified by another authority the node trusts is refused.
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let request = CertificateRequest {
        report_hmac: hmac_key.authenticate(&contents),
        test_type: ReportType::Revoked,
        symptom_onset: None,
    };
    let certificate = foreign.issue(&request, T0, 3600, &mut rand::rng());
    node.upload_body(UploadBody::RevisionV1 {
        upload: SignedUpload {
            contents: contents.clone(),
            certificate,
            hmac_key,
        },
        revision_token: hex::decode(&replayed.revision_token).unwrap(),
    })
    .await
    .assert_error(400, "revision-authority-mismatch");
    // The victim's own revision goes through.
    let code = fresh_code(&node).await;
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    let revised = node
        .upload_body(UploadBody::RevisionV1 {
            upload: SignedUpload {
                contents,
                certificate,
                hmac_key,
            },
            revision_token: hex::decode(&token).unwrap(),
        })
        .await;
    assert_eq!(
        revised.status,
        200,
        "{}",
        String::from_utf8_lossy(&revised.body)
    );
    healthz_within_1s(&node).await;
    node.stop().await;
}

/// An anonymous flood against a PostgreSQL node whose pool is exhausted: an outside session
/// holds `codes` locked for 4 s, so both pooled connections wait on it inside wrong-code
/// verifies (checked in `pg_locks`) and the flood's other verifies wait behind them, within
/// the phone class's caps. `/healthz` and a cached batch, which need no connection, answer
/// within 1 s throughout; once the lock goes the flood is answered `invalid-code` (or 503
/// where a cap sheds it) and the honest phone verifies and uploads. On two worker threads,
/// as `serve` runs on a two-core machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_postgres_pool_leaves_health_and_cached_batches_answering() {
    let (Ok(url), Ok(bin)) = (
        std::env::var("POSTGRES_TEST_URL"),
        std::env::var("POSTGRES_TEST_BIN"),
    ) else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the PostgreSQL tests: source .ci/postgres.sh first"
        );
        eprintln!("POSTGRES_TEST_URL is not set: the PostgreSQL flood is not tested");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("flood_{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut config = hostile_config(dir.path());
    config.storage.backend = ephemera_node::config::StoreBackend::Postgres;
    config.storage.url = Some(ephemera_node::config::DatabaseUrl::parse(&url).unwrap());
    config.storage.schema.clone_from(&schema);
    config.storage.pool_size = 2;
    let node = start(config).await;
    let code = fresh_code(&node).await;
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(16, T0.day()))
        .await;
    let batch = format!("/v1/batches/{}", node.next_batches().await[0].id);
    assert_eq!(node.get(&batch).await.status, 200, "now cached");

    let psql = |sql: &str| {
        let out = std::process::Command::new(std::path::Path::new(&bin).join("psql"))
            .args([
                "--tuples-only",
                "--no-align",
                "--dbname",
                &url,
                "--command",
                sql,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // Lock requests on this schema's `codes`: granted ones (`true`) and waiting ones.
    let locks = |granted: bool| {
        psql(&format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = '{schema}' AND c.relname = 'codes' AND l.granted = {granted}"
        ))
    };
    let until = |what: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut locker = std::process::Command::new(std::path::Path::new(&bin).join("psql"))
        .args(["--quiet", "--dbname", &url, "--command"])
        .arg(format!(
            "BEGIN; LOCK TABLE {schema}.codes IN ACCESS EXCLUSIVE MODE; \
             SELECT pg_sleep(4); COMMIT;"
        ))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    until(&|| locks(true) == "1");
    let addr = node.addr;
    let wrong = wrong_code_body();
    let mut attackers = tokio::task::JoinSet::new();
    // 4 sources, 5 connections each: the phone class (16) full of verifies that wait, and
    // each source one past its cap (4).
    for source in 0..20u8 {
        let wrong = wrong.clone();
        attackers.spawn(async move {
            let mut bytes = head("POST", "/v1/verify", source / 5, wrong.len() as u64);
            bytes.extend_from_slice(&wrong);
            let mut answers = Vec::new();
            for _ in 0..8 {
                let started = Instant::now();
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let _ = stream.write_all(&bytes).await;
                let mut out = Vec::new();
                let _ = stream.read_to_end(&mut out).await;
                // 0: closed without an answer.
                let status = if out.is_empty() { 0 } else { parse(&out).0 };
                answers.push((status, started.elapsed()));
            }
            answers
        });
    }
    // Both pooled connections wait on the lock: the pool is exhausted.
    until(&|| locks(false) == "2");
    let mut slowest = Duration::ZERO;
    for _ in 0..6 {
        let started = Instant::now();
        healthz_within_1s(&node).await;
        let cached = tokio::time::timeout(Duration::from_secs(1), node.get(&batch))
            .await
            .expect("a cached batch within 1 s");
        assert_eq!(cached.status, 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("slowest /healthz + cached batch while the pool was exhausted: {slowest:?}");
    assert!(locker.wait().unwrap().success());
    honest_phone_verifies_and_uploads(&node, &code).await;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut longest = Duration::ZERO;
    while let Some(answers) = attackers.join_next().await {
        for (status, took) in answers.unwrap() {
            *statuses.entry(status).or_default() += 1;
            longest = longest.max(took);
        }
    }
    eprintln!("the flood's answers by status: {statuses:?}, the longest in {longest:?}");
    assert!(
        longest > Duration::from_secs(2),
        "verifies waited for the locked table: the pool was exhausted"
    );
    assert!(
        statuses.keys().all(|s| [400, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.get(&400).is_some_and(|n| *n > 0), "{statuses:?}");
    // A source past its cap was shed while its verifies waited.
    assert!(statuses.get(&503).is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(util::captured_logs().contains("shedding load"));
    node.stop().await;
}
