//! The sync loop: a cursor over the node's batch index, one batch at a time.
//!
//! Each index page also carries the node's batch-key rollovers. The phone follows those
//! announced under a key it trusts (configured, or followed before) and keeps them, so it
//! verifies the batches of the next key after the node switches. A rollover is kept as
//! the pair it links: when an app update drops a configured key (a stolen one), every key
//! followed from it is dropped too.
//!
//! The node's log (`docs/PROTOCOL.md` §6.2) holds it to one history: each page carries its
//! signed head, which must be trusted, fresh, not behind the cursor and, at the cursor,
//! name the batch ingested there; each chained batch must name the batch at the cursor as
//! its predecessor; and a round ends only once the cursor reached the head. Nothing moves
//! the cursor but a verified batch. An index without a head (a node of version 1) and
//! unchained batches are accepted during the transition, until the phone has seen a
//! chained batch.

use std::collections::VecDeque;

use ephemera_proto::batch::{BatchId, BatchIndex, BatchIndexEntry, BatchSummary, TrustedNodes};
use ephemera_proto::batch_log::{HeadConflict, HeadError, SignedHead};
use ephemera_proto::rollover::KeyRole;
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::{SchemeKind, UnixTime};

use super::{Pending, Phone};
use crate::error::ClientError;
use crate::request::{Method, PhoneEvent, Response};
use crate::store::{MetaKey, Store};

/// Most rollovers of one index page looked at, and most kept: a node rotates its batch key
/// a few times in its life, and a hostile page costs at most this many checks.
const MAX_ROLLOVERS: usize = 64;

/// Where the sync loop stands.
#[derive(Debug)]
pub(super) struct SyncState {
    /// Sequence of the last batch ingested (persisted).
    cursor: u64,
    /// Batch-key rollovers followed, old key then new (persisted).
    followed: Vec<(Ed25519PublicKey, Ed25519PublicKey)>,
    /// The batch at the cursor (persisted): the next chained batch must name it.
    held: Option<Held>,
    /// The latest signed head of the node verified (persisted).
    head: Option<SignedHead>,
    /// The head of this round's latest index page.
    round_head: Option<SignedHead>,
    phase: Phase,
    /// Whether this round's index offers token filters (publication version 3).
    filters: bool,
    /// Batches ingested in this round.
    ingested: u32,
}

/// The batch at the cursor.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Held {
    /// Its id.
    id: BatchId,
    /// Whether the phone has ingested a chained batch of the node: from then on an
    /// unchained one is refused.
    chained: bool,
}

impl Held {
    fn to_bytes(self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[..32].copy_from_slice(&self.id.0);
        out[32] = u8::from(self.chained);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Held> {
        let (id, chained) = bytes.split_first_chunk::<32>()?;
        Some(Held {
            id: BatchId(*id),
            chained: chained == [1],
        })
    }
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
        let followed = store
            .meta(MetaKey::NodeKeyRollovers)?
            .unwrap_or_default()
            .chunks_exact(64)
            .map(|pair| {
                let key = |b: &[u8]| Ed25519PublicKey(b.try_into().expect("32 bytes"));
                (key(&pair[..32]), key(&pair[32..]))
            })
            .collect();
        let held = store
            .meta(MetaKey::SyncHeld)?
            .and_then(|b| Held::from_bytes(&b));
        let head = store
            .meta(MetaKey::NodeHead)?
            .and_then(|b| SignedHead::from_bytes(&b).ok());
        Ok(SyncState {
            cursor,
            followed,
            held,
            head,
            round_head: None,
            phase: Phase::Idle,
            filters: false,
            ingested: 0,
        })
    }
}

impl SyncState {
    /// The latest signed head of the node the phone verified.
    pub(super) fn head(&self) -> Option<SignedHead> {
        self.head
    }

    /// Whether `head` names another batch than the one ingested under its sequence (the
    /// cursor's).
    pub(super) fn forks_at_cursor(&self, head: &SignedHead) -> bool {
        head.head.sequence == self.cursor && self.held.is_some_and(|held| held.id != head.head.head)
    }
}

