//! The population: households, occupation places with small-world networks, community
//! venues on a grid, and who runs the app.

use std::collections::HashSet;
use std::ops::Range;

use super::rng::{Domain, Stream};
use super::scenario::Scenario;

/// An age group with its own contact rates.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AgeGroup {
    /// Under 20: schools.
    Child = 0,
    /// 20 to 69: workplaces.
    Adult = 1,
    /// 70 and over: day-time groups.
    Elderly = 2,
}

/// What kind of community venue.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum VenueKind {
    /// A shop.
    Shop = 0,
    /// A bus or train line.
    Transit = 1,
    /// A bar, restaurant or gathering.
    Social = 2,
    /// A park or street.
    Outdoor = 3,
}

/// What a place is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PlaceKind {
    /// A workplace.
    Workplace,
    /// A school.
    School,
    /// A day-time group of elderly people.
    ElderlyGroup,
    /// A community venue.
    Venue(VenueKind),
}

/// One person.
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    /// Age group.
    pub age: AgeGroup,
    /// Household index.
    pub household: u32,
    /// Occupation place (index into `places`), if any.
    pub occupation: Option<u32>,
    /// Whether this person runs the app.
    pub app: bool,
    /// The phone's transmit calibration residual (dB).
    pub tx_offset_db: f32,
    /// The phone's receive calibration residual (dB).
    pub rx_offset_db: f32,
    /// Relative rate of random contacts (mean 1).
    pub sociability: f32,
}

/// A place on the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    /// What it is.
    pub kind: PlaceKind,
    /// Position (km).
    pub x: f32,
    /// Position (km).
    pub y: f32,
    /// Relative popularity (venues only; 1 otherwise).
    pub popularity: f32,
}

/// A household: its members are agents `members` (contiguous) and it sits at `(x, y)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Household {
    /// Agent indices.
    pub members: Range<u32>,
    /// Position (km).
    pub x: f32,
    /// Position (km).
    pub y: f32,
}

/// An edge of an occupation network.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OccupationEdge {
    /// One person.
    pub a: u32,
    /// The other.
    pub b: u32,
    /// The place.
    pub place: u32,
}

/// Everyone and everything, built once per run.
#[derive(Clone, Debug)]
pub struct Population {
    /// People.
    pub agents: Vec<Agent>,
    /// Households.
    pub households: Vec<Household>,
    /// Places (occupation places and venues).
    pub places: Vec<Place>,
    /// Occupation-network edges (each day a share of them is active).
    pub occupation_edges: Vec<OccupationEdge>,
    /// Venue place indices.
    pub venues: Vec<u32>,
    /// Side of the square grid (km).
    pub side_km: f64,
    cells: usize,
    /// Per grid cell: venue place indices and their cumulative popularity.
    cell_venues: Vec<(Vec<u32>, Vec<f64>)>,
}

