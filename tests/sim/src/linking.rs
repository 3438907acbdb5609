//! The multi-site active adversary (issue 31, item 2): broadcasting devices at several
//! sites hold real encounters with the people who pass them, like any phone. When a
//! positive uploads, the adversary's phones match their own encounters with that person's
//! published tokens, and each sees which batch each match arrives in. It links matches
//! that arrive in the same batch to one positive: were one upload's tokens published
//! together, that would chain one person's sites and days.
//!
//! The town of [`crate::engine`] uploads a few reports a day, which says nothing about how
//! a positive's matches mix with a country's. So this runs at national rates: a day's
//! uploads arrive at uniform times, each positive holds a Poisson number of matches with
//! the adversary, and every match's batch is the one the node core's own release rule
//! ([`NodeCore::release_times`], keyed as a node keys it) gives its token. Scored over
//! pairs of matches: *precision* is the share of pairs arriving in one batch that are one
//! positive's, *recall* the share of one positive's pairs that arrive in one batch, and
//! *chance* the share of pairs released within one spread of each other (what the upload's
//! time alone tells) that are one positive's.

use std::collections::HashMap;

use ephemera_node_core::{NodeCore, NodeKeys, Policy};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents};
use ephemera_proto::{SchemeKind, UnixTime};
use serde::Serialize;

use super::error::SimError;
use super::rng::{Domain, Stream, crypto_rng};

/// Upload rates of the table: the German app's peak (the national-peak scenario of
/// `docs/SIMULATION.md`), then lower incidences down to a handful a day.
pub const RATES: [f64; 5] = [35_000.0, 1_000.0, 100.0, 10.0, 1.0];

/// Midnight UTC of the first simulated day.
const START: UnixTime = UnixTime(1_767_225_600);

/// One linking experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkingScenario {
    /// Uploads a day, nationally.
    pub uploads_per_day: f64,
    /// Days of uploads.
    pub days: u32,
    /// Mean matches a positive has with the adversary's devices (Poisson).
    pub matches_per_positive: f64,
    /// The node's batch period.
    pub batch_period_seconds: u64,
    /// The node's release spread (`batch_period_seconds` or less: all of an upload's
    /// tokens in one batch, as before issue 31).
    pub release_spread_seconds: u64,
    /// Seed.
    pub seed: u64,
}

/// What the adversary linked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkingResult {
    /// The experiment.
    pub scenario: LinkingScenario,
    /// Positives who uploaded.
    pub positives: u64,
    /// Their matches with the adversary.
    pub matches: u64,
    /// Positives with two matches or more (the only ones a link could chain).
    pub positives_with_pairs: u64,
    /// Pairs of matches of one positive.
    pub true_pairs: u64,
    /// Pairs of matches that arrived in one batch (what the adversary links).
    pub linked_pairs: u64,
    /// Of those, pairs of one positive.
    pub linked_true_pairs: u64,
    /// `linked_true_pairs / linked_pairs`.
    pub precision: f64,
    /// `linked_true_pairs / true_pairs`.
    pub recall: f64,
    /// Share of one positive's pairs among pairs released within one spread (a day by
    /// default) of each other.
    pub chance: f64,
    /// `precision / chance`.
    pub lift: f64,
    /// Mean matches of a positive with pairs that share a batch with another of its own.
    pub linked_matches_per_positive: f64,
}

