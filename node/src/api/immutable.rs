//! Immutable, content-addressed responses (signed batches, GAEN export zips): a strong
//! `ETag`, a year-long immutable cache lifetime, and 304 when `If-None-Match` names the tag.
//!
//! Cached batches also have a fast path, [`cached_batch`], that answers
//! `GET /v1/batches/{id}` from memory before the router: no routing, no extractors, no
//! middleware, no storage read, only pre-built header values. Everything else (a miss, a
//! malformed id, another method) goes through the router as before.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use ephemera_proto::batch::BatchId;

use super::IMMUTABLE;
use crate::batch_cache::CachedBatch;
use crate::node::Node;

/// Path prefix of one batch.
const BATCH_PREFIX: &str = "/v1/batches/";
/// `Content-Type` of batches.
pub(crate) const BATCH_CONTENT_TYPE: &str = "application/octet-stream";

/// Whether the request's `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2:
/// `W/"x"` matches `"x"`) or is `*`.
pub(crate) fn not_modified(headers: &HeaderMap, etag: &[u8]) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().any(|value| {
        value.as_bytes().split(|&b| b == b',').any(|tag| {
            let tag = tag.trim_ascii();
            let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
            tag == etag || tag == b"*"
        })
    })
}

/// The answer for an immutable body: 304 with the validators when the client has it,
/// else 200 with `content_type` and `body` (`content_length` when already known).
pub(crate) fn immutable(
    request_headers: &HeaderMap,
    etag: HeaderValue,
    content_type: &'static str,
    body: Body,
    content_length: Option<HeaderValue>,
) -> Response {
    let unchanged = not_modified(request_headers, etag.as_bytes());
    let mut response = if unchanged {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(body)
    };
    let headers = response.headers_mut();
    headers.reserve(7);
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if !unchanged {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(length) = content_length {
            headers.insert(header::CONTENT_LENGTH, length);
        }
    }
    super::add_security_headers(headers);
    response
}

/// The answer for a batch, from its pre-built values.
pub(crate) fn batch_response(request_headers: &HeaderMap, batch: &CachedBatch) -> Response {
    immutable(
        request_headers,
        batch.etag().clone(),
        BATCH_CONTENT_TYPE,
        Body::from(batch.body().clone()),
        Some(batch.content_length().clone()),
    )
}

/// Answers `GET /v1/batches/{64 hex}` from the node's batch cache, or `None` to let the
/// router handle the request (not such a request, a malformed id, or not cached yet).
pub fn cached_batch<B>(node: &Node, request: &Request<B>) -> Option<Response> {
    if request.method() != Method::GET {
        return None;
    }
    let hex = request.uri().path().strip_prefix(BATCH_PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    let id = BatchId::from_hex(hex)?;
    let batch = node.batch_cache().get(&id)?;
    Some(batch_response(request.headers(), &batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_if_none_match(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn if_none_match_lists_stars_and_weak_tags() {
        let tag = b"\"abc\"";
        assert!(!not_modified(&HeaderMap::new(), tag));
        assert!(not_modified(&with_if_none_match(&["\"abc\""]), tag));
        assert!(not_modified(&with_if_none_match(&["\"x\", \"abc\""]), tag));
        assert!(not_modified(
            &with_if_none_match(&["\"x\"", "W/\"abc\""]),
            tag
        ));
        assert!(not_modified(&with_if_none_match(&["*"]), tag));
        assert!(!not_modified(&with_if_none_match(&["\"abcd\", abc"]), tag));
        assert!(!not_modified(&with_if_none_match(&[""]), tag));
    }
}
