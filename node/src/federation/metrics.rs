//! Federation metrics, through the `metrics` facade (the node installs the exporter).
//!
//! Names and labels, in one place:
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `ephemera_federation_peers_connected` | gauge | |
//! | `ephemera_federation_connections_total` | counter | `event` = `established` / `closed` |
//! | `ephemera_federation_gossip_total` | counter | `verdict` = `accepted` / `rejected` / `ignored`, `reason` |
//! | `ephemera_federation_published_total` | counter | `result` = `ok` / `no-peers` / `duplicate` / `error` |
//! | `ephemera_federation_sync_requests_total` | counter | `direction` = `inbound` / `outbound`, `kind` |
//! | `ephemera_federation_sync_rounds_total` | counter | `result` = `ok` / `failed` / `store-error` |
//! | `ephemera_federation_sync_fetched_total` | counter | `verdict`, `reason` (uploads received by catch-up) |
//! | `ephemera_federation_sync_lag_days` | gauge | days that differed from the peer at the last round |
//! | `ephemera_federation_sync_lag_uploads` | gauge | uploads missing here at the last round |
//! | `ephemera_federation_peers_banned_total` | counter | |
//! | `ephemera_federation_store_errors_total` | counter | `path` = `gossip` / `catch-up` / `serve` (this node's store failed) |
//!
//! No label ever holds a peer id, address, key or token.

use super::validate::Verdict;

pub(crate) fn peers_connected(count: usize) {
    metrics::gauge!("ephemera_federation_peers_connected").set(count as f64);
}

pub(crate) fn connection(event: &'static str) {
    metrics::counter!("ephemera_federation_connections_total", "event" => event).increment(1);
}

pub(crate) fn gossip(verdict: Verdict) {
    metrics::counter!(
        "ephemera_federation_gossip_total",
        "verdict" => verdict.label(),
        "reason" => verdict.reason()
    )
    .increment(1);
}

pub(crate) fn published(result: &'static str) {
    metrics::counter!("ephemera_federation_published_total", "result" => result).increment(1);
}

pub(crate) fn sync_request(direction: &'static str, kind: &'static str) {
    sync_request_count(direction, kind, 1);
}

fn sync_request_count(direction: &'static str, kind: &'static str, n: u64) {
    metrics::counter!(
        "ephemera_federation_sync_requests_total",
        "direction" => direction,
        "kind" => kind
    )
    .increment(n);
}

pub(crate) fn sync_round(result: &'static str) {
    metrics::counter!("ephemera_federation_sync_rounds_total", "result" => result).increment(1);
}

pub(crate) fn sync_fetched(verdict: Verdict) {
    metrics::counter!(
        "ephemera_federation_sync_fetched_total",
        "verdict" => verdict.label(),
        "reason" => verdict.reason()
    )
    .increment(1);
}

pub(crate) fn sync_lag(days: usize, uploads: usize) {
    metrics::gauge!("ephemera_federation_sync_lag_days").set(days as f64);
    metrics::gauge!("ephemera_federation_sync_lag_uploads").set(uploads as f64);
}

pub(crate) fn banned() {
    metrics::counter!("ephemera_federation_peers_banned_total").increment(1);
}

pub(crate) fn store_error(path: &'static str) {
    metrics::counter!("ephemera_federation_store_errors_total", "path" => path).increment(1);
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
        "Catch-up rounds, by result (ok, failed, store-error)."
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
        "ephemera_federation_store_errors_total",
        "This node's store failures while checking gossip, catching up or serving a peer, by path."
    );
    peers_connected(0);
    sync_lag(0, 0);
    for event in ["established", "closed"] {
        metrics::counter!("ephemera_federation_connections_total", "event" => event).increment(0);
    }
    for result in ["ok", "no-peers", "duplicate", "error"] {
        metrics::counter!("ephemera_federation_published_total", "result" => result).increment(0);
    }
    for result in ["ok", "failed", "store-error"] {
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
    metrics::counter!(
        "ephemera_federation_gossip_total",
        "verdict" => Verdict::Accept.label(),
        "reason" => Verdict::Accept.reason()
    )
    .increment(0);
}
