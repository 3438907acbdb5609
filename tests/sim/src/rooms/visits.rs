//! The town's venues and who visits them when: shops, offices (the population's
//! workplaces, split into rooms), restaurants and transport lines (one vehicle per line
//! and headway slot), and the cases with their traced days.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use super::RoomsScenario;
use crate::contacts::is_weekend;
use crate::population::{PlaceKind, Population};
use crate::radio::Environment;
use crate::rng::{Domain, Stream};
use crate::scenario::Scenario;

const DAY: u32 = 86_400;

/// What kind of room a venue is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// A shop.
    Shop,
    /// An office (a workplace; its rooms hold `office_room_people` each).
    Office,
    /// A restaurant, café or bar.
    Restaurant,
    /// A bus or tram line (its rooms are the vehicles).
    Transport,
}

impl RoomKind {
    /// Every kind.
    pub const ALL: [RoomKind; 4] = [
        RoomKind::Shop,
        RoomKind::Office,
        RoomKind::Restaurant,
        RoomKind::Transport,
    ];

    /// The radio environment of the main simulator this room is like.
    pub fn environment(self) -> Environment {
        match self {
            RoomKind::Shop => Environment::Shop,
            RoomKind::Office => Environment::Work,
            RoomKind::Restaurant => Environment::Social,
            RoomKind::Transport => Environment::Transit,
        }
    }
}

/// One stay of one person in one room.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Visit {
    /// Who.
    pub agent: u32,
    /// The venue (index into [`Town::venues`]).
    pub venue: u32,
    /// The room within the venue: an office's room, a line's departure slot; 0 otherwise.
    pub room: u32,
    /// Simulated day.
    pub day: u32,
    /// Arrival, seconds after the day's midnight.
    pub start: u32,
    /// Departure, seconds after the day's midnight.
    pub end: u32,
    /// Position in the room (m across its width).
    pub x: f32,
    /// Position in the room (m along its length).
    pub y: f32,
    /// Uniform draw: the visit is checked in when it is below the check-in share (so the
    /// visits checked in at one share are among those at any higher share).
    pub check_in: f64,
}

impl Visit {
    /// Seconds this visit and `other` are in the same room together.
    pub fn overlap(&self, other: &Visit) -> u32 {
        if self.venue != other.venue || self.room != other.room || self.day != other.day {
            return 0;
        }
        self.end
            .min(other.end)
            .saturating_sub(self.start.max(other.start))
    }
}

/// A case: diagnosed on `diagnosed_day`, traced over the `trace_days` before it.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Case {
    /// Who.
    pub agent: u32,
    /// Day of diagnosis; the case stays home from then on.
    pub diagnosed_day: u32,
    /// When its traces are handed to the publisher, seconds after the first midnight.
    pub reported_at: u64,
}

/// The town: population, venues, every visit and the cases.
pub struct Town {
    /// The population (app uptake, radio calibration of each phone).
    pub population: Population,
    /// The kind of each venue.
    pub venues: Vec<RoomKind>,
    /// Every visit, by agent then day.
    pub visits: Vec<Visit>,
    /// Visit indices per (venue, day).
    pub by_venue_day: HashMap<(u32, u32), Vec<u32>>,
    /// Visit indices per agent (a range into `visits`).
    pub by_agent: Vec<std::ops::Range<u32>>,
    /// The cases, by agent.
    pub cases: Vec<Case>,
}

/// Venues of one kind with their cumulative Zipf popularity.
struct Pick {
    first: u32,
    cumulative: Vec<f64>,
}

impl Pick {
    fn new(first: u32, count: usize, rng: &mut Stream) -> Pick {
        let mut total = 0.0;
        let cumulative = (0..count)
            .map(|_| {
                // Zipf with exponent 1 over a random rank, as the main simulator's venues.
                total += 1.0 / (1.0 + rng.below(count as u64) as f64);
                total
            })
            .collect();
        Pick { first, cumulative }
    }

    fn draw(&self, rng: &mut Stream) -> u32 {
        self.first + rng.pick_cumulative(&self.cumulative) as u32
    }
}

