//! Node → node gossip and sync payloads, and report validation of whatever decodes.
#![no_main]
use ephemera_proto::upload::SignedUpload;
use ephemera_proto::{ReportLimits, UnixTime, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(upload) = wire::decode::<SignedUpload>(data) {
        let _ = upload.contents.validate(UnixTime(1_700_000_000), &ReportLimits::default());
        let _ = upload.contents.hmac_input();
    }
});
