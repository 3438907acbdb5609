//! Each day's contact episodes: who, where, when, how long and how close.
//!
//! Three layers as in OpenABM-Covid19: every household pair meets daily; a share of each
//! occupation network's edges is active on weekdays; random community contacts pair up
//! people's daily "stubs" (a Poisson count scaled by each person's sociability) and happen
//! at a venue near the first person's home. Each episode has one distance for its whole
//! duration (people sit or stand still); the radio model adds the variation.

use super::population::{PlaceKind, Population, VenueKind};
use super::radio::Environment;
use super::rng::{Domain, Stream};
use super::scenario::{EpisodeShape, Scenario};

/// Place index of episodes at home.
pub const HOME: u32 = u32::MAX;

/// Which layer an episode belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Household members.
    Household = 0,
    /// Colleagues, classmates, group members.
    Occupation = 1,
    /// Random community contacts.
    Random = 2,
    /// Bystanders in a shared place: in radio range, without a contact of their own
    /// ([`bystanders`](crate::bystanders)).
    Crowd = 3,
    /// Neighbours at home on either side of a wall between flats.
    Neighbour = 4,
    /// Strangers passing each other in the street.
    PasserBy = 5,
}

impl Layer {
    /// Every layer, in order.
    pub const ALL: [Layer; 6] = [
        Layer::Household,
        Layer::Occupation,
        Layer::Random,
        Layer::Crowd,
        Layer::Neighbour,
        Layer::PasserBy,
    ];

    /// Its name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Household => "household",
            Layer::Occupation => "occupation",
            Layer::Random => "community",
            Layer::Crowd => "crowd",
            Layer::Neighbour => "neighbour",
            Layer::PasserBy => "passer_by",
        }
    }

    /// Whether its episodes happen at home, so that staying home does not stop them.
    pub fn at_home(self) -> bool {
        matches!(self, Layer::Household | Layer::Neighbour)
    }

    /// Whether its two people share the air: false only for neighbours, a wall apart. Only
    /// such episodes can be close contacts.
    pub fn shares_air(self) -> bool {
        self != Layer::Neighbour
    }
}

/// Two people near each other for a while.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Episode {
    /// One person (the lower index).
    pub a: u32,
    /// The other.
    pub b: u32,
    /// Start, seconds after the day's UTC midnight.
    pub start: u32,
    /// Duration in seconds.
    pub duration: u32,
    /// Distance (m).
    pub distance_m: f32,
    /// Where.
    pub env: Environment,
    /// The place (occupation place or venue), or [`HOME`].
    pub place: u32,
    /// The layer.
    pub layer: Layer,
}

impl Episode {
    /// End, seconds after midnight.
    pub fn end(&self) -> u32 {
        self.start + self.duration
    }
}

const DAY: u32 = 86_400;

fn shape_draw(shape: &EpisodeShape, rng: &mut Stream, start: u32) -> (u32, f32) {
    let minutes = rng
        .lognormal(shape.median_minutes, shape.sigma)
        .clamp(1.0, shape.max_minutes.max(1.0));
    let duration = ((minutes * 60.0) as u32).min(DAY - start).max(60);
    let distance = rng
        .lognormal(shape.median_distance_m, shape.distance_sigma)
        .clamp(0.2, 30.0) as f32;
    (duration, distance)
}

/// Where and in which layer an episode happens.
type Setting = (Environment, u32, Layer);

fn push(
    out: &mut Vec<Episode>,
    (a, b): (u32, u32),
    start: u32,
    drawn: (u32, f32),
    (env, place, layer): Setting,
) {
    let start = start.min(DAY - 60);
    out.push(Episode {
        a: a.min(b),
        b: a.max(b),
        start,
        duration: drawn.0.min(DAY - start),
        distance_m: drawn.1,
        env,
        place,
        layer,
    });
}

/// Whether `day` (days since 1970-01-01) is a Saturday or Sunday.
pub fn is_weekend(day: u32) -> bool {
    // 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
    (day + 3) % 7 >= 5
}

