//! Durable upload ingest: a release-built node in this process on 127.0.0.1 (sled in a
//! temporary folder, group commit, HTTP/1.1 keep-alive), fed real verified uploads by a
//! bounded set of concurrent raw-TCP clients. Every upload is acknowledged only after it is
//! flushed to disk. `limit` is the rate of the same requests decoded and verified in memory
//! (Ed25519 + HMAC + report rules) on the same two threads, without storage or HTTP.
//!
//! With `--postgres URL`, `ingest-postgres-1-node` and `ingest-postgres-2-nodes` measure the
//! same on PostgreSQL (the server on the same machine, so its CPU counts too), with one node
//! and with two nodes of one group sharing the database, clients spread over both.
//!
//! On PostgreSQL, `postgres-bytes-per-upload-…` is what the schema's tables (indexes and
//! TOAST included) hold per upload after the run, against the upload's own bytes on the
//! wire (`limit`): the figure the sizing in `node/docs/OPERATIONS.md` starts from.
//!
//! A second figure, `ingest-cpu`, divides the same uploads by the CPU time the whole process
//! spent on them (node and the in-process clients, Linux `/proc/self/stat`), against the
//! verification alone per CPU second: unlike the rate, it hardly moves when other work
//! shares the machine, so it compares changes on a busy one. Twice it is what two idle
//! cores could reach at best.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera_node::clock::{Clock, SystemClock};
use ephemera_node::config::{DatabaseUrl, NodeConfig, StoreBackend};
use ephemera_node::node::Node;
use ephemera_node::server::{Background, serve};
use ephemera_proto::auth::{ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents, ReportLimits};
use ephemera_proto::upload::{UploadBody, UploadRequest};
use ephemera_proto::wire;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Figure;

/// Concurrent client connections.
const CONNECTIONS: usize = 128;
/// Tokens per upload (a typical `pet` report of a few days).
const TOKENS: usize = 10;

/// The bar for PostgreSQL on this machine (issue 22): durable uploads/s.
const POSTGRES_TARGET: f64 = 5_000.0;

/// Where the measured nodes keep their records.
#[derive(Clone, Copy)]
enum Backend<'a> {
    /// sled in a temporary folder.
    Sled,
    /// One schema of the PostgreSQL server at this URL, shared by `nodes` nodes.
    Postgres { url: &'a str, nodes: usize },
}

/// Runs the ingest benchmark for about `budget` (at least 20 000 uploads) on sled, and
/// with `postgres` also on PostgreSQL with one node and with two.
pub fn run(budget: Duration, postgres: Option<&str>) -> Vec<Figure> {
    let runtime = super::two_core_runtime();
    let mut figures = runtime.block_on(ingest(budget, Backend::Sled));
    if let Some(url) = postgres {
        for nodes in [1, 2] {
            figures.extend(runtime.block_on(ingest(budget, Backend::Postgres { url, nodes })));
        }
    }
    figures
}

fn bodies(node: &Node, n: usize) -> Vec<Vec<u8>> {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let now = SystemClock.now();
    (0..n)
        .map(|_| {
            let contents = ReportContents::Pet(
                (0..TOKENS)
                    .map(|_| {
                        let mut t = [0u8; 16];
                        rng.fill_bytes(&mut t);
                        PublishedToken {
                            day: now.day(),
                            token: EncounterToken(t),
                        }
                    })
                    .collect(),
            );
            super::certified_upload_body(&node.keys().authority, contents, now, &mut rng)
        })
        .collect()
}

/// CPU time (user + system) this process has used so far, from Linux `/proc/self/stat`;
/// `None` elsewhere or if unreadable.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
    // /proc reports in USER_HZ, which Linux fixes at 100 for user space.
    Some(Duration::from_millis((ticks(14)? + ticks(15)?) * 10))
}

/// Uploads per CPU second over a span that began at `cpu_before`; 0 where unknown.
fn per_cpu_second(n: usize, cpu_before: Option<Duration>) -> f64 {
    match (cpu_before, process_cpu()) {
        (Some(before), Some(after)) if after > before => n as f64 / (after - before).as_secs_f64(),
        _ => 0.0,
    }
}

/// Decode + full verification of every body on two threads: the in-memory bound, as
/// uploads per second and per CPU second.
fn verify_rate(bodies: &[Vec<u8>], trusted: &TrustedAuthorities) -> (f64, f64) {
    let limits = ReportLimits::default();
    let now = SystemClock.now();
    let cpu_before = process_cpu();
    let start = Instant::now();
    std::thread::scope(|s| {
        for half in bodies.chunks(bodies.len().div_ceil(2)) {
            let limits = &limits;
            s.spawn(move || {
                for body in half {
                    let request: UploadRequest = wire::decode(body).expect("valid body");
                    let UploadBody::Real {
                        upload,
                        revision_key,
                    } = request.body
                    else {
                        panic!("real upload expected");
                    };
                    let verified = upload
                        .verify_bound(
                            ephemera_proto::revision::Binding::Upload(revision_key),
                            trusted,
                            now,
                            ExpiryPolicy::FirstUpload,
                            limits,
                        )
                        .expect("valid upload");
                    std::hint::black_box(verified);
                }
            });
        }
    });
    (
        bodies.len() as f64 / start.elapsed().as_secs_f64(),
        per_cpu_second(bodies.len(), cpu_before),
    )
}

