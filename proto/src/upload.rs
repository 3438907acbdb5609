//! Uploads: what a phone sends a node, and what a node accepts, stores and relays.

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::auth::{
    CertificateId, ExpiryPolicy, ReportHmacKey, SignedCertificate, TrustedAuthorities,
};
use crate::error::UploadError;
use crate::gaen::DiagnosisKey;
use crate::report::{ReportContents, ReportLimits};
use crate::revision::{Binding, RevisionKey, RevisionSecret};
use crate::signing::Signature;
use crate::time::UnixTime;
use crate::token::TokenUpload;
use crate::wire::{self, WireMessage};

/// GAEN's matching tolerance around a key's validity window: 2 hours, in intervals.
pub const KEY_TOLERANCE_INTERVALS: u32 = 12;
/// Smallest padded upload request, in bytes; sizes above it are rounded up to a power of two.
pub const MIN_UPLOAD_REQUEST_SIZE: usize = 4096;

/// A report with the certificate that authorises it and the HMAC key that binds them.
///
/// This is what a phone uploads (inside an [`UploadRequest`]) and what nodes gossip to each
/// other: every receiver re-verifies it with [`SignedUpload::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUpload {
    /// The keys or tokens.
    pub contents: ReportContents,
    /// The authority's certificate over the report HMAC.
    pub certificate: SignedCertificate,
    /// The key the HMAC was made with, revealed only now.
    pub hmac_key: ReportHmacKey,
}

impl WireMessage for SignedUpload {
    const KIND: u8 = wire::kind::SIGNED_UPLOAD;
    const MAX_SIZE: usize = 1 << 20;
}

/// An upload that passed every check; the only form a node stores or relays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedUpload {
    upload: SignedUpload,
    id: UploadId,
    binding: Binding,
}

/// SHA-256 of an upload's canonical wire bytes: its content address for deduplication.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UploadId(pub [u8; 32]);

impl SignedUpload {
    /// Verifies certificate, HMAC binding and report rules at `now`, and returns the upload
    /// in canonical form with the certificate's facts applied to `gaen` keys (report type,
    /// days since onset), as the GAEN reference server does.
    ///
    /// Single use of the certificate id is the caller's to enforce (it needs state). This
    /// is a version 1 upload's check: the HMAC covers the entries only
    /// ([`Binding::Unbound`]); see [`Self::verify_bound`].
    ///
    /// # Errors
    /// The first failed check, as [`UploadError`].
    pub fn verify(
        self,
        trusted: &TrustedAuthorities,
        now: UnixTime,
        policy: ExpiryPolicy,
        limits: &ReportLimits,
    ) -> Result<VerifiedUpload, UploadError> {
        self.verify_bound(Binding::Unbound, trusted, now, policy, limits)
    }

    /// [`Self::verify`] for an upload bound to a revision key (`docs/PROTOCOL.md` §4.2,
    /// §5.4): the certified HMAC must cover `binding`'s key and role, and a revision's
    /// signature must verify under its key. Whether that key is the one the revised upload
    /// carried is the caller's to check (it needs state).
    ///
    /// # Errors
    /// The first failed check, as [`UploadError`]; a revision's signature that does not
    /// verify is [`UploadError::RevisionSignature`].
    pub fn verify_bound(
        self,
        binding: Binding,
        trusted: &TrustedAuthorities,
        now: UnixTime,
        policy: ExpiryPolicy,
        limits: &ReportLimits,
    ) -> Result<VerifiedUpload, UploadError> {
        let certificate = self.certificate.verify(trusted, now, policy)?.clone();
        self.certificate
            .check_report(&self.contents, &self.hmac_key, binding.hmac())?;
        self.check_rules(certificate, binding, now, policy, limits)
    }

