//! The warning flow over HTTP (issue 20, `docs/PROTOCOL.md` §10.1): a case worker traces
//! a venue; phones page through the releases and download each, immutable.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use ephemera_node_core::venue_release::{TraceError, TraceRequest};
use ephemera_proto::UnixTime;
use ephemera_proto::venue::{ReleaseId, TRACE_TEXT_PREFIX};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::caller::caller;
use super::error::ApiError;
use super::{IndexQuery, immutable, index_cursor, index_page, json_body, openapi, require_json};
use crate::node::{Need, Node};
use crate::store::Role;

/// Longest trace code text accepted: the hex of the largest trace code (465 bytes), with
/// room to spare.
const MAX_TRACE_CODE_TEXT: usize = 1024;

/// The warning-flow routes.
pub(super) fn routes() -> Router<Node> {
    Router::new()
        .route(
            "/v1/venue-traces",
            post(trace_venue).layer(DefaultBodyLimit::max(MAX_VENUE_TRACE_BODY)),
        )
        .route("/v1/venue-releases", get(release_index))
        .route("/v1/venue-releases/{id}", get(release))
}

/// `POST /v1/venue-traces`'s body limit. A schema-valid body with every character of its
/// trace code (1,024) and message (500) written as a 12-byte JSON escape (a surrogate
/// pair) takes about 18,400 bytes, over [`super::MAX_JSON_BODY`]: with four times that room, a
/// body the document allows is never refused with 413, and one it refuses meets the
/// handler's own 400s (schemathesis, `.ci/extra/openapi.sh`).
pub(super) const MAX_VENUE_TRACE_BODY: usize = 64 * 1024;

/// What a case worker sends to trace a venue.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VenueTraceRequest {
    /// The venue's trace code, as `venue create` and the console hand it out
    /// (`ephemera-trace:` and unpadded base64url), or its bytes in base64 (standard or
    /// URL-safe, padding optional) or hex.
    #[schema(max_length = 1024)]
    pub(super) trace_code: String,
    /// When the case arrived, unix seconds.
    pub(super) case_from: u64,
    /// When the case left, unix seconds; at most 24 hours' worth of venue hours after
    /// `case_from`'s.
    pub(super) case_until: u64,
    /// The message the people warned read (UTF-8, at most 500 bytes).
    #[schema(max_length = 500)]
    pub(super) message: String,
}

/// The release a trace made: what phones will download.
#[derive(Serialize, ToSchema)]
pub(super) struct VenueTraceResponse {
    /// The release's id (64 hex characters): `GET /v1/venue-releases/{id}`.
    pub(super) release: String,
    /// Its sequence in this node's release index.
    pub(super) sequence: u64,
    /// Bytes of its frame.
    pub(super) size: u64,
}

/// The bytes of a trace code's text: the venue's own text ([`TRACE_TEXT_PREFIX`] and
/// base64url), hex (tried first: a trace code's base64 is hundreds of characters, never
/// all of them hex digits), or base64 in any of its common forms.
fn trace_code_bytes(text: &str) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let invalid = ApiError::VenueTrace(TraceError::UnreadableTraceCode);
    let text = text.trim();
    let text = text.strip_prefix(TRACE_TEXT_PREFIX).unwrap_or(text);
    if text.is_empty() || text.len() > MAX_TRACE_CODE_TEXT {
        return Err(invalid);
    }
    if let Ok(bytes) = hex::decode(text) {
        return Ok(Zeroizing::new(bytes));
    }
    let unpadded = text.trim_end_matches('=');
    [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ]
    .iter()
    .find_map(|engine| engine.decode(unpadded).ok())
    .map(Zeroizing::new)
    .ok_or(invalid)
}

/// Traces a venue for a case (role `case-worker`): makes the trace keys of every hour the
/// case's times touch from the venue's trace code and this authority's venue key, seals
/// the message for the venue's visitors, pads, signs, stores and publishes the release.
/// The trace code, times and message are kept nowhere. Audited (the release id only).
#[utoipa::path(post, path = "/v1/venue-traces", request_body = VenueTraceRequest,
    responses(
        (status = 201, body = VenueTraceResponse, description = "The release, stored and published"),
        (status = 410, body = openapi::ErrorBodyDoc, description = "sunset: a sunset order stopped this node (GET /v1/sunset)"),
    ),
    security(("bearer" = [])))]
pub(super) async fn trace_venue(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = caller(&node, &headers)?;
    // Checked first, so that a session that may not trace learns nothing of the body.
    let session = node.authorize(token, Need::OneOf(&[Role::CaseWorker]))?;
    require_json(&headers)?;
    let request: VenueTraceRequest = json_body(body)?;
    let trace_code = trace_code_bytes(&request.trace_code)?;
    let entry = node
        .trace_venue(
            &session,
            &TraceRequest {
                trace_code: &trace_code,
                case_from: UnixTime(request.case_from),
                case_until: UnixTime(request.case_until),
                message: &request.message,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(VenueTraceResponse {
            release: entry.id.to_hex(),
            sequence: entry.sequence,
            size: entry.size,
        }),
    )
        .into_response())
}

/// Lists the venue releases this node holds after a cursor, oldest first: a phone fetches
/// each it has not seen and matches its check-ins against the traces.
#[utoipa::path(get, path = "/v1/venue-releases", params(IndexQuery),
    responses((status = 200, body = openapi::ReleaseIndexDoc)))]
pub(super) async fn release_index(
    State(node): State<Node>,
    query: Result<Query<IndexQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let index = node.venue_release_index(index_cursor(query)?)?;
    Ok(index_page(index))
}

/// One venue release (`docs/PROTOCOL.md` §10.1): signed by its authority, content-addressed
/// (its id is the SHA-256 of these bytes, its `ETag`), immutable.
#[utoipa::path(get, path = "/v1/venue-releases/{id}",
    params(("id" = String, Path, description = "64 hex characters: the release's id")),
    responses(
        (status = 200, description = "A framed postcard `SignedVenueRelease` (wire kind 0x13)", content_type = "application/octet-stream"),
        (status = 304, description = "Not modified (If-None-Match)"),
    ))]
pub(super) async fn release(
    State(node): State<Node>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = (id.len() == 64)
        .then(|| ReleaseId::from_hex(&id))
        .flatten()
        .ok_or(ApiError::InvalidParameter {
            name: "id",
            reason: "must be 64 hex characters",
        })?;
    let frame = node.venue_release(&id)?.ok_or(ApiError::NotFound)?;
    let etag =
        HeaderValue::from_str(&format!("\"{}\"", id.to_hex())).map_err(|_| ApiError::Internal)?;
    Ok(immutable::immutable(
        &headers,
        etag,
        immutable::BATCH_CONTENT_TYPE,
        Body::from(frame),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_code_reads_as_hex_or_any_base64() {
        let bytes: Vec<u8> = (0..=255).collect();
        let forms = [
            hex::encode(&bytes),
            hex::encode_upper(&bytes),
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE.encode(&bytes),
            format!(
                " {} ",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
            ),
            format!(
                "{TRACE_TEXT_PREFIX}{}\n",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
            ),
        ];
        for form in forms {
            assert_eq!(*trace_code_bytes(&form).unwrap(), bytes, "{form}");
        }
        for bad in [
            "",
            TRACE_TEXT_PREFIX,
            "not a code!",
            &"A".repeat(MAX_TRACE_CODE_TEXT + 1),
        ] {
            assert_eq!(
                trace_code_bytes(bad).unwrap_err().code(),
                "invalid-trace-code"
            );
        }
    }
}
