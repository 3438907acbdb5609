//! Restarts keep everything; retention forgets everything on time (fake clock, no sleep).

use ephemera_node::clock::ManualClock;
use ephemera_proto::report::ReportContents;
use ephemera_proto::upload::UploadBody;

use crate::util::*;

#[tokio::test]
async fn a_restart_keeps_keys_acknowledged_uploads_batches_and_single_use() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let (name, password) = node.case_worker.clone().unwrap();
    let authority_before = node.get("/v1/authority").await.json();
    let session = node.login().await;
    let first = pet_contents(4, T0.day());
    node.report(&session, "confirmed", first.clone()).await;
    node.next_batches().await;
    // Acknowledged but not yet published when the node stops.
    let second = pet_contents(4, T0.day());
    let (second_token, upload) = node.report(&session, "confirmed", second.clone()).await;
    let unused_code = node.one_code(&session).await;
    node.stop().await;

    let node = TestNode::start(dir.path(), clock.clone()).await;
    assert!(node.case_worker.is_none(), "credentials are created once");
    assert_eq!(
        node.get("/v1/authority").await.json(),
        authority_before,
        "same keys"
    );
    let session = node.login_as(&name, &password).await;
    let stored_before = node.node.store().upload_count().unwrap();
    // The upload survived: a retry finds it and gets the first answer, storing nothing new.
    let replay = node.upload_body(UploadBody::RealV1(upload)).await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.json()["revision_token"], second_token.as_str());
    assert_eq!(node.node.store().upload_count().unwrap(), stored_before);
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    assert!(
        node.certify(&unused_code, &pet_contents(1, T0.day()), &hmac_key)
            .await
            .is_ok(),
        "codes survive"
    );
    assert_eq!(node.index(0).await.batches.len(), 1, "batches survive");
    node.next_batches().await;
    let published = node.all_published().await;
    for contents in [first, second] {
        let ReportContents::Pet(tokens) = contents else {
            unreachable!()
        };
        assert!(tokens.iter().all(|t| published.tokens.contains(t)));
    }
    drop(session);
    node.stop().await;
}

#[tokio::test]
async fn batch_files_serve_identical_bytes_after_a_restart_and_damage_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(4, T0.day()))
        .await;
    let id = node.next_batches().await[0].id;
    let path = format!("/v1/batches/{id}");
    let served = node.get(&path).await;
    assert_eq!(served.status, 200);
    drop(session);
    node.stop().await;

    // The body is a file named by its SHA-256 beside the database.
    let file = dir
        .path()
        .join(ephemera_node::node::BLOB_DIR)
        .join(hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            &served.body,
        )));
    assert_eq!(std::fs::read(&file).unwrap(), served.body);

    // After a restart (empty batch cache) it is read from the file: the same bytes.
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let again = node.get(&path).await;
    assert_eq!((again.status, &again.body), (200, &served.body));
    node.stop().await;

    // Truncated on disk: a clear storage error (no panic, no partial body); the rest works.
    std::fs::write(&file, &served.body[..served.body.len() / 2]).unwrap();
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let damaged = node.get(&path).await;
    assert_eq!(damaged.status, 500);
    assert_eq!(damaged.json()["error"], "storage-error");
    assert_eq!(node.index(0).await.batches.len(), 1);
    assert_eq!(node.get("/healthz").await.status, 200);
    node.stop().await;

    // Put back, it serves again.
    std::fs::write(&file, &served.body).unwrap();
    let node = TestNode::start(dir.path(), clock).await;
    assert_eq!(node.get(&path).await.body, served.body);
    node.stop().await;
}

