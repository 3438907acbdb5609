//! The entry code: what a venue's QR code carries, and all a phone needs to check in.
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | version ([`ENTRY_CODE_VERSION`]) |
//! | 96 | master public key (compressed G2) |
//! | 32 | random seed (entropy of the identities; CrowdNotifier's `cryptographicSeed`) |
//! | 8 | valid from, unix seconds (u64 BE) |
//! | 8 | valid until, unix seconds (u64 BE) |
//! | 1 + n | description: length (≤ [`MAX_TEXT_LEN`]) then UTF-8 |
//! | 1 + n | address: length (≤ [`MAX_TEXT_LEN`]) then UTF-8 |
//!
//! The exact bytes are the HKDF input of every identity ([`super::identity`]), so the
//! encoding is canonical: one code has one encoding, and decoding refuses anything else.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::CryptoRng;

use super::error::{VenueDecodeError, VenueError};
use super::ibe::{G2_LEN, MasterPublicKey};
use super::identity::{
    Identity, PayloadSecrets, VENUE_HOUR_SECONDS, identity_from_parts, pre_identity, time_key,
};
use super::visit::VenueHour;
use crate::time::UnixTime;

/// The entry code version this implementation writes and reads.
pub const ENTRY_CODE_VERSION: u8 = 1;
/// Longest description or address, in bytes (CrowdNotifier: 100 characters).
pub const MAX_TEXT_LEN: usize = 100;
/// What a venue's QR text starts with, before the base64url entry code.
pub const QR_TEXT_PREFIX: &str = "ephemera-venue:";
/// Bytes of the fixed part of an entry code (everything but the two texts).
pub const ENTRY_CODE_FIXED_LEN: usize = 1 + G2_LEN + 32 + 8 + 8 + 1 + 1;

/// A venue's public entry code, as a phone scans it.
///
/// Public (it hangs on the wall), but whoever holds it can recognise the venue's
/// published trace keys: phones keep it only long enough to check in.
#[derive(Clone, PartialEq, Eq)]
pub struct EntryCode {
    master_public_key: MasterPublicKey,
    seed: [u8; 32],
    valid_from: UnixTime,
    valid_until: UnixTime,
    description: String,
    address: String,
}

fn check_text(field: &'static str, text: &str) -> Result<(), VenueError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(VenueError::TooLong {
            field,
            got: text.len(),
            max: MAX_TEXT_LEN,
        });
    }
    Ok(())
}

