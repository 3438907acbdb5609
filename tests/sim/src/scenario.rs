//! The scenario: every knob of a run, with documented defaults, read from TOML and
//! overridden by command-line flags.

use serde::{Deserialize, Serialize};

use super::error::SimError;
use super::radio_profile::RadioProfile;

/// Which token scheme the phones run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemeName {
    /// GAEN v1.2 keys and RPIs.
    Gaen,
    /// Private encounter tokens.
    Pet,
}

impl SchemeName {
    /// The protocol's scheme.
    pub fn kind(self) -> ephemera_proto::SchemeKind {
        match self {
            SchemeName::Gaen => ephemera_proto::SchemeKind::Gaen,
            SchemeName::Pet => ephemera_proto::SchemeKind::Pet,
        }
    }

    /// `"gaen"` or `"pet"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemeName::Gaen => "gaen",
            SchemeName::Pet => "pet",
        }
    }
}

impl std::str::FromStr for SchemeName {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gaen" => Ok(SchemeName::Gaen),
            "pet" => Ok(SchemeName::Pet),
            _ => Err(SimError::Scenario(format!("unknown scheme {s:?}"))),
        }
    }
}

/// How a `pet` phone's key goes over the air.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PetPayload {
    /// Four 16-byte slices in a carousel (legacy advertising): a receiver needs any 3 of
    /// the 4 in a scan, so the per-advertisement reception probability matters.
    Slices,
    /// The whole 32-byte key (extended advertising or GATT).
    Whole,
}

/// The longest run with phones, in days.
pub const MAX_DAYS: u32 = 28;

/// The longest run without phones (`population.app_uptake` = 0: the epidemic alone), in
/// days.
pub const MAX_EPIDEMIC_DAYS: u32 = 365;

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// People in the population.
    pub agents: u32,
    /// Simulated days: at most [`MAX_DAYS`], or [`MAX_EPIDEMIC_DAYS`] without phones.
    pub days: u32,
    /// The seed every random draw derives from.
    pub seed: u64,
    /// The scheme every app runs.
    pub scheme: SchemeName,
    /// The UTC day number (days since 1970-01-01) of the first simulated day.
    pub first_day: u32,
    /// Households, places and app uptake.
    pub population: PopulationConfig,
    /// Contact layers.
    pub contacts: ContactConfig,
    /// Bluetooth attenuation and reception.
    pub radio: RadioConfig,
    /// Scanning and advertising.
    pub scanning: ScanConfig,
    /// Infection.
    pub epidemic: EpidemicConfig,
    /// Testing and consent to upload.
    pub testing: TestingConfig,
    /// What counts as a close contact.
    pub ground_truth: GroundTruthConfig,
    /// The phones' exposure scoring.
    pub detection: DetectionConfig,
    /// The in-process authority and node.
    pub node: NodeConfig,
    /// The broadcast-sniffing adversary.
    pub attack: AttackConfig,
    /// Interventions that feed back into transmission (isolation, quarantine and testing
    /// of notified contacts) and the app-off counterfactual. Absent (the default): nobody
    /// isolates and no counterfactual runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interventions: Option<InterventionConfig>,
    /// Bystanders: crowds, neighbours through walls and passers-by, heard like any contact
    /// (absent: phones hear only the people they have a contact with).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bystanders: Option<BystanderConfig>,
    /// A field measurement to replay with `ephemera-sim trial` (absent: none; a town run
    /// ignores it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial: Option<TrialConfig>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            agents: 10_000,
            days: 14,
            seed: 1,
            scheme: SchemeName::Pet,
            // 2024-01-01.
            first_day: 19_723,
            population: PopulationConfig::default(),
            contacts: ContactConfig::default(),
            radio: RadioConfig::default(),
            scanning: ScanConfig::default(),
            epidemic: EpidemicConfig::default(),
            testing: TestingConfig::default(),
            ground_truth: GroundTruthConfig::default(),
            detection: DetectionConfig::default(),
            node: NodeConfig::default(),
            attack: AttackConfig::default(),
            interventions: None,
            bystanders: None,
            trial: None,
        }
    }
}

/// Households, places and app uptake.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PopulationConfig {
    /// Shares of households of 1..=6 people. Default: UK 2011 census, as OpenABM-Covid19's
    /// `household_size_*` parameters (0.30, 0.35, 0.15, 0.13, 0.05, 0.02).
    pub household_sizes: [f64; 6],
    /// Share of the population under 20 (children: schools). Default 0.23 (UK).
    pub child_share: f64,
    /// Share aged 70 and over (elderly: day-time groups). Default 0.13 (UK).
    pub elderly_share: f64,
    /// Share of adults with a workplace. Default 0.75.
    pub employed_share: f64,
    /// Mean workplace size (log-normal, σ 1.0). Default 20.
    pub workplace_mean_size: f64,
    /// School size. Default 200.
    pub school_size: u32,
    /// Size of an elderly day-time group. Default 20.
    pub elderly_group_size: u32,
    /// Share of people who run the app. Default 0.6.
    pub app_uptake: f64,
    /// People per km² of the square grid that places sit on. Default 4,000 (a town).
    pub density_per_km2: f64,
    /// Community venues (shops, transit, bars, parks) per 1,000 people. Default 10.
    pub venues_per_1000: f64,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        PopulationConfig {
            household_sizes: [0.30, 0.35, 0.15, 0.13, 0.05, 0.02],
            child_share: 0.23,
            elderly_share: 0.13,
            employed_share: 0.75,
            workplace_mean_size: 20.0,
            school_size: 200,
            elderly_group_size: 20,
            app_uptake: 0.6,
            density_per_km2: 4_000.0,
            venues_per_1000: 10.0,
        }
    }
}

/// One contact layer's episodes: how long and how close.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpisodeShape {
    /// Median duration in minutes (log-normal).
    pub median_minutes: f64,
    /// Log-space σ of the duration.
    pub sigma: f64,
    /// Longest duration in minutes.
    pub max_minutes: f64,
    /// Median distance in metres (log-normal).
    pub median_distance_m: f64,
    /// Log-space σ of the distance.
    pub distance_sigma: f64,
}

