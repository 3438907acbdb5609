//! Truth by infection (issue 26, item 3), beside the proximity truth of [`metrics`]: the
//! simulator knows who infected whom, so it can say how many of the people an uploader
//! infected were warned, how many of the warned went on to test positive, and what share
//! of all the close contacts of all positives (app or not) were warned.
//!
//! [`metrics`]: crate::metrics

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::attack::round4;
use super::engine::{DAY, RawRun};
use super::metrics::Windows;
use super::scenario::Scenario;

/// Truth by infection (`summary.json`'s `infection_truth`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InfectionTruth {
    /// People an uploader infected on a day its upload covers, before the upload (app or
    /// not): the infections a notification could have been about.
    pub uploader_infectees: u64,
    /// Of them, people with the app.
    pub infectees_with_app: u64,
    /// Of those, notified for the day they were infected.
    pub infectees_notified: u64,
    /// `infectees_notified / infectees_with_app`: recall by infection.
    pub infection_recall: f64,
    /// `infectees_notified / uploader_infectees`: the same over every infectee, app or not.
    pub infectee_coverage: f64,
    /// The follow-up after a notification (days; `ground_truth.follow_up_days`).
    pub follow_up_days: u32,
    /// Notified people whose first notification leaves the whole follow-up inside the run.
    pub notified_followed_up: u64,
    /// Of them, a positive result in the follow-up (the NHS app's "later tested positive").
    pub tested_positive_in_follow_up: u64,
    /// `tested_positive_in_follow_up / notified_followed_up`.
    pub attack_rate_tested: f64,
    /// Of them, infected from the start of the exposure day they were warned about to the
    /// end of the follow-up (tested or not).
    pub infected_in_follow_up: u64,
    /// `infected_in_follow_up / notified_followed_up`: the attack rate the model knows.
    pub attack_rate_infected: f64,
    /// (person, day) close contacts (the proximity rule) of every person with a positive
    /// result in the run, app or not, from the day they were infected to their result.
    pub contacts_of_positives: u64,
    /// Of them, notified for that day.
    pub contacts_of_positives_notified: u64,
    /// `contacts_of_positives_notified / contacts_of_positives`: population coverage.
    pub population_coverage: f64,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round4(part as f64 / whole as f64)
    }
}

/// Scores `run` by infection; `windows` are its uploads' covered days.
pub(crate) fn score(scenario: &Scenario, run: &RawRun, windows: &Windows) -> InfectionTruth {
    let days = scenario.days;
    let day_secs = i64::from(DAY);
    let courses = &run.epidemic.courses;
    let is_app = |a: u32| run.phone_of[a as usize] != u32::MAX;
    // (person, sim day) → when the phone first scored it high risk (sim seconds).
    let mut notified: HashMap<(u32, u32), i64> = HashMap::new();
    for (agent, phone) in run.phone_of.iter().enumerate() {
        if *phone == u32::MAX {
            continue;
        }
        for (day, at) in &run.phones[*phone as usize].notified {
            if let Some(d) = day.0.checked_sub(scenario.first_day).filter(|d| *d < days) {
                notified.insert((agent as u32, d), at.0 as i64 - run.t0 as i64);
            }
        }
    }

    // Infectees of uploaders.
    let mut out = InfectionTruth {
        follow_up_days: scenario.ground_truth.follow_up_days,
        ..InfectionTruth::default()
    };
    for (target, course) in courses.iter().enumerate() {
        let Some((course, source)) = course.as_ref().and_then(|c| c.source.map(|s| (c, s))) else {
            continue;
        };
        let (day, second) = (
            course.infected_at.div_euclid(day_secs),
            course.infected_at.rem_euclid(day_secs),
        );
        let Ok(day) = u32::try_from(day) else {
            continue;
        };
        if !windows.covers(source, day, second as u32) {
            continue;
        }
        out.uploader_infectees += 1;
        if is_app(target as u32) {
            out.infectees_with_app += 1;
            out.infectees_notified += u64::from(notified.contains_key(&(target as u32, day)));
        }
    }
    out.infection_recall = ratio(out.infectees_notified, out.infectees_with_app);
    out.infectee_coverage = ratio(out.infectees_notified, out.uploader_infectees);

    // Attack rate among the notified: each person's first notification.
    let mut first: HashMap<u32, (i64, u32)> = HashMap::new();
    for (&(agent, day), &at) in &notified {
        let entry = first.entry(agent).or_insert((at, day));
        *entry = (*entry).min((at, day));
    }
    let follow_up = i64::from(out.follow_up_days) * day_secs;
    let end = i64::from(days) * day_secs;
    for (agent, (at, day)) in &first {
        if at + follow_up > end {
            continue;
        }
        out.notified_followed_up += 1;
        let Some(course) = courses[*agent as usize].as_ref() else {
            continue;
        };
        let window = i64::from(*day) * day_secs..=at + follow_up;
        out.infected_in_follow_up += u64::from(window.contains(&course.infected_at));
        out.tested_positive_in_follow_up += u64::from(
            course
                .result_at
                .is_some_and(|r| (*at..=at + follow_up).contains(&r)),
        );
    }
    out.attack_rate_tested = ratio(out.tested_positive_in_follow_up, out.notified_followed_up);
    out.attack_rate_infected = ratio(out.infected_in_follow_up, out.notified_followed_up);

    // Population coverage: close contacts of every positive, app or not.
    let positives: HashMap<u32, (u32, i64)> = courses
        .iter()
        .enumerate()
        .filter_map(|(a, c)| {
            let c = c.as_ref()?;
            let result = c.result_at.filter(|r| (0..end).contains(r))?;
            Some((
                a as u32,
                (c.infected_at.max(0).div_euclid(day_secs) as u32, result),
            ))
        })
        .collect();
    let needed = (scenario.ground_truth.minutes * 60.0).ceil() as u32;
    let mut close: HashMap<(u32, u32, u32), u32> = HashMap::new();
    for (day, episodes) in run.episodes.iter().enumerate() {
        let day = day as u32;
        for ep in episodes {
            if f64::from(ep.distance_m) > scenario.ground_truth.distance_m || !ep.layer.shares_air()
            {
                continue;
            }
            for (positive, contact) in [(ep.a, ep.b), (ep.b, ep.a)] {
                let Some((from, result)) = positives.get(&positive) else {
                    continue;
                };
                let ended = i64::from(day) * day_secs + i64::from(ep.end());
                if day >= *from && ended <= *result {
                    *close.entry((contact, day, positive)).or_default() += ep.duration;
                }
            }
        }
    }
    let contacts: HashSet<(u32, u32)> = close
        .into_iter()
        .filter(|(_, seconds)| *seconds >= needed)
        .map(|((contact, day, _), _)| (contact, day))
        .collect();
    out.contacts_of_positives = contacts.len() as u64;
    out.contacts_of_positives_notified =
        contacts.iter().filter(|k| notified.contains_key(k)).count() as u64;
    out.population_coverage = ratio(
        out.contacts_of_positives_notified,
        out.contacts_of_positives,
    );
    out
}