async fn client(addr: std::net::SocketAddr, bodies: Arc<Vec<Vec<u8>>>, first: usize) -> usize {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut buf = Vec::with_capacity(4096);
    let mut ok = 0;
    for body in bodies.iter().skip(first).step_by(CONNECTIONS) {
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body).await.expect("write");
        // Read one response: headers, then Content-Length bytes.
        buf.clear();
        let (status, body_start, length) = loop {
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let status: u16 = head[9..12].parse().expect("status");
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().expect("length"));
                break (status, end + 4, length);
            }
        };
        while buf.len() < body_start + length {
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(
            status,
            200,
            "{}",
            String::from_utf8_lossy(&buf[body_start..])
        );
        ok += 1;
    }
    ok
}

/// The nodes of one measurement, opened on `backend`, sharing keys.
fn open_nodes(dir: &std::path::Path, backend: Backend<'_>) -> Vec<Node> {
    let config = |folder: std::path::PathBuf| {
        let mut config = NodeConfig {
            data_dir: folder,
            ..NodeConfig::default()
        };
        config.federation.enabled = false;
        if let Backend::Postgres { url, .. } = backend {
            config.storage.backend = StoreBackend::Postgres;
            config.storage.url = Some(DatabaseUrl::parse(url).expect("a PostgreSQL URL"));
            config.storage.schema = format!("bench_{}", std::process::id());
        }
        config
    };
    let first = Node::open(config(dir.join("node-0")), Arc::new(SystemClock))
        .expect("open node")
        .node;
    let count = match backend {
        Backend::Sled => 1,
        Backend::Postgres { nodes, .. } => nodes,
    };
    let mut nodes = vec![first];
    for i in 1..count {
        // A node of the same group: the first one's keys, the same schema.
        let folder = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&folder).expect("node folder");
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(dir.join("node-0").join(ephemera_node_core::keys::KEYS_DIR))
            .arg(&folder)
            .status()
            .expect("cp");
        assert!(copied.success(), "copy the keys");
        nodes.push(
            Node::open(config(folder), Arc::new(SystemClock))
                .expect("open node")
                .node,
        );
    }
    nodes
}

/// Bytes of every table of the measurement's schema, with indexes and TOAST.
async fn schema_bytes(url: &str) -> u64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    let connection = tokio::spawn(connection);
    let bytes: i64 = client
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r'",
            &[&format!("bench_{}", std::process::id())],
        )
        .await
        .expect("schema size")
        .get(0);
    drop(client);
    let _ = connection.await;
    u64::try_from(bytes).unwrap_or(0)
}

/// Drops the schema a PostgreSQL measurement used (`bench_<process id>`).
pub(crate) async fn drop_schema(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA bench_{} CASCADE", std::process::id()))
        .await
        .expect("drop the bench schema");
    drop(client);
    let _ = connection.await;
}

async fn ingest(budget: Duration, backend: Backend<'_>) -> Vec<Figure> {
    let dir = std::env::temp_dir().join(format!("ephemera-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let nodes = open_nodes(&dir, backend);
    // Enough uploads for about `budget` at the target rate, at least 20 000.
    let n = ((budget.as_secs_f64() * 12_000.0) as usize).max(20_000);
    let bodies = Arc::new(bodies(&nodes[0], n));
    let trusted = TrustedAuthorities::new().with(nodes[0].keys().authority.public_key());
    let (limit, limit_per_cpu) = verify_rate(&bodies, &trusted);

    let mut addrs = Vec::new();
    let mut servers = Vec::new();
    for node in &nodes {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        addrs.push(listener.local_addr().expect("local addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(node.clone(), listener, Background::Off, async move {
            let _ = stopped.await;
        }));
        servers.push((stop, server));
    }
    let cpu_before = process_cpu();
    let start = Instant::now();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| tokio::spawn(client(addrs[i % addrs.len()], bodies.clone(), i)))
        .collect();
    let mut done = 0;
    for c in clients {
        done += c.await.expect("client");
    }
    let seconds = start.elapsed().as_secs_f64();
    let per_cpu = per_cpu_second(n, cpu_before);
    assert_eq!(done, n);
    assert_eq!(nodes[0].store().upload_count().expect("count"), n as u64);
    for (stop, server) in servers {
        let _ = stop.send(());
        let _ = server.await;
    }
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
    match backend {
        Backend::Sled => vec![
            Figure::new("ingest", n as f64 / seconds, "uploads/s", limit),
            Figure::new("ingest-cpu", per_cpu, "uploads/CPU-s", limit_per_cpu),
        ],
        Backend::Postgres { url, nodes } => {
            let stored = schema_bytes(url).await;
            drop_schema(url).await;
            let sent = bodies.iter().map(Vec::len).sum::<usize>();
            vec![
                Figure::new(
                    &format!(
                        "ingest-postgres-{nodes}-node{}",
                        if nodes > 1 { "s" } else { "" }
                    ),
                    n as f64 / seconds,
                    "uploads/s",
                    POSTGRES_TARGET,
                ),
                Figure::new(
                    &format!(
                        "postgres-bytes-per-upload-{nodes}-node{}",
                        if nodes > 1 { "s" } else { "" }
                    ),
                    stored as f64 / n as f64,
                    "bytes",
                    sent as f64 / n as f64,
                ),
            ]
        }
    }
}
