//! [`ReportStore`] in memory: for tests and tools; nothing survives the process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use ephemera_proto::audit::{AuditAnchor, AuditEntry, AuditHash};
use ephemera_proto::auth::{CertificateId, CodeHash};
use ephemera_proto::batch::{BatchId, BatchIndexEntry};
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::upload::UploadId;
use ephemera_proto::venue::{ReleaseId, ReleaseIndexEntry};
use ephemera_proto::{DayNumber, UnixTime};

use super::stats::apply_delta;
use super::{
    API_KEY_ID_LEN, AccountRecord, ApiKeyRecord, CertificateState, CertificateUse, ChainHead,
    CodeRecord, CodeReference, CodeState, CodeStatus, CodeStatusRecord, CommitOutcome,
    CredentialRecord, CutCommit, CutterState, Expiring, ExpiryKind, PurgeCounts, QueueKey,
    QueuedGroup, QuotaRecord, ReportStore, RevokeOutcome, SessionRecord, SettingDigest, StatsKey,
    StatsTally, StoreError, StoredUpload, UploadCommit, code_lookup, code_purge_at, expiry_key,
    issued_tally, next_release_sequence, parse_expiring, release_expiry_reference,
};

#[derive(Default)]
struct Inner {
    codes: HashMap<[u8; 32], CodeRecord>,
    code_status: HashMap<CodeReference, CodeStatusRecord>,
    api_keys: BTreeMap<[u8; API_KEY_ID_LEN], ApiKeyRecord>,
    quotas: HashMap<String, QuotaRecord>,
    certificates: HashMap<[u8; 16], CertificateUse>,
    uploads: HashMap<UploadId, StoredUpload>,
    queue: BTreeMap<QueueKey, QueuedGroup>,
    batches: HashMap<BatchId, Vec<u8>>,
    filters: HashMap<BatchId, Vec<u8>>,
    batch_index: BTreeMap<u64, BatchIndexEntry>,
    exports: BTreeMap<String, Vec<u8>>,
    credentials: BTreeMap<String, CredentialRecord>,
    accounts: BTreeMap<String, AccountRecord>,
    sessions: HashMap<[u8; 32], SessionRecord>,
    audit: BTreeMap<u64, AuditEntry>,
    applied_settings: Vec<SettingDigest>,
    audit_anchor: Option<AuditAnchor>,
    state: Option<CutterState>,
    chain_head: Option<ChainHead>,
    expiry: BTreeSet<Vec<u8>>,
    stats: BTreeMap<StatsKey, u64>,
    bound_key: Option<Ed25519PublicKey>,
    sunset_order: Option<Vec<u8>>,
    venue_releases: BTreeMap<u64, (ReleaseId, Vec<u8>)>,
    venue_release_ids: HashMap<ReleaseId, u64>,
    /// The highest venue release sequence handed out (purges do not lower it).
    last_release: Option<u64>,
}

impl Inner {
    /// Applies counter changes (in the same locked step as the event they count).
    fn count(&mut self, tally: &StatsTally) {
        for (key, delta) in tally.changes() {
            let slot = self.stats.entry(*key).or_insert(0);
            *slot = apply_delta(*slot, delta);
            if *slot == 0 {
                self.stats.remove(key);
            }
        }
    }
}

/// In-memory storage with the same semantics as [`super::SledReportStore`].
#[derive(Default)]
pub struct MemoryReportStore {
    inner: Mutex<Inner>,
    /// `flush` fails while set, as on a full disk ([`MemoryReportStore::fail_flushes`]).
    failing_flush: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for MemoryReportStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReportStore").finish_non_exhaustive()
    }
}