/// The episodes of simulated day `day_index`, sorted by start then people.
pub fn generate(pop: &Population, scenario: &Scenario, day_index: u32) -> Vec<Episode> {
    let seed = scenario.seed;
    let c = &scenario.contacts;
    let day = u64::from(day_index);
    let mut out = Vec::new();

    for (h, household) in pop.households.iter().enumerate() {
        if household.members.len() < 2 {
            continue;
        }
        let mut rng = Stream::new(seed, Domain::Household, &[day, h as u64]);
        for a in household.members.clone() {
            for b in a + 1..household.members.end {
                let start = (18.0 * 3600.0 + 2700.0 * rng.normal())
                    .clamp(16.0 * 3600.0, 21.0 * 3600.0) as u32;
                let drawn = shape_draw(&c.household, &mut rng, start);
                push(
                    &mut out,
                    (a, b),
                    start,
                    drawn,
                    (Environment::Home, HOME, Layer::Household),
                );
            }
        }
    }

    if !(c.weekends_off && is_weekend(scenario.first_day + day_index)) {
        for (e, edge) in pop.occupation_edges.iter().enumerate() {
            let mut rng = Stream::new(seed, Domain::Occupation, &[day, e as u64]);
            if !rng.chance(c.occupation_daily_fraction) {
                continue;
            }
            let start = rng.range_f(9.0 * 3600.0, 16.0 * 3600.0) as u32;
            let (shape, env) = match pop.places[edge.place as usize].kind {
                PlaceKind::School => (&c.school, Environment::School),
                PlaceKind::ElderlyGroup => (&c.work, Environment::Social),
                _ => (&c.work, Environment::Work),
            };
            let drawn = shape_draw(shape, &mut rng, start);
            push(
                &mut out,
                (edge.a, edge.b),
                start,
                drawn,
                (env, edge.place, Layer::Occupation),
            );
        }
    }

    let mut stubs = Vec::new();
    for (i, agent) in pop.agents.iter().enumerate() {
        let mut rng = Stream::new(seed, Domain::Random, &[day, i as u64]);
        let mean = c.random_interactions[agent.age as usize] * f64::from(agent.sociability);
        for _ in 0..rng.poisson(mean) {
            stubs.push(i as u32);
        }
    }
    Stream::new(seed, Domain::Shuffle, &[day]).shuffle(&mut stubs);
    for (k, pair) in stubs.chunks_exact(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        if a == b || pop.agents[a as usize].household == pop.agents[b as usize].household {
            continue;
        }
        let mut rng = Stream::new(seed, Domain::Episode, &[day, k as u64]);
        let venue = pop.venue_near(pop.agents[a as usize].household, &mut rng);
        let kind = match pop.places[venue as usize].kind {
            PlaceKind::Venue(kind) => kind,
            _ => VenueKind::Shop,
        };
        let (shape, env) = match kind {
            VenueKind::Shop => (&c.shop, Environment::Shop),
            VenueKind::Transit => (&c.transit, Environment::Transit),
            VenueKind::Social => (&c.social, Environment::Social),
            VenueKind::Outdoor => (&c.outdoor, Environment::Outdoor),
        };
        let start = rng.range_f(7.0 * 3600.0, 21.0 * 3600.0) as u32;
        let drawn = shape_draw(shape, &mut rng, start);
        push(&mut out, (a, b), start, drawn, (env, venue, Layer::Random));
    }

    out.sort_by_key(|x| (x.start, x.a, x.b, x.layer as u8));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_have_the_configured_rates_and_stay_within_the_day() {
        let scenario = Scenario {
            agents: 20_000,
            first_day: 19_723, // a Monday
            ..Scenario::default()
        };
        assert!(!is_weekend(19_723) && is_weekend(19_728) && is_weekend(19_729));
        let pop = Population::build(&scenario);
        let episodes = generate(&pop, &scenario, 0);
        assert_eq!(episodes, generate(&pop, &scenario, 0));
        let n = f64::from(scenario.agents);
        let per_person =
            |layer| 2.0 * episodes.iter().filter(|e| e.layer == layer).count() as f64 / n;
        // Random: about 2·0.23 + 4·0.64 + 3·0.13 ≈ 3.4 a person (less same-household pairs).
        let random = per_person(Layer::Random);
        assert!((2.8..4.0).contains(&random), "{random}");
        // Occupation: about 0.5 of each person's edges.
        let occupation = per_person(Layer::Occupation);
        assert!((3.0..8.0).contains(&occupation), "{occupation}");
        assert!(per_person(Layer::Household) > 0.8);
        for e in &episodes {
            assert!(e.a < e.b);
            assert!(e.end() <= DAY && e.duration >= 60);
            assert!(e.distance_m > 0.0);
        }
        // Saturday: no occupation contacts.
        let saturday = generate(&pop, &scenario, 5);
        assert!(saturday.iter().all(|e| e.layer != Layer::Occupation));
    }
}
