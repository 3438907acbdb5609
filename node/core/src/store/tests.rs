//! One behaviour suite run against every [`ReportStore`].

use ephemera_proto::auth::{CertificateId, CodeHash};
use ephemera_proto::batch::{BatchId, BatchIndexEntry};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents, ReportType};
use ephemera_proto::upload::UploadId;
use ephemera_proto::{DayNumber, UnixTime};

use super::*;

pub(crate) const T0: UnixTime = UnixTime(1_700_000_000);

fn both(test: impl Fn(&dyn ReportStore)) {
    test(&MemoryReportStore::new());
    let dir = tempfile::tempdir().unwrap();
    test(&open_sled(dir.path()).unwrap());
    if let Some(scratch) = super::postgres_store::tests::scratch() {
        test(scratch.store());
    }
}

/// A sled store laid out as the node does: `db/` and `blobs/` in `dir`. A store dropped
/// just before may still hold the folder's lock for a moment (sled's background threads
/// let go of it after the handle): reopening waits up to 5 s for it.
pub(crate) fn open_sled(dir: &std::path::Path) -> Result<SledReportStore, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match SledReportStore::open(&dir.join("db"), &dir.join("blobs"), &dir.join("keys")) {
            Err(StoreError::Engine(e))
                if e.contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

pub(crate) fn dummy_upload() -> StoredUpload {
    upload_issued_at(T0)
}

/// [`dummy_upload`] with its certificate issued at `issued` (its sync day).
fn upload_issued_at(issued: UnixTime) -> StoredUpload {
    use ephemera_proto::auth::{AuthoritySigningKey, CertificateRequest, ReportHmacKey};
    let authority = AuthoritySigningKey::from_seed(&[1; 32]);
    let contents = ReportContents::Pet(vec![PublishedToken {
        day: T0.day(),
        token: EncounterToken([3; 16]),
    }]);
    let hmac_key = ReportHmacKey([2; 32]);
    let mut rng = rand::rng();
    let certificate = authority.issue(
        &CertificateRequest {
            report_hmac: hmac_key.authenticate(&contents),
            test_type: ReportType::ConfirmedTest,
            symptom_onset: None,
        },
        issued,
        900,
        &mut rng,
    );
    StoredUpload {
        received_at: T0,
        upload: ephemera_proto::upload::SignedUpload {
            contents,
            certificate,
            hmac_key,
        },
        releases: vec![Some(T0)],
    }
}

pub(crate) fn commit(cert: u8, upload: u8, consume: Option<u8>) -> UploadCommit {
    let key = QueueKey {
        release_at: T0,
        upload: UploadId([upload; 32]),
    };
    UploadCommit {
        certificate: (CertificateId([cert; 16]), T0.plus_seconds(1000)),
        relayed: false,
        binding: Binding::Unbound,
        consume_revision: consume.map(|b| CertificateId([b; 16])),
        upload: (UploadId([upload; 32]), dummy_upload(), T0.plus_seconds(500)),
        update_original: None,
        dequeue: vec![],
        enqueue: vec![(
            key,
            vec![QueuedEntry::Token(PublishedToken {
                day: DayNumber(1),
                token: EncounterToken([upload; 16]),
            })],
        )],
    }
}

#[test]
fn codes_are_taken_once_and_expire() {
    both(|store| {
        let record = CodeRecord {
            test_type: ReportType::ConfirmedTest,
            symptom_onset: Some(DayNumber(5)),
            expires_at: T0.plus_seconds(60),
            reference: None,
        };
        store
            .insert_codes(&[
                (CodeHash([1; 32]), record.clone()),
                (CodeHash([2; 32]), record.clone()),
            ])
            .unwrap();
        assert_eq!(
            store.take_code(&CodeHash([1; 32])).unwrap(),
            Some(record.clone())
        );
        assert_eq!(store.take_code(&CodeHash([1; 32])).unwrap(), None);
        assert_eq!(store.purge(T0, T0).unwrap().codes, 0);
        // The expiry index knows only the code's day: the record goes when it ends (an
        // expired code is refused before that by its sealed exact expiry).
        let purge_at = super::code_purge_at(record.expires_at);
        assert_eq!(purge_at, record.expires_at.day().plus(1).start());
        assert_eq!(store.purge(purge_at.minus_seconds(1), T0).unwrap().codes, 0);
        assert_eq!(store.purge(purge_at, T0).unwrap().codes, 1);
        assert_eq!(store.take_code(&CodeHash([2; 32])).unwrap(), None);
    });
}

/// Reference number `n` (`00000000000n`).
fn reference(n: u8) -> super::CodeReference {
    super::CodeReference::parse(&format!("{n:012}")).unwrap()
}

/// The status of code `n` of `test_type`, issued on day 10, expiring on day 11.
fn status_record(n: u8, test_type: ReportType) -> super::CodeStatusRecord {
    super::CodeStatusRecord {
        lookup: super::code_lookup(&CodeHash([n; 32])),
        test_type,
        issued: DayNumber(10),
        expires: DayNumber(11),
        state: super::CodeState::Issued,
        issued_by_key: None,
    }
}

/// Code `n`'s record, confirmed, expiring a minute after `T0`, filed under reference `n`.
fn code_record(n: u8) -> CodeRecord {
    CodeRecord {
        test_type: ReportType::ConfirmedTest,
        symptom_onset: None,
        expires_at: T0.plus_seconds(60),
        reference: Some(reference(n)),
    }
}

#[test]
fn a_code_status_follows_its_code_and_a_revoke_removes_the_code() {
    use super::{CodeState, CodeStatusRecord, RevokeOutcome};
    both(|store| {
        let status = |n: u8| CodeStatusRecord {
            issued_by_key: (n == 2).then_some([n; 8]),
            ..status_record(n, ReportType::ConfirmedTest)
        };
        let record = code_record;
        store
            .insert_code_statuses(&[(reference(1), status(1)), (reference(2), status(2))])
            .unwrap();
        store
            .insert_codes(&[
                (CodeHash([1; 32]), record(1)),
                (CodeHash([2; 32]), record(2)),
            ])
            .unwrap();
        assert_eq!(store.code_status(&reference(1)).unwrap(), Some(status(1)));
        assert_eq!(store.code_status(&reference(3)).unwrap(), None);
        // A revoke removes the code: no redeem can take it afterwards.
        assert_eq!(
            store.revoke_code(&reference(1), DayNumber(10)).unwrap(),
            RevokeOutcome::Revoked
        );
        assert_eq!(store.take_code(&CodeHash([1; 32])).unwrap(), None);
        let revoked = store.code_status(&reference(1)).unwrap().unwrap();
        assert_eq!(revoked.state, CodeState::Revoked(DayNumber(10)));
        assert_eq!(
            store.revoke_code(&reference(1), DayNumber(11)).unwrap(),
            RevokeOutcome::NotRevocable(revoked)
        );
        // A taken (used) code cannot be revoked; an unknown reference is told apart.
        assert_eq!(
            store.take_code(&CodeHash([2; 32])).unwrap(),
            Some(record(2))
        );
        store
            .set_code_state(&reference(2), CodeState::Used(DayNumber(11)))
            .unwrap();
        assert!(matches!(
            store.revoke_code(&reference(2), DayNumber(11)).unwrap(),
            RevokeOutcome::NotRevocable(CodeStatusRecord {
                state: CodeState::Used(DayNumber(11)),
                ..
            })
        ));
        assert_eq!(
            store.revoke_code(&reference(3), DayNumber(11)).unwrap(),
            RevokeOutcome::Unknown
        );
        // Past its expiry day a code is expired, not revocable, and stays in place for
        // the purge.
        store
            .insert_code_statuses(&[(reference(4), status(4))])
            .unwrap();
        store
            .insert_codes(&[(CodeHash([4; 32]), record(4))])
            .unwrap();
        assert_eq!(
            store.revoke_code(&reference(4), DayNumber(12)).unwrap(),
            RevokeOutcome::NotRevocable(status(4))
        );
        assert_eq!(
            store.take_code(&CodeHash([4; 32])).unwrap(),
            Some(record(4))
        );
        store
            .set_code_state(&reference(3), CodeState::Used(DayNumber(11)))
            .unwrap();
        assert_eq!(store.code_status(&reference(3)).unwrap(), None);
    });
}

#[test]
fn api_keys_round_trip_and_quotas_count_per_subject_and_day() {
    use super::ApiKeyRecord;
    both(|store| {
        let record = ApiKeyRecord {
            name: "lab-north".into(),
            secret_hash: [7; 32],
            test_types: vec![ReportType::ConfirmedTest],
            created_by: "alice".into(),
            created: DayNumber(3),
            revoked: None,
            last_used: None,
        };
        assert_eq!(store.api_key(&[1; 8]).unwrap(), None);
        store.put_api_key(&[1; 8], &record).unwrap();
        let revoked = ApiKeyRecord {
            revoked: Some(DayNumber(4)),
            ..record.clone()
        };
        store.put_api_key(&[2; 8], &revoked).unwrap();
        assert_eq!(store.api_key(&[1; 8]).unwrap(), Some(record.clone()));
        assert_eq!(
            store.api_keys().unwrap(),
            vec![([1; 8], record), ([2; 8], revoked)]
        );
        assert!(!format!("{:?}", store.api_key(&[1; 8]).unwrap()).contains("7, 7"));

        assert!(store.charge_quota("key:a", DayNumber(5), 3, 4).unwrap());
        assert!(!store.charge_quota("key:a", DayNumber(5), 2, 4).unwrap());
        assert!(store.charge_quota("account:a", DayNumber(5), 4, 4).unwrap());
        assert!(store.charge_quota("key:a", DayNumber(5), 1, 4).unwrap());
        assert!(!store.charge_quota("key:a", DayNumber(5), 1, 4).unwrap());
        assert!(store.charge_quota("key:a", DayNumber(6), 4, 4).unwrap());
    });
}

#[test]
fn a_code_record_from_before_references_still_decodes() {
    let record = CodeRecord {
        test_type: ReportType::ConfirmedTest,
        symptom_onset: Some(DayNumber(5)),
        expires_at: T0,
        reference: None,
    };
    let mut old = super::encode(&record);
    assert_eq!(old.pop(), Some(0));
    assert_eq!(CodeRecord::decode(&old).unwrap(), record);
    assert_eq!(CodeRecord::decode(&super::encode(&record)).unwrap(), record);
    assert!(CodeRecord::decode(&[0xff; 3]).is_err());
}

fn mark(store: &dyn ReportStore, cert: u8) -> Option<CertificateUse> {
    store.certificate_use(&CertificateId([cert; 16])).unwrap()
}

fn accepted(upload: u8) -> Option<CertificateUse> {
    Some(CertificateUse {
        upload: UploadId([upload; 32]),
        state: CertificateState::Accepted,
        binding: Binding::Unbound,
    })
}

/// A version 2 upload's revision key is kept in its certificate mark (65 bytes; a mark
/// without one keeps the 33 bytes of before) and stays through the revision that spends it;
/// a signed revision's mark keeps its key, the certificate it revises and its signature
/// (145 bytes; a token revision's, 146). A relayed upload keeps its key too, and may be revised like one accepted
/// here (once).
#[test]
fn a_revision_key_is_kept_in_the_mark_through_its_revision() {
    use ephemera_proto::revision::RevisionKey;
    use ephemera_proto::signing::{Ed25519PublicKey, Signature};
    let key = RevisionKey(Ed25519PublicKey([9; 32]));
    let signed = Binding::Revision {
        key,
        revises: CertificateId([1; 16]),
        signature: Signature([7; 64]),
    };
    both(|store| {
        let mut first = commit(1, 1, None);
        first.binding = Binding::Upload(key);
        assert_eq!(first.certificate_use().to_bytes().len(), 65);
        assert_eq!(commit(2, 2, None).certificate_use().to_bytes().len(), 33);
        assert_eq!(
            store.commit_upload(&first).unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(mark(store, 1).unwrap().binding, Binding::Upload(key));
        let mut revision = commit(2, 2, Some(1));
        revision.binding = signed;
        assert_eq!(revision.certificate_use().to_bytes().len(), 145);
        assert_eq!(
            store.commit_upload(&revision).unwrap(),
            CommitOutcome::Committed
        );
        let spent = mark(store, 1).unwrap();
        assert_eq!(
            (spent.state, spent.binding),
            (CertificateState::Revised, Binding::Upload(key))
        );
        assert_eq!(mark(store, 2).unwrap().binding, signed);
        assert_eq!(
            CertificateUse::from_bytes(&mark(store, 2).unwrap().to_bytes()),
            mark(store, 2)
        );

        // Relayed: the key is kept, a revision consumes it once.
        let mut relayed = commit(3, 3, None);
        relayed.relayed = true;
        relayed.binding = Binding::Upload(key);
        store.commit_upload(&relayed).unwrap();
        assert_eq!(
            mark(store, 3).map(|m| (m.state, m.binding)),
            Some((CertificateState::Relayed, Binding::Upload(key)))
        );
        let mut revision = commit(4, 4, Some(3));
        revision.relayed = true;
        assert_eq!(
            store.commit_upload(&revision).unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(mark(store, 3).unwrap().state, CertificateState::Revised);
        assert_eq!(
            store.commit_upload(&commit(5, 5, Some(3))).unwrap(),
            CommitOutcome::RevisionTokenUnknown
        );
    });
    // A token revision's mark: a signed revision's and a trailing 1 (146 bytes).
    let token_revision = CertificateUse {
        upload: UploadId([2; 32]),
        state: CertificateState::Accepted,
        binding: Binding::TokenRevision {
            key,
            revises: CertificateId([1; 16]),
            signature: Signature([7; 64]),
        },
    };
    let bytes = token_revision.to_bytes();
    assert_eq!(bytes.len(), 146);
    assert_eq!(CertificateUse::from_bytes(&bytes), Some(token_revision));
    for bytes in [
        &[0u8; 32][..],
        &[0; 34],
        &[0; 64],
        &[0; 66],
        &[0; 144],
        &[0; 146],
        &[0; 147],
    ] {
        assert_eq!(CertificateUse::from_bytes(bytes), None, "{}", bytes.len());
    }
}

#[test]
fn certificates_are_single_use_and_commits_atomic() {
    both(|store| {
        assert_eq!(
            store.commit_upload(&commit(1, 1, None)).unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(mark(store, 1), accepted(1));
        assert_eq!(
            store.commit_upload(&commit(1, 2, None)).unwrap(),
            CommitOutcome::CertificateUsed
        );
        assert_eq!(
            store.upload(&UploadId([2; 32])).unwrap(),
            None,
            "nothing written"
        );
        assert_eq!(mark(store, 1), accepted(1), "the mark is unchanged");
        assert_eq!(
            store.commit_upload(&commit(3, 3, Some(9))).unwrap(),
            CommitOutcome::RevisionTokenUnknown
        );
        assert_eq!(mark(store, 3), None, "nothing written");
        assert_eq!(
            store.commit_upload(&commit(4, 4, Some(1))).unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(
            mark(store, 1).unwrap().state,
            CertificateState::Revised,
            "the revision spent the original's token"
        );
        assert_eq!(
            store.commit_upload(&commit(5, 5, Some(1))).unwrap(),
            CommitOutcome::RevisionTokenUnknown,
            "a token revises once"
        );
        assert_eq!(store.upload_count().unwrap(), 2);
        assert_eq!(store.queued_until(T0).unwrap().len(), 2);
        assert_eq!(store.queued_until(T0.minus_seconds(1)).unwrap().len(), 0);

        // Uploads go at 500; their certificate marks are due only at 1000.
        let counts = store.purge(T0.plus_seconds(500), T0).unwrap();
        assert_eq!(counts.uploads, 2);
        assert_eq!(counts.certificates, 0);
        assert!(mark(store, 4).is_some(), "kept until its own time");
        let counts = store
            .purge(T0.plus_seconds(1000), T0.plus_seconds(1))
            .unwrap();
        assert_eq!(counts.certificates, 2);
        assert_eq!(counts.queued, 2);
        assert_eq!((mark(store, 1), mark(store, 4)), (None, None));
        assert_eq!(
            store.commit_upload(&commit(1, 5, None)).unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(store.purge(T0.plus_seconds(2000), T0).unwrap().total(), 2);
        assert_eq!(store.purge(T0.plus_seconds(3000), T0).unwrap().total(), 0);
    });
}

#[test]
fn a_certificate_mark_due_before_its_upload_goes_with_it() {
    both(|store| {
        let mut early = commit(1, 1, None);
        early.certificate.1 = T0.plus_seconds(100);
        store.commit_upload(&early).unwrap();
        assert_eq!(store.purge(T0.plus_seconds(200), T0).unwrap().total(), 0);
        let counts = store.purge(T0.plus_seconds(500), T0).unwrap();
        assert_eq!((counts.uploads, counts.certificates), (1, 1));
        assert_eq!(mark(store, 1), None);
    });
}

#[test]
fn relayed_uploads_are_marked_so() {
    both(|store| {
        let mut relayed = commit(1, 1, None);
        relayed.relayed = true;
        store.commit_upload(&relayed).unwrap();
        assert_eq!(mark(store, 1).unwrap().state, CertificateState::Relayed);
        // Who may revise it (a signed revision under its key only, never a token) is the
        // core's to check (`intake::check_proof`); the store lets one revision through.
        assert_eq!(
            store.commit_upload(&commit(2, 2, Some(1))).unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(
            store.commit_upload(&commit(3, 3, Some(1))).unwrap(),
            CommitOutcome::RevisionTokenUnknown,
            "revised once"
        );
    });
}

#[test]
fn a_group_sees_its_own_earlier_commits() {
    both(|store| {
        let outcomes = store
            .commit_uploads(&[
                commit(1, 1, None),
                commit(1, 2, None),
                commit(2, 3, Some(1)),
            ])
            .unwrap();
        assert_eq!(
            outcomes,
            vec![
                CommitOutcome::Committed,
                CommitOutcome::CertificateUsed,
                CommitOutcome::Committed
            ]
        );
        assert_eq!(mark(store, 1).unwrap().state, CertificateState::Revised);
        assert_eq!(store.upload_count().unwrap(), 2);
    });
}

#[test]
fn cuts_store_batches_and_advance_state() {
    both(|store| {
        store.commit_upload(&commit(1, 1, None)).unwrap();
        assert_eq!(store.cutter_state().unwrap().next_sequence, 1);
        assert_eq!(store.chain_head().unwrap(), None);
        let queued = store.queued_until(T0).unwrap();
        let entry = |seq: u64| BatchIndexEntry {
            id: BatchId([seq as u8; 32]),
            sequence: seq,
            created_at: T0,
            size: 3,
            keys: 0,
            tokens: 1,
        };
        let cut = CutCommit {
            batches: vec![
                StoredBatch {
                    entry: entry(1),
                    bytes: vec![1, 2, 3],
                    filter: Some(vec![7, 7]),
                    purge_at: T0.plus_seconds(10),
                },
                StoredBatch {
                    entry: entry(2),
                    bytes: vec![4, 5, 6],
                    filter: None,
                    purge_at: T0.plus_seconds(20),
                },
            ],
            exports: vec![StoredExport {
                name: "1-2-00001.zip".into(),
                bytes: vec![9; 4],
                purge_at: T0.plus_seconds(10),
            }],
            dequeue: queued.iter().map(|(k, _)| *k).collect(),
            from: CutterState::INITIAL,
            state: CutterState {
                next_sequence: 3,
                last_boundary: Some(T0),
            },
        };
        store.commit_cut(&cut).unwrap();
        assert!(store.queued_until(T0).unwrap().is_empty());
        assert_eq!(store.cutter_state().unwrap(), cut.state);
        assert_eq!(store.batch(&BatchId([2; 32])).unwrap(), Some(vec![4, 5, 6]));
        // A filter is stored with its batch, and a batch without one reads as none.
        assert_eq!(
            store.token_filter(&BatchId([1; 32])).unwrap(),
            Some(vec![7, 7])
        );
        assert_eq!(store.token_filter(&BatchId([2; 32])).unwrap(), None);
        assert_eq!(store.batch_index(0, 10).unwrap(), vec![entry(1), entry(2)]);
        assert_eq!(store.batch_index(1, 10).unwrap(), vec![entry(2)]);
        assert_eq!(store.batch_index(0, 1).unwrap(), vec![entry(1)]);
        assert_eq!(store.batch_index(u64::MAX, 1).unwrap(), vec![]);
        assert_eq!(store.export("1-2-00001.zip").unwrap(), Some(vec![9; 4]));
        assert_eq!(
            store.export_names().unwrap(),
            vec!["1-2-00001.zip".to_owned()]
        );
        let counts = store.purge(T0.plus_seconds(10), T0).unwrap();
        assert_eq!((counts.batches, counts.exports), (1, 1));
        assert_eq!(store.export("1-2-00001.zip").unwrap(), None);
        assert_eq!(store.batch(&BatchId([1; 32])).unwrap(), None);
        assert_eq!(store.token_filter(&BatchId([1; 32])).unwrap(), None);
        assert_eq!(store.batch_index(0, 10).unwrap(), vec![entry(2)]);
        let head = ChainHead {
            sequence: 2,
            id: BatchId([2; 32]),
        };
        assert_eq!(store.chain_head().unwrap(), Some(head));
        // The head outlives its batch: the next cut still links to it.
        store.purge(T0.plus_seconds(20), T0).unwrap();
        assert_eq!(store.batch_index(0, 10).unwrap(), vec![]);
        assert_eq!(store.chain_head().unwrap(), Some(head));
    });
}

#[test]
fn accounts_round_trip_and_hide_their_secrets() {
    both(|store| {
        assert_eq!(store.account("alice").unwrap(), None);
        let record = AccountRecord {
            roles: vec![Role::Admin, Role::Auditor],
            enabled: true,
            credential: CredentialRecord {
                salt: [1; 16],
                iterations: 2,
                hash: [3; 32],
            },
            must_change_password: true,
            totp: Some(vec![7; 40]),
            totp_pending: None,
            recovery_codes: vec![[9; 32]],
            created: DayNumber(20_000),
        };
        store.put_account("alice", &record).unwrap();
        assert_eq!(store.account("alice").unwrap(), Some(record.clone()));
        let disabled = AccountRecord {
            enabled: false,
            ..record.clone()
        };
        store.put_account("bob", &disabled).unwrap();
        store.put_account("alice", &disabled).unwrap();
        assert_eq!(
            store.accounts().unwrap(),
            vec![
                ("alice".to_owned(), disabled.clone()),
                ("bob".to_owned(), disabled)
            ]
        );
        let shown = format!("{record:?}");
        assert!(!shown.contains("7, 7") && !shown.contains("9, 9") && !shown.contains("3, 3"));
        assert!(record.has(Role::Auditor) && !record.has(Role::CaseWorker));
    });
}

#[test]
fn sessions_are_filed_by_hash_and_removed_at_once() {
    both(|store| {
        let session = |account: &str, expires: u64| SessionRecord {
            account: account.to_owned(),
            expires_at: UnixTime(expires),
            last_used: T0,
        };
        store.put_session(&[1; 32], &session("alice", 100)).unwrap();
        store.put_session(&[2; 32], &session("alice", 200)).unwrap();
        store.put_session(&[3; 32], &session("bob", 300)).unwrap();
        assert_eq!(
            store.session(&[1; 32]).unwrap(),
            Some(session("alice", 100))
        );
        assert_eq!(store.session(&[4; 32]).unwrap(), None);
        assert!(store.remove_session(&[1; 32]).unwrap());
        assert!(!store.remove_session(&[1; 32]).unwrap(), "already gone");
        assert_eq!(store.remove_sessions(&|s| s.account == "alice").unwrap(), 1);
        assert_eq!(store.session(&[2; 32]).unwrap(), None);
        assert_eq!(store.session(&[3; 32]).unwrap(), Some(session("bob", 300)));
        assert_eq!(store.remove_sessions(&|s| s.expires_at.0 < 300).unwrap(), 0);
    });
}

#[test]
fn roles_have_stable_names() {
    for role in Role::ALL {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::parse("root"), None);
    assert_eq!(Role::parse("Admin"), None, "names are exact");
}

#[test]
fn credentials_round_trip() {
    both(|store| {
        assert_eq!(store.credential("alice").unwrap(), None);
        let record = CredentialRecord {
            salt: [1; 16],
            iterations: 2,
            hash: [3; 32],
        };
        store.put_credential("alice", &record).unwrap();
        assert_eq!(store.credential("alice").unwrap(), Some(record));
        assert_eq!(store.credential_names().unwrap(), vec!["alice".to_owned()]);
        assert!(!format!("{:?}", store.credential("alice").unwrap()).contains("3, 3"));
    });
}

#[test]
fn the_audit_trail_appends_purges_behind_its_anchor_and_reads_back() {
    use ephemera_proto::audit::{AuditAction, AuditActor, AuditEntry, AuditOutcome};
    use ephemera_proto::signing::Ed25519SigningKey;
    let key = Ed25519SigningKey::from_seed(&[5; 32]);
    both(|store| {
        assert_eq!(store.audit_head().unwrap(), None);
        let mut head = None;
        let mut entries = Vec::new();
        for minute in 0..4 {
            let entry = AuditEntry::append(
                head,
                minute,
                AuditActor::Operator,
                AuditAction::Exported,
                AuditOutcome::Success,
                &key,
            );
            store.append_audit(&entry).unwrap();
            head = Some((entry.record.sequence, entry.record.hash()));
            entries.push(entry);
        }
        assert_eq!(store.audit_head().unwrap(), head);
        // An entry never replaces another: a second node appending at the same sequence is
        // told so.
        let rival = AuditEntry::append(
            Some((2, entries[1].record.hash())),
            9,
            AuditActor::Node,
            AuditAction::Exported,
            AuditOutcome::Success,
            &key,
        );
        assert!(matches!(
            store.append_audit(&rival),
            Err(StoreError::AuditSequenceTaken { sequence: 3 })
        ));
        assert_eq!(store.audit_trail().unwrap(), (None, entries.clone()));
        assert_eq!(store.purge_audit(&entries[1].anchor()).unwrap(), 2);
        assert_eq!(
            store.audit_trail().unwrap(),
            (Some(entries[1].anchor()), entries[2..].to_vec())
        );
        // Every entry purged: the head is the anchor's.
        assert_eq!(store.purge_audit(&entries[3].anchor()).unwrap(), 2);
        assert_eq!(store.audit_head().unwrap(), head);
        assert_eq!(store.audit_trail().unwrap().1, Vec::new());
    });
}

#[test]
fn sled_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_sled(dir.path()).unwrap();
        store.commit_upload(&commit(1, 1, None)).unwrap();
        store.flush().unwrap();
    }
    let store = open_sled(dir.path()).unwrap();
    assert!(store.upload(&UploadId([1; 32])).unwrap().is_some());
    assert_eq!(
        store.commit_upload(&commit(1, 2, None)).unwrap(),
        CommitOutcome::CertificateUsed
    );
}

#[test]
fn sled_keeps_its_upload_count_through_commits_purges_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_sled(dir.path()).unwrap();
        let outcomes = store
            .commit_uploads(&[
                commit(1, 1, None),
                commit(2, 2, None),
                commit(2, 3, None),
                commit(4, 4, Some(1)),
            ])
            .unwrap();
        assert_eq!(outcomes[2], CommitOutcome::CertificateUsed);
        assert_eq!(store.upload_count().unwrap(), 3);
        // The same upload under another certificate rewrites its record: still three.
        assert_eq!(
            store.commit_upload(&commit(5, 2, None)).unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(store.upload_count().unwrap(), 3);
        assert_eq!(store.uploads_by_scan(), 3);
        store.flush().unwrap();
    }
    let store = open_sled(dir.path()).unwrap();
    assert_eq!(store.upload_count().unwrap(), 3, "counted again at open");
    store.commit_upload(&commit(6, 6, None)).unwrap();
    assert_eq!(store.upload_count().unwrap(), 4);
    assert_eq!(store.purge(T0.plus_seconds(500), T0).unwrap().uploads, 4);
    assert_eq!(store.upload_count().unwrap(), 0);
    assert_eq!(store.uploads_by_scan(), 0);
}

#[test]
fn sled_refuses_a_folder_of_another_format() {
    // Written before formats were numbered: data, no format key.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        db.open_tree("revisions")
            .unwrap()
            .insert([1u8; 32], &[2u8; 32])
            .unwrap();
        db.flush().unwrap();
    }
    let error = open_sled(dir.path()).unwrap_err();
    assert!(
        matches!(error, StoreError::Format { found: None, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("move the folder aside"),
        "{error}"
    );

    // Format 2 (batch bodies as sled values), 3 (reports in clear) and a later format.
    assert_eq!(STORE_FORMAT, 4);
    for format in [2, 3, STORE_FORMAT + 1] {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path().join("db")).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(b"format", &format.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let error = open_sled(dir.path()).unwrap_err();
        assert!(
            matches!(error, StoreError::Format { found: Some(f), expected: 4 } if f == format),
            "{error}"
        );
        let advice = match format {
            3 => "convert it with `ephemera-node upgrade`",
            2 => "move the folder aside",
            _ => "a newer node wrote it",
        };
        assert!(error.to_string().contains(advice), "{error}");
    }

    // A fresh folder is stamped and opens again.
    let dir = tempfile::tempdir().unwrap();
    drop(open_sled(dir.path()).unwrap());
    open_sled(dir.path()).unwrap();
}

/// A cut of one batch (sequence `seq`, id from `seq`) and one export named after `seq`,
/// both purged at `T0 + seq` seconds.
pub(crate) fn blob_cut(seq: u64, batch: Vec<u8>, export: Vec<u8>) -> CutCommit {
    CutCommit {
        batches: vec![StoredBatch {
            entry: BatchIndexEntry {
                id: BatchId([seq as u8; 32]),
                sequence: seq,
                created_at: T0,
                size: batch.len() as u64,
                keys: 0,
                tokens: 1,
            },
            bytes: batch,
            filter: None,
            purge_at: T0.plus_seconds(seq),
        }],
        exports: vec![StoredExport {
            name: format!("{seq}-{seq}-00001.zip"),
            bytes: export,
            purge_at: T0.plus_seconds(seq),
        }],
        dequeue: Vec::new(),
        from: CutterState {
            next_sequence: seq,
            last_boundary: (seq > 1).then_some(T0),
        },
        state: CutterState {
            next_sequence: seq + 1,
            last_boundary: Some(T0),
        },
    }
}

/// Deterministic filler bytes.
fn filler(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Names of the files in the blobs folder, sorted.
fn blob_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[test]
fn sled_keeps_bodies_as_files_and_serves_identical_bytes_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let batch = filler(1, 300_000);
    let export = filler(2, 50_000);
    {
        let store = open_sled(dir.path()).unwrap();
        let before = store.size_on_disk().unwrap();
        store
            .commit_cut(&blob_cut(1, batch.clone(), export.clone()))
            .unwrap();
        store.flush().unwrap();
        // Named by content hash only, and counted in the size on disk.
        let mut expected = vec![sha256_hex(&batch), sha256_hex(&export)];
        expected.sort();
        assert_eq!(blob_files(dir.path()), expected);
        assert!(store.size_on_disk().unwrap() >= before + 350_000);
    }
    let store = open_sled(dir.path()).unwrap();
    assert_eq!(store.batch(&BatchId([1; 32])).unwrap(), Some(batch));
    assert_eq!(store.export("1-1-00001.zip").unwrap(), Some(export));
    assert_eq!(store.batch(&BatchId([9; 32])).unwrap(), None);
    assert_eq!(store.export("9-9-00001.zip").unwrap(), None);
}

#[test]
fn sled_open_removes_orphan_and_temporary_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let batch = filler(3, 1000);
    let export = filler(4, 100);
    {
        let store = open_sled(dir.path()).unwrap();
        store
            .commit_cut(&blob_cut(1, batch.clone(), export.clone()))
            .unwrap();
        store.flush().unwrap();
    }
    // What a crash leaves: a file written (even renamed) whose cut never committed, and a
    // temporary file cut short. Files of other names are not the store's: left alone.
    let blobs = dir.path().join("blobs");
    let orphan = sha256_hex(b"never indexed");
    std::fs::write(blobs.join(&orphan), b"never indexed").unwrap();
    let temp = format!("{}.tmp", sha256_hex(b"half"));
    std::fs::write(blobs.join(&temp), b"ha").unwrap();
    std::fs::write(blobs.join("notes.txt"), b"operator's").unwrap();
    assert_eq!(blob_files(dir.path()).len(), 5);

    let store = open_sled(dir.path()).unwrap();
    let mut expected = vec![
        sha256_hex(&batch),
        sha256_hex(&export),
        "notes.txt".to_owned(),
    ];
    expected.sort();
    assert_eq!(blob_files(dir.path()), expected);
    assert_eq!(store.batch(&BatchId([1; 32])).unwrap(), Some(batch));
    assert_eq!(store.export("1-1-00001.zip").unwrap(), Some(export));
}

#[test]
fn sled_purge_removes_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sled(dir.path()).unwrap();
    // Each batch with its token filter's file.
    let with_filter = |mut cut: CutCommit, filter: Vec<u8>| {
        cut.batches[0].filter = Some(filter);
        cut
    };
    store
        .commit_cut(&with_filter(
            blob_cut(1, filler(5, 2000), filler(6, 200)),
            filler(12, 300),
        ))
        .unwrap();
    store
        .commit_cut(&with_filter(
            blob_cut(2, filler(7, 2000), filler(8, 200)),
            filler(13, 300),
        ))
        .unwrap();
    assert_eq!(blob_files(dir.path()).len(), 6);
    assert_eq!(
        store.token_filter(&BatchId([1; 32])).unwrap(),
        Some(filler(12, 300))
    );
    let size = store.size_on_disk().unwrap();

    let counts = store.purge(T0.plus_seconds(1), T0).unwrap();
    assert_eq!((counts.batches, counts.exports), (1, 1));
    let mut expected = vec![
        sha256_hex(&filler(7, 2000)),
        sha256_hex(&filler(8, 200)),
        sha256_hex(&filler(13, 300)),
    ];
    expected.sort();
    assert_eq!(blob_files(dir.path()), expected);
    assert!(store.size_on_disk().unwrap() < size);

    store.purge(T0.plus_seconds(2), T0).unwrap();
    assert!(blob_files(dir.path()).is_empty());
    assert_eq!(store.batch(&BatchId([2; 32])).unwrap(), None);
    drop(store);
    // Nothing is missing at the next open either.
    let store = open_sled(dir.path()).unwrap();
    assert_eq!(store.batch_index(0, 10).unwrap(), vec![]);
    assert!(store.export_names().unwrap().is_empty());
}

#[test]
fn sled_a_purge_keeps_a_file_another_entry_still_names() {
    // Two exports with identical bytes share one file; purging one keeps it for the other.
    let dir = tempfile::tempdir().unwrap();
    let store = open_sled(dir.path()).unwrap();
    let shared = filler(9, 500);
    store
        .commit_cut(&blob_cut(1, filler(10, 100), shared.clone()))
        .unwrap();
    store
        .commit_cut(&blob_cut(2, filler(11, 100), shared.clone()))
        .unwrap();
    store.purge(T0.plus_seconds(1), T0).unwrap();
    assert_eq!(store.export("2-2-00001.zip").unwrap(), Some(shared));
}

#[test]
fn sled_a_missing_short_or_altered_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let batch = filler(12, 4096);
    let export = filler(13, 512);
    {
        let store = open_sled(dir.path()).unwrap();
        store
            .commit_cut(&blob_cut(1, batch.clone(), export.clone()))
            .unwrap();
        store.flush().unwrap();
    }
    let blobs = dir.path().join("blobs");
    let batch_file = blobs.join(sha256_hex(&batch));
    // Truncated (a disk that lost the tail).
    std::fs::write(&batch_file, &batch[..1000]).unwrap();
    // Missing (restored without the blobs folder).
    std::fs::remove_file(blobs.join(sha256_hex(&export))).unwrap();

    // The store still opens (the rest stays readable) and says what is wrong on read.
    let store = open_sled(dir.path()).unwrap();
    let problem = |r: Result<Option<Vec<u8>>, StoreError>| match r {
        Err(StoreError::Blob { problem, file, .. }) => {
            assert_eq!(file.len(), 64, "the file is named by its hash");
            problem
        }
        other => panic!("expected a blob error, got {other:?}"),
    };
    let e = store.batch(&BatchId([1; 32]));
    assert!(e.as_ref().unwrap_err().to_string().contains("blobs folder"));
    assert!(problem(e).contains("shorter"));
    assert_eq!(problem(store.export("1-1-00001.zip")), "missing");

    // Longer, and the right length with other bytes.
    let mut longer = batch.clone();
    longer.push(0);
    std::fs::write(&batch_file, &longer).unwrap();
    assert!(problem(store.batch(&BatchId([1; 32]))).contains("longer"));
    let mut altered = batch.clone();
    altered[17] ^= 1;
    std::fs::write(&batch_file, &altered).unwrap();
    assert!(problem(store.batch(&BatchId([1; 32]))).contains("altered"));

    // Put back, it reads again; the index is unaffected throughout.
    std::fs::write(&batch_file, &batch).unwrap();
    assert_eq!(store.batch(&BatchId([1; 32])).unwrap(), Some(batch));
    assert_eq!(store.batch_index(0, 10).unwrap().len(), 1);
    // A purge of an entry whose file is gone is fine.
    assert_eq!(store.purge(T0.plus_seconds(1), T0).unwrap().exports, 1);
}

/// Every file under `dir`, concatenated (what an attacker holding the disk reads).
pub(crate) fn read_files(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(read_files(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

#[test]
fn sled_opens_after_a_start_on_a_full_disk_left_an_unfinished_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_sled(dir.path()).unwrap();
        store.commit_upload(&commit(1, 1, None)).unwrap();
        store.flush().unwrap();
    }
    // What a start on a full disk leaves: an empty snapshot that was never finished, named
    // above every real one.
    let db = dir.path().join("db");
    std::fs::write(db.join("snap.7FFFFFFFFFFFFFFF.generating"), b"").unwrap();
    assert!(
        sled::open(&db).is_err(),
        "sled alone refuses the folder at every start"
    );
    let store = open_sled(dir.path()).expect("the store opens");
    assert_eq!(store.upload_count().unwrap(), 1);
    assert!(!db.join("snap.7FFFFFFFFFFFFFFF.generating").exists());
}

/// The statistics counters of `store` from day 0 on, as (day, metric, type code, count).
fn counters(store: &dyn ReportStore) -> Vec<(u32, &'static str, u8, u64)> {
    store
        .stats(DayNumber(0), DayNumber(u32::MAX))
        .unwrap()
        .into_iter()
        .map(|(k, n)| {
            (
                k.day.0,
                k.metric.as_str(),
                k.test_type.map_or(0, ReportType::code),
                n,
            )
        })
        .collect()
}

#[test]
fn every_counted_event_counts_once_in_its_own_write() {
    use super::CodeState;
    both(|store| {
        let status = status_record;
        let record = code_record;
        let likely = ReportType::ConfirmedClinicalDiagnosis;
        store
            .insert_code_statuses(&[
                (reference(1), status(1, ReportType::ConfirmedTest)),
                (reference(2), status(2, ReportType::ConfirmedTest)),
                (reference(3), status(3, ReportType::ConfirmedTest)),
                (reference(4), status(4, likely)),
            ])
            .unwrap();
        store
            .insert_codes(
                &(1..=4)
                    .map(|n| (CodeHash([n; 32]), record(n)))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        // Used once (a second mark changes nothing), revoked once, the rest expire.
        store
            .set_code_state(&reference(1), CodeState::Used(DayNumber(11)))
            .unwrap();
        store
            .set_code_state(&reference(1), CodeState::Used(DayNumber(11)))
            .unwrap();
        store.revoke_code(&reference(2), DayNumber(10)).unwrap();
        store.revoke_code(&reference(2), DayNumber(10)).unwrap();
        // On the expiry day nothing expires; the day after, the two issued codes do, once.
        assert_eq!(store.expire_code_statuses(DayNumber(11)).unwrap(), 0);
        assert_eq!(store.expire_code_statuses(DayNumber(12)).unwrap(), 2);
        assert_eq!(store.expire_code_statuses(DayNumber(13)).unwrap(), 0);
        assert_eq!(
            store.code_status(&reference(3)).unwrap().unwrap().state,
            CodeState::Expired(DayNumber(11))
        );
        // An upload and a relayed one, counted when written, not when refused.
        store.commit_upload(&commit(1, 1, None)).unwrap();
        assert_eq!(
            store.commit_upload(&commit(1, 2, None)).unwrap(),
            CommitOutcome::CertificateUsed
        );
        let mut relayed = commit(2, 3, None);
        relayed.relayed = true;
        store.commit_uploads(&[relayed]).unwrap();
        let t0 = T0.day().0;
        let cut = CutCommit {
            batches: vec![StoredBatch {
                entry: BatchIndexEntry {
                    id: BatchId([1; 32]),
                    sequence: 1,
                    created_at: T0,
                    size: 3,
                    keys: 0,
                    tokens: 1,
                },
                bytes: vec![1, 2, 3],
                filter: None,
                purge_at: T0.plus_seconds(10),
            }],
            exports: vec![],
            dequeue: vec![],
            from: CutterState::INITIAL,
            state: CutterState {
                next_sequence: 2,
                last_boundary: Some(T0),
            },
        };
        store.commit_cut(&cut).unwrap();
        assert_eq!(
            counters(store),
            vec![
                (10, "codes_issued", 1, 3),
                (10, "codes_issued", 2, 1),
                (10, "codes_revoked", 1, 1),
                (11, "codes_used", 1, 1),
                (11, "codes_expired", 1, 1),
                (11, "codes_expired", 2, 1),
                (t0, "uploads_accepted", 1, 1),
                (t0, "uploads_relayed", 1, 1),
                (t0, "batches_published", 0, 1),
            ]
        );
        assert_eq!(store.stats(DayNumber(11), DayNumber(11)).unwrap().len(), 3);
        // The purge keeps the days from `before` on.
        assert_eq!(store.purge_stats(DayNumber(11)).unwrap(), 3);
        assert_eq!(store.stats(DayNumber(0), DayNumber(10)).unwrap(), vec![]);
        assert_eq!(counters(store).len(), 6);
    });
}

#[test]
fn sled_keeps_its_counters_through_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_sled(dir.path()).unwrap();
        store.commit_upload(&commit(1, 1, None)).unwrap();
        store.flush().unwrap();
    }
    let store = open_sled(dir.path()).unwrap();
    assert_eq!(
        counters(&store),
        vec![(T0.day().0, "uploads_accepted", 1, 1)]
    );
}

#[test]
fn applied_settings_are_replaced_whole_and_start_empty() {
    both(|store| {
        assert_eq!(store.applied_settings().unwrap(), vec![]);
        let first = vec![
            ("http.listen".to_owned(), [1; 32]),
            ("data_dir".to_owned(), [2; 32]),
        ];
        store.set_applied_settings(&first).unwrap();
        assert_eq!(store.applied_settings().unwrap(), first);
        let second = vec![("http.listen".to_owned(), [3; 32])];
        store.set_applied_settings(&second).unwrap();
        assert_eq!(store.applied_settings().unwrap(), second);
    });
}

#[test]
fn a_cut_planned_from_a_state_that_moved_on_is_dropped_whole() {
    both(|store| {
        store
            .commit_cut(&blob_cut(1, vec![1; 8], vec![2; 8]))
            .unwrap();
        // A second node planned the same boundary from the state before the first cut.
        let mut late = blob_cut(1, vec![3; 8], vec![4; 8]);
        late.batches[0].entry.id = BatchId([9; 32]);
        late.exports[0].name = "late.zip".to_owned();
        assert!(matches!(
            store.commit_cut(&late),
            Err(StoreError::CutSuperseded)
        ));
        assert_eq!(store.batch(&BatchId([9; 32])).unwrap(), None);
        assert_eq!(store.export("late.zip").unwrap(), None);
        assert_eq!(store.batch_index(0, 10).unwrap().len(), 1);
        assert_eq!(store.cutter_state().unwrap().next_sequence, 2);
        // The next cut, planned from the state now, goes in.
        store
            .commit_cut(&blob_cut(2, vec![5; 8], vec![6; 8]))
            .unwrap();
        assert_eq!(store.batch_index(0, 10).unwrap().len(), 2);
    });
}

#[test]
fn the_batch_key_is_bound_once_and_moves_on_from_the_bound_one_only() {
    use ephemera_proto::signing::Ed25519PublicKey;
    both(|store| {
        let (a, b, c) = (
            Ed25519PublicKey([1; 32]),
            Ed25519PublicKey([2; 32]),
            Ed25519PublicKey([3; 32]),
        );
        assert_eq!(store.bound_key().unwrap(), None);
        assert_eq!(store.bind_key(None, &a).unwrap(), a);
        // A second first node: the first one's key stays.
        assert_eq!(store.bind_key(None, &b).unwrap(), a);
        // A move from a key that is not the bound one changes nothing.
        assert_eq!(store.bind_key(Some(&c), &b).unwrap(), a);
        assert_eq!(store.bind_key(Some(&a), &b).unwrap(), b);
        assert_eq!(store.bound_key().unwrap(), Some(b));
    });
    // A record of another length (an edited database) is corrupt, not a key.
    for bytes in [&[][..], &[1; 31], &[1; 33]] {
        assert!(matches!(
            super::decode_bound_key(Some(bytes)),
            Err(StoreError::Corrupt { tree: "meta" })
        ));
    }
}

#[test]
fn the_held_sunset_order_is_kept_and_replaced() {
    both(|store| {
        assert_eq!(store.sunset_order().unwrap(), None);
        store.record_sunset_order(b"first frame").unwrap();
        assert_eq!(
            store.sunset_order().unwrap().as_deref(),
            Some(&b"first frame"[..])
        );
        store.record_sunset_order(b"an earlier order").unwrap();
        assert_eq!(
            store.sunset_order().unwrap().as_deref(),
            Some(&b"an earlier order"[..])
        );
    });
    // It survives a restart.
    let dir = tempfile::tempdir().unwrap();
    open_sled(dir.path())
        .unwrap()
        .record_sunset_order(b"kept")
        .unwrap();
    assert_eq!(
        open_sled(dir.path())
            .unwrap()
            .sunset_order()
            .unwrap()
            .as_deref(),
        Some(&b"kept"[..])
    );
}

#[test]
fn removed_uploads_leave_with_their_queued_groups_and_catch_up_filing() {
    both(|store| {
        store.commit_upload(&commit(1, 1, None)).unwrap();
        store.commit_upload(&commit(2, 2, None)).unwrap();
        let day = ephemera_proto::sync::sync_day(&dummy_upload().upload);
        assert_eq!(store.day_digest(day).unwrap().count, 2);
        let gone = QueueKey {
            release_at: T0,
            upload: UploadId([1; 32]),
        };
        assert_eq!(
            store
                .remove_uploads(&[(UploadId([1; 32]), vec![gone]), (UploadId([9; 32]), vec![])])
                .unwrap(),
            1
        );
        assert_eq!(store.upload(&UploadId([1; 32])).unwrap(), None);
        assert_eq!(store.upload_count().unwrap(), 1);
        assert_eq!(store.day_digest(day).unwrap().count, 1);
        assert_eq!(
            store.sync_ids(day, None, 10).unwrap(),
            vec![UploadId([2; 32])]
        );
        let queued: Vec<_> = store
            .queued_until(UnixTime(u64::MAX))
            .unwrap()
            .into_iter()
            .map(|(key, _)| key.upload)
            .collect();
        assert_eq!(queued, vec![UploadId([2; 32])]);
    });
}

#[test]
fn the_earliest_expiry_of_each_kind_is_reported_in_kind_order() {
    both(|store| {
        assert_eq!(store.earliest_expiries().unwrap(), Vec::new());
        let mut later = commit(2, 2, None);
        later.upload.2 = T0.plus_seconds(900);
        store.commit_upload(&later).unwrap();
        store.commit_upload(&commit(1, 1, None)).unwrap();
        store
            .insert_codes(&[(CodeHash([4; 32]), code_record(4))])
            .unwrap();
        let kinds: Vec<&str> = store
            .earliest_expiries()
            .unwrap()
            .iter()
            .map(|(kind, _)| *kind)
            .collect();
        assert_eq!(kinds, ["upload", "code"]);
        // The earlier of the two uploads.
        assert_eq!(
            store.earliest_expiries().unwrap()[0],
            ("upload", T0.plus_seconds(500))
        );
    });
}

#[test]
fn erasing_all_leaves_only_the_sunset_order() {
    both(|store| {
        store.commit_upload(&commit(1, 1, None)).unwrap();
        store.record_sunset_order(b"the order").unwrap();
        let account = AccountRecord {
            roles: vec![Role::Admin],
            enabled: true,
            credential: CredentialRecord {
                salt: [1; 16],
                iterations: 2,
                hash: [3; 32],
            },
            must_change_password: false,
            totp: None,
            totp_pending: None,
            recovery_codes: vec![],
            created: DayNumber(20_000),
        };
        store.put_account("ada", &account).unwrap();
        let erased = store.erase_all().unwrap();
        let count = |kind: &str| erased.iter().find(|(k, _)| k == kind).map(|(_, n)| *n);
        assert_eq!(count("uploads"), Some(1), "{erased:?}");
        assert_eq!(count("accounts"), Some(1), "{erased:?}");
        assert!(
            erased.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted: {erased:?}"
        );
        assert_eq!(store.upload_count().unwrap(), 0);
        assert_eq!(store.accounts().unwrap(), Vec::new());
        assert_eq!(
            store.sunset_order().unwrap().as_deref(),
            Some(&b"the order"[..])
        );
        // A second erasure finds nothing.
        assert_eq!(store.erase_all().unwrap(), Vec::new());
    });
}

/// A stand-in release frame: the store keeps bytes, it does not parse them.
fn release(n: u8) -> (ephemera_proto::venue::ReleaseId, Vec<u8>) {
    (
        ephemera_proto::venue::ReleaseId([n; 32]),
        vec![n; 100 + usize::from(n)],
    )
}

#[test]
fn venue_releases_are_kept_once_listed_in_order_and_purged_at_their_time() {
    both(|store| {
        let (a, frame_a) = release(1);
        let (b, frame_b) = release(2);
        let purge_a = T0.plus_seconds(3600);
        let purge_b = T0.plus_seconds(7200);
        let first = store
            .insert_venue_release(&a, &frame_a, T0, purge_a)
            .unwrap()
            .unwrap();
        assert_eq!(first.sequence, release_sequence_floor(T0));
        assert_eq!(first.size, frame_a.len() as u64);
        // The same id again, even from another peer a second later: nothing changes.
        assert_eq!(
            store
                .insert_venue_release(&a, &frame_a, T0.plus_seconds(1), purge_a)
                .unwrap(),
            None
        );
        // A second release in the same second takes the next number.
        let second = store
            .insert_venue_release(&b, &frame_b, T0, purge_b)
            .unwrap()
            .unwrap();
        assert_eq!(second.sequence, first.sequence + 1);
        assert_eq!(store.venue_release(&a).unwrap(), Some(frame_a.clone()));
        assert_eq!(store.venue_release(&release(3).0).unwrap(), None);
        assert_eq!(
            store.venue_release_index(0, 10).unwrap(),
            vec![first, second]
        );
        assert_eq!(
            store.venue_release_index(first.sequence, 10).unwrap(),
            vec![second]
        );
        assert_eq!(store.venue_release_index(0, 1).unwrap(), vec![first]);
        assert_eq!(
            store.earliest_expiries().unwrap(),
            vec![("venue-release", purge_a)]
        );

        // Not before its time; then it goes, with its index entry, and the other stays.
        assert_eq!(
            store
                .purge(purge_a.minus_seconds(1), T0)
                .unwrap()
                .venue_releases,
            0
        );
        let counts = store.purge(purge_a, T0).unwrap();
        assert_eq!(counts.venue_releases, 1);
        assert_eq!(counts.total(), 1);
        assert_eq!(store.venue_release(&a).unwrap(), None);
        assert_eq!(store.venue_release_index(0, 10).unwrap(), vec![second]);
        // A later release never takes a number at or below one handed out.
        let (c, frame_c) = release(3);
        let third = store
            .insert_venue_release(&c, &frame_c, T0, purge_b)
            .unwrap()
            .unwrap();
        assert!(third.sequence > second.sequence);
    });
}

#[test]
fn erasing_all_erases_the_venue_releases() {
    both(|store| {
        let (a, frame) = release(1);
        store
            .insert_venue_release(&a, &frame, T0, T0.plus_seconds(60))
            .unwrap();
        let erased = store.erase_all().unwrap();
        assert!(
            erased
                .iter()
                .any(|(kind, n)| kind.contains("venue") && *n == 1),
            "{erased:?}"
        );
        assert_eq!(store.venue_release(&a).unwrap(), None);
        assert_eq!(store.venue_release_index(0, 10).unwrap(), Vec::new());
        assert_eq!(store.earliest_expiries().unwrap(), Vec::new());
    });
}

/// The store's counters against a recount of the ids it files under `days` (every day it
/// holds uploads of).
fn assert_counters_agree_with_a_recount(store: &dyn ReportStore, days: &[DayNumber]) {
    let mut total = 0;
    for day in days {
        let ids = store.sync_ids(*day, None, usize::MAX).unwrap();
        let mut recount = ephemera_proto::sync::DayDigest::empty(*day);
        for id in &ids {
            recount.add(id);
        }
        assert_eq!(store.day_digest(*day).unwrap(), recount, "day {}", day.0);
        total += ids.len() as u64;
    }
    assert_eq!(store.upload_count().unwrap(), total);
}

#[test]
fn upload_counts_and_day_digests_agree_with_a_recount_through_inserts_duplicates_and_purge() {
    both(|store| {
        let next_day = T0.plus_seconds(86_400);
        let days = [T0.day(), next_day.day()];
        let on_next_day = |cert: u8, upload: u8| {
            let mut c = commit(cert, upload, None);
            c.upload.1 = upload_issued_at(next_day);
            c
        };
        // A group of plain commits over two sync days, one upload written twice in it.
        let outcomes = store
            .commit_uploads(&[
                commit(1, 1, None),
                commit(2, 2, None),
                on_next_day(3, 3),
                commit(4, 2, None),
            ])
            .unwrap();
        assert!(outcomes.iter().all(|o| *o == CommitOutcome::Committed));
        assert_eq!(store.upload_count().unwrap(), 3);
        assert_eq!(store.day_digest(next_day.day()).unwrap().count, 1);
        assert_counters_agree_with_a_recount(store, &days);
        // Duplicates: a certificate again (refused), an upload id again (rewritten, not
        // counted twice), one by one and in a group. An id is the hash of its upload, so
        // a duplicate is of the same day.
        assert_eq!(
            store.commit_upload(&commit(1, 9, None)).unwrap(),
            CommitOutcome::CertificateUsed
        );
        store.commit_upload(&commit(5, 1, None)).unwrap();
        store
            .commit_uploads(&[on_next_day(6, 3), commit(7, 8, None)])
            .unwrap();
        assert_eq!(store.upload_count().unwrap(), 4);
        assert_counters_agree_with_a_recount(store, &days);
        // The one-by-one path (a revision) counts its upload too.
        assert_eq!(
            store.commit_upload(&commit(10, 10, Some(2))).unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(store.upload_count().unwrap(), 5);
        assert_counters_agree_with_a_recount(store, &days);
        // The purge takes every upload out of its day.
        assert_eq!(store.purge(T0.plus_seconds(500), T0).unwrap().uploads, 5);
        assert_eq!(store.upload_count().unwrap(), 0);
        assert_eq!(
            store.day_digest(T0.day()).unwrap(),
            ephemera_proto::sync::DayDigest::empty(T0.day())
        );
        assert_counters_agree_with_a_recount(store, &days);
        // And counting starts again from nothing.
        store.commit_upload(&on_next_day(11, 11)).unwrap();
        assert_eq!(store.upload_count().unwrap(), 1);
        assert_counters_agree_with_a_recount(store, &days);
    });
}
