//! Frozen upload-request frames of both wire versions (`docs/PROTOCOL.md` §5.1 and §5.4),
//! for this and other implementations.
//!
//! `tests/vectors/upload.json` was written once by the ignored test [`write_vectors`] and is
//! frozen: [`frozen_vectors_hold`] rebuilds every frame from its inputs and decodes every
//! frozen frame back. If it fails, the wire format changed; do not regenerate the file to
//! make it pass (a new version gets new entries beside the old ones).
//!
//! Inputs: authority seed `01`×32, report HMAC key `02`×32, revision secret seed `03`×32,
//! one `pet` token `04`×16 of day 19675, certificates issued at 1 700 000 000 for 3600 s
//! with ids drawn from `ChaCha20Rng::seed_from_u64(24)`: version 1's `likely` first, then
//! its `confirmed`, then version 2's (whose report HMACs cover the revision key, §4.2).
//! Frames carry empty padding (a phone pads with zeros to its size bucket). The
//! `federated_*` frames are the same version 2 upload and revision as nodes relay them
//! (§9.1, kind 0x0c).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ephemera_proto::auth::{AuthoritySigningKey, CertificateRequest, ReportHmacKey};
use ephemera_proto::auth::{ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::federated::{self, FederatedReport};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::revision::{Binding, HmacBinding, RevisionSecret};
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadRequest};
use ephemera_proto::{DayNumber, PublishedToken, ReportContents, ReportType, UnixTime, wire};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/upload.json")
}

/// Every frozen value by name, lower-case hex.
fn vectors() -> BTreeMap<&'static str, String> {
    let mut rng = ChaCha20Rng::seed_from_u64(24);
    let authority = AuthoritySigningKey::from_seed(&[1; 32]);
    let hmac_key = ReportHmacKey([2; 32]);
    let secret = RevisionSecret::from_seed(&[3; 32]);
    let contents = ReportContents::Pet(vec![PublishedToken {
        day: DayNumber(19_675),
        token: EncounterToken([4; 16]),
    }]);
    let now = UnixTime(1_700_000_000);
    let upload = |test_type, binding, rng: &mut ChaCha20Rng| SignedUpload {
        contents: contents.clone(),
        certificate: authority.issue(
            &CertificateRequest {
                report_hmac: hmac_key.authenticate_bound(&contents, binding),
                test_type,
                symptom_onset: None,
            },
            now,
            3600,
            rng,
        ),
        hmac_key: hmac_key.clone(),
    };
    let unbound = HmacBinding::Unbound;
    let first_v1 = upload(ReportType::ConfirmedClinicalDiagnosis, unbound, &mut rng);
    let revised_v1 = upload(ReportType::ConfirmedTest, unbound, &mut rng);
    let key = secret.key();
    let first = upload(
        ReportType::ConfirmedClinicalDiagnosis,
        HmacBinding::Upload(key),
        &mut rng,
    );
    let revised = upload(
        ReportType::ConfirmedTest,
        HmacBinding::Revision(key),
        &mut rng,
    );
    let original = first.certificate.certificate.id;
    let signature = secret.sign(&original, &revised.certificate);
    let relayed = |upload: &SignedUpload, binding| {
        hex::encode(federated::encode(&FederatedReport {
            upload: upload.clone(),
            binding,
        }))
    };
    let frame = |body| {
        hex::encode(wire::encode(&UploadRequest {
            body,
            padding: Vec::new(),
        }))
    };
    BTreeMap::from([
        ("revision_key", hex::encode(key.0.0)),
        ("revision_signature", hex::encode(signature.0)),
        (
            "v2_report_hmac_upload",
            hex::encode(first.certificate.certificate.report_hmac.0),
        ),
        (
            "v2_report_hmac_revision",
            hex::encode(revised.certificate.certificate.report_hmac.0),
        ),
        ("federated_upload", relayed(&first, Binding::Upload(key))),
        (
            "federated_revision",
            relayed(
                &revised,
                Binding::Revision {
                    key,
                    revises: original,
                    signature,
                },
            ),
        ),
        ("v1_real", frame(UploadBody::RealV1(first_v1))),
        (
            "v1_revision",
            frame(UploadBody::RevisionV1 {
                upload: revised_v1,
                revision_token: vec![5; 32],
            }),
        ),
        ("v1_decoy", {
            let mut decoy = wire::encode(&UploadRequest {
                body: UploadBody::Decoy,
                padding: Vec::new(),
            });
            decoy[0] = wire::WIRE_VERSION;
            hex::encode(decoy)
        }),
        (
            "v2_real",
            frame(UploadBody::Real {
                upload: first,
                revision_key: key,
            }),
        ),
        (
            "v2_revision",
            frame(UploadBody::Revision {
                upload: revised,
                revises: original,
                signature,
            }),
        ),
        ("v2_decoy", frame(UploadBody::Decoy)),
    ])
}

