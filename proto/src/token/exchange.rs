//! `POST /v2/verify`: the code exchanged for a blind signature (`docs/PROTOCOL.md` §4.4).
//!
//! The phone does not know its code's class before the exchange, so it blinds one
//! commitment per class under each of today's keys and sends them all; the authority
//! signs the one of its code's class and says which. Every blinded message is uniformly
//! random to it, so the nine it does not sign tell it nothing either.

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::auth::UploadCode;
use crate::error::DecodeError;
use crate::time::DayNumber;
use crate::token::{
    BlindSignature, BlindedMessage, PendingToken, TokenClass, TokenError, TokenKeyId, TokenKeys,
    TokenStatement, UploadToken,
};

/// Exact size of a serialized [`TokenVerifyRequest`]: ten 2048-bit blinded messages in hex
/// with their key ids fit with room to spare.
pub const TOKEN_VERIFY_REQUEST_SIZE: usize = 8192;
/// Exact size of a serialized [`TokenVerifyResponse`].
pub const TOKEN_VERIFY_RESPONSE_SIZE: usize = 1024;

/// One blinded commitment and the key it is blinded under (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlindedEntry {
    /// The [`TokenKeyId`], 64 hex characters.
    pub key: String,
    /// The [`BlindedMessage`], hex.
    pub message: String,
}

/// `POST /v2/verify`: a one-time code and one blinded commitment per class of today's keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenVerifyRequest {
    /// The upload code as the person typed it.
    pub code: String,
    /// One entry per key of the epoch, in any order.
    pub blinded: Vec<BlindedEntry>,
    /// True for a decoy: the node does the same work, answers random bytes and forgets it.
    pub decoy: bool,
    /// Spaces up to [`TOKEN_VERIFY_REQUEST_SIZE`].
    pub padding: String,
}

impl TokenVerifyRequest {
    /// The entries, parsed.
    ///
    /// # Errors
    /// [`DecodeError::InvalidField`] for an entry that is not hex of the right length.
    pub fn entries(&self) -> Result<Vec<(TokenKeyId, BlindedMessage)>, DecodeError> {
        self.blinded
            .iter()
            .map(|entry| {
                let mut key = [0u8; 32];
                hex::decode_to_slice(&entry.key, &mut key)
                    .map_err(|_| DecodeError::InvalidField { field: "key" })?;
                let message = hex::decode(&entry.message)
                    .map_err(|_| DecodeError::InvalidField { field: "message" })?;
                Ok((TokenKeyId(key), BlindedMessage(message)))
            })
            .collect()
    }

    /// A decoy drawn like a real request: a random code and `count` random entries of
    /// `modulus_len` bytes (sealed, nobody but the node reads it).
    pub fn decoy(count: usize, modulus_len: usize, rng: &mut impl CryptoRng) -> Self {
        let blinded = (0..count)
            .map(|_| {
                let mut key = [0u8; 32];
                rng.fill_bytes(&mut key);
                let mut message = vec![0u8; modulus_len];
                rng.fill_bytes(&mut message);
                BlindedEntry {
                    key: hex::encode(key),
                    message: hex::encode(message),
                }
            })
            .collect();
        TokenVerifyRequest {
            code: UploadCode::generate(rng).reveal(),
            blinded,
            decoy: true,
            padding: String::new(),
        }
    }

    /// The JSON body, padded to exactly [`TOKEN_VERIFY_REQUEST_SIZE`] bytes.
    pub fn to_padded_json(&self) -> Vec<u8> {
        crate::api::pad_json(self, |v, p| v.padding = p, TOKEN_VERIFY_REQUEST_SIZE)
    }
}

/// The code is a secret until spent: zeroised when the request is dropped.
impl Drop for TokenVerifyRequest {
    fn drop(&mut self) {
        self.code.zeroize();
    }
}

impl ZeroizeOnDrop for TokenVerifyRequest {}

impl fmt::Debug for TokenVerifyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifyRequest")
            .field("code", &"<redacted>")
            .field("entries", &self.blinded.len())
            .field("decoy", &self.decoy)
            .finish_non_exhaustive()
    }
}

/// The answer to a [`TokenVerifyRequest`]: the key (so the class) the authority signed
/// under, and the blind signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenVerifyResponse {
    /// The [`TokenKeyId`] signed under, hex (random for a decoy).
    pub key: String,
    /// The [`BlindSignature`], hex (random bytes of its length for a decoy).
    pub blind_signature: String,
    /// Spaces up to [`TOKEN_VERIFY_RESPONSE_SIZE`].
    pub padding: String,
}

