//! Publication to object storage (`[publication] object_store`, `publish-static`): a
//! folder, an S3-compatible server started here (moto), and nginx as a caching proxy in
//! front of the published folder serving batches with no node running.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ephemera_node::clock::ManualClock;
use ephemera_node::config::NodeConfig;
use ephemera_node::publish::{Layout, Publisher, REVALIDATE};
use ephemera_proto::UnixTime;
use ephemera_proto::batch::{SignedBatch, TrustedNodes};
use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::report::{ReportContents, ReportType};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, GetOptions, ObjectStore as _, ObjectStoreExt as _};

use crate::util::*;

/// Noon of T0's day: GAEN keys of the days before are accepted.
fn noon() -> UnixTime {
    UnixTime(T0.day().start().0 + 12 * 3600)
}

fn publishing_config(dir: &Path, out: &Path) -> NodeConfig {
    let mut config = test_config(dir);
    config.publication.object_store = Some(format!("file://{}", out.display()));
    config
}

/// A `pet` and a GAEN report, and the cut that publishes them.
async fn reports_and_a_cut(node: &TestNode) {
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(3, noon().day()))
        .await;
    let key = DiagnosisKey {
        key: TemporaryExposureKey([7; 16]),
        rolling_start: noon().day().minus(2).first_interval(),
        rolling_period: 144,
        report_type: ReportType::SelfReport,
        days_since_onset: None,
    };
    node.report(&session, "confirmed", ReportContents::Gaen(vec![key]))
        .await;
    node.next_batches().await;
}

/// Every path a phone or key server reads from the node now, with the index pages of every
/// cursor.
async fn public_paths(node: &TestNode) -> Vec<String> {
    let mut paths: Vec<String> = [
        "/v1/batches?after=0",
        "/v1/authority",
        "/v1/authority/export-key.pem",
        "/v1/sealing-key",
        "/v1/venue-key",
        "/v2/token-keys",
        "/v1/exports/index.txt",
    ]
    .map(str::to_owned)
    .into();
    for batch in node.index(0).await.batches {
        paths.push(format!("/v1/batches/{}", batch.id));
        let filter = format!("/v1/batches/{}/filter", batch.id);
        if node.get(&filter).await.status == 200 {
            paths.push(filter);
        }
        paths.push(format!("/v1/batches?after={}", batch.sequence));
    }
    let index = String::from_utf8(node.get("/v1/exports/index.txt").await.body).unwrap();
    paths.extend(index.lines().map(|line| format!("/{line}")));
    paths
}

/// Where the folder layout puts the answer of `path` (node/deploy/nginx/static.conf).
fn folder_file(path: &str) -> String {
    let path = path.trim_start_matches('/');
    if let Some(after) = path.strip_prefix("v1/batches?after=") {
        return format!("v1/batches/after/{after}");
    }
    let is_batch = path
        .strip_prefix("v1/batches/")
        .is_some_and(|id| id.len() == 64 && !id.contains('/'));
    if is_batch || path == "v1/authority" {
        return format!("{path}/index");
    }
    path.to_owned()
}

#[tokio::test]
async fn a_folder_store_holds_the_bytes_the_api_serves_retries_failures_and_deletes_purged_batches()
{
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(noon());
    let node = TestNode::start_with(publishing_config(dir.path(), out.path()), clock.clone()).await;
    reports_and_a_cut(&node).await;

    // The store fails (a file where its folder goes): counted, nothing lost, retried.
    let blocker = out.path().join("v1");
    std::fs::write(&blocker, b"in the way").unwrap();
    let failed = node.node.publish().await;
    assert!(failed.is_none_or(|round| round.failed > 0), "{failed:?}");
    let metrics = String::from_utf8(node.get("/metrics").await.body).unwrap();
    assert!(
        sample(&metrics, "ephemera_publication_failures_total").unwrap() >= 1.0,
        "{metrics}"
    );
    std::fs::remove_file(&blocker).unwrap();
    let round = node.node.publish().await.expect("published");
    assert_eq!(round.failed, 0);

    let paths = public_paths(&node).await;
    assert!(paths.iter().any(|p| p.ends_with("/filter")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with(".zip")), "{paths:?}");
    assert_eq!(round.written, paths.len() as u64, "{paths:?}");
    for path in &paths {
        let api = node.get(path).await;
        assert_eq!(api.status, 200, "{path}");
        let file = std::fs::read(out.path().join(folder_file(path)))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            file == api.body,
            "{path}: the file differs from the API's answer"
        );
    }

    // The next round rewrites the documents only, never an immutable file.
    let again = node.node.publish().await.unwrap();
    let immutable = paths
        .iter()
        .filter(|p| !p.contains('?') && (p.starts_with("/v1/batches/") || p.ends_with(".zip")))
        .count() as u64;
    assert!(immutable >= 3, "{paths:?}");
    assert_eq!(
        (again.written, again.deleted),
        (paths.len() as u64 - immutable, 0)
    );

    // After retention the node purges its batches and exports: so does the store.
    let batch_files: Vec<String> = paths
        .iter()
        .filter(|p| !p.contains('?') && p.starts_with("/v1/batches/"))
        .map(|p| folder_file(p))
        .collect();
    clock.set(UnixTime(noon().0 + 15 * 86_400));
    let purged = node.node.purge().unwrap();
    assert!(purged.batches > 0);
    let round = node.node.publish().await.unwrap();
    assert_eq!(round.failed, 0);
    assert!(round.deleted as usize >= batch_files.len(), "{round:?}");
    for file in &batch_files {
        assert!(!out.path().join(file).exists(), "{file} outlived its batch");
    }
    let page = std::fs::read(out.path().join("v1/batches/after/0")).unwrap();
    assert_eq!(page, node.get("/v1/batches?after=0").await.body);
    let metrics = String::from_utf8(node.get("/metrics").await.body).unwrap();
    assert!(sample(&metrics, "ephemera_publication_deletes_total").unwrap() >= 3.0);
    node.stop().await;
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A program this test needs: present, or a skip note locally and a failure in CI.
fn needed(program: &str, why: &str) -> bool {
    let found = Command::new(program)
        .arg(if program == "nginx" { "-v" } else { "--help" })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing in CI ({why}); .ci/run installs it"
        );
        eprintln!("SKIPPED: {program} is not installed ({why})");
    }
    found
}

