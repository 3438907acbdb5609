//! What a sighting says about distance, and the compact histogram an encounter keeps of it.

use serde::{Deserialize, Serialize};

use crate::risk::{BUCKETS, RiskConfig};

/// Histogram bins.
pub const SIGNAL_BINS: usize = 20;
/// Width of one bin in dB.
pub const SIGNAL_BIN_DB: u8 = 4;
/// Level of the lower edge of bin 0 (dB); lower levels fall into bin 0, levels at or above
/// `SIGNAL_BASE_DB + SIGNAL_BINS × SIGNAL_BIN_DB` (110) into the last bin.
pub const SIGNAL_BASE_DB: u8 = 30;

/// The signal of one sighting, as the app measured it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Signal {
    /// Received strength in dBm (already corrected for the receiver's calibration), and the
    /// sender's transmit power from the advertisement's TX Power Level field, if present.
    ///
    /// `gaen` ignores `tx_power` and uses the sender's encrypted metadata once matched, as
    /// GAEN does; `pet` uses it, or the configured assumed transmit power when absent.
    Rssi {
        /// RSSI in dBm (negative).
        rssi: i8,
        /// Transmit power in dBm, when advertised.
        tx_power: Option<i8>,
    },
    /// Attenuation in dB (transmit power − RSSI), when the platform computes it.
    Attenuation(u8),
}

/// Whether a histogram holds attenuations or negated RSSI values that still need the
/// sender's transmit power added.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LevelKind {
    /// Levels are attenuations (dB).
    Attenuation,
    /// Levels are −RSSI (dB); attenuation = level + transmit power.
    NegatedRssi,
}

impl Signal {
    /// The level this sighting records for `gaen` and its kind: an attenuation as given, or
    /// the negated RSSI that waits for the sender's transmit power from its metadata.
    pub(crate) fn level(self) -> (LevelKind, u8) {
        match self {
            Signal::Attenuation(a) => (LevelKind::Attenuation, a),
            Signal::Rssi { rssi, .. } => (
                LevelKind::NegatedRssi,
                (-i16::from(rssi)).clamp(0, 255) as u8,
            ),
        }
    }
}

/// Seconds heard per signal level, in 4-dB bins: what an encounter remembers of its
/// sightings (40 bytes however many there were).
///
/// Keeping levels rather than buckets lets the attenuation thresholds change later and lets
/// `gaen` add the sender's transmit power once the matching key decrypts it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignalHistogram {
    seconds: [u16; SIGNAL_BINS],
}

impl SignalHistogram {
    fn bin(level: u8) -> usize {
        (usize::from(level.saturating_sub(SIGNAL_BASE_DB)) / usize::from(SIGNAL_BIN_DB))
            .min(SIGNAL_BINS - 1)
    }

    /// Adds `seconds` heard at `level`.
    pub fn add(&mut self, level: u8, seconds: u32) {
        let bin = &mut self.seconds[Self::bin(level)];
        *bin = bin.saturating_add(seconds.min(u32::from(u16::MAX)) as u16);
    }

    /// Adds another histogram.
    pub fn merge(&mut self, other: &SignalHistogram) {
        for (a, b) in self.seconds.iter_mut().zip(other.seconds) {
            *a = a.saturating_add(b);
        }
    }

    /// Total seconds.
    pub fn total_seconds(&self) -> u32 {
        self.seconds.iter().map(|s| u32::from(*s)).sum()
    }

    /// Seconds per attenuation bucket, taking each bin at its centre plus `offset_db` (the
    /// transmit power for negated-RSSI levels, 0 for attenuations).
    pub fn buckets(&self, offset_db: i32, risk: &RiskConfig) -> [u32; BUCKETS] {
        let mut out = [0u32; BUCKETS];
        for (i, s) in self.seconds.iter().enumerate() {
            if *s == 0 {
                continue;
            }
            let centre = i32::from(SIGNAL_BASE_DB)
                + i as i32 * i32::from(SIGNAL_BIN_DB)
                + i32::from(SIGNAL_BIN_DB) / 2;
            out[risk.bucket(centre + offset_db)] += u32::from(*s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_buckets() {
        assert_eq!(
            Signal::Rssi {
                rssi: -60,
                tx_power: Some(-5)
            }
            .level(),
            (LevelKind::NegatedRssi, 60)
        );
        assert_eq!(
            Signal::Attenuation(55).level(),
            (LevelKind::Attenuation, 55)
        );
        let mut h = SignalHistogram::default();
        h.add(50, 100); // bin [50, 54) → centre 52 → immediate
        h.add(70, 30); // bin [70, 74) → centre 72 → medium
        h.add(200, 5); // last bin → other
        h.add(0, 1); // first bin → immediate
        let risk = RiskConfig::default();
        assert_eq!(h.buckets(0, &risk), [101, 0, 30, 5]);
        // With a -10 dBm transmit power a negated RSSI of 70 is an attenuation of ~62.
        assert_eq!(h.buckets(-10, &risk), [101, 30, 0, 5]);
        assert_eq!(h.total_seconds(), 136);
    }
}
