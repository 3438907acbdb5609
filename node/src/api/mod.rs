//! The HTTP API: routes, handlers and the OpenAPI document.
//!
//! | route | body in | body out |
//! | --- | --- | --- |
//! | `GET /healthz` | | `{"status":"ok","ready":true,"version":"…","storage_format":4}`; `"ready":false,"reason":"disk-reserve"` below the disk reserve |
//! | `GET /metrics` | bearer when `[http] metrics_token` is set | Prometheus text |
//! | `GET /v1/openapi.json` | | OpenAPI 3.1 |
//! | `GET /v1/authority` | | [`types::AuthorityInfo`] |
//! | `GET /v1/authority/export-key.pem` | | PEM public key of GAEN exports |
//! | `GET /v1/sealing-key` | | `proto::sealed::SealingKeyAnnouncement` (JSON) |
//! | `GET /v1/venue-key` | | `proto::venue::VenueKeyAnnouncement` (JSON): the authority's venue key, signed by its authority key |
//! | `GET /v2/token-keys` | | `proto::token::SignedTokenKeySet` frame (kind 0x0f, version 2) |
//! | `POST /v1/verify` | sealed `VerifyRequest` (`application/ephemera-sealed`), or JSON until the transition ends | sealed answer, one size; or `VerifyResponse`, padded |
//! | `POST /v2/verify` | sealed `proto::token::TokenVerifyRequest` only | sealed answer, one size: `TokenVerifyResponse`, padded |
//! | `POST /v1/uploads` | sealed `UploadRequest`, or the framed postcard until the transition ends | sealed answer, one size; or `UploadResponse`, padded |
//! | `GET /v1/batches?after=<seq>` | | `proto::batch::BatchIndex` (JSON) |
//! | `GET /v1/batches/{id}` | | signed batch bytes, immutable |
//! | `GET /v1/exports/index.txt` | | GAEN index: `v1/exports/<file>` per line |
//! | `GET /v1/exports/{file}` | | GAEN export zip (`export.bin` + `export.sig`), immutable |
//! | `POST /v1/session` | [`types::LoginRequest`] | [`types::LoginResponse`]; 401 `totp-required` |
//! | `POST /v1/session/cookie` | [`types::LoginRequest`] | [`types::ConsoleSession`] and the session cookie (the console) |
//! | `GET /v1/session/csrf` | session cookie | [`types::ConsoleSession`]: the page's CSRF token after a reload |
//! | `GET /v1/session` | bearer | [`types::SessionInfo`] |
//! | `DELETE /v1/session` | bearer | 204 |
//! | `DELETE /v1/sessions` | bearer | 204: every session of the account ends |
//! | `POST /v1/session/password` | bearer, [`types::PasswordChangeRequest`] | 204 |
//! | `POST /v1/session/totp` | bearer | [`types::TotpEnrolment`], shown once |
//! | `POST /v1/session/totp/confirm` | bearer, [`types::TotpConfirmRequest`] | [`types::RecoveryCodes`], shown once |
//! | `POST /v1/session/recovery-codes` | bearer | [`types::RecoveryCodes`], a new set |
//! | `GET /v1/accounts` | bearer (admin) | [`crate::accounts::directory::AccountSummary`] list |
//! | `POST /v1/accounts` | bearer (admin), [`types::CreateAccountRequest`] | 201 [`types::OneTimePassword`] |
//! | `POST /v1/accounts/{name}/disable`, `/enable` | bearer (admin) | 204 |
//! | `POST /v1/accounts/{name}/roles` | bearer (admin), [`types::RolesRequest`] | 204 |
//! | `POST /v1/accounts/{name}/reset-password` | bearer (admin) | [`types::OneTimePassword`] |
//! | `POST /v1/codes` | bearer (case-worker: one code; bulk-issuer: more, or CSV; an API key within its test types), [`types::IssueCodesRequest`]; 429 `quota-exceeded` past the daily quota | [`types::IssueCodesResponse`] or CSV |
//! | `GET /v1/audit?after=&from=&to=&limit=` | bearer (auditor or admin) | [`crate::node::AuditExport`]; CSV for `Accept: text/csv` |
//! | `GET /v1/stats?from=&to=` | bearer (auditor or admin) | [`crate::node::StatsReport`]; CSV for `Accept: text/csv` |
//! | `GET /v1/stats/chart.svg?from=&to=&metric=` | bearer (auditor or admin) | SVG bar chart, `Content-Security-Policy: default-src 'none'` |
//! | `GET /v1/api-keys` | bearer (admin) | [`crate::accounts::api_key::ApiKeySummary`] list |
//! | `POST /v1/api-keys` | bearer (admin), [`types::CreateApiKeyRequest`] | 201 [`types::CreatedApiKey`], shown once |
//! | `POST /v1/api-keys/{id}/revoke` | bearer (admin) | 204 |
//! | `GET /v1/codes/{reference}` | bearer (case-worker or bulk-issuer) | [`types::CodeStatusInfo`] |
//! | `POST /v1/codes/{reference}/revoke` | bearer (case-worker or bulk-issuer) | [`types::CodeStatusInfo`]; 409 `code-not-revocable` |
//! | `POST /v1/venues` | bearer (case-worker or admin), [`types::CreateVenueRequest`] | 201 [`types::CreatedVenue`], shown once; nothing kept |
//! | `POST /v1/venue-traces` | bearer (case-worker), `venue_releases::VenueTraceRequest` | 201 `venue_releases::VenueTraceResponse` |
//! | `GET /v1/venue-releases?after=<seq>` | | `proto::venue::ReleaseIndex` (JSON) |
//! | `GET /v1/venue-releases/{id}` | | `proto::venue::SignedVenueRelease` frame, immutable |
//! | `GET /console` | | the authority's console (`GET /case-worker` redirects to it) |
//!
//! "bearer" above is the caller's credential as [`caller`] resolves it: `Authorization:
//! Bearer <token>`, or the console's session cookie with its `X-CSRF-Token` header.
//!
//! No layer logs requests or peers. Bodies arrive here already read: `crate::server` reads
//! them within the body timeout and memory budget, and refuses an announced oversize body
//! with 413 before any route (or credential check) runs. Client addresses are used only by
//! the per-source in-flight caps and the sign-in budget, as keyed hashes held in memory
//! ([`crate::server::Source`]).

