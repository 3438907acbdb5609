//! The run: days of contact episodes, infection, phones broadcasting and hearing each other
//! interval by interval, uploads through the authority and node, batches, syncs, sniffers.
//!
//! Every interval has four phases: serial uploads and batch cuts; every receiver's scans of
//! its peers (in parallel; radio draws only, no phone state); every phone that was heard (by
//! a phone or a sniffer) advertises (in parallel); every receiver hears what its scans
//! caught, in time order (in parallel, one receiver per task). Once an hour every phone runs its timers (syncs
//! included) in parallel against the node's published batches. Each phase's results are
//! merged in a fixed order and every draw is keyed by what it is for, so the thread count
//! changes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ephemera_proto::{DayNumber, UnixTime};
use rayon::prelude::*;

use super::bystanders;
use super::contacts::{self, Episode};
use super::epidemic::Epidemic;
use super::error::SimError;
use super::federation::Federation;
use super::interventions::Interventions;
use super::phone::{ClientPhone, Payloads, PhoneAdapter, client_config};
use super::population::Population;
use super::radio::RadioModel;
use super::rng::{Domain, Stream, seed32};
use super::scenario::{PetPayload, Scenario, SchemeName, SnifferPlacement};

/// Seconds in a day.
pub(crate) const DAY: u32 = 86_400;
/// Seconds in an interval.
pub(crate) const INTERVAL: u32 = 600;
/// Sentinel for "no phone".
const NO_PHONE: u32 = u32::MAX;

/// One reception by a receiver: scan time (seconds after midnight), sender, `pet` slice
/// index (4: the whole payload) and RSSI (as `u8`).
type Heard = (u32, u32, u8, u8);

/// The radio side of scans, shared by the run and the threshold sweep so both see the
/// very same samples.
#[derive(Copy, Clone)]
pub(crate) struct Air<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) pop: &'a Population,
    pub(crate) model: RadioModel<'a>,
}

/// One scan of one sender by one receiver.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Scan {
    /// Attenuation (dB).
    pub(crate) attenuation: f64,
    /// Whether anything was received.
    pub(crate) received: bool,
    /// `pet` slices: indices received, in order of first reception.
    pub(crate) slices: [u8; 4],
    /// How many of `slices` are set.
    pub(crate) slice_count: u8,
}

impl Air<'_> {
    /// The receiver's scan period and phase on `day` (seconds).
    pub(crate) fn schedule(&self, day: u32, receiver: u32) -> (u32, u32) {
        let s = &self.scenario.scanning;
        let mut rng = Stream::new(
            self.scenario.seed,
            Domain::Schedule,
            &[u64::from(day), u64::from(receiver)],
        );
        let period =
            s.period_min_s + rng.below(u64::from(s.period_max_s - s.period_min_s + 1)) as u32;
        (period, rng.below(u64::from(period)) as u32)
    }

    /// Scan times of `receiver` in `[from, to)` (seconds after midnight).
    pub(crate) fn scan_times(
        &self,
        day: u32,
        receiver: u32,
        from: u32,
        to: u32,
    ) -> impl Iterator<Item = u32> {
        let (period, phase) = self.schedule(day, receiver);
        let first = if from <= phase {
            phase
        } else {
            phase + (from - phase).div_ceil(period) * period
        };
        (0..)
            .map(move |k| first + k * period)
            .take_while(move |t| *t < to)
    }

    /// One scan at `t` of episode `index` of `day`, in direction `dir` (0: `a` hears `b`,
    /// 1: `b` hears `a`).
    pub(crate) fn scan(&self, day: u32, index: u32, ep: &Episode, dir: u8, t: u32) -> Scan {
        let (receiver, sender) = if dir == 0 { (ep.a, ep.b) } else { (ep.b, ep.a) };
        let seed = self.scenario.seed;
        let key = [u64::from(day), u64::from(index), u64::from(dir)];
        let episode_term = self
            .model
            .episode_term(ep.env, &mut Stream::new(seed, Domain::EpisodeRadio, &key));
        let mut rng = Stream::new(seed, Domain::Scan, &[key[0], key[1], key[2], u64::from(t)]);
        let attenuation = self
            .model
            .mean_attenuation(f64::from(ep.distance_m), ep.env)
            + f64::from(self.pop.agents[sender as usize].tx_offset_db)
            + f64::from(self.pop.agents[receiver as usize].rx_offset_db)
            + episode_term
            + self.model.scan_term(rng.normal());
        let p = self.model.advert_probability(attenuation);
        let n = self.scenario.scanning.adverts_per_scan;
        let mut scan = Scan {
            attenuation,
            received: false,
            slices: [0; 4],
            slice_count: 0,
        };
        let slices = self.scenario.scheme == SchemeName::Pet
            && self.scenario.scanning.pet_payload == PetPayload::Slices;
        if slices {
            let first = rng.below(4) as u32;
            for k in 0..n {
                if rng.chance(p) {
                    let index = ((first + k) % 4) as u8;
                    if !scan.slices[..usize::from(scan.slice_count)].contains(&index) {
                        scan.slices[usize::from(scan.slice_count)] = index;
                        scan.slice_count += 1;
                    }
                }
            }
            scan.received = scan.slice_count > 0;
        } else {
            scan.received = rng.uniform() >= (1.0 - p).powi(n as i32);
        }
        scan
    }
}

