//! Room-shared exposure (issue 20, item 5): venues where people share air, and three ways
//! to warn the people who shared a room with a case, on the same population and seed.
//!
//! - **published places**: each case's venues and hours are published (the practice of
//!   earlier epidemics); whoever was at a published venue during a published hour
//!   recognises it, and anyone can read the trail.
//! - **venue check-in** (CrowdNotifier, `ephemera_proto::venue`): a share of visits is
//!   checked in by scanning the room's QR code; a case's checked-in visits are traced, and
//!   a phone that checked in at the same room is warned when its times overlap the case's.
//! - **Bluetooth alone**: both phones run the app, and the phone library's attenuation
//!   buckets and weights score the pair's overlap at their distance in the room.
//!
//! Exposure is airborne: a well-mixed room, Wells–Riley with the quanta emission rates of
//! Buonanno et al. ([`RoomsScenario`] documents every parameter and its source). A
//! *room-shared exposure* is a person who spent at least `threshold_minutes` in the same
//! room as a case on one day of the case's infectious window; recall is the share of them
//! warned. The [`observer`] measures what an outsider reconstructs of the cases'
//! movements under each scheme. `docs/SIMULATION.md` ("Venues") has the method and the
//! figures.

mod exposure;
pub mod observer;
mod plot;
mod visits;

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

pub use exposure::{BLUETOOTH, CHECK_IN, PUBLISHED, SchemeRecall, Scoring};
pub use observer::{CryptoCheck, ObserverRow};
pub use visits::{RoomKind, Town};

use super::error::SimError;
use super::output::io_error;
use super::provenance::{Provenance, ensure_fresh};
use super::scenario::{DetectionConfig, RadioConfig};

/// One kind of room: its size, its air and what an infectious person emits there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoomAir {
    /// Floor width (m).
    pub width_m: f64,
    /// Floor length (m).
    pub length_m: f64,
    /// Ceiling height (m).
    pub height_m: f64,
    /// Outdoor-air changes per hour.
    pub air_changes_per_hour: f64,
    /// Quanta an infectious person emits per hour (activity and speech).
    pub quanta_per_hour: f64,
    /// What a susceptible person inhales (m³/h).
    pub breathing_m3_per_hour: f64,
    /// Median visit (minutes, log-normal).
    pub median_minutes: f64,
    /// Log-space σ of the visit's length.
    pub sigma: f64,
    /// Longest visit (minutes).
    pub max_minutes: f64,
}

impl RoomAir {
    /// Room volume (m³).
    pub fn volume_m3(&self) -> f64 {
        self.width_m * self.length_m * self.height_m
    }
}

/// Deposition of virus-laden particles on surfaces (per hour; Buonanno et al. 2020b).
pub const DEPOSITION_PER_HOUR: f64 = 0.24;
/// Inactivation of airborne SARS-CoV-2 (per hour; Buonanno et al. 2020b, from van
/// Doremalen et al. 2020's half-life of about 1.1 h).
pub const INACTIVATION_PER_HOUR: f64 = 0.63;

