//! `ephemera-bench`: prints one JSON line per figure (see `ephemera_bench`).

use std::time::Duration;

use clap::{Parser, Subcommand};

/// Ephemera benchmarks: figures with their physical bound or peer, as JSON lines.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Seconds to spend on each figure.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Protocol primitives: RPI derivation, `pet` tokens, certificate verification.
    Proto,
    /// GAEN matching: diagnosis keys/s against 14 days of sightings, memory while streaming.
    GaenMatch,
    /// `pet` matching: published token records/s against held tokens; token filters
    /// (publication version 3): lookups, verification, a day at 35,000 uploads.
    PetMatch,
    /// Serving a cached batch over HTTP: requests/s of a release node vs nginx (wrk) at
    /// 1, 64 and 256 connections; with `--postgres`, also one and two nodes on PostgreSQL
    /// (limit: the node on sled, same run).
    Serve {
        /// A PostgreSQL URL (a role that may create a schema): also measure nodes of one
        /// group there, on a schema of their own that is dropped afterwards.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Node ingest: durable verified uploads/s over HTTP on loopback (limit: in-memory
    /// verification of the same uploads); with `--postgres`, on PostgreSQL (limit: the
    /// issue's 5,000 uploads/s) with one node and with two nodes sharing the database.
    Ingest {
        /// A PostgreSQL URL (a role that may create a schema): also measure ingest there,
        /// on a schema of its own that is dropped afterwards.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// A bounded load test: codes, verifies, uploads, decoys and syncs at fixed offered rates
    /// against a node with batching and retention running on a fast clock; sustained rates
    /// and memory/disk flatness.
    Load {
        /// Length of the run in seconds (the retention period passes in its first third).
        #[arg(long, default_value_t = 180)]
        duration_seconds: u64,
        /// Real uploads offered per second.
        #[arg(long, default_value_t = 500.0)]
        upload_rate: f64,
        /// Decoy verify + upload pairs offered per second.
        #[arg(long, default_value_t = 500.0)]
        decoy_rate: f64,
        /// Phone syncs (index + new batches) offered per second.
        #[arg(long, default_value_t = 500.0)]
        sync_rate: f64,
    },
    /// Memory under a flood of stalled upload bodies: RSS before, at the peak and after,
    /// against the in-flight body budget (issue 24). Runs with glibc's mmap threshold fixed
    /// as the shipped systemd unit sets it (`--as-is` keeps the environment unchanged).
    Flood {
        /// Stalled connections per round.
        #[arg(long, default_value_t = 300)]
        connections: usize,
        /// Announced body size in bytes (all but one byte is sent).
        #[arg(long, default_value_t = 2 << 20)]
        body_bytes: usize,
        /// Rounds.
        #[arg(long, default_value_t = 4)]
        rounds: usize,
        /// Seconds after the last round before the last sample.
        #[arg(long, default_value_t = 60)]
        after_seconds: u64,
        /// The node's `[http] in_flight_body_bytes` (default: the node's default).
        #[arg(long)]
        budget_bytes: Option<usize>,
        /// Do not set `MALLOC_MMAP_THRESHOLD_` as the systemd unit does.
        #[arg(long)]
        as_is: bool,
    },
    /// Federation: 10 nodes on loopback, p50/p99 propagation latency and reports/s.
    Federation,
    /// Federation under a burst at one node: 10 nodes on loopback, p99 delay from
    /// acknowledgement (median and worst run) for each burst size. Long: not run in CI.
    FederationBurst {
        /// Burst sizes (reports at one node).
        #[arg(long, value_delimiter = ',', default_values_t = [2_000, 20_000])]
        sizes: Vec<usize>,
        /// Runs per size, each on a fresh cluster.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Seconds one run may take before its missing reports are counted.
        #[arg(long, default_value_t = 300)]
        timeout_seconds: u64,
    },
    /// Real and decoy answer times of sealed verifies and uploads, side by side, with the
    /// node's answer floor and without it: the AUC of telling them apart by time (issue 30).
    DecoyTiming,
    /// GAEN matching through the phone's ingest path: keys/s against 14 days of sightings,
    /// memory while a 1,000,000-key batch streams in.
    ClientGaenMatch,
    /// `pet` matching through the phone's ingest path: tokens/s against 50,000 held tokens.
    ClientPetMatch,
    /// Venue check-in matching through the phone: 2,250 published trace keys against two
    /// weeks of check-ins (5 visits a day, 1 to 3 hours each), on one thread; seconds
    /// (limit 10 s), attempts/s and keys/s.
    Venue,
    /// The simulator: agent-days/s per scheme and the projected 100,000 × 14 wall time.
    Sim {
        /// Phones to simulate.
        #[arg(long, default_value_t = 10_000)]
        agents: u32,
        /// Days to simulate.
        #[arg(long, default_value_t = 14)]
        days: u32,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let budget = Duration::from_secs_f64(cli.seconds);
    let figures = match cli.command {
        Command::Proto => ephemera_bench::proto::run(budget),
        Command::GaenMatch => ephemera_bench::matching::gaen(budget),
        Command::PetMatch => ephemera_bench::matching::pet(budget),
        Command::Serve { postgres } => ephemera_bench::serve::run(budget, postgres.as_deref())?,
        Command::Ingest { postgres } => ephemera_bench::ingest::run(budget, postgres.as_deref()),
        Command::DecoyTiming => ephemera_bench::decoy_timing::run(),
        Command::Load {
            duration_seconds,
            upload_rate,
            decoy_rate,
            sync_rate,
        } => ephemera_bench::load::run(ephemera_bench::load::LoadOptions {
            duration: Duration::from_secs(duration_seconds),
            upload_rate,
            decoy_rate,
            sync_rate,
        })?,
        Command::Flood {
            connections,
            body_bytes,
            rounds,
            after_seconds,
            budget_bytes,
            as_is,
        } => {
            let env = ephemera_bench::flood::MMAP_THRESHOLD_ENV;
            if !as_is && std::env::var_os(env).is_none() {
                // The tunable is read at process start: run again with it, as systemd would.
                let status = std::process::Command::new(std::env::current_exe()?)
                    .args(std::env::args_os().skip(1))
                    .env(env, "131072")
                    .status()?;
                std::process::exit(status.code().unwrap_or(1));
            }
            ephemera_bench::flood::run(ephemera_bench::flood::FloodOptions {
                connections,
                body_bytes,
                rounds,
                after: Duration::from_secs(after_seconds),
                budget: budget_bytes,
            })?
        }
        Command::Federation => ephemera_bench::federation::run(budget),
        Command::FederationBurst {
            sizes,
            runs,
            timeout_seconds,
        } => ephemera_bench::federation::burst(&ephemera_bench::federation::BurstOptions {
            sizes,
            runs: runs.max(1),
            timeout: Duration::from_secs(timeout_seconds),
        }),
        Command::ClientGaenMatch => ephemera_bench::client::gaen(budget),
        Command::ClientPetMatch => ephemera_bench::client::pet(budget),
        Command::Venue => ephemera_bench::venue::run(),
        Command::Sim { agents, days } => ephemera_bench::sim::run(agents, days)?,
    };
    for figure in figures {
        println!("{}", figure.to_json_line());
    }
    Ok(())
}
