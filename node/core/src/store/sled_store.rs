//! [`ReportStore`] on sled 0.34: one tree per collection, multi-tree transactions for
//! atomic commits, `flush` for durability.
//!
//! An upload writes as few records as it can, because each sled insert into a large tree
//! costs a leaf copy and log space: its certificate mark (which also serves revisions), the
//! upload, its sync-day entry, one expiry entry and its queue groups. The layout carries a
//! format number in `meta`; a folder written with another layout is refused at open.
//!
//! Batch bodies and GAEN export zips are not sled values: sled 0.34 does not reclaim the
//! segments of large values, so a node that publishes and purges batches would grow its
//! database file without bound. They are files in a folder beside the database
//! ([`super::blobs`]), and the `batches` and `exports` trees keep a [`BlobRef`] (content
//! hash and length). Files are written and synced before the transaction that makes their
//! index entry visible, and deleted only once the purge's removal of that entry is durable;
//! files no entry refers to (left by a crash) are removed at open.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ephemera_proto::audit::{AuditAnchor, AuditEntry, AuditHash};
use ephemera_proto::auth::{CertificateId, CodeHash};
use ephemera_proto::batch::{BatchId, BatchIndexEntry};
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::upload::UploadId;
use ephemera_proto::venue::{ReleaseId, ReleaseIndexEntry};
use ephemera_proto::{DayNumber, UnixTime};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, UnabortableTransactionError,
};
use sled::{Db, Transactional, Tree};

use super::backup::{BackupSummary, StorePaths, prepare_target};
use super::blobs::{BlobDir, BlobReadError, BlobRef};
use super::sealing::{DataKeys, code_lookup, open_code, seal_code};
use super::stats::{apply_delta, decode_count, encode_count};
use super::{
    API_KEY_ID_LEN, AccountRecord, ApiKeyRecord, CertificateState, CertificateUse, ChainHead,
    CodeRecord, CodeReference, CodeState, CodeStatus, CodeStatusRecord, CommitOutcome,
    CredentialRecord, CutCommit, CutterState, Expiring, ExpiryKind, PurgeCounts, QueueKey,
    QueuedGroup, QuotaRecord, ReportStore, RevokeOutcome, SessionRecord, SettingDigest, StatsKey,
    StatsTally, StoreError, StoredUpload, UploadCommit, code_purge_at, decode, encode, expiry_key,
    issued_tally, next_release_sequence, parse_expiring, release_expiry_reference,
};
use super::{BOUND_KEY_KEY, SUNSET_ORDER_KEY, decode_bound_key};
use ephemera_proto::sync::{DayDigest, sync_day};

const CUTTER_STATE_KEY: &[u8] = b"cutter-state";
/// `meta` key of the audit trail's purge anchor.
const AUDIT_ANCHOR_KEY: &[u8] = b"audit-anchor";
/// Meta key of the batch log's head ([`ChainHead`]).
const CHAIN_HEAD_KEY: &[u8] = b"chain-head";
/// `meta` key of the digests of the settings the node last ran with.
const APPLIED_SETTINGS_KEY: &[u8] = b"applied-settings";
pub(super) const FORMAT_KEY: &[u8] = b"format";
/// The on-disk layout this code reads and writes. Format 1 (no `format` key) kept revision
/// token hashes and a certificate expiry entry per upload; format 2 kept batch bodies and
/// export zips as sled values; format 3 kept them as files but reports and codes in clear
/// (format 4: sealed; `docs/SECURITY.md`, "The data folder").
pub const STORE_FORMAT: u32 = 4;
/// Bound of sled's page cache. sled's default is 1 GiB, which a busy node fills over hours
/// and then keeps resident; with this bound (plus the 64 MiB batch cache) the node's memory
/// levels off (`ephemera-bench load`). Reads that miss it go to the OS page cache.
pub(super) const PAGE_CACHE_BYTES: u64 = 128 << 20;

/// sled-backed storage in one folder.
pub struct SledReportStore {
    db: Db,
    /// `code lookup` → code record sealed under its code hash ([`super::sealing`]).
    codes: Tree,
    /// Code reference → [`CodeStatusRecord`] (no personal data, no code).
    code_status: Tree,
    /// [`StatsKey`] → count (u64 BE): the daily statistics counters (days, metrics, test
    /// types and numbers only).
    stats: Tree,
    /// API key id → [`ApiKeyRecord`] (the SHA-256 of its secret, never the secret).
    api_keys: Tree,
    /// Key or account → [`QuotaRecord`] of its last day.
    quotas: Tree,
    /// Held by a quota charge from its read to its write.
    charging: std::sync::Mutex<()>,
    /// Held by a revoke from its read of the status to its write.
    revoking: std::sync::Mutex<()>,
    /// `certificate id` → [`CertificateUse`]: the single-use mark.
    certificates: Tree,
    /// `upload id` → [`StoredUpload`] sealed under its arrival day's data key.
    uploads: Tree,
    /// [`QueueKey`] → [`QueuedGroup`] sealed under its upload's arrival day's data key.
    queue: Tree,
    /// `batch id` → postcard [`BlobRef`] of its body's file.
    batches: Tree,
    /// `batch id` → postcard [`BlobRef`] of its token filter's file.
    filters: Tree,
    batch_index: Tree,
    /// `export name` → postcard [`BlobRef`] of its zip's file.
    exports: Tree,
    /// Files of batch bodies, token filters and export zips.
    blobs: BlobDir,
    credentials: Tree,
    /// Staff accounts by name.
    accounts: Tree,
    /// Sessions by the SHA-256 of their bearer token.
    sessions: Tree,
    /// `sequence (u64 BE)` → postcard [`AuditEntry`]: the audit trail (no personal data
    /// of the public, so not sealed: auditors read it with the node stopped).
    audit: Tree,
    meta: Tree,
    expiry: Tree,
    /// `sync day (u32 BE) ‖ upload id` → empty: every upload filed under its sync day.
    sync_index: Tree,
    /// `sync day (u32 BE)` → postcard [`DayDigest`], kept up to date on insert and purge.
    day_digests: Tree,
    /// `sequence (u64 BE)` → postcard `(ReleaseId, frame)`: the venue releases held, public
    /// bytes (at most 15 KiB each, and rare: sled values, not files).
    venue_releases: Tree,
    /// `release id` → its sequence (u64 BE).
    venue_release_ids: Tree,
    /// Held by a venue release's insert from its read of the last sequence to its write.
    releasing: std::sync::Mutex<()>,
    /// Serializes upload commits with the purge of upload records and certificate marks,
    /// so a purge never interleaves with a commit's check-then-write.
    uploads_lock: std::sync::Mutex<()>,
    /// Records in `uploads`: counted once at open, then moved by commits and purges (both
    /// under `uploads_lock`), because sled's `Tree::len` reads the whole tree and the count
    /// is asked for by every purge and metrics scrape.
    upload_count: AtomicU64,
    /// Held by a cut from its first file write until its index entries are in, and by a
    /// purge while it deletes files, so a purge never deletes a file a cut is about to (or
    /// just did) refer to.
    blobs_lock: std::sync::Mutex<()>,
    /// Per-day keys of sealed reports (`keys/data/`).
    data_keys: DataKeys,
    /// Held shared by every method that writes, and exclusively by a backup while it copies
    /// the files: a copy taken under it is the state after the last flush.
    writing: std::sync::RwLock<()>,
    /// The three folders, for backups.
    paths: StorePaths,
    /// Nonces of sealed code records.
    rng: ring::rand::SystemRandom,
}

