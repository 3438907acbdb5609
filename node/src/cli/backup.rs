//! `backup`: a consistent copy of a node's data while it serves.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ephemera_node_core::keys::KEYS_DIR;
use ephemera_node_core::store::{DATA_KEYS_DIR, ReportStore, SledReportStore};

use super::{BackupArgs, CliError, node_config};
use crate::control::{CONTROL_SOCKET, ControlAnswer, ControlRequest, request_running};
use crate::node::{BLOB_DIR, DB_DIR};

/// How long a backup through the running node may take.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(3600);

/// `ephemera-node backup --to DIR`: asks the node running on the data folder (its control
/// socket) for the copy; when none runs, opens the store itself. Prints what was written.
///
/// # Errors
/// [`CliError`] for a bad config, a failed copy, or a node that does not answer.
pub async fn backup(args: &BackupArgs, out: &mut impl Write) -> Result<(), CliError> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => node_config(&args.config, &None)?.data_dir,
    };
    let to = absolute(&args.to)?;
    let socket = data_dir.join(CONTROL_SOCKET);
    let running = request_running(
        &socket,
        &ControlRequest::Backup { to: to.clone() },
        BACKUP_TIMEOUT,
    )
    .await
    .map_err(|source| CliError::Io {
        what: format!("asking the node on {} for a backup", socket.display()),
        source,
    })?;
    let answer = match running {
        Some(answer) => answer,
        None => offline(&data_dir, &to)?,
    };
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    match answer {
        ControlAnswer::BackedUp {
            files,
            bytes,
            paused_ms,
        } => writeln!(
            out,
            "backup written to {}: {files} files, {bytes} bytes; writers waited {paused_ms} ms",
            to.display()
        )
        .map_err(io),
        ControlAnswer::Failed { error } => Err(CliError::Io {
            what: "backup".to_owned(),
            source: std::io::Error::other(error),
        }),
        ControlAnswer::Published { .. } | ControlAnswer::Retention { .. } => Err(CliError::Io {
            what: "backup".to_owned(),
            source: std::io::Error::other("the node answered another request"),
        }),
    }
}

/// The node writes the copy from its own working folder: give it an absolute path.
fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path).map_err(|source| CliError::Io {
        what: format!("resolving {}", path.display()),
        source,
    })
}

/// No node runs on the folder: copy it by opening the store (which also locks it).
fn offline(data_dir: &Path, to: &Path) -> Result<ControlAnswer, CliError> {
    let store = SledReportStore::open(
        &data_dir.join(DB_DIR),
        &data_dir.join(BLOB_DIR),
        &data_dir.join(KEYS_DIR).join(DATA_KEYS_DIR),
    )
    .map_err(crate::node::NodeError::from)?;
    let summary = store.backup(to).map_err(crate::node::NodeError::from)?;
    Ok(ControlAnswer::BackedUp {
        files: summary.files,
        bytes: summary.bytes,
        paused_ms: summary.paused.as_millis() as u64,
    })
}
