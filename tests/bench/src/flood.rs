//! Memory under a flood of stalled upload bodies (issue 24): the node's RSS before, at the
//! peak and some time after, against its in-flight body budget.
//!
//! Each round opens `connections` connections that announce a `body_bytes` upload and send
//! all of it but the last byte, then stall until the node's body timeout answers them. The
//! limits are `before + [http] in_flight_body_bytes` for the peak and `1.5 × before` for
//! the figure `after` seconds after the last round. The node runs in this process (two
//! worker threads), with its default limits unless the options change them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ephemera_node::Node;
use ephemera_node::clock::SystemClock;
use ephemera_node::config::NodeConfig;
use ephemera_node::server::{Background, serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::Figure;

/// What to flood with.
#[derive(Debug, Clone, Copy)]
pub struct FloodOptions {
    /// Stalled connections per round.
    pub connections: usize,
    /// Announced (and, but for one byte, sent) body size.
    pub body_bytes: usize,
    /// Rounds, one after another.
    pub rounds: usize,
    /// Seconds to wait after the last round before the last sample.
    pub after: Duration,
    /// `[http] in_flight_body_bytes` of the node (its default when `None`).
    pub budget: Option<usize>,
}

/// The glibc tunable the shipped unit sets (see `node/deploy/ephemera-node.service`).
pub const MMAP_THRESHOLD_ENV: &str = "MALLOC_MMAP_THRESHOLD_";

/// Runs the flood.
///
/// # Errors
/// When the node cannot start.
pub fn run(options: FloodOptions) -> anyhow::Result<Vec<Figure>> {
    let runtime = super::two_core_runtime();
    runtime.block_on(flood(options))
}

async fn flood(options: FloodOptions) -> anyhow::Result<Vec<Figure>> {
    let dir = std::env::temp_dir().join(format!("ephemera-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = NodeConfig {
        data_dir: dir.clone(),
        ..NodeConfig::default()
    };
    config.federation.enabled = false;
    if let Some(budget) = options.budget {
        config.http.in_flight_body_bytes = budget;
    }
    let budget = config.http.in_flight_body_bytes;
    let body_timeout = Duration::from_millis(config.http.body_read_timeout_ms);
    let opened = Node::open(config, Arc::new(SystemClock)).context("open node")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        opened.node.clone(),
        listener,
        Background::Off,
        async move {
            let _ = stopped.await;
        },
    ));
    // Warm up: the first requests allocate the runtime's and hyper's buffers.
    for _ in 0..20 {
        let mut connection = crate::http::Connection::open(addr).await?;
        connection.request("GET", "/healthz", &[], b"").await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = super::resident_bytes();
    eprintln!(
        "flood: rss before {:.1} MB, budget {:.1} MB, {} x {} bodies of {:.1} MB, glibc {}={}",
        before as f64 / 1e6,
        budget as f64 / 1e6,
        options.rounds,
        options.connections,
        options.body_bytes as f64 / 1e6,
        MMAP_THRESHOLD_ENV,
        std::env::var(MMAP_THRESHOLD_ENV).unwrap_or_else(|_| "(unset)".to_owned())
    );
    let body = Arc::new(vec![0u8; options.body_bytes.saturating_sub(1)]);
    let mut peak = before;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..options.rounds {
        let mut stalled = tokio::task::JoinSet::new();
        for _ in 0..options.connections {
            let body = body.clone();
            let length = options.body_bytes;
            stalled.spawn(async move { stalled_upload(addr, length, &body).await });
        }
        let started = Instant::now();
        // Sample while the bodies sit in the node (until the body timeout answers them).
        while !stalled.is_empty() {
            tokio::select! {
                done = stalled.join_next() => {
                    if let Some(Ok(status)) = done {
                        *statuses.entry(status).or_default() += 1;
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    peak = peak.max(super::resident_bytes());
                }
            }
            if started.elapsed() > body_timeout * 3 {
                stalled.abort_all();
            }
        }
        eprintln!(
            "flood: round {} done, peak so far {:.1} MB, answers {statuses:?}",
            round + 1,
            peak as f64 / 1e6
        );
    }
    let after_start = Instant::now();
    while after_start.elapsed() < options.after {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let after = super::resident_bytes();
    let _ = stop.send(());
    let _ = server.await;
    drop(opened);
    let _ = std::fs::remove_dir_all(&dir);
    let mb = |b: u64| b as f64 / 1e6;
    Ok(vec![
        Figure::new("flood-rss-before", mb(before), "MB", mb(before)),
        Figure::new(
            "flood-rss-peak",
            mb(peak),
            "MB",
            mb(before) + budget as f64 / 1e6,
        ),
        Figure::new(
            &format!("flood-rss-{}s-after", options.after.as_secs()),
            mb(after),
            "MB",
            1.5 * mb(before),
        ),
    ])
}

/// One stalled upload: the head and all but the last body byte, then waits for the node's
/// answer (its status; 0 when the connection closed without one).
async fn stalled_upload(addr: std::net::SocketAddr, length: usize, body: &[u8]) -> u16 {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let head = format!(
        "POST /v1/uploads HTTP/1.1\r\nHost: node\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    // The node may answer 503 at once (budget spent) and stop reading.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    std::str::from_utf8(answer.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