impl Default for EpisodeShape {
    fn default() -> Self {
        EpisodeShape {
            median_minutes: 15.0,
            sigma: 0.8,
            max_minutes: 240.0,
            median_distance_m: 2.0,
            distance_sigma: 0.6,
        }
    }
}

/// Contact layers in the style of OpenABM-Covid19 (Hinch et al. 2021): household, a
/// small-world occupation network and random community contacts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContactConfig {
    /// Household members together in the evening, within radio range. Default median 90
    /// min (log-normal σ 0.5, at most 5 h), 1.5 m median distance. Time in separate rooms
    /// and overnight is left out: it would dominate the count of interval pairs without
    /// changing who is a close contact.
    pub household: EpisodeShape,
    /// Daily occupation interactions per person: children, adults, elderly. Default
    /// OpenABM's `mean_work_interactions_*` (10, 7, 3).
    pub occupation_interactions: [f64; 3],
    /// Share of occupation-network edges active on a given day. Default OpenABM's
    /// `daily_fraction_work` (0.5).
    pub occupation_daily_fraction: f64,
    /// Watts–Strogatz rewiring probability. Default OpenABM's `work_network_rewire` (0.1).
    pub occupation_rewire: f64,
    /// Whether occupation contacts stop at weekends. Default true.
    pub weekends_off: bool,
    /// Work and elderly-group episodes. Default median 30 min, 1.5 m.
    pub work: EpisodeShape,
    /// School episodes. Default median 45 min, 1.2 m.
    pub school: EpisodeShape,
    /// Mean random community contacts a day: children, adults, elderly. Default OpenABM's
    /// `mean_random_interactions_*` (2, 4, 3).
    pub random_interactions: [f64; 3],
    /// Gamma shape of each person's sociability (over-dispersion of random contacts).
    /// Default 2.
    pub random_dispersion: f64,
    /// Random contacts in shops. Default median 8 min, 2 m.
    pub shop: EpisodeShape,
    /// Random contacts on buses and trains. Default median 20 min, 1.2 m.
    pub transit: EpisodeShape,
    /// Random contacts in bars, restaurants, gatherings. Default median 45 min, 1.5 m.
    pub social: EpisodeShape,
    /// Random contacts outdoors. Default median 10 min, 2.5 m.
    pub outdoor: EpisodeShape,
    /// Shares of venues that are shops, transit, social and outdoor. Default 0.4, 0.2, 0.25,
    /// 0.15.
    pub venue_kinds: [f64; 4],
}

impl Default for ContactConfig {
    fn default() -> Self {
        let shape =
            |median_minutes, sigma, max_minutes, median_distance_m, distance_sigma| EpisodeShape {
                median_minutes,
                sigma,
                max_minutes,
                median_distance_m,
                distance_sigma,
            };
        ContactConfig {
            household: shape(90.0, 0.5, 300.0, 1.5, 0.5),
            occupation_interactions: [10.0, 7.0, 3.0],
            occupation_daily_fraction: 0.5,
            occupation_rewire: 0.1,
            weekends_off: true,
            work: shape(30.0, 0.8, 240.0, 1.5, 0.5),
            school: shape(45.0, 0.6, 240.0, 1.2, 0.5),
            random_interactions: [2.0, 4.0, 3.0],
            random_dispersion: 2.0,
            shop: shape(8.0, 0.7, 60.0, 2.0, 0.6),
            transit: shape(20.0, 0.6, 90.0, 1.2, 0.5),
            social: shape(45.0, 0.6, 180.0, 1.5, 0.5),
            outdoor: shape(10.0, 0.8, 120.0, 2.5, 0.6),
            venue_kinds: [0.4, 0.2, 0.25, 0.15],
        }
    }
}

/// The radio term of one environment.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvironmentRadio {
    /// Path-loss exponent.
    pub exponent: f64,
    /// Extra attenuation in dB.
    pub offset_db: f64,
    /// Extra per-episode spread in dB (σ).
    pub extra_sd_db: f64,
}

impl Default for EnvironmentRadio {
    fn default() -> Self {
        EnvironmentRadio {
            exponent: 2.5,
            offset_db: 0.0,
            extra_sd_db: 0.0,
        }
    }
}

/// Attenuation = reference + 10·n·log10(d) + environment + device offsets + noise.
///
/// Defaults and where they come from (see `docs/SIMULATION.md` for the full citations):
/// - 51 dB at 1 m with exponent 2.5 indoors gives 55 dB at 1.5 m, 63 dB at 3 m and 73 dB
///   at 8 m: the mapping the Corona-Warn-App documentation gives for its thresholds
///   (github.com/corona-warn-app/cwa-documentation: "73 dB ≈ 8 m free space"; 55 and 63 dB
///   as the near/medium bounds around 1.5 m and 3 m).
/// - Per-episode σ 6 dB for orientation, pockets and bodies: Leith & Farrell (ACM SIGCOMM
///   CCR 50(4), 2020) saw 10 dB and more from handset orientation and body absorption.
/// - Vehicles: Leith & Farrell's GAEN measurements on a Dublin commuter bus (PLOS ONE
///   16(4) e0250826, 2021) found attenuation that need not grow with distance and ±10 dB
///   from changing the people in a pair of seats; hence exponent 1.0 (almost flat), +6 dB
///   and an extra 5 dB σ. Their light-rail tram study (PLOS ONE 15(9) e0239943, 2020)
///   showed the same.
/// - Device calibration residual σ 3 dB per phone for transmit and for receive, after
///   GAEN's per-model calibration table.
/// - Reception floor 88 dB (about −96 dBm at −8 dBm transmit power, the sensitivity of
///   phone BLE receivers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RadioConfig {
    /// The named profile (`radio_profile.rs`) the other keys start from, when the scenario
    /// names one; its own `[radio]` keys override the profile's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<RadioProfile>,
    /// Attenuation at 1 m (dB).
    pub reference_db: f64,
    /// σ of each phone's transmit calibration residual (dB).
    pub device_tx_sd_db: f64,
    /// σ of each phone's receive calibration residual (dB).
    pub device_rx_sd_db: f64,
    /// σ of the per-episode, per-direction term: orientation, pocket, bodies (dB).
    pub episode_sd_db: f64,
    /// σ of the per-scan term: fading (dB).
    pub scan_sd_db: f64,
    /// Nothing above this attenuation is received (dB).
    pub floor_db: f64,
    /// Chance that one advertisement in a scan window is received well above the floor.
    pub advert_reception: f64,
    /// The reception chance falls linearly to 0 over this many dB below the floor.
    pub fade_band_db: f64,
    /// Transmit power every phone announces (dBm); RSSI = this − attenuation.
    pub tx_power_dbm: i8,
    /// Homes.
    pub home: EnvironmentRadio,
    /// Offices and elderly groups.
    pub work: EnvironmentRadio,
    /// Schools.
    pub school: EnvironmentRadio,
    /// Shops.
    pub shop: EnvironmentRadio,
    /// Buses and trains.
    pub transit: EnvironmentRadio,
    /// Bars, restaurants and gatherings.
    pub social: EnvironmentRadio,
    /// Outdoors.
    pub outdoor: EnvironmentRadio,
    /// Through the wall between two flats: its loss is the offset.
    pub wall: EnvironmentRadio,
}

