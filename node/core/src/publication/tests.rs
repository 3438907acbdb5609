//! Release slots and padding (issue 31 items 2 and 3): one upload's entries are released
//! apart, never before the next boundary, and every node holding the federation's
//! publication key files them, and pads its batches, alike.

use std::collections::BTreeSet;

use ephemera_proto::UnixTime;
use ephemera_proto::auth::{CertificateRequest, ReportHmacKey};
use ephemera_proto::batch::{BatchContents, SignedBatch, TrustedNodes};
use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents, ReportType};
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadRequest, key_publishable_at};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::PublicationKey;
use crate::federation_intake::RelayAdmission;
use crate::intake::Admission;
use crate::store::{CommitOutcome, MemoryReportStore, ReportStore};
use crate::{NodeCore, NodeKeys, Policy};

/// Not on a boundary of the hourly default period.
pub(crate) const NOW: UnixTime = UnixTime(1_700_000_123);

/// A core with the default policy, the publication key `[key; 32]` and its own node keys
/// (seed `seed`).
pub(crate) fn core_with_key(key: u8, seed: u64) -> NodeCore {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let policy = Policy {
        publication_key: Some(PublicationKey::from_bytes([key; 32])),
        ..Policy::default()
    };
    NodeCore::new(policy, NodeKeys::generate(&mut rng), &mut rng)
}

/// `n` tokens of the last `days` days, told apart by `tag`.
pub(crate) fn tokens(tag: u8, n: u16, days: u32) -> ReportContents {
    ReportContents::Pet(
        (0..n)
            .map(|i| {
                let mut token = [tag; 16];
                token[..2].copy_from_slice(&i.to_le_bytes());
                PublishedToken {
                    day: NOW.day().minus(u32::from(i) % days),
                    token: EncounterToken(token),
                }
            })
            .collect(),
    )
}

#[test]
fn one_uploads_tokens_are_released_apart_and_never_before_the_next_boundary() {
    let core = core_with_key(1, 1);
    let cutter = *core.cutter();
    let next = cutter.next_boundary(NOW);
    let releases = core.release_times(&tokens(7, 200, 14), NOW);
    assert_eq!(releases.len(), 200);
    for at in &releases {
        assert!(*at >= next, "released before the next boundary");
        assert!(*at < next.plus_seconds(86_400), "past the spread");
        assert_eq!(cutter.boundary_at(*at), *at, "released at a boundary");
    }
    let boundaries: BTreeSet<UnixTime> = releases.iter().copied().collect();
    // 200 tokens over 24 hourly classes: every class holds some.
    assert_eq!(boundaries.len(), 24, "spread over a day's boundaries");

    // Arriving exactly on a boundary: that boundary is the earliest.
    let on = core.release_times(&tokens(7, 200, 14), next);
    assert!(on.iter().all(|at| *at >= next));
    assert!(on.contains(&next));
}

