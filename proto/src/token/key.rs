//! Token keys: one RSA key per epoch (UTC day) and [`TokenClass`].

use std::fmt;

use blind_rsa_signatures::{
    KeyPairSha384PSSRandomized, PublicKeySha384PSSRandomized, SecretKeySha384PSSRandomized,
};
use rand_core::CryptoRng;
use ring::digest;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::time::DayNumber;
use crate::token::{BlindSignature, BlindedMessage, TokenClass, TokenError};

/// Modulus size of the keys this implementation generates. Verifiers accept 2048 to 4096
/// bits (RFC 9474's vectors use 4096).
pub const TOKEN_MODULUS_BITS: usize = 2048;
/// Domain label of a [`TokenKeyId`].
const KEY_ID_LABEL: &[u8] = b"ephemera/token-key-id/v2";
/// Largest public key encoding accepted (a 4096-bit RSASSA-PSS SubjectPublicKeyInfo is 590
/// bytes).
const MAX_SPKI_LEN: usize = 800;

/// `SHA-256("ephemera/token-key-id/v2" ‖ u32le(epoch) ‖ class (2) ‖ spki)`: names a key,
/// its epoch and its class at once, all 32 bytes (no collisions to handle, unlike the
/// 8-byte Ed25519 [`crate::signing::KeyId`]).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenKeyId(pub [u8; 32]);

impl fmt::Debug for TokenKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKeyId({}…)", hex::encode(&self.0[..4]))
    }
}

/// A published token key: its epoch, its class and the RSA public key as an RFC 9474
/// RSASSA-PSS SubjectPublicKeyInfo (DER).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPublicKey {
    /// The UTC day whose verifies it signs.
    pub epoch: DayNumber,
    /// The report class it signs for.
    pub class: TokenClass,
    /// RSASSA-PSS SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
}

impl TokenPublicKey {
    /// This key's id.
    pub fn id(&self) -> TokenKeyId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(KEY_ID_LABEL);
        ctx.update(&self.epoch.0.to_le_bytes());
        ctx.update(&self.class.bytes());
        ctx.update(&self.spki);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        TokenKeyId(out)
    }

    /// Parses the key for verifying and blinding.
    ///
    /// # Errors
    /// [`TokenError::MalformedKey`] for bytes that are not an RSA key of 2048 to 4096 bits
    /// (or too long to be one); [`TokenError::UnsupportedClass`] for a class no key is
    /// made for.
    pub fn parse(&self) -> Result<TokenVerifier, TokenError> {
        self.class.check()?;
        if self.spki.len() > MAX_SPKI_LEN {
            return Err(TokenError::MalformedKey);
        }
        let key = PublicKeySha384PSSRandomized::from_spki(&self.spki)
            .map_err(|_| TokenError::MalformedKey)?;
        Ok(TokenVerifier {
            id: self.id(),
            public: self.clone(),
            key,
        })
    }
}

/// A parsed [`TokenPublicKey`]: what phones blind under and nodes verify with.
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    pub(super) id: TokenKeyId,
    pub(super) public: TokenPublicKey,
    pub(super) key: PublicKeySha384PSSRandomized,
}

impl TokenVerifier {
    /// The key's id.
    pub fn id(&self) -> TokenKeyId {
        self.id
    }

    /// The key as published.
    pub fn public(&self) -> &TokenPublicKey {
        &self.public
    }

    /// The modulus size in bytes: the length of a blinded message, a blind signature and a
    /// token signature.
    pub fn modulus_len(&self) -> usize {
        self.key.components().n().len()
    }

    /// Whether `message` could be a blinded message under this key: modulus-sized and below
    /// the modulus. The signer checks it before it spends a code, so a phone's malformed
    /// message never costs the person their code.
    pub fn fits(&self, message: &BlindedMessage) -> bool {
        let n = self.key.components().n();
        // Equal-length big-endian byte strings compare as the numbers they encode.
        message.0.len() == n.len() && message.0.as_slice() < n.as_slice()
    }
}

/// The authority's private token key for one epoch and class. Kept by the node that
/// answers verifies; zeroised on drop (the `rsa` crate's private key is); `Debug` shows
/// only the public half.
#[derive(Clone)]
pub struct TokenSigningKey {
    public: TokenPublicKey,
    secret: SecretKeySha384PSSRandomized,
}

impl TokenSigningKey {
    /// Generates a [`TOKEN_MODULUS_BITS`] key for `epoch` and `class`. Slow (tens to
    /// hundreds of milliseconds): done ahead of the epoch, never on a request's path.
    ///
    /// # Errors
    /// [`TokenError::UnsupportedClass`], or [`TokenError::KeyGeneration`] if the RNG fails.
    pub fn generate(
        rng: &mut impl CryptoRng,
        epoch: DayNumber,
        class: TokenClass,
    ) -> Result<TokenSigningKey, TokenError> {
        class.check()?;
        let pair = KeyPairSha384PSSRandomized::generate(rng, TOKEN_MODULUS_BITS)
            .map_err(|_| TokenError::KeyGeneration)?;
        Self::from_parts(epoch, class, pair.sk)
    }

    /// Rebuilds a key from [`Self::to_der`]'s bytes.
    ///
    /// # Errors
    /// [`TokenError::MalformedPrivateKey`] for bytes that are not a valid RSA key;
    /// [`TokenError::UnsupportedClass`].
    pub fn from_der(
        epoch: DayNumber,
        class: TokenClass,
        der: &[u8],
    ) -> Result<TokenSigningKey, TokenError> {
        class.check()?;
        let secret = SecretKeySha384PSSRandomized::from_der(der)
            .map_err(|_| TokenError::MalformedPrivateKey)?;
        Self::from_parts(epoch, class, secret)
    }

    fn from_parts(
        epoch: DayNumber,
        class: TokenClass,
        secret: SecretKeySha384PSSRandomized,
    ) -> Result<TokenSigningKey, TokenError> {
        let spki = secret
            .public_key()
            .and_then(|public| public.to_spki())
            .map_err(|_| TokenError::MalformedPrivateKey)?;
        Ok(TokenSigningKey {
            public: TokenPublicKey { epoch, class, spki },
            secret,
        })
    }

    /// The private key as PKCS#8 DER, to store; zeroised when dropped.
    ///
    /// # Errors
    /// [`TokenError::MalformedPrivateKey`] if the key cannot be encoded.
    pub fn to_der(&self) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        self.secret
            .to_der()
            .map(Zeroizing::new)
            .map_err(|_| TokenError::MalformedPrivateKey)
    }

    /// The public half, to publish.
    pub fn public(&self) -> &TokenPublicKey {
        &self.public
    }

    /// Signs a phone's blinded message (RFC 9474 `BlindSign`: the private-key operation, with
    /// RSA blinding against timing, and the result checked before it is returned).
    ///
    /// # Errors
    /// [`TokenError::MalformedBlinding`] for a message of the wrong length or not below the
    /// modulus.
    pub fn blind_sign(
        &self,
        message: &BlindedMessage,
        rng: &mut impl CryptoRng,
    ) -> Result<BlindSignature, TokenError> {
        self.secret
            .blind_sign_with_rng(rng, &message.0)
            .map(|signature| BlindSignature(signature.0))
            .map_err(|_| TokenError::MalformedBlinding)
    }
}

impl fmt::Debug for TokenSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigningKey")
            .field("epoch", &self.public.epoch)
            .field("class", &self.public.class)
            .field("id", &self.public.id())
            .field("secret", &"<redacted>")
            .finish()
    }
}
