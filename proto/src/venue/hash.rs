//! The hash functions of the venue IBE, each with its own domain tag, and the checked
//! decoding of curve points.
//!
//! | name | maps | how |
//! | --- | --- | --- |
//! | `H1` | identity → G1 | RFC 9380 `hash_to_curve`, suite `BLS12381G1_XMD:SHA-256_SSWU_RO_`, DST [`H1_DST`] |
//! | `H3` | (x, id, m) → Zr | RFC 9380 `hash_to_field` (expand_message_xmd SHA-256, L = 48), DST [`H3_DST`] |
//! | `HT` | G_T → 32 bytes | SHA-256([`HT_LABEL`] ‖ the 288-byte compressed G_T element) |
//! | `H4` | x → AEAD key | SHA-256([`H4_LABEL`] ‖ x) |

use blstrs::{Compress, G1Affine, G1Projective, G2Affine, Gt, Scalar};
use group::Group;
use group::prime::PrimeCurveAffine;
use rand_core::CryptoRng;
use ring::digest;
use zeroize::Zeroizing;

use super::error::PointError;

/// Domain separation tag of `H1`, the hash of an hourly identity onto G1 (RFC 9380 §3.1).
pub const H1_DST: &[u8] = b"EPHEMERA-V1-VENUE-H1_BLS12381G1_XMD:SHA-256_SSWU_RO_";
/// Domain separation tag of `H3`, the hash of (x, identity, message) onto the scalar field.
pub const H3_DST: &[u8] = b"EPHEMERA-V1-VENUE-H3_BLS12381FR_XMD:SHA-256_";
/// Prefix of `HT`, the hash of a pairing value into the 32-byte mask of `x`.
pub const HT_LABEL: &[u8] = b"EPHEMERA-V1-VENUE-HT";
/// Prefix of `H4`, the hash of `x` into the one-time AEAD key of a check-in.
pub const H4_LABEL: &[u8] = b"EPHEMERA-V1-VENUE-H4";

/// Bytes `hash_to_field` expands per scalar: ceil((255 + 128) / 8) (RFC 9380 §5).
const H3_LEN: usize = 48;
/// SHA-256's input block and output sizes.
const SHA256_BLOCK: usize = 64;
const SHA256_OUT: usize = 32;

/// RFC 9380 §5.3.1 `expand_message_xmd` with SHA-256, for outputs of at most 255 blocks.
///
/// The message is the concatenation of `msg`.
pub(crate) fn expand_message_xmd(msg: &[&[u8]], dst: &[u8], out: &mut [u8]) {
    // Every caller asks for at most 255 * 32 bytes with a DST of at most 255 bytes.
    debug_assert!(out.len() <= 255 * SHA256_OUT && dst.len() <= 255);
    let ell = out.len().div_ceil(SHA256_OUT);
    let dst_len = [dst.len() as u8];
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0u8; SHA256_BLOCK]);
    for part in msg {
        ctx.update(part);
    }
    ctx.update(&(out.len() as u16).to_be_bytes());
    ctx.update(&[0]);
    ctx.update(dst);
    ctx.update(&dst_len);
    let b0 = ctx.finish();
    let mut previous = [0u8; SHA256_OUT];
    for i in 1..=ell {
        let mut ctx = digest::Context::new(&digest::SHA256);
        if i == 1 {
            ctx.update(b0.as_ref());
        } else {
            let mut mixed = [0u8; SHA256_OUT];
            for (m, (a, b)) in mixed.iter_mut().zip(b0.as_ref().iter().zip(previous)) {
                *m = a ^ b;
            }
            ctx.update(&mixed);
        }
        ctx.update(&[i as u8]);
        ctx.update(dst);
        ctx.update(&dst_len);
        previous.copy_from_slice(ctx.finish().as_ref());
        let start = (i - 1) * SHA256_OUT;
        let end = (start + SHA256_OUT).min(out.len());
        out[start..end].copy_from_slice(&previous[..end - start]);
    }
}

