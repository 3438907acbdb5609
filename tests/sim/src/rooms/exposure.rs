//! Airborne exposure in shared rooms (Wells–Riley) and who each scheme warns.
//!
//! For every visit a case made on its traced days, every other visit to the same venue
//! that day is a candidate. Per (person, case, day), the *contact*, it sums:
//!
//! - the time in the same room with the case, and the dose `q·p·t / (V·(ACH + k + λ))`
//!   quanta (well mixed, steady state; `k` deposition and `λ` inactivation), whose
//!   infection probability is `1 − exp(−dose)`;
//! - whether the published places name it: the person was at the venue during one of the
//!   case's published hours (whole hours, the whole venue: every room of an office, every
//!   vehicle of a line);
//! - the lowest check-in share at which both visits are checked in and their times
//!   overlap (check-in traces are per room and the phone compares times);
//! - the Bluetooth score: both run the app, and the overlap weighted by the bucket of the
//!   pair's attenuation at their distance in the room (the phone library's thresholds and
//!   weights), summed over the day, must reach `minimum_daily_score`.

use std::collections::HashMap;

use serde::Serialize;

use super::visits::{Town, Visit};
use super::{DEPOSITION_PER_HOUR, INACTIVATION_PER_HOUR, RoomsScenario, round4};
use crate::radio::RadioModel;
use crate::rng::{Domain, Stream};

/// The published-places scheme's name.
pub const PUBLISHED: &str = "published places";
/// The venue check-in scheme's name.
pub const CHECK_IN: &str = "venue check-in";
/// The Bluetooth scheme's name.
pub const BLUETOOTH: &str = "Bluetooth alone";

/// One (person, case, day).
#[derive(Clone, Debug, Default)]
struct Contact {
    /// Seconds in one room with the case.
    shared_seconds: u32,
    /// Wells–Riley dose (quanta).
    dose: f64,
    /// Named by the published places.
    published: bool,
    /// Warned by check-in at any share above this (2.0: never).
    check_in_from: f64,
    /// Bluetooth-weighted seconds.
    bluetooth_seconds: f64,
}

/// Recall and precision of one scheme.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SchemeRecall {
    /// Which scheme.
    pub scheme: &'static str,
    /// Contacts (person, case, day) warned.
    pub warned: u64,
    /// Of them, room-shared exposures.
    pub warned_exposed: u64,
    /// `warned_exposed / exposures`.
    pub recall: f64,
    /// `warned_exposed / warned`.
    pub precision: f64,
    /// Expected infections among warned exposures over expected infections among all
    /// exposures.
    pub risk_recall: f64,
}

/// Every contact of the run, scored once; schemes are read off it.
pub struct Scoring {
    contacts: Vec<Contact>,
    threshold_seconds: u32,
    minimum_bluetooth: f64,
    /// Room-shared exposures.
    pub exposures: u64,
    /// Expected infections over every contact that shared a room.
    pub expected_infections: f64,
}