/// The venue comparison's every parameter (defaults and their sources below and in
/// `docs/SIMULATION.md`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoomsScenario {
    /// People (the population of [`crate::population`]: households, ages, workplaces, app
    /// uptake).
    pub agents: u32,
    /// Simulated days.
    pub days: u32,
    /// The seed every draw derives from.
    pub seed: u64,
    /// UTC day number of the first day (2024-01-01, a Monday).
    pub first_day: u32,
    /// Shops per 1,000 people. Default 4 (an assumption, a town centre's order of
    /// magnitude).
    pub shops_per_1000: f64,
    /// Restaurants, cafés and bars per 1,000 people. Default 2.5 (an assumption, as
    /// shops).
    pub restaurants_per_1000: f64,
    /// Bus or tram lines per 1,000 people. Default 0.5.
    pub lines_per_1000: f64,
    /// Shop visits a person makes a day (Poisson). Default 0.6.
    pub shop_visits_per_day: f64,
    /// Restaurant visits a person makes a day (Poisson). Default 0.15.
    pub restaurant_visits_per_day: f64,
    /// Share of employed adults who commute by bus or tram (two trips a working day).
    /// Default 0.3.
    pub commute_share: f64,
    /// Other trips a person makes a day (Poisson). Default 0.15.
    pub trips_per_day: f64,
    /// Share of working days an employed adult is at the office. Default 0.7.
    pub office_attendance: f64,
    /// People per office room (a workplace is split into rooms of this size). Default 10.
    pub office_room_people: u32,
    /// Minutes between two vehicles of a line; riders whose trips start in the same slot
    /// share a vehicle. Default 10.
    pub headway_minutes: u32,
    /// Shops: 10 × 10 × 3 m, 2 air changes an hour, 10 quanta/h (standing, light activity,
    /// some speech), 1.1 m³/h inhaled (light activity), median visit 20 min.
    pub shop: RoomAir,
    /// Office rooms: 8 × 12 × 3 m for 10 people (about 10 m² each), 1.5 air changes an
    /// hour (10 L/s a person at 30 m³ a person: EN 16798-1 category II), 10 quanta/h
    /// (seated, speaking part of the time), 0.54 m³/h, median day 8 h.
    pub office: RoomAir,
    /// Restaurants: 8 × 10 × 3 m, 3 air changes an hour, 25 quanta/h (speaking over the
    /// table), 0.54 m³/h, median visit 60 min.
    pub restaurant: RoomAir,
    /// Bus or tram: 2.5 × 12 × 2.2 m, 6 air changes an hour (doors opening at stops; an
    /// assumption), 3 quanta/h (seated, mostly silent), 0.54 m³/h, median trip 20 min.
    pub transport: RoomAir,
    /// Each person's chance a day to be diagnosed (a case). Default 0.0005 (5 a day per
    /// 10,000: a wave's peak).
    pub daily_case_rate: f64,
    /// Days before diagnosis that are traced (the infectious window a case reports).
    /// Default 4.
    pub trace_days: u32,
    /// Minutes in one room with a case on one day that make a room-shared exposure.
    /// Default 15 (the usual close-contact time).
    pub threshold_minutes: f64,
    /// Share of visits checked in (both the case's and the visitor's must be). Default 0.5.
    pub check_in_share: f64,
    /// Check-in shares swept for the recall curve.
    pub check_in_sweep: Vec<f64>,
    /// Hours between two publications of venue traces; one case's traces are published
    /// together in the batch after its diagnosis. Default 1 (the node's batch period,
    /// `Policy::batch_period_seconds`).
    pub batch_hours: u32,
    /// Observer venue coverages swept (share of venues whose QR codes it holds).
    pub coverages: Vec<f64>,
    /// Mean cases from elsewhere in each batch (Poisson; 0 is this town alone).
    pub other_cases_per_batch: Vec<f64>,
    /// The phones' Bluetooth scoring (the client's defaults).
    pub detection: DetectionConfig,
    /// The radio model (the simulator's defaults).
    pub radio: RadioConfig,
    /// Share of people who run the app (Bluetooth). Default 0.6, as the main simulator.
    pub app_uptake: f64,
    /// Check-in traces published and tested with the real venue cryptography.
    pub crypto_sample: usize,
}

impl Default for RoomsScenario {
    fn default() -> Self {
        let air = |w, l, h, ach, q, b, minutes, sigma, max| RoomAir {
            width_m: w,
            length_m: l,
            height_m: h,
            air_changes_per_hour: ach,
            quanta_per_hour: q,
            breathing_m3_per_hour: b,
            median_minutes: minutes,
            sigma,
            max_minutes: max,
        };
        RoomsScenario {
            agents: 20_000,
            days: 14,
            seed: 1,
            first_day: 19_723,
            shops_per_1000: 4.0,
            restaurants_per_1000: 2.5,
            lines_per_1000: 0.5,
            shop_visits_per_day: 0.6,
            restaurant_visits_per_day: 0.15,
            commute_share: 0.3,
            trips_per_day: 0.15,
            office_attendance: 0.7,
            office_room_people: 10,
            headway_minutes: 10,
            shop: air(10.0, 10.0, 3.0, 2.0, 10.0, 1.1, 20.0, 0.6, 90.0),
            office: air(8.0, 12.0, 3.0, 1.5, 10.0, 0.54, 480.0, 0.15, 600.0),
            restaurant: air(8.0, 10.0, 3.0, 3.0, 25.0, 0.54, 60.0, 0.4, 180.0),
            transport: air(2.5, 12.0, 2.2, 6.0, 3.0, 0.54, 20.0, 0.5, 60.0),
            daily_case_rate: 0.0005,
            trace_days: 4,
            threshold_minutes: 15.0,
            check_in_share: 0.5,
            check_in_sweep: vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            batch_hours: 1,
            coverages: vec![0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0],
            other_cases_per_batch: vec![0.0, 1.0, 10.0],
            detection: DetectionConfig::default(),
            radio: RadioConfig::default(),
            app_uptake: 0.6,
            crypto_sample: 24,
        }
    }
}