impl Default for RadioConfig {
    fn default() -> Self {
        let env = |exponent, offset_db, extra_sd_db| EnvironmentRadio {
            exponent,
            offset_db,
            extra_sd_db,
        };
        RadioConfig {
            profile: None,
            reference_db: 51.0,
            device_tx_sd_db: 3.0,
            device_rx_sd_db: 3.0,
            episode_sd_db: 6.0,
            scan_sd_db: 3.0,
            floor_db: 88.0,
            advert_reception: 0.7,
            fade_band_db: 8.0,
            tx_power_dbm: -8,
            home: env(2.5, 0.0, 0.0),
            work: env(2.5, 0.0, 0.0),
            school: env(2.5, 0.0, 0.0),
            shop: env(2.5, 2.0, 1.0),
            transit: env(1.0, 6.0, 5.0),
            social: env(2.5, 0.0, 1.0),
            outdoor: env(2.0, 0.0, 0.0),
            // An interior wall of brick or block costs about 6–15 dB at 2.4 GHz (ITU-R
            // P.2040 and P.1238 give plasterboard a few dB and concrete 10–20).
            wall: env(2.5, 10.0, 4.0),
        }
    }
}

impl RadioConfig {
    /// No noise and no loss anywhere: the same attenuation for every scan at a distance,
    /// every advertisement received (for tests).
    pub fn noiseless(mut self) -> Self {
        self.device_tx_sd_db = 0.0;
        self.device_rx_sd_db = 0.0;
        self.episode_sd_db = 0.0;
        self.scan_sd_db = 0.0;
        self.advert_reception = 1.0;
        self.fade_band_db = 0.0;
        for env in [
            &mut self.home,
            &mut self.work,
            &mut self.school,
            &mut self.shop,
            &mut self.transit,
            &mut self.social,
            &mut self.outdoor,
            &mut self.wall,
        ] {
            env.extra_sd_db = 0.0;
            env.offset_db = 0.0;
            env.exponent = 2.5;
        }
        self
    }
}

/// Scanning and advertising.
///
/// GAEN phones scan for a few seconds every 2.5–5 minutes (Android's Exposure Notification
/// scans about every 5 minutes; iOS "opportunistically", every few minutes) and advertise
/// every 200–270 ms (Exposure Notification Bluetooth Specification v1.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// Shortest scan period (s). Default 150.
    pub period_min_s: u32,
    /// Longest scan period (s). Default 300. Each phone draws its period for the day.
    pub period_max_s: u32,
    /// Advertisements a scan window can catch from one peer: 4 s at 250 ms. Default 16.
    pub adverts_per_scan: u32,
    /// How a `pet` key goes over the air. Default slices (legacy advertising).
    pub pet_payload: PetPayload,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            period_min_s: 150,
            period_max_s: 300,
            adverts_per_scan: 16,
            pet_payload: PetPayload::Slices,
        }
    }
}

/// Infection from proximity and duration.
///
/// Hazard of one episode = `beta` × layer weight × environment weight × distance weight ×
/// minutes × infectiousness(days since infection); infectiousness is a gamma density
/// (OpenABM's `mean_infectious_period` 5.5 d, σ 2.14 d); asymptomatic cases are
/// `asymptomatic_infectiousness` as infectious (OpenABM 0.33). Symptom onset follows a
/// log-normal incubation with median 5.1 days (Lauer et al., Ann. Intern. Med. 2020).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpidemicConfig {
    /// Share infected before the first day. Default 0.002.
    pub initial_infected: f64,
    /// Infection hazard per close-minute, per unit of infectiousness (1/day). Default 0.008
    /// (about 1.4 secondary cases per case with the default contacts).
    pub beta: f64,
    /// Household weight. Default 2 (OpenABM's `relative_transmission_household`).
    pub household_weight: f64,
    /// Outdoor weight. Default 0.2.
    pub outdoor_weight: f64,
    /// Distance weight: 1 within this distance (m), then falling as (d0/d)². Default 1.
    pub near_distance_m: f64,
    /// Mean of the infectiousness profile (days). Default 5.5.
    pub infectious_mean_days: f64,
    /// σ of the infectiousness profile (days). Default 2.14.
    pub infectious_sd_days: f64,
    /// Share of infections without symptoms. Default 0.33.
    pub asymptomatic_share: f64,
    /// Relative infectiousness without symptoms. Default 0.33.
    pub asymptomatic_infectiousness: f64,
    /// Median incubation (days). Default 5.1.
    pub incubation_median_days: f64,
    /// Log-space σ of the incubation. Default 0.418 (97.5 % within 11.5 days).
    pub incubation_sigma: f64,
}

