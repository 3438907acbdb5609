//! Venues over HTTP (issue 20, `docs/PROTOCOL.md` §10): the authority's venue key, and a
//! venue's codes made for a case worker or an admin and handed over, never kept.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::error::ApiError;
use super::{MAX_JSON_BODY, no_store, openapi, signed_json, types};
use crate::node::Node;

/// The venue routes.
pub(super) fn routes() -> Router<Node> {
    Router::new().route("/v1/venue-key", get(venue_key)).route(
        "/v1/venues",
        post(create_venue).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
    )
}

/// The health authority's venue key (X25519, HPKE), signed by its authority key: a venue
/// seals the authority's share of its master secret to it (`ephemera-node venue create
/// --authority-key`). Check `authority` against the key of `GET /v1/authority` (or the
/// authority's own publication) before using it.
#[utoipa::path(get, path = "/v1/venue-key", responses((status = 200, body = openapi::VenueKeyDoc, description = "Signed by the authority key; the same on every node of the authority; cacheable for an hour")))]
pub(super) async fn venue_key(State(node): State<Node>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=3600")],
        axum::Json(node.venue_key_announcement()),
    )
}

/// Makes a venue's codes (case workers and admins): the printable entry QR code (SVG), its
/// text, and the venue's trace code to keep offline. The node keeps nothing of it: no list
/// of venues; the audit trail records only that a venue was made, by whom.
#[utoipa::path(post, path = "/v1/venues", request_body = types::CreateVenueRequest,
    responses((status = 201, body = types::CreatedVenue, description = "Shown once; `Cache-Control: no-store`")),
    security(("bearer" = [])))]
pub(super) async fn create_venue(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (token, request): (&str, types::CreateVenueRequest) = signed_json(&node, &headers, body)?;
    let created = node.create_venue(token, &request).await?;
    Ok(no_store(StatusCode::CREATED, created))
}
