//! Federation on loopback: 10 nodes (`LocalCluster`, 127.0.0.1 only, mDNS off), each
//! upload published at one node (round robin) and timed until every node has stored it.
//!
//! Figures: p50 and p99 propagation latency to the last node (limit: the 1 s target in
//! `docs/BENCHMARKS.md`) and sustained reports/s through the mesh (a burst published as fast as the
//! publishing nodes accept it, until every node holds all of it; limit: what this machine's
//! two cores could verify if they did nothing else, divided by the 10 nodes, since every
//! node re-verifies every report: 2 × (single-thread in-memory verify rate) / 10).

use std::time::{Duration, Instant};

use ephemera_node::clock::Clock;
use ephemera_node::federation::testing::{LocalCluster, UploadFactory, wait_until};
use ephemera_node::federation::{FederationConfig, SystemClock};
use ephemera_proto::auth::ExpiryPolicy;
use ephemera_proto::report::ReportLimits;

use super::Figure;

const NODES: usize = 10;

/// Runs the federation benchmark; `budget` bounds the latency phase.
pub fn run(budget: Duration) -> Vec<Figure> {
    let runtime = super::two_core_runtime();
    runtime.block_on(federation(budget))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn federation(budget: Duration) -> Vec<Figure> {
    let factory = UploadFactory::new();
    let trusted = factory.trusted();
    let cluster = LocalCluster::start(NODES, |_| {
        FederationConfig::default().with_trusted_authorities(trusted.clone())
    })
    .await
    .expect("cluster starts on 127.0.0.1");
    assert!(
        cluster.wait_for_mesh(Duration::from_secs(30)).await,
        "mesh did not form"
    );
    // Let gossipsub's mesh settle past its first heartbeats.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Latency: one upload at a time.
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut i = 0usize;
    while latencies.len() < 20 || (start.elapsed() < budget && latencies.len() < 500) {
        let upload = factory.upload(5);
        let id = upload.id();
        let node = &cluster.nodes[i % NODES];
        i += 1;
        let sent = Instant::now();
        node.store.store_local(upload.clone());
        node.handle.publish(upload).await.expect("publish");
        assert!(
            cluster.wait_for(&id, Duration::from_secs(10)).await,
            "an upload did not reach every node"
        );
        let last = cluster
            .nodes
            .iter()
            .filter_map(|n| n.store.arrival(&id))
            .max()
            .expect("arrivals");
        latencies.push(last.saturating_duration_since(sent).as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);

    // Throughput: a burst of uploads spread over the nodes.
    let burst = 2000;
    let uploads: Vec<_> = (0..burst).map(|_| factory.upload(5)).collect();
    let limits = ReportLimits::default();
    let now = SystemClock.now();
    let verify_start = Instant::now();
    for u in &uploads {
        let verified = u
            .upload()
            .clone()
            .verify(
                &trusted,
                now,
                ExpiryPolicy::Relayed {
                    retention_days: limits.retention_days,
                },
                &limits,
            )
            .expect("valid");
        std::hint::black_box(verified);
    }
    let verify_rate = burst as f64 / verify_start.elapsed().as_secs_f64();
    let before: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|n| n.store.memory().len())
        .collect();
    let start = Instant::now();
    for (k, upload) in uploads.into_iter().enumerate() {
        let node = &cluster.nodes[k % NODES];
        node.store.store_local(upload.clone());
        node.handle.publish(upload).await.expect("publish");
    }
    let all = wait_until(Duration::from_secs(120), || {
        cluster
            .nodes
            .iter()
            .zip(&before)
            .all(|(n, b)| n.store.memory().len() >= b + burst)
    })
    .await;
    let seconds = start.elapsed().as_secs_f64();
    assert!(all, "the burst did not reach every node within 120 s");
    cluster.stop().await;

    vec![
        Figure::new(
            "federation-p50-latency",
            percentile(&latencies, 0.50),
            "ms",
            1000.0,
        ),
        Figure::new(
            "federation-p99-latency",
            percentile(&latencies, 0.99),
            "ms",
            1000.0,
        ),
        Figure::new(
            "federation-throughput",
            burst as f64 / seconds,
            "reports/s",
            verify_rate * 2.0 / NODES as f64,
        ),
    ]
}

/// What [`burst`] runs: each burst size, `runs` times, each on a fresh cluster.
#[derive(Clone, Debug)]
pub struct BurstOptions {
    /// Reports in one burst, e.g. 2,000 and 20,000.
    pub sizes: Vec<usize>,
    /// Runs per size; the figures give the median run and the worst.
    pub runs: usize,
    /// How long one run may take before it counts as incomplete.
    pub timeout: Duration,
}

/// What one burst run measured.
#[derive(Clone, Copy, Debug)]
struct BurstRun {
    /// p99 of the delay from a report's acknowledgement at the publishing node to its
    /// arrival at each other node, over every (report, node) pair, in ms.
    p99_ms: f64,
    /// The longest of those delays, in ms.
    max_ms: f64,
    /// (report, node) pairs that never arrived within the timeout.
    missing: usize,
}

/// Federation under a burst (issue #16, item 3): 10 nodes on loopback (`LocalCluster`,
/// 127.0.0.1 only, mDNS off), a burst of `size` reports acknowledged at **one** node (stored,
/// then handed to federation, as a phone's upload is), timed until every other node holds
/// each. Every run starts a fresh cluster. Figures per size: the p99 delay from
/// acknowledgement of the median run and of the worst run (limit: the 2 s target), and the
/// worst run's (report, node) pairs missing at its timeout (limit 0). Each run is also
/// printed on stderr.
pub fn burst(options: &BurstOptions) -> Vec<Figure> {
    let runtime = super::two_core_runtime();
    let mut figures = Vec::new();
    for &size in &options.sizes {
        let mut runs: Vec<BurstRun> = Vec::new();
        for run in 1..=options.runs {
            let result = runtime.block_on(burst_run(size, options.timeout));
            eprintln!(
                "federation burst of {size}, run {run}/{}: p99 {:.0} ms, max {:.0} ms, missing {}",
                options.runs, result.p99_ms, result.max_ms, result.missing
            );
            runs.push(result);
        }
        let mut p99s: Vec<f64> = runs.iter().map(|r| r.p99_ms).collect();
        p99s.sort_by(f64::total_cmp);
        let median = p99s[p99s.len() / 2];
        let worst = p99s.last().copied().unwrap_or(f64::NAN);
        let missing = runs.iter().map(|r| r.missing).max().unwrap_or(0);
        figures.push(Figure::new(
            &format!("federation-burst-{size}-p99-median-run"),
            median,
            "ms",
            2000.0,
        ));
        figures.push(Figure::new(
            &format!("federation-burst-{size}-p99-worst-run"),
            worst,
            "ms",
            2000.0,
        ));
        figures.push(Figure::new(
            &format!("federation-burst-{size}-missing-worst-run"),
            missing as f64,
            "reports",
            0.0,
        ));
    }
    figures
}

async fn burst_run(size: usize, timeout: Duration) -> BurstRun {
    let factory = UploadFactory::new();
    let trusted = factory.trusted();
    // Signed before the clock starts: signing is the authority's work, not the node's.
    let uploads: Vec<_> = (0..size).map(|_| factory.upload(5)).collect();
    let cluster = LocalCluster::start(NODES, |_| {
        FederationConfig::default().with_trusted_authorities(trusted.clone())
    })
    .await
    .expect("cluster starts on 127.0.0.1");
    assert!(
        cluster.wait_for_mesh(Duration::from_secs(30)).await,
        "mesh did not form"
    );
    // Let gossipsub's mesh settle past its first heartbeats.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let origin = &cluster.nodes[0];
    let mut acks = Vec::with_capacity(size);
    for upload in uploads {
        acks.push((upload.id(), Instant::now()));
        origin.store.store_local(upload.clone());
        origin.handle.publish(upload).await.expect("publish");
    }
    let others = &cluster.nodes[1..];
    wait_until(timeout, || {
        others.iter().all(|n| n.store.memory().len() >= size)
    })
    .await;
    let mut delays = Vec::with_capacity(size * others.len());
    let mut missing = 0;
    for (id, ack) in &acks {
        for node in others {
            match node.store.arrival(id) {
                Some(at) => delays.push(at.saturating_duration_since(*ack).as_secs_f64() * 1000.0),
                None => missing += 1,
            }
        }
    }
    cluster.stop().await;
    delays.sort_by(f64::total_cmp);
    BurstRun {
        p99_ms: percentile(&delays, 0.99),
        max_ms: delays.last().copied().unwrap_or(f64::NAN),
        missing,
    }
}
