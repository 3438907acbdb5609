//! The converter against format 3 databases written here with sled, key for key as
//! Ephemera 0.1.0 wrote them (`git show bdbdb92:node/src/store/sled_store.rs`): records in
//! postcard, codes under their code hash, times to the second.

use ephemera_proto::DayNumber;
use ephemera_proto::auth::{CertificateId, CodeHash};
use ephemera_proto::batch::{BatchId, BatchIndexEntry};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportType};
use ephemera_proto::sync::DayDigest;

use super::*;
use crate::store::blobs::BlobDir;
use crate::store::tests::read_files;
use crate::store::{CredentialRecord, CutterState, QueuedEntry, ReportStore, SledReportStore};

const PERIOD: u64 = 3600;
const RETENTION: u64 = 14 * 86_400;
/// An arrival second, 2,923 s into its period and 523 s into its key interval.
const ARRIVED: UnixTime = UnixTime(1_765_000_123);
const PERIOD_START: UnixTime = UnixTime(1_764_997_200);
const BOUNDARY: UnixTime = UnixTime(1_765_000_800);
/// The next key interval after the arrival's, inside the same period.
const NEXT_INTERVAL: UnixTime = UnixTime(1_765_000_200);
const PHONE: UploadId = UploadId([1; 32]);
const RELAYED: UploadId = UploadId([2; 32]);
const UNUSED_CODE: CodeHash = CodeHash([21; 32]);
const USED_CODE: CodeHash = CodeHash([22; 32]);
const TOKEN: [u8; 16] = [0x5a; 16];
const SYNC_DAY: DayNumber = DayNumber(20_432);

fn code_record() -> CodeRecord {
    CodeRecord {
        test_type: ReportType::ConfirmedTest,
        symptom_onset: None,
        expires_at: ARRIVED.plus_seconds(7),
        reference: None,
    }
}

fn record(received_at: UnixTime) -> StoredUpload {
    let mut record = crate::store::tests::dummy_upload();
    record.received_at = received_at;
    record.releases = vec![Some(received_at)];
    record
}

fn entry(token: [u8; 16]) -> QueuedEntry {
    QueuedEntry::Token(PublishedToken {
        day: ARRIVED.day(),
        token: EncounterToken(token),
    })
}

fn batch_entry() -> BatchIndexEntry {
    BatchIndexEntry {
        id: BatchId([9; 32]),
        sequence: 1,
        created_at: PERIOD_START,
        size: 4,
        keys: 0,
        tokens: 1,
    }
}

