//! Setting up a venue: two master secret shares, the entry code, and the venue's private
//! trace code (CrowdNotifier `basic.rst`, "Setting-up a Location").
//!
//! The setup draws the venue's share and the health authority's share, publishes their
//! combined public key in the entry code, seals the authority's share to the authority's
//! HPKE key and forgets it. The trace code holds the entry code, the venue's share and the
//! sealed authority share:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | version ([`TRACE_CODE_VERSION`]) |
//! | 2 + n | entry code: length (u16 BE) then its bytes |
//! | 32 | the venue's share (scalar, big-endian) |
//! | 32 + 48 | the authority's share sealed with HPKE: `enc ‖ AEAD(share)` |
//!
//! HPKE is RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305, `info` = [`AUTHORITY_SHARE_INFO`], `aad` = the entry code's bytes
//! (so a sealed share opens only with its own venue).
//!
//! Neither side alone makes a trace key: the venue cannot open the authority's share, and
//! the authority does not hold the venue's share. Given the venue's partial keys for the
//! case's hours only ([`TraceCode::pre_trace_keys`]), the authority learns nothing about
//! the venue's other hours.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::entry::{EntryCode, Reader};
use super::error::{VenueDecodeError, VenueError};
use super::ibe::{IdentitySecretKey, MasterSecretShare};
use super::identity::Identity;
use super::trace::TraceKey;
use super::visit::VenueHour;
use crate::sealed::{SealingPublicKey, SealingSecretKey};
use crate::time::UnixTime;

type Kem = X25519HkdfSha256;

/// The trace code version this implementation writes and reads.
pub const TRACE_CODE_VERSION: u8 = 1;
/// HPKE `info` of the authority's sealed share.
pub const AUTHORITY_SHARE_INFO: &[u8] = b"ephemera/venue/authority-share/v1";
/// Bytes of the sealed authority share: HPKE `enc`, the 32-byte share and the tag.
pub const SEALED_SHARE_LEN: usize = 32 + 32 + 16;
/// The prefix of a trace code's text ([`TraceCode::to_text`]).
pub const TRACE_TEXT_PREFIX: &str = "ephemera-trace:";
/// The most hours one trace request may cover.
pub const MAX_TRACE_HOURS: u64 = 24;

/// A venue's private trace code: kept offline by the venue, handed over for a case.
///
/// `Debug` shows only the venue's description.
pub struct TraceCode {
    entry: EntryCode,
    venue_share: MasterSecretShare,
    sealed_authority_share: [u8; SEALED_SHARE_LEN],
}

/// The venue's part of one hour's trace key (CrowdNotifier's pre-trace key): useless
/// without the authority's part.
#[derive(Clone, Debug)]
pub struct PreTraceKey {
    /// The hour.
    pub hour: VenueHour,
    /// The hour's identity.
    pub identity: Identity,
    /// `H1(id)^venue_share`.
    pub partial_key: IdentitySecretKey,
}

/// Sets up a venue for the authority holding `authority`'s key: its entry code (for the QR
/// code) and its trace code (for the venue to keep offline).
///
/// # Errors
/// [`VenueError::TooLong`] or [`VenueError::BadTimeRange`] from [`EntryCode::new`],
/// [`VenueError::BadAuthorityKey`] when `authority` is not a usable X25519 key.
pub fn create_venue(
    authority: &SealingPublicKey,
    description: &str,
    address: &str,
    valid_from: UnixTime,
    valid_until: UnixTime,
    rng: &mut impl CryptoRng,
) -> Result<(EntryCode, TraceCode), VenueError> {
    let venue_share = MasterSecretShare::generate(rng);
    let authority_share = MasterSecretShare::generate(rng);
    // Two independent uniform shares cancel out with probability 2^-255.
    let mpk = venue_share
        .public_key()
        .combine(&authority_share.public_key())
        .map_err(|_| VenueError::TraceKeyMismatch)?;
    let entry = EntryCode::new(mpk, description, address, valid_from, valid_until, rng)?;
    let sealed_authority_share = seal_share(authority, &entry, &authority_share, rng)?;
    drop(authority_share);
    let trace = TraceCode {
        entry: entry.clone(),
        venue_share,
        sealed_authority_share,
    };
    Ok((entry, trace))
}

