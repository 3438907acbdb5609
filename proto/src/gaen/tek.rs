//! Temporary Exposure Keys and the diagnosis keys a positive phone uploads.

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::aem::{AssociatedEncryptedMetadata, AssociatedEncryptedMetadataKey, Metadata};
use super::rpi::{RollingProximityIdentifier, RollingProximityIdentifierKey};
use crate::report::ReportType;
use crate::time::IntervalNumber;

/// How far outside its validity window a sighting may lie and still match a key, in
/// intervals (GAEN: ±2 hours).
pub const MATCH_TOLERANCE_INTERVALS: u32 = 12;

/// A GAEN Temporary Exposure Key: 16 random bytes, one per UTC day.
///
/// # Privacy
/// While a key is in use it links every identifier of its day, so it never leaves the phone
/// before it has expired. `Debug` does not print it.
#[derive(Clone, Serialize, Deserialize, PartialOrd, Ord)]
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

    /// The Rolling Proximity Identifier Key derived from this key.
    pub fn rpik(&self) -> RollingProximityIdentifierKey {
        RollingProximityIdentifierKey::derive(self)
    }

    /// The Associated Encrypted Metadata Key derived from this key.
    pub fn aemk(&self) -> AssociatedEncryptedMetadataKey {
        AssociatedEncryptedMetadataKey::derive(self)
    }

    /// What to broadcast during `interval`: the RPI and the encrypted `metadata`.
    ///
    /// Derives both keys on each call; a broadcaster that wants to avoid that keeps the
    /// [`RollingProximityIdentifierKey`] and [`AssociatedEncryptedMetadataKey`] itself.
    pub fn advertisement(
        &self,
        interval: IntervalNumber,
        metadata: &Metadata,
    ) -> (RollingProximityIdentifier, AssociatedEncryptedMetadata) {
        let rpi = self.rpik().rpi(interval);
        let aem = self.aemk().encrypt(&rpi, metadata);
        (rpi, aem)
    }
}

impl Drop for TemporaryExposureKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for TemporaryExposureKey {}

impl PartialEq for TemporaryExposureKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TemporaryExposureKey {}

// By hand beside the constant-time `PartialEq`; hashes exactly what `eq` compares.
impl std::hash::Hash for TemporaryExposureKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

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

    /// Whether a sighting in `interval` may match this key: the interval lies in
    /// `rolling_start - tolerance .. rolling_end + tolerance` (see
    /// [`MATCH_TOLERANCE_INTERVALS`]).
    pub fn window_contains(&self, interval: IntervalNumber, tolerance: u32) -> bool {
        self.rolling_start.minus(tolerance) <= interval
            && interval < self.rolling_end().plus(tolerance)
    }

    /// Whether the key's validity window has ended by `now` (only such keys are published).
    pub fn is_expired(&self, now: IntervalNumber) -> bool {
        self.rolling_end() <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnosis_key(start: u32, period: u8) -> DiagnosisKey {
        DiagnosisKey {
            key: TemporaryExposureKey([1; 16]),
            rolling_start: IntervalNumber(start),
            rolling_period: period,
            report_type: ReportType::ConfirmedTest,
            days_since_onset: None,
        }
    }

    #[test]
    fn window_with_tolerance() {
        let k = diagnosis_key(1440, 144);
        let t = MATCH_TOLERANCE_INTERVALS;
        assert!(k.window_contains(IntervalNumber(1440), 0));
        assert!(k.window_contains(IntervalNumber(1583), 0));
        assert!(!k.window_contains(IntervalNumber(1584), 0));
        assert!(!k.window_contains(IntervalNumber(1439), 0));
        assert!(k.window_contains(IntervalNumber(1440 - 12), t));
        assert!(!k.window_contains(IntervalNumber(1440 - 13), t));
        assert!(k.window_contains(IntervalNumber(1584 + 11), t));
        assert!(!k.window_contains(IntervalNumber(1584 + 12), t));
    }

    #[test]
    fn window_saturates_at_the_ends_of_time() {
        assert!(diagnosis_key(3, 10).window_contains(IntervalNumber(0), 12));
        let last = diagnosis_key(u32::MAX - 5, 144);
        assert!(last.window_contains(IntervalNumber(u32::MAX - 1), 12));
    }

    #[test]
    fn expiry() {
        let k = diagnosis_key(1440, 144);
        assert!(!k.is_expired(IntervalNumber(1583)));
        assert!(k.is_expired(IntervalNumber(1584)));
    }

    #[test]
    fn advertisement_matches_the_derived_keys() {
        let tek = TemporaryExposureKey([5; 16]);
        let metadata = Metadata::v1_0(-3);
        let (rpi, aem) = tek.advertisement(IntervalNumber(77), &metadata);
        assert_eq!(rpi, tek.rpik().rpi(IntervalNumber(77)));
        assert_eq!(tek.aemk().decrypt(&rpi, &aem), metadata);
    }

    #[test]
    fn tek_debug_is_redacted() {
        let tek = TemporaryExposureKey([0xcd; 16]);
        let shown = format!("{tek:?}");
        assert_eq!(shown, "TemporaryExposureKey(<redacted>)");
        assert!(!shown.contains("cdcd"));
        let dk = DiagnosisKey {
            key: tek,
            rolling_start: IntervalNumber(0),
            rolling_period: 144,
            report_type: ReportType::SelfReport,
            days_since_onset: Some(2),
        };
        assert!(!format!("{dk:?}").contains("cdcd"));
    }
}
