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
    let mount = PathBuf::from(
        std::env::var("EPHEMERA_FULL_DISK_DIR").expect("EPHEMERA_FULL_DISK_DIR (a small mount)"),
    );
    let data = mount.join("data");
    let filler = mount.join("filler");
    let node = TestNode::start_uncaptured(test_config(&data), ManualClock::new(T0)).await;
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
        let opened = open_node(test_config(&data), &clock).await;
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
    let node = TestNode::start_uncaptured(test_config(&data), clock).await;
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
