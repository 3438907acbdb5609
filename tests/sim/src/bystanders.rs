//! Bystanders (issue 26, item 2): people within radio range of each other who have no
//! contact of their own. Phones hear everyone in range, so these are where false alarms come
//! from in the field. Three kinds, each an [`Episode`] that the radio model hears like any
//! other:
//!
//! - **crowds**: the day's contacts put people in a place (a shop, a bus, a bar, an office,
//!   a school) for a while; everyone there at the same time is in range of the others.
//!   Each person hears at most `crowd_max` of them at a place in a day (the first there
//!   longest at the same time), at `crowd_distance_factor` times the distance of the
//!   place's own contacts, up to `range_m`.
//! - **neighbours**: a share of households live in flats, each sharing a wall with the
//!   next; on some evenings one resident of each is home a few metres apart through it
//!   ([`Environment::Wall`]: the wall's loss is its radio offset).
//! - **passers-by**: a minute or two in range of a stranger in the street near home.
//!
//! Bystanders do not transmit: they join the day after its transmissions, so a run with
//! them has the very epidemic, tests and uploads of the run without (unless interventions
//! act on what they add). A crowd pair close and long enough is a close contact like any
//! other; neighbours never are, a wall between them ([`Layer::shares_air`]).

use std::collections::{HashMap, HashSet};

use super::contacts::{Episode, HOME, Layer};
use super::population::Population;
use super::radio::Environment;
use super::rng::{Domain, Stream};
use super::scenario::{BystanderConfig, EpisodeShape, Scenario};

const DAY: u32 = 86_400;
/// The shortest bystander episode (s), about one scan period.
const MIN_SECONDS: u32 = 60;

/// Keys of the bystander streams, one per use.
const CROWD: u64 = 0;
const FLATS: u64 = 1;
const NEIGHBOUR: u64 = 2;
const PASSERS: u64 = 3;
const PASSER_SHUFFLE: u64 = 4;
const PASSER_EPISODE: u64 = 5;

/// The bystander episodes of simulated day `day`, beside the contact episodes that
/// happened that day (`contacts`: crowds form from them). `is_out(agent)`: whether the
/// person left home that day (only they pass strangers in the street).
pub fn generate(
    pop: &Population,
    scenario: &Scenario,
    config: &BystanderConfig,
    day: u32,
    contacts: &[Episode],
    is_out: impl Fn(u32) -> bool,
) -> Vec<Episode> {
    let mut episodes = crowds(scenario, config, day, contacts);
    episodes.extend(neighbours(pop, scenario, config, day));
    episodes.extend(passers_by(pop, scenario, config, day, is_out));
    episodes
}

/// One person's time at a place, from one of their contacts there.
#[derive(Copy, Clone)]
struct Presence {
    place: u32,
    start: u32,
    end: u32,
    person: u32,
    /// The person they met there: not a bystander.
    partner: u32,
    env: Environment,
}

/// The contact shape of an environment: bystanders stand farther than its contacts.
fn shape_of(scenario: &Scenario, env: Environment) -> &EpisodeShape {
    let c = &scenario.contacts;
    match env {
        Environment::Home | Environment::Wall => &c.household,
        Environment::Work => &c.work,
        Environment::School => &c.school,
        Environment::Shop => &c.shop,
        Environment::Transit => &c.transit,
        Environment::Social => &c.social,
        Environment::Outdoor => &c.outdoor,
    }
}

