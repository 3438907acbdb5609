//! Blind upload tokens (`docs/PROTOCOL.md` §4.4): an authorisation the authority cannot link
//! to the upload it authorises.
//!
//! The phone commits to its report ([`TokenStatement::commitment`]: the entries, the
//! revision key, the report class and the federation it is meant for),
//! blinds the commitment under the authority's key for the report's class and the current
//! epoch ([`PendingToken::blind`]) and sends the blinded message with its code. The
//! authority checks the code and signs blindly ([`TokenSigningKey::blind_sign`]); it sees
//! neither the commitment nor, later, which upload its signature authorises. The phone
//! unblinds ([`PendingToken::finalize`]) and uploads the report with the resulting
//! [`UploadToken`]; every node checks it against the authority's published keys
//! ([`SignedTokenKeySet`], [`TokenKeys`]) with [`UploadToken::verify`].
//!
//! The scheme is RFC 9474's RSABSSA-SHA384-PSS-Randomized (the `blind-rsa-signatures`
//! crate), with 2048-bit keys: one key per epoch (a UTC day) and [`TokenClass`], so the
//! signer learns only the class and the day.

mod blinding;
mod class;
mod commitment;
mod error;
mod exchange;
mod key;
mod key_set;
mod token_upload;
mod upload_delay;
mod upload_token;