fn seal_share(
    authority: &SealingPublicKey,
    entry: &EntryCode,
    share: &MasterSecretShare,
    rng: &mut impl CryptoRng,
) -> Result<[u8; SEALED_SHARE_LEN], VenueError> {
    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(&authority.0)
        .map_err(|_| VenueError::BadAuthorityKey)?;
    let (enc, mut context) = hpke::setup_sender_with_rng::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &recipient,
        AUTHORITY_SHARE_INFO,
        rng,
    )
    .map_err(|_| VenueError::BadAuthorityKey)?;
    let sealed = context
        .seal(share.to_bytes().as_ref(), &entry.to_bytes())
        .map_err(|_| VenueError::BadAuthorityKey)?;
    let mut out = [0u8; SEALED_SHARE_LEN];
    out[..32].copy_from_slice(&enc.to_bytes());
    out[32..].copy_from_slice(&sealed);
    Ok(out)
}

/// Opens the authority's share sealed for `entry`'s venue.
///
/// # Errors
/// [`VenueError::ShareUnsealFailed`] with another authority key, another venue's entry
/// code, or altered bytes.
pub fn open_authority_share(
    authority: &SealingSecretKey,
    entry: &EntryCode,
    sealed: &[u8; SEALED_SHARE_LEN],
) -> Result<MasterSecretShare, VenueError> {
    let (secret, _) = Kem::derive_keypair(authority.seed());
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[..32])
        .map_err(|_| VenueError::ShareUnsealFailed)?;
    let mut context = hpke::setup_receiver::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        &secret,
        &enc,
        AUTHORITY_SHARE_INFO,
    )
    .map_err(|_| VenueError::ShareUnsealFailed)?;
    let opened = Zeroizing::new(
        context
            .open(&sealed[32..], &entry.to_bytes())
            .map_err(|_| VenueError::ShareUnsealFailed)?,
    );
    let bytes: &[u8; 32] = opened
        .as_slice()
        .try_into()
        .map_err(|_| VenueError::ShareUnsealFailed)?;
    MasterSecretShare::from_bytes(bytes, "authority share")
        .map_err(|_| VenueError::ShareUnsealFailed)
}

/// The authority's step: opens its share, adds its part to the venue's partial keys and
/// checks each result against the venue's master public key (CrowdNotifier step C).
///
/// # Errors
/// [`VenueError::ShareUnsealFailed`] when the share does not open, and
/// [`VenueError::TraceKeyMismatch`] when a partial key is for another identity than its
/// hour's, or the combined key does not decrypt under the venue's key.
pub fn complete_trace_keys(
    authority: &SealingSecretKey,
    entry: &EntryCode,
    sealed_authority_share: &[u8; SEALED_SHARE_LEN],
    pre_trace_keys: &[PreTraceKey],
) -> Result<Vec<TraceKey>, VenueError> {
    let share = open_authority_share(authority, entry, sealed_authority_share)?;
    let expected = entry.identities(pre_trace_keys.iter().map(|p| p.hour));
    pre_trace_keys
        .iter()
        .zip(expected)
        .map(|(pre, (hour, identity))| {
            if pre.identity != identity {
                return Err(VenueError::TraceKeyMismatch);
            }
            let key = pre
                .partial_key
                .combine(&share.derive_key(&identity))
                .map_err(|_| VenueError::TraceKeyMismatch)?;
            if !key.is_key_of(&identity, entry.master_public_key()) {
                return Err(VenueError::TraceKeyMismatch);
            }
            Ok(TraceKey {
                hour,
                identity,
                key,
            })
        })
        .collect()
}

