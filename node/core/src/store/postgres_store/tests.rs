//! The PostgreSQL store's own tests (the behaviour suite of `store::tests` runs on it too):
//! a group of stores on one schema, migrations under a lock, reopening.
//!
//! They need a server: `POSTGRES_TEST_URL` (a role that may create schemas; CI's
//! `.ci/postgres.sh` starts one). Without it they say so and pass, except under `CI=true`,
//! where a missing server is a failure.

use std::sync::{Arc, Barrier};

use ephemera_proto::auth::{CertificateId, CodeHash};
use ephemera_proto::report::ReportType;

use super::super::tests::{T0, blob_cut, commit};
use super::*;

/// A store on a schema of its own, dropped with it.
pub(crate) struct Scratch {
    pub(crate) config: PostgresConfig,
    pub(crate) store: Option<PostgresReportStore>,
}

impl Scratch {
    /// Another store on the same schema: a second node of the group.
    pub(crate) fn sibling(&self) -> PostgresReportStore {
        PostgresReportStore::open(&self.config).expect("open a second store on the schema")
    }

    pub(crate) fn store(&self) -> &PostgresReportStore {
        self.store.as_ref().expect("present until dropped")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let drop_schema = format!("DROP SCHEMA {} CASCADE", store.schema);
            let _ = store
                .db
                .run(async |c| Ok(c.batch_execute(&drop_schema).await?));
        }
    }
}

/// The test server's URL; `None` (with a note) when there is none and this is not CI.
pub(crate) fn server_url() -> Option<String> {
    match std::env::var("POSTGRES_TEST_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the PostgreSQL store tests: source .ci/postgres.sh first"
            );
            eprintln!("POSTGRES_TEST_URL is not set: the PostgreSQL store is not tested");
            None
        }
    }
}

/// A store on a fresh schema of the test server, or `None` without one.
pub(crate) fn scratch() -> Option<Scratch> {
    let url = server_url()?;
    let mut config = PostgresConfig::new(url);
    config.schema = format!("test_{}", hex::encode(rand::random::<[u8; 8]>()));
    config.pool_size = 4;
    let store = PostgresReportStore::open(&config).expect("open the PostgreSQL store");
    Some(Scratch {
        config,
        store: Some(store),
    })
}

#[test]
fn records_survive_reopening_and_a_second_node_reads_what_the_first_sealed() {
    let Some(scratch) = scratch() else { return };
    let first = scratch.store();
    let committed = commit(1, 1, None);
    assert_eq!(
        first.commit_upload(&committed).unwrap(),
        CommitOutcome::Committed
    );
    let second = scratch.sibling();
    // The second store never saw the data key: it reads it from the shared table.
    let upload = second
        .upload(&UploadId([1; 32]))
        .unwrap()
        .expect("the upload");
    assert_eq!(upload, committed.upload.1);
    assert_eq!(second.upload_count().unwrap(), 1);
    // And what the second writes, the first reads.
    assert_eq!(
        second.commit_upload(&commit(2, 2, None)).unwrap(),
        CommitOutcome::Committed
    );
    assert!(first.upload(&UploadId([2; 32])).unwrap().is_some());
    // Nothing sealed is in clear in the table.
    let sealed: Vec<u8> = first
        .db
        .run(async |c| {
            Ok(c.query_one(
                "SELECT sealed FROM uploads WHERE id = $1",
                &[&[1u8; 32].as_slice()],
            )
            .await?
            .get(0))
        })
        .unwrap();
    let plain = encode(&committed.upload.1);
    assert!(
        !sealed
            .windows(16)
            .any(|w| plain.windows(16).any(|p| p == w))
    );
}

