//! The case-worker page: plain HTML, CSS and JS served by the node, no outside assets.
//!
//! Element ids are stable so a headless-browser test can drive it: `sign-in-form`,
//! `sign-in-name`, `sign-in-password`, `sign-in-submit`, `sign-in-error`, `issue-form`,
//! `issue-test-type`, `issue-onset`, `issue-submit`, `issue-error`, `issued`,
//! `issued-code`, `issued-expiry`, `issued-dismiss`, `bulk-form`, `bulk-count`,
//! `bulk-submit`, `bulk-download`, `bulk-status`, `sign-out`.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::node::Node;

const HTML: &str = include_str!("page/index.html");
const JS: &str = include_str!("page/page.js");
const CSS: &str = include_str!("page/page.css");
/// Only this origin's script and style; no frames, no outside connections.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes() -> Router<Node> {
    Router::new()
        .route("/", get(root))
        .route("/case-worker", get(page))
        .route("/case-worker.js", get(script))
        .route("/case-worker.css", get(style))
}

/// Sends browsers to the case-worker page.
#[utoipa::path(get, path = "/", responses((status = 303, description = "To `/case-worker`",
    headers(("Location" = String, description = "`/case-worker`")))))]
pub(super) async fn root() -> Redirect {
    Redirect::to("/case-worker")
}

/// The case-worker page: sign in, issue codes, download bulk codes as CSV.
#[utoipa::path(get, path = "/case-worker", responses((status = 200, description = "The page", content_type = "text/html")))]
pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        HTML,
    )
        .into_response()
}

/// The page's script.
#[utoipa::path(get, path = "/case-worker.js", responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

/// The page's style sheet.
#[utoipa::path(get, path = "/case-worker.css", responses((status = 200, description = "CSS", content_type = "text/css")))]
pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}
