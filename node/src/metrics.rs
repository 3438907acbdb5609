//! Prometheus metrics, rendered by the node's own `/metrics` route.
//!
//! Each node owns its recorder, so several nodes can run in one process (tests,
//! simulations). The federation records through the `metrics` facade into the node's
//! recorder too (`federation/metrics.rs`, `MetricsSink`), so those land in the same
//! `/metrics` text. Labels never
//! hold personal data: only outcome codes, route classes and status classes.
//!
//! Every counter with a closed label set is created at zero, with its `# HELP` line, when
//! the node starts, so rates and alerts work before the first event. Counters whose label
//! is an open set of error codes (`reason`) appear with their first occurrence.

use std::sync::Arc;
use std::time::Duration;

use ephemera_proto::signing::KeyId;
use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::node::disk_reserve::Space;

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Buckets of `ephemera_http_request_duration_seconds`: from a cached batch (well under a
/// millisecond) to an upload waiting for its group's flush, and the 10 s header limit.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric the node itself renders: name, kind, help. (Federation metrics are listed
/// in `federation/metrics.rs`.)
const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        "ephemera_build_info",
        Kind::Gauge,
        "Always 1; labels: version, store_format, schemes (accepted, in order), default_scheme.",
    ),
    (
        "ephemera_start_time_seconds",
        Kind::Gauge,
        "When this process started, unix seconds (node clock).",
    ),
    (
        "ephemera_batch_period_seconds",
        Kind::Gauge,
        "The configured batch period ([publication] batch_period_seconds).",
    ),
    (
        "ephemera_uploads_accepted_total",
        Kind::Counter,
        "Uploads stored, by kind (real, revision, relayed).",
    ),
    (
        "ephemera_reports_by_authority_total",
        Kind::Counter,
        "Uploads and revisions stored, by the key id of the authority that authorised them \
         and by origin (phone, peer): each authority's issuance as this node sees it.",
    ),
    (
        "ephemera_uploads_rejected_total",
        Kind::Counter,
        "Uploads refused, by API error code.",
    ),
    (
        "ephemera_decoys_total",
        Kind::Counter,
        "Decoy requests, by endpoint (upload, verify).",
    ),
    (
        "ephemera_verifications_total",
        Kind::Counter,
        "Code verifications, by outcome (certified, token-signed, decoy or the error code).",
    ),
    (
        "ephemera_codes_issued_total",
        Kind::Counter,
        "Upload codes issued.",
    ),
    (
        "ephemera_batches_published_total",
        Kind::Counter,
        "Signed batches published.",
    ),
    (
        "ephemera_batch_entries_total",
        Kind::Counter,
        "Entries in published batches, decoys included.",
    ),
    (
        "ephemera_last_cut_timestamp_seconds",
        Kind::Gauge,
        "Boundary of the newest durable batch cut, unix seconds (0: none yet).",
    ),
    (
        "ephemera_publication_writes_total",
        Kind::Counter,
        "Files written to the object store ([publication] object_store).",
    ),
    (
        "ephemera_publication_deletes_total",
        Kind::Counter,
        "Files deleted from the object store after the node purged them.",
    ),
    (
        "ephemera_publication_failures_total",
        Kind::Counter,
        "Writes and deletions in the object store that failed (retried at the next cut).",
    ),
    (
        "ephemera_cut_failures_total",
        Kind::Counter,
        "Batch cuts that failed (storage or flush error).",
    ),
    (
        "ephemera_batch_log_conflicts_total",
        Kind::Counter,
        "Signed batch-log heads that contradict an earlier head of the same node key, by kind (equivocation, rollback); the evidence is at /v1/heads/conflicts.",
    ),
    (
        "ephemera_purge_runs_total",
        Kind::Counter,
        "Retention purge runs, by result (ok, failed).",
    ),
    (
        "ephemera_last_purge_timestamp_seconds",
        Kind::Gauge,
        "When the last successful purge ran, unix seconds (node clock; 0: none yet).",
    ),
    (
        "ephemera_clock_anomaly",
        Kind::Gauge,
        "1 while purging or cutting is suspended because the wall clock stepped forward or is behind the last cut, else 0.",
    ),
    (
        "ephemera_node_time_seconds",
        Kind::Gauge,
        "The node's wall clock at its last purge or cut check, unix seconds (compare with the monitoring host's).",
    ),
    (
        "ephemera_purged_records_total",
        Kind::Counter,
        "Records deleted by the retention purge, by kind.",
    ),
    (
        "ephemera_storage_bytes",
        Kind::Gauge,
        "Size of the database on disk.",
    ),
    ("ephemera_stored_uploads", Kind::Gauge, "Uploads held."),
    (
        "ephemera_data_dir_free_bytes",
        Kind::Gauge,
        "Bytes available to the node on the data folder's filesystem (statvfs f_bavail).",
    ),
    (
        "ephemera_data_dir_size_bytes",
        Kind::Gauge,
        "Size of the data folder's filesystem (statvfs).",
    ),
    (
        "ephemera_disk_reserve_bytes",
        Kind::Gauge,
        "The free-space reserve ([storage] free_space_reserve_mb), in bytes; 0: off.",
    ),
    (
        "ephemera_disk_reserve_active",
        Kind::Gauge,
        "1 while free space on the data folder's filesystem is below the reserve and no new reports are taken (503 insufficient-storage), else 0.",
    ),
    (
        "ephemera_twin_detected",
        Kind::Gauge,
        "1 once peers reported another copy of this node (same keys and identity) running; the copy that started later cuts no batch until restarted. 0 otherwise.",
    ),
    (
        "ephemera_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by route class (phone, console, serving, health, other) and status class (2xx..5xx).",
    ),
    (
        "ephemera_http_too_many_requests_total",
        Kind::Counter,
        "HTTP 429 answers, by route class.",
    ),
    (
        "ephemera_http_request_duration_seconds",
        Kind::Histogram,
        "Time from request head to response head, by route class.",
    ),
];

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The route class of a request path, the only label HTTP metrics carry.
///
/// | class | routes |
/// | --- | --- |
/// | `phone` | `POST /v1/verify`, `POST /v1/uploads` |
/// | `serving` | `/v1/batches*`, `/v1/exports/*`, `/v1/authority*`, `/v1/openapi.json` |
/// | `console` | `/v1/session*`, `/v1/accounts*`, `/v1/codes`, `/console*`, `/case-worker*`, `/` |
/// | `health` | `/healthz`, `/metrics` |
/// | `other` | anything else (404s) |
pub(crate) fn route_class(path: &str) -> &'static str {
    match path {
        "/v1/verify" | "/v1/uploads" => "phone",
        "/healthz" | "/metrics" => "health",
        "/v1/session" | "/v1/sessions" | "/v1/accounts" | "/v1/codes" => "console",
        "/v1/batches" | "/v1/openapi.json" | "/v1/authority" => "serving",
        _ if path.starts_with("/v1/batches/")
            || path.starts_with("/v1/exports/")
            || path.starts_with("/v1/authority/") =>
        {
            "serving"
        }
        _ if path == "/"
            || path.starts_with("/console")
            || path.starts_with("/case-worker")
            || path.starts_with("/v1/session/")
            || path.starts_with("/v1/accounts/") =>
        {
            "console"
        }
        _ => "other",
    }
}