/// What one sniffer logged: a broadcast heard at its place.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SniffRecord {
    /// The sniffer's place.
    pub place: u32,
    /// The interval number.
    pub interval: u32,
    /// The payload's identity: the RPI (gaen, first 16 bytes) or the whole key (`pet`).
    pub id: [u8; 32],
    /// Whose phone it was (ground truth for scoring; the attack never reads it).
    pub agent: u32,
}

/// One day's counts.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DayStats {
    /// Day index.
    pub day: u32,
    /// Contact episodes.
    pub episodes: u64,
    /// Episodes between two app users.
    pub app_episodes: u64,
    /// New infections.
    pub new_infections: u64,
    /// Infected so far.
    pub cumulative_infected: u64,
    /// Positive results.
    pub positives: u64,
    /// Uploads accepted.
    pub uploads: u64,
    /// New (person, exposure day) notifications.
    pub notifications: u64,
    /// Sightings handed to phones.
    pub sightings: u64,
    /// Advertisements computed.
    pub advertisements: u64,
    /// Sniffer records.
    pub sniffed: u64,
}

/// Everything a run produced, for metrics and output.
pub struct RawRun {
    /// The population.
    pub pop: Population,
    /// The epidemic.
    pub epidemic: Epidemic,
    /// The authorities' nodes.
    pub federation: Federation,
    /// Agent → phone index.
    pub phone_of: Vec<u32>,
    /// The phones.
    pub phones: Vec<ClientPhone>,
    /// Per day: all episodes (for the sweep).
    pub episodes: Vec<Vec<Episode>>,
    /// Sniffer places.
    pub sniffers: Vec<u32>,
    /// Sniffer log.
    pub sniffed: Vec<SniffRecord>,
    /// Daily counts.
    pub daily: Vec<DayStats>,
    /// Unix time of the first midnight.
    pub t0: u64,
    /// Who stayed home and what tracing set off, when the scenario has interventions.
    pub interventions: Option<Interventions>,
}

fn phone_err(agent: u32) -> impl Fn(String) -> SimError {
    move |message| SimError::Phone { agent, message }
}

