//! The phone's side of issuance: blind a commitment, unblind the authority's answer.

use std::fmt;

use blind_rsa_signatures::{BlindMessage, BlindingResult, MessageRandomizer, Secret};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::token::{Commitment, TokenError, TokenKeyId, TokenVerifier, UploadToken};

/// A blinded commitment, as the phone sends it with its code (modulus-sized, big-endian).
/// It tells the signer nothing about the commitment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlindedMessage(pub Vec<u8>);

/// The authority's blind signature over a [`BlindedMessage`] (modulus-sized).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlindSignature(pub Vec<u8>);

/// What the phone keeps between sending its blinded message and unblinding the answer:
/// the key it blinded under, the commitment, RFC 9474's message randomizer and the
/// blinding secret. It is stored durably before the verify is sent (the code is spent by
/// the answer), zeroised on drop, and `Debug` never shows the secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingToken {
    key: TokenKeyId,
    commitment: Commitment,
    randomizer: [u8; 32],
    secret: Vec<u8>,
}

impl PendingToken {
    /// Blinds `commitment` under `key` (RFC 9474 `Prepare` with a random prefix, then
    /// `Blind`); returns what to keep and what to send.
    ///
    /// # Errors
    /// [`TokenError::MalformedBlinding`] in the negligible case the encoded message is not
    /// invertible modulo the key (draw again).
    pub fn blind(
        key: &TokenVerifier,
        commitment: Commitment,
        rng: &mut impl CryptoRng,
    ) -> Result<(PendingToken, BlindedMessage), TokenError> {
        let mut result = key
            .key
            .blind(rng, commitment.0)
            .map_err(|_| TokenError::MalformedBlinding)?;
        let randomizer = result
            .msg_randomizer
            .ok_or(TokenError::MalformedBlinding)?
            .0;
        let pending = PendingToken {
            key: key.id(),
            commitment,
            randomizer,
            secret: result.secret.0.clone(),
        };
        let message = BlindedMessage(std::mem::take(&mut result.blind_message.0));
        result.secret.0.zeroize();
        Ok((pending, message))
    }

    /// The key this token was blinded under.
    pub fn key(&self) -> TokenKeyId {
        self.key
    }

    /// The commitment this token will sign.
    pub fn commitment(&self) -> Commitment {
        self.commitment
    }

    /// Unblinds the authority's answer (RFC 9474 `Finalize`, which verifies the result):
    /// an authority that signed with another key, or sent anything but a signature over
    /// this commitment, is caught here, before the upload.
    ///
    /// # Errors
    /// [`TokenError::UnknownKey`] if `key` is not the key this token was blinded under;
    /// [`TokenError::MalformedBlinding`] for an answer of the wrong length;
    /// [`TokenError::BadSignature`] if the result does not verify.
    pub fn finalize(
        &self,
        key: &TokenVerifier,
        answer: &BlindSignature,
    ) -> Result<UploadToken, TokenError> {
        if key.id() != self.key {
            return Err(TokenError::UnknownKey);
        }
        let len = key.modulus_len();
        if answer.0.len() != len || self.secret.len() != len {
            return Err(TokenError::MalformedBlinding);
        }
        let mut state = BlindingResult {
            blind_message: BlindMessage(Vec::new()),
            secret: Secret(self.secret.clone()),
            msg_randomizer: Some(MessageRandomizer(self.randomizer)),
        };
        let outcome = key.key.finalize(
            &blind_rsa_signatures::BlindSignature(answer.0.clone()),
            &state,
            self.commitment.0,
        );
        state.secret.0.zeroize();
        let signature = outcome.map_err(|_| TokenError::BadSignature)?;
        Ok(UploadToken {
            key: self.key,
            randomizer: self.randomizer,
            signature: signature.0,
        })
    }
}

impl Drop for PendingToken {
    fn drop(&mut self) {
        self.secret.zeroize();
        self.randomizer.zeroize();
    }
}

impl ZeroizeOnDrop for PendingToken {}

impl fmt::Debug for PendingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingToken")
            .field("key", &self.key)
            .field("commitment", &self.commitment)
            .field("randomizer", &"<redacted>")
            .field("secret", &"<redacted>")
            .finish()
    }
}
