//! Scoring a run: notifications against the close-contact ground truth, delays, bytes, and
//! the attenuation-threshold sweep.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::attack::{AttackResult, round4};
use super::infection_truth::InfectionTruth;
use super::interventions::Impact;
use ephemera_proto::ReportContents;

use super::contacts::Layer;
use super::engine::{Air, DAY, DayStats, INTERVAL, RawRun};
use super::missed::Missed;
use super::misses::MissReport;
use super::projection::PublicationStats;
use super::radio::{Environment, RadioModel};
use super::scenario::Scenario;

/// Precision, recall and F1 of one group.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Scores {
    /// (person, day) close contacts with an uploading positive (on a reported day).
    pub truth: u64,
    /// (person, day) notifications.
    pub notified: u64,
    /// Notifications that are true close contacts.
    pub true_positives: u64,
    /// `true_positives / notified`.
    pub precision: f64,
    /// `true_positives / truth`.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

impl Scores {
    fn new(truth: u64, notified: u64, true_positives: u64) -> Scores {
        let precision = if notified > 0 {
            true_positives as f64 / notified as f64
        } else {
            0.0
        };
        let recall = if truth > 0 {
            true_positives as f64 / truth as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Scores {
            truth,
            notified,
            true_positives,
            precision: round4(precision),
            recall: round4(recall),
            f1: round4(f1),
        }
    }
}

/// One layer's close contacts, misses and false alarms (`summary.json`'s `per_layer`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LayerCounts {
    /// (person, day) close contacts whose longest close episode with an uploader is of
    /// this layer.
    pub close_contacts: u64,
    /// Of them, not notified.
    pub missed: u64,
    /// (person, day) notifications that are not close contacts, whose longest episode with
    /// an uploader that day is of this layer.
    pub false_alarms: u64,
}

/// Upload-to-notification delays (hours).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Delays {
    /// Notifications with a delay.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
}

impl Delays {
    /// The statistics of `hours`.
    fn of(mut hours: Vec<f64>) -> Delays {
        hours.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            hours
                .get(((hours.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Delays {
            count: hours.len() as u64,
            mean: round4(hours.iter().sum::<f64>() / hours.len().max(1) as f64),
            median: round4(quantile(0.5)),
            p90: round4(quantile(0.9)),
        }
    }
}

/// A federated run (`[node] nodes` above 1): what each node took in, and how far reports
/// travelled before they warned someone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FederationSummary {
    /// Per node: phones of its district, uploads its phones made to it, and uploads it
    /// newly stored from its peers.
    pub nodes: Vec<NodeCounts>,
    /// Hours from the upload to the notification, by the hops between the uploader's
    /// node and the notified person's (0: the same node).
    pub delay_by_hops: BTreeMap<u32, Delays>,
}

/// One federated node's intake.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeCounts {
    /// App users whose home node it is.
    pub phones: u64,
    /// Uploads its phones made to it.
    pub uploads: u64,
    /// Uploads it newly stored from its peers.
    pub relayed_in: u64,
}

impl FederationSummary {
    /// The summary of `run`, with its `(delay hours, hops)` per notification.
    fn of(run: &RawRun, delays: &[(f64, u32)]) -> FederationSummary {
        let federation = &run.federation;
        let mut nodes: Vec<NodeCounts> = federation
            .relayed_in
            .iter()
            .map(|relayed_in| NodeCounts {
                phones: 0,
                uploads: 0,
                relayed_in: *relayed_in,
            })
            .collect();
        for (agent, phone) in run.phone_of.iter().enumerate() {
            if *phone != u32::MAX {
                nodes[federation.home_of(agent as u32) as usize].phones += 1;
            }
        }
        for upload in &federation.uploads {
            nodes[federation.home_of(upload.agent) as usize].uploads += 1;
        }
        let mut by_hops: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
        for (hours, hops) in delays {
            by_hops.entry(*hops).or_default().push(*hours);
        }
        FederationSummary {
            nodes,
            delay_by_hops: by_hops
                .into_iter()
                .map(|(hops, hours)| (hops, Delays::of(hours)))
                .collect(),
        }
    }
}

/// One point of the threshold sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepPoint {
    /// Attenuation threshold (dB).
    pub threshold_db: u8,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// (person, day) pairs notified at this threshold.
    pub notified: u64,
    /// Of them, true close contacts.
    pub true_positives: u64,
}

