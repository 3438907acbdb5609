//! Risk scoring: exposure windows, attenuation buckets and daily scores.
//!
//! The model is the GAEN v2 "ExposureWindow" scoring that deployed apps configured:
//!
//! ```text
//! window score = Σ_bucket seconds[bucket] × attenuation_weight[bucket]
//!                × infectiousness_weight(days since onset) × report_type_weight
//! a window counts when its score ≥ minimum_window_score
//! day score    = Σ counting windows' scores;  high risk when day score ≥ minimum_daily_score
//! ```
//!
//! A `gaen` window is one diagnosis key's day. A `pet` window is one encounter, at most one
//! interval (10 minutes), because the peers' keys rotate; a long contact at medium attenuation
//! (weight 0.4) scores at most 240 per window and would never reach the window minimum,
//! however long it lasted. So `pet` windows carry when they were heard ([`HeardSpan`]), and
//! windows of a day whose spans follow each other within `window_chain_gap_seconds` form one
//! chain: the minimum applies to the chain's score, as `gaen`'s applies to a key's day.
//! Windows without a span (`gaen`, and those kept before spans existed) stand alone.
//!
//! Attenuation (dB) = transmit power − RSSI; bucket 0 is "immediate" (attenuation ≤
//! threshold 0), 1 "near" (≤ threshold 1), 2 "medium" (≤ threshold 2), 3 "other".
//!
//! # Defaults
//! [`RiskConfig::default`] is the Dutch CoronaMelder's published v3 configuration:
//! repository `minvws/nl-covid19-notification-app-backend`, file
//! `src/PublishContent/Resources/RiskCalculationParametersV3.json` (commit
//! `38ba4f570ec63884ad345af86b362c5141c71d53`): attenuation thresholds 56/62/73 dB with
//! weights 1.5/1.0/0.4/0.0, infectiousness weights none 0, standard 1, high 1, standard
//! infectiousness from 2 days before to 11 days after symptom onset (standard when the onset
//! is missing), report type weights 1 for a confirmed test and 0 for every other type,
//! minimum window score 300 (weighted seconds) and minimum daily score 900 (15 weighted
//! minutes), exposures older than 14 days ignored.
//!
//! # Privacy
//! A result says which day and how long at which attenuation — never where, and never which
//! encounter.

use ephemera_proto::{DayNumber, ReportType, UnixTime};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Number of attenuation buckets: immediate, near, medium, other.
pub const BUCKETS: usize = 4;

/// How infectious a positive person was on a day, by days since symptom onset (GAEN).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Infectiousness {
    /// Not infectious: windows with this value score 0.
    None,
    /// Standard infectiousness.
    Standard,
    /// High infectiousness.
    High,
}

/// Weights by report type (GAEN `reportTypeWeights`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportTypeWeights {
    /// A laboratory-confirmed test.
    pub confirmed_test: f64,
    /// A clinical diagnosis.
    pub confirmed_clinical_diagnosis: f64,
    /// A self report.
    pub self_report: f64,
    /// A recursive report.
    pub recursive: f64,
}

impl ReportTypeWeights {
    /// The weight of `report_type`; a revoked report weighs 0.
    pub fn weight(&self, report_type: ReportType) -> f64 {
        match report_type {
            ReportType::ConfirmedTest => self.confirmed_test,
            ReportType::ConfirmedClinicalDiagnosis => self.confirmed_clinical_diagnosis,
            ReportType::SelfReport => self.self_report,
            ReportType::Recursive => self.recursive,
            ReportType::Revoked => 0.0,
        }
    }

    fn all(&self) -> [f64; 4] {
        [
            self.confirmed_test,
            self.confirmed_clinical_diagnosis,
            self.self_report,
            self.recursive,
        ]
    }
}

