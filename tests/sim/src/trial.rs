//! Field measurements replayed through the simulator (`ephemera-sim trial`): pairs of
//! phones held at measured distances for a set time, heard through the [`radio`] model
//! and scored by the real client under named detection rules and an attenuation sweep.
//!
//! Each pair has one receiving phone per detection rule or sweep threshold, and its
//! sender; every receiver of a pair hears the very same scans (the draws are keyed by
//! pair, direction and time, never by phone), so the rules differ only in how the client
//! scores. The sender goes through the real report flow (code, verified upload, signed
//! batch) and each receiver syncs, matches and scores as an app would: a receiver
//! notified is the client's own decision, for `gaen` and `pet` alike. A pair within
//! `close_m` is a true contact; the true-positive rate (TPR) is the share of those
//! notified, the false-positive rate (FPR) the share of the pairs beyond.
//!
//! The replay runs under two radio profiles: the scenario's own `[radio]` (named by
//! `trial.radio_profile`) and the simulator's default, so a profile fitted to a
//! measurement can be set beside the model the town runs on.
//!
//! [`radio`]: crate::radio

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use ephemera_client::RiskConfig;
use ephemera_proto::{DayNumber, UnixTime};
use plotters::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use super::client_sweep::shifted;
use super::contacts::{Episode, Layer};
use super::engine::{Air, DAY, INTERVAL};
use super::error::SimError;
use super::output::{io_error, plot_error};
use super::phone::{ClientPhone, Payloads, PhoneAdapter, client_config, risk_config};
use super::population::Population;
use super::provenance::{Provenance, ensure_fresh};
use super::radio::RadioModel;
use super::rng::{Domain, seed32};
use super::scenario::{RadioConfig, Scenario, SchemeName, TrialConfig};
use super::seeds::Interval;
use super::server::Server;

/// The last attenuation bounds of the sweep (dB), every `trial.sweep_step_db`.
pub const SWEEP_THRESHOLDS_DB: std::ops::RangeInclusive<u8> = 40..=96;

/// A detection rule: a risk configuration the client scores with, and where it comes from.
#[derive(Clone, Debug, Serialize)]
pub struct Rule {
    /// Its name in outputs and in `trial.published`.
    pub name: &'static str,
    /// Where its settings come from.
    pub source: &'static str,
    /// The client's configuration.
    pub risk: RiskConfig,
}

/// A rule of GAEN v1 apps as the client's v2-style scoring expresses it: minutes at or
/// below `near` weigh 1, up to `far` weigh `mid_weight`, beyond nothing; a day counts from
/// `daily_seconds`, with no minimum per window.
fn v1_rule(near: u8, far: u8, mid_weight: f64, daily_seconds: f64) -> RiskConfig {
    RiskConfig {
        attenuation_thresholds_db: [near, far, far],
        attenuation_weights: [1.0, mid_weight, 0.0, 0.0],
        minimum_window_score: 0.0,
        minimum_daily_score: daily_seconds,
        ..RiskConfig::default()
    }
}

/// The named rules: this scenario's shipped scoring, the GAEN API's default duration
/// thresholds, and the Swiss, German and Italian apps' rules of June 2020 as Leith and
/// Farrell applied them (PLoS ONE 15(9):e0239943, 2020, §3).
pub fn rules(scenario: &Scenario) -> Vec<Rule> {
    vec![
        Rule {
            name: "ephemera",
            source: "this scenario's [detection] (default: CoronaMelder v3, 56/62/73 dB, \
                     weights 1.5/1/0.4, 5-minute window and 15-minute day minimums)",
            risk: risk_config(scenario),
        },
        Rule {
            name: "gaen-v1-defaults",
            source: "the GAEN API's default attenuationDurationThresholds, 50 and 70 dB; \
                     minutes weighted 1 and 0.5 as the Swiss and German apps did; 15 minutes",
            risk: v1_rule(50, 70, 0.5, 900.0),
        },
        Rule {
            name: "swiss-2020-06",
            source: "SwissCovid, June 2020: 1 × minutes below 50 dB + 0.5 × minutes at \
                     50-55 dB, at least 15 minutes",
            risk: v1_rule(50, 55, 0.5, 900.0),
        },
        Rule {
            name: "german-2020-06",
            source: "Corona-Warn-App configuration of 22 June 2020: thresholds 55 and 63 dB, \
                     weights 1 and 0.5, at least 15 minutes",
            risk: v1_rule(55, 63, 0.5, 900.0),
        },
        Rule {
            name: "italian-2020-06",
            source: "Immuni settings of 22 June 2020: attenuation score 0 above 73 dB, \
                     duration score from more than 15 minutes",
            risk: v1_rule(73, 73, 0.0, 900.0),
        },
    ]
}

