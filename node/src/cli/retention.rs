//! `retention report`: the oldest record of each kind a node holds, and whether retention
//! keeps up (issue 21 item 5).

use std::io::Write;
use std::time::Duration;

use ephemera_node_core::retention::{RetentionLine, retention_report};
use ephemera_proto::UnixTime;

use super::{CliError, FolderArgs, node_config};
use crate::clock::civil;
use crate::control::{CONTROL_SOCKET, ControlAnswer, ControlRequest, request_running};
use crate::node::open_store;

/// `ephemera-node retention report`: asks the node running on the data folder, or opens
/// its store when none runs and judges at `now`; prints each kind's oldest record's due time and how overdue it
/// is. Fails when one is overdue by more than a batch period: retention is not keeping up.
///
/// # Errors
/// [`CliError`] for a bad config, storage, or a record held past its retention.
pub async fn retention(
    args: &FolderArgs,
    now: UnixTime,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let config = node_config(&args.config, &args.data_dir)?;
    let socket = config.data_dir.join(CONTROL_SOCKET);
    let answer = request_running(
        &socket,
        &ControlRequest::RetentionReport,
        Duration::from_secs(60),
    )
    .await
    .map_err(|source| CliError::Io {
        what: format!("asking the node on {} for its report", socket.display()),
        source,
    })?;
    let (now, lines) = match answer {
        Some(ControlAnswer::Retention { now, lines }) => (UnixTime(now), lines),
        Some(ControlAnswer::Failed { error }) => {
            return Err(CliError::Io {
                what: "retention report".to_owned(),
                source: std::io::Error::other(error),
            });
        }
        Some(_) => {
            return Err(CliError::Io {
                what: "retention report".to_owned(),
                source: std::io::Error::other("the node answered another request"),
            });
        }
        None => {
            let (store, _) = open_store(&config)?;
            let lines = retention_report(store.as_ref(), config.retention.audit_days, now)
                .map_err(crate::node::NodeError::from)?;
            (now, lines)
        }
    };
    print(&lines, now, config.publication.batch_period_seconds, out)
}

fn print(
    lines: &[RetentionLine],
    now: UnixTime,
    batch_period: u64,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    writeln!(out, "retention at {}", civil::format_time(now)).map_err(io)?;
    writeln!(out, "{:<18} {:<22} overdue", "kind", "oldest due at").map_err(io)?;
    for line in lines {
        writeln!(
            out,
            "{:<18} {:<22} {} s",
            line.kind,
            civil::format_time(line.oldest_due_at),
            line.overdue_seconds
        )
        .map_err(io)?;
    }
    let late: Vec<&str> = lines
        .iter()
        .filter(|l| l.overdue_seconds > batch_period)
        .map(|l| l.kind.as_str())
        .collect();
    if late.is_empty() {
        writeln!(
            out,
            "every kind within one batch period ({batch_period} s) of its retention"
        )
        .map_err(io)
    } else {
        Err(CliError::Argument {
            name: "retention",
            reason: format!(
                "held past retention by more than a batch period: {}",
                late.join(", ")
            ),
        })
    }
}