impl Default for EpidemicConfig {
    fn default() -> Self {
        EpidemicConfig {
            initial_infected: 0.002,
            beta: 0.008,
            household_weight: 2.0,
            outdoor_weight: 0.2,
            near_distance_m: 1.0,
            infectious_mean_days: 5.5,
            infectious_sd_days: 2.14,
            asymptomatic_share: 0.33,
            asymptomatic_infectiousness: 0.33,
            incubation_median_days: 5.1,
            incubation_sigma: 0.418,
        }
    }
}

/// Testing and consent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestingConfig {
    /// Chance that a symptomatic case is tested. Default 0.6.
    pub symptomatic_tested: f64,
    /// Chance that an asymptomatic case is tested (screening). Default 0.1.
    pub asymptomatic_tested: f64,
    /// Days from symptom onset (or, asymptomatic, from day 3 after infection) to the
    /// result: uniform between these. Default 1–3.
    pub delay_days: [f64; 2],
    /// Chance that a positive app user consents to upload. Default 0.7.
    pub upload_consent: f64,
    /// Hours from the result to the upload: uniform up to this. Default 6.
    pub upload_within_hours: f64,
}

impl Default for TestingConfig {
    fn default() -> Self {
        TestingConfig {
            symptomatic_tested: 0.6,
            asymptomatic_tested: 0.1,
            delay_days: [1.0, 3.0],
            upload_consent: 0.7,
            upload_within_hours: 6.0,
        }
    }
}

/// Interventions that feed back into transmission, named after OpenABM-Covid19's
/// parameters (Hinch et al. 2021; `documentation/parameters/parameter_dictionary.md` of
/// BDI-pathogens/OpenABM-Covid19 at ee2f2c0) where the concept is the same. The app
/// traces on a positive test, so OpenABM's `*_traced_positive` parameters apply. Defaults
/// are OpenABM's baseline values, except that four switches default on
/// (`quarantine_on_traced`, `test_on_traced`, `quarantine_household_on_positive`,
/// `quarantine_household_on_traced_positive`): a section that names no key models
/// isolation of positives, and quarantine and testing of notified contacts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InterventionConfig {
    /// Share of symptomatic people who self-isolate from the midnight after onset.
    /// Default 0.
    pub self_quarantine_fraction: f64,
    /// Days of self-isolation on symptoms. Default 7.
    pub quarantine_length_self: u32,
    /// Daily chance of leaving self-isolation early. Default 0.02.
    pub quarantine_dropout_self: f64,
    /// Share of people with a positive result who isolate. Default 1.
    pub quarantine_compliance_positive: f64,
    /// Days of isolation on a positive result. Default 14.
    pub quarantine_length_positive: u32,
    /// Daily chance of leaving isolation on a positive result early. Default 0.01.
    pub quarantine_dropout_positive: f64,
    /// Whether notified contacts are asked to quarantine. Default true.
    pub quarantine_on_traced: bool,
    /// Share of notified contacts (and of quarantined household members) who quarantine.
    /// Default 0.9.
    pub quarantine_compliance_traced_positive: f64,
    /// Days of quarantine of a notified contact (and of a quarantined household member).
    /// Default 14.
    pub quarantine_length_traced_positive: u32,
    /// Daily chance of leaving that quarantine early. Default 0.03.
    pub quarantine_dropout_traced_positive: f64,
    /// Whether the household of someone who self-isolates on symptoms quarantines.
    /// Default false.
    pub quarantine_household_on_symptoms: bool,
    /// Whether the household of someone who isolates on a positive result quarantines.
    /// Default true.
    pub quarantine_household_on_positive: bool,
    /// Whether the household of a quarantined notified contact quarantines. Default true.
    pub quarantine_household_on_traced_positive: bool,
    /// Whether notified contacts are tested. Default true.
    pub test_on_traced: bool,
    /// Share of notified contacts who take the test. Default 0.8.
    pub test_on_traced_positive_compliance: f64,
    /// Days after the notification's day that the test is taken (at least 1). Default 1.
    pub test_order_wait: u32,
    /// Days from the test to its result (at noon). Default 1.
    pub test_result_wait: u32,
    /// Days after infection in which a test cannot detect it. Default 3.
    pub test_insensitive_period: u32,
    /// Chance that a test of an infected person (past the insensitive period) is
    /// positive. Default 0.8.
    pub test_sensitivity: f64,
    /// Chance that a test of anyone else is negative. Default 0.999.
    pub test_specificity: f64,
}

impl Default for InterventionConfig {
    fn default() -> Self {
        InterventionConfig {
            self_quarantine_fraction: 0.0,
            quarantine_length_self: 7,
            quarantine_dropout_self: 0.02,
            quarantine_compliance_positive: 1.0,
            quarantine_length_positive: 14,
            quarantine_dropout_positive: 0.01,
            quarantine_on_traced: true,
            quarantine_compliance_traced_positive: 0.9,
            quarantine_length_traced_positive: 14,
            quarantine_dropout_traced_positive: 0.03,
            quarantine_household_on_symptoms: false,
            quarantine_household_on_positive: true,
            quarantine_household_on_traced_positive: true,
            test_on_traced: true,
            test_on_traced_positive_compliance: 0.8,
            test_order_wait: 1,
            test_result_wait: 1,
            test_insensitive_period: 3,
            test_sensitivity: 0.8,
            test_specificity: 0.999,
        }
    }
}

impl InterventionConfig {
    /// Every compliance and share 0: nobody isolates, quarantines or is tested.
    pub fn none_comply() -> Self {
        InterventionConfig {
            self_quarantine_fraction: 0.0,
            quarantine_compliance_positive: 0.0,
            quarantine_compliance_traced_positive: 0.0,
            test_on_traced_positive_compliance: 0.0,
            ..InterventionConfig::default()
        }
    }

