//! Revision tokens of protocol version 1 uploads (the transition, `docs/PROTOCOL.md`
//! §5.4), derived instead of stored. Version 2 uploads are revised by a signature of the
//! phone's revision key instead, and never get a token.
//!
//! The token a node hands back for an accepted upload is `certificate id ‖ tag`, where the
//! tag is the first 16 bytes of HMAC-SHA256 over the certificate id under a key only this
//! node holds (derived from its code pepper with a label of its own). The node can thus
//! answer a retried upload with the very token it gave first, and check a token without
//! keeping it: nothing of the tag is ever written to disk. The certificate id half is no
//! secret (the phone holds the certificate, the node keeps it with the upload); what makes a
//! token unguessable is the 128-bit tag, compared in constant time.
//!
//! Whether a token is still good (the upload not revised yet, not purged) is the store's
//! certificate mark ([`crate::store::CertificateUse`]).

use ephemera_proto::auth::{CertificateId, CodePepper};
use ring::hmac;
use subtle::ConstantTimeEq;

/// Length of a revision token.
pub const TOKEN_LEN: usize = 32;
const TAG_LEN: usize = TOKEN_LEN - 16;
const LABEL: &[u8] = b"ephemera-node revision token v1";

/// Makes and opens this node's revision tokens.
pub struct RevisionTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for RevisionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevisionTokens(<redacted>)")
    }
}

impl RevisionTokens {
    /// The token key of a node with this pepper.
    pub fn new(pepper: &CodePepper) -> RevisionTokens {
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &pepper.0[..]), LABEL);
        RevisionTokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    fn tag(&self, id: &CertificateId) -> [u8; TAG_LEN] {
        let full = hmac::sign(&self.key, &id.0);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        tag
    }

    /// The token for the upload made with certificate `id`.
    pub fn token(&self, id: &CertificateId) -> [u8; TOKEN_LEN] {
        let mut token = [0u8; TOKEN_LEN];
        token[..16].copy_from_slice(&id.0);
        token[16..].copy_from_slice(&self.tag(id));
        token
    }

    /// The certificate id a token was made for, if this node made it.
    pub fn open(&self, token: &[u8]) -> Option<CertificateId> {
        if token.len() != TOKEN_LEN {
            return None;
        }
        let id = CertificateId(token[..16].try_into().ok()?);
        let good: bool = self.tag(&id).ct_eq(&token[16..]).into();
        good.then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn tokens(seed: u8) -> RevisionTokens {
        RevisionTokens::new(&CodePepper(Zeroizing::new([seed; 32])))
    }

    #[test]
    fn a_token_opens_to_its_certificate_and_is_stable() {
        let t = tokens(1);
        let id = CertificateId([9; 16]);
        assert_eq!(t.token(&id), t.token(&id));
        assert_eq!(t.open(&t.token(&id)), Some(id));
        assert_ne!(t.token(&id), t.token(&CertificateId([8; 16])));
    }

    #[test]
    fn forged_altered_short_and_foreign_tokens_are_refused() {
        let t = tokens(1);
        let id = CertificateId([9; 16]);
        let mut token = t.token(&id);
        token[31] ^= 1;
        assert_eq!(t.open(&token), None, "altered tag");
        let mut token = t.token(&id);
        token[0] ^= 1;
        assert_eq!(t.open(&token), None, "altered certificate id");
        assert_eq!(t.open(&t.token(&id)[..31]), None, "short");
        assert_eq!(t.open(&[0; 32]), None, "zeros");
        assert_eq!(t.open(&tokens(2).token(&id)), None, "another node's");
    }
}
