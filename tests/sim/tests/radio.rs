//! The radio profiles against the measurements they cite: `tests/sim/data/epfl_attenuation.csv`
//! (per-distance GAEN attenuation of the EPFL/DP-3T campaign, experiment 34) read from disk.

use std::collections::HashMap;

use ephemera_sim::radio::RadioStats;
use ephemera_sim::radio_profile::RadioProfile;
use ephemera_sim::{Scenario, radio_stats};

/// (scene, bin) → (samples, mean dB, σ dB) of experiment 34.
fn epfl_table() -> HashMap<(String, String), (u64, f64, f64)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/epfl_attenuation.csv");
    let text = std::fs::read_to_string(path).expect("the shipped data file");
    let mut rows = text.lines().filter(|l| !l.starts_with('#'));
    assert_eq!(
        rows.next(),
        Some("experiment,scenario,bin_lo_m,bin_hi_m,n,mean_db,sd_db")
    );
    rows.filter_map(|line| {
        let f: Vec<&str> = line.split(',').collect();
        (f[0] == "exp34").then(|| {
            (
                (f[1].to_owned(), format!("{}-{}", f[2], f[3])),
                (
                    f[4].parse().unwrap(),
                    f[5].parse().unwrap(),
                    f[6].parse().unwrap(),
                ),
            )
        })
    })
    .collect()
}

/// The simulated environment each measured scene stands for (`radio_profile.rs`).
const SCENES: [(&str, &str); 6] = [
    ("home", "lunch"),
    ("work", "office"),
    ("shop", "queue"),
    ("transit", "train"),
    ("social", "party"),
    ("outdoor", "movement"),
];

/// Bins with at least this many measured samples are compared.
const MIN_SAMPLES: u64 = 50;

/// Per scene: (bins whose simulated mean lies outside the measured mean ± σ, the simulated
/// minus the measured attenuation gap between 0–1 m and 3–5 m).
fn compare(profile: RadioProfile) -> Vec<(&'static str, Vec<String>, f64)> {
    let table = epfl_table();
    let scenario = Scenario::default();
    let stats: Vec<RadioStats> = radio_stats(
        &profile.config(),
        20_000,
        scenario.scanning.adverts_per_scan,
        3,
    );
    SCENES
        .iter()
        .map(|(env, scene)| {
            let sim = stats.iter().find(|s| s.environment == *env).unwrap();
            let mean_of = |bin: &str| sim.bins.iter().find(|b| b.bin == bin).unwrap().mean_db;
            let measured = |bin: &str| table[&(scene.to_string(), bin.to_owned())];
            let outside = sim
                .bins
                .iter()
                .filter_map(|b| {
                    let (n, mean, sd) = *table.get(&(scene.to_string(), b.bin.clone()))?;
                    (n >= MIN_SAMPLES && (b.mean_db - mean).abs() > sd)
                        .then(|| format!("{} m: {} vs {mean} ± {sd}", b.bin, b.mean_db))
                })
                .collect();
            let gap = (mean_of("3-5") - mean_of("0-1")) - (measured("3-5").1 - measured("0-1").1);
            (*env, outside, gap)
        })
        .collect()
}

/// `epfl` reproduces every measured bin mean within the data's own σ, and the attenuation
/// gap between 0–1 m and 3–5 m within ±3 dB (the spread the issue quotes across
/// environments), in every scene.
#[test]
fn the_epfl_profile_reproduces_the_epfl_table_within_its_spread() {
    for (env, outside, gap) in compare(RadioProfile::Epfl) {
        assert!(outside.is_empty(), "{env}: {outside:?}");
        assert!(gap.abs() <= 3.0, "{env}: gap off by {gap:.1} dB");
    }
}

/// The comparison discriminates: the default `cwa` radio (exponent 2.5 indoors, about
/// 20 dB between 0–1 m and 3–5 m) fails it, by more than 6 dB of gap in most scenes.
#[test]
fn the_default_radio_fails_the_epfl_comparison() {
    let compared = compare(RadioProfile::Cwa);
    let steep = compared.iter().filter(|(_, _, gap)| *gap > 6.0).count();
    assert!(steep >= 4, "{compared:?}");
    assert!(compared.iter().any(|(_, outside, _)| !outside.is_empty()));
}

/// A scenario names a profile; its own `[radio]` keys override the profile's, an unknown
/// profile is refused by name, and the effective scenario reads back the same.
#[test]
fn a_scenario_starts_from_its_named_profile() {
    let scenario = Scenario::from_toml(
        "[radio]\nprofile = \"epfl\"\nscan_sd_db = 4.5\n[radio.transit]\nexponent = 2.0\n",
    )
    .unwrap();
    let epfl = RadioProfile::Epfl.config();
    assert_eq!(scenario.radio.profile, Some(RadioProfile::Epfl));
    assert_eq!(scenario.radio.scan_sd_db, 4.5);
    assert_eq!(scenario.radio.transit.exponent, 2.0);
    assert_eq!(scenario.radio.transit.offset_db, epfl.transit.offset_db);
    assert_eq!(scenario.radio.home, epfl.home);
    assert_eq!(Scenario::from_toml(&scenario.to_toml()).unwrap(), scenario);
    let err = Scenario::from_toml("[radio]\nprofile = \"lab\"\n").unwrap_err();
    assert!(err.to_string().contains("radio.profile"), "{err}");
    assert!(Scenario::from_toml("[radio]\nprofile = \"epfl\"\nslope = 1.0\n").is_err());
    // Without a profile nothing changes: the default radio.
    assert_eq!(
        Scenario::from_toml("agents = 500\n").unwrap().radio,
        RadioProfile::Cwa.config()
    );
}
