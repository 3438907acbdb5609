//! A bounded load test: a node in this process on 127.0.0.1 (sled in a temporary folder,
//! batch cutter and retention purge running) takes a fixed offered load for a fixed time
//! while its memory and disk are sampled every second.
//!
//! The load is what a deployment sees: a case worker issuing codes in bulk, phones
//! exchanging a code for a certificate and uploading (`pet` tokens over the last four days),
//! phones sending decoy verify + upload pairs, and phones syncing (batch index, then every
//! new batch). Requests are paced open-loop (a slot every `1/rate` s, latency measured from
//! the slot, so a slow server cannot hide its backlog). The node's clock runs fast — the
//! whole retention period passes in the first third of the run — so the last two thirds
//! are the steady state in which every hour's uploads are matched by an hour's purge.
//!
//! Figures: achieved rates against the offered ones (ratio 1.0 = sustained), and resident
//! memory and disk at the end against the end of the first retention period (ratio ≈ 1.0 =
//! flat). Memory is the whole process's (node and load generator; the generator's is fixed:
//! a bounded number of connections and a fixed latency histogram).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ephemera_node::clock::{Clock, SystemClock};
use ephemera_node::config::NodeConfig;
use ephemera_node::node::Node;
use ephemera_node::server::{Background, serve};
use ephemera_proto::UnixTime;
use ephemera_proto::api::{VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{ReportHmacKey, UploadCode};
use ephemera_proto::batch::BatchIndex;
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents};
use ephemera_proto::upload::{SignedUpload, UploadRequest};
use ephemera_proto::wire;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng as _};
use tokio::sync::{Mutex, mpsc};

use super::Figure;
use super::http::Connection;

/// What to offer and for how long.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Length of the run.
    pub duration: Duration,
    /// Real uploads offered per second (each is a verify and an upload request).
    pub upload_rate: f64,
    /// Decoy verify + upload pairs offered per second.
    pub decoy_rate: f64,
    /// Phone syncs offered per second (the index, then each new batch).
    pub sync_rate: f64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            duration: Duration::from_secs(180),
            upload_rate: 500.0,
            decoy_rate: 500.0,
            sync_rate: 500.0,
        }
    }
}

/// Tokens in each upload (a few days of a `pet` phone's close encounters).
const TOKENS_PER_UPLOAD: usize = 20;
/// Connections per kind of traffic; each carries one request at a time.
const CONNECTIONS: usize = 48;
/// Codes a case worker asks for at once (the node's default `max_codes_per_request`).
const CODES_PER_REQUEST: u32 = 1000;

/// A clock that runs `factor` times faster than the wall clock from `origin`.
struct FastClock {
    origin: UnixTime,
    started: Instant,
    factor: u64,
}

impl Clock for FastClock {
    fn now(&self) -> UnixTime {
        self.origin.plus_seconds(self.monotonic_seconds())
    }

    /// Time runs `factor` times faster for both clocks: no step.
    fn monotonic_seconds(&self) -> u64 {
        (self.started.elapsed().as_secs_f64() * self.factor as f64) as u64
    }
}

/// Latencies in whole milliseconds, 0..=10 s, in a fixed array (constant memory).
struct Histogram(Vec<AtomicU64>);

impl Histogram {
    const MAX_MS: usize = 10_000;

    fn new() -> Histogram {
        Histogram((0..=Self::MAX_MS).map(|_| AtomicU64::new(0)).collect())
    }

    fn record(&self, latency: Duration) {
        let ms = (latency.as_millis() as usize).min(Self::MAX_MS);
        self.0[ms].fetch_add(1, Ordering::Relaxed);
    }

    /// The smallest latency (ms) at or below which `q` of the samples lie.
    fn quantile(&self, q: f64) -> usize {
        let counts: Vec<u64> = self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let wanted = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (ms, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted.max(1) {
                return ms;
            }
        }
        Self::MAX_MS
    }
}

