//! The batch cutter: a pure function from (state, queued entries, now) to the batches to
//! publish. [`crate::NodeCore::plan_cut`] runs it and signs what it cut.
//!
//! Batches are cut at fixed boundaries (multiples of the period since the epoch), dated at
//! the boundary rather than at the moment the task ran, and each section padded with decoys
//! up to a size bucket (the minimum, then its doublings up to the most per batch), so
//! neither their timing nor their size says how many people uploaded. A boundary with no
//! upload still gets a batch (all decoys). A node that was down does not back-fill missed
//! boundaries: its next cut takes everything released by then.
//!
//! The cut is a function of what was released and of the federation's publication key
//! (`docs/PROTOCOL.md` §6.4): real entries are sorted before they are split, and the decoys
//! of each section come from a stream keyed by the boundary and the batch's place in the
//! cut, shaped like the real entries by quantile. So two nodes holding the same entries
//! publish the same batch bodies, and comparing them strips nothing; where their entries
//! differ by a few, only a few decoys differ.

use ephemera_proto::batch::BatchContents;
use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportType};
use ephemera_proto::time::SECONDS_PER_DAY;
use ephemera_proto::upload::key_publishable_at;
use ephemera_proto::{SchemeKind, UnixTime};
use rand_core::Rng;

use super::{PublicationKey, Section};
use crate::policy::Policy;
use crate::store::{CutterState, QueueKey, QueuedEntry, QueuedGroup};

/// Cuts batches at fixed boundaries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BatchCutter {
    /// Seconds between boundaries.
    pub period_seconds: u64,
    /// The smallest size bucket of a padded section (decoys fill up).
    pub min_entries: usize,
    /// Most real entries per batch.
    pub max_entries: usize,
    /// Days of retention: older entries are dropped, decoy days are drawn from it.
    pub retention_days: u32,
    /// Give an empty key section decoy keys (the node accepts `gaen`), so a batch does
    /// not tell whether anyone uploaded keys.
    pub pad_keys: bool,
    /// Give an empty token section decoy tokens (the node accepts `pet`).
    pub pad_tokens: bool,
}

/// One batch of a cut, before signing.
#[derive(Clone, Debug)]
pub struct CutBatch {
    /// Everything the batch publishes (revised keys included), padded.
    pub contents: BatchContents,
    /// Keys among `contents.diagnosis_keys` published before with another report type
    /// (for GAEN export files' `revised_keys`).
    pub revised_keys: Vec<DiagnosisKey>,
}

/// The outcome of one cut.
#[derive(Clone, Debug)]
pub struct Cut {
    /// The boundary cut.
    pub boundary: UnixTime,
    /// Batches to sign, in sequence order, padded.
    pub batches: Vec<CutBatch>,
    /// Queue groups consumed (published or dropped).
    pub dequeue: Vec<QueueKey>,
    /// State after the cut.
    pub state: CutterState,
    /// Real entries published.
    pub published: usize,
    /// Entries dropped because they were older than retention.
    pub dropped: usize,
}

/// Sequence numbers per second of boundary time: the first batch of the boundary at `t`
/// seconds is numbered `t × 1000`, later ones of the same cut follow.
pub const SEQUENCES_PER_SECOND: u64 = 1000;

/// The lowest sequence number a batch of `boundary` gets (`docs/PROTOCOL.md` §6).
pub fn first_sequence_of(boundary: UnixTime) -> u64 {
    boundary.0.saturating_mul(SEQUENCES_PER_SECOND)
}

impl BatchCutter {
    /// The cutter a policy describes.
    pub fn from_policy(policy: &Policy) -> Self {
        BatchCutter {
            period_seconds: policy.batch_period_seconds,
            min_entries: policy.batch_min_entries,
            max_entries: policy.batch_max_entries,
            retention_days: policy.retention_days,
            pad_keys: policy.accepts(SchemeKind::Gaen),
            pad_tokens: policy.accepts(SchemeKind::Pet),
        }
    }

