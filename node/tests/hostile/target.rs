#![allow(dead_code)] // each test binary uses a part
//! A real node under test: `ephemera-node serve` in a child process on 127.0.0.1, with
//! what the multi-process federation tests ask of it (its metrics, what it holds, a phone's
//! upload).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ephemera_node::federation::sync::{SyncRequest, SyncResponse};
use ephemera_node::federation::testing::UploadFactory;
use ephemera_node::federation::{Multiaddr, PeerId};
use ephemera_proto::upload::{SignedUpload, UploadId, UploadRequest};
use ephemera_proto::wire;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;

use super::attacker::{AttackBehaviourEvent, Speaks};

/// The node under attack: `ephemera-node serve` in a child process.
pub(crate) struct Target {
    pub(crate) child: Child,
    pub(crate) http: SocketAddr,
    pub(crate) p2p: Multiaddr,
    pub(crate) peer: PeerId,
    _dir: tempfile::TempDir,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Target {
    /// Starts a node trusting `trusted` (hex Ed25519 keys), with `federation` lines added to
    /// its `[federation]` section.
    pub(crate) fn start(trusted: &[String], federation: &str) -> Target {
        Target::start_in(tempfile::tempdir().unwrap(), trusted, federation)
    }

    /// Starts a second copy of this node, as a restore drill or a stray container would:
    /// a fresh data folder holding a copy of this node's keys (so the same batch key and
    /// libp2p identity), with the given settings.
    pub(crate) fn start_twin(&self, trusted: &[String], federation: &str) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (
            self._dir.path().join("data").join("keys"),
            dir.path().join("data").join("keys"),
        );
        copy_folder(&from, &to);
        Target::start_in(dir, trusted, federation)
    }

    fn start_in(dir: tempfile::TempDir, trusted: &[String], federation: &str) -> Target {
        let trusted = trusted
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "data_dir = \"{data}\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [federation]\nlisten = \"127.0.0.1:0\"\npublish_delay_ms = 0\n{federation}\n\
             [authority]\ntrusted_authorities = [{trusted}]\n\
             [log]\nfilter = \"warn,libp2p_request_response=error\"\n",
            data = dir.path().join("data").display(),
        );
        let path = dir.path().join("ephemera.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ephemera-node"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ephemera-node");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut http, mut p2p) = (None, None);
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("ephemera-node listening on http://") {
                http = Some(rest.trim().parse::<SocketAddr>().unwrap());
            }
            if let Some(rest) = line.trim().strip_prefix("libp2p listening:") {
                let addr: Multiaddr = rest.trim().parse().unwrap();
                if addr.to_string().contains("/tcp/") {
                    p2p = Some(addr);
                }
            }
            if http.is_some() && p2p.is_some() {
                break;
            }
        }
        let p2p = p2p.expect("the node prints its libp2p address");
        let peer = super::attacker::peer_of(&p2p);
        Target {
            child,
            http: http.expect("the node prints its HTTP address"),
            p2p,
            peer,
            _dir: dir,
        }
    }

    /// Uploads `upload` as a phone would (`POST /v1/uploads`); returns the status.
    pub(crate) async fn upload(&self, upload: &SignedUpload) -> u16 {
        let body = wire::encode(&UploadRequest::real_v1(upload.clone()));
        super::util::request(
            self.http,
            "POST",
            "/v1/uploads",
            &[("Content-Type", "application/octet-stream")],
            &body,
        )
        .await
        .status
    }

    /// Resident memory now (`VmRSS`), in bytes.
    pub(crate) fn rss(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// `GET /healthz`: its status and how long it took.
    pub(crate) async fn healthz(&self) -> (u16, Duration) {
        let start = Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            super::util::request(self.http, "GET", "/healthz", &[], b""),
        )
        .await
        .map(|r| r.status)
        .unwrap_or(0);
        (response, start.elapsed())
    }

    /// The value of an unlabelled metric, or the sum of a labelled one's series whose
    /// labels contain `labels`.
    pub(crate) async fn metric(&self, name: &str, labels: &str) -> f64 {
        let response = super::util::request(self.http, "GET", "/metrics", &[], b"").await;
        String::from_utf8_lossy(&response.body)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next().is_some_and(|n| n == name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            + 0.0 // an empty sum is -0.0
    }
}

/// Copies the folder `from` (files and folders below it) to `to`.
fn copy_folder(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Asks `target` for its ids of today with a fresh identity that reads answers normally.
pub(crate) async fn ids_at(
    target: &Target,
    day: ephemera_proto::DayNumber,
) -> Option<Vec<UploadId>> {
    let mut swarm = super::attacker::swarm(&Speaks::default());
    swarm.dial(target.p2p.clone()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut result = None;
    let peer = target.peer;
    super::attacker::drive_until(&mut swarm, deadline, |swarm, event| match event {
        SwarmEvent::ConnectionEstablished { .. } => {
            swarm.behaviour_mut().sync.send_request(
                &peer,
                SyncRequest::Ids {
                    day,
                    after: None,
                    limit: 4096,
                },
            );
            false
        }
        SwarmEvent::Behaviour(AttackBehaviourEvent::Sync(request_response::Event::Message {
            message: request_response::Message::Response { response, .. },
            ..
        })) => {
            if let SyncResponse::Ids { ids, .. } = response {
                result = Some(ids);
            }
            true
        }
        SwarmEvent::Behaviour(AttackBehaviourEvent::Sync(
            request_response::Event::OutboundFailure { .. },
        )) => true,
        _ => false,
    })
    .await;
    result
}

/// The hex Ed25519 key of `factory`'s authority, as the node's config takes it.
pub(crate) fn factory_key(factory: &UploadFactory) -> String {
    factory.public_key().to_hex()
}

/// Waits until `done` holds (polled every 100 ms), up to `timeout`.
pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
    timeout: Duration,
    mut done: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
