//! `ephemera-node upgrade` on a data folder of storage format 3, the format of 0.1.0 that
//! trial operators ran: after it, the node serves that folder with every report and code it
//! held, and no code hash or arrival second is left on disk.

use ephemera_node::cli::{self, CliError, FolderArgs};
use ephemera_node::clock::{Clock, ManualClock};
use ephemera_node::keys::NodeKeys;
use ephemera_node::store::{
    CertificateState, CertificateUse, CodeRecord, CutterState, QueueKey, QueuedEntry, StoredUpload,
    UpgradeError,
};
use ephemera_proto::UnixTime;
use ephemera_proto::auth::{
    CertificateRequest, ExpiryPolicy, ReportHmacKey, TrustedAuthorities, UploadCode,
};
use ephemera_proto::report::{ReportContents, ReportLimits, ReportType};
use ephemera_proto::sync::{DayDigest, sync_day};
use ephemera_proto::upload::SignedUpload;
use std::path::Path;

use crate::util::*;

/// `expiry_key` of format 3: `purge_at (u64 BE) ‖ kind ‖ reference` (kind 1: upload, 4: code).
fn expiry(at: UnixTime, kind: u8, reference: &[u8]) -> Vec<u8> {
    [&at.0.to_be_bytes()[..], &[kind], reference].concat()
}

/// Writes a format 3 database into `data`/db as 0.1.0 (`bdbdb92`) wrote it after one phone
/// upload of `contents` (queued, not cut yet) that arrived at `arrived`, with one unused
/// code `unused`, the expiry entry a crash left of the used code `used`, and the node's case
/// workers `credentials`.
async fn write_format3(
    data: &Path,
    contents: &ReportContents,
    arrived: UnixTime,
    [unused, used]: [&UploadCode; 2],
    credentials: &[(sled::IVec, sled::IVec)],
) {
    let keys = NodeKeys::load(data).unwrap();
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    let request = CertificateRequest {
        report_hmac: hmac_key.authenticate(contents),
        test_type: ReportType::ConfirmedTest,
        symptom_onset: None,
    };
    let certificate =
        keys.authority
            .issue(&request, arrived.minus_seconds(40), 3600, &mut rand::rng());
    let trusted = TrustedAuthorities::new().with(keys.authority.public_key());
    let verified = SignedUpload {
        contents: contents.clone(),
        certificate: certificate.clone(),
        hmac_key,
    }
    .verify(
        &trusted,
        arrived,
        ExpiryPolicy::FirstUpload,
        &ReportLimits::default(),
    )
    .unwrap();
    let id = verified.id();
    let entries: Vec<QueuedEntry> = match contents {
        ReportContents::Pet(tokens) => tokens.iter().map(|t| QueuedEntry::Token(*t)).collect(),
        ReportContents::Gaen(_) => unreachable!("pet contents"),
    };
    let record = StoredUpload {
        received_at: arrived,
        releases: vec![Some(arrived); entries.len()],
        upload: verified.into_inner(),
    };
    let db = sled_open(&data.join("db")).await;
    let tree = |name: &str| db.open_tree(name).unwrap();
    tree("meta").insert(b"format", &3u32.to_be_bytes()).unwrap();
    let state = CutterState {
        next_sequence: 1,
        last_boundary: None,
    };
    tree("meta")
        .insert(b"cutter-state", encode(&state))
        .unwrap();
    for (name, hash) in credentials {
        tree("credentials").insert(name, hash.clone()).unwrap();
    }
    let certificate_id = certificate.certificate.id;
    let mark = CertificateUse {
        upload: id,
        state: CertificateState::Accepted,
        binding: ephemera_proto::revision::Binding::Unbound,
    };
    tree("certificates")
        .insert(certificate_id.0, mark.to_bytes())
        .unwrap();
    tree("uploads").insert(id.0, encode(&record)).unwrap();
    let day = sync_day(&record.upload);
    tree("sync-index")
        .insert([&day.0.to_be_bytes()[..], &id.0].concat(), &[])
        .unwrap();
    let mut digest = DayDigest::empty(day);
    digest.add(&id);
    tree("day-digests")
        .insert(day.0.to_be_bytes(), encode(&digest))
        .unwrap();
    let retention = 14 * 86_400;
    let mark_purge = certificate
        .certificate
        .issued_at
        .plus_seconds(retention + 300);
    let reference = [&id.0[..], &certificate_id.0, &mark_purge.0.to_be_bytes()].concat();
    tree("expiry")
        .insert(expiry(arrived.plus_seconds(retention), 1, &reference), &[])
        .unwrap();
    let queued = QueueKey {
        release_at: arrived,
        upload: id,
    };
    tree("queue")
        .insert(queued.to_bytes(), encode(&entries))
        .unwrap();
    let hash = unused.hash(&keys.pepper);
    let code = CodeRecord {
        test_type: ReportType::ConfirmedTest,
        symptom_onset: None,
        expires_at: arrived.plus_seconds(86_400),
        reference: None,
    };
    // As format 3 wrote it, before references: without the trailing `reference` (None).
    let mut bytes = encode(&code);
    assert_eq!(bytes.pop(), Some(0));
    tree("codes").insert(hash.0, bytes).unwrap();
    for hash in [hash, used.hash(&keys.pepper)] {
        tree("expiry")
            .insert(expiry(code.expires_at, 4, &hash.0), &[])
            .unwrap();
    }
    db.flush().unwrap();
}

