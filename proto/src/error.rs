//! Typed errors, one enum per kind of failure.
//!
//! Each function returns its narrowest enum; [`Error`](enum@Error) gathers them for callers that do not
//! care which step failed. No variant carries a key, token, code or address.

use thiserror::Error;

use crate::time::{DayNumber, IntervalNumber};

/// Outside bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input was empty or shorter than the frame header.
    #[error("input is truncated: {got} bytes, at least {min} needed")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes needed at least.
        min: usize,
    },
    /// The input exceeds the size cap of its message kind.
    #[error("input is too large: {got} bytes, at most {max} allowed")]
    TooLarge {
        /// Bytes received.
        got: usize,
        /// The cap.
        max: usize,
    },
    /// The version byte is not one this implementation speaks.
    #[error("unsupported wire version {got} (this build speaks {supported})")]
    UnsupportedVersion {
        /// Version received.
        got: u8,
        /// Version supported.
        supported: u8,
    },
    /// The frame's version byte is one this message speaks, but the body holds a variant
    /// of another version (a version 1 upload variant in a version 2 frame, say).
    #[error("the message body does not belong to wire version {version}")]
    NotInVersion {
        /// The frame's version byte.
        version: u8,
    },
    /// The frame holds a different message kind than the one expected.
    #[error("wrong message kind {got:#04x}, expected {expected:#04x}")]
    WrongKind {
        /// Kind byte received.
        got: u8,
        /// Kind byte expected.
        expected: u8,
    },
    /// The body is not a valid encoding of the message.
    #[error("malformed message body")]
    Malformed,
    /// Valid message followed by extra bytes.
    #[error("{extra} trailing bytes after the message")]
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// A field holds a value outside its domain (an unknown enum tag, say).
    #[error("invalid field `{field}`")]
    InvalidField {
        /// The field's name.
        field: &'static str,
    },
}

/// Report contents break a protocol rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The report holds no key or token.
    #[error("report is empty")]
    Empty,
    /// More keys than allowed in one report.
    #[error("too many keys: {got}, at most {max}")]
    TooManyKeys {
        /// Keys received.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// More tokens than allowed in one report.
    #[error("too many tokens: {got}, at most {max}")]
    TooManyTokens {
        /// Tokens received.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A rolling period outside 1..=144.
    #[error("rolling period {got} is outside 1..=144")]
    BadRollingPeriod {
        /// Period received.
        got: u8,
    },
    /// A key whose window starts after now.
    #[error("key starts in the future (interval {rolling_start:?}, now {now:?})")]
    FutureKey {
        /// The key's first interval.
        rolling_start: IntervalNumber,
        /// The current interval.
        now: IntervalNumber,
    },
    /// A key or token older than the retention period.
    #[error("entry from day {day:?} is older than the retention period (oldest kept: {oldest:?})")]
    TooOld {
        /// The entry's day.
        day: DayNumber,
        /// The oldest day kept.
        oldest: DayNumber,
    },
    /// A token dated in the future.
    #[error("token dated in the future (day {day:?}, today {today:?})")]
    FutureToken {
        /// The token's day.
        day: DayNumber,
        /// Today.
        today: DayNumber,
    },
    /// The same key or token twice, or two keys whose windows overlap.
    #[error("duplicate or overlapping entry")]
    Duplicate,
    /// A days-since-onset value outside -14..=14.
    #[error("days since onset {got} is outside -14..=14")]
    BadDaysSinceOnset {
        /// Value received.
        got: i8,
    },
    /// The report's scheme is not the one the certificate or node expects.
    #[error("report scheme does not match")]
    WrongScheme,
}

/// An authority certificate failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The certificate names an authority this verifier does not trust.
    #[error("certificate is signed by an untrusted authority")]
    UntrustedAuthority,
    /// The Ed25519 signature does not verify.
    #[error("certificate signature is invalid")]
    BadSignature,
    /// The certificate expired before `now`.
    #[error("certificate expired at {expired_at} (now {now})")]
    Expired {
        /// Expiry, unix seconds.
        expired_at: u64,
        /// Verification time, unix seconds.
        now: u64,
    },
    /// The certificate was issued after `now` (clock skew or forgery).
    #[error("certificate is not valid yet")]
    NotYetValid,
    /// The HMAC recomputed from the report and its key differs from the certified one.
    #[error("report does not match the certified HMAC")]
    HmacMismatch,
    /// The report's type differs from the certified test type.
    #[error("report type does not match the certificate")]
    ReportTypeMismatch,
}

