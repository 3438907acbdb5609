//! Why each true close contact the run did not notify was missed (`summary.json`'s
//! `missed`): one primary cause per (person, day), in the order the chain breaks.
//!
//! 1. `not_heard`: the person's phone received no scan from any uploader it met that day
//!    (on days and before uploads their reports cover): the run's own scans, replayed.
//! 2. `not_uploaded`: heard, but the phone holds no record whose RPI (`gaen`) or token
//!    (`pet`) an uploader's report carries: the phone kept no encounter of it (for `pet`:
//!    slices never made a key, too short), or the uploader left it out of its report (the
//!    `pet` upload rule, a `gaen` key outside the upload).
//! 3. `synced_too_late`: the phone holds such a record but stored no window for the day: the
//!    key or token was not yet published when the phone last synced (release spread,
//!    embargo, the end of the run).
//! 4. `too_weak`: the day's stored windows credit time only beyond the last attenuation
//!    bound (weight 0).
//! 5. `below_window_score`: no window (or `pet` chain) reaches the minimum window score.
//! 6. `below_daily_score`: some do, but the day stays below the daily minimum.
//! 7. `other`: the stored windows make a high-risk day the run did not count (timing).

use std::collections::{HashMap, HashSet};

use ephemera_client::store::Evidence;
use ephemera_proto::{DayNumber, ReportContents};
use serde::Serialize;

use super::engine::{Air, RawRun};
use super::metrics::Windows;
use super::phone::client_config;
use super::radio::RadioModel;
use super::scenario::Scenario;

/// Counts of missed close contacts by primary cause.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Missed {
    /// True close contacts not notified.
    pub total: u64,
    /// No scan of an uploader received.
    pub not_heard: u64,
    /// Heard, but no record the uploads carry.
    pub not_uploaded: u64,
    /// Uploaded, but no window stored by the end.
    pub synced_too_late: u64,
    /// Stored windows hold time only beyond the last attenuation bound.
    pub too_weak: u64,
    /// No window (chain) reaches the minimum window score.
    pub below_window_score: u64,
    /// The day stays below the minimum daily score.
    pub below_daily_score: u64,
    /// Everything passes: timing.
    pub other: u64,
}

/// Classifies every (agent, sim day) of `truth` that is not in `notified`.
pub(crate) fn classify(
    scenario: &Scenario,
    run: &RawRun,
    windows: &Windows,
    truth: &HashSet<(u32, u32)>,
    notified: &HashSet<(u32, u32)>,
) -> Missed {
    let mut missed: Vec<(u32, u32)> = truth
        .iter()
        .filter(|k| !notified.contains(k))
        .copied()
        .collect();
    missed.sort_unstable();
    let mut out = Missed {
        total: missed.len() as u64,
        ..Missed::default()
    };
    if missed.is_empty() {
        return out;
    }
    let config = client_config(scenario, run.federation.first());
    let risk = &config.risk;
    let air = Air {
        scenario,
        pop: &run.pop,
        model: RadioModel::new(&scenario.radio),
    };
    let is_app = |a: u32| run.phone_of[a as usize] != u32::MAX;
    let (_, rpis) = super::client_sweep::rpi_index(run);
    let tokens: HashSet<[u8; 16]> = run
        .federation
        .uploads
        .iter()
        .filter_map(|u| match &u.contents {
            ReportContents::Pet(tokens) => Some(tokens.iter().map(|t| t.token.0)),
            ReportContents::Gaen(_) => None,
        })
        .flatten()
        .collect();
    // Each missed person's records and stored windows, read once.
    let mut phones: HashMap<u32, (Vec<_>, Vec<_>)> = HashMap::new();
    for (v, day) in missed {
        // 1. Any scan of a covered uploader received that day?
        let heard = run.episodes[day as usize]
            .iter()
            .enumerate()
            .any(|(k, ep)| {
                let (u, dir) = match (ep.a == v, ep.b == v) {
                    (true, _) => (ep.b, 0u8),
                    (_, true) => (ep.a, 1u8),
                    _ => return false,
                };
                is_app(u)
                    && windows.covers(u, day, ep.end())
                    && air
                        .scan_times(day, v, ep.start, ep.end())
                        .any(|t| air.scan(day, k as u32, ep, dir, t).received)
            });
        if !heard {
            out.not_heard += 1;
            continue;
        }
        let (records, stored) = phones.entry(v).or_insert_with(|| {
            let phone = &run.phones[run.phone_of[v as usize] as usize];
            (phone.records(), phone.windows())
        });
        let this_day = DayNumber(scenario.first_day + day);
        let uploaded = records.iter().any(|r| {
            r.day() == this_day
                && match &r.evidence {
                    Evidence::Gaen { rpi, .. } => rpis.contains_key(rpi),
                    Evidence::Pet { peer, .. } => tokens.contains(&peer.0),
                }
        });
        if !uploaded {
            out.not_uploaded += 1;
            continue;
        }
        let day_windows: Vec<_> = stored.iter().filter(|w| w.day == this_day).collect();
        if day_windows.is_empty() {
            out.synced_too_late += 1;
            continue;
        }
        if day_windows
            .iter()
            .all(|w| w.seconds_per_bucket[..3].iter().all(|s| *s == 0))
        {
            out.too_weak += 1;
            continue;
        }
        let daily = risk.daily(this_day, this_day, day_windows.iter().copied());
        if daily.windows == 0 {
            out.below_window_score += 1;
        } else if !daily.high_risk {
            out.below_daily_score += 1;
        } else {
            out.other += 1;
        }
    }
    out
}
