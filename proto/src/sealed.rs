//! Sealed phone exchanges: verify and upload bodies encrypted to the node, answers
//! encrypted back to the phone.
//!
//! A TLS-terminating proxy or CDN in front of a node reads every request in clear. Decoys
//! hide who just tested positive only if nothing a proxy reads tells them apart, and the
//! client is open source: any marker a phone can compute, a proxy can compute too. So the
//! phone seals the whole body of `POST /v1/verify` and `POST /v1/uploads` to the node's
//! sealing key with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305), and the node seals its answer back under a key exported from the
//! same HPKE context, as Oblivious HTTP does (RFC 9458 §4.4). Only the node learns whether
//! a request is a decoy, what it carried and how it was answered; a proxy sees ciphertext
//! of one size per route, and the same HTTP status (`200`) for every answer the node
//! produced after opening the request.
//!
//! | message | bytes |
//! | --- | --- |
//! | sealed request | key id (8) ‖ HPKE `enc` (32) ‖ AEAD(inner body) (inner + 16) |
//! | sealed response | response nonce (32) ‖ AEAD(inner response) (inner + 16) |
//! | inner response | status (u16 BE) ‖ body length (u16 BE) ‖ body ‖ zeros, fixed size per route |
//!
//! The node publishes its sealing key signed by its batch key
//! ([`SealingKeyAnnouncement`]), so a phone that trusts the node's batches trusts the key
//! without a second pin.

use std::fmt;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::digest;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::hkdf::hkdf_sha256_expand_each;
use crate::signing::{Ed25519PublicKey, Ed25519SigningKey, Signature, TrustedKeys};

type Kem = X25519HkdfSha256;

/// Bytes of a sealing key id.
pub const KEY_ID_LEN: usize = 8;
/// Bytes of HPKE's encapsulated key (an X25519 public key).
pub const ENC_LEN: usize = 32;
/// Bytes of the AEAD tag.
pub const TAG_LEN: usize = 16;
/// Bytes of the random nonce in front of a sealed response.
pub const RESPONSE_NONCE_LEN: usize = 32;
/// Bytes a sealed request adds to its inner body.
pub const REQUEST_OVERHEAD: usize = KEY_ID_LEN + ENC_LEN + TAG_LEN;
/// Bytes a sealed response adds to its inner response.
pub const RESPONSE_OVERHEAD: usize = RESPONSE_NONCE_LEN + TAG_LEN;
/// Content type of sealed bodies, both ways.
pub const CONTENT_TYPE: &str = "application/ephemera-sealed";

const KEY_ID_LABEL: &[u8] = b"ephemera/sealing-key-id/v1";
const ANNOUNCEMENT_LABEL: &[u8] = b"ephemera/sealing-key/v1";
const INFO_PREFIX: &[u8] = b"ephemera/sealed/v1/";
const RESPONSE_EXPORT_LABEL: &[u8] = b"ephemera/sealed/v1/response";
/// Bytes of the inner response's header (status, body length).
const INNER_HEADER_LEN: usize = 4;

/// A phone route whose bodies are sealed. Each has its own HPKE `info`, so a request sealed
/// for one route never opens as another, and its own fixed inner response size.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SealedRoute {
    /// `POST /v1/verify`.
    Verify,
    /// `POST /v1/uploads`.
    Upload,
    /// `POST /v2/verify`: a code for a blind token (`crate::token`).
    TokenVerify,
}

