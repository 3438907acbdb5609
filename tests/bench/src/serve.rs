//! Serving one cached, signed batch over HTTP: requests/s of a release `ephemera-node`
//! against nginx serving the same bytes from a temporary root, both measured in this run
//! with the same load generator (`wrk`, from Debian: a thread per core, HTTP/1.1 keep-alive) on
//! 127.0.0.1, at each of [`CONNECTIONS`]. nginx gets one worker process per core, as the
//! node's runtime gets one worker thread per core. `limit` is nginx's rate at the same
//! connection count; the target is `ratio >= 1.0` at each (issue 16).
//!
//! With a PostgreSQL URL, two more figures: `serve-postgres-1-node` (the same `wrk` at 64
//! connections against a node of a group on PostgreSQL) and `serve-postgres-2-nodes` (two
//! nodes of that group, 32 connections each, at once; their sum), each against the sled
//! node's rate at 64 connections in the same run. Cached batches never touch the database,
//! so these show that a group serves as one node does, per node.
//!
//! Needs `target/release/ephemera-node` beside this binary (`cargo build --release
//! -p ephemera-node -p ephemera-bench`), and installs Debian's `nginx` and `wrk` with
//! apt-get when they are missing and this runs as root.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::Figure;

/// The connection counts measured, each with its own figure: one client waiting on every
/// answer, a busy server, and many more clients than cores.
pub const CONNECTIONS: [u32; 3] = [1, 64, 256];

/// Kills its child on drop.
struct Guard(Child);