    fn validate(&self) -> Result<(), String> {
        let shares = [
            ("self_quarantine_fraction", self.self_quarantine_fraction),
            ("quarantine_dropout_self", self.quarantine_dropout_self),
            (
                "quarantine_compliance_positive",
                self.quarantine_compliance_positive,
            ),
            (
                "quarantine_dropout_positive",
                self.quarantine_dropout_positive,
            ),
            (
                "quarantine_compliance_traced_positive",
                self.quarantine_compliance_traced_positive,
            ),
            (
                "quarantine_dropout_traced_positive",
                self.quarantine_dropout_traced_positive,
            ),
            (
                "test_on_traced_positive_compliance",
                self.test_on_traced_positive_compliance,
            ),
            ("test_sensitivity", self.test_sensitivity),
            ("test_specificity", self.test_specificity),
        ];
        if let Some((name, _)) = shares.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
            return Err(format!("interventions.{name} must be in 0..=1"));
        }
        let lengths = [
            ("quarantine_length_self", self.quarantine_length_self),
            (
                "quarantine_length_positive",
                self.quarantine_length_positive,
            ),
            (
                "quarantine_length_traced_positive",
                self.quarantine_length_traced_positive,
            ),
            ("test_order_wait", self.test_order_wait),
            ("test_result_wait", self.test_result_wait),
            ("test_insensitive_period", self.test_insensitive_period),
        ];
        if let Some((name, _)) = lengths.iter().find(|(_, v)| *v > 365) {
            return Err(format!("interventions.{name} must be at most 365 days"));
        }
        Ok(())
    }
}

/// People in radio range of each other without a contact of their own (`[bystanders]`,
/// [`bystanders`](crate::bystanders)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BystanderConfig {
    /// Bystanders each person hears at a place in a day at most (the first there longest at
    /// the same time). Default 3.
    pub crowd_max: u32,
    /// A bystander stands this many times as far as the place's contacts do (their
    /// `median_distance_m`; log-normal with their `distance_sigma`). Default 2.5.
    pub crowd_distance_factor: f64,
    /// Anyone drawn farther than this is out of range (m). Default 12.
    pub range_m: f64,
    /// Share of households in blocks of flats, each sharing a wall with the next flat.
    /// Default 0.4.
    pub apartment_share: f64,
    /// Chance that two flats' residents are both home, a wall apart, on an evening.
    /// Default 0.5.
    pub neighbour_daily_fraction: f64,
    /// Neighbours: median time a wall apart (minutes, log-normal σ 0.6). Default 90.
    pub neighbour_median_minutes: f64,
    /// Neighbours: median distance through the wall (m, log-normal σ 0.4). Default 3.
    pub neighbour_median_distance_m: f64,
    /// Passers-by a person meets a day, on average (scaled by sociability). Default 4.
    pub passers_by_per_day: f64,
    /// Passers-by: median time in range (minutes, log-normal σ 0.5, at most 10). Default
    /// 1.5.
    pub passer_by_median_minutes: f64,
    /// Passers-by: median distance (m, log-normal σ 0.5). Default 3.
    pub passer_by_median_distance_m: f64,
}

impl Default for BystanderConfig {
    fn default() -> Self {
        BystanderConfig {
            crowd_max: 3,
            crowd_distance_factor: 2.5,
            range_m: 12.0,
            apartment_share: 0.4,
            neighbour_daily_fraction: 0.5,
            neighbour_median_minutes: 90.0,
            neighbour_median_distance_m: 3.0,
            passers_by_per_day: 4.0,
            passer_by_median_minutes: 1.5,
            passer_by_median_distance_m: 3.0,
        }
    }
}

impl BystanderConfig {
    fn validate(&self) -> Result<(), String> {
        let shares = [
            ("apartment_share", self.apartment_share),
            ("neighbour_daily_fraction", self.neighbour_daily_fraction),
        ];
        if let Some((name, _)) = shares.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
            return Err(format!("bystanders.{name} must be in 0..=1"));
        }
        let positive = [
            ("crowd_distance_factor", self.crowd_distance_factor),
            ("range_m", self.range_m),
            ("neighbour_median_minutes", self.neighbour_median_minutes),
            (
                "neighbour_median_distance_m",
                self.neighbour_median_distance_m,
            ),
            ("passer_by_median_minutes", self.passer_by_median_minutes),
            (
                "passer_by_median_distance_m",
                self.passer_by_median_distance_m,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| !(*v > 0.0 && v.is_finite())) {
            return Err(format!("bystanders.{name} must be positive"));
        }
        if !(0.0..=100.0).contains(&self.passers_by_per_day) {
            return Err("bystanders.passers_by_per_day must be in 0..=100".into());
        }
        if self.crowd_max > 50 {
            return Err("bystanders.crowd_max must be at most 50".into());
        }
        Ok(())
    }
}

/// A field measurement replayed by `ephemera-sim trial` ([`trial`](crate::trial)): pairs
/// of phones held at measured distances for a set time in one radio environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialConfig {
    /// What the trial replays, with its source.
    pub name: String,
    /// The name of this scenario's `[radio]` settings in outputs (e.g. `"tram"`).
    pub radio_profile: String,
    /// Where the phones are.
    pub environment: crate::radio::Environment,
    /// How long each pair is held (minutes).
    pub minutes: u32,
    /// When the pairs start, seconds after midnight. Default 08:00.
    #[serde(default = "TrialConfig::default_start_s")]
    pub start_s: u32,
    /// A pair is a true contact within this distance (m). Default 2.
    #[serde(default = "TrialConfig::default_close_m")]
    pub close_m: f64,
    /// Times the whole trial is replayed, each with fresh radio draws and phones
    /// (the seed, the seed + 1, …). Default 20.
    #[serde(default = "TrialConfig::default_replications")]
    pub replications: u32,
    /// The attenuation sweep's step (dB) between its last bounds of 40 and 96. Default 2.
    #[serde(default = "TrialConfig::default_sweep_step_db")]
    pub sweep_step_db: u8,
    /// The measured positions: a distance and how many pairs were measured at it.
    pub pairs: Vec<TrialPairs>,
    /// The trial's published results, printed beside the replay's.
    #[serde(default)]
    pub published: Vec<PublishedRate>,
}

