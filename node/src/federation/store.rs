//! What federation needs from the node's storage: a small trait and an in-memory version.
//!
//! The node's own store (sled) implements [`FederationStore`]; federation never sees how.
//! Uploads are grouped by their *sync day* ([`sync_day`]: the UTC day their certificate was
//! issued), which every node computes the same way from the upload itself, so two nodes can
//! compare what they hold day by day (see [`super::sync`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use ephemera_proto::DayNumber;
use ephemera_proto::auth::CertificateId;
use ephemera_proto::federated::FederatedReport;
use ephemera_proto::upload::{UploadId, VerifiedUpload};

pub use ephemera_proto::sync::{DayDigest, sync_day};

/// What happened to a relayed upload handed to [`FederationStore::store_relayed`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOutcome {
    /// Newly and durably stored: federation forwards it.
    Stored,
    /// An upload with this id is already stored: nothing changed.
    AlreadyStored,
    /// The upload is valid but its certificate id was already used by another upload (single
    /// use is the store's to enforce): not stored, not forwarded.
    CertificateUsed,
    /// A valid signed revision of an upload this node does not hold (yet): not stored, not
    /// forwarded; catch-up brings it again once the original is here.
    OriginalMissing,
    /// A valid signed revision this node cannot apply (its original was revised already,
    /// is bound to another key, or the change is not allowed): not stored, not forwarded.
    RevisionRefused,
    /// A sunset order ended its authority here: not stored, not forwarded, nobody blamed.
    AuthorityEnded,
}

/// The store failed (I/O, corruption). Federation neither accepts nor forwards the upload.
#[derive(Debug, thiserror::Error)]
#[error("federation store failed: {0}")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The node storage federation reads and writes.
///
/// Methods are synchronous and may block briefly (federation calls them from blocking
/// tasks, never from the swarm's event loop). Implementations must be cheap to share: the
/// federation holds an `Arc`.
///
/// Every method returns the store's failures as [`StoreError`], never as "absent" or
/// "empty": federation then ignores the gossip message (no penalty, not forwarded), ends the
/// catch-up round, or leaves a peer's catch-up request unanswered, so a disk fault here is
/// neither blamed on a peer nor taken to mean that this node holds nothing.
pub trait FederationStore: Send + Sync + 'static {
    /// Whether an upload with this id is stored.
    ///
    /// # Errors
    /// [`StoreError`] if the backend failed.
    fn contains(&self, id: &UploadId) -> Result<bool, StoreError>;

    /// Stores an upload that a peer relayed and federation verified (signature, HMAC,
    /// trusted authority, relayed expiry, report rules, a revision's signature). The store
    /// enforces single use of the certificate id, keeps the upload's binding and files the
    /// upload under [`sync_day`]; a signed revision revises the upload it names (once).
    ///
    /// # Errors
    /// [`StoreError`] if the backend failed; the upload then counts as not stored.
    fn store_relayed(&self, upload: VerifiedUpload) -> Result<StoreOutcome, StoreError>;

    /// Up to `limit` ids filed under `day`, in ascending order, strictly greater than
    /// `after` when given: one page of a day's id set.
    ///
    /// # Errors
    /// [`StoreError`] if the backend failed.
    fn ids_for_day(
        &self,
        day: DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, StoreError>;

    /// The stored upload with this id, in the canonical form whose encoding hashes to `id`,
    /// with its binding.
    ///
    /// # Errors
    /// [`StoreError`] if the backend failed.
    fn get(&self, id: &UploadId) -> Result<Option<FederatedReport>, StoreError>;

    /// The digest of `day`. The default pages through [`Self::ids_for_day`]; a store that
    /// keeps digests up to date should override it.
    ///
    /// # Errors
    /// [`StoreError`] if the backend failed.
    fn day_digest(&self, day: DayNumber) -> Result<DayDigest, StoreError> {
        const PAGE: usize = 4096;
        let mut digest = DayDigest::empty(day);
        let mut after = None;
        loop {
            let ids = self.ids_for_day(day, after, PAGE)?;
            for id in &ids {
                digest.add(id);
            }
            match ids.last() {
                Some(last) if ids.len() == PAGE => after = Some(*last),
                _ => return Ok(digest),
            }
        }
    }
}

