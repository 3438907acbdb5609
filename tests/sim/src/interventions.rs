//! Interventions that feed back into transmission, and what the app's notifications
//! changed.
//!
//! Who stays home: symptomatic people who self-isolate, people with a positive result,
//! notified contacts who comply, and the households of each (as configured). Staying home
//! removes every episode outside the household (OpenABM-Covid19 does the same to its
//! occupation and random networks); household episodes go on. Notified contacts who take
//! a test and test positive are new index cases: they isolate and, with the app and
//! consent, upload, so tracing goes on from them.
//!
//! Every decision takes effect at the midnight after what prompted it (onset, result,
//! notification): the day's transmissions are drawn before the day's phones run. Every
//! draw is keyed by what it is for (the person, the day, the kind of decision), so the
//! app-off counterfactual ([`app_off`]) — the same population, contacts and seed, without
//! phones — makes the very same decisions about symptoms and positives, and the difference
//! between the two runs is the notifications' effect, not noise.

use serde::Serialize;

use super::attack::round4;
use super::contacts::{self, Episode};
use super::engine::RawRun;
use super::epidemic::Epidemic;
use super::population::Population;
use super::rng::{Domain, Stream};
use super::scenario::{InterventionConfig, Scenario};

const DAY: i64 = 86_400;

/// What a draw decides (part of its key).
#[derive(Copy, Clone)]
#[repr(u64)]
enum Draw {
    SelfIsolate = 1,
    IsolatePositive = 2,
    Quarantine = 3,
    Household = 4,
    TakeTest = 5,
    TestResult = 6,
    Consent = 7,
    Dropout = 8,
}

fn stream(seed: u64, draw: Draw, agent: u32, day: u32) -> Stream {
    Stream::new(
        seed,
        Domain::Intervention,
        &[draw as u64, u64::from(agent), u64::from(day)],
    )
}

/// Why someone stays home (which length and dropout apply).
#[derive(Copy, Clone)]
enum Stay {
    Symptoms,
    Positive,
    Traced,
}

/// Who stays home when, and what tracing set off.
#[derive(Clone, Debug)]
pub struct Interventions {
    config: InterventionConfig,
    seed: u64,
    days: u32,
    upload_consent: f64,
    upload_within_hours: f64,
    /// Per agent: the first day they no longer stay home (at home on day `d` iff
    /// `d < home_until`; a stay always starts tomorrow, and only days from tomorrow on are
    /// asked about).
    home_until: Vec<u32>,
    /// Per agent: whether the onset of symptoms has been acted on.
    onset_seen: Vec<bool>,
    /// Per agent: whether a positive result has been acted on.
    positive_seen: Vec<bool>,
    /// Per agent: the day of a test ordered on a notification, not yet taken.
    test_day: Vec<Option<u32>>,
    /// Per agent: when a positive result of a test on tracing arrives.
    traced_positive_at: Vec<Option<i64>>,
    /// Per agent: when that result makes the phone upload.
    traced_upload_at: Vec<Option<i64>>,
    /// Person-days at home within the run.
    pub person_days_home: u64,
    /// Notifications (one per person and day) followed by quarantine.
    pub quarantined_on_notification: u64,
    /// Tests of notified contacts taken.
    pub traced_tests: u64,
    /// Of those, positive.
    pub traced_positives: u64,
}

impl Interventions {
    /// Nobody at home yet, for `pop` under `config`.
    pub fn new(config: &InterventionConfig, scenario: &Scenario, pop: &Population) -> Self {
        let n = pop.agents.len();
        Interventions {
            config: config.clone(),
            seed: scenario.seed,
            days: scenario.days,
            upload_consent: scenario.testing.upload_consent,
            upload_within_hours: scenario.testing.upload_within_hours,
            home_until: vec![0; n],
            onset_seen: vec![false; n],
            positive_seen: vec![false; n],
            test_day: vec![None; n],
            traced_positive_at: vec![None; n],
            traced_upload_at: vec![None; n],
            person_days_home: 0,
            quarantined_on_notification: 0,
            traced_tests: 0,
            traced_positives: 0,
        }
    }

