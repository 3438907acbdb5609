//! Boneh–Franklin identity-based encryption (FullIdent, with the Fujisaki–Okamoto check
//! CrowdNotifier adds: the encryption scalar depends on the identity), over BLS12-381.
//!
//! Master keys live in G2 and identity keys in G1 (CrowdNotifier's choice: the phone's
//! ciphertexts carry one G2 point, the published keys one G1 point).
//!
//! ```text
//! KeyGen:  msk ← Zr*,  mpk = g2^msk
//! KeyDer:  sk_id = H1(id)^msk
//! Enc:     x ← {0,1}^256,  r = H3(x, id, m)
//!          c1 = g2^r,  c2 = x ⊕ HT(e(H1(id), mpk)^r),  c3 = AEAD(H4(x), m)
//! Dec:     x' = c2 ⊕ HT(e(sk_id, c1)),  m' = AEAD⁻¹(H4(x'), c3),  accept iff c1 = g2^H3(x', id, m')
//! ```
//!
//! The AEAD is ChaCha20-Poly1305 with an all-zero nonce: its key `H4(x)` is fresh for every
//! ciphertext. Master keys are additive: `g2^(a+b) = g2^a · g2^b` and
//! `H1(id)^(a+b) = H1(id)^a · H1(id)^b`, which is how a venue's and the authority's shares
//! combine without either knowing the other's.

use std::fmt;

use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar, pairing};
use group::Group;
use group::prime::PrimeCurveAffine;
use rand_core::CryptoRng;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::error::{PointError, VenueDecodeError};
use super::hash::{decode_g1, decode_g2, h1, h3, h4, ht, random_scalar};
use super::identity::Identity;

/// Bytes of a compressed G1 point (an identity secret key).
pub const G1_LEN: usize = 48;
/// Bytes of a compressed G2 point (a master public key, `c1`).
pub const G2_LEN: usize = 96;
/// Bytes of the AEAD tag in `c3`.
pub const TAG_LEN: usize = 16;

/// One party's share of a venue's master secret key: a non-zero scalar.
///
/// `Debug` never shows it; dropping it overwrites the scalar (blstrs offers no `Zeroize`,
/// so this is best effort).
pub struct MasterSecretShare(Scalar);

impl MasterSecretShare {
    /// Draws a new share from `rng` (64 bytes reduced mod r).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        MasterSecretShare(random_scalar(rng))
    }

    /// The share's public half, `g2^share`.
    pub fn public_key(&self) -> MasterPublicKey {
        MasterPublicKey(G2Affine::from(G2Projective::generator() * self.0))
    }

    /// This share's part of `identity`'s secret key, `H1(id)^share`. Alone it decrypts
    /// nothing; [`IdentitySecretKey::combine`] adds the other party's part.
    pub fn derive_key(&self, identity: &Identity) -> IdentitySecretKey {
        IdentitySecretKey(G1Affine::from(h1(&identity.0) * self.0))
    }

    /// The scalar as 32 big-endian bytes. A secret.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes_be())
    }

    /// Reads a share written by [`MasterSecretShare::to_bytes`].
    ///
    /// # Errors
    /// [`VenueDecodeError::BadScalar`] when the bytes are not a canonical non-zero scalar.
    pub fn from_bytes(bytes: &[u8; 32], field: &'static str) -> Result<Self, VenueDecodeError> {
        let scalar = Option::<Scalar>::from(Scalar::from_bytes_be(bytes))
            .ok_or(VenueDecodeError::BadScalar { field })?;
        if bool::from(ff::Field::is_zero(&scalar)) {
            return Err(VenueDecodeError::BadScalar { field });
        }
        Ok(MasterSecretShare(scalar))
    }
}

impl Drop for MasterSecretShare {
    fn drop(&mut self) {
        self.0 = std::hint::black_box(Scalar::from(0u64));
    }
}

impl fmt::Debug for MasterSecretShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSecretShare(<redacted>)")
    }
}

/// A venue's master public key (or one share's public half): a non-identity point of G2.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MasterPublicKey(G2Affine);

impl MasterPublicKey {
    /// The key of the combined master secret `a + b`: `g2^a · g2^b`.
    ///
    /// # Errors
    /// [`PointError::Identity`] when the shares cancel out (a venue that chose its share as
    /// the negation of the authority's).
    pub fn combine(&self, other: &MasterPublicKey) -> Result<MasterPublicKey, PointError> {
        let sum = G2Affine::from(G2Projective::from(self.0) + G2Projective::from(other.0));
        if bool::from(sum.is_identity()) {
            return Err(PointError::Identity);
        }
        Ok(MasterPublicKey(sum))
    }

