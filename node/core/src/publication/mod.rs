//! Publication (`docs/PROTOCOL.md` §6 and §7): when an accepted entry may be published
//! (the GAEN embargo), and the signed, padded, content-addressed batches and GAEN export
//! files cut at fixed boundaries.
//!
//! Entries wait in the store's publication queue, grouped by upload and release time.
//! [`NodeCore::plan_cut`] takes what is released at the boundary due, splits and pads it
//! ([`BatchCutter`]), signs the batches and encodes the export files; the driver applies
//! the [`CutCommit`] and lists the batches only once it is durable.

mod cutter;
mod filter;
mod key;

use std::collections::BTreeMap;

use ephemera_proto::UnixTime;
use ephemera_proto::batch::{BatchId, BatchIndexEntry};
use ephemera_proto::gaen::{
    ExportError, ExportFile, ExportSigner, SignatureInfo, encode_export_zip_signed_by,
};
use ephemera_proto::report::ReportContents;
use ephemera_proto::upload::{UploadId, key_publishable_at};
use ring::rand::SystemRandom;
use thiserror::Error;

pub use cutter::{BatchCutter, Cut, CutBatch, SEQUENCES_PER_SECOND, first_sequence_of};
pub use filter::TokenFilterError;
pub use key::{PUBLICATION_KEY_LEN, PublicationKey, PublicationKeyFormatError, Section};

use crate::NodeCore;
use crate::store::{
    CutCommit, QueueKey, QueuedEntry, QueuedGroup, ReportStore, StoreError, StoredBatch,
    StoredExport,
};

/// A cut could not be planned.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PublicationError {
    /// Storage failed.
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    /// A GAEN export file could not be signed or encoded.
    #[error("GAEN export: {0}")]
    Export(ExportError),
    /// A batch's token filter could not be built.
    #[error("{0}")]
    Filter(#[from] TokenFilterError),
}

/// The cut of one boundary, signed and ready to apply.
#[derive(Debug)]
pub struct PlannedCut {
    /// The boundary cut.
    pub boundary: UnixTime,
    /// Everything it writes, atomically.
    pub commit: CutCommit,
}

/// A report's entries as the publication queue holds them, each with the 16 bytes that
/// tell it apart (the TEK or the token).
pub(crate) fn entries_of(contents: &ReportContents) -> Vec<([u8; 16], QueuedEntry)> {
    match contents {
        ReportContents::Gaen(keys) => keys
            .iter()
            .map(|k| (*k.key.as_bytes(), QueuedEntry::Key(k.clone())))
            .collect(),
        ReportContents::Pet(tokens) => tokens
            .iter()
            .map(|t| (t.token.0, QueuedEntry::Token(*t)))
            .collect(),
    }
}

/// Groups an upload's entries by release time into queue groups.
pub(crate) fn group_entries(
    upload: UploadId,
    contents: &ReportContents,
    releases: &[UnixTime],
) -> Vec<(QueueKey, QueuedGroup)> {
    let mut groups: BTreeMap<UnixTime, QueuedGroup> = BTreeMap::new();
    for ((_, entry), release_at) in entries_of(contents).into_iter().zip(releases) {
        groups.entry(*release_at).or_default().push(entry);
    }
    groups
        .into_iter()
        .map(|(release_at, group)| (QueueKey { release_at, upload }, group))
        .collect()
}

