//! Phone → node upload bodies (both wire versions): decode, check a revision's signature,
//! and verify whatever decodes; a token upload is checked against the frozen vector's token
//! key and certified as the first node does.
#![no_main]
use std::sync::OnceLock;

use ephemera_proto::auth::{AuthoritySigningKey, ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::token::{Audience, OnsetClass, TokenClass, TokenKeys, TokenSigningKey, TokenUpload};
use ephemera_proto::upload::{UploadBody, UploadRequest};
use ephemera_proto::{DayNumber, ReportLimits, ReportType, UnixTime, wire};
use libfuzzer_sys::fuzz_target;

const NOW: UnixTime = UnixTime(1_700_000_000);

/// The frozen vector's token key (epoch 19675, confirmed, recent onset).
fn token_keys() -> &'static TokenKeys {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let frozen: std::collections::BTreeMap<String, String> =
            serde_json::from_str(include_str!("../../proto/tests/vectors/token.json")).unwrap();
        let der = hex::decode(&frozen["input_token_key_pkcs8"]).unwrap();
        let class = TokenClass {
            test_type: ReportType::ConfirmedTest,
            onset: OnsetClass::Recent,
        };
        let key = TokenSigningKey::from_der(DayNumber(19_675), class, &der).unwrap();
        let mut keys = TokenKeys::default();
        keys.insert(key.public().parse().unwrap()).unwrap();
        keys
    })
}

/// What the first node does with a token upload: verify the token, certify the report.
fn certify(upload: TokenUpload, binding: HmacBinding) {
    let authority = AuthoritySigningKey::from_seed(&[1; 32]);
    let audience = Audience::named("ephemera-test");
    let at = DayNumber(19_675).start().plus_seconds(3_600);
    let _ = upload.certify(token_keys(), &audience, binding, &authority, at);
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = wire::decode::<UploadRequest>(data) else {
        return;
    };
    let key = RevisionSecret::from_seed(&[7; 32]).key();
    let upload = match request.body {
        UploadBody::Revision {
            upload,
            revises,
            signature,
        } => {
            let _ = key.verify(&revises, &upload.certificate, &signature);
            upload
        }
        UploadBody::Real { upload, .. }
        | UploadBody::RealV1(upload)
        | UploadBody::RevisionV1 { upload, .. } => upload,
        UploadBody::Decoy => return,
        UploadBody::Tokened {
            upload,
            revision_key,
        } => return certify(upload, HmacBinding::Upload(revision_key)),
        UploadBody::TokenRevision {
            upload,
            revises,
            signature,
        } => {
            let _ = key.verify_token_revision(&revises, &upload.certificate_id(), &signature);
            return certify(upload, HmacBinding::Revision(key));
        }
    };
    let _ = upload.verify(
        &TrustedAuthorities::new(),
        NOW,
        ExpiryPolicy::FirstUpload,
        &ReportLimits::default(),
    );
});
