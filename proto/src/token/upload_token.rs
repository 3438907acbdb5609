//! The token an upload carries, and its check at every node.

use std::fmt;

use blind_rsa_signatures::{MessageRandomizer, Signature};
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::auth::ExpiryPolicy;
use crate::time::{DayNumber, UnixTime};
use crate::token::{TokenError, TokenKeyId, TokenKeys, TokenStatement, TokenVerifier};

/// Days after its key's epoch a phone may still upload with a token: the verify day and the
/// next, so the random delay between verify and upload may cross midnight.
pub const TOKEN_UPLOAD_DAYS: u32 = 1;
/// Clock skew tolerated before a key's epoch begins, in seconds (as for certificates).
const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
/// Domain label of a [`TokenId`].
const TOKEN_ID_LABEL: &[u8] = b"ephemera/spent-token/v2";

/// An unblinded token: RFC 9474's signature with its message randomizer, and the key that
/// made it. It names no one: the signer never saw the signature or the commitment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadToken {
    /// The key that signed it (which fixes its epoch and class).
    pub key: TokenKeyId,
    /// RFC 9474's random message prefix.
    pub randomizer: [u8; 32],
    /// The RSASSA-PSS signature over `randomizer ‖ commitment`, modulus-sized.
    pub signature: Vec<u8>,
}

/// The first 16 bytes of `SHA-256("ephemera/spent-token/v2" ‖ key id ‖ signature)`: what
/// a node keeps in its spent-token set (as wide as the certificate id it replaces). Finding
/// two tokens with one id needs about 2^64 signatures from the authority.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenId(pub [u8; 16]);

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({}…)", hex::encode(&self.0[..4]))
    }
}

impl fmt::Debug for UploadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The id, not the bytes: a token is a bearer credential until it is spent.
        write!(f, "UploadToken({:?}, {:?})", self.key, self.id())
    }
}

impl UploadToken {
    /// The id a node marks spent.
    pub fn id(&self) -> TokenId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(TOKEN_ID_LABEL);
        ctx.update(&self.key.0);
        ctx.update(&self.signature);
        let mut out = [0u8; 16];
        out.copy_from_slice(&ctx.finish().as_ref()[..16]);
        TokenId(out)
    }

    /// Verifies the token for `statement` at `now`: its key is among `keys`; the key's
    /// epoch is valid now (`policy`: a phone's upload within [`TOKEN_UPLOAD_DAYS`] of the
    /// epoch, a relayed one within the retention period); and the signature verifies over
    /// the statement's commitment for that key's epoch and class, which binds the report,
    /// its revision key and its audience. Returns the key, whose class (report type, onset
    /// bucket) the node applies to the report.
    ///
    /// Single use (the [`TokenId`] never seen before) is the caller's to enforce.
    ///
    /// # Errors
    /// [`TokenError::UnknownKey`], [`TokenError::Expired`] or [`TokenError::BadSignature`].
    pub fn verify<'k>(
        &self,
        keys: &'k TokenKeys,
        statement: &TokenStatement<'_>,
        now: UnixTime,
        policy: ExpiryPolicy,
    ) -> Result<&'k TokenVerifier, TokenError> {
        let key = keys.get(&self.key).ok_or(TokenError::UnknownKey)?;
        let epoch = key.public.epoch;
        check_epoch(epoch, now, policy)?;
        let commitment = statement.commitment(epoch, key.public.class);
        key.key
            .verify(
                &Signature(self.signature.clone()),
                Some(MessageRandomizer(self.randomizer)),
                commitment.0,
            )
            .map_err(|_| TokenError::BadSignature)?;
        Ok(key)
    }
}

/// Whether a key of `epoch` may authorise an upload at `now` under `policy`.
fn check_epoch(epoch: DayNumber, now: UnixTime, policy: ExpiryPolicy) -> Result<(), TokenError> {
    let today = now.day();
    let expired = Err(TokenError::Expired {
        epoch: epoch.0,
        today: today.0,
    });
    if now.plus_seconds(MAX_CLOCK_SKEW_SECONDS).day() < epoch {
        return expired;
    }
    let last = match policy {
        ExpiryPolicy::FirstUpload => epoch.0.saturating_add(TOKEN_UPLOAD_DAYS),
        ExpiryPolicy::Relayed { retention_days } => epoch.0.saturating_add(retention_days),
    };
    if today.0 > last {
        return expired;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_valid_from_their_day_to_the_next_or_through_retention() {
        let epoch = DayNumber(20_000);
        let first = ExpiryPolicy::FirstUpload;
        let relayed = ExpiryPolicy::Relayed { retention_days: 14 };
        let at = |day: u32, secs: u64| UnixTime(u64::from(day) * 86_400 + secs);
        assert!(check_epoch(epoch, at(20_000, 0), first).is_ok());
        assert!(check_epoch(epoch, at(20_001, 86_399), first).is_ok());
        assert!(check_epoch(epoch, at(20_002, 0), first).is_err());
        assert!(check_epoch(epoch, at(19_999, 86_400 - 300), first).is_ok());
        assert!(check_epoch(epoch, at(19_999, 86_400 - 301), first).is_err());
        assert!(check_epoch(epoch, at(20_014, 86_399), relayed).is_ok());
        assert_eq!(
            check_epoch(epoch, at(20_015, 0), relayed),
            Err(TokenError::Expired {
                epoch: 20_000,
                today: 20_015
            })
        );
    }
}