impl TokenVerifyResponse {
    /// Wraps a blind signature under `key`.
    pub fn new(key: TokenKeyId, signature: &BlindSignature) -> Self {
        TokenVerifyResponse {
            key: hex::encode(key.0),
            blind_signature: hex::encode(&signature.0),
            padding: String::new(),
        }
    }

    /// A decoy answer: random bytes as long as a real one.
    pub fn decoy(modulus_len: usize, rng: &mut impl CryptoRng) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut signature = vec![0u8; modulus_len];
        rng.fill_bytes(&mut signature);
        Self::new(TokenKeyId(key), &BlindSignature(signature))
    }

    /// The JSON body, padded to exactly [`TOKEN_VERIFY_RESPONSE_SIZE`] bytes.
    pub fn to_padded_json(&self) -> Vec<u8> {
        crate::api::pad_json(self, |v, p| v.padding = p, TOKEN_VERIFY_RESPONSE_SIZE)
    }
}

/// The phone's side of one exchange: a pending token per class, until the answer says
/// which class the code was of. Zeroised on drop (each [`PendingToken`] is).
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenExchange {
    pending: Vec<PendingToken>,
}

impl TokenExchange {
    /// Blinds the statement's commitment for every class that `keys` holds a key for on
    /// day `epoch`, and builds the request with `code`.
    ///
    /// # Errors
    /// [`TokenError::UnknownKey`] if `keys` holds no key for `epoch`;
    /// [`TokenError::MalformedBlinding`] (negligible: draw again).
    pub fn prepare(
        keys: &TokenKeys,
        epoch: DayNumber,
        statement: &TokenStatement<'_>,
        code: &UploadCode,
        rng: &mut impl CryptoRng,
    ) -> Result<(TokenExchange, TokenVerifyRequest), TokenError> {
        let mut pending = Vec::new();
        let mut blinded = Vec::new();
        for class in TokenClass::ALL {
            let Some(key) = keys.key_for(epoch, class) else {
                continue;
            };
            let (token, message) =
                PendingToken::blind(key, statement.commitment(epoch, class), rng)?;
            blinded.push(BlindedEntry {
                key: hex::encode(key.id().0),
                message: hex::encode(&message.0),
            });
            pending.push(token);
        }
        if pending.is_empty() {
            return Err(TokenError::UnknownKey);
        }
        let request = TokenVerifyRequest {
            code: code.reveal(),
            blinded,
            decoy: false,
            padding: String::new(),
        };
        Ok((TokenExchange { pending }, request))
    }

    /// Unblinds the answer with the pending token of the key it names.
    ///
    /// # Errors
    /// [`TokenError::UnknownKey`] for a key this exchange did not blind under (or one
    /// `keys` no longer holds); [`TokenError::MalformedBlinding`] for an answer that is not
    /// hex; [`PendingToken::finalize`]'s errors.
    pub fn finish(
        &self,
        keys: &TokenKeys,
        answer: &TokenVerifyResponse,
    ) -> Result<UploadToken, TokenError> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(&answer.key, &mut id).map_err(|_| TokenError::UnknownKey)?;
        let id = TokenKeyId(id);
        let pending = self
            .pending
            .iter()
            .find(|p| p.key() == id)
            .ok_or(TokenError::UnknownKey)?;
        let key = keys.get(&id).ok_or(TokenError::UnknownKey)?;
        let signature =
            hex::decode(&answer.blind_signature).map_err(|_| TokenError::MalformedBlinding)?;
        pending.finalize(key, &BlindSignature(signature))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::auth::ExpiryPolicy;
    use crate::pet::EncounterToken;
    use crate::report::{PublishedToken, ReportContents};
    use crate::revision::HmacBinding;
    use crate::time::UnixTime;
    use crate::token::{Audience, TokenSigningKey};

    const EPOCH: DayNumber = DayNumber(19_675);

    fn signers(rng: &mut ChaCha20Rng) -> (Vec<TokenSigningKey>, TokenKeys) {
        let signers: Vec<TokenSigningKey> = TokenClass::ALL[..3]
            .iter()
            .map(|class| TokenSigningKey::generate(rng, EPOCH, *class).unwrap())
            .collect();
        let mut keys = TokenKeys::default();
        for signer in &signers {
            keys.insert(signer.public().parse().unwrap()).unwrap();
        }
        (signers, keys)
    }