impl Drop for Guard {
    /// SIGTERM, then up to 10 s for a clean exit: nginx's master takes its workers down
    /// with it (a SIGKILL left them running, holding the port), the node flushes. SIGKILL
    /// only after that.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the serve benchmark for about `budget` per server, and with `postgres` also on
/// nodes of a group there.
///
/// # Errors
/// When the node, nginx, wrk or PostgreSQL cannot be found, installed or started.
pub fn run(budget: Duration, postgres: Option<&str>) -> anyhow::Result<Vec<Figure>> {
    ensure_installed("nginx", "/usr/sbin/nginx")?;
    ensure_installed("wrk", "/usr/bin/wrk")?;
    let node_bin = std::env::current_exe()?
        .parent()
        .context("exe folder")?
        .join("ephemera-node");
    if !node_bin.exists() {
        bail!(
            "{} is missing: cargo build --release -p ephemera-node",
            node_bin.display()
        );
    }
    let work = TempDir::new()?;
    let (_node, node_addr) = start_node(&node_bin, &work.path().join("node-data"), &[])?;
    let (path, bytes) = first_batch(node_addr)?;
    let (_nginx, nginx_addr) = start_nginx(work.path(), &path, &bytes)?;
    // Same bytes from both.
    let from_nginx = get(nginx_addr, &path)?;
    if from_nginx != bytes {
        bail!("nginx serves different bytes");
    }
    let seconds = budget.as_secs_f64().max(1.0).round() as u64;
    eprintln!("serve: load average before: {}", load_average());
    let mut figures = Vec::new();
    for connections in CONNECTIONS {
        // Warm both, then alternate three times and keep each server's best run (the
        // machine is shared: the best run is the one least disturbed).
        wrk_all(node_addr, &path, 2, connections)?;
        wrk_all(nginx_addr, &path, 2, connections)?;
        let mut node_rate: f64 = 0.0;
        let mut nginx_rate: f64 = 0.0;
        for _ in 0..3 {
            node_rate = node_rate.max(wrk_all(node_addr, &path, seconds, connections)?);
            nginx_rate = nginx_rate.max(wrk_all(nginx_addr, &path, seconds, connections)?);
        }
        figures.push(Figure::new(
            &format!("serve-cached-batch-{}B-c{connections}", bytes.len()),
            node_rate,
            "requests/s",
            nginx_rate,
        ));
    }
    if let Some(url) = postgres {
        let sled_rate = figures
            .iter()
            .find(|f| f.bench.ends_with("-c64"))
            .map_or(0.0, |f| f.value);
        let measured = serve_postgres(&node_bin, work.path(), url, seconds, sled_rate);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(super::ingest::drop_schema(url));
        figures.extend(measured?);
    }
    eprintln!("serve: load average after: {}", load_average());
    Ok(figures)
}

/// Two nodes of one group on a fresh schema at `url` (the second with the first's keys):
/// the rate of one at 64 connections, then of both at once with 32 each.
fn serve_postgres(
    node_bin: &Path,
    work: &Path,
    url: &str,
    seconds: u64,
    sled_rate: f64,
) -> anyhow::Result<Vec<Figure>> {
    let schema = format!("bench_{}", std::process::id());
    let storage = [
        "--set".to_owned(),
        "storage.backend=postgres".to_owned(),
        "--set".to_owned(),
        format!("storage.url={url}"),
        "--set".to_owned(),
        format!("storage.schema={schema}"),
    ];
    let first_dir = work.join("postgres-1");
    let (_first, first) = start_node(node_bin, &first_dir, &storage)?;
    let (path, _) = first_batch(first)?;
    let second_dir = work.join("postgres-2");
    std::fs::create_dir_all(&second_dir)?;
    let copied = Command::new("cp")
        .arg("-a")
        .arg(first_dir.join("keys"))
        .arg(&second_dir)
        .status()?;
    if !copied.success() {
        bail!("could not copy the first node's keys");
    }
    let (_second, second) = start_node(node_bin, &second_dir, &storage)?;
    // The second node serves the batch the first cut: the group shares it.
    get(second, &path)?;
    wrk_all(first, &path, 2, 64)?;
    let mut one: f64 = 0.0;
    let mut both: f64 = 0.0;
    for _ in 0..3 {
        one = one.max(wrk_all(first, &path, seconds, 64)?);
        let other = {
            let path = path.clone();
            std::thread::spawn(move || wrk(second, &path, seconds, 32, half_threads()))
        };
        let this = wrk(first, &path, seconds, 32, half_threads())?;
        let other = other
            .join()
            .map_err(|_| anyhow::anyhow!("wrk thread panicked"))??;
        both = both.max(this + other);
    }
    Ok(vec![
        Figure::new("serve-postgres-1-node", one, "requests/s", sled_rate),
        Figure::new("serve-postgres-2-nodes", both, "requests/s", sled_rate),
    ])
}

/// `/proc/loadavg`'s three averages, or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn ensure_installed(package: &str, path: &str) -> anyhow::Result<()> {
    if Path::new(path).exists() {
        return Ok(());
    }
    eprintln!("installing Debian {package}");
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("apt-get install {package}"))?;
    if !status.success() || !Path::new(path).exists() {
        bail!("could not install {package} (apt-get update first, as root)");
    }
    Ok(())
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "ephemera-bench-serve-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A release node on `data_dir` (and `extra` arguments), on a free loopback port.
fn start_node(
    bin: &Path,
    data_dir: &Path,
    extra: &[String],
) -> anyhow::Result<(Guard, SocketAddr)> {
    std::fs::create_dir_all(data_dir)?;
    let mut child = Command::new(bin)
        .current_dir(data_dir)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--batch-period-seconds", "2"])
        .args([
            "--set",
            "log_filter=warn",
            "--set",
            "federation.listen=127.0.0.1:0",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ephemera-node")?;
    let stdout = child.stdout.take().context("stdout")?;
    let guard = Guard(child);
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().context("the node exited at start")??;
        if let Some(rest) = line.strip_prefix("ephemera-node listening on http://") {
            break rest.trim().parse::<SocketAddr>()?;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((guard, addr))
}

/// Waits (up to 30 s) for the first batch the node cuts; returns its path and bytes.
fn first_batch(addr: SocketAddr) -> anyhow::Result<(String, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let index: serde_json::Value = serde_json::from_slice(&get(addr, "/v1/batches?after=0")?)?;
        if let Some(id) = index["batches"][0]["id"].as_str() {
            let path = format!("/v1/batches/{id}");
            let bytes = get(addr, &path)?;
            return Ok((path, bytes));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the node cut no batch within 30 s")
}

fn start_nginx(work: &Path, path: &str, bytes: &[u8]) -> anyhow::Result<(Guard, SocketAddr)> {
    let root = work.join("nginx-root");
    let file = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().context("parent")?)?;
    std::fs::write(&file, bytes)?;
    // A free loopback port (there is a small race between closing it and nginx binding it).
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let conf = work.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes {workers};\npid {work}/nginx.pid;\nerror_log {work}/nginx-error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
               types {{ }}\n  default_type application/octet-stream;\n\
               client_body_temp_path {work}/tmp;\n  proxy_temp_path {work}/tmp;\n\
               fastcgi_temp_path {work}/tmp;\n  uwsgi_temp_path {work}/tmp;\n  scgi_temp_path {work}/tmp;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {root};\n\
                 add_header Cache-Control \"public, max-age=31536000, immutable\";\n  }}\n}}\n",
            work = work.display(),
            root = root.display(),
            workers = server_threads(),
        ),
    )?;
    std::fs::create_dir_all(work.join("tmp"))?;
    let child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(work)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    let guard = Guard(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("nginx did not start (see its error log)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((guard, addr))
}

/// `wrk`'s threads: one per core (as each server gets), at most one per connection. One
/// thread alone saturates before either server does at 64 and 256 connections.
fn client_threads(connections: u32) -> usize {
    server_threads().min(connections as usize)
}

/// Half the client threads, at least one: each of two `wrk` runs at once.
fn half_threads() -> usize {
    (server_threads() / 2).max(1)
}

/// [`wrk`] with [`client_threads`].
fn wrk_all(addr: SocketAddr, path: &str, seconds: u64, connections: u32) -> anyhow::Result<f64> {
    wrk(
        addr,
        path,
        seconds,
        connections,
        client_threads(connections),
    )
}

/// Threads each server gets: the node's tokio runtime starts one worker per core, so nginx
/// gets as many worker processes.
fn server_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// A plain HTTP/1.1 GET; the body (Content-Length framing only).
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP head")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or(""));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        bail!("GET {path}: chunked answers are not handled here");
    }
    Ok(raw[split + 4..].to_vec())
}

/// Requests/s from `wrk -t<threads> -c<connections> -d<seconds>s`; fails on any non-2xx
/// answer or socket error.
fn wrk(
    addr: SocketAddr,
    path: &str,
    seconds: u64,
    connections: u32,
    threads: usize,
) -> anyhow::Result<f64> {
    let output = Command::new("/usr/bin/wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
        ])
        .arg(format!("http://{addr}{path}"))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {text}");
    }
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk saw errors: {text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .context("no Requests/sec line from wrk")?
        .trim()
        .parse()
        .context("parsing wrk's rate")
}
