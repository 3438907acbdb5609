//! Nothing acknowledged or heard is lost: reports kept and retried across restarts, open
//! encounters checkpointed, events kept until acknowledged.

use ephemera_proto::{SchemeKind, UnixTime};

use super::util::{self, FakeNode, T0};
use crate::store::{EncounterRecord, MemoryStore, Store};
use crate::{ClientConfig, Phone, PhoneEvent, Purpose, ReportError, Request, Response, Signal};

fn start() -> UnixTime {
    T0.day().plus(1).first_interval().plus(40).start()
}

/// A `pet` phone on `store` that heard a peer for 15 minutes (so it has something to
/// report), and the time after.
fn phone_with_encounter<S: Store>(config: &ClientConfig, store: S) -> (Phone<S>, UnixTime) {
    let mut phone = Phone::new(config.clone(), store, [5; 32]).unwrap();
    let mut peer = Phone::new(config.clone(), MemoryStore::new(), [6; 32]).unwrap();
    let mut now = start();
    for _ in 0..=15 {
        hear(&mut phone, &mut peer, now);
        now = now.plus_seconds(60);
    }
    phone.close_all_encounters().unwrap();
    (phone, now)
}

fn hear<S: Store>(phone: &mut Phone<S>, peer: &mut Phone<MemoryStore>, now: UnixTime) {
    let signal = Signal::Rssi {
        rssi: -55,
        tx_power: None,
    };
    util::hear(phone, peer, now, signal);
}

/// The next report request: the node's sealing key is handed over when asked for, other
/// sync requests are dropped (the fake has no index).
fn next<S: Store>(node: &FakeNode, phone: &mut Phone<S>, now: UnixTime) -> Request {
    loop {
        let r = phone.poll_request().expect("a request");
        match r.purpose {
            Purpose::Verify | Purpose::Upload => return r,
            Purpose::FetchSealingKey => phone
                .handle_response(now, r.id, node.sealing_key_answer())
                .unwrap(),
            _ => {}
        }
    }
}

fn events<S: Store>(phone: &mut Phone<S>) -> Vec<PhoneEvent> {
    std::iter::from_fn(|| phone.poll_event_record().map(|r| r.event)).collect()
}

#[test]
fn a_kill_between_an_uploads_send_and_its_answer_sends_the_same_upload_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = FakeNode::new(22);
    let config = node.config(SchemeKind::Pet);
    let (mut phone, now) = phone_with_encounter(&config, util::reopen(dir.path()));
    phone.start_report(now, &node.code(), None, None).unwrap();
    let verify = next(&node, &mut phone, now);
    let answer = node.answer_verify(now, &verify);
    phone.handle_response(now, verify.id, answer).unwrap();
    // The upload was sealed at the verify's answer and goes out; a send writes nothing,
    // and the app is killed before the answer comes.
    let upload = util::next_upload(&mut phone, now);
    assert_eq!(upload.purpose, Purpose::Upload);
    drop(phone);
    let mut phone = Phone::new(config, util::reopen(dir.path()), [9; 32]).unwrap();
    assert!(phone.status().report_certified);
    let later = now.plus_seconds(3);
    phone.handle_timeout(later).unwrap();
    let again = next(&node, &mut phone, later);
    assert_eq!(again.purpose, Purpose::Upload);
    assert_eq!(
        node.open(&again),
        node.open(&upload),
        "the same upload inside the seal: the node answers it as the first"
    );
    assert_ne!(again.body, upload.body, "sealed afresh after the restart");
    node.accept_upload(later, &again);
    let answer = node.upload_ok(&again);
    phone.handle_response(later, again.id, answer).unwrap();
    assert!(!phone.report_in_progress());
}

