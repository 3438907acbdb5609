//! Serving a node over HTTP with graceful shutdown, and the limits that keep it up under
//! hostile clients (issue 24, `node/docs/OPERATIONS.md` "Limits"):
//!
//! - every wait has a deadline: the request head (`[http] header_read_timeout_ms`), the body
//!   (`body_read_timeout_ms`, 408 `body-timeout`) and the whole request
//!   (`request_deadline_ms`, 503 `deadline-exceeded`);
//! - open connections are capped (`max_connections`): at the cap a new connection replaces
//!   the oldest one that is at least [`EVICTABLE_AGE`] old (a stalled client, since honest
//!   requests take milliseconds), or is answered 503 `overloaded` when all are younger;
//! - requests in flight are capped per endpoint class ([`Class`]): phones, console and
//!   serving each have their own cap, so saturated phone endpoints leave `/healthz`, the
//!   console and batch serving answerable; past a cap the answer is 503 `overloaded` with
//!   `Retry-After`, and one WARN line per [`SHED_LOG_PERIOD`] tells that the node sheds;
//! - a body announced larger than its endpoint accepts is refused with 413 before anything
//!   else (no credential check, no read); every body is read here, before the router,
//!   within the body timeout and on one memory budget (`in_flight_body_bytes`);
//! - errors that hyper writes itself before the router (400 on a malformed head or
//!   `Content-Length`, 414, 431) are rewritten into the JSON error shape (`JsonErrors`).
//!
//! None of these paths reads or logs a client address. Only the sign-in budget uses the
//! client's [`Source`]: a keyed hash of its address (or of the proxy's `source_header`),
//! held in memory for the request and never stored or logged.

use std::collections::VecDeque;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::IoSlice;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::error::ApiError;
use crate::node::Node;

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// At the connection cap, only a connection at least this old may be replaced by a new one.
pub const EVICTABLE_AGE: Duration = Duration::from_secs(1);
/// At most one WARN line about shedding per this period (with the count since the last).
pub const SHED_LOG_PERIOD: Duration = Duration::from_secs(10);
/// Largest read buffer of one connection, and so the largest request head (target and
/// headers) the node reads: a larger one is answered 431 `headers-too-large`.
pub const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Unit of the body memory budget (a semaphore permit per KiB).
const BUDGET_UNIT: u64 = 1024;
/// Most connections being answered 503 at the connection cap at once; past it a new
/// connection is closed without an answer (each holds a file descriptor for a moment).
const MAX_REFUSING: usize = 64;

/// Whether to run the batch and purge loops beside the HTTP server.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Background {
    /// Run them (production).
    Run,
    /// Leave them to the caller (tests step them with a fake clock).
    Off,
}

/// Serves `node` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish and stops the background loops and federation (if [`Node::start_federation`] was
/// called).
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    node: Node,
    listener: TcpListener,
    background: Background,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if node.config().http.metrics_token.is_none()
        && listener
            .local_addr()
            .is_ok_and(|addr| !addr.ip().is_loopback())
    {
        tracing::warn!(
            "the HTTP listener is not on loopback and /metrics is open: set [http] metrics_token, \
             or keep /metrics off the public proxy"
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = (background == Background::Run).then(|| {
        let node = node.clone();
        tokio::spawn(async move { node.run_background(stop_rx).await })
    });
    let limits = Arc::new(Limits::new(&node));
    let service = NodeService {
        node: node.clone(),
        router: TowerToHyperService::new(crate::api::router(node.clone())),
        limits: limits.clone(),
        peer: Peer {
            source: Source(0),
            distinct: false,
        },
    };
    let result = accept_loop(listener, service, limits, shutdown).await;
    let _ = stop_tx.send(true);
    if let Some(task) = task {
        let _ = task.await;
    }
    // Federation last: uploads in flight above may still have gossiped.
    node.stop_federation().await;
    if let Err(e) = node.store().flush() {
        tracing::error!(error = %e, "final flush failed");
    }
    result
}

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit and logs both, so
/// that `[http] max_connections`, and not the default 1,024 descriptors, bounds connections.
/// `serve` calls it once at start.
pub fn prepare_process() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let before = limit.current;
        let raised = match (limit.current, limit.maximum) {
            (Some(soft), Some(hard)) if soft < hard => setrlimit(
                Resource::Nofile,
                rustix::process::Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            )
            .is_ok(),
            (Some(_), None) => setrlimit(
                Resource::Nofile,
                rustix::process::Rlimit {
                    current: None,
                    maximum: None,
                },
            )
            .is_ok(),
            _ => false,
        };
        let after = getrlimit(Resource::Nofile);
        let show = |v: Option<u64>| v.map_or_else(|| "unlimited".to_owned(), |v| v.to_string());
        tracing::info!(
            soft_before = %show(before),
            soft = %show(after.current),
            hard = %show(after.maximum),
            raised,
            "open-file limit (RLIMIT_NOFILE)"
        );
        if after.current.is_some_and(|soft| soft < 4096) {
            tracing::warn!(
                soft = %show(after.current),
                "the open-file limit is low: set LimitNOFILE in the service unit (the shipped one \
                 sets 65536) and keep [http] max_connections well below it"
            );
        }
    }
}