#[test]
fn every_node_with_the_key_files_an_entry_under_the_same_boundary_and_others_cannot() {
    let contents = tokens(9, 100, 14);
    let origin = core_with_key(1, 1);
    let peer = core_with_key(1, 2);
    let stranger = core_with_key(2, 1);
    let period_start = origin.cutter().boundary_at(NOW);
    let first = origin.release_times(&contents, NOW);
    // A relay that got the report later in the same period files it alike.
    assert_eq!(
        first,
        peer.release_times(&contents, period_start.plus_seconds(3599))
    );
    // Without the key, the slots are others: an observer cannot tell them in advance.
    assert_ne!(first, stranger.release_times(&contents, NOW));
    // One that got it a period later files each entry at its next slot from there: later,
    // never earlier, and the same where the slot was still ahead.
    let late = peer.release_times(&contents, NOW.plus_seconds(3600));
    for (a, b) in first.iter().zip(&late) {
        assert!(b >= a);
        if *a > origin.cutter().next_boundary(NOW) {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn gaen_keys_of_one_upload_are_spread_too_and_keep_their_embargo() {
    let core = core_with_key(3, 1);
    let keys: Vec<DiagnosisKey> = (0..14u8)
        .map(|i| DiagnosisKey {
            key: TemporaryExposureKey([i; 16]),
            rolling_start: NOW.day().minus(u32::from(i)).first_interval(),
            rolling_period: 144,
            report_type: ReportType::ConfirmedTest,
            days_since_onset: Some(i as i8 - 7),
        })
        .collect();
    let releases = core.release_times(&ReportContents::Gaen(keys.clone()), NOW);
    let next = core.cutter().next_boundary(NOW);
    for (key, at) in keys.iter().zip(&releases) {
        assert!(*at >= key_publishable_at(key).max(next));
        assert!(*at < key_publishable_at(key).max(next).plus_seconds(86_400));
    }
    let boundaries: BTreeSet<UnixTime> = releases.iter().copied().collect();
    assert!(boundaries.len() >= 8, "{} boundaries", boundaries.len());
}

/// `contents` certified by `core`'s authority at `at` as `test_type`, its HMAC bound to
/// `binding`.
fn certified(
    core: &NodeCore,
    contents: ReportContents,
    test_type: ReportType,
    binding: HmacBinding,
    at: UnixTime,
    rng: &mut ChaCha20Rng,
) -> SignedUpload {
    let hmac_key = ReportHmacKey::generate(rng);
    let request = CertificateRequest {
        report_hmac: hmac_key.authenticate_bound(&contents, binding),
        test_type,
        symptom_onset: None,
    };
    SignedUpload {
        contents,
        certificate: core.keys().authority.issue(&request, at, 3600, rng),
        hmac_key,
    }
}

/// A first upload of `contents` certified by `core`'s authority, as a phone sends it.
fn phone_upload(core: &NodeCore, contents: ReportContents, rng: &mut ChaCha20Rng) -> UploadRequest {
    let revision_key = RevisionSecret::from_seed(&[rng.next_u32() as u8; 32]).key();
    let upload = certified(
        core,
        contents,
        ReportType::ConfirmedTest,
        HmacBinding::Upload(revision_key),
        NOW,
        rng,
    );
    UploadRequest {
        body: UploadBody::Real {
            upload,
            revision_key,
        },
        padding: Vec::new(),
    }
}

/// Applies an admitted upload or revision.
fn apply(store: &dyn ReportStore, admission: Admission) -> crate::store::UploadCommit {
    let Admission::Commit(planned) = admission else {
        panic!("not committed: {admission:?}")
    };
    assert_eq!(
        store.commit_upload(&planned.commit).unwrap(),
        CommitOutcome::Committed
    );
    planned.commit
}

/// A revision keeps the slots of the entries not published yet, and publishes the keys
/// already out again each at its own slot from the revision's arrival: spread too, never
/// before the next boundary.
#[test]
fn a_revision_keeps_unpublished_slots_and_spreads_the_keys_it_publishes_again() {
    let core = core_with_key(5, 1);
    let store = MemoryReportStore::new();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let phone = RevisionSecret::from_seed(&[3; 32]);
    let mut keys: Vec<DiagnosisKey> = (1..=12u32)
        .map(|d| DiagnosisKey {
            key: TemporaryExposureKey([d as u8; 16]),
            rolling_start: NOW.day().minus(d).first_interval(),
            rolling_period: 144,
            report_type: ReportType::ConfirmedClinicalDiagnosis,
            days_since_onset: None,
        })
        .collect();
    keys.sort_unstable();
    let contents = ReportContents::Gaen(keys.clone());
    let original = certified(
        &core,
        contents.clone(),
        ReportType::ConfirmedClinicalDiagnosis,
        HmacBinding::Upload(phone.key()),
        NOW,
        &mut rng,
    );
    let revises = original.certificate.certificate.id;
    let request = UploadRequest {
        body: UploadBody::Real {
            upload: original,
            revision_key: phone.key(),
        },
        padding: Vec::new(),
    };
    apply(
        &store,
        core.admit_upload(&store, request, NOW, false).unwrap(),
    );
    let first = core.release_times(&contents, NOW);

    // Cut until about half the keys are out.
    let mut sorted = first.clone();
    sorted.sort_unstable();
    let mid = sorted[sorted.len() / 2];
    let mut at = core.cutter().boundary_at(NOW);
    while at <= mid {
        cut(&core, &store, at);
        at = at.plus_seconds(3600);
    }

    let later = mid.plus_seconds(60);
    let upload = certified(
        &core,
        contents,
        ReportType::ConfirmedTest,
        HmacBinding::Revision(phone.key()),
        later,
        &mut rng,
    );
    let signature = phone.sign(&revises, &upload.certificate);
    let request = UploadRequest {
        body: UploadBody::Revision {
            upload,
            revises,
            signature,
        },
        padding: Vec::new(),
    };
    let commit = apply(
        &store,
        core.admit_upload(&store, request, later, false).unwrap(),
    );
    let floor = core.release_floor(later);
    let mut again = BTreeSet::new();
    for ((key, before), after) in keys.iter().zip(&first).zip(&commit.upload.1.releases) {
        let after = after.expect("confirmed: every key is published");
        if *before > mid {
            assert_eq!(after, *before, "not published yet: its slot stays");
        } else {
            assert_eq!(after, core.release_slot(key.key.as_bytes(), floor));
            assert!(
                after >= floor,
                "published again, never before the next boundary"
            );
            again.insert(after);
        }
    }
    assert!(
        again.len() >= 3,
        "published again at {} boundaries",
        again.len()
    );
}

/// Cuts the boundary due at `now` and applies it; the batches' bodies as published.
fn cut(core: &NodeCore, store: &dyn ReportStore, now: UnixTime) -> Vec<BatchContents> {
    let planned = core
        .plan_cut(store, now)
        .unwrap()
        .expect("a boundary is due");
    store.commit_cut(&planned.commit).unwrap();
    let trusted = TrustedNodes::new().with(core.keys().batch.public_key());
    planned
        .commit
        .batches
        .iter()
        .map(|b| SignedBatch::verify(&b.bytes, &trusted).unwrap().1)
        .collect()
}

/// Issue 31 item 3: two nodes of one federation (one publication key), one taking phones'
/// uploads and the other the same reports relayed, publish the same batch bodies at every
/// boundary, so that comparing them shows no entry as real; and item 2 seen from the
/// batches: each upload's tokens come out over a day of boundaries, among the others'.
#[test]
fn two_nodes_fed_the_same_reports_publish_identical_batches() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let policy = Policy {
        publication_key: Some(PublicationKey::from_bytes([1; 32])),
        batch_min_entries: 16,
        ..Policy::default()
    };
    let origin = NodeCore::new(policy.clone(), NodeKeys::generate(&mut rng), &mut rng);
    let peer = NodeCore::new(
        Policy {
            trusted_authorities: vec![origin.keys().authority.public_key()],
            ..policy
        },
        NodeKeys::generate(&mut rng),
        &mut rng,
    );
    let (here, there) = (MemoryReportStore::new(), MemoryReportStore::new());
    let uploads: Vec<ReportContents> = (1..=6).map(|tag| tokens(tag, 40, 14)).collect();
    for (k, contents) in uploads.iter().enumerate() {
        let arrival = NOW.plus_seconds(60 * k as u64);
        let request = phone_upload(&origin, contents.clone(), &mut rng);
        let Admission::Commit(planned) =
            origin.admit_upload(&here, request, arrival, true).unwrap()
        else {
            panic!("a real upload is committed")
        };
        assert_eq!(
            here.commit_upload(&planned.commit).unwrap(),
            CommitOutcome::Committed
        );
        // Relayed a little later, in the same batch period.
        let relayed = planned.gossip.expect("kept for gossip");
        let RelayAdmission::Commit(commit) = peer
            .admit_relayed(&there, relayed, arrival.plus_seconds(30))
            .unwrap()
        else {
            panic!("a relayed upload is committed")
        };
        assert_eq!(
            there.commit_upload(&commit).unwrap(),
            CommitOutcome::Committed
        );
    }

    let owner = |token: &EncounterToken| {
        uploads.iter().position(|c| match c {
            ReportContents::Pet(t) => t.iter().any(|p| p.token == *token),
            ReportContents::Gaen(_) => false,
        })
    };
    let mut batches_per_upload = vec![BTreeSet::new(); uploads.len()];
    let mut shared_batches = 0;
    let mut published = 0;
    let start = origin.cutter().boundary_at(NOW);
    for k in 0..=25u64 {
        let at = start.plus_seconds(k * 3600);
        let (ours, theirs) = (cut(&origin, &here, at), cut(&peer, &there, at));
        assert_eq!(ours, theirs, "the same bodies at boundary {k}");
        for batch in &ours {
            let owners: BTreeSet<usize> = batch
                .tokens
                .iter()
                .filter_map(|t| owner(&t.token))
                .collect();
            let real = batch
                .tokens
                .iter()
                .filter(|t| owner(&t.token).is_some())
                .count();
            published += real;
            assert_eq!(
                batch.tokens.len(),
                origin.cutter().bucket(real),
                "padded to its bucket"
            );
            for o in &owners {
                batches_per_upload[*o].insert(at);
            }
            shared_batches += usize::from(owners.len() > 1);
        }
    }
    assert_eq!(published, 6 * 40, "every token published once");
    for (k, boundaries) in batches_per_upload.iter().enumerate() {
        assert!(
            boundaries.len() >= 15,
            "upload {k} in {} batches",
            boundaries.len()
        );
        assert!(
            boundaries.iter().all(|b| *b > NOW),
            "never before the next boundary"
        );
    }
    assert!(
        shared_batches >= 20,
        "uploads mixed in {shared_batches} batches"
    );
}
