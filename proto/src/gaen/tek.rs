//! Temporary Exposure Keys and the diagnosis keys a positive phone uploads.

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::report::ReportType;
use crate::time::IntervalNumber;

/// A GAEN Temporary Exposure Key: 16 random bytes, one per UTC day.
///
/// # Privacy
/// While a key is in use it links every identifier of its day, so it never leaves the phone
/// before it has expired. `Debug` does not print it.
#[derive(Clone, Serialize, Deserialize, PartialOrd, Ord, Hash)]
pub struct TemporaryExposureKey(pub [u8; 16]);

impl TemporaryExposureKey {
    /// Draws a fresh key from `rng` (GAEN: `CRNG(16)`).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut key = [0u8; 16];
        rng.fill_bytes(&mut key);
        TemporaryExposureKey(key)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl PartialEq for TemporaryExposureKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TemporaryExposureKey {}

impl fmt::Debug for TemporaryExposureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TemporaryExposureKey(<redacted>)")
    }
}

/// A key a positive phone publishes, with its validity window and report metadata.
///
/// Field names follow GAEN's `TemporaryExposureKey` protobuf message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DiagnosisKey {
    /// The key itself.
    pub key: TemporaryExposureKey,
    /// First interval the key was valid (GAEN `rolling_start_interval_number`).
    pub rolling_start: IntervalNumber,
    /// Number of intervals it was valid, 1..=144 (GAEN `rolling_period`).
    pub rolling_period: u8,
    /// How the positive was established.
    pub report_type: ReportType,
    /// Days from symptom onset to the key's day (negative: before onset), when known.
    pub days_since_onset: Option<i8>,
}

impl DiagnosisKey {
    /// The first interval after the key's validity window.
    pub fn rolling_end(&self) -> IntervalNumber {
        self.rolling_start.plus(u32::from(self.rolling_period))
    }
}
