//! The case-worker page: plain HTML, CSS and JS served by the node, no outside assets.
//!
//! Element ids are stable so a headless-browser test can drive it: `sign-in-form`,
//! `sign-in-name`, `sign-in-password`, `sign-in-submit`, `sign-in-error`, `issue-form`,
//! `issue-test-type`, `issue-onset`, `issue-submit`, `issue-error`, `issued`,
//! `issued-code`, `issued-expiry`, `issued-dismiss`, `bulk-form`, `bulk-count`,
//! `bulk-submit`, `bulk-download`, `bulk-status`, `sign-out`.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
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
        .route("/", get(|| async { Redirect::to("/case-worker") }))
        .route(
            "/case-worker",
            get(|| async {
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
            }),
        )
        .route(
            "/case-worker.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    JS,
                )
            }),
        )
        .route(
            "/case-worker.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }),
        )
}