impl Town {
    /// Builds the town of `s` (deterministic in its seed, whatever the thread count).
    pub fn build(s: &RoomsScenario) -> Town {
        let mut base = Scenario {
            agents: s.agents,
            seed: s.seed,
            first_day: s.first_day,
            ..Scenario::default()
        };
        base.population.app_uptake = s.app_uptake;
        base.radio = s.radio.clone();
        let population = Population::build(&base);
        let mut rng = Stream::new(s.seed, Domain::Rooms, &[0]);
        let mut venues = Vec::new();
        let per_1000 = |rate: f64| ((f64::from(s.agents) * rate / 1000.0).round() as usize).max(1);
        let mut add = |kind: RoomKind, count: usize, rng: &mut Stream| {
            let pick = Pick::new(venues.len() as u32, count, rng);
            venues.extend(std::iter::repeat_n(kind, count));
            pick
        };
        let shops = add(RoomKind::Shop, per_1000(s.shops_per_1000), &mut rng);
        let restaurants = add(
            RoomKind::Restaurant,
            per_1000(s.restaurants_per_1000),
            &mut rng,
        );
        let lines = add(RoomKind::Transport, per_1000(s.lines_per_1000), &mut rng);
        // Offices: one venue per workplace; members fill its rooms in turn.
        let mut office_of_place: HashMap<u32, (u32, u32)> = HashMap::new();
        let mut office = vec![None; population.agents.len()];
        for (i, agent) in population.agents.iter().enumerate() {
            let Some(place) = agent.occupation else {
                continue;
            };
            if population.places[place as usize].kind != PlaceKind::Workplace {
                continue;
            }
            let entry = office_of_place.entry(place).or_insert_with(|| {
                venues.push(RoomKind::Office);
                (venues.len() as u32 - 1, 0)
            });
            office[i] = Some((entry.0, entry.1 / s.office_room_people));
            entry.1 += 1;
        }
        let ctx = Ctx {
            s,
            shops,
            restaurants,
            lines,
        };
        let per_agent: Vec<Vec<Visit>> = (0..population.agents.len())
            .into_par_iter()
            .map(|i| ctx.agent_visits(i as u32, office[i]))
            .collect();
        let mut visits = Vec::with_capacity(per_agent.iter().map(Vec::len).sum());
        let mut by_agent = Vec::with_capacity(per_agent.len());
        for list in per_agent {
            let start = visits.len() as u32;
            visits.extend(list);
            by_agent.push(start..visits.len() as u32);
        }
        let mut by_venue_day: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
        for (i, v) in visits.iter().enumerate() {
            by_venue_day
                .entry((v.venue, v.day))
                .or_default()
                .push(i as u32);
        }
        let cases = (0..s.agents)
            .filter_map(|agent| {
                let mut r = Stream::new(s.seed, Domain::Rooms, &[2, u64::from(agent)]);
                let span = s.days - s.trace_days;
                r.chance(s.daily_case_rate * f64::from(span)).then(|| {
                    let diagnosed_day = s.trace_days + r.below(u64::from(span)) as u32;
                    Case {
                        agent,
                        diagnosed_day,
                        reported_at: u64::from(diagnosed_day) * u64::from(DAY)
                            + r.below(u64::from(DAY)),
                    }
                })
            })
            .collect();
        Town {
            population,
            venues,
            visits,
            by_venue_day,
            by_agent,
            cases,
        }
    }

    /// The visits of `case` on its traced days.
    pub fn traced_visits(&self, s: &RoomsScenario, case: &Case) -> impl Iterator<Item = &Visit> {
        let first = case.diagnosed_day - s.trace_days;
        let range = self.by_agent[case.agent as usize].clone();
        self.visits[range.start as usize..range.end as usize]
            .iter()
            .filter(move |v| v.day >= first && v.day < case.diagnosed_day)
    }
}

/// What drawing a person's visits needs.
struct Ctx<'a> {
    s: &'a RoomsScenario,
    shops: Pick,
    restaurants: Pick,
    lines: Pick,
}