impl TraceCode {
    /// The venue's entry code.
    pub fn entry_code(&self) -> &EntryCode {
        &self.entry
    }

    /// The authority's sealed share.
    pub fn sealed_authority_share(&self) -> &[u8; SEALED_SHARE_LEN] {
        &self.sealed_authority_share
    }

    /// The venue's partial keys for every hour from `first` to `last` (CrowdNotifier step
    /// B): what the venue hands the authority, with [`TraceCode::sealed_authority_share`].
    ///
    /// # Errors
    /// [`VenueError::BadTimeRange`] or [`VenueError::TooManyHours`] (over
    /// [`MAX_TRACE_HOURS`]).
    pub fn pre_trace_keys(
        &self,
        first: VenueHour,
        last: VenueHour,
    ) -> Result<Vec<PreTraceKey>, VenueError> {
        let hours = VenueHour::range(first, last, MAX_TRACE_HOURS)?;
        Ok(self
            .entry
            .identities(hours)
            .into_iter()
            .map(|(hour, identity)| PreTraceKey {
                hour,
                identity,
                partial_key: self.venue_share.derive_key(&identity),
            })
            .collect())
    }

    /// Both steps at once, for an authority that was handed the whole trace code: the
    /// checked trace keys of every hour from `first` to `last`.
    ///
    /// # Errors
    /// As [`TraceCode::pre_trace_keys`] and [`complete_trace_keys`].
    pub fn trace_keys(
        &self,
        authority: &SealingSecretKey,
        first: VenueHour,
        last: VenueHour,
    ) -> Result<Vec<TraceKey>, VenueError> {
        let pre = self.pre_trace_keys(first, last)?;
        complete_trace_keys(authority, &self.entry, &self.sealed_authority_share, &pre)
    }

    /// The trace code's bytes. A secret: print it for the venue to keep offline.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let entry = self.entry.to_bytes();
        let mut out = Zeroizing::new(Vec::with_capacity(3 + entry.len() + 32 + SEALED_SHARE_LEN));
        out.push(TRACE_CODE_VERSION);
        // An entry code is at most ENTRY_CODE_FIXED_LEN + 200 bytes.
        out.extend_from_slice(&(entry.len() as u16).to_be_bytes());
        out.extend_from_slice(&entry);
        out.extend_from_slice(self.venue_share.to_bytes().as_ref());
        out.extend_from_slice(&self.sealed_authority_share);
        out
    }

    /// The trace code as text, for the venue's file or a printed sheet: [`TRACE_TEXT_PREFIX`]
    /// and the bytes in unpadded base64url (RFC 4648 §5). A secret, like the bytes.
    pub fn to_text(&self) -> Zeroizing<String> {
        let bytes = self.to_bytes();
        let mut text = Zeroizing::new(String::with_capacity(
            TRACE_TEXT_PREFIX.len() + bytes.len().div_ceil(3) * 4,
        ));
        text.push_str(TRACE_TEXT_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes.as_slice(), &mut text);
        text
    }

    /// Reads a trace code's text (see [`TraceCode::to_text`]); surrounding whitespace is
    /// ignored, padding and the standard alphabet are not accepted.
    ///
    /// # Errors
    /// [`VenueDecodeError::NotTraceText`] when the prefix or the base64url is wrong; then
    /// every error of [`TraceCode::from_bytes`].
    pub fn from_text(text: &str) -> Result<Self, VenueDecodeError> {
        let encoded = text
            .trim()
            .strip_prefix(TRACE_TEXT_PREFIX)
            .ok_or(VenueDecodeError::NotTraceText)?;
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(encoded)
                .map_err(|_| VenueDecodeError::NotTraceText)?,
        );
        TraceCode::from_bytes(&bytes)
    }

    /// Reads a trace code.
    ///
    /// # Errors
    /// [`VenueDecodeError`]: truncated, unknown version, a bad entry code, a venue share
    /// that is not a canonical non-zero scalar, or bytes after the end.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VenueDecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.array::<1>(3)?[0];
        if version != TRACE_CODE_VERSION {
            return Err(VenueDecodeError::UnsupportedVersion(version));
        }
        let len = usize::from(u16::from_be_bytes(reader.array::<2>(3)?));
        let entry = EntryCode::from_bytes(reader.take(len)?)?;
        let share = Zeroizing::new(reader.array::<32>(0)?);
        let venue_share = MasterSecretShare::from_bytes(&share, "venue share")?;
        let sealed_authority_share = reader.array::<SEALED_SHARE_LEN>(0)?;
        reader.finish()?;
        Ok(TraceCode {
            entry,
            venue_share,
            sealed_authority_share,
        })
    }
}