/// Completions per second of the run, per kind of traffic.
struct Timeline {
    started: Instant,
    seconds: Vec<AtomicU64>,
}

impl Timeline {
    fn new(started: Instant, duration: Duration) -> Timeline {
        let slots = duration.as_secs() as usize + 2;
        Timeline {
            started,
            seconds: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self) {
        let second = (self.started.elapsed().as_secs() as usize).min(self.seconds.len() - 1);
        self.seconds[second].fetch_add(1, Ordering::Relaxed);
    }

    fn at(&self, second: usize) -> u64 {
        self.seconds
            .get(second)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Completions per second over `[from, to)` seconds.
    fn rate(&self, from: usize, to: usize) -> f64 {
        let total: u64 = (from..to).map(|s| self.at(s)).sum();
        total as f64 / (to - from).max(1) as f64
    }
}

/// One kind of traffic: its pacing, completions and latencies.
struct Traffic {
    name: &'static str,
    period: Duration,
    started: Instant,
    ends: Instant,
    next_slot: AtomicU64,
    done: Timeline,
    latency: Histogram,
    errors: AtomicU64,
}

impl Traffic {
    fn new(name: &'static str, rate: f64, started: Instant, duration: Duration) -> Arc<Traffic> {
        Arc::new(Traffic {
            name,
            period: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            started,
            ends: started + duration,
            next_slot: AtomicU64::new(0),
            done: Timeline::new(started, duration),
            latency: Histogram::new(),
            errors: AtomicU64::new(0),
        })
    }

    /// The next unclaimed slot, or `None` once the run is over.
    fn claim(&self) -> Option<Instant> {
        let k = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let slot = self.started + self.period.mul_f64(k as f64);
        (slot < self.ends).then_some(slot)
    }

    /// Runs `op` on one connection for every slot this worker claims.
    async fn drive<S, F>(self: Arc<Self>, addr: SocketAddr, mut state: S, op: F)
    where
        F: AsyncFnMut(&mut Connection, &mut S) -> anyhow::Result<()>,
    {
        let mut op = op;
        let Ok(mut connection) = Connection::open(addr).await else {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        while let Some(slot) = self.claim() {
            tokio::time::sleep_until(slot.into()).await;
            match op(&mut connection, &mut state).await {
                Ok(()) => {
                    self.latency.record(slot.elapsed());
                    self.done.record();
                }
                Err(e) => {
                    if self.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("{}: first error: {e:#}", self.name);
                    }
                    match Connection::open(addr).await {
                        Ok(fresh) => connection = fresh,
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

/// Runs the load test.
///
/// # Errors
/// When the node cannot start, or any request failed (a sustained load must not fail).
pub fn run(options: LoadOptions) -> anyhow::Result<Vec<Figure>> {
    if options.duration < Duration::from_secs(15) {
        bail!("the load test needs at least 15 s: a third of it is the retention period");
    }
    let runtime = super::two_core_runtime();
    runtime.block_on(load(options))
}

/// One sample of the process and the store.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_bytes: u64,
    disk_bytes: u64,
    stored_uploads: u64,
}

async fn load(options: LoadOptions) -> anyhow::Result<Vec<Figure>> {
    let dir = std::env::temp_dir().join(format!("ephemera-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let retention_days = 14u32;
    // The retention period passes in the first third of the run.
    let third = options.duration.as_secs_f64() / 3.0;
    let factor = (f64::from(retention_days) * 86_400.0 / third).ceil() as u64;
    let mut config = NodeConfig {
        data_dir: dir.clone(),
        ..NodeConfig::default()
    };
    config.federation.enabled = false;
    config.retention.days = retention_days;
    // One batch and one purge per wall-clock second.
    config.publication.batch_period_seconds = factor;
    config.retention.purge_period_seconds = 1;
    // Lifetimes long in node time, so that fast time does not expire codes waiting in
    // the case worker's stock or certificates in flight.
    config.authority.code_lifetime_seconds = options.duration.as_secs() * factor * 2;
    config.authority.certificate_lifetime_seconds = 86_400;
    config.authority.session_lifetime_seconds = 365 * 86_400;
    let clock = Arc::new(FastClock {
        origin: SystemClock.now(),
        started: Instant::now(),
        factor,
    });
    let opened = Node::open(config, clock).context("open node")?;
    let node = opened.node;
    let password = node.add_account("load", &[ephemera_node::store::Role::BulkIssuer])?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(node.clone(), listener, Background::Run, async move {
        let _ = stopped.await;
    }));

    // The case worker keeps a bounded stock of fresh codes.
    let mut session = Connection::open(addr).await?;
    let login = session
        .request(
            "POST",
            "/v1/session",
            &["Content-Type: application/json"],
            serde_json::json!({"name": "load", "password": password.0.as_str()})
                .to_string()
                .as_bytes(),
        )
        .await?;
    if login.status != 200 {
        bail!("sign-in answered {}", login.status);
    }
    let token: serde_json::Value = serde_json::from_slice(&login.body)?;
    let bearer = format!(
        "Authorization: Bearer {}",
        token["token"].as_str().context("session token")?
    );
    // A one-time password: the first sign-in sets one of its own before anything else.
    let changed = session
        .request(
            "POST",
            "/v1/session/password",
            &["Content-Type: application/json", &bearer],
            serde_json::json!({
                "current_password": password.0.as_str(),
                "new_password": format!("load-{}", password.0.as_str()),
            })
            .to_string()
            .as_bytes(),
        )
        .await?;
    if changed.status != 204 {
        bail!("setting the password answered {}", changed.status);
    }
    let (code_tx, code_rx) = mpsc::channel::<String>(2 * CODES_PER_REQUEST as usize);
    let code_rx = Arc::new(Mutex::new(code_rx));
    let issuer = tokio::spawn(async move {
        let body =
            serde_json::json!({"test_type": "confirmed", "count": CODES_PER_REQUEST}).to_string();
        loop {
            let response = session
                .request(
                    "POST",
                    "/v1/codes",
                    &["Content-Type: application/json", &bearer],
                    body.as_bytes(),
                )
                .await?;
            if response.status != 200 {
                bail!("issuing codes answered {}", response.status);
            }
            let issued: serde_json::Value = serde_json::from_slice(&response.body)?;
            for code in issued["codes"].as_array().context("codes")? {
                let code = code["code"].as_str().context("code")?.to_owned();
                if code_tx.send(code).await.is_err() {
                    return Ok(());
                }
            }
        }
    });

    let started = Instant::now();
    let uploads = Traffic::new("uploads", options.upload_rate, started, options.duration);
    let decoys = Traffic::new("decoys", options.decoy_rate, started, options.duration);
    let syncs = Traffic::new("syncs", options.sync_rate, started, options.duration);
    let mut workers = tokio::task::JoinSet::new();
    // Decoys are sized like a real upload of this run (a certificate the node's own
    // authority signs here, never sent).
    let typical_upload_len = {
        let mut rng = ChaCha20Rng::from_seed([0; 32]);
        let contents = pet_contents(&node, &mut rng);
        super::certified_upload_body(&node.keys().authority, contents, node.now(), &mut rng).len()
    };
    for worker in 0..CONNECTIONS {
        let rng = ChaCha20Rng::seed_from_u64(worker as u64);
        let (node, codes) = (node.clone(), code_rx.clone());
        workers.spawn(uploads.clone().drive(addr, rng, async move |c, rng| {
            let code = codes
                .lock()
                .await
                .recv()
                .await
                .context("code stock ran dry")?;
            upload(c, &node, &code, rng).await
        }));
        workers.spawn(decoys.clone().drive(addr, (), async move |c, ()| {
            decoy(c, typical_upload_len).await
        }));
        workers.spawn(syncs.clone().drive(addr, 0u64, sync));
    }

    // Sample once a second while the load runs.
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed() < options.duration {
        ticker.tick().await;
        let sample = Sample {
            rss_bytes: super::resident_bytes(),
            disk_bytes: node.store().size_on_disk()?,
            stored_uploads: node.store().upload_count()?,
        };
        let second = samples.len();
        eprintln!(
            "t={second:>3}s node-day={} uploads/s={} decoys/s={} syncs/s={} rss={:.1}MB disk={:.1}MB stored={}",
            node.now().day().0,
            uploads.done.at(second.saturating_sub(1)),
            decoys.done.at(second.saturating_sub(1)),
            syncs.done.at(second.saturating_sub(1)),
            sample.rss_bytes as f64 / 1e6,
            sample.disk_bytes as f64 / 1e6,
            sample.stored_uploads,
        );
        samples.push(sample);
    }
    while workers.join_next().await.is_some() {}
    issuer.abort();
    let _ = stop.send(());
    let _ = server.await;
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);

    let errors: Vec<String> = [&uploads, &decoys, &syncs]
        .iter()
        .filter(|t| t.errors.load(Ordering::Relaxed) > 0)
        .map(|t| format!("{} {}", t.errors.load(Ordering::Relaxed), t.name))
        .collect();
    if !errors.is_empty() {
        bail!("requests failed under load: {}", errors.join(", "));
    }
    let (warm, end) = (third as usize, samples.len());
    // Rates over whole seconds of offered load only (sampling starts with an immediate tick,
    // so there is one sample more than there are seconds of load).
    let load_end = options.duration.as_secs() as usize;
    for traffic in [&uploads, &decoys, &syncs] {
        eprintln!(
            "{}: latency from slot p50 {} ms, p99 {} ms",
            traffic.name,
            traffic.latency.quantile(0.5),
            traffic.latency.quantile(0.99)
        );
    }
    let peak = |from: usize, pick: fn(&Sample) -> u64| {
        samples[from.min(end - 1)..end]
            .iter()
            .map(pick)
            .max()
            .unwrap_or(0) as f64
            / 1e6
    };
    let at_warm = |pick: fn(&Sample) -> u64| pick(&samples[warm.min(end - 1)]) as f64 / 1e6;
    let last = |pick: fn(&Sample) -> u64| pick(&samples[end - 1]) as f64 / 1e6;
    Ok(vec![
        Figure::new(
            "load-uploads-sustained",
            uploads.done.rate(warm, load_end),
            "uploads/s",
            options.upload_rate,
        ),
        Figure::new(
            "load-decoys-sustained",
            decoys.done.rate(warm, load_end),
            "decoys/s",
            options.decoy_rate,
        ),
        Figure::new(
            "load-syncs-sustained",
            syncs.done.rate(warm, load_end),
            "syncs/s",
            options.sync_rate,
        ),
        Figure::new(
            "load-rss-peak-steady-state",
            peak(warm, |s| s.rss_bytes),
            "MB",
            at_warm(|s| s.rss_bytes),
        ),
        Figure::new(
            "load-disk-end",
            last(|s| s.disk_bytes),
            "MB",
            at_warm(|s| s.disk_bytes),
        ),
        Figure::new(
            "load-stored-uploads-end",
            last(|s| s.stored_uploads) * 1e6,
            "uploads",
            at_warm(|s| s.stored_uploads) * 1e6,
        ),
    ])
}

/// A report of `pet` tokens spread over the node's last four days.
fn pet_contents(node: &Node, rng: &mut ChaCha20Rng) -> ReportContents {
    let today = node.now().day();
    ReportContents::Pet(
        (0..TOKENS_PER_UPLOAD)
            .map(|i| {
                let mut token = [0u8; 16];
                rng.fill_bytes(&mut token);
                PublishedToken {
                    day: today.minus((i % 4) as u32),
                    token: EncounterToken(token),
                }
            })
            .collect(),
    )
}

/// A phone's report: code → certificate → upload.
async fn upload(
    connection: &mut Connection,
    node: &Node,
    code: &str,
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<()> {
    let contents = pet_contents(node, rng);
    let hmac_key = ReportHmacKey::generate(rng);
    let code = UploadCode::parse(code).map_err(|e| anyhow::anyhow!("issued code: {e}"))?;
    let verify = VerifyRequest::real(
        &code,
        &hmac_key.authenticate_bound(
            &contents,
            ephemera_proto::revision::HmacBinding::Upload(
                ephemera_proto::revision::RevisionSecret::from_seed(&[7; 32]).key(),
            ),
        ),
    );
    let response = connection
        .post("/v1/verify", "application/json", &verify.to_padded_json())
        .await?;
    if response.status != 200 {
        bail!("verify answered {}", response.status);
    }
    let certificate = serde_json::from_slice::<VerifyResponse>(&response.body)?
        .certificate()
        .map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
    let body = wire::encode(&UploadRequest::real(
        SignedUpload {
            contents,
            certificate,
            hmac_key,
        },
        ephemera_proto::revision::RevisionSecret::from_seed(&[7; 32]).key(),
    ));
    let response = connection
        .post("/v1/uploads", "application/octet-stream", &body)
        .await?;
    if response.status != 200 {
        bail!(
            "upload answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    Ok(())
}

/// A decoy verify and upload, sized like real ones.
async fn decoy(connection: &mut Connection, typical_upload_len: usize) -> anyhow::Result<()> {
    let verify = connection
        .post(
            "/v1/verify",
            "application/json",
            &VerifyRequest::decoy(
                &mut <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(
                    typical_upload_len as u64,
                ),
            )
            .to_padded_json(),
        )
        .await?;
    let body = wire::encode(&UploadRequest::decoy(typical_upload_len));
    let upload = connection
        .post("/v1/uploads", "application/octet-stream", &body)
        .await?;
    if (verify.status, upload.status) != (200, 200) {
        bail!(
            "decoy verify answered {}, decoy upload {}",
            verify.status,
            upload.status
        );
    }
    Ok(())
}

/// A phone's sync: the index after its cursor, then every batch it names.
async fn sync(connection: &mut Connection, cursor: &mut u64) -> anyhow::Result<()> {
    let response = connection
        .request("GET", &format!("/v1/batches?after={cursor}"), &[], b"")
        .await?;
    if response.status != 200 {
        bail!("batch index answered {}", response.status);
    }
    let index: BatchIndex = serde_json::from_slice(&response.body)?;
    for entry in &index.batches {
        let batch = connection
            .request("GET", &format!("/v1/batches/{}", entry.id), &[], b"")
            .await?;
        if batch.status != 200 || batch.body.len() as u64 != entry.size {
            bail!(
                "batch answered {} with {} bytes, index said {}",
                batch.status,
                batch.body.len(),
                entry.size
            );
        }
    }
    *cursor = index.next_cursor;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let h = Histogram::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        h.record(Duration::from_secs(60));
        assert_eq!(h.quantile(1.0), Histogram::MAX_MS);
    }

    #[test]
    fn pacing_stops_at_the_end_and_spaces_slots() {
        let started = Instant::now();
        let t = Traffic::new("t", 100.0, started, Duration::from_secs(1));
        let slots: Vec<Instant> = std::iter::from_fn(|| t.claim()).collect();
        assert_eq!(slots.len(), 100);
        assert_eq!(slots[1] - slots[0], Duration::from_millis(10));
    }

    #[test]
    fn timeline_rates() {
        let t = Timeline::new(Instant::now(), Duration::from_secs(3));
        for _ in 0..6 {
            t.record();
        }
        assert_eq!(t.at(0), 6);
        assert_eq!(t.rate(0, 2), 3.0);
    }

    #[test]
    fn too_short_a_run_is_refused() {
        let options = LoadOptions {
            duration: Duration::from_secs(5),
            ..LoadOptions::default()
        };
        assert!(run(options).is_err());
    }
}