impl MemoryReportStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryReportStore::default()
    }

    /// Makes every later [`ReportStore::flush`] fail (`true`), as on a full disk, or work
    /// again (`false`): how tests show that nothing undurable is acknowledged or listed.
    pub fn fail_flushes(&self, fail: bool) {
        self.failing_flush
            .store(fail, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps (every method mutates only
        // after all checks), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ReportStore for MemoryReportStore {
    fn stats(&self, from: DayNumber, to: DayNumber) -> Result<Vec<(StatsKey, u64)>, StoreError> {
        Ok(self
            .lock()
            .stats
            .iter()
            .filter(|(key, _)| (from..=to).contains(&key.day))
            .map(|(key, count)| (*key, *count))
            .collect())
    }

    fn expire_code_statuses(&self, today: DayNumber) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut tally = StatsTally::new();
        let mut expired = 0;
        for record in inner.code_status.values_mut() {
            if record.state == CodeState::Issued && record.expires < today {
                let state = CodeState::Expired(record.expires);
                tally.merge(&record.count_change(state));
                record.state = state;
                expired += 1;
            }
        }
        inner.count(&tally);
        Ok(expired)
    }

    fn purge_stats(&self, before: DayNumber) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let count = inner.stats.len();
        inner.stats.retain(|key, _| key.day >= before);
        Ok((count - inner.stats.len()) as u64)
    }
    fn insert_codes(&self, codes: &[(CodeHash, CodeRecord)]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for (hash, record) in codes {
            inner.codes.insert(hash.0, record.clone());
            inner.expiry.insert(expiry_key(
                code_purge_at(record.expires_at),
                ExpiryKind::Code,
                &hash.0,
            ));
        }
        Ok(())
    }

    fn take_code(&self, hash: &CodeHash) -> Result<Option<CodeRecord>, StoreError> {
        Ok(self.lock().codes.remove(&hash.0))
    }

    fn insert_code_statuses(
        &self,
        records: &[(CodeReference, CodeStatusRecord)],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.code_status.extend(records.iter().cloned());
        inner.count(&issued_tally(records));
        Ok(())
    }

    fn code_status(
        &self,
        reference: &CodeReference,
    ) -> Result<Option<CodeStatusRecord>, StoreError> {
        Ok(self.lock().code_status.get(reference).cloned())
    }

    fn set_code_state(
        &self,
        reference: &CodeReference,
        state: CodeState,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(record) = inner.code_status.get_mut(reference) {
            let tally = record.count_change(state);
            record.state = state;
            inner.count(&tally);
        }
        Ok(())
    }

    fn purge_code_statuses(&self, expired_before: DayNumber) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let before = inner.code_status.len();
        inner
            .code_status
            .retain(|_, record| record.expires >= expired_before);
        Ok((before - inner.code_status.len()) as u64)
    }

    fn revoke_code(
        &self,
        reference: &CodeReference,
        day: DayNumber,
    ) -> Result<RevokeOutcome, StoreError> {
        let mut inner = self.lock();
        let Some(record) = inner.code_status.get(reference).cloned() else {
            return Ok(RevokeOutcome::Unknown);
        };
        // Codes are filed here under their hash: find the one whose lookup this is.
        let hash = inner
            .codes
            .keys()
            .find(|hash| code_lookup(&CodeHash(**hash)) == record.lookup)
            .copied();
        match hash {
            Some(hash) if record.status(day) == CodeStatus::Issued => {
                inner.codes.remove(&hash);
                if let Some(kept) = inner.code_status.get_mut(reference) {
                    let tally = kept.count_change(CodeState::Revoked(day));
                    kept.state = CodeState::Revoked(day);
                    inner.count(&tally);
                }
                Ok(RevokeOutcome::Revoked)
            }
            _ => Ok(RevokeOutcome::NotRevocable(record)),
        }
    }

    fn commit_upload(&self, commit: &UploadCommit) -> Result<CommitOutcome, StoreError> {
        let mut inner = self.lock();
        let (certificate, _) = commit.certificate;
        if inner.certificates.contains_key(&certificate.0) {
            return Ok(CommitOutcome::CertificateUsed);
        }
        if let Some(original) = &commit.consume_revision {
            match inner.certificates.get_mut(&original.0) {
                Some(mark) if mark.state.revisable() => {
                    mark.state = CertificateState::Revised;
                }
                _ => return Ok(CommitOutcome::RevisionTokenUnknown),
            }
        }
        let (upload_id, record, upload_purge_at) = &commit.upload;
        inner
            .certificates
            .insert(certificate.0, commit.certificate_use());
        inner.uploads.insert(*upload_id, record.clone());
        inner.expiry.insert(expiry_key(
            *upload_purge_at,
            ExpiryKind::Upload,
            &commit.upload_expiry_reference(),
        ));
        if let Some((id, record)) = &commit.update_original {
            inner.uploads.insert(*id, record.clone());
        }
        for key in &commit.dequeue {
            inner.queue.remove(key);
        }
        for (key, group) in &commit.enqueue {
            inner.queue.insert(*key, group.clone());
        }
        let mut tally = StatsTally::new();
        tally.add(commit.counted_as(), 1);
        inner.count(&tally);
        Ok(CommitOutcome::Committed)
    }

    fn sync_ids(
        &self,
        day: ephemera_proto::DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, StoreError> {
        let inner = self.lock();
        let mut ids: Vec<UploadId> = inner
            .uploads
            .iter()
            .filter(|(id, record)| {
                ephemera_proto::sync::sync_day(&record.upload) == day
                    && after.is_none_or(|after| **id > after)
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids.truncate(limit);
        Ok(ids)
    }

    fn day_digest(
        &self,
        day: ephemera_proto::DayNumber,
    ) -> Result<ephemera_proto::sync::DayDigest, StoreError> {
        let mut digest = ephemera_proto::sync::DayDigest::empty(day);
        for id in self.sync_ids(day, None, usize::MAX)? {
            digest.add(&id);
        }
        Ok(digest)
    }

    fn certificate_use(&self, id: &CertificateId) -> Result<Option<CertificateUse>, StoreError> {
        Ok(self.lock().certificates.get(&id.0).copied())
    }

    fn upload(&self, id: &UploadId) -> Result<Option<StoredUpload>, StoreError> {
        Ok(self.lock().uploads.get(id).cloned())
    }

    fn upload_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().uploads.len() as u64)
    }

    fn queued_until(&self, until: UnixTime) -> Result<Vec<(QueueKey, QueuedGroup)>, StoreError> {
        let end = QueueKey {
            release_at: until,
            upload: UploadId([0xff; 32]),
        };
        Ok(self
            .lock()
            .queue
            .range(..=end)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    fn queued(&self, key: &QueueKey) -> Result<Option<QueuedGroup>, StoreError> {
        Ok(self.lock().queue.get(key).cloned())
    }

    fn cutter_state(&self) -> Result<CutterState, StoreError> {
        Ok(self.lock().state.unwrap_or(CutterState::INITIAL))
    }

    fn commit_cut(&self, cut: &CutCommit) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.state.unwrap_or(CutterState::INITIAL) != cut.from {
            return Err(StoreError::CutSuperseded);
        }
        for batch in &cut.batches {
            inner.batches.insert(batch.entry.id, batch.bytes.clone());
            if let Some(filter) = &batch.filter {
                inner.filters.insert(batch.entry.id, filter.clone());
            }
            inner
                .batch_index
                .insert(batch.entry.sequence, batch.entry.clone());
            let mut reference = batch.entry.sequence.to_be_bytes().to_vec();
            reference.extend_from_slice(&batch.entry.id.0);
            inner
                .expiry
                .insert(expiry_key(batch.purge_at, ExpiryKind::Batch, &reference));
        }
        for export in &cut.exports {
            inner
                .exports
                .insert(export.name.clone(), export.bytes.clone());
            inner.expiry.insert(expiry_key(
                export.purge_at,
                ExpiryKind::Export,
                export.name.as_bytes(),
            ));
        }
        for key in &cut.dequeue {
            inner.queue.remove(key);
        }
        inner.state = Some(cut.state);
        inner.count(&cut.counted());
        if let Some(last) = cut.batches.last() {
            inner.chain_head = Some(ChainHead {
                sequence: last.entry.sequence,
                id: last.entry.id,
            });
        }
        Ok(())
    }

    fn chain_head(&self) -> Result<Option<ChainHead>, StoreError> {
        let inner = self.lock();
        Ok(inner.chain_head.or_else(|| {
            inner.batch_index.last_key_value().map(|(_, e)| ChainHead {
                sequence: e.sequence,
                id: e.id,
            })
        }))
    }

    fn batch(&self, id: &BatchId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().batches.get(id).cloned())
    }

    fn token_filter(&self, id: &BatchId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().filters.get(id).cloned())
    }

    fn batch_index(&self, after: u64, limit: usize) -> Result<Vec<BatchIndexEntry>, StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(self
            .lock()
            .batch_index
            .range(start..)
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn export(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().exports.get(name).cloned())
    }

    fn export_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.lock().exports.keys().cloned().collect())
    }

    fn credential(&self, name: &str) -> Result<Option<CredentialRecord>, StoreError> {
        Ok(self.lock().credentials.get(name).cloned())
    }

    fn put_credential(&self, name: &str, record: &CredentialRecord) -> Result<(), StoreError> {
        self.lock()
            .credentials
            .insert(name.to_owned(), record.clone());
        Ok(())
    }

    fn credential_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.lock().credentials.keys().cloned().collect())
    }

    fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.lock().accounts.get(name).cloned())
    }

    fn put_account(&self, name: &str, record: &AccountRecord) -> Result<(), StoreError> {
        self.lock().accounts.insert(name.to_owned(), record.clone());
        Ok(())
    }

    fn accounts(&self) -> Result<Vec<(String, AccountRecord)>, StoreError> {
        Ok(self
            .lock()
            .accounts
            .iter()
            .map(|(name, record)| (name.clone(), record.clone()))
            .collect())
    }

    fn session(&self, id: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock().sessions.get(id).cloned())
    }

    fn put_session(&self, id: &[u8; 32], record: &SessionRecord) -> Result<(), StoreError> {
        self.lock().sessions.insert(*id, record.clone());
        Ok(())
    }

    fn remove_session(&self, id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.lock().sessions.remove(id).is_some())
    }

    fn remove_sessions(&self, doomed: &dyn Fn(&SessionRecord) -> bool) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let before = inner.sessions.len();
        inner.sessions.retain(|_, record| !doomed(record));
        Ok((before - inner.sessions.len()) as u64)
    }

    fn api_key(&self, id: &[u8; API_KEY_ID_LEN]) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.lock().api_keys.get(id).cloned())
    }

    fn put_api_key(
        &self,
        id: &[u8; API_KEY_ID_LEN],
        record: &ApiKeyRecord,
    ) -> Result<(), StoreError> {
        self.lock().api_keys.insert(*id, record.clone());
        Ok(())
    }

    fn api_keys(&self) -> Result<Vec<([u8; API_KEY_ID_LEN], ApiKeyRecord)>, StoreError> {
        Ok(self
            .lock()
            .api_keys
            .iter()
            .map(|(id, record)| (*id, record.clone()))
            .collect())
    }

    fn charge_quota(
        &self,
        subject: &str,
        day: DayNumber,
        amount: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let current = inner
            .quotas
            .get(subject)
            .copied()
            .unwrap_or(QuotaRecord { day, used: 0 });
        match current.charge(day, amount, limit) {
            Some(charged) => {
                inner.quotas.insert(subject.to_owned(), charged);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let sequence = entry.record.sequence;
        match self.lock().audit.entry(sequence) {
            std::collections::btree_map::Entry::Occupied(_) => {
                Err(StoreError::AuditSequenceTaken { sequence })
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(entry.clone());
                Ok(())
            }
        }
    }

    fn audit_trail(&self) -> Result<(Option<AuditAnchor>, Vec<AuditEntry>), StoreError> {
        let inner = self.lock();
        Ok((inner.audit_anchor, inner.audit.values().cloned().collect()))
    }

    fn applied_settings(&self) -> Result<Vec<SettingDigest>, StoreError> {
        Ok(self.lock().applied_settings.clone())
    }

    fn set_applied_settings(&self, settings: &[SettingDigest]) -> Result<(), StoreError> {
        self.lock().applied_settings = settings.to_vec();
        Ok(())
    }

    fn audit_head(&self) -> Result<Option<(u64, AuditHash)>, StoreError> {
        let inner = self.lock();
        Ok(match inner.audit.last_key_value() {
            Some((sequence, entry)) => Some((*sequence, entry.record.hash())),
            None => inner.audit_anchor.map(|a| (a.sequence, a.head)),
        })
    }

    fn purge_audit(&self, anchor: &AuditAnchor) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let kept = inner.audit.split_off(&(anchor.sequence + 1));
        let purged = std::mem::replace(&mut inner.audit, kept).len();
        inner.audit_anchor = Some(*anchor);
        Ok(purged as u64)
    }

    fn purge(&self, now: UnixTime, stale_before: UnixTime) -> Result<PurgeCounts, StoreError> {
        let mut inner = self.lock();
        let mut counts = PurgeCounts::default();
        let end = now.0.saturating_add(1).to_be_bytes().to_vec();
        let due: Vec<Vec<u8>> = inner.expiry.range(..end).cloned().collect();
        for key in due {
            inner.expiry.remove(&key);
            match parse_expiring(&key)? {
                Expiring::Upload {
                    id,
                    certificate,
                    certificate_purge_at,
                } => {
                    if inner.uploads.remove(&id).is_some() {
                        counts.uploads += 1;
                    }
                    if certificate_purge_at <= now {
                        if inner.certificates.remove(&certificate.0).is_some() {
                            counts.certificates += 1;
                        }
                    } else {
                        inner.expiry.insert(expiry_key(
                            certificate_purge_at,
                            ExpiryKind::Certificate,
                            &certificate.0,
                        ));
                    }
                }
                Expiring::Certificate(id) => {
                    if inner.certificates.remove(&id.0).is_some() {
                        counts.certificates += 1;
                    }
                }
                Expiring::Batch { sequence, id } => {
                    inner.batch_index.remove(&sequence);
                    inner.filters.remove(&id);
                    if inner.batches.remove(&id).is_some() {
                        counts.batches += 1;
                    }
                }
                Expiring::Code(hash) => {
                    if inner.codes.remove(&hash).is_some() {
                        counts.codes += 1;
                    }
                }
                Expiring::Export(name) => {
                    if inner
                        .exports
                        .remove(&*String::from_utf8_lossy(name))
                        .is_some()
                    {
                        counts.exports += 1;
                    }
                }
                Expiring::VenueRelease { sequence, id } => {
                    inner.venue_release_ids.remove(&id);
                    if inner.venue_releases.remove(&sequence).is_some() {
                        counts.venue_releases += 1;
                    }
                }
            }
        }
        let stale: Vec<QueueKey> = inner
            .queue
            .keys()
            .take_while(|k| k.release_at < stale_before)
            .copied()
            .collect();
        for key in stale {
            inner.queue.remove(&key);
            counts.queued += 1;
        }
        Ok(counts)
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.failing_flush.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Engine(
                "flush failed (fail_flushes is set)".into(),
            ));
        }
        Ok(())
    }

    fn backup(&self, _to: &std::path::Path) -> Result<super::BackupSummary, StoreError> {
        Err(StoreError::Engine(
            "the memory store keeps nothing on disk to back up".to_owned(),
        ))
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn bound_key(&self) -> Result<Option<Ed25519PublicKey>, StoreError> {
        Ok(self.lock().bound_key)
    }

    fn bind_key(
        &self,
        expected: Option<&Ed25519PublicKey>,
        key: &Ed25519PublicKey,
    ) -> Result<Ed25519PublicKey, StoreError> {
        let mut inner = self.lock();
        if inner.bound_key.as_ref() == expected {
            inner.bound_key = Some(*key);
        }
        Ok(inner.bound_key.unwrap_or(*key))
    }

    fn sunset_order(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().sunset_order.clone())
    }

    fn record_sunset_order(&self, frame: &[u8]) -> Result<(), StoreError> {
        self.lock().sunset_order = Some(frame.to_vec());
        Ok(())
    }

    fn remove_uploads(&self, uploads: &[(UploadId, Vec<QueueKey>)]) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut removed = 0;
        for (id, queued) in uploads {
            for key in queued {
                inner.queue.remove(key);
            }
            if inner.uploads.remove(id).is_some() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn earliest_expiries(&self) -> Result<Vec<(&'static str, UnixTime)>, StoreError> {
        super::earliest_per_kind(self.lock().expiry.iter().map(Ok))
    }

    fn insert_venue_release(
        &self,
        id: &ReleaseId,
        frame: &[u8],
        arrived_at: UnixTime,
        purge_at: UnixTime,
    ) -> Result<Option<ReleaseIndexEntry>, StoreError> {
        let mut inner = self.lock();
        if inner.venue_release_ids.contains_key(id) {
            return Ok(None);
        }
        let sequence = next_release_sequence(inner.last_release, arrived_at);
        inner.last_release = Some(sequence);
        inner.venue_release_ids.insert(*id, sequence);
        inner.venue_releases.insert(sequence, (*id, frame.to_vec()));
        inner.expiry.insert(expiry_key(
            purge_at,
            ExpiryKind::VenueRelease,
            &release_expiry_reference(sequence, id),
        ));
        Ok(Some(ReleaseIndexEntry {
            id: *id,
            sequence,
            size: frame.len() as u64,
        }))
    }

    fn venue_release(&self, id: &ReleaseId) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .venue_release_ids
            .get(id)
            .and_then(|sequence| inner.venue_releases.get(sequence))
            .map(|(_, frame)| frame.clone()))
    }

    fn venue_release_index(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ReleaseIndexEntry>, StoreError> {
        Ok(self
            .lock()
            .venue_releases
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(sequence, (id, frame))| ReleaseIndexEntry {
                id: *id,
                sequence: *sequence,
                size: frame.len() as u64,
            })
            .collect())
    }

    fn erase_all(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut inner = self.lock();
        let len = |n: usize| n as u64;
        let mut counts = vec![
            ("accounts".to_owned(), len(inner.accounts.len())),
            ("api-keys".to_owned(), len(inner.api_keys.len())),
            ("audit".to_owned(), len(inner.audit.len())),
            ("batches".to_owned(), len(inner.batches.len())),
            ("certificates".to_owned(), len(inner.certificates.len())),
            ("code-status".to_owned(), len(inner.code_status.len())),
            ("codes".to_owned(), len(inner.codes.len())),
            ("credentials".to_owned(), len(inner.credentials.len())),
            ("exports".to_owned(), len(inner.exports.len())),
            ("filters".to_owned(), len(inner.filters.len())),
            ("queue".to_owned(), len(inner.queue.len())),
            ("quotas".to_owned(), len(inner.quotas.len())),
            ("sessions".to_owned(), len(inner.sessions.len())),
            ("stats".to_owned(), len(inner.stats.len())),
            ("uploads".to_owned(), len(inner.uploads.len())),
            ("venue-releases".to_owned(), len(inner.venue_releases.len())),
        ];
        counts.retain(|(_, n)| *n > 0);
        let order = inner.sunset_order.take();
        *inner = Inner {
            sunset_order: order,
            ..Inner::default()
        };
        Ok(counts)
    }
}