    /// The standard 96-byte compressed encoding (ZCash / IETF pairing-friendly curves).
    pub fn to_bytes(&self) -> [u8; G2_LEN] {
        self.0.to_compressed()
    }

    /// Reads a compressed point, refusing the identity and points outside the subgroup.
    ///
    /// # Errors
    /// [`PointError`] saying what is wrong with the point.
    pub fn from_bytes(bytes: &[u8; G2_LEN]) -> Result<Self, PointError> {
        decode_g2(bytes).map(MasterPublicKey)
    }
}

/// The secret key of one identity (or one share's part of it): a non-identity point of G1.
///
/// Secret until its trace key is published. `Debug` never shows it.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct IdentitySecretKey(G1Affine);

impl IdentitySecretKey {
    /// Adds two shares' parts into the key of the combined master secret.
    ///
    /// # Errors
    /// [`PointError::Identity`] when the parts cancel out.
    pub fn combine(&self, other: &IdentitySecretKey) -> Result<IdentitySecretKey, PointError> {
        let sum = G1Affine::from(G1Projective::from(self.0) + G1Projective::from(other.0));
        if bool::from(sum.is_identity()) {
            return Err(PointError::Identity);
        }
        Ok(IdentitySecretKey(sum))
    }

    /// Whether this is `identity`'s key under `mpk`: `e(sk, g2) = e(H1(id), mpk)`.
    pub fn is_key_of(&self, identity: &Identity, mpk: &MasterPublicKey) -> bool {
        let h = G1Affine::from(h1(&identity.0));
        pairing(&self.0, &G2Affine::generator()) == pairing(&h, &mpk.0)
    }

    /// The standard 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; G1_LEN] {
        self.0.to_compressed()
    }

    /// Reads a compressed point, refusing the identity and points outside the subgroup.
    ///
    /// # Errors
    /// [`PointError`] saying what is wrong with the point.
    pub fn from_bytes(bytes: &[u8; G1_LEN]) -> Result<Self, PointError> {
        decode_g1(bytes).map(IdentitySecretKey)
    }
}

impl fmt::Debug for IdentitySecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentitySecretKey(<redacted>)")
    }
}

/// An IBE ciphertext `(c1, c2, c3)`; `c1` is a checked non-identity point of G2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IbeCiphertext {
    c1: G2Affine,
    c2: [u8; 32],
    c3: Vec<u8>,
}

impl IbeCiphertext {
    /// Bytes of the encoding of a ciphertext of a `message_len`-byte message.
    pub const fn encoded_len(message_len: usize) -> usize {
        G2_LEN + 32 + message_len + TAG_LEN
    }

    /// `c1 ‖ c2 ‖ c3`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(G2_LEN + 32 + self.c3.len());
        out.extend_from_slice(&self.c1.to_compressed());
        out.extend_from_slice(&self.c2);
        out.extend_from_slice(&self.c3);
        out
    }

    /// Reads `c1 ‖ c2 ‖ c3`, checking `c1`.
    ///
    /// # Errors
    /// [`VenueDecodeError::Truncated`] when shorter than the fixed parts and a tag, and
    /// [`VenueDecodeError::BadPoint`] when `c1` is malformed, the identity or outside the
    /// subgroup.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VenueDecodeError> {
        let min = Self::encoded_len(0);
        if bytes.len() < min {
            return Err(VenueDecodeError::Truncated {
                got: bytes.len(),
                min,
            });
        }
        let mut c1 = [0u8; G2_LEN];
        c1.copy_from_slice(&bytes[..G2_LEN]);
        let c1 =
            decode_g2(&c1).map_err(|error| VenueDecodeError::BadPoint { field: "c1", error })?;
        let mut c2 = [0u8; 32];
        c2.copy_from_slice(&bytes[G2_LEN..G2_LEN + 32]);
        Ok(IbeCiphertext {
            c1,
            c2,
            c3: bytes[G2_LEN + 32..].to_vec(),
        })
    }
}

fn aead_key(x: &[u8; 32]) -> LessSafeKey {
    let key = h4(x);
    // A 32-byte key is always the right length for ChaCha20-Poly1305.
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key.as_ref()).expect("32-byte key"))
}