impl EntryCode {
    /// A new entry code for `master_public_key` with a fresh seed from `rng`.
    ///
    /// # Errors
    /// [`VenueError::TooLong`] for a description or address over [`MAX_TEXT_LEN`] bytes,
    /// [`VenueError::BadTimeRange`] when `valid_until` is before `valid_from`.
    pub fn new(
        master_public_key: MasterPublicKey,
        description: &str,
        address: &str,
        valid_from: UnixTime,
        valid_until: UnixTime,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, VenueError> {
        check_text("description", description)?;
        check_text("address", address)?;
        if valid_until < valid_from {
            return Err(VenueError::BadTimeRange);
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Ok(EntryCode {
            master_public_key,
            seed,
            valid_from,
            valid_until,
            description: description.to_owned(),
            address: address.to_owned(),
        })
    }

    /// The venue's master public key (both shares combined).
    pub fn master_public_key(&self) -> &MasterPublicKey {
        &self.master_public_key
    }

    /// The venue's description, for the phone to show before checking in.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The venue's address, for the phone to show before checking in.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// First second the code is meant for.
    pub fn valid_from(&self) -> UnixTime {
        self.valid_from
    }

    /// Last second the code is meant for.
    pub fn valid_until(&self) -> UnixTime {
        self.valid_until
    }

    /// The canonical bytes (the QR code's payload, and the identities' HKDF input).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(ENTRY_CODE_FIXED_LEN + self.description.len() + self.address.len());
        out.push(ENTRY_CODE_VERSION);
        out.extend_from_slice(&self.master_public_key.to_bytes());
        out.extend_from_slice(&self.seed);
        out.extend_from_slice(&self.valid_from.0.to_be_bytes());
        out.extend_from_slice(&self.valid_until.0.to_be_bytes());
        for text in [&self.description, &self.address] {
            // Both texts are at most MAX_TEXT_LEN (100) bytes: checked on construction.
            out.push(text.len() as u8);
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// Reads a scanned payload.
    ///
    /// # Errors
    /// [`VenueDecodeError`]: truncated, unknown version, a master public key that is
    /// malformed, the identity or outside the subgroup, an inverted validity, a text too
    /// long or not UTF-8, or bytes after the end.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VenueDecodeError> {
        let mut reader = Reader::new(bytes);
        if bytes.is_empty() {
            return Err(VenueDecodeError::Truncated {
                got: 0,
                min: ENTRY_CODE_FIXED_LEN,
            });
        }
        let version = reader.array::<1>(ENTRY_CODE_FIXED_LEN)?[0];
        if version != ENTRY_CODE_VERSION {
            return Err(VenueDecodeError::UnsupportedVersion(version));
        }
        let mpk = reader.array::<G2_LEN>(ENTRY_CODE_FIXED_LEN)?;
        let seed = reader.array::<32>(ENTRY_CODE_FIXED_LEN)?;
        let valid_from = UnixTime(u64::from_be_bytes(reader.array::<8>(ENTRY_CODE_FIXED_LEN)?));
        let valid_until = UnixTime(u64::from_be_bytes(reader.array::<8>(ENTRY_CODE_FIXED_LEN)?));
        let description = reader.text("description")?;
        let address = reader.text("address")?;
        reader.finish()?;
        let master_public_key =
            MasterPublicKey::from_bytes(&mpk).map_err(|error| VenueDecodeError::BadPoint {
                field: "master public key",
                error,
            })?;
        if valid_until < valid_from {
            return Err(VenueDecodeError::BadTimeRange { field: "validity" });
        }
        Ok(EntryCode {
            master_public_key,
            seed,
            valid_from,
            valid_until,
            description,
            address,
        })
    }

    /// The text of the printed QR code: [`QR_TEXT_PREFIX`] and the canonical bytes in
    /// unpadded base64url (RFC 4648 §5), what a phone's camera hands the app.
    pub fn to_qr_text(&self) -> String {
        format!(
            "{QR_TEXT_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.to_bytes())
        )
    }

    /// Reads a scanned QR code's text (see [`EntryCode::to_qr_text`]); surrounding
    /// whitespace is ignored, padding and the standard alphabet are not accepted.
    ///
    /// # Errors
    /// [`VenueDecodeError::NotQrText`] when the prefix or the base64url is wrong; then
    /// every error of [`EntryCode::from_bytes`].
    pub fn from_qr_text(text: &str) -> Result<Self, VenueDecodeError> {
        let encoded = text
            .trim()
            .strip_prefix(QR_TEXT_PREFIX)
            .ok_or(VenueDecodeError::NotQrText)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| VenueDecodeError::NotQrText)?;
        EntryCode::from_bytes(&bytes)
    }

    /// The identities of `hours`, derived from this code's bytes.
    pub fn identities(
        &self,
        hours: impl IntoIterator<Item = VenueHour>,
    ) -> Vec<(VenueHour, Identity)> {
        let payload = self.to_bytes();
        let secrets = PayloadSecrets::derive(&payload);
        let preid = pre_identity(&payload, &secrets);
        hours
            .into_iter()
            .map(|hour| {
                let start = hour.start().0;
                let timekey = time_key(&secrets, start, VENUE_HOUR_SECONDS);
                (
                    hour,
                    identity_from_parts(&preid, &timekey, start, VENUE_HOUR_SECONDS),
                )
            })
            .collect()
    }
}

impl fmt::Debug for EntryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The seed stays out of logs: with it and the key, anyone could recompute the
        // venue's identities without having seen the code.
        f.debug_struct("EntryCode")
            .field("description", &self.description)
            .field("valid_from", &self.valid_from)
            .field("valid_until", &self.valid_until)
            .finish_non_exhaustive()
    }
}

