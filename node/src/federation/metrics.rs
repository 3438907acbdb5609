//! Federation metrics, through the `metrics` facade (the node installs the exporter).
//!
//! Names and labels, in one place:
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `ephemera_federation_peers_connected` | gauge | |
//! | `ephemera_federation_connections_total` | counter | `event` = `established` / `closed` |
//! | `ephemera_federation_gossip_total` | counter | `verdict` = `accepted` / `relayed` / `rejected` / `ignored`, `reason` |
//! | `ephemera_federation_published_total` | counter | `result` = `ok` / `no-peers` / `duplicate` / `error` |
//! | `ephemera_federation_sync_requests_total` | counter | `direction` = `inbound` / `outbound`, `kind` |
//! | `ephemera_federation_sync_rounds_total` | counter | `result` = `ok` / `failed` / `store-error` / `budget` |
//! | `ephemera_federation_sync_fetched_total` | counter | `verdict`, `reason` (uploads received by catch-up) |
//! | `ephemera_federation_sync_lag_days` | gauge | days that differed from the peer at the last round |
//! | `ephemera_federation_sync_lag_uploads` | gauge | uploads missing here at the last round |
//! | `ephemera_federation_sync_refused_total` | counter | `reason` = `budget` (a peer's catch-up request left unanswered) |
//! | `ephemera_federation_sync_response_bytes_in_flight` | gauge | catch-up answers built for unconfigured peers and not yet written |
//! | `ephemera_federation_sync_response_bytes_peak` | gauge | the most of those at once since start |
//! | `ephemera_federation_peers_banned_total` | counter | |
//! | `ephemera_federation_dials_refused_total` | counter | `reason` = `filtered-address` / `dial-budget` |
//! | `ephemera_federation_peers_penalised_total` | counter | `reason` (a catch-up fault, `timeout`, `malformed-response`, `malformed-request`, ...) |
//! | `ephemera_federation_peers_evicted_total` | counter | `reason` = `idle` (a stranger that gave nothing new while slots were scarce) |
//! | `ephemera_federation_sunset_dropped_total` | counter | `reason` = `peer-budget` / `busy` (peers' sunset orders left unchecked) |
//! | `ephemera_federation_venue_releases_total` | counter | `outcome` = `stored` / `known` / `later` / `invalid` / `not-kept` / `dropped-peer-budget` / `dropped-busy` (venue releases peers sent) |
//! | `ephemera_federation_store_errors_total` | counter | `path` = `gossip` / `catch-up` / `serve` (this node's store failed) |
//!
//! No label ever holds a peer id, address, key or token.
//!
//! Where they go: a node owns its recorder (no global one, so several nodes share a
//! process), and hands it to federation as [`MetricsSink`] in
//! `FederationConfig::metrics`. The event loop and every task it spawns run inside
//! [`scope`], and each metric is recorded into the sink of the task it happens in; without
//! a sink, into the global recorder (if any).

use std::future::Future;
use std::sync::Arc;

use super::validate::Verdict;

/// The recorder federation's metrics go to.
#[derive(Clone)]
pub struct MetricsSink(pub Arc<dyn ::metrics::Recorder + Send + Sync>);

impl std::fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSink")
    }
}

tokio::task_local! {
    static SINK: Option<MetricsSink>;
}

/// Runs `future` with `sink` as the recorder of the metrics it records.
pub(crate) async fn scope<F: Future>(sink: Option<MetricsSink>, future: F) -> F::Output {
    SINK.scope(sink, future).await
}

/// Spawns `future` on the runtime inside the current task's sink.
pub(crate) fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let sink = SINK.try_with(Clone::clone).ok().flatten();
    tokio::spawn(scope(sink, future))
}

/// Records through the current task's sink, or the global recorder.
fn record(f: impl FnOnce()) {
    let sink = SINK.try_with(Clone::clone).ok().flatten();
    match sink {
        Some(MetricsSink(recorder)) => ::metrics::with_local_recorder(&*recorder, f),
        None => f(),
    }
}