/// Everything that can go wrong in `proto`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`DecodeError`].
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// See [`ValidationError`].
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// See [`CertificateError`].
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// See [`PetError`].
    #[error(transparent)]
    Pet(#[from] PetError),
}

/// A `pet` operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PetError {
    /// The peer's public key is a low-order point: the shared secret would be all zeros
    /// (or otherwise not contributory), so no token is derived.
    #[error("peer key is a low-order point; shared secret is not contributory")]
    NonContributory,
    /// A slice's index is outside 0..=3.
    #[error("slice index {got} is outside 0..=3")]
    BadSliceIndex {
        /// Index received.
        got: u8,
    },
    /// A slice's encoding is malformed (wrong length or version).
    #[error("malformed key slice")]
    MalformedSlice,
    /// Slices with the same tag did not rebuild a key whose tag matches.
    #[error("slices do not rebuild a consistent key")]
    InconsistentSlices,
    /// Fewer than 3 distinct slices of one key were given; any 3 of the 4 are needed.
    #[error("{got} distinct slices given, 3 needed to rebuild a key")]
    NotEnoughSlices {
        /// Distinct slice indices given.
        got: usize,
    },
    /// The peer broadcast our own public key (a replay of our broadcast): no encounter.
    #[error("peer key equals our own key")]
    SameKey,
    /// The peer's key is not in canonical form (bit 255 set, or u ≥ 2^255 − 19): another
    /// spelling of a point that honest phones never broadcast, refused so that one point
    /// never yields two sets of tokens.
    #[error("peer key is not canonical (bit 255 set or u-coordinate not reduced)")]
    NonCanonicalKey,
}

/// A typed upload code is not well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Not 16 code characters (dashes and spaces aside).
    #[error("a code has 16 characters, got {got}")]
    BadLength {
        /// Characters received.
        got: usize,
    },
    /// A character outside Crockford base32.
    #[error("a code holds only digits and the letters A-Z without U")]
    BadCharacter,
}

/// An upload failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The certificate or its binding to the report failed.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The report breaks a protocol rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// A revision's signature does not verify under the revision key its certificate is
    /// bound to.
    #[error("the revision is not signed by the key its certificate is bound to")]
    RevisionSignature,
    /// The blind token does not authorise the upload (`crate::token::TokenUpload`).
    #[error("the upload token is refused: {0}")]
    Token(#[from] crate::token::TokenError),
}

/// A token filter failed to build, decode or verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The bytes are not a well-formed filter frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The filter's segments and fingerprint count do not fit together (a lookup could
    /// leave the fingerprints), or the batch cannot have a filter.
    #[error("token filter shape is invalid: {reason}")]
    Shape {
        /// What does not fit.
        reason: &'static str,
    },
    /// The body is shorter or longer than its fingerprint count says.
    #[error("token filter is {got} bytes, its header announces {expected}")]
    LengthMismatch {
        /// Bytes announced by the count.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// Signed by a node key this phone does not trust.
    #[error("token filter is signed by an untrusted node key")]
    UntrustedNode,
    /// The signature does not verify over the filter's body.
    #[error("token filter signature is invalid")]
    BadSignature,
    /// No salt tried gave a filter (the node publishes the batch without one).
    #[error("token filter construction failed for every salt tried")]
    Construction,
}

/// A signed batch failed to decode or verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The bytes are not a well-formed batch.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Signed by a node key this phone or node does not trust.
    #[error("batch is signed by an untrusted node key")]
    UntrustedNode,
    /// The signature does not verify over the batch id.
    #[error("batch signature is invalid")]
    BadSignature,
    /// The body is shorter or longer than its counts say.
    #[error("batch body is {got} bytes, its header announces {expected}")]
    LengthMismatch {
        /// Bytes announced by the counts.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
}