#[tokio::test]
async fn retention_purges_reports_batches_certificates_and_codes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let session = node.login().await;
    let (token, _) = node
        .report(&session, "likely", pet_contents(3, T0.day()))
        .await;
    node.issue(&session, "confirmed", None, 3).await;
    let batches = node.next_batches().await;
    let id = batches[0].id;
    let store = node.node.store().clone();
    assert_eq!(store.upload_count().unwrap(), 1);

    // Codes go after their lifetime; nothing else yet.
    clock.advance(node.node.config().authority.code_lifetime_seconds);
    let counts = node.node.purge().unwrap();
    assert_eq!(counts.codes, 3);
    assert_eq!(
        (counts.uploads, counts.batches, counts.certificates),
        (0, 0, 0)
    );
    assert_eq!(node.get(&format!("/v1/batches/{id}")).await.status, 200);

    // Just before 14 days: still there. At 14 days: gone.
    clock.set(ephemera_proto::UnixTime(T0.0 + 14 * 86_400 - 7200));
    let counts = node.node.purge().unwrap();
    assert_eq!(counts.uploads + counts.batches, 0);
    clock.set(ephemera_proto::UnixTime(T0.0 + 14 * 86_400 + 3600));
    let counts = node.node.purge().unwrap();
    assert_eq!(counts.uploads, 1);
    assert_eq!(counts.batches, 1);
    assert_eq!(counts.certificates, 1);
    assert_eq!(store.upload_count().unwrap(), 0);
    let files = std::fs::read_dir(dir.path().join(ephemera_node::node::BLOB_DIR)).unwrap();
    assert_eq!(files.count(), 0, "the purge deletes batch and export files");
    node.get(&format!("/v1/batches/{id}"))
        .await
        .assert_error(404, "not-found");
    assert!(node.index(0).await.batches.is_empty());
    assert!(
        store
            .queued_until(ephemera_proto::UnixTime(u64::MAX))
            .unwrap()
            .is_empty()
    );
    let token = hex::decode(token).unwrap();
    let certificate = ephemera_proto::auth::CertificateId(token[..16].try_into().unwrap());
    assert_eq!(
        store.certificate_use(&certificate).unwrap(),
        None,
        "the certificate mark, which revision tokens depend on, is gone"
    );
    // Every expiry entry was consumed: a later purge finds nothing.
    clock.advance(400 * 86_400);
    assert_eq!(node.node.purge().unwrap().total(), 0);
    let metrics = String::from_utf8(node.get("/metrics").await.body).unwrap();
    assert!(
        metrics.contains("ephemera_purged_records_total{kind=\"upload\"} 1"),
        "{metrics}"
    );
    node.stop().await;
}

/// The error a refused open gives.
fn refusal<T>(opened: Result<T, ephemera_node::NodeError>) -> String {
    match opened {
        Ok(_) => panic!("the node opened"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_folder_with_history_never_gets_new_keys() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(2, T0.day()))
        .await;
    node.stop().await;
    let keys = dir.path().join(ephemera_node::keys::KEYS_DIR);
    let clock = ManualClock::new(T0);
    let open = || open_node(test_config(dir.path()), &clock);

    // A rotation attempt or a mis-mounted volume: the batch key is gone.
    let batch_seed = keys.join("batch.seed");
    let saved = std::fs::read(&batch_seed).unwrap();
    std::fs::remove_file(&batch_seed).unwrap();
    let error = refusal(open().await);
    assert!(error.contains("batch.seed"), "{error}");
    assert!(error.contains("Restore keys/"), "{error}");
    assert!(!batch_seed.exists(), "no new key was made");
    std::fs::write(&batch_seed, &saved).unwrap();

    // The data keys restored without the database's days: refused, not read as empty.
    let data_keys = keys.join(ephemera_node::store::DATA_KEYS_DIR);
    let aside = dir.path().join("data-keys-aside");
    std::fs::rename(&data_keys, &aside).unwrap();
    let error = refusal(open().await);
    assert!(error.contains("holds no data key"), "{error}");
    std::fs::remove_dir_all(&data_keys).unwrap();
    std::fs::rename(&aside, &data_keys).unwrap();

    // Everything back: it opens with its old keys.
    let opened = open().await.unwrap();
    assert_eq!(opened.node.store().upload_count().unwrap(), 1);
    assert!(!opened.keys_created);
}

/// Every file under `from`, copied to `to` (a backup of a stopped node).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_phone_synced_before_a_restore_finds_reports_published_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    let clock = ManualClock::new(T0);
    let node = TestNode::start(&data, clock.clone()).await;
    let (name, password) = node.case_worker.clone().unwrap();
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    node.next_batches().await;
    node.stop().await;
    // The nightly backup.
    copy_tree(&data, &backup);

    // The node keeps publishing after the backup, and a phone syncs all of it.
    let node = TestNode::start(&data, clock.clone()).await;
    let session = node.login_as(&name, &password).await;
    node.report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    node.next_batches().await;
    node.next_batches().await;
    let phone_cursor = node.index(0).await.next_cursor;
    node.stop().await;

    // The disk is lost; the older backup is restored and started ten minutes later.
    std::fs::remove_dir_all(&data).unwrap();
    copy_tree(&backup, &data);
    clock.advance(600);
    let node = TestNode::start(&data, clock.clone()).await;
    let session = node.login_as(&name, &password).await;
    let (_, upload) = node
        .report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    node.next_batches().await;

    // The phone asks for what is new after its cursor: the report is there.
    let new = node.index(phone_cursor).await;
    assert!(!new.batches.is_empty(), "no batch after the phone's cursor");
    assert!(new.batches.iter().all(|b| b.sequence > phone_cursor));
    let published = node.all_published().await;
    let ReportContents::Pet(tokens) = &upload.contents else {
        unreachable!()
    };
    assert!(tokens.iter().all(|t| published.tokens.contains(t)));
    let fetched: Vec<_> = new.batches.iter().map(|b| b.id).collect();
    assert!(
        node.index(0)
            .await
            .batches
            .iter()
            .filter(|b| b.sequence > phone_cursor)
            .all(|b| fetched.contains(&b.id))
    );
    node.stop().await;
}

