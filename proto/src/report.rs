//! What a positive phone reports, in either scheme, and the rules a report must follow.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::gaen::DiagnosisKey;
use crate::pet::EncounterToken;
use crate::revision::HmacBinding;
use crate::time::{DayNumber, INTERVALS_PER_DAY, IntervalNumber, UnixTime};

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

/// A `pet` token as published: the encounter token and the UTC day it was made.
///
/// The day lets nodes forget tokens after retention and lets phones skip days they hold
/// nothing for; it says nothing about who or where.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublishedToken {
    /// Day of the encounter.
    pub day: DayNumber,
    /// The positive phone's own-role token.
    pub token: EncounterToken,
}

/// Which token scheme a report, batch or phone uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SchemeKind {
    /// Interoperable GAEN v1.2 keys.
    Gaen,
    /// Private encounter tokens (the default).
    Pet,
}

impl SchemeKind {
    /// The byte that names the scheme in HMAC inputs.
    fn tag(self) -> u8 {
        match self {
            SchemeKind::Gaen => 1,
            SchemeKind::Pet => 2,
        }
    }
}

/// What a positive phone uploads: its diagnosis keys or its own-role encounter tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportContents {
    /// `gaen` diagnosis keys.
    Gaen(Vec<DiagnosisKey>),
    /// `pet` tokens.
    Pet(Vec<PublishedToken>),
}

/// Domain label that starts every version 1 report HMAC input.
const REPORT_HMAC_LABEL: &[u8] = b"ephemera/report-hmac/v1";
/// Domain label that starts every version 2 report HMAC input (one bound to a revision key).
const REPORT_HMAC_LABEL_V2: &[u8] = b"ephemera/report-hmac/v2";

/// Limits a report must respect; the defaults follow the GAEN reference key server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLimits {
    /// Most diagnosis keys in one report (GAEN server `MAX_KEYS_ON_PUBLISH`: 30).
    pub max_keys: usize,
    /// Most keys that may share one rolling start (GAEN server: 3).
    pub max_same_start_keys: usize,
    /// Most `pet` tokens in one report.
    pub max_tokens: usize,
    /// Days kept; anything older is refused (14: `docs/PROTOCOL.md` §5.2).
    pub retention_days: u32,
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            max_keys: 30,
            max_same_start_keys: 3,
            max_tokens: 20_000,
            retention_days: 14,
        }
    }
}

impl ReportContents {
    /// The scheme of these contents.
    pub fn scheme(&self) -> SchemeKind {
        match self {
            ReportContents::Gaen(_) => SchemeKind::Gaen,
            ReportContents::Pet(_) => SchemeKind::Pet,
        }
    }

    /// Number of keys or tokens.
    pub fn len(&self) -> usize {
        match self {
            ReportContents::Gaen(keys) => keys.len(),
            ReportContents::Pet(tokens) => tokens.len(),
        }
    }

    /// Whether there is no key or token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorts the entries into canonical order, so encodings never depend on input order.
    pub fn canonicalize(&mut self) {
        match self {
            ReportContents::Gaen(keys) => keys.sort_unstable(),
            ReportContents::Pet(tokens) => tokens.sort_unstable(),
        }
    }

