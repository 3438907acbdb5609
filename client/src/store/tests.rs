use ephemera_proto::pet::{EncounterToken, RATCHET_BYTES};
use ephemera_proto::scheme::DailyKey;
use ephemera_proto::{DayNumber, IntervalNumber, ReportType, SchemeKind, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::risk::{ExposureWindow, HeardSpan, Infectiousness};
use crate::signal::{LevelKind, SignalHistogram};

fn record(day: u32, byte: u8) -> EncounterRecord {
    let interval = DayNumber(day).first_interval().plus(3);
    let mut signal = SignalHistogram::default();
    signal.add(60, 240);
    EncounterRecord {
        interval,
        first_seen: interval.start(),
        last_seen: interval.start().plus_seconds(240),
        level_kind: LevelKind::Attenuation,
        signal,
        evidence: Evidence::Pet {
            own: EncounterToken([byte; 16]),
            peer: EncounterToken([byte ^ 0xff; 16]),
        },
    }
}

fn window(day: u32) -> ExposureWindow {
    ExposureWindow {
        day: DayNumber(day),
        seconds_per_bucket: [0, 600, 0, 0],
        infectiousness: Infectiousness::Standard,
        report_type: ReportType::ConfirmedTest,
        heard: Some(HeardSpan {
            first: DayNumber(day).start().plus_seconds(3_600),
            last: DayNumber(day).start().plus_seconds(4_000),
        }),
    }
}

fn exercise(store: &mut impl Store) {
    let key = OwnKey::from_daily_key(&DailyKey::generate(
        SchemeKind::Pet,
        &mut ChaCha20Rng::seed_from_u64(1),
    ));
    store.put_own_key(DayNumber(100), &key).unwrap();
    store.put_own_key(DayNumber(90), &key).unwrap();
    assert_eq!(store.own_key(DayNumber(100)).unwrap(), Some(key.clone()));
    assert_eq!(store.own_key(DayNumber(101)).unwrap(), None);
    assert_eq!(
        store.own_key_days().unwrap(),
        vec![DayNumber(90), DayNumber(100)]
    );
    store.put_encounter(&record(90, 1)).unwrap();
    store.put_encounter(&record(100, 2)).unwrap();
    let check_in = |day, b| CheckInRecord {
        day: DayNumber(day),
        bytes: vec![b; 197],
    };
    store.put_check_in(&check_in(100, 2)).unwrap();
    store.put_check_in(&check_in(90, 1)).unwrap();
    store.put_check_in(&check_in(90, 1)).unwrap();
    assert_eq!(
        store.check_ins().unwrap(),
        vec![check_in(90, 1), check_in(100, 2)],
        "kept once each, oldest day first"
    );
    let id = |day, b| WindowId {
        day: DayNumber(day),
        id: [b; 16],
    };
    assert!(store.put_window(&id(90, 1), &window(90)).unwrap());
    assert!(!store.put_window(&id(90, 1), &window(90)).unwrap());
    assert!(store.put_window(&id(100, 2), &window(100)).unwrap());
    // A revision republishes a key with another report type: the newer window holds.
    let mut revised = window(100);
    revised.report_type = ephemera_proto::ReportType::ConfirmedClinicalDiagnosis;
    assert!(store.put_window(&id(100, 2), &revised).unwrap());
    assert_eq!(
        store.windows_of(DayNumber(100)).unwrap(),
        vec![revised.clone()]
    );
    assert!(!store.put_window(&id(100, 2), &revised).unwrap());
    assert!(store.put_window(&id(100, 2), &window(100)).unwrap());
    assert_eq!(store.windows_of(DayNumber(90)).unwrap(), vec![window(90)]);
    assert_eq!(
        store.window_days().unwrap(),
        vec![DayNumber(90), DayNumber(100)]
    );
    store
        .set_meta(MetaKey::SyncCursor, &7u64.to_le_bytes())
        .unwrap();
    // The ratchet's state: replaced, read back, removed, set again for the purge below.
    let (r1, r2) = ([1u8; RATCHET_BYTES], [2u8; RATCHET_BYTES]);
    assert_eq!(store.meta(MetaKey::PetRatchet).unwrap(), None);
    store.set_meta(MetaKey::PetRatchet, &r1).unwrap();
    store.set_meta(MetaKey::PetRatchet, &r2).unwrap();
    assert_eq!(store.meta(MetaKey::PetRatchet).unwrap(), Some(r2.to_vec()));
    store.remove_meta(MetaKey::PetRatchet).unwrap();
    assert_eq!(store.meta(MetaKey::PetRatchet).unwrap(), None);
    store.set_meta(MetaKey::PetRatchet, &r1).unwrap();
    store.flush().unwrap();

    let counts = store.purge_before(DayNumber(95)).unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            own_keys: 1,
            encounters: 1,
            windows: 1,
            check_ins: 1,
        }
    );
    let mut left = Vec::new();
    store
        .for_each_encounter(&mut |r| left.push(r.clone()))
        .unwrap();
    assert_eq!(left, vec![record(100, 2)]);
    assert_eq!(store.check_ins().unwrap(), vec![check_in(100, 2)]);
    assert_eq!(store.own_key_days().unwrap(), vec![DayNumber(100)]);
    // A purge leaves the ratchet (the phone moves it); erasing everything does not.
    assert_eq!(store.meta(MetaKey::PetRatchet).unwrap(), Some(r1.to_vec()));
    store.erase_all().unwrap();
    assert_eq!(store.meta(MetaKey::PetRatchet).unwrap(), None);
    let _ = IntervalNumber(0);
    let _ = UnixTime(0);
}

