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
use ephemera_proto::report::ReportType;
use ephemera_proto::{CertificateError, CodeError, DecodeError, UploadError, ValidationError};
use thiserror::Error;

use crate::store::StoreError;

/// An API request failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is larger than the endpoint accepts.
    #[error("request body is larger than {max} bytes")]
    PayloadTooLarge {
        /// The limit.
        max: usize,
    },
    /// A framed (postcard) body could not be decoded.
    #[error("malformed request body: {0}")]
    Decode(DecodeError),
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
    /// An upload code is not well formed.
    #[error("malformed upload code: {0}")]
    MalformedCode(CodeError),
    /// An upload code is unknown, used or expired (deliberately not told apart).
    #[error("the upload code is unknown, already used or expired")]
    InvalidCode,
    /// The report HMAC is not 64 hex characters.
    #[error("report_hmac must be 64 hex characters")]
    MalformedHmac,
    /// The guessing budget is spent.
    #[error("too many failed attempts; try again later")]
    TooManyAttempts,
    /// No valid session.
    #[error("sign in first")]
    Unauthorized,
    /// Wrong name or password.
    #[error("unknown name or wrong password")]
    InvalidCredentials,
    /// The certificate or its binding to the report failed.
    #[error(transparent)]
    Certificate(CertificateError),
    /// The report breaks a protocol rule.
    #[error(transparent)]
    Validation(ValidationError),
    /// The certificate was used for an upload before.
    #[error("this certificate was already used for an upload")]
    CertificateUsed,
    /// The report's scheme is not accepted by this node.
    #[error("this node does not accept reports of this scheme")]
    SchemeNotAccepted,
    /// A first upload certified with a type that only revisions may carry.
    #[error("report type {0:?} is not accepted for a first upload")]
    ReportTypeNotAllowed(ReportType),
    /// The revision token is unknown, used or expired.
    #[error("the revision token is unknown, already used or expired")]
    InvalidRevisionToken,
    /// The report-type change is not one a revision may make.
    #[error("a report of type {from:?} cannot be revised to {to:?}")]
    RevisionNotAllowed {
        /// The current type.
        from: ReportType,
        /// The requested type.
        to: ReportType,
    },
    /// The revision holds entries the original upload did not.
    #[error("a revision may only hold entries of the upload it revises")]
    RevisionMismatch,
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
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Decode(DecodeError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Decode(_)
            | MalformedJson(_)
            | InvalidParameter { .. }
            | MalformedCode(_)
            | MalformedHmac
            | Validation(_)
            | SchemeNotAccepted
            | ReportTypeNotAllowed(_)
            | RevisionNotAllowed { .. }
            | RevisionMismatch => StatusCode::BAD_REQUEST,
            InvalidCode | InvalidRevisionToken => StatusCode::BAD_REQUEST,
            Certificate(CertificateError::UntrustedAuthority | CertificateError::BadSignature) => {
                StatusCode::FORBIDDEN
            }
            Certificate(_) => StatusCode::BAD_REQUEST,
            CertificateUsed => StatusCode::CONFLICT,
            TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Unauthorized | InvalidCredentials => StatusCode::UNAUTHORIZED,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Store(_) | Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable kebab-case code.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            PayloadTooLarge { .. } | Decode(DecodeError::TooLarge { .. }) => "payload-too-large",
            Decode(DecodeError::UnsupportedVersion { .. }) => "unsupported-version",
            Decode(_) => "malformed-body",
            MalformedJson(_) => "malformed-json",
            InvalidParameter { .. } => "invalid-parameter",
            MalformedCode(_) => "malformed-code",
            InvalidCode => "invalid-code",
            MalformedHmac => "malformed-hmac",
            TooManyAttempts => "too-many-attempts",
            Unauthorized => "unauthorized",
            InvalidCredentials => "invalid-credentials",
            Certificate(e) => match e {
                CertificateError::UntrustedAuthority => "certificate-untrusted",
                CertificateError::BadSignature => "certificate-invalid",
                CertificateError::Expired { .. } => "certificate-expired",
                CertificateError::NotYetValid => "certificate-not-yet-valid",
                CertificateError::HmacMismatch => "hmac-mismatch",
                CertificateError::ReportTypeMismatch => "report-type-mismatch",
                _ => "certificate-invalid",
            },
            Validation(e) => match e {
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
            CertificateUsed => "certificate-used",
            SchemeNotAccepted => "scheme-not-accepted",
            ReportTypeNotAllowed(_) => "report-type-not-allowed",
            InvalidRevisionToken => "invalid-revision-token",
            RevisionNotAllowed { .. } => "revision-not-allowed",
            RevisionMismatch => "revision-mismatch",
            NotFound => "not-found",
            MethodNotAllowed => "method-not-allowed",
            Store(_) => "storage-error",
            Internal => "internal-error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
        }
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        ApiError::Decode(e)
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Certificate(e) => ApiError::Certificate(e),
            UploadError::Validation(e) => ApiError::Validation(e),
            _ => ApiError::Internal,
        }
    }
}

