//! Hostile inputs not covered elsewhere (the full table is in docs/SECURITY.md): GAEN
//! report rules over HTTP, truncated and random upload bytes, lying Content-Length, idle
//! connection floods and slow clients (slowloris).

use std::time::{Duration, Instant};

use ephemera_node::clock::{Clock as _, ManualClock};
use ephemera_proto::auth::ReportHmacKey;
use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::report::{ReportContents, ReportType};
use ephemera_proto::upload::{SignedUpload, UploadRequest};
use ephemera_proto::{DayNumber, UnixTime, wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::*;

fn gaen_key(byte: u8, day: DayNumber, period: u8, dso: Option<i8>) -> DiagnosisKey {
    DiagnosisKey {
        key: TemporaryExposureKey([byte; 16]),
        rolling_start: day.first_interval(),
        rolling_period: period,
        report_type: ReportType::ConfirmedTest,
        days_since_onset: dso,
    }
}

/// Every GAEN report rule, over real HTTP, with a genuine certificate for the bad report.
#[tokio::test]
async fn gaen_report_rules_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let noon = UnixTime(T0.day().start().0 + 12 * 3600);
    let node = TestNode::start(dir.path(), ManualClock::new(noon)).await;
    let session = node.login().await;
    let today = node.clock.now().day();
    let many: Vec<_> = (0..31u8)
        .map(|i| gaen_key(i, today.minus(u32::from(i) % 13), 144, None))
        .collect();
    let cases = [
        (ReportContents::Gaen(many), "too-many-keys"),
        (
            ReportContents::Gaen(vec![gaen_key(1, today.minus(1), 0, None)]),
            "bad-rolling-period",
        ),
        (
            ReportContents::Gaen(vec![gaen_key(1, today.minus(1), 145, None)]),
            "bad-rolling-period",
        ),
        (
            ReportContents::Gaen(vec![gaen_key(1, today.plus(1), 144, None)]),
            "key-in-future",
        ),
        (
            ReportContents::Gaen(vec![gaen_key(1, today.minus(20), 144, None)]),
            "entry-too-old",
        ),
        (
            ReportContents::Gaen(vec![gaen_key(1, today.minus(1), 144, Some(20))]),
            "bad-days-since-onset",
        ),
        (
            ReportContents::Gaen(vec![
                gaen_key(1, today.minus(1), 144, None),
                gaen_key(1, today.minus(2), 144, None),
            ]),
            "duplicate-entry",
        ),
        (ReportContents::Gaen(vec![]), "report-empty"),
    ];
    for (contents, expected) in cases {
        node.upload_certified(&session, contents)
            .await
            .assert_error(400, expected);
    }
    node.stop().await;
}

/// A genuine upload cut at every 97th byte, and random bytes behind a valid header, get a
/// clear 400, never a 5xx or a hang; the untouched upload is still accepted afterwards.
#[tokio::test]
async fn truncated_and_random_upload_bytes_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let session = node.login().await;
    let code = node.one_code(&session).await;
    let contents = pet_contents(20, T0.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    let bytes = wire::encode(&UploadRequest::real_v1(SignedUpload {
        contents,
        certificate,
        hmac_key,
    }));
    for len in (0..bytes.len()).step_by(97) {
        let r = node
            .post_raw("/v1/uploads", "application/octet-stream", &bytes[..len])
            .await;
        assert_eq!(r.status, 400, "cut at {len}");
        let code = r.json()["error"].as_str().unwrap().to_owned();
        assert!(
            code == "malformed-body" || code == "unsupported-version",
            "cut at {len}: {code}"
        );
    }
    for seed in 0..32u8 {
        let mut junk = bytes[..4].to_vec();
        junk.extend((0..1000u32).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed)));
        let r = node
            .post_raw("/v1/uploads", "application/octet-stream", &junk)
            .await;
        assert!((400..500).contains(&r.status), "junk {seed}: {}", r.status);
        assert!(r.json()["error"].is_string());
    }
    let r = node
        .post_raw("/v1/uploads", "application/octet-stream", &bytes)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    node.stop().await;
}

/// A Content-Length of 1 GiB is refused with 413 at once, before any body arrives (every
/// endpoint: `hostile_clients::announced_oversize_is_refused_at_once_on_every_endpoint`).
#[tokio::test]
async fn a_huge_content_length_is_refused_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let mut stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/uploads HTTP/1.1\r\nHost: node\r\nContent-Type: application/octet-stream\r\n\
              Content-Length: 1073741824\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head))
        .await
        .expect("the node must answer without waiting for 1 GiB")
        .unwrap();
    let text = String::from_utf8_lossy(&head[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload-too-large"), "{text}");
    node.stop().await;
}

/// 500 idle connections do not stop the node from answering others.
#[tokio::test]
async fn idle_connection_flood_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(tokio::net::TcpStream::connect(node.addr).await.unwrap());
    }
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(node.get("/healthz").await.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
    node.stop().await;
}

/// Sends a request head one byte a second for up to `seconds` bytes while checking that
/// other clients are served promptly; returns whether the node hung up, and when.
async fn slowloris(node: &TestNode, seconds: usize) -> (bool, Duration) {
    let addr = node.addr;
    let slow = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Slow: ";
        let started = Instant::now();
        for i in 0..seconds {
            let byte = head.get(i).copied().unwrap_or(b'a');
            if stream.write_all(&[byte]).await.is_err() {
                return (true, started.elapsed());
            }
            let mut buf = [0u8; 256];
            // EOF, an error, or an answer (408) all mean the node dealt with it.
            if tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf))
                .await
                .is_ok()
            {
                return (true, started.elapsed());
            }
        }
        (false, started.elapsed())
    });
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(node.get("/healthz").await.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a slow client delayed another"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    slow.await.unwrap()
}

/// Slowloris, part 1: a client sending its request head one byte a second does not block
/// other clients.
#[tokio::test]
async fn a_slow_client_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    slowloris(&node, 6).await;
    node.stop().await;
}

/// Slowloris, part 2: the node cuts such a client off (the header-read timeout,
/// `[http] header_read_timeout_ms`).
#[tokio::test]
async fn a_slow_client_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let (cut, after) = slowloris(&node, 45).await;
    assert!(
        cut,
        "a client sending a byte a second was still connected after {after:?}"
    );
    assert!(
        after < Duration::from_secs(40),
        "cut off only after {after:?}"
    );
    node.stop().await;
}
