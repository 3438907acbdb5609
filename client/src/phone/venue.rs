//! Venue check-in on the phone (CrowdNotifier; the cryptography is
//! `ephemera_proto::venue`, the app's flow `docs/MOBILE.md` §16).
//!
//! ```text
//!  check_in(now, qr_text) ─▶ open check-in: entry code + arrival (store meta OpenCheckIn)
//!  check_out(now) | handle_timeout past arrival + venue.max_stay_seconds
//!      └▶ proto::venue::check_in ─▶ one CheckIn ciphertext per hour (store check-ins);
//!         the entry code and the times are dropped
//!  match_venue_traces(now, published) | the sync's releases (venue_releases.rs)
//!      ─▶ CheckInIndex ─▶ VenueWarning (day, hours, message; never the venue)
//!      ─▶ PhoneEvent::VenueWarning, kept until retention
//! ```
//!
//! # What is kept
//! While a check-in is open, the entry code's bytes and the arrival, nothing else (the
//! visit cannot be encrypted before its departure is known). After check-out, only the
//! [`CheckInRecord`](crate::store::CheckInRecord)s (one ciphertext per hour of the visit, 197 bytes, under the day key
//! of its hour) until retention deletes them; and the warnings found (day, hours,
//! message), until retention too.

use ephemera_proto::venue::{VenueHour, Warning};
use ephemera_proto::{DayNumber, UnixTime};
use serde::{Deserialize, Serialize};

use super::Phone;
use crate::error::{ClientError, StoreError};
use crate::store::{MetaKey, Store};

/// The check-in still open, as kept (meta [`MetaKey::OpenCheckIn`], postcard).
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct OpenVisit {
    /// The scanned entry code's bytes: the check-out encrypts to its identities.
    entry: Vec<u8>,
    /// When the user checked in.
    arrival: UnixTime,
}

impl std::fmt::Debug for OpenVisit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenVisit(<redacted>)")
    }
}

impl Drop for OpenVisit {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.entry);
    }
}

impl OpenVisit {
    /// When the user checked in.
    pub(super) fn arrival(&self) -> UnixTime {
        self.arrival
    }

    /// The open check-in of `store`, if any.
    pub(super) fn load(store: &impl Store) -> Result<Option<Self>, ClientError> {
        store
            .meta(MetaKey::OpenCheckIn)?
            .map(|bytes| {
                postcard::from_bytes(&bytes).map_err(|_| {
                    StoreError::Corrupt {
                        what: "open check-in",
                    }
                    .into()
                })
            })
            .transpose()
    }
}

/// The open check-in, as the app shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckInStatus {
    /// The venue's name (its entry code's description), for the screen of the place the
    /// user is in now; gone from the phone at check-out.
    pub venue_name: String,
    /// When the user checked in.
    pub arrival: UnixTime,
    /// When the phone checks out by itself if the user does not
    /// (`venue.max_stay_seconds` after arrival).
    pub automatic_check_out: UnixTime,
}

impl std::fmt::Debug for CheckInStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckInStatus(<redacted>)")
    }
}

/// A venue warning: a case was at a place while the user was, on `day` in `hours`; the
/// health authority's `message`. Never where.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueWarning {
    /// The UTC day of the visit.
    pub day: DayNumber,
    /// The venue hours (unix seconds / 3600) of the visit a case's time matched, in order.
    pub hours: Vec<VenueHour>,
    /// The health authority's message (what to do: get tested, watch for symptoms).
    pub message: String,
}

impl std::fmt::Debug for VenueWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenueWarning")
            .field("day", &self.day)
            .field("hours", &self.hours.len())
            .finish_non_exhaustive()
    }
}

impl From<Warning> for VenueWarning {
    fn from(w: Warning) -> Self {
        VenueWarning {
            day: w.day,
            hours: w.hours,
            message: w.message,
        }
    }
}

#[cfg(feature = "venue")]
impl VenueWarning {
    /// Whether `self` says nothing `kept` does not: same day and message, and its hours
    /// among `kept`'s (the same traces matched again).
    fn covered_by(&self, kept: &VenueWarning) -> bool {
        self.day == kept.day
            && self.message == kept.message
            && self.hours.iter().all(|h| kept.hours.contains(h))
    }
}

/// What one [`Phone::match_venue_traces`] did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct VenueMatchSummary {
    /// Traces given.
    pub traces: usize,
    /// Traces that did not decode (skipped).
    pub undecodable: usize,
    /// Decryptions tried: one per kept check-in of each trace's hour.
    pub attempts: usize,
    /// Warnings not found before (each also raised as [`PhoneEvent::VenueWarning`](crate::PhoneEvent::VenueWarning)).
    pub new_warnings: usize,
}