pub mod caller;
pub mod contract;
pub mod error;
mod immutable;
mod openapi;
mod page;
pub(crate) mod served_by;
mod stats;
mod sunset;
pub use sunset::sunset_router;
pub mod types;
mod venue_releases;
mod venues;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ephemera_proto::api::VerifyRequest;
use ephemera_proto::batch::BatchId;
use ephemera_proto::sealed::{self, SealedRoute};
use serde::Deserialize;

use crate::node::Node;
use caller::caller;
use error::ApiError;
use types::{
    CreateAccountRequest, Health, IssueCodesRequest, LoginRequest, PasswordChangeRequest,
    RolesRequest, TotpConfirmRequest,
};

use crate::accounts::api_key::API_KEY_PREFIX;
use crate::node::{Issuer, Need, SecondFactor};
use crate::store::Role;

pub use immutable::cached_batch;
pub use openapi::document as openapi_document;

/// Largest JSON control body (verify, sign-in, code requests).
pub const MAX_JSON_BODY: usize = 16 * 1024;
/// `Cache-Control` of immutable batches.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Builds the router over `node`.
pub fn router(node: Node) -> Router {
    let upload_limit = node.config().http.max_upload_bytes;
    // Built once per node: it states this node's configured limits.
    let document = Bytes::from(openapi::document(node.config()));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(move || openapi(document.clone())))
        .route("/v1/authority", get(authority))
        .route("/v1/authority/export-key.pem", get(export_key))
        .route("/v1/sealing-key", get(sealing_key))
        .route("/v2/token-keys", get(token_keys))
        .route(
            "/v1/verify",
            post(verify).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route(
            "/v2/verify",
            post(token_verify).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route(
            "/v1/uploads",
            post(upload).layer(DefaultBodyLimit::max(
                upload_limit + ephemera_proto::sealed::REQUEST_OVERHEAD,
            )),
        )
        .route("/v1/batches", get(batch_index))
        .route("/v1/batches/{id}", get(batch))
        .route("/v1/batches/{id}/filter", get(batch_filter))
        .route("/v1/heads", get(heads))
        .merge(sunset::routes())
        .route("/v1/heads/conflicts", get(head_conflicts))
        .route("/v1/exports/index.txt", get(export_index))
        .route("/v1/exports/{file}", get(export_file))
        .route(
            "/v1/session",
            post(login)
                .get(session_info)
                .delete(logout)
                .layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route(
            "/v1/session/password",
            post(change_password).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route(
            "/v1/session/cookie",
            post(cookie_login).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route("/v1/session/csrf", get(console_session))
        .route("/v1/sessions", axum::routing::delete(logout_everywhere))
        .route("/v1/session/totp", post(begin_totp))
        .route(
            "/v1/session/totp/confirm",
            post(confirm_totp).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route("/v1/session/recovery-codes", post(recovery_codes))
        .route(
            "/v1/accounts",
            get(list_accounts)
                .post(create_account)
                .layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route("/v1/accounts/{name}/disable", post(disable_account))
        .route("/v1/accounts/{name}/enable", post(enable_account))
        .route(
            "/v1/accounts/{name}/roles",
            post(set_roles).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route("/v1/accounts/{name}/reset-password", post(reset_password))
        .route(
            "/v1/codes",
            post(issue_codes).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route(
            "/v1/api-keys",
            get(list_api_keys)
                .post(create_api_key)
                .layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route("/v1/api-keys/{id}/revoke", post(revoke_api_key))
        .route("/v1/audit", get(audit_export))
        .route("/v1/codes/{reference}", get(code_status))
        .route("/v1/codes/{reference}/revoke", post(revoke_code))
        .merge(stats::routes())
        .merge(venues::routes())
        .merge(venue_releases::routes())
        .merge(page::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            served_by::refuse_other_roles,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(node)
}

pub(crate) async fn security_headers(mut response: Response) -> Response {
    add_security_headers(response.headers_mut());
    response
}

/// The headers every answer carries (the batch fast path, which skips the router's
/// layers, adds them itself).
pub(crate) fn add_security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

pub(crate) fn body_bytes(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { max: limit }
        } else {
            ApiError::UnreadableBody
        }
    })
}

fn json_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body_bytes(body, MAX_JSON_BODY)?;
    // serde_json's message names the position and expected type, and may quote part of
    // what was sent (an unknown field or variant, say): it goes back only to the sender and
    // is never logged.
    serde_json::from_slice(&bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// Refuses a body not sent as `Content-Type: application/json` (parameters such as
/// `charset` aside), the one media type the document gives the console's bodies.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            expected: "application/json",
        })
    }
}

fn padded_json(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

/// The caller's token and JSON body of a signed-in request, checked in that order: a
/// request without a session learns nothing about its body.
pub(super) fn signed_json<'a, T: for<'de> Deserialize<'de>>(
    node: &Node,
    headers: &'a HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(&'a str, T), ApiError> {
    let token = caller(node, headers)?;
    require_json(headers)?;
    Ok((token, json_body(body)?))
}

/// A JSON answer that no cache keeps (sessions, accounts, one-time secrets).
pub(super) fn no_store<T: serde::Serialize>(status: StatusCode, value: T) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(value),
    )
        .into_response()
}

/// Liveness (the process answers: always 200) and readiness (`ready`: whether new uploads
/// are taken, with the `reason` when not).
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz(State(node): State<Node>) -> impl IntoResponse {
    let reason = node.not_ready();
    axum::Json(Health {
        status: "ok".to_owned(),
        ready: reason.is_none(),
        reason,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        storage_format: crate::store::STORE_FORMAT,
    })
}

/// Prometheus metrics; with `[http] metrics_token` configured, only for `Authorization: Bearer
/// <token>`.
#[utoipa::path(get, path = "/metrics",
    responses(
        (status = 200, description = "Prometheus text format; with a metrics token configured, 401 without it", content_type = "text/plain")),
    security((), ("bearer" = [])))]