    /// What [`Self::verify_bound`] checks once the certificate and its HMAC hold: the
    /// revision's signature, the report rules, the certificate's facts on `gaen` keys, the
    /// canonical form. Also the path of an upload whose certificate the caller has just made
    /// itself ([`TokenUpload::certify_checked`]), which need not check its own signature.
    pub(crate) fn check_rules(
        mut self,
        certificate: crate::auth::Certificate,
        binding: Binding,
        now: UnixTime,
        policy: ExpiryPolicy,
        limits: &ReportLimits,
    ) -> Result<VerifiedUpload, UploadError> {
        if !binding.signature_holds(&self.certificate) {
            return Err(UploadError::RevisionSignature);
        }
        match policy {
            ExpiryPolicy::FirstUpload => self.contents.validate(now, limits)?,
            // Judge the entries as of when the first node could have accepted them; the
            // certificate's age is already bounded by retention above.
            ExpiryPolicy::Relayed { .. } => self.contents.validate_between(
                certificate.issued_at,
                now.min(certificate.expires_at),
                limits,
            )?,
        }
        if let ReportContents::Gaen(keys) = &mut self.contents {
            for key in keys.iter_mut() {
                key.report_type = certificate.test_type;
                key.days_since_onset = certificate.symptom_onset.and_then(|onset| {
                    let days = i64::from(key.rolling_start.day().0) - i64::from(onset.0);
                    i8::try_from(days).ok().filter(|d| (-14..=14).contains(d))
                });
            }
        }
        self.contents.canonicalize();
        let id = self.content_id();
        Ok(VerifiedUpload {
            upload: self,
            id,
            binding,
        })
    }
}

impl SignedUpload {
    /// SHA-256 of this upload's wire frame: its [`UploadId`] when the encoding is canonical
    /// (as [`SignedUpload::verify`] leaves it).
    pub fn content_id(&self) -> UploadId {
        let mut id = [0u8; 32];
        id.copy_from_slice(digest::digest(&digest::SHA256, &wire::encode(self)).as_ref());
        UploadId(id)
    }
}

impl VerifiedUpload {
    /// The content address.
    pub fn id(&self) -> UploadId {
        self.id
    }

    /// The verified upload.
    pub fn upload(&self) -> &SignedUpload {
        &self.upload
    }

    /// Its revision key and, for a revision, the proof (kept and relayed with it).
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// The canonical contents.
    pub fn contents(&self) -> &ReportContents {
        &self.upload.contents
    }

    /// Gives back the inner upload, e.g. to relay it.
    pub fn into_inner(self) -> SignedUpload {
        self.upload
    }
}

/// The first moment a diagnosis key may be published: the end of its validity window plus
/// the 2-hour tolerance, so a key is never released while phones still broadcast with it.
pub fn key_publishable_at(key: &DiagnosisKey) -> UnixTime {
    key.rolling_end().plus(KEY_TOLERANCE_INTERVALS).start()
}

/// The body of an upload request: a real upload, a revision, or a decoy the node discards.
///
/// Protocol version 2 (`docs/PROTOCOL.md` §5.4) binds revisions to a key only the uploading
/// phone holds: [`UploadBody::Real`] and [`UploadBody::Revision`], framed with version byte
/// 2. The version 1 variants stay decodable, framed with version byte 1, for the
/// transition: a frame whose variant is of the other version is refused
/// ([`crate::DecodeError::NotInVersion`]). Postcard numbers variants by position, so the
/// version 1 variants keep their places (0, 1, 2).
///
/// `Debug` does not show a version 1 revision token (a bearer secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadBody {
    /// Version 1 (transition): a first upload without a revision key; the node answers it
    /// with a revision token that anyone who replays the bytes gets too.
    RealV1(SignedUpload),
    /// Version 1 (transition): a revision of a version 1 upload by the same phone, with
    /// the opaque token the node handed back at the first upload.
    RevisionV1 {
        /// The report under its new certificate.
        upload: SignedUpload,
        /// The node's revision token from the first upload's response.
        revision_token: Vec<u8>,
    },
    /// A decoy, sent on a random schedule so real uploads do not stand out (both versions;
    /// this build frames it with version 2).
    Decoy,
    /// A first upload, with the public key of the secret that alone may revise it.
    Real {
        /// The report and its certificate.
        upload: SignedUpload,
        /// The public half of the phone's [`crate::revision::RevisionSecret`].
        revision_key: RevisionKey,
    },
    /// A revision (likely → confirmed, or revoked): the same keys or tokens under a new
    /// certificate, signed with the secret whose key the original upload carried.
    Revision {
        /// The report under its new certificate.
        upload: SignedUpload,
        /// The certificate id of the upload it revises.
        revises: CertificateId,
        /// [`crate::revision::RevisionSecret::sign`] over `revises` and the new certificate.
        signature: Signature,
    },
    /// A first upload authorised by a blind token (`docs/PROTOCOL.md` §4.4), with the
    /// public key of the secret that alone may revise it (the token's commitment covers it).
    Tokened {
        /// The report and its token.
        upload: TokenUpload,
        /// The public half of the phone's [`crate::revision::RevisionSecret`].
        revision_key: RevisionKey,
    },
    /// A revision authorised by a blind token (of the new class): the same keys or tokens,
    /// signed with the secret whose key the original upload carried.
    TokenRevision {
        /// The report and its new token.
        upload: TokenUpload,
        /// The certificate id of the upload it revises (a token upload's is its token's
        /// id, [`TokenUpload::certificate_id`]).
        revises: CertificateId,
        /// [`crate::revision::RevisionSecret::sign_token_revision`] over `revises` and
        /// this upload's [`TokenUpload::certificate_id`].
        signature: Signature,
    },
}

