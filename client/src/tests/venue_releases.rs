//! The phone downloads venue releases in its own sync round, from a fake node: a good
//! release warns a visitor and no one else; forged, untrusted, truncated and expired ones
//! warn no one and each has its outcome; the cursor survives a restart; a hostile node's
//! index and releases stay within the phone's caps.

use std::collections::BTreeMap;

use ephemera_proto::UnixTime;
use ephemera_proto::auth::AuthoritySigningKey;
use ephemera_proto::batch::BatchIndex;
use ephemera_proto::venue::{
    MAX_RELEASE_LEN, ReleaseError, ReleaseId, ReleaseIndex, ReleaseIndexEntry, SignedVenueRelease,
    VenueRelease, VenueTrace,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::util::reopen;
use super::venue::{ARRIVAL, DAY, HOUR, MESSAGE, NAME, Venue, config, events, warnings_in};
use crate::store::{MemoryStore, MetaKey, Store};
use crate::{
    ClientConfig, MAX_RELEASES_PER_ROUND, Phone, PhoneEvent, Purpose, Response, VenueReleaseError,
};

/// When the phones sync: two days after the visit.
const NOW: UnixTime = UnixTime(ARRIVAL.0 + 2 * DAY);

/// A node's sequence for a release that arrived at `at` (`docs/PROTOCOL.md` §10.1).
fn sequence_at(at: UnixTime) -> u64 {
    at.0 * 1000
}

/// The health authority whose releases the phones pin.
fn authority() -> AuthoritySigningKey {
    AuthoritySigningKey::from_seed(&[7; 32])
}

fn pinned_config() -> ClientConfig {
    config().with_trusted_authority(authority().public_key())
}

/// The release of a case at `venue` from `from` for 90 minutes, signed by `key` at `issued`.
fn release(venue: &mut Venue, key: &AuthoritySigningKey, issued: UnixTime) -> SignedVenueRelease {
    release_with(venue, key, issued, issued.plus_seconds(14 * DAY))
}

fn release_with(
    venue: &mut Venue,
    key: &AuthoritySigningKey,
    issued: UnixTime,
    expires: UnixTime,
) -> SignedVenueRelease {
    let from = ARRIVAL.plus_seconds(50 * 60);
    let traces: Vec<VenueTrace> = venue
        .traces(from, from.plus_seconds(90 * 60), MESSAGE)
        .iter()
        .map(|bytes| VenueTrace::from_bytes(bytes).unwrap())
        .collect();
    let mut rng = ChaCha20Rng::seed_from_u64(issued.0);
    VenueRelease::pad(
        &traces,
        key.public_key().key_id(),
        issued,
        expires,
        &mut rng,
    )
    .unwrap()
    .sign(key)
}

/// A node's release index and releases, as `GET /v1/venue-releases` serves them; its
/// batch index is empty. `bodies` may serve other bytes than a release's frame.
#[derive(Default)]
struct ReleaseNode {
    /// Sequence → (id, the size listed).
    listed: BTreeMap<u64, (ReleaseId, u64)>,
    /// What `GET /v1/venue-releases/{id}` answers.
    bodies: BTreeMap<ReleaseId, Vec<u8>>,
    /// Replaces the index page when set.
    index_override: Option<Vec<u8>>,
}

impl ReleaseNode {
    /// Lists `frame` at `sequence` under the SHA-256 of its bytes, served as they are.
    fn publish(&mut self, sequence: u64, frame: Vec<u8>) -> ReleaseId {
        let id = id_of(&frame);
        self.listed.insert(sequence, (id, frame.len() as u64));
        self.bodies.insert(id, frame);
        id
    }

    fn answer(&self, purpose: Purpose, path: &str) -> Response {
        let ok = |body| Response { status: 200, body };
        match purpose {
            Purpose::FetchIndex => ok(serde_json::to_vec(&empty_batch_index()).unwrap()),
            Purpose::FetchVenueReleaseIndex => {
                if let Some(body) = &self.index_override {
                    return ok(body.clone());
                }
                let after: u64 = path.rsplit('=').next().unwrap().parse().unwrap();
                let releases: Vec<ReleaseIndexEntry> = self
                    .listed
                    .range(after + 1..)
                    .take(256)
                    .map(|(&sequence, &(id, size))| ReleaseIndexEntry { id, sequence, size })
                    .collect();
                let next_cursor = releases.last().map_or(after, |r| r.sequence);
                ok(serde_json::to_vec(&ReleaseIndex {
                    releases,
                    next_cursor,
                })
                .unwrap())
            }
            Purpose::FetchVenueRelease(id) => match self.bodies.get(&id) {
                Some(body) => ok(body.clone()),
                None => Response {
                    status: 404,
                    body: Vec::new(),
                },
            },
            _ => Response {
                status: 404,
                body: Vec::new(),
            },
        }
    }
}

fn id_of(bytes: &[u8]) -> ReleaseId {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    ReleaseId(digest.as_ref().try_into().unwrap())
}

fn empty_batch_index() -> BatchIndex {
    BatchIndex {
        batches: vec![],
        next_cursor: 0,
        key_rollovers: Vec::new(),
        head: None,
        token_filters: false,
        sunset: None,
    }
}

/// One sync round of `phone` against `node` at `now`: the paths of the releases it
/// fetched, and the events raised. No answer makes an input fail.
fn sync<S: Store>(
    phone: &mut Phone<S>,
    node: &ReleaseNode,
    now: UnixTime,
) -> (Vec<String>, Vec<PhoneEvent>) {
    phone.start_sync(now).unwrap();
    let mut fetched = Vec::new();
    while let Some(request) = phone.poll_request() {
        if matches!(request.purpose, Purpose::FetchVenueRelease(_)) {
            fetched.push(request.path.clone());
        }
        let answer = node.answer(request.purpose, &request.path);
        phone.handle_response(now, request.id, answer).unwrap();
    }
    (fetched, events(phone))
}

fn rejections(events: &[PhoneEvent]) -> Vec<VenueReleaseError> {
    events
        .iter()
        .filter_map(|e| match e {
            PhoneEvent::VenueReleaseRejected(error) => Some(error.clone()),
            _ => None,
        })
        .collect()
}

/// A phone with `config` that checked in at `venue` from 12:10 to 13:40 on the visit day.
fn visitor(venue: &Venue, config: ClientConfig) -> Phone<MemoryStore> {
    let mut phone = Phone::new(config, MemoryStore::new(), [5; 32]).unwrap();
    phone.check_in(ARRIVAL, &venue.qr()).unwrap();
    phone.check_out(ARRIVAL.plus_seconds(90 * 60)).unwrap();
    phone
}

#[test]
fn a_release_the_phone_downloads_warns_its_visitor_once_and_no_one_else() {
    let mut venue = Venue::new(1, NAME);
    let elsewhere = Venue::new(2, "Bakery");
    let mut node = ReleaseNode::default();
    let issued = ARRIVAL.plus_seconds(DAY);
    let sequence = sequence_at(issued);
    let id = node.publish(
        sequence,
        release(&mut venue, &authority(), issued).to_bytes(),
    );

    let mut alice = visitor(&venue, pinned_config());
    let (fetched, raised) = sync(&mut alice, &node, NOW);
    assert_eq!(fetched, vec![format!("/v1/venue-releases/{id}")]);
    let warnings = warnings_in(&raised);
    assert_eq!(warnings.len(), 1, "{raised:?}");
    assert_eq!(warnings[0].message, MESSAGE);
    assert_eq!(warnings[0].day, ARRIVAL.day());
    assert_eq!(alice.venue_warnings().unwrap(), warnings);
    assert_eq!(alice.venue_release_cursor(), sequence);
    assert_eq!(
        alice.store().meta(MetaKey::VenueReleaseCursor).unwrap(),
        Some(sequence.to_le_bytes().to_vec())
    );

    // The next round asks after the cursor: nothing fetched again, nothing raised again.
    let (fetched, raised) = sync(&mut alice, &node, NOW.plus_seconds(HOUR));
    assert!(fetched.is_empty());
    assert!(warnings_in(&raised).is_empty());

    // A phone that checked in elsewhere downloads the same release and is not warned.
    let mut bob = visitor(&elsewhere, pinned_config());
    let (fetched, raised) = sync(&mut bob, &node, NOW);
    assert_eq!(fetched.len(), 1);
    assert!(warnings_in(&raised).is_empty(), "{raised:?}");
    assert!(bob.venue_warnings().unwrap().is_empty());
    assert_eq!(bob.venue_release_cursor(), sequence);
}

#[test]
fn forged_untrusted_and_expired_releases_warn_no_one_and_are_skipped() {
    let mut venue = Venue::new(1, NAME);
    let issued = ARRIVAL.plus_seconds(DAY);
    let stranger = AuthoritySigningKey::from_seed(&[8; 32]);
    let untrusted = release(&mut venue, &stranger, issued).to_bytes();
    let mut forged = release(&mut venue, &authority(), issued);
    forged.release.traces.swap(3, 4);
    let expired = release_with(&mut venue, &authority(), issued, issued.plus_seconds(HOUR));
    let malformed = vec![1, 0x13, 0xff, 0xff];

    let mut node = ReleaseNode::default();
    let base = sequence_at(issued);
    node.publish(base + 1, untrusted.clone());
    node.publish(base + 2, forged.to_bytes());
    node.publish(base + 3, expired.to_bytes());
    node.publish(base + 4, malformed);

    let mut phone = visitor(&venue, pinned_config());
    let (fetched, raised) = sync(&mut phone, &node, NOW);
    assert_eq!(fetched.len(), 4);
    assert!(warnings_in(&raised).is_empty(), "{raised:?}");
    assert!(phone.venue_warnings().unwrap().is_empty());
    let codes: Vec<&str> = rejections(&raised)
        .iter()
        .map(VenueReleaseError::code)
        .collect();
    assert_eq!(
        codes,
        [
            "venue-release-untrusted",
            "venue-release-forged",
            "venue-release-expired",
            "venue-release-malformed"
        ]
    );
    assert!(rejections(&raised).iter().all(|e| !e.retried()));
    // Each was decided by its own bytes (what its id names): skipped for good.
    assert_eq!(phone.venue_release_cursor(), base + 4);
    assert_eq!(phone.status().last_error, Some("venue-release-malformed"));

    // An app that pins no authority trusts its node over TLS: the stranger's release is
    // matched; the forged one still fails its shape check, the expired one its expiry.
    let mut trusting = visitor(&venue, config());
    let (_, raised) = sync(&mut trusting, &node, NOW);
    assert_eq!(warnings_in(&raised).len(), 1, "{raised:?}");
}

#[test]
fn a_truncated_release_leaves_the_cursor_and_the_next_round_fetches_it_whole() {
    let mut venue = Venue::new(1, NAME);
    let issued = ARRIVAL.plus_seconds(DAY);
    let frame = release(&mut venue, &authority(), issued).to_bytes();
    let mut node = ReleaseNode::default();
    let id = node.publish(sequence_at(issued), frame.clone());
    node.bodies.insert(id, frame[..frame.len() - 10].to_vec());

    let mut phone = visitor(&venue, pinned_config());
    let (fetched, raised) = sync(&mut phone, &node, NOW);
    assert_eq!(fetched.len(), 1);
    assert_eq!(rejections(&raised), vec![VenueReleaseError::WrongContent]);
    assert!(VenueReleaseError::WrongContent.retried());
    assert!(warnings_in(&raised).is_empty());
    assert_eq!(
        phone.venue_release_cursor(),
        0,
        "not past an unverified release"
    );

    // A node that serves another (valid) release under this id is caught the same way.
    let other = release(&mut venue, &authority(), issued.plus_seconds(60)).to_bytes();
    node.bodies.insert(id, other);
    let (_, raised) = sync(&mut phone, &node, NOW.plus_seconds(60));
    assert_eq!(rejections(&raised), vec![VenueReleaseError::WrongContent]);
    assert_eq!(phone.venue_release_cursor(), 0);

    node.bodies.insert(id, frame);
    let (_, raised) = sync(&mut phone, &node, NOW.plus_seconds(120));
    assert_eq!(warnings_in(&raised).len(), 1, "{raised:?}");
    assert_eq!(phone.venue_release_cursor(), sequence_at(issued));
}

#[test]
fn a_release_issued_after_the_phones_clock_is_retried_not_skipped() {
    let mut venue = Venue::new(1, NAME);
    let issued = NOW.plus_seconds(HOUR);
    let mut node = ReleaseNode::default();
    node.publish(
        sequence_at(ARRIVAL),
        release(&mut venue, &authority(), issued).to_bytes(),
    );
    let mut phone = visitor(&venue, pinned_config());
    let (_, raised) = sync(&mut phone, &node, NOW);
    let refused = rejections(&raised);
    assert!(
        matches!(
            refused.as_slice(),
            [VenueReleaseError::Refused(ReleaseError::PostDated { .. })]
        ),
        "{refused:?}"
    );
    assert!(refused[0].retried());
    assert_eq!(phone.venue_release_cursor(), 0);
    let (_, raised) = sync(&mut phone, &node, issued);
    assert_eq!(warnings_in(&raised).len(), 1, "{raised:?}");
}

#[test]
fn the_cursor_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut venue = Venue::new(1, NAME);
    let issued = ARRIVAL.plus_seconds(DAY);
    let mut node = ReleaseNode::default();
    node.publish(
        sequence_at(issued),
        release(&mut venue, &authority(), issued).to_bytes(),
    );
    {
        let mut phone = Phone::new(pinned_config(), reopen(dir.path()), [5; 32]).unwrap();
        phone.check_in(ARRIVAL, &venue.qr()).unwrap();
        phone.check_out(ARRIVAL.plus_seconds(90 * 60)).unwrap();
        let (fetched, raised) = sync(&mut phone, &node, NOW);
        assert_eq!(fetched.len(), 1);
        assert_eq!(warnings_in(&raised).len(), 1);
    }
    let later = issued.plus_seconds(HOUR);
    let later_id = node.publish(
        sequence_at(later),
        release(&mut venue, &authority(), later).to_bytes(),
    );
    let mut phone = Phone::new(pinned_config(), reopen(dir.path()), [6; 32]).unwrap();
    assert_eq!(phone.venue_release_cursor(), sequence_at(issued));
    let now = NOW.plus_seconds(HOUR);
    phone.start_sync(now).unwrap();
    let mut asked = Vec::new();
    while let Some(request) = phone.poll_request() {
        if !matches!(
            request.purpose,
            Purpose::FetchIndex | Purpose::FetchSealingKey
        ) {
            asked.push(request.path.clone());
        }
        let answer = node.answer(request.purpose, &request.path);
        phone.handle_response(now, request.id, answer).unwrap();
    }
    let index = |after| format!("/v1/venue-releases?after={after}");
    // Only the release that came after the cursor is fetched.
    assert_eq!(
        asked,
        [
            index(sequence_at(issued)),
            format!("/v1/venue-releases/{later_id}"),
            index(sequence_at(later)),
        ]
    );
}