/// The thresholds of the sweep.
fn sweep_thresholds(trial: &TrialConfig) -> impl Iterator<Item = u8> {
    SWEEP_THRESHOLDS_DB.step_by(usize::from(trial.sweep_step_db))
}

/// One rule's rates across replications.
#[derive(Clone, Debug, Serialize)]
pub struct RuleRates {
    /// The rule.
    pub rule: &'static str,
    /// True-positive rate, with its 95 % interval across replications.
    pub tpr: Interval,
    /// False-positive rate.
    pub fpr: Interval,
    /// Share of replications in which the rule notified no pair at all.
    pub silent_share: f64,
    /// The trial's published rates for this rule, if any.
    pub published: Option<(f64, f64)>,
}

/// One point of the attenuation sweep: the shipped scoring with its bounds shifted so the
/// last is `threshold_db`, averaged over replications.
#[derive(Clone, Debug, Serialize)]
pub struct RocPoint {
    /// The last attenuation bound (dB).
    pub threshold_db: u8,
    /// Mean true-positive rate.
    pub tpr: f64,
    /// Mean false-positive rate.
    pub fpr: f64,
}

/// The replay of one scheme under one radio profile.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileResult {
    /// The radio profile.
    pub profile: String,
    /// The scheme.
    pub scheme: SchemeName,
    /// Each named rule.
    pub rules: Vec<RuleRates>,
    /// The attenuation sweep (the ROC curve).
    pub roc: Vec<RocPoint>,
    /// The area under it, closed at (0, 0) and (1, 1) (trapezoids): 0.5 is chance.
    pub auc: f64,
    /// Minutes of contact a receiver recorded per pair (its encounter records' credited
    /// time): 25th, 50th and 75th percentiles over pairs and replications.
    pub recorded_minutes: [f64; 3],
}

/// Everything a trial replay produced.
#[derive(Clone, Debug, Serialize)]
pub struct TrialReport {
    /// The trial.
    pub trial: TrialConfig,
    /// Pairs within `close_m` and beyond, per replication.
    pub close_pairs: u32,
    /// Pairs beyond `close_m`.
    pub far_pairs: u32,
    /// Per profile and scheme.
    pub results: Vec<ProfileResult>,
    /// The rules, with their sources.
    pub rules: Vec<Rule>,
    /// Version and seed.
    pub provenance: Provenance,
}

