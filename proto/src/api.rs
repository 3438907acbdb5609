//! JSON bodies of the node's HTTP API that phones send and receive.
//!
//! Requests a network observer could use to tell a real positive from a decoy are padded to
//! fixed sizes: every verify request is [`VERIFY_REQUEST_SIZE`] bytes and every verify
//! response [`VERIFY_RESPONSE_SIZE`] bytes, real or decoy. Errors are
//! `{"error": "<kebab-code>", "message": "…"}` ([`ErrorBody`]).

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::auth::{ReportHmac, SignedCertificate, UploadCode};
use crate::error::DecodeError;
use crate::wire;

/// Exact size of a serialized [`VerifyRequest`].
pub const VERIFY_REQUEST_SIZE: usize = 512;
/// Exact size of a serialized [`VerifyResponse`].
pub const VERIFY_RESPONSE_SIZE: usize = 1024;
/// Exact size of a serialized [`UploadResponse`].
pub const UPLOAD_RESPONSE_SIZE: usize = 512;

/// `POST /v1/verify`: exchange a one-time code and a report HMAC for a certificate.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRequest {
    /// The upload code as the person typed it.
    pub code: String,
    /// HMAC-SHA256 of the report, 64 hex characters.
    pub report_hmac: String,
    /// True for a decoy the authority answers with a fake certificate and forgets.
    pub decoy: bool,
    /// Spaces up to [`VERIFY_REQUEST_SIZE`].
    pub padding: String,
}

impl VerifyRequest {
    /// A real request.
    pub fn real(code: &UploadCode, report_hmac: &ReportHmac) -> Self {
        VerifyRequest {
            code: code.reveal(),
            report_hmac: hex::encode(report_hmac.0),
            decoy: false,
            padding: String::new(),
        }
    }

    /// A decoy drawn like a real request, field by field: a random code of the code space
    /// and a random HMAC (`decoy` is true; sealed, nobody but the node reads it).
    pub fn decoy(rng: &mut impl CryptoRng) -> Self {
        let mut hmac = [0u8; 32];
        rng.fill_bytes(&mut hmac);
        VerifyRequest {
            code: UploadCode::generate(rng).reveal(),
            report_hmac: hex::encode(hmac),
            decoy: true,
            padding: String::new(),
        }
    }

    /// The HMAC, if it is 64 hex characters.
    pub fn parsed_hmac(&self) -> Option<ReportHmac> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&self.report_hmac, &mut bytes).ok()?;
        Some(ReportHmac(bytes))
    }

    /// The JSON body, padded to exactly [`VERIFY_REQUEST_SIZE`] bytes.
    pub fn to_padded_json(&self) -> Vec<u8> {
        pad_json(self, |v, p| v.padding = p, VERIFY_REQUEST_SIZE)
    }
}

/// The code is a secret until spent: zeroised when the request is dropped.
impl Drop for VerifyRequest {
    fn drop(&mut self) {
        self.code.zeroize();
    }
}

impl ZeroizeOnDrop for VerifyRequest {}

impl fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("code", &"<redacted>")
            .field("decoy", &self.decoy)
            .finish_non_exhaustive()
    }
}

/// The answer to a [`VerifyRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// Hex of the certificate's wire bytes (random bytes of the same length for a decoy).
    pub certificate: String,
    /// Spaces up to [`VERIFY_RESPONSE_SIZE`].
    pub padding: String,
}

impl VerifyResponse {
    /// Wraps a real certificate.
    pub fn new(certificate: &SignedCertificate) -> Self {
        VerifyResponse {
            certificate: hex::encode(wire::encode(certificate)),
            padding: String::new(),
        }
    }

    /// A decoy answer: random bytes as long as a typical certificate.
    pub fn decoy(typical_len: usize, rng: &mut impl CryptoRng) -> Self {
        let mut bytes = vec![0u8; typical_len];
        rng.fill_bytes(&mut bytes);
        VerifyResponse {
            certificate: hex::encode(bytes),
            padding: String::new(),
        }
    }

    /// Decodes the certificate.
    ///
    /// # Errors
    /// [`DecodeError`] when it is not hex or not a certificate.
    pub fn certificate(&self) -> Result<SignedCertificate, DecodeError> {
        let bytes = hex::decode(&self.certificate).map_err(|_| DecodeError::Malformed)?;
        wire::decode(&bytes)
    }

    /// The JSON body, padded to exactly [`VERIFY_RESPONSE_SIZE`] bytes.
    pub fn to_padded_json(&self) -> Vec<u8> {
        pad_json(self, |v, p| v.padding = p, VERIFY_RESPONSE_SIZE)
    }
}