/// Where a request comes from, for per-source budgets only: a keyed hash (random key per
/// process) of the client's address. Never stored, logged or compared across restarts.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct Source(pub u64);

/// A connection's peer as the limits see it.
#[derive(Copy, Clone, Debug)]
struct Peer {
    source: Source,
    /// Whether the peer tells clients apart: not a loopback address (where a local proxy
    /// forwards everyone's requests).
    distinct: bool,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source(<hashed>)")
    }
}

/// The classes of endpoints, each with its own in-flight cap.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// `/healthz`: never capped.
    Health,
    /// `/v1/verify`, `/v2/verify`, `/v1/uploads`.
    Phone,
    /// Sign-in and sessions, accounts, codes, the console page, `/metrics`.
    Console,
    /// Batches, exports, authority keys, the OpenAPI document, and unknown paths.
    Serving,
}

impl Class {
    /// The class of a request path.
    pub fn of(path: &str) -> Class {
        match path {
            "/healthz" => Class::Health,
            "/v1/verify" | "/v2/verify" | "/v1/uploads" => Class::Phone,
            "/v1/session" | "/v1/sessions" | "/v1/accounts" | "/v1/codes" | "/metrics" => {
                Class::Console
            }
            p if p.starts_with("/console")
                || p.starts_with("/case-worker")
                || p.starts_with("/v1/session/")
                || p.starts_with("/v1/accounts/")
                || p.starts_with("/v1/codes/")
                || p.starts_with("/v1/api-keys")
                || p.starts_with("/v1/audit")
                || p.starts_with("/v1/stats") =>
            {
                Class::Console
            }
            _ => Class::Serving,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::Health => "health",
            Class::Phone => "phone",
            Class::Console => "console",
            Class::Serving => "serving",
        }
    }
}

/// The limits of one server (see the module doc).
struct Limits {
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    request_deadline: Duration,
    max_connections: usize,
    phone: Arc<Semaphore>,
    console: Arc<Semaphore>,
    serving: Arc<Semaphore>,
    /// Permits of [`BUDGET_UNIT`] bytes.
    body_budget: Arc<Semaphore>,
    max_upload_bytes: usize,
    source_header: Option<header::HeaderName>,
    source_key: std::collections::hash_map::RandomState,
    per_source: usize,
    /// Requests in flight per (class, source), for sources told apart.
    by_source: Arc<std::sync::Mutex<std::collections::HashMap<(u8, u64), usize>>>,
    shed: ShedLog,
}

impl Limits {
    fn new(node: &Node) -> Limits {
        let http = &node.config().http;
        // The budget covers every connection's read buffer (each may fill while its head
        // is read) and the bodies: bodies get what the buffers leave.
        let buffers = (http.max_connections as u64).saturating_mul(READ_BUFFER_BYTES as u64);
        let total = http.in_flight_body_bytes as u64;
        let for_bodies = total.saturating_sub(buffers);
        if for_bodies < http.max_upload_bytes as u64 {
            tracing::warn!(
                in_flight_body_bytes = total,
                read_buffers = buffers,
                "[http] in_flight_body_bytes leaves less than one upload beside the connections' \
                 read buffers (max_connections x 16 KiB): raise it or lower max_connections"
            );
        }
        let budget_units = (for_bodies / BUDGET_UNIT).max(1);
        Limits {
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(http.body_read_timeout_ms),
            request_deadline: Duration::from_millis(http.request_deadline_ms),
            max_connections: http.max_connections,
            phone: Arc::new(Semaphore::new(http.phone_in_flight)),
            console: Arc::new(Semaphore::new(http.console_in_flight)),
            serving: Arc::new(Semaphore::new(http.serving_in_flight)),
            body_budget: Arc::new(Semaphore::new(
                usize::try_from(budget_units).unwrap_or(Semaphore::MAX_PERMITS),
            )),
            max_upload_bytes: http.max_upload_bytes,
            source_header: http
                .source_header
                .as_deref()
                .filter(|h| !h.is_empty())
                .and_then(|h| header::HeaderName::from_bytes(h.as_bytes()).ok()),
            source_key: std::collections::hash_map::RandomState::new(),
            per_source: http.per_source_in_flight,
            by_source: Arc::default(),
            shed: ShedLog::new(),
        }
    }

