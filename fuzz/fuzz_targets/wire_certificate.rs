//! Certificates as returned by the verify endpoint.
#![no_main]
use ephemera_proto::auth::SignedCertificate;
use ephemera_proto::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode::<SignedCertificate>(data);
});