#[test]
#[ignore = "writes tests/vectors/upload.json; run once per new version, never to make a test pass"]
fn write_vectors() {
    let text = serde_json::to_string_pretty(&vectors()).unwrap();
    std::fs::write(path(), text + "\n").unwrap();
}

#[test]
fn frozen_vectors_hold() {
    let frozen: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    let now = vectors();
    assert_eq!(frozen.len(), now.len());
    for (name, value) in &now {
        assert_eq!(&frozen[*name], value, "{name}");
    }
    for name in [
        "v1_real",
        "v1_revision",
        "v1_decoy",
        "v2_real",
        "v2_revision",
        "v2_decoy",
    ] {
        let bytes = hex::decode(&frozen[name]).unwrap();
        let request: UploadRequest = wire::decode(&bytes).unwrap();
        assert_eq!(bytes[0], if name.starts_with("v1") { 1 } else { 2 });
        if name != "v1_decoy" {
            assert_eq!(wire::encode(&request), bytes, "{name} re-encodes");
        }
    }
    // The frozen revision is signed by the frozen key.
    let bytes = hex::decode(&frozen["v2_revision"]).unwrap();
    let UploadBody::Revision {
        upload,
        revises,
        signature,
    } = wire::decode::<UploadRequest>(&bytes).unwrap().body
    else {
        panic!("v2_revision is a revision")
    };
    assert_eq!(hex::encode(signature.0), frozen["revision_signature"]);
    let key = RevisionSecret::from_seed(&[3; 32]).key();
    assert!(key.verify(&revises, &upload.certificate, &signature));
    // Both version 2 frames verify as bound to the frozen key, and only so; the relayed
    // frames decode to the same upload and revision.
    let trusted =
        TrustedAuthorities::new().with(AuthoritySigningKey::from_seed(&[1; 32]).public_key());
    let check = |upload: SignedUpload, binding| {
        upload.verify_bound(
            binding,
            &trusted,
            UnixTime(1_700_000_000),
            ExpiryPolicy::FirstUpload,
            &ephemera_proto::ReportLimits::default(),
        )
    };
    let revision = Binding::Revision {
        key,
        revises,
        signature,
    };
    assert!(check(upload.clone(), revision).is_ok());
    assert!(check(upload.clone(), Binding::Unbound).is_err());
    let relayed = federated::decode(&hex::decode(&frozen["federated_revision"]).unwrap()).unwrap();
    assert_eq!((relayed.upload, relayed.binding), (upload, revision));
    let bytes = hex::decode(&frozen["v2_real"]).unwrap();
    let UploadBody::Real {
        upload,
        revision_key,
    } = wire::decode::<UploadRequest>(&bytes).unwrap().body
    else {
        panic!("v2_real is a first upload")
    };
    assert_eq!(revision_key, key);
    assert!(check(upload.clone(), Binding::Upload(key)).is_ok());
    assert!(check(upload.clone(), Binding::Unbound).is_err());
    let relayed = federated::decode(&hex::decode(&frozen["federated_upload"]).unwrap()).unwrap();
    assert_eq!(
        (relayed.upload, relayed.binding),
        (upload, Binding::Upload(key))
    );
}
