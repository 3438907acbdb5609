//! Why `pet` misses close contacts that `gaen` finds (`ephemera-sim --scheme both --misses`).
//!
//! Both runs see the same population, epidemic and uploads. A *miss* is a (person, day) in
//! the `pet` run's ground truth that `pet` did not notify and that `gaen` found (true and
//! notified in the `gaen` run). Each miss gets one primary cause from a cascade: starting
//! from everything the person's phone received that day from the uploaders it met (on days
//! and before uploads that their reports cover), each stage keeps less of it, as the next
//! rule of the `pet` pipeline would, and the first stage after which the rest no longer
//! reaches a notification is the cause. The stages replay the run's own scans
//! (`engine::Air::scan`, the very draws the phones got) and follow the client's rules; the last
//! ones read what the phone really kept and matched.
//!
//! Until the client's per-encounter windows ([`Cause::WindowMinimum`]: the phone's own
//! records, chained by when they were heard as the client chains them), every stage scores
//! the kept time as `gaen` scores a diagnosis key: one window per uploader and day, with the
//! client's own attenuation buckets, weights, window minimum and daily threshold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use ephemera_client::risk::{BUCKETS, ExposureWindow, HeardSpan, RiskConfig};
use ephemera_client::signal::SignalHistogram;
use ephemera_client::store::Evidence;
use ephemera_proto::{DayNumber, ReportContents};
use serde::Serialize;

use super::attack::round4;
use super::engine::{Air, DAY, INTERVAL, RawRun};
use super::metrics::{Scored, Windows};
use super::phone::client_config;
use super::radio::RadioModel;
use super::scenario::Scenario;

/// The primary cause of one miss, in the order the cascade decides it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Every scan the phone received from the uploaders that day, each credited in full,
    /// stays below the daily threshold: a borderline contact that `gaen`'s own radio draws
    /// put over it (the two runs draw receptions apart).
    Radio,
    /// Only scans from the one in which the phone held 3 of the 4 slices of the peer's key
    /// (within its interval) count: before that the phone cannot know the key.
    SliceReassembly,
    /// A gap of more than `max_gap_seconds` between two receptions of the same peer key
    /// closes the encounter; the slice assembler has already rebuilt that key, so the
    /// slices heard after the gap are dropped for the rest of the interval.
    ClosedByGap,
    /// Encounters (one peer key, one interval) credited less than
    /// `min_pet_encounter_seconds` are dropped without tokens.
    ShortEncounter,
    /// The uploader's phone did not record the encounter itself (the same replay in the
    /// other direction), so the token this phone holds was never uploaded.
    OneSided,
    /// Both sides recorded the encounter in the replay, but the phone holds no record of
    /// that interval whose token the uploader uploaded (still open at the upload, before
    /// the reported window, or the phone differs from the replay).
    NotMatched,
    /// The phone's own matched records, scored per uploader and day, stay below the
    /// threshold: the phone credited less time than the replay.
    CreditedLess,
    /// Scored per uploader and day the matched records would notify, but `pet` scores
    /// each encounter (at most one interval) as its own window, chained only with windows
    /// heard back to back, and windows (chains) below the minimum window score count for
    /// nothing.
    WindowMinimum,
    /// Every rule passes: the phone should have notified (timing, or a cause not modelled).
    Other,
}

/// Every cause, in the order the cascade decides.
pub const CAUSES: [Cause; 9] = [
    Cause::Radio,
    Cause::SliceReassembly,
    Cause::ClosedByGap,
    Cause::ShortEncounter,
    Cause::OneSided,
    Cause::NotMatched,
    Cause::CreditedLess,
    Cause::WindowMinimum,
    Cause::Other,
];

impl Cause {
    /// The snake-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Radio => "radio",
            Cause::SliceReassembly => "slice_reassembly",
            Cause::ClosedByGap => "closed_by_gap",
            Cause::ShortEncounter => "short_encounter",
            Cause::OneSided => "one_sided",
            Cause::NotMatched => "not_matched",
            Cause::CreditedLess => "credited_less",
            Cause::WindowMinimum => "window_minimum",
            Cause::Other => "other",
        }
    }
}

