//! Typed errors of the client. No variant carries a key, token, code or address.

use ephemera_proto::error::{BatchError, DecodeError, ValidationError};
use ephemera_proto::gaen::ExportError;
use thiserror::Error;

/// A configuration breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A risk parameter is out of its domain.
    #[error("risk configuration: bad `{field}`")]
    Risk {
        /// The field.
        field: &'static str,
    },
    /// The retention period is zero or longer than the protocol allows.
    #[error("retention must be 1..={max} days, got {got}")]
    Retention {
        /// Value given.
        got: u32,
        /// Largest allowed.
        max: u32,
    },
    /// Another field is out of its domain.
    #[error("bad `{field}`")]
    Field {
        /// The field.
        field: &'static str,
    },
}

/// The storage backend failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend reported an error (I/O, corruption).
    #[error("storage backend: {message}")]
    Backend {
        /// The backend's message (never holds stored values).
        message: String,
    },
    /// A stored value does not decode.
    #[error("stored {what} does not decode")]
    Corrupt {
        /// What kind of value.
        what: &'static str,
    },
}

/// Why a report could not be built or sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Nothing to report in the infectious window (no expired key, no encounter).
    #[error("nothing to report in the infectious window")]
    NothingToReport,
    /// A report is already in progress.
    #[error("a report is already in progress")]
    InProgress,
    /// The report breaks a protocol rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The authority answered with an error status.
    #[error("the authority refused the code (HTTP {status}: {code})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The API's kebab-case error code, if the body had one.
        code: String,
    },
    /// The node refused the upload.
    #[error("the node refused the upload (HTTP {status}: {code})")]
    UploadRefused {
        /// HTTP status.
        status: u16,
        /// The API's kebab-case error code, if the body had one.
        code: String,
    },
    /// The certificate did not decode or does not certify this report.
    #[error("the certificate received does not certify this report")]
    BadCertificate,
    /// The request could not be delivered.
    #[error("the request could not be delivered")]
    Transport,
}

/// Anything the client core can fail with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// See [`ConfigError`].
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// See [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A batch failed to decode or verify.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A GAEN export file failed to decode or verify against every configured key.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// GAEN export files need the `gaen` scheme and at least one configured export key.
    #[error("this phone accepts no GAEN export files (scheme or keys)")]
    NoExportKey,
    /// A response body or payload did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// See [`ReportError`].
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A response names a request this phone is not waiting for.
    #[error("no request with this id is in flight")]
    UnknownRequest,
    /// A batch's content id differs from the one the index announced.
    #[error("batch content id differs from the index entry")]
    BatchIdMismatch,
    /// A heard payload is not one of the configured scheme's payloads.
    #[error("heard payload is not a payload of this phone's scheme")]
    ForeignPayload,
}
