//! Key rotation with overlap (#29 item 4): phones follow a batch-key rollover, exports
//! carry both signatures during an export-key overlap, peers follow an authority-key
//! rollover, and `keys rotate` refuses while a node runs.

use std::path::Path;
use std::process::Command;

use ephemera_node::cli::{FolderArgs, KeyName, KeysCommand, RotateArgs, keys};
use ephemera_node::clock::ManualClock;
use ephemera_node_core::key_rotation;
use ephemera_proto::BatchError;
use ephemera_proto::auth::ReportHmacKey;
use ephemera_proto::batch::{SignedBatch, TrustedNodes};
use ephemera_proto::gaen::decode_export_zip;
use ephemera_proto::rollover::KeyRole;
use ephemera_proto::upload::{SignedUpload, UploadBody};

use crate::util::*;

/// `ephemera-node keys rotate <key> [--finish]`, in-process; returns what it printed.
async fn rotate(dir: &Path, key: KeyName, finish: bool) -> String {
    let command = KeysCommand::Rotate(RotateArgs {
        key,
        finish,
        version: None,
        folder: FolderArgs {
            config: None,
            data_dir: Some(dir.to_owned()),
        },
    });
    let mut out = Vec::new();
    keys(&command, &mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

/// Starts the node on `dir` again, signing in with the credentials of its first start.
async fn restart(
    dir: &Path,
    clock: &ManualClock,
    case_worker: &Option<(String, String)>,
) -> TestNode {
    let mut node = TestNode::start(dir, clock.clone()).await;
    node.case_worker.clone_from(case_worker);
    node
}

/// Fetches the batch `id` and verifies it with `trusted`.
async fn verify(node: &TestNode, id: &str, trusted: &TrustedNodes) -> Result<u64, BatchError> {
    let response = node.get(&format!("/v1/batches/{id}")).await;
    assert_eq!(response.status, 200);
    SignedBatch::verify(&response.body, trusted).map(|(summary, _)| summary.sequence)
}

#[tokio::test]
async fn a_phone_that_pinned_the_batch_key_follows_its_rollover_and_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let pinned = node.node.keys().batch.public_key();
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(2, T0.day()))
        .await;
    let first = node.next_batches().await.remove(0);
    assert!(node.index(0).await.key_rollovers.is_empty());
    let case_worker = node.case_worker.clone();
    node.stop().await;

    // Begin: the node restarts in the overlap, still signing with the pinned key.
    let begun = rotate(dir.path(), KeyName::Batch, false).await;
    assert!(begun.contains("batch key rotation begun"), "{begun}");
    let node = restart(dir.path(), &clock, &case_worker).await;
    assert_eq!(node.node.keys().batch.public_key(), pinned);
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(2, T0.day()))
        .await;
    let overlap = node.next_batches().await.remove(0);
    let old_phone = TrustedNodes::new().with(pinned);
    assert_eq!(
        verify(&node, &overlap.id.to_hex(), &old_phone).await,
        Ok(overlap.sequence)
    );
    let index = node.index(0).await;
    let [rollover] = index.key_rollovers.as_slice() else {
        panic!("one rollover in {index:?}")
    };
    assert_eq!((rollover.role, rollover.old), (KeyRole::Batch, pinned));
    let mut phone = old_phone.clone();
    assert_eq!(phone.follow(KeyRole::Batch, &index.key_rollovers).len(), 1);
    let next = rollover.new;
    node.stop().await;

    // Finish: batches are signed by the next key; the phone that followed verifies them,
    // one that ignores rollovers does not; the rollover stays in every page.
    let finished = rotate(dir.path(), KeyName::Batch, true).await;
    assert!(finished.contains("batch key switched"), "{finished}");
    let node = restart(dir.path(), &clock, &case_worker).await;
    assert_eq!(node.node.keys().batch.public_key(), next);
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(2, T0.day()))
        .await;
    let after = node.next_batches().await.remove(0);
    assert!(after.sequence > overlap.sequence && overlap.sequence > first.sequence);
    assert_eq!(
        verify(&node, &after.id.to_hex(), &phone).await,
        Ok(after.sequence)
    );
    assert_eq!(
        verify(&node, &after.id.to_hex(), &old_phone).await,
        Err(BatchError::UntrustedNode)
    );
    // A phone that slept through the overlap follows from the page it reads now.
    let page = node.index(after.sequence - 1).await;
    assert_eq!(page.batches.len(), 1);
    let mut late_phone = old_phone.clone();
    late_phone.follow(KeyRole::Batch, &page.key_rollovers);
    assert_eq!(
        verify(&node, &after.id.to_hex(), &late_phone).await,
        Ok(after.sequence)
    );
    // History: the batches phones saw before keep their ids, sequences and signatures.
    for seen in [&first, &overlap] {
        assert_eq!(
            verify(&node, &seen.id.to_hex(), &old_phone).await,
            Ok(seen.sequence)
        );
    }
    let status = key_rotation::status(dir.path(), "v1").unwrap();
    assert_eq!(status.retired.len(), 1);
    node.stop().await;
}

