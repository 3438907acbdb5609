//! Crash safety (`#[ignore]`d: run by `scripts/crash-safety.sh`): uploads and a case
//! worker's venue traces against the real `ephemera-node` binary, SIGKILLed at a random
//! moment, restarted on the same data folder; every upload the node acknowledged (200)
//! before the kill must still be there: read from the dead node's store (its certificate's
//! single-use mark and the upload it points at), then, after a restart that must open
//! cleanly, replaying it answers 200 with the very revision token of the first answer
//! (retries are idempotent). Every venue release acknowledged (201) must be in the dead
//! node's store and served after the restart. Batches are cut every
//! second meanwhile, so kills also land in the middle of cuts: every batch and export the
//! killed node's index lists must read back whole, and its blobs folder must hold exactly
//! their files once the store has opened (crash leftovers removed).
//!
//! `CRASH_ROUNDS` (default 20), `CRASH_WRITERS` (default 8), `EPHEMERA_NODE_BIN` (default
//! the binary Cargo built with this test).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ephemera_node::store::{ReportStore as _, SledReportStore};
use ephemera_proto::UnixTime;
use ephemera_proto::api::{VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{CertificateId, ReportHmacKey};
use ephemera_proto::upload::{SignedUpload, UploadRequest};
use ephemera_proto::venue::{ReleaseId, VenueKeyAnnouncement, create_venue};
use ephemera_proto::wire;

use crate::util::{Response, pet_contents, request, test_password};

/// A node process.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

impl Drop for Running {
    /// A test that fails leaves no node behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on 127.0.0.1:0 with `dir/data`, plus `extra` arguments; returns it and
/// the first case worker, if created.
pub(crate) fn start(bin: &str, dir: &Path, extra: &[&str]) -> (Running, Option<(String, String)>) {
    let mut child = Command::new(bin)
        .current_dir(dir)
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--set", "log.filter=warn"])
        .args(["--set", "publication.batch_period_seconds=1"])
        .args(["--set", "federation.listen=127.0.0.1:0"])
        // A faster machine acknowledges more than the default 10 000 codes a day over the
        // rounds; the quota is not what these tests are about.
        .args(["--set", "authority.account_daily_codes=10000000"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ephemera-node");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut name, mut password) = (None, None);
    let addr = loop {
        let line = lines
            .next()
            .expect("the node exited before listening (store did not open?)")
            .unwrap();
        if let Some(rest) = line.trim().strip_prefix("name:") {
            name = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.trim().strip_prefix("password:") {
            password = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("ephemera-node listening on http://") {
            break rest.trim().parse::<SocketAddr>().unwrap();
        }
    };
    // Keep draining stdout so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    assert!(addr.ip().is_loopback());
    (Running { child, addr }, name.zip(password))
}

/// One request in its own task, so a connection the kill cuts (the harness panics on a
/// short answer) reads as `None` instead of failing the test.
pub(crate) async fn send(
    addr: SocketAddr,
    path: &'static str,
    content_type: &'static str,
    auth: Option<&str>,
    body: Vec<u8>,
) -> Option<Response> {
    let bearer = auth.map(|t| format!("Bearer {t}"));
    tokio::spawn(async move {
        let mut headers = vec![("Content-Type", content_type)];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        request(addr, "POST", path, &headers, &body).await
    })
    .await
    .ok()
}

pub(crate) async fn login(addr: SocketAddr, name: &str, password: &str) -> String {
    let body = serde_json::json!({"name": name, "password": password}).to_string();
    let r = send(
        addr,
        "/v1/session",
        "application/json",
        None,
        body.into_bytes(),
    )
    .await
    .expect("sign-in");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().unwrap().to_owned()
}

/// The first sign-in with the one-time password the node printed: sets the password a
/// person would choose (the session may do nothing else before) and returns it.
pub(crate) async fn set_first_password(addr: SocketAddr, name: &str, one_time: &str) -> String {
    let session = login(addr, name, one_time).await;
    let password = test_password(one_time);
    let body = serde_json::json!({"current_password": one_time, "new_password": password});
    let r = send(
        addr,
        "/v1/session/password",
        "application/json",
        Some(&session),
        body.to_string().into_bytes(),
    )
    .await
    .expect("password change");
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    password
}

pub(crate) fn today() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

/// An acknowledged upload: its body, certificate id and the revision token answered.
pub(crate) struct Acked {
    pub(crate) body: Vec<u8>,
    pub(crate) certificate: CertificateId,
    pub(crate) token: String,
    /// The code it was certified with (for scans of what a node keeps).
    pub(crate) code: String,
}

/// Reads the killed node's store: every acknowledged upload's certificate is marked used
/// by an upload record that carries that certificate; every indexed batch and export reads
/// back whole, and the blobs folder holds their files and nothing else once the store has
/// opened. Returns the number of batches and of files the open removed (crash leftovers).
fn assert_stored(
    dir: &Path,
    acked: &[Acked],
    releases: &[ReleaseId],
    round: usize,
) -> (usize, usize) {
    let data = dir.join("data");
    let blob_files = || {
        std::fs::read_dir(data.join(ephemera_node::node::BLOB_DIR))
            .unwrap()
            .count()
    };
    let files_before = blob_files();
    let store = SledReportStore::open(
        &data.join(ephemera_node::node::DB_DIR),
        &data.join(ephemera_node::node::BLOB_DIR),
        &data
            .join(ephemera_node::keys::KEYS_DIR)
            .join(ephemera_node::store::DATA_KEYS_DIR),
    )
    .expect("the killed node's store opens");
    for (i, a) in acked.iter().enumerate() {
        let mark = store.certificate_use(&a.certificate).unwrap();
        let upload = mark.and_then(|m| store.upload(&m.upload).unwrap());
        assert!(
            upload.is_some_and(|u| u.upload.certificate.certificate.id == a.certificate),
            "round {round}: acknowledged upload {i} of {} was lost",
            acked.len()
        );
    }
    for (i, id) in releases.iter().enumerate() {
        assert!(
            store.venue_release(id).unwrap().is_some(),
            "round {round}: acknowledged venue release {i} of {} was lost",
            releases.len()
        );
    }
    let batches = store.batch_index(0, usize::MAX).unwrap();
    for entry in &batches {
        let bytes = store
            .batch(&entry.id)
            .unwrap_or_else(|e| panic!("round {round}: batch {} unreadable: {e}", entry.sequence));
        assert_eq!(
            bytes.map(|b| b.len() as u64),
            Some(entry.size),
            "round {round}: batch {} is not whole",
            entry.sequence
        );
    }
    // Each batch with tokens has its token filter, stored in the same cut.
    let mut filters = 0;
    for entry in batches.iter().filter(|e| e.tokens > 0) {
        let filter = store
            .token_filter(&entry.id)
            .unwrap_or_else(|e| panic!("round {round}: filter {} unreadable: {e}", entry.sequence));
        assert!(
            filter.is_some_and(|f| !f.is_empty()),
            "round {round}: batch {} has no filter",
            entry.sequence
        );
        filters += 1;
    }
    let exports = store.export_names().unwrap();
    for name in &exports {
        let bytes = store
            .export(name)
            .unwrap_or_else(|e| panic!("round {round}: export {name} unreadable: {e}"));
        assert!(
            bytes.is_some_and(|b| !b.is_empty()),
            "round {round}: {name}"
        );
    }
    let files = blob_files();
    assert_eq!(
        files,
        batches.len() + filters + exports.len(),
        "round {round}: the blobs folder holds exactly the indexed files after open"
    );
    (batches.len(), files_before - files)
}

/// Replays an acknowledged upload: the first answer again.
pub(crate) async fn assert_replayed(addr: SocketAddr, a: &Acked) {
    let r = request(
        addr,
        "POST",
        "/v1/uploads",
        &[("Content-Type", "application/octet-stream")],
        &a.body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["revision_token"].as_str().unwrap(), a.token);
}

/// What one upload attempt got.
pub(crate) enum Attempt {
    /// Acknowledged.
    Acked(Acked),
    /// Refused on the way (code, verify or upload): the answer.
    Refused(Response),
    /// The node was not there, or the connection broke.
    Gone,
}

/// One code, verify and upload at `addr`, stopping at the first refusal.
pub(crate) async fn attempt(addr: SocketAddr, session: &str) -> Attempt {
    let body = serde_json::json!({"test_type": "confirmed", "count": 1}).to_string();
    let Some(r) = send(
        addr,
        "/v1/codes",
        "application/json",
        Some(session),
        body.into_bytes(),
    )
    .await
    else {
        return Attempt::Gone;
    };
    if r.status != 200 {
        return Attempt::Refused(r);
    }
    let code = r.json()["codes"][0]["code"].as_str().unwrap().to_owned();
    let contents = pet_contents(4, today().day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let verify = VerifyRequest {
        code: code.clone(),
        report_hmac: hex::encode(hmac_key.authenticate(&contents).0),
        decoy: false,
        padding: String::new(),
    };
    let Some(r) = send(
        addr,
        "/v1/verify",
        "application/json",
        None,
        verify.to_padded_json(),
    )
    .await
    else {
        return Attempt::Gone;
    };
    if r.status != 200 {
        return Attempt::Refused(r);
    }
    let certificate = serde_json::from_slice::<VerifyResponse>(&r.body)
        .unwrap()
        .certificate()
        .unwrap();
    let certificate_id = certificate.certificate.id;
    let upload = wire::encode(&UploadRequest::real_v1(SignedUpload {
        contents,
        certificate,
        hmac_key,
    }));
    let Some(r) = send(
        addr,
        "/v1/uploads",
        "application/octet-stream",
        None,
        upload.clone(),
    )
    .await
    else {
        return Attempt::Gone;
    };
    if r.status != 200 {
        return Attempt::Refused(r);
    }
    Attempt::Acked(Acked {
        code,
        body: upload,
        certificate: certificate_id,
        token: r.json()["revision_token"].as_str().unwrap().to_owned(),
    })
}

/// One upload built and sent; `Some` when acknowledged, `None` when the node went away
/// mid-way (expected around the kill).
async fn one_upload(addr: SocketAddr, session: &str) -> Option<Acked> {
    match attempt(addr, session).await {
        Attempt::Acked(acked) => Some(acked),
        Attempt::Refused(r) => panic!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
        Attempt::Gone => None,
    }
}

/// The trace code of a venue of the node at `addr`'s authority (its venue key from
/// `GET /v1/venue-key`, as a venue's own machine gets it).
async fn venue_trace_code(addr: SocketAddr) -> String {
    let answer = request(addr, "GET", "/v1/venue-key", &[], b"").await;
    let announcement: VenueKeyAnnouncement = serde_json::from_slice(&answer.body).unwrap();
    let authority = announcement.named_authority().unwrap();
    let key = announcement.verify(&authority).unwrap();
    let (_, code) = create_venue(
        &key,
        "Crash Cafe",
        "",
        UnixTime(0),
        UnixTime(u64::MAX),
        &mut rand::rng(),
    )
    .unwrap();
    code.to_text().to_string()
}

/// One venue trace by the case worker: the release's id once acknowledged (201), `None`
/// when the kill cut the request.
async fn one_trace(addr: SocketAddr, session: &str, code: &str) -> Option<ReleaseId> {
    let from = today().minus_seconds(7200);
    let body = serde_json::json!({
        "trace_code": code,
        "case_from": from.0,
        "case_until": from.0 + 1800,
        "message": "Watch for symptoms.",
    });
    let r = send(
        addr,
        "/v1/venue-traces",
        "application/json",
        Some(session),
        body.to_string().into_bytes(),
    )
    .await?;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    ReleaseId::from_hex(r.json()["release"].as_str()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes long; run by scripts/crash-safety.sh"]
async fn sigkill_loses_no_acknowledged_upload() {
    let env = |k: &str, d: usize| std::env::var(k).ok().map_or(d, |v| v.parse().unwrap());
    let rounds = env("CRASH_ROUNDS", 20);
    let writers = env("CRASH_WRITERS", 8);
    let bin = std::env::var("EPHEMERA_NODE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ephemera-node").to_owned());
    let dir = tempfile::tempdir().unwrap();
    let (mut node, credentials) = start(&bin, dir.path(), &[]);
    let (name, one_time) = credentials.expect("first start prints the case worker");
    let password = set_first_password(node.addr, &name, &one_time).await;
    let trace_code = venue_trace_code(node.addr).await;
    let mut all_acked: Vec<Acked> = Vec::new();
    let mut all_releases: Vec<ReleaseId> = Vec::new();
    let mut crash_leftovers = 0;
    let started = Instant::now();
    for round in 0..rounds {
        let session = login(node.addr, &name, &password).await;
        let fresh = all_acked.len();
        let fresh_releases = all_releases.len();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let released = Arc::new(Mutex::new(Vec::new()));
        let stop_at = Instant::now() + Duration::from_millis(rand::random_range(100..1500));
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let (addr, session, acked) = (node.addr, session.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                // Bounded: at most 10 000 uploads per writer per round.
                for _ in 0..10_000 {
                    match one_upload(addr, &session).await {
                        Some(upload) => acked.lock().unwrap().push(upload),
                        None => return,
                    }
                }
            }));
        }
        // And a case worker tracing venues meanwhile.
        let (addr, session_of_tracer, code) = (node.addr, session.clone(), trace_code.clone());
        let tracer_released = released.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10_000 {
                match one_trace(addr, &session_of_tracer, &code).await {
                    Some(id) => tracer_released.lock().unwrap().push(id),
                    None => return,
                }
            }
        }));
        tokio::time::sleep_until(stop_at.into()).await;
        // SIGKILL while writers are mid-request.
        node.child.kill().unwrap();
        node.child.wait().unwrap();
        for task in tasks {
            // A writer panics only on a wrong answer from a live node.
            if let Err(e) = task.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        all_acked.extend(acked);
        all_releases.extend(std::mem::take(&mut *released.lock().unwrap()));
        let (batches, leftovers) = assert_stored(
            dir.path(),
            &all_acked[fresh..],
            &all_releases[fresh_releases..],
            round,
        );
        crash_leftovers += leftovers;
        let (restarted, again) = start(&bin, dir.path(), &[]);
        assert!(
            again.is_none(),
            "a restart must not create a new case worker"
        );
        node = restarted;
        let health = request(node.addr, "GET", "/healthz", &[], b"").await;
        assert_eq!(health.status, 200, "the store did not open cleanly");
        for a in &all_acked[fresh..] {
            assert_replayed(node.addr, a).await;
        }
        for id in &all_releases[fresh_releases..] {
            assert_release_served(node.addr, id).await;
        }
        println!(
            "round {:>2}: killed after {} acknowledged uploads and {} venue releases; all \
             found in the store, uploads replay with their first answer, releases are \
             served; {batches} batches, all whole; {leftovers} unindexed files removed at open",
            round + 1,
            all_acked.len() - fresh,
            all_releases.len() - fresh_releases,
        );
    }
    // Finally every upload and release of every round, once more.
    for a in &all_acked {
        assert_replayed(node.addr, a).await;
    }
    for id in &all_releases {
        assert_release_served(node.addr, id).await;
    }
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    println!(
        "crash safety: {rounds} SIGKILLs, {} acknowledged uploads and {} venue releases, 0 \
         lost; {crash_leftovers} batch/export files of interrupted cuts removed at open \
         ({:.1} s)",
        all_acked.len(),
        all_releases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        all_acked.len() >= rounds,
        "too few uploads to mean anything"
    );
    assert!(
        all_releases.len() >= rounds,
        "too few venue releases to mean anything"
    );
}

/// An acknowledged release is served whole after the restart.
async fn assert_release_served(addr: SocketAddr, id: &ReleaseId) {
    let r = request(
        addr,
        "GET",
        &format!("/v1/venue-releases/{}", id.to_hex()),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "release {id} not served after the restart");
    let served = ring::digest::digest(&ring::digest::SHA256, &r.body);
    assert_eq!(served.as_ref(), id.0.as_slice(), "release {id} not whole");
}
