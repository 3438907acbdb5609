//! The Ephemera contact-tracing protocol.
#![forbid(unsafe_code)]

pub mod error;
pub mod gaen;
mod hkdf;
pub mod pet;
pub mod report;
pub mod time;

pub use error::{CertificateError, DecodeError, Error, PetError, ValidationError};
pub use report::ReportType;
pub use time::{DayNumber, INTERVALS_PER_DAY, IntervalNumber, UnixTime};