impl SweepPoint {
    /// The point at `threshold_db` that notified `notified`, `true_positives` of them
    /// true, against a truth of `truth` close contacts.
    pub(crate) fn new(threshold_db: u8, truth: u64, notified: u64, true_positives: u64) -> Self {
        let s = Scores::new(truth, notified, true_positives);
        SweepPoint {
            threshold_db,
            precision: s.precision,
            recall: s.recall,
            f1: s.f1,
            notified,
            true_positives,
        }
    }
}

/// Token filters the phones took in (`pet`, publication version 3), and what a false
/// match could do: the compact form's false notifications, derived from what the run
/// measured (`docs/PROTOCOL.md` §6.5).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FilterStats {
    /// Filters the phones took in.
    pub fetched: u64,
    /// Held tokens looked up in a filter, per phone and day: each a 2⁻³² chance of a
    /// false match.
    pub lookups_per_phone_day: f64,
    /// Share of the encounters the phones held at the end whose window alone makes a
    /// high-risk day: a false match on one of them notifies.
    pub critical_share: f64,
    /// `lookups_per_phone_day × critical_share × 2⁻³² × 10⁶`: false notifications the
    /// filters cause per million phone-days at the run's publication rate.
    pub false_notifications_per_million_phone_days: f64,
}

/// What a run cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Contact episodes.
    pub episodes: u64,
    /// Episodes between two app users.
    pub app_episodes: u64,
    /// Advertisements (one per active phone and interval).
    pub advertisements: u64,
    /// Payloads handed to phones.
    pub sightings: u64,
    /// Encounters the phones kept at the end. For `pet`, each cost one X25519 key agreement
    /// on that phone (plus one ephemeral key derivation).
    pub encounters_kept: u64,
    /// Kept encounters per phone and day.
    pub encounters_per_phone_day: f64,
    /// Batches published.
    pub batches: u64,
    /// Bytes of all published batches.
    pub batch_bytes: u64,
}

