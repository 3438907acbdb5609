//! Daily counters for the authority's statistics (issue 17 item 7): per UTC day, per
//! metric and (where it applies) per test type, how many codes were issued, used, expired
//! and revoked, uploads accepted and relayed, batches published.
//!
//! A counter holds a day, a metric, a report type and a number: no code, reference, upload
//! or time finer than the day. The stores add to them in the same atomic write as the event
//! they count ([`super::ReportStore`]), so a crash neither loses an acknowledged event's
//! count nor counts it twice. Counters older than `[authority] stats_days` are purged.

use std::collections::BTreeMap;

use ephemera_proto::DayNumber;
use ephemera_proto::report::ReportType;

/// What a counter counts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum StatsMetric {
    /// Codes issued (by staff or API keys), on their issue day.
    CodesIssued = 1,
    /// Codes redeemed by a phone, on the day of the redeem.
    CodesUsed = 2,
    /// Codes that expired unused, on their expiry day (counted by the sweep after it).
    CodesExpired = 3,
    /// Codes revoked by staff, on the day of the revoke.
    CodesRevoked = 4,
    /// Uploads (first uploads and revisions) a phone sent to this node and it stored, on
    /// their arrival day.
    UploadsAccepted = 5,
    /// Uploads this node first received from a federation peer (gossip or catch-up) and
    /// stored, on their arrival day; one an earlier copy already stored is not counted.
    UploadsRelayed = 6,
    /// Signed batches published, on their cut day (one batch mixes test types, so this
    /// counter has none).
    BatchesPublished = 7,
}

impl StatsMetric {
    /// Every metric, in their order of presentation.
    pub const ALL: [StatsMetric; 7] = [
        StatsMetric::CodesIssued,
        StatsMetric::CodesUsed,
        StatsMetric::CodesExpired,
        StatsMetric::CodesRevoked,
        StatsMetric::UploadsAccepted,
        StatsMetric::UploadsRelayed,
        StatsMetric::BatchesPublished,
    ];

    /// Its name in the API (`codes_issued` ...).
    pub fn as_str(self) -> &'static str {
        match self {
            StatsMetric::CodesIssued => "codes_issued",
            StatsMetric::CodesUsed => "codes_used",
            StatsMetric::CodesExpired => "codes_expired",
            StatsMetric::CodesRevoked => "codes_revoked",
            StatsMetric::UploadsAccepted => "uploads_accepted",
            StatsMetric::UploadsRelayed => "uploads_relayed",
            StatsMetric::BatchesPublished => "batches_published",
        }
    }

    /// The metric named `name`, if one is.
    pub fn parse(name: &str) -> Option<StatsMetric> {
        StatsMetric::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether it is counted per test type (every metric but batches).
    pub fn has_test_type(self) -> bool {
        self != StatsMetric::BatchesPublished
    }

    fn from_byte(b: u8) -> Option<StatsMetric> {
        StatsMetric::ALL.into_iter().find(|m| *m as u8 == b)
    }
}

/// One counter's name: a day, a metric and, where the metric has one, a report type.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatsKey {
    /// The UTC day.
    pub day: DayNumber,
    /// What it counts.
    pub metric: StatsMetric,
    /// The report type (`None` for [`StatsMetric::BatchesPublished`]).
    pub test_type: Option<ReportType>,
}

impl StatsKey {
    /// Byte length of an encoded key.
    pub const LEN: usize = 6;

    /// `day (u32 BE) ‖ metric ‖ report type code (0: none)`: sorts by day, so a range or
    /// a purge reads a prefix.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..4].copy_from_slice(&self.day.0.to_be_bytes());
        out[4] = self.metric as u8;
        out[5] = self.test_type.map_or(0, ReportType::code);
        out
    }

    /// Decodes [`StatsKey::to_bytes`]; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<StatsKey> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        let metric = StatsMetric::from_byte(bytes[4])?;
        let test_type = match bytes[5] {
            0 => None,
            code => Some(ReportType::from_code(code)?),
        };
        if metric.has_test_type() != test_type.is_some() {
            return None;
        }
        Some(StatsKey {
            day: DayNumber(u32::from_be_bytes(bytes[..4].try_into().ok()?)),
            metric,
            test_type,
        })
    }

    /// The first key of `day` (for ranges).
    pub fn day_start(day: DayNumber) -> [u8; 4] {
        day.0.to_be_bytes()
    }
}

/// A counter's value as stored: 8 bytes, big-endian.
pub(super) fn encode_count(count: u64) -> [u8; 8] {
    count.to_be_bytes()
}

