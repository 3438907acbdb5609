//! Release slots (issue 31 item 2): one upload's entries are released apart, never before
//! the next boundary, and alike at every node holding the federation's publication key.

use std::collections::BTreeSet;

use ephemera_proto::UnixTime;
use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents, ReportType};
use ephemera_proto::upload::key_publishable_at;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::PublicationKey;
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