#[test]
fn a_code_whose_first_upload_failed_still_uploads_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = FakeNode::new(21);
    let config = node.config(SchemeKind::Pet);
    let store = util::reopen(dir.path());
    let (mut phone, now) = phone_with_encounter(&config, store);
    let code = node.code();
    phone.start_report(now, &code, None, None).unwrap();
    let verify = next(&node, &mut phone, now);
    assert_eq!(verify.purpose, Purpose::Verify);
    // The network is down: the verify is retried later, not failed.
    phone.handle_failure(now, verify.id).unwrap();
    let evs = events(&mut phone);
    assert_eq!(evs[0], PhoneEvent::ReportPending);
    let PhoneEvent::ReportRetrying {
        attempt: 1,
        next_attempt,
    } = evs[1]
    else {
        panic!("{evs:?}")
    };
    assert!(next_attempt >= now.plus_seconds(30) && next_attempt <= now.plus_seconds(38));
    assert_eq!(phone.poll_timeout(), Some(next_attempt));
    assert!(phone.status().report_pending && !phone.status().report_certified);
    // Killed (dropped without any goodbye), then made again on the folder.
    drop(phone);
    let mut phone = Phone::new(config.clone(), util::reopen(dir.path()), [7; 32]).unwrap();
    assert!(phone.report_in_progress());
    // Not before its time...
    phone.handle_timeout(now.plus_seconds(10)).unwrap();
    assert!(std::iter::from_fn(|| phone.poll_request()).all(|r| r.purpose != Purpose::Verify));
    // ...then the same code and HMAC again.
    phone.handle_timeout(next_attempt).unwrap();
    let again = next(&node, &mut phone, next_attempt);
    assert_eq!(again.purpose, Purpose::Verify);
    assert_eq!(
        node.open(&again),
        node.open(&verify),
        "the same verify request, byte for byte, inside the seal"
    );
    assert_ne!(
        again.body, verify.body,
        "sealed afresh: a retry is not linkable"
    );
    let answer = node.answer_verify(next_attempt, &again);
    phone
        .handle_response(next_attempt, again.id, answer)
        .unwrap();
    assert!(phone.status().report_certified);
    let upload = util::next_upload(&mut phone, next_attempt);
    assert_eq!(upload.purpose, Purpose::Upload);
    // The node fails (503): retried, across another kill, byte for byte.
    phone
        .handle_response(
            next_attempt,
            upload.id,
            Response {
                status: 503,
                body: Vec::new(),
            },
        )
        .unwrap();
    drop(phone);
    let mut phone = Phone::new(config.clone(), util::reopen(dir.path()), [8; 32]).unwrap();
    let later = next_attempt.plus_seconds(3600);
    phone.retry_report(later).unwrap();
    let upload_again = next(&node, &mut phone, later);
    assert_eq!(
        node.open(&upload_again),
        node.open(&upload),
        "the same upload, byte for byte, inside the seal"
    );
    node.accept_upload(later, &upload_again);
    let ok = ephemera_proto::api::UploadResponse {
        revision_token: "ab01".into(),
        padding: String::new(),
    };
    let answer = node.sealed_answer(&upload_again, 200, &ok.to_padded_json());
    phone
        .handle_response(later, upload_again.id, answer)
        .unwrap();
    assert!(!phone.report_in_progress());
    assert!(phone.can_revise());
    let evs = events(&mut phone);
    assert!(
        evs.contains(&PhoneEvent::ReportUploaded {
            revision_token: "ab01".into()
        }),
        "{evs:?}"
    );
    // After another restart nothing is sent again.
    drop(phone);
    let mut phone = Phone::new(config, util::reopen(dir.path()), [9; 32]).unwrap();
    phone.handle_timeout(later.plus_seconds(7200)).unwrap();
    assert!(
        std::iter::from_fn(|| phone.poll_request())
            .all(|r| !matches!(r.purpose, Purpose::Verify | Purpose::Upload))
    );
    assert!(matches!(
        phone.retry_report(later.plus_seconds(7200)),
        Err(crate::ClientError::Report(ReportError::NoReport))
    ));
}