/// The summary of a run (`summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// People.
    pub agents: u32,
    /// Days.
    pub days: u32,
    /// Scheme.
    pub scheme: &'static str,
    /// Seed.
    pub seed: u64,
    /// App users.
    pub app_users: u64,
    /// People infected by the end (initial cases included).
    pub infected: u64,
    /// Positive results within the run.
    pub positives: u64,
    /// Positives whose phone uploaded.
    pub uploads: u64,
    /// (person, day) close contacts between app users and uploading positives on reported
    /// days: the ground truth.
    pub close_contacts_true: u64,
    /// (person, day) notifications (days the phone scored high risk).
    pub notified: u64,
    /// Notifications that are true close contacts.
    pub true_positives: u64,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Scores by the environment of the contact (truth) or of the longest episode with an
    /// uploader that day (notifications).
    pub per_environment: BTreeMap<&'static str, Scores>,
    /// Why each true close contact not notified was missed (primary cause).
    pub missed: Missed,
    /// By layer (who the people were to each other): close contacts and those missed, by
    /// the layer of the longest close episode with an uploader; false alarms
    /// (notifications that are not close contacts) by the layer of the longest episode
    /// with an uploader that day ("none": no episode with one).
    pub per_layer: BTreeMap<&'static str, LayerCounts>,
    /// Notifications per uploading positive.
    pub notifications_per_uploader: f64,
    /// People notified (once or more) per uploading positive: what an app's own count of
    /// notifications per consenting index case measures, as a person is warned once.
    pub notified_people_per_uploader: f64,
    /// Share of notified people who were infected by the end of the run.
    pub notified_infected_share: f64,
    /// Truth by infection: infectees of uploaders notified, the attack rate among the
    /// notified, and population coverage.
    pub infection_truth: InfectionTruth,
    /// Hours from the upload to the notification it caused.
    pub upload_to_notification_hours: Delays,
    /// With several nodes: each node's intake and the delays by hops (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationSummary>,
    /// Batch index and batch bytes each phone downloaded per day, on average.
    pub bytes_downloaded_per_phone_per_day: f64,
    /// Batches a phone rejected (must be 0).
    pub batches_rejected: u64,
    /// The best threshold of the client's sweep (`sweep.csv`) by F1: the last attenuation
    /// bound of the client's risk configuration, the other two shifted with it.
    pub best_sweep_threshold_db: u8,
    /// The best threshold of the idealised single-threshold detector
    /// (`sweep_ideal.csv`) by F1.
    pub best_ideal_threshold_db: u8,
    /// The attack.
    pub attack: AttackResult,
    /// Token filters (`pet`).
    pub filters: FilterStats,
    /// Work done.
    pub cost: Cost,
    /// What was published, and how: the inputs of `ephemera-sim project`.
    pub publication: PublicationStats,
    /// Seconds the run took (measured by the runner; not part of the model).
    pub wall_seconds: f64,
    /// The process's peak resident memory by the end of the run, in bytes (Linux's
    /// `VmHWM`; with `--seeds` or a sweep, the peak of every run so far). Absent where the
    /// system does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// With interventions: the run against its app-off counterfactual (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
}

/// Everything scored.
pub struct Scored {
    /// The summary.
    pub summary: Summary,
    /// The threshold sweep through this scheme's client scoring
    /// ([`client_sweep`](crate::client_sweep)).
    pub sweep: Vec<SweepPoint>,
    /// The idealised single-threshold detector's sweep (the same for both schemes: it
    /// replays the scans, not the phones).
    pub ideal_sweep: Vec<SweepPoint>,
    /// Daily counts.
    pub daily: Vec<DayStats>,
    /// The ground truth: (agent, sim day) close contacts, sorted.
    pub truth: Vec<(u32, u32)>,
    /// (agent, sim day) notifications, sorted.
    pub notified: Vec<(u32, u32)>,
    /// For a `pet` run compared with a `gaen` run: why `pet` missed what `gaen` found.
    pub misses: Option<MissReport>,
    /// The effective scenario of the run (every parameter, defaults included).
    pub scenario: Scenario,
    /// Contacts, infections and notifications, when the run was asked to keep them.
    pub line_lists: Option<super::line_lists::LineLists>,
}

/// The filter figures of a run.
fn filter_stats(scenario: &Scenario, run: &RawRun, days: u32) -> FilterStats {
    let phone_days = (run.phones.len().max(1) as f64) * f64::from(days.max(1));
    let lookups: u64 = run.phones.iter().map(|p| p.filter_lookups).sum();
    let risk = crate::phone::risk_config(scenario);
    let tx = scenario.radio.tx_power_dbm;
    let held: u64 = run.phones.iter().map(|p| p.encounters() as u64).sum();
    let critical: u64 = run
        .phones
        .iter()
        .map(|p| p.critical_records(&risk, tx))
        .sum();
    let lookups_per_phone_day = lookups as f64 / phone_days;
    let critical_share = critical as f64 / held.max(1) as f64;
    FilterStats {
        fetched: run.phones.iter().map(|p| p.filters_fetched).sum(),
        lookups_per_phone_day: round4(lookups_per_phone_day),
        critical_share: round4(critical_share),
        false_notifications_per_million_phone_days: lookups_per_phone_day
            * critical_share
            * ephemera_proto::filter::FALSE_MATCH_PROBABILITY
            * 1e6,
    }
}

