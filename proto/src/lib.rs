//! The Ephemera contact-tracing protocol.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod batch;
pub mod error;
pub mod gaen;
mod hkdf;
pub mod pet;
pub mod report;
pub mod scheme;
pub mod signing;
pub mod time;
pub mod upload;
pub mod wire;

pub use error::{
    CertificateError, CodeError, DecodeError, Error, PetError, UploadError, ValidationError,
};
pub use report::{PublishedToken, ReportContents, ReportLimits, ReportType, SchemeKind};
pub use time::{DayNumber, INTERVALS_PER_DAY, IntervalNumber, UnixTime};
