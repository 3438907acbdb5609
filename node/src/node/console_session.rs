//! The console's cookie sessions: the same sessions as bearer tokens (filed by hash, with
//! their idle timeout and lifetime), carried in an HttpOnly cookie, with a CSRF token bound
//! to the session ([`crate::accounts::CsrfKey`]) that every cookie request sends back as
//! a header.

use crate::accounts::CsrfRefusal;
use crate::api::error::ApiError;
use crate::api::types::ConsoleSession;

use super::{Need, Node};

impl Node {
    /// Checks a cookie request: the session of `token` must be live and `presented` its
    /// CSRF token (compared in constant time).
    ///
    /// # Errors
    /// [`ApiError::SessionEnded`] when the cookie's session is signed out, expired, or of
    /// a disabled account; [`ApiError::CsrfInvalid`] for a token this node never issued;
    /// [`ApiError::CsrfSessionMismatch`] for one issued to another (or an ended) session;
    /// [`ApiError::Store`].
    pub fn check_csrf(&self, token: &str, presented: &str) -> Result<(), ApiError> {
        let session = self.live_cookie_session(token)?;
        self.inner
            .csrf
            .check(&session.id, presented)
            .map_err(|refusal| match refusal {
                CsrfRefusal::Forged => ApiError::CsrfInvalid,
                CsrfRefusal::OtherSession => ApiError::CsrfSessionMismatch,
            })
    }

    /// Who the cookie's session is, with its CSRF token: what the page needs to go on
    /// after a sign-in or a reload.
    ///
    /// # Errors
    /// [`ApiError::SessionEnded`] for no live session; [`ApiError::Store`].
    pub fn console_session(&self, token: &str) -> Result<ConsoleSession, ApiError> {
        let id = self.live_cookie_session(token)?.id;
        Ok(ConsoleSession {
            session: self.session_info(token).map_err(cookie_error)?,
            csrf_token: self.inner.csrf.token(&id),
        })
    }

    fn live_cookie_session(&self, token: &str) -> Result<super::Session, ApiError> {
        self.authorize(token, Need::Live).map_err(cookie_error)
    }
}

/// A cookie that names no live session is told apart from a request with no credential.
fn cookie_error(error: ApiError) -> ApiError {
    match error {
        ApiError::Unauthorized => ApiError::SessionEnded,
        other => other,
    }
}