/// The scalar whose value is `bytes` read as a big-endian integer, reduced mod r.
///
/// Uses only the field's own arithmetic (Horner's rule in base 2^64).
pub(crate) fn scalar_from_be_bytes_wide(bytes: &[u8]) -> Scalar {
    let two_64 = Scalar::from(u64::MAX) + Scalar::from(1u64);
    let mut acc = Scalar::from(0u64);
    // Leading bytes that do not fill a whole limb form the first, shorter limb.
    let head = bytes.len() % 8;
    let (first, rest) = bytes.split_at(head);
    if head > 0 {
        let mut limb = [0u8; 8];
        limb[8 - head..].copy_from_slice(first);
        acc = Scalar::from(u64::from_be_bytes(limb));
    }
    for chunk in rest.chunks_exact(8) {
        let mut limb = [0u8; 8];
        limb.copy_from_slice(chunk);
        acc = acc * two_64 + Scalar::from(u64::from_be_bytes(limb));
    }
    acc
}

/// A uniformly random non-zero scalar: 64 bytes from `rng`, reduced mod r.
pub(crate) fn random_scalar(rng: &mut impl CryptoRng) -> Scalar {
    loop {
        let mut wide = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(wide.as_mut());
        let s = scalar_from_be_bytes_wide(wide.as_ref());
        if !bool::from(ff::Field::is_zero(&s)) {
            return s;
        }
    }
}

/// `H1`: an hourly identity hashed onto G1.
pub(crate) fn h1(identity: &[u8]) -> G1Projective {
    G1Projective::hash_to_curve(identity, H1_DST, &[])
}

/// `H3`: the encryption scalar `r` bound to the key mask, identity and message.
pub(crate) fn h3(x: &[u8; 32], identity: &[u8], message: &[u8]) -> Scalar {
    let mut uniform = Zeroizing::new([0u8; H3_LEN]);
    expand_message_xmd(&[x, identity, message], H3_DST, uniform.as_mut());
    scalar_from_be_bytes_wide(uniform.as_ref())
}

/// `HT`: the 32-byte mask derived from a pairing value, or `None` for the identity of G_T
/// (which a valid key and ciphertext never produce).
pub(crate) fn ht(gt: &Gt) -> Option<[u8; 32]> {
    if bool::from(gt.is_identity()) {
        return None;
    }
    // The torus compression of a non-identity element of the order-r subgroup (288 bytes:
    // six Fp elements, little-endian, as blstrs writes them); writing to a Vec cannot fail.
    let mut encoded = Zeroizing::new(Vec::with_capacity(288));
    gt.write_compressed(&mut *encoded).ok()?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(HT_LABEL);
    ctx.update(&encoded);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Some(out)
}

