//! Serving batches from memory (the fast path before the router) and guarding `/metrics`.

use ephemera_node::clock::ManualClock;
use ephemera_node::config::MetricsToken;
use ephemera_proto::batch::{SignedBatch, TrustedNodes};
use ephemera_proto::filter::TokenFilter;
use ephemera_proto::report::ReportContents;

use crate::util::*;

/// Every header but `date`, sorted: what the cached and the stored path must agree on.
fn stable_headers(response: &Response) -> Vec<(String, String)> {
    let mut headers: Vec<_> = response
        .headers
        .iter()
        .filter(|(k, _)| k != "date")
        .cloned()
        .collect();
    headers.sort();
    headers
}

#[tokio::test]
async fn cached_batches_answer_like_stored_ones_with_304_and_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    let first = node.next_batches().await[0].id;
    // Cut puts the batch in memory: this answer comes from the fast path.
    assert_eq!(node.node.batch_cache().len(), 1);
    let path = format!("/v1/batches/{first}");
    let cached = node.get(&path).await;
    assert_eq!(cached.status, 200);
    let etag = format!("\"{first}\"");
    let length = cached.body.len().to_string();
    for (name, value) in [
        ("etag", etag.as_str()),
        ("cache-control", "public, max-age=31536000, immutable"),
        ("content-type", "application/octet-stream"),
        ("content-length", length.as_str()),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(cached.header(name), Some(value), "{name}");
    }
    let trusted = TrustedNodes::new().with(node.node.keys().batch.public_key());
    let (summary, _) = SignedBatch::verify(&cached.body, &trusted).unwrap();
    assert_eq!(summary.id, first);

    // 304 for the tag, a list holding it, its weak form and `*`; 200 for another tag.
    for tag in [
        etag.clone(),
        format!("\"00\", {etag}"),
        format!("W/{etag}"),
        "*".to_owned(),
    ] {
        let again = request(node.addr, "GET", &path, &[("If-None-Match", &tag)], b"").await;
        assert_eq!(again.status, 304, "{tag}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_eq!(
            again.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(again.header("x-content-type-options"), Some("nosniff"));
    }
    let other = request(node.addr, "GET", &path, &[("If-None-Match", "\"00\"")], b"").await;
    assert_eq!((other.status, &other.body), (200, &cached.body));

    // A batch cut after the cache was filled is served too, with its own tag and bytes.
    let second = node.next_batches().await[0].id;
    assert_ne!(second, first);
    assert_eq!(node.node.batch_cache().len(), 2);
    let newer = node.get(&format!("/v1/batches/{second}")).await;
    assert_eq!(newer.status, 200);
    assert_eq!(newer.header("etag"), Some(format!("\"{second}\"").as_str()));
    assert_eq!(
        SignedBatch::verify(&newer.body, &trusted).unwrap().0.id,
        second
    );

    // What the fast path does not answer still goes through the router.
    let head = request(node.addr, "HEAD", &path, &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    node.get(&format!("/v1/batches/{}", "z".repeat(64)))
        .await
        .assert_error(400, "invalid-parameter");
    node.get(&format!("/v1/batches/{}", "ab".repeat(32)))
        .await
        .assert_error(404, "not-found");
    request(node.addr, "POST", &path, &[], b"")
        .await
        .assert_error(405, "method-not-allowed");
    node.stop().await;

    // After a restart the cache is empty: the first answer is read from storage (through
    // the router) and fills the cache; both answers match the cached one above.
    let node = TestNode::start(dir.path(), clock).await;
    assert!(node.node.batch_cache().is_empty());
    let stored = node.get(&path).await;
    assert_eq!(node.node.batch_cache().len(), 1);
    let from_memory = node.get(&path).await;
    for response in [&stored, &from_memory] {
        assert_eq!(response.status, 200);
        assert_eq!(response.body, cached.body);
        assert_eq!(stable_headers(response), stable_headers(&cached));
    }
    let not_modified = request(node.addr, "GET", &path, &[("If-None-Match", &etag)], b"").await;
    assert_eq!(not_modified.status, 304);
    node.stop().await;
}

#[tokio::test]
async fn metrics_need_the_configured_bearer_token() {
    let secret = "metrics-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.http.metrics_token = Some(MetricsToken::new(secret));
    let node = TestNode::start_with(config, ManualClock::new(T0)).await;
    let right = format!("Bearer {secret}");
    let wrong = format!("Bearer {}x", &secret[..secret.len() - 1]);
    let prefix = format!("Bearer {}", &secret[..10]);
    let basic = format!("Basic {secret}");
    node.get("/metrics").await.assert_error(401, "unauthorized");
    for auth in [wrong.as_str(), prefix.as_str(), basic.as_str(), "Bearer "] {
        let denied = request(
            node.addr,
            "GET",
            "/metrics",
            &[("Authorization", auth)],
            b"",
        )
        .await;
        denied.assert_error(401, "unauthorized");
        assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    }
    let allowed = request(
        node.addr,
        "GET",
        "/metrics",
        &[("Authorization", &right)],
        b"",
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert!(
        String::from_utf8(allowed.body)
            .unwrap()
            .contains("ephemera_storage_bytes")
    );
    // Only /metrics is guarded.
    assert_eq!(node.get("/healthz").await.status, 200);
    node.stop().await;
    assert!(
        !captured_logs().contains(secret),
        "the token is never logged"
    );

    // No token configured (the default): open.
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    assert_eq!(node.node.config().http.metrics_token, None);
    let open = node.get("/metrics").await;
    assert_eq!(open.status, 200);
    assert!(
        String::from_utf8(open.body)
            .unwrap()
            .contains("ephemera_storage_bytes")
    );
    node.stop().await;
}

#[tokio::test]
async fn token_filters_hold_a_batchs_tokens_for_a_fraction_of_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let session = node.login().await;
    let ReportContents::Pet(uploaded) = pet_contents(40, T0.day()) else {
        unreachable!("pet contents")
    };
    node.report(&session, "confirmed", ReportContents::Pet(uploaded.clone()))
        .await;
    let entry = node.next_batches().await[0].clone();
    assert!(
        node.index(0).await.token_filters,
        "the index offers filters"
    );
    let batch = node.get(&format!("/v1/batches/{}", entry.id)).await;
    let path = format!("/v1/batches/{}/filter", entry.id);
    let served = node.get(&path).await;
    assert_eq!(served.status, 200);
    assert_eq!(
        served.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        served.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let trusted = TrustedNodes::new().with(node.node.keys().batch.public_key());
    let filter = TokenFilter::verify(&served.body, &trusted).unwrap();
    let (summary, contents) = SignedBatch::verify(&batch.body, &trusted).unwrap();
    assert_eq!(
        (
            filter.batch,
            filter.sequence,
            filter.previous,
            filter.tokens
        ),
        (
            summary.id,
            summary.sequence,
            summary.previous.unwrap(),
            summary.tokens
        )
    );
    assert!(contents.tokens.iter().all(|t| filter.contains(&t.token)));
    assert!(uploaded.iter().all(|t| filter.contains(&t.token)));
    assert!(
        served.body.len() * 2 < batch.body.len(),
        "filter {} bytes, batch {}",
        served.body.len(),
        batch.body.len()
    );
    // Its ETag is its own digest; a second request is the same bytes, a 304 with the tag.
    let etag = served.header("etag").unwrap().to_owned();
    assert_ne!(etag, format!("\"{}\"", entry.id));
    let again = request(node.addr, "GET", &path, &[("If-None-Match", &etag)], b"").await;
    assert_eq!(again.status, 304);
    node.stop().await;

    // Stored at the cut, so a restart serves the same bytes from storage: no request ever
    // makes the node build a filter (design brief §10: no CPU an anonymous client can spend).
    let node = TestNode::start(dir.path(), clock).await;
    let stored = node.node.store().token_filter(&entry.id).unwrap();
    assert_eq!(stored.as_deref(), Some(&served.body[..]));
    let rebuilt = node.get(&path).await;
    assert_eq!((rebuilt.status, &rebuilt.body), (200, &served.body));
    node.get(&format!("/v1/batches/{}/filter", "ab".repeat(32)))
        .await
        .assert_error(404, "not-found");
    node.get(&format!("/v1/batches/{}/filter", "z".repeat(64)))
        .await
        .assert_error(400, "invalid-parameter");
    node.stop().await;
}