/// Encrypts `message` to `identity` under `mpk` (IBE.Enc).
pub fn encrypt(
    mpk: &MasterPublicKey,
    identity: &Identity,
    message: &[u8],
    rng: &mut impl CryptoRng,
) -> IbeCiphertext {
    let mut x = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(x.as_mut());
    let r = h3(&x, &identity.0, message);
    let c1 = G2Affine::from(G2Projective::generator() * r);
    // e(H1(id), mpk)^r computed as e(H1(id)^r, mpk): a G1 multiplication is cheaper than
    // a G_T exponentiation.
    let gt = pairing(&G1Affine::from(h1(&identity.0) * r), &mpk.0);
    // `r` is zero or `gt` the identity only with probability 2^-255; the ciphertext is then
    // undecryptable (and `c1` is refused by every decoder), never a panic.
    let mask = ht(&gt).unwrap_or([0u8; 32]);
    let mut c2 = [0u8; 32];
    for (c, (a, b)) in c2.iter_mut().zip(x.iter().zip(mask)) {
        *c = a ^ b;
    }
    let mut c3 = message.to_vec();
    aead_key(&x)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut c3)
        .expect("ChaCha20-Poly1305 seals any message below 256 GiB");
    IbeCiphertext { c1, c2, c3 }
}

/// Decrypts `ciphertext` with `identity`'s secret key (IBE.Dec): the message, or `None`
/// when the key is for another identity or venue, or the ciphertext was altered.
pub fn decrypt(
    identity: &Identity,
    key: &IdentitySecretKey,
    ciphertext: &IbeCiphertext,
) -> Option<Zeroizing<Vec<u8>>> {
    // Both points were checked on decoding (non-identity, in the subgroup), so the pairing
    // is not the identity; `ht` still refuses it.
    let mask = ht(&pairing(&key.0, &ciphertext.c1))?;
    let mut x = Zeroizing::new([0u8; 32]);
    for (c, (a, b)) in x.iter_mut().zip(ciphertext.c2.iter().zip(mask)) {
        *c = a ^ b;
    }
    let mut buffer = Zeroizing::new(ciphertext.c3.clone());
    let len = aead_key(&x)
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut buffer,
        )
        .ok()?
        .len();
    buffer.truncate(len);
    // The Fujisaki–Okamoto check: c1 must be g2^H3(x', id, m').
    let r = h3(&x, &identity.0, &buffer);
    let expected = G2Affine::from(G2Projective::generator() * r);
    if expected != ciphertext.c1 {
        return None;
    }
    Some(buffer)
}