impl Scoring {
    /// Scores every contact of `town`'s cases.
    pub fn score(s: &RoomsScenario, town: &Town) -> Scoring {
        let radio = RadioModel::new(&s.radio);
        let d = &s.detection;
        let weight = |a: f64| {
            let t = d.attenuation_thresholds_db;
            let bucket = t.iter().position(|b| a <= f64::from(*b)).unwrap_or(3);
            d.attenuation_weights[bucket]
        };
        let agents = &town.population.agents;
        let mut contacts: HashMap<(u32, u32, u32), Contact> = HashMap::new();
        for case in &town.cases {
            for cv in town.traced_visits(s, case) {
                let air = s.air(town.venues[cv.venue as usize]);
                // Published hours: the whole hours the case's visit touches.
                let from = cv.start / 3600 * 3600;
                let until = cv.end.div_ceil(3600) * 3600;
                let removal = air.volume_m3()
                    * (air.air_changes_per_hour + DEPOSITION_PER_HOUR + INACTIVATION_PER_HOUR);
                for &o in &town.by_venue_day[&(cv.venue, cv.day)] {
                    let ov: &Visit = &town.visits[o as usize];
                    if ov.agent == case.agent {
                        continue;
                    }
                    let published = ov.start < until && ov.end > from;
                    let shared = cv.overlap(ov);
                    if !published && shared == 0 {
                        continue;
                    }
                    let c = contacts
                        .entry((ov.agent, case.agent, cv.day))
                        .or_insert_with(|| Contact {
                            check_in_from: 2.0,
                            ..Contact::default()
                        });
                    c.published |= published;
                    if shared == 0 {
                        continue;
                    }
                    c.shared_seconds += shared;
                    let hours = f64::from(shared) / 3600.0;
                    c.dose += air.quanta_per_hour * air.breathing_m3_per_hour * hours / removal;
                    c.check_in_from = c.check_in_from.min(cv.check_in.max(ov.check_in));
                    let (a, b) = (&agents[case.agent as usize], &agents[ov.agent as usize]);
                    if a.app && b.app {
                        let distance = f64::from(cv.x - ov.x).hypot(f64::from(cv.y - ov.y));
                        let env = town.venues[cv.venue as usize].environment();
                        let mut rng = Stream::new(
                            s.seed,
                            Domain::Rooms,
                            &[4, u64::from(cv.agent), u64::from(o)],
                        );
                        let attenuation = radio.mean_attenuation(distance, env)
                            + f64::from(a.tx_offset_db)
                            + f64::from(b.rx_offset_db)
                            + radio.episode_term(env, &mut rng);
                        let heard = attenuation <= radio.floor_db();
                        if heard {
                            c.bluetooth_seconds += f64::from(shared) * weight(attenuation);
                        }
                    }
                }
            }
        }
        let mut contacts: Vec<Contact> = contacts.into_values().collect();
        // HashMap order is random: sort so sums are the same every run.
        contacts.sort_by(|a, b| {
            (
                a.shared_seconds,
                a.dose.to_bits(),
                a.published,
                a.check_in_from.to_bits(),
            )
                .cmp(&(
                    b.shared_seconds,
                    b.dose.to_bits(),
                    b.published,
                    b.check_in_from.to_bits(),
                ))
        });
        let threshold_seconds = (s.threshold_minutes * 60.0).round() as u32;
        let exposures = contacts
            .iter()
            .filter(|c| c.shared_seconds >= threshold_seconds.max(1))
            .count() as u64;
        let expected_infections = contacts.iter().map(|c| 1.0 - (-c.dose).exp()).sum();
        Scoring {
            contacts,
            threshold_seconds,
            minimum_bluetooth: d.minimum_daily_score,
            exposures,
            expected_infections,
        }
    }

    fn recall(&self, scheme: &'static str, warned: impl Fn(&Contact) -> bool) -> SchemeRecall {
        let exposed = |c: &Contact| c.shared_seconds >= self.threshold_seconds.max(1);
        let risk = |c: &Contact| 1.0 - (-c.dose).exp();
        let (mut n_warned, mut hits, mut risk_hit, mut risk_all) = (0u64, 0u64, 0.0, 0.0);
        for c in &self.contacts {
            let w = warned(c);
            n_warned += u64::from(w);
            if exposed(c) {
                hits += u64::from(w);
                risk_all += risk(c);
                if w {
                    risk_hit += risk(c);
                }
            }
        }
        let ratio = |a: f64, b: f64| if b > 0.0 { round4(a / b) } else { 0.0 };
        SchemeRecall {
            scheme,
            warned: n_warned,
            warned_exposed: hits,
            recall: ratio(hits as f64, self.exposures as f64),
            precision: ratio(hits as f64, n_warned as f64),
            risk_recall: ratio(risk_hit, risk_all),
        }
    }

    /// Venue check-in when a share `share` of visits is checked in.
    pub fn check_in(&self, share: f64) -> SchemeRecall {
        self.recall(CHECK_IN, |c| c.check_in_from < share)
    }

    /// The three schemes, check-in at `share`.
    pub fn schemes(&self, share: f64) -> Vec<SchemeRecall> {
        vec![
            self.recall(PUBLISHED, |c| c.published),
            self.check_in(share),
            self.recall(BLUETOOTH, |c| c.bluetooth_seconds >= self.minimum_bluetooth),
        ]
    }
}
