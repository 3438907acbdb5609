//! Runs across seeds (`ephemera-sim --seeds N`): one row per seed and scheme in
//! `seeds.csv`, and per scheme and figure the mean with a 95 % Student t interval in the
//! aggregate `summary.json`. [`run_seeds`] is the one loop over seeds, for `--seeds` and
//! for every point of a sweep ([`param_sweep`](crate::param_sweep)).
//!
//! The interval is `mean ± t(0.975, n − 1) · sd / √n` over the per-seed values (sd with
//! n − 1): it treats the seeds as independent draws of the same scenario and assumes the
//! mean is about normal, which holds for these counts and shares at 10 or more seeds
//! better than at 3. A share whose denominator is 0 in a seed (precision with no
//! notification) enters as 0, as in that seed's summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::error::SimError;
use super::interventions::Impact;
use super::metrics::{Scored, Summary};
use super::output::{io_error, write_outputs};
use super::provenance::Provenance;
use super::scenario::{Scenario, SchemeName};
use super::{RunOptions, run_with};

/// Two-sided 97.5 % quantiles of Student's t for 1 to 30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 0.975 quantile of Student's t with `df` degrees of freedom (`df` ≥ 1): the table to
/// 30, then the Cornish–Fisher expansion around the normal's 1.959964 (within 0.001).
pub fn t_975(df: u32) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T_975[df as usize - 1],
        _ => {
            let z: f64 = 1.959_964;
            let n = f64::from(df);
            z + (z.powi(3) + z) / (4.0 * n)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// A figure across seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Interval {
    /// Seeds.
    pub n: u32,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    pub sd: f64,
    /// Lower end of the 95 % t interval of the mean.
    pub ci95_low: f64,
    /// Upper end.
    pub ci95_high: f64,
}

/// Rounds to 6 significant places after the point, for stable files.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