/// Where an episode happened and between whom: its environment and layer.
type Setting = (Environment, Layer);
/// An uploader met: who, seconds together, setting of the longest episode.
type Met = (u32, u32, Setting);

/// One person's time with one uploader on one day.
#[derive(Copy, Clone)]
struct Together {
    /// Seconds close: near enough, and in the same air.
    close: u32,
    /// Seconds in all.
    total: u32,
    /// The setting of the longest episode, and its length.
    longest: (Setting, u32),
    /// The layer of the longest close episode, and its length.
    longest_close: (Layer, u32),
}

/// What each upload covers.
pub(crate) struct Windows {
    /// Agent → (sim days covered, upload time as seconds since the first midnight).
    by_agent: HashMap<u32, (Vec<u32>, u64)>,
    t0: u64,
}

impl Windows {
    pub(crate) fn new(scenario: &Scenario, run: &RawRun) -> Windows {
        let first = scenario.first_day;
        let mut by_agent = HashMap::new();
        for u in &run.federation.uploads {
            let days: Vec<u32> = match &u.contents {
                // GAEN: the days of the keys uploaded (today's too, cut at the upload: same-day
                // release; `covers` keeps only contact before the upload).
                ReportContents::Gaen(keys) => {
                    keys.iter().map(|k| k.rolling_start.day().0).collect()
                }
                // pet: every day of the window, up to the upload.
                ReportContents::Pet(_) => (u.first_day.0..=u.at.day().0).collect(),
            };
            let days = days
                .into_iter()
                .filter_map(|d| d.checked_sub(first))
                .collect();
            by_agent.insert(u.agent, (days, u.at.0 - run.t0));
        }
        Windows {
            by_agent,
            t0: run.t0,
        }
    }

    /// Whether `agent`'s upload covers contact on sim day `day` that ended at `end`
    /// (seconds after that midnight).
    pub(crate) fn covers(&self, agent: u32, day: u32, end: u32) -> bool {
        self.by_agent.get(&agent).is_some_and(|(days, at)| {
            days.contains(&day) && u64::from(day) * u64::from(DAY) + u64::from(end) <= *at
        })
    }

    fn upload_time(&self, agent: u32) -> Option<u64> {
        self.by_agent.get(&agent).map(|(_, at)| at + self.t0)
    }
}

/// Every notification of the run for an exposure day inside it: (agent, sim day, Unix
/// time the phone warned), sorted.
pub(crate) fn notifications(run: &RawRun, first_day: u32, days: u32) -> Vec<(u32, u32, u64)> {
    let mut notified: Vec<(u32, u32, u64)> = Vec::new();
    for (agent, phone) in run.phone_of.iter().enumerate() {
        if *phone == u32::MAX {
            continue;
        }
        for (day, at) in &run.phones[*phone as usize].notified {
            if let Some(d) = day.0.checked_sub(first_day).filter(|d| *d < days) {
                notified.push((agent as u32, d, at.0));
            }
        }
    }
    notified.sort_unstable();
    notified
}

