//! Trace keys, the authority's notice, and matching on the phone.
//!
//! The authority publishes, per hour of a case's visit, a [`VenueTrace`]: the hour's
//! [`TraceKey`] and a [`SealedNotice`] that only visitors of the venue can open (it is
//! sealed under the venue's notification key, which each check-in carries inside its
//! ciphertext). A phone tries each trace key against its check-ins of the same hour; a
//! check-in that decrypts yields the visit's times and the notification key, which opens
//! the notice; a visit that overlaps the case's times becomes a [`Warning`].
//!
//! | message | bytes |
//! | --- | --- |
//! | trace key | version (1) ‖ hour (u32 BE) ‖ identity (32) ‖ secret key (48, compressed G1) |
//! | venue trace | trace key (85) ‖ notice nonce (12) ‖ ChaCha20-Poly1305(notification key, notice) |
//! | notice | u64be(case from) ‖ u64be(case until) ‖ message (UTF-8, ≤ [`MAX_MESSAGE_LEN`]) |
//!
//! The notice's AEAD `aad` is [`NOTICE_LABEL`] ‖ identity ‖ hour, so a notice cannot be
//! moved to another trace key.

use std::collections::HashMap;
use std::fmt;

use rand_core::CryptoRng;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use subtle::ConstantTimeEq;

use super::entry::{EntryCode, Reader};
use super::error::{VenueDecodeError, VenueError};
use super::ibe::{G1_LEN, IdentitySecretKey, TAG_LEN, decrypt};
use super::identity::{Identity, PayloadSecrets};
use super::visit::{CheckIn, VenueHour, VisitRecord};
use crate::time::{DayNumber, UnixTime};

/// The trace key version this implementation writes and reads.
pub const TRACE_KEY_VERSION: u8 = 1;
/// Bytes of an encoded trace key.
pub const TRACE_KEY_LEN: usize = 1 + 4 + 32 + G1_LEN;
/// Longest authority message in a notice, in bytes.
pub const MAX_MESSAGE_LEN: usize = 500;
/// Prefix of a notice's AEAD associated data.
pub const NOTICE_LABEL: &[u8] = b"ephemera/venue/notice/v1";
/// Bytes of a notice's nonce.
const NOTICE_NONCE_LEN: usize = 12;
/// Bytes of a notice's fixed plaintext (the case's times).
const NOTICE_FIXED_LEN: usize = 16;
/// Longest encoded venue trace.
pub const MAX_VENUE_TRACE_LEN: usize =
    TRACE_KEY_LEN + NOTICE_NONCE_LEN + NOTICE_FIXED_LEN + MAX_MESSAGE_LEN + TAG_LEN;

/// The key that opens one hour's check-ins at one venue: published by the authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceKey {
    /// The hour it opens.
    pub hour: VenueHour,
    /// The hour's identity, as the phone's ciphertexts were encrypted to.
    pub identity: Identity,
    /// The identity's secret key (both shares combined).
    pub key: IdentitySecretKey,
}

impl TraceKey {
    /// The [`TRACE_KEY_LEN`]-byte encoding.
    pub fn to_bytes(&self) -> [u8; TRACE_KEY_LEN] {
        let mut out = [0u8; TRACE_KEY_LEN];
        out[0] = TRACE_KEY_VERSION;
        out[1..5].copy_from_slice(&self.hour.0.to_be_bytes());
        out[5..37].copy_from_slice(&self.identity.0);
        out[37..].copy_from_slice(&self.key.to_bytes());
        out
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, VenueDecodeError> {
        let version = reader.array::<1>(TRACE_KEY_LEN)?[0];
        if version != TRACE_KEY_VERSION {
            return Err(VenueDecodeError::UnsupportedVersion(version));
        }
        let hour = VenueHour(u32::from_be_bytes(reader.array::<4>(TRACE_KEY_LEN)?));
        let identity = Identity(reader.array::<32>(TRACE_KEY_LEN)?);
        let key = IdentitySecretKey::from_bytes(&reader.array::<G1_LEN>(TRACE_KEY_LEN)?).map_err(
            |error| VenueDecodeError::BadPoint {
                field: "trace key",
                error,
            },
        )?;
        Ok(TraceKey {
            hour,
            identity,
            key,
        })
    }

    /// Reads a trace key.
    ///
    /// # Errors
    /// [`VenueDecodeError`]: wrong size, unknown version, or a key that is malformed, the
    /// identity or outside the subgroup.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VenueDecodeError> {
        let mut reader = Reader::new(bytes);
        let key = Self::read(&mut reader)?;
        reader.finish()?;
        Ok(key)
    }
}

