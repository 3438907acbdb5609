//! `ephemera-sim`: a population-scale simulation of Ephemera in which every app user runs
//! the real phone core (`ephemera_client::Phone` over a memory store).
//!
//! A run builds a population (households, small-world occupation networks and random
//! community contacts in the style of OpenABM-Covid19, places on a grid), then for each day
//! draws the contact episodes (who, where, when, how long, how close), runs the infection
//! process, and moves the radio: every 10-minute interval each phone in an episode
//! advertises, every receiver's scans (every 2.5–5 min) draw an attenuation from the
//! [`radio`] model and hand what was received to the phone. Positives go through the real
//! authorisation flow (one-time code → HMAC → certificate → verified upload) with an
//! in-process authority and node ([`server`]), which publishes signed, padded batches that
//! the phones' own sync loops fetch and match. Sniffers at venues log every broadcast they
//! hear, and after publication the [`attack`] links what it can.
//!
//! The model never reads a clock: time is simulated, and every random draw is keyed by
//! `(seed, purpose, agent or episode, day, …)`, so a seed gives the same summary whatever
//! the thread count. `wall_seconds` is measured by [`run_with`], outside the model.
//!
//! ```no_run
//! use ephemera_sim::{RunOptions, Scenario, SchemeName, run_with, write_outputs};
//! let scenario = Scenario::tiny(2_000, 7, 42, SchemeName::Gaen);
//! let scored = run_with(&scenario, &RunOptions::default()).unwrap();
//! println!("precision {} recall {}", scored.summary.precision, scored.summary.recall);
//! write_outputs(std::path::Path::new("out"), &scored, &[]).unwrap();
//! ```

pub mod attack;
pub mod bystanders;
pub mod client_sweep;
pub mod contacts;
pub mod engine;
pub mod epidemic;
pub mod error;
pub mod federation;
pub mod infection_truth;
pub mod interventions;
pub mod line_lists;
pub mod linking;
pub mod metrics;
pub mod missed;
pub mod misses;
pub mod output;
pub mod param_sweep;
pub mod phone;
pub mod population;
pub mod projection;
pub mod provenance;
pub mod radio;
pub mod radio_profile;
pub(crate) mod rng;
pub mod rooms;
pub mod scenario;
pub mod seeds;
pub mod server;
pub mod trial;

use std::io::IsTerminal;
use std::time::Instant;

pub use error::SimError;
pub use metrics::{Scored, Summary};
pub use output::write_outputs;
pub use provenance::Provenance;
pub use radio::radio_stats;
pub use scenario::{Scenario, SchemeName};

/// How to run (none of it changes the results).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Show a progress bar on stderr when it is a terminal.
    pub progress: bool,
    /// For a `pet` run: the (agent, sim day) close contacts a `gaen` run of the same
    /// scenario found; the run then classifies the ones it misses ([`misses`]).
    pub gaen_found: Option<std::sync::Arc<Vec<(u32, u32)>>>,
    /// Keep the run's line lists ([`line_lists`]) for the outputs.
    pub line_lists: bool,
}

/// Runs `scenario` on every core without a progress bar.
///
/// # Errors
/// As [`run_with`].
pub fn run(scenario: &Scenario) -> Result<Scored, SimError> {
    run_with(scenario, &RunOptions::default())
}

/// Runs `scenario` and scores it; `wall_seconds` is the time the run took.
///
/// # Errors
/// [`SimError::Scenario`] for an invalid scenario; [`SimError::Phone`] or
/// [`SimError::Node`] if a phone or the node refuses what it should accept.
pub fn run_with(scenario: &Scenario, options: &RunOptions) -> Result<Scored, SimError> {
    scenario.validate()?;
    let started = Instant::now();
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = options.threads {
        builder = builder.num_threads(n.max(1));
    }
    let pool = builder
        .build()
        .map_err(|e| SimError::Scenario(format!("thread pool: {e}")))?;
    let terminal = std::io::stderr().is_terminal();
    let bar = if options.progress && terminal {
        let bar = indicatif::ProgressBar::new(u64::from(scenario.days) * 144);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] day {msg}, {pos}/{len} intervals, eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Without a terminal, one line per simulated day (for logs), unless progress is off.
    let log_days = options.progress && !terminal;
    let intervals = std::sync::atomic::AtomicU64::new(0);
    let tick = || {
        let done = intervals.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        bar.inc(1);
        let phones = (f64::from(scenario.agents) * scenario.population.app_uptake).round();
        bar.set_message(format!(
            "{}/{} of {} people ({phones} phones)",
            (done / 144 + 1).min(u64::from(scenario.days)),
            scenario.days,
            scenario.agents
        ));
        if log_days && done.is_multiple_of(144) {
            let resident = status_kib("VmRSS:").map_or_else(String::new, |kib| {
                format!(", {:.2} GB resident", kib as f64 * 1024.0 / 1e9)
            });
            eprintln!(
                "ephemera-sim: day {}/{} done at {:.0} s{resident}",
                done / 144,
                scenario.days,
                started.elapsed().as_secs_f64()
            );
        }
    };
    let mut scored = pool.install(|| -> Result<Scored, SimError> {
        let raw = engine::simulate(scenario, &tick)?;
        let attack = attack::attack(scenario, &raw);
        let mut scored = metrics::score(scenario, &raw, attack);
        scored.line_lists = options.line_lists.then(|| line_lists::LineLists::of(&raw));
        scored.summary.impact = scenario
            .interventions
            .as_ref()
            .map(|c| interventions::impact(c, scenario, &raw));
        if let Some(found) = options.gaen_found.as_deref()
            && scenario.scheme == SchemeName::Pet
        {
            scored.misses = Some(misses::report(scenario, &raw, &scored, found));
        }
        Ok(scored)
    })?;
    bar.finish_and_clear();
    scored.summary.wall_seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    scored.summary.peak_rss_bytes = status_kib("VmHWM:").map(|kib| kib * 1024);
    Ok(scored)
}

/// A memory figure of this process from `/proc/self/status` (`VmHWM:`: the peak resident
/// set so far; `VmRSS:`: now), in KiB; `None` where the system has no such file.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