/// The answer to an upload (real, revision or decoy: all look alike). `Debug` does not
/// show the revision token (a bearer secret for version 1 uploads).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    /// Hex of an opaque token that lets a version 1 phone revise the report later (random
    /// for a version 1 decoy); empty for protocol version 2, whose revisions are signed
    /// with the phone's revision key (`docs/PROTOCOL.md` §5.4).
    pub revision_token: String,
    /// Spaces up to [`UPLOAD_RESPONSE_SIZE`].
    pub padding: String,
}

impl fmt::Debug for UploadResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadResponse")
            .field("revision_token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl UploadResponse {
    /// The JSON body, padded to exactly [`UPLOAD_RESPONSE_SIZE`] bytes.
    pub fn to_padded_json(&self) -> Vec<u8> {
        pad_json(self, |v, p| v.padding = p, UPLOAD_RESPONSE_SIZE)
    }
}

/// Every error answer of the API: `{"error": "<kebab-code>", "message": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable kebab-case code, e.g. `certificate-expired`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
}

/// Serializes `value` with spaces in its padding field so the body is `size` bytes (or
/// larger, if the content alone exceeds it).
pub(crate) fn pad_json<T: Serialize + Clone>(
    value: &T,
    set_padding: fn(&mut T, String),
    size: usize,
) -> Vec<u8> {
    let mut padded = value.clone();
    set_padding(&mut padded, String::new());
    let base = serde_json::to_vec(&padded).expect("plain JSON").len();
    if base < size {
        set_padding(&mut padded, " ".repeat(size - base));
    }
    serde_json::to_vec(&padded).expect("plain JSON")
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::auth::{AuthoritySigningKey, CertificateRequest};
    use crate::report::ReportType;
    use crate::time::UnixTime;

    #[test]
    fn debug_shows_no_code_or_revision_token() {
        fn zeroised_on_drop<T: ZeroizeOnDrop>() {}
        zeroised_on_drop::<VerifyRequest>();
        let code = UploadCode::parse("7K3M-9QWX-ZT4B-2HRC").unwrap();
        let request = VerifyRequest::real(&code, &ReportHmac([1; 32]));
        let shown = format!("{request:?}");
        assert!(
            !shown.contains(&request.code) && !shown.contains("7K3M"),
            "{shown}"
        );
        let answer = UploadResponse {
            revision_token: "5e5e5e5e5e5e5e5e".into(),
            padding: String::new(),
        };
        let shown = format!("{answer:?}");
        assert!(!shown.contains("5e5e"), "{shown}");
    }

    #[test]
    fn real_and_decoy_verify_requests_are_the_same_size() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let code = UploadCode::generate(&mut rng);
        let real = VerifyRequest::real(&code, &ReportHmac([7; 32])).to_padded_json();
        let decoy = VerifyRequest::decoy(&mut rng);
        // Drawn like a real request: a parseable code and a random HMAC.
        assert!(UploadCode::parse(&decoy.code).is_ok());
        assert_ne!(decoy.parsed_hmac(), Some(ReportHmac([0; 32])));
        assert_ne!(
            VerifyRequest::decoy(&mut rng).report_hmac,
            decoy.report_hmac
        );
        let decoy = decoy.to_padded_json();
        assert_eq!(real.len(), VERIFY_REQUEST_SIZE);
        assert_eq!(decoy.len(), VERIFY_REQUEST_SIZE);
        let back: VerifyRequest = serde_json::from_slice(&real).unwrap();
        assert_eq!(back.parsed_hmac(), Some(ReportHmac([7; 32])));
        assert!(!format!("{back:?}").contains(&code.reveal()));
    }

    #[test]
    fn real_and_decoy_verify_responses_are_the_same_size() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let authority = AuthoritySigningKey::generate(&mut rng);
        let request = CertificateRequest {
            report_hmac: ReportHmac([1; 32]),
            test_type: ReportType::ConfirmedTest,
            symptom_onset: None,
        };
        let cert = authority.issue(&request, UnixTime(1_700_000_000), 3600, &mut rng);
        let real = VerifyResponse::new(&cert);
        let decoy = VerifyResponse::decoy(wire::encode(&cert).len(), &mut rng);
        assert_eq!(real.to_padded_json().len(), VERIFY_RESPONSE_SIZE);
        assert_eq!(decoy.to_padded_json().len(), VERIFY_RESPONSE_SIZE);
        assert_eq!(real.certificate().unwrap(), cert);
        assert!(decoy.certificate().is_err());
    }
}
