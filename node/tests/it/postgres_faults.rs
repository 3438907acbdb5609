//! Faults of a group of nodes on PostgreSQL, with real processes: two `ephemera-node serve`
//! binaries share one database of a PostgreSQL server that the test starts for itself
//! (`initdb` in a temporary folder, a free port on loopback), so it may stop and restart it.
//!
//! - one node is SIGKILLed under load: nothing either node acknowledged is lost and the
//!   survivor serves on;
//! - PostgreSQL is stopped under load and started again: meanwhile the nodes answer 503
//!   with `Retry-After` (never 500), and they recover by themselves, losing nothing;
//! - everything is restarted: reports, codes and accounts are still there.
//!
//! They need PostgreSQL's programs: `POSTGRES_TEST_BIN` (`.ci/postgres.sh` sets
//! it), else `/usr/lib/postgresql/*/bin`. Without them they say so and pass, except under
//! `CI=true`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ephemera_node::store::{PostgresConfig, PostgresReportStore, ReportStore as _};
use ephemera_proto::api::VerifyRequest;
use ephemera_proto::auth::ReportHmacKey;

use crate::crash::{
    Acked, Attempt, Running, assert_replayed, attempt, login, send, set_first_password, start,
    today,
};
use crate::util::{Response, pet_contents, request};