#[test]
fn only_a_definitive_answer_fails_a_report_and_retries_back_off() {
    let mut node = FakeNode::new(22);
    let config = node.config(SchemeKind::Pet);
    let (mut phone, mut now) = phone_with_encounter(&config, MemoryStore::new());
    phone.start_report(now, &node.code(), None, None).unwrap();
    let mut waits = Vec::new();
    for status in [500, 502, 429, 503, 504, 500, 500, 500, 500] {
        let r = next(&node, &mut phone, now);
        phone
            .handle_response(
                now,
                r.id,
                Response {
                    status,
                    body: Vec::new(),
                },
            )
            .unwrap();
        let at = phone.status().report_next_attempt.unwrap();
        waits.push(at.0 - now.0);
        now = at;
        phone.handle_timeout(now).unwrap();
    }
    // 30 s doubling (plus up to a quarter of jitter), capped at an hour (plus jitter).
    assert!(waits[0] >= 30 && waits[0] <= 38, "{waits:?}");
    // Growing until the cap; past it, each wait is the hour plus its own jitter (up to 900 s).
    assert!(waits[..8].windows(2).all(|w| w[1] + 8 >= w[0]), "{waits:?}");
    assert!(waits[7] >= 3600 && waits[8] <= 4500, "{waits:?}");
    assert!(phone.report_in_progress());
    // A definitive refusal, sealed by the node, ends it.
    let r = next(&node, &mut phone, now);
    let answer = node.sealed_answer(&r, 400, br#"{"error":"invalid-code","message":"no"}"#);
    phone.handle_response(now, r.id, answer).unwrap();
    assert!(!phone.report_in_progress());
    let failed: Vec<PhoneEvent> = events(&mut phone)
        .into_iter()
        .filter(|e| matches!(e, PhoneEvent::ReportFailed(_)))
        .collect();
    assert_eq!(
        failed,
        vec![PhoneEvent::ReportFailed(ReportError::Refused {
            status: 400,
            code: "invalid-code".into()
        })]
    );
    assert_eq!(ReportError::Transport.code(), "transport");
}

#[test]
fn events_are_kept_until_acknowledged_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = FakeNode::new(23);
    let config = node.config(SchemeKind::Pet);
    let (mut phone, now) = phone_with_encounter(&config, util::reopen(dir.path()));
    phone.start_report(now, &node.code(), None, None).unwrap();
    let r = next(&node, &mut phone, now);
    phone.handle_failure(now, r.id).unwrap();
    let first = phone.poll_event_record().unwrap();
    assert_eq!(first.event, PhoneEvent::ReportPending);
    phone.acknowledge_event(first.id).unwrap();
    // The retrying event was not polled, the pending one was acknowledged.
    drop(phone);
    let mut phone = Phone::new(config.clone(), util::reopen(dir.path()), [1; 32]).unwrap();
    let kept = phone.unacknowledged_events();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(matches!(kept[0].event, PhoneEvent::ReportRetrying { .. }));
    let again = phone.poll_event_record().unwrap();
    assert_eq!(again, kept[0]);
    assert!(phone.poll_event_record().is_none());
    // Polled but not acknowledged: still there after a restart.
    drop(phone);
    let mut phone = Phone::new(config.clone(), util::reopen(dir.path()), [2; 32]).unwrap();
    let record = phone.poll_event_record().unwrap();
    assert_eq!(record.id, kept[0].id);
    phone.acknowledge_event(record.id).unwrap();
    phone.acknowledge_event(record.id).unwrap();
    drop(phone);
    let phone = Phone::new(config, util::reopen(dir.path()), [3; 32]).unwrap();
    assert!(phone.unacknowledged_events().is_empty());
}

fn credited(store: &impl Store) -> u64 {
    util::credited_seconds(store)
}

#[test]
fn a_kill_during_a_contact_loses_at_most_one_checkpoint_period() {
    for scheme in [SchemeKind::Gaen, SchemeKind::Pet] {
        let mut config = ClientConfig::new(scheme).with_decoy_rate(0.0);
        config.encounter.scan_period_seconds = 60;
        let dir = tempfile::tempdir().unwrap();
        let mut phone = Phone::new(config.clone(), util::reopen(dir.path()), [1; 32]).unwrap();
        let mut peer = Phone::new(config.clone(), MemoryStore::new(), [2; 32]).unwrap();
        let t = start().plus_seconds(17);
        // 20 one-minute scans: a 20-minute contact; killed right after the 10th.
        for i in 0..10 {
            hear(&mut phone, &mut peer, t.plus_seconds(60 * i));
        }
        drop(phone);
        let mut phone = Phone::new(config.clone(), util::reopen(dir.path()), [3; 32]).unwrap();
        assert!(phone.open_encounters() >= 1, "{scheme:?}: resumed");
        for i in 10..20 {
            hear(&mut phone, &mut peer, t.plus_seconds(60 * i));
        }
        phone.close_all_encounters().unwrap();
        let total = credited(phone.store());
        // Truth 1,200 s; the kill may cost the last checkpoint period (60 s).
        assert!(
            (1140..=1200).contains(&total),
            "{scheme:?}: credited {total} s of 1200"
        );
        // A restart after closing counts nothing twice.
        drop(phone);
        let mut phone = Phone::new(config, util::reopen(dir.path()), [4; 32]).unwrap();
        phone.close_all_encounters().unwrap();
        assert_eq!(credited(phone.store()), total, "{scheme:?}");
    }
}