impl Ctx<'_> {
    /// One person's visits over the run, by day.
    fn agent_visits(&self, agent: u32, office: Option<(u32, u32)>) -> Vec<Visit> {
        let s = self.s;
        let mut out = Vec::new();
        let mut person = Stream::new(s.seed, Domain::Rooms, &[1, u64::from(agent)]);
        let commuter = office.is_some() && person.chance(s.commute_share);
        let home_line = self.lines.draw(&mut person);
        for day in 0..s.days {
            let mut rng = Stream::new(
                s.seed,
                Domain::Rooms,
                &[3, u64::from(agent), u64::from(day)],
            );
            let mut push = |kind: RoomKind, venue, room, start: u32, end: u32, rng: &mut Stream| {
                let air = s.air(kind);
                out.push(Visit {
                    agent,
                    venue,
                    room,
                    day,
                    start,
                    end: end.clamp(start + 60, DAY),
                    x: rng.range_f(0.0, air.width_m) as f32,
                    y: rng.range_f(0.0, air.length_m) as f32,
                    check_in: rng.uniform(),
                });
            };
            let working = !is_weekend(s.first_day + day);
            // Free time starts after the office (shops and restaurants), or in the day.
            let mut free_from = 8 * 3600;
            if let Some((venue, room)) =
                office.filter(|_| working && rng.chance(s.office_attendance))
            {
                let start = (9.0 * 3600.0 + 2700.0 * rng.normal())
                    .clamp(7.0 * 3600.0, 11.0 * 3600.0) as u32;
                let end = start + minutes(&s.office, &mut rng);
                if commuter {
                    let ride = minutes(&s.transport, &mut rng);
                    let board = start.saturating_sub(ride);
                    let slot = board / (s.headway_minutes * 60);
                    push(RoomKind::Transport, home_line, slot, board, start, &mut rng);
                    let ride = minutes(&s.transport, &mut rng);
                    let slot = end / (s.headway_minutes * 60);
                    push(
                        RoomKind::Transport,
                        home_line,
                        slot,
                        end,
                        end + ride,
                        &mut rng,
                    );
                }
                push(RoomKind::Office, venue, room, start, end, &mut rng);
                free_from = end.min(21 * 3600);
            }
            for _ in 0..rng.poisson(s.trips_per_day) {
                let line = self.lines.draw(&mut rng);
                let board = rng.range_f(7.0 * 3600.0, 21.0 * 3600.0) as u32;
                let ride = minutes(&s.transport, &mut rng);
                let slot = board / (s.headway_minutes * 60);
                push(
                    RoomKind::Transport,
                    line,
                    slot,
                    board,
                    board + ride,
                    &mut rng,
                );
            }
            for _ in 0..rng.poisson(s.shop_visits_per_day) {
                let shop = self.shops.draw(&mut rng);
                let start = rng.range_f(f64::from(free_from), 20.0 * 3600.0) as u32;
                let stay = minutes(&s.shop, &mut rng);
                push(RoomKind::Shop, shop, 0, start, start + stay, &mut rng);
            }
            for _ in 0..rng.poisson(s.restaurant_visits_per_day) {
                let restaurant = self.restaurants.draw(&mut rng);
                // Lunch (12–14 h) on a free day, otherwise dinner (18–21 h).
                let lunch = free_from <= 12 * 3600 && rng.chance(0.5);
                let (from, to): (f64, f64) = if lunch {
                    (12.0, 14.0)
                } else {
                    ((f64::from(free_from) / 3600.0).max(18.0), 21.0)
                };
                let start =
                    rng.range_f(from * 3600.0, (to * 3600.0).max(from * 3600.0 + 60.0)) as u32;
                let stay = minutes(&s.restaurant, &mut rng);
                push(
                    RoomKind::Restaurant,
                    restaurant,
                    0,
                    start,
                    start + stay,
                    &mut rng,
                );
            }
        }
        out
    }
}

/// A visit's length (seconds) drawn from the room's log-normal.
fn minutes(air: &super::RoomAir, rng: &mut Stream) -> u32 {
    (rng.lognormal(air.median_minutes, air.sigma)
        .clamp(1.0, air.max_minutes)
        * 60.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_stay_in_the_day_in_their_rooms_and_repeat_from_the_seed() {
        let s = RoomsScenario {
            agents: 2_000,
            days: 7,
            ..RoomsScenario::default()
        };
        let town = Town::build(&s);
        let again = Town::build(&s);
        assert_eq!(town.visits, again.visits);
        assert_eq!(town.cases, again.cases);
        assert!(!town.visits.is_empty());
        for v in &town.visits {
            assert!(v.start < v.end && v.end <= DAY, "{v:?}");
            let kind = town.venues[v.venue as usize];
            let air = s.air(kind);
            assert!(f64::from(v.x) <= air.width_m && f64::from(v.y) <= air.length_m);
            assert!(v.day < s.days);
            if kind != RoomKind::Office && kind != RoomKind::Transport {
                assert_eq!(v.room, 0);
            }
        }
        // Every kind is visited, and offices only on working days.
        for kind in RoomKind::ALL {
            assert!(
                town.visits
                    .iter()
                    .any(|v| town.venues[v.venue as usize] == kind),
                "{kind:?}"
            );
        }
        assert!(town.visits.iter().all(|v| {
            town.venues[v.venue as usize] != RoomKind::Office || !is_weekend(s.first_day + v.day)
        }));
        // Office rooms hold at most office_room_people each.
        let mut per_room: HashMap<(u32, u32, u32), u32> = HashMap::new();
        for v in town
            .visits
            .iter()
            .filter(|v| town.venues[v.venue as usize] == RoomKind::Office)
        {
            *per_room.entry((v.venue, v.room, v.day)).or_default() += 1;
        }
        assert!(per_room.values().all(|n| *n <= s.office_room_people));
        // Cases are diagnosed after a full traced window.
        assert!(!town.cases.is_empty());
        assert!(
            town.cases
                .iter()
                .all(|c| c.diagnosed_day >= s.trace_days && c.diagnosed_day < s.days)
        );
    }

    #[test]
    fn overlap_is_time_together_in_one_room() {
        let v = |room, start, end| Visit {
            agent: 0,
            venue: 3,
            room,
            day: 1,
            start,
            end,
            x: 0.0,
            y: 0.0,
            check_in: 0.0,
        };
        assert_eq!(v(0, 100, 1000).overlap(&v(0, 400, 2000)), 600);
        assert_eq!(v(0, 100, 1000).overlap(&v(1, 400, 2000)), 0);
        assert_eq!(v(0, 100, 300).overlap(&v(0, 400, 2000)), 0);
    }
}