/// Decodes [`encode_count`]; `None` for another length.
pub(super) fn decode_count(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Changes to counters gathered for one write: each key's sum of +1s (and, rarely, -1s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsTally(BTreeMap<StatsKey, i64>);

impl StatsTally {
    /// Nothing counted yet.
    pub fn new() -> Self {
        StatsTally::default()
    }

    /// Adds `delta` to the counter `key`.
    pub fn add(&mut self, key: StatsKey, delta: i64) {
        let slot = self.0.entry(key).or_insert(0);
        *slot = slot.saturating_add(delta);
        if *slot == 0 {
            self.0.remove(&key);
        }
    }

    /// Adds every change of `other`.
    pub fn merge(&mut self, other: &StatsTally) {
        for (key, delta) in other.changes() {
            self.add(*key, delta);
        }
    }

    /// Counts one event of `metric` of `test_type` on `day`.
    pub fn count(&mut self, day: DayNumber, metric: StatsMetric, test_type: Option<ReportType>) {
        let test_type = test_type.filter(|_| metric.has_test_type());
        self.add(
            StatsKey {
                day,
                metric,
                test_type,
            },
            1,
        );
    }

    /// The changes, by key.
    pub fn changes(&self) -> impl Iterator<Item = (&StatsKey, i64)> {
        self.0.iter().map(|(k, v)| (k, *v))
    }

    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `current` changed by `delta`, never below 0 or past `u64::MAX`.
pub(super) fn apply_delta(current: u64, delta: i64) -> u64 {
    if delta >= 0 {
        current.saturating_add(delta.unsigned_abs())
    } else {
        current.saturating_sub(delta.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keys_sort_by_day_and_read_back() {
        let key = StatsKey {
            day: DayNumber(20_000),
            metric: StatsMetric::CodesUsed,
            test_type: Some(ReportType::ConfirmedClinicalDiagnosis),
        };
        assert_eq!(StatsKey::from_bytes(&key.to_bytes()), Some(key));
        let batches = StatsKey {
            day: DayNumber(19_999),
            metric: StatsMetric::BatchesPublished,
            test_type: None,
        };
        assert_eq!(StatsKey::from_bytes(&batches.to_bytes()), Some(batches));
        assert!(batches.to_bytes() < key.to_bytes());
        // A batch counter with a type, a code counter without one, unknown bytes: refused.
        assert_eq!(StatsKey::from_bytes(&[0, 0, 0, 1, 7, 1]), None);
        assert_eq!(StatsKey::from_bytes(&[0, 0, 0, 1, 1, 0]), None);
        assert_eq!(StatsKey::from_bytes(&[0, 0, 0, 1, 8, 1]), None);
        assert_eq!(StatsKey::from_bytes(&[0, 0, 0, 1, 1, 9]), None);
        assert_eq!(StatsKey::from_bytes(&[0, 0, 0, 1, 1]), None);
    }

    #[test]
    fn a_tally_sums_per_key_and_drops_what_cancels() {
        let mut tally = StatsTally::new();
        let day = DayNumber(5);
        tally.count(
            day,
            StatsMetric::CodesIssued,
            Some(ReportType::ConfirmedTest),
        );
        tally.count(
            day,
            StatsMetric::CodesIssued,
            Some(ReportType::ConfirmedTest),
        );
        tally.count(
            day,
            StatsMetric::BatchesPublished,
            Some(ReportType::ConfirmedTest),
        );
        let changes: Vec<_> = tally.changes().map(|(k, v)| (*k, v)).collect();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].1, 2);
        // The batch counter is filed without a type whatever the caller passed.
        assert_eq!(changes[1].0.test_type, None);
        let mut merged = StatsTally::new();
        merged.merge(&tally);
        merged.merge(&tally);
        assert_eq!(merged.changes().map(|(_, v)| v).sum::<i64>(), 6);
        let key = changes[1].0;
        tally.add(key, -1);
        assert_eq!(tally.changes().count(), 1);
        assert_eq!(apply_delta(3, -5), 0);
        assert_eq!(apply_delta(u64::MAX, 1), u64::MAX);
        assert_eq!(apply_delta(3, 2), 5);
        assert_eq!(decode_count(&encode_count(42)), Some(42));
        assert_eq!(decode_count(&[1, 2]), None);
    }

    proptest! {
        #[test]
        fn decoding_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..10)) {
            if let Some(key) = StatsKey::from_bytes(&bytes) {
                prop_assert_eq!(key.to_bytes().to_vec(), bytes);
            }
        }
    }
}