impl Interval {
    /// The mean and 95 % t interval of `values` (at least 2).
    pub fn of(values: &[f64]) -> Option<Interval> {
        if values.len() < 2 {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let sd = var.sqrt();
        let half = t_975(values.len() as u32 - 1) * sd / n.sqrt();
        Some(Interval {
            n: values.len() as u32,
            mean: round6(mean),
            sd: round6(sd),
            ci95_low: round6(mean - half),
            ci95_high: round6(mean + half),
        })
    }
}

/// A figure's name and how to read it from a run's summary.
pub type Figure = (&'static str, fn(&Summary) -> f64);

/// The figures aggregated across seeds.
pub const FIGURES: [Figure; 19] = [
    ("infected", |s| s.infected as f64),
    ("positives", |s| s.positives as f64),
    ("uploads", |s| s.uploads as f64),
    ("close_contacts_true", |s| s.close_contacts_true as f64),
    ("notified", |s| s.notified as f64),
    ("true_positives", |s| s.true_positives as f64),
    ("precision", |s| s.precision),
    ("recall", |s| s.recall),
    ("f1", |s| s.f1),
    ("notifications_per_uploader", |s| {
        s.notifications_per_uploader
    }),
    ("notified_people_per_uploader", |s| {
        s.notified_people_per_uploader
    }),
    ("notified_infected_share", |s| s.notified_infected_share),
    ("upload_to_notification_median_hours", |s| {
        s.upload_to_notification_hours.median
    }),
    ("bytes_downloaded_per_phone_per_day", |s| {
        s.bytes_downloaded_per_phone_per_day
    }),
    ("attack_linked_fraction", |s| s.attack.linked_fraction),
    ("infection_recall", |s| s.infection_truth.infection_recall),
    ("attack_rate_tested", |s| {
        s.infection_truth.attack_rate_tested
    }),
    ("attack_rate_infected", |s| {
        s.infection_truth.attack_rate_infected
    }),
    ("population_coverage", |s| {
        s.infection_truth.population_coverage
    }),
];

/// A figure of a run with interventions and how to read it from its impact.
pub type ImpactFigure = (&'static str, fn(&Impact) -> f64);

/// The impact figures, aggregated (and in `seeds.csv`) when every run has interventions.
pub const IMPACT_FIGURES: [ImpactFigure; 11] = [
    ("infected_app", |i| i.infected_app as f64),
    ("infected_app_off", |i| i.infected_app_off as f64),
    ("infections_averted", |i| i.infections_averted as f64),
    ("infections_averted_share", |i| i.infections_averted_share),
    ("consenting_index_cases", |i| {
        i.consenting_index_cases as f64
    }),
    ("averted_per_uploader", |i| i.averted_per_uploader),
    ("averted_per_consenting_index_case", |i| {
        i.averted_per_consenting_index_case
    }),
    ("r_app", |i| i.r_app),
    ("r_app_off", |i| i.r_app_off),
    ("r_reduction", |i| i.r_reduction),
    ("person_days_home_app", |i| i.person_days_home_app as f64),
];

/// A figure's name and how to read it, whichever table it comes from.
type Column = (&'static str, Box<dyn Fn(&Summary) -> f64>);

/// Every figure of `summaries`: the [`FIGURES`], and the [`IMPACT_FIGURES`] when every
/// run has an impact.
fn figures(summaries: &[Summary]) -> Vec<Column> {
    let mut all: Vec<Column> = FIGURES
        .iter()
        .map(|(name, f)| (*name, Box::new(*f) as Box<dyn Fn(&Summary) -> f64>))
        .collect();
    if !summaries.is_empty() && summaries.iter().all(|s| s.impact.is_some()) {
        for (name, f) in IMPACT_FIGURES {
            all.push((
                name,
                Box::new(move |s: &Summary| s.impact.as_ref().map_or(0.0, f)),
            ));
        }
    }
    all
}

/// Per scheme, per figure: the interval across `summaries` (those of one scheme with at
/// least 2 seeds).
pub fn aggregate(
    summaries: &[Summary],
) -> BTreeMap<&'static str, BTreeMap<&'static str, Interval>> {
    let figures = figures(summaries);
    let mut by_scheme: BTreeMap<&'static str, Vec<&Summary>> = BTreeMap::new();
    for s in summaries {
        by_scheme.entry(s.scheme).or_default().push(s);
    }
    by_scheme
        .into_iter()
        .map(|(scheme, runs)| {
            let figures = figures
                .iter()
                .filter_map(|(name, f)| {
                    let values: Vec<f64> = runs.iter().map(|s| f(s)).collect();
                    Interval::of(&values).map(|i| (*name, i))
                })
                .collect();
            (scheme, figures)
        })
        .collect()
}

/// `seeds.csv`: one row per run (seed and scheme), the figures (the [`FIGURES`], then
/// the [`IMPACT_FIGURES`] of runs with interventions) as columns.
pub fn csv(summaries: &[Summary]) -> String {
    let figures = figures(summaries);
    let mut out = String::from("seed,scheme");
    for (name, _) in &figures {
        out.push(',');
        out.push_str(name);
    }
    out.push('\n');
    for s in summaries {
        let _ = write!(out, "{},{}", s.seed, s.scheme);
        for (_, f) in &figures {
            let _ = write!(out, ",{}", f(s));
        }
        out.push('\n');
    }
    out
}

/// The aggregate as a Markdown table: per scheme and figure, mean and 95 % interval.
pub fn table(aggregate: &BTreeMap<&'static str, BTreeMap<&'static str, Interval>>) -> String {
    let mut out = String::from(
        "| scheme | figure | n | mean | 95 % interval (t) |\n| --- | --- | --- | --- | --- |\n",
    );
    for (scheme, figures) in aggregate {
        for (name, i) in figures {
            let _ = writeln!(
                out,
                "| {scheme} | {name} | {} | {:.4} | {:.4} – {:.4} |",
                i.n, i.mean, i.ci95_low, i.ci95_high
            );
        }
    }
    out
}

/// Writes `seeds.csv` and the aggregate `summary.json` (the interval's method, the seeds,
/// per scheme and figure the [`Interval`], the provenance and the scenario with its first
/// seed) into `dir`, beside the per-seed folders.
///
/// # Errors
/// [`SimError::Output`] when a file cannot be written.
pub fn write(dir: &Path, summaries: &[Summary], scenario: &Scenario) -> Result<(), SimError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let path = dir.join("seeds.csv");
    std::fs::write(&path, csv(summaries)).map_err(io_error(&path))?;
    let mut seeds: Vec<u64> = summaries.iter().map(|s| s.seed).collect();
    seeds.dedup();
    let json = serde_json::json!({
        "interval": "95 % Student t interval of the mean across seeds: mean ± t(0.975, n − 1) · sd / √n",
        "seeds": seeds,
        "aggregate": aggregate(summaries),
        "provenance": Provenance::of_this_process(scenario.seed),
        "scenario": scenario,
    });
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(&json).expect("aggregate serialises");
    std::fs::write(&path, text + "\n").map_err(io_error(&path))
}

/// Sees each run as it ends (the command line prints its summary; a sweep stays quiet).
pub type Report<'a> = &'a mut dyn FnMut(&Scored);

/// The seeds of a run across `n` seeds from `first`: `first`, `first + 1`, …
pub fn seed_list(first: u64, n: u32) -> Vec<u64> {
    (0..u64::from(n)).map(|i| first.wrapping_add(i)).collect()
}

/// The true (agent, sim day) contacts a run notified.
fn found(scored: &Scored) -> Vec<(u32, u32)> {
    let notified: std::collections::HashSet<&(u32, u32)> = scored.notified.iter().collect();
    scored
        .truth
        .iter()
        .filter(|k| notified.contains(k))
        .copied()
        .collect()
}

/// Runs `scenario` once per scheme of `schemes` (its own seed), hands each run to `report`
/// and writes the outputs ([`write_outputs`]) into `out`, or `out/<scheme>` for more than
/// one scheme. With `compare_misses`, a `pet` run after a `gaen` run classifies the close
/// contacts it misses and `gaen` found ([`misses`](crate::misses)).
///
/// # Errors
/// As [`run_with`] and [`write_outputs`].
pub fn run_schemes(
    scenario: &Scenario,
    schemes: &[SchemeName],
    options: &RunOptions,
    compare_misses: bool,
    out: Option<&Path>,
    report: Report<'_>,
) -> Result<Vec<Scored>, SimError> {
    let mut options = options.clone();
    let mut results = Vec::new();
    for scheme in schemes {
        let scenario = Scenario {
            scheme: *scheme,
            ..scenario.clone()
        };
        eprintln!(
            "ephemera-sim: {} people, {} days, {}, seed {}",
            scenario.agents,
            scenario.days,
            scheme.as_str(),
            scenario.seed
        );
        let scored = run_with(&scenario, &options)?;
        report(&scored);
        if compare_misses && *scheme == SchemeName::Gaen {
            options.gaen_found = Some(std::sync::Arc::new(found(&scored)));
        }
        results.push(scored);
    }
    if let Some(out) = out {
        for (i, scored) in results.iter().enumerate() {
            let others: Vec<_> = results
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, r)| r)
                .collect();
            let dir = if results.len() > 1 {
                out.join(scored.summary.scheme)
            } else {
                out.to_path_buf()
            };
            write_outputs(&dir, scored, &others)?;
        }
        eprintln!("ephemera-sim: wrote {}", out.display());
    }
    Ok(results)
}

/// Runs `scenario` with each of `seeds` ([`run_schemes`], each seed's outputs in
/// `out/seed-S`) and returns every run's summary, then writes `seeds.csv` and the
/// aggregate `summary.json` into `out` ([`write()`]). Only the summaries outlive a seed:
/// one run's phones are in memory at a time.
///
/// # Errors
/// As [`run_schemes`] and [`write()`].
pub fn run_seeds(
    scenario: &Scenario,
    schemes: &[SchemeName],
    seeds: &[u64],
    options: &RunOptions,
    compare_misses: bool,
    out: Option<&Path>,
    report: Report<'_>,
) -> Result<Vec<Summary>, SimError> {
    let mut summaries = Vec::new();
    for seed in seeds {
        let scenario = Scenario {
            seed: *seed,
            ..scenario.clone()
        };
        let dir = out.map(|o| o.join(format!("seed-{seed}")));
        let scored = run_schemes(
            &scenario,
            schemes,
            options,
            compare_misses,
            dir.as_deref(),
            &mut *report,
        )?;
        summaries.extend(scored.into_iter().map(|s| s.summary));
    }
    if let Some(out) = out {
        write(out, &summaries, scenario)?;
        eprintln!(
            "ephemera-sim: wrote seeds.csv and summary.json into {}",
            out.display()
        );
    }
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_t_interval_matches_a_hand_computation() {
        // 1..=5: mean 3, sd √2.5 = 1.5811, t(4) = 2.776: half-width 1.9629.
        let i = Interval::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!((i.n, i.mean), (5, 3.0));
        assert!((i.sd - 1.581139).abs() < 1e-6, "{i:?}");
        assert!((i.ci95_low - (3.0 - 1.962928)).abs() < 1e-5, "{i:?}");
        assert!((i.ci95_high - (3.0 + 1.962928)).abs() < 1e-5, "{i:?}");
        assert_eq!(Interval::of(&[1.0]), None, "one seed has no interval");
        let flat = Interval::of(&[0.5, 0.5, 0.5]).unwrap();
        assert_eq!((flat.ci95_low, flat.ci95_high), (0.5, 0.5));
    }

    #[test]
    fn the_t_quantile_joins_the_expansion_smoothly() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(30), 2.042);
        // Published values: t(40) = 2.021, t(60) = 2.000, t(120) = 1.980.
        for (df, t) in [(31, 2.040), (40, 2.021), (60, 2.000), (120, 1.980)] {
            assert!((t_975(df) - t).abs() < 0.001, "{df}: {}", t_975(df));
        }
        assert!(t_975(100_000) > 1.959 && t_975(100_000) < 1.961);
    }
}
