use ephemera_proto::batch::BatchIndex;
use ephemera_proto::gaen::{DiagnosisKey, Metadata, TemporaryExposureKey};
use ephemera_proto::scheme::DailyKey;
use ephemera_proto::{DayNumber, IntervalNumber, ReportContents, ReportType, SchemeKind, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::util::{Air, FakeNode, PhonePair, T0, next_past_key, stored_ratchet};
use crate::store::{MemoryStore, SledStore, Store};
use crate::{ClientError, Phone, PhoneEvent, Purpose, Response, Sighting, Signal};

fn start() -> UnixTime {
    // A few intervals into a day, so a 15-minute meeting stays on one day.
    T0.day().plus(1).first_interval().plus(40).start()
}

#[test]
fn advertisements_rotate_exactly_at_interval_boundaries() {
    for scheme in [SchemeKind::Gaen, SchemeKind::Pet] {
        let node = FakeNode::new(1);
        let mut phone = Phone::new(node.config(scheme), MemoryStore::new(), [3; 32]).unwrap();
        let boundary = start().interval().plus(1).start();
        let early = phone.advertisement(boundary.minus_seconds(599)).unwrap();
        let before = phone.advertisement(boundary.minus_seconds(1)).unwrap();
        let at = phone.advertisement(boundary).unwrap();
        assert_eq!(
            before.full, early.full,
            "{scheme:?}: stable within an interval"
        );
        assert_ne!(before.full, at.full, "{scheme:?}: rotates at the boundary");
        assert_eq!(before.valid_until, boundary);
        assert_eq!(at.interval, boundary.interval());
        assert!(phone.poll_timeout().unwrap() <= at.valid_until);
        let len = if scheme == SchemeKind::Gaen { 20 } else { 32 };
        assert_eq!(at.full.len(), len);
        // A new day brings a new daily key (`gaen`) or ratchet (`pet`), kept before use.
        let midnight = boundary.day().plus(1).start();
        phone.advertisement(midnight).unwrap();
        match scheme {
            SchemeKind::Gaen => assert_eq!(phone.store().own_key_days().unwrap().len(), 2),
            SchemeKind::Pet => {
                assert!(phone.store().own_key_days().unwrap().is_empty());
                let kept = stored_ratchet(phone.store()).expect("kept before use");
                assert_eq!(kept.interval(), midnight.interval());
            }
        }
    }
}

#[test]
fn pet_legacy_advertisements_cycle_through_four_slices() {
    let mut phone = Phone::new(
        FakeNode::new(1).config(SchemeKind::Pet),
        MemoryStore::new(),
        [4; 32],
    )
    .unwrap();
    let now = start();
    let slices: Vec<Vec<u8>> = (0..5)
        .map(|_| phone.advertisement(now).unwrap().legacy)
        .collect();
    assert!(slices.iter().all(|s| s.len() == 16));
    assert_eq!(slices[0], slices[4]);
    assert_ne!(slices[0], slices[1]);
}

#[test]
fn daily_key_survives_a_restart_with_sled() {
    let dir = tempfile::tempdir().unwrap();
    let config = FakeNode::new(1).config(SchemeKind::Gaen);
    let first = {
        let mut phone = Phone::new(
            config.clone(),
            SledStore::open(dir.path()).unwrap(),
            [5; 32],
        )
        .unwrap();
        phone.advertisement(start()).unwrap()
        // Dropped as if killed: no shutdown call.
    };
    let mut phone = Phone::new(config, SledStore::open(dir.path()).unwrap(), [6; 32]).unwrap();
    assert_eq!(phone.advertisement(start()).unwrap().full, first.full);
}

/// Both phones meet for 15 minutes; a reports; b ingests the batch and finds the exposure.
fn meet_report_match(scheme: SchemeKind, air: Air) -> (PhonePair, crate::DailyExposure) {
    let mut node = FakeNode::new(7);
    let mut pair = PhonePair::new(node.config(scheme), start(), air);
    pair.together(15 * 60, 10);
    // Apart until the keys of the day may be published (gaen: day end + 2 h).
    pair.apart(24 * 3600);
    let now = pair.now;
    let published = node.report(now, &mut pair.a, None);
    assert!(!published.is_empty());
    let batch = node.batch(now, &[published]);
    let summary = pair.b.handle_batch(now, batch.bytes()).unwrap();
    // gaen: one window per diagnosis key and day; pet: one per key pair heard.
    assert!(summary.new_windows >= 1, "{scheme:?}");
    if scheme == SchemeKind::Gaen {
        assert_eq!(summary.new_windows, 1);
    }
    let Some(PhoneEvent::ExposureFound(daily)) = pair.b.poll_event() else {
        panic!("{scheme:?}: no exposure event")
    };
    assert_eq!(daily.day, start().day());
    // Ingesting the same batch again finds nothing new.
    let again = pair.b.handle_batch(now, batch.bytes()).unwrap();
    assert_eq!(again.new_windows, 0);
    assert_eq!(pair.b.poll_event(), None);
    (pair, daily)
}

#[test]
fn gaen_phones_meet_report_and_match_without_a_node() {
    let (pair, daily) = meet_report_match(SchemeKind::Gaen, Air::Full);
    // RSSI -60 with the sender's -8 dBm tx power: attenuation ~52 → immediate bucket.
    assert!(daily.seconds_per_bucket[0] >= 14 * 60, "{daily:?}");
    assert!(daily.high_risk, "{daily:?}");
    assert_eq!(pair.b.exposures(pair.now).unwrap(), vec![daily]);
}

#[test]
fn pet_phones_meet_report_and_match_without_a_node() {
    let (_, daily) = meet_report_match(SchemeKind::Pet, Air::Full);
    // Two key pairs (the meeting spans an interval boundary), minus the first credit.
    assert!(daily.seconds_per_bucket[0] >= 14 * 60, "{daily:?}");
    assert!(daily.windows >= 2, "{daily:?}");
    assert!(daily.high_risk);
}

#[test]
fn pet_slices_from_a_lossy_carousel_are_reassembled() {
    let (_, daily) = meet_report_match(SchemeKind::Pet, Air::LossySlices(0.3));
    assert!(daily.seconds_per_bucket[0] >= 12 * 60, "{daily:?}");
}

#[test]
fn pet_publication_matches_only_the_peer() {
    let mut node = FakeNode::new(8);
    let mut pair = PhonePair::new(node.config(SchemeKind::Pet), start(), Air::Full);
    pair.together(15 * 60, 10);
    pair.apart(3600);
    let now = pair.now;
    let published = node.report(now, &mut pair.a, None);
    // a's own report matches nothing on a itself: it holds peer-role tokens only.
    let batch = node.batch(now, &[published]);
    assert_eq!(
        pair.a.handle_batch(now, batch.bytes()).unwrap().new_windows,
        0
    );
    // A third phone that never met a finds nothing either.
    let mut stranger =
        Phone::new(node.config(SchemeKind::Pet), MemoryStore::new(), [9; 32]).unwrap();
    assert_eq!(
        stranger
            .handle_batch(now, batch.bytes())
            .unwrap()
            .new_windows,
        0
    );
}

/// A GAEN key and a phone that heard its RPI (interval `heard`) at `when`.
fn gaen_sighting_of(
    tek: &TemporaryExposureKey,
    heard: IntervalNumber,
    when: UnixTime,
) -> Phone<MemoryStore> {
    let node = FakeNode::new(9);
    // The phone scans every 30 s, and says so.
    let mut config = node.config(SchemeKind::Gaen);
    config.encounter.scan_period_seconds = 30;
    let mut phone = Phone::new(config, MemoryStore::new(), [10; 32]).unwrap();
    let (rpi, aem) = tek.advertisement(heard, &Metadata::v1_0(-8));
    let mut payload = rpi.0.to_vec();
    payload.extend_from_slice(&aem.0);
    for step in 0..20u64 {
        let signal = Signal::Attenuation(60);
        phone
            .handle_sighting(
                when.plus_seconds(step * 30),
                &Sighting {
                    payload: &payload,
                    signal,
                },
            )
            .unwrap();
    }
    phone.close_all_encounters().unwrap();
    phone
}

#[test]
fn gaen_matches_only_within_the_key_window_plus_minus_two_hours() {
    let mut node = FakeNode::new(9);
    let tek = TemporaryExposureKey::generate(&mut ChaCha20Rng::seed_from_u64(5));
    let day = start().day();
    let key = DiagnosisKey {
        key: tek.clone(),
        rolling_start: day.first_interval(),
        rolling_period: 144,
        report_type: ReportType::ConfirmedTest,
        days_since_onset: Some(0),
    };
    let end = key.rolling_end();
    let now = day.plus(2).start();
    let batch = node.batch(now, &[ReportContents::Gaen(vec![key])]);
    // The last RPI of the day, heard 1 h 50 min after the window: a match (a clock off by
    // up to 2 h, as GAEN allows).
    let mut late = gaen_sighting_of(&tek, end.minus(1), end.plus(11).start());
    assert_eq!(
        late.handle_batch(now, batch.bytes()).unwrap().new_windows,
        1
    );
    // The same RPI replayed 3 h after the window: no match.
    let mut replayed = gaen_sighting_of(&tek, end.minus(1), end.plus(18).start());
    assert_eq!(
        replayed
            .handle_batch(now, batch.bytes())
            .unwrap()
            .new_windows,
        0
    );
    // The first RPI heard 1 h 50 min early: a match; 2 h 10 min early: none.
    let start_interval = key_start(&day);
    let mut early = gaen_sighting_of(&tek, start_interval, start_interval.minus(11).start());
    assert_eq!(
        early.handle_batch(now, batch.bytes()).unwrap().new_windows,
        1
    );
    let mut too_early = gaen_sighting_of(&tek, start_interval, start_interval.minus(13).start());
    assert_eq!(
        too_early
            .handle_batch(now, batch.bytes())
            .unwrap()
            .new_windows,
        0
    );
}

fn key_start(day: &DayNumber) -> IntervalNumber {
    day.first_interval()
}

#[test]
fn retention_purges_keys_secrets_encounters_and_exposures() {
    for scheme in [SchemeKind::Gaen, SchemeKind::Pet] {
        let (mut pair, _) = meet_report_match(scheme, Air::Full);
        let met = start().day();
        let count = |p: &Phone<MemoryStore>| {
            let mut n = 0;
            p.store().for_each_encounter(&mut |_| n += 1).unwrap();
            n
        };
        assert!(count(&pair.b) > 0);
        assert!(!pair.b.exposures(pair.now).unwrap().is_empty());
        match scheme {
            // GAEN keys stay for the retention period: they are what a report publishes.
            SchemeKind::Gaen => assert!(pair.a.store().own_key(met).unwrap().is_some()),
            // pet keeps no daily secret, and the ratchet of the day goes with the day:
            // encounters keep tokens, never keys.
            SchemeKind::Pet => {
                assert!(pair.a.store().own_key(met).unwrap().is_none());
                assert!(pair.now.day() > met);
                let kept = stored_ratchet(pair.a.store());
                assert!(kept.is_none_or(|r| r.interval() == pair.now.interval()));
            }
        }
        // 14 days after the meeting everything is still there; on day 15 it is gone, once
        // the node's time confirms the jump (the phones slept in between).
        let day14 = met.plus(14).start().plus_seconds(60);
        pair.b.handle_timeout(day14).unwrap();
        assert!(pair.b.confirm_time(day14, day14).unwrap());
        pair.b.handle_timeout(day14).unwrap();
        assert!(count(&pair.b) > 0, "{scheme:?} day 14");
        let day15 = met.plus(15).start().plus_seconds(60);
        for phone in [&mut pair.a, &mut pair.b] {
            phone.handle_timeout(day15).unwrap();
            assert!(phone.confirm_time(day15, day15).unwrap());
            phone.handle_timeout(day15).unwrap();
        }
        assert_eq!(count(&pair.b), 0, "{scheme:?}");
        assert_eq!(count(&pair.a), 0, "{scheme:?}");
        assert!(pair.b.exposures(day15).unwrap().is_empty());
        assert!(pair.a.store().own_key(met).unwrap().is_none());
        let days = pair.a.store().own_key_days().unwrap();
        assert!(days.iter().all(|d| *d > met), "{scheme:?} {days:?}");
    }
}

#[test]
fn batches_from_untrusted_nodes_or_tampered_are_refused_and_keep_nothing() {
    let (mut pair, _) = meet_report_match(SchemeKind::Pet, Air::Full);
    let mut other = FakeNode::new(1234);
    let now = pair.now;
    let forged = other.batch(now, &[]);
    assert!(matches!(
        pair.b.handle_batch(now, forged.bytes()),
        Err(ClientError::Batch(
            ephemera_proto::error::BatchError::UntrustedNode
        ))
    ));
    let mut node = FakeNode::new(7);
    let mut bytes = node.batch(now, &[]).into_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(pair.b.handle_batch(now, &bytes).is_err());
}

#[test]
fn sync_walks_the_index_and_persists_the_cursor() {
    let mut node = FakeNode::new(7);
    let (mut pair, _) = meet_report_match(SchemeKind::Pet, Air::Full);
    let now = pair.now;
    let phone = &mut pair.b;
    let b1 = node.batch(now, &[]);
    let b2 = node.batch(now, &[]);
    phone.start_sync(now).unwrap();
    let index_request = next_past_key(phone);
    assert_eq!(index_request.purpose, Purpose::FetchIndex);
    assert_eq!(index_request.path, "/v1/batches?after=0");
    let entry =
        |b: &ephemera_proto::batch::SignedBatch, seq| ephemera_proto::batch::BatchIndexEntry {
            id: b.id(),
            sequence: seq,
            created_at: now,
            size: b.bytes().len() as u64,
            keys: 0,
            tokens: 200,
        };
    let index = BatchIndex {
        batches: vec![entry(&b1, 1), entry(&b2, 2)],
        next_cursor: 2,
        key_rollovers: Vec::new(),
        head: None,
        token_filters: false,
        sunset: None,
    };
    phone
        .handle_response(
            now,
            index_request.id,
            Response {
                status: 200,
                body: serde_json::to_vec(&index).unwrap(),
            },
        )
        .unwrap();
    for (batch, seq) in [(&b1, 1), (&b2, 2)] {
        let request = next_past_key(phone);
        assert_eq!(request.purpose, Purpose::FetchBatch(batch.id()));
        assert_eq!(request.path, format!("/v1/batches/{}", batch.id().to_hex()));
        phone
            .handle_response(
                now,
                request.id,
                Response {
                    status: 200,
                    body: batch.bytes().to_vec(),
                },
            )
            .unwrap();
        assert_eq!(phone.sync_cursor(), seq);
    }
    let next_page = next_past_key(phone);
    assert_eq!(next_page.path, "/v1/batches?after=2");
    let empty = BatchIndex {
        batches: vec![],
        next_cursor: 2,
        key_rollovers: Vec::new(),
        head: None,
        token_filters: false,
        sunset: None,
    };
    phone
        .handle_response(
            now,
            next_page.id,
            Response {
                status: 200,
                body: serde_json::to_vec(&empty).unwrap(),
            },
        )
        .unwrap();
    assert_eq!(
        phone.poll_event(),
        Some(PhoneEvent::SyncCompleted {
            cursor: 2,
            batches: 2
        })
    );
    // A batch whose bytes are not the announced id is refused and the cursor stays.
    phone.start_sync(now).unwrap();
    let r = next_past_key(phone);
    let b3 = node.batch(now, &[]);
    let index = BatchIndex {
        batches: vec![entry(&b2, 3)],
        next_cursor: 3,
        key_rollovers: Vec::new(),
        head: None,
        token_filters: false,
        sunset: None,
    };
    phone
        .handle_response(
            now,
            r.id,
            Response {
                status: 200,
                body: serde_json::to_vec(&index).unwrap(),
            },
        )
        .unwrap();
    let r = next_past_key(phone);
    assert_eq!(
        phone.handle_response(
            now,
            r.id,
            Response {
                status: 200,
                body: b3.bytes().to_vec()
            }
        ),
        Err(ClientError::BatchIdMismatch)
    );
    assert_eq!(phone.sync_cursor(), 2);
}

/// Issue 31, item 5: the index is unsigned (any server or cache on the way writes it). A
/// forged sequence of `u64::MAX` for a genuine batch once moved the cursor there, and every
/// later sync asked for batches after it: the phone never heard of a report again.
#[test]
fn a_forged_index_sequence_never_moves_the_cursor() {
    let mut node = FakeNode::new(7);
    let (mut pair, _) = meet_report_match(SchemeKind::Pet, Air::Full);
    let now = pair.now;
    let phone = &mut pair.b;
    let b1 = node.batch(now, &[]);
    let entry = |sequence| ephemera_proto::batch::BatchIndexEntry {
        id: b1.id(),
        sequence,
        created_at: now,
        size: b1.bytes().len() as u64,
        keys: 0,
        tokens: 200,
    };
    let sync_with = |phone: &mut Phone<_>, sequence| {
        phone.start_sync(now).unwrap();
        let r = next_past_key(phone);
        let index = BatchIndex {
            batches: vec![entry(sequence)],
            next_cursor: sequence,
            key_rollovers: Vec::new(),
            head: None,
            token_filters: false,
            sunset: None,
        };
        let body = serde_json::to_vec(&index).unwrap();
        phone
            .handle_response(now, r.id, Response { status: 200, body })
            .unwrap();
        let r = next_past_key(phone);
        assert_eq!(r.purpose, Purpose::FetchBatch(b1.id()));
        let body = b1.bytes().to_vec();
        phone.handle_response(now, r.id, Response { status: 200, body })
    };
    assert_eq!(
        sync_with(phone, u64::MAX),
        Err(ClientError::BatchSequenceMismatch)
    );
    assert_eq!(phone.sync_cursor(), 0);
    assert_eq!(phone.status().last_error, Some("batch-sequence-mismatch"));
    // The honest index of the next round is followed.
    assert_eq!(sync_with(phone, 1), Ok(()));
    assert_eq!(phone.sync_cursor(), 1);
}

/// What a decoy flow sent, as an observer would see it.
#[derive(Debug, Default)]
struct DecoyTrace {
    verifies: Vec<usize>,
    uploads: Vec<usize>,
    /// Seconds from the last completed sync to each verify.
    since_sync: Vec<u64>,
    /// Verifies in a row without an upload between them (must stay 0).
    verify_without_upload: usize,
}

#[test]
fn decoy_flows_follow_a_poisson_schedule_and_look_like_real_reports() {
    let mut node = FakeNode::new(7);
    let mut config = node.config(SchemeKind::Gaen).with_decoy_rate(24.0);
    config.decoy.retry_fraction = 0.25;
    let mut phone = Phone::new(config, MemoryStore::new(), [12; 32]).unwrap();
    let mut now = start();
    phone.advertisement(now).unwrap();
    let mut trace = DecoyTrace::default();
    let mut last_sync = None;
    let mut awaiting_upload = false;
    let end = now.plus_seconds(3 * 86_400);
    while now < end {
        now = phone.poll_timeout().unwrap().max(now.plus_seconds(1));
        phone.handle_timeout(now).unwrap();
        phone.advertisement(now).unwrap();
        while let Some(r) = phone.poll_request() {
            let answer = match r.purpose {
                Purpose::FetchSealingKey => node.sealing_key_answer(),
                Purpose::FetchIndex => {
                    last_sync = Some(now);
                    Response {
                        status: 200,
                        body: br#"{"batches":[],"next_cursor":0}"#.to_vec(),
                    }
                }
                Purpose::DecoyVerify => {
                    trace.verify_without_upload += usize::from(awaiting_upload);
                    awaiting_upload = true;
                    trace.verifies.push(r.body.len());
                    trace.since_sync.push(now.0 - last_sync.unwrap().0);
                    let fake = ephemera_proto::api::VerifyResponse::decoy(180, &mut node.rng);
                    node.sealed_answer(&r, 200, &fake.to_padded_json())
                }
                Purpose::DecoyUpload => {
                    awaiting_upload = false;
                    trace.uploads.push(r.body.len());
                    node.upload_ok(&r)
                }
                Purpose::FetchVenueReleaseIndex => node.sync_answer(r.purpose).unwrap(),
                other => panic!("unexpected {other:?}"),
            };
            phone.handle_response(now, r.id, answer).unwrap();
        }
    }
    // 24 flows a day for 3 days: about 72, a quarter of them with a second attempt.
    let flows = trace.verifies.len();
    assert!((60..130).contains(&flows), "{flows}");
    assert_eq!(
        trace.verify_without_upload, 0,
        "every verify has its upload"
    );
    assert_eq!(trace.verifies.len(), trace.uploads.len());
    // Every verify follows a sync by a person's typing time (or a retry's gap after it).
    assert!(
        trace
            .since_sync
            .iter()
            .all(|s| (20..=2 * 180 + 300).contains(s)),
        "{:?}",
        trace.since_sync
    );
    // A real report from this phone is sealed to the same sizes as its decoys.
    let sealed_verify =
        ephemera_proto::api::VERIFY_REQUEST_SIZE + ephemera_proto::sealed::REQUEST_OVERHEAD;
    assert!(trace.verifies.iter().all(|l| *l == sealed_verify));
    let code = node.code();
    phone.start_report(now, &code, None, None).unwrap();
    let real_verify = phone.poll_request().unwrap();
    assert_eq!(real_verify.purpose, Purpose::Verify);
    assert_eq!(real_verify.body.len(), sealed_verify);
    assert_eq!(
        real_verify.content_type,
        Some(ephemera_proto::sealed::CONTENT_TYPE)
    );
    let answer = node.answer_verify(now, &real_verify);
    phone.handle_response(now, real_verify.id, answer).unwrap();
    let real_upload = super::util::next_upload(&mut phone, now);
    assert_eq!(real_upload.purpose, Purpose::Upload);
    assert!(
        trace.uploads.iter().all(|l| *l == real_upload.body.len()),
        "{} vs {:?}",
        real_upload.body.len(),
        trace.uploads
    );
}

#[test]
fn a_decoy_step_without_a_definitive_answer_is_retried_like_a_real_one() {
    let node = FakeNode::new(8);
    let config = node.config(SchemeKind::Gaen).with_decoy_rate(48.0);
    let mut phone = Phone::new(config, MemoryStore::new(), [14; 32]).unwrap();
    let mut now = start();
    phone.advertisement(now).unwrap();
    node.sync_key(now, &mut phone);
    // Run until the first decoy verify.
    let first = loop {
        now = phone.poll_timeout().unwrap().max(now.plus_seconds(1));
        phone.handle_timeout(now).unwrap();
        let mut found = None;
        while let Some(r) = phone.poll_request() {
            match r.purpose {
                Purpose::DecoyVerify => found = Some(r),
                _ => phone.handle_failure(now, r.id).unwrap(),
            }
        }
        if let Some(r) = found {
            break r;
        }
    };
    // A 429 (outside the seal, from a proxy or the node's limits): tried again after the
    // report's backoff, sealed afresh, and not before.
    phone
        .handle_response(
            now,
            first.id,
            Response {
                status: 429,
                body: Vec::new(),
            },
        )
        .unwrap();
    let due = phone.poll_timeout().unwrap();
    assert!(due.0 >= now.0 + 30, "{} after {}", due.0, now.0);
    phone.handle_timeout(due).unwrap();
    let again = std::iter::from_fn(|| phone.poll_request())
        .find(|r| r.purpose == Purpose::DecoyVerify)
        .expect("the decoy verify again");
    assert_ne!(again.body, first.body);
    assert_eq!(again.body.len(), first.body.len());
}

#[test]
fn a_decoy_flow_cut_by_a_kill_resumes_at_its_upload() {
    let mut node = FakeNode::new(8);
    let config = node.config(SchemeKind::Gaen).with_decoy_rate(48.0);
    let mut phone = Phone::new(config.clone(), MemoryStore::new(), [15; 32]).unwrap();
    let mut now = start();
    phone.advertisement(now).unwrap();
    node.sync_key(now, &mut phone);
    let verify = loop {
        now = phone.poll_timeout().unwrap().max(now.plus_seconds(1));
        phone.handle_timeout(now).unwrap();
        let requests: Vec<crate::Request> = std::iter::from_fn(|| phone.poll_request()).collect();
        if let Some(r) = requests
            .into_iter()
            .find(|r| r.purpose == Purpose::DecoyVerify)
        {
            break r;
        }
    };
    let fake = ephemera_proto::api::VerifyResponse::decoy(180, &mut node.rng);
    let answer = node.sealed_answer(&verify, 200, &fake.to_padded_json());
    phone.handle_response(now, verify.id, answer).unwrap();
    let answered = now;
    // The app is killed before the upload's delay is over, and opened again.
    let store = phone.into_store();
    let mut phone = Phone::new(config, store, [16; 32]).unwrap();
    phone.advertisement(now).unwrap();
    node.sync_key(now, &mut phone);
    let upload = loop {
        now = phone.poll_timeout().unwrap().max(now.plus_seconds(1));
        phone.handle_timeout(now).unwrap();
        let requests: Vec<crate::Request> = std::iter::from_fn(|| phone.poll_request()).collect();
        assert!(
            requests.iter().all(|r| r.purpose != Purpose::DecoyVerify),
            "a second verify before the first one's upload"
        );
        if let Some(r) = requests
            .into_iter()
            .find(|r| r.purpose == Purpose::DecoyUpload)
        {
            break r;
        }
    };
    // Sent after the drawn 1–3 s, in the size bucket of this phone's real report.
    assert!(
        (1..=3).contains(&(now.0 - answered.0)),
        "{now:?} {answered:?}"
    );
    assert_eq!(node.open(&upload).len(), 4096);
}

/// Drives `phone` until it sends a decoy verify; other requests fail.
fn until_decoy_verify(phone: &mut Phone<MemoryStore>, now: &mut UnixTime) -> crate::Request {
    loop {
        *now = phone.poll_timeout().unwrap().max(now.plus_seconds(1));
        phone.handle_timeout(*now).unwrap();
        let mut found = None;
        while let Some(r) = phone.poll_request() {
            match r.purpose {
                Purpose::DecoyVerify => found = Some(r),
                _ => phone.handle_failure(*now, r.id).unwrap(),
            }
        }
        if let Some(r) = found {
            return r;
        }
    }
}

#[test]
fn a_real_report_never_interleaves_with_a_decoy_flow_of_its_phone() {
    let mut node = FakeNode::new(9);
    let mut config = node.config(SchemeKind::Gaen).with_decoy_rate(48.0);
    // Every decoy flow sends a second verify and upload.
    config.decoy.retry_fraction = 1.0;
    let mut phone = Phone::new(config, MemoryStore::new(), [17; 32]).unwrap();
    let mut now = start();
    phone.advertisement(now).unwrap();
    node.sync_key(now, &mut phone);
    let decoy_verify = until_decoy_verify(&mut phone, &mut now);
    // The person enters a code while the decoy verify is in flight: the real verify waits.
    phone.start_report(now, &node.code(), None, None).unwrap();
    assert_eq!(phone.poll_request().map(|r| r.purpose), None);
    let fake = ephemera_proto::api::VerifyResponse::decoy(180, &mut node.rng);
    let answer = node.sealed_answer(&decoy_verify, 200, &fake.to_padded_json());
    phone.handle_response(now, decoy_verify.id, answer).unwrap();
    assert_eq!(phone.poll_request().map(|r| r.purpose), None);
    // ...until the decoy's upload is answered; the phone's timer is the upload's, not a
    // report due in the past (an app would spin).
    let due = phone.poll_timeout().unwrap();
    assert!((now.0 + 1..=now.0 + 3).contains(&due.0), "{due:?} {now:?}");
    now = due;
    phone.handle_timeout(now).unwrap();
    let decoy_upload = phone.poll_request().unwrap();
    assert_eq!(decoy_upload.purpose, Purpose::DecoyUpload);
    assert_eq!(phone.poll_request().map(|r| r.purpose), None);
    let answer = node.upload_ok(&decoy_upload);
    phone.handle_response(now, decoy_upload.id, answer).unwrap();
    // The decoy flow's second verify had not gone: the real verify takes its place, and
    // no decoy request comes until the report is uploaded.
    let real_verify = phone.poll_request().unwrap();
    assert_eq!(real_verify.purpose, Purpose::Verify);
    let answer = node.answer_verify(now, &real_verify);
    phone.handle_response(now, real_verify.id, answer).unwrap();
    let real_upload = super::util::next_upload(&mut phone, now);
    assert_eq!(real_upload.purpose, Purpose::Upload);
    let answer = node.upload_ok(&real_upload);
    phone.handle_response(now, real_upload.id, answer).unwrap();
    assert!(!phone.report_in_progress());
    // Decoy flows start again on their Poisson timer afterwards.
    let later = until_decoy_verify(&mut phone, &mut now);
    assert_eq!(later.purpose, Purpose::DecoyVerify);
}

#[test]
fn refused_codes_are_reported_as_events() {
    let mut node = FakeNode::new(7);
    let (mut pair, _) = meet_report_match(SchemeKind::Pet, Air::Full);
    let now = pair.now;
    let code = node.code();
    node.sync_key(now, &mut pair.b);
    pair.b.start_report(now, &code, None, None).unwrap();
    assert!(matches!(
        pair.b.start_report(now, &code, None, None),
        Err(ClientError::Report(crate::ReportError::InProgress))
    ));
    let r = pair.b.poll_request().unwrap();
    let answer = node.sealed_answer(&r, 409, br#"{"error":"code-used","message":"used"}"#);
    pair.b.handle_response(now, r.id, answer).unwrap();
    assert_eq!(
        pair.b.poll_event(),
        Some(PhoneEvent::ReportFailed(crate::ReportError::Refused {
            status: 409,
            code: "code-used".into()
        }))
    );
    assert!(!pair.b.report_in_progress());
    // The refused verify is followed by an upload, as every verify is (decoys' too).
    let follow = super::util::next_upload(&mut pair.b, now);
    assert_eq!(follow.purpose, Purpose::DecoyUpload);
    assert_eq!(follow.path, "/v1/uploads");
    // A phone that heard no one has nothing to report (pet).
    let mut lonely =
        Phone::new(node.config(SchemeKind::Pet), MemoryStore::new(), [13; 32]).unwrap();
    assert!(matches!(
        lonely.start_report(now, &code, None, None),
        Err(ClientError::Report(crate::ReportError::NothingToReport))
    ));
    let _ = DailyKey::generate(SchemeKind::Pet, &mut ChaCha20Rng::seed_from_u64(1));
}

#[test]
fn gaen_export_files_from_a_key_server_match_when_signed_by_a_configured_key() {
    use ephemera_proto::gaen::{ExportFile, ExportSigner, SignatureInfo, encode_export_zip};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

    let rng = SystemRandom::new();
    let signer = |rng: &SystemRandom| {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng).unwrap();
        ExportSigner::from_pkcs8(pkcs8.as_ref(), SignatureInfo::new("v1", "310"), rng).unwrap()
    };
    let server = signer(&rng);
    let stranger = signer(&rng);
    let tek = TemporaryExposureKey::generate(&mut ChaCha20Rng::seed_from_u64(77));
    let day = start().day();
    let key = DiagnosisKey {
        key: tek.clone(),
        rolling_start: day.first_interval(),
        rolling_period: 144,
        report_type: ReportType::ConfirmedTest,
        days_since_onset: Some(1),
    };
    let mut file = ExportFile::new(
        day.plus(1).start(),
        day.plus(1).start().plus_seconds(3600),
        "DE",
    );
    file.keys.push(key);
    let zip = encode_export_zip(&file, &server, &rng).unwrap();
    let forged = encode_export_zip(&file, &stranger, &rng).unwrap();

    let heard = start().interval();
    let mut phone = gaen_sighting_of(&tek, heard, heard.start());
    // Not configured: refused.
    assert_eq!(
        phone.handle_gaen_export(start(), &zip),
        Err(ClientError::NoExportKey)
    );
    let mut config = FakeNode::new(9)
        .config(SchemeKind::Gaen)
        .with_gaen_export_key(server.public_key().to_vec());
    config.encounter.scan_period_seconds = 30;
    let store = phone.into_store();
    let mut phone = Phone::new(config, store, [14; 32]).unwrap();
    let now = day.plus(2).start();
    assert!(matches!(
        phone.handle_gaen_export(now, &forged),
        Err(ClientError::Export(_))
    ));
    let summary = phone.handle_gaen_export(now, &zip).unwrap();
    assert_eq!((summary.keys, summary.new_windows), (1, 1));
    let Some(PhoneEvent::ExposureFound(daily)) = phone.poll_event() else {
        panic!("no exposure")
    };
    // Attenuation 60 → near bucket; 20 scans 30 s apart, each credited 30 s.
    assert_eq!(daily.seconds_per_bucket, [0, 600, 0, 0]);
}

#[test]
fn fetched_batches_stream_from_a_reader() {
    let mut node = FakeNode::new(7);
    let (mut pair, _) = meet_report_match(SchemeKind::Pet, Air::Full);
    let now = pair.now;
    let phone = &mut pair.b;
    let batch = node.batch(now, &[]);
    phone.start_sync(now).unwrap();
    let r = next_past_key(phone);
    let index = BatchIndex {
        batches: vec![ephemera_proto::batch::BatchIndexEntry {
            id: batch.id(),
            sequence: 1,
            created_at: now,
            size: batch.bytes().len() as u64,
            keys: 0,
            tokens: 200,
        }],
        next_cursor: 1,
        key_rollovers: Vec::new(),
        head: None,
        token_filters: false,
        sunset: None,
    };
    let json = serde_json::to_vec(&index).unwrap();
    phone
        .handle_response_reader(now, r.id, 200, &mut json.as_slice())
        .unwrap();
    let r = next_past_key(phone);
    // A reader that hands out 7 bytes at a time.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(7).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    phone
        .handle_response_reader(now, r.id, 200, &mut Trickle(batch.bytes()))
        .unwrap();
    assert_eq!(phone.sync_cursor(), 1);
}

/// The RPI `phone` broadcasts at `now`.
fn rpi_now(phone: &mut Phone<MemoryStore>, now: UnixTime) -> Vec<u8> {
    phone.advertisement(now).unwrap().full[..16].to_vec()
}

/// The RPI of own key `key` in `interval`.
fn rpi_of(key: &DailyKey, interval: IntervalNumber) -> Vec<u8> {
    key.broadcast(interval, &Metadata::v1_0(-8)).full_payload()[..16].to_vec()
}

#[test]
fn gaen_same_day_release_reports_todays_key_cut_and_rolls_to_a_fresh_one() {
    let mut node = FakeNode::new(31);
    let mut pair = PhonePair::new(node.config(SchemeKind::Gaen), start(), Air::Full);
    let today = start().day();
    pair.together(15 * 60, 10);
    pair.apart(45 * 60);
    let now = pair.now;
    assert_eq!(now.day(), today);
    let old = pair.a.store().own_key(today).unwrap().unwrap().daily_key();
    assert_eq!(rpi_now(&mut pair.a, now), rpi_of(&old, now.interval()));

    let ReportContents::Gaen(keys) = node.report(now, &mut pair.a, None) else {
        panic!("a gaen report")
    };
    // Today's key is in the report, cut to the intervals elapsed (the current included).
    let DailyKey::Gaen(old_tek) = &old else {
        panic!("a gaen key")
    };
    let todays: Vec<&DiagnosisKey> = keys
        .iter()
        .filter(|k| k.rolling_start.day() == today)
        .collect();
    assert_eq!(todays.len(), 1, "{keys:?}");
    let cut = todays[0];
    assert_eq!(cut.key, *old_tek);
    assert_eq!(cut.rolling_start, today.first_interval());
    assert_eq!(
        u32::from(cut.rolling_period),
        now.interval().0 - today.first_interval().0 + 1
    );
    assert!(cut.rolling_period < 144);
    // The embargo runs from the cut end, not from the end of the day.
    let publishable = ephemera_proto::upload::key_publishable_at(cut);
    assert_eq!(publishable, now.interval().plus(1 + 12).start());
    assert!(publishable < today.plus(1).first_interval().start());

    // From now on the phone broadcasts a fresh key's identifiers, which the report does not
    // cover, in this interval and the following ones.
    let own_key = |phone: &Phone<MemoryStore>| phone.store().own_key(today).unwrap().unwrap();
    let fresh = own_key(&pair.a).daily_key();
    assert!(own_key(&pair.a) != crate::store::OwnKey::from_daily_key(&old));
    for later in [now, now.plus_seconds(600), now.plus_seconds(3 * 600)] {
        let rpi = rpi_now(&mut pair.a, later);
        assert_eq!(rpi, rpi_of(&fresh, later.interval()));
        assert_ne!(rpi, rpi_of(&old, later.interval()));
    }

    // A second report the same day reports the released key again and the fresh one, cut
    // where it started, and rolls again.
    let second_at = now.plus_seconds(4 * 600);
    let ReportContents::Gaen(again) = node.report(second_at, &mut pair.a, None) else {
        panic!("a gaen report")
    };
    let DailyKey::Gaen(fresh_tek) = &fresh else {
        panic!("a gaen key")
    };
    assert!(again.contains(cut), "{again:?}");
    let second = again
        .iter()
        .find(|k| k.key == *fresh_tek)
        .expect("the fresh key reported");
    // The fresh key was broadcast from the interval of the first report on.
    assert_eq!(second.rolling_start, now.interval());
    assert_eq!(second.rolling_end(), second_at.interval().plus(1));
    assert!(own_key(&pair.a) != crate::store::OwnKey::from_daily_key(&fresh));
}

#[test]
fn gaen_contact_on_the_upload_day_before_the_upload_is_matched_once_published() {
    let mut node = FakeNode::new(32);
    let mut pair = PhonePair::new(node.config(SchemeKind::Gaen), start(), Air::Full);
    let today = start().day();
    pair.together(15 * 60, 10);
    pair.apart(30 * 60);
    let now = pair.now;
    let published = node.report(now, &mut pair.a, None);
    let ReportContents::Gaen(keys) = &published else {
        panic!("a gaen report")
    };
    let cut = keys
        .iter()
        .find(|k| k.rolling_start.day() == today)
        .expect("today's key reported");
    // The node publishes it once its cut period has ended plus 2 hours: the same day.
    let at = ephemera_proto::upload::key_publishable_at(cut);
    assert_eq!(at.day(), today);
    pair.apart(at.0 - pair.now.0);
    let batch = node.batch(at, std::slice::from_ref(&published));
    let summary = pair.b.handle_batch(at, batch.bytes()).unwrap();
    assert_eq!(summary.new_windows, 1);
    let Some(PhoneEvent::ExposureFound(daily)) = pair.b.poll_event() else {
        panic!("no exposure event")
    };
    assert_eq!(daily.day, today);
    assert!(daily.seconds_per_bucket[0] >= 14 * 60, "{daily:?}");
}

/// A certificate the phone cannot upload (here: by an authority it does not pin) ends the
/// report with `bad-certificate` and sends no upload; before, only the HMAC was checked and
/// the phone uploaded it, spending its code on a certificate every node refuses.
#[test]
fn a_certificate_of_another_authority_is_never_uploaded() {
    use ephemera_proto::api::{VerifyRequest, VerifyResponse};
    use ephemera_proto::auth::CertificateRequest;

    let mut node = FakeNode::new(9);
    let stranger = FakeNode::new(10);
    let config = node
        .config(SchemeKind::Pet)
        .with_trusted_authority(node.authority.public_key());
    let mut pair = PhonePair::new(config, start(), Air::Full);
    pair.together(15 * 60, 10);
    pair.apart(3600);
    let now = pair.now;
    let code = node.code();
    node.sync_key(now, &mut pair.a);
    pair.a.start_report(now, &code, None, None).unwrap();
    let verify = pair.a.poll_request().expect("verify request");
    assert_eq!(verify.purpose, Purpose::Verify);
    let asked: VerifyRequest = serde_json::from_slice(&node.open(&verify)).unwrap();
    let foreign = stranger.authority.issue(
        &CertificateRequest {
            report_hmac: asked.parsed_hmac().unwrap(),
            test_type: ReportType::ConfirmedTest,
            symptom_onset: None,
        },
        now,
        3600,
        &mut node.rng,
    );
    let answer = node.sealed_answer(
        &verify,
        200,
        &VerifyResponse::new(&foreign).to_padded_json(),
    );
    pair.a.handle_response(now, verify.id, answer).unwrap();
    assert_eq!(
        pair.a.poll_event(),
        Some(PhoneEvent::ReportFailed(crate::ReportError::BadCertificate))
    );
    assert!(!pair.a.report_in_progress());
    // Never uploaded; a decoy upload follows, as after any verify.
    let mut decoy_uploads = 0;
    for later in 0..=5 {
        pair.a.handle_timeout(now.plus_seconds(later)).unwrap();
        while let Some(r) = pair.a.poll_request() {
            assert_ne!(r.purpose, Purpose::Upload);
            if r.purpose == Purpose::DecoyUpload {
                decoy_uploads += 1;
                let answer = node.upload_ok(&r);
                pair.a
                    .handle_response(now.plus_seconds(later), r.id, answer)
                    .unwrap();
            }
        }
    }
    assert_eq!(decoy_uploads, 1);
    // The pinned authority's certificate is uploaded.
    assert!(
        !node
            .report(now.plus_seconds(10), &mut pair.a, None)
            .is_empty()
    );
}

/// `report.upload_margin_db` (issue 18): a `pet` phone uploads the tokens of encounters
/// whose chain of windows could reach the peer's window minimum, with the margin for two
/// phones hearing one contact apart; the others only when told to upload everything.
#[test]
fn pet_uploads_only_encounters_that_could_count_for_the_peer() {
    // Attenuation = assumed -8 dBm − RSSI: 52 dB (immediate), 78 dB (past the last
    // weighted bucket, 73 dB; 68 dB, medium, with a 10 dB margin: 15 minutes at weight 0.4
    // are 360 weighted seconds), 92 dB (past both).
    let tokens_uploaded = |rssi: i8, seconds: u64, margin: Option<u8>| {
        let mut node = FakeNode::new(7);
        let mut config = node.config(SchemeKind::Pet);
        config.report.upload_margin_db = margin;
        let mut pair = PhonePair::new(config, start(), Air::Full);
        pair.rssi = rssi;
        pair.together(seconds, 10);
        pair.apart(24 * 3600);
        let now = pair.now;
        match node.try_report(now, &mut pair.a, None) {
            Ok(ReportContents::Pet(tokens)) => tokens.len(),
            Err(ClientError::Report(crate::error::ReportError::NothingToReport)) => 0,
            other => panic!("{other:?}"),
        }
    };
    let long = 15 * 60;
    let close = tokens_uploaded(-60, long, Some(10));
    assert!(close >= 2, "{close}");
    assert_eq!(
        tokens_uploaded(-86, long, Some(10)),
        close,
        "within the margin"
    );
    assert_eq!(tokens_uploaded(-86, long, Some(0)), 0, "without a margin");
    assert_eq!(tokens_uploaded(-100, long, Some(10)), 0, "weighs nothing");
    assert_eq!(tokens_uploaded(-100, long, None), close, "every encounter");
    // Two and a half minutes at 76 dB (66 dB, medium, with the margin): at most a few
    // hundred credited seconds at weight 0.4, under the 300 weighted seconds a chain needs.
    assert_eq!(tokens_uploaded(-84, 150, Some(10)), 0, "too short to count");
    assert!(
        tokens_uploaded(-84, 150, None) >= 1,
        "uploaded when told to"
    );
}