#[test]
fn memory_store_round_trips_and_purges() {
    exercise(&mut MemoryStore::new());
}

#[test]
fn sled_store_round_trips_and_purges() {
    exercise(&mut SledStore::temporary().unwrap());
}

#[test]
fn sled_writes_survive_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = OwnKey::from_daily_key(&DailyKey::generate(
        SchemeKind::Gaen,
        &mut ChaCha20Rng::seed_from_u64(2),
    ));
    {
        let mut store = SledStore::open(dir.path()).unwrap();
        store.put_own_key(DayNumber(100), &key).unwrap();
        store.put_encounter(&record(100, 9)).unwrap();
        store
            .set_meta(MetaKey::SyncCursor, &42u64.to_le_bytes())
            .unwrap();
        store.flush().unwrap();
        // Dropped without a clean shutdown beyond the flush.
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.own_key(DayNumber(100)).unwrap(), Some(key));
    let mut seen = Vec::new();
    store
        .for_each_encounter(&mut |r| seen.push(r.clone()))
        .unwrap();
    assert_eq!(seen, vec![record(100, 9)]);
    assert_eq!(
        store.meta(MetaKey::SyncCursor).unwrap(),
        Some(42u64.to_le_bytes().to_vec())
    );
}

#[test]
fn own_key_debug_is_redacted() {
    let key = OwnKey::from_daily_key(&DailyKey::Gaen(ephemera_proto::gaen::TemporaryExposureKey(
        [0xab; 16],
    )));
    let shown = format!("{key:?}");
    assert!(
        shown.contains("redacted") && !shown.contains("ab"),
        "{shown}"
    );
}

#[test]
fn a_folder_store_compacts_once_a_day_and_reopens_after_an_interrupted_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SledStore::open(dir.path()).unwrap();
    store.put_encounter(&record(100, 1)).unwrap();
    store.purge_before(DayNumber(90)).unwrap();
    let generation = std::fs::read_to_string(dir.path().join("generation")).unwrap();
    assert_eq!(generation, "1 90");
    // The same day again (a restart): no second copy.
    store.purge_before(DayNumber(90)).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("generation")).unwrap(),
        "1 90"
    );
    drop(store);
    // A compaction killed half-way left a newer copy that never became current.
    std::fs::create_dir(dir.path().join("db-2")).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert!(!dir.path().join("db-2").exists());
    let mut n = 0;
    store.for_each_encounter(&mut |_| n += 1).unwrap();
    assert_eq!(n, 1);
    drop(store);
    std::fs::write(dir.path().join("generation"), "x").unwrap();
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn a_folder_store_keeps_the_ratchet_in_its_slot_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let slot = dir.path().join(ratchet_slot::FILE_NAME);
    let (a, b) = ([0xa5u8; RATCHET_BYTES], [0x5au8; RATCHET_BYTES]);
    {
        let mut store = SledStore::open(dir.path()).unwrap();
        store.set_today(DayNumber(100));
        store.set_meta(MetaKey::SyncCursor, &[1]).unwrap();
        store.set_meta(MetaKey::PetRatchet, &a).unwrap();
        store.set_meta(MetaKey::PetRatchet, &b).unwrap();
        store.flush().unwrap();
        let file = std::fs::read(&slot).unwrap();
        assert_eq!(file.len(), ratchet_slot::SLOT_LEN);
        assert!(file.windows(b.len()).any(|w| w == b));
        assert!(!file.windows(8).any(|w| w == &a[..8]));
        // A value of another length is refused.
        assert!(store.set_meta(MetaKey::PetRatchet, &[1, 2, 3]).is_err());
    }
    assert_eq!(
        SledStore::open(dir.path())
            .unwrap()
            .meta(MetaKey::PetRatchet)
            .unwrap(),
        Some(b.to_vec())
    );
    // Nothing of it is in the database: without the slot file, the store has none.
    std::fs::remove_file(&slot).unwrap();
    let mut store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.meta(MetaKey::PetRatchet).unwrap(), None);
    assert_eq!(store.meta(MetaKey::SyncCursor).unwrap(), Some(vec![1]));
    store.set_meta(MetaKey::PetRatchet, &a).unwrap();
    store.erase_all().unwrap();
    assert_eq!(
        std::fs::read(&slot).unwrap(),
        vec![0u8; ratchet_slot::SLOT_LEN]
    );
}
