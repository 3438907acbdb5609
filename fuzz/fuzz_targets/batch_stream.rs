//! Signed batches, whole and streamed in two chunks split at the first byte's value.
#![no_main]
use ephemera_proto::batch::{BatchStream, NodeSigningKey, SignedBatch, TrustedNodes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let node = NodeSigningKey::from_seed(&[7; 32]);
    let trusted = TrustedNodes::new().with(node.public_key());
    let _ = SignedBatch::verify(data, &trusted);
    // Batches from the fuzzer carry a random key id; make the trusted one appear too.
    let mut framed = data.to_vec();
    if framed.len() >= 10 {
        framed[2..10].copy_from_slice(&node.public_key().key_id().0);
    }
    let split = data.first().map_or(0, |b| usize::from(*b)).min(framed.len());
    let mut stream = BatchStream::new(&trusted);
    let _ = stream.push(&framed[..split], &mut |_| {});
    let _ = stream.push(&framed[split..], &mut |_| {});
    let _ = stream.finish();
});
