//! Every error the HTTP API can answer, mapped to its status and kebab-case code in one
//! place, and the core's domain errors ([`AuthorityError`], [`IntakeError`]) mapped to it. Handlers return `Result<_, ApiError>` and use `?`; [`IntoResponse`] writes
//! `{"error": "<code>", "message": "<sentence>"}`.
//!
//! Messages never contain codes, tokens, keys or addresses: variants carry only facts
//! about the request's shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ephemera_node_core::{AuthorityError, IntakeError};
use ephemera_proto::api::ErrorBody;
use ephemera_proto::sealed::SealError;
use ephemera_proto::token::TokenError;
use ephemera_proto::{CertificateError, DecodeError, UploadError, ValidationError};
use thiserror::Error;

use crate::store::StoreError;

/// `Retry-After` of 503 `storage-unavailable` (the database cannot be reached), in seconds.
pub const STORAGE_UNAVAILABLE_RETRY_AFTER_SECONDS: u32 = 2;
/// `Retry-After` of 503 `insufficient-storage`, in seconds.
pub const DISK_RESERVE_RETRY_AFTER_SECONDS: u32 = 60;

/// An API request failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A JSON body is larger than the endpoint accepts.
    #[error("request body is larger than {max} bytes")]
    PayloadTooLarge {
        /// The limit.
        max: usize,
    },
    /// A body came without the media type its endpoint documents.
    #[error("the body must be sent as Content-Type: {expected}")]
    UnsupportedMediaType {
        /// The media type the endpoint takes.
        expected: &'static str,
    },
    /// A JSON body could not be parsed.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// A query or path parameter is invalid.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The guessing budget is spent.
    #[error("too many failed attempts; try again later")]
    TooManyAttempts,
    /// No valid session.
    #[error("sign in first")]
    Unauthorized,
    /// Wrong name or password.
    #[error("unknown name or wrong password")]
    InvalidCredentials,
    /// The authority refused to issue codes or to redeem one.
    #[error(transparent)]
    Authority(AuthorityError),
    /// Intake refused an upload.
    #[error(transparent)]
    Intake(IntakeError),
    /// No such resource.
    #[error("not found")]
    NotFound,
    /// The path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Storage failed.
    #[error("storage failure")]
    Store(#[from] StoreError),
    /// Something that should not happen did.
    #[error("internal error")]
    Internal,
    /// A request body could not be read (a broken chunked encoding, a reset).
    #[error("the request body could not be read")]
    UnreadableBody,
    /// The body did not arrive within `[http] body_read_timeout_ms`.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The request was not answered within `[http] request_deadline_ms`.
    #[error("the request took too long; try again later")]
    DeadlineExceeded,
    /// A cap (connections, requests in flight, body memory) is reached: try again later.
    #[error("the node is busy; try again later")]
    Overloaded,
    /// The request head could not be parsed (answered before the router).
    #[error("the request head is malformed (request line, a header or Content-Length)")]
    MalformedRequest,
    /// The request target is longer than the node reads (answered before the router).
    #[error("the request target is too long")]
    UriTooLong,
    /// The request head (target and headers) is larger than the node reads (answered
    /// before the router).
    #[error("the request head (target and headers) is too large")]
    HeadersTooLarge,
    /// A sealed phone body could not be opened (`proto::sealed`).
    #[error("{0}")]
    Sealed(SealError),
    /// Free disk is below `[storage] free_space_reserve_mb`: new uploads (and the verifies
    /// before them) wait until space is freed.
    #[error("the node is short of disk space; try again later")]
    InsufficientStorage,
    /// A sunset order stopped this node (`GET /v1/sunset`): no new codes, verifies or
    /// uploads.
    #[error("this service has ended under a sunset order; see GET /v1/sunset")]
    Sunset,
    /// `POST /v1/sunset` on a node without `[sunset] keys`.
    #[error("this node has no sunset committee configured ([sunset] keys)")]
    SunsetNotConfigured,
    /// `POST /v1/venue-traces` refused: the trace code, the times or the message.
    #[error("{0}")]
    VenueTrace(ephemera_node_core::venue_release::TraceError),
    /// `POST /v1/sunset` with bytes that are not a valid order here.
    #[error("sunset order refused: {0}")]
    SunsetRefused(ephemera_node_core::sunset::SunsetRefusal),
    /// The account's password was set by someone else: the session may only set a new one
    /// (`POST /v1/session/password`).
    #[error("set a new password first (POST /v1/session/password)")]
    PasswordChangeRequired,
    /// Every account must have a second factor and this one has none: the session may only
    /// enrol one (`POST /v1/session/totp`).
    #[error("enrol a TOTP second factor first (POST /v1/session/totp)")]
    TotpEnrolmentRequired,
    /// The name and password are right and the account has TOTP: sign in again with
    /// `totp` (or `recovery_code`).
    #[error("this account needs a TOTP code (or a recovery code) to sign in")]
    TotpRequired,
    /// The session's account lacks the role the request needs.
    #[error("this account lacks the role `{role}` for this")]
    Forbidden {
        /// The role needed.
        role: &'static str,
    },
    /// A chosen password breaks a rule.
    #[error("the new password {reason}")]
    WeakPassword {
        /// Which rule.
        reason: &'static str,
    },
    /// No account has this name.
    #[error("no account has this name")]
    UnknownAccount,
    /// An account with this name exists (disabled ones too: names are never reused).
    #[error("an account with this name exists")]
    AccountExists,
    /// A role name is none of `admin`, `case-worker`, `bulk-issuer`, `auditor`.
    #[error("unknown role; roles are admin, case-worker, bulk-issuer and auditor")]
    UnknownRole,
    /// A grant above the granter's own roles.
    #[error("roles can be granted only up to the granter's own")]
    AboveOwnRoles,
    /// The change would leave no enabled admin.
    #[error("the last enabled admin cannot be disabled or lose the admin role")]
    LastAdmin,
    /// A TOTP code that does not match (enrolment), or no enrolment under way.
    #[error("the TOTP code does not match the secret being enrolled")]
    InvalidTotpCode,
    /// Recovery codes need a TOTP second factor.
    #[error("this account has no TOTP second factor")]
    TotpNotEnrolled,
    /// No issued code has this reference.
    #[error("no issued code has this reference")]
    UnknownCodeReference,
    /// An API key asked about a code it did not issue.
    #[error("this reference is of a code another issuer made: a key sees only its own codes")]
    ForeignCodeReference,
    /// The code is no longer there to revoke.
    #[error("the code cannot be revoked: it is {status}")]
    CodeNotRevocable {
        /// Where it stands: `used`, `expired` or `revoked`.
        status: &'static str,
    },
    /// No API key has this id.
    #[error("no API key has this id")]
    UnknownApiKey,
    /// The API key was revoked before.
    #[error("the API key is revoked already")]
    ApiKeyRevoked,
    /// The API key may not issue codes of this test type.
    #[error("this API key may not issue codes of this test type")]
    OutsideKeyScope,
    /// A cookie-authenticated request without its `X-CSRF-Token` header.
    #[error("a request with the console's session cookie must send its X-CSRF-Token header")]
    CsrfMissing,
    /// An `X-CSRF-Token` this node never issued.
    #[error("the X-CSRF-Token header is not a token this node issued")]
    CsrfInvalid,
    /// An `X-CSRF-Token` issued to another session, or to one that has ended.
    #[error("the X-CSRF-Token header belongs to another or an ended session; reload the page")]
    CsrfSessionMismatch,
    /// The session cookie names no live session: signed out, expired, or its account
    /// disabled. The answer clears the cookie.
    #[error("this session has ended (signed out, expired or its account disabled); sign in again")]
    SessionEnded,
    /// This node's `[storage] role` does not serve the route: another node of the group
    /// does (`node/docs/OPERATIONS.md`, "Least-privilege roles").
    #[error(
        "this node runs [storage] role = \"{role}\", which does not serve this; send it to \
         the group's node that does (node/docs/OPERATIONS.md, \"Least-privilege roles\")"
    )]
    WrongNode {
        /// This node's role.
        role: &'static str,
    },
    /// The key's or account's codes for today are spent.
    #[error("the daily quota of codes is spent; try again after midnight UTC")]
    QuotaExceeded {
        /// Seconds to the next midnight UTC.
        retry_after: u32,
    },
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            PayloadTooLarge { .. } | Intake(IntakeError::TooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Intake(IntakeError::Decode(DecodeError::TooLarge { .. })) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Intake(IntakeError::Rejected(UploadError::Certificate(
                CertificateError::UntrustedAuthority | CertificateError::BadSignature,
            ))) => StatusCode::FORBIDDEN,
            Intake(IntakeError::Token(TokenError::UnknownKey | TokenError::BadSignature)) => {
                StatusCode::FORBIDDEN
            }
            Intake(IntakeError::CertificateUsed) => StatusCode::CONFLICT,
            Authority(AuthorityError::StaleTokenKeys) => StatusCode::CONFLICT,
            Authority(AuthorityError::TokenKeysNotReady) => StatusCode::SERVICE_UNAVAILABLE,
            MalformedJson(_) | InvalidParameter { .. } | Authority(_) | Intake(_) => {
                StatusCode::BAD_REQUEST
            }
            UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Unauthorized | InvalidCredentials | SessionEnded => StatusCode::UNAUTHORIZED,
            CsrfMissing | CsrfInvalid | CsrfSessionMismatch => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Store(StoreError::NotPermitted(_)) | WrongNode { .. } => {
                StatusCode::MISDIRECTED_REQUEST
            }
            Store(_) | Internal => StatusCode::INTERNAL_SERVER_ERROR,
            UnreadableBody | MalformedRequest | Sealed(_) => StatusCode::BAD_REQUEST,
            BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            DeadlineExceeded | Overloaded | InsufficientStorage => StatusCode::SERVICE_UNAVAILABLE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            Sunset => StatusCode::GONE,
            SunsetNotConfigured => StatusCode::CONFLICT,
            SunsetRefused(_) | VenueTrace(_) => StatusCode::BAD_REQUEST,
            PasswordChangeRequired | TotpEnrolmentRequired | Forbidden { .. } | AboveOwnRoles => {
                StatusCode::FORBIDDEN
            }
            TotpRequired => StatusCode::UNAUTHORIZED,
            WeakPassword { .. } | UnknownRole | InvalidTotpCode => StatusCode::BAD_REQUEST,
            UnknownAccount | UnknownCodeReference => StatusCode::NOT_FOUND,
            CodeNotRevocable { .. } | ApiKeyRevoked => StatusCode::CONFLICT,
            UnknownApiKey => StatusCode::NOT_FOUND,
            OutsideKeyScope | ForeignCodeReference => StatusCode::FORBIDDEN,
            QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            AccountExists | LastAdmin | TotpNotEnrolled => StatusCode::CONFLICT,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// The stable kebab-case code.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            PayloadTooLarge { .. } => "payload-too-large",
            MalformedJson(_) => "malformed-json",
            UnsupportedMediaType { .. } => "unsupported-media-type",
            InvalidParameter { .. } => "invalid-parameter",
            TooManyAttempts => "too-many-attempts",
            Unauthorized => "unauthorized",
            InvalidCredentials => "invalid-credentials",
            Authority(e) => match e {
                AuthorityError::CodeCountOutOfRange { .. } | AuthorityError::OnsetOutOfRange => {
                    "invalid-parameter"
                }
                AuthorityError::MalformedCode(_) => "malformed-code",
                AuthorityError::MalformedHmac => "malformed-hmac",
                AuthorityError::CodeUnknownOrExpired => "invalid-code",
                AuthorityError::StaleTokenKeys => "stale-token-keys",
                AuthorityError::TokenKeysNotReady => "token-keys-not-ready",
                _ => "internal-error",
            },
            Intake(e) => intake_code(e),
            NotFound => "not-found",
            MethodNotAllowed => "method-not-allowed",
            Store(StoreError::Unavailable(_)) => "storage-unavailable",
            Store(StoreError::NotPermitted(_)) | WrongNode { .. } => "wrong-node",
            Store(_) => "storage-error",
            Internal => "internal-error",
            UnreadableBody => "unreadable-body",
            BodyTimeout => "body-timeout",
            DeadlineExceeded => "deadline-exceeded",
            Overloaded => "overloaded",
            InsufficientStorage => "insufficient-storage",
            MalformedRequest => "malformed-request",
            UriTooLong => "uri-too-long",
            HeadersTooLarge => "headers-too-large",
            Sealed(SealError::UnknownKey) => "unknown-sealing-key",
            Sealed(_) => "unreadable-sealed-body",
            PasswordChangeRequired => "password-change-required",
            TotpEnrolmentRequired => "totp-enrolment-required",
            TotpRequired => "totp-required",
            Forbidden { .. } => "forbidden",
            WeakPassword { .. } => "weak-password",
            UnknownAccount => "unknown-account",
            AccountExists => "account-exists",
            UnknownRole => "unknown-role",
            AboveOwnRoles => "above-own-roles",
            LastAdmin => "last-admin",
            InvalidTotpCode => "invalid-totp-code",
            TotpNotEnrolled => "totp-not-enrolled",
            UnknownCodeReference => "unknown-code-reference",
            ForeignCodeReference => "foreign-code-reference",
            CodeNotRevocable { .. } => "code-not-revocable",
            UnknownApiKey => "unknown-api-key",
            ApiKeyRevoked => "api-key-revoked",
            OutsideKeyScope => "outside-key-scope",
            QuotaExceeded { .. } => "quota-exceeded",
            CsrfMissing => "csrf-missing",
            CsrfInvalid => "csrf-invalid",
            CsrfSessionMismatch => "csrf-session-mismatch",
            SessionEnded => "session-ended",
            Sunset => "sunset",
            SunsetNotConfigured => "sunset-not-configured",
            SunsetRefused(_) => "invalid-sunset-order",
            VenueTrace(e) => e.code(),
        }
    }

    /// Every code this type can answer, for the OpenAPI document and its test.
    pub const PRE_ROUTER_CODES: &'static [&'static str] = &[
        "malformed-request",
        "uri-too-long",
        "headers-too-large",
        "payload-too-large",
        "body-timeout",
        "unreadable-body",
        "deadline-exceeded",
        "overloaded",
    ];

    /// Seconds a client should wait before retrying, for answers that ask for it.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Overloaded | ApiError::DeadlineExceeded => Some(1),
            // Keys are made off the request path within seconds of the day's start.
            ApiError::Authority(AuthorityError::TokenKeysNotReady) => Some(60),
            // Space comes back when an operator frees it or a purge runs: not within a second.
            ApiError::InsufficientStorage => Some(DISK_RESERVE_RETRY_AFTER_SECONDS),
            ApiError::QuotaExceeded { retry_after } => Some(*retry_after),
            // The pool tries a fresh connection on the next request.
            ApiError::Store(StoreError::Unavailable(_)) => {
                Some(STORAGE_UNAVAILABLE_RETRY_AFTER_SECONDS)
            }
            _ => None,
        }
    }

    /// Whether the answer is a failure worth an ERROR line per request: a 5xx other than
    /// the disk reserve's refusal, which is one state logged once when it begins
    /// (`crate::node`), and whose per-request lines would date phones' attempts.
    pub fn logged_per_request(&self) -> bool {
        (self.status().is_server_error() && !matches!(self, ApiError::InsufficientStorage))
            // A grant that the route needs and the node's role lacks: misrouted, or roles
            // that differ from roles.sql. The line names the table, never a value.
            || matches!(self, ApiError::Store(StoreError::NotPermitted(_)))
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            // Never PostgreSQL's own words to a client.
            ApiError::Store(StoreError::NotPermitted(_)) => "this node's database role may not \
                do this; send it to the group's node that does (node/docs/OPERATIONS.md, \
                \"Least-privilege roles\")"
                .to_owned(),
            other => other.to_string(),
        };
        ErrorBody {
            error: self.code().to_owned(),
            message,
        }
    }
}