/// Writes what a format 3 node held after two uploads (one from a phone, one relayed, each
/// queued), two issued codes of which one was used (its expiry entry left by a crash), the
/// mark of an upload already purged, one published batch and a case worker.
fn write_format3(dir: &Path) {
    let db = sled_open(&dir.join("db"));
    let tree = |name: &str| db.open_tree(name).unwrap();
    tree("meta").insert(b"format", &3u32.to_be_bytes()).unwrap();
    let state = CutterState {
        next_sequence: 2,
        last_boundary: Some(PERIOD_START),
    };
    tree("meta")
        .insert(b"cutter-state", encode(&state))
        .unwrap();
    let mut digest = DayDigest::empty(SYNC_DAY);
    for (id, certificate, state, received_at) in [
        (PHONE, [11; 16], CertificateState::Accepted, ARRIVED),
        (
            RELAYED,
            [12; 16],
            CertificateState::Relayed,
            ARRIVED.plus_seconds(5),
        ),
    ] {
        let mark = CertificateUse {
            upload: id,
            state,
            binding: ephemera_proto::revision::Binding::Unbound,
        };
        tree("certificates")
            .insert(certificate, mark.to_bytes())
            .unwrap();
        tree("uploads")
            .insert(id.0, encode(&record(received_at)))
            .unwrap();
        let mut reference = id.0.to_vec();
        reference.extend_from_slice(&certificate);
        reference.extend_from_slice(&received_at.plus_seconds(RETENTION + 300).0.to_be_bytes());
        let purge_at = received_at.plus_seconds(RETENTION);
        tree("expiry")
            .insert(expiry_key(purge_at, ExpiryKind::Upload, &reference), &[])
            .unwrap();
        let mut sync_key = SYNC_DAY.0.to_be_bytes().to_vec();
        sync_key.extend_from_slice(&id.0);
        tree("sync-index").insert(sync_key, &[]).unwrap();
        digest.add(&id);
        let queued = QueueKey {
            release_at: received_at,
            upload: id,
        };
        tree("queue")
            .insert(queued.to_bytes(), encode(&vec![entry(TOKEN)]))
            .unwrap();
    }
    tree("day-digests")
        .insert(SYNC_DAY.0.to_be_bytes(), encode(&digest))
        .unwrap();
    // A second group of the phone's upload, at a key interval inside the same period.
    let later = QueueKey {
        release_at: NEXT_INTERVAL,
        upload: PHONE,
    };
    tree("queue")
        .insert(later.to_bytes(), encode(&vec![entry([7; 16])]))
        .unwrap();
    tree("codes")
        .insert(UNUSED_CODE.0, encode(&code_record()))
        .unwrap();
    for hash in [UNUSED_CODE, USED_CODE] {
        let at = code_record().expires_at;
        tree("expiry")
            .insert(expiry_key(at, ExpiryKind::Code, &hash.0), &[])
            .unwrap();
    }
    let purged = CertificateUse {
        upload: UploadId([3; 32]),
        state: CertificateState::Accepted,
        binding: ephemera_proto::revision::Binding::Unbound,
    };
    tree("certificates")
        .insert([13; 16], purged.to_bytes())
        .unwrap();
    let mark_purge = ARRIVED.plus_seconds(11);
    tree("expiry")
        .insert(
            expiry_key(mark_purge, ExpiryKind::Certificate, &[13; 16]),
            &[],
        )
        .unwrap();
    let blob = BlobDir::open(&dir.join("blobs"))
        .unwrap()
        .write(b"body")
        .unwrap();
    tree("batches")
        .insert(batch_entry().id.0, encode(&blob))
        .unwrap();
    tree("batch-index")
        .insert(1u64.to_be_bytes(), encode(&batch_entry()))
        .unwrap();
    let mut batch_ref = 1u64.to_be_bytes().to_vec();
    batch_ref.extend_from_slice(&batch_entry().id.0);
    let batch_purge = PERIOD_START.plus_seconds(RETENTION);
    tree("expiry")
        .insert(expiry_key(batch_purge, ExpiryKind::Batch, &batch_ref), &[])
        .unwrap();
    let credential = CredentialRecord {
        salt: [4; 16],
        iterations: 1000,
        hash: [5; 32],
    };
    tree("credentials")
        .insert(b"alice", encode(&credential))
        .unwrap();
    db.flush().unwrap();
}

