//! Serving a node over HTTP with graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::http::Request;
use axum::response::Response;
use futures::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use tokio::net::TcpListener;

use crate::node::Node;

/// How long a client may take to send a request's headers (also the idle limit between
/// keep-alive requests): slow clients ("slowloris") are cut off after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
    let service = NodeService {
        node: node.clone(),
        router: TowerToHyperService::new(crate::api::router(node.clone())),
    };
    let service = crate::metrics::Instrumented::new(node.clone(), service);
    let result = accept_loop(listener, service, shutdown).await;
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

/// The per-connection service: cached batch GETs answered straight from memory (the
/// hottest route, see [`crate::api::cached_batch`]), everything else by the router.
#[derive(Clone)]
struct NodeService {
    node: Node,
    router: TowerToHyperService<axum::Router>,
}

impl hyper::service::Service<Request<Incoming>> for NodeService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Either<
        std::future::Ready<Result<Response, Self::Error>>,
        TowerToHyperServiceFuture<axum::Router, Request<Incoming>>,
    >;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        match crate::api::cached_batch(&self.node, &request) {
            Some(response) => Either::Left(std::future::ready(Ok(response))),
            None => Either::Right(self.router.call(request)),
        }
    }
}

/// Accepts connections until `shutdown`, serving each with HTTP/1.1 and a header-read
/// timeout, then waits (bounded) for open connections to finish. The peer address that
/// `accept` returns is dropped unread: the node never looks at client addresses.
async fn accept_loop(
    listener: TcpListener,
    service: crate::metrics::Instrumented<NodeService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        // Head and body go out in one writev: a batch body is never copied into a buffer.
        .writev(true);
    let mut shutdown = std::pin::pin!(shutdown);
    // Connection tasks are owned here, so none outlives the server (or its runtime).
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    let _ = connection.await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    // Whatever is still open after the grace period (a slow client, say) is cut off.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
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
