//! Typed errors of the client. No variant carries a key, token, code or address.

use ephemera_proto::batch_log::HeadError;
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
    /// Another phone object (in this or another process) has the folder open. One folder
    /// holds one phone: keep one phone object per folder for the life of the process, and
    /// drop it before opening the folder again.
    #[error("the data folder is in use by another phone object")]
    InUse,
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
    /// The request could not be delivered. Not final: the phone retries with backoff.
    #[error("the request could not be delivered")]
    Transport,
    /// The certificate expired before the node accepted the upload (it was retried for
    /// longer than the certificate lives): the user needs a new code.
    #[error("the certificate expired before the upload was accepted")]
    CertificateExpired,
    /// There is no report to retry or revise.
    #[error("no report to retry or revise")]
    NoReport,
}

impl ReportError {
    /// A stable kebab-case code for apps (never English to parse): one per variant.
    pub fn code(&self) -> &'static str {
        match self {
            ReportError::NothingToReport => "nothing-to-report",
            ReportError::InProgress => "report-in-progress",
            ReportError::Invalid(_) => "report-invalid",
            ReportError::Refused { .. } => "code-refused",
            ReportError::UploadRefused { .. } => "upload-refused",
            ReportError::BadCertificate => "bad-certificate",
            ReportError::Transport => "transport",
            ReportError::CertificateExpired => "certificate-expired",
            ReportError::NoReport => "no-report",
        }
    }
}

/// Why a venue check-in or check-out was refused (`docs/MOBILE.md` §16).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CheckInError {
    /// The scanned text is not an Ephemera venue code (another QR code, a damaged or
    /// altered one).
    #[error("not a valid venue code: {0}")]
    BadCode(#[from] ephemera_proto::venue::VenueDecodeError),
    /// The venue code is not valid yet (its validity starts later).
    #[error("this venue code is not valid yet")]
    NotYetValid,
    /// The venue code's validity has ended (an old poster).
    #[error("this venue code has expired")]
    Expired,
    /// A check-in is open already: check out first.
    #[error("already checked in: check out first")]
    AlreadyCheckedIn,
    /// No check-in is open (never checked in, checked out already, or checked out
    /// automatically after the longest stay).
    #[error("not checked in")]
    NotCheckedIn,
    /// The visit's times are outside what a check-in can encrypt (a clock beyond the
    /// year 490,000).
    #[error("the visit cannot be encrypted: {0}")]
    Visit(#[from] ephemera_proto::venue::VenueError),
}

impl CheckInError {
    /// A stable kebab-case code (see [`ClientError::code`]).
    pub fn code(&self) -> &'static str {
        match self {
            CheckInError::BadCode(_) => "venue-code-invalid",
            CheckInError::NotYetValid => "venue-code-not-yet-valid",
            CheckInError::Expired => "venue-code-expired",
            CheckInError::AlreadyCheckedIn => "already-checked-in",
            CheckInError::NotCheckedIn => "not-checked-in",
            CheckInError::Visit(_) => "visit-out-of-range",
        }
    }
}

/// Why the phone refused its node's venue release index or one release it listed
/// (`docs/MOBILE.md` §16). Raised as
/// [`PhoneEvent::VenueReleaseRejected`](crate::PhoneEvent::VenueReleaseRejected); never
/// returned from an input: the sync round goes on or stops, as [`retried`](Self::retried)
/// says.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VenueReleaseError {
    /// The index page is not the node's JSON, or is over the phone's limits (bytes,
    /// entries). The round stops; the next one asks again from the cursor.
    #[error("the venue release index is unreadable or over the phone's limits")]
    BadIndex,
    /// The index lists a release larger than any release frame can be: skipped unfetched.
    #[error("the index lists a release of {size} bytes, larger than any release")]
    TooLarge {
        /// The size listed.
        size: u64,
    },
    /// The body is not the release the index named (its SHA-256 is not the id: truncated
    /// or altered on the way). The round stops; the next one fetches it again.
    #[error("the body is not the release its id names (truncated or altered)")]
    WrongContent,
    /// The release's bytes are not a release frame: skipped.
    #[error("not a venue release: {0}")]
    Malformed(DecodeError),
    /// The release fails its checks: skipped (untrusted authority, forged, misshapen or
    /// expired), or, issued after the phone's clock, retried by the next round.
    #[error("venue release refused: {0}")]
    Refused(ephemera_proto::venue::ReleaseError),
}