    /// Whether `agent` stays home on `day` (today or later: the days before are not
    /// kept).
    pub fn at_home(&self, agent: u32, day: u32) -> bool {
        day < self.home_until[agent as usize]
    }

    /// Per episode of `day`: whether it does not happen (someone in it stays home and it is
    /// not at home: household members and neighbours still meet).
    pub fn blocked(&self, episodes: &[Episode], day: u32) -> Vec<bool> {
        episodes
            .iter()
            .map(|e| !e.layer.at_home() && (self.at_home(e.a, day) || self.at_home(e.b, day)))
            .collect()
    }

    /// Uploads set off by positive tests on tracing in `[from, to)` (seconds), as
    /// (time, agent).
    pub fn uploads_in(&self, from: i64, to: i64) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.traced_upload_at
            .iter()
            .enumerate()
            .filter_map(move |(a, t)| t.filter(|t| (from..to).contains(t)).map(|t| (t, a as u32)))
    }

    /// Positive results of tests on tracing in `[from, to)` (seconds).
    pub fn positives_in(&self, from: i64, to: i64) -> u64 {
        self.traced_positive_at
            .iter()
            .flatten()
            .filter(|t| (from..to).contains(*t))
            .count() as u64
    }

    /// When `agent`'s first positive result arrives, from testing on symptoms or
    /// screening or from a test on tracing.
    fn positive_at(&self, epidemic: &Epidemic, agent: usize) -> Option<i64> {
        let course = epidemic.courses[agent].as_ref().and_then(|c| c.result_at);
        match (course, self.traced_positive_at[agent]) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// People whose phone uploads (or is due to) within the run: app users with a
    /// positive result who consent — the consenting index cases.
    pub fn consenting_index_cases(&self, epidemic: &Epidemic) -> u64 {
        let end = i64::from(self.days) * DAY;
        (0..epidemic.courses.len())
            .filter(|a| {
                let course = epidemic.courses[*a].as_ref().and_then(|c| c.upload_at);
                course
                    .into_iter()
                    .chain(self.traced_upload_at[*a])
                    .any(|t| t < end)
            })
            .count() as u64
    }

    /// What day `day` set in motion, decided at its end: notified contacts (`notified`,
    /// the people whose phone raised a new notification today) quarantine and order
    /// tests; tests due tomorrow are taken; onsets and positive results of today and
    /// before send people home.
    pub fn end_of_day(
        &mut self,
        day: u32,
        pop: &Population,
        epidemic: &Epidemic,
        notified: &[u32],
    ) {
        let next = day + 1;
        let c = self.config.clone();
        for &agent in notified {
            let a = agent as usize;
            if c.quarantine_on_traced
                && stream(self.seed, Draw::Quarantine, agent, day)
                    .chance(c.quarantine_compliance_traced_positive)
            {
                self.quarantined_on_notification += 1;
                self.stay_home(agent, next, Stay::Traced);
                if c.quarantine_household_on_traced_positive {
                    self.household(pop, agent, next);
                }
            }
            let tested = self.positive_seen[a]
                || self.test_day[a].is_some()
                || self.traced_positive_at[a].is_some();
            if c.test_on_traced
                && !tested
                && stream(self.seed, Draw::TakeTest, agent, day)
                    .chance(c.test_on_traced_positive_compliance)
            {
                self.test_day[a] = Some(day + c.test_order_wait.max(1));
            }
        }
        // Tests taken tomorrow: who is infected by tomorrow's midnight is known now.
        for a in 0..self.test_day.len() {
            let Some(test_day) = self.test_day[a].filter(|d| *d <= next) else {
                continue;
            };
            self.test_day[a] = None;
            self.traced_tests += 1;
            let taken_at = i64::from(test_day) * DAY;
            let detectable = epidemic.courses[a].as_ref().is_some_and(|course| {
                taken_at - course.infected_at >= i64::from(c.test_insensitive_period) * DAY
            });
            let mut rng = stream(self.seed, Draw::TestResult, a as u32, test_day);
            let positive = if detectable {
                rng.chance(c.test_sensitivity)
            } else {
                !rng.chance(c.test_specificity)
            };
            if !positive {
                continue;
            }
            self.traced_positives += 1;
            let result_at = i64::from(test_day + c.test_result_wait) * DAY + DAY / 2;
            self.traced_positive_at[a] = Some(result_at);
            let consents = match &epidemic.courses[a] {
                Some(course) => course.consents,
                None => stream(self.seed, Draw::Consent, a as u32, 0).chance(self.upload_consent),
            };
            if pop.agents[a].app && consents {
                let delay = rng.range_f(0.0, self.upload_within_hours) * 3600.0;
                self.traced_upload_at[a] = Some(result_at + delay as i64);
            }
        }
        // Onsets and positive results up to tonight.
        let tonight = i64::from(next) * DAY;
        for a in 0..epidemic.courses.len() {
            let agent = a as u32;
            let onset = epidemic.courses[a].as_ref().and_then(|c| c.onset_at);
            if !self.onset_seen[a] && onset.is_some_and(|t| t < tonight) {
                self.onset_seen[a] = true;
                if stream(self.seed, Draw::SelfIsolate, agent, 0).chance(c.self_quarantine_fraction)
                {
                    self.stay_home(agent, next, Stay::Symptoms);
                    if c.quarantine_household_on_symptoms {
                        self.household(pop, agent, next);
                    }
                }
            }
            if !self.positive_seen[a] && self.positive_at(epidemic, a).is_some_and(|t| t < tonight)
            {
                self.positive_seen[a] = true;
                if stream(self.seed, Draw::IsolatePositive, agent, 0)
                    .chance(c.quarantine_compliance_positive)
                {
                    self.stay_home(agent, next, Stay::Positive);
                    if c.quarantine_household_on_positive {
                        self.household(pop, agent, next);
                    }
                }
            }
        }
    }

    /// `agent` stays home from day `from` for the stay's length, unless they drop out
    /// earlier (a daily chance from the second day on).
    fn stay_home(&mut self, agent: u32, from: u32, why: Stay) {
        let c = &self.config;
        let (length, dropout) = match why {
            Stay::Symptoms => (c.quarantine_length_self, c.quarantine_dropout_self),
            Stay::Positive => (c.quarantine_length_positive, c.quarantine_dropout_positive),
            Stay::Traced => (
                c.quarantine_length_traced_positive,
                c.quarantine_dropout_traced_positive,
            ),
        };
        let mut rng = Stream::new(
            self.seed,
            Domain::Intervention,
            &[
                Draw::Dropout as u64,
                u64::from(agent),
                u64::from(from),
                why as u64,
            ],
        );
        let days = (1..length).find(|_| rng.chance(dropout)).unwrap_or(length);
        let until = from + days;
        let old = self.home_until[agent as usize];
        if until > old {
            let counted_from = old.max(from).min(self.days);
            self.person_days_home += u64::from(until.min(self.days) - counted_from);
            self.home_until[agent as usize] = until;
        }
    }

    /// `agent`'s household quarantines from `from`: each other member who complies.
    fn household(&mut self, pop: &Population, agent: u32, from: u32) {
        let members = pop.households[pop.agents[agent as usize].household as usize]
            .members
            .clone();
        for m in members.filter(|m| *m != agent) {
            if stream(self.seed, Draw::Household, m, from)
                .chance(self.config.quarantine_compliance_traced_positive)
            {
                self.stay_home(m, from, Stay::Traced);
            }
        }
    }
}

