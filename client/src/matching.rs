//! Matching published keys and tokens against what this phone heard.
//!
//! Both indexes are built once per ingest from the stored encounters, so their size depends
//! on this phone's own history (at most 14 days), never on the batch: a batch of any size
//! streams through in constant memory. The matching itself is proto's kernels
//! ([`GaenMatcher`], [`PetMatcher`]); this module keeps, beside them, what the phone stored
//! with each sighting (metadata, signal histogram) and turns matches into exposure windows.
//!
//! - `gaen` ([`GaenIndex`]): a [`GaenMatcher`] over the heard RPIs, each with the interval
//!   it was first heard in; keys come in runs (`GaenIndex::match_keys`, a few dozen at a
//!   time). The matcher skips keys whose validity window ± 2 h
//!   ([`MATCH_TOLERANCE_INTERVALS`]) holds no sighting and derives one RPIK and
//!   `rolling_period` RPIs for the rest. A hit (exact on all 16 bytes) counts only when the
//!   sighting's last interval is in that widened window too; only then is the AEM
//!   decrypted for the sender's transmit power. All of one key's hits make one window.
//! - `pet` ([`PetIndex`]): a [`PetMatcher`] over the peer-role tokens, each with its day,
//!   scanning raw 20-byte token records (`PetIndex::match_records`). A published token
//!   matches on all 16 token bytes with its day within ±[`PET_DAY_TOLERANCE`] of the
//!   held encounter's (each phone records the day of its own key).

use ephemera_proto::filter::TokenFilter;
use ephemera_proto::gaen::{AssociatedEncryptedMetadata, DiagnosisKey, MATCH_TOLERANCE_INTERVALS};
use ephemera_proto::matching::{GaenMatcher, PetMatcher};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::PublishedToken;
use ephemera_proto::{IntervalNumber, ReportType};

use crate::risk::{BUCKETS, HeardSpan, Infectiousness, RiskConfig};
use crate::signal::{LevelKind, SignalHistogram};
use crate::store::{EncounterRecord, Evidence, WindowId};

/// Days a published `pet` token's day may differ from the held encounter's: the two phones
/// of an encounter each record the day of their own key, which can differ across midnight.
pub const PET_DAY_TOLERANCE: u32 = 1;

/// A window found while streaming a batch; committed only once the batch verifies.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FoundWindow {
    pub(crate) id: WindowId,
    pub(crate) seconds_per_bucket: [u32; BUCKETS],
    pub(crate) infectiousness: Infectiousness,
    pub(crate) report_type: ReportType,
    pub(crate) heard: Option<HeardSpan>,
}

/// What the phone stored with one heard RPI, beside the matcher.
#[derive(Debug)]
struct HeardRpi {
    aem: [u8; 4],
    last: IntervalNumber,
    level_kind: LevelKind,
    signal: SignalHistogram,
}

/// The `gaen` matching index over this phone's heard RPIs.
#[derive(Debug)]
pub struct GaenIndex {
    matcher: GaenMatcher,
    /// By position in the matcher's input.
    heard: Vec<HeardRpi>,
}

/// One diagnosis key's hits so far, while its matches come in.
struct KeyWindow<'k> {
    key: &'k DiagnosisKey,
    seconds: [u32; BUCKETS],
    aemk: Option<ephemera_proto::gaen::AssociatedEncryptedMetadataKey>,
}

impl KeyWindow<'_> {
    fn found(self, risk: &RiskConfig) -> FoundWindow {
        let mut id = [0u8; 16];
        id.copy_from_slice(self.key.key.as_bytes());
        FoundWindow {
            id: WindowId {
                day: self.key.rolling_start.day(),
                id,
            },
            seconds_per_bucket: self.seconds,
            infectiousness: risk.infectiousness(self.key.days_since_onset),
            report_type: self.key.report_type,
            heard: None,
        }
    }
}

impl GaenIndex {
    /// Builds the index from stored encounters.
    pub(crate) fn build(records: impl IntoIterator<Item = EncounterRecord>) -> Self {
        let mut heard = Vec::new();
        let mut rpis = Vec::new();
        for r in records {
            if let Evidence::Gaen { rpi, aem } = r.evidence {
                rpis.push((
                    ephemera_proto::gaen::RollingProximityIdentifier(rpi),
                    r.first_seen.interval(),
                ));
                heard.push(HeardRpi {
                    aem,
                    last: r.last_seen.interval(),
                    level_kind: r.level_kind,
                    signal: r.signal,
                });
            }
        }
        GaenIndex {
            matcher: GaenMatcher::new(rpis),
            heard,
        }
    }

    /// Number of heard RPIs indexed.
    pub fn len(&self) -> usize {
        self.heard.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.heard.is_empty()
    }

    /// Heap bytes the index holds (fixed for one ingest).
    pub fn memory_bytes(&self) -> usize {
        self.matcher.memory_bytes() + self.heard.capacity() * std::mem::size_of::<HeardRpi>()
    }