/// Everything the risk score depends on. See the [module docs](self) for the formula and
/// the cited defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskConfig {
    /// Upper bounds (inclusive, dB) of the immediate, near and medium buckets; ascending.
    pub attenuation_thresholds_db: [u8; 3],
    /// Weight of each bucket: immediate, near, medium, other.
    pub attenuation_weights: [f64; BUCKETS],
    /// Infectiousness for days since onset −14..=14 (index 0 is −14).
    pub days_since_onset_to_infectiousness: [Infectiousness; 29],
    /// Infectiousness when a report carries no onset (always the case for `pet` tokens).
    pub infectiousness_when_onset_missing: Infectiousness,
    /// Weight of standard infectiousness.
    pub standard_infectiousness_weight: f64,
    /// Weight of high infectiousness.
    pub high_infectiousness_weight: f64,
    /// Weights by report type.
    pub report_type_weights: ReportTypeWeights,
    /// Report type assumed when a batch entry carries none (always the case for `pet`).
    pub report_type_when_missing: ReportType,
    /// A window counts only when its score reaches this (weighted seconds).
    pub minimum_window_score: f64,
    /// A day is high risk when its score reaches this (weighted seconds).
    pub minimum_daily_score: f64,
    /// Exposures more than this many days ago are ignored.
    pub days_since_exposure_threshold: u32,
    /// `pet` windows heard at most this many seconds apart form one chain for the window
    /// minimum (the default is the encounter's default `max_gap_seconds`, 300: a peer's
    /// next key is heard within one scan gap after its previous one).
    #[serde(default = "default_window_chain_gap")]
    pub window_chain_gap_seconds: u32,
}

fn default_window_chain_gap() -> u32 {
    300
}

impl Default for RiskConfig {
    /// CoronaMelder v3 (see the [module docs](self) for the exact source).
    fn default() -> Self {
        use Infectiousness::{None as N, Standard as S};
        // −14..=−3: none; −2..=11: standard; 12..=14: none.
        let mut days = [N; 29];
        for day in days.iter_mut().take(11 + 14 + 1).skip(14 - 2) {
            *day = S;
        }
        RiskConfig {
            attenuation_thresholds_db: [56, 62, 73],
            attenuation_weights: [1.5, 1.0, 0.4, 0.0],
            days_since_onset_to_infectiousness: days,
            infectiousness_when_onset_missing: S,
            standard_infectiousness_weight: 1.0,
            high_infectiousness_weight: 1.0,
            report_type_weights: ReportTypeWeights {
                confirmed_test: 1.0,
                confirmed_clinical_diagnosis: 0.0,
                self_report: 0.0,
                recursive: 0.0,
            },
            report_type_when_missing: ReportType::ConfirmedTest,
            minimum_window_score: 300.0,
            minimum_daily_score: 900.0,
            days_since_exposure_threshold: 14,
            window_chain_gap_seconds: default_window_chain_gap(),
        }
    }
}