async fn metrics(State(node): State<Node>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = &node.config().http.metrics_token
        && !token.matches(caller::bearer(&headers)?.as_bytes())
    {
        return Err(ApiError::Unauthorized);
    }
    node.update_storage_metrics()
        .map_err(|_| ApiError::Internal)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics().render(),
    )
        .into_response())
}

/// This document: the contract, with this node's configured limits.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi(document: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// The node's public keys and settings.
#[utoipa::path(get, path = "/v1/authority", responses((status = 200, body = types::AuthorityInfo)))]
async fn authority(State(node): State<Node>) -> impl IntoResponse {
    axum::Json(node.authority_info())
}

/// The public key that verifies GAEN `export.sig`, as PEM.
#[utoipa::path(get, path = "/v1/authority/export-key.pem", responses((status = 200, description = "PEM SubjectPublicKeyInfo", content_type = "application/x-pem-file")))]
async fn export_key(State(node): State<Node>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        node.keys().export.public_key_pem(),
    )
}

/// Exchanges a one-time code and a report HMAC for a signed certificate.
#[utoipa::path(post, path = "/v1/verify",
    request_body(content = openapi::VerifyRequestDoc, description = "Padded to 512 bytes"),
    responses(
        (status = 410, body = openapi::ErrorBodyDoc, description = "sunset: a sunset order stopped this node (GET /v1/sunset)"),
        (status = 200, body = openapi::VerifyResponseDoc, description = "Padded to 1024 bytes; random for a decoy"),
        (status = 400, body = openapi::ErrorBodyDoc, description = "malformed-json, malformed-code, malformed-hmac, invalid-code"),
    ))]
async fn verify(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if is_sealed(&headers) {
        let bytes = body_bytes(body, MAX_JSON_BODY)?;
        return sealed_answer(node.sealed_exchange(SealedRoute::Verify, &bytes).await);
    }
    let request: VerifyRequest = json_body(body)?;
    let response = node.verify(&request).await?;
    Ok(padded_json(response.to_padded_json()))
}

/// Exchanges a code for a blind token: sealed only (a new route has no clear phones to
/// carry through a transition).
#[utoipa::path(post, path = "/v2/verify",
    request_body(content = Vec<u8>, content_type = "application/ephemera-sealed", description = "A `TokenVerifyRequest` (JSON, padded to 8192 bytes) sealed to the node's sealing key (`GET /v1/sealing-key`), HPKE info `ephemera/sealed/v1/token-verify`"),
    responses(
        (status = 200, body = Vec<u8>, content_type = "application/ephemera-sealed", description = "The sealed inner answer, one size: `TokenVerifyResponse` (padded to 1024 bytes) or an error body (malformed-code, invalid-code, stale-token-keys 409, token-keys-not-ready 503, insufficient-storage, sunset 410)"),
        (status = 400, body = openapi::ErrorBodyDoc, description = "unreadable-sealed-body, unknown-sealing-key"),
        (status = 415, body = openapi::ErrorBodyDoc, description = "unsupported-media-type: the body is not sealed"),
    ))]
async fn token_verify(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !is_sealed(&headers) {
        return Err(ApiError::UnsupportedMediaType {
            expected: sealed::CONTENT_TYPE,
        });
    }
    let bytes = body_bytes(body, MAX_JSON_BODY)?;
    sealed_answer(node.sealed_exchange(SealedRoute::TokenVerify, &bytes).await)
}

/// Uploads a report with its certificate (or a revision, or a decoy).
#[utoipa::path(post, path = "/v1/uploads",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A framed postcard `UploadRequest` (wire kind 0x02, version 2, or version 1 during the transition), padded to a power of two"),
    responses(
        (status = 410, body = openapi::ErrorBodyDoc, description = "sunset: a sunset order stopped this node (GET /v1/sunset)"),
        (status = 200, body = openapi::UploadResponseDoc, description = "Stored durably (or a decoy); padded to 512 bytes"),
        (status = 400, body = openapi::ErrorBodyDoc, description = "malformed-body, unreadable-body, certificate-expired, hmac-mismatch, report validation codes, revision errors (invalid-revision-token, invalid-revision-signature, revision-not-allowed, revision-mismatch, revision-authority-mismatch)"),
        (status = 403, body = openapi::ErrorBodyDoc, description = "certificate-untrusted, certificate-invalid"),
        (status = 409, body = openapi::ErrorBodyDoc, description = "certificate-used"),
        (status = 413, body = openapi::ErrorBodyDoc, description = "payload-too-large"),
    ))]
async fn upload(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let sealed = is_sealed(&headers);
    let limit = node.config().http.max_upload_bytes
        + if sealed {
            ephemera_proto::sealed::REQUEST_OVERHEAD
        } else {
            0
        };
    let bytes = match body_bytes(body, limit) {
        Ok(bytes) => bytes,
        Err(e) => {
            node.metrics().upload_rejected(e.code());
            return Err(e);
        }
    };
    if sealed {
        return sealed_answer(node.sealed_exchange(SealedRoute::Upload, &bytes).await);
    }
    let response = node.upload(&bytes).await?;
    Ok(padded_json(response.to_padded_json()))
}

