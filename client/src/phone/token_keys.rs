//! The authority's blind-token keys on the phone (`docs/PROTOCOL.md` §4.4).
//!
//! With a federation configured (`report.federation`), every sync round fetches
//! `GET /v2/token-keys` beside the sealing key, and keeps in memory the set if a pinned
//! authority signed it for this phone's audience. Every phone that syncs asks for it, so
//! the request says nothing about a report. A verify, real or decoy, then goes:
//!
//! - with a blind token (`POST /v2/verify`) when the set holds a key for today;
//! - with a certificate (`POST /v1/verify`, §4.3) when the node serves no keys (a node with
//!   `blind_token_keys = false`, which serves an empty set, or one before version 2, which
//!   answers 404): the transition;
//! - after the next sync round while no set was fetched yet, or the one held has no key for
//!   today (fetched before midnight and the node made none since): a report is never sent
//!   with a certificate only because the keys had not arrived yet.

use ephemera_proto::UnixTime;
use ephemera_proto::auth::TrustedAuthorities;
use ephemera_proto::token::{
    Audience, SignedTokenKeySet, TokenClass, TokenExchange, TokenKeys, TokenVerifier,
};
use ephemera_proto::wire;

use super::{Pending, Phone};
use crate::error::ClientError;
use crate::request::Response;
use crate::store::Store;

/// The path of the authority's signed key set.
const TOKEN_KEYS_PATH: &str = "/v2/token-keys";

/// What the phone knows of the authority's token keys.
#[derive(Debug)]
pub(super) enum HeldTokenKeys {
    /// Not fetched since the phone started (or dropped as stale).
    Unknown,
    /// The node serves none: reports go with certificates.
    Absent,
    /// A verified set with at least one key.
    Held(TokenKeys),
}

/// A real report's token exchange in flight.
#[derive(Debug)]
pub(super) struct Exchange {
    /// The blinding state of each key the request blinded under.
    pub(super) exchange: TokenExchange,
    /// The keys it blinded under.
    pub(super) keys: TokenKeys,
}

/// How the next verify goes.
pub(super) enum VerifyRoute {
    /// Not yet: a sync round fetches the keys first.
    Wait,
    /// `POST /v1/verify`, for a certificate.
    Certificate,
    /// `POST /v2/verify`, blinded under these keys (which hold a key for today).
    Token(TokenKeys),
}

/// Decodes and verifies a `GET /v2/token-keys` body: a [`SignedTokenKeySet`] frame signed by
/// a key of `trusted` for `audience`. The set may hold no key (a node that does not issue
/// tokens).
///
/// # Errors
/// [`ClientError::Decode`] for a body that is no such frame; [`ClientError::TokenKeys`] for
/// a set that is not signed by a trusted authority, names another audience, or holds a
/// malformed key or two keys for one epoch and class.
pub(crate) fn decode_token_keys(
    body: &[u8],
    trusted: &TrustedAuthorities,
    audience: &Audience,
) -> Result<TokenKeys, ClientError> {
    let set: SignedTokenKeySet = wire::decode(body)?;
    Ok(set.verify(trusted, audience)?)
}

/// The keys of `keys` for `now`'s epoch (one per class the authority issues).
pub(super) fn keys_of_today(keys: &TokenKeys, now: UnixTime) -> Vec<&TokenVerifier> {
    TokenClass::ALL
        .iter()
        .filter_map(|class| keys.key_for(now.day(), *class))
        .collect()
}

/// What a second node's token key set showed of the keys this phone holds
/// ([`Phone::cross_check_token_keys`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TokenKeysCrossCheck {
    /// The phone holds no key of today yet, or the second node serves none: nothing to
    /// compare (check again after the next sync).
    NotSeen,
    /// The second node names the same key for each of today's classes the phone holds.
    Consistent {
        /// Classes compared.
        classes: usize,
    },
}

