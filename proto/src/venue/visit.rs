//! Checking in: the phone encrypts its visit to each hour it overlaps, and keeps only the
//! ciphertexts.
//!
//! A visit record (48 bytes) is `u64be(arrival) ‖ u64be(departure) ‖ notification key`.
//! A stored check-in (197 bytes):
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | version ([`CHECK_IN_VERSION`]) |
//! | 4 | venue hour (u32 BE, hours since the epoch) |
//! | 96 + 32 + 64 | IBE ciphertext `c1 ‖ c2 ‖ c3` of the visit record |
//!
//! The hour stays in clear so that matching tries a trace key only against the check-ins
//! of its own hour (CrowdNotifier labels records with their day, which makes a phone try
//! 24 times more pairings). Whoever reads the phone's store learns the hours it was
//! checked in somewhere, never where.

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::entry::{EntryCode, Reader};
use super::error::{VenueDecodeError, VenueError};
use super::ibe::{IbeCiphertext, encrypt};
use super::identity::{PayloadSecrets, VENUE_HOUR_SECONDS};
use crate::time::{DayNumber, UnixTime};

/// The check-in version this implementation writes and reads.
pub const CHECK_IN_VERSION: u8 = 1;
/// Bytes of a visit record (the IBE plaintext).
pub const VISIT_RECORD_LEN: usize = 48;
/// Bytes of an encoded check-in.
pub const CHECK_IN_LEN: usize = 1 + 4 + IbeCiphertext::encoded_len(VISIT_RECORD_LEN);
/// The most hours one visit may span (a phone checks out automatically before).
pub const MAX_VISIT_HOURS: u64 = 24;

/// An hour of venue time: unix seconds / 3600. Identities and trace keys are per hour.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VenueHour(pub u32);

impl VenueHour {
    /// The hour `time` falls in.
    ///
    /// # Errors
    /// [`VenueError::TimeOutOfRange`] beyond hour `u32::MAX`.
    pub fn containing(time: UnixTime) -> Result<VenueHour, VenueError> {
        u32::try_from(time.0 / u64::from(VENUE_HOUR_SECONDS))
            .map(VenueHour)
            .map_err(|_| VenueError::TimeOutOfRange)
    }

    /// The first second of this hour.
    pub fn start(self) -> UnixTime {
        UnixTime(u64::from(self.0) * u64::from(VENUE_HOUR_SECONDS))
    }

    /// The UTC day this hour belongs to.
    pub fn day(self) -> DayNumber {
        self.start().day()
    }

    /// Every hour from `first` to `last` inclusive, at most `max` of them.
    ///
    /// # Errors
    /// [`VenueError::BadTimeRange`] when `last` is before `first`, and
    /// [`VenueError::TooManyHours`] for more than `max` hours.
    pub fn range(
        first: VenueHour,
        last: VenueHour,
        max: u64,
    ) -> Result<Vec<VenueHour>, VenueError> {
        if last < first {
            return Err(VenueError::BadTimeRange);
        }
        let count = u64::from(last.0 - first.0) + 1;
        if count > max {
            return Err(VenueError::TooManyHours { got: count, max });
        }
        Ok((first.0..=last.0).map(VenueHour).collect())
    }
}

/// What a check-in encrypts: the visit's times and the venue's notification key.
///
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct VisitRecord {
    pub(crate) arrival: UnixTime,
    pub(crate) departure: UnixTime,
    pub(crate) notification_key: Zeroizing<[u8; 32]>,
}

impl VisitRecord {
    pub(crate) fn to_bytes(&self) -> Zeroizing<[u8; VISIT_RECORD_LEN]> {
        let mut out = Zeroizing::new([0u8; VISIT_RECORD_LEN]);
        out[..8].copy_from_slice(&self.arrival.0.to_be_bytes());
        out[8..16].copy_from_slice(&self.departure.0.to_be_bytes());
        out[16..].copy_from_slice(self.notification_key.as_ref());
        out
    }