/// Whether a phone body is sealed (`proto::sealed`), by its content type.
fn is_sealed(headers: &HeaderMap) -> bool {
    has_content_type(headers, sealed::CONTENT_TYPE)
}

/// Whether the request's `Content-Type` is `expected` (in any case).
pub(crate) fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// A sealed answer: `200` and one size per route, whatever the node answered inside.
fn sealed_answer(answer: Result<Vec<u8>, ApiError>) -> Result<Response, ApiError> {
    Ok((
        [
            (header::CONTENT_TYPE, sealed::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        answer?,
    )
        .into_response())
}

/// The node's sealing key, signed by its batch key: phones seal verify and upload bodies
/// to it.
#[utoipa::path(get, path = "/v1/sealing-key", responses((status = 200, body = openapi::SealingKeyDoc, description = "Signed by the node's batch key; cacheable for an hour")))]
async fn sealing_key(State(node): State<Node>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=3600")],
        axum::Json(node.sealing_key_announcement()),
    )
}

/// The authority's blind-token keys (yesterday's, today's, tomorrow's), signed with its
/// authority key (`docs/PROTOCOL.md` §4.4). Phones compare what they get here with a
/// second node's copy before they blind under a key.
#[utoipa::path(get, path = "/v2/token-keys", responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream", description = "A framed postcard `SignedTokenKeySet` (wire kind 0x0f, version 2); cacheable for ten minutes")))]
async fn token_keys(State(node): State<Node>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "public, max-age=600"),
        ],
        node.token_key_set_frame(),
    )
}

/// Query of the batch index.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct IndexQuery {
    /// Sequence number of the last batch already seen (0 for all), at most `i64::MAX`.
    #[serde(default)]
    after: u64,
}

/// Lists published batches after a cursor, oldest first.
#[utoipa::path(get, path = "/v1/batches", params(IndexQuery),
    responses((status = 200, body = openapi::BatchIndexDoc)))]
async fn batch_index(
    State(node): State<Node>,
    query: Result<Query<IndexQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let index = node.batch_index(index_cursor(query)?)?;
    Ok(index_page(index))
}

/// The cursor of an index query (`?after=`): a sequence number up to `i64::MAX`.
fn index_cursor(query: Result<Query<IndexQuery>, QueryRejection>) -> Result<u64, ApiError> {
    match query {
        Ok(Query(query)) if query.after <= contract::MAX_CURSOR => Ok(query.after),
        _ => Err(ApiError::InvalidParameter {
            name: "after",
            reason: "must be a sequence number from 0 to 9223372036854775807",
        }),
    }
}

/// An index page, JSON, cacheable for a minute.
fn index_page(index: impl serde::Serialize) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        axum::Json(index),
    )
        .into_response()
}

/// This node's signed batch-log head and the latest head it heard of each other node
/// (hex `SignedHead` frames, docs/PROTOCOL.md §6.2): a phone compares its node's head
/// with what this node saw.
#[utoipa::path(get, path = "/v1/heads",
    responses((status = 200, body = openapi::HeadListDoc)))]
async fn heads(State(node): State<Node>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        axum::Json(node.heads()),
    )
}

/// Every conflict this node found between two signed heads of one node key (equivocation:
/// two batches under one sequence; rollback: a later head at a lower sequence), each with
/// both heads as evidence anyone can check.
#[utoipa::path(get, path = "/v1/heads/conflicts",
    responses((status = 200, body = openapi::HeadConflictsDoc)))]
async fn head_conflicts(State(node): State<Node>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        axum::Json(node.head_conflicts()),
    )
}

/// One signed batch: immutable and content-addressed (the id is SHA-256 of its body).
#[utoipa::path(get, path = "/v1/batches/{id}",
    params(("id" = String, Path, description = "64 hex characters")),
    responses(
        (status = 200, description = "Signed batch bytes", content_type = "application/octet-stream"),
        (status = 304, description = "Not modified (If-None-Match)")))]
async fn batch(
    State(node): State<Node>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let batch = node
        .batch(&path_batch_id(&id)?)?
        .ok_or(ApiError::NotFound)?;
    Ok(immutable::batch_response(&headers, &batch))
}

/// The token filter of one signed batch (publication version 3, docs/PROTOCOL.md §6.5):
/// what a `pet` phone fetches instead of the batch. Immutable; its `ETag` is its SHA-256.
#[utoipa::path(get, path = "/v1/batches/{id}/filter",
    params(("id" = String, Path, description = "64 hex characters: the batch's id")),
    responses(
        (status = 200, description = "Signed token filter bytes", content_type = "application/octet-stream"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such batch, or a batch without tokens, of version 1 or cut before filters were stored")))]
async fn batch_filter(
    State(node): State<Node>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let filter = node
        .token_filter(&path_batch_id(&id)?)?
        .ok_or(ApiError::NotFound)?;
    Ok(immutable::batch_response(&headers, &filter))
}

/// The batch id of a path segment.
fn path_batch_id(id: &str) -> Result<BatchId, ApiError> {
    contract::batch_id(id).ok_or(ApiError::InvalidParameter {
        name: "id",
        reason: "must be 64 hex characters",
    })
}

/// GAEN's index of export files, one `v1/exports/<file>` path per line, oldest first.
#[utoipa::path(get, path = "/v1/exports/index.txt",
    responses((status = 200, description = "One path per line", content_type = "text/plain")))]
