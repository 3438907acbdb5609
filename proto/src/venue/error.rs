//! Why venue data could not be decoded or used.

use thiserror::Error;

/// Why bytes do not hold a usable curve point.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PointError {
    /// Not a compressed point encoding, or not on the curve.
    #[error("not a valid compressed point on BLS12-381")]
    Invalid,
    /// The identity element (point at infinity), which would make every key or ciphertext
    /// trivial.
    #[error("the identity point is not accepted")]
    Identity,
    /// On the curve but outside the prime-order subgroup (a small-subgroup attack).
    #[error("the point is not in the prime-order subgroup")]
    NotInSubgroup,
}

/// Why bytes from outside (a scanned QR code, a stored check-in, a published trace key, a
/// trace code) could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VenueDecodeError {
    /// Shorter than its fixed parts.
    #[error("truncated: {got} bytes, at least {min} needed")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes needed at least.
        min: usize,
    },
    /// Bytes left after the last field.
    #[error("{extra} unexpected bytes after the end")]
    TrailingBytes {
        /// Bytes left over.
        extra: usize,
    },
    /// A version this implementation does not speak.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// A curve point that is malformed, the identity, or outside the subgroup.
    #[error("bad {field}: {error}")]
    BadPoint {
        /// Which field holds the point.
        field: &'static str,
        /// What is wrong with it.
        error: PointError,
    },
    /// A scalar that is zero or not below the group order.
    #[error("bad {field}: not a non-zero canonical scalar")]
    BadScalar {
        /// Which field holds the scalar.
        field: &'static str,
    },
    /// A text field that is not UTF-8.
    #[error("{field} is not UTF-8")]
    NotUtf8 {
        /// Which field.
        field: &'static str,
    },
    /// A length field above its cap.
    #[error("{field} is {got} bytes, at most {max} allowed")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Bytes declared.
        got: usize,
        /// The cap.
        max: usize,
    },
    /// A time range that ends before it starts.
    #[error("{field} ends before it starts")]
    BadTimeRange {
        /// Which field.
        field: &'static str,
    },
    /// A scanned text that is not `ephemera-venue:` followed by unpadded base64url.
    #[error("not an Ephemera venue code (`ephemera-venue:` and base64url expected)")]
    NotQrText,
    /// A typed or filed text that is not `ephemera-trace:` followed by unpadded base64url.
    #[error("not an Ephemera trace code (`ephemera-trace:` and base64url expected)")]
    NotTraceText,
}

/// Why a venue operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VenueError {
    /// A visit or case time range that ends before it starts.
    #[error("the time range ends before it starts")]
    BadTimeRange,
    /// A visit or trace request spanning more hours than allowed.
    #[error("{got} hours requested, at most {max} allowed")]
    TooManyHours {
        /// Hours requested.
        got: u64,
        /// The cap.
        max: u64,
    },
    /// The time is outside the range of venue hours (beyond the year 490,000).
    #[error("time out of range")]
    TimeOutOfRange,
    /// A text above its cap.
    #[error("{field} is {got} bytes, at most {max} allowed")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Bytes given.
        got: usize,
        /// The cap.
        max: usize,
    },
    /// The authority's sealed share does not open with this key for this venue (another
    /// authority's key, another venue's trace code, or altered).
    #[error("the sealed authority share does not open with this key for this venue")]
    ShareUnsealFailed,
    /// The authority's public key is not a usable X25519 key.
    #[error("the authority's public key is unusable")]
    BadAuthorityKey,
    /// The combined trace key does not decrypt under the venue's master public key: the
    /// shares do not belong to this venue.
    #[error("the trace key does not match the venue's master public key")]
    TraceKeyMismatch,
}