/// What the authority tells the visitors of a venue: the case's time there and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// When the case arrived (the authority may round it).
    pub case_from: UnixTime,
    /// When the case left.
    pub case_until: UnixTime,
    /// The authority's message to the people warned.
    pub message: String,
}

impl Notice {
    fn aad(identity: &Identity, hour: VenueHour) -> Vec<u8> {
        [NOTICE_LABEL, &identity.0, &hour.0.to_be_bytes()].concat()
    }

    /// Seals this notice for `trace_key`'s hour at the venue of `entry`, under the venue's
    /// notification key.
    ///
    /// # Errors
    /// [`VenueError::TooLong`] for a message over [`MAX_MESSAGE_LEN`] bytes and
    /// [`VenueError::BadTimeRange`] when the case's times are inverted.
    pub fn seal(
        &self,
        entry: &EntryCode,
        trace_key: TraceKey,
        rng: &mut impl CryptoRng,
    ) -> Result<VenueTrace, VenueError> {
        if self.message.len() > MAX_MESSAGE_LEN {
            return Err(VenueError::TooLong {
                field: "message",
                got: self.message.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        if self.case_until < self.case_from {
            return Err(VenueError::BadTimeRange);
        }
        let secrets = PayloadSecrets::derive(&entry.to_bytes());
        let mut nonce = [0u8; NOTICE_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut sealed = Vec::with_capacity(NOTICE_FIXED_LEN + self.message.len() + TAG_LEN);
        sealed.extend_from_slice(&self.case_from.0.to_be_bytes());
        sealed.extend_from_slice(&self.case_until.0.to_be_bytes());
        sealed.extend_from_slice(self.message.as_bytes());
        notice_key(&secrets.notification_key)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(&trace_key.identity, trace_key.hour)),
                &mut sealed,
            )
            .expect("ChaCha20-Poly1305 seals any message below 256 GiB");
        Ok(VenueTrace {
            key: trace_key,
            notice: SealedNotice {
                nonce,
                ciphertext: sealed,
            },
        })
    }
}

fn notice_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key"))
}

/// A notice sealed under a venue's notification key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedNotice {
    nonce: [u8; NOTICE_NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl SealedNotice {
    fn open(
        &self,
        notification_key: &[u8; 32],
        identity: &Identity,
        hour: VenueHour,
    ) -> Option<Notice> {
        let mut buffer = self.ciphertext.clone();
        let plain = notice_key(notification_key)
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(Notice::aad(identity, hour)),
                &mut buffer,
            )
            .ok()?;
        let (times, message) = plain.split_at_checked(NOTICE_FIXED_LEN)?;
        let mut from = [0u8; 8];
        from.copy_from_slice(&times[..8]);
        let mut until = [0u8; 8];
        until.copy_from_slice(&times[8..]);
        Some(Notice {
            case_from: UnixTime(u64::from_be_bytes(from)),
            case_until: UnixTime(u64::from_be_bytes(until)),
            message: String::from_utf8(message.to_vec()).ok()?,
        })
    }
}

/// One published record: an hour's trace key and the authority's sealed notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueTrace {
    /// The hour's trace key.
    pub key: TraceKey,
    /// The notice for the venue's visitors.
    pub notice: SealedNotice,
}