    fn body_limit(&self, path: &str) -> usize {
        if path == "/v1/uploads" {
            // A sealed upload carries the largest upload plus the seal.
            self.max_upload_bytes + ephemera_proto::sealed::REQUEST_OVERHEAD
        } else {
            crate::api::MAX_JSON_BODY
        }
    }

    fn hash_source(&self, bytes: &[u8]) -> Source {
        let mut hasher = self.source_key.build_hasher();
        hasher.write(bytes);
        Source(hasher.finish())
    }

    fn peer(&self, ip: IpAddr) -> Peer {
        let source = match ip {
            IpAddr::V4(v4) => self.hash_source(&v4.octets()),
            // A /64 is one client (it holds more addresses than anyone could try).
            IpAddr::V6(v6) => self.hash_source(&v6.octets()[..8]),
        };
        Peer {
            source,
            distinct: !ip.is_loopback(),
        }
    }

    /// The request's source: the proxy's header when configured and present (its last
    /// value, the one the proxy itself appended), else the TCP peer's.
    fn source(&self, headers: &HeaderMap, peer: Peer) -> Peer {
        let Some(name) = &self.source_header else {
            return peer;
        };
        headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map_or(peer, |v| Peer {
                source: self.hash_source(v.as_bytes()),
                distinct: true,
            })
    }

    /// Takes an in-flight slot for `peer` in `class`, if the peer is under its cap.
    fn take_source_slot(&self, class: Class, peer: Peer) -> Result<Option<SourceSlot>, ()> {
        if !peer.distinct || !matches!(class, Class::Phone | Class::Console) {
            return Ok(None);
        }
        let key = (class as u8, peer.source.0);
        let mut map = self.by_source.lock().map_err(|_| ())?;
        let count = map.entry(key).or_insert(0);
        if *count >= self.per_source {
            return Err(());
        }
        *count += 1;
        Ok(Some(SourceSlot {
            map: self.by_source.clone(),
            key,
        }))
    }

    fn semaphore(&self, class: Class) -> Option<&Arc<Semaphore>> {
        match class {
            Class::Health => None,
            Class::Phone => Some(&self.phone),
            Class::Console => Some(&self.console),
            Class::Serving => Some(&self.serving),
        }
    }
}

/// Counts shed requests and logs one WARN line per [`SHED_LOG_PERIOD`] at most.
struct ShedLog {
    start: Instant,
    /// Milliseconds since `start` of the last WARN, plus one (0: never).
    last: AtomicU64,
    count: AtomicU64,
}

impl ShedLog {
    fn new() -> ShedLog {
        ShedLog {
            start: Instant::now(),
            last: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn shed(&self, what: &'static str) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last.load(Ordering::Relaxed);
        let period = u64::try_from(SHED_LOG_PERIOD.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= period)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.count.fetch_sub(count, Ordering::Relaxed);
            tracing::warn!(
                shed = count,
                cap = what,
                "shedding load: requests answered 503 overloaded since the last such line"
            );
        }
    }
}

/// The per-connection service: cached batch GETs answered straight from memory (the
/// hottest route, see [`crate::api::cached_batch`]), everything else through the limits
/// and then the router.
#[derive(Clone)]
struct NodeService {
    node: Node,
    router: TowerToHyperService<axum::Router>,
    limits: Arc<Limits>,
    /// The connection's peer, hashed.
    peer: Peer,
}

type Handled = Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for NodeService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Either<std::future::Ready<Result<Response, Self::Error>>, Handled>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // A request with a body goes through the limits (an announced oversize body is 413
        // on every path, cached batches included).
        let cached = if has_body(request.headers()) {
            None
        } else {
            crate::api::cached_batch(&self.node, &request)
        };
        match cached {
            Some(response) => Either::Left(std::future::ready(Ok(response))),
            None => Either::Right(Box::pin(self.clone().handle(request))),
        }
    }
}