    /// The earliest boundary a node that started at `started` may cut. Once the node has cut
    /// before (`last_cut`), a boundary that began before the start may have been cut by its
    /// former life (a restored backup does not know), so it is left to the next one, which
    /// publishes what it held. A node that never cut may cut the boundary it started in.
    pub fn first_boundary_after_start(
        &self,
        started: UnixTime,
        last_cut: Option<UnixTime>,
    ) -> UnixTime {
        match last_cut {
            None => self.boundary_at(started),
            Some(_) => self.next_boundary(started),
        }
    }

    /// The latest boundary at or before `now`.
    pub fn boundary_at(&self, now: UnixTime) -> UnixTime {
        let period = self.period_seconds.max(1);
        UnixTime(now.0 / period * period)
    }

    /// The first boundary after `now`.
    pub fn next_boundary(&self, now: UnixTime) -> UnixTime {
        self.boundary_at(now)
            .plus_seconds(self.period_seconds.max(1))
    }

    /// The boundary to cut at `now`, if it has not been cut yet.
    pub fn due(&self, state: &CutterState, now: UnixTime) -> Option<UnixTime> {
        let boundary = self.boundary_at(now);
        match state.last_boundary {
            Some(last) if last >= boundary => None,
            _ => Some(boundary),
        }
    }

    /// The size a section of `real` entries is padded to: `min_entries`, or the first of its
    /// doublings that holds them, at most `max_entries` (sections of a split cut are full).
    pub fn bucket(&self, real: usize) -> usize {
        if real <= self.min_entries {
            return self.min_entries;
        }
        let mut size = self.min_entries.max(1);
        while size < real {
            size = size.saturating_mul(2);
        }
        size.min(self.max_entries.max(self.min_entries)).max(real)
    }

    /// Cuts the boundary due at `now` from `queued` (groups released by then; later ones
    /// are left alone), its decoys keyed by `key`. Returns `None` when no boundary is due.
    pub fn cut(
        &self,
        state: &CutterState,
        queued: Vec<(QueueKey, QueuedGroup)>,
        now: UnixTime,
        key: &PublicationKey,
    ) -> Option<Cut> {
        let boundary = self.due(state, now)?;
        let oldest_day = boundary.day().minus(self.retention_days);
        let mut dequeue = Vec::new();
        let mut entries = Vec::new();
        let mut dropped = 0;
        for (key, group) in queued {
            if key.release_at > boundary {
                continue;
            }
            dequeue.push(key);
            for entry in group {
                let day = match &entry {
                    QueuedEntry::Key(k) | QueuedEntry::RevisedKey(k) => {
                        k.rolling_end().minus(1).day()
                    }
                    QueuedEntry::Token(t) => t.day,
                };
                if day < oldest_day {
                    dropped += 1;
                } else {
                    entries.push(entry);
                }
            }
        }
        let published = entries.len();
        // The same entries make the same batches wherever they are cut, whatever order the
        // queue (by upload) held them in.
        entries.sort_by_key(order);
        // Never below the boundary's own position: a node restored from an older backup (or
        // upgraded over a moved-aside folder) numbers on from where time is, not from
        // where its database stopped, so no phone's cursor is already past its batches.
        let mut next_sequence = state.next_sequence.max(first_sequence_of(boundary)).max(1);
        let mut batches = Vec::new();
        let mut chunks: Vec<&[QueuedEntry]> = entries.chunks(self.max_entries.max(1)).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for (position, chunk) in chunks.into_iter().enumerate() {
            batches.push(self.batch(next_sequence, boundary, position as u32, chunk, key));
            next_sequence += 1;
        }
        Some(Cut {
            boundary,
            batches,
            dequeue,
            state: CutterState {
                next_sequence,
                last_boundary: Some(boundary),
            },
            published,
            dropped,
        })
    }

