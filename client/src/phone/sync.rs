//! The sync loop: a cursor over the node's batch index, one batch at a time.

use std::collections::VecDeque;

use ephemera_proto::UnixTime;
use ephemera_proto::batch::{BatchIndex, BatchIndexEntry};

use super::{Pending, Phone};
use crate::error::ClientError;
use crate::request::{Method, PhoneEvent, Response};
use crate::store::{MetaKey, Store};

/// Where the sync loop stands.
#[derive(Debug)]
pub(super) struct SyncState {
    /// Sequence of the last batch ingested (persisted).
    cursor: u64,
    phase: Phase,
    /// Batches ingested in this round.
    ingested: u32,
}

#[derive(Debug)]
enum Phase {
    Idle,
    AwaitingIndex,
    Fetching(VecDeque<BatchIndexEntry>),
}

impl SyncState {
    pub(super) fn load(store: &impl Store) -> Result<Self, ClientError> {
        let cursor = store
            .meta(MetaKey::SyncCursor)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes);
        Ok(SyncState {
            cursor,
            phase: Phase::Idle,
            ingested: 0,
        })
    }
}

impl<S: Store> Phone<S> {
    /// The batch index cursor: the sequence of the last batch ingested.
    pub fn sync_cursor(&self) -> u64 {
        self.sync.cursor
    }

    /// Starts a sync round now unless one is running: asks for the batch index after the
    /// cursor. (Also started by [`handle_timeout`](Phone::handle_timeout) on schedule.)
    ///
    /// # Errors
    /// [`ClientError::Store`].
    pub fn start_sync(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let now = self.tick(now)?;
        self.start_sync_round(now);
        Ok(())
    }

    /// Starts a sync round unless one is running: the node's sealing key (for the verify
    /// and upload bodies) and the batch index after the cursor, side by side.
    pub(super) fn start_sync_round(&mut self, _now: UnixTime) {
        if matches!(self.sync.phase, Phase::Idle) {
            self.sync.ingested = 0;
            self.request_sealing_key();
            self.request_index();
        }
    }

    fn request_index(&mut self) {
        self.sync.phase = Phase::AwaitingIndex;
        let path = format!("/v1/batches?after={}", self.sync.cursor);
        self.push_request(Pending::FetchIndex, Method::Get, path, None, Vec::new());
    }

    pub(super) fn on_index(
        &mut self,
        now: UnixTime,
        response: &Response,
    ) -> Result<(), ClientError> {
        if response.status != 200 {
            self.sync_failed();
            return Ok(());
        }
        let Ok(index) = serde_json::from_slice::<BatchIndex>(&response.body) else {
            self.sync_failed();
            return Err(ClientError::Decode(ephemera_proto::DecodeError::Malformed));
        };
        let mut batches: Vec<BatchIndexEntry> = index
            .batches
            .into_iter()
            .filter(|b| b.sequence > self.sync.cursor)
            .collect();
        batches.sort_by_key(|b| b.sequence);
        if batches.is_empty() {
            self.sync_complete(now)?;
        } else {
            self.sync.phase = Phase::Fetching(batches.into());
            self.fetch_next();
        }
        Ok(())
    }

    fn fetch_next(&mut self) {
        let Phase::Fetching(queue) = &mut self.sync.phase else {
            return;
        };
        match queue.pop_front() {
            Some(entry) => {
                let path = format!("/v1/batches/{}", entry.id.to_hex());
                self.push_request(
                    Pending::FetchBatch(entry),
                    Method::Get,
                    path,
                    None,
                    Vec::new(),
                );
            }
            // The page is done: ask for the next one; an empty page ends the round.
            None => self.request_index(),
        }
    }

    /// A fetched batch was ingested: move and persist the cursor, fetch the next.
    pub(super) fn batch_done(&mut self, _now: UnixTime, sequence: u64) -> Result<(), ClientError> {
        if sequence > self.sync.cursor {
            self.sync.cursor = sequence;
            self.store
                .set_meta(MetaKey::SyncCursor, &sequence.to_le_bytes())?;
            self.store.flush()?;
        }
        self.sync.ingested += 1;
        self.fetch_next();
        Ok(())
    }

    fn sync_complete(&mut self, now: UnixTime) -> Result<(), ClientError> {
        self.sync.phase = Phase::Idle;
        self.last_sync = Some(now);
        self.store
            .set_meta(MetaKey::LastSync, &now.0.to_le_bytes())?;
        self.push_event(PhoneEvent::SyncCompleted {
            cursor: self.sync.cursor,
            batches: self.sync.ingested,
        })?;
        self.store.flush()?;
        Ok(())
    }

    /// The round stops; the next one retries from the cursor.
    pub(super) fn sync_failed(&mut self) {
        self.sync.phase = Phase::Idle;
    }

    /// A batch failed verification: tell the app, stop the round (the cursor stays, so the
    /// next round retries it).
    pub(super) fn batch_failed(&mut self, error: &ClientError) {
        self.last_error = Some(error.code());
        if let ClientError::Batch(e) = error {
            // Never kept (see `events.rs`), so this cannot fail.
            let _ = self.push_event(PhoneEvent::BatchRejected(e.clone()));
        }
        self.sync_failed();
    }
}
