//! Writes valid messages of every kind into `fuzz/corpus/<target>/` as seeds for the fuzzers,
//! so they start from deep inside each decoder. Run once after a format change:
//! `cargo test -p ephemera-proto --test fuzz_seeds -- --ignored`.

use std::path::PathBuf;

use ephemera_proto::api::VerifyRequest;
use ephemera_proto::auth::{AuthoritySigningKey, CertificateRequest, ReportHmacKey, UploadCode};
use ephemera_proto::batch::{BatchContents, NodeSigningKey};
use ephemera_proto::federated::{self, FederatedReport};
use ephemera_proto::gaen::{
    DiagnosisKey, ExportFile, ExportSigner, Metadata, SignatureInfo, TemporaryExposureKey,
    encode_export_zip,
};
use ephemera_proto::pet::{DailySecret, slices};
use ephemera_proto::revision::{Binding, RevisionSecret};
use ephemera_proto::sync::{DayDigest, SyncRequest, SyncResponse};
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadRequest};
use ephemera_proto::{PublishedToken, ReportContents, ReportType, UnixTime, wire};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes the fuzz seed corpus; run by hand"]
fn write_fuzz_seeds() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
    let now = UnixTime(1_700_000_000);
    let authority = AuthoritySigningKey::generate(&mut rng);
    let keys: Vec<DiagnosisKey> = (1..4)
        .map(|d| DiagnosisKey {
            key: TemporaryExposureKey::generate(&mut rng),
            rolling_start: now.day().minus(d).first_interval(),
            rolling_period: 144,
            report_type: ReportType::ConfirmedTest,
            days_since_onset: Some(d as i8),
        })
        .collect();
    let tokens: Vec<PublishedToken> = (0..5)
        .map(|i| {
            let mut t = [0u8; 16];
            rand_core::Rng::fill_bytes(&mut rng, &mut t);
            PublishedToken {
                day: now.day().minus(i),
                token: ephemera_proto::pet::EncounterToken(t),
            }
        })
        .collect();
    for (name, contents) in [
        ("gaen", ReportContents::Gaen(keys.clone())),
        ("pet", ReportContents::Pet(tokens.clone())),
    ] {
        let hmac_key = ReportHmacKey::generate(&mut rng);
        let request = CertificateRequest {
            report_hmac: hmac_key.authenticate(&contents),
            test_type: ReportType::ConfirmedTest,
            symptom_onset: Some(now.day().minus(2)),
        };
        let certificate = authority.issue(&request, now, 3600, &mut rng);
        write("wire_certificate", name, &wire::encode(&certificate));
        let upload = SignedUpload {
            contents,
            certificate,
            hmac_key,
        };
        write("wire_signed_upload", name, &wire::encode(&upload));
        // Any 32 bytes serve as an id in these messages.
        let id = ephemera_proto::upload::UploadId([9; 32]);
        let mut digest = DayDigest::empty(now.day());
        digest.add(&id);
        let catch_up = [
            wire::encode(&SyncRequest::Digests {
                from: now.day().minus(14),
                to: now.day(),
            }),
            wire::encode(&SyncRequest::Ids {
                day: now.day(),
                after: Some(id),
                limit: 100,
            }),
            wire::encode(&SyncRequest::Fetch { ids: vec![id] }),
            wire::encode(&SyncResponse::Digests {
                from: now.day().minus(14),
                to: now.day(),
                days: vec![digest],
            }),
            wire::encode(&SyncResponse::Ids {
                day: now.day(),
                ids: vec![id],
                more: true,
            }),
            wire::encode(&SyncResponse::Uploads {
                uploads: vec![upload.clone()],
            }),
            wire::encode(&SyncRequest::FetchReports { ids: vec![id] }),
            wire::encode(&SyncResponse::Reports {
                reports: vec![FederatedReport {
                    upload: upload.clone(),
                    binding: Binding::Unbound,
                }],
            }),
        ];
        for (i, message) in catch_up.iter().enumerate() {
            write("sync_messages", &format!("{name}-{i}"), message);
        }
        // Every variant of both versions: a version 2 first upload and its signed revision,
        // a version 1 first upload and its token revision.
        let secret = RevisionSecret::from_seed(&[7; 32]);
        let original = upload.certificate.certificate.id;
        // The same upload as nodes relay a version 2 one and a signed revision (the seeds
        // need not verify: they only lead the fuzzer into the frame).
        for (suffix, binding) in [
            ("upload", Binding::Upload(secret.key())),
            (
                "revision",
                Binding::Revision {
                    key: secret.key(),
                    revises: original,
                    signature: secret.sign(&original, &upload.certificate),
                },
            ),
        ] {
            write(
                "wire_signed_upload",
                &format!("{name}-{suffix}"),
                &federated::encode(&FederatedReport {
                    upload: upload.clone(),
                    binding,
                }),
            );
        }
        let variants = [
            UploadRequest::real(upload.clone(), secret.key()),
            UploadRequest::revision(upload.clone(), original, &secret),
            UploadRequest::real_v1(upload.clone()),
            UploadRequest::padded(UploadBody::RevisionV1 {
                upload: upload.clone(),
                revision_token: vec![9; 32],
            }),
        ];
        for (i, request) in variants.iter().enumerate() {
            write(
                "wire_upload_request",
                &format!("{name}-{i}"),
                &wire::encode(request),
            );
        }
    }
    write(
        "wire_upload_request",
        "decoy",
        &wire::encode(&UploadRequest::decoy(4096)),
    );
    // Token uploads: the frozen vector's (its token verifies under the key the fuzz target
    // holds), and a token revision of it.
    let frozen: std::collections::BTreeMap<String, String> =
        serde_json::from_str(include_str!("vectors/token.json")).unwrap();
    let tokened = hex::decode(&frozen["upload_request_tokened"]).unwrap();
    write("wire_upload_request", "tokened", &tokened);
    if let UploadBody::Tokened { upload, .. } =
        wire::decode::<UploadRequest>(&tokened).unwrap().body
    {
        let revises = upload.certificate_id();
        write(
            "wire_upload_request",
            "token-revision",
            &wire::encode(&UploadRequest::token_revision(
                upload,
                revises,
                &RevisionSecret::from_seed(&[7; 32]),
            )),
        );
    }

    let node = NodeSigningKey::from_seed(&[7; 32]);
    let batch = BatchContents {
        sequence: 3,
        created_at: now,
        previous: None,
        diagnosis_keys: keys.clone(),
        tokens,
    };
    write("batch_stream", "small", batch.clone().sign(&node).bytes());
    let chained = BatchContents {
        previous: Some(ephemera_proto::batch::BatchId([3; 32])),
        ..batch
    };
    write("batch_stream", "chained", chained.sign(&node).bytes());
    let head = ephemera_proto::batch_log::SignedHead::sign(
        &node,
        3,
        ephemera_proto::batch::BatchId([3; 32]),
        now,
    );
    write("batch_log", "head", &head.to_bytes());
    let list = ephemera_proto::batch_log::HeadList {
        heads: vec![head, head],
    };
    write("batch_log", "list", &wire::encode(&list));
    write("batch_log", "json", &serde_json::to_vec(&list).unwrap());

    let secret = DailySecret::generate(&mut rng);
    let public = secret.ephemeral_key_pair(now.interval()).public();
    let mut heard: Vec<u8> = slices(&public).iter().flat_map(|s| s.encode()).collect();
    write("heard_payload", "slices", &heard);
    let (rpi, aem) = keys[0]
        .key
        .advertisement(now.interval(), &Metadata::v1_0(-10));
    heard = [rpi.as_bytes().as_slice(), aem.as_bytes().as_slice()].concat();
    write("heard_payload", "gaen", &heard);

    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let signer = ExportSigner::from_pkcs8(
        pkcs8.as_ref(),
        SignatureInfo::new("v1", "999"),
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let mut file = ExportFile::new(now.minus_seconds(86_400), now, "XX");
    file.keys = keys;
    write(
        "gaen_export",
        "export",
        &encode_export_zip(&file, &signer, &ring::rand::SystemRandom::new()).unwrap(),
    );

    let code = UploadCode::generate(&mut rng);
    write(
        "json_bodies",
        "verify",
        &VerifyRequest::real(&code, &ephemera_proto::auth::ReportHmac([3; 32])).to_padded_json(),
    );
    write("json_bodies", "index", br#"{"batches":[{"id":"0000000000000000000000000000000000000000000000000000000000000000","sequence":1,"created_at":1700000000,"size":98,"keys":0,"tokens":1}],"next_cursor":1}"#);
}