impl SealedRoute {
    fn label(self) -> &'static [u8] {
        match self {
            SealedRoute::Verify => b"verify",
            SealedRoute::Upload => b"upload",
            SealedRoute::TokenVerify => b"token-verify",
        }
    }

    /// The HTTP path a phone posts this route's sealed body to.
    pub fn path(self) -> &'static str {
        match self {
            SealedRoute::Verify => "/v1/verify",
            SealedRoute::Upload => "/v1/uploads",
            SealedRoute::TokenVerify => "/v2/verify",
        }
    }

    /// Bytes of every inner response on this route: the padded success body plus the
    /// header. Error bodies are padded to the same size.
    pub fn inner_response_size(self) -> usize {
        INNER_HEADER_LEN
            + match self {
                SealedRoute::Verify => crate::api::VERIFY_RESPONSE_SIZE,
                SealedRoute::Upload => crate::api::UPLOAD_RESPONSE_SIZE,
                SealedRoute::TokenVerify => crate::token::TOKEN_VERIFY_RESPONSE_SIZE,
            }
    }

    /// Bytes of every sealed response on this route.
    pub fn sealed_response_size(self) -> usize {
        self.inner_response_size() + RESPONSE_OVERHEAD
    }

    fn info(self) -> Vec<u8> {
        [INFO_PREFIX, self.label()].concat()
    }
}

/// Why a sealed message could not be opened or built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SealError {
    /// Shorter than its fixed parts.
    #[error("sealed message is truncated: {got} bytes, at least {min} needed")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes needed at least.
        min: usize,
    },
    /// Sealed to a key this node does not hold (the phone must fetch the current key).
    #[error("sealed to an unknown key (fetch GET /v1/sealing-key again)")]
    UnknownKey,
    /// The encapsulated key is not a usable X25519 point.
    #[error("the encapsulated key is invalid")]
    BadEncapsulation,
    /// Authentication failed: altered, truncated, or sealed for another route.
    #[error("the sealed message does not authenticate")]
    Unauthentic,
    /// The inner response's header does not fit its size.
    #[error("the inner response is malformed")]
    MalformedInner,
    /// An inner body too large to carry in an inner response.
    #[error("inner body of {got} bytes exceeds {max}")]
    InnerTooLarge {
        /// Bytes given.
        got: usize,
        /// The limit on this route.
        max: usize,
    },
}

/// The node's X25519 sealing secret, kept as the 32-byte seed HPKE derives it from.
///
/// `Debug` never shows the seed.
pub struct SealingSecretKey {
    seed: Zeroizing<[u8; 32]>,
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: SealingPublicKey,
}

impl SealingSecretKey {
    /// Draws a new key from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Rebuilds the key from its stored seed (RFC 9180 `DeriveKeyPair`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let (secret, public) = Kem::derive_keypair(seed);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        SealingSecretKey {
            seed: Zeroizing::new(*seed),
            secret,
            public: SealingPublicKey(bytes),
        }
    }

    /// The seed, for storing the key. A secret.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public half phones seal to.
    pub fn public_key(&self) -> SealingPublicKey {
        self.public
    }

    /// Opens a sealed request for `route`: the inner body and the sealer of its answer.
    ///
    /// # Errors
    /// [`SealError`] when the request is short, sealed to another key or route, or altered.
    pub fn open_request(
        &self,
        route: SealedRoute,
        sealed: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, ResponseSealer), SealError> {
        let min = REQUEST_OVERHEAD;
        if sealed.len() < min {
            return Err(SealError::Truncated {
                got: sealed.len(),
                min,
            });
        }
        let (key_id, rest) = sealed.split_at(KEY_ID_LEN);
        let (enc_bytes, ciphertext) = rest.split_at(ENC_LEN);
        // Not secret: the key id is public, and a wrong one is answered the same way.
        if key_id != self.public.key_id().0 {
            return Err(SealError::UnknownKey);
        }
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc_bytes)
            .map_err(|_| SealError::BadEncapsulation)?;
        let mut context = hpke::setup_receiver::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.secret,
            &enc,
            &route.info(),
        )
        .map_err(|_| SealError::BadEncapsulation)?;
        let inner = context
            .open(ciphertext, key_id)
            .map_err(|_| SealError::Unauthentic)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        context
            .export(RESPONSE_EXPORT_LABEL, secret.as_mut())
            .map_err(|_| SealError::Unauthentic)?;
        let mut enc = [0u8; ENC_LEN];
        enc.copy_from_slice(enc_bytes);
        Ok((Zeroizing::new(inner), ResponseSealer { route, secret, enc }))
    }
}

