//! The attenuation-threshold curve of each scheme, through that scheme's own client
//! scoring (`sweep.csv`, `threshold.svg`).
//!
//! After the run, every phone's matched exposure windows are taken as the phone stored them
//! (`gaen`: one window per matched diagnosis key and day; `pet`: one window per matched
//! encounter, with the span it was heard in, chained by the client), each with the signal
//! histograms it was built from: for `gaen`, the phone's records whose RPI one uploaded key
//! derives within its validity window (± the client's tolerance), with the transmit power
//! decrypted from their metadata, as the client's matcher does; for `pet`, the phone's
//! record of that encounter. A window is kept only if these rebuild, under the shipped
//! risk configuration, exactly the window the phone stored (so keys or tokens uploaded but
//! not yet published by the end are left out, as the phone never saw them).
//!
//! Threshold T then means: the client's [`RiskConfig`] with its three attenuation bounds
//! shifted together so that the last one (beyond which nothing counts; 73 dB shipped)
//! is T, weights and window and daily minimums unchanged. Each window is rebucketed with
//! the client's [`SignalHistogram::buckets`] and each day scored with the client's
//! [`RiskConfig::daily`]. At the shipped bounds the curve reproduces the run's own
//! notifications; elsewhere it differs between the schemes wherever their windows do
//! (per key and day against per encounter, chains, the window minimum).

use std::collections::{BTreeMap, HashMap};

use ephemera_client::risk::{BUCKETS, ExposureWindow, RiskConfig};
use ephemera_client::signal::{LevelKind, SignalHistogram};
use ephemera_client::store::{EncounterRecord, Evidence};
use ephemera_proto::ReportContents;
use ephemera_proto::gaen::{
    AssociatedEncryptedMetadata, DiagnosisKey, MATCH_TOLERANCE_INTERVALS,
    RollingProximityIdentifier,
};

use super::engine::RawRun;
use super::metrics::SweepPoint;
use super::phone::client_config;
use super::scenario::Scenario;

/// A stored window with the signal histograms (and their level offsets) it was built from.
struct HeldWindow {
    window: ExposureWindow,
    signals: Vec<(SignalHistogram, i32)>,
}

impl HeldWindow {
    /// The window as the client builds it under `risk`.
    fn under(&self, risk: &RiskConfig) -> ExposureWindow {
        let mut seconds = [0u32; BUCKETS];
        for (signal, offset) in &self.signals {
            for (total, s) in seconds.iter_mut().zip(signal.buckets(*offset, risk)) {
                *total += s;
            }
        }
        ExposureWindow {
            seconds_per_bucket: seconds,
            ..self.window.clone()
        }
    }
}

/// `risk` with its attenuation bounds shifted together so that the last is `threshold`.
pub fn shifted(risk: &RiskConfig, threshold: u8) -> RiskConfig {
    let shift = i32::from(threshold) - i32::from(risk.attenuation_thresholds_db[2]);
    RiskConfig {
        attenuation_thresholds_db: risk
            .attenuation_thresholds_db
            .map(|t| (i32::from(t) + shift).clamp(0, 255) as u8),
        ..risk.clone()
    }
}

/// Removes and returns the first of `stored` equal to `window`.
fn take_equal(stored: &mut Vec<ExposureWindow>, window: &ExposureWindow) -> bool {
    match stored.iter().position(|w| w == window) {
        Some(i) => {
            stored.swap_remove(i);
            true
        }
        None => false,
    }
}

/// The level offset of a record: 0 for attenuations, the transmit power for −RSSI.
fn offset(kind: LevelKind, tx_power: i32) -> i32 {
    match kind {
        LevelKind::Attenuation => 0,
        LevelKind::NegatedRssi => tx_power,
    }
}

/// A `pet` phone's stored windows, each paired with the record it came from.
fn pet_windows(
    records: &[EncounterRecord],
    mut stored: Vec<ExposureWindow>,
    risk: &RiskConfig,
    tx_power: i32,
) -> Vec<HeldWindow> {
    let mut used = vec![false; records.len()];
    let mut held = Vec::new();
    stored.sort_by_key(|w| (w.day, w.heard.map(|h| (h.first, h.last))));
    for window in stored {
        let Some(span) = window.heard else { continue };
        let found = records.iter().enumerate().position(|(i, r)| {
            !used[i]
                && matches!(r.evidence, Evidence::Pet { .. })
                && r.interval.day() == window.day
                && r.first_seen == span.first
                && r.last_seen == span.last
                && r.signal.buckets(offset(r.level_kind, tx_power), risk)
                    == window.seconds_per_bucket
        });
        if let Some(i) = found {
            used[i] = true;
            let r = &records[i];
            held.push(HeldWindow {
                signals: vec![(r.signal, offset(r.level_kind, tx_power))],
                window,
            });
        }
    }
    held
}

/// Every uploaded diagnosis key's RPIs: RPI → (key, interval offset).
pub(crate) fn rpi_index(run: &RawRun) -> (Vec<&DiagnosisKey>, HashMap<[u8; 16], usize>) {
    let keys: Vec<&DiagnosisKey> = run
        .federation
        .uploads
        .iter()
        .filter_map(|u| match &u.contents {
            ReportContents::Gaen(keys) => Some(keys.iter()),
            ReportContents::Pet(_) => None,
        })
        .flatten()
        .collect();
    let mut index = HashMap::new();
    let mut rpis = [RollingProximityIdentifier([0; 16]); 144];
    for (k, key) in keys.iter().enumerate() {
        let period = usize::from(key.rolling_period).min(144);
        key.key
            .rpik()
            .rpis_into(key.rolling_start, &mut rpis[..period]);
        for rpi in &rpis[..period] {
            index.insert(rpi.0, k);
        }
    }
    (keys, index)
}

