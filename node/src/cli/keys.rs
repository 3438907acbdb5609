//! `keys status` and `keys rotate`: the key lifecycle, on the keys folder of a stopped node.
//!
//! Rotation works offline: a running node holds its keys in memory for its whole life, so
//! each step is taken while it is stopped and takes effect when it starts again. The
//! command refuses while a node answers on the data folder's control socket.

use std::io::Write;
use std::path::Path;

use ephemera_node_core::key_rotation::{self, RotatedKey};
use ephemera_proto::UnixTime;

use super::{CliError, KeyName, KeysCommand, RotateArgs, node_config};
use crate::clock::{Clock, SystemClock};
use crate::control::CONTROL_SOCKET;
use crate::node::NodeError;

/// Runs a `keys` subcommand, printing what it did.
///
/// # Errors
/// [`CliError::NodeRunning`] while a node serves the folder; a bad config; key errors.
pub async fn keys(command: &KeysCommand, out: &mut impl Write) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    match command {
        KeysCommand::Status(folder) => {
            let config = node_config(&folder.config, &folder.data_dir)?;
            let status =
                key_rotation::status(&config.data_dir, &config.publication.export_key_version)
                    .map_err(NodeError::from)?;
            write!(out, "{status}").map_err(io)
        }
        KeysCommand::Rotate(args) => {
            let config = node_config(&args.folder.config, &args.folder.data_dir)?;
            refuse_while_running(&config.data_dir).await?;
            let key = match args.key {
                KeyName::Batch => RotatedKey::Batch,
                KeyName::Authority => RotatedKey::Authority,
                KeyName::Export => RotatedKey::Export,
            };
            rotate(
                args,
                key,
                &config.data_dir,
                &config.publication.export_key_version,
                out,
            )
        }
    }
}

fn rotate(
    args: &RotateArgs,
    key: RotatedKey,
    data_dir: &Path,
    policy_version: &str,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    if args.finish {
        let step = key_rotation::finish(data_dir, key).map_err(NodeError::from)?;
        writeln!(
            out,
            "{} key switched: {} -> {} (the old key is in keys/{}/; start the node)",
            key.name(),
            step.current,
            step.next,
            key_rotation::RETIRED_DIR,
        )
        .map_err(io)?;
        if key == RotatedKey::Export {
            writeln!(
                out,
                "exports are now signed by the new key only: apps must have it configured"
            )
            .map_err(io)?;
        }
        return Ok(());
    }
    let now: UnixTime = SystemClock.now();
    let step = key_rotation::begin(
        data_dir,
        key,
        now,
        args.version.as_deref(),
        policy_version,
        &mut rand::rng(),
    )
    .map_err(NodeError::from)?;
    let overlap = match key {
        RotatedKey::Batch => "every batch index page now announces it to phones",
        RotatedKey::Authority => {
            "give peers the rollover (`keys status`) for trusted_authority_rollovers"
        }
        RotatedKey::Export => {
            "every export is now signed by both keys: register the next key (`keys status`) with the apps' key servers"
        }
    };
    writeln!(
        out,
        "{} key rotation begun: {} -> {}; start the node: {overlap}; then, after the overlap, \
         stop it and run `ephemera-node keys rotate {} --finish`",
        key.name(),
        step.current,
        step.next,
        key.name()
    )
    .map_err(io)
}

/// Refuses when a node listens on the folder's control socket.
pub(super) async fn refuse_while_running(data_dir: &Path) -> Result<(), CliError> {
    let socket = data_dir.join(CONTROL_SOCKET);
    match tokio::net::UnixStream::connect(&socket).await {
        Ok(_) => Err(CliError::NodeRunning {
            data_dir: data_dir.to_owned(),
        }),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(())
        }
        Err(source) => Err(CliError::Io {
            what: format!("checking for a node on {}", socket.display()),
            source,
        }),
    }
}