#[cfg(test)]
pub(crate) mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::venue::identity::identity;

    fn setup(
        seed: u64,
    ) -> (
        ChaCha20Rng,
        MasterSecretShare,
        MasterSecretShare,
        MasterPublicKey,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let venue = MasterSecretShare::generate(&mut rng);
        let authority = MasterSecretShare::generate(&mut rng);
        let mpk = venue.public_key().combine(&authority.public_key()).unwrap();
        (rng, venue, authority, mpk)
    }

    fn full_key(v: &MasterSecretShare, a: &MasterSecretShare, id: &Identity) -> IdentitySecretKey {
        v.derive_key(id).combine(&a.derive_key(id)).unwrap()
    }

    #[test]
    fn round_trip_with_both_shares() {
        let (mut rng, venue, authority, mpk) = setup(1);
        let id = identity(b"venue", 3600, 3600);
        let ct = encrypt(&mpk, &id, b"hello venue", &mut rng);
        let key = full_key(&venue, &authority, &id);
        assert!(key.is_key_of(&id, &mpk));
        assert_eq!(decrypt(&id, &key, &ct).unwrap().as_slice(), b"hello venue");
        // Through bytes too.
        let decoded = IbeCiphertext::from_bytes(&ct.to_bytes()).unwrap();
        assert_eq!(decoded, ct);
        let key = IdentitySecretKey::from_bytes(&key.to_bytes()).unwrap();
        assert_eq!(
            decrypt(&id, &key, &decoded).unwrap().as_slice(),
            b"hello venue"
        );
    }

    #[test]
    fn another_identity_does_not_decrypt() {
        let (mut rng, venue, authority, mpk) = setup(2);
        let id = identity(b"venue", 3600, 3600);
        let other = identity(b"venue", 7200, 3600);
        let ct = encrypt(&mpk, &id, b"m", &mut rng);
        assert!(decrypt(&other, &full_key(&venue, &authority, &other), &ct).is_none());
        // The right key with the wrong identity string fails the FO check.
        assert!(decrypt(&other, &full_key(&venue, &authority, &id), &ct).is_none());
    }

    #[test]
    fn one_share_alone_does_not_decrypt() {
        let (mut rng, venue, authority, mpk) = setup(3);
        let id = identity(b"venue", 3600, 3600);
        let ct = encrypt(&mpk, &id, b"m", &mut rng);
        for share in [&venue, &authority] {
            let partial = share.derive_key(&id);
            assert!(!partial.is_key_of(&id, &mpk));
            assert!(decrypt(&id, &partial, &ct).is_none());
        }
    }

    #[test]
    fn altered_ciphertexts_are_rejected() {
        let (mut rng, venue, authority, mpk) = setup(4);
        let id = identity(b"venue", 3600, 3600);
        let key = full_key(&venue, &authority, &id);
        let bytes = encrypt(&mpk, &id, b"a message of some length", &mut rng).to_bytes();
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 1;
            match IbeCiphertext::from_bytes(&altered) {
                Ok(ct) => assert!(decrypt(&id, &key, &ct).is_none(), "byte {i}"),
                // A flipped bit in c1 mostly leaves the curve.
                Err(e) => assert!(i < G2_LEN, "byte {i}: {e}"),
            }
        }
        // A ciphertext whose c1 is swapped for another valid point fails the FO check.
        let mut swapped = IbeCiphertext::from_bytes(&bytes).unwrap();
        swapped.c1 = G2Affine::from(G2Projective::generator() * Scalar::from(7u64));
        assert!(decrypt(&id, &key, &swapped).is_none());
    }

    #[test]
    fn identity_and_garbage_points_are_rejected() {
        let mut g2_identity = [0u8; G2_LEN];
        g2_identity[0] = 0xc0;
        assert_eq!(
            MasterPublicKey::from_bytes(&g2_identity),
            Err(PointError::Identity)
        );
        let mut g1_identity = [0u8; G1_LEN];
        g1_identity[0] = 0xc0;
        assert_eq!(
            IdentitySecretKey::from_bytes(&g1_identity),
            Err(PointError::Identity)
        );
        assert_eq!(
            IdentitySecretKey::from_bytes(&[0xff; G1_LEN]),
            Err(PointError::Invalid)
        );
        assert_eq!(
            MasterPublicKey::from_bytes(&[0u8; G2_LEN]),
            Err(PointError::Invalid)
        );
        let mut ct = vec![0u8; IbeCiphertext::encoded_len(4)];
        ct[..G2_LEN].copy_from_slice(&g2_identity);
        assert_eq!(
            IbeCiphertext::from_bytes(&ct),
            Err(VenueDecodeError::BadPoint {
                field: "c1",
                error: PointError::Identity
            })
        );
    }

    /// A compressed point with x = `x` that is on the curve but outside the subgroup.
    pub(crate) fn off_subgroup_g1() -> [u8; G1_LEN] {
        for x in 1u8.. {
            let mut bytes = [0u8; G1_LEN];
            bytes[0] = 0x80;
            bytes[G1_LEN - 1] = x;
            if let Some(p) = Option::<G1Affine>::from(G1Affine::from_compressed_unchecked(&bytes))
                && !bool::from(p.is_torsion_free())
            {
                return bytes;
            }
        }
        unreachable!("some small x is on the curve outside the subgroup")
    }

    pub(crate) fn off_subgroup_g2() -> [u8; G2_LEN] {
        for x in 1u8.. {
            let mut bytes = [0u8; G2_LEN];
            bytes[0] = 0x80;
            bytes[G2_LEN - 1] = x;
            if let Some(p) = Option::<G2Affine>::from(G2Affine::from_compressed_unchecked(&bytes))
                && !bool::from(p.is_torsion_free())
            {
                return bytes;
            }
        }
        unreachable!("some small x is on the curve outside the subgroup")
    }

    #[test]
    fn points_outside_the_subgroup_are_rejected() {
        let g1 = off_subgroup_g1();
        assert_eq!(
            IdentitySecretKey::from_bytes(&g1),
            Err(PointError::NotInSubgroup)
        );
        let g2 = off_subgroup_g2();
        assert_eq!(
            MasterPublicKey::from_bytes(&g2),
            Err(PointError::NotInSubgroup)
        );
        let mut ct = vec![0u8; IbeCiphertext::encoded_len(4)];
        ct[..G2_LEN].copy_from_slice(&g2);
        assert_eq!(
            IbeCiphertext::from_bytes(&ct),
            Err(VenueDecodeError::BadPoint {
                field: "c1",
                error: PointError::NotInSubgroup
            })
        );
    }

    #[test]
    fn shares_round_trip_and_zero_is_refused() {
        let (_, venue, _, _) = setup(5);
        let back = MasterSecretShare::from_bytes(&venue.to_bytes(), "share").unwrap();
        assert_eq!(back.public_key(), venue.public_key());
        assert_eq!(
            MasterSecretShare::from_bytes(&[0; 32], "share").unwrap_err(),
            VenueDecodeError::BadScalar { field: "share" }
        );
        assert!(MasterSecretShare::from_bytes(&[0xff; 32], "share").is_err());
        assert_eq!(format!("{venue:?}"), "MasterSecretShare(<redacted>)");
        assert!(!format!("{:?}", venue.derive_key(&identity(b"v", 0, 3600))).contains("0x"));
    }
}