/// Replays the scenario's `[trial]` under its own radio and the default one, for both
/// schemes.
///
/// # Errors
/// [`SimError::Scenario`] when the scenario has no `[trial]`, is invalid, or publishes a
/// rate for a rule that does not exist; [`SimError::Phone`] or [`SimError::Node`] when the
/// client or the node refuses something.
pub fn run(scenario: &Scenario) -> Result<TrialReport, SimError> {
    scenario.validate()?;
    let Some(trial) = scenario.trial.clone() else {
        return Err(SimError::Scenario(
            "the scenario has no [trial] section (see tests/sim/scenarios/tram.toml)".into(),
        ));
    };
    let rules = rules(scenario);
    if let Some(p) = trial
        .published
        .iter()
        .find(|p| !rules.iter().any(|r| r.name == p.rule))
    {
        return Err(SimError::Scenario(format!(
            "trial.published names no rule {:?}",
            p.rule
        )));
    }
    let mut profiles = vec![(trial.radio_profile.clone(), scenario.radio.clone())];
    if scenario.radio != RadioConfig::default() {
        profiles.push(("default".to_owned(), RadioConfig::default()));
    }
    let mut receivers: Vec<RiskConfig> = rules.iter().map(|r| r.risk.clone()).collect();
    receivers.extend(sweep_thresholds(&trial).map(|t| shifted(&risk_config(scenario), t)));
    let distances = distances(&trial);
    let close: Vec<bool> = distances.iter().map(|d| *d <= trial.close_m).collect();
    let close_pairs = close.iter().filter(|c| **c).count() as u32;
    let far_pairs = close.len() as u32 - close_pairs;

    let mut results = Vec::new();
    for (profile, radio) in profiles {
        for scheme in [SchemeName::Gaen, SchemeName::Pet] {
            let base = Scenario {
                scheme,
                radio: radio.clone(),
                ..scenario.clone()
            };
            // Per replication, per receiver: (TPR, FPR).
            let mut rates: Vec<Vec<(f64, f64)>> = Vec::new();
            let mut recorded = Vec::new();
            for r in 0..trial.replications {
                let (notified, minutes) = replay(&base, &trial, &distances, r, &receivers)?;
                recorded.extend(minutes);
                rates.push(
                    (0..receivers.len())
                        .map(|j| tpr_fpr(&notified, &close, j))
                        .collect(),
                );
            }
            let column = |j: usize, f: fn(&(f64, f64)) -> f64| -> Vec<f64> {
                rates.iter().map(|row| f(&row[j])).collect()
            };
            let interval = |values: Vec<f64>| Interval::of(&values).expect("at least 2");
            let rule_rates = rules
                .iter()
                .enumerate()
                .map(|(j, rule)| RuleRates {
                    rule: rule.name,
                    tpr: interval(column(j, |x| x.0)),
                    fpr: interval(column(j, |x| x.1)),
                    silent_share: rates.iter().filter(|row| row[j] == (0.0, 0.0)).count() as f64
                        / rates.len() as f64,
                    published: trial
                        .published
                        .iter()
                        .find(|p| p.rule == rule.name)
                        .map(|p| (p.tpr, p.fpr)),
                })
                .collect();
            let roc: Vec<RocPoint> = sweep_thresholds(&trial)
                .enumerate()
                .map(|(k, threshold_db)| {
                    let j = rules.len() + k;
                    RocPoint {
                        threshold_db,
                        tpr: interval(column(j, |x| x.0)).mean,
                        fpr: interval(column(j, |x| x.1)).mean,
                    }
                })
                .collect();
            results.push(ProfileResult {
                profile: profile.clone(),
                scheme,
                rules: rule_rates,
                auc: area_under(&roc),
                roc,
                recorded_minutes: quartiles(recorded),
            });
        }
    }
    Ok(TrialReport {
        trial,
        close_pairs,
        far_pairs,
        results,
        rules,
        provenance: Provenance::of_this_process(scenario.seed),
    })
}

/// Every pair's distance, in the order of `trial.pairs`.
fn distances(trial: &TrialConfig) -> Vec<f64> {
    trial
        .pairs
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.distance_m, p.count as usize))
        .collect()
}

/// The area under the ROC points, closed at (0, 0) and (1, 1), rounded to 0.001.
fn area_under(roc: &[RocPoint]) -> f64 {
    let mut points: Vec<(f64, f64)> = roc.iter().map(|p| (p.fpr, p.tpr)).collect();
    points.extend([(0.0, 0.0), (1.0, 1.0)]);
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let area: f64 = points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum();
    (area * 1000.0).round() / 1000.0
}

/// The 25th, 50th and 75th percentiles (nearest rank), rounded to 0.1.
fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((values.len().max(1) - 1) as f64 * q).round() as usize;
        values.get(i).map_or(0.0, |v| (v * 10.0).round() / 10.0)
    };
    [at(0.25), at(0.5), at(0.75)]
}

/// The share of close pairs and of far pairs that receiver `j` notified.
fn tpr_fpr(notified: &[Vec<bool>], close: &[bool], j: usize) -> (f64, f64) {
    let share = |want: bool| {
        let pairs: Vec<bool> = notified
            .iter()
            .zip(close)
            .filter(|(_, c)| **c == want)
            .map(|(n, _)| n[j])
            .collect();
        if pairs.is_empty() {
            0.0
        } else {
            pairs.iter().filter(|n| **n).count() as f64 / pairs.len() as f64
        }
    };
    (share(true), share(false))
}

/// The phones of one measured pair: a receiver per receiving configuration, and the
/// senders they hear (receiver `j` pairs with sender `j % senders.len()`). `gaen` needs one
/// sender: what it hears does not change its upload. A `pet` upload holds the tokens of
/// the encounters the sender itself heard, so each receiver gets a sender of its own, as a
/// real pair is two phones and not a sender assembling the keys of a crowd.
struct Pair {
    senders: Vec<ClientPhone>,
    receivers: Vec<ClientPhone>,
}

