//! The sniffer attack: after publication, link published keys or tokens to what fixed
//! sniffers logged (place, time, payload).
//!
//! - `gaen`: every published diagnosis key re-derives its day's 144 RPIs, which are looked
//!   up in the sniffer logs. A hit names the place and time the positive person was there,
//!   and all hits of one key are the same person's day.
//! - `pet`: a published token is HKDF output of an X25519 shared secret and the two public
//!   keys; the sniffer has the public keys but neither private key. The best it can do is
//!   (1) look for the token's bytes inside any logged key, and (2) derive the tokens its
//!   own key pairs would share with every logged key and look those up (this is what a
//!   phone does; it finds only encounters the sniffer itself took part in, and a passive
//!   sniffer took part in none). Both must find nothing. (3) Every candidate of (1) and (2)
//!   is also tried against every published token filter (publication version 3,
//!   `docs/PROTOCOL.md` §6.5): a filter must not let a sniffer test its recordings either.
//!   Its only answers are false matches, at 2⁻³² a probe.

use std::collections::{HashMap, HashSet};

use ephemera_proto::batch::{SignedBatch, TrustedNodes};
use ephemera_proto::filter::TokenFilter;
use ephemera_proto::gaen::RollingProximityIdentifier;
use ephemera_proto::pet::{DailySecret, EncounterToken, EphemeralPublicKey, encounter_tokens};
use ephemera_proto::{IntervalNumber, ReportContents};
use serde::Serialize;

use super::engine::{RawRun, SniffRecord};
use super::rng::{Domain, crypto_rng};
use super::scenario::{Scenario, SchemeName};

/// Most sniffer records the `pet` key-agreement attack tries (one X25519 each).
const PET_AGREEMENT_CAP: usize = 50_000;

/// What the attack found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttackResult {
    /// Sniffers deployed.
    pub sniffers: u32,
    /// Broadcasts they logged.
    pub sniffer_records: u64,
    /// Positives who uploaded.
    pub positives_uploaded: u64,
    /// Uploading positives linked to at least one sighting.
    pub positives_linked: u64,
    /// `positives_linked / positives_uploaded`.
    pub linked_fraction: f64,
    /// Sniffer records linked to a published key or token.
    pub sightings_linked: u64,
    /// Mean distinct sniffer places per linked positive and day.
    pub places_per_linked_positive_day: f64,
    /// Mean distinct sniffer places per uploading positive and reported day (all of them).
    pub places_per_positive_day: f64,
    /// Links that named the wrong person (must be 0).
    pub wrong_links: u64,
    /// Published keys (`gaen`) or tokens (`pet`) examined, decoys included.
    pub published_examined: u64,
    /// Candidate values the adversary computed and looked up.
    pub candidates_tried: u64,
    /// Lookups of candidate values in published token filters (`pet`).
    pub filter_probes: u64,
    /// Of those, how many a filter answered "yes" (each names no one: a link by filter).
    pub filter_matches: u64,
    /// How it linked.
    pub method: &'static str,
}

