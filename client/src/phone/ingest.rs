//! Streaming batch ingest: verify the node's signature while matching, in bounded memory.
//!
//! # Why the phone checks only the node's signature
//! Batches are flat and padded: keys and tokens of all reports mixed with decoys, with no
//! per-report authority certificate. Shipping certificates would reveal how many people
//! uploaded and group keys or tokens by person. Instead every node verifies each report's
//! authority certificate (and HMAC binding) before it stores or relays it, and signs the
//! batches it cuts; the phone trusts the node keys it is configured with and verifies the
//! batch signature.

use std::collections::HashSet;
use std::sync::Arc;

use ephemera_proto::batch::{
    BatchIndexEntry, BatchStream, BatchSummary, KEY_RUN, TOKEN_RECORD_LEN, TrustedNodes,
};
use ephemera_proto::gaen::{DiagnosisKey, decode_export_zip};
use ephemera_proto::{DayNumber, SchemeKind, UnixTime};

use super::Phone;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::matching::{FoundWindow, GaenIndex, PetIndex};
use crate::request::PhoneEvent;
use crate::risk::ExposureWindow;
use crate::store::{EncounterRecord, Store, WindowId};

/// The matching index of one scheme.
#[derive(Debug)]
enum Index {
    Gaen(GaenIndex),
    Pet(PetIndex),
}

/// One batch being streamed in: feed chunks with [`push`](BatchIngest::push), then give it
/// to [`Phone::finish_batch`].
///
/// It holds the phone's matching index (proto's [`GaenMatcher`] or [`PetMatcher`] with what
/// the phone stored beside each sighting, sized by the phone's own history), a run of at
/// most 64 keys in the batch stream, and the windows found so far (at most one per own
/// encounter); nothing grows with the batch.
///
/// [`GaenMatcher`]: ephemera_proto::matching::GaenMatcher
/// [`PetMatcher`]: ephemera_proto::matching::PetMatcher
pub struct BatchIngest<'c> {
    stream: BatchStream<'c>,
    index: Index,
    config: Arc<ClientConfig>,
    found: Vec<FoundWindow>,
    found_ids: HashSet<WindowId>,
    entries: u64,
}

impl std::fmt::Debug for BatchIngest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchIngest")
            .field("entries", &self.entries)
            .field("found", &self.found.len())
            .finish_non_exhaustive()
    }
}

impl BatchIngest<'_> {
    /// Feeds the next chunk of the batch (any size; records may straddle chunks).
    ///
    /// Matches found are tentative until [`Phone::finish_batch`] has checked the signature.
    ///
    /// # Errors
    /// [`ClientError::Batch`] for bad framing or an untrusted node, as soon as seen.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ClientError> {
        let BatchIngest {
            stream,
            index,
            config,
            found,
            found_ids,
            entries,
        } = self;
        let risk = &config.risk;
        let mut keep = |window: FoundWindow| {
            if found_ids.insert(window.id) {
                found.push(window);
            }
        };
        // Records come in bulk: keys in runs of up to 64 (what the GAEN kernel wants), token
        // records as raw slabs straight from the chunk. Entries of the other scheme are not
        // ours to match, only counted.
        let (mut keys_seen, mut tokens_seen) = (0u64, 0u64);
        let result = match &*index {
            Index::Gaen(ix) => stream.push_records(
                chunk,
                &mut |keys: &[DiagnosisKey]| {
                    keys_seen += keys.len() as u64;
                    ix.match_keys(keys, risk, &mut keep);
                },
                &mut |records: &[u8]| tokens_seen += (records.len() / TOKEN_RECORD_LEN) as u64,
            ),
            Index::Pet(ix) => stream.push_records(
                chunk,
                &mut |keys: &[DiagnosisKey]| keys_seen += keys.len() as u64,
                &mut |records: &[u8]| {
                    tokens_seen += (records.len() / TOKEN_RECORD_LEN) as u64;
                    ix.match_records(records, risk, &mut keep);
                },
            ),
        };
        *entries += keys_seen + tokens_seen;
        result?;
        Ok(())
    }

    /// Records parsed so far (keys and tokens, decoys included).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Tentative matches so far.
    pub fn matches(&self) -> usize {
        self.found.len()
    }

    /// Bytes this ingest holds beyond the batch stream's fixed buffers: the found windows.
    /// It depends on matches, never on the batch's size.
    pub fn retained_bytes(&self) -> usize {
        self.found.capacity() * std::mem::size_of::<FoundWindow>()
            + self.found_ids.capacity() * std::mem::size_of::<WindowId>()
    }

    /// Heap bytes of the matching index: fixed for the ingest, sized by the phone's own
    /// history.
    pub fn index_bytes(&self) -> usize {
        match &self.index {
            Index::Gaen(ix) => ix.memory_bytes(),
            Index::Pet(ix) => ix.memory_bytes(),
        }
    }

    /// Indexed own keys or tokens.
    pub fn indexed(&self) -> usize {
        match &self.index {
            Index::Gaen(ix) => ix.len(),
            Index::Pet(ix) => ix.len(),
        }
    }
}

