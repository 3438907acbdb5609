//! What the sled files say about *when* and *in which order* uploads arrived: nothing finer
//! than the batch period (`docs/SECURITY.md`, "The data folder").

use ephemera_proto::api::VerifyRequest;
use ephemera_proto::auth::{ReportHmacKey, UploadCode};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents, ReportType};
use ephemera_proto::upload::{SignedUpload, UploadRequest};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::*;
use crate::NodeCore;
use crate::authority::CodeGrant;
use crate::intake::Admission;

fn open(dir: &Path) -> SledReportStore {
    SledReportStore::open(&dir.join("db"), &dir.join("blobs"), &dir.join("keys")).unwrap()
}

/// A phone's upload planned by the core at `now`, with a code issued at `issued_at` and
/// redeemed a second before `now`.
fn planned_upload(
    core: &NodeCore,
    store: &SledReportStore,
    issued_at: UnixTime,
    now: UnixTime,
    rng: &mut ChaCha20Rng,
) -> UploadCommit {
    let grant = CodeGrant {
        test_type: ReportType::ConfirmedTest,
        symptom_onset: None,
        issued_by_key: None,
    };
    let code: UploadCode = core
        .issue_codes(store, grant, 1, issued_at, rng)
        .unwrap()
        .codes
        .remove(0);
    let contents = ReportContents::Pet(
        (0..3)
            .map(|_| PublishedToken {
                day: now.day(),
                token: EncounterToken({
                    let mut token = [0u8; 16];
                    rng.fill_bytes(&mut token);
                    token
                }),
            })
            .collect(),
    );
    let hmac_key = ReportHmacKey::generate(rng);
    let verify = VerifyRequest::real(&code, &hmac_key.authenticate(&contents));
    let certificate = core
        .redeem_code(store, &verify, now.minus_seconds(1), rng)
        .unwrap()
        .certificate()
        .unwrap();
    let upload = SignedUpload {
        contents,
        certificate,
        hmac_key,
    };
    match core
        .admit_upload(store, UploadRequest::real_v1(upload), now, false)
        .unwrap()
    {
        Admission::Commit(planned) => planned.commit,
        other => panic!("a first upload is committed, got {other:?}"),
    }
}

#[test]
fn uploads_spread_over_a_period_are_stored_alike_and_cannot_be_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let core = crate::tests::core();
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let period = core.policy().batch_period_seconds;
    let start = UnixTime(1_700_000_000 / period * period);
    // Seven uploads, each from a code issued and redeemed at seconds of its own, over 50 s.
    let mut ids = Vec::new();
    for k in 0..7u64 {
        let now = start.plus_seconds(100 + 7 * k);
        let commit = planned_upload(&core, &store, now.minus_seconds(30), now, &mut rng);
        assert_eq!(
            store.commit_upload(&commit).unwrap(),
            CommitOutcome::Committed
        );
        ids.push(commit.upload.0);
    }
    store.flush().unwrap();

    // Every time in every record is the same for all seven.
    let times = |id: &UploadId| {
        let record = store.upload(id).unwrap().unwrap();
        let certificate = &record.upload.certificate.certificate;
        // Release times differ by entry (each its own slot) but are those any arrival in
        // the period gives: the period and the entry decide them, not the second.
        let releases: Vec<Option<UnixTime>> = core
            .release_times(&record.upload.contents, start.plus_seconds(1))
            .into_iter()
            .map(Some)
            .collect();
        assert_eq!(record.releases, releases);
        (
            record.received_at,
            certificate.issued_at,
            certificate.expires_at,
        )
    };
    let first = times(&ids[0]);
    assert_eq!(first.0, start, "arrival is the period's start");
    assert!(
        first.1.0.is_multiple_of(3600),
        "certificates carry whole hours"
    );
    for id in &ids[1..] {
        assert_eq!(times(id), first);
    }
    // The clear parts of the database: expiry index and queue keys carry only those times.
    let mut expiry_times = std::collections::BTreeSet::new();
    let mut certificate_purge_times = std::collections::BTreeSet::new();
    for key in store.expiry.iter().keys() {
        let key = key.unwrap();
        expiry_times.insert(key[..8].to_vec());
        if let Ok(Expiring::Upload {
            certificate_purge_at,
            ..
        }) = parse_expiring(&key)
        {
            certificate_purge_times.insert(certificate_purge_at);
        }
    }
    // One purge time for the uploads, one (a day) for the codes: used codes left nothing.
    assert_eq!(expiry_times.len(), 1, "{expiry_times:?}");
    assert_eq!(certificate_purge_times.len(), 1);
    let releases: std::collections::BTreeSet<u64> = store
        .queue
        .iter()
        .keys()
        .map(|k| QueueKey::from_bytes(&k.unwrap()).unwrap().release_at.0)
        .collect();
    // Only boundaries of the spread after the period: no second of any arrival.
    let spread = core.policy().release_spread_seconds;
    assert!(
        releases.iter().all(|at| at % period == 0
            && *at >= start.0 + period
            && *at < start.0 + period + spread),
        "{releases:?}"
    );
}

#[test]
fn a_group_commit_writes_its_uploads_in_no_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let core = crate::tests::core();
    let mut rng = ChaCha20Rng::seed_from_u64(16);
    let start = UnixTime(1_700_000_000);
    let commits: Vec<UploadCommit> = (0..32)
        .map(|k| planned_upload(&core, &store, start, start.plus_seconds(1 + k), &mut rng))
        .collect();
    let outcomes = store.commit_uploads(&commits).unwrap();
    assert!(outcomes.iter().all(|o| *o == CommitOutcome::Committed));
    store.flush().unwrap();

    let files = crate::store::tests::read_files(&dir.path().join("db"));
    let positions: Vec<usize> = commits
        .iter()
        .map(|c| {
            let sealed = store.uploads.get(c.upload.0.0).unwrap().unwrap();
            files
                .windows(sealed.len())
                .position(|w| w == &sealed[..])
                .expect("the scan finds each sealed record in the files")
        })
        .collect();
    // 32 records in arrival order by chance: 1 in 32!.
    assert!(
        !positions.is_sorted(),
        "the file lists the group's uploads in arrival order: {positions:?}"
    );
}