impl std::fmt::Debug for UploadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadBody::RealV1(upload) => f.debug_tuple("RealV1").field(upload).finish(),
            UploadBody::RevisionV1 { upload, .. } => f
                .debug_struct("RevisionV1")
                .field("upload", upload)
                .field("revision_token", &"<redacted>")
                .finish(),
            UploadBody::Decoy => f.write_str("Decoy"),
            UploadBody::Real {
                upload,
                revision_key,
            } => f
                .debug_struct("Real")
                .field("upload", upload)
                .field("revision_key", revision_key)
                .finish(),
            UploadBody::Revision {
                upload,
                revises,
                signature,
            } => f
                .debug_struct("Revision")
                .field("upload", upload)
                .field("revises", revises)
                .field("signature", signature)
                .finish(),
            UploadBody::Tokened {
                upload,
                revision_key,
            } => f
                .debug_struct("Tokened")
                .field("upload", upload)
                .field("revision_key", revision_key)
                .finish(),
            UploadBody::TokenRevision {
                upload,
                revises,
                signature,
            } => f
                .debug_struct("TokenRevision")
                .field("upload", upload)
                .field("revises", revises)
                .field("signature", signature)
                .finish(),
        }
    }
}

impl UploadBody {
    /// The wire version this body belongs to (a decoy: the newest).
    pub fn version(&self) -> u8 {
        match self {
            UploadBody::RealV1(_) | UploadBody::RevisionV1 { .. } => wire::WIRE_VERSION,
            UploadBody::Decoy
            | UploadBody::Real { .. }
            | UploadBody::Revision { .. }
            | UploadBody::Tokened { .. }
            | UploadBody::TokenRevision { .. } => wire::WIRE_VERSION_2,
        }
    }

    /// Whether this is a revision, of either version.
    pub fn is_revision(&self) -> bool {
        matches!(
            self,
            UploadBody::Revision { .. }
                | UploadBody::RevisionV1 { .. }
                | UploadBody::TokenRevision { .. }
        )
    }
}

/// What a phone POSTs to `/v1/uploads`: a body padded to a fixed size bucket, so that a
/// network observer cannot tell real uploads from decoys, or guess the report's size
/// closer than a power of two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRequest {
    /// Real, revision or decoy.
    pub body: UploadBody,
    /// Zero bytes up to the bucket size.
    pub padding: Vec<u8>,
}

impl WireMessage for UploadRequest {
    const KIND: u8 = wire::kind::UPLOAD_REQUEST;
    const MAX_SIZE: usize = 2 << 20;
    const VERSIONS: &'static [u8] = &[wire::WIRE_VERSION, wire::WIRE_VERSION_2];

    fn wire_version(&self) -> u8 {
        self.body.version()
    }

    fn fits_version(&self, version: u8) -> bool {
        match self.body {
            // Decoys of phones of either version.
            UploadBody::Decoy => Self::VERSIONS.contains(&version),
            _ => version == self.body.version(),
        }
    }
}

/// The bucket an encoded request of `len` bytes is padded to.
pub fn padded_request_size(len: usize) -> usize {
    len.max(MIN_UPLOAD_REQUEST_SIZE).next_power_of_two()
}

impl UploadRequest {
    /// `body`, padded to its size bucket.
    pub fn padded(body: UploadBody) -> Self {
        let mut request = UploadRequest {
            body,
            padding: Vec::new(),
        };
        let target = padded_request_size(wire::encode(&request).len());
        request.pad_to(target);
        request
    }

    /// A first upload of `upload` that only the holder of `revision_key`'s secret may
    /// revise, padded to its size bucket.
    pub fn real(upload: SignedUpload, revision_key: RevisionKey) -> Self {
        Self::padded(UploadBody::Real {
            upload,
            revision_key,
        })
    }

