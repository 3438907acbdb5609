//! Node ↔ node catch-up messages (digests, id pages, upload fetches) in both directions.
#![no_main]
use ephemera_proto::sync::{SyncRequest, SyncResponse};
use ephemera_proto::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode::<SyncRequest>(data);
    let _ = wire::decode::<SyncResponse>(data);
});
