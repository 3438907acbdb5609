//! Serving a node over HTTP with graceful shutdown.

use std::future::Future;

use tokio::net::TcpListener;

use crate::node::Node;

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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = (background == Background::Run).then(|| {
        let node = node.clone();
        tokio::spawn(async move { node.run_background(stop_rx).await })
    });
    let app = crate::api::router(node.clone());
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
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
