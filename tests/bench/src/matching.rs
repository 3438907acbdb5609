//! Exposure matching on one core: GAEN diagnosis keys against 14 days of sightings, `pet`
//! published token records against a phone's held tokens.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use ephemera_proto::batch::{
    BatchContents, BatchEntry, BatchStream, BatchSummary, NodeSigningKey, TrustedNodes,
};
use ephemera_proto::filter::TokenFilter;
use ephemera_proto::gaen::{DiagnosisKey, RollingProximityIdentifier, TemporaryExposureKey};
use ephemera_proto::matching::{GaenMatcher, PetMatcher};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::{
    DayNumber, INTERVALS_PER_DAY, IntervalNumber, PublishedToken, ReportType, UnixTime,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::{Figure, rate};

/// Days of sightings a phone keeps (the retention period).
const DAYS: u32 = 14;
/// Sightings heard per day.
const SIGHTINGS_PER_DAY: u32 = 2_000;
/// The first day of the simulated retention period.
const FIRST_DAY: u32 = 19_700;
/// RPIs a daily key derives.
const RPIS_PER_KEY: u32 = INTERVALS_PER_DAY;
/// One key in this many was heard (three of its RPIs are among the sightings).
const PLANT_EVERY: usize = 1_000;
/// Keys streamed through a verified batch for the memory figure.
const STREAMED_KEYS: usize = 1_000_000;

/// Runs the GAEN matching benchmarks, each rate for about `budget`.
pub fn gaen(budget: Duration) -> Vec<Figure> {
    let mut rng = ChaCha20Rng::seed_from_u64(40);
    // Every key's window lies in the sighting period, so none is skipped for lack of
    // sightings: the worst case for the matcher.
    let keys: Vec<DiagnosisKey> = (0..16_384).map(|_| daily_key(&mut rng)).collect();
    let (matcher, planted) = sightings_for(&mut rng, &keys);
    let mut matches = 0usize;
    let matched = |k: &[DiagnosisKey]| {
        let mut n = 0;
        matcher.match_keys(k, |_| n += 1);
        n
    };
    assert_eq!(
        matched(&keys),
        planted,
        "every planted sighting matches once"
    );
    let keys_per_s = rate(budget, keys.len() as u64, || matches += matched(&keys));
    black_box(matches);

    let cipher = Aes128::new(&[7u8; 16].into());
    let mut blocks = [aes::Block::default(); RPIS_PER_KEY as usize];
    let aes_blocks_per_s = rate(budget, u64::from(RPIS_PER_KEY), || {
        cipher.encrypt_blocks(&mut blocks);
        black_box(&blocks);
    });

    let mut i = 0;
    let rpik_per_s = rate(budget, 1, || {
        black_box(keys[i % keys.len()].key.rpik());
        i += 1;
    });
    let mut j = 0;
    let ring_hkdf_per_s = rate(budget, 1, || {
        black_box(ring_rpik(keys[j % keys.len()].key.as_bytes()));
        j += 1;
    });

    let sighting_bytes = (DAYS * SIGHTINGS_PER_DAY) as usize
        * (size_of::<RollingProximityIdentifier>() + size_of::<IntervalNumber>());
    let (stream_keys_per_s, rss_growth) = stream_keys(&matcher, &mut rng);
    vec![
        Figure::new(
            "gaen-match",
            keys_per_s,
            "keys/s",
            aes_blocks_per_s / f64::from(RPIS_PER_KEY),
        ),
        Figure::new(
            "gaen-match-rpik-derivation",
            rpik_per_s,
            "keys/s",
            ring_hkdf_per_s,
        ),
        Figure::new(
            "gaen-match-memory",
            matcher.memory_bytes() as f64,
            "bytes",
            sighting_bytes as f64,
        ),
        Figure::new("gaen-match-stream", stream_keys_per_s, "keys/s", keys_per_s),
        Figure::new(
            "gaen-match-stream-rss-growth",
            rss_growth as f64,
            "bytes",
            (STREAMED_KEYS * size_of::<DiagnosisKey>()) as f64,
        ),
    ]
}

/// A daily key (rolling period 144) of one of the 14 days.
fn daily_key(rng: &mut ChaCha20Rng) -> DiagnosisKey {
    let day = FIRST_DAY + rng.next_u32() % DAYS;
    DiagnosisKey {
        key: TemporaryExposureKey::generate(rng),
        rolling_start: DayNumber(day).first_interval(),
        rolling_period: RPIS_PER_KEY as u8,
        report_type: ReportType::ConfirmedTest,
        days_since_onset: None,
    }
}

/// 14 days × 2,000 sightings, random except three RPIs of every `PLANT_EVERY`th key (heard
/// in their own interval); returns the matcher and how many sightings were planted.
fn sightings_for(rng: &mut ChaCha20Rng, keys: &[DiagnosisKey]) -> (GaenMatcher, usize) {
    let mut sightings: Vec<(RollingProximityIdentifier, IntervalNumber)> = Vec::new();
    for key in keys.iter().step_by(PLANT_EVERY) {
        for offset in [0, 71, 143] {
            let interval = key.rolling_start.plus(offset);
            sightings.push((key.key.rpik().rpi(interval), interval));
        }
    }
    let planted = sightings.len();
    while sightings.len() < (DAYS * SIGHTINGS_PER_DAY) as usize {
        let mut rpi = [0u8; 16];
        rng.fill_bytes(&mut rpi);
        let interval =
            DayNumber(FIRST_DAY).first_interval().0 + rng.next_u32() % (DAYS * INTERVALS_PER_DAY);
        sightings.push((RollingProximityIdentifier(rpi), IntervalNumber(interval)));
    }
    (GaenMatcher::new(sightings), planted)
}

/// HKDF-SHA256(TEK, no salt, "EN-RPIK", 16) through `ring`, the peer of the hand-rolled one.
fn ring_rpik(tek: &[u8; 16]) -> [u8; 16] {
    struct Len16;
    impl ring::hkdf::KeyType for Len16 {
        fn len(&self) -> usize {
            16
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(tek);
    let mut out = [0u8; 16];
    prk.expand(&[b"EN-RPIK"], Len16)
        .and_then(|okm| okm.fill(&mut out))
        .expect("16 bytes");
    out
}

/// Keys a streaming phone collects before matching them together.
const KEY_BUFFER: usize = 64;

/// Streams a signed batch of 1,000,000 keys through [`BatchStream`] in 64 KiB chunks into
/// the matcher (in runs of [`KEY_BUFFER`] keys), as a phone would while downloading;
/// returns keys/s and the largest growth of the resident set seen during the stream.
fn stream_keys(matcher: &GaenMatcher, rng: &mut ChaCha20Rng) -> (f64, u64) {
    let node = NodeSigningKey::generate(rng);
    let trusted = TrustedNodes::new().with(node.public_key());
    let batch = BatchContents {
        sequence: 1,
        created_at: UnixTime(u64::from(FIRST_DAY + DAYS) * 86_400),
        previous: Some(ephemera_proto::batch::BatchId::NONE),
        diagnosis_keys: (0..STREAMED_KEYS).map(|_| daily_key(rng)).collect(),
        tokens: vec![],
    }
    .sign(&node);
    let before = super::resident_bytes();
    let mut peak = before;
    let mut keys = 0usize;
    let mut matches = 0usize;
    let started = Instant::now();
    let mut stream = BatchStream::new(&trusted);
    let mut buffer: Vec<DiagnosisKey> = Vec::with_capacity(KEY_BUFFER);
    for chunk in batch.bytes().chunks(64 * 1024) {
        stream
            .push(chunk, &mut |entry| {
                if let BatchEntry::Key(key) = entry {
                    buffer.push(key);
                    if buffer.len() == KEY_BUFFER {
                        matcher.match_keys(&buffer, |_| matches += 1);
                        keys += buffer.len();
                        buffer.clear();
                        if keys.is_multiple_of(65_536) {
                            peak = peak.max(super::resident_bytes());
                        }
                    }
                }
            })
            .expect("well-formed batch");
    }
    matcher.match_keys(&buffer, |_| matches += 1);
    keys += buffer.len();
    stream.finish().expect("batch verifies");
    let elapsed = started.elapsed().as_secs_f64();
    peak = peak.max(super::resident_bytes());
    black_box(matches);
    assert_eq!(keys, STREAMED_KEYS);
    (keys as f64 / elapsed, peak.saturating_sub(before))
}

/// Held peer-role tokens (14 days × a few thousand encounters).
const HELD_TOKENS: usize = 50_000;
/// Published records in the large run: 100 MB, beyond every cache.
const PUBLISHED_TOKENS: usize = 5_000_000;
/// One published token in this many is held.
const HELD_EVERY: usize = 10_000;

/// Runs the `pet` matching benchmarks, each rate for about `budget`.
pub fn pet(budget: Duration) -> Vec<Figure> {
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let held: Vec<PublishedToken> = (0..HELD_TOKENS).map(|_| random_token(&mut rng)).collect();
    let matcher = PetMatcher::new(held.iter().copied());
    let published: Vec<PublishedToken> = (0..PUBLISHED_TOKENS)
        .map(|i| {
            if i % HELD_EVERY == 0 {
                held[i / HELD_EVERY % held.len()]
            } else {
                random_token(&mut rng)
            }
        })
        .collect();
    let records: Vec<u8> = published
        .iter()
        .flat_map(|t| {
            let mut r = [0u8; 20];
            r[..4].copy_from_slice(&t.day.0.to_le_bytes());
            r[4..].copy_from_slice(&t.token.0);
            r
        })
        .collect();
    let mut found = 0;
    matcher.match_records(&records, |_| found += 1);
    assert_eq!(
        found,
        PUBLISHED_TOKENS.div_ceil(HELD_EVERY),
        "every held token found"
    );

    let mut figures = Vec::new();
    // From memory (100 MB), then from cache (1 MB, one day's publication of a small region).
    for (name, bytes) in [
        ("pet-match", &records[..]),
        ("pet-match-cached", &records[..HELD_TOKENS * 20]),
    ] {
        let n = (bytes.len() / 20) as u64;
        let mut matches = 0usize;
        let tokens_per_s = rate(budget, n, || matcher.match_records(bytes, |_| matches += 1));
        black_box(matches);
        let read_per_s = rate(budget, n, || {
            black_box(sum_words(black_box(bytes)));
        });
        figures.push(Figure::new(name, tokens_per_s, "tokens/s", read_per_s));
    }

    let filter_figures = filters(budget, &held, &published, &mut rng);
    // The same records through a verified batch, one `contains` per decoded entry.
    let node = NodeSigningKey::generate(&mut rng);
    let trusted = TrustedNodes::new().with(node.public_key());
    let batch = BatchContents {
        sequence: 1,
        created_at: UnixTime(u64::from(FIRST_DAY + DAYS) * 86_400),
        previous: Some(ephemera_proto::batch::BatchId::NONE),
        diagnosis_keys: vec![],
        tokens: published,
    }
    .sign(&node);
    let started = Instant::now();
    let mut stream = BatchStream::new(&trusted);
    let mut found = 0;
    for chunk in batch.bytes().chunks(64 * 1024) {
        stream
            .push(chunk, &mut |entry| {
                if let BatchEntry::Token(t) = entry {
                    found += usize::from(matcher.contains(&t));
                }
            })
            .expect("well-formed batch");
    }
    stream.finish().expect("batch verifies");
    let stream_per_s = PUBLISHED_TOKENS as f64 / started.elapsed().as_secs_f64();
    assert_eq!(found, PUBLISHED_TOKENS.div_ceil(HELD_EVERY));
    figures.push(Figure::new(
        "pet-match-stream",
        stream_per_s,
        "tokens/s",
        figures[0].value,
    ));
    figures.push(Figure::new(
        "pet-match-memory",
        matcher.memory_bytes() as f64,
        "bytes",
        (HELD_TOKENS * 20) as f64,
    ));
    figures.extend(filter_figures);
    figures
}

/// Tokens in one token filter: the node's largest batch.
const FILTER_TOKENS: usize = 100_000;
/// Tokens published a day at 35,000 uploads a day, before issue 18's upload rule (147.7
/// tokens an upload, `docs/SIMULATION.md`): the worst day the projection sizes.
const TOKENS_PER_DAY_AT_35K: usize = 5_170_455;
/// What issue 18 asks of `pet` matching, in published tokens a second.
const MATCH_TARGET_PER_S: f64 = 50e6;

/// Token filters (publication version 3): the phone looks each held token up in a filter
/// of [`FILTER_TOKENS`]; the rate is in published tokens covered a second, so it compares
/// with matching batch records. Then a whole day at 35,000 uploads: every filter verified
/// and searched, against the one second.
fn filters(
    budget: Duration,
    held: &[PublishedToken],
    published: &[PublishedToken],
    rng: &mut ChaCha20Rng,
) -> Vec<Figure> {
    let node = &NodeSigningKey::generate(rng);
    let tokens: Vec<EncounterToken> = published[..FILTER_TOKENS].iter().map(|t| t.token).collect();
    let summary = BatchSummary {
        id: ephemera_proto::batch::BatchId([9; 32]),
        node: node.public_key().key_id(),
        sequence: 1,
        created_at: UnixTime(u64::from(FIRST_DAY + DAYS) * 86_400),
        previous: Some(ephemera_proto::batch::BatchId::NONE),
        keys: 0,
        tokens: FILTER_TOKENS as u32,
    };
    let started = Instant::now();
    let bytes = TokenFilter::build(&summary, &tokens, node, rng).expect("a filter");
    let build_per_s = FILTER_TOKENS as f64 / started.elapsed().as_secs_f64();
    let trusted = TrustedNodes::new().with(node.public_key());
    let filter = TokenFilter::verify(&bytes, &trusted).expect("it verifies");
    let held_set: std::collections::HashSet<[u8; 16]> = held.iter().map(|t| t.token.0).collect();
    let expected = published[..FILTER_TOKENS]
        .iter()
        .filter(|t| held_set.contains(&t.token.0))
        .count();
    let look_up = |filter: &TokenFilter| held.iter().filter(|t| filter.contains(&t.token)).count();
    assert_eq!(
        look_up(&filter),
        expected,
        "every held token published is found"
    );
    let mut found = 0;
    let covered_per_s = rate(budget, FILTER_TOKENS as u64, || found += look_up(&filter));
    black_box(found);
    let verify_per_s = rate(budget, FILTER_TOKENS as u64, || {
        black_box(TokenFilter::verify(&bytes, &trusted).expect("it verifies"));
    });
    let filters_a_day = TOKENS_PER_DAY_AT_35K.div_ceil(FILTER_TOKENS);
    let started = Instant::now();
    for _ in 0..filters_a_day {
        let filter = TokenFilter::verify(black_box(&bytes), &trusted).expect("it verifies");
        black_box(look_up(&filter));
    }
    let day_seconds = started.elapsed().as_secs_f64();
    vec![
        Figure::new(
            "pet-filter-match",
            covered_per_s,
            "tokens/s",
            MATCH_TARGET_PER_S,
        ),
        Figure::new(
            "pet-filter-verify",
            verify_per_s,
            "tokens/s",
            MATCH_TARGET_PER_S,
        ),
        Figure::new("pet-filter-build", build_per_s, "tokens/s", 0.0),
        Figure::new(
            "pet-filter-bytes-per-token",
            bytes.len() as f64 / FILTER_TOKENS as f64,
            "bytes",
            20.0,
        ),
        Figure::new("pet-filter-day-at-35k", day_seconds, "s", 1.0),
    ]
}

/// A random token of one of the 14 days.
fn random_token(rng: &mut ChaCha20Rng) -> PublishedToken {
    let mut token = [0u8; 16];
    rng.fill_bytes(&mut token);
    PublishedToken {
        day: DayNumber(FIRST_DAY + rng.next_u32() % DAYS),
        token: EncounterToken(token),
    }
}

/// The plainest full read of `bytes`: a wrapping sum of its 8-byte words.
fn sum_words(bytes: &[u8]) -> u64 {
    bytes
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
        .fold(0u64, u64::wrapping_add)
}