/// Runs the attack of `scenario.scheme` on a finished run.
pub fn attack(scenario: &Scenario, run: &RawRun) -> AttackResult {
    // Every node publishes every report (federation relays them all), so the adversary
    // downloads one node's batches.
    let trusted = TrustedNodes::new().with(run.federation.first().node_key());
    let mut keys = Vec::new();
    let mut tokens = Vec::new();
    let mut filters = Vec::new();
    for batch in run.federation.first().batches() {
        if let Ok((_, contents)) = SignedBatch::verify(&batch.bytes, &trusted) {
            keys.extend(contents.diagnosis_keys);
            tokens.extend(contents.tokens);
        }
        if let Some(Ok(filter)) = batch
            .filter
            .as_ref()
            .map(|bytes| TokenFilter::verify(bytes, &trusted))
        {
            filters.push(filter);
        }
    }
    let (mut filter_probes, mut filter_matches) = (0u64, 0u64);
    let positives_uploaded = run.federation.uploads.len() as u64;
    let reported_days: u64 = run
        .federation
        .uploads
        .iter()
        .map(|u| u64::from(u.at.day().0.saturating_sub(u.first_day.0)) + 1)
        .sum();
    let owner = owners(run);
    let mut links = Links::default();
    let (published_examined, candidates_tried, method) = match scenario.scheme {
        SchemeName::Gaen => {
            let mut logged: HashMap<[u8; 16], Vec<usize>> = HashMap::new();
            for (i, r) in run.sniffed.iter().enumerate() {
                let mut rpi = [0u8; 16];
                rpi.copy_from_slice(&r.id[..16]);
                logged.entry(rpi).or_default().push(i);
            }
            let mut tried = 0u64;
            let mut rpis = [RollingProximityIdentifier([0; 16]); 144];
            for key in &keys {
                let period = usize::from(key.rolling_period).min(144);
                key.key
                    .rpik()
                    .rpis_into(key.rolling_start, &mut rpis[..period]);
                tried += period as u64;
                for rpi in &rpis[..period] {
                    let Some(hits) = logged.get(&rpi.0) else {
                        continue;
                    };
                    for i in hits {
                        links.add(&run.sniffed[*i], owner.get(key.key.as_bytes()));
                    }
                }
            }
            (
                keys.len() as u64,
                tried,
                "re-derive RPIs of published TEKs, look up sniffer logs",
            )
        }
        SchemeName::Pet => {
            let published: HashSet<[u8; 16]> = tokens.iter().map(|t| t.token.0).collect();
            let mut tried = 0u64;
            let mut link = |record: &SniffRecord, token: &[u8; 16]| {
                if published.contains(token) {
                    links.add(record, owner.get(token));
                }
                let candidate = EncounterToken(*token);
                filter_probes += filters.len() as u64;
                filter_matches += filters.iter().filter(|f| f.contains(&candidate)).count() as u64;
            };
            // (1) Token bytes inside logged payloads.
            for record in &run.sniffed {
                for w in record.id.windows(16) {
                    let mut candidate = [0u8; 16];
                    candidate.copy_from_slice(w);
                    tried += 1;
                    link(record, &candidate);
                }
            }
            // (2) The tokens the adversary's own key pairs share with each logged key.
            let adversary =
                DailySecret::generate(&mut crypto_rng(scenario.seed, Domain::Sniffer, &[1]));
            for record in run.sniffed.iter().take(PET_AGREEMENT_CAP) {
                let pair = adversary.ephemeral_key_pair(IntervalNumber(record.interval));
                if let Ok(t) = encounter_tokens(&pair, &EphemeralPublicKey(record.id)) {
                    tried += 2;
                    link(record, &t.own.0);
                    link(record, &t.peer.0);
                }
            }
            (
                tokens.len() as u64,
                tried,
                "look up token bytes in logged keys; derive tokens of own key pairs with every logged key; try both in every token filter",
            )
        }
    };
    let Links {
        places,
        sightings: sightings_linked,
        wrong: wrong_links,
    } = links;
    let linked: HashSet<u32> = places.keys().map(|(a, _)| *a).collect();
    let place_days: usize = places.values().map(HashSet::len).sum();
    let ratio = |a: f64, b: f64| if b > 0.0 { round4(a / b) } else { 0.0 };
    AttackResult {
        sniffers: run.sniffers.len() as u32,
        sniffer_records: run.sniffed.len() as u64,
        positives_uploaded,
        positives_linked: linked.len() as u64,
        linked_fraction: ratio(linked.len() as f64, positives_uploaded as f64),
        sightings_linked,
        places_per_linked_positive_day: ratio(place_days as f64, places.len() as f64),
        places_per_positive_day: ratio(place_days as f64, reported_days as f64),
        wrong_links,
        published_examined,
        candidates_tried,
        filter_probes,
        filter_matches,
        method,
    }
}

/// What the attack linked: (uploader, day) → places, and the sightings behind them.
#[derive(Default)]
struct Links {
    places: HashMap<(u32, u32), HashSet<u32>>,
    sightings: u64,
    wrong: u64,
}

impl Links {
    /// A logged sighting matched something published whose uploader (scoring only: the
    /// attack never reads it) is `owner`.
    fn add(&mut self, record: &SniffRecord, owner: Option<&u32>) {
        self.sightings += 1;
        match owner {
            Some(agent) if *agent == record.agent => {
                self.places
                    .entry((*agent, IntervalNumber(record.interval).day().0))
                    .or_default()
                    .insert(record.place);
            }
            _ => self.wrong += 1,
        }
    }
}

/// Scoring only: the agent who uploaded each key or token.
fn owners(run: &RawRun) -> HashMap<[u8; 16], u32> {
    let mut owner = HashMap::new();
    for upload in &run.federation.uploads {
        match &upload.contents {
            ReportContents::Gaen(keys) => {
                owner.extend(keys.iter().map(|k| (*k.key.as_bytes(), upload.agent)));
            }
            ReportContents::Pet(tokens) => {
                owner.extend(tokens.iter().map(|t| (t.token.0, upload.agent)));
            }
        }
    }
    owner
}

/// Rounds to 4 decimals (summaries stay readable and compare exactly).
pub(crate) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
