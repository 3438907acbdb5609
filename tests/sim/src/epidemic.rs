//! Infection from proximity and duration, and each case's course: symptoms, test, upload.

use super::contacts::{Episode, Layer};
use super::population::Population;
use super::radio::Environment;
use super::rng::{Domain, Stream};
use super::scenario::Scenario;

const DAY: f64 = 86_400.0;

/// One infection and what follows from it. Times are seconds after the first simulated
/// midnight (negative before it).
#[derive(Clone, Debug, PartialEq)]
pub struct Course {
    /// When infected.
    pub infected_at: i64,
    /// Whether the case never shows symptoms.
    pub asymptomatic: bool,
    /// Symptom onset, if symptomatic.
    pub onset_at: Option<i64>,
    /// When a positive result arrives, if tested.
    pub result_at: Option<i64>,
    /// When the phone uploads, if the person runs the app and consents.
    pub upload_at: Option<i64>,
    /// Whether the person consents to upload after a positive result (drawn for
    /// everyone; it matters for app users).
    pub consents: bool,
    /// Who infected this person (none for the initial cases).
    pub source: Option<u32>,
    /// In which layer.
    pub layer: Option<Layer>,
}

/// Everyone's infection state.
#[derive(Clone, Debug)]
pub struct Epidemic {
    /// Per agent: the course, once infected.
    pub courses: Vec<Option<Course>>,
    shape: f64,
    scale: f64,
    ln_norm: f64,
}

/// ln Γ(x) (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

impl Epidemic {
    /// The initial cases: each person with probability `initial_infected`, infected up to 6
    /// days before the first day.
    pub fn seed(pop: &Population, scenario: &Scenario) -> Epidemic {
        let e = &scenario.epidemic;
        let shape = (e.infectious_mean_days / e.infectious_sd_days).powi(2);
        let scale = e.infectious_sd_days.powi(2) / e.infectious_mean_days;
        let mut epidemic = Epidemic {
            courses: vec![None; pop.agents.len()],
            shape,
            scale,
            ln_norm: ln_gamma(shape) + shape * scale.ln(),
        };
        for i in 0..pop.agents.len() {
            let mut rng = Stream::new(scenario.seed, Domain::Infection, &[u64::MAX, i as u64]);
            if rng.chance(e.initial_infected) {
                let at = -(rng.range_f(0.0, 6.0) * DAY) as i64;
                epidemic.infect(pop, scenario, i as u32, at, None, None);
            }
        }
        epidemic
    }

    fn infect(
        &mut self,
        pop: &Population,
        scenario: &Scenario,
        agent: u32,
        at: i64,
        source: Option<u32>,
        layer: Option<Layer>,
    ) {
        let e = &scenario.epidemic;
        let t = &scenario.testing;
        let mut rng = Stream::new(scenario.seed, Domain::Course, &[u64::from(agent)]);
        let asymptomatic = rng.chance(e.asymptomatic_share);
        let onset_at = (!asymptomatic).then(|| {
            at + (rng.lognormal(e.incubation_median_days, e.incubation_sigma) * DAY) as i64
        });
        let delay =
            (rng.range_f(t.delay_days[0], t.delay_days[1].max(t.delay_days[0])) * DAY) as i64;
        let result_at = match onset_at {
            Some(onset) if rng.chance(t.symptomatic_tested) => Some(onset + delay),
            None if rng.chance(t.asymptomatic_tested) => Some(at + 3 * DAY as i64 + delay),
            _ => None,
        };
        let consents = rng.chance(t.upload_consent);
        let upload_at = result_at
            .filter(|_| pop.agents[agent as usize].app && consents)
            .map(|r| r + (rng.range_f(0.0, t.upload_within_hours) * 3600.0) as i64);
        self.courses[agent as usize] = Some(Course {
            infected_at: at,
            asymptomatic,
            onset_at,
            result_at,
            upload_at,
            consents,
            source,
            layer,
        });
    }

    /// How infectious `agent` is at `t` (per day; the profile integrates to 1).
    pub fn infectiousness(&self, scenario: &Scenario, agent: u32, t: i64) -> f64 {
        let Some(course) = &self.courses[agent as usize] else {
            return 0.0;
        };
        let tau = (t - course.infected_at) as f64 / DAY;
        if tau <= 0.0 {
            return 0.0;
        }
        let density = ((self.shape - 1.0) * tau.ln() - tau / self.scale - self.ln_norm).exp();
        if course.asymptomatic {
            density * scenario.epidemic.asymptomatic_infectiousness
        } else {
            density
        }
    }

