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
//! with ids drawn from `ChaCha20Rng::seed_from_u64(24)` (`likely` first, then `confirmed`).
//! Frames carry empty padding (a phone pads with zeros to its size bucket).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ephemera_proto::auth::{AuthoritySigningKey, CertificateRequest, ReportHmacKey};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::revision::RevisionSecret;
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
    let upload = |test_type, rng: &mut ChaCha20Rng| SignedUpload {
        contents: contents.clone(),
        certificate: authority.issue(
            &CertificateRequest {
                report_hmac: hmac_key.authenticate(&contents),
                test_type,
                symptom_onset: None,
            },
            now,
            3600,
            rng,
        ),
        hmac_key: hmac_key.clone(),
    };
    let first = upload(ReportType::ConfirmedClinicalDiagnosis, &mut rng);
    let revised = upload(ReportType::ConfirmedTest, &mut rng);
    let original = first.certificate.certificate.id;
    let signature = secret.sign(&original, &revised.certificate);
    let frame = |body| {
        hex::encode(wire::encode(&UploadRequest {
            body,
            padding: Vec::new(),
        }))
    };
    BTreeMap::from([
        ("revision_key", hex::encode(secret.key().0.0)),
        ("revision_signature", hex::encode(signature.0)),
        ("v1_real", frame(UploadBody::RealV1(first.clone()))),
        (
            "v1_revision",
            frame(UploadBody::RevisionV1 {
                upload: revised.clone(),
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
                revision_key: secret.key(),
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
    assert!(RevisionSecret::from_seed(&[3; 32]).key().verify(
        &revises,
        &upload.certificate,
        &signature
    ));
}