#[tokio::test]
async fn exports_carry_both_signatures_during_an_export_key_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let old = node.node.keys().export.public_point().to_vec();
    node.stop().await;
    rotate(dir.path(), KeyName::Export, false).await;

    let node = TestNode::start(dir.path(), clock.clone()).await;
    let next = node
        .node
        .keys()
        .next
        .export
        .as_ref()
        .unwrap()
        .0
        .public_point()
        .to_vec();
    node.next_batches().await;
    let latest = |index: String| index.lines().last().expect("an export").to_owned();
    let path = latest(String::from_utf8(node.get("/v1/exports/index.txt").await.body).unwrap());
    let zip = node.get(&format!("/{path}")).await.body;
    for key in [&old, &next] {
        let file = decode_export_zip(&zip, key).expect("either key verifies");
        let versions: Vec<&str> = file
            .signature_infos
            .iter()
            .map(|i| i.verification_key_version.as_str())
            .collect();
        assert_eq!(versions, ["v1", "v2"]);
    }
    node.stop().await;

    rotate(dir.path(), KeyName::Export, true).await;
    let node = TestNode::start(dir.path(), clock.clone()).await;
    node.next_batches().await;
    let path = latest(String::from_utf8(node.get("/v1/exports/index.txt").await.body).unwrap());
    let zip = node.get(&format!("/{path}")).await.body;
    let file = decode_export_zip(&zip, &next).unwrap();
    assert_eq!(file.signature_infos[0].verification_key_version, "v2");
    assert!(
        decode_export_zip(&zip, &old).is_err(),
        "the old key signs no more"
    );
    let pem = String::from_utf8(node.get("/v1/authority/export-key.pem").await.body).unwrap();
    assert_eq!(
        ephemera_proto::gaen::p256_public_key_from_pem(&pem)
            .unwrap()
            .as_slice(),
        next.as_slice()
    );
    node.stop().await;
}

#[tokio::test]
async fn a_peer_that_trusts_an_authority_key_accepts_its_announced_successor() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = ManualClock::new(T0);
    let a = TestNode::start(a_dir.path(), clock.clone()).await;
    let first = a.node.keys().authority.public_key();
    let case_worker = a.case_worker.clone();
    a.stop().await;
    rotate(a_dir.path(), KeyName::Authority, false).await;
    rotate(a_dir.path(), KeyName::Authority, true).await;
    let rollover = key_rotation::status(a_dir.path(), "v1")
        .unwrap()
        .rollovers
        .remove(0);
    let a = restart(a_dir.path(), &clock, &case_worker).await;
    assert_eq!(a.node.keys().authority.public_key(), rollover.new);
    // A still trusts the key it replaced: certificates it issued may be in flight.
    let trusted: Vec<String> =
        serde_json::from_value(a.get("/v1/authority").await.json()["trusted_authorities"].clone())
            .unwrap();
    assert!(trusted.contains(&first.to_hex()));

    // B trusts A's first key; with the rollover it accepts reports A certifies now.
    let upload_to = |b_config: ephemera_node::config::NodeConfig| {
        let a = &a;
        let clock = clock.clone();
        async move {
            let b = TestNode::start_with(b_config, clock).await;
            let session = a.login().await;
            let code = a.one_code(&session).await;
            let contents = pet_contents(2, T0.day());
            let hmac_key = ReportHmacKey::generate(&mut rand::rng());
            let certificate = a.certify(&code, &contents, &hmac_key).await.unwrap();
            let upload = SignedUpload {
                contents,
                certificate,
                hmac_key,
            };
            let status = b.upload_body(UploadBody::RealV1(upload)).await.status;
            b.stop().await;
            status
        }
    };
    let mut b_config = test_config(b_dir.path());
    b_config.authority.trusted_authorities = vec![first];
    assert_ne!(
        upload_to(b_config.clone()).await,
        200,
        "without the rollover"
    );
    b_config.authority.trusted_authority_rollovers = vec![rollover];
    assert_eq!(upload_to(b_config).await, 200);
    a.stop().await;
}

/// Keys change only while the node is stopped: the command refuses while `serve` runs.
#[test]
fn keys_rotate_refuses_while_the_node_runs_and_status_prints_every_key() {
    use std::io::{BufRead as _, BufReader};

    const BIN: &str = env!("CARGO_BIN_EXE_ephemera-node");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("EPHEMERA_FEDERATION_ENABLED", "false")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let started = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("  console: "));
    let keys = |args: &[&str]| {
        Command::new(BIN)
            .arg("keys")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let refused = keys(&["rotate", "batch"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(started);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("stop it first"), "{message}");
    assert!(!data.join("keys").join("batch.next.seed").exists());

    // Stopped (a killed node leaves its socket file; nobody listens on it).
    let begun = keys(&["rotate", "batch"]);
    assert!(
        begun.status.success(),
        "{}",
        String::from_utf8_lossy(&begun.stderr)
    );
    let status = keys(&["status"]);
    let text = String::from_utf8(status.stdout).unwrap();
    for needle in [
        "batch ",
        "(overlap)",
        "authority ",
        "export ",
        "version v1",
        "rollover  batch key",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    let again = keys(&["rotate", "batch"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("--finish"));
    assert!(
        keys(&["rotate", "export", "--version", "bad version"])
            .status
            .code()
            == Some(1)
    );
}