/// A whole `pet` key received in one advertisement (extended advertising).
pub const WHOLE: u8 = 0b1111;

/// One scan in which a phone received something of one peer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Obs {
    /// Seconds after midnight.
    pub t: u32,
    /// Seconds the client credits the scan: the time since the phone's previous scan, at
    /// most the declared scan period.
    pub credit: u32,
    /// The level the client records: assumed transmit power − RSSI (dB).
    pub level: u8,
    /// The slices received, one bit each ([`WHOLE`] for a whole key).
    pub slices: u8,
}

/// The client rules the replay follows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// An open encounter closes when its peer is not heard for longer than this.
    pub max_gap_seconds: u32,
    /// A `pet` encounter credited less than this is dropped.
    pub min_encounter_seconds: u32,
}

/// What one phone made of one peer key (one interval) in the replay: the time credited at
/// each stage, by level.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Piece {
    /// Every scan received.
    pub heard: SignalHistogram,
    /// From the scan in which the key could be rebuilt.
    pub after_key: SignalHistogram,
    /// And up to the first gap that closes the encounter.
    pub before_gap: SignalHistogram,
    /// Whether `before_gap` reaches the minimum encounter.
    pub recorded: bool,
}

/// Replays one phone's scans of one peer key, in time order, through the client's rules.
pub fn replay(scans: &[Obs], rules: &Rules) -> Piece {
    let mut piece = Piece::default();
    let (mut parts, mut keyed, mut closed) = (0u8, false, false);
    let mut last: Option<u32> = None;
    for s in scans {
        piece.heard.add(s.level, s.credit);
        if !keyed {
            parts |= s.slices;
            keyed = parts.count_ones() >= 3;
        }
        if !keyed {
            continue;
        }
        piece.after_key.add(s.level, s.credit);
        if closed {
            continue;
        }
        if last.is_some_and(|l| s.t.saturating_sub(l) > rules.max_gap_seconds) {
            closed = true;
            continue;
        }
        piece.before_gap.add(s.level, s.credit);
        last = Some(s.t);
    }
    piece.recorded = piece.before_gap.total_seconds() >= rules.min_encounter_seconds;
    piece
}

/// One interval of contact between the missed phone and one uploader.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PieceEvidence {
    /// The phone hearing the uploader.
    pub heard: Piece,
    /// Whether the uploader's phone recorded the phone in that interval (the replay in
    /// the other direction).
    pub reverse_recorded: bool,
    /// Whether the phone holds a record of that interval whose peer token the uploader
    /// uploaded.
    pub matched: bool,
}

/// Everything about one uploader the phone met on the day of a miss.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    /// The uploader.
    pub uploader: u32,
    /// Per interval.
    pub pieces: Vec<PieceEvidence>,
}

/// Whether windows with these seconds per bucket (and, for the phone's own windows, when
/// they were heard, which chains them) make a high-risk day under `risk`, with what a `pet`
/// token carries (no onset, no report type).
fn notifies(
    risk: &RiskConfig,
    windows: impl IntoIterator<Item = ([u32; BUCKETS], Option<HeardSpan>)>,
) -> bool {
    let day = DayNumber(0);
    let windows: Vec<ExposureWindow> = windows
        .into_iter()
        .map(|(seconds_per_bucket, heard)| ExposureWindow {
            day,
            seconds_per_bucket,
            infectiousness: risk.infectiousness_when_onset_missing,
            report_type: risk.report_type_when_missing,
            heard,
        })
        .collect();
    risk.daily(day, day, &windows).high_risk
}

fn add(total: &mut [u32; BUCKETS], h: &SignalHistogram, risk: &RiskConfig) {
    for (t, s) in total.iter_mut().zip(h.buckets(0, risk)) {
        *t += s;
    }
}

