//! The end of purpose over HTTP (`docs/PROTOCOL.md` §11): the held sunset order, handing
//! a node an order, the deletion receipt, and what an erased node still answers.

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ApiError;
use super::{body_bytes, has_content_type, openapi, types};
use crate::node::Node;
use crate::sunset_erasure::Erased;

/// The sunset routes of a running node.
pub(super) fn routes() -> Router<Node> {
    Router::new()
        .route(
            "/v1/sunset",
            get(sunset_order)
                .post(offer_sunset)
                .layer(DefaultBodyLimit::max(SUNSET_ORDER_MAX)),
        )
        .route("/v1/sunset/receipt", get(receipt))
}

/// Largest `POST /v1/sunset` body: an order frame's cap.
pub(super) const SUNSET_ORDER_MAX: usize =
    <ephemera_proto::sunset::SignedSunsetOrder as ephemera_proto::wire::WireMessage>::MAX_SIZE;

/// The sunset order this node holds (`docs/PROTOCOL.md` §11): anyone checks its approvals
/// against the committee's published keys.
#[utoipa::path(get, path = "/v1/sunset",
    responses(
        (status = 200, body = Vec<u8>, content_type = "application/octet-stream", description = "A framed postcard `SignedSunsetOrder` (wire kind 0x11)"),
        (status = 404, body = openapi::ErrorBodyDoc, description = "not-found: no order is held"),
    ))]
pub(super) async fn sunset_order(State(node): State<Node>) -> Result<Response, ApiError> {
    let order = node.sunset_order().ok_or(ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        order.to_bytes(),
    )
        .into_response())
}

/// Hands the node a sunset order (an operator after the committee signed it; any relay).
/// The node keeps it when its approvals verify under `[sunset] keys` and it stops this
/// node no later than the order held, then publishes it in its index and to its peers.
#[utoipa::path(post, path = "/v1/sunset",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A framed postcard `SignedSunsetOrder` (wire kind 0x11), as `ephemera-node sunset combine` writes it"),
    responses(
        (status = 200, body = openapi::SunsetOfferDoc, description = "Valid: adopted, or the held order stands"),
        (status = 400, body = openapi::ErrorBodyDoc, description = "invalid-sunset-order (forged, partial, for another federation or committee, post-dated), unreadable-body"),
        (status = 409, body = openapi::ErrorBodyDoc, description = "sunset-not-configured"),
        (status = 413, body = openapi::ErrorBodyDoc, description = "payload-too-large"),
        (status = 415, body = openapi::ErrorBodyDoc, description = "unsupported-media-type"),
    ))]
pub(super) async fn offer_sunset(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !has_content_type(&headers, "application/octet-stream") {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/octet-stream",
        });
    }
    let bytes = body_bytes(body, SUNSET_ORDER_MAX)?;
    let offer = node.take_sunset(&bytes).await?;
    let held = node.sunset_order().ok_or(ApiError::Internal)?;
    Ok(axum::Json(types::SunsetOffer {
        adopted: matches!(offer, ephemera_node_core::sunset::Offer::Adopted(_)),
        held_order: held.order.id().to_string(),
        effective_at: held.order.effective_at.0,
    })
    .into_response())
}

/// This node's signed deletion receipt (a framed postcard `SignedDeletionReceipt`, wire
/// kind 0x12): what it erased under the order, once it has. A running node has none yet.
#[utoipa::path(get, path = "/v1/sunset/receipt",
    responses(
        (status = 200, body = Vec<u8>, content_type = "application/octet-stream", description = "A framed postcard `SignedDeletionReceipt` (wire kind 0x12), from a node that erased its data; check it with `ephemera-node sunset verify-receipts`"),
        (status = 404, body = openapi::ErrorBodyDoc, description = "not-found: the node has not erased its data"),
    ))]
pub(super) async fn receipt() -> ApiError {
    ApiError::NotFound
}

/// What a node serves once its data was erased: the order, the receipt, health, and 410
/// `sunset` for everything else.
pub fn sunset_router(erased: Erased) -> Router {
    let order = Bytes::from(erased.order.to_bytes());
    let receipt = Bytes::from(erased.receipt.to_bytes());
    let frame = |bytes: Bytes| {
        move || async move {
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (header::CACHE_CONTROL, "public, max-age=3600"),
                ],
                bytes,
            )
        }
    };
    Router::new()
        .route("/v1/sunset", get(frame(order)))
        .route("/v1/sunset/receipt", get(frame(receipt)))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "sunset"})) }),
        )
        .fallback(|| async { ApiError::Sunset })
        .layer(axum::middleware::map_response(super::security_headers))
}