    /// A version 1 first upload, as phones before protocol version 2 send it (accepted
    /// during the transition, §5.4; for tests and tools that speak version 1).
    pub fn real_v1(upload: SignedUpload) -> Self {
        Self::padded(UploadBody::RealV1(upload))
    }

    /// A revision of the upload made with certificate `revises`, signed with the secret
    /// whose key that upload carried, padded to its size bucket.
    pub fn revision(upload: SignedUpload, revises: CertificateId, secret: &RevisionSecret) -> Self {
        let signature = secret.sign(&revises, &upload.certificate);
        Self::padded(UploadBody::Revision {
            upload,
            revises,
            signature,
        })
    }

    /// A first upload authorised by a blind token that only the holder of `revision_key`'s
    /// secret may revise, padded to its size bucket.
    pub fn tokened(upload: TokenUpload, revision_key: RevisionKey) -> Self {
        Self::padded(UploadBody::Tokened {
            upload,
            revision_key,
        })
    }

    /// A revision authorised by a blind token of the upload certified as `revises`, signed
    /// with the secret whose key that upload carried, padded to its size bucket.
    pub fn token_revision(
        upload: TokenUpload,
        revises: CertificateId,
        secret: &RevisionSecret,
    ) -> Self {
        let signature = secret.sign_token_revision(&revises, &upload.certificate_id());
        Self::padded(UploadBody::TokenRevision {
            upload,
            revises,
            signature,
        })
    }

    /// A decoy padded to the bucket of `size`: pass the length of the real upload this
    /// phone would send now, so decoys and real uploads share one size distribution.
    pub fn decoy(size: usize) -> Self {
        let mut request = UploadRequest {
            body: UploadBody::Decoy,
            padding: Vec::new(),
        };
        request.pad_to(padded_request_size(size));
        request
    }

    /// Sets the padding so the encoded frame is exactly `target` bytes (or the nearest
    /// larger reachable size, at a varint boundary).
    fn pad_to(&mut self, target: usize) {
        self.padding.clear();
        let base = wire::encode(self).len();
        if base >= target {
            return;
        }
        // The padding's length prefix is a varint of 1..=5 bytes; the empty padding already
        // counted one.
        for extra in 0..5usize {
            let Some(len) = (target - base).checked_sub(extra) else {
                break;
            };
            if varint_len(len) == extra + 1 {
                self.padding = vec![0; len];
                return;
            }
        }
        self.padding = vec![0; target - base];
    }
}

