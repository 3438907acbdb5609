//! Who is calling: the one place that turns a request's credential into the token the node
//! checks ([`crate::node::Node::authorize`], [`crate::node::Node::authorize_api_key`]).
//!
//! - `Authorization: Bearer <token>`: a session token (API clients) or an API key
//!   (`POST /v1/codes`). It wins when a cookie is sent too: no other site can make a
//!   browser send it.
//! - The console's cookie [`SESSION_COOKIE`] (HttpOnly, Secure, SameSite=Strict, Path=/):
//!   only with the session's CSRF token in [`CSRF_HEADER`], checked before the handler
//!   runs, except on `GET /v1/session/csrf` (`cookie_token`), which hands the token out.
//!
//! Neither the cookie nor a token is ever logged: nothing here writes a log line.

use axum::http::{HeaderMap, HeaderValue, header};

use super::error::ApiError;
use crate::node::Node;

/// The console's session cookie. `__Host-`: the browser keeps it only when it is Secure,
/// has `Path=/` and no `Domain`, so no sibling host can set or shadow it (Chromium keeps
/// such a cookie on `http://127.0.0.1` and `http://localhost` too).
pub const SESSION_COOKIE: &str = "__Host-ephemera-session";
/// The header a cookie request sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The bearer token of `Authorization: Bearer <token>`.
///
/// # Errors
/// [`ApiError::Unauthorized`] without one.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)
}

/// The token of a signed-in request: the bearer token, or the session cookie's once its
/// CSRF header checks out.
///
/// # Errors
/// [`ApiError::Unauthorized`] with neither; [`ApiError::CsrfMissing`] for a cookie without
/// the header; and as [`Node::check_csrf`].
pub(crate) fn caller<'a>(node: &Node, headers: &'a HeaderMap) -> Result<&'a str, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return bearer(headers);
    }
    let token = cookie_token(headers)?;
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::CsrfMissing)?;
    node.check_csrf(token, presented)?;
    Ok(token)
}

/// The session cookie's token, unchecked (`GET /v1/session/csrf`, and [`caller`]).
///
/// # Errors
/// [`ApiError::Unauthorized`] without the cookie.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
        .ok_or(ApiError::Unauthorized)
}

/// `Set-Cookie` of a new console session that lives `max_age` seconds at most.
pub(crate) fn session_cookie(token: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; Secure; SameSite=Strict"
    ))
    .map_err(|_| ApiError::Internal)
}

/// `Set-Cookie` that removes the session cookie (sign-out, an ended session).
pub(crate) fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-ephemera-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let headers = with(&[("cookie", "a=1; __Host-ephemera-session=abc ; b=2")]);
        assert_eq!(cookie_token(&headers).unwrap(), "abc");
        let split = with(&[("cookie", "a=1"), ("cookie", "__Host-ephemera-session=xyz")]);
        assert_eq!(cookie_token(&split).unwrap(), "xyz");
        for none in [
            "a=1",
            "ephemera-session=abc",
            "__Host-ephemera-session=",
            "",
        ] {
            assert!(matches!(
                cookie_token(&with(&[("cookie", none)])),
                Err(ApiError::Unauthorized)
            ));
        }
    }

    #[test]
    fn cookies_are_host_only_http_only_strict_and_cleared_with_max_age_zero() {
        let set = session_cookie("abc", 3600).unwrap();
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-ephemera-session=abc;"));
        for part in [
            "Max-Age=3600",
            "Path=/",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
        ] {
            assert!(set.contains(part), "{part}");
        }
        assert!(!set.contains("Domain"));
        let clear = clear_cookie();
        let clear = clear.to_str().unwrap();
        assert!(clear.starts_with(&format!("{SESSION_COOKIE}=;")));
        assert!(clear.contains("Max-Age=0"));
        assert!(session_cookie("a\nb", 1).is_err());
    }

    proptest! {
        #[test]
        fn any_cookie_header_parses_without_panic(value in "[ -~]{0,200}") {
            if let Ok(value) = HeaderValue::from_str(&value) {
                let mut headers = HeaderMap::new();
                headers.insert(header::COOKIE, value);
                if let Ok(token) = cookie_token(&headers) {
                    prop_assert!(!token.is_empty());
                    prop_assert!(!token.contains(';'));
                }
            }
        }
    }
}