#[test]
fn a_certificate_is_accepted_once_when_nodes_race_for_it() {
    let Some(scratch) = scratch() else { return };
    let nodes: Vec<Arc<PostgresReportStore>> =
        (0..4).map(|_| Arc::new(scratch.sibling())).collect();
    for round in 0..20u8 {
        let start = Arc::new(Barrier::new(nodes.len()));
        let outcomes: Vec<CommitOutcome> = std::thread::scope(|s| {
            let handles: Vec<_> = nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    let start = start.clone();
                    // The same certificate, a different upload id each.
                    let commit = commit(round, round.wrapping_mul(4).wrapping_add(i as u8), None);
                    s.spawn(move || {
                        start.wait();
                        node.commit_upload(&commit).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let committed = outcomes
            .iter()
            .filter(|o| **o == CommitOutcome::Committed)
            .count();
        assert_eq!(committed, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, CommitOutcome::Committed | CommitOutcome::CertificateUsed))
        );
    }
    assert_eq!(scratch.store().upload_count().unwrap(), 20);
}

#[test]
fn a_code_is_taken_once_when_nodes_race_for_it() {
    let Some(scratch) = scratch() else { return };
    let record = CodeRecord {
        test_type: ReportType::ConfirmedTest,
        symptom_onset: None,
        expires_at: UnixTime(2_000_000_000),
        reference: None,
    };
    let codes: Vec<(CodeHash, CodeRecord)> = (0..30u8)
        .map(|n| (CodeHash([n; 32]), record.clone()))
        .collect();
    scratch.store().insert_codes(&codes).unwrap();
    let nodes: Vec<PostgresReportStore> = (0..3).map(|_| scratch.sibling()).collect();
    let taken: usize = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|node| {
                s.spawn(|| {
                    (0..30u8)
                        .filter(|n| node.take_code(&CodeHash([*n; 32])).unwrap().is_some())
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(taken, 30, "every code taken exactly once across the group");
}

#[test]
fn nodes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let Some(url) = server_url() else { return };
    let mut config = PostgresConfig::new(url);
    config.schema = format!("test_{}", hex::encode(rand::random::<[u8; 8]>()));
    config.pool_size = 2;
    let start = Arc::new(Barrier::new(4));
    let stores: Vec<PostgresReportStore> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let start = start.clone();
                let config = config.clone();
                s.spawn(move || {
                    start.wait();
                    PostgresReportStore::open(&config).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let scratch = Scratch {
        config: config.clone(),
        store: stores.into_iter().next(),
    };
    let versions: Vec<i32> = scratch
        .store()
        .db
        .run(async |c| {
            Ok(
                c.query("SELECT version FROM migrations ORDER BY version", &[])
                    .await?
                    .iter()
                    .map(|row| row.get(0))
                    .collect(),
            )
        })
        .unwrap();
    let known: Vec<i32> = schema::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(versions, known);
    scratch
        .store()
        .db
        .run(async |c| {
            Ok(c.execute(
                "INSERT INTO migrations VALUES (999, 'from the future')",
                &[],
            )
            .await?)
        })
        .unwrap();
    match PostgresReportStore::open(&config) {
        Err(StoreError::SchemaTooNew { found: 999, known }) => {
            assert_eq!(known, *schema::MIGRATIONS.last().map(|m| &m.0).unwrap());
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn an_unreachable_server_is_unavailable_not_a_hang() {
    // Port 1 on loopback: nothing listens there.
    let mut config = PostgresConfig::new("postgres://nobody@127.0.0.1:1/none");
    config.schema = "unreachable".to_owned();
    match PostgresReportStore::open(&config) {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("PostgreSQL")),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn a_bad_url_or_schema_name_is_a_clear_error() {
    let mut config = PostgresConfig::new("postgres://x@127.0.0.1:1/none");
    config.schema = "x; DROP TABLE uploads".to_owned();
    let error = PostgresReportStore::open(&config).unwrap_err().to_string();
    assert!(error.contains("schema name"), "{error}");
    let config = PostgresConfig::new("postgres://x@127.0.0.1:notaport/none");
    let error = PostgresReportStore::open(&config).unwrap_err().to_string();
    assert!(error.contains("URL"), "{error}");
}

#[test]
fn when_nodes_commit_the_same_boundary_one_publishes_and_the_log_never_forks() {
    let Some(scratch) = scratch() else { return };
    let nodes: Vec<PostgresReportStore> = (0..4).map(|_| scratch.sibling()).collect();
    for sequence in 1..=5u64 {
        let start = Barrier::new(nodes.len());
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|s| {
            let handles: Vec<_> = nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    // Each node signed its own batch for the same sequence.
                    let mut cut = blob_cut(sequence, vec![i as u8; 16], vec![i as u8; 4]);
                    cut.batches[0].entry.id = BatchId([(sequence * 10 + i as u64) as u8; 32]);
                    cut.exports[0].name = format!("{sequence}-{i}.zip");
                    let start = &start;
                    s.spawn(move || {
                        start.wait();
                        node.commit_cut(&cut)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let published = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(published, 1, "sequence {sequence}: {results:?}");
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(()) | Err(StoreError::CutSuperseded)))
        );
    }
    let index = scratch.store().batch_index(0, 100).unwrap();
    let sequences: Vec<u64> = index.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, vec![1, 2, 3, 4, 5], "one batch per sequence");
    assert_eq!(scratch.store().export_names().unwrap().len(), 5);
}

/// The node calls the store from its tokio workers, from `spawn_blocking` and from plain
/// threads. Calls inside a runtime once spun on the caller's exhausted task budget (about
/// 40 ms each); a few hundred of them in each place now take well under a second.
#[test]
fn the_store_answers_from_inside_a_tokio_runtime_as_from_a_plain_thread() {
    let Some(scratch) = scratch() else { return };
    let store = Arc::new(scratch.sibling());
    assert_eq!(
        store.commit_upload(&commit(1, 1, None)).unwrap(),
        CommitOutcome::Committed
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let calls = |store: &PostgresReportStore| {
        for _ in 0..300 {
            assert!(
                store
                    .certificate_use(&CertificateId([1; 16]))
                    .unwrap()
                    .is_some()
            );
        }
    };
    runtime.block_on(async {
        calls(&store);
        let on_worker = store.clone();
        tokio::spawn(async move { calls(&on_worker) })
            .await
            .unwrap();
        let blocking = store.clone();
        tokio::task::spawn_blocking(move || calls(&blocking))
            .await
            .unwrap();
    });
}

#[test]
fn a_token_epoch_is_kept_once_for_the_whole_group_and_forgotten() {
    use crate::token_keys::shared::EpochTable;
    use ephemera_proto::DayNumber;
    let Some(scratch) = scratch() else { return };
    let (a, b) = (scratch.store(), scratch.sibling());
    let epoch = DayNumber(19_700);
    assert_eq!(a.keep_token_epoch(epoch, b"first").unwrap(), b"first");
    assert_eq!(b.keep_token_epoch(epoch, b"second").unwrap(), b"first");
    assert_eq!(b.keep_token_epoch(epoch.plus(1), b"next").unwrap(), b"next");
    assert_eq!(
        a.token_epochs(epoch.plus(1)).unwrap(),
        [(epoch.plus(1), b"next".to_vec())]
    );
    assert_eq!(b.forget_token_epochs(epoch.plus(1)).unwrap(), 1);
    assert_eq!(a.token_epochs(DayNumber(0)).unwrap().len(), 1);
}

/// `upload_count` and today's `day_digest` against `count(*)` and the ids of `uploads`.
fn assert_digests_match_the_table(store: &PostgresReportStore) {
    let ids: Vec<Vec<u8>> = store
        .db
        .run(async |c| {
            Ok(c.query("SELECT id FROM uploads", &[])
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect())
        })
        .unwrap();
    assert_eq!(store.upload_count().unwrap(), ids.len() as u64);
    let mut recount = ephemera_proto::sync::DayDigest::empty(T0.day());
    for id in &ids {
        recount.add(&UploadId(id.as_slice().try_into().unwrap()));
    }
    assert_eq!(store.day_digest(T0.day()).unwrap(), recount);
}

#[test]
fn day_digests_stay_exact_while_nodes_commit_and_purge_at_once() {
    let Some(scratch) = scratch() else { return };
    let nodes: Vec<PostgresReportStore> = (0..4).map(|_| scratch.sibling()).collect();
    let start = Barrier::new(nodes.len() + 1);
    std::thread::scope(|s| {
        for (i, node) in nodes.iter().enumerate() {
            let start = &start;
            s.spawn(move || {
                start.wait();
                // Ranges that overlap the next node's: the same uploads reach two nodes.
                for group in 0..8u8 {
                    let commits: Vec<UploadCommit> = (0..6u8)
                        .map(|j| {
                            let id = (i as u8) * 40 + group * 6 + j;
                            commit(id, id, None)
                        })
                        .collect();
                    node.commit_uploads(&commits).unwrap();
                }
            });
        }
        let purger = scratch.sibling();
        let start = &start;
        s.spawn(move || {
            start.wait();
            for _ in 0..4 {
                purger.purge(T0.plus_seconds(500), T0).unwrap();
            }
        });
    });
    assert_digests_match_the_table(scratch.store());
    scratch.store().purge(T0.plus_seconds(500), T0).unwrap();
    assert_digests_match_the_table(scratch.store());
    assert_eq!(scratch.store().upload_count().unwrap(), 0);
}

#[test]
fn migration_2_counts_the_uploads_a_schema_already_holds() {
    let Some(scratch) = scratch() else { return };
    let commits: Vec<UploadCommit> = (1..=7u8).map(|n| commit(n, n, None)).collect();
    scratch.store().commit_uploads(&commits).unwrap();
    // The schema as a node before migration 2 left it (so before 3 too), with its uploads.
    scratch
        .store()
        .db
        .run(async |c| {
            Ok(c.batch_execute(
                "DROP TABLE venue_releases; DROP TABLE day_digests; DROP TABLE token_keys; \
                 DELETE FROM migrations WHERE version >= 2",
            )
            .await?)
        })
        .unwrap();
    let reopened = scratch.sibling();
    assert_eq!(reopened.upload_count().unwrap(), 7);
    assert_digests_match_the_table(&reopened);
}
