//! Session tokens: 256 random bits, handed out once and filed in the store only under their
//! SHA-256 ([`token_id`]), with an absolute lifetime and an idle timeout kept to the minute.

use std::fmt;

use ephemera_proto::UnixTime;
use rand_core::CryptoRng;
use ring::digest;
use zeroize::Zeroizing;

use crate::store::SessionRecord;

/// A signed-in account's bearer token. `Debug` hides it.
#[derive(Clone)]
pub(crate) struct SessionToken(pub Zeroizing<String>);

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl SessionToken {
    /// Draws a new token.
    pub(crate) fn generate(rng: &mut impl CryptoRng) -> SessionToken {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        SessionToken(Zeroizing::new(hex::encode(bytes.as_ref())))
    }
}

/// What the store files a session under: SHA-256 of its token. A lookup by it leaks nothing
/// about the token through timing, since the token has 256 random bits.
pub(crate) fn token_id(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// `now` rounded down to the minute: a session keeps no finer time of its use.
pub(crate) fn to_minute(now: UnixTime) -> UnixTime {
    UnixTime(now.0 - now.0 % 60)
}

/// Whether `session` is still live at `now` with an idle timeout of `idle_seconds`.
pub(crate) fn is_live(session: &SessionRecord, now: UnixTime, idle_seconds: u64) -> bool {
    now < session.expires_at && now < session.last_used.plus_seconds(idle_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hidden_and_filed_by_hash() {
        let mut rng = rand::rng();
        let a = SessionToken::generate(&mut rng);
        let b = SessionToken::generate(&mut rng);
        assert_ne!(a.0.as_str(), b.0.as_str());
        assert_eq!(a.0.len(), 64);
        assert!(!format!("{a:?}").contains(a.0.as_str()));
        assert_ne!(token_id(&a.0), token_id(&b.0));
        assert_ne!(hex::encode(token_id(&a.0)), a.0.as_str());
    }

    #[test]
    fn sessions_end_at_their_lifetime_or_when_idle() {
        let session = SessionRecord {
            account: "alice".into(),
            expires_at: UnixTime(10_000),
            last_used: to_minute(UnixTime(1_000 + 59)),
        };
        assert_eq!(session.last_used, UnixTime(1_020));
        assert!(is_live(&session, UnixTime(1_619), 600));
        assert!(!is_live(&session, UnixTime(1_620), 600), "idle");
        let used = SessionRecord {
            last_used: UnixTime(9_960),
            ..session
        };
        assert!(is_live(&used, UnixTime(9_999), 600));
        assert!(!is_live(&used, UnixTime(10_000), 600), "lifetime");
    }
}