/// A store that counts what is written to it, for the write cost of checkpoints.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryStore,
    meta_bytes: u64,
    flushes: u64,
}

impl Store for CountingStore {
    fn own_key(
        &self,
        day: ephemera_proto::DayNumber,
    ) -> Result<Option<crate::store::OwnKey>, crate::StoreError> {
        self.inner.own_key(day)
    }
    fn put_own_key(
        &mut self,
        day: ephemera_proto::DayNumber,
        key: &crate::store::OwnKey,
    ) -> Result<(), crate::StoreError> {
        self.inner.put_own_key(day, key)
    }
    fn own_key_days(&self) -> Result<Vec<ephemera_proto::DayNumber>, crate::StoreError> {
        self.inner.own_key_days()
    }
    fn remove_own_key(&mut self, day: ephemera_proto::DayNumber) -> Result<(), crate::StoreError> {
        self.inner.remove_own_key(day)
    }
    fn put_encounter(&mut self, record: &EncounterRecord) -> Result<(), crate::StoreError> {
        self.inner.put_encounter(record)
    }
    fn for_each_encounter(
        &self,
        visit: &mut dyn FnMut(&EncounterRecord),
    ) -> Result<(), crate::StoreError> {
        self.inner.for_each_encounter(visit)
    }
    fn put_check_in(
        &mut self,
        record: &crate::store::CheckInRecord,
    ) -> Result<(), crate::StoreError> {
        self.inner.put_check_in(record)
    }
    fn check_ins(&self) -> Result<Vec<crate::store::CheckInRecord>, crate::StoreError> {
        self.inner.check_ins()
    }
    fn put_window(
        &mut self,
        id: &crate::store::WindowId,
        window: &crate::risk::ExposureWindow,
    ) -> Result<bool, crate::StoreError> {
        self.inner.put_window(id, window)
    }
    fn windows_of(
        &self,
        day: ephemera_proto::DayNumber,
    ) -> Result<Vec<crate::risk::ExposureWindow>, crate::StoreError> {
        self.inner.windows_of(day)
    }
    fn window_days(&self) -> Result<Vec<ephemera_proto::DayNumber>, crate::StoreError> {
        self.inner.window_days()
    }
    fn set_meta(
        &mut self,
        key: crate::store::MetaKey,
        value: &[u8],
    ) -> Result<(), crate::StoreError> {
        self.meta_bytes += value.len() as u64;
        self.inner.set_meta(key, value)
    }
    fn meta(&self, key: crate::store::MetaKey) -> Result<Option<Vec<u8>>, crate::StoreError> {
        self.inner.meta(key)
    }
    fn remove_meta(&mut self, key: crate::store::MetaKey) -> Result<(), crate::StoreError> {
        self.inner.remove_meta(key)
    }
    fn erase_all(&mut self) -> Result<(), crate::StoreError> {
        self.inner.erase_all()
    }
    fn purge_before(
        &mut self,
        oldest_kept: ephemera_proto::DayNumber,
    ) -> Result<crate::store::PurgeCounts, crate::StoreError> {
        self.inner.purge_before(oldest_kept)
    }
    fn flush(&mut self) -> Result<(), crate::StoreError> {
        self.flushes += 1;
        self.inner.flush()
    }
}

