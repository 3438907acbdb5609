//! Venue check-in: warn the people who shared a place with a case, without anyone's
//! trajectory (CrowdNotifier, Lueks et al., PoPETs 2021; techspec `basic.rst` and
//! `identity-based-encryption.rst`).
//!
//! ```text
//!  venue setup                 phone                      authority                  phone
//!  create_venue ─ EntryCode (QR) ─▶ check_in ─▶ [CheckIn] (stored, per hour)
//!              └ TraceCode (offline) ──────────────────▶ trace_keys(hours) ─ Notice::seal
//!                                                          └▶ [VenueTrace] ──▶ CheckInIndex::match_traces
//!                                                                               └▶ [Warning]
//! ```
//!
//! - [`create_venue`] draws two master secret shares, one for the venue and one for the
//!   health authority. The entry code carries their combined public key; the trace code
//!   keeps the venue's share and the authority's share sealed to the authority's HPKE key.
//! - [`check_in`] encrypts (arrival, departure, notification key) to the venue's identity
//!   of each hour the visit overlaps ([`ibe`], Boneh–Franklin over BLS12-381). The phone
//!   stores only these ciphertexts.
//! - For a case, the venue's partial keys ([`TraceCode::pre_trace_keys`]) and the
//!   authority's share make the hours' [`TraceKey`]s ([`complete_trace_keys`]); each is
//!   checked against the venue's key. The authority's [`Notice`] is sealed under the
//!   venue's notification key, so only visitors can read it.
//! - A phone tries each published key on its check-ins of that hour only
//!   ([`CheckInIndex`]); a match whose times overlap the case's gives a [`Warning`]: day,
//!   hours and message, never the venue.
//!
//! The whole flow:
//!
//! ```
//! use ephemera_proto::UnixTime;
//! use ephemera_proto::sealed::SealingSecretKey;
//! use ephemera_proto::venue::{check_in, create_venue, match_check_ins, CheckIn, EntryCode, Notice, VenueHour};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! let mut rng = ChaCha20Rng::seed_from_u64(20);
//! let authority = SealingSecretKey::generate(&mut rng);
//! let (entry, trace_code) = create_venue(
//!     &authority.public_key(), "Café", "Main Street 1", UnixTime(0), UnixTime(u64::MAX), &mut rng,
//! ).unwrap();
//!
//! // A phone scans the QR code and checks in for 40 minutes; it keeps only the check-ins.
//! let scanned = EntryCode::from_bytes(&entry.to_bytes()).unwrap();
//! let arrival = UnixTime(1_700_000_000);
//! let stored: Vec<Vec<u8>> = check_in(&scanned, arrival, arrival.plus_seconds(2400), &mut rng)
//!     .unwrap()
//!     .iter()
//!     .map(CheckIn::to_bytes)
//!     .collect();
//!
//! // A case was there: the venue's trace code and the authority's key make the hour's keys.
//! let hour = VenueHour::containing(arrival).unwrap();
//! let notice = Notice { case_from: arrival, case_until: arrival.plus_seconds(600), message: "Get tested.".into() };
//! let published: Vec<Vec<u8>> = trace_code
//!     .trace_keys(&authority, hour, hour)
//!     .unwrap()
//!     .into_iter()
//!     .map(|key| notice.seal(&entry, key, &mut rng).unwrap().to_bytes())
//!     .collect();
//!
//! // The phone matches locally: a warning with the day, hours and message, not the venue.
//! let check_ins: Vec<CheckIn> = stored.iter().map(|b| CheckIn::from_bytes(b).unwrap()).collect();
//! let traces: Vec<_> = published.iter().map(|b| ephemera_proto::venue::VenueTrace::from_bytes(b).unwrap()).collect();
//! let warnings = match_check_ins(&traces, &check_ins);
//! assert_eq!(warnings.len(), 1);
//! assert_eq!(warnings[0].hours, vec![hour]);
//! assert_eq!(warnings[0].message, "Get tested.");
//! ```
//!
//! Curve points from outside (the QR code's key, each check-in's `c1`, each trace key) are
//! refused when malformed, the identity, or outside the prime-order subgroup
//! ([`PointError`]). Hash-to-curve is RFC 9380 with Ephemera's own domain tags
//! ([`hash`]); the derivation of identities is CrowdNotifier's, byte for byte
//! ([`identity`]). `docs/PROTOCOL.md` §10 lists every label.

mod entry;
mod error;
pub mod hash;
pub mod ibe;
pub mod identity;
mod key_announcement;
mod release;
mod trace;
mod trace_code;
mod visit;

pub use entry::{
    ENTRY_CODE_FIXED_LEN, ENTRY_CODE_VERSION, EntryCode, MAX_TEXT_LEN, QR_TEXT_PREFIX,
};
pub use error::{PointError, VenueDecodeError, VenueError};
pub use ibe::{IdentitySecretKey, MasterPublicKey, MasterSecretShare};
pub use identity::{Identity, VENUE_HOUR_SECONDS};
pub use key_announcement::{VENUE_KEY_ANNOUNCEMENT_LABEL, VenueKeyAnnouncement};
pub use release::{
    MAX_RELEASE_CLOCK_SKEW_SECONDS, MAX_RELEASE_LEN, RELEASE_TRACES, ReleaseError, ReleaseId,
    ReleaseIndex, ReleaseIndexEntry, SignedVenueRelease, VenueRelease,
};
pub use trace::{
    CheckInIndex, MAX_MESSAGE_LEN, MAX_VENUE_TRACE_LEN, NOTICE_LABEL, Notice, SealedNotice,
    TRACE_KEY_LEN, TRACE_KEY_VERSION, TraceKey, VenueTrace, Warning, match_check_ins,
};
pub use trace_code::{
    AUTHORITY_SHARE_INFO, MAX_TRACE_HOURS, PreTraceKey, SEALED_SHARE_LEN, TRACE_CODE_VERSION,
    TRACE_TEXT_PREFIX, TraceCode, complete_trace_keys, create_venue, open_authority_share,
};
pub use visit::{
    CHECK_IN_LEN, CHECK_IN_VERSION, CheckIn, MAX_VISIT_HOURS, VISIT_RECORD_LEN, VenueHour, check_in,
};