    /// Reads a decrypted record; `None` when it has the wrong size.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<VisitRecord> {
        if bytes.len() != VISIT_RECORD_LEN {
            return None;
        }
        let mut arrival = [0u8; 8];
        arrival.copy_from_slice(&bytes[..8]);
        let mut departure = [0u8; 8];
        departure.copy_from_slice(&bytes[8..16]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&bytes[16..]);
        Some(VisitRecord {
            arrival: UnixTime(u64::from_be_bytes(arrival)),
            departure: UnixTime(u64::from_be_bytes(departure)),
            notification_key: key,
        })
    }
}

impl fmt::Debug for VisitRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VisitRecord(<redacted>)")
    }
}

/// One hour of one visit, encrypted to that hour's identity: all a phone stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckIn {
    hour: VenueHour,
    ciphertext: IbeCiphertext,
}

impl CheckIn {
    /// The hour this check-in can be matched in.
    pub fn hour(&self) -> VenueHour {
        self.hour
    }

    pub(crate) fn ciphertext(&self) -> &IbeCiphertext {
        &self.ciphertext
    }

    /// The [`CHECK_IN_LEN`]-byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHECK_IN_LEN);
        out.push(CHECK_IN_VERSION);
        out.extend_from_slice(&self.hour.0.to_be_bytes());
        out.extend_from_slice(&self.ciphertext.to_bytes());
        out
    }

    /// Reads a stored check-in.
    ///
    /// # Errors
    /// [`VenueDecodeError`]: wrong size, unknown version, or a `c1` that is malformed, the
    /// identity or outside the subgroup.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VenueDecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.array::<1>(CHECK_IN_LEN)?[0];
        if version != CHECK_IN_VERSION {
            return Err(VenueDecodeError::UnsupportedVersion(version));
        }
        let hour = VenueHour(u32::from_be_bytes(reader.array::<4>(CHECK_IN_LEN)?));
        let rest = reader.rest();
        let expected = CHECK_IN_LEN - 5;
        if rest.len() < expected {
            return Err(VenueDecodeError::Truncated {
                got: bytes.len(),
                min: CHECK_IN_LEN,
            });
        }
        if rest.len() > expected {
            return Err(VenueDecodeError::TrailingBytes {
                extra: rest.len() - expected,
            });
        }
        Ok(CheckIn {
            hour,
            ciphertext: IbeCiphertext::from_bytes(rest)?,
        })
    }
}