impl RiskConfig {
    /// Checks the rules that span fields: ascending thresholds, finite non-negative weights
    /// and scores.
    ///
    /// # Errors
    /// [`ConfigError::Risk`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let [a, b, c] = self.attenuation_thresholds_db;
        if !(a <= b && b <= c) {
            return Err(ConfigError::Risk {
                field: "attenuation_thresholds_db",
            });
        }
        let ok = |w: f64| w.is_finite() && w >= 0.0;
        if !self.attenuation_weights.iter().all(|w| ok(*w)) {
            return Err(ConfigError::Risk {
                field: "attenuation_weights",
            });
        }
        if !ok(self.standard_infectiousness_weight) || !ok(self.high_infectiousness_weight) {
            return Err(ConfigError::Risk {
                field: "infectiousness weights",
            });
        }
        if !self.report_type_weights.all().iter().all(|w| ok(*w)) {
            return Err(ConfigError::Risk {
                field: "report_type_weights",
            });
        }
        if !ok(self.minimum_window_score) || !ok(self.minimum_daily_score) {
            return Err(ConfigError::Risk {
                field: "minimum scores",
            });
        }
        Ok(())
    }

    /// The bucket of an attenuation in dB.
    pub fn bucket(&self, attenuation_db: i32) -> usize {
        let [a, b, c] = self.attenuation_thresholds_db.map(i32::from);
        if attenuation_db <= a {
            0
        } else if attenuation_db <= b {
            1
        } else if attenuation_db <= c {
            2
        } else {
            3
        }
    }

    /// Infectiousness for a report's days since onset (`None`: unknown).
    pub fn infectiousness(&self, days_since_onset: Option<i8>) -> Infectiousness {
        match days_since_onset {
            Some(d) if (-14..=14).contains(&d) => {
                self.days_since_onset_to_infectiousness[(i32::from(d) + 14) as usize]
            }
            Some(_) => Infectiousness::None,
            None => self.infectiousness_when_onset_missing,
        }
    }

    fn infectiousness_weight(&self, infectiousness: Infectiousness) -> f64 {
        match infectiousness {
            Infectiousness::None => 0.0,
            Infectiousness::Standard => self.standard_infectiousness_weight,
            Infectiousness::High => self.high_infectiousness_weight,
        }
    }

    /// The score of one window.
    pub fn window_score(
        &self,
        seconds: &[u32; BUCKETS],
        infectiousness: Infectiousness,
        report_type: ReportType,
    ) -> f64 {
        let weighted: f64 = seconds
            .iter()
            .zip(self.attenuation_weights)
            .map(|(s, w)| f64::from(*s) * w)
            .sum();
        weighted
            * self.infectiousness_weight(infectiousness)
            * self.report_type_weights.weight(report_type)
    }

    /// Sums the windows of `day` into a [`DailyExposure`], dropping windows (or chains of
    /// `pet` windows, see the [module docs](self)) below the minimum window score. `today`
    /// applies the days-since-exposure threshold.
    pub fn daily<'a>(
        &self,
        day: DayNumber,
        today: DayNumber,
        windows: impl IntoIterator<Item = &'a ExposureWindow>,
    ) -> DailyExposure {
        let mut out = DailyExposure {
            day,
            seconds_per_bucket: [0; BUCKETS],
            windows: 0,
            score: 0.0,
            high_risk: false,
        };
        if today.0.saturating_sub(day.0) > self.days_since_exposure_threshold {
            return out;
        }
        let windows: Vec<&ExposureWindow> = windows.into_iter().collect();
        for chain in self.chains(&windows) {
            let score: f64 = chain.iter().map(|(_, score)| score).sum();
            if score < self.minimum_window_score || score <= 0.0 {
                continue;
            }
            for (window, score) in chain
                .into_iter()
                .map(|(i, score)| (windows[i], score))
                .filter(|(_, score)| *score > 0.0)
            {
                out.windows += 1;
                out.score += score;
                for (total, s) in out
                    .seconds_per_bucket
                    .iter_mut()
                    .zip(window.seconds_per_bucket)
                {
                    *total += s;
                }
            }
        }
        out.high_risk = out.windows > 0 && out.score >= self.minimum_daily_score;
        out
    }

    /// The windows (by position in `windows`) with their scores, grouped into the chains
    /// the window minimum applies to: each window without a span alone; windows with spans,
    /// by start, joined while the next starts within `window_chain_gap_seconds` of the
    /// chain's end.
    pub(crate) fn chains(&self, windows: &[&ExposureWindow]) -> Vec<Vec<(usize, f64)>> {
        let scored = |i: usize| {
            let w = windows[i];
            let score = self.window_score(&w.seconds_per_bucket, w.infectiousness, w.report_type);
            (i, score)
        };
        let mut chains = Vec::new();
        let mut spanned = Vec::new();
        for (i, window) in windows.iter().enumerate() {
            match window.heard {
                Some(span) => spanned.push((span, scored(i))),
                None => chains.push(vec![scored(i)]),
            }
        }
        spanned.sort_by_key(|(span, _)| (span.first, span.last));
        let gap = u64::from(self.window_chain_gap_seconds);
        let mut chain: Vec<(usize, f64)> = Vec::new();
        let mut chain_end = 0;
        for (span, scored) in spanned {
            if !chain.is_empty() && span.first.0 > chain_end + gap {
                chains.push(std::mem::take(&mut chain));
            }
            chain_end = if chain.is_empty() {
                span.last.0
            } else {
                chain_end.max(span.last.0)
            };
            chain.push(scored);
        }
        if !chain.is_empty() {
            chains.push(chain);
        }
        chains
    }
}