/// postcard, as the store encodes its records.
fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap()
}

/// `ephemera-node upgrade --data-dir DATA`, and what it printed.
async fn upgrade(data: &Path) -> Result<String, CliError> {
    waiting_for_sled(|| async move {
        let mut out = Vec::new();
        let folder = FolderArgs {
            config: None,
            data_dir: Some(data.to_owned()),
        };
        cli::upgrade(&folder, &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    })
    .await
}

#[tokio::test]
async fn a_format3_folder_upgrades_and_serves_every_report_and_code_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A node of this build makes the keys and the case worker; its database is replaced
    // by the format 3 one below (keys and credentials are alike in both formats).
    let clock = ManualClock::new(T0.plus_seconds(1234));
    let first = TestNode::start(&data, clock.clone()).await;
    let (name, password) = first.case_worker.clone().unwrap();
    first.stop().await;
    // Format 3 kept a case worker's password hash alone, in `credentials`: the account's.
    let credentials: Vec<_> = {
        let db = sled_open(&data.join("db")).await;
        let tree = db.open_tree("accounts").unwrap();
        tree.iter()
            .map(Result::unwrap)
            .map(|(name, account)| {
                let account: ephemera_node::store::AccountRecord =
                    postcard::from_bytes(&account).unwrap();
                let credential = postcard::to_allocvec(&account.credential).unwrap();
                (name, sled::IVec::from(credential))
            })
            .collect()
    };
    assert_eq!(credentials.len(), 1);
    std::fs::remove_dir_all(data.join("db")).unwrap();

    let arrived = clock.now();
    let contents = pet_contents(3, arrived.day());
    let unused = UploadCode::generate(&mut rand::rng());
    let used = UploadCode::generate(&mut rand::rng());
    let pepper = NodeKeys::load(&data).unwrap().pepper;
    write_format3(&data, &contents, arrived, [&unused, &used], &credentials).await;
    let Err(refused) = open_node(test_config(&data), &clock).await else {
        panic!("a format 3 folder opened");
    };
    assert!(
        refused.to_string().contains("ephemera-node upgrade"),
        "{refused}"
    );

    let said = upgrade(&data).await.unwrap();
    assert!(
        said.contains(
            "converted from storage format 3 to 4: 1 uploads, 1 queue groups and 1 unused codes"
        ),
        "{said}"
    );
    assert!(
        upgrade(&data)
            .await
            .unwrap()
            .contains("already storage format 4")
    );

    let mut node = TestNode::start(&data, clock.clone()).await;
    assert_eq!(node.get("/healthz").await.json()["storage_format"], 4);
    // The case worker's credential came along, as an account with every role whose
    // password (generated by the node) need not change.
    assert!(node.case_worker.is_none(), "no new first account");
    node.case_worker = Some((name.clone(), password));
    let session = node.login().await;
    assert_eq!(
        node.node.session_info(&session).unwrap().roles,
        ["admin", "case-worker", "bulk-issuer", "auditor"]
    );
    // The queued report is published by the first cut, as it was due to be.
    node.next_batches().await;
    let published = node.all_published().await;
    let ReportContents::Pet(tokens) = &contents else {
        unreachable!()
    };
    for token in tokens {
        assert!(published.tokens.contains(token), "token lost");
    }
    // The unused code works once.
    let fresh = pet_contents(2, node.clock.now().day());
    let hmac_key = ReportHmacKey::generate(&mut rand::rng());
    node.certify(&unused.reveal(), &fresh, &hmac_key)
        .await
        .unwrap();
    let again = node.certify(&unused.reveal(), &fresh, &hmac_key).await;
    assert!(again.is_err(), "a code works once");
    // The used one stays used.
    let used_again = node.certify(&used.reveal(), &fresh, &hmac_key).await;
    assert!(used_again.is_err(), "a used code works again");
    node.stop().await;

    let files = read_tree(&data);
    for (what, clear) in [
        ("code hash", unused.hash(&pepper).0.to_vec()),
        ("used code's hash", used.hash(&pepper).0.to_vec()),
        ("code", unused.reveal().into_bytes()),
        ("arrival second", arrived.0.to_be_bytes().to_vec()),
    ] {
        assert!(
            !files.windows(clear.len()).any(|w| w == clear),
            "{what} on disk"
        );
    }
}

#[tokio::test]
async fn a_folder_of_a_format_it_does_not_convert_gets_what_to_do() {
    for (format, says) in [
        (2u32, "formats 1 and 2 were never released"),
        (9, "a newer node wrote it"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        {
            let db = sled_open(&data.join("db")).await;
            let meta = db.open_tree("meta").unwrap();
            meta.insert(b"format", &format.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let error = upgrade(&data).await.unwrap_err();
        assert!(
            matches!(error, CliError::Upgrade(UpgradeError::Unconvertible { found: Some(f) }) if f == format),
            "{error}"
        );
        let text = error.to_string();
        assert!(text.contains(&format!("storage format {format}")), "{text}");
        assert!(text.contains(says), "{text}");
    }
}