pub use blinding::{BlindSignature, BlindedMessage, PendingToken};
pub use class::{OnsetClass, TokenClass};
pub use commitment::{Audience, Commitment, TokenStatement};
pub use error::TokenError;
pub use exchange::{
    BlindedEntry, TOKEN_VERIFY_REQUEST_SIZE, TOKEN_VERIFY_RESPONSE_SIZE, TokenExchange,
    TokenVerifyRequest, TokenVerifyResponse,
};
pub use key::{TOKEN_MODULUS_BITS, TokenKeyId, TokenPublicKey, TokenSigningKey, TokenVerifier};
pub use key_set::{SignedTokenKeySet, TokenKeySet, TokenKeys};
pub use token_upload::TokenUpload;
pub use upload_delay::UploadDelay;
pub use upload_token::{TOKEN_UPLOAD_DAYS, TokenId, UploadToken};

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::auth::{AuthoritySigningKey, ExpiryPolicy, TrustedAuthorities};
    use crate::pet::EncounterToken;
    use crate::report::{PublishedToken, ReportContents, ReportType};
    use crate::revision::{HmacBinding, RevisionSecret};
    use crate::time::{DayNumber, UnixTime};
    use crate::wire;

    /// The frozen vector key's epoch and class.
    pub(crate) const EPOCH: DayNumber = DayNumber(19_675);
    pub(crate) const CLASS: TokenClass = TokenClass {
        test_type: ReportType::ConfirmedTest,
        onset: OnsetClass::Recent,
    };

    /// The frozen vector's key (generating one per test would cost tens of milliseconds).
    pub(crate) fn signing_key() -> TokenSigningKey {
        let frozen: std::collections::BTreeMap<String, String> =
            serde_json::from_str(include_str!("../tests/vectors/token.json")).unwrap();
        let der = hex::decode(&frozen["input_token_key_pkcs8"]).unwrap();
        TokenSigningKey::from_der(EPOCH, CLASS, &der).unwrap()
    }

    fn keys(key: &TokenSigningKey, audience: Audience) -> (SignedTokenKeySet, TrustedAuthorities) {
        let authority = AuthoritySigningKey::from_seed(&[1; 32]);
        let set = SignedTokenKeySet::publish(&authority, audience, UnixTime(1_700_000_000), [key]);
        (set, TrustedAuthorities::new().with(authority.public_key()))
    }

    fn contents(byte: u8) -> ReportContents {
        ReportContents::Pet(vec![PublishedToken {
            day: EPOCH,
            token: EncounterToken([byte; 16]),
        }])
    }

    const NOON: UnixTime = UnixTime(19_675 * 86_400 + 43_200);

    #[test]
    fn a_token_verifies_for_its_report_only() {
        let key = signing_key();
        let audience = Audience::named("north");
        let (set, trusted) = keys(&key, audience);
        let keys = set.verify(&trusted, &audience).unwrap();
        let verifier = keys.key_for(EPOCH, CLASS).unwrap();
        let report = contents(1);
        let revision = RevisionSecret::from_seed(&[3; 32]).key();
        let statement = TokenStatement {
            audience: &audience,
            contents: &report,
            binding: HmacBinding::Upload(revision),
        };
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (pending, blinded) =
            PendingToken::blind(verifier, statement.commitment(EPOCH, CLASS), &mut rng).unwrap();
        let answer = key.blind_sign(&blinded, &mut rng).unwrap();
        let token = pending.finalize(verifier, &answer).unwrap();
        let first = ExpiryPolicy::FirstUpload;
        assert_eq!(
            token.verify(&keys, &statement, NOON, first).unwrap().id(),
            verifier.id()
        );
        // Another report, audience or role: refused.
        let other_report = contents(2);
        let other_audience = Audience::named("south");
        let refused = [
            TokenStatement {
                contents: &other_report,
                ..statement
            },
            TokenStatement {
                audience: &other_audience,
                ..statement
            },
            TokenStatement {
                binding: HmacBinding::Revision(revision),
                ..statement
            },
        ];
        for other in &refused {
            assert_eq!(
                token.verify(&keys, other, NOON, first).unwrap_err(),
                TokenError::BadSignature
            );
        }
        let late = UnixTime(NOON.0 + 2 * 86_400);
        assert!(matches!(
            token.verify(&keys, &statement, late, first),
            Err(TokenError::Expired { .. })
        ));
        assert!(
            token
                .verify(
                    &keys,
                    &statement,
                    late,
                    ExpiryPolicy::Relayed { retention_days: 14 }
                )
                .is_ok()
        );
        // A key set of another audience or signer is refused.
        assert_eq!(
            set.verify(&trusted, &other_audience).unwrap_err(),
            TokenError::WrongAudience
        );
        assert_eq!(
            set.verify(&TrustedAuthorities::new(), &audience)
                .unwrap_err(),
            TokenError::UntrustedKeySet
        );
        // The answer unblinds only with its own pending state and key.
        let (other_pending, _) =
            PendingToken::blind(verifier, statement.commitment(EPOCH, CLASS), &mut rng).unwrap();
        assert_eq!(
            other_pending.finalize(verifier, &answer).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn secrets_are_zeroised_and_never_shown() {
        fn zeroised_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroised_on_drop::<PendingToken>();
        let key = signing_key();
        let der = key.to_der().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(&hex::encode(&der[40..56])), "{shown}");
        let verifier = key.public().parse().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (pending, _) = PendingToken::blind(&verifier, Commitment([7; 32]), &mut rng).unwrap();
        let bytes = postcard::to_allocvec(&pending).unwrap();
        let secret_hex = hex::encode(&bytes[bytes.len() - 64..]);
        let shown = format!("{pending:?}");
        assert!(!shown.contains(&secret_hex[..16]), "{shown}");
    }

    #[test]
    fn a_set_with_two_keys_for_one_class_is_refused() {
        let key = signing_key();
        let audience = Audience::named("north");
        let authority = AuthoritySigningKey::from_seed(&[1; 32]);
        let mut twin = key.public().clone();
        twin.spki = keys(&key, audience).0.set.keys[0].spki.clone();
        let set = SignedTokenKeySet::sign(
            TokenKeySet {
                authority: authority.public_key(),
                audience,
                published_at: UnixTime(0),
                keys: vec![key.public().clone(), twin],
            },
            &authority,
        );
        assert_eq!(
            set.verify(
                &TrustedAuthorities::new().with(authority.public_key()),
                &audience
            )
            .unwrap_err(),
            TokenError::DuplicateKey
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Outside bytes never panic a decoder or a check: key sets, tokens, public keys,
        /// blinded messages (at the signer) and blind signatures (at the phone).
        #[test]
        fn outside_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = wire::decode::<SignedTokenKeySet>(&bytes);
            let mut framed = vec![wire::WIRE_VERSION_2, wire::kind::TOKEN_KEY_SET];
            framed.extend_from_slice(&bytes);
            let _ = wire::decode::<SignedTokenKeySet>(&framed);
            let _ = postcard::from_bytes::<UploadToken>(&bytes);
            let _ = postcard::from_bytes::<PendingToken>(&bytes);
            let _ = TokenPublicKey { epoch: EPOCH, class: CLASS, spki: bytes.clone() }.parse();
            let key = signing_key();
            let mut rng = ChaCha20Rng::seed_from_u64(3);
            let _ = key.blind_sign(&BlindedMessage(bytes.clone()), &mut rng);
            let verifier = key.public().parse().unwrap();
            let (pending, _) = PendingToken::blind(&verifier, Commitment([1; 32]), &mut rng).unwrap();
            prop_assert!(pending.finalize(&verifier, &BlindSignature(bytes.clone())).is_err());
        }

        /// A token altered anywhere (key id, randomizer, signature) never verifies.
        #[test]
        fn an_altered_token_never_verifies(field in 0usize..3, at in any::<usize>(), bit in 0u8..8) {
            let key = signing_key();
            let audience = Audience::named("north");
            let (set, trusted) = keys(&key, audience);
            let keys = set.verify(&trusted, &audience).unwrap();
            let verifier = keys.key_for(EPOCH, CLASS).unwrap();
            let report = contents(9);
            let statement = TokenStatement {
                audience: &audience,
                contents: &report,
                binding: HmacBinding::Unbound,
            };
            let mut rng = ChaCha20Rng::seed_from_u64(at as u64);
            let (pending, blinded) = PendingToken::blind(verifier, statement.commitment(EPOCH, CLASS), &mut rng).unwrap();
            let mut token = pending.finalize(verifier, &key.blind_sign(&blinded, &mut rng).unwrap()).unwrap();
            prop_assert!(token.verify(&keys, &statement, NOON, ExpiryPolicy::FirstUpload).is_ok());
            let flip = 1u8 << bit;
            match field {
                0 => token.key.0[at % 32] ^= flip,
                1 => token.randomizer[at % 32] ^= flip,
                _ => { let n = token.signature.len(); token.signature[at % n] ^= flip }
            }
            prop_assert!(token.verify(&keys, &statement, NOON, ExpiryPolicy::FirstUpload).is_err());
        }
    }
}