impl VenueTrace {
    /// The encoding: trace key ‖ notice nonce ‖ sealed notice.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(TRACE_KEY_LEN + NOTICE_NONCE_LEN + self.notice.ciphertext.len());
        out.extend_from_slice(&self.key.to_bytes());
        out.extend_from_slice(&self.notice.nonce);
        out.extend_from_slice(&self.notice.ciphertext);
        out
    }

    /// Reads a published record.
    ///
    /// # Errors
    /// [`VenueDecodeError`]: a bad trace key (see [`TraceKey::from_bytes`]), a sealed notice
    /// shorter than its fixed part and tag, or longer than [`MAX_VENUE_TRACE_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VenueDecodeError> {
        if bytes.len() > MAX_VENUE_TRACE_LEN {
            return Err(VenueDecodeError::TooLong {
                field: "venue trace",
                got: bytes.len(),
                max: MAX_VENUE_TRACE_LEN,
            });
        }
        let min = TRACE_KEY_LEN + NOTICE_NONCE_LEN + NOTICE_FIXED_LEN + TAG_LEN;
        let mut reader = Reader::new(bytes);
        let key = TraceKey::read(&mut reader)?;
        let nonce = reader.array::<NOTICE_NONCE_LEN>(min)?;
        let ciphertext = reader.rest();
        if bytes.len() < min {
            return Err(VenueDecodeError::Truncated {
                got: bytes.len(),
                min,
            });
        }
        Ok(VenueTrace {
            key,
            notice: SealedNotice {
                nonce,
                ciphertext: ciphertext.to_vec(),
            },
        })
    }
}

/// A warning for the phone's user: which day and hours, and the authority's message —
/// never where.
#[derive(Clone, PartialEq, Eq)]
pub struct Warning {
    /// The UTC day of the visit's arrival.
    pub day: DayNumber,
    /// The hours of the visit whose trace keys matched, in order.
    pub hours: Vec<VenueHour>,
    /// The authority's message.
    pub message: String,
}

impl fmt::Debug for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Warning")
            .field("day", &self.day)
            .field("hours", &self.hours)
            .finish_non_exhaustive()
    }
}

/// A phone's check-ins indexed by hour, so that each trace key meets only its own hour's.
#[derive(Clone, Debug, Default)]
pub struct CheckInIndex {
    by_hour: HashMap<VenueHour, Vec<CheckIn>>,
}

impl CheckInIndex {
    /// Indexes `check_ins`.
    pub fn new(check_ins: impl IntoIterator<Item = CheckIn>) -> Self {
        let mut by_hour: HashMap<VenueHour, Vec<CheckIn>> = HashMap::new();
        for c in check_ins {
            by_hour.entry(c.hour()).or_default().push(c);
        }
        CheckInIndex { by_hour }
    }

    /// How many check-ins the index holds.
    pub fn len(&self) -> usize {
        self.by_hour.values().map(Vec::len).sum()
    }

    /// Whether the index holds no check-in.
    pub fn is_empty(&self) -> bool {
        self.by_hour.is_empty()
    }

    /// How many decryptions [`CheckInIndex::match_traces`] tries for `traces`: one per
    /// check-in of each trace's hour (for benches and metrics).
    pub fn attempts(&self, traces: &[VenueTrace]) -> usize {
        traces
            .iter()
            .map(|t| self.by_hour.get(&t.key.hour).map_or(0, Vec::len))
            .sum()
    }

    /// Tries every trace against the check-ins of its hour: the warnings, one per visit
    /// and message, for visits that overlap the case's time.
    ///
    /// A decryption costs one pairing; a check-in that does not match fails at the AEAD
    /// and costs nothing more.
    pub fn match_traces(&self, traces: &[VenueTrace]) -> Vec<Warning> {
        let mut found: Vec<(VisitRecord, Warning)> = Vec::new();
        for trace in traces {
            let Some(candidates) = self.by_hour.get(&trace.key.hour) else {
                continue;
            };
            for check_in in candidates {
                let Some(plain) =
                    decrypt(&trace.key.identity, &trace.key.key, check_in.ciphertext())
                else {
                    continue;
                };
                let Some(visit) = VisitRecord::from_bytes(&plain) else {
                    continue;
                };
                let Some(notice) =
                    trace
                        .notice
                        .open(&visit.notification_key, &trace.key.identity, trace.key.hour)
                else {
                    continue;
                };
                // Warn only when the visit and the case's time overlap (CrowdNotifier).
                if visit.arrival > notice.case_until || visit.departure < notice.case_from {
                    continue;
                }
                let same = found.iter_mut().find(|(v, w)| {
                    v.arrival == visit.arrival
                        && v.departure == visit.departure
                        && bool::from(v.notification_key.ct_eq(visit.notification_key.as_ref()))
                        && w.message == notice.message
                });
                match same {
                    Some((_, warning)) => {
                        if !warning.hours.contains(&trace.key.hour) {
                            warning.hours.push(trace.key.hour);
                            warning.hours.sort();
                        }
                    }
                    None => {
                        let warning = Warning {
                            day: visit.arrival.day(),
                            hours: vec![trace.key.hour],
                            message: notice.message,
                        };
                        found.push((visit, warning));
                    }
                }
            }
        }
        found.into_iter().map(|(_, w)| w).collect()
    }
}

