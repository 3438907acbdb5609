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
        Command::Backup(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(cli::backup(&args, &mut stdout))?;
        }
        Command::Keys(command) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(cli::keys(&command, &mut stdout))?;
        }
        Command::Upgrade(folder) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(cli::upgrade(&folder, &mut stdout))?;
        }
    }
    Ok(())
}