    /// Matches a run of diagnosis keys (a few dozen at a time is best); calls `found`, in
    /// key order, for the window each matching key yields (at most one per key: all its
    /// matched RPIs on its day, GAEN-style).
    pub(crate) fn match_keys(
        &self,
        keys: &[DiagnosisKey],
        risk: &RiskConfig,
        found: &mut impl FnMut(FoundWindow),
    ) {
        let tolerance = MATCH_TOLERANCE_INTERVALS;
        let mut current: Option<KeyWindow<'_>> = None;
        self.matcher.match_keys(keys, |m| {
            let heard = &self.heard[m.sighting];
            // The matcher checked the first interval heard; the last must be in too.
            if !m.key.window_contains(heard.last, tolerance) {
                return;
            }
            if current
                .as_ref()
                .is_some_and(|w| !std::ptr::eq(w.key, m.key))
            {
                found(current.take().expect("checked").found(risk));
            }
            let window = current.get_or_insert_with(|| KeyWindow {
                key: m.key,
                seconds: [0; BUCKETS],
                aemk: None,
            });
            let offset = match heard.level_kind {
                LevelKind::Attenuation => 0,
                LevelKind::NegatedRssi => {
                    let aemk = window.aemk.get_or_insert_with(|| m.key.key.aemk());
                    let metadata = aemk.decrypt(&m.rpi, &AssociatedEncryptedMetadata(heard.aem));
                    i32::from(metadata.tx_power())
                }
            };
            for (total, s) in window
                .seconds
                .iter_mut()
                .zip(heard.signal.buckets(offset, risk))
            {
                *total += s;
            }
        });
        if let Some(window) = current {
            found(window.found(risk));
        }
    }
}

/// What the phone stored with one peer-role token, beside the matcher.
#[derive(Debug)]
struct HeldToken {
    /// The token, for filter lookups and (its first 8 bytes) the window id.
    token: EncounterToken,
    interval: IntervalNumber,
    heard: HeardSpan,
    level_kind: LevelKind,
    signal: SignalHistogram,
}

/// This phone's peer-role tokens with what it recorded beside each: what a token filter is
/// asked about (a filter needs no matcher, only the tokens and their windows).
#[derive(Debug)]
pub struct HeldTokens {
    /// By position in the stored encounters' order.
    held: Vec<HeldToken>,
    assumed_tx_power: i32,
}

impl HeldTokens {
    /// The peer-role tokens of the stored `pet` encounters.
    pub(crate) fn build(
        records: impl IntoIterator<Item = EncounterRecord>,
        assumed_tx_power: i8,
    ) -> Self {
        let held = records
            .into_iter()
            .filter_map(|r| match r.evidence {
                Evidence::Pet { peer, .. } => Some(HeldToken {
                    token: peer,
                    interval: r.interval,
                    heard: HeardSpan {
                        first: r.first_seen,
                        last: r.last_seen,
                    },
                    level_kind: r.level_kind,
                    signal: r.signal,
                }),
                Evidence::Gaen { .. } => None,
            })
            .collect();
        HeldTokens {
            held,
            assumed_tx_power: i32::from(assumed_tx_power),
        }
    }

    /// Looks every held token up in a batch's token filter; calls `found` for each
    /// encounter the filter holds (a false match has probability 2⁻³² per token).
    pub(crate) fn match_filter(
        &self,
        filter: &TokenFilter,
        risk: &RiskConfig,
        found: &mut impl FnMut(FoundWindow),
    ) {
        for (position, held) in self.held.iter().enumerate() {
            if filter.contains(&held.token) {
                found(self.window(position, risk));
            }
        }
    }

    /// The exposure window of the held token at `position`.
    fn window(&self, position: usize, risk: &RiskConfig) -> FoundWindow {
        let held = &self.held[position];
        let offset = match held.level_kind {
            LevelKind::Attenuation => 0,
            LevelKind::NegatedRssi => self.assumed_tx_power,
        };
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&held.token.0[..8]);
        id[8..].copy_from_slice(&held.heard.first.0.to_le_bytes());
        FoundWindow {
            id: WindowId {
                day: held.interval.day(),
                id,
            },
            seconds_per_bucket: held.signal.buckets(offset, risk),
            infectiousness: risk.infectiousness_when_onset_missing,
            report_type: risk.report_type_when_missing,
            heard: Some(held.heard),
        }
    }
}

/// The `pet` matching index over this phone's peer-role tokens: a [`PetMatcher`] for batch
/// records beside the [`HeldTokens`] it points into.
#[derive(Debug)]
pub struct PetIndex {
    matcher: PetMatcher,
    held: HeldTokens,
}

impl PetIndex {
    /// Builds the index from stored encounters.
    pub(crate) fn build(
        records: impl IntoIterator<Item = EncounterRecord>,
        assumed_tx_power: i8,
    ) -> Self {
        let held = HeldTokens::build(records, assumed_tx_power);
        let tokens = held.held.iter().map(|h| PublishedToken {
            day: h.interval.day(),
            token: h.token,
        });
        PetIndex {
            matcher: PetMatcher::with_day_tolerance(tokens, PET_DAY_TOLERANCE),
            held,
        }
    }

    /// Number of tokens indexed.
    pub fn len(&self) -> usize {
        self.held.held.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.held.held.is_empty()
    }

    /// Heap bytes the index holds (fixed for one ingest).
    pub fn memory_bytes(&self) -> usize {
        self.matcher.memory_bytes() + self.held.held.capacity() * std::mem::size_of::<HeldToken>()
    }

    /// Checks a run of raw batch token records (`day (u32 LE) ‖ token (16)`, 20 bytes
    /// each); calls `found` for each encounter one of them matches.
    #[inline]
    pub(crate) fn match_records(
        &self,
        records: &[u8],
        risk: &RiskConfig,
        found: &mut impl FnMut(FoundWindow),
    ) {
        self.matcher
            .match_records(records, |m| found(self.held.window(m.held, risk)));
    }
}
