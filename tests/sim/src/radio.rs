//! The radio model: attenuation from distance, environment, devices and noise, and the
//! chance that an advertisement is received.
//!
//! ```text
//! attenuation = reference + 10·n_env·log10(d) + offset_env          (path loss)
//!             + tx residual(sender) + rx residual(receiver)        (per phone)
//!             + N(0, episode σ² + extra_env σ²)                    (per episode, direction)
//!             + N(0, scan σ²)                                      (per scan)
//! P(one advertisement received) = advert_reception × clamp((floor − a) / fade_band, 0, 1)
//! ```
//! Defaults and their sources are documented on [`RadioConfig`].

use serde::{Deserialize, Serialize};

use super::rng::{Domain, Stream};
use super::scenario::{EnvironmentRadio, RadioConfig};

/// Distances below this are taken as this (m): the log-distance law does not hold in the
/// near field, and GAEN-era measurements rarely show attenuations below about 40 dB.
pub const MIN_DISTANCE_M: f64 = 0.5;

/// Where an episode happens; each has its own radio term and is reported separately.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// At home.
    Home = 0,
    /// At work or in an elderly group.
    Work = 1,
    /// At school.
    School = 2,
    /// In a shop.
    Shop = 3,
    /// On a bus or train.
    Transit = 4,
    /// In a bar, restaurant or gathering.
    Social = 5,
    /// Outdoors.
    Outdoor = 6,
    /// At home, through the wall between two flats (neighbours).
    Wall = 7,
}

impl Environment {
    /// Every environment, in order.
    pub const ALL: [Environment; 8] = [
        Environment::Home,
        Environment::Work,
        Environment::School,
        Environment::Shop,
        Environment::Transit,
        Environment::Social,
        Environment::Outdoor,
        Environment::Wall,
    ];

    /// Its name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Environment::Home => "home",
            Environment::Work => "work",
            Environment::School => "school",
            Environment::Shop => "shop",
            Environment::Transit => "transit",
            Environment::Social => "social",
            Environment::Outdoor => "outdoor",
            Environment::Wall => "wall",
        }
    }

    /// From its index.
    pub fn from_index(i: u8) -> Environment {
        Environment::ALL[usize::from(i).min(Environment::ALL.len() - 1)]
    }
}

/// The radio model of a scenario.
#[derive(Copy, Clone, Debug)]
pub struct RadioModel<'a> {
    config: &'a RadioConfig,
}

impl<'a> RadioModel<'a> {
    /// The model with `config`.
    pub fn new(config: &'a RadioConfig) -> Self {
        RadioModel { config }
    }

    fn env(&self, env: Environment) -> &EnvironmentRadio {
        let c = self.config;
        match env {
            Environment::Home => &c.home,
            Environment::Work => &c.work,
            Environment::School => &c.school,
            Environment::Shop => &c.shop,
            Environment::Transit => &c.transit,
            Environment::Social => &c.social,
            Environment::Outdoor => &c.outdoor,
            Environment::Wall => &c.wall,
        }
    }

    /// Path loss and environment offset at `distance_m` (dB), without device terms or noise;
    /// distances below [`MIN_DISTANCE_M`] count as that.
    pub fn mean_attenuation(&self, distance_m: f64, env: Environment) -> f64 {
        let e = self.env(env);
        self.config.reference_db
            + 10.0 * e.exponent * distance_m.max(MIN_DISTANCE_M).log10()
            + e.offset_db
    }

    /// The per-episode, per-direction term (dB): orientation, pockets, bodies.
    pub(crate) fn episode_term(&self, env: Environment, rng: &mut Stream) -> f64 {
        let sd = self.config.episode_sd_db.hypot(self.env(env).extra_sd_db);
        sd * rng.normal()
    }

    /// The per-scan term (dB) from a standard normal draw.
    pub fn scan_term(&self, standard_normal: f64) -> f64 {
        self.config.scan_sd_db * standard_normal
    }

    /// Chance that one advertisement at attenuation `a` is received.
    pub fn advert_probability(&self, a: f64) -> f64 {
        let c = self.config;
        if a > c.floor_db {
            return 0.0;
        }
        if c.fade_band_db <= 0.0 {
            return c.advert_reception;
        }
        c.advert_reception * ((c.floor_db - a) / c.fade_band_db).clamp(0.0, 1.0)
    }

    /// The RSSI a receiver measures at attenuation `a` (dBm).
    pub fn rssi(&self, a: f64) -> i8 {
        (f64::from(self.config.tx_power_dbm) - a)
            .round()
            .clamp(-127.0, 0.0) as i8
    }

    /// The reception floor (dB).
    pub fn floor_db(&self) -> f64 {
        self.config.floor_db
    }
}

/// Attenuation statistics of one distance bin.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BinStats {
    /// The bin, e.g. `"1-2"` (metres).
    pub bin: String,
    /// Samples drawn.
    pub samples: u64,
    /// Mean attenuation (dB) of the samples above the floor or not.
    pub mean_db: f64,
    /// Standard deviation (dB).
    pub sd_db: f64,
    /// 5th percentile (dB).
    pub p05_db: f64,
    /// Median (dB).
    pub p50_db: f64,
    /// 95th percentile (dB).
    pub p95_db: f64,
    /// Share of scans that catch at least one advertisement.
    pub scan_received: f64,
    /// Share of samples at or below each of the default detection thresholds 56, 62, 73 dB.
    pub at_or_below: [f64; 3],
}

