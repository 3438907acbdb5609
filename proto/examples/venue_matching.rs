//! Times venue matching on one core: a phone with two weeks of check-ins against 2,250
//! published trace keys (issue 20's target: under 10 s; CrowdNotifier reports under 12 s on
//! its tested phones).
//!
//! `cargo run --release -p ephemera-proto --example venue_matching [seed]`
//!
//! Two key sets, both 2,250 keys decoded from bytes as a phone receives them:
//! - `spread`: cases at random venues, days (of the 14) and hours (08:00-21:00), 1-3
//!   hours each, five of them at the phone's own visits;
//! - `worst`: every key falls in an hour where the phone was checked in (other venues), so
//!   every key costs a decryption attempt against each check-in of its hour.
//!
//! It prints the attempts (pairings), the time and attempts per second, and what
//! CrowdNotifier's day-labelled records would have cost (each key against every check-in
//! of its day) at the measured cost per attempt.
//!
//! Measured 2026-12-07, release build, one AMD EPYC core (VM), seeds 20 and 7: `spread`
//! 1,643-1,685 attempts, 1.72-1.75 s in all (0.23 s decoding, 1.48-1.53 s matching);
//! `worst` 3,360-3,420 attempts, 3.17-3.38 s; about 0.9 ms per attempt, which is one
//! pairing (blst: 0.89 ms on the same core; zkcrypto `bls12_381` 0.9: 2.15 ms).
//! CrowdNotifier's day labels would cost 22,211-23,064 attempts, about 20-22 s.

use std::collections::HashMap;
use std::time::Instant;