/// Scores `run`.
pub fn score(scenario: &Scenario, run: &RawRun, attack: AttackResult) -> Scored {
    let days = scenario.days;
    let first_day = scenario.first_day;
    let minutes = (scenario.ground_truth.minutes * 60.0).ceil() as u32;
    let windows = Windows::new(scenario, run);

    // Truth and, per (person, day), the uploaders met and the environment: only contact a
    // report covers counts (its days; on the upload day, before the upload).
    // (person, day, uploader) → (close seconds, seconds, environment of the longest, its length).
    let mut together: HashMap<(u32, u32, u32), Together> = HashMap::new();
    let is_app = |a: u32| run.phone_of[a as usize] != u32::MAX;
    for (day, episodes) in run.episodes.iter().enumerate() {
        let day = day as u32;
        for ep in episodes.iter().filter(|e| is_app(e.a) && is_app(e.b)) {
            for (u, v) in [(ep.a, ep.b), (ep.b, ep.a)] {
                if !windows.covers(u, day, ep.end()) {
                    continue;
                }
                let setting = (ep.env, ep.layer);
                let entry = together.entry((v, day, u)).or_insert(Together {
                    close: 0,
                    total: 0,
                    longest: (setting, 0),
                    longest_close: (ep.layer, 0),
                });
                // Close: near enough, and in the same air (not a wall apart).
                if f64::from(ep.distance_m) <= scenario.ground_truth.distance_m
                    && ep.layer.shares_air()
                {
                    entry.close += ep.duration;
                    if ep.duration > entry.longest_close.1 {
                        entry.longest_close = (ep.layer, ep.duration);
                    }
                }
                entry.total += ep.duration;
                if ep.duration > entry.longest.1 {
                    entry.longest = (setting, ep.duration);
                }
            }
        }
    }
    let mut keys: Vec<&(u32, u32, u32)> = together.keys().collect();
    keys.sort_unstable();
    // (person, day) → the environment of the longest episode with the first uploader
    // (by index) it was close to, and the layer of the longest close one.
    let mut truth: HashMap<(u32, u32), Setting> = HashMap::new();
    let mut met: HashMap<(u32, u32), Vec<Met>> = HashMap::new();
    for key in keys {
        let t = together[key];
        let (v, day, u) = *key;
        met.entry((v, day))
            .or_default()
            .push((u, t.total, t.longest.0));
        if t.close >= minutes {
            truth
                .entry((v, day))
                .or_insert((t.longest.0.0, t.longest_close.0));
        }
    }

    let notified = notifications(run, first_day, days);

    let mut per_env: BTreeMap<&'static str, (u64, u64, u64)> = BTreeMap::new();
    // Every layer, with or without bystanders, so that a zero reads as a zero.
    let mut per_layer: BTreeMap<&'static str, LayerCounts> = Layer::ALL
        .iter()
        .map(|l| (l.name(), LayerCounts::default()))
        .collect();
    for (env, layer) in truth.values() {
        per_env.entry(env.name()).or_default().0 += 1;
        per_layer.entry(layer.name()).or_default().close_contacts += 1;
    }
    let mut true_positives = 0u64;
    let mut delays = Vec::new();
    for (v, day, at) in &notified {
        let contacts = met.get(&(*v, *day));
        let longest = contacts.and_then(|c| {
            c.iter()
                .max_by_key(|(u, s, _)| (*s, *u))
                .map(|(_, _, setting)| *setting)
        });
        let env = longest.map_or("none", |(env, _)| env.name());
        let e = per_env.entry(env).or_default();
        e.1 += 1;
        if let Some((truth_env, _)) = truth.get(&(*v, *day)) {
            true_positives += 1;
            per_env.entry(truth_env.name()).or_default().2 += 1;
        } else {
            let layer = longest.map_or("none", |(_, layer)| layer.name());
            per_layer.entry(layer).or_default().false_alarms += 1;
        }
        let upload = contacts
            .into_iter()
            .flatten()
            .filter_map(|(u, _, _)| windows.upload_time(*u).map(|t| (t, *u)))
            .filter(|(t, _)| t <= at)
            .max();
        if let Some((t, u)) = upload {
            let hops = run.federation.hops(u, *v);
            delays.push(((at - t) as f64 / 3600.0, hops));
        }
    }
    let overall = Scores::new(truth.len() as u64, notified.len() as u64, true_positives);

    let notified_people: HashSet<u32> = notified.iter().map(|n| n.0).collect();
    let infected_notified = notified_people
        .iter()
        .filter(|v| run.epidemic.courses[**v as usize].is_some())
        .count();
    let phones = run.phones.len().max(1) as f64;
    let bytes: u64 = run.phones.iter().map(|p| p.bytes_down).sum();
    let encounters: u64 = run.phones.iter().map(|p| p.encounters() as u64).sum();
    let sum = |f: fn(&DayStats) -> u64| run.daily.iter().map(f).sum::<u64>();
    let ideal_sweep = sweep(scenario, run, &truth, &windows);
    let truth_set: HashSet<(u32, u32)> = truth.keys().copied().collect();
    let client_sweep = super::client_sweep::sweep(scenario, run, &truth_set);
    let notified_set: HashSet<(u32, u32)> = notified.iter().map(|(v, d, _)| (*v, *d)).collect();
    for (key, (_, layer)) in &truth {
        if !notified_set.contains(key) {
            per_layer.entry(layer.name()).or_default().missed += 1;
        }
    }
    let missed = super::missed::classify(scenario, run, &windows, &truth_set, &notified_set);
    let best = |sweep: &[SweepPoint]| {
        sweep
            .iter()
            .max_by(|a, b| {
                a.f1.total_cmp(&b.f1)
                    .then(b.threshold_db.cmp(&a.threshold_db))
            })
            .map_or(0, |p| p.threshold_db)
    };
    let summary = Summary {
        agents: scenario.agents,
        days,
        scheme: scenario.scheme.as_str(),
        seed: scenario.seed,
        app_users: run.phones.len() as u64,
        infected: run.epidemic.total_infected() as u64,
        positives: sum(|d| d.positives),
        uploads: run.federation.uploads.len() as u64,
        close_contacts_true: overall.truth,
        notified: overall.notified,
        true_positives: overall.true_positives,
        precision: overall.precision,
        recall: overall.recall,
        f1: overall.f1,
        missed,
        per_layer,
        per_environment: per_env
            .into_iter()
            .map(|(k, (t, n, tp))| (k, Scores::new(t, n, tp)))
            .collect(),
        notifications_per_uploader: if run.federation.uploads.is_empty() {
            0.0
        } else {
            round4(notified.len() as f64 / run.federation.uploads.len() as f64)
        },
        notified_people_per_uploader: if run.federation.uploads.is_empty() {
            0.0
        } else {
            round4(notified_people.len() as f64 / run.federation.uploads.len() as f64)
        },
        notified_infected_share: if notified_people.is_empty() {
            0.0
        } else {
            round4(infected_notified as f64 / notified_people.len() as f64)
        },
        infection_truth: super::infection_truth::score(scenario, run, &windows),
        upload_to_notification_hours: Delays::of(delays.iter().map(|d| d.0).collect()),
        federation: (scenario.node.nodes > 1).then(|| FederationSummary::of(run, &delays)),
        bytes_downloaded_per_phone_per_day: round4(bytes as f64 / phones / f64::from(days)),
        batches_rejected: run.phones.iter().map(|p| u64::from(p.rejected)).sum(),
        best_sweep_threshold_db: best(&client_sweep),
        best_ideal_threshold_db: best(&ideal_sweep),
        attack,
        filters: filter_stats(scenario, run, days),
        cost: Cost {
            episodes: sum(|d| d.episodes),
            app_episodes: sum(|d| d.app_episodes),
            advertisements: sum(|d| d.advertisements),
            sightings: sum(|d| d.sightings),
            encounters_kept: encounters,
            encounters_per_phone_day: round4(encounters as f64 / phones / f64::from(days)),
            batches: run.federation.first().batches().len() as u64,
            batch_bytes: run
                .federation
                .first()
                .batches()
                .iter()
                .map(|b| b.bytes.len() as u64)
                .sum(),
        },
        publication: publication_stats(scenario, run, bytes as f64 / phones / f64::from(days)),
        wall_seconds: 0.0,
        peak_rss_bytes: None,
        impact: None,
    };
    let mut truth: Vec<(u32, u32)> = truth.into_keys().collect();
    truth.sort_unstable();
    let mut notified: Vec<(u32, u32)> = notified.iter().map(|(v, d, _)| (*v, *d)).collect();
    notified.dedup();
    Scored {
        summary,
        sweep: client_sweep,
        ideal_sweep,
        daily: run.daily.clone(),
        truth,
        notified,
        misses: None,
        scenario: scenario.clone(),
        line_lists: None,
    }
}