impl<S: Store> Phone<S> {
    /// The batch index cursor: the sequence of the last batch ingested.
    pub fn sync_cursor(&self) -> u64 {
        self.sync.cursor
    }

    /// The node keys batches are verified with: the configured ones, and those announced
    /// by rollovers followed from them.
    pub fn trusted_nodes(&self) -> TrustedNodes {
        let mut trusted = self.config.trusted_nodes.clone();
        // Follow the kept pairs from the configured keys, whatever order they were kept in.
        while let Some((_, new)) = self
            .sync
            .followed
            .iter()
            .find(|(old, new)| trusted.contains(old) && !trusted.contains(new))
        {
            trusted.insert(*new);
        }
        trusted
    }

    /// Follows the batch-key rollovers of an index page announced under a trusted key and
    /// keeps them (before any batch of the page is fetched).
    fn follow_rollovers(&mut self, index: &BatchIndex) -> Result<(), ClientError> {
        if index.key_rollovers.is_empty() {
            return Ok(());
        }
        let offered = &index.key_rollovers[..index.key_rollovers.len().min(MAX_ROLLOVERS)];
        let mut trusted = self.trusted_nodes();
        let followed = trusted.follow(KeyRole::Batch, offered);
        if followed.is_empty() {
            return Ok(());
        }
        for rollover in followed {
            if self.sync.followed.len() < MAX_ROLLOVERS {
                self.sync.followed.push((rollover.old, rollover.new));
            }
        }
        let bytes: Vec<u8> = self
            .sync
            .followed
            .iter()
            .flat_map(|(old, new)| old.0.into_iter().chain(new.0))
            .collect();
        self.store.set_meta(MetaKey::NodeKeyRollovers, &bytes)?;
        self.store.flush()?;
        Ok(())
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

    /// Starts a sync round unless one is running: the batch index after the cursor and,
    /// beside it, the node's sealing key (for the verify and upload bodies), with a
    /// federation configured the authority's token keys. When the batches are done (or
    /// the batch step stopped), the venue releases follow (feature `venue`,
    /// `venue_releases.rs`). The index goes
    /// first: a page may announce a batch-key rollover, and the key is signed by the
    /// current batch key.
    pub(super) fn start_sync_round(&mut self, _now: UnixTime) {
        if matches!(self.sync.phase, Phase::Idle) {
            self.sync.ingested = 0;
            self.sync.round_head = None;
            self.request_index();
            self.request_sealing_key();
            self.request_token_keys();
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
        // The order is checked on its own approvals (the index is not signed), before
        // anything else of the page: an order in effect ends the phone here.
        if let Some(order) = &index.sunset
            && let Err(e) = self.on_sunset_order(now, order)
        {
            if e != ClientError::Ended {
                self.sync_failed();
            }
            return Err(e);
        }
        if let Err(e) = self.follow_rollovers(&index) {
            self.sync_failed();
            return Err(e);
        }
        if let Some(head) = index.head
            && let Err(e) = self.check_head(now, head)
        {
            self.last_error = Some(e.code());
            self.sync_failed();
            return Err(e);
        }
        self.sync.filters = index.token_filters;
        let mut batches: Vec<BatchIndexEntry> = index
            .batches
            .into_iter()
            .filter(|b| b.sequence > self.sync.cursor)
            .collect();
        batches.sort_by_key(|b| b.sequence);
        if batches.is_empty() {
            if let Err(e) = self.check_reached_head() {
                self.last_error = Some(e.code());
                self.sync_failed();
                return Err(e);
            }
            self.sync_complete(now)?;
        } else {
            self.sync.phase = Phase::Fetching(batches.into());
            self.fetch_next();
        }
        Ok(())
    }

    /// Checks a page's signed head against what the phone holds: trusted, fresh, not
    /// contradicting the head it holds, not behind the cursor, and at the cursor naming the
    /// batch ingested there. Kept for the round's end ([`Self::check_reached_head`]).
    fn check_head(&mut self, now: UnixTime, head: SignedHead) -> Result<(), ClientError> {
        let max_age = self.config.sync.max_head_age_seconds;
        head.verify(&self.trusted_nodes())?;
        head.check_fresh(now, max_age)?;
        let known = self.sync.head;
        if let Some(known) = &known {
            match head.conflict_with(known) {
                Some(HeadConflict::Equivocation) => return Err(ClientError::HeadForked),
                Some(HeadConflict::Rollback) => return Err(ClientError::HeadRolledBack),
                None => {}
            }
        }
        if head.head.sequence < self.sync.cursor {
            // A copy older than a head already verified is a cache's replay, not the
            // node going back.
            if known.is_some_and(|k| head.head.issued_at < k.head.issued_at) {
                return Err(HeadError::Stale {
                    issued_at: head.head.issued_at.0,
                    max_age,
                }
                .into());
            }
            return Err(ClientError::HeadRolledBack);
        }
        if self.sync.forks_at_cursor(&head) {
            return Err(ClientError::HeadForked);
        }
        self.sync.round_head = Some(head);
        Ok(())
    }

    /// At the end of a round: the index must have reached this round's head, which then
    /// becomes the head the phone holds (a head whose log the phone could not follow is
    /// never kept).
    fn check_reached_head(&mut self) -> Result<(), ClientError> {
        let Some(head) = self.sync.round_head else {
            return Ok(());
        };
        if self.sync.cursor < head.head.sequence {
            return Err(ClientError::IndexBehindHead);
        }
        if self.sync.forks_at_cursor(&head) {
            return Err(ClientError::HeadForked);
        }
        if self.sync.head.is_none_or(|known| {
            (head.head.sequence, head.head.issued_at) > (known.head.sequence, known.head.issued_at)
        }) {
            self.sync.head = Some(head);
            self.store.set_meta(MetaKey::NodeHead, &head.to_bytes())?;
        }
        Ok(())
    }

    /// Checks that a verified batch chains to the batch at the cursor: a chained batch must
    /// name it (unless the phone missed a whole retention period, whose batches are gone),
    /// and once the phone has seen a chained batch an unchained one is refused.
    pub(super) fn check_link(
        &self,
        now: UnixTime,
        batch: &BatchSummary,
    ) -> Result<(), ClientError> {
        let Some(held) = self.sync.held else {
            return Ok(());
        };
        match batch.previous {
            Some(previous) if previous == held.id => Ok(()),
            Some(_) if self.missed_retention(now) => Ok(()),
            None if !held.chained => Ok(()),
            _ => Err(ClientError::BatchChainBroken),
        }
    }

    /// Whether the last completed sync is older than the retention period: the batch after
    /// the cursor may be purged, so the first batch listed cannot link to it.
    fn missed_retention(&self, now: UnixTime) -> bool {
        let retention = u64::from(self.config.retention_days) * 86_400;
        self.last_sync
            .is_some_and(|last| now.0.saturating_sub(last.0) > retention)
    }

    fn fetch_next(&mut self) {
        let Phase::Fetching(queue) = &mut self.sync.phase else {
            return;
        };
        match queue.pop_front() {
            // A `pet` phone needs only the filter of a batch with tokens, when offered.
            Some(entry)
                if self.sync.filters
                    && self.config.scheme == SchemeKind::Pet
                    && entry.tokens > 0 =>
            {
                let path = format!("/v1/batches/{}/filter", entry.id.to_hex());
                self.push_request(
                    Pending::FetchFilter(entry),
                    Method::Get,
                    path,
                    None,
                    Vec::new(),
                );
            }
            Some(entry) => self.fetch_batch(entry),
            // The page is done: ask for the next one; an empty page ends the round.
            None => self.request_index(),
        }
    }

    /// Asks for the batch of `entry` itself (also when the node has no filter for it: a
    /// version 1 batch).
    pub(super) fn fetch_batch(&mut self, entry: BatchIndexEntry) {
        let path = format!("/v1/batches/{}", entry.id.to_hex());
        self.push_request(
            Pending::FetchBatch(entry),
            Method::Get,
            path,
            None,
            Vec::new(),
        );
    }

    /// A fetched batch was ingested: move and persist the cursor and the batch held at it,
    /// fetch the next.
    pub(super) fn batch_done(
        &mut self,
        _now: UnixTime,
        batch: &BatchSummary,
    ) -> Result<(), ClientError> {
        if batch.sequence > self.sync.cursor {
            let held = Held {
                id: batch.id,
                chained: batch.previous.is_some()
                    || self.sync.held.is_some_and(|held| held.chained),
            };
            self.sync.cursor = batch.sequence;
            self.sync.held = Some(held);
            self.store
                .set_meta(MetaKey::SyncCursor, &batch.sequence.to_le_bytes())?;
            self.store.set_meta(MetaKey::SyncHeld, &held.to_bytes())?;
            self.store.flush()?;
        }
        self.sync.ingested += 1;
        self.fetch_next();
        Ok(())
    }

    fn sync_complete(&mut self, now: UnixTime) -> Result<(), ClientError> {
        self.batch_step_ended();
        self.last_sync = Some(now);
        self.store
            .set_meta(MetaKey::LastSync, &now.0.to_le_bytes())?;
        self.push_event(PhoneEvent::SyncCompleted {
            cursor: self.sync.cursor,
            batches: self.sync.ingested,
        })?;
        self.store.flush()?;
        if self.sealing_key.is_none() && self.flows_await_key {
            // The key answer came before a rollover this round followed: ask again.
            self.request_sealing_key();
        }
        Ok(())
    }

    /// The round's batch step stops; the next round retries from the cursor.
    pub(super) fn sync_failed(&mut self) {
        self.batch_step_ended();
    }

    /// The batch step of a running round ended, done or stopped: the venue release step
    /// follows, whatever the batches did (feature `venue`).
    fn batch_step_ended(&mut self) {
        if !matches!(
            std::mem::replace(&mut self.sync.phase, Phase::Idle),
            Phase::Idle
        ) {
            #[cfg(feature = "venue")]
            self.start_release_round();
        }
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

#[cfg(test)]
mod tests {
    use ephemera_proto::SchemeKind;
    use ephemera_proto::batch::{BatchContents, NodeSigningKey, SignedBatch};
    use ephemera_proto::rollover::KeyRollover;

    use super::*;
    use crate::config::ClientConfig;
    use crate::error::ClientError;
    use crate::request::Response;
    use crate::store::MemoryStore;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn key(byte: u8) -> NodeSigningKey {
        NodeSigningKey::from_seed(&[byte; 32])
    }

    fn batch(key: &NodeSigningKey, sequence: u64) -> SignedBatch {
        BatchContents {
            sequence,
            created_at: NOW,
            ..Default::default()
        }
        .sign(key)
    }

    fn phone(store: MemoryStore, trusted: &NodeSigningKey) -> Phone<MemoryStore> {
        let config = ClientConfig::new(SchemeKind::Pet)
            .with_trusted_node(trusted.public_key())
            .with_decoy_rate(0.0);
        Phone::new(config, store, [9; 32]).unwrap()
    }

    /// One sync round over one index page holding `batch` and `rollovers`: what fetching
    /// the batch answered.
    fn sync(
        phone: &mut Phone<MemoryStore>,
        batch: &SignedBatch,
        sequence: u64,
        rollovers: &[KeyRollover],
    ) -> Result<(), ClientError> {
        phone.start_sync(NOW).unwrap();
        // The round's sealing-key request stays unanswered: only the index matters here.
        let request = std::iter::from_fn(|| phone.poll_request())
            .find(|r| r.purpose == crate::request::Purpose::FetchIndex)
            .unwrap();
        let index = BatchIndex {
            batches: vec![BatchIndexEntry {
                id: batch.id(),
                sequence,
                created_at: NOW,
                size: batch.bytes().len() as u64,
                keys: 0,
                tokens: 0,
            }],
            next_cursor: sequence,
            key_rollovers: rollovers.to_vec(),
            head: None,
            token_filters: false,
            sunset: None,
        };
        let body = serde_json::to_vec(&index).unwrap();
        phone.handle_response(NOW, request.id, Response { status: 200, body })?;
        let request = std::iter::from_fn(|| phone.poll_request())
            .find(|r| r.purpose != crate::request::Purpose::FetchSealingKey)
            .unwrap();
        let body = batch.bytes().to_vec();
        let fetched = phone.handle_response(NOW, request.id, Response { status: 200, body });
        while phone.poll_request().is_some() {}
        phone.sync_failed();
        fetched
    }

    #[test]
    fn a_phone_follows_a_rollover_announced_under_its_pinned_key_across_restarts() {
        let (k1, k2, k3) = (key(1), key(2), key(3));
        let one_two = KeyRollover::announce(KeyRole::Batch, k1.ed25519(), k2.ed25519(), NOW);
        let two_three = KeyRollover::announce(KeyRole::Batch, k2.ed25519(), k3.ed25519(), NOW);
        let mut phone = phone(MemoryStore::new(), &k1);
        // Overlap: the batch is signed by the pinned key, the page announces the next one.
        sync(
            &mut phone,
            &batch(&k1, 1),
            1,
            std::slice::from_ref(&one_two),
        )
        .unwrap();
        assert_eq!(phone.sync_cursor(), 1);
        assert!(phone.trusted_nodes().contains(&k2.public_key()));

        // The switch, after a restart: the phone verifies the next key's batches, and those
        // of the key after it once that is announced (pages carry every rollover).
        let mut phone = self::phone(phone.into_store(), &k1);
        sync(
            &mut phone,
            &batch(&k2, 2),
            2,
            std::slice::from_ref(&one_two),
        )
        .unwrap();
        sync(&mut phone, &batch(&k3, 3), 3, &[two_three, one_two.clone()]).unwrap();
        assert_eq!(phone.sync_cursor(), 3);
        assert_eq!(phone.trusted_nodes().len(), 3, "history stays verifiable");

        // An app update that drops the pinned key (it was stolen) drops what it vouched for.
        let k5 = key(5);
        let mut updated = self::phone(phone.into_store(), &k5);
        assert_eq!(updated.trusted_nodes().len(), 1);
        assert!(matches!(
            sync(&mut updated, &batch(&k3, 4), 4, &[]),
            Err(ClientError::Batch(_))
        ));
    }

    #[test]
    fn rollovers_under_strangers_or_forged_are_not_followed() {
        let (k1, k8, k9) = (key(1), key(8), key(9));
        let stranger = KeyRollover::announce(KeyRole::Batch, k8.ed25519(), k9.ed25519(), NOW);
        let mut forged = KeyRollover::announce(KeyRole::Batch, k1.ed25519(), k8.ed25519(), NOW);
        forged.new = k9.public_key();
        let authority = KeyRollover::announce(KeyRole::Authority, k1.ed25519(), k9.ed25519(), NOW);
        let mut phone = phone(MemoryStore::new(), &k1);
        let refused = sync(
            &mut phone,
            &batch(&k9, 1),
            1,
            &[stranger, forged, authority],
        );
        assert!(matches!(refused, Err(ClientError::Batch(_))), "{refused:?}");
        assert_eq!(
            phone.sync_cursor(),
            0,
            "the cursor stays: the next round retries"
        );
        assert_eq!(phone.trusted_nodes().len(), 1);
        assert_eq!(phone.store().meta(MetaKey::NodeKeyRollovers).unwrap(), None);
    }
}