    #[test]
    fn the_answer_for_the_codes_class_unblinds_to_a_token_of_that_class() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (signers, keys) = signers(&mut rng);
        let audience = Audience::named("north");
        let contents = ReportContents::Pet(vec![PublishedToken {
            day: EPOCH,
            token: EncounterToken([3; 16]),
        }]);
        let statement = TokenStatement {
            audience: &audience,
            contents: &contents,
            binding: HmacBinding::Unbound,
        };
        let code = UploadCode::generate(&mut rng);
        let (exchange, request) =
            TokenExchange::prepare(&keys, EPOCH, &statement, &code, &mut rng).unwrap();
        assert_eq!(request.blinded.len(), 3);
        assert_eq!(request.to_padded_json().len(), TOKEN_VERIFY_REQUEST_SIZE);
        // The authority signs the entry of its code's class (the second one here).
        let entries = request.entries().unwrap();
        let signer = &signers[1];
        let (_, message) = entries
            .iter()
            .find(|(id, _)| *id == signer.public().id())
            .unwrap();
        assert!(keys.get(&signer.public().id()).unwrap().fits(message));
        let answer = TokenVerifyResponse::new(
            signer.public().id(),
            &signer.blind_sign(message, &mut rng).unwrap(),
        );
        assert_eq!(answer.to_padded_json().len(), TOKEN_VERIFY_RESPONSE_SIZE);
        let token = exchange.finish(&keys, &answer).unwrap();
        let noon = UnixTime(u64::from(EPOCH.0) * 86_400 + 43_200);
        let key = token
            .verify(&keys, &statement, noon, ExpiryPolicy::FirstUpload)
            .unwrap();
        assert_eq!(key.public().class, TokenClass::ALL[1]);
        // A decoy answer, or a signature under another class's key, never unblinds.
        let decoy = TokenVerifyResponse::decoy(256, &mut rng);
        assert_eq!(decoy.to_padded_json().len(), answer.to_padded_json().len());
        assert_eq!(
            exchange.finish(&keys, &decoy).unwrap_err(),
            TokenError::UnknownKey
        );
        let wrong = TokenVerifyResponse {
            key: hex::encode(signers[0].public().id().0),
            ..answer.clone()
        };
        assert_eq!(
            exchange.finish(&keys, &wrong).unwrap_err(),
            TokenError::BadSignature
        );
        // A decoy request is as long as a real one, and neither shows its code.
        let fake = TokenVerifyRequest::decoy(3, 256, &mut rng);
        assert_eq!(fake.to_padded_json().len(), TOKEN_VERIFY_REQUEST_SIZE);
        assert!(!format!("{request:?}").contains(&code.reveal()));
    }

    #[test]
    fn only_modulus_sized_messages_below_the_modulus_fit() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let key = TokenSigningKey::generate(&mut rng, EPOCH, TokenClass::ALL[0]).unwrap();
        let verifier = key.public().parse().unwrap();
        let n = verifier.key.components().n();
        assert!(!verifier.fits(&BlindedMessage(n.clone())));
        assert!(!verifier.fits(&BlindedMessage(vec![0; n.len() - 1])));
        assert!(verifier.fits(&BlindedMessage(vec![0; n.len()])));
        let mut below = n.clone();
        *below.last_mut().unwrap() -= 1;
        assert!(verifier.fits(&BlindedMessage(below.clone())));
        assert!(key.blind_sign(&BlindedMessage(below), &mut rng).is_ok());
        assert_eq!(
            key.blind_sign(&BlindedMessage(n), &mut rng).unwrap_err(),
            TokenError::MalformedBlinding
        );
    }

    proptest! {
        /// A request or an answer of any bytes never panics the parser.
        #[test]
        fn any_json_body_parses_or_fails_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..400), key in "[0-9a-f]{0,70}", message in "[0-9a-fz]{0,40}") {
            if let Ok(request) = serde_json::from_slice::<TokenVerifyRequest>(&bytes) {
                let _ = request.entries();
            }
            let _ = serde_json::from_slice::<TokenVerifyResponse>(&bytes);
            let request = TokenVerifyRequest {
                code: String::new(),
                blinded: vec![BlindedEntry { key, message }],
                decoy: false,
                padding: String::new(),
            };
            let _ = request.entries();
        }
    }
}