/// The warnings kept in `store`.
pub(super) fn load_warnings(store: &impl Store) -> Result<Vec<VenueWarning>, ClientError> {
    match store.meta(MetaKey::VenueWarnings)? {
        None => Ok(Vec::new()),
        Some(bytes) => postcard::from_bytes(&bytes).map_err(|_| {
            StoreError::Corrupt {
                what: "venue warnings",
            }
            .into()
        }),
    }
}

fn save_warnings(store: &mut impl Store, warnings: &[VenueWarning]) -> Result<(), ClientError> {
    if warnings.is_empty() {
        store.remove_meta(MetaKey::VenueWarnings)?;
    } else {
        let bytes = postcard::to_allocvec(warnings).expect("postcard into a Vec");
        store.set_meta(MetaKey::VenueWarnings, &bytes)?;
    }
    Ok(())
}

impl<S: Store> Phone<S> {
    /// Every venue warning kept (those of the retention period), oldest first.
    ///
    /// # Errors
    /// [`ClientError::Store`].
    pub fn venue_warnings(&self) -> Result<Vec<VenueWarning>, ClientError> {
        load_warnings(&self.store)
    }

    /// When a check-in at `arrival` ends by itself.
    pub(super) fn automatic_check_out(&self, arrival: UnixTime) -> UnixTime {
        arrival.plus_seconds(u64::from(self.config.venue.max_stay_seconds))
    }
}

/// Retention for the warnings (the check-ins go with the store's purge): those of days
/// before `oldest_kept` are dropped.
pub(super) fn purge_warnings(
    store: &mut impl Store,
    oldest_kept: DayNumber,
) -> Result<(), ClientError> {
    let mut kept = load_warnings(store)?;
    let before = kept.len();
    kept.retain(|w| w.day >= oldest_kept);
    if kept.len() != before {
        save_warnings(store, &kept)?;
    }
    Ok(())
}

/// The calls that encrypt and match (pairings over BLS12-381: `blst`, about 170 KiB of
/// the mobile library, hence the feature).
#[cfg(feature = "venue")]
mod flow {
    use ephemera_proto::UnixTime;
    use ephemera_proto::venue::{
        CheckIn, CheckInIndex, EntryCode, VenueHour, VenueTrace, check_in,
    };

    use zeroize::Zeroizing;

    use super::{
        CheckInStatus, OpenVisit, VenueMatchSummary, VenueWarning, load_warnings, save_warnings,
    };
    use crate::error::{CheckInError, ClientError, StoreError};
    use crate::phone::Phone;
    use crate::request::PhoneEvent;
    use crate::store::{CheckInRecord, MetaKey, Store};

    impl<S: Store> Phone<S> {
        /// Checks in at the venue whose QR code the user scanned (`qr_text`, what the camera
        /// read) at `now`. The phone keeps the entry code and `now` until check-out, nothing
        /// else.
        ///
        /// # Errors
        /// [`CheckInError::BadCode`] for a text that is not a valid venue code,
        /// [`CheckInError::NotYetValid`] / [`CheckInError::Expired`] outside the code's
        /// validity, [`CheckInError::AlreadyCheckedIn`] while a check-in is open; the clock
        /// contract's and the store's errors.
        pub fn check_in(
            &mut self,
            now: UnixTime,
            qr_text: &str,
        ) -> Result<CheckInStatus, ClientError> {
            let now = self.tick(now)?;
            if self.open_visit.is_some() {
                return Err(CheckInError::AlreadyCheckedIn.into());
            }
            let entry = EntryCode::from_qr_text(qr_text).map_err(CheckInError::from)?;
            if now < entry.valid_from() {
                return Err(CheckInError::NotYetValid.into());
            }
            if now > entry.valid_until() {
                return Err(CheckInError::Expired.into());
            }
            // Refused now rather than at check-out: a time whose hours cannot be encrypted.
            VenueHour::containing(self.automatic_check_out(now)).map_err(CheckInError::from)?;
            let visit = OpenVisit {
                entry: entry.to_bytes(),
                arrival: now,
            };
            let bytes = Zeroizing::new(postcard::to_allocvec(&visit).expect("postcard into a Vec"));
            self.store.set_meta(MetaKey::OpenCheckIn, &bytes)?;
            self.store.flush()?;
            let status = self.status_of(&visit, &entry);
            self.open_visit = Some(visit);
            Ok(status)
        }

        /// Checks out at `now` (at most `venue.max_stay_seconds` after arrival): the visit is
        /// encrypted to the venue's identity of each hour it overlaps, the ciphertexts are
        /// kept, and the entry code and times are dropped. Gives the number of hours kept.
        ///
        /// # Errors
        /// [`CheckInError::NotCheckedIn`] when no check-in is open (the phone may have checked
        /// out by itself: [`PhoneEvent::VenueCheckedOut`]); the clock contract's and the
        /// store's errors.
        pub fn check_out(&mut self, now: UnixTime) -> Result<usize, ClientError> {
            let now = self.tick(now)?;
            let Some(visit) = self.open_visit.clone() else {
                return Err(CheckInError::NotCheckedIn.into());
            };
            let departure = now.min(self.automatic_check_out(visit.arrival));
            self.close_visit(&visit, departure)
        }