/// Runs `f` again while sled still holds the lock of a handle dropped just before (its
/// background threads let go of it a moment later), up to 5 s.
fn retrying<T, E: std::fmt::Display>(mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match f() {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

fn sled_open(path: &Path) -> Db {
    retrying(|| sled::open(path)).unwrap()
}

fn convert(dir: &Path) -> Result<UpgradeOutcome, UpgradeError> {
    retrying(|| upgrade(&dir.join("db"), &dir.join("keys"), PERIOD))
}

fn open(dir: &Path) -> Result<SledReportStore, StoreError> {
    crate::store::tests::open_sled(dir)
}

#[test]
fn a_format3_database_converts_with_every_record_and_nothing_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    write_format3(dir.path());
    let before = read_files(dir.path());
    for clear in [
        &UNUSED_CODE.0[..],
        &USED_CODE.0,
        &TOKEN,
        &ARRIVED.0.to_be_bytes(),
    ] {
        assert!(
            before.windows(clear.len()).any(|w| w == clear),
            "the fixture holds it"
        );
    }
    // A second name for sled's main file shows what became of its bytes.
    let witness = dir.path().join("witness");
    std::fs::hard_link(dir.path().join("db").join("db"), &witness).unwrap();
    let UpgradeOutcome::Converted(counts) = convert(dir.path()).unwrap() else {
        panic!("not converted");
    };
    assert_eq!((counts.uploads, counts.queued, counts.codes), (2, 2, 1));
    // Two uploads, the certificate mark, the batch and the unused code; not the used code's.
    assert_eq!(counts.expiry, 5);
    assert!(!dir.path().join("db.format3-old").exists());
    let overwritten = std::fs::read(&witness).unwrap();
    assert!(!overwritten.is_empty() && overwritten.iter().all(|b| *b == 0));
    assert!(!dir.path().join("db.format4-new").exists());

    let store = open(dir.path()).unwrap();
    assert_eq!(store.upload_count().unwrap(), 2);
    let phone = store.upload(&PHONE).unwrap().unwrap();
    assert_eq!(phone.received_at, PERIOD_START);
    assert_eq!(phone.releases, vec![Some(BOUNDARY)]);
    assert_eq!(phone.upload.contents, record(ARRIVED).upload.contents);
    // Both groups of the phone's upload are one now, published by the same cut as before.
    let queued = store.queued_until(BOUNDARY).unwrap();
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|(key, _)| key.release_at == BOUNDARY));
    let (_, group) = queued.iter().find(|(key, _)| key.upload == PHONE).unwrap();
    assert_eq!(group, &vec![entry(TOKEN), entry([7; 16])]);
    assert!(
        store
            .queued_until(BOUNDARY.minus_seconds(1))
            .unwrap()
            .is_empty()
    );
    // The unused code works once; the used one stays used.
    assert_eq!(store.take_code(&UNUSED_CODE).unwrap(), Some(code_record()));
    assert_eq!(store.take_code(&UNUSED_CODE).unwrap(), None);
    assert_eq!(store.take_code(&USED_CODE).unwrap(), None);
    let mark = store
        .certificate_use(&CertificateId([12; 16]))
        .unwrap()
        .unwrap();
    assert_eq!(mark.state, CertificateState::Relayed);
    assert_eq!(store.batch(&batch_entry().id).unwrap().unwrap(), b"body");
    assert_eq!(store.batch_index(0, 10).unwrap(), vec![batch_entry()]);
    assert_eq!(store.cutter_state().unwrap().next_sequence, 2);
    assert_eq!(store.credential("alice").unwrap().unwrap().iterations, 1000);
    assert_eq!(
        store.sync_ids(SYNC_DAY, None, 10).unwrap(),
        vec![PHONE, RELAYED]
    );
    assert_eq!(store.day_digest(SYNC_DAY).unwrap().count, 2);

    // The phone's upload goes a retention period after its period's start, as format 4
    // counts it; the relayed one at the next whole hour of its old time.
    let relayed_purge = UnixTime(ARRIVED.plus_seconds(5 + RETENTION).0.div_ceil(3600) * 3600);
    let counts = store
        .purge(PERIOD_START.plus_seconds(RETENTION - 1), UnixTime(0))
        .unwrap();
    assert_eq!(counts.uploads, 0);
    assert_eq!(
        store
            .purge(PERIOD_START.plus_seconds(RETENTION), UnixTime(0))
            .unwrap()
            .uploads,
        1
    );
    assert_eq!(
        store
            .purge(relayed_purge.minus_seconds(1), UnixTime(0))
            .unwrap()
            .uploads,
        0
    );
    assert_eq!(store.purge(relayed_purge, UnixTime(0)).unwrap().uploads, 1);
    drop(store);

    let after = read_files(dir.path());
    let fine = [
        ARRIVED,
        ARRIVED.plus_seconds(5),
        ARRIVED.plus_seconds(7),
        ARRIVED.plus_seconds(11),
    ];
    for clear in [&UNUSED_CODE.0[..], &USED_CODE.0, &TOKEN, &[7; 16]]
        .into_iter()
        .map(<[u8]>::to_vec)
        .chain(fine.iter().map(|t| t.0.to_be_bytes().to_vec()))
    {
        assert!(
            !after.windows(clear.len()).any(|w| w == clear),
            "{clear:?} on disk"
        );
    }
}

