//! What can go wrong with a blind token.

use thiserror::Error;

/// A blind-token operation failed. No variant carries a key, a blinding secret or a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A public key's bytes are not an RSA key of a size this protocol accepts.
    #[error("malformed or unsupported token public key")]
    MalformedKey,
    /// A stored private key could not be read back.
    #[error("malformed token private key")]
    MalformedPrivateKey,
    /// Key generation failed (the RNG or the parameters).
    #[error("token key generation failed")]
    KeyGeneration,
    /// A class that no key is made for (a `Recursive` report, a revocation with an onset).
    #[error("no token key exists for this report class")]
    UnsupportedClass,
    /// The symptom onset lies after the epoch it would be signed in.
    #[error("the symptom onset does not fit the token's class")]
    OnsetMismatch,
    /// The token names a key this verifier does not hold.
    #[error("the token names an unknown key")]
    UnknownKey,
    /// The token's key belongs to a day too old (or not yet begun) for this upload.
    #[error("the token's key epoch (day {epoch}) is not valid on day {today}")]
    Expired {
        /// The key's epoch (day number).
        epoch: u32,
        /// The verifier's day.
        today: u32,
    },
    /// A blinded message, blind signature or blinding secret of the wrong length or value.
    #[error("malformed blinded message or blind signature")]
    MalformedBlinding,
    /// The signature does not verify over the commitment (a forgery, another report, or
    /// another audience).
    #[error("the token does not verify for this report")]
    BadSignature,
    /// A key set's signature does not verify under a trusted authority key.
    #[error("the token key set is not signed by a trusted authority")]
    UntrustedKeySet,
    /// A key set names another audience (federation) than the verifier's.
    #[error("the token key set is for another audience")]
    WrongAudience,
    /// A key set names two keys for one epoch and class, or one key twice.
    #[error("the token key set names two keys for one epoch and class")]
    DuplicateKey,
}
