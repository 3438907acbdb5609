//! Matching through the phone's real ingest path: a [`Phone`] on a [`MemoryStore`] verifies
//! and matches a signed batch held in memory ([`Phone::handle_batch`]: index build, 64 KiB
//! chunks through `BatchStream::push_records`, proto's matchers, signature check, commit),
//! on one core. Each rate's `limit` is the bare proto kernel on the same data, measured in
//! the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ephemera_client::signal::{LevelKind, SignalHistogram};
use ephemera_client::store::{EncounterRecord, Evidence, MemoryStore, Store};
use ephemera_client::{ClientConfig, Phone};
use ephemera_proto::batch::{BatchContents, KEY_RUN, NodeSigningKey, SignedBatch};
use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::matching::{GaenMatcher, PetMatcher};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::{
    DayNumber, INTERVALS_PER_DAY, IntervalNumber, PublishedToken, ReportType, SchemeKind, UnixTime,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::Figure;

/// Days of sightings a phone keeps.
const DAYS: u32 = 14;
/// Sightings heard per day.
const SIGHTINGS_PER_DAY: u32 = 2_000;
/// The first day of the simulated retention period.
const FIRST_DAY: u32 = 19_700;
/// Keys in the GAEN batch (the memory figure's batch too).
const BATCH_KEYS: usize = 1_000_000;
/// One key in this many was heard by the phone.
const PLANT_EVERY: usize = 10_000;
/// Peer-role tokens the `pet` phone holds.
const HELD_TOKENS: usize = 50_000;
/// Published token records in the `pet` batch (100 MB, beyond every cache).
const BATCH_TOKENS: usize = 5_000_000;
/// One published token in this many is held.
const HELD_EVERY: usize = 10_000;

/// When the phone ingests: late on the last day of the retention period, so nothing it
/// holds is purged between runs.
fn now() -> UnixTime {
    UnixTime(u64::from(FIRST_DAY + DAYS - 1) * 86_400 + 23 * 3_600)
}

fn record(interval: u32, evidence: Evidence) -> EncounterRecord {
    let first = IntervalNumber(interval).start();
    let mut signal = SignalHistogram::default();
    signal.add(60, 600);
    EncounterRecord {
        interval: IntervalNumber(interval),
        first_seen: first,
        last_seen: first.plus_seconds(540),
        level_kind: LevelKind::Attenuation,
        signal,
        evidence,
    }
}

/// Best of `runs` timings of `op`, as `items` per second.
fn best_rate(runs: usize, items: usize, mut op: impl FnMut()) -> f64 {
    op();
    let mut best = f64::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        op();
        best = best.min(started.elapsed().as_secs_f64());
    }
    items as f64 / best
}

fn runs_for(budget: Duration) -> usize {
    (budget.as_secs_f64() * 3.0).ceil().max(3.0) as usize
}

/// GAEN through the phone: keys/s and memory while a 1,000,000-key batch streams in.
pub fn gaen(budget: Duration) -> Vec<Figure> {
    let mut rng = ChaCha20Rng::seed_from_u64(50);
    let node = NodeSigningKey::generate(&mut rng);
    let keys: Vec<DiagnosisKey> = (0..BATCH_KEYS)
        .map(|_| {
            let day = FIRST_DAY + rng.next_u32() % DAYS;
            DiagnosisKey {
                key: TemporaryExposureKey::generate(&mut rng),
                rolling_start: DayNumber(day).first_interval(),
                rolling_period: INTERVALS_PER_DAY as u8,
                report_type: ReportType::ConfirmedTest,
                days_since_onset: Some(2),
            }
        })
        .collect();
    let mut store = MemoryStore::new();
    let mut sightings = Vec::new();
    let mut put = |store: &mut MemoryStore, rpi: [u8; 16], interval: u32| {
        sightings.push((
            ephemera_proto::gaen::RollingProximityIdentifier(rpi),
            IntervalNumber(interval),
        ));
        store
            .put_encounter(&record(interval, Evidence::Gaen { rpi, aem: [0; 4] }))
            .expect("memory store");
    };
    let mut planted = 0;
    for key in keys.iter().step_by(PLANT_EVERY) {
        let interval = key.rolling_start.plus(70);
        put(&mut store, key.key.rpik().rpi(interval).0, interval.0);
        planted += 1;
    }
    let base = DayNumber(FIRST_DAY).first_interval().0;
    for _ in planted..(DAYS * SIGHTINGS_PER_DAY) as usize {
        let mut rpi = [0u8; 16];
        rng.fill_bytes(&mut rpi);
        put(
            &mut store,
            rpi,
            base + rng.next_u32() % (DAYS * INTERVALS_PER_DAY),
        );
    }
    let batch = BatchContents {
        sequence: 1,
        created_at: now(),
        previous: Some(ephemera_proto::batch::BatchId::NONE),
        diagnosis_keys: keys.clone(),
        tokens: vec![],
    }
    .sign(&node);
    let config = ClientConfig::new(SchemeKind::Gaen)
        .with_trusted_node(node.public_key())
        .with_decoy_rate(0.0);
    let mut phone = Phone::new(config, store, [5; 32]).expect("valid config");

    // Memory first, in a fresh state: the peak resident set while the batch streams in.
    let (rss_growth, state_bytes) = stream_gaen_memory(&mut phone, &batch);

    let runs = runs_for(budget);
    let mut windows = 0;
    let phone_rate = best_rate(runs, BATCH_KEYS, || {
        let summary = phone
            .handle_batch(now(), batch.bytes())
            .expect("batch verifies");
        assert_eq!(summary.entries, BATCH_KEYS as u64);
        windows += summary.new_windows;
    });
    assert!(planted > 0 && !phone.exposures(now()).expect("store").is_empty());
    black_box(windows);

    let matcher = GaenMatcher::new(sightings.iter().copied());
    let mut matches = 0usize;
    let kernel_rate = best_rate(runs, BATCH_KEYS, || {
        for run in keys.chunks(KEY_RUN) {
            matcher.match_keys(run, |_| matches += 1);
        }
    });
    black_box(matches);
    let collected = BATCH_KEYS * size_of::<DiagnosisKey>();
    vec![
        Figure::new("client-gaen-match", phone_rate, "keys/s", kernel_rate),
        Figure::new(
            "client-gaen-match-rss-growth",
            rss_growth as f64,
            "bytes",
            collected as f64,
        ),
        Figure::new(
            "client-gaen-match-state",
            state_bytes as f64,
            "bytes",
            collected as f64,
        ),
    ]
}