/// Runs `scenario`, calling `tick` after each interval.
pub(crate) fn simulate(scenario: &Scenario, tick: &(dyn Fn() + Sync)) -> Result<RawRun, SimError> {
    let pop = Population::build(scenario);
    let mut epidemic = Epidemic::seed(&pop, scenario);
    let mut federation = Federation::new(scenario);
    // Each node's phones trust it alone.
    let configs: Vec<Arc<_>> = federation
        .nodes()
        .iter()
        .map(|node| Arc::new(client_config(scenario, node)))
        .collect();
    let seed = scenario.seed;

    let mut phone_of = vec![NO_PHONE; pop.agents.len()];
    let mut phones = Vec::new();
    for (i, agent) in pop.agents.iter().enumerate() {
        if agent.app {
            phone_of[i] = phones.len() as u32;
            let phone = ClientPhone::new(
                Arc::clone(&configs[federation.home_of(i as u32) as usize]),
                seed32(seed, Domain::Phone, &[i as u64]),
            )
            .map_err(phone_err(i as u32))?;
            phones.push(Mutex::new(phone));
        }
    }

    let agent_of: Vec<u32> = (0..pop.agents.len() as u32)
        .filter(|a| phone_of[*a as usize] != NO_PHONE)
        .collect();
    let sniffers = place_sniffers(&pop, scenario);
    let sniffer_set: HashMap<u32, ()> = sniffers.iter().map(|p| (*p, ())).collect();
    let air = Air {
        scenario,
        pop: &pop,
        model: RadioModel::new(&scenario.radio),
    };
    let t0 = u64::from(scenario.first_day) * u64::from(DAY);

    let mut episodes_by_day = Vec::new();
    let mut sniffed = Vec::new();
    let mut daily = Vec::new();
    let mut reported: HashMap<u32, ()> = HashMap::new();
    let mut interventions = scenario
        .interventions
        .as_ref()
        .map(|c| Interventions::new(c, scenario, &pop));
    // Per phone: how many of its notifications the interventions have seen.
    let mut notifications_seen = vec![0usize; phones.len()];

    for day in 0..scenario.days {
        let generated = contacts::generate(&pop, scenario, day);
        let blocked = interventions
            .as_ref()
            .map_or_else(Vec::new, |i| i.blocked(&generated, day));
        let new_infections = epidemic.transmit(&pop, scenario, day, &generated, &blocked);
        // What happened: episodes of people at home (outside the household) did not.
        let mut episodes: Vec<Episode> = if blocked.is_empty() {
            generated
        } else {
            generated
                .into_iter()
                .zip(&blocked)
                .filter(|(_, b)| !**b)
                .map(|(e, _)| e)
                .collect()
        };
        // Bystanders join after the transmissions (they do not transmit), after the
        // contacts so that those keep their indices, and so their radio draws.
        if let Some(config) = &scenario.bystanders {
            let is_out = |a: u32| interventions.as_ref().is_none_or(|i| !i.at_home(a, day));
            let heard_too = bystanders::generate(&pop, scenario, config, day, &episodes, is_out);
            episodes.extend(heard_too);
        }
        let is_app = |a: u32| phone_of[a as usize] != NO_PHONE;
        let mut stats = DayStats {
            day,
            episodes: episodes.len() as u64,
            new_infections: new_infections as u64,
            ..DayStats::default()
        };

        stats.app_episodes = episodes
            .iter()
            .filter(|e| is_app(e.a) && is_app(e.b))
            .count() as u64;

        // Which episodes each interval needs: between two phones, or at a sniffer's place.
        let mut radio_at: Vec<Vec<u32>> = vec![Vec::new(); 144];
        let mut sniff_at: Vec<Vec<u32>> = vec![Vec::new(); 144];
        for (k, ep) in episodes.iter().enumerate() {
            let both = is_app(ep.a) && is_app(ep.b);
            let sniffed_here =
                sniffer_set.contains_key(&ep.place) && (is_app(ep.a) || is_app(ep.b));
            if !both && !sniffed_here {
                continue;
            }
            for i in ep.start / INTERVAL..=(ep.end() - 1) / INTERVAL {
                if both {
                    radio_at[i as usize].push(k as u32);
                }
                if sniffed_here {
                    sniff_at[i as usize].push(k as u32);
                }
            }
        }

        // Uploads due today, in time order.
        let day_start = i64::from(day) * i64::from(DAY);
        let mut due: Vec<(i64, u32)> = epidemic
            .courses
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().and_then(|c| c.upload_at).map(|t| (t, i as u32)))
            .filter(|(t, _)| (day_start..day_start + i64::from(DAY)).contains(t))
            .chain(
                interventions
                    .iter()
                    .flat_map(|i| i.uploads_in(day_start, day_start + i64::from(DAY))),
            )
            .collect();
        due.sort();
        stats.positives = epidemic
            .courses
            .iter()
            .filter_map(|c| c.as_ref().and_then(|c| c.result_at))
            .filter(|t| (day_start..day_start + i64::from(DAY)).contains(t))
            .count() as u64
            + interventions
                .as_ref()
                .map_or(0, |i| i.positives_in(day_start, day_start + i64::from(DAY)));
        let notified_before: usize = phones
            .iter()
            .map(|p| p.lock().expect("not poisoned").notified.len())
            .sum();

        for i in 0..144u32 {
            let start = i * INTERVAL;
            let now = UnixTime(t0 + u64::from(day) * u64::from(DAY) + u64::from(start));

            // Serial: uploads in this interval, then the batch cut at a boundary.
            for (t, agent) in due
                .iter()
                .filter(|(t, _)| (*t - day_start) / i64::from(INTERVAL) == i64::from(i))
            {
                if reported.contains_key(agent) {
                    continue;
                }
                reported.insert(*agent, ());
                // A false positive on tracing has no course and no onset; a contact tested
                // before their symptoms began reports none yet.
                let onset_at = epidemic.courses[*agent as usize]
                    .as_ref()
                    .and_then(|c| c.onset_at)
                    .filter(|o| o.div_euclid(i64::from(DAY)) <= t.div_euclid(i64::from(DAY)));
                let onset = onset_at.map(|o| {
                    DayNumber((t0 as i64 / i64::from(DAY) + o.div_euclid(i64::from(DAY))) as u32)
                });
                let home = federation.home_mut(*agent);
                let code = home.issue_code(now, onset)?;
                let test_day = now.day();
                let phone = &phones[phone_of[*agent as usize] as usize];
                let outcome = phone
                    .lock()
                    .expect("not poisoned")
                    .report(now, &code, onset, test_day, home)
                    .map_err(phone_err(*agent))?;
                if let Some(r) = outcome {
                    stats.uploads += 1;
                    federation.uploads.push(super::server::UploadRecord {
                        agent: *agent,
                        at: now,
                        first_day: r.preview.first_day,
                        contents: r.contents,
                    });
                }
            }
            // Relays due arrive; each node's core cuts at its own boundaries (every
            // `batch_hours`).
            federation.advance(now)?;

            // Sniffers at their places: who is in range (the payloads come below).
            let mut in_range: Vec<(u32, u32)> = Vec::new();
            for k in &sniff_at[i as usize] {
                let ep = &episodes[*k as usize];
                for agent in [ep.a, ep.b].into_iter().filter(|a| is_app(*a)) {
                    let mut rng = Stream::new(
                        seed,
                        Domain::Sniffer,
                        &[
                            u64::from(day),
                            u64::from(*k),
                            u64::from(agent),
                            u64::from(i),
                        ],
                    );
                    let d = rng.range_f(1.0, scenario.attack.range_m.max(1.0));
                    let a = air.model.mean_attenuation(d, ep.env)
                        + f64::from(pop.agents[agent as usize].tx_offset_db)
                        + air.model.episode_term(ep.env, &mut rng);
                    if a <= air.model.floor_db() {
                        in_range.push((ep.place, agent));
                    }
                }
            }
            in_range.sort_unstable();
            in_range.dedup();

            // Phase A: each receiver's scans of its peers, in time order (scans depend only
            // on the episode and time, never on what a phone holds).
            let mut entries: Vec<(u32, u32, u8)> = Vec::new();
            for k in &radio_at[i as usize] {
                let ep = &episodes[*k as usize];
                entries.push((ep.a, *k, 0));
                entries.push((ep.b, *k, 1));
            }
            entries.sort_unstable();
            let groups: Vec<&[(u32, u32, u8)]> = entries.chunk_by(|x, y| x.0 == y.0).collect();
            let interval_end = start + INTERVAL;
            let heard: Vec<(u32, Vec<Heard>)> = groups
                .par_iter()
                .map(|group| {
                    let receiver = group[0].0;
                    let mut heard: Vec<Heard> = Vec::new();
                    for (_, k, dir) in group.iter() {
                        let ep = &episodes[*k as usize];
                        let sender = if *dir == 0 { ep.b } else { ep.a };
                        let from = ep.start.max(start);
                        let to = ep.end().min(interval_end);
                        for t in air.scan_times(day, receiver, from, to) {
                            let scan = air.scan(day, *k, ep, *dir, t);
                            if !scan.received {
                                continue;
                            }
                            let rssi = air.model.rssi(scan.attenuation) as u8;
                            if scan.slice_count == 0 {
                                heard.push((t, sender, 4, rssi));
                            }
                            for s in &scan.slices[..usize::from(scan.slice_count)] {
                                heard.push((t, sender, *s, rssi));
                            }
                        }
                    }
                    // Stable: slices of one scan keep their reception order.
                    heard.sort_by_key(|h| (h.0, h.1));
                    (receiver, heard)
                })
                .filter(|(_, heard)| !heard.is_empty())
                .collect();

            // Phase B: every phone that someone hears now advertises. Phones in range of no
            // receiver skip the call: what they would broadcast reaches no one, and their
            // key of the interval is derived when they need it.
            let mut senders: Vec<u32> = heard
                .iter()
                .flat_map(|(_, h)| h.iter().map(|x| x.1))
                .chain(in_range.iter().map(|(_, agent)| *agent))
                .collect();
            senders.sort_unstable();
            senders.dedup();
            let payloads: Vec<Payloads> = senders
                .par_iter()
                .map(|a| {
                    phones[phone_of[*a as usize] as usize]
                        .lock()
                        .expect("not poisoned")
                        .advertise(now)
                        .map_err(phone_err(*a))
                })
                .collect::<Result<_, _>>()?;
            stats.advertisements += senders.len() as u64;
            let payload_of =
                |a: u32| &payloads[senders.binary_search(&a).expect("sender advertised")];

            // What the sniffers logged.
            for (place, agent) in in_range {
                let mut id = [0u8; 32];
                let full = &payload_of(agent).full;
                let n = full.len().min(32);
                id[..n].copy_from_slice(&full[..n]);
                sniffed.push(SniffRecord {
                    place,
                    interval: now.interval().0,
                    id,
                    agent,
                });
                stats.sniffed += 1;
            }

            // Phase C: each receiver hears what its scans caught.
            let sightings: u64 = heard
                .par_iter()
                .map(|(receiver, heard)| -> Result<u64, SimError> {
                    let mut phone = phones[phone_of[*receiver as usize] as usize]
                        .lock()
                        .expect("not poisoned");
                    for (t, sender, slice, rssi) in heard {
                        let p = payload_of(*sender);
                        let payload = if *slice == 4 {
                            &p.full
                        } else {
                            &p.slices[usize::from(*slice)]
                        };
                        let at = UnixTime(t0 + u64::from(day) * u64::from(DAY) + u64::from(*t));
                        phone
                            .hear(at, payload, *rssi as i8)
                            .map_err(phone_err(*receiver))?;
                    }
                    Ok(heard.len() as u64)
                })
                .try_reduce(|| 0, |a, b| Ok(a + b))?;
            stats.sightings += sightings;

            // Hourly: every phone's timers (encounter closing, decoys, syncs).
            if (i + 1) % 6 == 0 {
                let at = UnixTime(now.0 + u64::from(INTERVAL));
                let federation = &federation;
                phones.par_iter().enumerate().try_for_each(|(p, phone)| {
                    phone
                        .lock()
                        .expect("not poisoned")
                        .timers(at, federation.home(agent_of[p]))
                        .map_err(|m| SimError::Phone {
                            agent: agent_of[p],
                            message: m,
                        })
                })?;
            }
            tick();
        }
        let notified_after: usize = phones
            .iter()
            .map(|p| p.lock().expect("not poisoned").notified.len())
            .sum();
        stats.notifications = (notified_after - notified_before) as u64;
        if let Some(interventions) = interventions.as_mut() {
            let mut notified: Vec<u32> = Vec::new();
            for (p, phone) in phones.iter().enumerate() {
                let count = phone.lock().expect("not poisoned").notified.len();
                if count > notifications_seen[p] {
                    notified.push(agent_of[p]);
                    notifications_seen[p] = count;
                }
            }
            interventions.end_of_day(day, &pop, &epidemic, &notified);
        }
        stats.cumulative_infected = epidemic.total_infected() as u64;
        daily.push(stats);
        episodes_by_day.push(episodes);
    }

    // After the last day: a last batch, and every phone syncs once more, so uploads of the
    // last hours count like the others.
    let end = UnixTime(t0 + u64::from(scenario.days) * u64::from(DAY));
    federation.advance(end)?;
    let federation_ref = &federation;
    phones.par_iter().enumerate().try_for_each(|(p, phone)| {
        phone
            .lock()
            .expect("not poisoned")
            .sync_now(end, federation_ref.home(agent_of[p]))
            .map_err(|m| SimError::Phone {
                agent: agent_of[p],
                message: m,
            })
    })?;

    let phones = phones
        .into_iter()
        .map(|p| p.into_inner().expect("not poisoned"))
        .collect();
    Ok(RawRun {
        pop,
        epidemic,
        federation,
        phone_of,
        phones,
        episodes: episodes_by_day,
        sniffers,
        sniffed,
        daily,
        t0,
        interventions,
    })
}