pub(crate) fn peers_connected(count: usize) {
    record(|| {
        metrics::gauge!("ephemera_federation_peers_connected").set(count as f64);
    });
}

pub(crate) fn connection(event: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_connections_total", "event" => event).increment(1);
    });
}

pub(crate) fn gossip(verdict: Verdict) {
    record(|| {
        metrics::counter!(
            "ephemera_federation_gossip_total",
            "verdict" => verdict.label(),
            "reason" => verdict.reason()
        )
        .increment(1);
    });
}

pub(crate) fn published(result: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_published_total", "result" => result).increment(1);
    });
}

pub(crate) fn sync_request(direction: &'static str, kind: &'static str) {
    sync_request_count(direction, kind, 1);
}

fn sync_request_count(direction: &'static str, kind: &'static str, n: u64) {
    record(|| {
        metrics::counter!(
            "ephemera_federation_sync_requests_total",
            "direction" => direction,
            "kind" => kind
        )
        .increment(n);
    });
}

pub(crate) fn sync_round(result: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_sync_rounds_total", "result" => result).increment(1);
    });
}

pub(crate) fn sync_fetched(verdict: Verdict) {
    record(|| {
        metrics::counter!(
            "ephemera_federation_sync_fetched_total",
            "verdict" => verdict.label(),
            "reason" => verdict.reason()
        )
        .increment(1);
    });
}

pub(crate) fn sync_lag(days: usize, uploads: usize) {
    record(|| {
        metrics::gauge!("ephemera_federation_sync_lag_days").set(days as f64);
        metrics::gauge!("ephemera_federation_sync_lag_uploads").set(uploads as f64);
    });
}

pub(crate) fn banned() {
    record(|| {
        metrics::counter!("ephemera_federation_peers_banned_total").increment(1);
    });
}

pub(crate) fn store_error(path: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_store_errors_total", "path" => path).increment(1);
    });
}

pub(crate) fn sync_refused(reason: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_sync_refused_total", "reason" => reason)
            .increment(1);
    });
}

pub(crate) fn response_bytes(in_flight: usize, peak: usize) {
    record(|| {
        metrics::gauge!("ephemera_federation_sync_response_bytes_in_flight").set(in_flight as f64);
        metrics::gauge!("ephemera_federation_sync_response_bytes_peak").set(peak as f64);
    });
}

pub(crate) fn evicted(reason: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_peers_evicted_total", "reason" => reason)
            .increment(1);
    });
}

pub(crate) fn penalised(reason: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_peers_penalised_total", "reason" => reason)
            .increment(1);
    });
}

pub(crate) fn sunset_dropped(reason: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_sunset_dropped_total", "reason" => reason)
            .increment(1);
    });
}

pub(crate) fn venue_releases(outcome: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_venue_releases_total", "outcome" => outcome)
            .increment(1);
    });
}

pub(crate) fn dial_refused(reason: &'static str) {
    record(|| {
        metrics::counter!("ephemera_federation_dials_refused_total", "reason" => reason)
            .increment(1);
    });
}

