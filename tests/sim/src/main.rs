//! `ephemera-sim`: the population simulator (see `ephemera_sim` and
//! `docs/SIMULATION.md`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ephemera_sim::projection::PublicationStats;
use ephemera_sim::{self as sim, RunOptions, Scenario};
use serde::Deserialize as _;

/// mimalloc instead of glibc's allocator: a 100,000-phone run holds millions of small,
/// long-lived allocations (phone stores, open encounters) while it churns through many
/// short-lived ones (payloads, scan lists), and glibc's bin consolidation took ~17 % of the
/// run's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulates a population whose phones run Ephemera, and scores notifications and a
/// sniffer attack.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the scenario (defaults, or the file given) as TOML, to start a scenario file.
    ShowScenario {
        /// Scenario file to read.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Prints the radio model's attenuation statistics per distance bin as JSON.
    Radio {
        /// Samples per bin and environment.
        #[arg(long, default_value_t = 10_000)]
        samples: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Scenario file whose radio settings to use.
        #[arg(long, conflicts_with = "profile")]
        scenario: Option<PathBuf>,
        /// A named radio profile instead: `cwa` (the default), `epfl` or `transport`
        /// (docs/SIMULATION.md, "Radio profiles").
        #[arg(long)]
        profile: Option<String>,
    },
    /// Projects what a phone downloads a day (index pages and batches) for both schemes at
    /// 1,000, 10,000, 35,000 and 100,000 uploads a day, from a `gaen` and a `pet` run: a
    /// table on stdout, and `projection.csv`, `projection.svg` and `projection.md`.
    Project {
        /// Folder of an earlier `--scheme both --out DIR` run (reads `DIR/gaen/summary.json`
        /// and `DIR/pet/summary.json`; the projection is written there unless `--out`
        /// says otherwise). Without it, both schemes run with the flags below.
        #[arg(long)]
        from: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// The multi-site active adversary at national upload rates (35,000 a day down to 1):
    /// how many of a positive's matches it links by the batch they arrive in, with every
    /// upload's tokens in one batch and with the node's release spread. A Markdown table on
    /// stdout, one JSON line per row on stderr.
    Link {
        /// Days of uploads.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Mean matches a positive has with the adversary's devices (Poisson).
        #[arg(long, default_value_t = 2.0)]
        matches_per_positive: f64,
        /// The node's batch period in seconds (the node's default: an hour).
        #[arg(long, default_value_t = 3600)]
        batch_period_seconds: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Room-shared exposure at venues (shops, offices, restaurants, transport): recall of
    /// published places, venue check-in and Bluetooth alone on the same town, and the share
    /// of cases whose trail an outside observer reconstructs. Markdown tables on stdout;
    /// with `--out DIR`, `venues.json`, `venues.md` and `venues.svg`.
    Venues(VenueArgs),
    /// Replays a field measurement (the scenario's `[trial]`, e.g.
    /// `tests/sim/scenarios/tram.toml`): pairs of phones at measured distances, scored by
    /// the real client under the named detection rules and an attenuation sweep, for both
    /// schemes, under the scenario's radio and the default one. A Markdown table on stdout;
    /// with `--out DIR`, `trial.json`, `roc.csv` and `roc.svg`.
    Trial {
        /// Scenario file with a `[trial]` section.
        #[arg(long)]
        scenario: PathBuf,
        /// Replications (overrides `trial.replications`).
        #[arg(long)]
        replications: Option<u32>,
        /// Worker threads (default: every core); results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// Output folder (must be new or empty).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Varies one or two scenario parameters over the values a sweep file lists and runs
    /// every point across seeds: `points.csv`, `points.json`, one SVG plot with 95 %
    /// bands per headline figure and each point's `--seeds` outputs in DIR/point-K; a
    /// Markdown table on stdout (docs/SIMULATION.md, "Sweeps and dose-response").
    Sweep {
        /// The sweep file (TOML; `tests/sim/sweeps/` has examples).
        #[arg(long)]
        plan: PathBuf,
        /// Output folder (must be new or empty).
        #[arg(long)]
        out: PathBuf,
        /// Worker threads (default: every core); results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
    },
}

/// The venue comparison's flags (every other parameter is `RoomsScenario`'s default).
#[derive(Args)]
struct VenueArgs {
    /// People.
    #[arg(long, default_value_t = 20_000)]
    agents: u32,
    /// Days.
    #[arg(long, default_value_t = 14)]
    days: u32,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of visits checked in.
    #[arg(long, default_value_t = 0.5)]
    check_in_share: f64,
    /// Hours between two publications of venue traces (the node's batch period).
    #[arg(long, default_value_t = 1)]
    batch_hours: u32,
    /// Each person's chance a day to be diagnosed.
    #[arg(long, default_value_t = 0.0005)]
    daily_case_rate: f64,
    /// Output folder (must be new or empty).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Scenario file (TOML); flags override it.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// People.
    #[arg(long)]
    agents: Option<u32>,
    /// Days.
    #[arg(long)]
    days: Option<u32>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// `gaen`, `pet`, or `both` (one run each, outputs in DIR/gaen and DIR/pet).
    #[arg(long)]
    scheme: Option<String>,
    /// Share of people running the app.
    #[arg(long)]
    uptake: Option<f64>,
    /// Sniffers.
    #[arg(long)]
    sniffers: Option<u32>,
    /// Worker threads (default: every core); results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Output folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// With `--scheme both`: classify every close contact `pet` misses and `gaen` finds by
    /// its primary cause (printed, and `misses.json` beside the `pet` summary).
    #[arg(long)]
    misses: bool,
    /// Also writes the line lists beside each summary: `contacts.csv` (every episode),
    /// `infections.csv` (with each source) and `notifications.csv` (with their times).
    #[arg(long)]
    line_lists: bool,
    /// `pet`: upload only encounters that could count for the peer, with this margin in dB
    /// (default 10, the phone library's).
    #[arg(long)]
    upload_margin_db: Option<u8>,
    /// `pet`: upload every encounter of the infectious window (as before issue 18).
    #[arg(long)]
    upload_all_encounters: bool,
    /// Runs N seeds (the seed, the seed + 1, …; at least 2) one after another in this
    /// process: each seed's outputs in DIR/seed-S, and `seeds.csv` and an aggregate
    /// `summary.json` (means with 95 % Student t intervals) in DIR; the table on stdout.
    #[arg(long)]
    seeds: Option<u32>,
    /// Models interventions (isolation, quarantine and testing of notified contacts) with
    /// their default parameters unless the scenario file has an `[interventions]` section,
    /// and reports the infections averted against the app-off counterfactual.
    #[arg(long)]
    interventions: bool,
    /// Adds bystanders (crowds in shared places, neighbours through walls, passers-by)
    /// with their default parameters unless the scenario file has a `[bystanders]`
    /// section: phones then hear everyone in range, not only their contacts.
    #[arg(long)]
    bystanders: bool,
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Scenario> {
    Ok(match path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Scenario::from_toml(&text)?
        }
        None => Scenario::default(),
    })
}

/// Reads the publication statistics of `DIR/<scheme>/summary.json`.
fn publication_of(dir: &std::path::Path, scheme: &str) -> anyhow::Result<PublicationStats> {
    let path = dir.join(scheme).join("summary.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let publication = summary
        .get("publication")
        .with_context(|| format!("{} has no publication statistics", path.display()))?;
    PublicationStats::deserialize(publication)
        .with_context(|| format!("reading the publication statistics of {}", path.display()))
}

/// Runs the scenario the flags describe, once per scheme (and per seed with `--seeds`),
/// prints each summary and writes the outputs.
fn run(a: &RunArgs, schemes: Option<Vec<sim::SchemeName>>) -> anyhow::Result<Vec<sim::Scored>> {
    let mut scenario = load(a.scenario.as_ref())?;
    scenario.agents = a.agents.unwrap_or(scenario.agents);
    scenario.days = a.days.unwrap_or(scenario.days);
    scenario.seed = a.seed.unwrap_or(scenario.seed);
    scenario.population.app_uptake = a.uptake.unwrap_or(scenario.population.app_uptake);
    scenario.attack.sniffers = a.sniffers.unwrap_or(scenario.attack.sniffers);
    scenario.detection.upload_margin_db = a
        .upload_margin_db
        .unwrap_or(scenario.detection.upload_margin_db);
    scenario.detection.upload_all_encounters |= a.upload_all_encounters;
    if a.interventions && scenario.interventions.is_none() {
        scenario.interventions = Some(sim::scenario::InterventionConfig::default());
    }
    if a.bystanders && scenario.bystanders.is_none() {
        scenario.bystanders = Some(sim::scenario::BystanderConfig::default());
    }
    let schemes = match (schemes, a.scheme.as_deref()) {
        (Some(schemes), _) => schemes,
        (None, None) => vec![scenario.scheme],
        (None, Some("both")) => vec![sim::SchemeName::Gaen, sim::SchemeName::Pet],
        (None, Some(s)) => vec![s.parse()?],
    };
    if a.misses && schemes != [sim::SchemeName::Gaen, sim::SchemeName::Pet] {
        anyhow::bail!("--misses compares two runs: use it with --scheme both");
    }
    if a.seeds.is_some_and(|n| n < 2) {
        anyhow::bail!("--seeds needs at least 2 seeds (one seed is a plain run)");
    }
    // Refuse a used output folder before the run, not after it.
    if let Some(out) = &a.out {
        sim::provenance::ensure_fresh(out)?;
    }
    if a.line_lists && a.out.is_none() {
        anyhow::bail!("--line-lists writes beside the outputs: give --out too");
    }
    let options = RunOptions {
        threads: a.threads,
        progress: true,
        gaen_found: None,
        line_lists: a.line_lists,
    };
    let mut print = |scored: &sim::Scored| {
        println!(
            "{}",
            serde_json::to_string(&scored.summary).expect("a summary serialises")
        );
        if let Some(misses) = &scored.misses {
            println!("{}", misses.table());
        }
    };
    let out = a.out.as_deref();
    let Some(n) = a.seeds else {
        return Ok(sim::seeds::run_schemes(
            &scenario, &schemes, &options, a.misses, out, &mut print,
        )?);
    };
    let seeds = sim::seeds::seed_list(scenario.seed, n);
    let summaries = sim::seeds::run_seeds(
        &scenario, &schemes, &seeds, &options, a.misses, out, &mut print,
    )?;
    print!("{}", sim::seeds::table(&sim::seeds::aggregate(&summaries)));
    Ok(Vec::new())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::ShowScenario { scenario }) => {
            print!("{}", load(scenario.as_ref())?.to_toml());
        }
        Some(Command::Radio {
            samples,
            seed,
            scenario,
            profile,
        }) => {
            let mut scenario = load(scenario.as_ref())?;
            if let Some(name) = profile {
                let profile =
                    sim::radio_profile::RadioProfile::from_name(&name).ok_or_else(|| {
                        anyhow::anyhow!("no radio profile {name:?}: cwa, epfl or transport")
                    })?;
                scenario.radio = profile.config();
            }
            let stats = sim::radio_stats(
                &scenario.radio,
                samples,
                scenario.scanning.adverts_per_scan,
                seed,
            );
            println!("{}", serde_json::to_string_pretty(&stats)?);
        }
        Some(Command::Project { from, run: a }) => {
            if a.seeds.is_some() {
                anyhow::bail!("project takes one run per scheme: leave out --seeds");
            }
            let (gaen, pet) = match &from {
                Some(dir) => (publication_of(dir, "gaen")?, publication_of(dir, "pet")?),
                None => {
                    let results = run(&a, Some(vec![sim::SchemeName::Gaen, sim::SchemeName::Pet]))?;
                    (
                        results[0].summary.publication.clone(),
                        results[1].summary.publication.clone(),
                    )
                }
            };
            let projection = sim::projection::project(&gaen, &pet)?;
            print!("{}", projection.table());
            if let Some(dir) = a.out.as_ref().or(from.as_ref()) {
                projection.write(dir)?;
                eprintln!("ephemera-sim: wrote the projection into {}", dir.display());
            }
        }
        Some(Command::Link {
            days,
            matches_per_positive,
            batch_period_seconds,
            seed,
        }) => {
            let (results, table) =
                sim::linking::table(days, matches_per_positive, batch_period_seconds, seed)?;
            for r in &results {
                eprintln!("{}", serde_json::to_string(r)?);
            }
            print!("{table}");
        }
        Some(Command::Venues(v)) => {
            if let Some(out) = &v.out {
                sim::provenance::ensure_fresh(out)?;
            }
            let scenario = sim::rooms::RoomsScenario {
                agents: v.agents,
                days: v.days,
                seed: v.seed,
                check_in_share: v.check_in_share,
                batch_hours: v.batch_hours,
                daily_case_rate: v.daily_case_rate,
                ..sim::rooms::RoomsScenario::default()
            };
            let comparison = sim::rooms::compare(&scenario)?;
            print!("{}", comparison.table());
            if let Some(out) = &v.out {
                comparison.write(out)?;
                eprintln!(
                    "ephemera-sim: wrote the venue comparison into {}",
                    out.display()
                );
            }
        }
        Some(Command::Trial {
            scenario,
            replications,
            threads,
            out,
        }) => {
            if let Some(out) = &out {
                sim::provenance::ensure_fresh(out)?;
            }
            let mut scenario = load(Some(&scenario))?;
            if let (Some(trial), Some(n)) = (scenario.trial.as_mut(), replications) {
                trial.replications = n;
            }
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads.unwrap_or(0))
                .build()?;
            let report = pool.install(|| sim::trial::run(&scenario))?;
            print!("{}", report.table());
            if let Some(out) = &out {
                report.write(out)?;
                eprintln!("ephemera-sim: wrote the trial into {}", out.display());
            }
        }
        Some(Command::Sweep { plan, out, threads }) => {
            let sweep = sim::param_sweep::Sweep::read(&plan)?;
            let options = RunOptions {
                threads,
                progress: true,
                gaen_found: None,
                line_lists: false,
            };
            let points = sweep.run(&options, &out)?;
            print!("{}", sim::param_sweep::table(&sweep, &points));
            eprintln!("ephemera-sim: wrote the sweep into {}", out.display());
        }
        None => {
            run(&cli.run, None)?;
        }
    }
    Ok(())
}