/// When a `pet` window's encounter was heard: its first and last sighting. Kept on the
/// phone only, for chaining windows (see the [module docs](self)).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeardSpan {
    /// First sighting.
    pub first: UnixTime,
    /// Last sighting.
    pub last: UnixTime,
}

/// One matched exposure: seconds per attenuation bucket heard from one positive person's
/// key (`gaen`: one diagnosis key on one day) or one encounter (`pet`: one pair of
/// ephemeral keys, at most one interval plus clock skew).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExposureWindow {
    /// The day of the exposure.
    pub day: DayNumber,
    /// Seconds heard per attenuation bucket.
    pub seconds_per_bucket: [u32; BUCKETS],
    /// The positive person's infectiousness that day.
    pub infectiousness: Infectiousness,
    /// How the positive was established.
    pub report_type: ReportType,
    /// When it was heard (`pet`); `None` for `gaen` windows, which stand alone.
    pub heard: Option<HeardSpan>,
}

/// The exposure of one day: the result an app shows. Never a place, never an encounter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyExposure {
    /// The day.
    pub day: DayNumber,
    /// Seconds per attenuation bucket over the counting windows.
    pub seconds_per_bucket: [u32; BUCKETS],
    /// Number of windows that counted.
    pub windows: u32,
    /// Sum of the counting windows' scores (weighted seconds).
    pub score: f64,
    /// Whether the score reached the daily threshold.
    pub high_risk: bool,
}