/// The write cost of surviving a kill: a busy day of 40 contacts of 15 minutes, 8 hours
/// with 3 peers in range, scanned every minute. Prints the figures (run with
/// `--nocapture`) and bounds them.
#[test]
fn checkpoint_write_cost_per_day() {
    let mut config = ClientConfig::new(SchemeKind::Pet).with_decoy_rate(0.0);
    config.encounter.scan_period_seconds = 60;
    config.sync.interval_seconds = 86_400;
    let mut phone = Phone::new(config.clone(), CountingStore::default(), [1; 32]).unwrap();
    let mut peers: Vec<Phone<MemoryStore>> = (0..3u8)
        .map(|i| Phone::new(config.clone(), MemoryStore::new(), [10 + i; 32]).unwrap())
        .collect();
    let day = start().day().plus(1);
    let mut scans = 0u64;
    let mut sightings = 0u64;
    for minute in 0..(24 * 60) {
        let now = day.start().plus_seconds(minute * 60 + 5);
        // 40 contacts of 15 minutes, spread over the day, plus 2 peers 8 hours long.
        let contact = minute % 36 < 15;
        let office = (8 * 60..16 * 60).contains(&minute);
        let heard: Vec<usize> = [
            contact.then_some(0),
            office.then_some(1),
            office.then_some(2),
        ]
        .into_iter()
        .flatten()
        .collect();
        for i in heard {
            hear(&mut phone, &mut peers[i], now);
            sightings += 1;
        }
        phone.handle_timeout(now).unwrap();
        while phone.poll_request().is_some() {}
        scans += 1;
    }
    let store = phone.store();
    let status = phone.status();
    println!(
        "checkpoint write cost per day (1-min scans, {scans} scans, {sightings} sightings): \
         {} checkpoints, {} bytes ({:.1} KiB), {} meta bytes written, {} flushes",
        status.checkpoints_written,
        status.checkpoint_bytes,
        status.checkpoint_bytes as f64 / 1024.0,
        store.meta_bytes,
        store.flushes,
    );
    // At most one checkpoint per scan that heard someone, each a few hundred bytes.
    assert!(status.checkpoints_written <= 1440, "{status:?}");
    assert!(status.checkpoint_bytes < 1024 * 1024, "{status:?}");
    assert!(store.flushes < 2 * 1440, "{}", store.flushes);
}

proptest::proptest! {
    /// Whatever bytes a damaged folder holds in the kept state (report, checkpoints,
    /// events, clock, revision basis, decoy flow, `pet` ratchet), making a phone on it
    /// gives a phone or a typed error, never a panic.
    #[test]
    fn damaged_kept_state_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                                       which in 0usize..13) {
        use crate::store::MetaKey;
        let key = [
            MetaKey::PendingReport,
            MetaKey::OpenEncounters,
            MetaKey::Events,
            MetaKey::Clock,
            MetaKey::Revision,
            MetaKey::Paused,
            MetaKey::PendingDecoy,
            MetaKey::PendingReport2,
            MetaKey::RevisionKey,
            MetaKey::OpenEncounters2,
            MetaKey::PetRatchet,
            MetaKey::SunsetOrder,
            MetaKey::Ended,
        ][which];
        let mut store = MemoryStore::new();
        store.set_meta(key, &bytes).unwrap();
        let config = ClientConfig::new(SchemeKind::Pet).with_decoy_rate(0.0);
        if let Ok(mut phone) = Phone::new(config, store, [1; 32]) {
            let _ = phone.handle_timeout(start());
            let _ = phone.advertisement(start());
            let _ = phone.status();
            let _ = phone.can_revise();
            let _ = phone.retry_report(start());
        }
    }
}