fn sync_key(day: DayNumber, id: &UploadId) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..4].copy_from_slice(&day.0.to_be_bytes());
    key[4..].copy_from_slice(&id.0);
    key
}

impl std::fmt::Debug for SledReportStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledReportStore").finish_non_exhaustive()
    }
}

fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

/// An I/O error of the blobs folder (the message names no path).
fn blob_io(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Engine(format!("blobs folder: {what}: {e}"))
}

fn tx_error(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Abort(()) => StoreError::Engine("transaction aborted".to_owned()),
        TransactionError::Storage(e) => engine(e),
    }
}

/// How long [`open_db`] waits for the folder's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens sled at `path`, waiting up to [`LOCK_WAIT`] while its lock is held: a store just
/// dropped in this process releases the lock only once sled's flusher thread has ended, a
/// moment later (a CLI command run right after another, a node restarted in place). A lock
/// still held after that is the error it always was.
fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(PAGE_CACHE_BYTES)
            .open();
        match opened {
            // sled 0.34 reports a held lock only in its message (`ErrorKind::Other`).
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            opened => return opened.map_err(engine),
        }
    }
}

impl SledReportStore {
    /// Opens (or creates) the database in `path`, its batch and export files in
    /// `blobs_path` (a folder of its own, outside `path`: sled owns that one) and the data
    /// keys reports are sealed with in `data_keys_path` (normally `keys/data/`). Removes
    /// files that no index entry refers to and leftover temporary files (a crash leaves
    /// them).
    ///
    /// # Errors
    /// [`StoreError::Engine`] when sled cannot open it (e.g. another process holds it) or
    /// the blobs or data-keys folder cannot be read; [`StoreError::Format`] for another
    /// layout; [`StoreError::UpgradeUnfinished`] while a folder of an unfinished
    /// [`super::upgrade()`] lies beside it.
    pub fn open(path: &Path, blobs_path: &Path, data_keys_path: &Path) -> Result<Self, StoreError> {
        if let Some(folder) = super::upgrade::unfinished(path) {
            return Err(StoreError::UpgradeUnfinished { folder });
        }
        remove_unfinished_snapshots(path)?;
        let db = open_db(path)?;
        check_format(&db)?;
        let tree = |name: &str| db.open_tree(name).map_err(engine);
        let uploads = tree("uploads")?;
        // Read once here; commits and purges keep it up to date from then on.
        let upload_count = AtomicU64::new(uploads.len() as u64);
        SledReportStore {
            codes: tree("codes")?,
            code_status: tree("code-status")?,
            stats: tree("stats")?,
            revoking: std::sync::Mutex::new(()),
            api_keys: tree("api-keys")?,
            quotas: tree("quotas")?,
            charging: std::sync::Mutex::new(()),
            certificates: tree("certificates")?,
            uploads,
            queue: tree("queue")?,
            batches: tree("batches")?,
            filters: tree("filters")?,
            batch_index: tree("batch-index")?,
            exports: tree("exports")?,
            credentials: tree("credentials")?,
            accounts: tree("accounts")?,
            sessions: tree("sessions")?,
            audit: tree("audit")?,
            meta: tree("meta")?,
            expiry: tree("expiry")?,
            sync_index: tree("sync-index")?,
            day_digests: tree("day-digests")?,
            venue_releases: tree("venue-releases")?,
            venue_release_ids: tree("venue-release-ids")?,
            releasing: std::sync::Mutex::new(()),
            blobs: BlobDir::open(blobs_path).map_err(|e| blob_io("open", e))?,
            uploads_lock: std::sync::Mutex::new(()),
            upload_count,
            blobs_lock: std::sync::Mutex::new(()),
            data_keys: DataKeys::open(data_keys_path)?,
            writing: std::sync::RwLock::new(()),
            paths: StorePaths {
                db: path.to_owned(),
                blobs: blobs_path.to_owned(),
                data_keys: data_keys_path.to_owned(),
            },
            rng: ring::rand::SystemRandom::new(),
            db,
        }
        .with_data_keys(data_keys_path)?
        .cleaned_up()
    }

    /// Refuses a database with upload records whose data keys folder holds no key at all
    /// (restored without it): every read would find the records gone.
    fn with_data_keys(self, dir: &Path) -> Result<Self, StoreError> {
        let uploads = self.upload_count.load(Ordering::Relaxed);
        if uploads > 0 && self.data_keys.days().is_empty() {
            return Err(StoreError::DataKeysMissing {
                uploads,
                dir: dir.to_owned(),
            });
        }
        Ok(self)
    }

    /// Removes orphaned and temporary files; warns (counts only) about index entries whose
    /// file is missing or has the wrong length: reading those answers [`StoreError::Blob`].
    fn cleaned_up(self) -> Result<Self, StoreError> {
        let refs = self.blob_refs()?;
        let live: HashSet<[u8; 32]> = refs.iter().map(|r| r.hash).collect();
        let swept = self
            .blobs
            .sweep(&live)
            .map_err(|e| blob_io("clean up", e))?;
        if swept.orphans + swept.temps > 0 {
            tracing::info!(
                orphans = swept.orphans,
                temporary = swept.temps,
                "removed batch/export files no index entry refers to (left by a crash)"
            );
        }
        let damaged = refs
            .iter()
            .filter(|r| !self.blobs.looks_complete(r))
            .count();
        if damaged > 0 {
            tracing::warn!(
                damaged,
                "batch/export files missing or of the wrong length; reading them fails \
                 (was the blobs folder restored together with the database?)"
            );
        }
        Ok(self)
    }

    /// Every [`BlobRef`] the `batches`, `filters` and `exports` trees hold.
    fn blob_refs(&self) -> Result<Vec<BlobRef>, StoreError> {
        let mut out =
            Vec::with_capacity(self.batches.len() + self.filters.len() + self.exports.len());
        for (tree, name) in [
            (&self.batches, "batches"),
            (&self.filters, "filters"),
            (&self.exports, "exports"),
        ] {
            for item in tree.iter().values() {
                out.push(decode(&item.map_err(engine)?, name)?);
            }
        }
        Ok(out)
    }

    fn lock_blobs(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere leaves nothing inconsistent.
        self.blobs_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the body an index entry of `tree` refers to. A file missing or wrong for an
    /// entry that is still there is [`StoreError::Blob`]; one whose entry a purge removed
    /// meanwhile reads as gone (`None`).
    fn read_blob(
        &self,
        (tree, tree_name): (&Tree, &'static str),
        key: &[u8],
        kind: &'static str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(value) = tree.get(key).map_err(engine)? else {
            return Ok(None);
        };
        let blob: BlobRef = decode(&value, tree_name)?;
        match self.blobs.read(&blob) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(_) if tree.get(key).map_err(engine)?.as_deref() != Some(&value[..]) => Ok(None),
            Err(BlobReadError::Damaged(problem)) => Err(StoreError::Blob {
                kind,
                file: blob.file_name(),
                problem,
            }),
            Err(BlobReadError::Io(e)) => Err(blob_io("read", e)),
        }
    }

    /// The upload records counted by reading them all (what the counter stands in for).
    #[cfg(test)]
    pub(crate) fn uploads_by_scan(&self) -> u64 {
        self.uploads.len() as u64
    }