/// A child process stopped when dropped: SIGTERM first, so nginx's master takes its
/// workers along (a SIGKILL would leave them running), then SIGKILL after 5 s.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on `addr`.
async fn listening(addr: SocketAddr, what: &str) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not listen on {addr}");
}

#[tokio::test]
async fn an_s3_server_gets_the_files_with_the_apis_content_types_and_cache_control() {
    if !needed("moto_server", "pip install 'moto[server]'") {
        return;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _moto = Running(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    listening(addr, "moto_server").await;
    assert_eq!(
        request(addr, "PUT", "/ephemera", &[], b"").await.status,
        200
    );
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://{addr}"))
        .with_allow_http(true)
        .with_bucket_name("ephemera")
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let store = Arc::new(object_store::prefix::PrefixStore::new(s3, "country"));
    // A signed HEAD (moto refuses anonymous reads): the headers S3 keeps for the object.
    let head = |key: String| {
        let store = store.clone();
        async move {
            let options = GetOptions {
                head: true,
                ..GetOptions::default()
            };
            store.get_opts(&ObjectPath::from(key), options).await
        }
    };

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(noon());
    let node = TestNode::start(dir.path(), clock.clone()).await;
    assert!(
        node.node
            .publish_to(Publisher::with_store(store.clone(), Layout::Keys))
    );
    reports_and_a_cut(&node).await;
    let round = node.node.publish().await.unwrap();
    assert_eq!(round.failed, 0);

    let paths = public_paths(&node).await;
    assert_eq!(round.written, paths.len() as u64);
    for path in &paths {
        let api = node.get(path).await;
        let key = path
            .trim_start_matches('/')
            .replace("v1/batches?after=", "v1/batches/after/");
        let object = head(key.clone())
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        for (attribute, name) in [
            (Attribute::ContentType, "content-type"),
            (Attribute::CacheControl, "cache-control"),
        ] {
            let stored = object.attributes.get(&attribute).map(|v| v.as_ref());
            // The API sends no Cache-Control for the authority document and export key: the
            // store says `no-cache`, so a CDN revalidates them (OPERATIONS.md).
            let want = api.header(name).or(Some(REVALIDATE));
            assert_eq!(stored, want, "{path}: {name}");
        }
        assert_eq!(object.meta.size, api.body.len() as u64, "{path}");
        let body = store.get(&ObjectPath::from(key)).await.unwrap();
        assert!(
            body.bytes().await.unwrap() == api.body,
            "{path}: the object differs"
        );
    }

    // Purged at the node, deleted from the bucket.
    let batch = node.index(0).await.batches[0].id;
    clock.set(UnixTime(noon().0 + 15 * 86_400));
    node.node.purge().unwrap();
    let round = node.node.publish().await.unwrap();
    assert!(round.deleted >= 2 && round.failed == 0, "{round:?}");
    let gone = head(format!("v1/batches/{batch}")).await;
    assert!(
        matches!(gone, Err(object_store::Error::NotFound { .. })),
        "{gone:?}"
    );
    node.stop().await;
}

#[tokio::test]
async fn nginx_caches_the_published_folder_and_a_phone_verifies_a_batch_with_no_node_running() {
    if !needed("nginx", "apt-get install nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("static");
    let node = TestNode::start(dir.path(), ManualClock::new(noon())).await;
    reports_and_a_cut(&node).await;
    let api_index = node.get("/v1/batches?after=0").await;
    let batch = node.index(0).await.batches[0].id;
    let api_batch = node.get(&format!("/v1/batches/{batch}")).await;
    let trusted = TrustedNodes::new().with(node.node.keys().batch.public_key());
    // `publish-static` through the command's own code, on the running node.
    let answer = ephemera_node::cli::publish_to_folder(&node.node, &out).await;
    assert!(
        matches!(
            answer,
            ephemera_node::control::ControlAnswer::Published { .. }
        ),
        "{answer:?}"
    );
    node.stop().await;

    // The sample server for the folder, and a caching proxy in front of it (a CDN).
    let (origin, cache) = (free_port(), free_port());
    let sample = include_str!("../../deploy/nginx/static.conf")
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{origin}"))
        .replace("/srv/ephemera/static", out.to_str().unwrap());
    let w = work.path().display();
    std::fs::create_dir_all(work.path().join("cache")).unwrap();
    let conf = format!(
        "worker_processes 1;\npid {w}/nginx.pid;\nerror_log {w}/error.log warn;\n\
         daemon off;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         client_body_temp_path {w}/tmp-body; proxy_temp_path {w}/tmp-proxy;\n\
         fastcgi_temp_path {w}/tmp-fcgi; uwsgi_temp_path {w}/tmp-uwsgi; scgi_temp_path {w}/tmp-scgi;\n\
         {sample}\n\
         proxy_cache_path {w}/cache keys_zone=cdn:1m;\n\
         server {{ listen 127.0.0.1:{cache}; access_log off;\n\
           location / {{ proxy_pass http://127.0.0.1:{origin}; proxy_cache cdn;\n\
             add_header X-Cache $upstream_cache_status always; }} }}\n}}\n"
    );
    std::fs::write(work.path().join("nginx.conf"), conf).unwrap();
    // As root nginx's workers run as nobody: they must read the folder and the cache.
    let _ = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(work.path())
        .status();
    let _nginx = Running(
        Command::new("nginx")
            .arg("-c")
            .arg(work.path().join("nginx.conf"))
            .arg("-p")
            .arg(work.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cdn = SocketAddr::from(([127, 0, 0, 1], cache));
    listening(cdn, "nginx").await;

    // A phone's sync: the index, then the batch twice (the second from the cache).
    let index = request(cdn, "GET", "/v1/batches", &[], b"").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.body, api_index.body);
    assert_eq!(index.header("content-type"), Some("application/json"));
    assert_eq!(index.header("cache-control"), Some("public, max-age=60"));
    let path = format!("/v1/batches/{batch}");
    let first = request(cdn, "GET", &path, &[], b"").await;
    let second = request(cdn, "GET", &path, &[], b"").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(second.header("x-cache"), Some("HIT"));
    for name in ["content-type", "cache-control", "x-content-type-options"] {
        assert_eq!(second.header(name), api_batch.header(name), "{name}");
    }
    let (summary, _) = SignedBatch::verify(&second.body, &trusted).expect("a valid batch");
    assert_eq!(summary.id, batch);
    // What the folder does not hold, and a cursor that is not a number, are 404.
    for bad in [
        "/v1/batches?after=../../etc",
        "/v1/uploads",
        "/v1/batches?after=1",
    ] {
        assert_eq!(
            request(cdn, "GET", bad, &[], b"").await.status,
            404,
            "{bad}"
        );
    }
}

/// The batch files (`v1/batches/<id>/index`) of a published folder, with their bytes.
fn batch_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir.join("v1/batches")) else {
        return Default::default();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let bytes = std::fs::read(e.path().join("index")).ok()?;
            Some((name, bytes))
        })
        .collect()
}

#[tokio::test]
async fn the_binary_publishes_after_its_own_cuts_and_publish_static_writes_the_tree_offline() {
    let bin = env!("CARGO_BIN_EXE_ephemera-node");
    let dir = tempfile::tempdir().unwrap();
    let (live, offline) = (dir.path().join("live"), dir.path().join("offline"));
    let data = dir.path().join("data");
    let mut child = Command::new(bin)
        .current_dir(dir.path())
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--set", "log.filter=warn"])
        .args(["--set", "publication.batch_period_seconds=1"])
        .args(["--set", "federation.enabled=false"])
        .arg("--set")
        .arg(format!(
            "publication.object_store=file://{}",
            live.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Its background loop cuts a (padded) batch every second and publishes it.
    let mut published = Default::default();
    for _ in 0..300 {
        published = batch_files(&live);
        if published.len() >= 2 && live.join("v1/batches/after/0").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    assert!(
        published.len() >= 2,
        "the running node published {published:?}"
    );
    let authority = std::fs::read(live.join("v1/authority/index")).unwrap();

    // Stopped: the command opens the folder itself and writes the same tree.
    let output = Command::new(bin)
        .arg("publish-static")
        .arg("--data-dir")
        .arg(&data)
        .arg(&offline)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("published to "), "{stdout}");
    let written = batch_files(&offline);
    for (id, bytes) in &published {
        assert!(written.get(id) == Some(bytes), "{id} differs or is missing");
    }
    // The same keys (its settings are the config file's: no batch period of 1 s here).
    let key = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["authority_public_key"].clone()
    };
    let offline_authority = std::fs::read(offline.join("v1/authority/index")).unwrap();
    assert_eq!(key(&offline_authority), key(&authority));
    assert!(key(&authority).is_string());
}