/// Checks in at the venue of `entry` from `arrival` to `departure`: one [`CheckIn`] per
/// hour the visit overlaps (CrowdNotifier's `getAffectedIntervalStarts`), each encrypting
/// the same visit record.
///
/// # Privacy
/// Store only the returned check-ins; drop the entry code, which identifies the venue.
///
/// # Errors
/// [`VenueError::BadTimeRange`] when `departure` is before `arrival`,
/// [`VenueError::TooManyHours`] beyond [`MAX_VISIT_HOURS`], and
/// [`VenueError::TimeOutOfRange`] for times past hour `u32::MAX`.
pub fn check_in(
    entry: &EntryCode,
    arrival: UnixTime,
    departure: UnixTime,
    rng: &mut impl CryptoRng,
) -> Result<Vec<CheckIn>, VenueError> {
    if departure < arrival {
        return Err(VenueError::BadTimeRange);
    }
    let hours = VenueHour::range(
        VenueHour::containing(arrival)?,
        VenueHour::containing(departure)?,
        MAX_VISIT_HOURS,
    )?;
    let payload = entry.to_bytes();
    let secrets = PayloadSecrets::derive(&payload);
    let record = VisitRecord {
        arrival,
        departure,
        notification_key: Zeroizing::new(secrets.notification_key),
    }
    .to_bytes();
    Ok(entry
        .identities(hours)
        .into_iter()
        .map(|(hour, identity)| CheckIn {
            hour,
            ciphertext: encrypt(entry.master_public_key(), &identity, record.as_ref(), rng),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::venue::error::PointError;
    use crate::venue::ibe::MasterSecretShare;

    fn entry(rng: &mut ChaCha20Rng) -> EntryCode {
        let mpk = MasterSecretShare::generate(rng).public_key();
        EntryCode::new(mpk, "Bar", "Street 1", UnixTime(0), UnixTime(u64::MAX), rng).unwrap()
    }

    #[test]
    fn one_check_in_per_overlapped_hour() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let entry = entry(&mut rng);
        let arrival = UnixTime(1_700_000_000); // 22:13:20 UTC
        let check_ins = check_in(&entry, arrival, arrival.plus_seconds(3600), &mut rng).unwrap();
        let hours: Vec<_> = check_ins.iter().map(CheckIn::hour).collect();
        assert_eq!(hours, vec![VenueHour(472_222), VenueHour(472_223)]);
        for c in &check_ins {
            let bytes = c.to_bytes();
            assert_eq!(bytes.len(), CHECK_IN_LEN);
            assert_eq!(&CheckIn::from_bytes(&bytes).unwrap(), c);
        }
        assert_eq!(
            check_in(&entry, arrival, arrival, &mut rng).unwrap().len(),
            1
        );
    }

    #[test]
    fn bad_visits_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let entry = entry(&mut rng);
        let t = UnixTime(1_700_000_000);
        assert_eq!(
            check_in(&entry, t, t.minus_seconds(1), &mut rng),
            Err(VenueError::BadTimeRange)
        );
        assert_eq!(
            check_in(&entry, t, t.plus_seconds(24 * 3600), &mut rng),
            Err(VenueError::TooManyHours { got: 25, max: 24 })
        );
        assert_eq!(
            check_in(&entry, UnixTime(u64::MAX - 1), UnixTime(u64::MAX), &mut rng),
            Err(VenueError::TimeOutOfRange)
        );
    }

    #[test]
    fn bad_check_ins_get_their_error() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let entry = entry(&mut rng);
        let bytes =
            check_in(&entry, UnixTime(7200), UnixTime(7200), &mut rng).unwrap()[0].to_bytes();
        assert!(matches!(
            CheckIn::from_bytes(&[]),
            Err(VenueDecodeError::Truncated { .. })
        ));
        assert!(matches!(
            CheckIn::from_bytes(&bytes[..100]),
            Err(VenueDecodeError::Truncated { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            CheckIn::from_bytes(&long),
            Err(VenueDecodeError::TrailingBytes { extra: 1 })
        );
        let mut v0 = bytes.clone();
        v0[0] = 0;
        assert_eq!(
            CheckIn::from_bytes(&v0),
            Err(VenueDecodeError::UnsupportedVersion(0))
        );
        let mut identity = bytes.clone();
        identity[5..5 + 96].fill(0);
        identity[5] = 0xc0;
        assert_eq!(
            CheckIn::from_bytes(&identity),
            Err(VenueDecodeError::BadPoint {
                field: "c1",
                error: PointError::Identity
            })
        );
        let mut off = bytes.clone();
        off[5..5 + 96].copy_from_slice(&crate::venue::ibe::tests::off_subgroup_g2());
        assert_eq!(
            CheckIn::from_bytes(&off),
            Err(VenueDecodeError::BadPoint {
                field: "c1",
                error: PointError::NotInSubgroup
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = CheckIn::from_bytes(&bytes);
        }

        #[test]
        fn decode_of_197_bytes_never_panics(bytes in proptest::prelude::any::<[u8; 32]>(), fill in proptest::prelude::any::<u8>()) {
            let mut full = vec![fill; CHECK_IN_LEN];
            full[0] = CHECK_IN_VERSION;
            full[5..37].copy_from_slice(&bytes);
            let _ = CheckIn::from_bytes(&full);
        }
    }
}
