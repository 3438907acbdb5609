//! Upload authorisation: one-time codes, report HMACs and authority certificates.
//!
//! A case worker issues an [`UploadCode`] (the node stores only its [`CodeHash`]). The phone
//! picks a [`ReportHmacKey`], sends (code, [`ReportHmac`]) to the authority, and receives a
//! [`SignedCertificate`] over the HMAC: the authority never sees the keys or tokens it
//! authorises. The phone then uploads report, certificate and HMAC key to any node.

mod certificate;
mod code;
mod hmac;

pub use certificate::{
    AuthoritySigningKey, Certificate, CertificateId, CertificateRequest, ExpiryPolicy,
    SignedCertificate, TrustedAuthorities,
};
pub use code::{CODE_LENGTH, CodeHash, CodePepper, UploadCode};
pub use hmac::{ReportHmac, ReportHmacKey};
