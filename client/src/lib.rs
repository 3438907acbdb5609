//! The phone side of Ephemera: what a mobile app embeds.
//!
//! A sans-IO core ([`Phone`]) driven by `(time, event)` in the style of `quinn-proto`: it
//! never reads a clock, opens a socket or draws from a global RNG. The app (or the optional
//! `http` transport) moves bytes; Bluetooth is the app's job. The core does the key
//! schedule and rotation, says what to broadcast, aggregates what was heard into
//! encounters, streams and verifies signed batches while matching them in bounded memory,
//! scores risk, builds and sends reports (with decoys), and purges everything after the
//! retention period.
//!
//! # Call order
//! ```text
//! Phone::new(config, store, seed)          // resumes keys, open encounters, a pending
//!                                          // report and unacknowledged events
//! loop {
//!     input:  advertisement(now) | handle_sighting(now, s) | handle_timeout(now)
//!           | handle_response(now, id, r) | handle_failure(now, id) | confirm_time(now, date)
//!           | handle_batch(now, bytes) | begin_batch → push… → finish_batch(now, ingest)
//!           | start_report(now, code, onset, test_day) | start_revision(now, code)
//!           | retry_report(now) | start_sync(now) | set_paused(bool) | erase_all_data()
//!     output: while let Some(req) = poll_request()      { send; later handle_response }
//!             while let Some(ev)  = poll_event_record() { act; acknowledge_event(ev.id) }
//!             arm timer at poll_timeout()               // None until a time is known
//!     query:  status() | exposures(now) | unacknowledged_events()
//! }
//! ```
//!
//! # Guarantees
//! - **Kills lose nothing acknowledged**: a report is kept (and its certificate) before
//!   anything is sent and retried with backoff until a definitive answer; open encounters
//!   are checkpointed every `encounter.checkpoint_seconds`; events stay until acknowledged.
//! - **The clock is distrusted** (see `ClockConfig`): a past time is refused with
//!   [`ClientError::ClockWentBack`], a large forward jump purges nothing until confirmed.
//! - **Contact time follows the phone's own scan cadence**
//!   (`encounter.scan_period_seconds`), across the peer's key rotations.
//! - **Forgetting on disk**: [`store::SledStore`] seals each record under its day's key
//!   and destroys the key after retention.
//! - **An end of purpose**: at a verified sunset order's time, or at the configured end of
//!   life ([`SunsetConfig`]), the phone erases everything, keeps only an end marker and
//!   refuses every input with [`ClientError::Ended`] (`docs/MOBILE.md` §15).
//!
//! # Example
//! Two phones meet for 15 minutes; no node is involved yet.
//! ```
//! use ephemera_client::{ClientConfig, Phone, Sighting, Signal, store::MemoryStore};
//! use ephemera_proto::UnixTime;
//!
//! let config = ClientConfig::default().with_decoy_rate(0.0);
//! let mut alice = Phone::new(config.clone(), MemoryStore::new(), [1; 32]).unwrap();
//! let mut bob = Phone::new(config, MemoryStore::new(), [2; 32]).unwrap();
//! let start = UnixTime(1_700_000_400);
//! for step in 0..=30 {
//!     let now = start.plus_seconds(step * 30);
//!     let ad = alice.advertisement(now).unwrap();
//!     let signal = Signal::Rssi { rssi: -60, tx_power: None };
//!     bob.handle_sighting(now, &Sighting { payload: &ad.full, signal }).unwrap();
//! }
//! bob.handle_timeout(start.plus_seconds(3600)).unwrap();
//! assert!(bob.store().encounter_count() >= 1);
//! ```
// Unsafe code is forbidden everywhere; with the `ffi` feature only `client::ffi` (UniFFI's
// generated `extern "C"` scaffolding) is allowed it, so the crate-wide level is `deny`.
#![cfg_attr(not(feature = "ffi"), forbid(unsafe_code))]
#![cfg_attr(feature = "ffi", deny(unsafe_code))]
#![deny(missing_docs)]

pub mod config;
pub mod decoy;
pub mod error;
#[cfg(feature = "ffi")]
#[allow(unsafe_code)]
pub mod ffi;
#[cfg(feature = "http")]
pub mod http;
pub mod matching;
mod phone;
pub mod request;
pub mod risk;
pub mod signal;
pub mod store;

#[cfg(test)]
mod tests;

pub use config::{
    ClientConfig, ClockConfig, DecoyConfig, EncounterConfig, ReportConfig, SunsetConfig,
    SyncConfig, VenueConfig,
};
pub use error::{
    CheckInError, ClientError, ConfigError, ReportError, StoreError, VenueReleaseError,
};
pub use phone::{
    Advertisement, BatchIngest, CheckInStatus, EndReason, EventRecord, ExportSummary,
    HeadCrossCheck, IngestSummary, MAX_HEAD_LIST_BYTES, MAX_KEPT_EVENTS, Phone, PhoneStatus,
    ReportPreview, Sighting, TokenKeysCrossCheck, VenueMatchSummary, VenueWarning, http_date,
};
#[cfg(feature = "venue")]
pub use phone::{MAX_RELEASE_INDEX_BYTES, MAX_RELEASE_INDEX_ENTRIES, MAX_RELEASES_PER_ROUND};
pub use request::{Method, PhoneEvent, Purpose, Request, RequestId, Response};
pub use risk::{DailyExposure, ExposureWindow, HeardSpan, Infectiousness, RiskConfig};
pub use signal::Signal;

// UniFFI's derives name `crate::UniFfiTag`; the scaffolding lives in `ffi`.
#[cfg(feature = "ffi")]
#[doc(hidden)]
pub use ffi::UniFfiTag;