        /// The open check-in, if any.
        pub fn open_check_in(&self) -> Option<CheckInStatus> {
            let visit = self.open_visit.as_ref()?;
            // Decoded when it was scanned: it decodes again (a store that changed under the
            // phone reads as no name rather than failing a status query).
            let entry = EntryCode::from_bytes(&visit.entry).ok()?;
            Some(self.status_of(visit, &entry))
        }

        /// Matches venue traces a node published (each `VenueTrace::to_bytes`) against the
        /// kept check-ins, on this thread (about 1 ms a check-in of a trace's hour; see
        /// `docs/BENCHMARKS.md`). A warning not found before is kept and raised as
        /// [`PhoneEvent::VenueWarning`](crate::PhoneEvent::VenueWarning); the same traces again raise nothing. Traces that do
        /// not decode are counted and skipped.
        ///
        /// # Errors
        /// The clock contract's and the store's errors.
        pub fn match_venue_traces<B: AsRef<[u8]>>(
            &mut self,
            now: UnixTime,
            traces: &[B],
        ) -> Result<VenueMatchSummary, ClientError> {
            // The tick purges check-ins past retention first.
            self.tick(now)?;
            let mut summary = VenueMatchSummary {
                traces: traces.len(),
                ..VenueMatchSummary::default()
            };
            let decoded: Vec<VenueTrace> = traces
                .iter()
                .filter_map(|bytes| VenueTrace::from_bytes(bytes.as_ref()).ok())
                .collect();
            summary.undecodable = traces.len() - decoded.len();
            (summary.attempts, summary.new_warnings) = self.warn_on(&decoded)?;
            Ok(summary)
        }

        /// Matches decoded traces against the kept check-ins: keeps and raises the warnings
        /// not found before. Gives the decryptions tried and the new warnings.
        pub(in crate::phone) fn warn_on(
            &mut self,
            decoded: &[VenueTrace],
        ) -> Result<(usize, usize), ClientError> {
            let check_ins = self
                .store
                .check_ins()?
                .iter()
                .map(|record| CheckIn::from_bytes(&record.bytes))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| StoreError::Corrupt { what: "check-in" })?;
            let index = CheckInIndex::new(check_ins);
            let attempts = index.attempts(decoded);
            let found = index.match_traces(decoded);
            let mut kept = load_warnings(&self.store)?;
            let mut new = Vec::new();
            for warning in found.into_iter().map(VenueWarning::from) {
                if kept.iter().any(|k| warning.covered_by(k)) {
                    continue;
                }
                kept.push(warning.clone());
                new.push(warning);
            }
            let fresh = new.len();
            if !new.is_empty() {
                save_warnings(&mut self.store, &kept)?;
                for warning in new {
                    self.push_event(PhoneEvent::VenueWarning(warning))?;
                }
                self.store.flush()?;
            }
            Ok((attempts, fresh))
        }

        fn status_of(&self, visit: &OpenVisit, entry: &EntryCode) -> CheckInStatus {
            CheckInStatus {
                venue_name: entry.description().to_owned(),
                arrival: visit.arrival,
                automatic_check_out: self.automatic_check_out(visit.arrival),
            }
        }

        /// Housekeeping: checks out a check-in open for the longest stay, at its end.
        pub(in crate::phone) fn check_out_if_due(
            &mut self,
            now: UnixTime,
        ) -> Result<(), ClientError> {
            let Some(visit) = self.open_visit.clone() else {
                return Ok(());
            };
            let due = self.automatic_check_out(visit.arrival);
            if due <= now {
                self.close_visit(&visit, due)?;
                self.push_event(PhoneEvent::VenueCheckedOut)?;
            }
            Ok(())
        }

        /// Encrypts `visit` until `departure`, keeps the ciphertexts, forgets the visit.
        fn close_visit(
            &mut self,
            visit: &OpenVisit,
            departure: UnixTime,
        ) -> Result<usize, ClientError> {
            let entry = EntryCode::from_bytes(&visit.entry).map_err(|_| StoreError::Corrupt {
                what: "open check-in",
            })?;
            let hours = check_in(&entry, visit.arrival, departure, &mut self.rng)
                .map_err(CheckInError::from)?;
            for hour in &hours {
                self.store.put_check_in(&CheckInRecord {
                    day: hour.hour().day(),
                    bytes: hour.to_bytes(),
                })?;
            }
            self.store.remove_meta(MetaKey::OpenCheckIn)?;
            self.store.flush()?;
            self.open_visit = None;
            Ok(hours.len())
        }
    }
}