/// `H4`: the one-time AEAD key of a check-in, from its random `x`.
pub(crate) fn h4(x: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(H4_LABEL);
    ctx.update(x);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Names what is wrong with a decoded point: the identity, off the curve, or outside the
/// prime-order subgroup (in that order).
fn check_point<P>(
    decoded: Option<P>,
    checks: impl Fn(&P) -> [subtle::Choice; 3],
) -> Result<P, PointError> {
    let point = decoded.ok_or(PointError::Invalid)?;
    let [identity, on_curve, torsion_free] = checks(&point);
    if bool::from(identity) {
        Err(PointError::Identity)
    } else if !bool::from(on_curve) {
        Err(PointError::Invalid)
    } else if !bool::from(torsion_free) {
        Err(PointError::NotInSubgroup)
    } else {
        Ok(point)
    }
}

/// Decodes a compressed G1 point that is on the curve, in the prime-order subgroup and not
/// the identity.
pub(crate) fn decode_g1(bytes: &[u8; 48]) -> Result<G1Affine, PointError> {
    check_point(G1Affine::from_compressed_unchecked(bytes).into(), |p| {
        [p.is_identity(), p.is_on_curve(), p.is_torsion_free()]
    })
}

/// Decodes a compressed G2 point that is on the curve, in the prime-order subgroup and not
/// the identity.
pub(crate) fn decode_g2(bytes: &[u8; 96]) -> Result<G2Affine, PointError> {
    check_point(G2Affine::from_compressed_unchecked(bytes).into(), |p| {
        [p.is_identity(), p.is_on_curve(), p.is_torsion_free()]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 9380 Appendix K.1 (expand_message_xmd, SHA-256).
    #[test]
    fn expand_message_xmd_matches_rfc_9380() {
        let dst = b"QUUX-V01-CS02-with-expander-SHA256-128";
        let cases: [(&[u8], usize, &str); 3] = [
            (
                b"",
                32,
                "68a985b87eb6b46952128911f2a4412bbc302a9d759667f87f7a21d803f07235",
            ),
            (
                b"abc",
                32,
                "d8ccab23b5985ccea865c6c97b6e5b8350e794e603b4b97902f53a8a0d605615",
            ),
            (
                b"",
                0x80,
                "af84c27ccfd45d41914fdff5df25293e221afc53d8ad2ac06d5e3e29485dadbee0d121587713a3e0dd4d5e69e93eb7cd4f5df4cd103e188cf60cb02edc3edf18eda8576c412b18ffb658e3dd6ec849469b979d444cf7b26911a08e63cf31f9dcc541708d3491184472c2c29bb749d4286b004ceb5ee6b9a7fa5b646c993f0ced",
            ),
        ];
        for (msg, len, expected) in cases {
            let mut out = vec![0u8; len];
            expand_message_xmd(&[msg], dst, &mut out);
            assert_eq!(out, hex32(expected), "msg {msg:?} len {len}");
        }
        // The message may come in parts.
        let mut whole = [0u8; 32];
        let mut parts = [0u8; 32];
        expand_message_xmd(&[b"abc"], dst, &mut whole);
        expand_message_xmd(&[b"a", b"", b"bc"], dst, &mut parts);
        assert_eq!(whole, parts);
    }

    /// RFC 9380 Appendix J.9.1 (BLS12381G1_XMD:SHA-256_SSWU_RO_, msg ""): blstrs's
    /// `hash_to_curve` is the RFC's.
    #[test]
    fn hash_to_curve_g1_matches_rfc_9380() {
        let dst = b"QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
        let point = G1Affine::from(G1Projective::hash_to_curve(b"", dst, &[]));
        let x = "052926add2207b76ca4fa57a8734416c8dc95e24501772c814278700eed6d1e4e8cf62d9c09db0fac349612b759e79a1";
        let mut compressed = point.to_compressed();
        // Clear the three flag bits to compare the x coordinate.
        compressed[0] &= 0x1f;
        assert_eq!(hex::encode(compressed), x);
    }

    #[test]
    fn wide_reduction_is_the_integer_mod_r() {
        // r - 1 as 32 big-endian bytes, then r itself, then r + 5 (with a leading zero byte).
        let r_minus_1 = -Scalar::from(1u64);
        let r_minus_1_bytes = r_minus_1.to_bytes_be();
        assert_eq!(scalar_from_be_bytes_wide(&r_minus_1_bytes), r_minus_1);
        let r_plus_4 = scalar_from_be_bytes_wide(
            &[&[0u8][..], &r_minus_1_bytes[..]]
                .concat()
                .iter()
                .rev()
                .scan(5u16, |carry, b| {
                    let sum = u16::from(*b) + *carry;
                    *carry = sum >> 8;
                    Some(sum as u8)
                })
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>(),
        );
        assert_eq!(r_plus_4, Scalar::from(4u64));
        // 2^256 mod r from 33 bytes equals the field's own 2^256.
        let mut two_256 = [0u8; 33];
        two_256[0] = 1;
        let expected = (0..256).fold(Scalar::from(1u64), |a, _| a + a);
        assert_eq!(scalar_from_be_bytes_wide(&two_256), expected);
    }

    #[test]
    fn labels_all_differ() {
        let labels = [H1_DST, H3_DST, HT_LABEL, H4_LABEL];
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn ht_refuses_the_identity() {
        assert_eq!(ht(&Gt::identity()), None);
        assert!(ht(&Gt::generator()).is_some());
    }
}