/// The code of an upload's refusal.
fn intake_code(e: &IntakeError) -> &'static str {
    match e {
        IntakeError::TooLarge { .. } | IntakeError::Decode(DecodeError::TooLarge { .. }) => {
            "payload-too-large"
        }
        IntakeError::Decode(DecodeError::UnsupportedVersion { .. }) => "unsupported-version",
        IntakeError::Decode(_) => "malformed-body",
        IntakeError::Rejected(UploadError::Certificate(e)) => match e {
            CertificateError::UntrustedAuthority => "certificate-untrusted",
            CertificateError::BadSignature => "certificate-invalid",
            CertificateError::Expired { .. } => "certificate-expired",
            CertificateError::NotYetValid => "certificate-not-yet-valid",
            CertificateError::HmacMismatch => "hmac-mismatch",
            CertificateError::ReportTypeMismatch => "report-type-mismatch",
            _ => "certificate-invalid",
        },
        IntakeError::Rejected(UploadError::Validation(e)) => match e {
            ValidationError::Empty => "report-empty",
            ValidationError::TooManyKeys { .. } => "too-many-keys",
            ValidationError::TooManyTokens { .. } => "too-many-tokens",
            ValidationError::BadRollingPeriod { .. } => "bad-rolling-period",
            ValidationError::FutureKey { .. } => "key-in-future",
            ValidationError::TooOld { .. } => "entry-too-old",
            ValidationError::FutureToken { .. } => "token-in-future",
            ValidationError::Duplicate => "duplicate-entry",
            ValidationError::BadDaysSinceOnset { .. } => "bad-days-since-onset",
            ValidationError::WrongScheme => "wrong-scheme",
            _ => "report-invalid",
        },
        IntakeError::Rejected(_) => "report-invalid",
        IntakeError::SchemeNotAccepted(_) => "scheme-not-accepted",
        IntakeError::ReportTypeNotAllowed(_) => "report-type-not-allowed",
        IntakeError::Token(e) => match e {
            TokenError::UnknownKey => "token-unknown-key",
            TokenError::Expired { .. } => "token-expired",
            _ => "token-invalid",
        },
        IntakeError::CertificateUsed => "certificate-used",
        IntakeError::InvalidRevisionToken => "invalid-revision-token",
        IntakeError::InvalidRevisionSignature => "invalid-revision-signature",
        IntakeError::RevisionNotAllowed { .. } => "revision-not-allowed",
        IntakeError::RevisionMismatch => "revision-mismatch",
        IntakeError::RevisionAuthorityMismatch => "revision-authority-mismatch",
        _ => "internal-error",
    }
}