impl RoomsScenario {
    /// The room parameters of `kind`.
    pub fn air(&self, kind: RoomKind) -> &RoomAir {
        match kind {
            RoomKind::Shop => &self.shop,
            RoomKind::Office => &self.office,
            RoomKind::Restaurant => &self.restaurant,
            RoomKind::Transport => &self.transport,
        }
    }

    /// Refuses what the model cannot run.
    ///
    /// # Errors
    /// [`SimError::Scenario`] saying which parameter is out of range.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |what: &str| Err(SimError::Scenario(format!("venues: {what}")));
        let share = |x: f64| (0.0..=1.0).contains(&x);
        if self.agents < 100 {
            return bad("at least 100 agents");
        }
        if self.days <= self.trace_days || self.trace_days == 0 {
            return bad("days must exceed trace_days, and trace_days be at least 1");
        }
        if self.days > 366 {
            return bad("at most 366 days");
        }
        if !share(self.check_in_share)
            || !share(self.commute_share)
            || !share(self.office_attendance)
            || !share(self.app_uptake)
            || !share(self.daily_case_rate)
            || !self.check_in_sweep.iter().all(|x| share(*x))
            || !self.coverages.iter().all(|x| share(*x))
        {
            return bad("shares and rates must lie in [0, 1]");
        }
        if self.batch_hours == 0 || self.headway_minutes == 0 || self.office_room_people == 0 {
            return bad("batch_hours, headway_minutes and office_room_people must be positive");
        }
        let rates = [
            self.shops_per_1000,
            self.restaurants_per_1000,
            self.lines_per_1000,
            self.shop_visits_per_day,
            self.restaurant_visits_per_day,
            self.trips_per_day,
            self.threshold_minutes,
        ];
        if rates.iter().any(|r| !r.is_finite() || *r < 0.0)
            || self
                .other_cases_per_batch
                .iter()
                .any(|r| !r.is_finite() || *r < 0.0)
        {
            return bad("rates must be finite and non-negative");
        }
        for kind in RoomKind::ALL {
            let a = self.air(kind);
            let values = [
                a.width_m,
                a.length_m,
                a.height_m,
                a.air_changes_per_hour,
                a.median_minutes,
                a.max_minutes,
            ];
            if values.iter().any(|v| !v.is_finite() || *v <= 0.0)
                || !(a.quanta_per_hour.is_finite() && a.quanta_per_hour >= 0.0)
                || !(a.breathing_m3_per_hour.is_finite() && a.breathing_m3_per_hour >= 0.0)
                || !(a.sigma.is_finite() && a.sigma >= 0.0)
            {
                return bad("room sizes, air changes and visit lengths must be positive");
            }
        }
        Ok(())
    }
}

/// The comparison's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// What produced it.
    pub scenario: RoomsScenario,
    /// Visits simulated.
    pub visits: u64,
    /// Cases diagnosed whose window lies in the run.
    pub cases: u64,
    /// Room-shared exposures (person, case, day) at or over the threshold.
    pub exposures: u64,
    /// Expected infections (Wells–Riley) among everyone who shared a room with a case.
    pub expected_infections: f64,
    /// The three schemes at the scenario's check-in share.
    pub schemes: Vec<SchemeRecall>,
    /// Check-in recall per swept share: (share, recall).
    pub check_in_curve: Vec<(f64, f64)>,
    /// The observer per coverage.
    pub observer: Vec<ObserverRow>,
    /// Cases with at least two distinct venues in their window (the observer's
    /// denominator).
    pub cases_with_trails: u64,
    /// The real-cryptography check of the observer's test.
    pub crypto: CryptoCheck,
}

/// Builds the town, simulates the visits and scores the three schemes and the observer.
///
/// # Errors
/// [`SimError::Scenario`] for an invalid scenario; [`SimError::Node`] if the venue
/// cryptography refuses what it should accept.
pub fn compare(scenario: &RoomsScenario) -> Result<Comparison, SimError> {
    scenario.validate()?;
    let town = Town::build(scenario);
    let scoring = Scoring::score(scenario, &town);
    let observer = observer::observe(scenario, &town);
    let crypto = observer::crypto_check(scenario, &town)?;
    Ok(Comparison {
        scenario: scenario.clone(),
        visits: town.visits.len() as u64,
        cases: town.cases.len() as u64,
        exposures: scoring.exposures,
        expected_infections: round4(scoring.expected_infections),
        schemes: scoring.schemes(scenario.check_in_share),
        check_in_curve: scenario
            .check_in_sweep
            .iter()
            .map(|a| (*a, scoring.check_in(*a).recall))
            .collect(),
        cases_with_trails: observer.cases_with_trails,
        observer: observer.rows,
        crypto,
    })
}

