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
    metrics::counter!(
        "ephemera_federation_sync_requests_total",
        "direction" => direction,
        "kind" => kind
    )
    .increment(1);
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