impl<S: Store> Phone<S> {
    /// Compares the body of a second node's `GET /v2/token-keys` with the keys this phone
    /// holds for today (`docs/PROTOCOL.md` §4.4, "Same keys for everyone"): the phone
    /// blinds only under a key the second node's set names too, so an authority that gave
    /// this phone a key of its own (to recognise its upload later) is caught, and the two
    /// signed sets are the proof. On a mismatch the phone drops its set and will not blind
    /// under the contested keys until a later check agrees.
    ///
    /// # Errors
    /// [`ClientError::Decode`] or [`ClientError::TokenKeys`] for a body that is not a set
    /// signed by a pinned authority for this phone's federation;
    /// [`ClientError::TokenKeysMismatch`] when the sets differ for one of today's classes.
    pub fn cross_check_token_keys(
        &mut self,
        now: UnixTime,
        body: &[u8],
    ) -> Result<TokenKeysCrossCheck, ClientError> {
        self.enforce_sunset(now)?;
        let Some(audience) = self.config.report.audience() else {
            return Ok(TokenKeysCrossCheck::NotSeen);
        };
        let theirs = decode_token_keys(body, &self.config.report.trusted_authorities, &audience)?;
        let HeldTokenKeys::Held(mine) = &self.token_keys else {
            return Ok(TokenKeysCrossCheck::NotSeen);
        };
        let today = now.day();
        let mut classes = 0;
        let mut contested = Vec::new();
        for class in TokenClass::ALL {
            let Some(key) = mine.key_for(today, class) else {
                continue;
            };
            if theirs.key_for(today, class).is_none() {
                continue;
            }
            if mine.agrees_with(&theirs, today, class) {
                classes += 1;
            } else {
                contested.push(key.id());
            }
        }
        if !contested.is_empty() {
            self.contested_token_keys.extend(contested);
            self.token_keys = HeldTokenKeys::Unknown;
            return Err(ClientError::TokenKeysMismatch);
        }
        if classes == 0 {
            return Ok(TokenKeysCrossCheck::NotSeen);
        }
        self.contested_token_keys.clear();
        Ok(TokenKeysCrossCheck::Consistent { classes })
    }

    /// Asks for the authority's token keys, if a federation is configured and no request
    /// for them is in flight.
    pub(super) fn request_token_keys(&mut self) {
        if self.config.report.federation.is_some() {
            self.fetch_once(Pending::FetchTokenKeys, TOKEN_KEYS_PATH);
        }
    }

    /// Keeps the key set if it checks out (an empty one, or a 404 from a node before
    /// version 2, means certificates); flows waiting for keys go on at once. A set that
    /// does not check out is not kept (`last_error` says `token-keys-rejected`), and the
    /// report waits for a good one.
    pub(super) fn on_token_keys(
        &mut self,
        now: UnixTime,
        response: &Response,
    ) -> Result<(), ClientError> {
        let Some(audience) = self.config.report.audience() else {
            return Ok(());
        };
        self.token_keys = match response.status {
            200 => {
                let trusted = &self.config.report.trusted_authorities;
                match decode_token_keys(&response.body, trusted, &audience) {
                    Ok(keys) if keys.is_empty() => HeldTokenKeys::Absent,
                    Ok(keys) => HeldTokenKeys::Held(keys),
                    Err(e) => {
                        self.last_error = Some(e.code());
                        return Ok(());
                    }
                }
            }
            404 => HeldTokenKeys::Absent,
            _ => return Ok(()),
        };
        self.resume_flows_awaiting_key(now)
    }

    /// How the next verify goes at `now` (see the module docs); starts a sync round when
    /// it must wait for keys.
    pub(super) fn verify_route(&mut self, now: UnixTime) -> VerifyRoute {
        if self.config.report.federation.is_none() {
            return VerifyRoute::Certificate;
        }
        match &self.token_keys {
            HeldTokenKeys::Absent => VerifyRoute::Certificate,
            // A key a second node contradicted is never blinded under: the report waits
            // until a cross-check agrees (`last_error` says why).
            HeldTokenKeys::Held(keys)
                if keys_of_today(keys, now)
                    .iter()
                    .any(|key| self.contested_token_keys.contains(&key.id())) =>
            {
                self.last_error = Some(ClientError::TokenKeysMismatch.code());
                VerifyRoute::Wait
            }
            HeldTokenKeys::Held(keys) if !keys_of_today(keys, now).is_empty() => {
                VerifyRoute::Token(keys.clone())
            }
            HeldTokenKeys::Held(_) | HeldTokenKeys::Unknown => {
                self.token_keys = HeldTokenKeys::Unknown;
                self.start_sync_round(now);
                self.request_token_keys();
                VerifyRoute::Wait
            }
        }
    }

    /// The node refused a token verify with `stale-token-keys` (the day turned, or it made
    /// new keys): the keys held are dropped and fetched again.
    pub(super) fn refetch_token_keys(&mut self, now: UnixTime) {
        self.token_keys = HeldTokenKeys::Unknown;
        self.start_sync_round(now);
        self.request_token_keys();
    }

