//! Token filters (publication version 3, `docs/PROTOCOL.md` §6.5): what a `pet` phone
//! fetches instead of a batch when its node offers one. A filter is verified like a batch
//! (trusted node key, the index entry's id and sequence, the link to the batch at the
//! cursor), then every peer-role token the phone holds is looked up in it.

use ephemera_proto::UnixTime;
use ephemera_proto::batch::{BatchIndexEntry, BatchSummary};
use ephemera_proto::filter::TokenFilter;

use super::Phone;
use crate::error::ClientError;
use crate::matching::HeldTokens;
use crate::request::Response;
use crate::store::{EncounterRecord, Store};

impl<S: Store> Phone<S> {
    /// The answer to a filter request: matched and the cursor moved on; the batch itself
    /// asked for when the node has no filter for it (404: a version 1 batch).
    pub(super) fn on_filter(
        &mut self,
        now: UnixTime,
        response: &Response,
        entry: BatchIndexEntry,
    ) -> Result<(), ClientError> {
        match response.status {
            200 => {}
            404 => {
                self.fetch_batch(entry);
                return Ok(());
            }
            _ => {
                self.sync_failed();
                return Ok(());
            }
        }
        let filter = match TokenFilter::verify(&response.body, &self.trusted_nodes()) {
            Ok(filter) => filter,
            Err(e) => {
                let e = ClientError::from(e);
                self.last_error = Some(e.code());
                self.sync_failed();
                return Err(e);
            }
        };
        let batch = BatchSummary {
            id: filter.batch,
            node: filter.node,
            sequence: filter.sequence,
            created_at: filter.created_at,
            previous: Some(filter.previous),
            // A filter holds no keys; a `pet` phone never matches them.
            keys: 0,
            tokens: filter.tokens,
        };
        self.check_fetched(now, &entry, &batch)?;
        let mut records: Vec<EncounterRecord> = Vec::new();
        self.store
            .for_each_encounter(&mut |r| records.push(r.clone()))?;
        let held = HeldTokens::build(records, self.config.encounter.assumed_tx_power);
        let mut found = Vec::new();
        held.match_filter(&filter, &self.config.risk, &mut |window| found.push(window));
        self.commit_windows(now, found)?;
        self.batch_done(now, &batch)
    }
}