/// Per pair and receiver, whether it was notified; per pair, the minutes recorded.
type Replayed = (Vec<Vec<bool>>, Vec<f64>);

/// One replication: every pair exchanges for `trial.minutes`, every sender reports the next
/// morning, every receiver syncs.
fn replay(
    base: &Scenario,
    trial: &TrialConfig,
    distances: &[f64],
    replication: u32,
    receivers: &[RiskConfig],
) -> Result<Replayed, SimError> {
    let scenario = Scenario {
        seed: base.seed.wrapping_add(u64::from(replication)),
        agents: (2 * distances.len() as u32).max(2),
        ..base.clone()
    };
    let seed = scenario.seed;
    let pop = Population::build(&scenario);
    let batch_every = u64::from(scenario.node.batch_hours) * 3600;
    let mut server = Server::new(
        seed,
        0,
        Vec::new(),
        scenario.scheme.kind(),
        batch_every,
        scenario.node.min_batch_entries,
    );
    let shipped = client_config(&scenario, &server);
    let sender_config = Arc::new(shipped.clone());
    let receiver_configs: Vec<_> = receivers
        .iter()
        .map(|risk| Arc::new(shipped.clone().with_risk(risk.clone())))
        .collect();
    let air = Air {
        scenario: &scenario,
        pop: &pop,
        model: RadioModel::new(&scenario.radio),
    };
    let day_start = u64::from(scenario.first_day) * u64::from(DAY);
    let at = |t: u32| UnixTime(day_start + u64::from(t));
    let start = trial.start_s;
    let end = start + trial.minutes * 60;
    let phone_err = |agent: u32| move |message| SimError::Phone { agent, message };

    let mut pairs: Vec<Pair> = distances
        .par_iter()
        .enumerate()
        .map(|(p, distance)| -> Result<Pair, SimError> {
            let ep = Episode {
                a: 2 * p as u32,
                b: 2 * p as u32 + 1,
                start,
                duration: end - start,
                distance_m: *distance as f32,
                env: trial.environment,
                place: 0,
                layer: Layer::Random,
            };
            let phone = |k: u64, config: &Arc<_>| {
                ClientPhone::new(
                    Arc::clone(config),
                    seed32(seed, Domain::Trial, &[p as u64, k]),
                )
                .map_err(phone_err(ep.a))
            };
            let senders = match scenario.scheme {
                SchemeName::Gaen => 1,
                SchemeName::Pet => receiver_configs.len(),
            };
            let mut pair = Pair {
                senders: (0..senders)
                    .map(|k| phone(2 * k as u64, &sender_config))
                    .collect::<Result<_, _>>()?,
                receivers: receiver_configs
                    .iter()
                    .enumerate()
                    .map(|(j, c)| phone(2 * j as u64 + 1, c))
                    .collect::<Result<_, _>>()?,
            };
            for interval in start / INTERVAL..end.div_ceil(INTERVAL) {
                let now = at(interval * INTERVAL);
                let from = start.max(interval * INTERVAL);
                let to = end.min((interval + 1) * INTERVAL);
                let advertise = |phones: &mut Vec<ClientPhone>, agent: u32| {
                    phones
                        .iter_mut()
                        .map(|p| p.advertise(now).map_err(phone_err(agent)))
                        .collect::<Result<Vec<Payloads>, _>>()
                };
                let sent = advertise(&mut pair.senders, ep.a)?;
                let back = advertise(&mut pair.receivers, ep.b)?;
                let n = sent.len();
                // Direction 1: the receivers (b) hear the senders (a); 0: the senders hear them.
                for t in air.scan_times(0, ep.b, from, to) {
                    for (slice, rssi) in heard(&air, &ep, 1, t) {
                        for (j, r) in pair.receivers.iter_mut().enumerate() {
                            r.hear(at(t), payload(&sent[j % n], slice), rssi)
                                .map_err(phone_err(ep.b))?;
                        }
                    }
                }
                for t in air.scan_times(0, ep.a, from, to) {
                    for (slice, rssi) in heard(&air, &ep, 0, t) {
                        for (j, b) in back.iter().enumerate() {
                            pair.senders[j % n]
                                .hear(at(t), payload(b, slice), rssi)
                                .map_err(phone_err(ep.a))?;
                        }
                    }
                }
            }
            // The phones' timers close the encounters.
            let after = at(end + 2 * INTERVAL);
            for (phones, agent) in [(&mut pair.senders, ep.a), (&mut pair.receivers, ep.b)] {
                for phone in phones.iter_mut() {
                    phone.timers(after, &server).map_err(phone_err(agent))?;
                }
            }
            Ok(pair)
        })
        .collect::<Result<_, _>>()?;

    // The next morning every sender tests positive (symptoms since the trial day) and
    // uploads; the node publishes within a batch period; every receiver syncs.
    let onset = Some(DayNumber(scenario.first_day));
    let report_at = at(DAY + 9 * 3600);
    for (p, pair) in pairs.iter_mut().enumerate() {
        for sender in &mut pair.senders {
            let code = server.issue_code(report_at, onset)?;
            sender
                .report(report_at, &code, onset, report_at.day(), &mut server)
                .map_err(phone_err(2 * p as u32))?;
        }
    }
    // The node releases each upload within its release spread (a day by default) after
    // the embargo: cut every boundary until all of it is out, then sync.
    let spread = ephemera_node_core::Policy::default().release_spread_seconds;
    let mut published = report_at;
    while published.0 <= report_at.0 + DAY as u64 + spread + batch_every {
        published = published.plus_seconds(batch_every);
        server.cut_due(published)?;
    }
    let notified = pairs
        .par_iter_mut()
        .enumerate()
        .map(|(p, pair)| {
            pair.receivers
                .iter_mut()
                .map(|r| {
                    r.sync_now(published, &server)
                        .map_err(phone_err(2 * p as u32 + 1))?;
                    Ok(!r.notified.is_empty())
                })
                .collect()
        })
        .collect::<Result<_, SimError>>()?;
    // Every receiver of a pair heard the same scans: the first one's records tell.
    let minutes = pairs
        .iter()
        .map(|pair| {
            let seconds: u32 = pair.receivers[0]
                .records()
                .iter()
                .map(|r| r.signal.total_seconds())
                .sum();
            f64::from(seconds) / 60.0
        })
        .collect();
    Ok((notified, minutes))
}