/// Attenuation statistics per distance bin for one environment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RadioStats {
    /// Environment name.
    pub environment: &'static str,
    /// Per bin: 0–1, 1–2, 2–3, 3–5, 5–10 m.
    pub bins: Vec<BinStats>,
}

/// The distance bins of [`radio_stats`].
pub const DISTANCE_BINS: [(f64, f64); 5] =
    [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 5.0), (5.0, 10.0)];

/// Draws `samples` scans per distance bin and environment (distance uniform in the bin,
/// fresh phones and episode each time) and summarises the attenuation.
pub fn radio_stats(
    config: &RadioConfig,
    samples: u64,
    adverts_per_scan: u32,
    seed: u64,
) -> Vec<RadioStats> {
    let model = RadioModel::new(config);
    let mut out = Vec::new();
    for env in Environment::ALL {
        let mut bins = Vec::new();
        for (b, (lo, hi)) in DISTANCE_BINS.iter().enumerate() {
            let mut rng = Stream::new(seed, Domain::RadioStats, &[env as u64, b as u64]);
            let mut values = Vec::with_capacity(samples as usize);
            let mut received = 0u64;
            for _ in 0..samples {
                let d = rng.range_f(lo.max(0.1), *hi);
                let a = model.mean_attenuation(d, env)
                    + config.device_tx_sd_db * rng.normal()
                    + config.device_rx_sd_db * rng.normal()
                    + model.episode_term(env, &mut rng)
                    + model.scan_term(rng.normal());
                let p = model.advert_probability(a);
                let miss_all = (1.0 - p).powi(adverts_per_scan as i32);
                if rng.uniform() >= miss_all {
                    received += 1;
                }
                values.push(a);
            }
            values.sort_by(f64::total_cmp);
            let n = values.len().max(1) as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let q = |p: f64| {
                values
                    .get(((values.len() as f64 - 1.0) * p).round() as usize)
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            let below = |t: f64| values.iter().filter(|v| **v <= t).count() as f64 / n;
            let r1 = |x: f64| (x * 10.0).round() / 10.0;
            let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
            bins.push(BinStats {
                bin: format!("{lo}-{hi}"),
                samples,
                mean_db: r1(mean),
                sd_db: r1(var.sqrt()),
                p05_db: r1(q(0.05)),
                p50_db: r1(q(0.5)),
                p95_db: r1(q(0.95)),
                scan_received: r3(received as f64 / n),
                at_or_below: [r3(below(56.0)), r3(below(62.0)), r3(below(73.0))],
            });
        }
        out.push(RadioStats {
            environment: env.name(),
            bins,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_loss_matches_the_cited_mapping() {
        let config = RadioConfig::default();
        let m = RadioModel::new(&config);
        let at = |d| m.mean_attenuation(d, Environment::Home);
        assert!((at(1.0) - 51.0).abs() < 1e-9);
        assert!((at(1.5) - 55.4).abs() < 0.1, "{}", at(1.5));
        assert!((at(3.0) - 62.9).abs() < 0.1);
        assert!((at(8.0) - 73.6).abs() < 0.1);
        // Vehicles are nearly flat with distance and lossier.
        let bus = |d| m.mean_attenuation(d, Environment::Transit);
        assert!(bus(4.0) - bus(1.0) < 7.0);
        assert!(bus(1.0) > at(1.0));
    }

    #[test]
    fn statistics_grow_with_distance_and_spread_as_configured() {
        let config = RadioConfig::default();
        let stats = radio_stats(&config, 20_000, 16, 7);
        let home = &stats[0];
        assert_eq!(home.environment, "home");
        let means: Vec<f64> = home.bins.iter().map(|b| b.mean_db).collect();
        assert!(means.windows(2).all(|w| w[0] < w[1]), "{means:?}");
        // Total σ: sqrt(3² + 3² + 6² + 3²) ≈ 7.9 dB plus the spread of distance in the bin.
        let sd = home.bins[1].sd_db;
        assert!((7.5..10.0).contains(&sd), "{sd}");
        // Close phones are almost always heard; far ones less often.
        assert!(home.bins[0].scan_received > 0.99);
        assert!(home.bins[4].scan_received < home.bins[0].scan_received);
        // Noiseless: the spread is only the distance within the bin.
        let quiet = radio_stats(&config.clone().noiseless(), 5_000, 16, 7);
        assert!(quiet[0].bins[1].sd_db < 2.5);
        assert!((quiet[0].bins[1].scan_received - 1.0).abs() < 1e-9);
    }

    #[test]
    fn reception_fades_to_zero_at_the_floor() {
        let config = RadioConfig::default();
        let m = RadioModel::new(&config);
        assert_eq!(m.advert_probability(config.floor_db + 0.1), 0.0);
        assert!((m.advert_probability(50.0) - config.advert_reception).abs() < 1e-12);
        let mid = m.advert_probability(config.floor_db - config.fade_band_db / 2.0);
        assert!((mid - config.advert_reception / 2.0).abs() < 1e-9);
        assert_eq!(m.rssi(60.0), -68);
    }
}
