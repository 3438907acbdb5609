//! Phone → node upload bodies: decode, and verify whatever decodes.
#![no_main]
use ephemera_proto::auth::{ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::upload::{UploadBody, UploadRequest};
use ephemera_proto::{ReportLimits, UnixTime, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = wire::decode::<UploadRequest>(data) {
        if let UploadBody::Real(upload) | UploadBody::Revision { upload, .. } = request.body {
            let _ = upload.verify(&TrustedAuthorities::new(), UnixTime(1_700_000_000), ExpiryPolicy::FirstUpload, &ReportLimits::default());
        }
    }
});
