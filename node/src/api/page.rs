//! The authority's console: plain HTML, CSS and JS served by the node, no outside assets
//! (a strict Content-Security-Policy). `GET /console`; `/` and the old `/case-worker`
//! redirect to it.
//!
//! The page signs in with `POST /v1/session/cookie`: the session token goes only into the
//! HttpOnly `__Host-ephemera-session` cookie, and the page holds the session's CSRF token,
//! which it sends as `X-CSRF-Token` with every request (`super::caller`). A reload asks
//! `GET /v1/session/csrf` and resumes a live session. Sections are shown by the account's
//! roles; the server checks every route all the same.
//!
//! Stable element ids (the headless-browser tests drive them):
//!
//! - sign-in: `sign-in`, `sign-in-form`, `sign-in-name`, `sign-in-password`,
//!   `sign-in-second`, `sign-in-totp`, `sign-in-submit`, `sign-in-error`;
//! - forced password change: `new-password`, `new-password-form`, `new-password-value`,
//!   `new-password-current` (shown after a reload), `new-password-again`,
//!   `new-password-submit`, `new-password-error`;
//! - the signed-in header: `console`, `whoami`, `sign-out`, `sign-out-everywhere`,
//!   `console-status` (aria-live);
//! - case-worker: `issue`, `issue-form`, `issue-test-type`, `issue-onset`, `issue-submit`,
//!   `issue-error`, `issued`, `issued-code`, `issued-expiry`, `issued-reference`,
//!   `issued-dismiss`; `code-status`, `status-form`, `status-reference`, `status-submit`,
//!   `status-revoke`, `status-result`, `status-error`;
//! - bulk-issuer: `bulk`, `bulk-form`, `bulk-test-type`, `bulk-onset`, `bulk-count`,
//!   `bulk-submit`, `bulk-download`, `bulk-status`;
//! - case-worker and admin: `venue`, `venue-form`, `venue-description`, `venue-address`,
//!   `venue-from`, `venue-until`, `venue-submit`, `venue-error`, `venue-made`, `venue-qr`
//!   (the node's SVG shown from a `blob:` URL), `venue-validity`, `venue-qr-text`,
//!   `venue-qr-download`, `venue-trace-download`, `venue-instructions-download`,
//!   `venue-made-dismiss`;
//! - admin: `accounts`, `accounts-table`, `accounts-refresh`, `accounts-result`, `account-form`,
//!   `account-name`, `account-role-<role>`, `account-submit`, `account-error`,
//!   `account-created`, `account-created-name`, `account-created-password`,
//!   `account-created-dismiss`; per row `account-<name>-disable` / `-enable` / `-reset` /
//!   `-roles` (a text field of comma-separated roles) / `-roles-set`;
//!   `api-keys`, `keys-table`, `keys-result`, `key-form`, `key-name`, `key-type-<type>`, `key-submit`,
//!   `key-error`, `key-created`, `key-created-secret`, `key-created-dismiss`; per row
//!   `key-<id>-revoke`;
//! - auditor (and admin): `audit`, `audit-table`, `audit-verified`, `audit-more`,
//!   `audit-refresh`, `audit-json`, `audit-csv`, `audit-download`, `audit-error`; `stats`,
//!   `stats-form`, `stats-metric`, `stats-from`, `stats-to`, `stats-submit`, `stats-note`,
//!   `stats-chart` (the node's SVG, fetched with the CSRF token and shown from a `blob:`
//!   URL), `stats-table`, `stats-caption`, `stats-csv`, `stats-download`, `stats-error`;
//! - everyone: `account-settings`, `password-form`, `password-current`, `password-new`,
//!   `password-again`, `password-submit`, `password-result`; `totp`, `totp-state`,
//!   `totp-begin`, `totp-enrol`, `totp-secret`, `totp-uri`, `totp-form`, `totp-code`,
//!   `totp-submit`, `totp-result`, `totp-recovery-box`, `totp-recovery` (a list),
//!   `totp-recovery-dismiss`.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::node::Node;

const HTML: &str = include_str!("page/index.html");
const JS: &str = include_str!("page/console.js");
const CSS: &str = include_str!("page/console.css");
/// Only this origin's script and style, images only from the page's own memory (the
/// statistics chart it fetched, a new venue's QR code); no frames, no outside connections.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src blob:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes() -> Router<Node> {
    Router::new()
        .route("/", get(root))
        .route("/console", get(page))
        .route("/case-worker", get(case_worker))
        .route("/console.js", get(script))
        .route("/console.css", get(style))
}

/// Sends browsers to the console.
#[utoipa::path(get, path = "/", responses((status = 303, description = "To `/console`",
    headers(("Location" = String, description = "`/console`")))))]
pub(super) async fn root() -> Redirect {
    Redirect::to("/console")
}

/// The case-worker page's old address: the console took its place.
#[utoipa::path(get, path = "/case-worker", responses((status = 308, description = "To `/console`",
    headers(("Location" = String, description = "`/console`")))))]
pub(super) async fn case_worker() -> Redirect {
    Redirect::permanent("/console")
}

/// The authority's console: sign in, then each role's sections (issue codes, status and
/// revoke, bulk CSV, venues, accounts and API keys, the audit log) and the account's own
/// settings.
#[utoipa::path(get, path = "/console", responses((status = 200, description = "The page", content_type = "text/html")))]
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

/// The console's script.
#[utoipa::path(get, path = "/console.js", responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

/// The console's style sheet.
#[utoipa::path(get, path = "/console.css", responses((status = 200, description = "CSS", content_type = "text/css")))]
pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}
