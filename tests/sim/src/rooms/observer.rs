//! What an outside observer learns about the cases' movements under each scheme.
//!
//! A case's *trail* is reconstructed when the observer can name at least two distinct
//! venues as that one person's; the share is taken over the cases whose traced days hold
//! two venues or more.
//!
//! - **published places**: the trail is published per case, so every case with a trail
//!   is reconstructed, whatever the observer holds.
//! - **venue check-in**: a venue trace's identity is a hash of the venue's QR code and the
//!   hour, so only an observer holding the QR code can recognise it: it recomputes the
//!   hour's identity from the code and compares it with the one in the trace key
//!   ([`crypto_check`] does so with the real cryptography). An observer holding the codes
//!   of a share of venues (they hang on walls) learns "venue V was flagged for hour H" for
//!   those venues. It links several venues to one case only when the batch they were
//!   published in holds that case alone: then every trace it recognises there is that
//!   case's. With several cases in a batch it cannot tell whose is whose (a lower bound:
//!   times that cannot be one person's would split some). Cases from elsewhere in the
//!   same batch (a Poisson number) count like the town's.
//! - **Bluetooth alone**: Ephemera's `pet` tokens name no place; the sniffer attack of
//!   [`crate::attack`] links none of them to a sighting (`docs/SIMULATION.md`, "The
//!   attack"), so nothing of a trail is reconstructed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ephemera_proto::UnixTime;
use ephemera_proto::sealed::SealingSecretKey;
use ephemera_proto::venue::{EntryCode, Notice, TraceCode, VenueHour, VenueTrace, create_venue};
use serde::Serialize;

use super::visits::{Case, Town};
use super::{RoomsScenario, round4};
use crate::error::SimError;
use crate::rng::{Domain, Stream, crypto_rng};

/// The observer at one venue coverage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObserverRow {
    /// Share of venues whose QR codes the observer holds.
    pub coverage: f64,
    /// Published places: share of cases with a trail reconstructed.
    pub published: f64,
    /// Venue check-in, per `other_cases_per_batch`: share of cases with a trail
    /// reconstructed.
    pub check_in: Vec<f64>,
    /// Bluetooth alone: share reconstructed (none: tokens name no place).
    pub bluetooth: f64,
    /// Share of published check-in venue-hours the observer recognises.
    pub traces_identified: f64,
}

/// The observer's results.
pub struct Observed {
    /// One row per coverage.
    pub rows: Vec<ObserverRow>,
    /// Cases with at least two distinct venues on their traced days.
    pub cases_with_trails: u64,
}

/// One check-in trace: a case's checked-in visit, one hour of it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Trace {
    case: u32,
    venue: u32,
    room: u32,
    /// Absolute venue hour.
    hour: u32,
}

/// Whether the observer holds venue `venue`'s QR codes at `coverage` (nested: a venue
/// held at one coverage is held at every higher one).
fn covered(s: &RoomsScenario, venue: u32, coverage: f64) -> bool {
    Stream::new(s.seed, Domain::Rooms, &[5, u64::from(venue)]).uniform() < coverage
}

/// The batch a case's traces are published in.
fn batch(s: &RoomsScenario, case: &Case) -> u64 {
    (u64::from(s.first_day) * 86_400 + case.reported_at) / (u64::from(s.batch_hours) * 3600)
}

/// Every check-in trace of the run at the scenario's check-in share, by case.
fn traces(s: &RoomsScenario, town: &Town) -> Vec<Trace> {
    let mut out = BTreeSet::new();
    for (c, case) in town.cases.iter().enumerate() {
        for v in town.traced_visits(s, case) {
            if v.check_in >= s.check_in_share {
                continue;
            }
            let base = (s.first_day + v.day) * 24;
            for hour in v.start / 3600..=(v.end - 1) / 3600 {
                out.insert(Trace {
                    case: c as u32,
                    venue: v.venue,
                    room: v.room,
                    hour: base + hour,
                });
            }
        }
    }
    out.into_iter().collect()
}

/// The observer at every coverage of `s`.
pub fn observe(s: &RoomsScenario, town: &Town) -> Observed {
    let trails: Vec<BTreeSet<u32>> = town
        .cases
        .iter()
        .map(|case| town.traced_visits(s, case).map(|v| v.venue).collect())
        .collect();
    let with_trail: Vec<usize> = (0..town.cases.len())
        .filter(|c| trails[*c].len() >= 2)
        .collect();
    let traces = traces(s, town);
    // The published practice lists each case's places under its own heading: reading a
    // heading gives its whole trail.
    let published_reconstructed = with_trail.iter().filter(|c| trails[**c].len() >= 2).count();
    // Check-in: the cases with traces in each batch.
    let mut in_batch: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    for t in &traces {
        in_batch
            .entry(batch(s, &town.cases[t.case as usize]))
            .or_default()
            .insert(t.case);
    }
    let ratio = |a: usize, b: usize| {
        if b > 0 {
            round4(a as f64 / b as f64)
        } else {
            0.0
        }
    };
    let rows = s
        .coverages
        .iter()
        .map(|&coverage| {
            // Per case, the distinct venues the observer recognises among its traces.
            let mut seen: HashMap<u32, BTreeSet<u32>> = HashMap::new();
            let mut identified = 0;
            for t in traces.iter().filter(|t| covered(s, t.venue, coverage)) {
                identified += 1;
                seen.entry(t.case).or_default().insert(t.venue);
            }
            let check_in = s
                .other_cases_per_batch
                .iter()
                .map(|&lambda| {
                    let alone = |case: u32| {
                        let b = batch(s, &town.cases[case as usize]);
                        let others = Stream::new(s.seed, Domain::Rooms, &[6, b, lambda.to_bits()])
                            .poisson(lambda);
                        in_batch.get(&b).is_some_and(|cases| cases.len() == 1) && others == 0
                    };
                    let n = with_trail
                        .iter()
                        .filter(|c| {
                            let c = **c as u32;
                            seen.get(&c).is_some_and(|v| v.len() >= 2) && alone(c)
                        })
                        .count();
                    ratio(n, with_trail.len())
                })
                .collect();
            ObserverRow {
                coverage,
                published: ratio(published_reconstructed, with_trail.len()),
                check_in,
                bluetooth: 0.0,
                traces_identified: ratio(identified, traces.len()),
            }
        })
        .collect();
    Observed {
        rows,
        cases_with_trails: with_trail.len() as u64,
    }
}