impl fmt::Debug for SealingSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingSecretKey")
            .field("public_key", &self.public)
            .field("seed", &"<redacted>")
            .finish()
    }
}

/// The node's X25519 sealing public key.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SealingPublicKey(pub [u8; 32]);

impl SealingPublicKey {
    /// The key's id, carried in front of every sealed request: the first 8 bytes of
    /// SHA-256(label ‖ key).
    pub fn key_id(&self) -> crate::signing::KeyId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(KEY_ID_LABEL);
        ctx.update(&self.0);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&ctx.finish().as_ref()[..KEY_ID_LEN]);
        crate::signing::KeyId(id)
    }

    /// Seals `inner` for `route` to this key: the request bytes and the opener of its
    /// answer (keep it until the answer arrives; a retry seals afresh).
    ///
    /// # Errors
    /// [`SealError::BadEncapsulation`] when this is not a usable X25519 key.
    pub fn seal_request(
        &self,
        route: SealedRoute,
        inner: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<(Vec<u8>, ResponseOpener), SealError> {
        let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(&self.0)
            .map_err(|_| SealError::BadEncapsulation)?;
        let (enc, mut context) = hpke::setup_sender_with_rng::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeS::Base,
            &recipient,
            &route.info(),
            rng,
        )
        .map_err(|_| SealError::BadEncapsulation)?;
        let key_id = self.key_id();
        let ciphertext = context
            .seal(inner, &key_id.0)
            .map_err(|_| SealError::BadEncapsulation)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        context
            .export(RESPONSE_EXPORT_LABEL, secret.as_mut())
            .map_err(|_| SealError::BadEncapsulation)?;
        let mut enc_bytes = [0u8; ENC_LEN];
        enc_bytes.copy_from_slice(&enc.to_bytes());
        let mut sealed = Vec::with_capacity(REQUEST_OVERHEAD + inner.len());
        sealed.extend_from_slice(&key_id.0);
        sealed.extend_from_slice(&enc_bytes);
        sealed.extend_from_slice(&ciphertext);
        Ok((
            sealed,
            ResponseOpener {
                route,
                secret,
                enc: enc_bytes,
            },
        ))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for SealingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingPublicKey({})", self.to_hex())
    }
}

/// The AEAD key and nonce of one response (RFC 9458 §4.4): HKDF-SHA256 with
/// salt = enc ‖ response nonce over the exported secret.
fn response_key(secret: &[u8; 32], enc: &[u8; ENC_LEN], nonce: &[u8]) -> (LessSafeKey, Nonce) {
    let salt = [enc.as_slice(), nonce].concat();
    let mut key = Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 12];
    hkdf_sha256_expand_each(
        &salt,
        secret,
        [(b"key".as_slice(), key.as_mut_slice()), (b"nonce", &mut iv)],
    );
    let key = LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key.as_ref()).expect("32-byte ChaCha20 key"),
    );
    (key, Nonce::assume_unique_for_key(iv))
}

/// Seals the node's answer to one opened request. Each answer draws a fresh response nonce,
/// so answering a byte-identical retry again never reuses a key and nonce.
pub struct ResponseSealer {
    route: SealedRoute,
    secret: Zeroizing<[u8; 32]>,
    enc: [u8; ENC_LEN],
}

impl ResponseSealer {
    /// The route the request came on.
    pub fn route(&self) -> SealedRoute {
        self.route
    }