impl From<AuthorityError> for ApiError {
    fn from(e: AuthorityError) -> Self {
        match e {
            AuthorityError::Store(e) => ApiError::Store(e),
            e => ApiError::Authority(e),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Store(e) => ApiError::Store(e),
            e => ApiError::Intake(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if self.logged_per_request() {
            // The source chain names the failing engine call; it holds no request data.
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "request failed");
        }
        let body = serde_json::to_vec(&self.body()).expect("plain JSON");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::SessionEnded) {
            headers.insert(header::SET_COOKIE, crate::api::caller::clear_cookie());
        }
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // The body was left half read: the connection cannot carry another request.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kebab_case_and_statuses_fit() {
        let cases: Vec<(ApiError, StatusCode, &str)> = vec![
            (
                ApiError::PayloadTooLarge { max: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
            ),
            (
                IntakeError::Decode(DecodeError::TooLarge { got: 2, max: 1 }).into(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
            ),
            (
                IntakeError::Decode(DecodeError::Malformed).into(),
                StatusCode::BAD_REQUEST,
                "malformed-body",
            ),
            (
                IntakeError::Rejected(UploadError::Certificate(CertificateError::Expired {
                    expired_at: 1,
                    now: 2,
                }))
                .into(),
                StatusCode::BAD_REQUEST,
                "certificate-expired",
            ),
            (
                IntakeError::Rejected(UploadError::Certificate(
                    CertificateError::UntrustedAuthority,
                ))
                .into(),
                StatusCode::FORBIDDEN,
                "certificate-untrusted",
            ),
            (
                IntakeError::CertificateUsed.into(),
                StatusCode::CONFLICT,
                "certificate-used",
            ),
            (
                AuthorityError::CodeUnknownOrExpired.into(),
                StatusCode::BAD_REQUEST,
                "invalid-code",
            ),
            (
                AuthorityError::OnsetOutOfRange.into(),
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
            ),
            (
                ApiError::UnsupportedMediaType {
                    expected: "application/json",
                },
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            ),
            (
                ApiError::TooManyAttempts,
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
            ),
            (
                ApiError::Store(StoreError::Engine("disk".into())),
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage-error",
            ),
            (
                ApiError::Store(StoreError::Unavailable("refused".into())),
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-unavailable",
            ),
            (
                ApiError::InsufficientStorage,
                StatusCode::SERVICE_UNAVAILABLE,
                "insufficient-storage",
            ),
            (
                ApiError::PasswordChangeRequired,
                StatusCode::FORBIDDEN,
                "password-change-required",
            ),
            (
                ApiError::TotpRequired,
                StatusCode::UNAUTHORIZED,
                "totp-required",
            ),
            (
                ApiError::Forbidden { role: "admin" },
                StatusCode::FORBIDDEN,
                "forbidden",
            ),
            (ApiError::LastAdmin, StatusCode::CONFLICT, "last-admin"),
            (
                ApiError::UnknownRole,
                StatusCode::BAD_REQUEST,
                "unknown-role",
            ),
            (
                ApiError::AboveOwnRoles,
                StatusCode::FORBIDDEN,
                "above-own-roles",
            ),
            (
                ApiError::UnknownCodeReference,
                StatusCode::NOT_FOUND,
                "unknown-code-reference",
            ),
            (
                ApiError::ForeignCodeReference,
                StatusCode::FORBIDDEN,
                "foreign-code-reference",
            ),
            (
                ApiError::CodeNotRevocable { status: "used" },
                StatusCode::CONFLICT,
                "code-not-revocable",
            ),
            (
                ApiError::UnknownApiKey,
                StatusCode::NOT_FOUND,
                "unknown-api-key",
            ),
            (
                ApiError::ApiKeyRevoked,
                StatusCode::CONFLICT,
                "api-key-revoked",
            ),
            (
                ApiError::OutsideKeyScope,
                StatusCode::FORBIDDEN,
                "outside-key-scope",
            ),
            (ApiError::CsrfMissing, StatusCode::FORBIDDEN, "csrf-missing"),
            (ApiError::CsrfInvalid, StatusCode::FORBIDDEN, "csrf-invalid"),
            (
                ApiError::CsrfSessionMismatch,
                StatusCode::FORBIDDEN,
                "csrf-session-mismatch",
            ),
            (
                ApiError::SessionEnded,
                StatusCode::UNAUTHORIZED,
                "session-ended",
            ),
            (
                ApiError::QuotaExceeded { retry_after: 5 },
                StatusCode::TOO_MANY_REQUESTS,
                "quota-exceeded",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status(), status, "{error}");
            assert_eq!(error.code(), code);
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
        // Storage details stay in the logs, not in the answer, whichever layer failed.
        for error in [
            ApiError::Store(StoreError::Engine("disk at /x".into())),
            IntakeError::Store(StoreError::Engine("disk at /x".into())).into(),
            AuthorityError::Store(StoreError::Engine("disk at /x".into())).into(),
        ] {
            assert_eq!(error.code(), "storage-error");
            assert_eq!(error.body().message, "storage failure");
            assert_eq!(error.retry_after(), None);
        }
        // A database that cannot be reached: 503 with `Retry-After`, from any layer, and
        // neither its address nor its error text in the answer.
        for error in [
            ApiError::Store(StoreError::Unavailable("db.internal:5432 refused".into())),
            IntakeError::Store(StoreError::Unavailable("db.internal:5432 refused".into())).into(),
            AuthorityError::Store(StoreError::Unavailable("db.internal:5432 refused".into()))
                .into(),
        ] {
            assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(error.code(), "storage-unavailable");
            assert_eq!(
                error.retry_after(),
                Some(STORAGE_UNAVAILABLE_RETRY_AFTER_SECONDS)
            );
            assert_eq!(error.body().message, "storage failure");
        }
    }
}