    /// The bytes the report HMAC covers, independent of entry order.
    ///
    /// Layout: `label ‖ binding ‖ scheme (1 = gaen, 2 = pet) ‖ count (u32 LE) ‖ entries`,
    /// entries sorted by their bytes; a `gaen` entry is `key (16) ‖ rolling start (u32 LE) ‖
    /// rolling period (u8)`, a `pet` entry is `day (u32 LE) ‖ token (16)`. Version 1
    /// ([`HmacBinding::Unbound`]): label `"ephemera/report-hmac/v1"`, no binding bytes.
    /// Version 2: label `"ephemera/report-hmac/v2"`, binding `role (1 = first upload, 2 =
    /// revision) ‖ revision key (32)`. Report type and days since onset are not covered:
    /// the node sets them from the certificate.
    pub fn hmac_input(&self, binding: HmacBinding) -> Vec<u8> {
        let mut entries: Vec<Vec<u8>> = match self {
            ReportContents::Gaen(keys) => keys
                .iter()
                .map(|k| {
                    let mut e = Vec::with_capacity(21);
                    e.extend_from_slice(k.key.as_bytes());
                    e.extend_from_slice(&k.rolling_start.0.to_le_bytes());
                    e.push(k.rolling_period);
                    e
                })
                .collect(),
            ReportContents::Pet(tokens) => tokens
                .iter()
                .map(|t| {
                    let mut e = Vec::with_capacity(20);
                    e.extend_from_slice(&t.day.0.to_le_bytes());
                    e.extend_from_slice(&t.token.0);
                    e
                })
                .collect(),
        };
        entries.sort_unstable();
        let mut out = Vec::with_capacity(REPORT_HMAC_LABEL_V2.len() + 38 + entries.len() * 21);
        match binding {
            HmacBinding::Unbound => out.extend_from_slice(REPORT_HMAC_LABEL),
            HmacBinding::Upload(key) | HmacBinding::Revision(key) => {
                out.extend_from_slice(REPORT_HMAC_LABEL_V2);
                out.push(if matches!(binding, HmacBinding::Upload(_)) {
                    1
                } else {
                    2
                });
                out.extend_from_slice(&key.0.0);
            }
        }
        out.push(self.scheme().tag());
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for entry in entries {
            out.extend_from_slice(&entry);
        }
        out
    }

    /// Checks the protocol rules for an upload received at `now`.
    ///
    /// `gaen`: count, rolling period 1..=144, no key starting in the future, none whose
    /// window ended before the retention period, no key twice, at most
    /// `max_same_start_keys` per rolling start, days since onset in -14..=14. `pet`: count,
    /// no token dated in the future or before retention, no token twice.
    ///
    /// # Errors
    /// The first rule broken, as a [`ValidationError`].
    pub fn validate(&self, now: UnixTime, limits: &ReportLimits) -> Result<(), ValidationError> {
        self.validate_between(now, now, limits)
    }

