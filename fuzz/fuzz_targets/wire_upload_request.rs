//! Phone → node upload bodies (both wire versions): decode, check a revision's signature,
//! and verify whatever decodes.
#![no_main]
use ephemera_proto::auth::{ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::revision::RevisionSecret;
use ephemera_proto::upload::{UploadBody, UploadRequest};
use ephemera_proto::{ReportLimits, UnixTime, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = wire::decode::<UploadRequest>(data) else {
        return;
    };
    let upload = match request.body {
        UploadBody::Revision {
            upload,
            revises,
            signature,
        } => {
            let key = RevisionSecret::from_seed(&[7; 32]).key();
            let _ = key.verify(&revises, &upload.certificate, &signature);
            upload
        }
        UploadBody::Real { upload, .. }
        | UploadBody::RealV1(upload)
        | UploadBody::RevisionV1 { upload, .. } => upload,
        UploadBody::Decoy => return,
    };
    let _ = upload.verify(
        &TrustedAuthorities::new(),
        UnixTime(1_700_000_000),
        ExpiryPolicy::FirstUpload,
        &ReportLimits::default(),
    );
});
