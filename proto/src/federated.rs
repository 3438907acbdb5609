//! What nodes relay to each other (`docs/PROTOCOL.md` §9.1, §9.4): an upload with its
//! [`Binding`] — the revision key a version 2 first upload carries, or a revision with its
//! signature — so every node that holds a report checks its revisions itself.
//!
//! A version 1 upload (no key) travels as before, as a [`SignedUpload`] frame (version 1,
//! kind 0x03), which nodes of either version read. A bound one travels as a
//! [`FederatedReport`] frame (version 2, kind 0x0c): nodes of version 1 ignore it as a newer
//! version (they could not check its version 2 HMAC anyway). [`encode`] and [`decode`] pick
//! the frame, so each report has exactly one encoding and, on gossip, one message id.

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::revision::Binding;
use crate::upload::{SignedUpload, VerifiedUpload};
use crate::wire::{self, WireMessage};

/// An upload as one node relays it to another, with what binds it to a revision key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedReport {
    /// The report, its certificate and HMAC key.
    pub upload: SignedUpload,
    /// Its revision key, and for a revision the original's certificate id and signature.
    pub binding: Binding,
}

impl WireMessage for FederatedReport {
    const KIND: u8 = wire::kind::FEDERATED_REPORT;
    // A SignedUpload frame plus the largest binding (32 + 16 + 64 bytes and tags).
    const MAX_SIZE: usize = SignedUpload::MAX_SIZE + 256;
    const VERSIONS: &'static [u8] = &[wire::WIRE_VERSION_2];

    fn wire_version(&self) -> u8 {
        wire::WIRE_VERSION_2
    }

    /// An unbound upload travels as a [`SignedUpload`] frame only.
    fn fits_version(&self, version: u8) -> bool {
        version == wire::WIRE_VERSION_2 && self.binding != Binding::Unbound
    }
}

impl From<VerifiedUpload> for FederatedReport {
    fn from(verified: VerifiedUpload) -> Self {
        let binding = *verified.binding();
        FederatedReport {
            upload: verified.into_inner(),
            binding,
        }
    }
}

/// The frame `report` travels in: a [`SignedUpload`] frame when it is unbound, else a
/// [`FederatedReport`] frame.
pub fn encode(report: &FederatedReport) -> Vec<u8> {
    match report.binding {
        Binding::Unbound => wire::encode(&report.upload),
        _ => wire::encode(report),
    }
}

/// SHA-256 of the frame [`encode`] gives for `upload` with `binding`, without building
/// it: the gossip message id of a canonical report (for an unbound one, its [`UploadId`]).
///
/// [`UploadId`]: crate::upload::UploadId
pub fn frame_hash(upload: &SignedUpload, binding: &Binding) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    let body = postcard::to_allocvec(upload).expect("postcard encoding into a Vec");
    if *binding == Binding::Unbound {
        context.update(&[wire::WIRE_VERSION, wire::kind::SIGNED_UPLOAD]);
        context.update(&body);
    } else {
        // A struct's postcard encoding is its fields' encodings in order.
        context.update(&[wire::WIRE_VERSION_2, wire::kind::FEDERATED_REPORT]);
        context.update(&body);
        context.update(&postcard::to_allocvec(binding).expect("postcard encoding into a Vec"));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// Decodes either frame of [`encode`] from outside bytes (by its kind byte).
///
/// # Errors
/// A [`DecodeError`] naming the first check that failed (a [`FederatedReport`] frame
/// holding an unbound upload is [`DecodeError::NotInVersion`]); never panics.
pub fn decode(bytes: &[u8]) -> Result<FederatedReport, DecodeError> {
    if bytes.get(1) == Some(&wire::kind::SIGNED_UPLOAD) {
        return Ok(FederatedReport {
            upload: wire::decode(bytes)?,
            binding: Binding::Unbound,
        });
    }
    wire::decode(bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::auth::{AuthoritySigningKey, CertificateId, CertificateRequest, ReportHmacKey};
    use crate::pet::EncounterToken;
    use crate::report::{PublishedToken, ReportContents, ReportType};
    use crate::revision::RevisionSecret;
    use crate::signing::Signature;
    use crate::time::UnixTime;

    fn upload(seed: u64) -> SignedUpload {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let contents = ReportContents::Pet(vec![PublishedToken {
            day: UnixTime(1_700_000_000).day(),
            token: EncounterToken([seed as u8; 16]),
        }]);
        let hmac_key = ReportHmacKey::generate(&mut rng);
        let certificate = AuthoritySigningKey::from_seed(&[1; 32]).issue(
            &CertificateRequest {
                report_hmac: hmac_key.authenticate(&contents),
                test_type: ReportType::ConfirmedTest,
                symptom_onset: None,
            },
            UnixTime(1_700_000_000),
            3600,
            &mut rng,
        );
        SignedUpload {
            contents,
            certificate,
            hmac_key,
        }
    }

    fn bindings() -> Vec<Binding> {
        let key = RevisionSecret::from_seed(&[2; 32]).key();
        vec![
            Binding::Unbound,
            Binding::Upload(key),
            Binding::Revision {
                key,
                revises: CertificateId([3; 16]),
                signature: Signature([4; 64]),
            },
            Binding::TokenRevision {
                key,
                revises: CertificateId([3; 16]),
                signature: Signature([4; 64]),
            },
        ]
    }

    #[test]
    fn every_binding_round_trips_in_its_own_frame() {
        for binding in bindings() {
            let report = FederatedReport {
                upload: upload(5),
                binding,
            };
            let bytes = encode(&report);
            let (version, kind) = match binding {
                Binding::Unbound => (wire::WIRE_VERSION, wire::kind::SIGNED_UPLOAD),
                _ => (wire::WIRE_VERSION_2, wire::kind::FEDERATED_REPORT),
            };
            assert_eq!((bytes[0], bytes[1]), (version, kind), "{binding:?}");
            assert_eq!(decode(&bytes).unwrap(), report);
            assert_eq!(
                frame_hash(&report.upload, &binding)[..],
                *digest::digest(&digest::SHA256, &bytes).as_ref()
            );
        }
        // An unbound upload in the version 2 frame would give it a second encoding.
        let unbound = FederatedReport {
            upload: upload(6),
            binding: Binding::Unbound,
        };
        let mut bytes = vec![wire::WIRE_VERSION_2, wire::kind::FEDERATED_REPORT];
        bytes.extend_from_slice(&postcard::to_allocvec(&unbound).unwrap());
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::NotInVersion {
                version: wire::WIRE_VERSION_2
            })
        );
    }

    proptest! {
        #[test]
        fn mutated_frames_decode_or_are_refused(
            which in 0usize..3,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let report = FederatedReport { upload: upload(7), binding: bindings()[which] };
            let mut bytes = encode(&report);
            for (at, value) in flips {
                let at = at % bytes.len();
                bytes[at] ^= value;
            }
            let _ = decode(&bytes);
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = decode(&bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for kind in [wire::kind::SIGNED_UPLOAD, wire::kind::FEDERATED_REPORT] {
                for version in [wire::WIRE_VERSION, wire::WIRE_VERSION_2] {
                    let mut framed = vec![version, kind];
                    framed.extend_from_slice(&bytes);
                    let _ = decode(&framed);
                }
            }
            let _ = decode(&bytes);
        }
    }
}