/// A `gaen` phone's stored windows, each with the records its key matched.
fn gaen_windows(
    records: &[EncounterRecord],
    mut stored: Vec<ExposureWindow>,
    risk: &RiskConfig,
    keys: &[&DiagnosisKey],
    index: &HashMap<[u8; 16], usize>,
) -> Vec<HeldWindow> {
    // Key → the records it matches, in the client's rule: the RPI is one of the key's, and
    // the first and last intervals heard lie in its window ± the tolerance.
    let mut by_key: BTreeMap<usize, Vec<(SignalHistogram, i32)>> = BTreeMap::new();
    for r in records {
        let Evidence::Gaen { rpi, aem } = r.evidence else {
            continue;
        };
        let Some(&k) = index.get(&rpi) else { continue };
        let key = keys[k];
        let tolerance = MATCH_TOLERANCE_INTERVALS;
        if !(key.window_contains(r.first_seen.interval(), tolerance)
            && key.window_contains(r.last_seen.interval(), tolerance))
        {
            continue;
        }
        let tx_power = match r.level_kind {
            LevelKind::Attenuation => 0,
            LevelKind::NegatedRssi => {
                let metadata = key.key.aemk().decrypt(
                    &RollingProximityIdentifier(rpi),
                    &AssociatedEncryptedMetadata(aem),
                );
                i32::from(metadata.tx_power())
            }
        };
        by_key.entry(k).or_default().push((r.signal, tx_power));
    }
    let mut held = Vec::new();
    for (k, signals) in by_key {
        let key = keys[k];
        let candidate = HeldWindow {
            window: ExposureWindow {
                day: key.rolling_start.day(),
                seconds_per_bucket: [0; BUCKETS],
                infectiousness: risk.infectiousness(key.days_since_onset),
                report_type: key.report_type,
                heard: None,
            },
            signals,
        };
        let window = candidate.under(risk);
        if take_equal(&mut stored, &window) {
            held.push(HeldWindow {
                window,
                signals: candidate.signals,
            });
        }
    }
    held
}

/// The curve over the scenario's `detection.sweep_db` thresholds: precision, recall and
/// F1 of the client's own notifications against `truth` ((agent, sim day) close contacts).
pub(crate) fn sweep(
    scenario: &Scenario,
    run: &RawRun,
    truth: &std::collections::HashSet<(u32, u32)>,
) -> Vec<SweepPoint> {
    let config = client_config(scenario, run.federation.first());
    let risk = &config.risk;
    let tx_power = i32::from(config.encounter.assumed_tx_power);
    let (keys, index) = match scenario.scheme {
        super::scenario::SchemeName::Gaen => rpi_index(run),
        super::scenario::SchemeName::Pet => (Vec::new(), HashMap::new()),
    };
    // Per app user with matched windows: its windows by day.
    let mut people: Vec<(u32, BTreeMap<u32, Vec<HeldWindow>>)> = Vec::new();
    for (agent, phone) in run.phone_of.iter().enumerate() {
        if *phone == u32::MAX {
            continue;
        }
        let phone = &run.phones[*phone as usize];
        let stored = phone.windows();
        if stored.is_empty() {
            continue;
        }
        let records = phone.records();
        let held = match scenario.scheme {
            super::scenario::SchemeName::Gaen => {
                gaen_windows(&records, stored, risk, &keys, &index)
            }
            super::scenario::SchemeName::Pet => pet_windows(&records, stored, risk, tx_power),
        };
        let mut by_day: BTreeMap<u32, Vec<HeldWindow>> = BTreeMap::new();
        for w in held {
            by_day.entry(w.window.day.0).or_default().push(w);
        }
        people.push((agent as u32, by_day));
    }
    let [from, to, step] = scenario.detection.sweep_db;
    (from..=to)
        .step_by(usize::from(step))
        .map(|threshold| {
            let risk = shifted(risk, threshold);
            let (mut notified, mut tp) = (0u64, 0u64);
            for (agent, by_day) in &people {
                for (day, held) in by_day {
                    let Some(sim_day) = day
                        .checked_sub(scenario.first_day)
                        .filter(|d| *d < scenario.days)
                    else {
                        continue;
                    };
                    let windows: Vec<ExposureWindow> =
                        held.iter().map(|w| w.under(&risk)).collect();
                    let day = ephemera_proto::DayNumber(*day);
                    if risk.daily(day, day, &windows).high_risk {
                        notified += 1;
                        tp += u64::from(truth.contains(&(*agent, sim_day)));
                    }
                }
            }
            SweepPoint::new(threshold, truth.len() as u64, notified, tp)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_moves_the_three_bounds_together_and_keeps_the_rest() {
        let risk = RiskConfig::default();
        assert_eq!(
            shifted(&risk, 73),
            risk,
            "the shipped bound is the identity"
        );
        let low = shifted(&risk, 60);
        assert_eq!(low.attenuation_thresholds_db, [43, 49, 60]);
        assert_eq!(low.attenuation_weights, risk.attenuation_weights);
        assert_eq!(low.minimum_daily_score, risk.minimum_daily_score);
        assert_eq!(shifted(&risk, 10).attenuation_thresholds_db, [0, 0, 10]);
        assert!(shifted(&risk, 10).validate().is_ok());
    }
}