impl DailyExposure {
    /// Minutes per bucket, rounded down.
    pub fn minutes_per_bucket(&self) -> [u32; BUCKETS] {
        self.seconds_per_bucket.map(|s| s / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_coronamelder_v3() {
        let config = RiskConfig::default();
        config.validate().unwrap();
        assert_eq!(config.bucket(56), 0);
        assert_eq!(config.bucket(57), 1);
        assert_eq!(config.bucket(73), 2);
        assert_eq!(config.bucket(74), 3);
        assert_eq!(config.infectiousness(Some(-3)), Infectiousness::None);
        assert_eq!(config.infectiousness(Some(-2)), Infectiousness::Standard);
        assert_eq!(config.infectiousness(Some(11)), Infectiousness::Standard);
        assert_eq!(config.infectiousness(Some(12)), Infectiousness::None);
        assert_eq!(config.infectiousness(None), Infectiousness::Standard);
        let count = config
            .days_since_onset_to_infectiousness
            .iter()
            .filter(|i| **i == Infectiousness::Standard)
            .count();
        assert_eq!(count, 14);
    }

    #[test]
    fn daily_score_applies_window_minimum_and_threshold() {
        let config = RiskConfig::default();
        let day = DayNumber(20_000);
        let window = |secs: [u32; 4], rt| ExposureWindow {
            day,
            seconds_per_bucket: secs,
            infectiousness: Infectiousness::Standard,
            report_type: rt,
            heard: None,
        };
        // 10 min near (600) + 2 min immediate (180): counts; 4 min medium (96): dropped.
        let windows = [
            window([0, 600, 0, 0], ReportType::ConfirmedTest),
            window([120, 0, 0, 0], ReportType::ConfirmedTest),
            window([0, 0, 240, 0], ReportType::ConfirmedTest),
            window([0, 6000, 0, 0], ReportType::SelfReport),
        ];
        let daily = config.daily(day, day, &windows);
        assert_eq!(daily.windows, 1);
        assert_eq!(daily.score, 600.0);
        assert!(!daily.high_risk);
        let more = [
            window([0, 600, 0, 0], ReportType::ConfirmedTest),
            window([200, 0, 0, 0], ReportType::ConfirmedTest),
        ];
        let daily = config.daily(day, day, &more);
        assert_eq!(daily.score, 900.0);
        assert!(daily.high_risk);
        assert_eq!(daily.minutes_per_bucket(), [3, 10, 0, 0]);
        assert_eq!(config.daily(day, day.plus(15), &more).windows, 0);
    }

    /// A `pet` window of ten minutes at medium attenuation (0.4 × 600 = 240) heard from
    /// `first` (seconds into the day).
    fn medium_pet_window(day: DayNumber, first: u64) -> ExposureWindow {
        let start = day.start().plus_seconds(first);
        ExposureWindow {
            day,
            seconds_per_bucket: [0, 0, 600, 0],
            infectiousness: Infectiousness::Standard,
            report_type: ReportType::ConfirmedTest,
            heard: Some(HeardSpan {
                first: start,
                last: start.plus_seconds(590),
            }),
        }
    }

    #[test]
    fn a_long_pet_contact_counts_although_each_window_is_below_the_minimum() {
        let config = RiskConfig::default();
        let day = DayNumber(20_000);
        // Four encounters of one 40-minute contact: the next key is heard 200 s after the
        // previous one's last sighting (a scan gap across the rotation), each 240 alone.
        let contact: Vec<ExposureWindow> = (0..4)
            .map(|i| medium_pet_window(day, 36_000 + i * 790))
            .collect();
        for window in &contact {
            assert_eq!(
                config.daily(day, day, [window]).windows,
                0,
                "alone: 240 < 300"
            );
        }
        let daily = config.daily(day, day, &contact);
        assert_eq!(daily.windows, 4);
        assert_eq!(daily.score, 960.0);
        assert!(
            daily.high_risk,
            "40 minutes at medium attenuation: 960 >= 900"
        );
        assert_eq!(daily.minutes_per_bucket(), [0, 0, 40, 0]);
    }

    #[test]
    fn pet_windows_further_apart_than_the_chain_gap_stand_alone() {
        let config = RiskConfig::default();
        let day = DayNumber(20_000);
        // 590 s heard + 301 s: one second more than the default chain gap.
        let apart: Vec<ExposureWindow> = (0..4)
            .map(|i| medium_pet_window(day, 36_000 + i * 891))
            .collect();
        assert_eq!(config.daily(day, day, &apart).windows, 0);
        let exactly: Vec<ExposureWindow> = (0..4)
            .map(|i| medium_pet_window(day, 36_000 + i * 890))
            .collect();
        assert_eq!(
            config.daily(day, day, &exactly).windows,
            4,
            "a gap of 300 s chains"
        );
        // Order of arrival does not matter (matches come batch by batch).
        let mut reversed = exactly.clone();
        reversed.reverse();
        assert_eq!(
            config.daily(day, day, &reversed),
            config.daily(day, day, &exactly)
        );
        let no_chaining = RiskConfig {
            window_chain_gap_seconds: 0,
            ..RiskConfig::default()
        };
        assert_eq!(no_chaining.daily(day, day, &exactly).windows, 0);
    }

    #[test]
    fn windows_without_a_span_never_chain() {
        let config = RiskConfig::default();
        let day = DayNumber(20_000);
        let mut windows: Vec<ExposureWindow> = (0..4)
            .map(|i| medium_pet_window(day, 36_000 + i * 790))
            .collect();
        for window in &mut windows {
            window.heard = None;
        }
        assert_eq!(config.daily(day, day, &windows).windows, 0);
    }

    #[test]
    fn configs_written_before_the_chain_gap_read_with_its_default() {
        let mut json = serde_json::to_value(RiskConfig::default()).expect("encodes");
        json.as_object_mut()
            .expect("an object")
            .remove("window_chain_gap_seconds");
        let config: RiskConfig = serde_json::from_value(json).expect("decodes");
        assert_eq!(config, RiskConfig::default());
    }

    #[test]
    fn validation_catches_bad_fields() {
        let config = RiskConfig {
            attenuation_thresholds_db: [60, 50, 70],
            ..RiskConfig::default()
        };
        assert!(config.validate().is_err());
        let mut config = RiskConfig::default();
        config.attenuation_weights[2] = f64::NAN;
        assert!(config.validate().is_err());
    }
}