/// The primary cause of a miss: the first stage of the cascade after which what is left
/// of `contacts` no longer notifies. `actual` are the phone's own records of the day whose
/// peer token an uploader uploaded, with that uploader.
pub fn classify(
    contacts: &[Contact],
    actual: &[(u32, SignalHistogram, HeardSpan)],
    risk: &RiskConfig,
) -> Cause {
    type Keep = fn(&PieceEvidence) -> Option<SignalHistogram>;
    let stages: [(Cause, Keep); 6] = [
        (Cause::Radio, |p| Some(p.heard.heard)),
        (Cause::SliceReassembly, |p| Some(p.heard.after_key)),
        (Cause::ClosedByGap, |p| Some(p.heard.before_gap)),
        (Cause::ShortEncounter, |p| {
            p.heard.recorded.then_some(p.heard.before_gap)
        }),
        (Cause::OneSided, |p| {
            (p.heard.recorded && p.reverse_recorded).then_some(p.heard.before_gap)
        }),
        (Cause::NotMatched, |p| {
            (p.heard.recorded && p.reverse_recorded && p.matched).then_some(p.heard.before_gap)
        }),
    ];
    for (cause, keep) in stages {
        let per_uploader = contacts.iter().map(|c| {
            let mut total = [0u32; BUCKETS];
            for h in c.pieces.iter().filter_map(keep) {
                add(&mut total, &h, risk);
            }
            total
        });
        if !notifies(risk, per_uploader.map(|total| (total, None))) {
            return cause;
        }
    }
    let mut per_uploader: BTreeMap<u32, [u32; BUCKETS]> = BTreeMap::new();
    for (u, h, _) in actual {
        add(per_uploader.entry(*u).or_default(), h, risk);
    }
    if !notifies(risk, per_uploader.into_values().map(|total| (total, None))) {
        return Cause::CreditedLess;
    }
    let windows = actual
        .iter()
        .map(|(_, h, span)| (h.buckets(0, risk), Some(*span)));
    if !notifies(risk, windows) {
        return Cause::WindowMinimum;
    }
    Cause::Other
}

/// Misses of one cause.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CauseCount {
    /// The cause.
    pub cause: Cause,
    /// Misses it is the primary cause of.
    pub count: u64,
    /// Share of all misses.
    pub share: f64,
}

/// The classification of a `pet` run's misses against a `gaen` run (`misses.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MissReport {
    /// (person, day) close contacts in the `pet` run's ground truth.
    pub pet_truth: u64,
    /// Of those, notified by `pet`.
    pub pet_found: u64,
    /// True (person, day) contacts the `gaen` run notified.
    pub gaen_found: u64,
    /// In `pet`'s truth, found by `gaen`, not notified by `pet`: the misses classified.
    pub missed: u64,
    /// Found by `pet`, not by `gaen`.
    pub pet_only: u64,
    /// Misses per primary cause, in the cascade's order.
    pub causes: Vec<CauseCount>,
}

impl MissReport {
    /// The report as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "pet truth {}, pet found {}, gaen found {}, found by gaen and missed by pet {}, found by pet only {}\n\n\
             | cause | misses | share |\n| --- | ---: | ---: |\n",
            self.pet_truth, self.pet_found, self.gaen_found, self.missed, self.pet_only
        );
        for c in &self.causes {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} % |",
                c.cause.as_str(),
                c.count,
                c.share * 100.0
            );
        }
        out
    }
}

/// Scans of one peer by one phone, per (peer, interval).
type ScansBy = HashMap<(u32, u32), Vec<Obs>>;

