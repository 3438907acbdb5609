//! GAEN export zips from any key server.
#![no_main]
use ephemera_proto::gaen::{decode_export_zip, p256_public_key_from_pem};
use libfuzzer_sys::fuzz_target;

/// A fixed P-256 public key (uncompressed point); the signature check fails for fuzzed
/// archives, so this also exercises every check before it.
const PUBLIC_KEY: [u8; 65] = {
    let mut k = [0u8; 65];
    k[0] = 4;
    k
};

fuzz_target!(|data: &[u8]| {
    let _ = decode_export_zip(data, &PUBLIC_KEY);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = p256_public_key_from_pem(text);
    }
});