fn varint_len(value: usize) -> usize {
    let bits = usize::BITS - value.leading_zeros();
    (bits.max(1)).div_ceil(7) as usize
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::auth::{AuthoritySigningKey, CertificateRequest};
    use crate::error::{CertificateError, DecodeError, ValidationError};
    use crate::gaen::TemporaryExposureKey;
    use crate::pet::EncounterToken;
    use crate::report::{PublishedToken, ReportType};
    use crate::time::{DayNumber, IntervalNumber};

    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn signed_upload(
        contents: ReportContents,
        onset: Option<DayNumber>,
    ) -> (SignedUpload, TrustedAuthorities) {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let authority = AuthoritySigningKey::generate(&mut rng);
        let hmac_key = ReportHmacKey::generate(&mut rng);
        let request = CertificateRequest {
            report_hmac: hmac_key.authenticate(&contents),
            test_type: ReportType::ConfirmedClinicalDiagnosis,
            symptom_onset: onset,
        };
        let certificate = authority.issue(&request, NOW, 3600, &mut rng);
        (
            SignedUpload {
                contents,
                certificate,
                hmac_key,
            },
            TrustedAuthorities::new().with(authority.public_key()),
        )
    }

    #[test]
    fn debug_shows_no_revision_token_or_hmac_key() {
        let (upload, _) = signed_upload(ReportContents::Pet(Vec::new()), None);
        let key_hex = hex::encode(upload.hmac_key.0);
        let body = UploadBody::RevisionV1 {
            upload,
            revision_token: vec![0xab; 16],
        };
        let shown = format!("{body:?}");
        assert!(!shown.contains("171, 171"), "{shown}");
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(!shown.contains(&key_hex), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    fn gaen_key(byte: u8, day: DayNumber) -> DiagnosisKey {
        DiagnosisKey {
            key: TemporaryExposureKey([byte; 16]),
            rolling_start: day.first_interval(),
            rolling_period: 144,
            report_type: ReportType::SelfReport,
            days_since_onset: None,
        }
    }

    #[test]
    fn verification_applies_certificate_facts_and_canonical_order() {
        let today = NOW.day();
        let contents = ReportContents::Gaen(vec![
            gaen_key(9, today.minus(1)),
            gaen_key(1, today.minus(3)),
        ]);
        let (upload, trusted) = signed_upload(contents, Some(today.minus(2)));
        let verified = upload
            .clone()
            .verify(
                &trusted,
                NOW,
                ExpiryPolicy::FirstUpload,
                &ReportLimits::default(),
            )
            .unwrap();
        let ReportContents::Gaen(keys) = verified.contents() else {
            panic!("scheme changed")
        };
        assert_eq!(keys[0].key.as_bytes(), &[1; 16], "sorted");
        assert!(
            keys.iter()
                .all(|k| k.report_type == ReportType::ConfirmedClinicalDiagnosis)
        );
        assert_eq!(keys[0].days_since_onset, Some(-1));
        assert_eq!(keys[1].days_since_onset, Some(1));

        // A relaying node re-verifies the canonical form and gets the same id.
        let relayed = verified
            .clone()
            .into_inner()
            .verify(
                &trusted,
                NOW.plus_seconds(7200),
                ExpiryPolicy::Relayed { retention_days: 14 },
                &ReportLimits::default(),
            )
            .unwrap();
        assert_eq!(relayed.id(), verified.id());
    }

    #[test]
    fn relayed_reports_are_judged_as_of_their_first_acceptance() {
        let today = NOW.day();
        // Valid on upload day with an entry at the very edge of retention...
        let edge = PublishedToken {
            day: today.minus(14),
            token: EncounterToken([4; 16]),
        };
        let (upload, trusted) = signed_upload(ReportContents::Pet(vec![edge]), None);
        let limits = ReportLimits::default();
        assert!(
            upload
                .clone()
                .verify(&trusted, NOW, ExpiryPolicy::FirstUpload, &limits)
                .is_ok()
        );
        // ...a node that receives it three days later still accepts it as relayed.
        let later = NOW.plus_seconds(3 * 86_400);
        let relayed = ExpiryPolicy::Relayed { retention_days: 14 };
        assert!(
            upload
                .clone()
                .verify(&trusted, later, relayed, &limits)
                .is_ok()
        );
        // A phone's own late upload is still refused (certificate expired).
        assert!(
            upload
                .verify(&trusted, later, ExpiryPolicy::FirstUpload, &limits)
                .is_err()
        );
    }

    #[test]
    fn tampering_is_caught() {
        let token = |b| PublishedToken {
            day: NOW.day(),
            token: EncounterToken([b; 16]),
        };
        let (upload, trusted) = signed_upload(ReportContents::Pet(vec![token(1), token(2)]), None);
        let limits = ReportLimits::default();
        let mut swapped = upload.clone();
        swapped.contents = ReportContents::Pet(vec![token(1), token(3)]);
        assert_eq!(
            swapped.verify(&trusted, NOW, ExpiryPolicy::FirstUpload, &limits),
            Err(UploadError::Certificate(CertificateError::HmacMismatch))
        );
        assert_eq!(
            upload.clone().verify(
                &TrustedAuthorities::new(),
                NOW,
                ExpiryPolicy::FirstUpload,
                &limits
            ),
            Err(UploadError::Certificate(
                CertificateError::UntrustedAuthority
            ))
        );
        let (dup, trusted) = signed_upload(ReportContents::Pet(vec![token(1), token(1)]), None);
        assert_eq!(
            dup.verify(&trusted, NOW, ExpiryPolicy::FirstUpload, &limits),
            Err(UploadError::Validation(ValidationError::Duplicate))
        );
    }

    #[test]
    fn keys_are_embargoed_until_two_hours_after_their_window() {
        let key = gaen_key(1, DayNumber(19_000));
        let end = DayNumber(19_001).start();
        assert_eq!(key_publishable_at(&key), end.plus_seconds(7200));
        let mut short = key.clone();
        short.rolling_period = 6;
        assert_eq!(
            key_publishable_at(&short),
            IntervalNumber(19_000 * 144 + 6 + 12).start()
        );
    }

    #[test]
    fn real_and_decoy_requests_have_the_same_sizes() {
        let token = |b| PublishedToken {
            day: NOW.day(),
            token: EncounterToken([b; 16]),
        };
        for n in [1usize, 14, 200, 300, 5000] {
            let tokens = (0..n).map(|i| token((i % 251) as u8)).collect::<Vec<_>>();
            let (upload, _) = signed_upload(ReportContents::Pet(tokens), None);
            let key = RevisionSecret::from_seed(&[1; 32]).key();
            let real = wire::encode(&UploadRequest::real(upload, key));
            assert!(
                real.len().is_power_of_two() && real.len() >= MIN_UPLOAD_REQUEST_SIZE,
                "{n}: {}",
                real.len()
            );
            let decoy = wire::encode(&UploadRequest::decoy(real.len()));
            assert_eq!(decoy.len(), real.len(), "{n} tokens");
            let back: UploadRequest = wire::decode(&real).unwrap();
            assert!(matches!(back.body, UploadBody::Real { .. }));
        }
    }

    /// A request of every variant, with a certificate `revises` names.
    fn every_variant() -> Vec<UploadRequest> {
        let (upload, _) = signed_upload(
            ReportContents::Pet(vec![PublishedToken {
                day: NOW.day(),
                token: EncounterToken([3; 16]),
            }]),
            None,
        );
        let secret = RevisionSecret::from_seed(&[2; 32]);
        let original = upload.certificate.certificate.id;
        vec![
            UploadRequest::padded(UploadBody::RealV1(upload.clone())),
            UploadRequest::padded(UploadBody::RevisionV1 {
                upload: upload.clone(),
                revision_token: vec![9; 32],
            }),
            UploadRequest::decoy(4096),
            UploadRequest::real(upload.clone(), secret.key()),
            UploadRequest::revision(upload, original, &secret),
        ]
    }

    #[test]
    fn each_variant_travels_in_its_own_version_only() {
        for request in every_variant() {
            let bytes = wire::encode(&request);
            let version = request.body.version();
            assert_eq!(bytes[0], version);
            assert_eq!(wire::decode::<UploadRequest>(&bytes), Ok(request.clone()));
            let mut other = bytes.clone();
            other[0] = if version == 1 { 2 } else { 1 };
            let refused = wire::decode::<UploadRequest>(&other);
            if request.body == UploadBody::Decoy {
                // Phones of either version send decoys.
                assert_eq!(refused, Ok(request));
            } else {
                assert_eq!(
                    refused,
                    Err(DecodeError::NotInVersion { version: other[0] })
                );
            }
            let mut future = bytes;
            future[0] = 3;
            assert_eq!(
                wire::decode::<UploadRequest>(&future),
                Err(DecodeError::UnsupportedVersion {
                    got: 3,
                    supported: 2
                })
            );
        }
    }

    #[test]
    fn a_revision_is_signed_over_the_original_and_its_own_certificate() {
        let requests = every_variant();
        let UploadBody::Real { revision_key, .. } = &requests[3].body else {
            panic!("variant order")
        };
        let UploadBody::Revision {
            upload,
            revises,
            signature,
        } = &requests[4].body
        else {
            panic!("variant order")
        };
        assert!(revision_key.verify(revises, &upload.certificate, signature));
        assert!(!RevisionSecret::from_seed(&[3; 32]).key().verify(
            revises,
            &upload.certificate,
            signature
        ));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_upload_bytes_never_panics(
            version in 0u8..4,
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        ) {
            let mut framed = vec![version, wire::kind::UPLOAD_REQUEST];
            framed.extend_from_slice(&bytes);
            let _ = wire::decode::<UploadRequest>(&framed);
            framed[1] = wire::kind::SIGNED_UPLOAD;
            let _ = wire::decode::<SignedUpload>(&framed);
        }

        /// Every variant's frame, cut or with one byte changed, decodes to a request of its
        /// frame's version or is refused; it never panics.
        #[test]
        fn mutated_frames_of_every_variant_decode_or_are_refused(
            which in 0usize..5,
            at in proptest::num::usize::ANY,
            xor in 1u8..=255,
            cut in proptest::bool::ANY,
        ) {
            let mut bytes = wire::encode(&every_variant()[which]);
            // Within the body proper (the zero padding changes nothing but its own bytes).
            let at = at % 400.min(bytes.len());
            if cut {
                bytes.truncate(at);
            } else {
                bytes[at] ^= xor;
            }
            if let Ok(request) = wire::decode::<UploadRequest>(&bytes) {
                proptest::prop_assert!(request.fits_version(bytes[0]));
            }
        }

        #[test]
        fn padding_hits_every_bucket(size in 0usize..200_000) {
            let request = UploadRequest::decoy(size);
            proptest::prop_assert_eq!(wire::encode(&request).len(), padded_request_size(size));
        }
    }
}