    /// A shared hold on writing: a backup waits for it to end, and it for a backup.
    fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere leaves nothing inconsistent.
        self.writing
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_uploads(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere leaves nothing inconsistent.
        self.uploads_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes the `snap.*.generating` files sled leaves when it dies while writing a snapshot
/// (a start on a full disk leaves an empty one). sled reads the newest `snap.*` file at
/// open, unfinished ones included, and then fails with "Read corrupted data" at every start,
/// even after space is freed. A snapshot only shortens recovery: without it sled replays its
/// log from the last complete snapshot, so removing an unfinished one loses nothing.
pub(super) fn remove_unfinished_snapshots(path: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(engine(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(engine)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path()).map_err(engine)?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::warn!(
            removed,
            "removed unfinished sled snapshots (a start or crash while the disk was full)"
        );
    }
    Ok(())
}

/// Accepts a folder in [`STORE_FORMAT`] or an empty one (which it stamps); refuses one
/// written with another layout rather than misreading it.
fn check_format(db: &Db) -> Result<(), StoreError> {
    let meta = db.open_tree("meta").map_err(engine)?;
    if let Some(bytes) = meta.get(FORMAT_KEY).map_err(engine)? {
        let found = <[u8; 4]>::try_from(bytes.as_ref())
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::Corrupt { tree: "meta" })?;
        if found != STORE_FORMAT {
            return Err(StoreError::Format {
                found: Some(found),
                expected: STORE_FORMAT,
            });
        }
        return Ok(());
    }
    for name in db.tree_names() {
        let tree = db.open_tree(&name).map_err(engine)?;
        if !tree.is_empty() {
            return Err(StoreError::Format {
                found: None,
                expected: STORE_FORMAT,
            });
        }
    }
    meta.insert(FORMAT_KEY, &STORE_FORMAT.to_be_bytes())
        .map_err(engine)?;
    db.flush().map_err(engine)?;
    Ok(())
}

/// The last arrival day whose data key may go when queue groups released before
/// `stale_before` (now minus retention) are stale: a day is shredded once it ended a
/// retention period plus an hour ago (relayed uploads may be kept up to the certificate
/// skew past their arrival's retention).
pub(super) fn shreddable_through(stale_before: UnixTime) -> Option<DayNumber> {
    let ended_by = stale_before.0.checked_sub(3600)?;
    let day = ended_by / ephemera_proto::time::SECONDS_PER_DAY;
    Some(DayNumber(u32::try_from(day.checked_sub(1)?).ok()?))
}

impl SledReportStore {
    /// Moves `record` (filed under `reference`) to `state` and counts the change, in one
    /// transaction. The caller holds `revoking`.
    fn write_code_state(
        &self,
        reference: &CodeReference,
        mut record: CodeStatusRecord,
        state: CodeState,
    ) -> Result<(), StoreError> {
        let tally = record.count_change(state);
        record.state = state;
        let encoded = encode(&record);
        (&self.code_status, &self.stats)
            .transaction(|(code_status, stats)| {
                code_status.insert(reference.as_bytes().as_slice(), encoded.as_slice())?;
                count_in(stats, &tally)?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)
    }

    /// [`Self::forget_synced`] for an upload whose record can no longer be read: its sync
    /// index entry is found by id.
    fn forget_synced_by_id(&self, id: &UploadId) -> Result<(), StoreError> {
        for item in self.sync_index.iter().keys() {
            let key = item.map_err(engine)?;
            if key.len() == 36 && key[4..] == id.0 {
                let day = u32::from_be_bytes(key[..4].try_into().expect("4 bytes"));
                return self.forget_synced(DayNumber(day), id);
            }
        }
        Ok(())
    }

    /// Takes a purged upload out of the sync index and its day's digest.
    fn forget_synced(&self, day: DayNumber, id: &UploadId) -> Result<(), StoreError> {
        if self
            .sync_index
            .remove(sync_key(day, id))
            .map_err(engine)?
            .is_none()
        {
            return Ok(());
        }
        let key = day.0.to_be_bytes();
        let mut digest = self.day_digest(day)?;
        digest.remove(id);
        if digest.count == 0 {
            self.day_digests.remove(key).map_err(engine)?;
        } else {
            self.day_digests
                .insert(key, encode(&digest))
                .map_err(engine)?;
        }
        Ok(())
    }
}

/// An [`UploadCommit`]'s encoded parts.
struct Prepared {
    record: Vec<u8>,
    original: Option<([u8; 32], Vec<u8>)>,
    enqueue: Vec<([u8; QueueKey::LEN], Vec<u8>)>,
    mark: Vec<u8>,
    expiry: Vec<u8>,
    day: DayNumber,
    sync_key: [u8; 36],
}

impl SledReportStore {
    /// Encodes and seals an [`UploadCommit`]'s records (the upload's and its queue groups
    /// under the data key of the day it arrived; a revised original under its own).
    fn prepare(&self, commit: &UploadCommit) -> Result<Prepared, StoreError> {
        let (upload_id, ref record, purge_at) = commit.upload;
        let day = sync_day(&record.upload);
        let arrival_day = record.received_at.day();
        let original = match &commit.update_original {
            Some((id, original)) => Some((id.0, self.data_keys.seal_upload(id, original)?)),
            None => None,
        };
        let enqueue = commit
            .enqueue
            .iter()
            .map(|(k, group)| {
                let key = k.to_bytes();
                let sealed = self
                    .data_keys
                    .seal_group(arrival_day, &key, &encode(group))?;
                Ok((key, sealed))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Prepared {
            record: self.data_keys.seal_upload(&upload_id, record)?,
            original,
            enqueue,
            mark: commit.certificate_use().to_bytes(),
            expiry: expiry_key(
                purge_at,
                ExpiryKind::Upload,
                &commit.upload_expiry_reference(),
            ),
            day,
            sync_key: sync_key(day, &upload_id),
        })
    }
}

/// Adds `tally` to the counters in `stats`, inside the transaction of the event it counts.
/// A counter that does not decode (damaged) starts again from 0, with a warning, rather
/// than refusing the event.
fn count_in(
    stats: &sled::transaction::TransactionalTree,
    tally: &StatsTally,
) -> Result<(), UnabortableTransactionError> {
    for (key, delta) in tally.changes() {
        let bytes = key.to_bytes();
        let current = match stats.get(bytes)? {
            Some(value) => decode_count(&value).unwrap_or_else(|| {
                tracing::warn!("a statistics counter did not decode; it starts again from 0");
                0
            }),
            None => 0,
        };
        match apply_delta(current, delta) {
            0 => stats.remove(&bytes)?,
            next => stats.insert(&bytes, &encode_count(next))?,
        };
    }
    Ok(())
}

fn add_to_digest(
    digests: &sled::transaction::TransactionalTree,
    day: DayNumber,
    id: &UploadId,
) -> Result<(), UnabortableTransactionError> {
    let key = day.0.to_be_bytes();
    let mut digest = match digests.get(key)? {
        Some(bytes) => postcard::from_bytes(&bytes).unwrap_or(DayDigest::empty(day)),
        None => DayDigest::empty(day),
    };
    digest.add(id);
    digests.insert(&key, encode(&digest))?;
    Ok(())
}

impl ReportStore for SledReportStore {
    fn insert_codes(&self, codes: &[(CodeHash, CodeRecord)]) -> Result<(), StoreError> {
        let _writing = self.writing();
        // Sealed outside the transaction (its closure may run more than once).
        let sealed = codes
            .iter()
            .map(|(hash, record)| {
                let lookup = code_lookup(hash);
                let expiry =
                    expiry_key(code_purge_at(record.expires_at), ExpiryKind::Code, &lookup);
                Ok((lookup, seal_code(&self.rng, hash, &encode(record))?, expiry))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        (&self.codes, &self.expiry)
            .transaction(|(tree, expiry)| {
                for (lookup, value, expiry_entry) in &sealed {
                    tree.insert(lookup, value.as_slice())?;
                    expiry.insert(expiry_entry.as_slice(), &[])?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)
    }

    fn take_code(&self, hash: &CodeHash) -> Result<Option<CodeRecord>, StoreError> {
        let _writing = self.writing();
        // The remove alone decides who takes the code (atomic, no transaction: decoy
        // verifications call this too, and a transaction would take sled's global lock).
        let lookup = code_lookup(hash);
        let Some(bytes) = self.codes.remove(lookup).map_err(engine)? else {
            return Ok(None);
        };
        let record = CodeRecord::decode(&open_code(hash, &bytes)?)?;
        // Its expiry entry has nothing left to expire: drop it now rather than at the code's
        // expiry, so the expiry index holds only unused codes. (Long-lived entries piling up
        // at its end made sled's file grow far faster than they did: docs/BENCHMARKS.md,
        // `load`.) A crash in between leaves the entry to the purge, which skips it.
        self.expiry
            .remove(expiry_key(
                code_purge_at(record.expires_at),
                ExpiryKind::Code,
                &lookup,
            ))
            .map_err(engine)?;
        Ok(Some(record))
    }

    fn insert_code_statuses(
        &self,
        records: &[(CodeReference, CodeStatusRecord)],
    ) -> Result<(), StoreError> {
        let _writing = self.writing();
        let encoded: Vec<_> = records
            .iter()
            .map(|(reference, record)| (*reference.as_bytes(), encode(record)))
            .collect();
        let tally = issued_tally(records);
        (&self.code_status, &self.stats)
            .transaction(|(code_status, stats)| {
                for (reference, record) in &encoded {
                    code_status.insert(reference.as_slice(), record.as_slice())?;
                }
                count_in(stats, &tally)?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)
    }

    fn code_status(
        &self,
        reference: &CodeReference,
    ) -> Result<Option<CodeStatusRecord>, StoreError> {
        match self.code_status.get(reference.as_bytes()).map_err(engine)? {
            Some(bytes) => Ok(Some(CodeStatusRecord::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn set_code_state(
        &self,
        reference: &CodeReference,
        state: CodeState,
    ) -> Result<(), StoreError> {
        let _writing = self.writing();
        let _revoking = self.revoking.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(record) = self.code_status(reference)? {
            self.write_code_state(reference, record, state)?;
        }
        Ok(())
    }

    fn stats(&self, from: DayNumber, to: DayNumber) -> Result<Vec<(StatsKey, u64)>, StoreError> {
        let start = StatsKey::day_start(from);
        let mut out = Vec::new();
        for item in self.stats.range(start..) {
            let (key, value) = item.map_err(engine)?;
            let corrupt = || StoreError::Corrupt { tree: "stats" };
            let key = StatsKey::from_bytes(&key).ok_or_else(corrupt)?;
            if key.day > to {
                break;
            }
            out.push((key, decode_count(&value).ok_or_else(corrupt)?));
        }
        Ok(out)
    }

    fn expire_code_statuses(&self, today: DayNumber) -> Result<u64, StoreError> {
        let _writing = self.writing();
        let _revoking = self.revoking.lock().unwrap_or_else(|p| p.into_inner());
        let mut expired = Vec::new();
        let mut tally = StatsTally::new();
        for item in self.code_status.iter() {
            let (key, value) = item.map_err(engine)?;
            let mut record = CodeStatusRecord::decode(&value)?;
            if record.state == CodeState::Issued && record.expires < today {
                let state = CodeState::Expired(record.expires);
                tally.merge(&record.count_change(state));
                record.state = state;
                expired.push((key, encode(&record)));
            }
        }
        if expired.is_empty() {
            return Ok(0);
        }
        (&self.code_status, &self.stats)
            .transaction(|(code_status, stats)| {
                for (key, record) in &expired {
                    code_status.insert(key, record.as_slice())?;
                }
                count_in(stats, &tally)?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)?;
        Ok(expired.len() as u64)
    }

    fn purge_stats(&self, before: DayNumber) -> Result<u64, StoreError> {
        let _writing = self.writing();
        let end = StatsKey::day_start(before);
        let mut batch = sled::Batch::default();
        let mut purged = 0;
        for key in self.stats.range(..end).keys() {
            batch.remove(key.map_err(engine)?);
            purged += 1;
        }
        self.stats.apply_batch(batch).map_err(engine)?;
        Ok(purged)
    }

    fn purge_code_statuses(&self, expired_before: DayNumber) -> Result<u64, StoreError> {
        let _writing = self.writing();
        let _revoking = self.revoking.lock().unwrap_or_else(|p| p.into_inner());
        let mut doomed = Vec::new();
        for item in self.code_status.iter() {
            let (key, value) = item.map_err(engine)?;
            let record = CodeStatusRecord::decode(&value)?;
            if record.expires < expired_before {
                doomed.push(key);
            }
        }
        let mut batch = sled::Batch::default();
        for key in &doomed {
            batch.remove(key.as_ref());
        }
        self.code_status.apply_batch(batch).map_err(engine)?;
        Ok(doomed.len() as u64)
    }

    fn revoke_code(
        &self,
        reference: &CodeReference,
        day: DayNumber,
    ) -> Result<RevokeOutcome, StoreError> {
        let _writing = self.writing();
        let _revoking = self.revoking.lock().unwrap_or_else(|p| p.into_inner());
        let Some(record) = self.code_status(reference)? else {
            return Ok(RevokeOutcome::Unknown);
        };
        // Used, revoked, or past its expiry day: nothing left to revoke.
        if record.status(day) != CodeStatus::Issued {
            return Ok(RevokeOutcome::NotRevocable(record));
        }
        // The remove decides between a revoke and a redeem, as between two redeems. The
        // code's expiry entry stays for the purge, which skips a missing code.
        if self.codes.remove(record.lookup).map_err(engine)?.is_none() {
            return Ok(RevokeOutcome::NotRevocable(record));
        }
        self.write_code_state(reference, record, CodeState::Revoked(day))?;
        Ok(RevokeOutcome::Revoked)
    }

    fn commit_upload(&self, commit: &UploadCommit) -> Result<CommitOutcome, StoreError> {
        Ok(self
            .commit_uploads(std::slice::from_ref(commit))?
            .pop()
            .unwrap_or(CommitOutcome::Committed))
    }

    fn commit_uploads(&self, commits: &[UploadCommit]) -> Result<Vec<CommitOutcome>, StoreError> {
        let _writing = self.writing();
        // Encode everything outside the transaction (its closure may run more than once).
        let prepared = commits
            .iter()
            .map(|c| self.prepare(c))
            .collect::<Result<Vec<Prepared>, StoreError>>()?;
        let _guard = self.lock_uploads();
        let result = (
            &self.certificates,
            &self.uploads,
            &self.queue,
            &self.expiry,
            &self.sync_index,
            &self.day_digests,
            &self.stats,
        )
            .transaction(
                |(certificates, uploads, queue, expiry, sync_index, digests, stats)| {
                    let mut outcomes = Vec::with_capacity(prepared.len());
                    let mut added = 0u64;
                    let mut tally = StatsTally::new();
                    for (commit, p) in commits.iter().zip(&prepared) {
                        let certificate = commit.certificate.0;
                        let upload_id = commit.upload.0;
                        if certificates.get(certificate.0)?.is_some() {
                            outcomes.push(CommitOutcome::CertificateUsed);
                            continue;
                        }
                        if let Some(original) = &commit.consume_revision {
                            let mark = certificates
                                .get(original.0)?
                                .and_then(|bytes| CertificateUse::from_bytes(&bytes));
                            match mark {
                                Some(mut mark) if mark.state.revisable() => {
                                    mark.state = CertificateState::Revised;
                                    certificates.insert(&original.0, &mark.to_bytes()[..])?;
                                }
                                _ => {
                                    outcomes.push(CommitOutcome::RevisionTokenUnknown);
                                    continue;
                                }
                            }
                        }
                        certificates.insert(&certificate.0, &p.mark[..])?;
                        let fresh = uploads.insert(&upload_id.0, p.record.as_slice())?.is_none();
                        expiry.insert(p.expiry.as_slice(), &[])?;
                        if fresh {
                            added += 1;
                            sync_index.insert(p.sync_key.as_slice(), &[])?;
                            add_to_digest(digests, p.day, &upload_id)?;
                        }
                        if let Some((id, bytes)) = &p.original
                            && uploads.insert(id, bytes.as_slice())?.is_none()
                        {
                            // A purge removed the original after the node read it: it is back.
                            added += 1;
                        }
                        for key in &commit.dequeue {
                            queue.remove(key.to_bytes().as_slice())?;
                        }
                        for (key, group) in &p.enqueue {
                            queue.insert(key.as_slice(), group.as_slice())?;
                        }
                        tally.add(commit.counted_as(), 1);
                        outcomes.push(CommitOutcome::Committed);
                    }
                    count_in(stats, &tally)?;
                    Ok::<_, ConflictableTransactionError<()>>((outcomes, added))
                },
            );
        let (outcomes, added) = result.map_err(tx_error)?;
        // Still under `uploads_lock`: no purge moves the count in between.
        self.upload_count.fetch_add(added, Ordering::Relaxed);
        Ok(outcomes)
    }

    fn sync_ids(
        &self,
        day: DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, StoreError> {
        let prefix = day.0.to_be_bytes();
        let start = match after {
            Some(after) => {
                let mut key = sync_key(day, &after).to_vec();
                key.push(0);
                key
            }
            None => prefix.to_vec(),
        };
        let mut out = Vec::new();
        for item in self.sync_index.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item.map_err(engine)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let id: [u8; 32] = key[4..]
                .try_into()
                .map_err(|_| StoreError::Corrupt { tree: "sync-index" })?;
            out.push(UploadId(id));
        }
        Ok(out)
    }

    fn day_digest(&self, day: DayNumber) -> Result<DayDigest, StoreError> {
        match self.day_digests.get(day.0.to_be_bytes()).map_err(engine)? {
            Some(bytes) => decode(&bytes, "day-digests"),
            None => Ok(DayDigest::empty(day)),
        }
    }

    fn certificate_use(&self, id: &CertificateId) -> Result<Option<CertificateUse>, StoreError> {
        match self.certificates.get(id.0).map_err(engine)? {
            Some(bytes) => Ok(Some(CertificateUse::from_bytes(&bytes).ok_or(
                StoreError::Corrupt {
                    tree: "certificates",
                },
            )?)),
            None => Ok(None),
        }
    }

    fn upload(&self, id: &UploadId) -> Result<Option<StoredUpload>, StoreError> {
        match self.uploads.get(id.0).map_err(engine)? {
            Some(bytes) => self.data_keys.open_upload(id, &bytes),
            None => Ok(None),
        }
    }

    fn upload_count(&self) -> Result<u64, StoreError> {
        Ok(self.upload_count.load(Ordering::Relaxed))
    }

    fn queued_until(&self, until: UnixTime) -> Result<Vec<(QueueKey, QueuedGroup)>, StoreError> {
        let end = QueueKey {
            release_at: until,
            upload: UploadId([0xff; 32]),
        }
        .to_bytes();
        let mut out = Vec::new();
        for item in self.queue.range(..=end.as_slice()) {
            let (key, value) = item.map_err(engine)?;
            let group = self.data_keys.open_group(&key, &value)?;
            let key = QueueKey::from_bytes(&key).ok_or(StoreError::Corrupt { tree: "queue" })?;
            // A group whose day's key is gone is past retention: the purge removes it.
            out.extend(group.map(|group| (key, group)));
        }
        Ok(out)
    }

    fn queued(&self, key: &QueueKey) -> Result<Option<QueuedGroup>, StoreError> {
        let key = key.to_bytes();
        match self.queue.get(key).map_err(engine)? {
            Some(bytes) => self.data_keys.open_group(&key, &bytes),
            None => Ok(None),
        }
    }

    fn cutter_state(&self) -> Result<CutterState, StoreError> {
        match self.meta.get(CUTTER_STATE_KEY).map_err(engine)? {
            Some(bytes) => decode(&bytes, "meta"),
            None => Ok(CutterState::INITIAL),
        }
    }

    fn chain_head(&self) -> Result<Option<ChainHead>, StoreError> {
        if let Some(bytes) = self.meta.get(CHAIN_HEAD_KEY).map_err(engine)? {
            return decode(&bytes, "meta").map(Some);
        }
        match self.batch_index.last().map_err(engine)? {
            Some((_, value)) => {
                let entry: BatchIndexEntry = decode(&value, "batch-index")?;
                Ok(Some(ChainHead {
                    sequence: entry.sequence,
                    id: entry.id,
                }))
            }
            None => Ok(None),
        }
    }

    fn commit_cut(&self, cut: &CutCommit) -> Result<(), StoreError> {
        let _writing = self.writing();
        let state = encode(&cut.state);
        let chain_head = cut.batches.last().map(|last| {
            encode(&ChainHead {
                sequence: last.entry.sequence,
                id: last.entry.id,
            })
        });
        let counted = cut.counted();
        let _guard = self.lock_blobs();
        // Files first, synced (file, rename, folder) before the index entries exist: a crash
        // leaves either no entry (the file is an orphan, removed at open) or a whole file.
        let write = |bytes: &[u8]| {
            self.blobs
                .write(bytes)
                .map(|blob| encode(&blob))
                .map_err(|e| blob_io("write", e))
        };
        let export_refs = cut
            .exports
            .iter()
            .map(|e| write(&e.bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let batch_refs = cut
            .batches
            .iter()
            .map(|b| write(&b.bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let filter_refs = cut
            .batches
            .iter()
            .map(|b| b.filter.as_deref().map(write).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        if !export_refs.is_empty() || !batch_refs.is_empty() {
            self.blobs.sync().map_err(|e| blob_io("sync", e))?;
        }
        (
            &self.batches,
            &self.batch_index,
            &self.queue,
            &self.meta,
            &self.expiry,
            &self.exports,
            &self.filters,
            &self.stats,
        )
            .transaction(
                |(batches, index, queue, meta, expiry, exports, filters, stats)| {
                    let current = match meta.get(CUTTER_STATE_KEY)? {
                        Some(bytes) => postcard::from_bytes(&bytes).ok(),
                        None => Some(CutterState::INITIAL),
                    };
                    if current != Some(cut.from) {
                        return Err(ConflictableTransactionError::Abort(()));
                    }
                    for (export, blob) in cut.exports.iter().zip(&export_refs) {
                        exports.insert(export.name.as_bytes(), blob.as_slice())?;
                        expiry.insert(
                            expiry_key(export.purge_at, ExpiryKind::Export, export.name.as_bytes()),
                            &[],
                        )?;
                    }
                    for ((batch, blob), filter) in
                        cut.batches.iter().zip(&batch_refs).zip(&filter_refs)
                    {
                        let id = batch.entry.id.0;
                        let seq = batch.entry.sequence.to_be_bytes();
                        batches.insert(&id, blob.as_slice())?;
                        if let Some(filter) = filter {
                            filters.insert(&id, filter.as_slice())?;
                        }
                        index.insert(&seq, encode(&batch.entry))?;
                        let mut reference = seq.to_vec();
                        reference.extend_from_slice(&id);
                        expiry.insert(
                            expiry_key(batch.purge_at, ExpiryKind::Batch, &reference),
                            &[],
                        )?;
                    }
                    for key in &cut.dequeue {
                        queue.remove(key.to_bytes().as_slice())?;
                    }
                    meta.insert(CUTTER_STATE_KEY, state.as_slice())?;
                    if let Some(head) = &chain_head {
                        meta.insert(CHAIN_HEAD_KEY, head.as_slice())?;
                    }
                    count_in(stats, &counted)?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                },
            )
            .map_err(|e| match e {
                TransactionError::Abort(()) => StoreError::CutSuperseded,
                other => tx_error(other),
            })
    }

    fn batch(&self, id: &BatchId) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_blob((&self.batches, "batches"), &id.0, "batch")
    }

    fn token_filter(&self, id: &BatchId) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_blob((&self.filters, "filters"), &id.0, "token filter")
    }

    fn batch_index(&self, after: u64, limit: usize) -> Result<Vec<BatchIndexEntry>, StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in self.batch_index.range(start.to_be_bytes()..).take(limit) {
            let (_, value) = item.map_err(engine)?;
            out.push(decode(&value, "batch-index")?);
        }
        Ok(out)
    }

    fn export(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_blob((&self.exports, "exports"), name.as_bytes(), "export")
    }

    fn export_names(&self) -> Result<Vec<String>, StoreError> {
        self.exports
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(engine)?;
                String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt { tree: "exports" })
            })
            .collect()
    }

    fn credential(&self, name: &str) -> Result<Option<CredentialRecord>, StoreError> {
        match self.credentials.get(name.as_bytes()).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes, "credentials")?)),
            None => Ok(None),
        }
    }

    fn put_credential(&self, name: &str, record: &CredentialRecord) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.credentials
            .insert(name.as_bytes(), encode(record))
            .map_err(engine)?;
        Ok(())
    }

    fn credential_names(&self) -> Result<Vec<String>, StoreError> {
        self.credentials
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(engine)?;
                String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                    tree: "credentials",
                })
            })
            .collect()
    }

    fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        match self.accounts.get(name.as_bytes()).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes, "accounts")?)),
            None => Ok(None),
        }
    }

    fn put_account(&self, name: &str, record: &AccountRecord) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.accounts
            .insert(name.as_bytes(), encode(record))
            .map_err(engine)?;
        Ok(())
    }

    fn accounts(&self) -> Result<Vec<(String, AccountRecord)>, StoreError> {
        self.accounts
            .iter()
            .map(|entry| {
                let (k, v) = entry.map_err(engine)?;
                let name = String::from_utf8(k.to_vec())
                    .map_err(|_| StoreError::Corrupt { tree: "accounts" })?;
                Ok((name, decode(&v, "accounts")?))
            })
            .collect()
    }

    fn session(&self, id: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        match self.sessions.get(id).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes, "sessions")?)),
            None => Ok(None),
        }
    }

    fn put_session(&self, id: &[u8; 32], record: &SessionRecord) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.sessions.insert(id, encode(record)).map_err(engine)?;
        Ok(())
    }

    fn remove_session(&self, id: &[u8; 32]) -> Result<bool, StoreError> {
        let _writing = self.writing();
        Ok(self.sessions.remove(id).map_err(engine)?.is_some())
    }

    fn remove_sessions(&self, doomed: &dyn Fn(&SessionRecord) -> bool) -> Result<u64, StoreError> {
        let _writing = self.writing();
        let mut removed = 0;
        for entry in &self.sessions {
            let (k, v) = entry.map_err(engine)?;
            let record: SessionRecord = decode(&v, "sessions")?;
            if doomed(&record) {
                self.sessions.remove(k).map_err(engine)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn api_key(&self, id: &[u8; API_KEY_ID_LEN]) -> Result<Option<ApiKeyRecord>, StoreError> {
        match self.api_keys.get(id).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes, "api-keys")?)),
            None => Ok(None),
        }
    }

    fn put_api_key(
        &self,
        id: &[u8; API_KEY_ID_LEN],
        record: &ApiKeyRecord,
    ) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.api_keys.insert(id, encode(record)).map_err(engine)?;
        Ok(())
    }

    fn api_keys(&self) -> Result<Vec<([u8; API_KEY_ID_LEN], ApiKeyRecord)>, StoreError> {
        self.api_keys
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(engine)?;
                let id = key
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt { tree: "api-keys" })?;
                Ok((id, decode(&value, "api-keys")?))
            })
            .collect()
    }

    fn charge_quota(
        &self,
        subject: &str,
        day: DayNumber,
        amount: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let _writing = self.writing();
        let _charging = self.charging.lock().unwrap_or_else(|p| p.into_inner());
        let current = match self.quotas.get(subject.as_bytes()).map_err(engine)? {
            Some(bytes) => decode(&bytes, "quotas")?,
            None => QuotaRecord { day, used: 0 },
        };
        let Some(charged) = current.charge(day, amount, limit) else {
            return Ok(false);
        };
        self.quotas
            .insert(subject.as_bytes(), encode(&charged))
            .map_err(engine)?;
        Ok(true)
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let _writing = self.writing();
        let sequence = entry.record.sequence;
        self.audit
            .compare_and_swap(sequence.to_be_bytes(), None::<&[u8]>, Some(encode(entry)))
            .map_err(engine)?
            .map_err(|_| StoreError::AuditSequenceTaken { sequence })
    }

    fn audit_trail(&self) -> Result<(Option<AuditAnchor>, Vec<AuditEntry>), StoreError> {
        let anchor = match self.meta.get(AUDIT_ANCHOR_KEY).map_err(engine)? {
            Some(bytes) => Some(decode(&bytes, "audit anchor")?),
            None => None,
        };
        let entries = self
            .audit
            .iter()
            .values()
            .map(|v| decode(&v.map_err(engine)?, "audit"))
            .collect::<Result<_, _>>()?;
        Ok((anchor, entries))
    }

    fn applied_settings(&self) -> Result<Vec<SettingDigest>, StoreError> {
        match self.meta.get(APPLIED_SETTINGS_KEY).map_err(engine)? {
            Some(bytes) => decode(&bytes, "applied settings"),
            None => Ok(Vec::new()),
        }
    }

    fn set_applied_settings(&self, settings: &[SettingDigest]) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.meta
            .insert(APPLIED_SETTINGS_KEY, encode(&settings))
            .map_err(engine)?;
        Ok(())
    }

    fn audit_head(&self) -> Result<Option<(u64, AuditHash)>, StoreError> {
        if let Some((_, bytes)) = self.audit.last().map_err(engine)? {
            let entry: AuditEntry = decode(&bytes, "audit")?;
            return Ok(Some((entry.record.sequence, entry.record.hash())));
        }
        Ok(match self.meta.get(AUDIT_ANCHOR_KEY).map_err(engine)? {
            Some(bytes) => {
                let anchor: AuditAnchor = decode(&bytes, "audit anchor")?;
                Some((anchor.sequence, anchor.head))
            }
            None => None,
        })
    }

    fn purge_audit(&self, anchor: &AuditAnchor) -> Result<u64, StoreError> {
        let _writing = self.writing();
        let end = (anchor.sequence + 1).to_be_bytes();
        let purged: Vec<sled::IVec> = self
            .audit
            .range(..end)
            .keys()
            .collect::<Result<_, _>>()
            .map_err(engine)?;
        let anchor_bytes = encode(anchor);
        (&self.audit, &self.meta)
            .transaction(|(audit, meta)| {
                for key in &purged {
                    audit.remove(key)?;
                }
                meta.insert(AUDIT_ANCHOR_KEY, anchor_bytes.as_slice())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)?;
        Ok(purged.len() as u64)
    }

    fn purge(&self, now: UnixTime, stale_before: UnixTime) -> Result<PurgeCounts, StoreError> {
        let _writing = self.writing();
        let mut counts = PurgeCounts::default();
        // Files of the batches and exports removed here, deleted at the end.
        let mut doomed: Vec<[u8; 32]> = Vec::new();
        let end = (now.0.saturating_add(1)).to_be_bytes();
        for item in self.expiry.range(..end.as_slice()) {
            let (key, _) = item.map_err(engine)?;
            match parse_expiring(&key)? {
                Expiring::Upload {
                    id,
                    certificate,
                    certificate_purge_at,
                } => {
                    let _guard = self.lock_uploads();
                    if let Some(bytes) = self.uploads.remove(id.0).map_err(engine)? {
                        self.upload_count.fetch_sub(1, Ordering::Relaxed);
                        counts.uploads += 1;
                        match self.data_keys.open_upload(&id, &bytes)? {
                            Some(record) => self.forget_synced(sync_day(&record.upload), &id)?,
                            // Its key went first (a clock step back): find its day by id.
                            None => self.forget_synced_by_id(&id)?,
                        }
                    }
                    if certificate_purge_at <= now {
                        if self
                            .certificates
                            .remove(certificate.0)
                            .map_err(engine)?
                            .is_some()
                        {
                            counts.certificates += 1;
                        }
                    } else {
                        // The mark outlives the upload: file it under its own time.
                        self.expiry
                            .insert(
                                expiry_key(
                                    certificate_purge_at,
                                    ExpiryKind::Certificate,
                                    &certificate.0,
                                ),
                                &[],
                            )
                            .map_err(engine)?;
                    }
                }
                Expiring::Certificate(id) => {
                    let _guard = self.lock_uploads();
                    if self.certificates.remove(id.0).map_err(engine)?.is_some() {
                        counts.certificates += 1;
                    }
                }
                Expiring::Batch { sequence, id } => {
                    self.batch_index
                        .remove(sequence.to_be_bytes())
                        .map_err(engine)?;
                    if let Some(value) = self.filters.remove(id.0).map_err(engine)?
                        && let Ok(blob) = decode::<BlobRef>(&value, "filters")
                    {
                        doomed.push(blob.hash);
                    }
                    if let Some(value) = self.batches.remove(id.0).map_err(engine)? {
                        counts.batches += 1;
                        // An undecodable entry's file is an orphan: removed at open.
                        if let Ok(blob) = decode::<BlobRef>(&value, "batches") {
                            doomed.push(blob.hash);
                        }
                    }
                }
                Expiring::Code(lookup) => {
                    if self.codes.remove(lookup).map_err(engine)?.is_some() {
                        counts.codes += 1;
                    }
                }
                Expiring::Export(name) => {
                    if let Some(value) = self.exports.remove(name).map_err(engine)? {
                        counts.exports += 1;
                        if let Ok(blob) = decode::<BlobRef>(&value, "exports") {
                            doomed.push(blob.hash);
                        }
                    }
                }
                Expiring::VenueRelease { sequence, id } => {
                    self.venue_release_ids.remove(id.0).map_err(engine)?;
                    if self
                        .venue_releases
                        .remove(sequence.to_be_bytes())
                        .map_err(engine)?
                        .is_some()
                    {
                        counts.venue_releases += 1;
                    }
                }
            }
            self.expiry.remove(&key).map_err(engine)?;
        }
        let stale_end = stale_before.0.to_be_bytes();
        for item in self.queue.range(..stale_end.as_slice()) {
            let (key, _) = item.map_err(engine)?;
            self.queue.remove(&key).map_err(engine)?;
            counts.queued += 1;
        }
        if let Some(last) = shreddable_through(stale_before) {
            // Every record sealed under these days' keys is past retention and removed
            // above; make that durable, then destroy the keys so the bytes sled keeps
            // until it rewrites their segments are noise.
            if self.data_keys.days().first().is_some_and(|d| *d <= last.0) {
                self.db.flush().map_err(engine)?;
                counts.data_keys += self.data_keys.destroy_through(last)? as u64;
            }
        }
        if !doomed.is_empty() {
            // The index entries' removal must be durable before their files go: a crash
            // must never bring back an entry whose file is gone.
            self.db.flush().map_err(engine)?;
            let _guard = self.lock_blobs();
            // A file is shared only by entries with identical bytes; keep any still named.
            let live: HashSet<[u8; 32]> = self.blob_refs()?.iter().map(|r| r.hash).collect();
            self.blobs
                .remove(doomed.iter().filter(|hash| !live.contains(*hash)))
                .map_err(|e| blob_io("remove", e))?;
        }
        Ok(counts)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(engine)?;
        Ok(())
    }

    fn backup(&self, to: &Path) -> Result<BackupSummary, StoreError> {
        prepare_target(to)?;
        let writers_held = std::time::Instant::now();
        let _paused = self
            .writing
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Nothing writes now: once flushed, sled's files hold exactly the current state.
        self.db.flush().map_err(engine)?;
        self.paths.copy_to(to, writers_held)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let files = self.blobs.size().map_err(|e| blob_io("size", e))?;
        Ok(self.db.size_on_disk().map_err(engine)? + files)
    }

    fn bound_key(&self) -> Result<Option<Ed25519PublicKey>, StoreError> {
        decode_bound_key(self.meta.get(BOUND_KEY_KEY).map_err(engine)?)
    }

    fn bind_key(
        &self,
        expected: Option<&Ed25519PublicKey>,
        key: &Ed25519PublicKey,
    ) -> Result<Ed25519PublicKey, StoreError> {
        // Whether the swap happened or not, what is recorded now is the answer.
        let _ = self
            .meta
            .compare_and_swap(
                BOUND_KEY_KEY,
                expected.map(|k| k.0.as_slice()),
                Some(key.0.as_slice()),
            )
            .map_err(engine)?;
        self.db.flush().map_err(engine)?;
        self.bound_key()?
            .ok_or(StoreError::Corrupt { tree: "meta" })
    }

    fn sunset_order(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .meta
            .get(SUNSET_ORDER_KEY)
            .map_err(engine)?
            .map(|v| v.to_vec()))
    }

    fn record_sunset_order(&self, frame: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(SUNSET_ORDER_KEY, frame).map_err(engine)?;
        self.db.flush().map_err(engine)?;
        Ok(())
    }

    fn remove_uploads(&self, uploads: &[(UploadId, Vec<QueueKey>)]) -> Result<u64, StoreError> {
        let _writing = self.writing();
        let _guard = self.lock_uploads();
        let mut removed = 0;
        for (id, queued) in uploads {
            for key in queued {
                self.queue.remove(key.to_bytes()).map_err(engine)?;
            }
            if let Some(bytes) = self.uploads.remove(id.0).map_err(engine)? {
                removed += 1;
                self.upload_count.fetch_sub(1, Ordering::Relaxed);
                match self.data_keys.open_upload(id, &bytes)? {
                    Some(record) => self.forget_synced(sync_day(&record.upload), id)?,
                    None => self.forget_synced_by_id(id)?,
                }
            }
        }
        self.db.flush().map_err(engine)?;
        Ok(removed)
    }

    fn earliest_expiries(&self) -> Result<Vec<(&'static str, UnixTime)>, StoreError> {
        super::earliest_per_kind(self.expiry.iter().keys().map(|k| k.map_err(engine)))
    }

    fn insert_venue_release(
        &self,
        id: &ReleaseId,
        frame: &[u8],
        arrived_at: UnixTime,
        purge_at: UnixTime,
    ) -> Result<Option<ReleaseIndexEntry>, StoreError> {
        let _writing = self.writing();
        let _guard = self
            .releasing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.venue_release_ids.contains_key(id.0).map_err(engine)? {
            return Ok(None);
        }
        let last = self
            .venue_releases
            .last()
            .map_err(engine)?
            .map(|(key, _)| {
                <[u8; 8]>::try_from(key.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        tree: "venue-releases",
                    })
            })
            .transpose()?;
        let sequence = next_release_sequence(last, arrived_at);
        let record = encode(&(id, frame));
        let expiry = expiry_key(
            purge_at,
            ExpiryKind::VenueRelease,
            &release_expiry_reference(sequence, id),
        );
        (&self.venue_releases, &self.venue_release_ids, &self.expiry)
            .transaction(|(releases, ids, expiries)| {
                releases.insert(&sequence.to_be_bytes(), record.as_slice())?;
                ids.insert(&id.0, &sequence.to_be_bytes())?;
                expiries.insert(expiry.as_slice(), &[])?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)?;
        self.db.flush().map_err(engine)?;
        Ok(Some(ReleaseIndexEntry {
            id: *id,
            sequence,
            size: frame.len() as u64,
        }))
    }

    fn venue_release(&self, id: &ReleaseId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(sequence) = self.venue_release_ids.get(id.0).map_err(engine)? else {
            return Ok(None);
        };
        let Some(value) = self.venue_releases.get(sequence).map_err(engine)? else {
            return Ok(None);
        };
        let (_, frame): (ReleaseId, Vec<u8>) = decode(&value, "venue-releases")?;
        Ok(Some(frame))
    }

    fn venue_release_index(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ReleaseIndexEntry>, StoreError> {
        let mut out = Vec::new();
        let start = (
            std::ops::Bound::Excluded(after.to_be_bytes()),
            std::ops::Bound::Unbounded,
        );
        for item in self.venue_releases.range::<[u8; 8], _>(start).take(limit) {
            let (key, value) = item.map_err(engine)?;
            let sequence = <[u8; 8]>::try_from(key.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    tree: "venue-releases",
                })?;
            let (id, frame): (ReleaseId, Vec<u8>) = decode(&value, "venue-releases")?;
            out.push(ReleaseIndexEntry {
                id,
                sequence,
                size: frame.len() as u64,
            });
        }
        Ok(out)
    }

    fn erase_all(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut counts = Vec::new();
        for name in self.db.tree_names() {
            let name = String::from_utf8_lossy(&name).into_owned();
            if name.starts_with("__sled__") {
                continue;
            }
            let tree = self.db.open_tree(&name).map_err(engine)?;
            let mut erased = 0u64;
            if name == "meta" {
                for key in tree.iter().keys() {
                    let key = key.map_err(engine)?;
                    if key.as_ref() != SUNSET_ORDER_KEY.as_bytes() {
                        tree.remove(key).map_err(engine)?;
                        erased += 1;
                    }
                }
            } else {
                erased = tree.len() as u64;
                tree.clear().map_err(engine)?;
            }
            if erased > 0 {
                counts.push((name, erased));
            }
        }
        let swept = self
            .blobs
            .sweep(&std::collections::HashSet::new())
            .map_err(|e| blob_io("erase", e))?;
        let keys = self.data_keys.destroy_through(DayNumber(u32::MAX))?;
        counts.push(("blob-files".to_owned(), swept.orphans + swept.temps));
        counts.push(("data-keys".to_owned(), keys as u64));
        counts.retain(|(_, n)| *n > 0);
        counts.sort();
        self.upload_count.store(0, Ordering::Relaxed);
        self.db.flush().map_err(engine)?;
        Ok(counts)
    }
}