impl Comparison {
    /// The scheme named `name` (`"published places"`, `"venue check-in"`,
    /// `"Bluetooth alone"`).
    pub fn scheme(&self, name: &str) -> Option<&SchemeRecall> {
        self.schemes.iter().find(|s| s.scheme == name)
    }

    /// The results as Markdown tables.
    pub fn table(&self) -> String {
        let s = &self.scenario;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} people, {} days, seed {}: {} visits, {} cases, {} room-shared exposures (≥ {} min), {:.1} expected infections in shared rooms\n",
            s.agents,
            s.days,
            s.seed,
            self.visits,
            self.cases,
            self.exposures,
            s.threshold_minutes,
            self.expected_infections
        );
        out.push_str(
            "| scheme | warned | of them exposed | recall | precision | risk-weighted recall | reconstructable (observer, coverage 0.25) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        let at = self
            .observer
            .iter()
            .find(|r| (r.coverage - 0.25).abs() < 1e-9);
        for scheme in &self.schemes {
            let reconstructable = at.map(|r| match scheme.scheme {
                exposure::PUBLISHED => r.published,
                exposure::CHECK_IN => r.check_in.first().copied().unwrap_or(0.0),
                _ => r.bluetooth,
            });
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {} |",
                scheme.scheme,
                scheme.warned,
                scheme.warned_exposed,
                scheme.recall,
                scheme.precision,
                scheme.risk_recall,
                reconstructable.map_or("–".to_owned(), |v| format!("{v:.3}"))
            );
        }
        let _ = writeln!(
            out,
            "\nCheck-in recall by share of visits checked in:\n\n| checked in | recall |\n| ---: | ---: |"
        );
        for (share, recall) in &self.check_in_curve {
            let _ = writeln!(out, "| {share:.1} | {recall:.3} |");
        }
        let _ = write!(
            out,
            "\nShare of the {} cases with two venues or more whose trail the observer reconstructs, by the share of venues whose QR codes it holds ({}-hour batches):\n\n| coverage | published places |",
            self.cases_with_trails, s.batch_hours
        );
        for lambda in &s.other_cases_per_batch {
            let _ = write!(out, " check-in, {lambda} other cases a batch |");
        }
        out.push_str(
            " Bluetooth alone | check-in: flagged venue-hours identified |\n| ---: | ---: |",
        );
        for _ in &s.other_cases_per_batch {
            out.push_str(" ---: |");
        }
        out.push_str(" ---: | ---: |\n");
        for row in &self.observer {
            let _ = write!(out, "| {:.2} | {:.3} |", row.coverage, row.published);
            for v in &row.check_in {
                let _ = write!(out, " {v:.3} |");
            }
            let _ = writeln!(
                out,
                " {:.3} | {:.3} |",
                row.bluetooth, row.traces_identified
            );
        }
        let c = &self.crypto;
        let _ = writeln!(
            out,
            "\nReal cryptography: {} published venue traces of {} venues, the observer holding {} entry codes; it identified {} traces, the model {}; agree: {}",
            c.traces, c.venues, c.codes_held, c.identified, c.modelled, c.agree
        );
        out
    }

    /// Writes `venues.json`, `venues.md` and `venues.svg` into `dir` (refused if it holds
    /// anything).
    ///
    /// # Errors
    /// [`SimError::Output`] when `dir` is not empty or a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), SimError> {
        ensure_fresh(dir)?;
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let provenance = Provenance::of_this_process(self.scenario.seed);
        let json = serde_json::json!({ "provenance": provenance, "comparison": self });
        let path = dir.join("venues.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json).expect("serialisable"),
        )
        .map_err(io_error(&path))?;
        let path = dir.join("venues.md");
        std::fs::write(&path, self.table()).map_err(io_error(&path))?;
        plot::plot(&dir.join("venues.svg"), self)
    }
}

/// Rounds to 4 decimals (results stay readable and compare exactly).
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