async fn export_index(State(node): State<Node>) -> Result<Response, ApiError> {
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        node.export_index()?,
    )
        .into_response())
}

/// One GAEN export zip, byte-compatible with Google's key server; verify it with
/// `GET /v1/authority/export-key.pem`.
#[utoipa::path(get, path = "/v1/exports/{file}",
    params(("file" = String, Path, description = "`<start>-<end>-<number>.zip`, as listed in `index.txt`")),
    responses(
        (status = 200, description = "Export zip", content_type = "application/zip"),
        (status = 304, description = "Not modified (If-None-Match)")))]
async fn export_file(
    State(node): State<Node>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !contract::is_export_file(&file) {
        return Err(ApiError::InvalidParameter {
            name: "file",
            reason: "must be <start>-<end>-<number>.zip",
        });
    }
    let bytes = node.export(&file)?.ok_or(ApiError::NotFound)?;
    // The zip is immutable once written; its hash is a strong validator.
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(digest.as_ref())))
        .map_err(|_| ApiError::Internal)?;
    Ok(immutable::immutable(
        &headers,
        etag,
        "application/zip",
        bytes.into(),
        None,
    ))
}

/// Refuses a name or password field longer than the contract allows, before any guess is
/// charged.
fn check_lengths(name: &str, password: &str) -> Result<(), ApiError> {
    if !contract::length_fits(name, contract::MAX_NAME_CHARS) {
        return Err(ApiError::InvalidParameter {
            name: "name",
            reason: "must have 1 to 64 characters",
        });
    }
    if !contract::length_fits(password, contract::MAX_PASSWORD_CHARS) {
        return Err(ApiError::InvalidParameter {
            name: "password",
            reason: "must have 1 to 256 characters",
        });
    }
    Ok(())
}

/// Signs a staff account in. An account with TOTP also sends `totp` (or `recovery_code`);
/// without it a right password gets 401 `totp-required`.
#[utoipa::path(post, path = "/v1/session", request_body = LoginRequest,
    responses((status = 200, body = types::LoginResponse)))]
async fn login(
    State(node): State<Node>,
    source: Option<axum::Extension<crate::server::Source>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let response = sign_in(&node, source, &headers, body).await?;
    Ok(no_store(StatusCode::OK, response))
}

/// Signs a staff account in for the console: as `POST /v1/session`, but the session's
/// token goes only into an HttpOnly, Secure, SameSite=Strict cookie
/// (`__Host-ephemera-session`), and the answer carries the session's CSRF token, to be
/// sent as `X-CSRF-Token` with every request the cookie authenticates.
#[utoipa::path(post, path = "/v1/session/cookie", request_body = LoginRequest,
    responses((status = 200, body = types::ConsoleSession, headers(
        ("Set-Cookie" = String, description = "`__Host-ephemera-session=<token>; Max-Age=<session lifetime>; Path=/; HttpOnly; Secure; SameSite=Strict`")))))]
async fn cookie_login(
    State(node): State<Node>,
    source: Option<axum::Extension<crate::server::Source>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let response = sign_in(&node, source, &headers, body).await?;
    let token = zeroize::Zeroizing::new(response.token);
    let session = node.console_session(&token)?;
    let cookie = caller::session_cookie(&token, node.config().authority.session_lifetime_seconds)?;
    let mut answer = no_store(StatusCode::OK, session);
    answer.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(answer)
}

/// The checks and sign-in shared by `POST /v1/session` and `POST /v1/session/cookie`.
async fn sign_in(
    node: &Node,
    source: Option<axum::Extension<crate::server::Source>>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<types::LoginResponse, ApiError> {
    require_json(headers)?;
    let request: LoginRequest = json_body(body)?;
    // Checked before the guessing budget is charged: a malformed request guesses nothing.
    check_lengths(&request.name, &request.password)?;
    let second = [&request.totp, &request.recovery_code];
    if second.iter().any(|c| {
        c.as_deref()
            .is_some_and(|c| c.is_empty() || c.chars().count() > 64)
    }) {
        return Err(ApiError::InvalidParameter {
            name: "totp",
            reason: "a TOTP or recovery code has 1 to 64 characters",
        });
    }
    let source = source.map_or(crate::server::Source(0), |s| s.0);
    let second = SecondFactor {
        totp: request.totp.clone().map(zeroize::Zeroizing::new),
        recovery_code: request.recovery_code.clone().map(zeroize::Zeroizing::new),
    };
    node.login_from(&request.name, &request.password, second, source)
        .await
}

/// The console's session after a reload: who the session cookie's session is, and its
/// CSRF token. Needs the cookie (and no CSRF header: this is where the page gets it);
/// a bearer token is not taken here.
#[utoipa::path(get, path = "/v1/session/csrf", responses((status = 200, body = types::ConsoleSession)), security(("console" = [])))]
async fn console_session(
    State(node): State<Node>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = node.console_session(caller::cookie_token(&headers)?)?;
    Ok(no_store(StatusCode::OK, session))
}

/// Who the session is: its account, roles, and whether it must set a password or enrol
/// TOTP first.
#[utoipa::path(get, path = "/v1/session", responses((status = 200, body = types::SessionInfo)), security(("bearer" = [])))]
async fn session_info(State(node): State<Node>, headers: HeaderMap) -> Result<Response, ApiError> {
    let info = node.session_info(caller(&node, &headers)?)?;
    Ok(no_store(StatusCode::OK, info))
}

/// Signs out. The answer also clears the console's session cookie.
#[utoipa::path(delete, path = "/v1/session", responses((status = 204, description = "Signed out",
    headers(("Set-Cookie" = String, description = "Clears the console's cookie: `__Host-ephemera-session=; Max-Age=0; …`")))),
    security(("bearer" = [])))]
