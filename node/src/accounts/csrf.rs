//! CSRF tokens of the console's cookie sessions: a synchronizer token bound to the session,
//! derived (not stored) under two keys taken from the code pepper.
//!
//! A token is `hex(handle ‖ tag)`: `handle` is the first 16 bytes of HMAC-SHA-256 of the
//! session's id (the SHA-256 of its token, as the store files it) and `tag` the first 16
//! bytes of HMAC-SHA-256 of `handle` under a second key. The tag tells a token this node
//! issued from a forged one; the handle tells which session it was issued to, so a token
//! replayed from another (or an ended) session is refused with its own reason. Neither
//! half reveals the session's token or id. Both comparisons run in constant time.

use std::fmt;

use ephemera_proto::auth::CodePepper;
use ring::hmac;
use subtle::ConstantTimeEq;

/// What the handle key is derived with.
const HANDLE_LABEL: &[u8] = b"ephemera/console/csrf/v1/handle";
/// What the tag key is derived with.
const TAG_LABEL: &[u8] = b"ephemera/console/csrf/v1/tag";
/// Bytes of each half.
const HALF: usize = 16;
/// Characters of a token (hex of both halves).
const CSRF_TOKEN_CHARS: usize = 4 * HALF;

/// Why a presented CSRF token was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum CsrfRefusal {
    /// Not a token this node issued: malformed, or its tag does not match.
    Forged,
    /// A token this node issued, but to another session (or one that has ended).
    OtherSession,
}

/// Derives and checks CSRF tokens. `Debug` hides the keys.
pub(crate) struct CsrfKey {
    handle: hmac::Key,
    tag: hmac::Key,
}

impl fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfKey(<redacted>)")
    }
}

impl CsrfKey {
    /// The CSRF keys of the node whose code pepper is `pepper`: stable across restarts, so
    /// an open page's token stays good while its session lives.
    pub(crate) fn new(pepper: &CodePepper) -> CsrfKey {
        let root = hmac::Key::new(hmac::HMAC_SHA256, &pepper.0[..]);
        let derive =
            |label: &[u8]| hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&root, label).as_ref());
        CsrfKey {
            handle: derive(HANDLE_LABEL),
            tag: derive(TAG_LABEL),
        }
    }

    fn handle(&self, session_id: &[u8; 32]) -> [u8; HALF] {
        first_half(&hmac::sign(&self.handle, session_id))
    }

    fn tag(&self, handle: &[u8; HALF]) -> [u8; HALF] {
        first_half(&hmac::sign(&self.tag, handle))
    }

    /// The CSRF token of the session filed under `session_id`.
    pub(crate) fn token(&self, session_id: &[u8; 32]) -> String {
        let handle = self.handle(session_id);
        let mut both = [0u8; 2 * HALF];
        both[..HALF].copy_from_slice(&handle);
        both[HALF..].copy_from_slice(&self.tag(&handle));
        hex::encode(both)
    }

    /// Checks `presented` against the session filed under `session_id`.
    ///
    /// # Errors
    /// [`CsrfRefusal::Forged`] for anything this node did not issue;
    /// [`CsrfRefusal::OtherSession`] for a token of another session.
    pub(crate) fn check(&self, session_id: &[u8; 32], presented: &str) -> Result<(), CsrfRefusal> {
        let mut both = [0u8; 2 * HALF];
        if presented.len() != CSRF_TOKEN_CHARS
            || hex::decode_to_slice(presented.as_bytes(), &mut both).is_err()
        {
            return Err(CsrfRefusal::Forged);
        }
        let mut handle = [0u8; HALF];
        handle.copy_from_slice(&both[..HALF]);
        if !bool::from(self.tag(&handle).ct_eq(&both[HALF..])) {
            return Err(CsrfRefusal::Forged);
        }
        if !bool::from(self.handle(session_id).ct_eq(&handle)) {
            return Err(CsrfRefusal::OtherSession);
        }
        Ok(())
    }
}

fn first_half(tag: &hmac::Tag) -> [u8; HALF] {
    let mut out = [0u8; HALF];
    out.copy_from_slice(&tag.as_ref()[..HALF]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(byte: u8) -> CsrfKey {
        CsrfKey::new(&CodePepper(zeroize::Zeroizing::new([byte; 32])))
    }

    #[test]
    fn a_token_passes_for_its_own_session_only() {
        let key = key(1);
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let token = key.token(&a);
        assert_eq!(token.len(), CSRF_TOKEN_CHARS);
        assert_eq!(key.check(&a, &token), Ok(()));
        assert_eq!(key.token(&a), token, "derived, so stable");
        assert_eq!(key.check(&b, &token), Err(CsrfRefusal::OtherSession));
        assert_ne!(key.token(&b), token);
    }

    #[test]
    fn forged_tokens_are_told_apart_from_other_sessions() {
        let key = key(1);
        let id = [7u8; 32];
        let token = key.token(&id);
        // One changed character of the handle breaks its tag: forged, not another session.
        let mut chars: Vec<char> = token.chars().collect();
        chars[0] = if chars[0] == '0' { '1' } else { '0' };
        let edited: String = chars.into_iter().collect();
        assert_eq!(key.check(&id, &edited), Err(CsrfRefusal::Forged));
        assert_eq!(key.check(&id, ""), Err(CsrfRefusal::Forged));
        assert_eq!(key.check(&id, &token[..62]), Err(CsrfRefusal::Forged));
        assert_eq!(
            key.check(&id, &format!("{token}00")),
            Err(CsrfRefusal::Forged)
        );
        assert_eq!(key.check(&id, &"z".repeat(64)), Err(CsrfRefusal::Forged));
        // Another node's token (another pepper) is forged here.
        assert_eq!(
            key.check(&id, &self::key(2).token(&id)),
            Err(CsrfRefusal::Forged)
        );
    }

    #[test]
    fn debug_hides_the_keys() {
        assert_eq!(format!("{:?}", key(3)), "CsrfKey(<redacted>)");
    }

    proptest! {
        #[test]
        fn any_presented_text_is_refused_without_panic(text in ".{0,80}", id in any::<[u8; 32]>()) {
            let key = key(5);
            let token = key.token(&id);
            prop_assert_eq!(key.check(&id, &text).is_ok(), text == token);
        }
    }
}