/// Everyone at a place at the same time, from the day's contacts there: a sweep over each
/// place's presences in order of arrival.
fn crowds(
    scenario: &Scenario,
    config: &BystanderConfig,
    day: u32,
    contacts: &[Episode],
) -> Vec<Episode> {
    let mut presences: Vec<Presence> = contacts
        .iter()
        .filter(|e| e.place != HOME && matches!(e.layer, Layer::Occupation | Layer::Random))
        .flat_map(|e| {
            [(e.a, e.b), (e.b, e.a)].map(|(person, partner)| Presence {
                place: e.place,
                start: e.start,
                end: e.end(),
                person,
                partner,
                env: e.env,
            })
        })
        .collect();
    presences.sort_unstable_by_key(|p| (p.place, p.start, p.person, p.end, p.partner));

    let mut out = Vec::new();
    // Bystanders each person heard at this place today.
    let mut heard: HashMap<u32, u32> = HashMap::new();
    let mut here: Vec<usize> = Vec::new();
    let mut paired: HashSet<(u32, u32)> = HashSet::new();
    let mut candidates: Vec<(u32, usize)> = Vec::new();
    let count = |heard: &HashMap<u32, u32>, person: u32| heard.get(&person).copied().unwrap_or(0);
    for (i, p) in presences.iter().enumerate() {
        if i > 0 && presences[i - 1].place != p.place {
            here.clear();
            paired.clear();
            heard.clear();
        }
        here.retain(|&j| presences[j].end > p.start);
        candidates.clear();
        candidates.extend(here.iter().filter_map(|&j| {
            let q = &presences[j];
            let overlap = p.end.min(q.end) - p.start;
            (count(&heard, q.person) < config.crowd_max
                && q.person != p.person
                && q.person != p.partner
                && overlap >= MIN_SECONDS)
                .then_some((overlap, j))
        }));
        // The longest together first; ties by arrival.
        candidates.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        for &(overlap, j) in &candidates {
            if count(&heard, p.person) >= config.crowd_max {
                break;
            }
            let q = &presences[j];
            if count(&heard, q.person) >= config.crowd_max {
                continue;
            }
            let pair = (p.person.min(q.person), p.person.max(q.person));
            if paired.contains(&pair) {
                continue;
            }
            let key = [CROWD, u64::from(day), i as u64, j as u64];
            let mut rng = Stream::new(scenario.seed, Domain::Bystander, &key);
            let shape = shape_of(scenario, p.env);
            let distance = rng.lognormal(
                shape.median_distance_m * config.crowd_distance_factor,
                shape.distance_sigma,
            );
            if distance > config.range_m {
                continue;
            }
            paired.insert(pair);
            *heard.entry(p.person).or_default() += 1;
            *heard.entry(q.person).or_default() += 1;
            out.push(Episode {
                a: pair.0,
                b: pair.1,
                start: p.start,
                duration: overlap,
                distance_m: distance.max(0.2) as f32,
                env: p.env,
                place: p.place,
                layer: Layer::Crowd,
            });
        }
        here.push(i);
    }
    out
}

/// Residents of flats a wall apart, home on the same evening.
fn neighbours(
    pop: &Population,
    scenario: &Scenario,
    config: &BystanderConfig,
    day: u32,
) -> Vec<Episode> {
    let seed = scenario.seed;
    // Which households live in flats does not change from day to day.
    let flats: Vec<usize> = (0..pop.households.len())
        .filter(|h| {
            Stream::new(seed, Domain::Bystander, &[FLATS, *h as u64]).chance(config.apartment_share)
        })
        .collect();
    let mut out = Vec::new();
    for (wall, pair) in flats.windows(2).enumerate() {
        let mut rng = Stream::new(
            seed,
            Domain::Bystander,
            &[NEIGHBOUR, u64::from(day), wall as u64],
        );
        if !rng.chance(config.neighbour_daily_fraction) {
            continue;
        }
        let mut resident = |h: usize| {
            let members = &pop.households[h].members;
            members.start + rng.below(u64::from(members.end - members.start)) as u32
        };
        let (a, b) = (resident(pair[0]), resident(pair[1]));
        let start =
            (20.0 * 3600.0 + 3600.0 * rng.normal()).clamp(17.0 * 3600.0, 22.0 * 3600.0) as u32;
        let minutes = rng
            .lognormal(config.neighbour_median_minutes, 0.6)
            .clamp(1.0, 600.0);
        let distance = rng
            .lognormal(config.neighbour_median_distance_m, 0.4)
            .clamp(0.5, config.range_m);
        out.push(Episode {
            a: a.min(b),
            b: a.max(b),
            start,
            duration: ((minutes * 60.0) as u32).clamp(MIN_SECONDS, DAY - start),
            distance_m: distance as f32,
            env: Environment::Wall,
            place: HOME,
            layer: Layer::Neighbour,
        });
    }
    out
}

