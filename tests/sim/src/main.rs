//! `ephemera-sim`: the population simulator (see `ephemera_sim` and
//! `docs/SIMULATION.md`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ephemera_sim::{self as sim, RunOptions, Scenario};

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
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::ShowScenario { scenario }) = &cli.command {
        print!("{}", load(scenario.as_ref())?.to_toml());
        return Ok(());
    }
    if let Some(Command::Radio {
        samples,
        seed,
        scenario,
    }) = cli.command
    {
        let scenario = load(scenario.as_ref())?;
        let stats = sim::radio_stats(
            &scenario.radio,
            samples,
            scenario.scanning.adverts_per_scan,
            seed,
        );
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let a = cli.run;
    let mut scenario = load(a.scenario.as_ref())?;
    scenario.agents = a.agents.unwrap_or(scenario.agents);
    scenario.days = a.days.unwrap_or(scenario.days);
    scenario.seed = a.seed.unwrap_or(scenario.seed);
    scenario.population.app_uptake = a.uptake.unwrap_or(scenario.population.app_uptake);
    scenario.attack.sniffers = a.sniffers.unwrap_or(scenario.attack.sniffers);
    let schemes = match a.scheme.as_deref() {
        None => vec![scenario.scheme],
        Some("both") => vec![sim::SchemeName::Gaen, sim::SchemeName::Pet],
        Some(s) => vec![s.parse()?],
    };
    let options = RunOptions {
        threads: a.threads,
        progress: true,
    };
    let mut results = Vec::new();
    for scheme in &schemes {
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
        let scored = sim::run_with(&scenario, &options)?;
        println!("{}", serde_json::to_string(&scored.summary)?);
        results.push(scored);
    }
    if let Some(out) = a.out {
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
                out.clone()
            };
            sim::write_outputs(&dir, scored, &others)?;
        }
        eprintln!("ephemera-sim: wrote {}", out.display());
    }
    Ok(())
}
