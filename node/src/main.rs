//! `ephemera-node`: parses the command line and calls one library function per command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ephemera_node::cli::{self, Cli, Command, ConfigCommand, ExportCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(cli::serve(args))?;
        }
        Command::Init(args) => cli::init(&args, &mut stdout)?,
        Command::Config(ConfigCommand::Defaults) => cli::config_defaults(&mut stdout)?,
        Command::Derive(args) => cli::derive(&args, &mut stdout)?,
        Command::Export(ExportCommand::Verify(args)) => cli::export_verify(&args, &mut stdout)?,
        Command::Backup(args) => current_thread()?.block_on(cli::backup(&args, &mut stdout))?,
        Command::PublishStatic(args) => {
            current_thread()?.block_on(cli::publish_static(&args, &mut stdout))?
        }
        Command::Keys(command) => current_thread()?.block_on(cli::keys(&command, &mut stdout))?,
        Command::Upgrade(folder) => {
            current_thread()?.block_on(cli::upgrade(&folder, &mut stdout))?
        }
        Command::Audit(command) => current_thread()?.block_on(cli::audit(&command, &mut stdout))?,
        Command::Users(command) => current_thread()?.block_on(cli::users(&command, &mut stdout))?,
        Command::ApiKeys(command) => {
            current_thread()?.block_on(cli::api_keys(&command, &mut stdout))?
        }
        Command::Retention(cli::RetentionCommand::Report(folder)) => {
            let now = ephemera_node::clock::Clock::now(&ephemera_node::clock::SystemClock);
            current_thread()?.block_on(cli::retention(&folder, now, &mut stdout))?
        }
        Command::Sunset(command) => {
            let now = ephemera_node::clock::Clock::now(&ephemera_node::clock::SystemClock);
            cli::sunset(&command, now, &mut stdout)?
        }
        Command::Venue(command) => cli::venue(&command, &mut stdout)?,
    }
    Ok(())
}

/// The runtime of the commands that work on a data folder: one thread is enough.
fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