async fn logout(State(node): State<Node>, headers: HeaderMap) -> Result<Response, ApiError> {
    node.logout(caller(&node, &headers)?).await?;
    Ok(signed_out())
}

/// 204 that clears the console's session cookie.
fn signed_out() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, caller::clear_cookie())],
    )
        .into_response()
}

/// Signs the account out everywhere: every session of it ends, this one too. The answer
/// also clears the console's session cookie.
#[utoipa::path(delete, path = "/v1/sessions", responses((status = 204, description = "Every session of the account ended",
    headers(("Set-Cookie" = String, description = "Clears the console's cookie: `__Host-ephemera-session=; Max-Age=0; …`")))),
    security(("bearer" = [])))]
async fn logout_everywhere(
    State(node): State<Node>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    node.logout_everywhere(caller(&node, &headers)?).await?;
    Ok(signed_out())
}

/// Sets a new password (12 to 256 characters, not a common one): the one thing a session
/// whose password was set by someone else may do. The account's other sessions end.
#[utoipa::path(post, path = "/v1/session/password", request_body = PasswordChangeRequest,
    responses((status = 204, description = "Password changed")), security(("bearer" = [])))]
async fn change_password(
    State(node): State<Node>,
    source: Option<axum::Extension<crate::server::Source>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let (token, request): (&str, PasswordChangeRequest) = signed_json(&node, &headers, body)?;
    if !contract::length_fits(&request.current_password, contract::MAX_PASSWORD_CHARS) {
        return Err(ApiError::InvalidParameter {
            name: "current_password",
            reason: "must have 1 to 256 characters",
        });
    }
    if request.new_password.chars().count() > contract::MAX_PASSWORD_CHARS {
        return Err(ApiError::InvalidParameter {
            name: "new_password",
            reason: "must have at most 256 characters",
        });
    }
    let source = source.map_or(crate::server::Source(0), |s| s.0);
    node.change_password(
        token,
        &request.current_password,
        &request.new_password,
        source,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts enrolling a TOTP second factor: a new secret, shown once, that takes effect when
/// a code from it is confirmed.
#[utoipa::path(post, path = "/v1/session/totp", responses((status = 200, body = types::TotpEnrolment)), security(("bearer" = [])))]
async fn begin_totp(State(node): State<Node>, headers: HeaderMap) -> Result<Response, ApiError> {
    let enrolment = node.begin_totp(caller(&node, &headers)?).await?;
    Ok(no_store(StatusCode::OK, enrolment))
}

/// Confirms the TOTP enrolment with a code from its secret; answers the account's new
/// recovery codes, shown once.
#[utoipa::path(post, path = "/v1/session/totp/confirm", request_body = TotpConfirmRequest,
    responses((status = 200, body = types::RecoveryCodes)), security(("bearer" = [])))]
async fn confirm_totp(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (token, request): (&str, TotpConfirmRequest) = signed_json(&node, &headers, body)?;
    let codes = node.confirm_totp(token, &request.code).await?;
    Ok(no_store(StatusCode::OK, codes))
}

/// A new set of recovery codes (the old set stops working), shown once.
#[utoipa::path(post, path = "/v1/session/recovery-codes", responses((status = 200, body = types::RecoveryCodes)), security(("bearer" = [])))]
async fn recovery_codes(
    State(node): State<Node>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let codes = node.renew_recovery_codes(caller(&node, &headers)?).await?;
    Ok(no_store(StatusCode::OK, codes))
}

/// Every staff account (admins only).
#[utoipa::path(get, path = "/v1/accounts", responses((status = 200, body = Vec<crate::accounts::directory::AccountSummary>)), security(("bearer" = [])))]
async fn list_accounts(State(node): State<Node>, headers: HeaderMap) -> Result<Response, ApiError> {
    let accounts = node.list_accounts(caller(&node, &headers)?)?;
    Ok(no_store(StatusCode::OK, accounts))
}

/// Creates an account (admins only, roles up to the admin's own); its one-time password is
/// shown once, and its first sign-in must replace it.
#[utoipa::path(post, path = "/v1/accounts", request_body = CreateAccountRequest,
    responses((status = 201, body = types::OneTimePassword)), security(("bearer" = [])))]
async fn create_account(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (token, request): (&str, CreateAccountRequest) = signed_json(&node, &headers, body)?;
    let created = node
        .create_account(token, &request.name, &request.roles)
        .await?;
    Ok(no_store(StatusCode::CREATED, created))
}

/// The account named in a path, if it can be one.
fn account_name(name: &str) -> Result<&str, ApiError> {
    if crate::accounts::is_account_name(name) {
        Ok(name)
    } else {
        Err(ApiError::InvalidParameter {
            name: "name",
            reason: crate::accounts::NAME_RULE,
        })
    }
}

/// Disables an account (admins only): its sessions end at once. Accounts are never
/// deleted; the last enabled admin is never disabled.
#[utoipa::path(post, path = "/v1/accounts/{name}/disable",
    params(("name" = String, Path, description = "The account")),
    responses((status = 204, description = "Disabled")), security(("bearer" = [])))]
async fn disable_account(
    State(node): State<Node>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    set_enabled(&node, &name, &headers, false).await
}

/// Enables a disabled account again (admins only).
#[utoipa::path(post, path = "/v1/accounts/{name}/enable",
    params(("name" = String, Path, description = "The account")),
    responses((status = 204, description = "Enabled")), security(("bearer" = [])))]
async fn enable_account(
    State(node): State<Node>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    set_enabled(&node, &name, &headers, true).await
}