    /// Seals the answer `status` with `body`, padded to the route's fixed inner size.
    ///
    /// # Errors
    /// [`SealError::InnerTooLarge`] when `body` does not fit the route's inner response.
    pub fn seal(
        &self,
        status: u16,
        body: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, SealError> {
        let size = self.route.inner_response_size();
        let max = size - INNER_HEADER_LEN;
        let len = u16::try_from(body.len())
            .ok()
            .filter(|_| body.len() <= max)
            .ok_or(SealError::InnerTooLarge {
                got: body.len(),
                max,
            })?;
        let mut inner = Zeroizing::new(Vec::with_capacity(size + TAG_LEN));
        inner.extend_from_slice(&status.to_be_bytes());
        inner.extend_from_slice(&len.to_be_bytes());
        inner.extend_from_slice(body);
        inner.resize(size, 0);
        let mut nonce = [0u8; RESPONSE_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let (key, iv) = response_key(&self.secret, &self.enc, &nonce);
        let mut sealed = inner.to_vec();
        key.seal_in_place_append_tag(iv, Aad::empty(), &mut sealed)
            .map_err(|_| SealError::Unauthentic)?;
        Ok([nonce.as_slice(), &sealed].concat())
    }
}

impl fmt::Debug for ResponseSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSealer")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// Opens the node's sealed answer to one request the phone sealed.
#[derive(Clone)]
pub struct ResponseOpener {
    route: SealedRoute,
    secret: Zeroizing<[u8; 32]>,
    enc: [u8; ENC_LEN],
}

/// An answer the node sealed: the status and body it would have sent in clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InnerResponse {
    /// The HTTP status the node chose (`200`, or the error's status).
    pub status: u16,
    /// The body: the padded JSON answer, or the JSON error.
    pub body: Vec<u8>,
}

impl ResponseOpener {
    /// The route the request was sealed for.
    pub fn route(&self) -> SealedRoute {
        self.route
    }

    /// Opens a sealed answer.
    ///
    /// # Errors
    /// [`SealError`] when it is short, altered, or not an answer to this request.
    pub fn open(&self, sealed: &[u8]) -> Result<InnerResponse, SealError> {
        let min = RESPONSE_OVERHEAD + INNER_HEADER_LEN;
        if sealed.len() < min {
            return Err(SealError::Truncated {
                got: sealed.len(),
                min,
            });
        }
        let (nonce, ciphertext) = sealed.split_at(RESPONSE_NONCE_LEN);
        let (key, iv) = response_key(&self.secret, &self.enc, nonce);
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let inner = key
            .open_in_place(iv, Aad::empty(), &mut buffer)
            .map_err(|_| SealError::Unauthentic)?;
        let status = u16::from_be_bytes([inner[0], inner[1]]);
        let len = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
        let body = inner
            .get(INNER_HEADER_LEN..INNER_HEADER_LEN + len)
            .ok_or(SealError::MalformedInner)?;
        Ok(InnerResponse {
            status,
            body: body.to_vec(),
        })
    }
}

impl fmt::Debug for ResponseOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseOpener")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// The node's sealing key, signed by its batch key: what `GET /v1/sealing-key` serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealingKeyAnnouncement {
    /// The X25519 key, 64 hex characters.
    pub public_key: String,
    /// The batch key that signed it, 64 hex characters.
    pub signer: String,
    /// Ed25519 over label ‖ key, 128 hex characters.
    pub signature: String,
}

/// Why an announced sealing key is not trusted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AnnouncementError {
    /// A field is not hex of its length.
    #[error("the sealing key announcement is malformed")]
    Malformed,
    /// Signed by a key the phone does not trust for batches.
    #[error("the sealing key is signed by an untrusted node key")]
    UntrustedSigner,
    /// The signature does not verify.
    #[error("the sealing key's signature does not verify")]
    BadSignature,
}

impl SealingKeyAnnouncement {
    /// Signs `key` with the node's batch key `signer`.
    pub fn sign(key: &SealingPublicKey, signer: &Ed25519SigningKey) -> Self {
        let signature = signer.sign(ANNOUNCEMENT_LABEL, &key.0);
        SealingKeyAnnouncement {
            public_key: key.to_hex(),
            signer: signer.public_key().to_hex(),
            signature: hex::encode(signature.0),
        }
    }