impl NodeService {
    async fn handle(
        self,
        mut request: Request<Incoming>,
    ) -> Result<Response, std::convert::Infallible> {
        let path = request.uri().path();
        let class = Class::of(path);
        let limit = self.limits.body_limit(path);
        let upload = path == "/v1/uploads";
        let peer = self.limits.source(request.headers(), self.peer);
        request.extensions_mut().insert(peer.source);
        let response = match self.admit(&request, class, limit, peer) {
            Err(e) => error_response(e),
            Ok(held) => {
                let deadline = self.limits.request_deadline;
                let response =
                    match tokio::time::timeout(deadline, self.run(request, limit, upload)).await {
                        Ok(response) => response,
                        Err(_) => error_response(ApiError::DeadlineExceeded),
                    };
                // The class slot and the body's memory are given back with the answer.
                drop(held);
                response
            }
        };
        Ok(response)
    }

    /// The checks before anything is read: announced size, class cap, body memory.
    fn admit(
        &self,
        request: &Request<Incoming>,
        class: Class,
        limit: usize,
        peer: Peer,
    ) -> Result<Held, ApiError> {
        let headers = request.headers();
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|len| len > limit as u64) {
            let error = ApiError::PayloadTooLarge { max: limit };
            if class == Class::Phone && request.uri().path() == "/v1/uploads" {
                self.node.metrics().upload_rejected(error.code());
            }
            return Err(error);
        }
        let Ok(source) = self.limits.take_source_slot(class, peer) else {
            self.limits.shed.shed("per source");
            return Err(ApiError::Overloaded);
        };
        let slot = match self.limits.semaphore(class) {
            None => None,
            Some(semaphore) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.limits.shed.shed(class.name());
                    return Err(ApiError::Overloaded);
                }
            },
        };
        let memory = if has_body(headers) {
            let bytes = announced.unwrap_or(limit as u64);
            let units = u32::try_from(bytes.div_ceil(BUDGET_UNIT).max(1)).unwrap_or(u32::MAX);
            match self
                .limits
                .body_budget
                .clone()
                .try_acquire_many_owned(units)
            {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.limits.shed.shed("body memory");
                    return Err(ApiError::Overloaded);
                }
            }
        } else {
            None
        };
        Ok(Held {
            _source: source,
            _slot: slot,
            _memory: memory,
        })
    }

    /// Reads the body (bounded in time and size), then routes.
    async fn run(&self, request: Request<Incoming>, limit: usize, upload: bool) -> Response {
        let has_body = has_body(request.headers());
        let (parts, body) = request.into_parts();
        let body = if has_body {
            match tokio::time::timeout(
                self.limits.body_read_timeout,
                read_body(body, limit, content_length(&parts.headers)),
            )
            .await
            {
                Ok(Ok(bytes)) => Body::from(bytes),
                Ok(Err(e)) => {
                    if upload {
                        self.node.metrics().upload_rejected(e.code());
                    }
                    return error_response(e);
                }
                Err(_) => {
                    let e = ApiError::BodyTimeout;
                    if upload {
                        self.node.metrics().upload_rejected(e.code());
                    }
                    return error_response(e);
                }
            }
        } else {
            Body::empty()
        };
        let request = Request::from_parts(parts, body);
        match hyper::service::Service::call(&self.router, request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// What an admitted request holds until it is answered.
struct Held {
    _source: Option<SourceSlot>,
    _slot: Option<OwnedSemaphorePermit>,
    _memory: Option<OwnedSemaphorePermit>,
}

/// One request in flight for a source; given back on drop.
struct SourceSlot {
    map: Arc<std::sync::Mutex<std::collections::HashMap<(u8, u64), usize>>>,
    key: (u8, u64),
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.map.lock()
            && let Some(count) = map.get_mut(&self.key)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.key);
            }
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Whether a request announces a body (hyper has checked the framing headers).
fn has_body(headers: &HeaderMap) -> bool {
    content_length(headers).map_or_else(
        || headers.contains_key(header::TRANSFER_ENCODING),
        |len| len > 0,
    )
}

/// Reads a whole body of at most `limit` bytes (the caller bounds the time).
async fn read_body(
    body: Incoming,
    limit: usize,
    announced: Option<u64>,
) -> Result<Bytes, ApiError> {
    let capacity = announced.map_or(0, |len| usize::try_from(len).unwrap_or(limit).min(limit));
    let mut out = Vec::with_capacity(capacity);
    let mut stream = Body::new(body).into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::UnreadableBody)?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { max: limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// An error answered before (or instead of) the router, with the headers every answer
/// carries. The connection is closed after it: the request's body (if any) is left unread,
/// and a client that was shed or refused should not hold a connection and its buffers.
fn error_response(error: ApiError) -> Response {
    let mut response = error.into_response();
    crate::api::add_security_headers(response.headers_mut());
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// A connection the accept loop tracks for the cap: when it started, and how to end it.
struct Tracked {
    started: Instant,
    abort: tokio::task::AbortHandle,
}

/// Decrements the live-connection count when a connection task ends (or is aborted).
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections until `shutdown`, serving each with HTTP/1.1 under the limits, then
/// waits (bounded) for open connections to finish. The peer address that `accept` returns
/// is only turned into a [`Source`] (a keyed hash) and otherwise dropped.
async fn accept_loop(
    listener: TcpListener,
    service: NodeService,
    limits: Arc<Limits>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Each connection's read buffer grows to at most this (hyper's default is ~408 KiB):
        // it bounds the request head (a larger one is 431), and a body passes through it in
        // chunks. The body budget reserves it for every connection (`Limits::new`).
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(true)
        // Head and body go out in one writev: a batch body is never copied into a buffer.
        .writev(true);
    let mut shutdown = std::pin::pin!(shutdown);
    // Connection tasks are owned here, so none outlives the server (or its runtime).
    let mut connections = tokio::task::JoinSet::new();
    let mut refusing = tokio::task::JoinSet::new();
    let mut order: VecDeque<Tracked> = VecDeque::new();
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(_) => {
                        limits.shed.shed("accept failed (file descriptors?)");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                order.retain(|t| !t.abort.is_finished());
                if live.load(Ordering::Relaxed) >= limits.max_connections {
                    let oldest = order.front().is_some_and(|t| t.started.elapsed() >= EVICTABLE_AGE);
                    if oldest {
                        if let Some(t) = order.pop_front() {
                            t.abort.abort();
                        }
                    } else {
                        limits.shed.shed("connections");
                        if refusing.len() < MAX_REFUSING {
                            refusing.spawn(refuse(stream));
                        }
                        continue;
                    }
                }
                let _ = stream.set_nodelay(true);
                let mut service = service.clone();
                service.peer = limits.peer(peer.ip());
                let files = service.node.body_files().clone();
                let service = crate::metrics::Instrumented::new(service.node.clone(), service);
                let connection = builder.serve_connection(
                    TokioIo::new(JsonErrors::new(stream, files)),
                    service,
                );
                let connection = graceful.watch(connection);
                live.fetch_add(1, Ordering::Relaxed);
                let guard = LiveGuard(live.clone());
                let abort = connections.spawn(async move {
                    let _guard = guard;
                    let _ = connection.await;
                });
                order.push_back(Tracked { started: Instant::now(), abort });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            Some(_) = refusing.join_next(), if !refusing.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    // Whatever is still open after the grace period (a slow client, say) is cut off.
    connections.abort_all();
    refusing.abort_all();
    while connections.join_next().await.is_some() {}
    while refusing.join_next().await.is_some() {}
    Ok(())
}

/// Answers a connection over the cap with 503 `overloaded` and closes it (bounded in time).
async fn refuse(mut stream: TcpStream) {
    let bytes = raw_error(&ApiError::Overloaded);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// A whole HTTP/1.1 error answer as bytes, in the JSON error shape, closing the connection.
fn raw_error(error: &ApiError) -> Vec<u8> {
    let status = error.status();
    let body = serde_json::to_vec(&error.body()).expect("plain JSON");
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
         x-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
    );
    if let Some(seconds) = error.retry_after() {
        out.push_str(&format!("retry-after: {seconds}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The error hyper answers by itself for a head it cannot parse, if `buf` is one: hyper
/// writes a bare head (status line, `content-length: 0`, `date`) and closes; every answer of
/// the node's own carries a `content-type`.
fn hyper_error(buf: &[u8]) -> Option<ApiError> {
    const MAX_BARE_HEAD: usize = 256;
    if buf.len() > MAX_BARE_HEAD || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let error = if buf.starts_with(b"HTTP/1.1 400 ") {
        ApiError::MalformedRequest
    } else if buf.starts_with(b"HTTP/1.1 414 ") {
        ApiError::UriTooLong
    } else if buf.starts_with(b"HTTP/1.1 431 ") {
        ApiError::HeadersTooLarge
    } else {
        return None;
    };
    let lower = buf.to_ascii_lowercase();
    let has_type = lower.windows(13).any(|w| w == b"content-type:");
    (!has_type).then_some(error)
}

/// A connection's stream that rewrites hyper's own error answers (400 for a malformed head
/// or `Content-Length`, 414, 431: written before any service runs, with an empty body)
/// into the node's JSON error shape. Everything else passes through unchanged.
///
/// It also sends cached bodies with `sendfile` (`crate::send_file`).
struct JsonErrors {
    inner: TcpStream,
    /// The rewritten answer still to write, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
    /// Cached bodies that go out by `sendfile`.
    files: Arc<crate::send_file::BodyFiles>,
}

impl JsonErrors {
    fn new(inner: TcpStream, files: Arc<crate::send_file::BodyFiles>) -> JsonErrors {
        JsonErrors {
            inner,
            pending: None,
            files,
        }
    }

    /// Writes what is pending; `Ready(Ok)` once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n =
                std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for JsonErrors {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for JsonErrors {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        if let Some(error) = hyper_error(buf) {
            self.pending = Some((raw_error(&error), 0));
            // Hyper's bytes are taken as written; the rewrite goes out in their place.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        let first = bufs.iter().find(|b| !b.is_empty());
        let only_one = bufs.iter().filter(|b| !b.is_empty()).count() == 1;
        if let Some(first) = first
            && only_one
            && let Some(error) = hyper_error(first)
        {
            self.pending = Some((raw_error(&error), 0));
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(first.len()));
        }
        if let Some(sent) =
            crate::send_file::poll_write_vectored(&self.inner, &self.files, cx, bufs)
        {
            return sent;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_bare_error_heads_are_recognised_and_ours_are_not() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 21:00:00 GMT\r\n\r\n";
        assert!(matches!(hyper_error(bare), Some(ApiError::HeadersTooLarge)));
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert!(matches!(
            hyper_error(bare),
            Some(ApiError::MalformedRequest)
        ));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n";
        assert!(hyper_error(ours).is_none());
        assert!(hyper_error(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        let raw = raw_error(&ApiError::UriTooLong);
        let text = String::from_utf8(raw).unwrap();
        assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(
            text.ends_with(
                r#"{"error":"uri-too-long","message":"the request target is too long"}"#
            )
        );
    }

    #[test]
    fn paths_fall_into_their_classes() {
        assert_eq!(Class::of("/healthz"), Class::Health);
        assert_eq!(Class::of("/v1/verify"), Class::Phone);
        // A blind signature costs milliseconds of RSA: its flood takes phone slots and the
        // per-source cap, never the serving slots phones fetch batches with.
        assert_eq!(Class::of("/v2/verify"), Class::Phone);
        assert_eq!(Class::of("/v1/uploads"), Class::Phone);
        assert_eq!(Class::of("/v1/session"), Class::Console);
        assert_eq!(Class::of("/v1/session/password"), Class::Console);
        assert_eq!(Class::of("/v1/sessions"), Class::Console);
        assert_eq!(Class::of("/v1/accounts"), Class::Console);
        assert_eq!(Class::of("/v1/accounts/bob/disable"), Class::Console);
        assert_eq!(Class::of("/case-worker"), Class::Console);
        assert_eq!(Class::of("/console"), Class::Console);
        assert_eq!(Class::of("/console.js"), Class::Console);
        assert_eq!(Class::of("/v1/session/cookie"), Class::Console);
        assert_eq!(Class::of("/v1/session/csrf"), Class::Console);
        assert_eq!(Class::of("/v1/codes/ABCDEFGHJKMN/revoke"), Class::Console);
        assert_eq!(Class::of("/v1/api-keys"), Class::Console);
        assert_eq!(Class::of("/v1/audit"), Class::Console);
        assert_eq!(Class::of("/v1/stats"), Class::Console);
        assert_eq!(Class::of("/v1/stats/chart.svg"), Class::Console);
        assert_eq!(Class::of("/v1/batches/00/filter"), Class::Serving);
        assert_eq!(Class::of("/v1/batches"), Class::Serving);
        assert_eq!(Class::of("/nope"), Class::Serving);
    }
}