use ephemera_proto::UnixTime;
use ephemera_proto::sealed::SealingSecretKey;
use ephemera_proto::venue::{
    CheckIn, CheckInIndex, EntryCode, Notice, TraceCode, VenueHour, VenueTrace, check_in,
    create_venue,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const KEYS: usize = 2_250;
const DAYS: u64 = 14;
const VENUES: usize = 40;
const VISITS_PER_DAY: u64 = 4;
/// 2026-11-23 00:00 UTC.
const FIRST_DAY: u64 = 1_763_856_000;

fn below(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

fn publish(
    venue: &(EntryCode, TraceCode),
    authority: &SealingSecretKey,
    first: VenueHour,
    last: VenueHour,
    rng: &mut ChaCha20Rng,
) -> Vec<Vec<u8>> {
    let notice = Notice {
        case_from: first.start(),
        case_until: last.start().plus_seconds(3599),
        message: "Watch for symptoms for 10 days.".into(),
    };
    venue
        .1
        .trace_keys(authority, first, last)
        .expect("valid hours")
        .into_iter()
        .map(|k| {
            notice
                .seal(&venue.0, k, rng)
                .expect("valid notice")
                .to_bytes()
        })
        .collect()
}

fn run(label: &str, traces: &[Vec<u8>], stored: &[Vec<u8>]) -> (f64, usize) {
    let start = Instant::now();
    let check_ins: Vec<CheckIn> = stored
        .iter()
        .map(|b| CheckIn::from_bytes(b).expect("valid check-in"))
        .collect();
    let traces: Vec<VenueTrace> = traces
        .iter()
        .map(|b| VenueTrace::from_bytes(b).expect("valid trace"))
        .collect();
    let decoded = start.elapsed().as_secs_f64();
    let index = CheckInIndex::new(check_ins);
    let attempts = index.attempts(&traces);
    let warnings = index.match_traces(&traces);
    let total = start.elapsed().as_secs_f64();
    let matching = total - decoded;
    println!(
        "{label:>6}: {} keys × {} check-ins: {attempts} attempts, {} warnings; decode {:.3} s, \
         match {:.3} s ({:.0} attempts/s), total {:.3} s",
        traces.len(),
        stored.len(),
        warnings.len(),
        decoded,
        matching,
        attempts as f64 / matching.max(1e-9),
        total,
    );
    (matching / attempts.max(1) as f64, attempts)
}

fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let authority = SealingSecretKey::generate(&mut rng);
    let venues: Vec<(EntryCode, TraceCode)> = (0..VENUES)
        .map(|i| {
            create_venue(
                &authority.public_key(),
                &format!("Venue {i}"),
                "Street",
                UnixTime(FIRST_DAY),
                UnixTime(FIRST_DAY + DAYS * 86_400),
                &mut rng,
            )
            .expect("valid venue")
        })
        .collect();

    // The phone: VISITS_PER_DAY visits a day, 30 to 150 minutes, 08:00 to 20:00.
    let mut stored = Vec::new();
    let mut visits = Vec::new();
    for day in 0..DAYS {
        for _ in 0..VISITS_PER_DAY {
            let v = below(&mut rng, VENUES as u64) as usize;
            let arrival =
                UnixTime(FIRST_DAY + day * 86_400 + 8 * 3600 + below(&mut rng, 12 * 3600));
            let departure = arrival.plus_seconds(1800 + below(&mut rng, 7200));
            let check_ins =
                check_in(&venues[v].0, arrival, departure, &mut rng).expect("valid visit");
            visits.push((
                v,
                check_ins[0].hour(),
                check_ins.last().expect("one").hour(),
            ));
            stored.extend(check_ins.iter().map(CheckIn::to_bytes));
        }
    }
    let phone_hours: Vec<VenueHour> = stored
        .iter()
        .map(|b| CheckIn::from_bytes(b).expect("valid").hour())
        .collect();

    // Spread: five cases at the phone's own visits, the rest anywhere.
    let mut spread = Vec::new();
    for &(v, first, last) in visits.iter().take(5) {
        spread.extend(publish(&venues[v], &authority, first, last, &mut rng));
    }
    while spread.len() < KEYS {
        let v = below(&mut rng, VENUES as u64) as usize;
        let day = below(&mut rng, DAYS);
        let first = VenueHour::containing(UnixTime(
            FIRST_DAY + day * 86_400 + (8 + below(&mut rng, 13)) * 3600,
        ))
        .expect("in range");
        let last = VenueHour(first.0 + below(&mut rng, 3) as u32);
        spread.extend(publish(&venues[v], &authority, first, last, &mut rng));
    }
    spread.truncate(KEYS);

    // Worst: every key in an hour the phone was checked in, at some venue.
    let mut worst = Vec::new();
    while worst.len() < KEYS {
        let hour = phone_hours[below(&mut rng, phone_hours.len() as u64) as usize];
        let v = below(&mut rng, VENUES as u64) as usize;
        worst.extend(publish(&venues[v], &authority, hour, hour, &mut rng));
    }

    println!(
        "seed {seed}: {VENUES} venues, {DAYS} days × {VISITS_PER_DAY} visits = {} check-ins, \
         {KEYS} trace keys; one core, this build",
        stored.len()
    );
    let (per_attempt, _) = run("spread", &spread, &stored);
    let (per_attempt_worst, _) = run("worst", &worst, &stored);

    // CrowdNotifier's day labels: each key against every check-in of its day.
    let mut per_day: HashMap<u32, usize> = HashMap::new();
    for h in &phone_hours {
        *per_day.entry(h.day().0).or_default() += 1;
    }
    let day_attempts: usize = spread
        .iter()
        .map(|b| {
            let t = VenueTrace::from_bytes(b).expect("valid");
            per_day.get(&t.key.hour.day().0).copied().unwrap_or(0)
        })
        .sum();
    let cost = per_attempt.max(per_attempt_worst);
    println!(
        "day-labelled (CrowdNotifier) for the spread keys: {day_attempts} attempts ≈ {:.2} s at \
         {:.3} ms per attempt",
        day_attempts as f64 * cost,
        cost * 1e3
    );
}