/// Describes every federation metric (its `# HELP` line) and creates those with a closed
/// label set at zero, in the recorder in force. `serve` calls it, after it installed the
/// node's recorder, when federation is enabled.
pub(crate) fn register() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "ephemera_federation_peers_connected",
        "Federation peers connected now."
    );
    describe_counter!(
        "ephemera_federation_connections_total",
        "Federation connections, by event (established, closed)."
    );
    describe_counter!(
        "ephemera_federation_gossip_total",
        "Gossiped uploads received, by verdict and reason."
    );
    describe_counter!(
        "ephemera_federation_published_total",
        "Uploads this node gossiped, by result (ok, no-peers, duplicate, error)."
    );
    describe_counter!(
        "ephemera_federation_sync_requests_total",
        "Catch-up requests, by direction (inbound, outbound) and kind."
    );
    describe_counter!(
        "ephemera_federation_sync_rounds_total",
        "Catch-up rounds, by result (ok, failed, store-error, budget)."
    );
    describe_counter!(
        "ephemera_federation_sync_fetched_total",
        "Uploads received by catch-up, by verdict and reason."
    );
    describe_gauge!(
        "ephemera_federation_sync_lag_days",
        "Days that differed from the peer at the last catch-up round."
    );
    describe_gauge!(
        "ephemera_federation_sync_lag_uploads",
        "Uploads missing here at the last catch-up round."
    );
    describe_counter!(
        "ephemera_federation_peers_banned_total",
        "Peers banned for a low score."
    );
    describe_counter!(
        "ephemera_federation_sync_refused_total",
        "Peers' catch-up requests left unanswered, by reason (budget)."
    );
    describe_gauge!(
        "ephemera_federation_sync_response_bytes_in_flight",
        "Bytes of catch-up answers built for unreserved peers and not yet written."
    );
    describe_gauge!(
        "ephemera_federation_sync_response_bytes_peak",
        "The most catch-up answer bytes in flight at once since start."
    );
    describe_counter!(
        "ephemera_federation_dials_refused_total",
        "Dials refused by the dial policy, by reason (filtered-address, dial-budget)."
    );
    describe_counter!(
        "ephemera_federation_peers_penalised_total",
        "Peer penalties, by reason (a catch-up fault, timeout, malformed-response ...)."
    );
    describe_counter!(
        "ephemera_federation_peers_evicted_total",
        "Peers disconnected to free a slot, by reason (idle)."
    );
    describe_counter!(
        "ephemera_federation_store_errors_total",
        "This node's store failures while checking gossip, catching up or serving a peer, by path."
    );
    describe_counter!(
        "ephemera_federation_sunset_dropped_total",
        "Peers' sunset orders left unchecked, by reason (peer-budget, busy)."
    );
    describe_counter!(
        "ephemera_federation_venue_releases_total",
        "Venue releases peers sent, by outcome (stored, known, later, invalid, not-kept, \
         dropped-peer-budget, dropped-busy)."
    );
    peers_connected(0);
    sync_lag(0, 0);
    for outcome in [
        "stored",
        "known",
        "later",
        "invalid",
        "not-kept",
        "dropped-peer-budget",
        "dropped-busy",
    ] {
        metrics::counter!("ephemera_federation_venue_releases_total", "outcome" => outcome)
            .increment(0);
    }
    for reason in ["peer-budget", "busy"] {
        metrics::counter!("ephemera_federation_sunset_dropped_total", "reason" => reason)
            .increment(0);
    }
    for event in ["established", "closed"] {
        metrics::counter!("ephemera_federation_connections_total", "event" => event).increment(0);
    }
    for result in ["ok", "no-peers", "duplicate", "error"] {
        metrics::counter!("ephemera_federation_published_total", "result" => result).increment(0);
    }
    for result in ["ok", "failed", "store-error", "budget"] {
        metrics::counter!("ephemera_federation_sync_rounds_total", "result" => result).increment(0);
    }
    for path in ["gossip", "catch-up", "serve"] {
        metrics::counter!("ephemera_federation_store_errors_total", "path" => path).increment(0);
    }
    metrics::counter!("ephemera_federation_peers_banned_total").increment(0);
    for direction in ["inbound", "outbound"] {
        for kind in ["digests", "ids", "fetch"] {
            sync_request_count(direction, kind, 0);
        }
    }
    metrics::counter!(
        "ephemera_federation_sync_fetched_total",
        "verdict" => Verdict::Accept.label(),
        "reason" => Verdict::Accept.reason()
    )
    .increment(0);
    for verdict in [Verdict::Accept, Verdict::Relay] {
        metrics::counter!(
            "ephemera_federation_gossip_total",
            "verdict" => verdict.label(),
            "reason" => verdict.reason()
        )
        .increment(0);
    }
}