    /// The key, if its signer is in `trusted` and the signature verifies.
    ///
    /// # Errors
    /// [`AnnouncementError`].
    pub fn verify(&self, trusted: &TrustedKeys) -> Result<SealingPublicKey, AnnouncementError> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.public_key, &mut key)
            .map_err(|_| AnnouncementError::Malformed)?;
        let signer =
            Ed25519PublicKey::from_hex(&self.signer).ok_or(AnnouncementError::Malformed)?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut signature)
            .map_err(|_| AnnouncementError::Malformed)?;
        if !trusted.contains(&signer) {
            return Err(AnnouncementError::UntrustedSigner);
        }
        if !signer.verify(ANNOUNCEMENT_LABEL, &key, &Signature(signature)) {
            return Err(AnnouncementError::BadSignature);
        }
        Ok(SealingPublicKey(key))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn node_key() -> SealingSecretKey {
        SealingSecretKey::from_seed(&[7; 32])
    }

    #[test]
    fn a_sealed_request_opens_at_the_node_and_its_answer_at_the_phone() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let key = node_key();
        let (sealed, opener) = key
            .public_key()
            .seal_request(SealedRoute::Verify, b"inner body", &mut rng)
            .unwrap();
        assert_eq!(sealed.len(), REQUEST_OVERHEAD + b"inner body".len());
        let (inner, sealer) = key.open_request(SealedRoute::Verify, &sealed).unwrap();
        assert_eq!(inner.as_slice(), b"inner body");
        let answer = sealer.seal(409, b"{\"error\":\"x\"}", &mut rng).unwrap();
        assert_eq!(answer.len(), SealedRoute::Verify.sealed_response_size());
        let opened = opener.open(&answer).unwrap();
        assert_eq!(opened.status, 409);
        assert_eq!(opened.body, b"{\"error\":\"x\"}");
    }

    #[test]
    fn answers_of_every_status_and_length_have_one_size() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let key = node_key();
        for route in [SealedRoute::Verify, SealedRoute::Upload] {
            let (sealed, _) = key
                .public_key()
                .seal_request(route, b"x", &mut rng)
                .unwrap();
            let (_, sealer) = key.open_request(route, &sealed).unwrap();
            let sizes: Vec<usize> = [(200u16, 0usize), (400, 88), (429, 83), (200, 300)]
                .iter()
                .map(|&(status, len)| sealer.seal(status, &vec![b' '; len], &mut rng).unwrap())
                .map(|a| a.len())
                .collect();
            assert!(sizes.iter().all(|s| *s == route.sealed_response_size()));
        }
    }

    #[test]
    fn a_request_sealed_for_one_route_does_not_open_on_another() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let key = node_key();
        let (sealed, _) = key
            .public_key()
            .seal_request(SealedRoute::Upload, b"body", &mut rng)
            .unwrap();
        assert_eq!(
            key.open_request(SealedRoute::Verify, &sealed).unwrap_err(),
            SealError::Unauthentic
        );
    }

    #[test]
    fn a_request_to_another_key_is_an_unknown_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let other = SealingSecretKey::from_seed(&[8; 32]);
        let (sealed, _) = other
            .public_key()
            .seal_request(SealedRoute::Upload, b"body", &mut rng)
            .unwrap();
        assert_eq!(
            node_key()
                .open_request(SealedRoute::Upload, &sealed)
                .unwrap_err(),
            SealError::UnknownKey
        );
    }

    #[test]
    fn an_answer_to_another_request_does_not_open() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let key = node_key();
        let (first, _) = key
            .public_key()
            .seal_request(SealedRoute::Upload, b"a", &mut rng)
            .unwrap();
        let (_, second_opener) = key
            .public_key()
            .seal_request(SealedRoute::Upload, b"b", &mut rng)
            .unwrap();
        let (_, sealer) = key.open_request(SealedRoute::Upload, &first).unwrap();
        let answer = sealer.seal(200, b"ok", &mut rng).unwrap();
        assert_eq!(
            second_opener.open(&answer).unwrap_err(),
            SealError::Unauthentic
        );
    }

    #[test]
    fn an_oversized_inner_answer_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let key = node_key();
        let (sealed, _) = key
            .public_key()
            .seal_request(SealedRoute::Upload, b"a", &mut rng)
            .unwrap();
        let (_, sealer) = key.open_request(SealedRoute::Upload, &sealed).unwrap();
        let max = SealedRoute::Upload.inner_response_size() - 4;
        assert!(sealer.seal(200, &vec![0; max], &mut rng).is_ok());
        assert_eq!(
            sealer.seal(200, &vec![0; max + 1], &mut rng).unwrap_err(),
            SealError::InnerTooLarge { got: max + 1, max }
        );
    }

    #[test]
    fn the_announcement_verifies_only_under_a_trusted_batch_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let batch = Ed25519SigningKey::generate(&mut rng);
        let other = Ed25519SigningKey::generate(&mut rng);
        let key = node_key().public_key();
        let announcement = SealingKeyAnnouncement::sign(&key, &batch);
        let trusted = TrustedKeys::new().with(batch.public_key());
        assert_eq!(announcement.verify(&trusted), Ok(key));
        assert_eq!(
            announcement.verify(&TrustedKeys::new().with(other.public_key())),
            Err(AnnouncementError::UntrustedSigner)
        );
        let mut forged = announcement.clone();
        forged.public_key = SealingSecretKey::from_seed(&[9; 32]).public_key().to_hex();
        assert_eq!(
            forged.verify(&trusted),
            Err(AnnouncementError::BadSignature)
        );
        let mut garbled = announcement;
        garbled.signature.pop();
        assert_eq!(garbled.verify(&trusted), Err(AnnouncementError::Malformed));
    }

    /// RFC 9180 A.2.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305): the
    /// recipient key derived from `ikmR` is the RFC's `pkRm`.
    #[test]
    fn key_derivation_matches_rfc_9180() {
        let mut ikm_r = [0u8; 32];
        hex::decode_to_slice(
            "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df",
            &mut ikm_r,
        )
        .unwrap();
        assert_eq!(
            SealingSecretKey::from_seed(&ikm_r).public_key().to_hex(),
            "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a"
        );
    }

    /// Frozen: the key id, and a sealed request and answer byte for byte (seeded RNG). A
    /// change here breaks every phone in the field.
    #[test]
    fn frozen_vectors() {
        let key = node_key();
        assert_eq!(key.public_key().key_id().to_string(), FROZEN_KEY_ID);
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let (sealed, _) = key
            .public_key()
            .seal_request(SealedRoute::Verify, b"ephemera", &mut rng)
            .unwrap();
        assert_eq!(hex::encode(&sealed), FROZEN_REQUEST);
        let (_, sealer) = key.open_request(SealedRoute::Verify, &sealed).unwrap();
        let answer = sealer.seal(200, b"ok", &mut rng).unwrap();
        let digest = digest::digest(&digest::SHA256, &answer);
        assert_eq!(hex::encode(digest.as_ref()), FROZEN_ANSWER_SHA256);
    }

    const FROZEN_KEY_ID: &str = "b96ba9421d68fdbe";
    const FROZEN_REQUEST: &str = "b96ba9421d68fdbe9856164ecd95903b19f4fac76f1ee6beb23899bc337f0083b4d6b7e88975e0411800fcd765609ecf5e5f7b0e2f5f2a2addb95f054978cc0c";
    const FROZEN_ANSWER_SHA256: &str =
        "f17e544136b9f296a789a18ba8df9578608e5d8ace01707f0215d9a232293608";

    proptest! {
        /// Any bytes at the node: opened or refused with an error, never a panic.
        #[test]
        fn any_bytes_open_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let key = node_key();
            let mut with_id = key.public_key().key_id().0.to_vec();
            with_id.extend_from_slice(&bytes);
            for candidate in [bytes.as_slice(), with_id.as_slice()] {
                let _ = key.open_request(SealedRoute::Upload, candidate);
            }
        }

        /// Any bytes at the phone: opened or refused, never a panic.
        #[test]
        fn any_answer_bytes_open_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut rng = ChaCha20Rng::seed_from_u64(8);
            let (_, opener) = node_key()
                .public_key()
                .seal_request(SealedRoute::Verify, b"x", &mut rng)
                .unwrap();
            prop_assert!(opener.open(&bytes).is_err());
        }
    }
}