/// The observer's test run with the real venue cryptography on a sample of traces.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CryptoCheck {
    /// Venue traces published (real `VenueTrace` bytes).
    pub traces: u64,
    /// Distinct venue rooms among them (one real venue each).
    pub venues: u64,
    /// Entry codes the observer holds (the rooms of covered venues, coverage 0.5).
    pub codes_held: u64,
    /// Traces the observer's identity test recognised.
    pub identified: u64,
    /// Traces the model says it recognises (a covered venue).
    pub modelled: u64,
    /// Whether the recognised traces are exactly the modelled ones, each named right.
    pub agree: bool,
}

/// Creates a real venue for each room among the first `crypto_sample` check-in traces,
/// publishes each trace as the authority does (trace keys of both shares, notice sealed),
/// and runs the observer's test: parse the bytes, recompute the hour's identity from each
/// held entry code and compare it with the trace key's.
///
/// # Errors
/// [`SimError::Node`] if the venue cryptography refuses what it should accept.
pub fn crypto_check(s: &RoomsScenario, town: &Town) -> Result<CryptoCheck, SimError> {
    const COVERAGE: f64 = 0.5;
    let fail = |e: ephemera_proto::venue::VenueError| SimError::Node(format!("venue: {e}"));
    let sample: Vec<Trace> = traces(s, town).into_iter().take(s.crypto_sample).collect();
    let mut rng = crypto_rng(s.seed, Domain::Rooms, &[7]);
    let authority = SealingSecretKey::generate(&mut rng);
    let mut rooms: BTreeMap<(u32, u32), (EntryCode, TraceCode)> = BTreeMap::new();
    for t in &sample {
        if let std::collections::btree_map::Entry::Vacant(e) = rooms.entry((t.venue, t.room)) {
            let (entry, trace_code) = create_venue(
                &authority.public_key(),
                "venue",
                "town",
                UnixTime(0),
                UnixTime(u64::MAX),
                &mut rng,
            )
            .map_err(fail)?;
            e.insert((entry, trace_code));
        }
    }
    // The authority publishes; only bytes leave it.
    let mut published = Vec::new();
    for t in &sample {
        let (entry, trace_code) = &rooms[&(t.venue, t.room)];
        let hour = VenueHour(t.hour);
        let from = hour.start();
        let notice = Notice {
            case_from: from,
            case_until: from.plus_seconds(3599),
            message: "You shared a room with a case.".to_owned(),
        };
        for key in trace_code
            .trace_keys(&authority, hour, hour)
            .map_err(fail)?
        {
            published.push(notice.seal(entry, key, &mut rng).map_err(fail)?.to_bytes());
        }
    }
    // The observer: the entry codes of the covered venues' rooms, from the wall.
    let held: Vec<((u32, u32), EntryCode)> = rooms
        .iter()
        .filter(|((venue, _), _)| covered(s, *venue, COVERAGE))
        .map(|(room, (entry, _))| {
            EntryCode::from_bytes(&entry.to_bytes()).map(|code| (*room, code))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| SimError::Node(format!("venue: {e}")))?;
    let mut identified = 0u64;
    let mut agree = published.len() == sample.len();
    for (bytes, t) in published.iter().zip(&sample) {
        let trace =
            VenueTrace::from_bytes(bytes).map_err(|e| SimError::Node(format!("venue: {e}")))?;
        let named: Vec<(u32, u32)> = held
            .iter()
            .filter(|(_, code)| {
                code.identities([trace.key.hour])
                    .iter()
                    .any(|(_, identity)| *identity == trace.key.identity)
            })
            .map(|(room, _)| *room)
            .collect();
        identified += u64::from(!named.is_empty());
        let expected = covered(s, t.venue, COVERAGE);
        agree &= if expected {
            named == [(t.venue, t.room)]
        } else {
            named.is_empty()
        };
    }
    let modelled = sample
        .iter()
        .filter(|t| covered(s, t.venue, COVERAGE))
        .count() as u64;
    Ok(CryptoCheck {
        traces: published.len() as u64,
        venues: rooms.len() as u64,
        codes_held: held.len() as u64,
        identified,
        modelled,
        agree: agree && identified == modelled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_is_nested() {
        let s = RoomsScenario::default();
        for venue in 0..200 {
            if covered(&s, venue, 0.3) {
                assert!(covered(&s, venue, 0.6));
            }
            assert!(!covered(&s, venue, 0.0));
            assert!(covered(&s, venue, 1.0));
        }
    }
}
