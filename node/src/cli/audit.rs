//! `audit verify` and `audit export`: the authority's audit trail, read from a stopped
//! node's data folder (or a restored backup) with the node's keys.

use std::io::Write;

use ephemera_node_core::audit::{AuditTrail, audit_keys};
use ephemera_node_core::keys::{KEYS_DIR, NodeKeys};
use ephemera_node_core::store::{DATA_KEYS_DIR, ReportStore, SledReportStore};
use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome, verify_trail};

use super::keys::refuse_while_running;
use super::{AuditCommand, AuditFormat, CliError, FolderArgs, node_config};
use crate::audit_export::{AuditRow, CSV_HEADER};
use crate::clock::{Clock, SystemClock};
use crate::node::{BLOB_DIR, DB_DIR, NodeError};

/// Runs an `audit` subcommand.
///
/// # Errors
/// [`CliError::NodeRunning`] while a node serves the folder; a bad config; key or store
/// errors; [`CliError::AuditBroken`] where the trail stops verifying (`verify`).
pub async fn audit(command: &AuditCommand, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        AuditCommand::Verify(folder) => {
            let (store, keys) = open(folder).await?;
            let (anchor, entries) = store.audit_trail().map_err(NodeError::from)?;
            let trail = verify_trail(anchor.as_ref(), &entries, &audit_keys(&keys))?;
            let text = match (trail.head, anchor) {
                (None, _) => "the audit trail is empty".to_owned(),
                (Some((sequence, head)), anchor) => format!(
                    "the audit trail verifies: {} records{}, signed head {sequence} {head}",
                    trail.records,
                    anchor.map_or(String::new(), |a| format!(
                        " after the purge of records 1 to {}",
                        a.sequence
                    )),
                ),
            };
            writeln!(out, "{text}").map_err(stdout)
        }
        AuditCommand::Export(args) => {
            let (store, keys) = open(&args.folder).await?;
            // Reading the trail out is itself on the record.
            let now = SystemClock.now();
            AuditTrail::open(&store)
                .and_then(|mut trail| {
                    trail.record(
                        &keys.authority,
                        &store,
                        now,
                        AuditActor::Operator,
                        AuditAction::Exported,
                        AuditOutcome::Success,
                    )
                })
                .and_then(|_| store.flush())
                .map_err(NodeError::from)?;
            let (_, entries) = store.audit_trail().map_err(NodeError::from)?;
            match args.format {
                AuditFormat::Json => {
                    let rows: Vec<AuditRow> = entries.iter().map(AuditRow::of).collect();
                    serde_json::to_writer_pretty(&mut *out, &rows).map_err(|e| stdout(e.into()))?;
                    writeln!(out).map_err(stdout)
                }
                AuditFormat::Csv => {
                    writeln!(out, "{CSV_HEADER}").map_err(stdout)?;
                    for entry in &entries {
                        writeln!(out, "{}", AuditRow::of(entry).csv_line()).map_err(stdout)?;
                    }
                    Ok(())
                }
            }
        }
    }
}

pub(super) async fn open(folder: &FolderArgs) -> Result<(SledReportStore, NodeKeys), CliError> {
    let config = node_config(&folder.config, &folder.data_dir)?;
    refuse_while_running(&config.data_dir).await?;
    let keys = NodeKeys::load(&config.data_dir).map_err(NodeError::from)?;
    let store = SledReportStore::open(
        &config.data_dir.join(DB_DIR),
        &config.data_dir.join(BLOB_DIR),
        &config.data_dir.join(KEYS_DIR).join(DATA_KEYS_DIR),
    )
    .map_err(NodeError::from)?;
    Ok((store, keys))
}

fn stdout(source: std::io::Error) -> CliError {
    CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    }
}