/// Pairs of phones measured at one distance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialPairs {
    /// Distance between the two phones (m).
    pub distance_m: f64,
    /// Pairs measured at it.
    pub count: u32,
}

/// A published true- and false-positive rate of one detection rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedRate {
    /// The rule (one of [`trial::rules`](crate::trial::rules)).
    pub rule: String,
    /// Share of the pairs within `close_m` it notified.
    pub tpr: f64,
    /// Share of the pairs beyond `close_m` it notified.
    pub fpr: f64,
}

impl TrialConfig {
    fn default_start_s() -> u32 {
        8 * 3600
    }

    fn default_close_m() -> f64 {
        2.0
    }

    fn default_replications() -> u32 {
        20
    }

    fn default_sweep_step_db() -> u8 {
        2
    }

    /// Pairs in all.
    pub fn pair_count(&self) -> u32 {
        self.pairs.iter().map(|p| p.count).sum()
    }

    fn validate(&self) -> Result<(), String> {
        if !(1..=180).contains(&self.minutes) {
            return Err("trial.minutes must be in 1..=180".into());
        }
        if self.start_s + self.minutes * 60 > 86_400 - 3_600 {
            return Err("trial.start_s + minutes must end at least an hour before midnight".into());
        }
        if !(self.close_m > 0.0 && self.close_m.is_finite()) {
            return Err("trial.close_m must be positive".into());
        }
        if !(2..=1_000).contains(&self.replications) {
            return Err("trial.replications must be in 2..=1000".into());
        }
        if !(1..=28).contains(&self.sweep_step_db) {
            return Err("trial.sweep_step_db must be in 1..=28".into());
        }
        if self
            .pairs
            .iter()
            .any(|p| !(p.distance_m > 0.0 && p.distance_m <= 100.0) || p.count == 0)
        {
            return Err(
                "trial.pairs need a distance_m in (0, 100] and a count of at least 1".into(),
            );
        }
        let n = self.pairs.iter().map(|p| u64::from(p.count)).sum::<u64>();
        if n == 0 || n > 10_000 {
            return Err("trial.pairs must hold 1 to 10,000 pairs".into());
        }
        let rate = |r: f64| (0.0..=1.0).contains(&r);
        if self.published.iter().any(|p| !rate(p.tpr) || !rate(p.fpr)) {
            return Err("trial.published rates must be in 0..=1".into());
        }
        Ok(())
    }
}

/// What counts as a close contact (the ground truth).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroundTruthConfig {
    /// Within this distance (m). Default 2.
    pub distance_m: f64,
    /// For at least this many cumulative minutes in one UTC day. Default 15.
    pub minutes: f64,
    /// Days after a notification over which the truth by infection counts who tested
    /// positive or was infected (`infection_truth`). Default 7.
    pub follow_up_days: u32,
}

impl Default for GroundTruthConfig {
    fn default() -> Self {
        GroundTruthConfig {
            distance_m: 2.0,
            minutes: 15.0,
            follow_up_days: 7,
        }
    }
}

/// The phones' exposure scoring (the client's `RiskConfig`); a notification is a day the
/// phone scores as high risk.
///
/// Defaults: the client's own, the Dutch CoronaMelder v3 configuration (thresholds 56, 62,
/// 73 dB; weights 1.5, 1.0, 0.4, 0; 300 weighted seconds a window, 900 a day).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionConfig {
    /// Upper bounds of the immediate, near and medium buckets (dB).
    pub attenuation_thresholds_db: [u8; 3],
    /// Weights of immediate, near, medium, other.
    pub attenuation_weights: [f64; 4],
    /// Weighted seconds a window needs to count.
    pub minimum_window_score: f64,
    /// Weighted seconds a day needs to notify.
    pub minimum_daily_score: f64,
    /// Thresholds swept for the precision/recall plot: from, to, step (dB).
    pub sweep_db: [u8; 3],
    /// `pet` uploads only encounters that could count for the peer, with this margin (dB;
    /// the client's `report.upload_margin_db`, default 10).
    pub upload_margin_db: u8,
    /// `pet` uploads every encounter of the infectious window (the client's
    /// `report.upload_margin_db = None`), as before issue 18.
    pub upload_all_encounters: bool,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            attenuation_thresholds_db: [56, 62, 73],
            attenuation_weights: [1.5, 1.0, 0.4, 0.0],
            minimum_window_score: 300.0,
            minimum_daily_score: 900.0,
            sweep_db: [45, 90, 1],
            upload_margin_db: 10,
            upload_all_encounters: false,
        }
    }
}

impl DetectionConfig {
    /// Notifies on any match at all (for tests of the matching path).
    pub fn any_match() -> Self {
        DetectionConfig {
            attenuation_thresholds_db: [120, 121, 122],
            attenuation_weights: [1.0, 1.0, 1.0, 1.0],
            minimum_window_score: 0.0,
            minimum_daily_score: 1.0,
            ..DetectionConfig::default()
        }
    }
}

/// The in-process authority and node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Hours between batches (cut at UTC multiples). Default 6.
    pub batch_hours: u32,
    /// Entries a non-empty batch section is padded to. Default 64.
    pub min_batch_entries: usize,
    /// Hours between a phone's syncs (the client's own schedule, ±10 %). Default 4.
    pub sync_hours: u32,
    /// Mean decoy verify/upload pairs per phone per day. Default 0.1 (the client's).
    pub decoys_per_day: f64,
    /// Nodes, each with its own health authority, its own phones (the town split into
    /// as many contiguous districts) and its own keys, relaying every upload to the others
    /// through the core's federation intake. Default 1 (no federation).
    pub nodes: u32,
    /// How the nodes are linked. Default a full mesh.
    pub topology: Topology,
    /// Seconds a relayed upload takes over one link (gossip, verification, the durable
    /// write). Default 1.
    pub relay_seconds: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            batch_hours: 6,
            min_batch_entries: 64,
            sync_hours: 4,
            decoys_per_day: 0.1,
            nodes: 1,
            topology: Topology::Mesh,
            relay_seconds: 1,
        }
    }
}