/// What `run` published and how, for the projection.
fn publication_stats(scenario: &Scenario, run: &RawRun, measured: f64) -> PublicationStats {
    let uploads = &run.federation.uploads;
    let full: Vec<_> = uploads
        .iter()
        .filter(|u| u.first_day.0 >= scenario.first_day)
        .collect();
    let batches = run.federation.first().batches();
    PublicationStats {
        scheme: scenario.scheme.as_str().to_owned(),
        days: scenario.days,
        phones: run.phones.len() as u64,
        uploads: uploads.len() as u64,
        entries: uploads.iter().map(|u| u.contents.len() as u64).sum(),
        full_window_uploads: full.len() as u64,
        full_window_entries: full.iter().map(|u| u.contents.len() as u64).sum(),
        batch_hours: scenario.node.batch_hours,
        min_batch_entries: scenario.node.min_batch_entries,
        sync_hours: scenario.node.sync_hours,
        batches: batches.len() as u64,
        batch_bytes: batches.iter().map(|b| b.bytes.len() as u64).sum(),
        bytes_downloaded_per_phone_per_day: round4(measured),
    }
}

/// The idealised single-threshold detector, swept: a (person, day) is notified at
/// threshold T when the scans of uploaders' broadcasts it received at attenuation ≤ T
/// credit at least the ground truth's minutes, with the client's crediting (time since the
/// previous sighting of the same peer within one interval, at most 300 s). It replays the
/// very scans the run drew.
fn sweep(
    scenario: &Scenario,
    run: &RawRun,
    truth: &HashMap<(u32, u32), Setting>,
    windows: &Windows,
) -> Vec<SweepPoint> {
    let air = Air {
        scenario,
        pop: &run.pop,
        model: RadioModel::new(&scenario.radio),
    };
    let is_app = |a: u32| run.phone_of[a as usize] != u32::MAX;
    let mut credit: HashMap<(u32, u32), [u32; 128]> = HashMap::new();
    for (day, episodes) in run.episodes.iter().enumerate() {
        let day = day as u32;
        for (k, ep) in episodes.iter().enumerate() {
            if !(is_app(ep.a) && is_app(ep.b)) {
                continue;
            }
            for dir in 0..2u8 {
                let (receiver, sender) = if dir == 0 { (ep.a, ep.b) } else { (ep.b, ep.a) };
                if !windows.covers(sender, day, ep.end()) {
                    continue;
                }
                let hist = credit.entry((receiver, day)).or_insert([0; 128]);
                let mut previous: Option<u32> = None;
                for t in air.scan_times(day, receiver, ep.start, ep.end()) {
                    let scan = air.scan(day, k as u32, ep, dir, t);
                    if !scan.received {
                        continue;
                    }
                    if let Some(p) = previous.filter(|p| p / INTERVAL == t / INTERVAL) {
                        let bin = scan.attenuation.round().clamp(0.0, 127.0) as usize;
                        hist[bin] += (t - p).min(300);
                    }
                    previous = Some(t);
                }
            }
        }
    }
    let need = (scenario.ground_truth.minutes * 60.0).ceil() as u32;
    let [from, to, step] = scenario.detection.sweep_db;
    let mut keys: Vec<&(u32, u32)> = credit.keys().collect();
    keys.sort_unstable();
    (from..=to)
        .step_by(usize::from(step))
        .map(|threshold| {
            let (mut notified, mut tp) = (0u64, 0u64);
            for key in &keys {
                let hist = &credit[*key];
                let total: u32 = hist[..=usize::from(threshold.min(127))].iter().sum();
                if total >= need {
                    notified += 1;
                    if truth.contains_key(*key) {
                        tp += 1;
                    }
                }
            }
            SweepPoint::new(threshold, truth.len() as u64, notified, tp)
        })
        .collect()
}