/// The revision secret drawn for a report is kept with it: after restarts (one after the
/// upload, one between the revision's certificate and its upload) the phone's revision names
/// its upload's certificate and is signed with the secret whose key that upload carried.
#[test]
fn a_revision_across_restarts_is_signed_with_the_secret_kept_at_upload() {
    use ephemera_proto::upload::UploadBody;
    let dir = tempfile::tempdir().unwrap();
    let mut node = FakeNode::new(23);
    let config = node.config(SchemeKind::Pet);
    let (mut phone, now) = phone_with_encounter(&config, util::reopen(dir.path()));
    phone.start_report(now, &node.code(), None, None).unwrap();
    let verify = next(&node, &mut phone, now);
    let answer = node.answer_verify(now, &verify);
    phone.handle_response(now, verify.id, answer).unwrap();
    let upload = util::next_upload(&mut phone, now);
    let UploadBody::Real {
        upload: first,
        revision_key,
    } = node.upload_request(&upload).body
    else {
        panic!("not a version 2 upload")
    };
    let answer = node.upload_ok(&upload);
    phone.handle_response(now, upload.id, answer).unwrap();
    assert!(phone.can_revise());
    drop(phone);
    let mut phone = Phone::new(config.clone(), util::reopen(dir.path()), [7; 32]).unwrap();
    assert!(phone.can_revise());
    let later = now.plus_seconds(3600);
    phone.start_revision(later, &node.code()).unwrap();
    let verify = next(&node, &mut phone, later);
    assert_eq!(verify.purpose, Purpose::Verify);
    let answer = node.answer_verify(later, &verify);
    phone.handle_response(later, verify.id, answer).unwrap();
    drop(phone);
    let mut phone = Phone::new(config, util::reopen(dir.path()), [8; 32]).unwrap();
    let due = later.plus_seconds(3);
    phone.handle_timeout(due).unwrap();
    let upload = next(&node, &mut phone, due);
    assert_eq!(upload.purpose, Purpose::Upload);
    let UploadBody::Revision {
        upload: revised,
        revises,
        signature,
    } = node.upload_request(&upload).body
    else {
        panic!("not a version 2 revision")
    };
    assert_eq!(revises, first.certificate.certificate.id);
    assert_eq!(revised.contents, first.contents);
    assert!(revision_key.verify(&revises, &revised.certificate, &signature));
    let answer = node.upload_ok(&upload);
    phone.handle_response(due, upload.id, answer).unwrap();
    assert!(!phone.report_in_progress());
    // A revised report is not revised again (the node allows only `likely` → …).
    assert!(!phone.can_revise());
}

/// A report that an app before protocol version 2 kept on its way (not yet certified) is
/// carried on after the update: verified with the HMAC it kept (over the entries only), then
/// uploaded as the version 1 upload its certificate fits.
#[test]
fn a_report_kept_by_an_earlier_app_version_is_carried_on() {
    use ephemera_proto::auth::{ReportHmac, ReportHmacKey};
    use ephemera_proto::pet::EncounterToken;
    use ephemera_proto::upload::UploadBody;
    use ephemera_proto::{PublishedToken, ReportContents};
    use serde::Serialize;

    use crate::store::MetaKey;

    /// The layout of `ReportFlow` before protocol version 2.
    #[derive(Serialize)]
    enum OldStage {
        Verify { code: String },
    }
    #[derive(Serialize)]
    struct OldFlow {
        stage: OldStage,
        attempts: u32,
        next_attempt: u64,
        revises: Option<Vec<u8>>,
        contents: ReportContents,
        hmac_key: ReportHmacKey,
        hmac: ReportHmac,
    }

    let mut node = FakeNode::new(24);
    let config = node.config(SchemeKind::Pet);
    let now = start();
    let contents = ReportContents::Pet(vec![PublishedToken {
        day: now.day(),
        token: EncounterToken([4; 16]),
    }]);
    let hmac_key = ReportHmacKey([2; 32]);
    let old = OldFlow {
        stage: OldStage::Verify {
            code: node.code().reveal(),
        },
        attempts: 0,
        next_attempt: now.0,
        revises: None,
        hmac: hmac_key.authenticate(&contents),
        contents,
        hmac_key,
    };
    let mut store = MemoryStore::new();
    store
        .set_meta(
            MetaKey::PendingReport,
            &postcard::to_allocvec(&old).unwrap(),
        )
        .unwrap();
    let mut phone = Phone::new(config, store, [3; 32]).unwrap();
    assert!(phone.report_in_progress());
    phone.handle_timeout(now).unwrap();
    let verify = next(&node, &mut phone, now);
    assert_eq!(verify.purpose, Purpose::Verify);
    let answer = node.answer_verify(now, &verify);
    phone.handle_response(now, verify.id, answer).unwrap();
    // Its certificate covers the entries only (the HMAC the earlier app computed and sent),
    // so it goes as the version 1 upload that certificate fits.
    let upload = util::next_upload(&mut phone, now);
    assert!(matches!(
        node.upload_request(&upload).body,
        UploadBody::RealV1(_)
    ));
    assert_eq!(phone.store().meta(MetaKey::PendingReport).unwrap(), None);
    assert!(
        phone
            .store()
            .meta(MetaKey::PendingReport2)
            .unwrap()
            .is_some()
    );
}