impl VenueReleaseError {
    /// A stable kebab-case code (see [`ClientError::code`]).
    pub fn code(&self) -> &'static str {
        use ephemera_proto::venue::ReleaseError;
        match self {
            VenueReleaseError::BadIndex => "venue-release-index-invalid",
            VenueReleaseError::TooLarge { .. } => "venue-release-too-large",
            VenueReleaseError::WrongContent => "venue-release-mismatch",
            VenueReleaseError::Malformed(_) => "venue-release-malformed",
            VenueReleaseError::Refused(ReleaseError::UntrustedAuthority) => {
                "venue-release-untrusted"
            }
            VenueReleaseError::Refused(ReleaseError::BadSignature) => "venue-release-forged",
            VenueReleaseError::Refused(ReleaseError::Expired { .. }) => "venue-release-expired",
            VenueReleaseError::Refused(ReleaseError::PostDated { .. }) => {
                "venue-release-post-dated"
            }
            VenueReleaseError::Refused(_) => "venue-release-invalid",
        }
    }

    /// Whether the phone asks again next round (the cursor stays before the release):
    /// what the way or the phone's clock may have caused. Otherwise the release's own
    /// bytes are at fault (they are what its id names) and the cursor moves past it.
    pub fn retried(&self) -> bool {
        matches!(
            self,
            VenueReleaseError::BadIndex
                | VenueReleaseError::WrongContent
                | VenueReleaseError::Refused(ephemera_proto::venue::ReleaseError::PostDated { .. })
        )
    }
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
    /// A token filter (`GET /v1/batches/{id}/filter`) failed to decode or verify.
    #[error(transparent)]
    Filter(#[from] ephemera_proto::error::FilterError),
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
    /// The authority's token key set (`GET /v2/token-keys`) is not signed by a pinned
    /// authority, names another federation, or holds a malformed or duplicate key.
    #[error("token key set rejected: {0}")]
    TokenKeys(#[from] ephemera_proto::token::TokenError),
    /// A response names a request this phone is not waiting for.
    #[error("no request with this id is in flight")]
    UnknownRequest,
    /// A batch's content id differs from the one the index announced.
    #[error("batch content id differs from the index entry")]
    BatchIdMismatch,
    /// A batch's signed sequence differs from the one the (unsigned) index announced: the
    /// cursor never moves on the index's word alone.
    #[error("batch sequence differs from the index entry")]
    BatchSequenceMismatch,
    /// A heard payload is not one of the configured scheme's payloads.
    #[error("heard payload is not a payload of this phone's scheme")]
    ForeignPayload,
    /// The time given is earlier than a time already seen (by more than the tolerance), or
    /// earlier than the interval of the last broadcast after a restart. Nothing was done:
    /// the phone never acts on a past time (it would re-broadcast a past key). Fix the
    /// clock, or call again with the current time.
    #[error("the time went back by {seconds} s")]
    ClockWentBack {
        /// How far back (seconds).
        seconds: u64,
    },
    /// Tracing is paused ([`Phone::set_paused`](crate::Phone::set_paused)): nothing to
    /// broadcast.
    #[error("tracing is paused")]
    Paused,
    /// The node's signed head is untrusted, badly signed, or stale (issued longer ago than
    /// `sync.max_head_age_seconds`: a cache or the node replays an old view).
    #[error(transparent)]
    Head(#[from] HeadError),
    /// A batch does not name the batch at the cursor as its predecessor (a forged link, a
    /// batch withheld in between, or an unchained batch after chained ones).
    #[error("the batch does not chain to the last batch ingested")]
    BatchChainBroken,
    /// The node's signed head is behind the cursor: the node went back in its log.
    #[error("the node's head is behind batches already ingested")]
    HeadRolledBack,
    /// The node's signed head names another batch than the one ingested under its
    /// sequence: the node shows different logs to different phones.
    #[error("the node's head names another batch under an ingested sequence")]
    HeadForked,
    /// The index ended before the batch its signed head names: batches were withheld.
    #[error("the index stops before the node's signed head")]
    IndexBehindHead,
    /// A second node holds a head of this phone's node that contradicts the one this phone
    /// verified (equivocation or rollback): show it, report it.
    #[error("another node saw a contradicting head of this phone's node ({conflict})")]
    HeadMismatch {
        /// `equivocation` or `rollback`.
        conflict: &'static str,
    },
    /// A second node's token key set names another key than this phone's for one of
    /// today's classes: the authority may have given this phone a key of its own. The phone
    /// does not blind under it; show it, report it (both signed sets are the proof).
    #[error("another node serves other token keys than this phone's node")]
    TokenKeysMismatch,
    /// The phone has ended: a sunset order took effect or its end of life came
    /// (`docs/MOBILE.md`, "Sunset"). Its data is erased and it does nothing more: no
    /// broadcast, no sighting, no sync, no report. Show the app's closing screen.
    #[error("this phone has ended (sunset): its data is erased and it does nothing more")]
    Ended,
    /// See [`CheckInError`].
    #[error(transparent)]
    CheckIn(#[from] CheckInError),
}

impl ClientError {
    /// A stable kebab-case code for apps, one per kind of failure (the bindings expose it
    /// as an enum): apps branch on it, never on the English message.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Config(_) => "config",
            ClientError::Store(StoreError::InUse) => "folder-in-use",
            ClientError::Store(StoreError::Corrupt { .. }) => "store-corrupt",
            ClientError::Store(_) => "store",
            ClientError::Batch(_) => "batch-rejected",
            ClientError::Filter(_) => "filter-rejected",
            ClientError::Export(_) => "export-rejected",
            ClientError::NoExportKey => "no-export-key",
            ClientError::Decode(_) => "malformed-response",
            ClientError::Report(e) => e.code(),
            ClientError::TokenKeys(_) => "token-keys-rejected",
            ClientError::UnknownRequest => "unknown-request",
            ClientError::BatchIdMismatch => "batch-id-mismatch",
            ClientError::BatchSequenceMismatch => "batch-sequence-mismatch",
            ClientError::ForeignPayload => "foreign-payload",
            ClientError::ClockWentBack { .. } => "clock-went-back",
            ClientError::Paused => "paused",
            ClientError::Head(HeadError::Stale { .. }) => "stale-head",
            ClientError::Head(_) => "head-rejected",
            ClientError::BatchChainBroken => "batch-chain-broken",
            ClientError::HeadRolledBack => "head-rolled-back",
            ClientError::HeadForked => "head-forked",
            ClientError::IndexBehindHead => "index-behind-head",
            ClientError::HeadMismatch { .. } => "head-mismatch",
            ClientError::TokenKeysMismatch => "token-keys-mismatch",
            ClientError::Ended => "ended",
            ClientError::CheckIn(e) => e.code(),
        }
    }
}