async fn set_enabled(
    node: &Node,
    name: &str,
    headers: &HeaderMap,
    enabled: bool,
) -> Result<StatusCode, ApiError> {
    let token = caller(node, headers)?;
    node.set_account_enabled(token, account_name(name)?, enabled)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets an account's roles (admins only; every role added or taken away must be the
/// admin's own; the last enabled admin keeps `admin`).
#[utoipa::path(post, path = "/v1/accounts/{name}/roles", request_body = RolesRequest,
    params(("name" = String, Path, description = "The account")),
    responses((status = 204, description = "Roles set")), security(("bearer" = [])))]
async fn set_roles(
    State(node): State<Node>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let (token, request): (&str, RolesRequest) = signed_json(&node, &headers, body)?;
    node.set_account_roles(token, account_name(&name)?, &request.roles)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives an account a one-time password (admins only), shown once; its sessions end and
/// its next sign-in must set a new password.
#[utoipa::path(post, path = "/v1/accounts/{name}/reset-password",
    params(("name" = String, Path, description = "The account")),
    responses((status = 200, body = types::OneTimePassword)), security(("bearer" = [])))]
async fn reset_password(
    State(node): State<Node>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = caller(&node, &headers)?;
    let reset = node
        .reset_account_password(token, account_name(&name)?)
        .await?;
    Ok(no_store(StatusCode::OK, reset))
}

/// Issues upload codes: one for a `case-worker`; more, or `Accept: text/csv` (CSV), for a
/// `bulk-issuer`.
#[utoipa::path(post, path = "/v1/codes", request_body = IssueCodesRequest,
    responses(
        (status = 410, body = openapi::ErrorBodyDoc, description = "sunset: a sunset order stopped this node (GET /v1/sunset)"),
        (status = 200, description = "The codes: JSON, or CSV for `Accept: text/csv`", content(
            (types::IssueCodesResponse = "application/json"),
            (String = "text/csv", example = "code,expires_at,expires_at_utc,test_type,symptom_onset,reference"),
        ))),
    security(("bearer" = [])))]
async fn issue_codes(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = caller(&node, &headers)?;
    let wants_csv = wants_csv(&headers);
    let (issuer, request) = if token.starts_with(API_KEY_PREFIX) {
        // A lab's or hospital's key: any count up to the request maximum, JSON or CSV,
        // within its test types (checked with its quota when issuing).
        let key = node.authorize_api_key(token)?;
        require_json(&headers)?;
        let request: IssueCodesRequest = json_body(body)?;
        (Issuer::Key(key), request)
    } else {
        // Checked first, so that a session that may issue nothing learns nothing of the body.
        node.authorize(token, Need::OneOf(&[Role::CaseWorker, Role::BulkIssuer]))?;
        require_json(&headers)?;
        let request: IssueCodesRequest = json_body(body)?;
        // One code at a time is a case worker's; more, or a CSV file, a bulk issuer's.
        let need = if request.count.unwrap_or(1) > 1 || wants_csv {
            Need::OneOf(&[Role::BulkIssuer])
        } else {
            Need::OneOf(&[Role::CaseWorker, Role::BulkIssuer])
        };
        let account = node.authorize(token, need)?.account;
        (Issuer::Account(account), request)
    };
    if request
        .symptom_onset
        .as_deref()
        .is_some_and(|text| !contract::is_date_shaped(text))
    {
        return Err(ApiError::InvalidParameter {
            name: "symptom_onset",
            reason: "must be a date YYYY-MM-DD",
        });
    }
    let response = node.issue_codes(&request, &issuer).await?;
    if wants_csv {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"upload-codes.csv\"",
                ),
            ],
            response.to_csv(),
        )
            .into_response());
    }
    Ok(no_store(StatusCode::OK, response))
}

/// Who may look up and revoke codes: whoever may issue them. Any code of this authority,
/// not only the account's own (a colleague's mistake must be revocable at once, and every
/// look-up and revoke is audited under the account).
const CODE_LIFECYCLE: Need = Need::OneOf(&[Role::CaseWorker, Role::BulkIssuer]);

/// Whether the request asks for CSV (`Accept: text/csv`).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// The reference in a path, if it can be one.
fn code_reference(text: &str) -> Result<crate::store::CodeReference, ApiError> {
    crate::store::CodeReference::parse(text).ok_or(ApiError::InvalidParameter {
        name: "reference",
        reason: "must be 12 characters of 0-9 and A-Z less I, L, O and U",
    })
}

/// Where an issued code stands (`issued`, `used`, `expired`, `revoked`, with the day of
/// the change), by its reference: any code of this authority for a case worker or bulk
/// issuer, and for an API key (`ephk_…` as the bearer) the codes it issued (403
/// `foreign-code-reference` for others). The look-up is audited.
#[utoipa::path(get, path = "/v1/codes/{reference}",
    params(("reference" = String, Path, description = "The code's reference (12 characters)")),
    responses((status = 200, body = types::CodeStatusInfo)), security(("bearer" = [])))]
async fn code_status(
    State(node): State<Node>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    code_lifecycle(&node, &reference, &headers, false).await
}

/// Revokes an issued code by its reference: from now on `/v1/verify` and `/v2/verify`
/// refuse it as `invalid-code`. A code used, expired or revoked before gets 409
/// `code-not-revocable`. An API key revokes only the codes it issued. Audited, refusals too.
#[utoipa::path(post, path = "/v1/codes/{reference}/revoke",
    params(("reference" = String, Path, description = "The code's reference (12 characters)")),
    responses((status = 200, body = types::CodeStatusInfo)), security(("bearer" = [])))]
async fn revoke_code(
    State(node): State<Node>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    code_lifecycle(&node, &reference, &headers, true).await
}