/// The counterfactual with the app off: the same population, contacts, seed and
/// interventions, and no phones, so no notification. Returns the epidemic and who stayed
/// home.
pub fn app_off(
    config: &InterventionConfig,
    scenario: &Scenario,
    pop: &Population,
) -> (Epidemic, Interventions) {
    let mut epidemic = Epidemic::seed(pop, scenario);
    let mut state = Interventions::new(config, scenario, pop);
    for day in 0..scenario.days {
        let episodes = contacts::generate(pop, scenario, day);
        let blocked = state.blocked(&episodes, day);
        epidemic.transmit(pop, scenario, day, &episodes, &blocked);
        state.end_of_day(day, pop, &epidemic, &[]);
    }
    (epidemic, state)
}

/// What the app's notifications changed over the run (`impact` in `summary.json`): the run
/// against its app-off counterfactual ([`app_off`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Impact {
    /// The horizon: the run's days.
    pub horizon_days: u32,
    /// People infected by the end with the app (initial cases included).
    pub infected_app: u64,
    /// The same, app off.
    pub infected_app_off: u64,
    /// `infected_app_off − infected_app` (negative if the app run had more).
    pub infections_averted: i64,
    /// Averted as a share of the app-off infections.
    pub infections_averted_share: f64,
    /// Uploads the node accepted.
    pub uploaders: u64,
    /// App users with a positive result who consented, due to upload within the run.
    pub consenting_index_cases: u64,
    /// `infections_averted / uploaders` (0 without uploads).
    pub averted_per_uploader: f64,
    /// `infections_averted / consenting_index_cases` (0 without any).
    pub averted_per_consenting_index_case: f64,
    /// Cases infected in the last this many days are left out of R (their infectious
    /// period runs past the horizon): ⌈mean + sd⌉ of the infectiousness profile.
    pub r_cut_days: u32,
    /// The effective reproduction number with the app (0 without a case to average).
    pub r_app: f64,
    /// The same, app off.
    pub r_app_off: f64,
    /// `1 − r_app / r_app_off` (0 when `r_app_off` is 0).
    pub r_reduction: f64,
    /// Person-days at home (isolation and quarantine) within the run, app on.
    pub person_days_home_app: u64,
    /// The same, app off.
    pub person_days_home_app_off: u64,
    /// Notifications followed by quarantine.
    pub quarantined_on_notification: u64,
    /// Tests of notified contacts taken.
    pub traced_tests: u64,
    /// Of those, positive (false positives included).
    pub traced_positives: u64,
}

