//! Named radio profiles from published measurements. A scenario names one with
//! `[radio] profile = "NAME"` (its own `[radio]` keys then override the profile's), and
//! `ephemera-sim radio --profile NAME` prints its attenuation table.
//!
//! - `cwa` (the default): 51 dB at 1 m, exponent 2.5 indoors, the distance mapping of the
//!   Corona-Warn-App documentation; the defaults of [`RadioConfig`].
//! - `epfl`: fitted to the EPFL/DP-3T measurement campaign (github.com/DP-3T/bt-measurements,
//!   experiment 34, commit ba9f739; CC BY-ND 4.0, EPFL and ETH Zurich), GAEN attenuations
//!   under Google's per-model calibration of 2020-12-14. Each simulated environment takes
//!   the measured scene closest to it: homes the lunch table, offices and schools the
//!   office, shops the queue, transit the train, social settings the party, outdoors the
//!   people walking. `tests/sim/data/epfl_attenuation.csv` holds the per-bin figures and
//!   `tests/sim/data/extract_epfl.py` derives them and the fit.
//! - `transport`: `cwa` with transit replaced by the fit to Leith and Farrell's Dublin tram
//!   measurement (`tests/sim/scenarios/tram.toml`, docs/SIMULATION.md "Tram").

use serde::{Deserialize, Serialize};

use super::scenario::{EnvironmentRadio, RadioConfig};

/// A named radio profile.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RadioProfile {
    /// The Corona-Warn-App distance mapping (the default).
    Cwa,
    /// The EPFL/DP-3T campaign, per environment.
    Epfl,
    /// `cwa` with Leith and Farrell's tram fit for transit.
    Transport,
}

/// The attenuation at 1 m the `epfl` profile keeps as its reference; each environment's
/// fitted reference is this plus its offset.
const EPFL_REFERENCE_DB: f64 = 51.0;
/// The `epfl` profile's per-episode σ: the smallest fitted (the office); the other scenes
/// add theirs as an environment's extra σ.
const EPFL_EPISODE_SD_DB: f64 = 2.9;

impl RadioProfile {
    /// Every profile.
    pub const ALL: [RadioProfile; 3] = [
        RadioProfile::Cwa,
        RadioProfile::Epfl,
        RadioProfile::Transport,
    ];

    /// Its name in scenarios and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RadioProfile::Cwa => "cwa",
            RadioProfile::Epfl => "epfl",
            RadioProfile::Transport => "transport",
        }
    }

    /// The profile called `name`.
    pub fn from_name(name: &str) -> Option<RadioProfile> {
        RadioProfile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Its radio settings.
    pub fn config(self) -> RadioConfig {
        let cwa = RadioConfig::default();
        match self {
            RadioProfile::Cwa => cwa,
            RadioProfile::Epfl => {
                // (reference at 1 m, exponent, per-episode σ) fitted per scene, after device
                // σ of 2.8 (transmit) and 3.2 dB (receive) and a per-scan σ of 3 dB.
                let scene = |reference: f64, exponent: f64, episode_sd: f64| EnvironmentRadio {
                    exponent,
                    offset_db: reference - EPFL_REFERENCE_DB,
                    extra_sd_db: (episode_sd.powi(2) - EPFL_EPISODE_SD_DB.powi(2))
                        .max(0.0)
                        .sqrt(),
                };
                let lunch = scene(53.5, 1.45, 5.3);
                let office = scene(52.0, 0.92, 2.9);
                RadioConfig {
                    reference_db: EPFL_REFERENCE_DB,
                    // The per-model disagreement between EPFL's anechoic calibration and
                    // Google's table (σ 4.0 dB transmit, 4.5 receive over 11 models), split
                    // evenly between the two.
                    device_tx_sd_db: 2.8,
                    device_rx_sd_db: 3.2,
                    episode_sd_db: EPFL_EPISODE_SD_DB,
                    scan_sd_db: 3.0,
                    home: lunch,
                    work: office,
                    school: office,
                    shop: scene(53.5, 1.02, 7.1),
                    transit: scene(53.8, 1.40, 7.1),
                    social: scene(56.4, 1.20, 7.1),
                    outdoor: scene(54.4, 0.92, 6.0),
                    // Not measured: the home's radio behind the default's wall.
                    wall: EnvironmentRadio {
                        offset_db: lunch.offset_db + cwa.wall.offset_db,
                        extra_sd_db: lunch.extra_sd_db.hypot(cwa.wall.extra_sd_db),
                        ..lunch
                    },
                    ..cwa
                }
            }
            RadioProfile::Transport => RadioConfig {
                transit: EnvironmentRadio {
                    exponent: 0.36,
                    offset_db: 12.9,
                    extra_sd_db: 0.0,
                },
                ..cwa
            },
        }
    }
}