impl Population {
    /// Builds the population of `scenario` (deterministic in its seed).
    pub fn build(scenario: &Scenario) -> Population {
        let seed = scenario.seed;
        let p = &scenario.population;
        let n = scenario.agents;
        let side_km = (f64::from(n) / p.density_per_km2).sqrt().max(0.1);
        let mut rng = Stream::new(seed, Domain::Population, &[0]);

        // Households: sizes by census shares; ages by household size.
        let cumulative_sizes: Vec<f64> = p
            .household_sizes
            .iter()
            .scan(0.0, |acc, s| {
                *acc += s;
                Some(*acc)
            })
            .collect();
        let mut agents = Vec::with_capacity(n as usize);
        let mut households = Vec::new();
        let adult_share = (1.0 - p.child_share - p.elderly_share).max(0.0);
        while agents.len() < n as usize {
            let size = (rng.pick_cumulative(&cumulative_sizes) + 1).min(n as usize - agents.len());
            let start = agents.len() as u32;
            let household = households.len() as u32;
            // Small households are adults or elderly; larger ones are two adults with
            // children, which keeps the child share near its target.
            let elderly_home = size <= 2
                && rng.chance(p.elderly_share / (p.elderly_share + adult_share * 0.5).max(1e-9));
            for member in 0..size {
                let age = if elderly_home {
                    AgeGroup::Elderly
                } else if member < 2 || size <= 2 {
                    AgeGroup::Adult
                } else {
                    AgeGroup::Child
                };
                agents.push(Agent {
                    age,
                    household,
                    occupation: None,
                    app: false,
                    tx_offset_db: 0.0,
                    rx_offset_db: 0.0,
                    sociability: 1.0,
                });
            }
            households.push(Household {
                members: start..agents.len() as u32,
                x: rng.range_f(0.0, side_km) as f32,
                y: rng.range_f(0.0, side_km) as f32,
            });
        }
        let shape = scenario.contacts.random_dispersion.max(0.05);
        for (i, agent) in agents.iter_mut().enumerate() {
            let mut r = Stream::new(seed, Domain::Population, &[1, i as u64]);
            agent.app = r.chance(p.app_uptake);
            agent.tx_offset_db = (scenario.radio.device_tx_sd_db * r.normal()) as f32;
            agent.rx_offset_db = (scenario.radio.device_rx_sd_db * r.normal()) as f32;
            agent.sociability = r.gamma(shape, 1.0 / shape) as f32;
        }

        // Occupation places.
        let mut places = Vec::new();
        let mut occupation_edges = Vec::new();
        let by_age = |age: AgeGroup| -> Vec<u32> {
            agents
                .iter()
                .enumerate()
                .filter(|(_, a)| a.age == age)
                .map(|(i, _)| i as u32)
                .collect()
        };
        let mut children = by_age(AgeGroup::Child);
        let mut adults = by_age(AgeGroup::Adult);
        let mut elderly = by_age(AgeGroup::Elderly);
        rng.shuffle(&mut children);
        rng.shuffle(&mut adults);
        rng.shuffle(&mut elderly);
        adults.truncate((adults.len() as f64 * p.employed_share).round() as usize);
        let c = &scenario.contacts;
        let mut groups: Vec<(PlaceKind, Vec<u32>, f64)> = Vec::new();
        for chunk in children.chunks(p.school_size.max(2) as usize) {
            groups.push((
                PlaceKind::School,
                chunk.to_vec(),
                c.occupation_interactions[0],
            ));
        }
        for chunk in elderly.chunks(p.elderly_group_size.max(2) as usize) {
            groups.push((
                PlaceKind::ElderlyGroup,
                chunk.to_vec(),
                c.occupation_interactions[2],
            ));
        }
        let median = p.workplace_mean_size / 0.5f64.exp();
        let mut rest = &adults[..];
        while !rest.is_empty() {
            let size = (rng.lognormal(median, 1.0).round() as usize).clamp(1, rest.len());
            groups.push((
                PlaceKind::Workplace,
                rest[..size].to_vec(),
                c.occupation_interactions[1],
            ));
            rest = &rest[size..];
        }
        for (g, (kind, members, interactions)) in groups.into_iter().enumerate() {
            let place = places.len() as u32;
            places.push(Place {
                kind,
                x: rng.range_f(0.0, side_km) as f32,
                y: rng.range_f(0.0, side_km) as f32,
                popularity: 1.0,
            });
            for m in &members {
                agents[*m as usize].occupation = Some(place);
            }
            let degree = interactions / c.occupation_daily_fraction.max(1e-6);
            let mut r = Stream::new(seed, Domain::Population, &[2, g as u64]);
            for (a, b) in small_world(members.len(), degree, c.occupation_rewire, &mut r) {
                occupation_edges.push(OccupationEdge {
                    a: members[a],
                    b: members[b],
                    place,
                });
            }
        }

        // Venues with Zipf-like popularity, indexed by grid cell.
        let venue_count = ((f64::from(n) * p.venues_per_1000 / 1000.0).round() as usize).max(1);
        let kinds: Vec<f64> = c
            .venue_kinds
            .iter()
            .scan(0.0, |acc, s| {
                *acc += s;
                Some(*acc)
            })
            .collect();
        let mut venues = Vec::with_capacity(venue_count);
        for v in 0..venue_count {
            let mut r = Stream::new(seed, Domain::Population, &[3, v as u64]);
            let kind = match r.pick_cumulative(&kinds) {
                0 => VenueKind::Shop,
                1 => VenueKind::Transit,
                2 => VenueKind::Social,
                _ => VenueKind::Outdoor,
            };
            venues.push(places.len() as u32);
            places.push(Place {
                kind: PlaceKind::Venue(kind),
                x: r.range_f(0.0, side_km) as f32,
                y: r.range_f(0.0, side_km) as f32,
                // Zipf with exponent 1 over a random rank.
                popularity: (1.0 / (1.0 + r.below(venue_count as u64) as f64)) as f32,
            });
        }
        let cells = ((venue_count as f64 / 16.0).sqrt().floor() as usize).max(1);
        let mut cell_venues = vec![(Vec::new(), Vec::new()); cells * cells];
        let mut population = Population {
            agents,
            households,
            places,
            occupation_edges,
            venues: Vec::new(),
            side_km,
            cells,
            cell_venues: Vec::new(),
        };
        for v in &venues {
            let place = &population.places[*v as usize];
            let cell = population.cell_of(place.x, place.y);
            let (list, cumulative) = &mut cell_venues[cell];
            let total = cumulative.last().copied().unwrap_or(0.0);
            list.push(*v);
            cumulative.push(total + f64::from(place.popularity));
        }
        population.venues = venues;
        population.cell_venues = cell_venues;
        population
    }

