//! `/metrics` as an operator's Prometheus sees it: every metric described, counters at zero
//! from the start, and the values alerts watch moving after a request, a cut and a purge.

use ephemera_node::clock::ManualClock;

use crate::util::*;

#[tokio::test]
async fn metrics_are_described_zeroed_and_move_with_requests_cuts_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;

    let text = scrape(&node).await;
    for name in [
        "ephemera_build_info",
        "ephemera_http_requests_total",
        "ephemera_http_too_many_requests_total",
        "ephemera_http_request_duration_seconds",
        "ephemera_last_cut_timestamp_seconds",
        "ephemera_cut_failures_total",
        "ephemera_purge_runs_total",
        "ephemera_last_purge_timestamp_seconds",
        "ephemera_data_dir_free_bytes",
        "ephemera_data_dir_size_bytes",
        "ephemera_batch_period_seconds",
        "ephemera_start_time_seconds",
        "ephemera_uploads_accepted_total",
        "ephemera_batches_published_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}:\n{text}"
        );
    }
    let build = format!(
        "ephemera_build_info{{version=\"{}\",store_format=\"{}\",schemes=\"pet,gaen\",default_scheme=\"pet\"}}",
        env!("CARGO_PKG_VERSION"),
        ephemera_node::store::STORE_FORMAT
    );
    assert_eq!(sample(&text, &build), Some(1.0), "{text}");
    for series in [
        "ephemera_cut_failures_total",
        "ephemera_batches_published_total",
        "ephemera_last_cut_timestamp_seconds",
        "ephemera_purge_runs_total{result=\"ok\"}",
        "ephemera_purge_runs_total{result=\"failed\"}",
        "ephemera_uploads_accepted_total{kind=\"real\"}",
        "ephemera_http_requests_total{class=\"phone\",status=\"2xx\"}",
        "ephemera_http_requests_total{class=\"serving\",status=\"5xx\"}",
        "ephemera_http_too_many_requests_total{class=\"phone\"}",
        "ephemera_http_request_duration_seconds_count{class=\"phone\"}",
    ] {
        assert_eq!(sample(&text, series), Some(0.0), "{series}:\n{text}");
    }
    assert_eq!(
        sample(&text, "ephemera_batch_period_seconds"),
        Some(node.node.config().publication.batch_period_seconds as f64)
    );
    assert_eq!(
        sample(&text, "ephemera_start_time_seconds"),
        Some(T0.0 as f64)
    );
    let free = sample(&text, "ephemera_data_dir_free_bytes").unwrap();
    let size = sample(&text, "ephemera_data_dir_size_bytes").unwrap();
    assert!(free > 0.0 && free <= size, "{free} {size}");
    // The scrape itself was answered before it was counted: health 2xx is still 0 here.
    assert_eq!(
        sample(
            &text,
            "ephemera_http_requests_total{class=\"health\",status=\"2xx\"}"
        ),
        Some(0.0)
    );

    // Requests: a health check, a 404, a refused upload, and a cached batch after a cut.
    let health = node.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        health.json()["storage_format"],
        ephemera_node::store::STORE_FORMAT
    );
    assert_eq!(node.get("/nothing-here").await.status, 404);
    let refused = node
        .post_raw("/v1/uploads", "application/octet-stream", b"junk")
        .await;
    assert!((400..500).contains(&refused.status), "{}", refused.status);
    let cut = node.next_batches().await;
    assert!(!cut.is_empty());
    let batch = node.get(&format!("/v1/batches/{}", cut[0].id)).await;
    assert_eq!(batch.status, 200);
    node.node.purge().unwrap();

    let text = scrape(&node).await;
    let at = |series: &str| sample(&text, series);
    assert_eq!(
        at("ephemera_http_requests_total{class=\"health\",status=\"2xx\"}"),
        Some(2.0),
        "the first scrape and /healthz:\n{text}"
    );
    assert_eq!(
        at("ephemera_http_requests_total{class=\"other\",status=\"4xx\"}"),
        Some(1.0)
    );
    assert_eq!(
        at("ephemera_http_requests_total{class=\"phone\",status=\"4xx\"}"),
        Some(1.0)
    );
    // The batch came from the in-memory fast path, which bypasses the router.
    assert_eq!(
        at("ephemera_http_requests_total{class=\"serving\",status=\"2xx\"}"),
        Some(1.0)
    );
    assert_eq!(
        at("ephemera_http_request_duration_seconds_count{class=\"serving\"}"),
        Some(1.0)
    );
    assert_eq!(
        at("ephemera_http_request_duration_seconds_bucket{class=\"serving\",le=\"+Inf\"}"),
        Some(1.0)
    );
    let period = node.node.config().publication.batch_period_seconds;
    let boundary = (T0.0 / period + 1) * period;
    assert_eq!(
        at("ephemera_last_cut_timestamp_seconds"),
        Some(boundary as f64)
    );
    assert_eq!(
        at("ephemera_batches_published_total"),
        Some(cut.len() as f64)
    );
    assert_eq!(at("ephemera_cut_failures_total"), Some(0.0));
    assert_eq!(at("ephemera_purge_runs_total{result=\"ok\"}"), Some(1.0));
    assert_eq!(
        at("ephemera_last_purge_timestamp_seconds"),
        Some((boundary + 1) as f64)
    );
    node.stop().await;

    // A restarted node knows its last cut from the store, not from its own run.
    let node = TestNode::start(dir.path(), clock).await;
    let text = scrape(&node).await;
    assert_eq!(
        sample(&text, "ephemera_last_cut_timestamp_seconds"),
        Some(boundary as f64)
    );
    node.stop().await;
}