    /// The shape of a token verify now, for a decoy: how many keys of today it blinds
    /// under and their modulus length. `None` when a verify goes with a certificate.
    pub(super) fn token_verify_shape(&self, now: UnixTime) -> Option<(usize, usize)> {
        let HeldTokenKeys::Held(keys) = &self.token_keys else {
            return None;
        };
        let today = keys_of_today(keys, now);
        let modulus = today.first()?.modulus_len();
        Some((today.len(), modulus))
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::DayNumber;
    use ephemera_proto::auth::AuthoritySigningKey;
    use ephemera_proto::token::{TokenSigningKey, TokenVerifyResponse};
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const DAY: DayNumber = DayNumber(19_675);

    /// Two token keys of [`DAY`] (made once: RSA key generation is slow).
    fn signing_keys() -> &'static [TokenSigningKey] {
        static KEYS: std::sync::OnceLock<Vec<TokenSigningKey>> = std::sync::OnceLock::new();
        KEYS.get_or_init(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(3);
            TokenClass::ALL[..2]
                .iter()
                .map(|class| TokenSigningKey::generate(&mut rng, DAY, *class).unwrap())
                .collect()
        })
    }

    fn signed_set(authority: &AuthoritySigningKey, audience: Audience) -> Vec<u8> {
        wire::encode(&SignedTokenKeySet::publish(
            authority,
            audience,
            DAY.start(),
            signing_keys(),
        ))
    }

    #[test]
    fn a_key_set_is_kept_only_from_a_pinned_authority_for_this_audience() {
        let authority = AuthoritySigningKey::from_seed(&[1; 32]);
        let trusted = TrustedAuthorities::new().with(authority.public_key());
        let north = Audience::named("north");
        let body = signed_set(&authority, north);
        let keys = decode_token_keys(&body, &trusted, &north).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys_of_today(&keys, DAY.start()).len(), 2);
        assert!(keys_of_today(&keys, DAY.start().plus_seconds(86_400)).is_empty());
        assert!(matches!(
            decode_token_keys(&body, &trusted, &Audience::named("south")),
            Err(ClientError::TokenKeys(_))
        ));
        let stranger =
            TrustedAuthorities::new().with(AuthoritySigningKey::from_seed(&[2; 32]).public_key());
        assert!(matches!(
            decode_token_keys(&body, &stranger, &north),
            Err(ClientError::TokenKeys(_))
        ));
        let mut flipped = body.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(decode_token_keys(&flipped, &trusted, &north).is_err());
        assert!(matches!(
            decode_token_keys(&body[..body.len() - 1], &trusted, &north),
            Err(ClientError::Decode(_))
        ));
    }

    proptest! {
        /// `GET /v2/token-keys` and the token verify's answer are outside bytes: any body
        /// decodes or is refused with an error, never a panic.
        #[test]
        fn any_token_keys_or_verify_answer_body_is_decoded_or_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            flip in any::<prop::sample::Index>(),
            key in "[0-9a-f]{0,70}",
            signature in "[0-9a-fz]{0,600}",
        ) {
            let authority = AuthoritySigningKey::from_seed(&[1; 32]);
            let trusted = TrustedAuthorities::new().with(authority.public_key());
            let north = Audience::named("north");
            let _ = decode_token_keys(&bytes, &trusted, &north);
            let mut framed = vec![wire::WIRE_VERSION_2, wire::kind::TOKEN_KEY_SET];
            framed.extend_from_slice(&bytes);
            let _ = decode_token_keys(&framed, &trusted, &north);
            let mut body = signed_set(&authority, north);
            let at = flip.index(body.len());
            body[at] ^= 0x40;
            if let Ok(keys) = decode_token_keys(&body, &trusted, &north) {
                prop_assert!(keys.len() <= 2);
            }
            // The verify's answer: parsed, then unblinded against the pending exchange
            // (which checks the signature), whatever it holds.
            let keys = decode_token_keys(&signed_set(&authority, north), &trusted, &north).unwrap();
            let contents = ephemera_proto::ReportContents::Pet(Vec::new());
            let statement = ephemera_proto::token::TokenStatement {
                audience: &north,
                contents: &contents,
                binding: ephemera_proto::revision::HmacBinding::Unbound,
            };
            let mut rng = ChaCha20Rng::seed_from_u64(4);
            let code = ephemera_proto::auth::UploadCode::generate(&mut rng);
            let (exchange, _) = TokenExchange::prepare(&keys, DAY, &statement, &code, &mut rng).unwrap();
            if let Ok(answer) = serde_json::from_slice::<TokenVerifyResponse>(&bytes) {
                prop_assert!(exchange.finish(&keys, &answer).is_err());
            }
            let known: String = signing_keys()[0].public().id().0.iter().map(|b| format!("{b:02x}")).collect();
            for key in [key, known] {
                let answer = TokenVerifyResponse {
                    key,
                    blind_signature: signature.clone(),
                    padding: String::new(),
                };
                prop_assert!(exchange.finish(&keys, &answer).is_err());
            }
        }
    }
}
