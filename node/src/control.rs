//! The node's local control socket, `<data_dir>/control.sock` (mode 0600): how
//! `ephemera-node backup` asks the running node for a consistent copy of its data without
//! stopping it. One JSON line per request and per answer; only the node's own user can
//! connect, and nothing on it is reachable from the network.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::node::Node;

/// The socket's file name in the data folder.
pub const CONTROL_SOCKET: &str = "control.sock";
/// Longest request line accepted.
const MAX_REQUEST_BYTES: u64 = 4096;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum ControlRequest {
    /// Write a consistent copy of the data (`db/`, `blobs/`, `keys/data/`) into `to`, a new
    /// or empty folder.
    Backup {
        /// The folder to write.
        to: PathBuf,
    },
    /// Write the published tree (`publish-static`) into the folder `to`.
    PublishStatic {
        /// The folder to write.
        to: PathBuf,
    },
    /// The retention report (`retention report`).
    RetentionReport,
}

/// What the node answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum ControlAnswer {
    /// The copy is written and synced.
    BackedUp {
        /// Files copied.
        files: u64,
        /// Bytes copied.
        bytes: u64,
        /// Milliseconds writers (uploads, cuts, purges) waited for the copy.
        paused_ms: u64,
    },
    /// The published tree is written.
    Published {
        /// Files written.
        written: u64,
        /// Bytes written.
        bytes: u64,
        /// Files deleted (no longer on the node).
        deleted: u64,
    },
    /// The retention report at the node's clock.
    Retention {
        /// The node's clock, unix seconds.
        now: u64,
        /// One line per kind held.
        lines: Vec<ephemera_node_core::retention::RetentionLine>,
    },
    /// The request failed; `error` says why.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// Listens on `path` (a stale socket file left by a killed node is replaced) until the
/// returned task is aborted.
///
/// # Errors
/// The socket cannot be bound or its mode set.
pub fn listen(node: Node, path: &Path) -> io::Result<tokio::task::JoinHandle<()>> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let node = node.clone();
            tokio::spawn(async move {
                let _ = answer(&node, stream).await;
            });
        }
    }))
}

async fn answer(node: &Node, stream: UnixStream) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .await?;
    let answer = match serde_json::from_str::<ControlRequest>(&line) {
        Ok(ControlRequest::Backup { to }) => match node.backup(to).await {
            Ok(summary) => {
                tracing::info!(
                    files = summary.files,
                    bytes = summary.bytes,
                    paused_ms = summary.paused.as_millis() as u64,
                    "backup written"
                );
                ControlAnswer::BackedUp {
                    files: summary.files,
                    bytes: summary.bytes,
                    paused_ms: summary.paused.as_millis() as u64,
                }
            }
            Err(e) => ControlAnswer::Failed {
                error: e.to_string(),
            },
        },
        Ok(ControlRequest::PublishStatic { to }) => crate::cli::publish_to_folder(node, &to).await,
        Ok(ControlRequest::RetentionReport) => match node.retention_report() {
            Ok(lines) => ControlAnswer::Retention {
                now: node.now().0,
                lines,
            },
            Err(e) => ControlAnswer::Failed {
                error: e.to_string(),
            },
        },
        Err(e) => ControlAnswer::Failed {
            error: format!("not a control request: {e}"),
        },
    };
    let mut out = serde_json::to_vec(&answer).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await
}

/// [`request`], or `None` when no node listens on `path` (the caller then opens the data
/// folder itself).
///
/// # Errors
/// The exchange with a node that listens failed.
pub async fn request_running(
    path: &Path,
    control: &ControlRequest,
    timeout: Duration,
) -> io::Result<Option<ControlAnswer>> {
    match request(path, control, timeout).await {
        Ok(answer) => Ok(Some(answer)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Sends `request` to the node listening on `path` and waits up to `timeout` for its answer.
///
/// # Errors
/// No node listens there (`NotFound`, `ConnectionRefused`), or the exchange failed.
pub async fn request(
    path: &Path,
    request: &ControlRequest,
    timeout: Duration,
) -> io::Result<ControlAnswer> {
    let exchange = async {
        let stream = UnixStream::connect(path).await?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
        line.push(b'\n');
        write.write_all(&line).await?;
        let mut answer = String::new();
        BufReader::new(read).read_line(&mut answer).await?;
        serde_json::from_str(&answer).map_err(io::Error::other)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the node did not answer"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_are_one_json_line_each() {
        let request = ControlRequest::Backup {
            to: PathBuf::from("/srv/backup/2026-12-05"),
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            text,
            r#"{"command":"backup","to":"/srv/backup/2026-12-05"}"#
        );
        assert_eq!(
            serde_json::from_str::<ControlRequest>(&text).unwrap(),
            request
        );
        let answer = ControlAnswer::BackedUp {
            files: 3,
            bytes: 10,
            paused_ms: 4,
        };
        let text = serde_json::to_string(&answer).unwrap();
        assert!(!text.contains('\n'));
        assert_eq!(
            serde_json::from_str::<ControlAnswer>(&text).unwrap(),
            answer
        );
        assert!(serde_json::from_str::<ControlRequest>(r#"{"command":"rm"}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_request_line_decodes_or_is_refused_without_a_panic(line in ".{0,200}") {
            let _ = serde_json::from_str::<ControlRequest>(&line);
        }
    }
}
