//! Venue matching through the phone (issue 20 item 6): a phone with two weeks of
//! check-ins matches 2,250 published trace keys on one thread, in under 10 s
//! (CrowdNotifier reports under 12 s on its tested phones).
//!
//! The phone checks in and out through `Phone::check_in` / `check_out`, 5 visits a day for
//! 14 days at 40 venues, each 1 to 3 hours (starting 07:00, 10:30, 14:00, 17:30 and 21:00,
//! within 30 minutes): 70 visits, about 180 check-ins (one per hour a visit
//! overlaps). The node publishes 2,250 trace keys, each an hour of a case at a venue
//! (random venue, day and hours 08:00-22:00, 1 to 3 hours); 5 cases are at 5 of the
//! phone's own visits. `Phone::match_venue_traces` is timed whole: decoding, indexing,
//! matching, keeping the warnings.
//!
//! `worst`: every published key falls in an hour the phone was checked in (at other
//! venues), so each costs a decryption attempt (one pairing) per check-in of its hour.

use std::time::Instant;

use ephemera_client::store::{MemoryStore, Store};
use ephemera_client::{ClientConfig, Phone};
use ephemera_proto::UnixTime;
use ephemera_proto::sealed::SealingSecretKey;
use ephemera_proto::venue::{EntryCode, Notice, TraceCode, VenueHour, create_venue};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::Figure;

/// Published trace keys (issue 20: 2,250).
const KEYS: usize = 2_250;
/// Days of check-ins kept (the retention period).
const DAYS: u64 = 14;
/// Venues in town.
const VENUES: usize = 40;
/// The earliest starts of the day's five visits (seconds into the day), 3.5 hours apart:
/// a visit starts within 30 minutes of it and lasts 1 to 3 hours, so visits never overlap.
const VISIT_STARTS: [u64; 5] = [25_200, 37_800, 50_400, 63_000, 75_600];
/// Cases at the phone's own visits.
const PLANTED: usize = 5;
/// The limit, seconds on one core.
const LIMIT_SECONDS: f64 = 10.0;
/// 2026-11-23 00:00 UTC.
const FIRST_DAY: u64 = 1_763_856_000;
const DAY: u64 = 86_400;

fn below(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

/// A visit: the venue and the hours it overlaps.
struct Visit {
    venue: usize,
    first: VenueHour,
    last: VenueHour,
}

/// The authority's traces of a case at `venue` from hour `first` to `last`.
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

/// Runs the venue matching benchmark: one timed match per key set, as a phone does it
/// once per download (seconds each, so no repetition budget).
pub fn run() -> Vec<Figure> {
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    let authority = SealingSecretKey::generate(&mut rng);
    let venues: Vec<(EntryCode, TraceCode)> = (0..VENUES)
        .map(|i| {
            create_venue(
                &authority.public_key(),
                &format!("Venue {i}"),
                "Street 1",
                UnixTime(FIRST_DAY),
                UnixTime(FIRST_DAY + (DAYS + 1) * DAY),
                &mut rng,
            )
            .expect("valid venue")
        })
        .collect();

    let config = ClientConfig::default().with_decoy_rate(0.0);
    let mut phone = Phone::new(config, MemoryStore::new(), [20; 32]).expect("valid config");
    let mut visits = Vec::new();
    for day in 0..DAYS {
        for start in VISIT_STARTS {
            let venue = below(&mut rng, VENUES as u64) as usize;
            let arrival = UnixTime(FIRST_DAY + day * DAY + start + below(&mut rng, 1800));
            let departure = arrival.plus_seconds(3600 + below(&mut rng, 7200));
            phone
                .check_in(arrival, &venues[venue].0.to_qr_text())
                .expect("a valid check-in");
            phone.check_out(departure).expect("an open check-in");
            visits.push(Visit {
                venue,
                first: VenueHour::containing(arrival).expect("in range"),
                last: VenueHour::containing(departure).expect("in range"),
            });
        }
    }
    let check_ins = phone.store().check_ins().expect("a memory store").len();
    let now = UnixTime(FIRST_DAY + DAYS * DAY + 3600);

    // Spread: cases anywhere, 5 of them at the phone's visits.
    let mut spread = Vec::new();
    for i in 0..PLANTED {
        let visit = &visits[i * visits.len() / PLANTED];
        spread.extend(publish(
            &venues[visit.venue],
            &authority,
            visit.first,
            visit.first,
            &mut rng,
        ));
    }
    while spread.len() < KEYS {
        let venue = below(&mut rng, VENUES as u64) as usize;
        let hour = (FIRST_DAY + below(&mut rng, DAYS) * DAY) / 3600 + 8 + below(&mut rng, 14);
        let first = VenueHour(u32::try_from(hour).expect("in range"));
        let last = VenueHour(first.0 + below(&mut rng, 3) as u32);
        spread.extend(publish(&venues[venue], &authority, first, last, &mut rng));
    }
    spread.truncate(KEYS);

    // Worst: every key in an hour of one of the phone's visits, at another venue.
    let mut worst = Vec::new();
    while worst.len() < KEYS {
        let visit = &visits[below(&mut rng, visits.len() as u64) as usize];
        let venue = (visit.venue + 1 + below(&mut rng, VENUES as u64 - 1) as usize) % VENUES;
        let hour = VenueHour(
            visit.first.0 + below(&mut rng, u64::from(visit.last.0 - visit.first.0) + 1) as u32,
        );
        worst.extend(publish(&venues[venue], &authority, hour, hour, &mut rng));
    }

    let mut figures = Vec::new();
    for (label, traces) in [("spread", &spread), ("worst", &worst)] {
        let started = Instant::now();
        let summary = phone
            .match_venue_traces(now, traces)
            .expect("matching on a memory store");
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(summary.undecodable, 0);
        if label == "spread" {
            assert!(
                summary.new_warnings >= PLANTED,
                "every planted case warns: {summary:?}"
            );
        }
        eprintln!(
            "venue {label}: {} traces × {check_ins} check-ins ({} visits): {} attempts, {} \
             new warnings, {seconds:.3} s, {:.0} attempts/s",
            traces.len(),
            visits.len(),
            summary.attempts,
            summary.new_warnings,
            summary.attempts as f64 / seconds,
        );
        figures.push(Figure::new(
            &format!("venue-match-{label}-2250-keys-seconds"),
            seconds,
            "s",
            LIMIT_SECONDS,
        ));
        figures.push(Figure::new(
            &format!("venue-match-{label}-attempts-per-second"),
            summary.attempts as f64 / seconds,
            "attempts/s",
            summary.attempts as f64 / LIMIT_SECONDS,
        ));
        figures.push(Figure::new(
            &format!("venue-match-{label}-keys-per-second"),
            traces.len() as f64 / seconds,
            "keys/s",
            KEYS as f64 / LIMIT_SECONDS,
        ));
    }
    figures
}
