//! Matching published keys and tokens against what this phone heard.
//!
//! Both indexes are built once per ingest from the stored encounters, so their size depends
//! on this phone's own history (at most 14 days), never on the batch: a batch of any size
//! streams through in constant memory.
//!
//! - `gaen` ([`GaenIndex`]): the heard RPIs in a hash table keyed by their first 8 bytes,
//!   plus a per-interval count so a diagnosis key whose validity window ± 2 h holds no
//!   sighting costs no derivation at all. Each remaining key costs one RPIK derivation (one
//!   AES key schedule), `rolling_period` AES blocks into a stack buffer, and as many table
//!   probes; no allocation. A hit is confirmed on all 16 bytes, checked against the key's
//!   window ± 2 h ([`MATCH_TOLERANCE_INTERVALS`]), and only then is the AEM decrypted for
//!   the sender's transmit power.
//! - `pet` ([`PetIndex`]): the peer-role tokens in the same kind of table; each published
//!   token costs one probe.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use ephemera_proto::gaen::{DiagnosisKey, MATCH_TOLERANCE_INTERVALS, RollingProximityIdentifier};
use ephemera_proto::report::PublishedToken;
use ephemera_proto::{IntervalNumber, ReportType};
use subtle::ConstantTimeEq;

use crate::risk::{BUCKETS, Infectiousness, RiskConfig};
use crate::signal::{LevelKind, SignalHistogram};
use crate::store::{EncounterRecord, Evidence, WindowId};

/// A hasher for keys that are already uniformly random (AES outputs, HKDF outputs): the
/// first 8 bytes are the hash.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type PrefixMap = HashMap<u64, u32, BuildHasherDefault<PrefixHasher>>;

fn prefix(bytes: &[u8; 16]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// Sorted (prefix, entry) pairs plus a map from prefix to its first position: a multimap
/// with one allocation per table.
#[derive(Debug, Default)]
struct PrefixTable {
    sorted: Vec<(u64, u32)>,
    first: PrefixMap,
}

impl PrefixTable {
    fn build(mut sorted: Vec<(u64, u32)>) -> Self {
        sorted.sort_unstable();
        let mut first = PrefixMap::with_capacity_and_hasher(sorted.len(), Default::default());
        for (position, (p, _)) in sorted.iter().enumerate() {
            first.entry(*p).or_insert(position as u32);
        }
        PrefixTable { sorted, first }
    }

    /// Entries whose prefix is `p`.
    #[inline]
    fn get(&self, p: u64) -> impl Iterator<Item = u32> + '_ {
        let start = self
            .first
            .get(&p)
            .map_or(self.sorted.len(), |s| *s as usize);
        self.sorted[start..]
            .iter()
            .take_while(move |(q, _)| *q == p)
            .map(|(_, e)| *e)
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }
}

/// A window found while streaming a batch; committed only once the batch verifies.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FoundWindow {
    pub(crate) id: WindowId,
    pub(crate) seconds_per_bucket: [u32; BUCKETS],
    pub(crate) infectiousness: Infectiousness,
    pub(crate) report_type: ReportType,
}

/// One heard RPI, as the `gaen` index keeps it.
#[derive(Debug)]
struct HeardRpi {
    rpi: [u8; 16],
    aem: [u8; 4],
    first: IntervalNumber,
    last: IntervalNumber,
    level_kind: LevelKind,
    signal: SignalHistogram,
}

/// The `gaen` matching index over this phone's heard RPIs.
#[derive(Debug, Default)]
pub struct GaenIndex {
    heard: Vec<HeardRpi>,
    table: PrefixTable,
    /// First interval covered by `cumulative`.
    base: u32,
    /// `cumulative[i]` = sightings that started before interval `base + i`.
    cumulative: Vec<u32>,
}

impl GaenIndex {
    /// Builds the index from stored encounters.
    pub(crate) fn build(records: impl IntoIterator<Item = EncounterRecord>) -> Self {
        let mut heard = Vec::new();
        for r in records {
            if let Evidence::Gaen { rpi, aem } = r.evidence {
                heard.push(HeardRpi {
                    rpi,
                    aem,
                    first: r.first_seen.interval(),
                    last: r.last_seen.interval(),
                    level_kind: r.level_kind,
                    signal: r.signal,
                });
            }
        }
        let table = PrefixTable::build(
            heard
                .iter()
                .enumerate()
                .map(|(i, h)| (prefix(&h.rpi), i as u32))
                .collect(),
        );
        let base = heard.iter().map(|h| h.first.0).min().unwrap_or(0);
        let top = heard.iter().map(|h| h.first.0).max().unwrap_or(0);
        let mut cumulative = vec![0u32; (top - base) as usize + 2];
        for h in &heard {
            cumulative[(h.first.0 - base) as usize + 1] += 1;
        }
        for i in 1..cumulative.len() {
            cumulative[i] += cumulative[i - 1];
        }
        GaenIndex {
            heard,
            table,
            base,
            cumulative,
        }
    }