/// The impact of `run` (made with `config`), against its app-off counterfactual.
pub fn impact(config: &InterventionConfig, scenario: &Scenario, run: &RawRun) -> Impact {
    let state = run
        .interventions
        .as_ref()
        .expect("a run with interventions keeps their state");
    let (off, off_state) = app_off(config, scenario, &run.pop);
    let e = &scenario.epidemic;
    let cut = (e.infectious_mean_days + e.infectious_sd_days).ceil() as u32;
    let infected_app = run.epidemic.total_infected() as u64;
    let infected_app_off = off.total_infected() as u64;
    let averted = infected_app_off as i64 - infected_app as i64;
    let per = |n: u64| {
        if n > 0 {
            round4(averted as f64 / n as f64)
        } else {
            0.0
        }
    };
    let uploaders = run.federation.uploads.len() as u64;
    let index_cases = state.consenting_index_cases(&run.epidemic);
    let r_app = run.epidemic.reproduction(scenario.days, cut).unwrap_or(0.0);
    let r_app_off = off.reproduction(scenario.days, cut).unwrap_or(0.0);
    Impact {
        horizon_days: scenario.days,
        infected_app,
        infected_app_off,
        infections_averted: averted,
        infections_averted_share: if infected_app_off > 0 {
            round4(averted as f64 / infected_app_off as f64)
        } else {
            0.0
        },
        uploaders,
        consenting_index_cases: index_cases,
        averted_per_uploader: per(uploaders),
        averted_per_consenting_index_case: per(index_cases),
        r_cut_days: cut,
        r_app: round4(r_app),
        r_app_off: round4(r_app_off),
        r_reduction: if r_app_off > 0.0 {
            round4(1.0 - r_app / r_app_off)
        } else {
            0.0
        },
        person_days_home_app: state.person_days_home,
        person_days_home_app_off: off_state.person_days_home,
        quarantined_on_notification: state.quarantined_on_notification,
        traced_tests: state.traced_tests,
        traced_positives: state.traced_positives,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::{HOME, Layer};
    use crate::radio::Environment;
    use crate::scenario::SchemeName;

    fn setup(config: InterventionConfig) -> (Scenario, Population, Epidemic, Interventions) {
        let mut scenario = Scenario::tiny(50, 10, 3, SchemeName::Gaen);
        scenario.epidemic.initial_infected = 0.0;
        scenario.population.app_uptake = 1.0;
        scenario.testing.upload_consent = 1.0;
        let pop = Population::build(&scenario);
        let epidemic = Epidemic::seed(&pop, &scenario);
        let state = Interventions::new(&config, &scenario, &pop);
        (scenario, pop, epidemic, state)
    }

    #[test]
    fn a_stay_lasts_its_length_unless_dropped_out_and_counts_days_within_the_run() {
        let config = InterventionConfig {
            quarantine_dropout_traced_positive: 0.0,
            quarantine_dropout_positive: 1.0,
            ..InterventionConfig::default()
        };
        let (_, _, _, mut s) = setup(config);
        s.stay_home(0, 2, Stay::Traced);
        assert!(s.at_home(0, 2) && s.at_home(0, 15) && !s.at_home(0, 16));
        assert_eq!(s.person_days_home, 8, "days 2..10 of a 10-day run");
        // An overlapping stay counts only the days it adds; certain dropout leaves after
        // the first day.
        s.stay_home(0, 3, Stay::Traced);
        assert_eq!(s.person_days_home, 8);
        s.stay_home(1, 4, Stay::Positive);
        assert!(s.at_home(1, 4) && !s.at_home(1, 5));
        assert_eq!(s.person_days_home, 9);
    }

    #[test]
    fn people_at_home_meet_only_their_household() {
        let (_, _, _, mut s) = setup(InterventionConfig::default());
        s.home_until[1] = 5;
        let episode = |a, b, layer| Episode {
            a,
            b,
            start: 0,
            duration: 600,
            distance_m: 1.0,
            env: Environment::Home,
            place: HOME,
            layer,
        };
        let day = [
            episode(0, 1, Layer::Household),
            episode(1, 2, Layer::Random),
            episode(2, 1, Layer::Occupation),
            episode(0, 2, Layer::Random),
            episode(1, 3, Layer::Neighbour),
            episode(1, 3, Layer::Crowd),
            episode(1, 3, Layer::PasserBy),
        ];
        assert_eq!(
            s.blocked(&day, 4),
            [false, true, true, false, false, true, true]
        );
        assert_eq!(
            s.blocked(&day, 5),
            [false; 7],
            "home until day 5, exclusive"
        );
    }

    #[test]
    fn a_notified_contact_who_tests_positive_isolates_and_uploads_even_when_false() {
        let config = InterventionConfig {
            test_specificity: 0.0,
            quarantine_on_traced: false,
            test_on_traced_positive_compliance: 1.0,
            ..InterventionConfig::default()
        };
        let (_, pop, epidemic, mut s) = setup(config);
        assert!(epidemic.courses[7].is_none(), "agent 7 is not infected");
        s.end_of_day(0, &pop, &epidemic, &[7]);
        assert_eq!((s.traced_tests, s.traced_positives), (1, 1));
        // Tested on day 1, the result at noon on day 2, the upload within 6 hours.
        let noon = 2 * DAY + DAY / 2;
        assert_eq!(s.positives_in(2 * DAY, 3 * DAY), 1);
        let uploads: Vec<_> = s.uploads_in(noon, noon + 6 * 3600 + 1).collect();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].1, 7);
        assert_eq!(s.consenting_index_cases(&epidemic), 1);
        s.end_of_day(1, &pop, &epidemic, &[]);
        assert!(!s.at_home(7, 2), "the result is not in yet");
        s.end_of_day(2, &pop, &epidemic, &[]);
        assert!(
            s.at_home(7, 3),
            "isolating from the midnight after the result"
        );
        // A second notification orders no second test.
        s.end_of_day(3, &pop, &epidemic, &[7]);
        assert_eq!(s.traced_tests, 1);
    }
}
