//! Report types shared by both schemes.

use serde::{Deserialize, Serialize};

/// How a positive was established (GAEN `ReportType` values).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ReportType {
    /// A laboratory test confirmed the infection.
    ConfirmedTest = 1,
    /// A clinician diagnosed the infection without a test ("likely").
    ConfirmedClinicalDiagnosis = 2,
    /// The user reported it without an authority's confirmation.
    SelfReport = 3,
    /// Derived from another report (GAEN `RECURSIVE`).
    Recursive = 4,
    /// An earlier report was withdrawn.
    Revoked = 5,
}

impl ReportType {
    /// The GAEN wire value.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Parses a GAEN wire value.
    pub fn from_code(code: u8) -> Option<ReportType> {
        Some(match code {
            1 => ReportType::ConfirmedTest,
            2 => ReportType::ConfirmedClinicalDiagnosis,
            3 => ReportType::SelfReport,
            4 => ReportType::Recursive,
            5 => ReportType::Revoked,
            _ => return None,
        })
    }
}