    /// Whether `agent` has been infected by `t`.
    pub fn infected_by(&self, agent: u32, t: i64) -> bool {
        self.courses[agent as usize]
            .as_ref()
            .is_some_and(|c| c.infected_at <= t)
    }

    /// Runs the day's transmissions over `episodes` (of day `day`): only people infected
    /// before the day began transmit. Episode `k` does not happen when `blocked[k]` (an
    /// isolated or quarantined person; an empty `blocked` blocks none); every other
    /// episode keeps its own draw, so blocking one changes nothing else. Returns the number
    /// of new infections.
    pub fn transmit(
        &mut self,
        pop: &Population,
        scenario: &Scenario,
        day: u32,
        episodes: &[Episode],
        blocked: &[bool],
    ) -> usize {
        let e = &scenario.epidemic;
        let day_start = i64::from(day) * DAY as i64;
        let mut candidates: Vec<(u32, i64, u32, Layer)> = Vec::new();
        for (k, ep) in episodes.iter().enumerate() {
            if blocked.get(k) == Some(&true) {
                continue;
            }
            let (a_inf, b_inf) = (
                self.infected_by(ep.a, day_start - 1),
                self.infected_by(ep.b, day_start - 1),
            );
            let (source, target) = match (a_inf, b_inf) {
                (true, false) => (ep.a, ep.b),
                (false, true) => (ep.b, ep.a),
                _ => continue,
            };
            if self.courses[target as usize].is_some() {
                continue;
            }
            let start = day_start + i64::from(ep.start);
            let g = self.infectiousness(scenario, source, start);
            let layer_weight = if ep.layer == Layer::Household {
                e.household_weight
            } else {
                1.0
            };
            let env_weight = if ep.env == Environment::Outdoor {
                e.outdoor_weight
            } else {
                1.0
            };
            let d = f64::from(ep.distance_m);
            let distance_weight = if d <= e.near_distance_m {
                1.0
            } else {
                (e.near_distance_m / d).powi(2)
            };
            let hazard =
                e.beta * layer_weight * env_weight * distance_weight * f64::from(ep.duration)
                    / 60.0
                    * g;
            let mut rng = Stream::new(
                scenario.seed,
                Domain::Infection,
                &[u64::from(day), k as u64],
            );
            if rng.uniform() < 1.0 - (-hazard).exp() {
                let at = start + (rng.uniform() * f64::from(ep.duration)) as i64;
                candidates.push((target, at, source, ep.layer));
            }
        }
        // Earliest exposure wins; ties by source, so the result does not depend on order.
        candidates.sort_by_key(|c| (c.0, c.1, c.2));
        candidates.dedup_by_key(|c| c.0);
        let new = candidates.len();
        for (target, at, source, layer) in candidates {
            self.infect(pop, scenario, target, at, Some(source), Some(layer));
        }
        new
    }

    /// People infected so far.
    pub fn total_infected(&self) -> usize {
        self.courses.iter().filter(|c| c.is_some()).count()
    }

    /// The effective reproduction number over a run of `days`: the mean number of people
    /// infected (within the run) by each case infected before day `days − cut_days`, the
    /// initial cases included. `cut_days` leaves the cases whose infectious period the end
    /// of the run would cut short out of the mean. `None` when there is no such case.
    pub fn reproduction(&self, days: u32, cut_days: u32) -> Option<f64> {
        let end = i64::from(days.saturating_sub(cut_days)) * DAY as i64;
        let early: Vec<bool> = self
            .courses
            .iter()
            .map(|c| c.as_ref().is_some_and(|c| c.infected_at < end))
            .collect();
        let cases = early.iter().filter(|e| **e).count();
        let offspring = self
            .courses
            .iter()
            .flatten()
            .filter(|c| c.source.is_some_and(|s| early[s as usize]))
            .count();
        (cases > 0).then(|| offspring as f64 / cases as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_profile_integrates_to_one_with_the_configured_mean() {
        let scenario = Scenario::tiny(10, 1, 1, super::super::scenario::SchemeName::Pet);
        let pop = Population::build(&scenario);
        let mut epi = Epidemic::seed(&pop, &scenario);
        epi.infect(&pop, &scenario, 0, 0, None, None);
        epi.courses[0].as_mut().unwrap().asymptomatic = false;
        let step = 0.01;
        let (mut total, mut mean) = (0.0, 0.0);
        for i in 1..3000 {
            let tau = f64::from(i) * step;
            let g = epi.infectiousness(&scenario, 0, (tau * DAY) as i64);
            total += g * step;
            mean += tau * g * step;
        }
        assert!((total - 1.0).abs() < 0.01, "{total}");
        assert!((mean - 5.5).abs() < 0.05, "{mean}");
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-10);
    }
}
