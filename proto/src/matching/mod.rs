//! Exposure matching on the phone: published keys or tokens against what the phone holds.
//!
//! - [`GaenMatcher`] holds the RPIs a phone heard, each with its interval, and checks one
//!   published [`DiagnosisKey`](crate::gaen::DiagnosisKey) at a time: derive its RPIK
//!   (HKDF-SHA256), the RPIs of its validity window (AES-128), and look each up.
//! - [`PetMatcher`] holds the phone's peer-role tokens, each with its day, and scans runs
//!   of published 20-byte token records.
//!
//! Both are built once per matching run, hold no per-input state (memory stays constant
//! while a [`BatchStream`](crate::batch::BatchStream) feeds them) and are exact: a
//! prefilter over the first eight bytes of each held value rejects almost all inputs with
//! one memory access, and every survivor is compared in full.
//!
//! ```
//! use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
//! use ephemera_proto::matching::GaenMatcher;
//! use ephemera_proto::{IntervalNumber, ReportType};
//!
//! let tek = TemporaryExposureKey([9; 16]);
//! let start = IntervalNumber(2_800_512);
//! // The phone heard the 10th RPI of that key, 5 minutes into the next interval.
//! let heard = tek.rpik().rpi(IntervalNumber(start.0 + 10));
//! let matcher = GaenMatcher::new([(heard, IntervalNumber(start.0 + 11))]);
//! let key = DiagnosisKey {
//!     key: tek,
//!     rolling_start: start,
//!     rolling_period: 144,
//!     report_type: ReportType::ConfirmedTest,
//!     days_since_onset: None,
//! };
//! let mut matches = Vec::new();
//! matcher.match_key(&key, |m| matches.push((m.sighting, m.rpi_interval)));
//! assert_eq!(matches, [(0, IntervalNumber(start.0 + 10))]);
//! ```

mod gaen;
mod index;
mod pet;

pub use gaen::{GaenMatch, GaenMatcher};
pub use pet::{PetMatch, PetMatcher};
