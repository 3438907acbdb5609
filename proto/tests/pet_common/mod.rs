//! Helpers shared by the `pet` vector tests: HKDF straight from `ring` (independent of the
//! crate's own helper), hex and the table of label names.

use std::collections::BTreeMap;

/// HKDF-SHA256 straight from `ring`: fills `out` with HKDF(salt, ikm, info).
pub(crate) fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(ikm);
    prk.expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("short HKDF output");
}

/// `N` bytes from lower-case hex; panics (a broken vector file) otherwise.
pub(crate) fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"));
    out
}

/// Labels by the name of their Rust constant, as the vector files list them.
pub(crate) fn label_map(labels: &[(&str, &[u8])]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(name, label)| {
            let label = String::from_utf8(label.to_vec()).expect("labels are ASCII");
            ((*name).to_owned(), label)
        })
        .collect()
}
