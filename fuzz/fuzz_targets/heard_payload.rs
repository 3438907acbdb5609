//! Payloads heard over Bluetooth: GAEN identifiers, `pet` keys and slices, and slice
//! reassembly from a stream of heard slices.
#![no_main]
use ephemera_proto::pet::SliceAssembler;
use ephemera_proto::scheme::HeardPayload;
use ephemera_proto::{SchemeKind, UnixTime};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = HeardPayload::parse(SchemeKind::Gaen, data);
    let mut assembler = SliceAssembler::new(8, 600);
    for (i, chunk) in data.chunks(16).enumerate() {
        if let Ok(HeardPayload::PetSlice(slice)) = HeardPayload::parse(SchemeKind::Pet, chunk) {
            let _ = assembler.handle_slice(UnixTime(i as u64 * 7), slice);
        }
    }
});