    fn batch(
        &self,
        sequence: u64,
        boundary: UnixTime,
        position: u32,
        entries: &[QueuedEntry],
        key: &PublicationKey,
    ) -> CutBatch {
        let mut contents = BatchContents {
            sequence,
            created_at: boundary,
            ..Default::default()
        };
        let mut revised_keys = Vec::new();
        for entry in entries {
            match entry {
                QueuedEntry::Key(k) => contents.diagnosis_keys.push(k.clone()),
                QueuedEntry::RevisedKey(k) => {
                    contents.diagnosis_keys.push(k.clone());
                    revised_keys.push(k.clone());
                }
                QueuedEntry::Token(t) => contents.tokens.push(*t),
            }
        }
        // A section with real entries, or of an accepted scheme, is padded to its bucket;
        // with neither section of an accepted scheme (no policy does that), the token one.
        let keys = contents.diagnosis_keys.len();
        if keys > 0 || self.pad_keys {
            let decoys = self.bucket(keys) - keys;
            let mut rng = key.decoy_rng(boundary, position, Section::Keys);
            let drawn = self.decoy_keys(&contents.diagnosis_keys, boundary, decoys, &mut rng);
            contents.diagnosis_keys.extend(drawn);
        }
        let tokens = contents.tokens.len();
        if tokens > 0 || self.pad_tokens || (keys == 0 && !self.pad_keys) {
            let decoys = self.bucket(tokens) - tokens;
            let mut rng = key.decoy_rng(boundary, position, Section::Tokens);
            let drawn = self.decoy_tokens(&contents.tokens, boundary, decoys, &mut rng);
            contents.tokens.extend(drawn);
        }
        CutBatch {
            contents,
            revised_keys,
        }
    }

    /// `count` decoy keys: each the key bytes and quantile the stream gives it, in that
    /// order, so the n-th decoy of a boundary is the same at every node. With real keys,
    /// the real key at that quantile (sorted by metadata) lends its window, type and onset,
    /// so decoys follow the real keys' distribution and a few more or fewer real keys move
    /// few decoys. Without, a confirmed whole-day key of a day past its embargo.
    fn decoy_keys(
        &self,
        real: &[DiagnosisKey],
        boundary: UnixTime,
        count: usize,
        rng: &mut impl Rng,
    ) -> Vec<DiagnosisKey> {
        let mut templates: Vec<&DiagnosisKey> = real.iter().collect();
        templates.sort_by_key(|k| {
            (
                k.rolling_start,
                k.rolling_period,
                k.report_type.code(),
                k.days_since_onset,
            )
        });
        // Only days whose whole-day key is past its embargo at this boundary: a decoy a
        // real key could never be (today's, say) would mark the batch as all decoys.
        let newest = if key_publishable_at(&whole_day_key(boundary.day().minus(1))) <= boundary {
            boundary.day().minus(1)
        } else {
            boundary.day().minus(2)
        };
        let span = self
            .retention_days
            .max(1)
            .saturating_sub(boundary.day().0 - newest.0)
            .max(1);
        (0..count)
            .map(|_| {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                let u = rng.next_u64();
                let mut decoy = match quantile(u, templates.len()) {
                    Some(i) => templates[i].clone(),
                    None => whole_day_key(newest.minus((u % u64::from(span)) as u32)),
                };
                decoy.key = TemporaryExposureKey(bytes);
                decoy
            })
            .collect()
    }

    /// `count` decoy tokens, as [`Self::decoy_keys`]: the day of the real token at the
    /// stream's quantile (sorted by day), or without real ones a day of the retention
    /// period.
    fn decoy_tokens(
        &self,
        real: &[PublishedToken],
        boundary: UnixTime,
        count: usize,
        rng: &mut impl Rng,
    ) -> Vec<PublishedToken> {
        let mut days: Vec<_> = real.iter().map(|t| t.day).collect();
        days.sort_unstable();
        let retention = u64::from(self.retention_days.max(1));
        (0..count)
            .map(|_| {
                let mut token = [0u8; 16];
                rng.fill_bytes(&mut token);
                let u = rng.next_u64();
                let day = match quantile(u, days.len()) {
                    Some(i) => days[i],
                    None => boundary.day().minus((u % retention) as u32),
                };
                PublishedToken {
                    day,
                    token: EncounterToken(token),
                }
            })
            .collect()
    }