/// A cursor over bytes from outside, for the venue decoders.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    /// The next `N` bytes; `min` is the size reported when they are missing.
    pub(crate) fn array<const N: usize>(
        &mut self,
        min: usize,
    ) -> Result<[u8; N], VenueDecodeError> {
        let end = self.at + N;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(VenueDecodeError::Truncated {
                got: self.bytes.len(),
                min: min.max(end),
            })?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.at = end;
        Ok(out)
    }

    /// The next `len` bytes.
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], VenueDecodeError> {
        let end = self.at.saturating_add(len);
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(VenueDecodeError::Truncated {
                got: self.bytes.len(),
                min: end,
            })?;
        self.at = end;
        Ok(slice)
    }

    /// A one-byte length (≤ [`MAX_TEXT_LEN`]) and that much UTF-8.
    fn text(&mut self, field: &'static str) -> Result<String, VenueDecodeError> {
        let len = usize::from(self.array::<1>(0)?[0]);
        if len > MAX_TEXT_LEN {
            return Err(VenueDecodeError::TooLong {
                field,
                got: len,
                max: MAX_TEXT_LEN,
            });
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| VenueDecodeError::NotUtf8 { field })
    }

    /// Bytes left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at..];
        self.at = self.bytes.len();
        rest
    }

    /// Refuses bytes after the end.
    pub(crate) fn finish(&self) -> Result<(), VenueDecodeError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            extra => Err(VenueDecodeError::TrailingBytes { extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::venue::error::PointError;
    use crate::venue::ibe::MasterSecretShare;

    fn code(rng: &mut ChaCha20Rng) -> EntryCode {
        let mpk = MasterSecretShare::generate(rng).public_key();
        EntryCode::new(
            mpk,
            "Café Zähringer",
            "Zähringerplatz 11, Bern",
            UnixTime(10),
            UnixTime(20),
            rng,
        )
        .unwrap()
    }

    #[test]
    fn qr_text_round_trips_and_refuses_what_is_not_one() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let code = code(&mut rng);
        let text = code.to_qr_text();
        assert!(text.starts_with(QR_TEXT_PREFIX));
        assert!(text.is_ascii() && !text.contains('=') && !text.contains('+'));
        assert_eq!(EntryCode::from_qr_text(&text).unwrap(), code);
        assert_eq!(
            EntryCode::from_qr_text(&format!(" {text}\n")).unwrap(),
            code
        );
        let encoded = &text[QR_TEXT_PREFIX.len()..];
        for bad in [
            encoded.to_owned(),
            format!("https://example.org/{encoded}"),
            format!("{text}="),
            format!("{QR_TEXT_PREFIX}{}", encoded.replace(['-', '_'], "+")),
            format!("{QR_TEXT_PREFIX}!"),
        ] {
            assert_eq!(
                EntryCode::from_qr_text(&bad),
                Err(VenueDecodeError::NotQrText),
                "{bad}"
            );
        }
        assert!(matches!(
            EntryCode::from_qr_text(&format!("{QR_TEXT_PREFIX}AQ")),
            Err(VenueDecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let code = code(&mut rng);
        let bytes = code.to_bytes();
        assert_eq!(EntryCode::from_bytes(&bytes).unwrap(), code);
        assert!(!format!("{code:?}").contains(&hex::encode(code.seed)));
    }

    #[test]
    fn bad_payloads_get_their_error() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let bytes = code(&mut rng).to_bytes();
        assert!(matches!(
            EntryCode::from_bytes(&[]),
            Err(VenueDecodeError::Truncated { .. })
        ));
        for len in 0..bytes.len() {
            assert!(
                EntryCode::from_bytes(&bytes[..len]).is_err(),
                "prefix {len}"
            );
        }
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(
            EntryCode::from_bytes(&v2),
            Err(VenueDecodeError::UnsupportedVersion(2))
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            EntryCode::from_bytes(&trailing),
            Err(VenueDecodeError::TrailingBytes { extra: 1 })
        );
        let mut identity = bytes.clone();
        identity[1..1 + G2_LEN].fill(0);
        identity[1] = 0xc0;
        assert_eq!(
            EntryCode::from_bytes(&identity),
            Err(VenueDecodeError::BadPoint {
                field: "master public key",
                error: PointError::Identity
            })
        );
        let mut off = bytes.clone();
        off[1..1 + G2_LEN].copy_from_slice(&crate::venue::ibe::tests::off_subgroup_g2());
        assert_eq!(
            EntryCode::from_bytes(&off),
            Err(VenueDecodeError::BadPoint {
                field: "master public key",
                error: PointError::NotInSubgroup
            })
        );
        let mut inverted = bytes.clone();
        inverted[1 + G2_LEN + 32 + 7] = 30;
        assert_eq!(
            EntryCode::from_bytes(&inverted),
            Err(VenueDecodeError::BadTimeRange { field: "validity" })
        );
        let mut long = bytes[..ENTRY_CODE_FIXED_LEN - 2].to_vec();
        long.push(101);
        long.extend_from_slice(&[b'a'; 101]);
        long.push(0);
        assert!(matches!(
            EntryCode::from_bytes(&long),
            Err(VenueDecodeError::TooLong { got: 101, .. })
        ));
        let mut not_utf8 = bytes[..ENTRY_CODE_FIXED_LEN - 2].to_vec();
        not_utf8.extend_from_slice(&[1, 0xff, 0]);
        assert_eq!(
            EntryCode::from_bytes(&not_utf8),
            Err(VenueDecodeError::NotUtf8 {
                field: "description"
            })
        );
    }

    #[test]
    fn construction_checks_its_inputs() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mpk = MasterSecretShare::generate(&mut rng).public_key();
        let long = "x".repeat(MAX_TEXT_LEN + 1);
        assert!(matches!(
            EntryCode::new(mpk, &long, "", UnixTime(0), UnixTime(1), &mut rng),
            Err(VenueError::TooLong {
                field: "description",
                ..
            })
        ));
        assert_eq!(
            EntryCode::new(mpk, "", "", UnixTime(2), UnixTime(1), &mut rng),
            Err(VenueError::BadTimeRange)
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = EntryCode::from_bytes(&bytes);
        }

        #[test]
        fn decode_never_panics_behind_a_valid_key(
            seed in proptest::prelude::any::<u64>(),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            // A valid version and key, so the fuzzing reaches the times and texts.
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut bytes = code(&mut rng).to_bytes()[..1 + G2_LEN].to_vec();
            bytes.extend_from_slice(&tail);
            if let Ok(decoded) = EntryCode::from_bytes(&bytes) {
                proptest::prop_assert_eq!(decoded.to_bytes(), bytes);
            }
        }
    }
}
