//! Batch-log heads: a signed head frame (phone: the index's `head`), a head list between
//! nodes (`/ephemera/heads/1`), and a `/v1/heads` JSON body (phone: the cross-check).
#![no_main]
use ephemera_proto::batch_log::{HeadList, SignedHead};
use ephemera_proto::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = SignedHead::from_bytes(data) {
        let _ = head.is_self_signed();
    }
    if let Ok(list) = wire::decode::<HeadList>(data) {
        for pair in list.heads.windows(2) {
            let _ = pair[0].conflict_with(&pair[1]);
        }
    }
    let _ = serde_json::from_slice::<HeadList>(data);
});
