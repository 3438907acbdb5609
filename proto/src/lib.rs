//! The Ephemera contact-tracing protocol: pure, with no I/O, clock or global RNG.
//!
//! Phones broadcast rotating ephemeral tokens over Bluetooth and remember what they hear.
//! Someone who tests positive, with a health authority's authorisation, uploads only their
//! own tokens to a node; nodes publish them in signed batches and federate; every phone
//! matches locally. This crate holds every derivation and encoding that phones and nodes
//! must agree on. Time and randomness are arguments, so tests and the simulator can replay
//! any run; the specification is `docs/PROTOCOL.md`.
//!
//! Two token schemes sit behind one interface ([`scheme`]):
//! - [`gaen`] is exactly Google/Apple Exposure Notification Cryptography v1.2, for
//!   interoperability: a daily Temporary Exposure Key yields every interval's Rolling
//!   Proximity Identifier. A published key links a day of broadcasts.
//! - [`pet`] (private encounter tokens, the default) broadcasts an ephemeral X25519 key per
//!   interval; two phones that heard each other derive two role tokens from their shared
//!   secret. A positive phone publishes its own-role tokens, which match nothing a
//!   broadcast sniffer recorded.
//!
//! [`venue`] adds venue check-in (CrowdNotifier's identity-based encryption over
//! BLS12-381): phones keep encrypted visits, and the venue and the health authority
//! together release per-hour keys that only the phones that were there can use.
//!
//! ```text
//!  phone (positive)               authority / node                    phone (other)
//!  ReportContents ──HMAC──▶ verify(code, hmac) ─▶ SignedCertificate
//!  SignedUpload{contents, cert, hmac_key} ──▶ SignedUpload::verify ─▶ VerifiedUpload
//!                                           BatchContents::sign ─▶ SignedBatch ──▶ BatchStream
//!                                                                               match locally
//! ```
//!
//! The whole flow for `pet`, from two phones meeting to the exposed one finding the token:
//!
//! ```
//! use ephemera_proto::auth::{AuthoritySigningKey, CertificateRequest, ExpiryPolicy, ReportHmacKey, TrustedAuthorities};
//! use ephemera_proto::batch::{BatchContents, BatchId, NodeSigningKey, SignedBatch, TrustedNodes};
//! use ephemera_proto::pet::{encounter_tokens, DailySecret};
//! use ephemera_proto::upload::SignedUpload;
//! use ephemera_proto::{PublishedToken, ReportContents, ReportLimits, ReportType, UnixTime};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! let mut rng = ChaCha20Rng::seed_from_u64(7);
//! let now = UnixTime(1_700_000_000);
//! let (alice, bob) = (DailySecret::generate(&mut rng), DailySecret::generate(&mut rng));
//! let (a, b) = (alice.ephemeral_key_pair(now.interval()), bob.ephemeral_key_pair(now.interval()));
//! // Each phone heard the other's public key and derives the encounter's tokens.
//! let at_alice = encounter_tokens(&a, &b.public()).unwrap();
//! let at_bob = encounter_tokens(&b, &a.public()).unwrap();
//!
//! // Alice tests positive: her report holds her own-role token; the authority certifies
//! // its HMAC without seeing it.
//! let contents = ReportContents::Pet(vec![PublishedToken { day: now.day(), token: at_alice.own }]);
//! let hmac_key = ReportHmacKey::generate(&mut rng);
//! let authority = AuthoritySigningKey::generate(&mut rng);
//! let request = CertificateRequest {
//!     report_hmac: hmac_key.authenticate(&contents),
//!     test_type: ReportType::ConfirmedTest,
//!     symptom_onset: None,
//! };
//! let certificate = authority.issue(&request, now, 3600, &mut rng);
//!
//! // The node verifies the upload and publishes it in a signed batch.
//! let trusted = TrustedAuthorities::new().with(authority.public_key());
//! let upload = SignedUpload { contents, certificate, hmac_key };
//! let verified = upload.verify(&trusted, now, ExpiryPolicy::FirstUpload, &ReportLimits::default()).unwrap();
//! let node = NodeSigningKey::generate(&mut rng);
//! let ReportContents::Pet(tokens) = verified.contents().clone() else { unreachable!() };
//! let mut batch = BatchContents { sequence: 1, created_at: now, previous: Some(BatchId::NONE), diagnosis_keys: vec![], tokens };
//! batch.pad_with_decoys(100, now, 14, &mut rng);
//! let signed = batch.sign(&node);
//!
//! // Bob verifies the batch and finds his peer-role token.
//! let (_, published) = SignedBatch::verify(signed.bytes(), &TrustedNodes::new().with(node.public_key())).unwrap();
//! assert!(published.tokens.iter().any(|t| t.token == at_bob.peer));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod batch_log;
pub mod error;
pub mod federated;
pub mod filter;
pub mod gaen;
mod hkdf;
pub mod instance;
pub mod matching;
pub mod pet;
pub mod report;
pub mod revision;
pub mod rollover;
pub mod scheme;
pub mod sealed;
pub mod signing;
pub mod sunset;
pub mod sync;
pub mod time;
pub mod token;
pub mod upload;
pub mod venue;
pub mod wire;

pub use error::{
    BatchError, CertificateError, CodeError, DecodeError, Error, PetError, UploadError,
    ValidationError,
};
pub use report::{PublishedToken, ReportContents, ReportLimits, ReportType, SchemeKind};
pub use time::{DayNumber, INTERVALS_PER_DAY, IntervalNumber, UnixTime};