/// An in-memory [`FederationStore`] for tests, benchmarks and the simulator.
#[derive(Debug, Default)]
pub struct MemoryFederationStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    uploads: HashMap<UploadId, FederatedReport>,
    by_day: BTreeMap<DayNumber, BTreeSet<UploadId>>,
    digests: BTreeMap<DayNumber, DayDigest>,
    certificates: HashSet<CertificateId>,
}

impl MemoryFederationStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryFederationStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores an upload the node accepted itself (a phone's upload); same rules as
    /// [`FederationStore::store_relayed`], except that a revision is kept as an upload of
    /// its own (this store holds no publication state to revise) once its original is
    /// here.
    pub fn store_local(&self, upload: VerifiedUpload) -> StoreOutcome {
        let mut inner = self.lock();
        let id = upload.id();
        if inner.uploads.contains_key(&id) {
            return StoreOutcome::AlreadyStored;
        }
        let signed = FederatedReport::from(upload);
        if let Some(revises) = signed.binding.revises()
            && !inner.certificates.contains(&revises)
        {
            return StoreOutcome::OriginalMissing;
        }
        if !inner
            .certificates
            .insert(signed.upload.certificate.certificate.id)
        {
            return StoreOutcome::CertificateUsed;
        }
        let day = sync_day(&signed.upload);
        inner.by_day.entry(day).or_default().insert(id);
        inner
            .digests
            .entry(day)
            .or_insert_with(|| DayDigest::empty(day))
            .add(&id);
        inner.uploads.insert(id, signed);
        StoreOutcome::Stored
    }

    /// Number of stored uploads.
    pub fn len(&self) -> usize {
        self.lock().uploads.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an upload with this id is stored (this store cannot fail).
    pub fn holds(&self, id: &UploadId) -> bool {
        self.lock().uploads.contains_key(id)
    }

    /// Every stored id, sorted.
    pub fn ids(&self) -> BTreeSet<UploadId> {
        self.lock().uploads.keys().copied().collect()
    }

    /// Forgets every upload filed under a day before `oldest` (retention purge).
    pub fn purge_before(&self, oldest: DayNumber) {
        let mut inner = self.lock();
        let keep = inner.by_day.split_off(&oldest);
        let old = std::mem::replace(&mut inner.by_day, keep);
        let keep = inner.digests.split_off(&oldest);
        inner.digests = keep;
        for id in old.into_values().flatten() {
            if let Some(report) = inner.uploads.remove(&id) {
                inner
                    .certificates
                    .remove(&report.upload.certificate.certificate.id);
            }
        }
    }
}

impl FederationStore for MemoryFederationStore {
    fn contains(&self, id: &UploadId) -> Result<bool, StoreError> {
        Ok(self.lock().uploads.contains_key(id))
    }

    fn store_relayed(&self, upload: VerifiedUpload) -> Result<StoreOutcome, StoreError> {
        Ok(self.store_local(upload))
    }

    fn ids_for_day(
        &self,
        day: DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, StoreError> {
        let inner = self.lock();
        let Some(ids) = inner.by_day.get(&day) else {
            return Ok(Vec::new());
        };
        Ok(match after {
            Some(after) => ids
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(limit)
                .copied()
                .collect(),
            None => ids.iter().take(limit).copied().collect(),
        })
    }

    fn get(&self, id: &UploadId) -> Result<Option<FederatedReport>, StoreError> {
        Ok(self.lock().uploads.get(id).cloned())
    }

    fn day_digest(&self, day: DayNumber) -> Result<DayDigest, StoreError> {
        Ok(self
            .lock()
            .digests
            .get(&day)
            .copied()
            .unwrap_or_else(|| DayDigest::empty(day)))
    }
}