    /// Number of heard RPIs indexed.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Sightings that started in `from..to` (intervals).
    fn sightings_between(&self, from: u32, to: u32) -> u32 {
        if self.heard.is_empty() {
            return 0;
        }
        let clamp = |i: u32| (i.saturating_sub(self.base) as usize).min(self.cumulative.len() - 1);
        let (a, b) = (clamp(from), clamp(to));
        if from < self.base && to < self.base {
            return 0;
        }
        self.cumulative[b] - self.cumulative[a]
    }

    /// Matches one diagnosis key; calls `found` for the window it yields (at most one per
    /// key: all its matched RPIs on its day, GAEN-style).
    pub(crate) fn match_key(
        &self,
        key: &DiagnosisKey,
        risk: &RiskConfig,
        found: &mut impl FnMut(FoundWindow),
    ) {
        let tolerance = MATCH_TOLERANCE_INTERVALS;
        let window_start = key.rolling_start.minus(tolerance).0;
        let window_end = key.rolling_end().plus(tolerance).0;
        if self.sightings_between(window_start, window_end) == 0 {
            return;
        }
        let period = usize::from(key.rolling_period).min(144);
        let mut rpis = [RollingProximityIdentifier([0; 16]); 144];
        let rpik = key.key.rpik();
        rpik.rpis_into(key.rolling_start, &mut rpis[..period]);
        let mut seconds = [0u32; BUCKETS];
        let mut any = false;
        let mut aemk = None;
        for rpi in &rpis[..period] {
            for entry in self.table.get(prefix(&rpi.0)) {
                let heard = &self.heard[entry as usize];
                if !bool::from(heard.rpi.ct_eq(&rpi.0))
                    || !key.window_contains(heard.first, tolerance)
                    || !key.window_contains(heard.last, tolerance)
                {
                    continue;
                }
                let offset = match heard.level_kind {
                    LevelKind::Attenuation => 0,
                    LevelKind::NegatedRssi => {
                        let aemk = aemk.get_or_insert_with(|| key.key.aemk());
                        let metadata = aemk.decrypt(
                            rpi,
                            &ephemera_proto::gaen::AssociatedEncryptedMetadata(heard.aem),
                        );
                        i32::from(metadata.tx_power())
                    }
                };
                for (total, s) in seconds.iter_mut().zip(heard.signal.buckets(offset, risk)) {
                    *total += s;
                }
                any = true;
            }
        }
        if any {
            let day = key.rolling_start.day();
            let mut id = [0u8; 16];
            id.copy_from_slice(key.key.as_bytes());
            found(FoundWindow {
                id: WindowId { day, id },
                seconds_per_bucket: seconds,
                infectiousness: risk.infectiousness(key.days_since_onset),
                report_type: key.report_type,
            });
        }
    }
}

/// One peer-role token, as the `pet` index keeps it.
#[derive(Debug)]
struct HeldToken {
    token: [u8; 16],
    interval: IntervalNumber,
    first_seen: u64,
    level_kind: LevelKind,
    signal: SignalHistogram,
}

/// The `pet` matching index over this phone's peer-role tokens.
#[derive(Debug, Default)]
pub struct PetIndex {
    held: Vec<HeldToken>,
    table: PrefixTable,
    assumed_tx_power: i32,
}

impl PetIndex {
    /// Builds the index from stored encounters.
    pub(crate) fn build(
        records: impl IntoIterator<Item = EncounterRecord>,
        assumed_tx_power: i8,
    ) -> Self {
        let mut held = Vec::new();
        for r in records {
            if let Evidence::Pet { peer, .. } = r.evidence {
                held.push(HeldToken {
                    token: peer.0,
                    interval: r.interval,
                    first_seen: r.first_seen.0,
                    level_kind: r.level_kind,
                    signal: r.signal,
                });
            }
        }
        let table = PrefixTable::build(
            held.iter()
                .enumerate()
                .map(|(i, h)| (prefix(&h.token), i as u32))
                .collect(),
        );
        PetIndex {
            held,
            table,
            assumed_tx_power: i32::from(assumed_tx_power),
        }
    }

    /// Number of tokens indexed.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Checks one published token; calls `found` for each encounter it matches.
    #[inline]
    pub(crate) fn match_token(
        &self,
        published: &PublishedToken,
        risk: &RiskConfig,
        found: &mut impl FnMut(FoundWindow),
    ) {
        for entry in self.table.get(prefix(&published.token.0)) {
            let held = &self.held[entry as usize];
            if !bool::from(held.token.ct_eq(&published.token.0)) {
                continue;
            }
            let offset = match held.level_kind {
                LevelKind::Attenuation => 0,
                LevelKind::NegatedRssi => self.assumed_tx_power,
            };
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&held.token[..8]);
            id[8..].copy_from_slice(&held.first_seen.to_le_bytes());
            found(FoundWindow {
                id: WindowId {
                    day: held.interval.day(),
                    id,
                },
                seconds_per_bucket: held.signal.buckets(offset, risk),
                infectiousness: risk.infectiousness_when_onset_missing,
                report_type: risk.report_type_when_missing,
            });
        }
    }
}