/// Streams `batch` through `begin_batch → push… → finish_batch`, sampling the resident set;
/// returns its largest growth and the ingest's own state (index + found windows).
fn stream_gaen_memory(phone: &mut Phone<MemoryStore>, batch: &SignedBatch) -> (u64, usize) {
    reset_peak();
    let before = status_kib("VmRSS:");
    let mut peak = before;
    let config = phone.shared_config();
    let mut ingest = phone.begin_batch(&config.trusted_nodes).expect("store");
    let mut state = 0;
    for (i, chunk) in batch.bytes().chunks(64 * 1024).enumerate() {
        ingest.push(chunk).expect("well-formed batch");
        if i % 16 == 0 {
            peak = peak.max(status_kib("VmRSS:"));
            state = state.max(ingest.index_bytes() + ingest.retained_bytes());
        }
    }
    state = state.max(ingest.index_bytes() + ingest.retained_bytes());
    phone.finish_batch(now(), ingest).expect("batch verifies");
    peak = peak.max(status_kib("VmRSS:")).max(status_kib("VmHWM:"));
    (peak.saturating_sub(before) * 1024, state)
}

/// `pet` through the phone: tokens/s of a 5,000,000-token batch against 50,000 held tokens.
pub fn pet(budget: Duration) -> Vec<Figure> {
    let mut rng = ChaCha20Rng::seed_from_u64(51);
    let node = NodeSigningKey::generate(&mut rng);
    let mut store = MemoryStore::new();
    let mut held = Vec::with_capacity(HELD_TOKENS);
    let base = DayNumber(FIRST_DAY).first_interval().0;
    for _ in 0..HELD_TOKENS {
        let (mut own, mut peer) = ([0u8; 16], [0u8; 16]);
        rng.fill_bytes(&mut own);
        rng.fill_bytes(&mut peer);
        let interval = base + rng.next_u32() % (DAYS * INTERVALS_PER_DAY);
        held.push(PublishedToken {
            day: IntervalNumber(interval).day(),
            token: EncounterToken(peer),
        });
        store
            .put_encounter(&record(
                interval,
                Evidence::Pet {
                    own: EncounterToken(own),
                    peer: EncounterToken(peer),
                },
            ))
            .expect("memory store");
    }
    let tokens: Vec<PublishedToken> = (0..BATCH_TOKENS)
        .map(|i| {
            if i % HELD_EVERY == 0 {
                held[i / HELD_EVERY % held.len()]
            } else {
                let mut token = [0u8; 16];
                rng.fill_bytes(&mut token);
                PublishedToken {
                    day: DayNumber(FIRST_DAY + rng.next_u32() % DAYS),
                    token: EncounterToken(token),
                }
            }
        })
        .collect();
    let batch = BatchContents {
        sequence: 1,
        created_at: now(),
        previous: Some(ephemera_proto::batch::BatchId::NONE),
        diagnosis_keys: vec![],
        tokens,
    }
    .sign(&node);
    let config = ClientConfig::new(SchemeKind::Pet)
        .with_trusted_node(node.public_key())
        .with_decoy_rate(0.0);
    let mut phone = Phone::new(config, store, [6; 32]).expect("valid config");

    let runs = runs_for(budget);
    let mut windows = 0;
    let phone_rate = best_rate(runs, BATCH_TOKENS, || {
        let summary = phone
            .handle_batch(now(), batch.bytes())
            .expect("batch verifies");
        assert_eq!(summary.entries, BATCH_TOKENS as u64);
        windows += summary.new_windows;
    });
    assert!(!phone.exposures(now()).expect("store").is_empty());
    black_box(windows);

    // The bare kernel over the same records, straight from the batch's bytes.
    let matcher = PetMatcher::with_day_tolerance(held.iter().copied(), 1);
    let records = &batch.bytes()[batch.bytes().len() - BATCH_TOKENS * 20..];
    let mut matches = 0usize;
    let kernel_rate = best_rate(runs, BATCH_TOKENS, || {
        matcher.match_records(records, |_| matches += 1);
    });
    assert!(matches >= BATCH_TOKENS / HELD_EVERY);
    vec![Figure::new(
        "client-pet-match",
        phone_rate,
        "tokens/s",
        kernel_rate,
    )]
}

/// Resets the process's peak resident set (`VmHWM`) where Linux allows it.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `/proc/self/status` field in KiB, 0 where unknown.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
}