impl fmt::Debug for TraceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceCode")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::venue::ibe::decrypt;
    use crate::venue::visit::check_in;

    fn venue(seed: u64) -> (ChaCha20Rng, SealingSecretKey, EntryCode, TraceCode) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let authority = SealingSecretKey::generate(&mut rng);
        let (entry, trace) = create_venue(
            &authority.public_key(),
            "Gym",
            "Road 2",
            UnixTime(0),
            UnixTime(u64::MAX),
            &mut rng,
        )
        .unwrap();
        (rng, authority, entry, trace)
    }

    #[test]
    fn trace_keys_open_their_hours_only() {
        let (mut rng, authority, entry, trace) = venue(1);
        let arrival = UnixTime(1_700_000_000);
        let check_ins = check_in(&entry, arrival, arrival.plus_seconds(3600), &mut rng).unwrap();
        let first = check_ins[0].hour();
        let keys = trace.trace_keys(&authority, first, first).unwrap();
        assert_eq!(keys.len(), 1);
        let key = &keys[0];
        assert!(decrypt(&key.identity, &key.key, check_ins[0].ciphertext()).is_some());
        // The next hour's check-in does not open with this hour's key.
        assert!(decrypt(&key.identity, &key.key, check_ins[1].ciphertext()).is_none());
    }

    #[test]
    fn neither_share_alone_makes_a_working_key() {
        let (mut rng, authority, entry, trace) = venue(2);
        let t = UnixTime(1_700_000_000);
        let check_ins = check_in(&entry, t, t, &mut rng).unwrap();
        let hour = check_ins[0].hour();
        let pre = &trace.pre_trace_keys(hour, hour).unwrap()[0];
        assert!(
            !pre.partial_key
                .is_key_of(&pre.identity, entry.master_public_key())
        );
        assert!(decrypt(&pre.identity, &pre.partial_key, check_ins[0].ciphertext()).is_none());
        let share =
            open_authority_share(&authority, &entry, trace.sealed_authority_share()).unwrap();
        let authority_part = share.derive_key(&pre.identity);
        assert!(!authority_part.is_key_of(&pre.identity, entry.master_public_key()));
        assert!(decrypt(&pre.identity, &authority_part, check_ins[0].ciphertext()).is_none());
        // Together they do.
        let both = pre.partial_key.combine(&authority_part).unwrap();
        assert!(decrypt(&pre.identity, &both, check_ins[0].ciphertext()).is_some());
    }

    #[test]
    fn the_sealed_share_opens_only_for_its_authority_and_venue() {
        let (mut rng, authority, entry, trace) = venue(3);
        let other_authority = SealingSecretKey::generate(&mut rng);
        assert_eq!(
            open_authority_share(&other_authority, &entry, trace.sealed_authority_share())
                .unwrap_err(),
            VenueError::ShareUnsealFailed
        );
        let (_, _, other_entry, _) = venue(4);
        assert_eq!(
            open_authority_share(&authority, &other_entry, trace.sealed_authority_share())
                .unwrap_err(),
            VenueError::ShareUnsealFailed
        );
        let mut altered = *trace.sealed_authority_share();
        altered[40] ^= 1;
        assert_eq!(
            open_authority_share(&authority, &entry, &altered).unwrap_err(),
            VenueError::ShareUnsealFailed
        );
    }

    #[test]
    fn pre_trace_keys_for_other_hours_or_venues_are_refused() {
        let (_, authority, entry, trace) = venue(5);
        let (_, _, _, other) = venue(6);
        let hour = VenueHour(472_222);
        // Another venue's partial keys.
        let foreign = other.pre_trace_keys(hour, hour).unwrap();
        assert_eq!(
            complete_trace_keys(&authority, &entry, trace.sealed_authority_share(), &foreign)
                .unwrap_err(),
            VenueError::TraceKeyMismatch
        );
        // A partial key relabelled with another hour.
        let mut relabelled = trace.pre_trace_keys(hour, hour).unwrap();
        relabelled[0].hour = VenueHour(hour.0 + 1);
        assert_eq!(
            complete_trace_keys(
                &authority,
                &entry,
                trace.sealed_authority_share(),
                &relabelled
            )
            .unwrap_err(),
            VenueError::TraceKeyMismatch
        );
        assert_eq!(
            trace
                .pre_trace_keys(hour, VenueHour(hour.0 + 24))
                .unwrap_err(),
            VenueError::TooManyHours { got: 25, max: 24 }
        );
    }

    #[test]
    fn trace_code_round_trip_and_bad_bytes() {
        let (_, authority, _, trace) = venue(7);
        let bytes = trace.to_bytes();
        let back = TraceCode::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        let hour = VenueHour(10);
        assert_eq!(
            back.trace_keys(&authority, hour, hour).unwrap(),
            trace.trace_keys(&authority, hour, hour).unwrap()
        );
        for len in 0..bytes.len() {
            assert!(
                TraceCode::from_bytes(&bytes[..len]).is_err(),
                "prefix {len}"
            );
        }
        let mut zero_share = bytes.to_vec();
        let at = bytes.len() - SEALED_SHARE_LEN - 32;
        zero_share[at..at + 32].fill(0);
        assert_eq!(
            TraceCode::from_bytes(&zero_share).unwrap_err(),
            VenueDecodeError::BadScalar {
                field: "venue share"
            }
        );
        assert!(
            !format!("{trace:?}").contains(&hex::encode(trace.venue_share.to_bytes().as_ref()))
        );
    }

    #[test]
    fn trace_text_round_trips_and_refuses_what_is_not_one() {
        let (_, authority, entry, trace) = venue(5);
        let text = trace.to_text();
        assert!(text.starts_with(TRACE_TEXT_PREFIX));
        let back = TraceCode::from_text(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(back.to_bytes(), trace.to_bytes());
        assert_eq!(back.entry_code(), &entry);
        assert!(open_authority_share(&authority, &entry, back.sealed_authority_share()).is_ok());
        let encoded = &text[TRACE_TEXT_PREFIX.len()..];
        for bad in [
            encoded.to_owned(),
            format!("ephemera-venue:{encoded}"),
            format!("{TRACE_TEXT_PREFIX}{encoded}="),
            format!(
                "{TRACE_TEXT_PREFIX}{}",
                encoded.replace('-', "+").replace('_', "/")
            ),
            format!("{TRACE_TEXT_PREFIX}{encoded}!"),
        ] {
            assert!(TraceCode::from_text(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            TraceCode::from_text("ephemera-venue:AA").unwrap_err(),
            VenueDecodeError::NotTraceText
        );
        // An entry code's QR text is not a trace code.
        assert!(TraceCode::from_text(&entry.to_qr_text()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..500)) {
            let _ = TraceCode::from_bytes(&bytes);
        }

        #[test]
        fn text_decode_never_panics(text in "\\PC{0,300}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = TraceCode::from_text(&text);
            let encoded = format!("{TRACE_TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
            proptest::prop_assert_eq!(
                TraceCode::from_text(&encoded).map(|t| t.to_bytes().to_vec()).ok(),
                TraceCode::from_bytes(&bytes).map(|t| t.to_bytes().to_vec()).ok()
            );
        }
    }
}