#[test]
fn a_conversion_cut_short_anywhere_is_refused_by_the_node_and_finished_by_a_rerun() {
    for at in [
        Step::Written(0),
        Step::Written(7),
        Step::Written(20),
        Step::BeforeSwap,
        Step::BetweenRenames,
        Step::BeforeShred,
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_format3(dir.path());
        let db = dir.path().join("db");
        let keys = dir.path().join("keys");
        let error = retrying(|| run(&db, &keys, PERIOD, &|step| step == at)).unwrap_err();
        assert!(error.to_string().contains("interrupted"), "{at:?}: {error}");
        let refused = open(dir.path()).unwrap_err();
        assert!(
            matches!(refused, StoreError::UpgradeUnfinished { .. }),
            "{at:?}: {refused}"
        );
        assert!(
            refused
                .to_string()
                .contains("run `ephemera-node upgrade` again")
        );
        let outcome = convert(dir.path()).unwrap();
        let finished = matches!(at, Step::BetweenRenames | Step::BeforeShred);
        assert_eq!(
            outcome == UpgradeOutcome::Finished,
            finished,
            "{at:?}: {outcome:?}"
        );
        assert_eq!(convert(dir.path()).unwrap(), UpgradeOutcome::Current);
        let store = open(dir.path()).unwrap();
        assert_eq!(store.upload_count().unwrap(), 2, "{at:?}");
        assert_eq!(store.take_code(&UNUSED_CODE).unwrap(), Some(code_record()));
        assert_eq!(store.queued_until(BOUNDARY).unwrap().len(), 2);
        drop(store);
        let files = read_files(dir.path());
        assert!(!files.windows(32).any(|w| w == UNUSED_CODE.0), "{at:?}");
    }
}

#[test]
fn formats_it_does_not_convert_are_refused_with_what_to_do_and_left_alone() {
    for (format, says) in [
        (None, "formats 1 and 2 were never released"),
        (Some(2), "formats 1 and 2 were never released"),
        (Some(STORE_FORMAT + 1), "a newer node wrote it"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled_open(&dir.path().join("db"));
            db.open_tree("uploads")
                .unwrap()
                .insert([1; 32], &[1])
                .unwrap();
            if let Some(f) = format {
                db.open_tree("meta")
                    .unwrap()
                    .insert(b"format", &f.to_be_bytes())
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let error = convert(dir.path()).unwrap_err();
        assert!(matches!(error, UpgradeError::Unconvertible { found } if found == format));
        let text = error.to_string();
        assert!(
            text.contains(&format!("storage format {}", format_name(format))),
            "{text}"
        );
        assert!(text.contains(says), "{text}");
        assert!(!dir.path().join("db.format4-new").exists());
        let db = sled_open(&dir.path().join("db"));
        assert_eq!(stamped_format(&db).unwrap(), format);
    }

    let dir = tempfile::tempdir().unwrap();
    let error = convert(dir.path()).unwrap_err();
    assert!(matches!(error, UpgradeError::NoDatabase { .. }), "{error}");
    // Renamed aside with no converted copy: a person decides.
    std::fs::create_dir(dir.path().join("db.format3-old")).unwrap();
    let error = convert(dir.path()).unwrap_err();
    assert!(matches!(error, UpgradeError::Stranded { .. }), "{error}");
    assert!(dir.path().join("db.format3-old").exists());
    // ... and when a format 3 `db/` was put back beside it.
    write_format3(dir.path());
    let error = convert(dir.path()).unwrap_err();
    assert!(
        matches!(error, UpgradeError::Ambiguous { found: Some(3), .. }),
        "{error}"
    );
    assert!(dir.path().join("db.format3-old").exists());
}

#[test]
fn a_tree_format_3_never_wrote_stops_the_conversion() {
    let dir = tempfile::tempdir().unwrap();
    write_format3(dir.path());
    {
        let db = sled_open(&dir.path().join("db"));
        db.open_tree("revisions")
            .unwrap()
            .insert([1; 32], &[2])
            .unwrap();
        db.flush().unwrap();
    }
    let error = convert(dir.path()).unwrap_err();
    assert!(
        matches!(&error, UpgradeError::UnknownTree { tree } if tree == "revisions"),
        "{error}"
    );
    // Nothing changed: the format 3 database is where it was, alone.
    assert!(!dir.path().join("db.format4-new").exists());
    assert!(matches!(
        open(dir.path()).unwrap_err(),
        StoreError::Format { found: Some(3), .. }
    ));
}
