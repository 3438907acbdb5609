//! `publish-static DIR`: the published tree (batches, filters, index pages, GAEN exports,
//! the authority's keys) written to a folder for any web server.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::{CliError, PublishStaticArgs, node_config};
use crate::clock::SystemClock;
use crate::control::{CONTROL_SOCKET, ControlAnswer, ControlRequest, request_running};
use crate::node::Node;
use crate::publish::Publisher;

/// How long publication through the running node may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3600);

/// Asks the node running on the data folder (its control socket) to write the tree; when
/// none runs, opens the data folder itself. Prints what was written.
///
/// # Errors
/// [`CliError`] for a bad config, a failed write, or a node that does not answer.
pub async fn publish_static(
    args: &PublishStaticArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let config = node_config(&args.config, &args.data_dir)?;
    let to = std::path::absolute(&args.dir).map_err(|source| CliError::Io {
        what: format!("resolving {}", args.dir.display()),
        source,
    })?;
    let socket = config.data_dir.join(CONTROL_SOCKET);
    let running = request_running(
        &socket,
        &ControlRequest::PublishStatic { to: to.clone() },
        PUBLISH_TIMEOUT,
    )
    .await
    .map_err(|source| CliError::Io {
        what: format!("asking the node on {} to publish", socket.display()),
        source,
    })?;
    let answer = match running {
        Some(answer) => answer,
        None => {
            let node = Node::open(config, Arc::new(SystemClock))?.node;
            publish_to_folder(&node, &to).await
        }
    };
    match answer {
        ControlAnswer::Published {
            written,
            bytes,
            deleted,
        } => writeln!(
            out,
            "published to {}: {written} files written ({bytes} bytes), {deleted} deleted",
            to.display()
        )
        .map_err(|source| CliError::Io {
            what: "writing to stdout".to_owned(),
            source,
        }),
        ControlAnswer::Failed { error } => Err(CliError::Io {
            what: "publish-static".to_owned(),
            source: std::io::Error::other(error),
        }),
        ControlAnswer::BackedUp { .. } | ControlAnswer::Retention { .. } => Err(CliError::Io {
            what: "publish-static".to_owned(),
            source: std::io::Error::other("the node answered another request"),
        }),
    }
}

/// Writes `node`'s tree into the folder `to`: what the control socket and the offline
/// command both run.
pub async fn publish_to_folder(node: &Node, to: &std::path::Path) -> ControlAnswer {
    let round = match Publisher::folder(to) {
        Ok(publisher) => publisher.publish(node).await,
        Err(e) => Err(e),
    };
    match round {
        Ok(round) if round.failed == 0 => ControlAnswer::Published {
            written: round.written,
            bytes: round.bytes,
            deleted: round.deleted,
        },
        Ok(round) => ControlAnswer::Failed {
            error: format!(
                "{} files could not be written (see the node's log)",
                round.failed
            ),
        },
        Err(e) => ControlAnswer::Failed {
            error: e.to_string(),
        },
    }
}
