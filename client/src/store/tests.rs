use ephemera_proto::pet::EncounterToken;
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
    store.flush().unwrap();

    let counts = store.purge_before(DayNumber(95)).unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            own_keys: 1,
            encounters: 1,
            windows: 1
        }
    );
    let mut left = Vec::new();
    store
        .for_each_encounter(&mut |r| left.push(r.clone()))
        .unwrap();
    assert_eq!(left, vec![record(100, 2)]);
    assert_eq!(store.own_key_days().unwrap(), vec![DayNumber(100)]);
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