/// Who asks about a code: a lab's or hospital's API key (its own codes only), or a staff
/// session of a role that may.
fn lifecycle_asker(node: &Node, token: &str) -> Result<Issuer, ApiError> {
    if token.starts_with(API_KEY_PREFIX) {
        return Ok(Issuer::Key(node.authorize_api_key(token)?));
    }
    Ok(Issuer::Account(
        node.authorize(token, CODE_LIFECYCLE)?.account,
    ))
}

/// A code's status by reference, after revoking it if `revoke`.
async fn code_lifecycle(
    node: &Node,
    reference: &str,
    headers: &HeaderMap,
    revoke: bool,
) -> Result<Response, ApiError> {
    let asker = lifecycle_asker(node, caller(node, headers)?)?;
    let reference = code_reference(reference)?;
    let status = if revoke {
        node.revoke_code(&reference, &asker).await?
    } else {
        node.code_status(&reference, &asker).await?
    };
    Ok(no_store(StatusCode::OK, status))
}

/// Every API key of lab and hospital systems, never a secret (admins only).
#[utoipa::path(get, path = "/v1/api-keys", responses((status = 200, body = Vec<crate::accounts::api_key::ApiKeySummary>)), security(("bearer" = [])))]
async fn list_api_keys(State(node): State<Node>, headers: HeaderMap) -> Result<Response, ApiError> {
    let keys = node.list_api_keys(caller(&node, &headers)?)?;
    Ok(no_store(StatusCode::OK, keys))
}

/// Creates an API key for a lab or hospital system (admins only), scoped to issuing codes
/// of some or all test types; the key is shown once (the node keeps its SHA-256). Send it
/// as `Authorization: Bearer <key>` to `POST /v1/codes`.
#[utoipa::path(post, path = "/v1/api-keys", request_body = types::CreateApiKeyRequest,
    responses((status = 201, body = types::CreatedApiKey)), security(("bearer" = [])))]
async fn create_api_key(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (token, request): (&str, types::CreateApiKeyRequest) = signed_json(&node, &headers, body)?;
    let created = node
        .create_api_key(token, &request.name, &request.test_types)
        .await?;
    Ok(no_store(StatusCode::CREATED, created))
}

/// Revokes an API key (admins only): from its next request on it gets 401.
#[utoipa::path(post, path = "/v1/api-keys/{id}/revoke",
    params(("id" = String, Path, description = "The key's public id (16 hex digits)")),
    responses((status = 204, description = "Revoked")), security(("bearer" = [])))]
async fn revoke_api_key(
    State(node): State<Node>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = caller(&node, &headers)?;
    let id = crate::accounts::api_key::parse_id(&id).ok_or(ApiError::InvalidParameter {
        name: "id",
        reason: "must be 16 hex digits",
    })?;
    node.revoke_api_key(token, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the audit trail.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only records after this sequence (a page's `next_after`); 0 for all.
    #[serde(default)]
    after: u64,
    /// Only records of this day or later, `YYYY-MM-DD` (UTC).
    from: Option<String>,
    /// Only records of this day or earlier, `YYYY-MM-DD` (UTC).
    to: Option<String>,
    /// At most this many records (default 1,000, at most 10,000).
    limit: Option<u32>,
}

/// A day in a query, if it can be one.
fn query_day(
    name: &'static str,
    text: Option<&str>,
) -> Result<Option<ephemera_proto::DayNumber>, ApiError> {
    text.map(|text| {
        crate::clock::civil::parse_date(text).ok_or(ApiError::InvalidParameter {
            name,
            reason: "must be a date YYYY-MM-DD",
        })
    })
    .transpose()
}

/// The audit trail for auditors (and admins): whether it verifies, its signed head, and a
/// page of records (who, what, outcome, the minute; never a code, an address or a token),
/// as JSON, or CSV for `Accept: text/csv` (verification in the `Audit-Trail-Verified`
/// header, the next page in `Audit-Next-After`). The export itself is recorded.
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery),
    responses((status = 200, description = "The trail: JSON, or CSV for `Accept: text/csv`", content(
        (crate::node::AuditExport = "application/json"),
        (String = "text/csv", example = "sequence,minute_utc,actor,action,outcome,previous,hash"),
    ))),
    security(("bearer" = [])))]
async fn audit_export(
    State(node): State<Node>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let token = caller(&node, &headers)?;
    let Ok(Query(query)) = query else {
        return Err(ApiError::InvalidParameter {
            name: "after",
            reason: "after must be a whole number, from and to dates, limit 1 to 10000",
        });
    };
    if query.after > contract::MAX_CURSOR {
        return Err(ApiError::InvalidParameter {
            name: "after",
            reason: "must be a sequence number from 0 to 9223372036854775807",
        });
    }
    let limit = usize::try_from(query.limit.unwrap_or(1000)).unwrap_or(usize::MAX);
    if !(1..=crate::node::MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError::InvalidParameter {
            name: "limit",
            reason: "must be from 1 to 10000",
        });
    }
    let page = crate::node::AuditPage {
        after: query.after,
        from: query_day("from", query.from.as_deref())?,
        to: query_day("to", query.to.as_deref())?,
        limit,
    };
    let export = node.audit_export(token, page).await?;
    if !wants_csv(&headers) {
        return Ok(no_store(StatusCode::OK, export));
    }
    let mut csv = String::from(crate::audit_export::CSV_HEADER);
    csv.push('\n');
    for row in &export.records {
        csv.push_str(&row.csv_line());
        csv.push('\n');
    }
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        csv,
    )
        .into_response();
    let verified = if export.verified { "true" } else { "false" };
    response
        .headers_mut()
        .insert("audit-trail-verified", HeaderValue::from_static(verified));
    if let Some(next) = export.next_after {
        response
            .headers_mut()
            .insert("audit-next-after", HeaderValue::from(next));
    }
    Ok(response)
}