/// What matching one GAEN export file did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// Keys in the file.
    pub keys: usize,
    /// Exposure windows newly found.
    pub new_windows: usize,
}

/// What ingesting one batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestSummary {
    /// The verified batch header.
    pub batch: BatchSummary,
    /// Records parsed.
    pub entries: u64,
    /// Exposure windows newly found (already known ones are not counted again).
    pub new_windows: usize,
}

impl<S: Store> Phone<S> {
    /// Starts streaming a batch: builds the matching index from the stored encounters.
    /// `trusted` is usually `&phone.trusted_nodes()` (the configured keys and those
    /// followed through the node's rollovers).
    ///
    /// # Errors
    /// [`ClientError::Store`] when the encounters cannot be read; [`ClientError::Ended`]
    /// once the phone has ended.
    pub fn begin_batch<'c>(
        &self,
        trusted: &'c TrustedNodes,
    ) -> Result<BatchIngest<'c>, ClientError> {
        self.ensure_running()?;
        let mut records: Vec<EncounterRecord> = Vec::new();
        self.store
            .for_each_encounter(&mut |r| records.push(r.clone()))?;
        let index = match self.config.scheme {
            SchemeKind::Gaen => Index::Gaen(GaenIndex::build(records)),
            SchemeKind::Pet => Index::Pet(PetIndex::build(
                records,
                self.config.encounter.assumed_tx_power,
            )),
        };
        Ok(BatchIngest {
            stream: BatchStream::new(trusted),
            index,
            config: Arc::clone(&self.config),
            found: Vec::new(),
            found_ids: HashSet::new(),
            entries: 0,
        })
    }

    /// Finishes a streamed batch: checks completeness and the node signature, then keeps
    /// the windows found and emits [`PhoneEvent::ExposureFound`] for each day whose
    /// exposure grew.
    ///
    /// # Errors
    /// [`ClientError::Batch`] for a truncated or badly signed batch (nothing is kept);
    /// [`ClientError::Store`].
    pub fn finish_batch(
        &mut self,
        now: UnixTime,
        ingest: BatchIngest<'_>,
    ) -> Result<IngestSummary, ClientError> {
        let now = self.tick_lenient(now)?;
        let BatchIngest {
            stream,
            found,
            entries,
            ..
        } = ingest;
        let batch = stream.finish()?;
        let new_windows = self.commit_windows(now, found)?;
        Ok(IngestSummary {
            batch,
            entries,
            new_windows,
        })
    }

    /// Verifies and matches a whole batch held in memory (streamed internally in 64 KiB
    /// chunks).
    ///
    /// # Errors
    /// As [`BatchIngest::push`] and [`Phone::finish_batch`].
    pub fn handle_batch(
        &mut self,
        now: UnixTime,
        bytes: &[u8],
    ) -> Result<IngestSummary, ClientError> {
        let trusted = self.trusted_nodes();
        let mut ingest = self.begin_batch(&trusted)?;
        for chunk in bytes.chunks(64 * 1024) {
            ingest.push(chunk)?;
        }
        self.finish_batch(now, ingest)
    }

    /// Verifies and matches a batch read from `reader` in 64 KiB chunks.
    ///
    /// # Errors
    /// As [`Phone::handle_batch`]; a read error counts as a truncated batch.
    pub fn handle_batch_reader(
        &mut self,
        now: UnixTime,
        reader: &mut impl std::io::Read,
    ) -> Result<IngestSummary, ClientError> {
        let config = Arc::clone(&self.config);
        let mut ingest = self.begin_batch(&config.trusted_nodes)?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            ingest.push(&buffer[..n])?;
        }
        self.finish_batch(now, ingest)
    }

    /// Finishes a batch fetched for the sync loop and moves the cursor on.
    pub(super) fn finish_fetched(
        &mut self,
        now: UnixTime,
        ingest: BatchIngest<'_>,
        entry: BatchIndexEntry,
    ) -> Result<IngestSummary, ClientError> {
        let BatchIngest {
            stream,
            found,
            entries,
            ..
        } = ingest;
        let batch = match stream.finish() {
            Ok(batch) => batch,
            Err(e) => {
                let e = ClientError::from(e);
                self.batch_failed(&e);
                return Err(e);
            }
        };
        self.check_fetched(now, &entry, &batch)?;
        let new_windows = self.commit_windows(now, found)?;
        self.batch_done(now, &batch)?;
        Ok(IngestSummary {
            batch,
            entries,
            new_windows,
        })
    }

    /// Checks a verified batch (or filter) summary against the index entry it was fetched
    /// for and the batch at the cursor; a refusal stops the round.
    pub(super) fn check_fetched(
        &mut self,
        now: UnixTime,
        entry: &BatchIndexEntry,
        batch: &BatchSummary,
    ) -> Result<(), ClientError> {
        let checked = if batch.id != entry.id {
            Err(ClientError::BatchIdMismatch)
        } else if batch.sequence != entry.sequence {
            // The cursor moves to the batch's signed sequence only: an index (unsigned,
            // from any server or cache on the way) that claimed `u64::MAX` stopped every
            // later sync of the phone (issue 31, item 5).
            Err(ClientError::BatchSequenceMismatch)
        } else {
            // A batch that does not chain to the cursor's is not matched: a forged link, or
            // one withheld in between (docs/PROTOCOL.md §6.2).
            self.check_link(now, batch)
        };
        if let Err(e) = &checked {
            self.last_error = Some(e.code());
            self.sync_failed();
        }
        checked
    }

    /// Matches a GAEN export archive (`export.bin` + `export.sig` in a zip) from any GAEN
    /// key server: its signature must verify against one of the configured
    /// `gaen_export_keys` (proto's decoder). First-release keys are matched like batch keys;
    /// revised keys are not (a revision changes metadata, not identifiers).
    ///
    /// # Errors
    /// [`ClientError::NoExportKey`] unless the phone is `gaen` with an export key;
    /// [`ClientError::Export`] with the last key's error when no key verifies it.
    pub fn handle_gaen_export(
        &mut self,
        now: UnixTime,
        zip: &[u8],
    ) -> Result<ExportSummary, ClientError> {
        let now = self.tick_lenient(now)?;
        if self.config.scheme != SchemeKind::Gaen || self.config.gaen_export_keys.is_empty() {
            return Err(ClientError::NoExportKey);
        }
        let mut last = None;
        let mut file = None;
        for key in &self.config.gaen_export_keys {
            match decode_export_zip(zip, key) {
                Ok(f) => {
                    file = Some(f);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(file) = file else {
            return Err(ClientError::Export(last.expect("at least one key tried")));
        };
        let mut records: Vec<EncounterRecord> = Vec::new();
        self.store
            .for_each_encounter(&mut |r| records.push(r.clone()))?;
        let index = GaenIndex::build(records);
        let mut found = Vec::new();
        let mut ids = HashSet::new();
        for keys in file.keys.chunks(KEY_RUN) {
            index.match_keys(keys, &self.config.risk, &mut |w: FoundWindow| {
                if ids.insert(w.id) {
                    found.push(w);
                }
            });
        }
        let new_windows = self.commit_windows(now, found)?;
        Ok(ExportSummary {
            keys: file.keys.len(),
            new_windows,
        })
    }

    /// Keeps found windows and reports the days whose exposure grew.
    pub(super) fn commit_windows(
        &mut self,
        now: UnixTime,
        found: Vec<FoundWindow>,
    ) -> Result<usize, ClientError> {
        let mut days: Vec<DayNumber> = Vec::new();
        let mut new_windows = 0;
        for window in found {
            let exposure = ExposureWindow {
                day: window.id.day,
                seconds_per_bucket: window.seconds_per_bucket,
                infectiousness: window.infectiousness,
                report_type: window.report_type,
                heard: window.heard,
            };
            if self.store.put_window(&window.id, &exposure)? {
                new_windows += 1;
                if !days.contains(&window.id.day) {
                    days.push(window.id.day);
                }
            }
        }
        days.sort_unstable();
        for day in days {
            let windows = self.store.windows_of(day)?;
            let daily = self.config.risk.daily(day, now.day(), &windows);
            if daily.windows > 0 {
                self.push_event(PhoneEvent::ExposureFound(daily))?;
            }
        }
        // Windows and their events become durable together.
        self.store.flush()?;
        Ok(new_windows)
    }

    /// The exposure of every day that has counting windows, oldest first.
    ///
    /// # Errors
    /// [`ClientError::Store`]; [`ClientError::Ended`] once the phone has ended or its end
    /// has come (the next input erases it).
    pub fn exposures(&self, now: UnixTime) -> Result<Vec<crate::risk::DailyExposure>, ClientError> {
        self.ensure_running_at(now)?;
        let mut out = Vec::new();
        for day in self.store.window_days()? {
            let windows = self.store.windows_of(day)?;
            let daily = self.config.risk.daily(day, now.day(), &windows);
            if daily.windows > 0 {
                out.push(daily);
            }
        }
        Ok(out)
    }
}