/// Runs one experiment.
///
/// # Errors
/// [`SimError::Scenario`] for a non-positive period or negative rates.
pub fn link(s: &LinkingScenario) -> Result<LinkingResult, SimError> {
    if s.batch_period_seconds == 0 || s.uploads_per_day < 0.0 || s.matches_per_positive < 0.0 {
        return Err(SimError::Scenario(
            "linking wants a positive batch period and non-negative rates".to_owned(),
        ));
    }
    let mut rng = crypto_rng(s.seed, Domain::Linking, &[]);
    let core = NodeCore::new(
        Policy {
            accept_schemes: vec![SchemeKind::Pet],
            batch_period_seconds: s.batch_period_seconds,
            release_spread_seconds: s.release_spread_seconds,
            ..Policy::default()
        },
        NodeKeys::generate(&mut rng),
        &mut rng,
    );
    let period = s.batch_period_seconds;
    let mut draws = Stream::new(s.seed, Domain::Linking, &[1]);
    // Per batch (boundary index): matches, and matches per positive.
    let mut per_batch: HashMap<u64, (u64, HashMap<u64, u64>)> = HashMap::new();
    let (mut positives, mut matches, mut positives_with_pairs, mut true_pairs) = (0, 0, 0, 0);
    let mut linked_matches = 0u64;
    let mut token_counter = 0u64;
    for day in 0..u64::from(s.days) {
        // A fractional rate: the fraction uploads on a day with that probability.
        let whole = s.uploads_per_day.floor();
        let count = whole as u64 + u64::from(draws.chance(s.uploads_per_day - whole));
        for _ in 0..count {
            let positive = positives;
            positives += 1;
            let k = draws.poisson(s.matches_per_positive);
            if k == 0 {
                continue;
            }
            let at = START.plus_seconds(day * 86_400 + draws.below(86_400));
            let tokens: Vec<PublishedToken> = (0..k)
                .map(|_| {
                    token_counter += 1;
                    let mut token = [0u8; 16];
                    token[..8].copy_from_slice(&token_counter.to_le_bytes());
                    token[8..].copy_from_slice(&draws.next_u64().to_le_bytes());
                    PublishedToken {
                        day: at.day(),
                        token: EncounterToken(token),
                    }
                })
                .collect();
            let releases = core.release_times(&ReportContents::Pet(tokens), at);
            let k = u64::from(k);
            matches += k;
            if k >= 2 {
                positives_with_pairs += 1;
                true_pairs += k * (k - 1) / 2;
            }
            let mut own: HashMap<u64, u64> = HashMap::new();
            for release in releases {
                let batch = release.0 / period;
                *own.entry(batch).or_default() += 1;
                let entry = per_batch.entry(batch).or_default();
                entry.0 += 1;
                *entry.1.entry(positive).or_default() += 1;
            }
            if k >= 2 {
                linked_matches += own.values().filter(|n| **n >= 2).sum::<u64>();
            }
        }
    }
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    let linked_pairs: u64 = per_batch.values().map(|(n, _)| pairs(*n)).sum();
    let linked_true_pairs: u64 = per_batch
        .values()
        .map(|(_, own)| own.values().map(|n| pairs(*n)).sum::<u64>())
        .sum();
    // Pairs released less than one spread apart (every pair of one positive is).
    let window = (s.release_spread_seconds.max(86_400) / period).max(1);
    let mut counts: Vec<(u64, u64)> = per_batch.iter().map(|(b, (n, _))| (*b, *n)).collect();
    counts.sort_unstable();
    let mut window_pairs = 0u64;
    let mut start = 0;
    let mut inside = 0u64;
    for i in 0..counts.len() {
        while counts[i].0 - counts[start].0 >= window {
            inside -= counts[start].1;
            start += 1;
        }
        window_pairs += counts[i].1 * inside + pairs(counts[i].1);
        inside += counts[i].1;
    }
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let precision = ratio(linked_true_pairs, linked_pairs);
    let chance = ratio(true_pairs, window_pairs);
    Ok(LinkingResult {
        scenario: s.clone(),
        positives,
        matches,
        positives_with_pairs,
        true_pairs,
        linked_pairs,
        linked_true_pairs,
        precision: round6(precision),
        recall: round6(ratio(linked_true_pairs, true_pairs)),
        chance: round6(chance),
        lift: round6(if chance > 0.0 {
            precision / chance
        } else {
            0.0
        }),
        linked_matches_per_positive: round6(ratio(linked_matches, positives_with_pairs)),
    })
}

/// Rounds to 6 decimals (small shares stay readable).
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The table of [`RATES`], each with every upload's tokens in one batch (as before issue
/// 31) and with the node's default spread, as Markdown.
///
/// # Errors
/// As [`link`].
pub fn table(
    days: u32,
    matches_per_positive: f64,
    batch_period_seconds: u64,
    seed: u64,
) -> Result<(Vec<LinkingResult>, String), SimError> {
    let mut results = Vec::new();
    let mut out = String::from(
        "| uploads a day | release | matches | positives with ≥ 2 | precision | recall | chance | lift | linked matches per positive |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for rate in RATES {
        for (name, spread) in [
            ("one batch", batch_period_seconds),
            ("spread", Policy::default().release_spread_seconds),
        ] {
            let r = link(&LinkingScenario {
                uploads_per_day: rate,
                days,
                matches_per_positive,
                batch_period_seconds,
                release_spread_seconds: spread,
                seed,
            })?;
            out.push_str(&format!(
                "| {rate} | {name} | {} | {} | {:.6} | {:.4} | {:.6} | {:.2} | {:.3} |\n",
                r.matches,
                r.positives_with_pairs,
                r.precision,
                r.recall,
                r.chance,
                r.lift,
                r.linked_matches_per_positive
            ));
            results.push(r);
        }
    }
    Ok((results, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(uploads_per_day: f64, release_spread_seconds: u64) -> LinkingScenario {
        LinkingScenario {
            uploads_per_day,
            days: 7,
            matches_per_positive: 2.0,
            batch_period_seconds: 3600,
            release_spread_seconds,
            seed: 1,
        }
    }

    /// In one batch, every pair of a positive's matches is linked; spread over a day, a
    /// pair shares a batch about once in 24 and, at a busy rate, the batch is no better
    /// a clue than the day.
    #[test]
    fn spreading_breaks_the_batch_link() {
        let before = link(&scenario(300.0, 3600)).unwrap();
        assert_eq!(before.recall, 1.0);
        // Every match of a positive with pairs shares its batch with its others.
        assert!(before.linked_matches_per_positive >= 2.0);
        assert!(before.lift > 10.0, "one batch links: lift {}", before.lift);
        let after = link(&scenario(300.0, 86_400)).unwrap();
        assert!(after.recall < 0.08, "recall {}", after.recall);
        assert!(after.lift < 3.0, "lift {}", after.lift);
        assert!(after.precision < before.precision / 5.0);
        assert!(after.linked_matches_per_positive < 1.0);
    }
}