/// A private PostgreSQL server for one test, stopped when dropped.
struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn postgres_bin() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("POSTGRES_TEST_BIN") {
        return Some(PathBuf::from(bin));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

impl Server {
    /// `initdb` and start; `None` (with a note) where PostgreSQL is not installed, outside CI.
    fn start() -> Option<Server> {
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the PostgreSQL fault tests: install PostgreSQL (.ci/postgres.sh)"
            );
            eprintln!("PostgreSQL is not installed: the fault tests do not run");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Server { bin, dir, port };
        if is_root() {
            // PostgreSQL refuses to run as root: its folder goes to the postgres user.
            let owned = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(server.dir.path())
                .status()
                .unwrap();
            assert!(owned.success());
        }
        server.pg(
            "initdb",
            &["-D", &server.data(), "-U", "postgres", "--auth=trust"],
        );
        server.up();
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of PostgreSQL's programs (as the postgres user when this is root).
    fn pg(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = command.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn up(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    fn down(&self) {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The store the nodes share, opened from the test.
    fn store(&self) -> PostgresReportStore {
        let mut config = PostgresConfig::new(self.url());
        config.pool_size = 2;
        PostgresReportStore::open(&config).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

/// A node of the group in `dir` (keys in `dir/data/keys`) on `server`.
fn start_node(server: &Server, dir: &Path) -> (Running, Option<(String, String)>) {
    let bin = env!("CARGO_BIN_EXE_ephemera-node");
    let url = format!("storage.url={}", server.url());
    start(
        bin,
        dir,
        &[
            "--set",
            "storage.backend=postgres",
            "--set",
            &url,
            "--set",
            "storage.pool_size=4",
        ],
    )
}

/// A second node folder holding the first one's keys.
fn sibling_folder(first: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(first.join("data").join(ephemera_node_core::keys::KEYS_DIR))
        .arg(dir.path().join("data"))
        .status()
        .unwrap();
    assert!(copied.success());
    dir
}

/// Two nodes of one group on `server`, their case worker signed in at each.
struct Group {
    a: (tempfile::TempDir, Running),
    b: (tempfile::TempDir, Running),
    /// A session at `a`, then one at `b`.
    sessions: [String; 2],
    name: String,
    password: String,
}

impl Group {
    async fn start(server: &Server) -> Group {
        let dir_a = tempfile::tempdir().unwrap();
        let (a, credentials) = start_node(server, dir_a.path());
        let (name, one_time) = credentials.expect("the first node prints the case worker");
        let password = set_first_password(a.addr, &name, &one_time).await;
        let dir_b = sibling_folder(dir_a.path());
        let (b, again) = start_node(server, dir_b.path());
        assert!(again.is_none(), "accounts are shared: none made again");
        let sessions = [
            login(a.addr, &name, &password).await,
            login(b.addr, &name, &password).await,
        ];
        Group {
            a: (dir_a, a),
            b: (dir_b, b),
            sessions,
            name,
            password,
        }
    }
}

/// Everything the writers saw.
#[derive(Default)]
struct Tally {
    acked: Vec<Acked>,
    refused: Vec<Response>,
    gone: usize,
}

/// `writers` tasks uploading to `targets` (address, session) in turn until `stop`.
fn writers(
    targets: Vec<(SocketAddr, String)>,
    writers: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let (targets, stop, tally) = (targets.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                let mut turn = w;
                while !stop.load(Ordering::Relaxed) {
                    let (addr, session) = &targets[turn % targets.len()];
                    turn += 1;
                    let result = attempt(*addr, session).await;
                    {
                        let mut tally = tally.lock().unwrap();
                        match result {
                            Attempt::Acked(a) => tally.acked.push(a),
                            Attempt::Refused(r) => tally.refused.push(r),
                            Attempt::Gone => tally.gone += 1,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect()
}

/// Every acknowledged upload is in the database and replays at `addr` to the first answer.
async fn assert_kept(server: &Server, addr: SocketAddr, acked: &[Acked]) {
    let store = server.store();
    for a in acked {
        assert!(
            store.certificate_use(&a.certificate).unwrap().is_some(),
            "an acknowledged upload's certificate is marked used"
        );
    }
    // Replays are idempotent: the very revision token comes back (a sample keeps it short).
    for a in acked.iter().step_by(acked.len().div_ceil(40).max(1)) {
        assert_replayed(addr, a).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_under_load_loses_nothing_and_the_other_serves_on() {
    let Some(server) = Server::start() else {
        return;
    };
    let Group {
        a: (_dir_a, mut a),
        b: (_dir_b, mut b),
        sessions,
        ..
    } = Group::start(&server).await;
    let targets = vec![(a.addr, sessions[0].clone()), (b.addr, sessions[1].clone())];
    let (stop, tally) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Tally::default())),
    );
    let tasks = writers(targets, 8, stop.clone(), tally.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let acked_at_kill = tally.lock().unwrap().acked.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    assert!(acked_at_kill > 0, "uploads went through before the kill");
    assert!(
        tally.acked.len() > acked_at_kill,
        "the survivor took uploads after the kill ({} then {})",
        acked_at_kill,
        tally.acked.len()
    );
    let refused: Vec<String> = tally
        .refused
        .iter()
        .map(|r| format!("{} {}", r.status, String::from_utf8_lossy(&r.body)))
        .collect();
    assert!(
        refused.is_empty(),
        "nothing is refused when a node dies: {refused:?}"
    );
    assert_kept(&server, b.addr, &tally.acked).await;
    assert_eq!(
        request(b.addr, "GET", "/healthz", &[], &[]).await.status,
        200
    );
    b.child.kill().unwrap();
    b.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_is_503_then_recovery_and_everything_survives_a_full_restart()
{
    let Some(server) = Server::start() else {
        return;
    };
    let Group {
        a: (dir_a, mut a),
        b: (_dir_b, mut b),
        sessions,
        name,
        password,
    } = Group::start(&server).await;
    let session_a = sessions[0].clone();
    let targets = vec![(a.addr, session_a.clone()), (b.addr, sessions[1].clone())];
    let (stop, tally) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Tally::default())),
    );
    let tasks = writers(targets, 8, stop.clone(), tally.clone());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.down();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = tally.lock().unwrap().refused.len();
    server.up();
    let acked_at_restart = tally.lock().unwrap().acked.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    assert!(
        during > 0,
        "requests were refused while the database was down"
    );
    for refused in &tally.refused {
        let body = String::from_utf8_lossy(&refused.body);
        assert_eq!(refused.status, 503, "{body}");
        assert!(
            body.contains("storage-unavailable"),
            "503 storage-unavailable, not a 500: {body}"
        );
        assert!(refused.header("retry-after").is_some(), "{body}");
    }
    assert_eq!(tally.gone, 0, "no node went away");
    assert!(
        tally.acked.len() > acked_at_restart,
        "the nodes recovered by themselves ({acked_at_restart} then {})",
        tally.acked.len()
    );
    assert_kept(&server, a.addr, &tally.acked).await;

    // A code issued now and not used, then everything restarted.
    let body = serde_json::json!({"test_type": "confirmed", "count": 1}).to_string();
    let r = send(
        a.addr,
        "/v1/codes",
        "application/json",
        Some(&session_a),
        body.into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let unused = r.json()["codes"][0]["code"].as_str().unwrap().to_owned();
    for node in [&mut a, &mut b] {
        node.child.kill().unwrap();
        node.child.wait().unwrap();
    }
    server.down();
    server.up();
    let (a, again) = start_node(&server, dir_a.path());
    assert!(again.is_none(), "the accounts survived");
    let session = login(a.addr, &name, &password).await;
    assert!(!session.is_empty());
    let contents = pet_contents(1, today().day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let verify = VerifyRequest {
        code: unused,
        report_hmac: hex::encode(hmac_key.authenticate(&contents).0),
        decoy: false,
        padding: String::new(),
    };
    let r = send(
        a.addr,
        "/v1/verify",
        "application/json",
        None,
        verify.to_padded_json(),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status,
        200,
        "the code survived: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_kept(&server, a.addr, &tally.acked).await;
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
}