    /// [`Self::validate`] for a report first accepted at an unknown moment in
    /// `[earliest, latest]`: age is judged at `earliest` and "not in the future" at
    /// `latest`, so a report that was valid when a node accepted it stays valid when other
    /// nodes re-verify it later (a relayed report: its certificate's issue time and expiry).
    ///
    /// # Errors
    /// The first rule broken, as a [`ValidationError`].
    pub fn validate_between(
        &self,
        earliest: UnixTime,
        latest: UnixTime,
        limits: &ReportLimits,
    ) -> Result<(), ValidationError> {
        if self.is_empty() {
            return Err(ValidationError::Empty);
        }
        let now = latest;
        let today = latest.day();
        let oldest = earliest.min(latest).day().minus(limits.retention_days);
        match self {
            ReportContents::Gaen(keys) => {
                if keys.len() > limits.max_keys {
                    return Err(ValidationError::TooManyKeys {
                        got: keys.len(),
                        max: limits.max_keys,
                    });
                }
                let now_interval = now.interval();
                let mut seen = HashSet::with_capacity(keys.len());
                let mut per_start: HashMap<IntervalNumber, usize> = HashMap::new();
                for key in keys {
                    if key.rolling_period == 0 || u32::from(key.rolling_period) > INTERVALS_PER_DAY
                    {
                        return Err(ValidationError::BadRollingPeriod {
                            got: key.rolling_period,
                        });
                    }
                    if key.rolling_start > now_interval {
                        return Err(ValidationError::FutureKey {
                            rolling_start: key.rolling_start,
                            now: now_interval,
                        });
                    }
                    let last_day = key.rolling_end().minus(1).day();
                    if last_day < oldest {
                        return Err(ValidationError::TooOld {
                            day: last_day,
                            oldest,
                        });
                    }
                    if let Some(dso) = key.days_since_onset
                        && !(-14..=14).contains(&dso)
                    {
                        return Err(ValidationError::BadDaysSinceOnset { got: dso });
                    }
                    if !seen.insert(*key.key.as_bytes()) {
                        return Err(ValidationError::Duplicate);
                    }
                    let same = per_start.entry(key.rolling_start).or_default();
                    *same += 1;
                    if *same > limits.max_same_start_keys {
                        return Err(ValidationError::Duplicate);
                    }
                }
            }
            ReportContents::Pet(tokens) => {
                if tokens.len() > limits.max_tokens {
                    return Err(ValidationError::TooManyTokens {
                        got: tokens.len(),
                        max: limits.max_tokens,
                    });
                }
                let mut seen = HashSet::with_capacity(tokens.len());
                for token in tokens {
                    if token.day > today {
                        return Err(ValidationError::FutureToken {
                            day: token.day,
                            today,
                        });
                    }
                    if token.day < oldest {
                        return Err(ValidationError::TooOld {
                            day: token.day,
                            oldest,
                        });
                    }
                    if !seen.insert(token.token) {
                        return Err(ValidationError::Duplicate);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::gaen::TemporaryExposureKey;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn key(byte: u8, start: IntervalNumber, period: u8) -> DiagnosisKey {
        DiagnosisKey {
            key: TemporaryExposureKey([byte; 16]),
            rolling_start: start,
            rolling_period: period,
            report_type: ReportType::ConfirmedTest,
            days_since_onset: None,
        }
    }

    fn yesterday() -> IntervalNumber {
        NOW.day().minus(1).first_interval()
    }

    /// docs/PROTOCOL.md §4.3 gives each test type's byte in a certificate (postcard) and
    /// in batches; it said GAEN's 1–5 for both, while postcard writes 0–4.
    #[test]
    fn test_type_bytes_are_the_specified_ones() {
        let spec = include_str!("../../docs/PROTOCOL.md");
        let all = [
            (ReportType::ConfirmedTest, "ConfirmedTest"),
            (
                ReportType::ConfirmedClinicalDiagnosis,
                "ConfirmedClinicalDiagnosis",
            ),
            (ReportType::SelfReport, "SelfReport"),
            (ReportType::Recursive, "Recursive"),
            (ReportType::Revoked, "Revoked"),
        ];
        for (report_type, name) in all {
            let row = spec
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}`")))
                .unwrap_or_else(|| panic!("no row for {name} in PROTOCOL.md §4.3"));
            let cells: Vec<u8> = row
                .split('|')
                .skip(2)
                .filter_map(|c| c.trim().parse().ok())
                .collect();
            assert_eq!(
                postcard::to_allocvec(&report_type).expect("encodes"),
                [cells[0]],
                "{name} in a certificate"
            );
            assert_eq!(report_type.code(), cells[1], "{name} in a batch");
        }
    }

    #[test]
    fn report_type_codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(t) = ReportType::from_code(code) {
                assert_eq!(t.code(), code);
            } else {
                assert!(code == 0 || code > 5);
            }
        }
    }

    #[test]
    fn gaen_validation_rules() {
        let limits = ReportLimits::default();
        let ok = ReportContents::Gaen(vec![
            key(1, yesterday(), 144),
            key(2, yesterday().minus(144), 144),
        ]);
        assert_eq!(ok.validate(NOW, &limits), Ok(()));
        assert_eq!(
            ReportContents::Gaen(vec![]).validate(NOW, &limits),
            Err(ValidationError::Empty)
        );
        let bad_period = ReportContents::Gaen(vec![key(1, yesterday(), 0)]);
        assert_eq!(
            bad_period.validate(NOW, &limits),
            Err(ValidationError::BadRollingPeriod { got: 0 })
        );
        let too_long = ReportContents::Gaen(vec![key(1, yesterday(), 145)]);
        assert_eq!(
            too_long.validate(NOW, &limits),
            Err(ValidationError::BadRollingPeriod { got: 145 })
        );
        let future = ReportContents::Gaen(vec![key(1, NOW.interval().plus(1), 144)]);
        assert!(matches!(
            future.validate(NOW, &limits),
            Err(ValidationError::FutureKey { .. })
        ));
        let old = ReportContents::Gaen(vec![key(1, NOW.day().minus(16).first_interval(), 144)]);
        assert!(matches!(
            old.validate(NOW, &limits),
            Err(ValidationError::TooOld { .. })
        ));
        let dup = ReportContents::Gaen(vec![
            key(1, yesterday(), 144),
            key(1, yesterday().minus(144), 144),
        ]);
        assert_eq!(dup.validate(NOW, &limits), Err(ValidationError::Duplicate));
        let crowded = ReportContents::Gaen((1..=4).map(|b| key(b, yesterday(), 144)).collect());
        assert_eq!(
            crowded.validate(NOW, &limits),
            Err(ValidationError::Duplicate)
        );
        let many = ReportContents::Gaen(
            (0..31)
                .map(|b| key(b, yesterday().minus(u32::from(b) * 144 / 3), 1))
                .collect(),
        );
        assert_eq!(
            many.validate(NOW, &limits),
            Err(ValidationError::TooManyKeys { got: 31, max: 30 })
        );
        let mut onset = key(1, yesterday(), 144);
        onset.days_since_onset = Some(15);
        assert_eq!(
            ReportContents::Gaen(vec![onset]).validate(NOW, &limits),
            Err(ValidationError::BadDaysSinceOnset { got: 15 })
        );
    }

    #[test]
    fn pet_validation_rules() {
        let limits = ReportLimits {
            max_tokens: 3,
            ..ReportLimits::default()
        };
        let token = |day: DayNumber, b: u8| PublishedToken {
            day,
            token: EncounterToken([b; 16]),
        };
        let today = NOW.day();
        assert_eq!(
            ReportContents::Pet(vec![token(today, 1), token(today.minus(14), 2)])
                .validate(NOW, &limits),
            Ok(())
        );
        assert!(matches!(
            ReportContents::Pet(vec![token(today.plus(1), 1)]).validate(NOW, &limits),
            Err(ValidationError::FutureToken { .. })
        ));
        assert!(matches!(
            ReportContents::Pet(vec![token(today.minus(15), 1)]).validate(NOW, &limits),
            Err(ValidationError::TooOld { .. })
        ));
        assert_eq!(
            ReportContents::Pet(vec![token(today, 1), token(today.minus(1), 1)])
                .validate(NOW, &limits),
            Err(ValidationError::Duplicate)
        );
        assert_eq!(
            ReportContents::Pet((0..4).map(|b| token(today, b)).collect()).validate(NOW, &limits),
            Err(ValidationError::TooManyTokens { got: 4, max: 3 })
        );
    }

    proptest! {
        #[test]
        fn hmac_input_ignores_entry_order(mut bytes in proptest::collection::vec(any::<[u8; 16]>(), 1..20), seed in any::<u64>()) {
            let tokens: Vec<PublishedToken> = bytes.iter().enumerate()
                .map(|(i, b)| PublishedToken { day: DayNumber(19_000 + (i as u32 % 3)), token: EncounterToken(*b) })
                .collect();
            let mut shuffled = tokens.clone();
            // A deterministic shuffle driven by the seed.
            let n = shuffled.len();
            for i in 0..n {
                let j = (seed.wrapping_mul(i as u64 + 1).rotate_left(17) % n as u64) as usize;
                shuffled.swap(i, j);
            }
            let a = ReportContents::Pet(tokens).hmac_input(HmacBinding::Unbound);
            let b = ReportContents::Pet(shuffled).hmac_input(HmacBinding::Unbound);
            prop_assert_eq!(a, b);
            bytes.reverse();
            let keys: Vec<DiagnosisKey> = bytes.iter().map(|b| key(b[0], IntervalNumber(u32::from(b[1]) * 144), 144)).collect();
            let mut reversed = keys.clone();
            reversed.reverse();
            prop_assert_eq!(ReportContents::Gaen(keys).hmac_input(HmacBinding::Unbound), ReportContents::Gaen(reversed).hmac_input(HmacBinding::Unbound));
        }
    }
}
