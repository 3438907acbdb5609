//! HKDF-SHA256 (RFC 5869) with a caller-chosen output length, over `ring`.

use ring::hkdf;

/// An output length for `ring`'s HKDF, which only accepts `KeyType`s.
struct OutputLength(usize);

impl hkdf::KeyType for OutputLength {
    fn len(&self) -> usize {
        self.0
    }
}

/// Fills `out` with HKDF-SHA256(salt, ikm, info) where `info` is the concatenation of `info`.
///
/// An empty `salt` means "no salt" in RFC 5869's sense (a zero-filled salt of hash length),
/// which is what GAEN specifies.
pub(crate) fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    // `out.len()` is at most 255 * 32 for every caller in this crate (a fixed-size key),
    // which is the only way `expand` or `fill` can fail.
    let okm = prk
        .expand(info, OutputLength(out.len()))
        .expect("HKDF output length is within 255 * HashLen");
    okm.fill(out)
        .expect("HKDF output length matches the buffer");
}

/// HKDF-SHA256 with one Extract and several Expands: fills each `out` with
/// HKDF-SHA256(salt, ikm, info), as [`hkdf_sha256`] would, extracting the PRK once.
pub(crate) fn hkdf_sha256_expand_each<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    outputs: [(&[u8], &mut [u8]); N],
) {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    for (info, out) in outputs {
        let info = [info];
        let okm = prk
            .expand(&info, OutputLength(out.len()))
            .expect("HKDF output length is within 255 * HashLen");
        okm.fill(out)
            .expect("HKDF output length matches the buffer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5869 appendix A.1, test case 1.
    #[test]
    fn rfc5869_test_case_1() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        hkdf_sha256(&salt, &ikm, &[&info[..5], &info[5..]], &mut okm);
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn expand_each_equals_separate_derivations() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 42]);
        hkdf_sha256_expand_each(
            b"salt",
            b"ikm",
            [(b"one", &mut a[..]), (b"two", &mut b[..])],
        );
        let (mut a2, mut b2) = ([0u8; 16], [0u8; 42]);
        hkdf_sha256(b"salt", b"ikm", &[b"one"], &mut a2);
        hkdf_sha256(b"salt", b"ikm", &[b"two"], &mut b2);
        assert_eq!((a, b), (a2, b2));
        assert_ne!(a[..], b[..16]);
    }

    /// RFC 5869 appendix A.3: no salt, no info.
    #[test]
    fn rfc5869_test_case_3_without_salt() {
        let ikm = [0x0b; 22];
        let mut okm = [0u8; 42];
        hkdf_sha256(&[], &ikm, &[], &mut okm);
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
    }
}