/// The most nodes a scenario may federate.
pub const MAX_NODES: u32 = 64;

/// How federated nodes are linked.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Every node peers with every other: one hop between any two.
    Mesh,
    /// Node k peers with k − 1 and k + 1: the last node is `nodes − 1` hops from the first.
    Chain,
}

impl Topology {
    /// Hops between nodes `a` and `b`.
    pub fn hops(self, a: u32, b: u32) -> u32 {
        match self {
            Topology::Mesh => u32::from(a != b),
            Topology::Chain => a.abs_diff(b),
        }
    }

    /// Whether `a` and `b` peer directly.
    pub fn linked(self, a: u32, b: u32) -> bool {
        self.hops(a, b) == 1
    }
}

/// Where sniffers sit.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnifferPlacement {
    /// The busiest venues.
    Popular,
    /// Venues drawn at random.
    Random,
}

/// The broadcast-sniffing adversary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttackConfig {
    /// Sniffers, each at one venue. Default 20.
    pub sniffers: u32,
    /// Where. Default the busiest venues.
    pub placement: SnifferPlacement,
    /// A sniffer hears people up to this far (m), at a uniform distance. Default 15.
    pub range_m: f64,
}

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig {
            sniffers: 20,
            placement: SnifferPlacement::Popular,
            range_m: 15.0,
        }
    }
}

impl Scenario {
    /// Reads a TOML scenario; missing fields take their defaults.
    ///
    /// # Errors
    /// [`SimError::Scenario`] for bad TOML or unknown fields.
    pub fn from_toml(text: &str) -> Result<Scenario, SimError> {
        let bad = |e: &dyn std::fmt::Display| SimError::Scenario(e.to_string());
        let mut table: toml::Table = text.parse().map_err(|e| bad(&e))?;
        let named = table
            .get("radio")
            .and_then(|radio| radio.get("profile"))
            .cloned();
        let Some(named) = named else {
            return toml::from_str(text).map_err(|e| bad(&e));
        };
        let profile = named
            .as_str()
            .and_then(RadioProfile::from_name)
            .ok_or_else(|| {
                let names: Vec<&str> = RadioProfile::ALL.iter().map(|p| p.name()).collect();
                SimError::Scenario(format!(
                    "radio.profile {named} names no profile (one of {})",
                    names.join(", ")
                ))
            })?;
        // The profile's settings, then the file's own `[radio]` keys over them.
        let mut radio = toml::Table::try_from(profile.config()).map_err(|e| bad(&e))?;
        if let Some(toml::Value::Table(own)) = table.remove("radio") {
            overlay(&mut radio, own);
        }
        table.insert("radio".to_owned(), toml::Value::Table(radio));
        table.try_into().map_err(|e| bad(&e))
    }

    /// The scenario as TOML (every field).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a scenario serialises")
    }

    /// A tiny scenario for tests: a few hundred people, a few days.
    pub fn tiny(agents: u32, days: u32, seed: u64, scheme: SchemeName) -> Scenario {
        Scenario {
            agents,
            days,
            seed,
            scheme,
            ..Scenario::default()
        }
    }

    /// For tests: `initial` of the people infected before day 0, and every infected
    /// person tested within hours and uploading, so that a tiny town has many uploads.
    pub fn with_eager_testing(mut self, initial: f64) -> Scenario {
        self.epidemic.initial_infected = initial;
        self.testing.symptomatic_tested = 1.0;
        self.testing.asymptomatic_tested = 1.0;
        self.testing.upload_consent = 1.0;
        self.testing.delay_days = [0.2, 0.5];
        self
    }

    /// Checks the rules that span fields.
    ///
    /// # Errors
    /// [`SimError::Scenario`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |what: &str| Err(SimError::Scenario(what.to_owned()));
        if self.agents < 2 {
            return bad("agents must be at least 2");
        }
        let p = &self.population;
        // Phones cost the run's time and memory; without them (uptake 0: the epidemic
        // alone, as in the OpenABM comparison) a run may cover a whole epidemic.
        let longest = if p.app_uptake == 0.0 {
            MAX_EPIDEMIC_DAYS
        } else {
            MAX_DAYS
        };
        if self.days == 0 || self.days > longest {
            return bad(&format!(
                "days must be 1..={MAX_DAYS} (up to {MAX_EPIDEMIC_DAYS} with population.app_uptake = 0)"
            ));
        }
        if !(0.0..=1.0).contains(&p.app_uptake) {
            return bad("population.app_uptake must be in 0..=1");
        }
        if p.household_sizes.iter().any(|s| *s < 0.0)
            || p.household_sizes.iter().sum::<f64>() <= 0.0
        {
            return bad("population.household_sizes must be non-negative and not all 0");
        }
        if p.child_share + p.elderly_share > 1.0 {
            return bad("population child + elderly shares exceed 1");
        }
        let s = &self.scanning;
        if s.period_min_s == 0 || s.period_min_s > s.period_max_s || s.period_max_s > 600 {
            return bad("scanning periods must satisfy 0 < min <= max <= 600");
        }
        if s.adverts_per_scan == 0 {
            return bad("scanning.adverts_per_scan must be positive");
        }
        if self.node.batch_hours == 0 || 24 % self.node.batch_hours != 0 {
            return bad("node.batch_hours must divide 24");
        }
        if self.node.nodes == 0 || self.node.nodes > MAX_NODES {
            return Err(SimError::Scenario(format!(
                "node.nodes must be in 1..={MAX_NODES}"
            )));
        }
        if self.node.nodes > self.agents {
            return bad("node.nodes must not exceed agents");
        }
        if self.node.relay_seconds > 86_400 {
            return bad("node.relay_seconds must be at most 86400 (a day)");
        }
        if self.node.sync_hours == 0 {
            return bad("node.sync_hours must be positive");
        }
        let d = &self.detection;
        if d.sweep_db[2] == 0 || d.sweep_db[0] > d.sweep_db[1] {
            return bad("detection.sweep_db must be [from, to, step>0]");
        }
        if !(d.attenuation_thresholds_db[0] <= d.attenuation_thresholds_db[1]
            && d.attenuation_thresholds_db[1] <= d.attenuation_thresholds_db[2])
        {
            return bad("detection thresholds must ascend");
        }
        if self.ground_truth.distance_m <= 0.0 || self.ground_truth.minutes <= 0.0 {
            return bad("ground_truth values must be positive");
        }
        if self.ground_truth.follow_up_days > 365 {
            return bad("ground_truth.follow_up_days must be at most 365");
        }
        if let Some(i) = &self.interventions {
            i.validate().map_err(SimError::Scenario)?;
        }
        if let Some(b) = &self.bystanders {
            b.validate().map_err(SimError::Scenario)?;
        }
        if let Some(t) = &self.trial {
            t.validate().map_err(SimError::Scenario)?;
        }
        Ok(())
    }
}