/// Matches published `traces` against a phone's `check_ins` (see
/// [`CheckInIndex::match_traces`]).
pub fn match_check_ins(traces: &[VenueTrace], check_ins: &[CheckIn]) -> Vec<Warning> {
    CheckInIndex::new(check_ins.iter().cloned()).match_traces(traces)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::sealed::SealingSecretKey;
    use crate::venue::error::PointError;
    use crate::venue::trace_code::{TraceCode, create_venue};
    use crate::venue::visit::check_in;

    struct World {
        rng: ChaCha20Rng,
        authority: SealingSecretKey,
        entry: EntryCode,
        trace: TraceCode,
    }

    fn world(seed: u64) -> World {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let authority = SealingSecretKey::generate(&mut rng);
        let (entry, trace) = create_venue(
            &authority.public_key(),
            "Restaurant",
            "Square 3",
            UnixTime(0),
            UnixTime(u64::MAX),
            &mut rng,
        )
        .unwrap();
        World {
            rng,
            authority,
            entry,
            trace,
        }
    }

    fn publish(w: &mut World, from: UnixTime, until: UnixTime, message: &str) -> Vec<VenueTrace> {
        let first = VenueHour::containing(from).unwrap();
        let last = VenueHour::containing(until).unwrap();
        let notice = Notice {
            case_from: from,
            case_until: until,
            message: message.into(),
        };
        w.trace
            .trace_keys(&w.authority, first, last)
            .unwrap()
            .into_iter()
            .map(|k| notice.seal(&w.entry, k, &mut w.rng).unwrap())
            .collect()
    }

    #[test]
    fn a_visitor_is_warned_with_day_hours_and_message() {
        let mut w = world(1);
        let arrival = UnixTime(1_700_000_000);
        let departure = arrival.plus_seconds(5400);
        let check_ins = check_in(&w.entry, arrival, departure, &mut w.rng).unwrap();
        let traces = publish(&mut w, arrival.plus_seconds(600), departure, "Get tested");
        let warnings = match_check_ins(&traces, &check_ins);
        assert_eq!(
            warnings,
            vec![Warning {
                day: arrival.day(),
                hours: check_ins.iter().map(CheckIn::hour).collect(),
                message: "Get tested".into(),
            }]
        );
        assert!(!format!("{:?}", warnings[0]).contains("Get tested"));
        // Through bytes.
        let decoded: Vec<_> = traces
            .iter()
            .map(|t| VenueTrace::from_bytes(&t.to_bytes()).unwrap())
            .collect();
        assert_eq!(decoded, traces);
    }

    #[test]
    fn no_warning_for_other_hours_other_venues_or_no_overlap() {
        let mut w = world(2);
        let t = UnixTime(1_700_000_000);
        let check_ins = check_in(&w.entry, t, t.plus_seconds(60), &mut w.rng).unwrap();
        // The hour after.
        let later = publish(&mut w, t.plus_seconds(3600), t.plus_seconds(3700), "m");
        assert!(match_check_ins(&later, &check_ins).is_empty());
        // Same hour, but the case left before the visitor came.
        let before = publish(&mut w, t.minus_seconds(600), t.minus_seconds(1), "m");
        assert_eq!(before[0].key.hour, check_ins[0].hour());
        assert!(match_check_ins(&before, &check_ins).is_empty());
        // Another venue, same hour.
        let mut other = world(3);
        let foreign = publish(&mut other, t, t.plus_seconds(60), "m");
        assert!(match_check_ins(&foreign, &check_ins).is_empty());
    }

    #[test]
    fn a_notice_moved_to_another_key_does_not_open() {
        let mut w = world(4);
        let t = UnixTime(1_700_000_000);
        let check_ins = check_in(&w.entry, t, t.plus_seconds(3600), &mut w.rng).unwrap();
        let mut traces = publish(&mut w, t, t.plus_seconds(3600), "m");
        let notice = traces[1].notice.clone();
        traces[0].notice = notice;
        let warnings = match_check_ins(&traces[..1], &check_ins);
        assert!(warnings.is_empty());
    }

    #[test]
    fn bad_trace_bytes_get_their_error() {
        let mut w = world(5);
        let t = UnixTime(1_700_000_000);
        let bytes = publish(&mut w, t, t, "m")[0].to_bytes();
        assert!(matches!(
            VenueTrace::from_bytes(&[]),
            Err(VenueDecodeError::Truncated { .. })
        ));
        for len in 0..TRACE_KEY_LEN + NOTICE_NONCE_LEN + NOTICE_FIXED_LEN + TAG_LEN {
            assert!(
                VenueTrace::from_bytes(&bytes[..len]).is_err(),
                "prefix {len}"
            );
        }
        let mut v9 = bytes.clone();
        v9[0] = 9;
        assert_eq!(
            VenueTrace::from_bytes(&v9),
            Err(VenueDecodeError::UnsupportedVersion(9))
        );
        let mut identity = bytes.clone();
        identity[37..37 + G1_LEN].fill(0);
        identity[37] = 0xc0;
        assert_eq!(
            VenueTrace::from_bytes(&identity),
            Err(VenueDecodeError::BadPoint {
                field: "trace key",
                error: PointError::Identity
            })
        );
        let mut off = bytes.clone();
        off[37..37 + G1_LEN].copy_from_slice(&crate::venue::ibe::tests::off_subgroup_g1());
        assert_eq!(
            VenueTrace::from_bytes(&off),
            Err(VenueDecodeError::BadPoint {
                field: "trace key",
                error: PointError::NotInSubgroup
            })
        );
        let huge = vec![1u8; MAX_VENUE_TRACE_LEN + 1];
        assert!(matches!(
            VenueTrace::from_bytes(&huge),
            Err(VenueDecodeError::TooLong { .. })
        ));
        let key = TraceKey::from_bytes(&bytes[..TRACE_KEY_LEN]).unwrap();
        assert_eq!(key.to_bytes().as_slice(), &bytes[..TRACE_KEY_LEN]);
    }

    #[test]
    fn notices_check_their_inputs() {
        let mut w = world(6);
        let key = w
            .trace
            .trace_keys(&w.authority, VenueHour(1), VenueHour(1))
            .unwrap()
            .remove(0);
        let long = Notice {
            case_from: UnixTime(0),
            case_until: UnixTime(1),
            message: "x".repeat(MAX_MESSAGE_LEN + 1),
        };
        assert!(matches!(
            long.seal(&w.entry, key.clone(), &mut w.rng),
            Err(VenueError::TooLong {
                field: "message",
                ..
            })
        ));
        let inverted = Notice {
            case_from: UnixTime(2),
            case_until: UnixTime(1),
            message: String::new(),
        };
        assert_eq!(
            inverted.seal(&w.entry, key, &mut w.rng),
            Err(VenueError::BadTimeRange)
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700)) {
            let _ = VenueTrace::from_bytes(&bytes);
            let _ = TraceKey::from_bytes(&bytes);
        }

        #[test]
        fn matching_garbage_notices_never_panics(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let mut w = world(7);
            let t = UnixTime(1_700_000_000);
            let check_ins = check_in(&w.entry, t, t, &mut w.rng).unwrap();
            let mut trace = publish(&mut w, t, t, "m").remove(0);
            trace.notice.ciphertext = tail;
            proptest::prop_assert!(match_check_ins(&[trace], &check_ins).is_empty());
        }
    }
}
