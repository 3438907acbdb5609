//! API keys of lab and hospital systems, and the daily quotas of keys and accounts, as the
//! store keeps them.
//!
//! An [`ApiKeyRecord`] is filed under the key's public id and holds the SHA-256 of its
//! 256-bit secret, never the secret. A [`QuotaRecord`] counts what one key or account
//! issued on one day.

use std::fmt;

use ephemera_proto::DayNumber;
use ephemera_proto::report::ReportType;
use serde::{Deserialize, Serialize};

/// Bytes of an API key's public id.
pub const API_KEY_ID_LEN: usize = 8;

/// One API key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Its name (an account-name-shaped label, e.g. `lab-north`; no free text).
    pub name: String,
    /// SHA-256 of its secret.
    pub secret_hash: [u8; 32],
    /// The test types it may issue codes for; empty: any.
    pub test_types: Vec<ReportType>,
    /// The admin (or `operator`) who created it.
    pub created_by: String,
    /// The day it was created.
    pub created: DayNumber,
    /// The day it was revoked, if it was: it works no more.
    pub revoked: Option<DayNumber>,
    /// The last day it was used.
    pub last_used: Option<DayNumber>,
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("name", &self.name)
            .field("test_types", &self.test_types)
            .field("created_by", &self.created_by)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl ApiKeyRecord {
    /// Whether it may issue codes of `test_type`.
    pub fn allows(&self, test_type: ReportType) -> bool {
        self.test_types.is_empty() || self.test_types.contains(&test_type)
    }
}

/// What one key or account issued on one day.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRecord {
    /// The day.
    pub day: DayNumber,
    /// Codes issued that day.
    pub used: u32,
}

impl QuotaRecord {
    /// `amount` more on `day` within `limit`: the new record, or `None` past the limit. A
    /// record of another day counts from zero.
    pub fn charge(self, day: DayNumber, amount: u32, limit: u32) -> Option<QuotaRecord> {
        let used = if self.day == day { self.used } else { 0 };
        let total = used.checked_add(amount)?;
        (total <= limit).then_some(QuotaRecord { day, used: total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_counts_per_day_and_stops_at_its_limit() {
        let fresh = QuotaRecord {
            day: DayNumber(1),
            used: 0,
        };
        let charged = fresh.charge(DayNumber(1), 3, 5).unwrap();
        assert_eq!(charged.used, 3);
        assert_eq!(charged.charge(DayNumber(1), 3, 5), None);
        assert_eq!(charged.charge(DayNumber(1), 2, 5).unwrap().used, 5);
        assert_eq!(charged.charge(DayNumber(2), 5, 5).unwrap().used, 5);
        assert_eq!(charged.charge(DayNumber(1), u32::MAX, u32::MAX), None);
    }
}