/// Issue 21 item 5: the retention report. A node that purges on schedule never holds a
/// record more than one batch period past its retention, over two days of reports, codes,
/// batches and audit records coming and going; a node that skipped its purges shows it.
#[tokio::test]
async fn the_retention_report_never_shows_a_record_past_retention_plus_a_batch_period() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut config = test_config(dir.path());
    config.retention.days = 1;
    config.retention.audit_days = 1;
    let period = config.publication.batch_period_seconds;
    let purge_every = config.retention.purge_period_seconds;
    let node = TestNode::start_with(config, clock.clone()).await;
    let report = || node.node.retention_report().unwrap();
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(2, T0.day()))
        .await;
    node.issue(&session, "confirmed", None, 2).await;
    node.next_batches().await;

    // No purge for a day and a half: the report says what is overdue.
    clock.advance(86_400 + 12 * 3_600);
    let late: Vec<String> = report()
        .into_iter()
        .filter(|line| line.overdue_seconds > period)
        .map(|line| line.kind)
        .collect();
    for kind in ["upload", "batch", "code"] {
        assert!(late.iter().any(|k| k == kind), "{kind} overdue: {late:?}");
    }

    // From here the node purges every purge period, and reports and codes keep coming.
    let mut kinds_seen = std::collections::BTreeSet::new();
    let start = clock.now_secs();
    while clock.now_secs() < start + 2 * 86_400 {
        if (clock.now_secs() - start).is_multiple_of(6 * 3_600) {
            let session = node.login().await;
            let day = ephemera_proto::UnixTime(clock.now_secs()).day();
            node.report(&session, "confirmed", pet_contents(2, day))
                .await;
            node.issue(&session, "confirmed", None, 1).await;
        }
        if (clock.now_secs() - start).is_multiple_of(period) {
            node.node.cut_due().await.unwrap();
        }
        node.node.purge().unwrap();
        for line in report() {
            assert!(
                line.overdue_seconds <= period,
                "{} held {} s past its retention at {}",
                line.kind,
                line.overdue_seconds,
                clock.now_secs()
            );
            kinds_seen.insert(line.kind);
        }
        clock.advance(purge_every);
    }
    for kind in ["upload", "batch", "code", "certificate-mark", "audit"] {
        assert!(
            kinds_seen.contains(kind),
            "{kind} never held: {kinds_seen:?}"
        );
    }
    node.stop().await;

    // The operator's command on the stopped node's folder.
    let mut out = Vec::new();
    ephemera_node::cli::retention(
        &ephemera_node::cli::FolderArgs {
            config: None,
            data_dir: Some(dir.path().to_owned()),
        },
        ephemera_proto::UnixTime(clock.now_secs()),
        &mut out,
    )
    .await
    .unwrap();
    let printed = String::from_utf8(out).unwrap();
    assert!(printed.contains("upload "), "{printed}");
    assert!(
        printed.contains("every kind within one batch period"),
        "{printed}"
    );
}