/// Route classes, in exposition order.
pub(crate) const ROUTE_CLASSES: [&str; 5] = ["phone", "console", "serving", "health", "other"];
const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// The node's metrics.
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Per route class (index into [`ROUTE_CLASSES`]), looked up once: every request
    /// touches them.
    http: Vec<HttpHandles>,
}

struct HttpHandles {
    /// By status class, index into [`STATUS_CLASSES`].
    requests: Vec<metrics::Counter>,
    too_many: metrics::Counter,
    latency: metrics::Histogram,
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
    /// A fresh set of metrics: every node metric described, counters with closed label sets
    /// at zero.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("ephemera_http_request_duration_seconds".to_owned()),
                &LATENCY_BUCKETS,
            )
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let http = ROUTE_CLASSES
            .iter()
            .map(|&class| HttpHandles {
                requests: STATUS_CLASSES
                    .iter()
                    .map(|&status| {
                        recorder.register_counter(
                            &Key::from_parts(
                                "ephemera_http_requests_total",
                                vec![Label::new("class", class), Label::new("status", status)],
                            ),
                            &METADATA,
                        )
                    })
                    .collect(),
                too_many: recorder.register_counter(
                    &Key::from_parts(
                        "ephemera_http_too_many_requests_total",
                        vec![Label::new("class", class)],
                    ),
                    &METADATA,
                ),
                // Registered before any sample: rendered with empty buckets.
                latency: recorder.register_histogram(
                    &Key::from_parts(
                        "ephemera_http_request_duration_seconds",
                        vec![Label::new("class", class)],
                    ),
                    &METADATA,
                ),
            })
            .collect();
        let metrics = Metrics {
            recorder: Arc::new(recorder),
            handle,
            http,
        };
        metrics.initialise();
        metrics
    }

    fn initialise(&self) {
        for &(name, kind, help) in DESCRIPTIONS {
            let name = KeyName::from_const_str(name);
            let help = SharedString::const_str(help);
            match kind {
                Kind::Counter => self.recorder.describe_counter(name, None, help),
                Kind::Gauge => self.recorder.describe_gauge(name, None, help),
                Kind::Histogram => {
                    self.recorder
                        .describe_histogram(name, Some(Unit::Seconds), help);
                }
            }
        }
        for kind in ["real", "revision", "relayed"] {
            self.counter(
                "ephemera_uploads_accepted_total",
                vec![Label::new("kind", kind)],
                0,
            );
        }
        for endpoint in ["upload", "verify"] {
            self.counter(
                "ephemera_decoys_total",
                vec![Label::new("endpoint", endpoint)],
                0,
            );
        }
        // Open label sets: the outcomes alerts and the dashboard watch most, from the error
        // type itself; other codes appear with their first occurrence.
        use crate::api::error::ApiError;
        for outcome in ["certified", ApiError::TooManyAttempts.code()] {
            self.counter(
                "ephemera_verifications_total",
                vec![Label::new("outcome", outcome)],
                0,
            );
        }
        self.counter(
            "ephemera_uploads_rejected_total",
            vec![Label::new(
                "reason",
                ApiError::PayloadTooLarge { max: 0 }.code(),
            )],
            0,
        );
        for name in [
            "ephemera_codes_issued_total",
            "ephemera_batches_published_total",
            "ephemera_batch_entries_total",
            "ephemera_cut_failures_total",
            "ephemera_publication_writes_total",
            "ephemera_publication_deletes_total",
            "ephemera_publication_failures_total",
        ] {
            self.counter(name, vec![], 0);
        }
        for kind in ["equivocation", "rollback"] {
            self.counter(
                "ephemera_batch_log_conflicts_total",
                vec![Label::new("kind", kind)],
                0,
            );
        }
        for result in ["ok", "failed"] {
            self.counter(
                "ephemera_purge_runs_total",
                vec![Label::new("result", result)],
                0,
            );
        }
        for kind in ["upload", "certificate", "batch", "export", "code", "queued"] {
            self.counter(
                "ephemera_purged_records_total",
                vec![Label::new("kind", kind)],
                0,
            );
        }
        for name in [
            "ephemera_last_cut_timestamp_seconds",
            "ephemera_last_purge_timestamp_seconds",
            "ephemera_disk_reserve_bytes",
            "ephemera_disk_reserve_active",
            "ephemera_twin_detected",
        ] {
            self.gauge(name, 0.0);
        }
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

    /// Build information and settings that alerts compare against.
    pub fn node_info(
        &self,
        store_format: u32,
        schemes: &[&'static str],
        batch_period_seconds: u64,
        start_time: u64,
    ) {
        let labels = vec![
            Label::new("version", env!("CARGO_PKG_VERSION")),
            Label::new("store_format", store_format.to_string()),
            Label::new("schemes", schemes.join(",")),
            Label::new("default_scheme", schemes.first().copied().unwrap_or("")),
        ];
        self.recorder
            .register_gauge(&Key::from_parts("ephemera_build_info", labels), &METADATA)
            .set(1.0);
        self.gauge("ephemera_batch_period_seconds", batch_period_seconds as f64);
        self.gauge("ephemera_start_time_seconds", start_time as f64);
    }

    /// Starts `ephemera_reports_by_authority_total` at zero for each authority this node
    /// trusts (so an alert's `increase` sees a first report), for both origins.
    pub fn authorities(&self, trusted: impl IntoIterator<Item = KeyId>) {
        for authority in trusted {
            for origin in ["phone", "peer"] {
                self.counter(
                    "ephemera_reports_by_authority_total",
                    vec![
                        Label::new("authority", hex::encode(authority.0)),
                        Label::new("origin", origin),
                    ],
                    0,
                );
            }
        }
    }

    /// An upload (`kind`: "real", "revision" or "relayed") authorised by `authority` was
    /// stored: counted once, at its first acceptance (a replay of the same bytes is
    /// [`Metrics::upload_replayed`]). The per-authority count makes each authority's
    /// issuance visible to every node that holds its reports (issue 31, item 6); its labels
    /// are bounded by the authorities a node trusts.
    pub fn upload_accepted(&self, kind: &'static str, authority: KeyId) {
        self.counter(
            "ephemera_uploads_accepted_total",
            vec![Label::new("kind", kind)],
            1,
        );
        let origin = if kind == "relayed" { "peer" } else { "phone" };
        self.counter(
            "ephemera_reports_by_authority_total",
            vec![
                Label::new("authority", hex::encode(authority.0)),
                Label::new("origin", origin),
            ],
            1,
        );
    }

    /// The node's view of the wall clock: its time, and whether purging or cutting is
    /// suspended for a clock anomaly (`ephemera_node_core::clock_guard`). The last cut is
    /// `ephemera_last_cut_timestamp_seconds`.
    pub fn clock(&self, node_time: u64, anomaly: bool) {
        self.gauge("ephemera_node_time_seconds", node_time as f64);
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

    /// The newest durable cut is the one of `boundary` (unix seconds).
    pub fn last_cut(&self, boundary: u64) {
        self.gauge("ephemera_last_cut_timestamp_seconds", boundary as f64);
    }

    /// Two signed heads of one node key contradict each other (`kind`: equivocation or
    /// rollback).
    pub fn batch_log_conflict(&self, kind: &'static str) {
        self.counter(
            "ephemera_batch_log_conflicts_total",
            vec![Label::new("kind", kind)],
            1,
        );
    }

    /// A round of publication to the object store.
    pub fn publication(&self, round: &crate::publish::Published) {
        self.counter("ephemera_publication_writes_total", vec![], round.written);
        self.counter("ephemera_publication_deletes_total", vec![], round.deleted);
        self.counter("ephemera_publication_failures_total", vec![], round.failed);
    }

    /// A batch cut failed.
    pub fn cut_failed(&self) {
        self.counter("ephemera_cut_failures_total", vec![], 1);
    }

    /// A purge ran at `now` (unix seconds); `ok` when it succeeded.
    pub fn purge_run(&self, ok: bool, now: u64) {
        let result = if ok { "ok" } else { "failed" };
        self.counter(
            "ephemera_purge_runs_total",
            vec![Label::new("result", result)],
            1,
        );
        if ok {
            self.gauge("ephemera_last_purge_timestamp_seconds", now as f64);
        }
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

    /// Free and total space of the data folder's filesystem, as last sampled
    /// (`crate::node::disk_reserve`).
    pub(crate) fn disk(&self, space: Space) {
        self.gauge("ephemera_data_dir_free_bytes", space.free as f64);
        self.gauge("ephemera_data_dir_size_bytes", space.size as f64);
    }

    /// The free-space reserve in bytes (0: off), and whether free space is below it, so
    /// that no new reports are taken.
    pub(crate) fn disk_reserve(&self, reserve_bytes: u64, below: bool) {
        self.gauge("ephemera_disk_reserve_bytes", reserve_bytes as f64);
        self.gauge(
            "ephemera_disk_reserve_active",
            if below { 1.0 } else { 0.0 },
        );
    }

    /// Peers reported another copy of this node running.
    pub(crate) fn twin_detected(&self) {
        self.gauge("ephemera_twin_detected", 1.0);
    }

    /// An HTTP request of route `class` was answered with `status` after `elapsed`.
    pub fn http_request(&self, class: &'static str, status: u16, elapsed: Duration) {
        let status_class = match status {
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            // 2xx, and 1xx, which the node never sends.
            _ => 0,
        };
        let index = ROUTE_CLASSES
            .iter()
            .position(|&c| c == class)
            .unwrap_or(ROUTE_CLASSES.len() - 1);
        let handles = &self.http[index];
        handles.requests[status_class].increment(1);
        if status == 429 {
            handles.too_many.increment(1);
        }
        handles.latency.record(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// A per-connection service wrapped so that every answer, the cached-batch fast path
/// included, counts in the HTTP metrics by route class and status class, with its latency
/// (request head in, response head out). Only the path is read, never the peer.
#[derive(Clone)]
pub(crate) struct Instrumented<S> {
    node: crate::node::Node,
    inner: S,
}

impl<S> Instrumented<S> {
    /// Wraps `inner`, counting into `node`'s metrics.
    pub(crate) fn new(node: crate::node::Node, inner: S) -> Self {
        Instrumented { node, inner }
    }
}

impl<S, B> hyper::service::Service<axum::http::Request<B>> for Instrumented<S>
where
    S: hyper::service::Service<
            axum::http::Request<B>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        >,
    S::Future: Unpin,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Timed<S::Future>;

    fn call(&self, request: axum::http::Request<B>) -> Self::Future {
        let class = route_class(request.uri().path());
        Timed {
            start: std::time::Instant::now(),
            class,
            node: self.node.clone(),
            inner: self.inner.call(request),
        }
    }
}

/// The future of [`Instrumented`]: counts the answer when it is ready.
pub(crate) struct Timed<F> {
    start: std::time::Instant,
    class: &'static str,
    node: crate::node::Node,
    inner: F,
}

impl<F> std::future::Future for Timed<F>
where
    F: std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>>
        + Unpin,
{
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        let output = std::task::ready!(std::pin::Pin::new(&mut this.inner).poll(cx));
        if let Ok(response) = &output {
            this.node.metrics().http_request(
                this.class,
                response.status().as_u16(),
                this.start.elapsed(),
            );
        }
        std::task::Poll::Ready(output)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The value of the sample `series` (name and labels exactly as rendered).
    pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    #[test]
    fn counters_render_with_labels() {
        let metrics = Metrics::new();
        metrics.upload_accepted("real", KeyId([0xab; 8]));
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
        metrics.upload_accepted("relayed", KeyId([0xab; 8]));
        let text = metrics.render();
        for origin in ["phone", "peer"] {
            assert_eq!(
                sample(
                    &text,
                    &format!(
                        "ephemera_reports_by_authority_total{{authority=\"abababababababab\",origin=\"{origin}\"}}"
                    )
                ),
                Some(1.0),
                "{text}"
            );
        }
        // Two nodes in one process do not share counters.
        assert_eq!(
            sample(
                &Metrics::new().render(),
                "ephemera_uploads_accepted_total{kind=\"real\"}"
            ),
            Some(0.0)
        );
    }

    #[test]
    fn every_metric_has_help_and_counters_start_at_zero() {
        let text = Metrics::new().render();
        for &(name, kind, help) in DESCRIPTIONS {
            if matches!(
                name,
                "ephemera_build_info"
                    | "ephemera_start_time_seconds"
                    | "ephemera_batch_period_seconds"
                    | "ephemera_storage_bytes"
                    | "ephemera_stored_uploads"
                    | "ephemera_data_dir_free_bytes"
                    | "ephemera_data_dir_size_bytes"
                    | "ephemera_clock_anomaly"
                    | "ephemera_node_time_seconds"
                    | "ephemera_reports_by_authority_total"
            ) {
                // Open label set, or set by the node when it opens / at the first scrape.
                continue;
            }
            let help_line = format!("# HELP {name} {help}");
            assert!(
                text.contains(&help_line),
                "missing {help_line:?} in\n{text}"
            );
            let kind_name = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert!(
                text.contains(&format!("# TYPE {name} {kind_name}")),
                "{name} in\n{text}"
            );
        }
        for class in ROUTE_CLASSES {
            for status in STATUS_CLASSES {
                let series = format!(
                    "ephemera_http_requests_total{{class=\"{class}\",status=\"{status}\"}}"
                );
                assert_eq!(sample(&text, &series), Some(0.0), "{series}");
            }
            let count =
                format!("ephemera_http_request_duration_seconds_count{{class=\"{class}\"}}");
            assert_eq!(sample(&text, &count), Some(0.0), "{count}\n{text}");
        }
        for series in [
            "ephemera_cut_failures_total",
            "ephemera_publication_failures_total",
            "ephemera_batches_published_total",
            "ephemera_batch_log_conflicts_total{kind=\"equivocation\"}",
            "ephemera_batch_log_conflicts_total{kind=\"rollback\"}",
            "ephemera_purge_runs_total{result=\"ok\"}",
            "ephemera_purge_runs_total{result=\"failed\"}",
            "ephemera_last_cut_timestamp_seconds",
            "ephemera_disk_reserve_active",
            "ephemera_twin_detected",
        ] {
            assert_eq!(sample(&text, series), Some(0.0), "{series}\n{text}");
        }
    }

    #[test]
    fn http_requests_count_by_class_and_status_class_with_latency() {
        let metrics = Metrics::new();
        metrics.http_request("phone", 200, Duration::from_millis(3));
        metrics.http_request("phone", 429, Duration::from_millis(1));
        metrics.http_request("serving", 503, Duration::from_secs(2));
        let text = metrics.render();
        let at = |s: &str| sample(&text, s);
        assert_eq!(
            at("ephemera_http_requests_total{class=\"phone\",status=\"2xx\"}"),
            Some(1.0)
        );
        assert_eq!(
            at("ephemera_http_requests_total{class=\"phone\",status=\"4xx\"}"),
            Some(1.0)
        );
        assert_eq!(
            at("ephemera_http_too_many_requests_total{class=\"phone\"}"),
            Some(1.0)
        );
        assert_eq!(
            at("ephemera_http_requests_total{class=\"serving\",status=\"5xx\"}"),
            Some(1.0)
        );
        assert_eq!(
            at("ephemera_http_request_duration_seconds_bucket{class=\"phone\",le=\"0.005\"}"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            at("ephemera_http_request_duration_seconds_bucket{class=\"serving\",le=\"1\"}"),
            Some(0.0)
        );
        assert_eq!(
            at("ephemera_http_request_duration_seconds_count{class=\"serving\"}"),
            Some(1.0)
        );
    }

    #[test]
    fn route_classes() {
        for (path, class) in [
            ("/v1/uploads", "phone"),
            ("/v1/verify", "phone"),
            ("/v1/batches", "serving"),
            ("/v1/batches/abc", "serving"),
            ("/v1/exports/index.txt", "serving"),
            ("/v1/authority/export-key.pem", "serving"),
            ("/v1/codes", "console"),
            ("/v1/session/totp", "console"),
            ("/v1/accounts/bob/roles", "console"),
            ("/v1/session", "console"),
            ("/case-worker", "console"),
            ("/case-worker.js", "console"),
            ("/console", "console"),
            ("/console.css", "console"),
            ("/v1/session/csrf", "console"),
            ("/", "console"),
            ("/healthz", "health"),
            ("/metrics", "health"),
            ("/v1/uploadsx", "other"),
            ("/wp-login.php", "other"),
        ] {
            assert_eq!(route_class(path), class, "{path}");
        }
    }

    /// What the federation records through the facade lands in the node's exposition
    /// when the node's recorder is the one in force (`serve` installs it globally).
    #[test]
    fn federation_metrics_reach_the_node_recorder() {
        let metrics = Metrics::new();
        assert!(
            !metrics
                .render()
                .contains("ephemera_federation_peers_banned_total")
        );
        ::metrics::with_local_recorder(metrics.recorder(), || {
            crate::federation::metrics::register();
        });
        let text = metrics.render();
        assert!(
            text.contains("# HELP ephemera_federation_peers_banned_total "),
            "{text}"
        );
        assert_eq!(
            sample(&text, "ephemera_federation_peers_banned_total"),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "ephemera_federation_peers_connected"),
            Some(0.0)
        );
        ::metrics::with_local_recorder(metrics.recorder(), || {
            crate::federation::metrics::banned();
        });
        assert_eq!(
            sample(&metrics.render(), "ephemera_federation_peers_banned_total"),
            Some(1.0)
        );
    }
}