/// GAEN's `index.txt` order for export file names `<start>-<end>-<num>.zip`: by the
/// numbers, not as text.
pub fn sort_export_names(names: &mut [String]) {
    names.sort_by_key(|n| {
        n.split(['-', '.'])
            .take(3)
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
}

impl NodeCore {
    /// When each entry of a report that arrived at `now` is published, in the report's
    /// order (`docs/PROTOCOL.md` §6.3). Each entry first waits for the first boundary at
    /// or after `now` (never earlier), a `gaen` key also for its embargo (the end of its
    /// validity window plus GAEN's 2-hour tolerance, §2); then each goes to the first
    /// boundary of its own release class ([`PublicationKey::release_class`] of its token or
    /// TEK among the policy's `release_spread_seconds ÷ batch_period_seconds` classes).
    /// So one upload's entries land in batches spread over the spread, independently of
    /// each other and mixed with everyone else's, and every node of the federation that
    /// receives the report within the same batch period files each entry under the same
    /// boundary.
    pub fn release_times(&self, contents: &ReportContents, now: UnixTime) -> Vec<UnixTime> {
        let floor = self.release_floor(now);
        entries_of(contents)
            .iter()
            .map(|(id, entry)| {
                let earliest = match entry {
                    QueuedEntry::Key(k) | QueuedEntry::RevisedKey(k) => {
                        key_publishable_at(k).max(floor)
                    }
                    QueuedEntry::Token(_) => floor,
                };
                self.release_slot(id, earliest)
            })
            .collect()
    }

    /// The first boundary at or after `earliest` of the release class of the entry `id`.
    pub(crate) fn release_slot(&self, id: &[u8; 16], earliest: UnixTime) -> UnixTime {
        let period = self.cutter.period_seconds.max(1);
        let classes = (self.policy.release_spread_seconds / period).max(1);
        let first = if self.cutter.boundary_at(earliest) == earliest {
            earliest
        } else {
            self.cutter.next_boundary(earliest)
        };
        let index = first.0 / period;
        let class = self.publication_key.release_class(id, classes);
        let wait = (class + classes - index % classes) % classes;
        first.plus_seconds(wait * period)
    }

    /// The cutter of this node's policy.
    pub fn cutter(&self) -> &BatchCutter {
        &self.cutter
    }

    /// Plans the cut of the boundary due at `now`, if one is due and not cut yet: the
    /// batches signed with the node's batch key, and for `gaen` keys the GAEN export files
    /// signed with its export key. The decoys are keyed by the publication key; ECDSA
    /// signatures take their nonces from the OS.
    ///
    /// # Errors
    /// [`PublicationError`].
    pub fn plan_cut(
        &self,
        store: &dyn ReportStore,
        now: UnixTime,
    ) -> Result<Option<PlannedCut>, PublicationError> {
        let state = store.cutter_state()?;
        let Some(boundary) = self.cutter.due(&state, now) else {
            return Ok(None);
        };
        let queued = store.queued_until(boundary)?;
        let Some(cut) = self.cutter.cut(&state, queued, now, &self.publication_key) else {
            return Ok(None);
        };
        // Each batch names the one before it (the last of the previous cut first): the
        // node's log, a hash chain (docs/PROTOCOL.md §6.2).
        let mut previous = store.chain_head()?.map_or(BatchId::NONE, |head| head.id);
        let batch_count = cut.batches.len();
        let mut batches = Vec::with_capacity(batch_count);
        let mut exports = Vec::new();
        for (position, batch) in cut.batches.into_iter().enumerate() {
            if !batch.contents.diagnosis_keys.is_empty() {
                exports.push(self.export_file(cut.boundary, position, batch_count, &batch)?);
            }
            let mut contents = batch.contents;
            contents.previous = Some(previous);
            let keys = contents.diagnosis_keys.len() as u32;
            let tokens = contents.tokens.len() as u32;
            let (sequence, created_at) = (contents.sequence, contents.created_at);
            let signed = contents.sign(&self.keys.batch);
            let id = signed.id();
            previous = id;
            let bytes = signed.into_bytes();
            // Built once here and stored beside the batch, so serving a filter never
            // costs the CPU of building one (docs/PROTOCOL.md §6.5).
            let filter = self.token_filter(&bytes)?;
            batches.push(StoredBatch {
                entry: BatchIndexEntry {
                    id,
                    sequence,
                    created_at,
                    size: bytes.len() as u64,
                    keys,
                    tokens,
                },
                purge_at: self.cutter.batch_purge_at(created_at),
                bytes,
                filter,
            });
        }
        Ok(Some(PlannedCut {
            boundary: cut.boundary,
            commit: CutCommit {
                batches,
                exports,
                dequeue: cut.dequeue,
                from: state,
                state: cut.state,
            },
        }))
    }

    /// The GAEN export file of one batch of a cut (keys revised since their first
    /// publication listed apart, as `revised_keys`).
    fn export_file(
        &self,
        boundary: UnixTime,
        position: usize,
        batch_count: usize,
        batch: &CutBatch,
    ) -> Result<StoredExport, PublicationError> {
        let policy = &self.policy;
        let mut file = ExportFile::new(
            boundary.minus_seconds(policy.batch_period_seconds),
            boundary,
            policy.export_region.clone(),
        );
        file.batch_num = position as u32 + 1;
        file.batch_size = batch_count as u32;
        file.keys = batch
            .contents
            .diagnosis_keys
            .iter()
            .filter(|k| !batch.revised_keys.contains(k))
            .cloned()
            .collect();
        file.revised_keys = batch.revised_keys.clone();
        let name = format!(
            "{}-{}-{:05}.zip",
            file.start_timestamp.0, file.end_timestamp.0, file.batch_num
        );
        // During an export key rotation's overlap the file carries both signatures, so
        // apps configured with either key accept it.
        let keys = &self.keys;
        let version = keys
            .export_version
            .clone()
            .unwrap_or_else(|| policy.export_key_version.clone());
        let mut signers = vec![
            keys.export
                .export_signer(SignatureInfo::new(version, policy.export_key_id.clone()))
                .map_err(PublicationError::Export)?,
        ];
        if let Some((next, next_version)) = &keys.next.export {
            signers.push(
                next.export_signer(SignatureInfo::new(
                    next_version.clone(),
                    policy.export_key_id.clone(),
                ))
                .map_err(PublicationError::Export)?,
            );
        }
        let signers: Vec<&ExportSigner> = signers.iter().collect();
        let bytes = encode_export_zip_signed_by(&file, &signers, &SystemRandom::new())
            .map_err(PublicationError::Export)?;
        Ok(StoredExport {
            name,
            bytes,
            purge_at: self.cutter.batch_purge_at(boundary),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