#[cfg(test)]
mod at_rest_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// A store closed a moment ago in this process still holds sled's lock until its
    /// flusher thread ends: opening again waits for it; a lock held for good is still an
    /// error, after the wait.
    #[test]
    fn opening_waits_briefly_for_the_lock_of_a_store_being_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let held = open_db(&path).unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        // A second handle of the same process while the first is open: sled's lock refuses
        // it, so this waits for the drop above.
        let started = std::time::Instant::now();
        let reopened = open_db(&path);
        closer.join().unwrap();
        assert!(reopened.is_ok(), "{:?}", reopened.err());
        assert!(started.elapsed() >= std::time::Duration::from_millis(250));
        drop(reopened);

        let _kept = open_db(&path).unwrap();
        let started = std::time::Instant::now();
        let Err(refused) = open_db(&path) else {
            panic!("opened while the lock is held");
        };
        assert!(started.elapsed() >= LOCK_WAIT);
        assert!(
            refused.to_string().contains("could not acquire lock"),
            "{refused}"
        );
    }

    #[test]
    fn taking_a_code_drops_its_expiry_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledReportStore::open(
            &dir.path().join("db"),
            &dir.path().join("blobs"),
            &dir.path().join("keys"),
        )
        .unwrap();
        let record = CodeRecord {
            test_type: ephemera_proto::report::ReportType::ConfirmedTest,
            symptom_onset: None,
            expires_at: UnixTime(2_000_000_000),
            reference: None,
        };
        store
            .insert_codes(&[
                (CodeHash([1; 32]), record.clone()),
                (CodeHash([2; 32]), record.clone()),
            ])
            .unwrap();
        assert_eq!(store.expiry.len(), 2);
        assert_eq!(store.take_code(&CodeHash([1; 32])).unwrap(), Some(record));
        assert_eq!(store.take_code(&CodeHash([1; 32])).unwrap(), None);
        assert_eq!(store.take_code(&CodeHash([3; 32])).unwrap(), None);
        // Only the unused code's entry is left, and the purge still expires that code.
        assert_eq!(store.expiry.len(), 1);
        let counts = store
            .purge(code_purge_at(UnixTime(2_000_000_000)), UnixTime(0))
            .unwrap();
        assert_eq!(counts.codes, 1);
        assert!(store.expiry.is_empty());
    }
}
