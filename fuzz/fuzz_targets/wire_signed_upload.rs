//! Node → node gossip and sync payloads (a version 1 `SignedUpload` frame or a version 2
//! `FederatedReport` frame), and report validation of whatever decodes, with the HMAC input
//! and revision signature check of its binding.
#![no_main]
use ephemera_proto::federated;
use ephemera_proto::{ReportLimits, UnixTime};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = federated::decode(data) {
        let upload = &report.upload;
        let _ = upload.contents.validate(UnixTime(1_700_000_000), &ReportLimits::default());
        let _ = upload.contents.hmac_input(report.binding.hmac());
        let _ = report.binding.signature_holds(&upload.certificate);
    }
});
