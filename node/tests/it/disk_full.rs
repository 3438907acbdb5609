//! A full disk: uploads fail without losing what was acknowledged, starts on the full disk
//! fail without damaging the database, and once space is freed the node starts with every
//! acknowledged upload. Needs a small file system of its own: `.ci/extra/disk-full.sh`
//! mounts one and names it in `EPHEMERA_FULL_DISK_DIR`.

use std::path::PathBuf;

use ephemera_node::clock::ManualClock;
use ephemera_proto::auth::{CertificateId, ReportHmacKey};
use ephemera_proto::upload::{SignedUpload, UploadBody};

use crate::util::*;

#[tokio::test]
#[ignore = "needs a small file system of its own: .ci/extra/disk-full.sh"]
async fn a_full_disk_loses_no_acknowledged_upload_and_the_node_starts_once_space_is_freed() {
    let mount = small_mount();
    let data = mount.join("data");
    let filler = mount.join("filler");
    // No reserve: this test fills the disk itself (the reserve is the next test's).
    let mut config = test_config(&data);
    config.storage.free_space_reserve_mb = 0;
    let node = TestNode::start_uncaptured(config.clone(), ManualClock::new(T0)).await;
    let session = node.login().await;
    let codes = node.issue(&session, "confirmed", None, 1000).await.codes;
    // Leave a little room, then upload until the disk refuses.
    let free = free_bytes(&mount);
    std::fs::write(&filler, vec![0u8; free.saturating_sub(3 << 20) as usize]).unwrap();
    let mut acknowledged: Vec<CertificateId> = Vec::new();
    let mut refused = 0;
    for code in &codes {
        let contents = pet_contents(200, T0.day());
        let hmac_key = ReportHmacKey::generate(&mut rand::rng());
        let accepted = match node.certify(&code.code, &contents, &hmac_key).await {
            Ok(certificate) => {
                let id = certificate.certificate.id;
                let upload = SignedUpload {
                    contents,
                    certificate,
                    hmac_key,
                };
                let response = node.upload_body(UploadBody::RealV1(upload)).await;
                (response.status == 200).then_some(id)
            }
            Err(_) => None,
        };
        if let Some(id) = accepted {
            acknowledged.push(id);
        } else {
            refused += 1;
            if refused >= 5 {
                break;
            }
        }
    }
    assert!(
        refused >= 5,
        "the disk never filled ({} bytes free)",
        free_bytes(&mount)
    );
    assert!(!acknowledged.is_empty());
    let clock = node.clock.clone();
    node.stop().await;

    // Take the last free byte, then restart on the full disk (the shipped unit restarts
    // every 2 s): each start may fail, none may leave the database unopenable.
    let last = mount.join("last-bytes");
    fill(&last);
    assert_eq!(free_bytes(&mount), 0);
    for attempt in 1..=3 {
        let opened = open_node(config.clone(), &clock).await;
        println!(
            "start {attempt} on the full disk: {}; sled snapshots: {:?}",
            opened
                .as_ref()
                .map_or_else(|e| e.to_string(), |_| "opened".to_owned()),
            snapshot_files(&data)
        );
    }
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(&last).unwrap();
    let node = TestNode::start_uncaptured(config, clock).await;
    let store = node.node.store();
    for certificate in &acknowledged {
        let mark = store
            .certificate_use(certificate)
            .unwrap()
            .expect("an acknowledged upload survived the full disk");
        assert!(store.upload(&mark.upload).unwrap().is_some());
    }
    println!(
        "disk full: {} uploads acknowledged, {refused} refused; all there after 3 starts on the full disk",
        acknowledged.len()
    );
    node.stop().await;
}

/// On a nearly full filesystem, once free space falls below the reserve, uploads and
/// verifies get 503 `insufficient-storage` with `Retry-After` and `/healthz` says
/// `"ready": false`; once space is freed they are taken again, and nothing acknowledged is
/// lost.
#[tokio::test]
#[ignore = "needs a small file system of its own: .ci/extra/disk-full.sh"]
async fn a_nearly_full_disk_refuses_uploads_below_the_reserve_until_space_is_freed() {
    let mount = small_mount();
    let data = mount.join("reserve-data");
    let filler = mount.join("reserve-filler");
    let mut config = test_config(&data);
    config.storage.free_space_reserve_mb = 4;
    let node = TestNode::start_uncaptured(config, ManualClock::new(T0)).await;
    let session = node.login().await;
    let first = node
        .upload_certified(&session, pet_contents(3, T0.day()))
        .await;
    assert_eq!(first.status, 200, "room above the reserve");
    let code = node.one_code(&session).await;

    // Leave 2 MiB: half the reserve.
    let free = free_bytes(&mount);
    std::fs::write(&filler, vec![0u8; free.saturating_sub(2 << 20) as usize]).unwrap();
    let ready = wait_for_readiness(&node, false).await;
    assert_eq!(ready["reason"], "disk-reserve", "{ready}");
    let free_at_refusal = free_bytes(&mount);
    let contents = pet_contents(2, T0.day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let refused = node.certify(&code, &contents, &hmac_key).await.unwrap_err();
    refused.assert_error(503, "insufficient-storage");
    assert!(refused.header("retry-after").is_some());
    let decoy = node.upload_body(UploadBody::Decoy).await;
    decoy.assert_error(503, "insufficient-storage");

    std::fs::remove_file(&filler).unwrap();
    wait_for_readiness(&node, true).await;
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    let upload = SignedUpload {
        contents,
        certificate,
        hmac_key,
    };
    assert_eq!(
        node.upload_body(UploadBody::RealV1(upload)).await.status,
        200
    );
    assert_eq!(node.node.store().upload_count().unwrap(), 2);
    println!(
        "disk reserve: 503 insufficient-storage with {} KiB free under a 4 MiB reserve; \
         uploads taken again once freed, 2 acknowledged",
        free_at_refusal >> 10
    );
    node.stop().await;
}

/// `/healthz` once its `ready` is `ready` (the reserve is sampled at most once a second);
/// panics after 10 s.
async fn wait_for_readiness(node: &TestNode, ready: bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let health = node.get("/healthz").await;
        assert_eq!(health.status, 200);
        let health = health.json();
        if health["ready"] == ready {
            return health;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ready never became {ready}: {health}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The small file system `.ci/extra/disk-full.sh` mounted.
fn small_mount() -> PathBuf {
    PathBuf::from(
        std::env::var("EPHEMERA_FULL_DISK_DIR").expect("EPHEMERA_FULL_DISK_DIR (a small mount)"),
    )
}

fn snapshot_files(data: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(data.join(ephemera_node::node::DB_DIR))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("snap."))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `path` until the file system refuses another byte.
fn fill(path: &std::path::Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    while file.write_all(&[0]).is_ok() {}
    let _ = file.sync_all();
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let output = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the free bytes")
}