    fn cell_of(&self, x: f32, y: f32) -> usize {
        let f = |v: f32| {
            ((f64::from(v) / self.side_km * self.cells as f64) as usize).min(self.cells - 1)
        };
        f(y) * self.cells + f(x)
    }

    /// A venue near household `household`, drawn by popularity (from the household's grid
    /// cell, or from anywhere when that cell has none).
    pub(crate) fn venue_near(&self, household: u32, rng: &mut Stream) -> u32 {
        let h = &self.households[household as usize];
        let (list, cumulative) = &self.cell_venues[self.cell_of(h.x, h.y)];
        if list.is_empty() {
            return self.venues[rng.below(self.venues.len() as u64) as usize];
        }
        list[rng.pick_cumulative(cumulative)]
    }

    /// Number of app users.
    pub fn app_users(&self) -> usize {
        self.agents.iter().filter(|a| a.app).count()
    }
}

/// A Watts–Strogatz small world on `n` nodes with mean degree about `degree` and rewiring
/// probability `rewire`, as OpenABM builds its occupation networks. A place smaller than
/// the degree is a complete graph.
pub(crate) fn small_world(
    n: usize,
    degree: f64,
    rewire: f64,
    rng: &mut Stream,
) -> Vec<(usize, usize)> {
    let mut edges = HashSet::new();
    if n < 2 {
        return Vec::new();
    }
    let half = ((degree / 2.0).round() as usize).max(1);
    if 2 * half >= n - 1 {
        let mut all = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                all.push((a, b));
            }
        }
        return all;
    }
    let mut out = Vec::with_capacity(n * half);
    for a in 0..n {
        for k in 1..=half {
            let mut b = (a + k) % n;
            if rng.chance(rewire) {
                let candidate = rng.below(n as u64) as usize;
                if candidate != a {
                    b = candidate;
                }
            }
            let edge = (a.min(b), a.max(b));
            if edges.insert(edge) {
                out.push(edge);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn households_ages_and_uptake_follow_the_scenario() {
        let scenario = Scenario {
            agents: 20_000,
            ..Scenario::default()
        };
        let pop = Population::build(&scenario);
        assert_eq!(pop.agents.len(), 20_000);
        let sizes: Vec<usize> = pop.households.iter().map(|h| h.members.len()).collect();
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        // Census shares give a mean household of 2.3 people.
        assert!((2.1..2.5).contains(&mean), "{mean}");
        let share = |age| {
            pop.agents.iter().filter(|a| a.age == age).count() as f64 / pop.agents.len() as f64
        };
        assert!((0.1..0.35).contains(&share(AgeGroup::Child)));
        assert!((0.05..0.25).contains(&share(AgeGroup::Elderly)));
        let uptake = pop.app_users() as f64 / 20_000.0;
        assert!((uptake - 0.6).abs() < 0.02, "{uptake}");
        for (i, h) in pop.households.iter().enumerate() {
            for m in h.members.clone() {
                assert_eq!(pop.agents[m as usize].household, i as u32);
            }
        }
    }

    #[test]
    fn occupation_networks_have_the_mean_degree_and_stay_inside_places() {
        let pop = Population::build(&Scenario {
            agents: 20_000,
            ..Scenario::default()
        });
        let mut degree = vec![0u32; pop.agents.len()];
        for e in &pop.occupation_edges {
            assert_ne!(e.a, e.b);
            assert_eq!(pop.agents[e.a as usize].occupation, Some(e.place));
            assert_eq!(pop.agents[e.b as usize].occupation, Some(e.place));
            degree[e.a as usize] += 1;
            degree[e.b as usize] += 1;
        }
        // Adults in workplaces: 7 daily interactions at a daily fraction of 0.5 → degree
        // about 14 (less in workplaces smaller than that).
        let adults: Vec<u32> = pop
            .agents
            .iter()
            .zip(&degree)
            .filter(|(a, _)| a.age == AgeGroup::Adult && a.occupation.is_some())
            .map(|(_, d)| *d)
            .collect();
        let mean = f64::from(adults.iter().sum::<u32>()) / adults.len() as f64;
        assert!((9.0..15.0).contains(&mean), "{mean}");
        let venues_in_cells: usize = pop.cell_venues.iter().map(|(v, _)| v.len()).sum();
        assert_eq!(venues_in_cells, pop.venues.len());
    }

    #[test]
    fn small_world_is_a_ring_without_rewiring() {
        let mut rng = Stream::new(1, Domain::Population, &[]);
        let edges = small_world(10, 4.0, 0.0, &mut rng);
        assert_eq!(edges.len(), 20);
        assert!(edges.contains(&(0, 1)) && edges.contains(&(0, 2)) && edges.contains(&(1, 9)));
        assert_eq!(small_world(3, 4.0, 0.0, &mut rng).len(), 3);
    }
}