/// Classifies the misses of the `pet` run `run` (scored as `scored`) against `gaen_found`,
/// the (agent, sim day) pairs a `gaen` run of the same scenario found.
pub fn report(
    scenario: &Scenario,
    run: &RawRun,
    scored: &Scored,
    gaen_found: &[(u32, u32)],
) -> MissReport {
    let gaen: HashSet<(u32, u32)> = gaen_found.iter().copied().collect();
    let notified: HashSet<(u32, u32)> = scored.notified.iter().copied().collect();
    let pet_found = scored.truth.iter().filter(|k| notified.contains(k)).count() as u64;
    let pet_only = scored
        .truth
        .iter()
        .filter(|k| notified.contains(k) && !gaen.contains(k))
        .count() as u64;
    let missed: Vec<(u32, u32)> = scored
        .truth
        .iter()
        .filter(|k| !notified.contains(k) && gaen.contains(k))
        .copied()
        .collect();

    let config = client_config(scenario, run.federation.first());
    let rules = Rules {
        max_gap_seconds: config.encounter.max_gap_seconds,
        min_encounter_seconds: config.encounter.min_pet_encounter_seconds,
    };
    let risk = &config.risk;
    let air = Air {
        scenario,
        pop: &run.pop,
        model: RadioModel::new(&scenario.radio),
    };
    let windows = Windows::new(scenario, run);
    let mut uploader_of: HashMap<[u8; 16], u32> = HashMap::new();
    for u in &run.federation.uploads {
        if let ReportContents::Pet(tokens) = &u.contents {
            for t in tokens {
                uploader_of.insert(t.token.0, u.agent);
            }
        }
    }
    let is_app = |a: u32| run.phone_of[a as usize] != u32::MAX;
    let tx = i16::from(config.encounter.assumed_tx_power);
    // One receiver's scans of the other over an episode, filed by (uploader, interval).
    let scans = |into: &mut ScansBy, day: u32, k: usize, dir: u8, uploader: u32| {
        let ep = &run.episodes[day as usize][k];
        let receiver = if dir == 0 { ep.a } else { ep.b };
        let (period, _) = air.schedule(day, receiver);
        let credit = period.min(config.encounter.scan_period_seconds);
        for t in air.scan_times(day, receiver, ep.start, ep.end()) {
            let scan = air.scan(day, k as u32, ep, dir, t);
            if !scan.received {
                continue;
            }
            let rssi = i16::from(air.model.rssi(scan.attenuation));
            let slices = if scan.slice_count == 0 {
                WHOLE
            } else {
                scan.slices[..usize::from(scan.slice_count)]
                    .iter()
                    .fold(0u8, |m, s| m | (1 << s))
            };
            into.entry((uploader, t / INTERVAL)).or_default().push(Obs {
                t,
                credit,
                level: (tx - rssi).clamp(0, 255) as u8,
                slices,
            });
        }
    };

    let mut counts: BTreeMap<Cause, u64> = BTreeMap::new();
    for (v, day) in &missed {
        let (v, day) = (*v, *day);
        let interval_base =
            ((run.t0 + u64::from(day) * u64::from(DAY)) / u64::from(INTERVAL)) as u32;
        let mut heard: ScansBy = HashMap::new();
        let mut reverse: ScansBy = HashMap::new();
        for (k, ep) in run.episodes[day as usize].iter().enumerate() {
            let (u, dir) = match (ep.a == v, ep.b == v) {
                (true, _) => (ep.b, 0u8),
                (_, true) => (ep.a, 1u8),
                _ => continue,
            };
            if !is_app(u) || !windows.covers(u, day, ep.end()) {
                continue;
            }
            scans(&mut heard, day, k, dir, u);
            scans(&mut reverse, day, k, 1 - dir, u);
        }
        // The phone's own records of the day that an uploader's token matches.
        let mut matched: HashSet<(u32, u32)> = HashSet::new();
        let mut actual: Vec<(u32, SignalHistogram, HeardSpan)> = Vec::new();
        let this_day = DayNumber(scenario.first_day + day);
        for r in run.phones[run.phone_of[v as usize] as usize].records() {
            if r.day() != this_day {
                continue;
            }
            if let Evidence::Pet { peer, .. } = r.evidence
                && let Some(u) = uploader_of.get(&peer.0)
            {
                matched.insert((*u, r.interval.0 - interval_base));
                let span = HeardSpan {
                    first: r.first_seen,
                    last: r.last_seen,
                };
                actual.push((*u, r.signal, span));
            }
        }
        let mut by_uploader: BTreeMap<u32, Contact> = BTreeMap::new();
        let mut keys: Vec<&(u32, u32)> = heard.keys().collect();
        keys.sort_unstable();
        for key in keys {
            let mut obs = heard[key].clone();
            obs.sort_by_key(|o| o.t);
            let mut back = reverse.get(key).cloned().unwrap_or_default();
            back.sort_by_key(|o| o.t);
            let contact = by_uploader.entry(key.0).or_insert_with(|| Contact {
                uploader: key.0,
                pieces: Vec::new(),
            });
            contact.pieces.push(PieceEvidence {
                heard: replay(&obs, &rules),
                reverse_recorded: replay(&back, &rules).recorded,
                matched: matched.contains(key),
            });
        }
        let contacts: Vec<Contact> = by_uploader.into_values().collect();
        *counts
            .entry(classify(&contacts, &actual, risk))
            .or_default() += 1;
    }
    let total = missed.len().max(1) as f64;
    MissReport {
        pet_truth: scored.truth.len() as u64,
        pet_found,
        gaen_found: gaen.len() as u64,
        missed: missed.len() as u64,
        pet_only,
        causes: CAUSES
            .iter()
            .map(|c| {
                let count = counts.get(c).copied().unwrap_or(0);
                CauseCount {
                    cause: *c,
                    count,
                    share: round4(count as f64 / total),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::UnixTime;

    use super::*;

    const RULES: Rules = Rules {
        max_gap_seconds: 300,
        min_encounter_seconds: 120,
    };
    /// 55 dB: the "immediate" bucket (weight 1.5); 70 dB: "medium" (0.4).
    const NEAR: u8 = 55;
    const MEDIUM: u8 = 70;

    /// Scans every `period` seconds from `from` to `to` (exclusive), each with `slices`.
    fn scans(from: u32, to: u32, period: u32, level: u8, slices: u8) -> Vec<Obs> {
        (from..to)
            .step_by(period as usize)
            .map(|t| Obs {
                t,
                credit: period,
                level,
                slices,
            })
            .collect()
    }

    /// A contact of `intervals` whole 10-minute intervals with one uploader, every piece
    /// heard in `obs(interval start)`, recorded by both and matched unless told.
    fn contact(
        intervals: u32,
        obs: impl Fn(u32) -> Vec<Obs>,
        both: bool,
        matched: bool,
    ) -> Contact {
        Contact {
            uploader: 7,
            pieces: (0..intervals)
                .map(|i| PieceEvidence {
                    heard: replay(&obs(i * 600), &RULES),
                    reverse_recorded: both,
                    matched,
                })
                .collect(),
        }
    }

    /// The phone's records of a contact: piece `i` heard over interval `i`.
    fn actual(c: &Contact) -> Vec<(u32, SignalHistogram, HeardSpan)> {
        (0u64..)
            .zip(&c.pieces)
            .filter(|(_, p)| p.matched && p.heard.recorded && p.reverse_recorded)
            .map(|(i, p)| {
                let first = UnixTime(i * 600);
                let span = HeardSpan {
                    first,
                    last: first.plus_seconds(590),
                };
                (c.uploader, p.heard.before_gap, span)
            })
            .collect()
    }

    fn cause(c: Contact) -> Cause {
        classify(
            std::slice::from_ref(&c),
            &actual(&c),
            &RiskConfig::default(),
        )
    }

    #[test]
    fn the_replay_follows_the_clients_rules() {
        // Slices 0, 1, then 2: the key is rebuilt at the third scan.
        let mut obs = scans(0, 600, 100, NEAR, 0b0001);
        obs[1].slices = 0b0010;
        obs[2].slices = 0b0100;
        let piece = replay(&obs, &RULES);
        assert_eq!(piece.heard.total_seconds(), 600);
        assert_eq!(piece.after_key.total_seconds(), 400);
        assert_eq!(piece.before_gap.total_seconds(), 400);
        assert!(piece.recorded);
        // A 400-second gap closes it: what follows is lost.
        let obs = [0, 100, 500].map(|t| Obs {
            t,
            credit: 100,
            level: NEAR,
            slices: WHOLE,
        });
        let piece = replay(&obs, &RULES);
        assert_eq!(piece.after_key.total_seconds(), 300);
        assert_eq!(piece.before_gap.total_seconds(), 200);
        // 100 seconds is short of the 120 a pet encounter needs.
        assert!(!replay(&obs[..1], &RULES).recorded);
    }

    /// 40 minutes near by every rule: the cascade finds nothing wrong.
    #[test]
    fn a_clean_contact_is_other() {
        let c = contact(4, |s| scans(s, s + 600, 150, NEAR, WHOLE), true, true);
        assert_eq!(cause(c), Cause::Other);
    }

    /// 5 minutes near is below 15 weighted minutes however it is scored.
    #[test]
    fn too_little_heard_is_radio() {
        let c = contact(1, |s| scans(s, s + 300, 150, NEAR, WHOLE), true, true);
        assert_eq!(cause(c), Cause::Radio);
    }

    /// Only one or two slices a scan: the key is rebuilt late in every interval.
    #[test]
    fn slices_that_never_make_a_key_are_slice_reassembly() {
        let c = contact(
            3,
            |s| {
                let mut obs = scans(s, s + 600, 150, NEAR, 0b0001);
                obs[3].slices = 0b0110;
                obs
            },
            true,
            true,
        );
        assert_eq!(cause(c), Cause::SliceReassembly);
    }

    /// A reception missed early in every interval closes the encounter for the rest of it.
    #[test]
    fn a_gap_that_closes_the_encounter_is_closed_by_gap() {
        let c = contact(
            3,
            |s| {
                let mut obs = scans(s, s + 600, 100, NEAR, WHOLE);
                obs.remove(1);
                obs.remove(1);
                obs.remove(1);
                obs
            },
            true,
            true,
        );
        assert_eq!(cause(c), Cause::ClosedByGap);
    }

    /// Contact of 100 seconds in each of 8 intervals: enough in sum, never 120 in one.
    #[test]
    fn pieces_below_the_minimum_encounter_are_short_encounter() {
        let c = contact(8, |s| scans(s + 500, s + 600, 100, NEAR, WHOLE), true, true);
        assert_eq!(cause(c), Cause::ShortEncounter);
    }

    #[test]
    fn an_encounter_the_uploader_did_not_record_is_one_sided() {
        let c = contact(4, |s| scans(s, s + 600, 150, NEAR, WHOLE), false, true);
        assert_eq!(cause(c), Cause::OneSided);
    }

    #[test]
    fn a_token_that_never_matched_is_not_matched() {
        let c = contact(4, |s| scans(s, s + 600, 150, NEAR, WHOLE), true, false);
        assert_eq!(cause(c), Cause::NotMatched);
    }

    /// The phone's records credit less than its scans.
    #[test]
    fn records_short_of_the_replay_are_credited_less() {
        let c = contact(4, |s| scans(s, s + 600, 150, NEAR, WHOLE), true, true);
        let mut thin = SignalHistogram::default();
        thin.add(NEAR, 60);
        let span = HeardSpan {
            first: UnixTime(0),
            last: UnixTime(60),
        };
        let records = vec![(7, thin, span)];
        let got = classify(&[c], &records, &RiskConfig::default());
        assert_eq!(got, Cause::CreditedLess);
    }

    /// 50 minutes at medium attenuation in five separate 10-minute meetings: 1,200
    /// weighted seconds over the day, but 240 in each window, under the 300 a window (or a
    /// chain of windows heard back to back) needs.
    #[test]
    fn medium_attenuation_in_separate_meetings_is_window_minimum() {
        let every_other = |s: u32| {
            if s.is_multiple_of(1200) {
                scans(s, s + 600, 150, MEDIUM, WHOLE)
            } else {
                Vec::new()
            }
        };
        let c = contact(9, every_other, true, true);
        assert_eq!(cause(c), Cause::WindowMinimum);
    }

    /// 50 minutes at medium attenuation in one meeting: the phone chains its five windows
    /// (issue 18), so the day notifies and nothing of the cascade explains a miss.
    #[test]
    fn medium_attenuation_in_one_meeting_chains_and_notifies() {
        let c = contact(5, |s| scans(s, s + 600, 150, MEDIUM, WHOLE), true, true);
        assert_eq!(cause(c), Cause::Other);
    }
}