/// What one scan caught: `(pet slice or 4 for the whole payload, RSSI)` per reception.
fn heard(air: &Air<'_>, ep: &Episode, dir: u8, t: u32) -> Vec<(u8, i8)> {
    let scan = air.scan(0, ep.a / 2, ep, dir, t);
    if !scan.received {
        return Vec::new();
    }
    let rssi = air.model.rssi(scan.attenuation);
    if scan.slice_count == 0 {
        return vec![(4, rssi)];
    }
    scan.slices[..usize::from(scan.slice_count)]
        .iter()
        .map(|s| (*s, rssi))
        .collect()
}

/// The bytes of one reception.
fn payload(p: &Payloads, slice: u8) -> &[u8] {
    if slice == 4 {
        &p.full
    } else {
        &p.slices[usize::from(slice)]
    }
}

impl TrialReport {
    /// A Markdown table: per profile, scheme and rule, the TPR and FPR with their 95 %
    /// intervals and the published rates.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{}: {} pairs within {} m, {} beyond, {} replications\n\n",
            self.trial.name,
            self.close_pairs,
            self.trial.close_m,
            self.far_pairs,
            self.trial.replications
        );
        for result in &self.results {
            let [q1, median, q3] = result.recorded_minutes;
            let _ = writeln!(
                out,
                "- {} radio, {}: minutes recorded per pair {median} (interquartile {q1}-{q3}); \
                 area under the sweep's ROC {:.3}",
                result.profile,
                result.scheme.as_str(),
                result.auc
            );
        }
        let _ = write!(
            out,
            "\n\
             | radio | scheme | rule | TPR (95 % interval) | FPR (95 % interval) | no pair notified | published TPR / FPR |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n"
        );
        let pct = |i: &Interval| {
            format!(
                "{:.0} % ({:.0}-{:.0})",
                100.0 * i.mean,
                100.0 * i.ci95_low.max(0.0),
                100.0 * i.ci95_high.min(1.0)
            )
        };
        for result in &self.results {
            for r in &result.rules {
                let published = r.published.map_or("".to_owned(), |(t, f)| {
                    format!("{:.0} % / {:.0} %", 100.0 * t, 100.0 * f)
                });
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {:.0} % of replications | {} |",
                    result.profile,
                    result.scheme.as_str(),
                    r.rule,
                    pct(&r.tpr),
                    pct(&r.fpr),
                    100.0 * r.silent_share,
                    published
                );
            }
        }
        out
    }

    /// The sweep as CSV: profile, scheme, threshold, TPR, FPR.
    pub fn roc_csv(&self) -> String {
        let mut out = "profile,scheme,threshold_db,tpr,fpr\n".to_owned();
        for result in &self.results {
            for p in &result.roc {
                let _ = writeln!(
                    out,
                    "{},{},{},{:.6},{:.6}",
                    result.profile,
                    result.scheme.as_str(),
                    p.threshold_db,
                    p.tpr,
                    p.fpr
                );
            }
        }
        out
    }

    /// Writes `trial.json`, `roc.csv` and `roc.svg` into `dir` (new or empty).
    ///
    /// # Errors
    /// [`SimError::Output`] when `dir` is not empty or a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), SimError> {
        ensure_fresh(dir)?;
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let json = dir.join("trial.json");
        let text = serde_json::to_string_pretty(self).expect("a report serialises");
        std::fs::write(&json, text).map_err(io_error(&json))?;
        let csv = dir.join("roc.csv");
        std::fs::write(&csv, self.roc_csv()).map_err(io_error(&csv))?;
        self.plot(&dir.join("roc.svg"))
    }

    /// ROC curves, one panel per radio profile: a line per scheme through the sweep, the
    /// chance diagonal, and a marker per named rule.
    fn plot(&self, path: &Path) -> Result<(), SimError> {
        let mut profiles: Vec<&str> = self.results.iter().map(|r| r.profile.as_str()).collect();
        profiles.dedup();
        let width = 520 * profiles.len() as u32;
        let root = SVGBackend::new(path, (width, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error(path))?;
        let panels = root.split_evenly((1, profiles.len()));
        let colours = [(SchemeName::Gaen, BLUE), (SchemeName::Pet, RED)];
        for (panel, profile) in panels.iter().zip(&profiles) {
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{profile} radio"), ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(44)
                .build_cartesian_2d(0f64..1.0, 0f64..1.0)
                .map_err(plot_error(path))?;
            chart
                .configure_mesh()
                .x_desc("false-positive rate")
                .y_desc("true-positive rate")
                .draw()
                .map_err(plot_error(path))?;
            chart
                .draw_series(LineSeries::new(
                    [(0.0, 0.0), (1.0, 1.0)],
                    RGBColor(170, 170, 170),
                ))
                .map_err(plot_error(path))?
                .label("chance")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(170, 170, 170))
                });
            for result in self.results.iter().filter(|r| r.profile == *profile) {
                let colour = colours
                    .iter()
                    .find(|(s, _)| *s == result.scheme)
                    .map_or(BLACK, |(_, c)| *c);
                let points: Vec<(f64, f64)> = result.roc.iter().map(|p| (p.fpr, p.tpr)).collect();
                chart
                    .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                    .map_err(plot_error(path))?
                    .label(format!("{} sweep", result.scheme.as_str()))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                for (k, r) in result.rules.iter().enumerate() {
                    let xy = (r.fpr.mean, r.tpr.mean);
                    // Rules on the same spot get their labels stacked, not overprinted.
                    let near = result.rules[..k]
                        .iter()
                        .filter(|o| (o.fpr.mean - xy.0).abs() + (o.tpr.mean - xy.1).abs() < 0.04)
                        .count() as f64;
                    chart
                        .draw_series([
                            Circle::new(xy, 4, colour.filled()),
                            Circle::new(xy, 4, colour.stroke_width(1)),
                        ])
                        .map_err(plot_error(path))?;
                    if result.scheme == SchemeName::Gaen {
                        chart
                            .draw_series([Text::new(
                                r.rule.to_owned(),
                                (xy.0 + 0.015, xy.1 + 0.01 + 0.035 * near),
                                ("sans-serif", 11),
                            )])
                            .map_err(plot_error(path))?;
                    }
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(plot_error(path))?;
        }
        root.present().map_err(plot_error(path))
    }
}
