//! Prometheus metrics, rendered by the node's own `/metrics` route.
//!
//! Each node owns its recorder (no global one), so several nodes can run in one process
//! (tests, simulations). Labels never hold personal data: only outcome codes.

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The node's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh, empty set of metrics.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        Metrics { recorder, handle }
    }

    /// The recorder itself (federation records its metrics into it).
    pub fn recorder(&self) -> &PrometheusRecorder {
        &self.recorder
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>, n: u64) {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
            .increment(n);
    }

    fn gauge(&self, name: &'static str, value: f64) {
        self.recorder
            .register_gauge(&Key::from_static_name(name), &METADATA)
            .set(value);
    }

    /// An upload (`kind`: "real" or "revision") was stored: counted once, at its first
    /// acceptance (a replay of the same bytes is [`Metrics::upload_replayed`]).
    pub fn upload_accepted(&self, kind: &'static str) {
        self.counter(
            "ephemera_uploads_accepted_total",
            vec![Label::new("kind", kind)],
            1,
        );
    }

    /// The node's view of the wall clock: its time, the boundary of the last cut, and
    /// whether purging or cutting is suspended for a clock anomaly
    /// (`ephemera_node_core::clock_guard`).
    pub fn clock(&self, node_time: u64, last_cut: Option<u64>, anomaly: bool) {
        self.gauge("ephemera_node_time_seconds", node_time as f64);
        if let Some(last_cut) = last_cut {
            self.gauge("ephemera_last_cut_boundary_seconds", last_cut as f64);
        }
        self.gauge("ephemera_clock_anomaly", if anomaly { 1.0 } else { 0.0 });
    }

    /// An upload or revision already stored arrived again (a retry, or anyone replaying its
    /// bytes) and was answered as the first time; nothing was stored.
    pub fn upload_replayed(&self) {
        self.counter("ephemera_uploads_replayed_total", vec![], 1);
    }

    /// An upload was refused; `reason` is the API error code.
    pub fn upload_rejected(&self, reason: &'static str) {
        self.counter(
            "ephemera_uploads_rejected_total",
            vec![Label::new("reason", reason)],
            1,
        );
    }

    /// A decoy request arrived at `endpoint` ("upload" or "verify").
    pub fn decoy(&self, endpoint: &'static str) {
        self.counter(
            "ephemera_decoys_total",
            vec![Label::new("endpoint", endpoint)],
            1,
        );
    }

    /// A code verification ended with `outcome` ("certified" or an error code).
    pub fn verification(&self, outcome: &'static str) {
        self.counter(
            "ephemera_verifications_total",
            vec![Label::new("outcome", outcome)],
            1,
        );
    }

    /// `n` codes were issued.
    pub fn codes_issued(&self, n: u64) {
        self.counter("ephemera_codes_issued_total", vec![], n);
    }

    /// A batch with `entries` entries (decoys included) was published.
    pub fn batch_published(&self, entries: u64) {
        self.counter("ephemera_batches_published_total", vec![], 1);
        self.counter("ephemera_batch_entries_total", vec![], entries);
    }

    /// A purge removed `n` records of `kind`.
    pub fn purged(&self, kind: &'static str, n: u64) {
        if n > 0 {
            self.counter(
                "ephemera_purged_records_total",
                vec![Label::new("kind", kind)],
                n,
            );
        }
    }

    /// Storage size and record counts.
    pub fn storage(&self, bytes: u64, uploads: u64) {
        self.gauge("ephemera_storage_bytes", bytes as f64);
        self.gauge("ephemera_stored_uploads", uploads as f64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_labels() {
        let metrics = Metrics::new();
        metrics.upload_accepted("real");
        metrics.upload_rejected("certificate-expired");
        metrics.upload_rejected("certificate-expired");
        metrics.storage(1234, 1);
        let text = metrics.render();
        assert!(
            text.contains("ephemera_uploads_accepted_total{kind=\"real\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ephemera_uploads_rejected_total{reason=\"certificate-expired\"} 2"),
            "{text}"
        );
        assert!(text.contains("ephemera_storage_bytes 1234"), "{text}");
        // Two nodes in one process do not share counters.
        assert!(
            !Metrics::new()
                .render()
                .contains("ephemera_uploads_accepted_total")
        );
    }
}
