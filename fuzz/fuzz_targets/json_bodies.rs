//! JSON request bodies of the node API and typed upload codes.
#![no_main]
use ephemera_proto::api::VerifyRequest;
use ephemera_proto::auth::UploadCode;
use ephemera_proto::batch::BatchIndex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<VerifyRequest>(data) {
        let _ = request.parsed_hmac();
        let _ = UploadCode::parse(&request.code);
    }
    let _ = serde_json::from_slice::<BatchIndex>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = UploadCode::parse(text);
    }
});