/// Puts `over`'s keys into `base`, table by table (a nested table's keys one by one).
fn overlay(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => overlay(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_fills_defaults() {
        let s = Scenario::from_toml("agents = 500\nscheme = \"gaen\"\n[attack]\nsniffers = 3\n")
            .unwrap();
        assert_eq!(s.agents, 500);
        assert_eq!(s.scheme, SchemeName::Gaen);
        assert_eq!(s.attack.sniffers, 3);
        assert_eq!(s.radio, RadioConfig::default());
        let text = toml::to_string(&s).unwrap();
        assert_eq!(Scenario::from_toml(&text).unwrap(), s);
        assert!(Scenario::from_toml("agentz = 5").is_err());
        assert!(!text.contains("interventions"), "absent by default");
        assert!(!text.contains("bystanders"), "absent by default");
        s.validate().unwrap();
        assert!(
            Scenario {
                days: 0,
                ..s.clone()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn only_runs_without_phones_may_pass_28_days() {
        let with_phones = Scenario {
            days: MAX_DAYS + 1,
            ..Scenario::default()
        };
        let err = with_phones.validate().unwrap_err().to_string();
        assert!(err.contains("app_uptake = 0"), "{err}");
        let mut epidemic_only = with_phones;
        epidemic_only.population.app_uptake = 0.0;
        epidemic_only.validate().unwrap();
        epidemic_only.days = MAX_EPIDEMIC_DAYS;
        epidemic_only.validate().unwrap();
        epidemic_only.days = MAX_EPIDEMIC_DAYS + 1;
        assert!(epidemic_only.validate().is_err());
    }

    #[test]
    fn interventions_parse_validate_and_reject_unknown_keys() {
        let s = Scenario::from_toml("[interventions]\ntest_sensitivity = 0.7\n").unwrap();
        let i = s.interventions.clone().unwrap();
        assert_eq!(i.test_sensitivity, 0.7);
        assert_eq!(i.quarantine_length_traced_positive, 14, "OpenABM's default");
        s.validate().unwrap();
        assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s);
        // The name the issue guessed is not OpenABM's, and is refused, not ignored.
        assert!(
            Scenario::from_toml("[interventions]\nquarantine_length_traced_digital = 7\n").is_err()
        );
        let bad = Scenario::from_toml("[interventions]\ntest_specificity = 1.5\n").unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("interventions.test_specificity"), "{err}");
        let long = Scenario::from_toml("[interventions]\nquarantine_length_self = 9999\n");
        let err = long.unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("quarantine_length_self"), "{err}");
    }

    #[test]
    fn federation_keys_parse_validate_and_reject_bad_values() {
        let s = Scenario::from_toml("[node]\nnodes = 3\ntopology = \"chain\"\n").unwrap();
        assert_eq!((s.node.nodes, s.node.topology), (3, Topology::Chain));
        assert_eq!(s.node.relay_seconds, 1, "the default");
        s.validate().unwrap();
        assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s);
        assert!(Scenario::from_toml("[node]\ntopology = \"star\"\n").is_err());
        assert!(Scenario::from_toml("[node]\nnode_count = 3\n").is_err());
        for (text, name) in [
            ("nodes = 0", "node.nodes"),
            ("nodes = 65", "node.nodes"),
            ("relay_seconds = 90000", "node.relay_seconds"),
        ] {
            let bad = Scenario::from_toml(&format!("[node]\n{text}\n")).unwrap();
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{text}: {err}");
        }
        let mut few = Scenario::tiny(5, 1, 1, SchemeName::Gaen);
        few.node.nodes = 6;
        assert!(
            few.validate()
                .unwrap_err()
                .to_string()
                .contains("node.nodes")
        );
        // Hops: one between any two in a mesh, the index distance in a chain.
        assert_eq!(Topology::Mesh.hops(0, 3), 1);
        assert_eq!(Topology::Mesh.hops(2, 2), 0);
        assert_eq!(Topology::Chain.hops(0, 3), 3);
        assert!(Topology::Chain.linked(2, 1) && !Topology::Chain.linked(0, 2));
    }

    #[test]
    fn bystanders_parse_validate_and_reject_unknown_keys() {
        let s = Scenario::from_toml("[bystanders]\ncrowd_max = 5\n").unwrap();
        let b = s.bystanders.clone().unwrap();
        assert_eq!(b.crowd_max, 5);
        assert_eq!(
            b.apartment_share,
            BystanderConfig::default().apartment_share
        );
        s.validate().unwrap();
        assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s);
        assert!(Scenario::from_toml("[bystanders]\ncrowds = 5\n").is_err());
        for (text, name) in [
            ("apartment_share = 1.5", "apartment_share"),
            ("range_m = 0.0", "range_m"),
            ("passers_by_per_day = -1.0", "passers_by_per_day"),
            ("crowd_max = 500", "crowd_max"),
        ] {
            let bad = Scenario::from_toml(&format!("[bystanders]\n{text}\n")).unwrap();
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("bystanders.{name}")), "{err}");
        }
        let far = Scenario::from_toml("[ground_truth]\nfollow_up_days = 400\n").unwrap();
        assert!(far.validate().is_err());
    }
}