/// Strangers passing each other near one's home: each person's daily count is Poisson,
/// scaled by sociability, and the counts pair up at random as community contacts do.
fn passers_by(
    pop: &Population,
    scenario: &Scenario,
    config: &BystanderConfig,
    day: u32,
    is_out: impl Fn(u32) -> bool,
) -> Vec<Episode> {
    let seed = scenario.seed;
    let day_key = u64::from(day);
    let mut stubs = Vec::new();
    for (i, agent) in pop.agents.iter().enumerate() {
        if !is_out(i as u32) {
            continue;
        }
        let mut rng = Stream::new(seed, Domain::Bystander, &[PASSERS, day_key, i as u64]);
        let mean = config.passers_by_per_day * f64::from(agent.sociability);
        for _ in 0..rng.poisson(mean) {
            stubs.push(i as u32);
        }
    }
    Stream::new(seed, Domain::Bystander, &[PASSER_SHUFFLE, day_key]).shuffle(&mut stubs);
    let mut out = Vec::new();
    for (k, pair) in stubs.chunks_exact(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        let home = pop.agents[a as usize].household;
        if a == b || home == pop.agents[b as usize].household {
            continue;
        }
        let key = [PASSER_EPISODE, day_key, k as u64];
        let mut rng = Stream::new(seed, Domain::Bystander, &key);
        let street = pop.venue_near(home, &mut rng);
        let start = rng.range_f(7.0 * 3600.0, 21.0 * 3600.0) as u32;
        let minutes = rng
            .lognormal(config.passer_by_median_minutes, 0.5)
            .clamp(1.0, 10.0);
        let distance = rng
            .lognormal(config.passer_by_median_distance_m, 0.5)
            .clamp(0.2, config.range_m);
        out.push(Episode {
            a: a.min(b),
            b: a.max(b),
            start,
            duration: (minutes * 60.0) as u32,
            distance_m: distance as f32,
            env: Environment::Outdoor,
            place: street,
            layer: Layer::PasserBy,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::SchemeName;

    fn contact(a: u32, b: u32, start: u32, minutes: u32, place: u32) -> Episode {
        Episode {
            a,
            b,
            start,
            duration: minutes * 60,
            distance_m: 1.5,
            env: Environment::Shop,
            place,
            layer: Layer::Random,
        }
    }

    #[test]
    fn a_crowd_is_everyone_at_a_place_at_once_but_partners_and_strangers_elsewhere() {
        let scenario = Scenario::tiny(100, 1, 1, SchemeName::Gaen);
        let config = BystanderConfig {
            crowd_max: 10,
            range_m: 30.0,
            ..BystanderConfig::default()
        };
        let contacts = [
            contact(0, 1, 36_000, 30, 7),
            contact(2, 3, 36_600, 30, 7),
            // After 0–1 left: overlaps 2–3 only.
            contact(4, 5, 37_800, 30, 7),
            // Elsewhere at the same time.
            contact(6, 8, 36_000, 30, 9),
            // At home: no crowd.
            Episode {
                place: HOME,
                layer: Layer::Household,
                ..contact(10, 11, 36_000, 30, 7)
            },
        ];
        let crowd = crowds(&scenario, &config, 0, &contacts);
        let mut pairs: Vec<(u32, u32, u32)> =
            crowd.iter().map(|e| (e.a, e.b, e.duration)).collect();
        pairs.sort_unstable();
        // 0 and 1 share 20 minutes with 2 and 3; 2 and 3 share 10 with 4 and 5.
        assert_eq!(
            pairs,
            [
                (0, 2, 1200),
                (0, 3, 1200),
                (1, 2, 1200),
                (1, 3, 1200),
                (2, 4, 600),
                (2, 5, 600),
                (3, 4, 600),
                (3, 5, 600)
            ]
        );
        for e in &crowd {
            assert_eq!(
                (e.layer, e.env, e.place),
                (Layer::Crowd, Environment::Shop, 7)
            );
            assert!(e.distance_m > 0.0 && f64::from(e.distance_m) <= config.range_m);
        }
        assert_eq!(
            crowd,
            crowds(&scenario, &config, 0, &contacts),
            "repeatable"
        );

        // At most `crowd_max` each, the longest together first.
        let one = BystanderConfig {
            crowd_max: 1,
            ..config
        };
        let crowd = crowds(&scenario, &one, 0, &contacts);
        for person in 0..6 {
            assert!(
                crowd
                    .iter()
                    .filter(|e| e.a == person || e.b == person)
                    .count()
                    <= 1
            );
        }
        assert!(crowd.iter().any(|e| (e.a, e.b) == (0, 2)));
    }

    #[test]
    fn neighbours_are_a_wall_apart_at_home_and_passers_by_only_meet_people_who_are_out() {
        let scenario = Scenario::tiny(2_000, 1, 1, SchemeName::Gaen);
        let pop = Population::build(&scenario);
        let config = BystanderConfig::default();
        let next_door = neighbours(&pop, &scenario, &config, 0);
        // About 0.4 of the households are flats, a wall each, half of them used a night.
        let walls = pop.households.len() as f64 * 0.4 * 0.5;
        let n = next_door.len() as f64;
        assert!((0.7 * walls..1.3 * walls).contains(&n), "{n} of {walls}");
        for e in &next_door {
            assert_eq!(
                (e.layer, e.env, e.place),
                (Layer::Neighbour, Environment::Wall, HOME)
            );
            let home = |p: u32| pop.agents[p as usize].household;
            assert_ne!(home(e.a), home(e.b));
            assert!(e.start >= 17 * 3600 && e.end() <= DAY);
        }

        let everyone = passers_by(&pop, &scenario, &config, 0, |_| true);
        let per_person = 2.0 * everyone.len() as f64 / 2_000.0;
        assert!((3.0..4.5).contains(&per_person), "{per_person}");
        assert!(
            everyone
                .iter()
                .all(|e| e.layer == Layer::PasserBy && (60..=600).contains(&e.duration))
        );
        let half = passers_by(&pop, &scenario, &config, 0, |a| a % 2 == 0);
        assert!(!half.is_empty());
        assert!(half.iter().all(|e| e.a % 2 == 0 && e.b % 2 == 0));
    }
}