impl From<AuthorityError> for ApiError {
    fn from(e: AuthorityError) -> Self {
        match e {
            AuthorityError::CodeCountOutOfRange { .. } => ApiError::InvalidParameter {
                name: "count",
                reason: "must be between 1 and max_codes_per_request",
            },
            AuthorityError::OnsetOutOfRange => ApiError::InvalidParameter {
                name: "symptom_onset",
                reason: "must not be in the future or long past",
            },
            AuthorityError::MalformedCode(e) => ApiError::MalformedCode(e),
            AuthorityError::MalformedHmac => ApiError::MalformedHmac,
            AuthorityError::CodeUnknownOrExpired => ApiError::InvalidCode,
            AuthorityError::Store(e) => ApiError::Store(e),
            _ => ApiError::Internal,
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::TooLarge { max } => ApiError::PayloadTooLarge { max },
            IntakeError::Decode(e) => ApiError::Decode(e),
            IntakeError::Rejected(e) => e.into(),
            IntakeError::SchemeNotAccepted(_) => ApiError::SchemeNotAccepted,
            IntakeError::ReportTypeNotAllowed(t) => ApiError::ReportTypeNotAllowed(t),
            IntakeError::CertificateUsed => ApiError::CertificateUsed,
            IntakeError::InvalidRevisionToken => ApiError::InvalidRevisionToken,
            IntakeError::RevisionNotAllowed { from, to } => {
                ApiError::RevisionNotAllowed { from, to }
            }
            IntakeError::RevisionMismatch => ApiError::RevisionMismatch,
            IntakeError::Store(e) => ApiError::Store(e),
            _ => ApiError::Internal,
        }
    }
}

impl From<CodeError> for ApiError {
    fn from(e: CodeError) -> Self {
        ApiError::MalformedCode(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
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
                ApiError::Decode(DecodeError::TooLarge { got: 2, max: 1 }),
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
            ),
            (
                ApiError::Decode(DecodeError::Malformed),
                StatusCode::BAD_REQUEST,
                "malformed-body",
            ),
            (
                ApiError::Certificate(CertificateError::Expired {
                    expired_at: 1,
                    now: 2,
                }),
                StatusCode::BAD_REQUEST,
                "certificate-expired",
            ),
            (
                ApiError::Certificate(CertificateError::UntrustedAuthority),
                StatusCode::FORBIDDEN,
                "certificate-untrusted",
            ),
            (
                ApiError::CertificateUsed,
                StatusCode::CONFLICT,
                "certificate-used",
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
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status(), status, "{error}");
            assert_eq!(error.code(), code);
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
        // Storage details stay in the logs, not in the answer.
        assert_eq!(
            ApiError::Store(StoreError::Engine("disk at /x".into()))
                .body()
                .message,
            "storage failure"
        );
    }
}
