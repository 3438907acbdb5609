//! `upgrade`: converts a stopped node's database to the storage format this build reads.

use std::io::Write;

use ephemera_node_core::keys::KEYS_DIR;
use ephemera_node_core::store::{self, DATA_KEYS_DIR, STORE_FORMAT, UpgradeOutcome};

use super::keys::refuse_while_running;
use super::{CliError, FolderArgs, node_config};
use crate::node::DB_DIR;

/// `ephemera-node upgrade`: converts the data folder's database from storage format 3 in
/// place ([`store::upgrade`]), dating arrivals to the configured batch period, and prints
/// what it did (counts only: no code, token or time).
///
/// # Errors
/// [`CliError::NodeRunning`] while a node serves the folder; a bad config;
/// [`CliError::Upgrade`] for a format it does not convert or a failed conversion (a rerun
/// finishes one cut short).
pub async fn upgrade(folder: &FolderArgs, out: &mut impl Write) -> Result<(), CliError> {
    let config = node_config(&folder.config, &folder.data_dir)?;
    refuse_while_running(&config.data_dir).await?;
    let db = config.data_dir.join(DB_DIR);
    let outcome = store::upgrade(
        &db,
        &config.data_dir.join(KEYS_DIR).join(DATA_KEYS_DIR),
        config.publication.batch_period_seconds,
    )?;
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    match outcome {
        UpgradeOutcome::Converted(c) => writeln!(
            out,
            "{} converted from storage format 3 to {STORE_FORMAT}: {} uploads, {} queue \
             groups and {} unused codes sealed, {} expiry entries re-dated, {} records copied; \
             the format 3 files were overwritten and removed",
            db.display(),
            c.uploads,
            c.queued,
            c.codes,
            c.expiry,
            c.copied
        ),
        UpgradeOutcome::Finished => writeln!(
            out,
            "{} finished an upgrade that was cut short: storage format {STORE_FORMAT}, the \
             format 3 files overwritten and removed",
            db.display()
        ),
        UpgradeOutcome::Current => writeln!(
            out,
            "{} is already storage format {STORE_FORMAT}: nothing to do",
            db.display()
        ),
    }
    .map_err(io)
}