    /// When a batch cut at `created_at` is deleted.
    pub fn batch_purge_at(&self, created_at: UnixTime) -> UnixTime {
        created_at.plus_seconds(u64::from(self.retention_days) * SECONDS_PER_DAY)
    }
}

/// The index at quantile `u ÷ 2⁶⁴` of a sorted list of `len`, `None` for an empty list.
fn quantile(u: u64, len: usize) -> Option<usize> {
    (len > 0).then(|| ((u128::from(u) * len as u128) >> 64) as usize)
}

/// The order real entries are cut in: keys before tokens, each by its bytes (then its day
/// or window, for the same bytes twice).
fn order(entry: &QueuedEntry) -> (u8, [u8; 16], u32) {
    match entry {
        QueuedEntry::Key(k) | QueuedEntry::RevisedKey(k) => {
            (0, *k.key.as_bytes(), k.rolling_start.0)
        }
        QueuedEntry::Token(t) => (1, t.token.0, t.day.0),
    }
}

/// A confirmed whole-day key of `day` (its key bytes to be drawn).
fn whole_day_key(day: ephemera_proto::DayNumber) -> DiagnosisKey {
    DiagnosisKey {
        key: TemporaryExposureKey([0; 16]),
        rolling_start: day.first_interval(),
        rolling_period: 144,
        report_type: ReportType::ConfirmedTest,
        days_since_onset: None,
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::upload::UploadId;

    use super::*;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn cutter() -> BatchCutter {
        BatchCutter {
            period_seconds: 3600,
            min_entries: 10,
            max_entries: 4,
            retention_days: 14,
            pad_keys: false,
            pad_tokens: true,
        }
    }

    fn token_group(
        release_at: UnixTime,
        upload: u8,
        days_ago: u32,
        n: u8,
    ) -> (QueueKey, QueuedGroup) {
        (
            QueueKey {
                release_at,
                upload: UploadId([upload; 32]),
            },
            (0..n)
                .map(|i| {
                    QueuedEntry::Token(PublishedToken {
                        day: release_at.day().minus(days_ago),
                        token: EncounterToken([upload.wrapping_mul(16).wrapping_add(i); 16]),
                    })
                })
                .collect(),
        )
    }

    #[test]
    fn boundaries_are_fixed_multiples_of_the_period() {
        let c = cutter();
        assert_eq!(c.boundary_at(NOW).0 % 3600, 0);
        assert!(c.boundary_at(NOW) <= NOW && NOW < c.next_boundary(NOW));
        let state = CutterState {
            next_sequence: 5,
            last_boundary: Some(c.boundary_at(NOW)),
        };
        assert_eq!(c.due(&state, NOW), None);
        assert_eq!(
            c.due(&state, c.next_boundary(NOW)),
            Some(c.next_boundary(NOW))
        );
        assert_eq!(
            c.due(&CutterState::default(), NOW),
            Some(c.boundary_at(NOW))
        );
    }

    #[test]
    fn sequences_never_go_back_even_from_an_older_state() {
        let c = cutter();
        let key = PublicationKey::from_bytes([3; 32]);
        let boundary = c.boundary_at(NOW);
        // The state of a restored backup: an old counter and an old boundary.
        let restored = CutterState {
            next_sequence: 6,
            last_boundary: Some(boundary.minus_seconds(7200)),
        };
        let cut = c.cut(&restored, vec![], NOW, &key).unwrap();
        assert_eq!(
            cut.batches[0].contents.sequence,
            first_sequence_of(boundary)
        );
        // A counter already ahead of the boundary's position (many batches in one cut)
        // goes on from itself.
        let ahead = CutterState {
            next_sequence: first_sequence_of(boundary) + 5000,
            last_boundary: Some(boundary.minus_seconds(3600)),
        };
        let cut = c.cut(&ahead, vec![], NOW, &key).unwrap();
        assert_eq!(cut.batches[0].contents.sequence, ahead.next_sequence);
        let last = Some(boundary.minus_seconds(3600));
        assert_eq!(
            c.first_boundary_after_start(NOW, last),
            c.next_boundary(NOW)
        );
        assert_eq!(c.first_boundary_after_start(NOW, None), boundary);
    }

    #[test]
    fn a_cut_takes_what_is_released_pads_and_splits() {
        let c = cutter();
        let key = PublicationKey::from_bytes([1; 32]);
        let boundary = c.boundary_at(NOW);
        let queued = vec![
            token_group(boundary.minus_seconds(10), 1, 1, 3),
            token_group(boundary, 2, 0, 3),
            token_group(boundary.plus_seconds(1), 3, 0, 3),
            token_group(boundary.minus_seconds(20), 4, 20, 2),
        ];
        let state = CutterState {
            next_sequence: 7,
            last_boundary: None,
        };
        let cut = c.cut(&state, queued, NOW, &key).unwrap();
        assert_eq!(cut.boundary, boundary);
        assert_eq!(cut.published, 6);
        assert_eq!(cut.dropped, 2, "older than retention");
        assert_eq!(cut.dequeue.len(), 3, "the later group stays queued");
        assert_eq!(cut.batches.len(), 2, "6 entries at most 4 per batch");
        // Numbered from the boundary's position (the stored counter is lower).
        let first = first_sequence_of(boundary);
        assert_eq!(first, boundary.0 * 1000);
        assert_eq!(cut.batches[0].contents.sequence, first);
        assert_eq!(cut.batches[1].contents.sequence, first + 1);
        assert_eq!(
            cut.state,
            CutterState {
                next_sequence: first + 2,
                last_boundary: Some(boundary)
            }
        );
        for batch in &cut.batches {
            assert_eq!(
                batch.contents.created_at, boundary,
                "dated at the boundary, not at `now`"
            );
            assert_eq!(batch.contents.tokens.len(), 10, "padded to the minimum");
        }
        assert!(c.cut(&cut.state, vec![], NOW, &key).is_none(), "cut once");
    }

    #[test]
    fn empty_sections_of_accepted_schemes_are_padded_and_revised_keys_are_named() {
        let c = cutter();
        let pkey = PublicationKey::from_bytes([2; 32]);
        let cut = c.cut(&CutterState::default(), vec![], NOW, &pkey).unwrap();
        assert_eq!(cut.batches.len(), 1);
        assert_eq!(
            cut.batches[0].contents.sequence,
            first_sequence_of(c.boundary_at(NOW))
        );
        assert_eq!(cut.batches[0].contents.tokens.len(), 10);
        assert!(
            cut.batches[0].contents.diagnosis_keys.is_empty(),
            "gaen not accepted here"
        );
        assert_eq!(cut.published, 0);

        let key = DiagnosisKey {
            key: TemporaryExposureKey([9; 16]),
            rolling_start: NOW.day().minus(2).first_interval(),
            rolling_period: 144,
            report_type: ReportType::ConfirmedTest,
            days_since_onset: None,
        };
        let revised = DiagnosisKey {
            key: TemporaryExposureKey([8; 16]),
            ..key.clone()
        };
        let queued = vec![(
            QueueKey {
                release_at: NOW,
                upload: UploadId([1; 32]),
            },
            vec![
                QueuedEntry::Key(key.clone()),
                QueuedEntry::RevisedKey(revised.clone()),
            ],
        )];
        let later = c.next_boundary(NOW);
        let both = BatchCutter {
            pad_keys: true,
            ..c
        };
        let cut = both.cut(&cut.state, queued, later, &pkey).unwrap();
        let batch = &cut.batches[0];
        assert_eq!(batch.contents.diagnosis_keys.len(), 10);
        assert!(batch.contents.diagnosis_keys.contains(&key));
        assert!(batch.contents.diagnosis_keys.contains(&revised));
        assert_eq!(batch.revised_keys, vec![revised]);
        assert_eq!(
            batch.contents.tokens.len(),
            10,
            "an empty token section is padded too"
        );

        // With both schemes accepted, a quiet boundary shows both sections at the minimum.
        let quiet = both
            .cut(&cut.state, vec![], both.next_boundary(later), &pkey)
            .unwrap();
        assert_eq!(quiet.batches[0].contents.diagnosis_keys.len(), 10);
        assert_eq!(quiet.batches[0].contents.tokens.len(), 10);
    }

    #[test]
    fn decoy_keys_of_an_empty_section_are_ones_a_real_key_could_be() {
        let c = BatchCutter {
            pad_keys: true,
            min_entries: 200,
            ..cutter()
        };
        let key = PublicationKey::from_bytes([3; 32]);
        let day = NOW.day();
        // Just after midnight yesterday's keys are still under embargo; later they are not.
        for boundary in [
            day.first_interval().start(),
            day.first_interval().start().plus_seconds(3 * 3600),
        ] {
            let state = CutterState::default();
            let cut = c.cut(&state, vec![], boundary, &key).unwrap();
            let keys = &cut.batches[0].contents.diagnosis_keys;
            assert_eq!(keys.len(), 200);
            for key in keys {
                assert!(
                    key_publishable_at(key) <= boundary,
                    "a decoy key of day {:?} at boundary {boundary:?}",
                    key.rolling_start.day()
                );
                assert!(key.rolling_start.day() >= boundary.day().minus(c.retention_days));
            }
        }
    }

    #[test]
    fn sections_are_padded_to_buckets_at_every_size_with_decoys_only_the_key_gives() {
        let c = BatchCutter {
            min_entries: 16,
            max_entries: 1000,
            ..cutter()
        };
        let buckets: Vec<usize> = [0, 16, 17, 100, 513, 1000].map(|n| c.bucket(n)).to_vec();
        assert_eq!(buckets, [16, 16, 32, 128, 1000, 1000]);

        let key = PublicationKey::from_bytes([4; 32]);
        let boundary = c.boundary_at(NOW);
        let state = CutterState::default();
        let contents = |queued, key: &PublicationKey| {
            let cut = c.cut(&state, queued, NOW, key).unwrap();
            assert_eq!(cut.batches.len(), 1);
            cut.batches[0].contents.clone()
        };
        let (a, b) = (
            token_group(boundary, 1, 3, 40),
            token_group(boundary, 5, 9, 40),
        );
        let real: std::collections::BTreeSet<_> =
            a.1.iter()
                .chain(&b.1)
                .map(|e| match e {
                    QueuedEntry::Token(t) => (t.day, t.token.0),
                    _ => unreachable!("token groups hold tokens"),
                })
                .collect();
        let ours = contents(vec![a.clone(), b.clone()], &key);
        assert_eq!(
            ours.tokens.len(),
            128,
            "80 real entries fill the 128 bucket"
        );
        // The same entries queued otherwise (another node's upload ids, another order).
        let mut renamed = (b.clone(), a.clone());
        renamed.0.0.upload = UploadId([9; 32]);
        renamed.1.0.upload = UploadId([8; 32]);
        assert_eq!(contents(vec![renamed.0, renamed.1], &key), ours);

        // Another key: other decoys, and comparing the two leaves exactly the real entries,
        // which is what a federation without one shared key would show.
        let theirs = contents(
            vec![a.clone(), b.clone()],
            &PublicationKey::from_bytes([5; 32]),
        );
        let set = |c: &BatchContents| -> std::collections::BTreeSet<_> {
            c.tokens.iter().map(|t| (t.day, t.token.0)).collect()
        };
        let common: std::collections::BTreeSet<_> =
            set(&ours).intersection(&set(&theirs)).copied().collect();
        assert_eq!(common, real);

        // One entry more (a report one node got a period late): few entries differ.
        let mut more = a.clone();
        more.1.push(QueuedEntry::Token(PublishedToken {
            day: boundary.day().minus(3),
            token: EncounterToken([0xee; 16]),
        }));
        let one_more = contents(vec![more, b], &key);
        let differ = set(&ours).symmetric_difference(&set(&one_more)).count();
        // The new real entry and the decoy it displaced (a decoy's day moves only where the
        // real days' quantiles cross a day).
        assert!(differ <= 4, "{differ} entries differ");
    }
}