/// The sniffers' places: the busiest venues, or venues at random.
fn place_sniffers(pop: &Population, scenario: &Scenario) -> Vec<u32> {
    let mut venues = pop.venues.clone();
    match scenario.attack.placement {
        SnifferPlacement::Popular => venues.sort_by(|a, b| {
            pop.places[*b as usize]
                .popularity
                .total_cmp(&pop.places[*a as usize].popularity)
                .then(a.cmp(b))
        }),
        SnifferPlacement::Random => {
            Stream::new(scenario.seed, Domain::Sniffer, &[u64::MAX]).shuffle(&mut venues)
        }
    }
    venues.truncate(scenario.attack.sniffers as usize);
    venues.sort_unstable();
    venues
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ephemera_node_core::Policy;
    use ephemera_proto::batch::{SignedBatch, TrustedNodes};
    use ephemera_proto::upload::key_publishable_at;
    use ephemera_proto::{ReportContents, UnixTime};

    use super::{RawRun, simulate};
    use crate::scenario::Topology;
    use crate::server::Server;
    use crate::{Scenario, SchemeName};

    /// The simulated node is the real core: a positive's GAEN keys are published only once
    /// their embargo (validity end + 2 h) has passed, never at the next boundary after
    /// the upload, and every accepted key is published by the end of the run.
    #[test]
    fn an_embargoed_key_is_not_published_early() {
        let mut scenario = Scenario::tiny(400, 4, 11, SchemeName::Gaen).with_eager_testing(0.06);
        scenario.node.batch_hours = 1;
        let run = simulate(&scenario, &|| {}).unwrap();
        assert_embargo_held(&run, run.federation.first());
    }

    /// Three authorities' nodes in a chain: every upload reaches every node once, through
    /// the core's federation intake (two hops for the ends), each node holds the embargo
    /// in its own signed batches, and phones are warned by reports made two nodes away.
    #[test]
    fn federated_nodes_relay_every_upload_and_hold_the_embargo() {
        let mut scenario = Scenario::tiny(900, 4, 11, SchemeName::Gaen).with_eager_testing(0.06);
        scenario.node.batch_hours = 1;
        scenario.node.nodes = 3;
        scenario.node.topology = Topology::Chain;
        let run = simulate(&scenario, &|| {}).unwrap();
        let federation = &run.federation;
        assert!(
            federation
                .uploads
                .iter()
                .any(|u| federation.home_of(u.agent) == 0)
        );
        assert!(
            federation
                .uploads
                .iter()
                .any(|u| federation.home_of(u.agent) == 2)
        );
        for (k, node) in federation.nodes().iter().enumerate() {
            let elsewhere = federation
                .uploads
                .iter()
                .filter(|u| federation.home_of(u.agent) as usize != k)
                .count() as u64;
            assert_eq!(federation.relayed_in[k], elsewhere, "node {k}");
            assert_embargo_held(&run, node);
        }
        let attack = crate::attack::attack(&scenario, &run);
        let summary = crate::metrics::score(&scenario, &run, attack).summary;
        let by_hops = summary.federation.expect("a federated run").delay_by_hops;
        assert!(by_hops.contains_key(&0), "{by_hops:?}");
        assert!(by_hops.keys().any(|hops| *hops >= 1), "{by_hops:?}");
    }

    /// Every accepted key of `run` is in `node`'s batches (verified under its key alone), none
    /// before its embargo ended, or its release falls after the node's last cut.
    fn assert_embargo_held(run: &RawRun, node: &Server) {
        let trusted = TrustedNodes::new().with(node.node_key());
        let mut first_published: HashMap<[u8; 16], UnixTime> = HashMap::new();
        for batch in node.batches() {
            let (_, contents) = SignedBatch::verify(&batch.bytes, &trusted).unwrap();
            for key in contents.diagnosis_keys {
                first_published
                    .entry(*key.key.as_bytes())
                    .or_insert(contents.created_at);
            }
        }
        let last_cut = node.batches().last().unwrap().entry.created_at;
        let mut embargoed_past_upload = 0;
        let mut checked = 0;
        for upload in &run.federation.uploads {
            let ReportContents::Gaen(keys) = &upload.contents else {
                panic!("a gaen run uploads keys");
            };
            for key in keys {
                let publishable = key_publishable_at(key);
                match first_published.get(key.key.as_bytes()) {
                    Some(at) => assert!(*at >= publishable, "published {at:?} < {publishable:?}"),
                    // Released after the last cut of the run: its release slot lies within
                    // the release spread after the boundary that follows its embargo and
                    // its upload.
                    None => assert!(
                        publishable
                            .max(upload.at)
                            .plus_seconds(Policy::default().release_spread_seconds + 3600)
                            > last_cut
                    ),
                }
                checked += 1;
                if publishable > upload.at {
                    embargoed_past_upload += 1;
                }
            }
        }
        assert!(checked > 0, "the scenario must upload keys");
        assert!(
            embargoed_past_upload > 0,
            "some uploaded key (today's, released same-day) must still be under embargo"
        );
    }
}