#[test]
fn a_hostile_index_stays_within_the_phones_caps() {
    let mut phone = Phone::new(pinned_config(), MemoryStore::new(), [5; 32]).unwrap();
    let issued = ARRIVAL.plus_seconds(DAY);
    let base = sequence_at(issued);

    // An entry moved far ahead by the unsigned index: not fetched, the cursor stays (it
    // would pass every later release).
    let mut node = ReleaseNode::default();
    node.publish(u64::MAX, vec![1, 0x13]);
    let (fetched, raised) = sync(&mut phone, &node, NOW);
    assert!(fetched.is_empty() && rejections(&raised).is_empty());
    assert_eq!(phone.venue_release_cursor(), 0);

    // More entries than a page holds, a page over the byte cap, not JSON: refused whole.
    let entry = |i: u64| ReleaseIndexEntry {
        id: ReleaseId([i as u8; 32]),
        sequence: base + i,
        size: 100,
    };
    let long = ReleaseIndex {
        releases: (1..=257).map(entry).collect(),
        next_cursor: base + 257,
    };
    let mut padded = serde_json::to_vec(&ReleaseIndex {
        releases: vec![entry(1)],
        next_cursor: base + 1,
    })
    .unwrap();
    padded.splice(1..1, std::iter::repeat_n(b' ', 64 * 1024));
    for body in [serde_json::to_vec(&long).unwrap(), padded, b"[1,2".to_vec()] {
        let node = ReleaseNode {
            index_override: Some(body),
            ..ReleaseNode::default()
        };
        let (fetched, raised) = sync(&mut phone, &node, NOW);
        assert!(fetched.is_empty());
        assert_eq!(rejections(&raised), vec![VenueReleaseError::BadIndex]);
        assert_eq!(phone.venue_release_cursor(), 0);
    }

    // A release listed larger than any frame, or that reached the node before the
    // retention period: skipped unfetched.
    let mut node = ReleaseNode::default();
    let huge = ReleaseId([9; 32]);
    node.listed
        .insert(base + 1, (huge, MAX_RELEASE_LEN as u64 + 1));
    let old = ReleaseId([10; 32]);
    node.listed
        .insert(sequence_at(UnixTime(NOW.0 - 16 * DAY)), (old, 3000));
    let (fetched, raised) = sync(&mut phone, &node, NOW);
    assert!(fetched.is_empty(), "{fetched:?}");
    assert_eq!(
        rejections(&raised),
        vec![VenueReleaseError::TooLarge {
            size: MAX_RELEASE_LEN as u64 + 1
        }]
    );
    assert_eq!(phone.venue_release_cursor(), base + 1);

    // Hundreds of releases: one round downloads at most MAX_RELEASES_PER_ROUND, the next
    // goes on from the cursor.
    let mut node = ReleaseNode::default();
    for i in 0..300u64 {
        node.publish(
            base + 10 + i,
            vec![1, 0x13, (i % 256) as u8, (i / 256) as u8],
        );
    }
    let (fetched, _) = sync(&mut phone, &node, NOW);
    assert_eq!(fetched.len(), MAX_RELEASES_PER_ROUND);
    assert_eq!(phone.venue_release_cursor(), base + 10 + 255);
    let (fetched, _) = sync(&mut phone, &node, NOW.plus_seconds(60));
    assert_eq!(fetched.len(), 300 - MAX_RELEASES_PER_ROUND);
    assert_eq!(phone.venue_release_cursor(), base + 10 + 299);
}

#[test]
fn a_failed_request_stops_the_step_and_keeps_the_cursor() {
    let mut venue = Venue::new(1, NAME);
    let issued = ARRIVAL.plus_seconds(DAY);
    let mut node = ReleaseNode::default();
    node.publish(
        sequence_at(issued),
        release(&mut venue, &authority(), issued).to_bytes(),
    );
    let mut phone = visitor(&venue, pinned_config());
    phone.start_sync(NOW).unwrap();
    while let Some(request) = phone.poll_request() {
        if matches!(request.purpose, Purpose::FetchVenueRelease(_)) {
            phone.handle_failure(NOW, request.id).unwrap();
        } else {
            let answer = node.answer(request.purpose, &request.path);
            phone.handle_response(NOW, request.id, answer).unwrap();
        }
    }
    assert_eq!(phone.venue_release_cursor(), 0);
    assert!(phone.venue_warnings().unwrap().is_empty());
    // The step is idle again: the next round starts it afresh and is warned.
    let (_, raised) = sync(&mut phone, &node, NOW.plus_seconds(60));
    assert_eq!(warnings_in(&raised).len(), 1, "{raised:?}");
}
