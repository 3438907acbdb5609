//! Converting a database of storage format 3 (Ephemera 0.1.0) to [`STORE_FORMAT`] in place.
//!
//! Format 3 kept upload records, publication queue groups and code records in clear, filed
//! codes under their code hash, and dated uploads, their purge and their queue entries to
//! the second. The converter reads the old database and writes a new one beside it, from
//! nothing, in the form format 4 writes:
//!
//! - **Uploads**: `received_at` becomes the start of its batch period, each release time the
//!   later of itself and the first boundary at or after the arrival (a time that is still
//!   finer than a key interval goes to the next boundary): every entry is published by the
//!   same cut as before. Sealed under the data key of the arrival day (`keys/data/`).
//! - **Queue groups**: filed under the same release times (groups of one upload that now
//!   share a time are merged), sealed likewise.
//! - **Codes**: filed under a one-way hash of the code hash and sealed under a key derived
//!   from it; their expiry entries name the day after the expiry, not the second.
//! - **Expiry index**: a phone's upload is purged a retention period after its period's
//!   start, as format 4 counts it; a relayed upload's purge time and every certificate
//!   mark's are rounded up to a whole hour (kept a little longer, never less).
//! - Everything else (single-use marks, sync index and digests, batch and export entries,
//!   credentials, the cutter state) is copied as it is; the batch and export files beside
//!   the database do not change.
//!
//! A kill at any instant leaves a folder that this function finishes when run again, and
//! that the node refuses to open until then ([`unfinished`]):
//!
//! 1. the new database is written into `db.format4-new` (a partial one from an earlier run
//!    is removed first); its format number goes in last, after everything else is flushed;
//! 2. `db` is renamed to `db.format3-old`, then `db.format4-new` to `db`;
//! 3. every file of `db.format3-old` is overwritten with zeros, synced and removed: sled
//!    keeps removed and replaced values in its files, so the old files would otherwise
//!    hold codes and reports in clear.
//!
//! Nothing is logged: the caller prints the counts.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ephemera_proto::UnixTime;
use ephemera_proto::auth::CodeHash;
use ephemera_proto::time::INTERVAL_SECONDS;
use ephemera_proto::upload::UploadId;
use ring::rand::SystemRandom;
use sled::{Db, Tree};
use thiserror::Error;

use super::sealing::{DataKeys, Unsealed, code_lookup, seal_code};
use super::sled_store::{FORMAT_KEY, PAGE_CACHE_BYTES, STORE_FORMAT, remove_unfinished_snapshots};
use super::{
    CertificateState, CertificateUse, CodeRecord, ExpiryKind, QueueKey, QueuedGroup, StoreError,
    StoredUpload, UPLOAD_EXPIRY_REFERENCE_LEN, code_purge_at, decode, encode, expiry_key,
    format_advice, format_name, parse_expiry_key,
};

/// The format this module converts from.
const FROM_FORMAT: u32 = 3;
/// Suffix of the folder the new database is written into.
const NEW_SUFFIX: &str = "format4-new";
/// Suffix the old database is renamed to before it is destroyed.
const OLD_SUFFIX: &str = "format3-old";
/// Trees format 4 keeps exactly as format 3 wrote them.
const COPIED: [&str; 8] = [
    "certificates",
    "batches",
    "batch-index",
    "exports",
    "credentials",
    "sync-index",
    "day-digests",
    "meta",
];
/// Trees the converter rewrites.
const CONVERTED: [&str; 4] = ["uploads", "queue", "codes", "expiry"];
/// Certificate-derived times in the expiry index are kept in whole hours.
const HOUR_SECONDS: u64 = 3600;
/// Bytes written at a time when a file of the old database is overwritten.
const ZEROS_LEN: usize = 64 << 10;

/// What [`upgrade()`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeOutcome {
    /// The database was converted from format 3, and the old one destroyed.
    Converted(UpgradeCounts),
    /// An earlier run had written the new database and was cut short; this one put it in
    /// place (where that was still to do) and destroyed the old one.
    Finished,
    /// The database is already in [`STORE_FORMAT`]: nothing was done.
    Current,
}

/// Records a conversion wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpgradeCounts {
    /// Upload records, sealed.
    pub uploads: u64,
    /// Publication queue groups, sealed (after merging groups that now share a time).
    pub queued: u64,
    /// Unused upload codes, sealed under their new keys.
    pub codes: u64,
    /// Entries of the expiry index.
    pub expiry: u64,
    /// Records of the trees copied as they are.
    pub copied: u64,
}

/// Why [`upgrade()`] stopped. The database is unchanged, or an upgrade is under way that a
/// rerun finishes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// There is no database to convert.
    #[error("no database at {}: nothing to upgrade (is --data-dir the node's data folder?)", path.display())]
    NoDatabase {
        /// Where it should be.
        path: PathBuf,
    },
    /// The database is of a format this converter does not read.
    #[error(
        "the database holds storage format {}, which `ephemera-node upgrade` does not convert \
         (it converts format 3 to {}); {}",
        format_name(*found),
        STORE_FORMAT,
        format_advice(*found)
    )]
    Unconvertible {
        /// The format found (`None`: format 1, which carried no number).
        found: Option<u32>,
    },
    /// The database was renamed aside but the converted one is not complete: only a person
    /// may decide to put the old one back.
    #[error(
        "{} is missing, and {} holds the format 3 database without a complete converted \
         copy beside it: rename it back to {} and run `ephemera-node upgrade` again",
        db.display(),
        old.display(),
        db.display()
    )]
    Stranded {
        /// The database's place.
        db: PathBuf,
        /// The old database.
        old: PathBuf,
    },
    /// Beside the format 3 database an upgrade renamed aside lies a `db/` that is not the
    /// converted one (put there by hand): only a person may decide which to keep.
    #[error(
        "{} holds storage format {} and {} the format 3 database an upgrade renamed aside: \
         keep one (move the other away) and run `ephemera-node upgrade` again",
        db.display(),
        format_name(*found),
        old.display()
    )]
    Ambiguous {
        /// The database's place.
        db: PathBuf,
        /// The format `db/` holds.
        found: Option<u32>,
        /// The old database.
        old: PathBuf,
    },
    /// The database holds a tree format 3 never wrote.
    #[error(
        "the database holds a tree `{tree}` that storage format 3 never wrote: not converting \
         a database this converter does not know"
    )]
    UnknownTree {
        /// The tree's name.
        tree: String,
    },
    /// Reading, sealing or writing failed (a disk error, a corrupt record, or the database
    /// is held by a running node).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

/// A point of the conversion, for tests that cut it short there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// After this many records were written into the new database.
    Written(u64),
    /// The new database is complete, stamped and closed; the old one is still `db`.
    BeforeSwap,
    /// The old database is renamed aside; the new one is not in its place yet.
    BetweenRenames,
    /// The new database is in place; the old one is not destroyed yet.
    BeforeShred,
}

/// Converts the database at `db` from format 3 to [`STORE_FORMAT`], sealing reports under
/// the data keys of `data_keys` (created there) and dating arrivals to periods of
/// `batch_period_seconds` (the node's `[publication] batch_period_seconds`). Run on a folder
/// already in [`STORE_FORMAT`] it does nothing; run after a conversion was cut short it
/// finishes it. The node must be stopped (sled's lock refuses a database in use).
///
/// # Errors
/// [`UpgradeError`]; the database is then unchanged, or a rerun finishes the upgrade.
pub fn upgrade(
    db: &Path,
    data_keys: &Path,
    batch_period_seconds: u64,
) -> Result<UpgradeOutcome, UpgradeError> {
    run(db, data_keys, batch_period_seconds, &|_| false)
}

/// A folder an unfinished [`upgrade()`] left beside the database at `db`, if any.
pub(crate) fn unfinished(db: &Path) -> Option<PathBuf> {
    [side(db, OLD_SUFFIX), side(db, NEW_SUFFIX)]
        .into_iter()
        .find(|folder| folder.exists())
}

/// [`upgrade()`], stopping with an error where `stop` says so.
pub(crate) fn run(
    db: &Path,
    data_keys: &Path,
    batch_period_seconds: u64,
    stop: &dyn Fn(Step) -> bool,
) -> Result<UpgradeOutcome, UpgradeError> {
    let new = side(db, NEW_SUFFIX);
    let old = side(db, OLD_SUFFIX);
    if old.exists() {
        // Cut short after the old database was renamed aside.
        if !db.exists() {
            if !new.exists() || stamped_format(&open_db(&new)?)? != Some(STORE_FORMAT) {
                return Err(UpgradeError::Stranded {
                    db: db.to_owned(),
                    old,
                });
            }
            rename(&new, db)?;
        } else {
            // `db/` must be the converted database; anything else was put there by hand.
            let found = stamped_format(&open_db(db)?)?;
            if found != Some(STORE_FORMAT) {
                return Err(UpgradeError::Ambiguous {
                    db: db.to_owned(),
                    found,
                    old,
                });
            }
        }
        checkpoint(stop, Step::BeforeShred)?;
        shred(&old)?;
        return Ok(UpgradeOutcome::Finished);
    }
    if !db.exists() {
        return Err(UpgradeError::NoDatabase {
            path: db.to_owned(),
        });
    }
    remove_unfinished_snapshots(db)?;
    let counts = {
        let from = open_db(db)?;
        match stamped_format(&from)? {
            Some(STORE_FORMAT) => {
                remove_folder(&new)?;
                return Ok(UpgradeOutcome::Current);
            }
            Some(FROM_FORMAT) => {}
            None if is_empty(&from)? => return Ok(UpgradeOutcome::Current),
            found => return Err(UpgradeError::Unconvertible { found }),
        }
        check_trees(&from)?;
        // A partial copy from a run cut short: start over.
        remove_folder(&new)?;
        let to = open_db(&new)?;
        let keys = DataKeys::open(data_keys)?;
        let mut writer = Writer {
            stop,
            written: 0,
            counts: UpgradeCounts::default(),
        };
        Converter {
            from: &from,
            to: &to,
            keys: &keys,
            period: batch_period_seconds.max(1),
            rng: SystemRandom::new(),
        }
        .convert(&mut writer)?;
        // The format number goes in last: a database without it is incomplete.
        to.open_tree("meta")
            .map_err(engine)?
            .insert(FORMAT_KEY, &STORE_FORMAT.to_be_bytes())
            .map_err(engine)?;
        to.flush().map_err(engine)?;
        writer.counts
    };
    checkpoint(stop, Step::BeforeSwap)?;
    rename(db, &old)?;
    checkpoint(stop, Step::BetweenRenames)?;
    rename(&new, db)?;
    checkpoint(stop, Step::BeforeShred)?;
    shred(&old)?;
    Ok(UpgradeOutcome::Converted(counts))
}

/// `db` with `.suffix` added to its name, in the same folder.
fn side(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    db.with_file_name(name)
}

fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn io_error(what: String) -> impl FnOnce(io::Error) -> UpgradeError {
    move |source| UpgradeError::Io { what, source }
}

fn checkpoint(stop: &dyn Fn(Step) -> bool, step: Step) -> Result<(), UpgradeError> {
    if stop(step) {
        return Err(UpgradeError::Io {
            what: format!("upgrade stopped at {step:?}"),
            source: io::Error::other("interrupted"),
        });
    }
    Ok(())
}

fn open_db(path: &Path) -> Result<Db, UpgradeError> {
    sled::Config::new()
        .path(path)
        .cache_capacity(PAGE_CACHE_BYTES)
        .open()
        .map_err(|e| {
            StoreError::Engine(format!(
                "opening {}: {e} (a running node holds its database: stop it first)",
                path.display()
            ))
        })
        .map_err(UpgradeError::from)
}

/// The number in `meta`, if there is one.
fn stamped_format(db: &Db) -> Result<Option<u32>, UpgradeError> {
    let meta = db.open_tree("meta").map_err(engine)?;
    let Some(bytes) = meta.get(FORMAT_KEY).map_err(engine)? else {
        return Ok(None);
    };
    let found = <[u8; 4]>::try_from(bytes.as_ref())
        .map(u32::from_be_bytes)
        .map_err(|_| StoreError::Corrupt { tree: "meta" })?;
    Ok(Some(found))
}

fn is_empty(db: &Db) -> Result<bool, UpgradeError> {
    for name in db.tree_names() {
        if !db.open_tree(&name).map_err(engine)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Refuses a database with a non-empty tree that format 3 never wrote.
fn check_trees(db: &Db) -> Result<(), UpgradeError> {
    let default_tree = db.name();
    for name in db.tree_names() {
        let known = name == default_tree
            || COPIED
                .iter()
                .chain(&CONVERTED)
                .any(|t| t.as_bytes() == &name[..]);
        if !known && !db.open_tree(&name).map_err(engine)?.is_empty() {
            return Err(UpgradeError::UnknownTree {
                tree: String::from_utf8_lossy(&name).into_owned(),
            });
        }
    }
    Ok(())
}

/// Renames `from` to `to` and makes the rename durable.
fn rename(from: &Path, to: &Path) -> Result<(), UpgradeError> {
    fs::rename(from, to).map_err(io_error(format!(
        "renaming {} to {}",
        from.display(),
        to.display()
    )))?;
    sync_parent(to)
}

fn sync_parent(path: &Path) -> Result<(), UpgradeError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(parent)
        .and_then(|f| f.sync_all())
        .map_err(io_error(format!("syncing {}", parent.display())))
}

fn remove_folder(path: &Path) -> Result<(), UpgradeError> {
    match fs::remove_dir_all(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(format!("removing {}", path.display()))(e)),
    }
}

/// Overwrites every file under `dir` with zeros (synced), then removes the folder.
fn shred(dir: &Path) -> Result<(), UpgradeError> {
    overwrite_files(dir)?;
    remove_folder(dir)
}

fn overwrite_files(dir: &Path) -> Result<(), UpgradeError> {
    let entries = fs::read_dir(dir).map_err(io_error(format!("reading {}", dir.display())))?;
    let zeros = vec![0u8; ZEROS_LEN];
    for entry in entries {
        let entry = entry.map_err(io_error(format!("reading {}", dir.display())))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(io_error(format!("reading {}", path.display())))?;
        if kind.is_dir() {
            overwrite_files(&path)?;
        } else if kind.is_file() {
            let overwrite = || -> io::Result<()> {
                let mut file = fs::OpenOptions::new().write(true).open(&path)?;
                let mut left = file.metadata()?.len();
                while left > 0 {
                    let n = left.min(ZEROS_LEN as u64) as usize;
                    file.write_all(&zeros[..n])?;
                    left -= n as u64;
                }
                file.sync_all()
            };
            overwrite().map_err(io_error(format!("overwriting {}", path.display())))?;
        }
    }
    Ok(())
}

/// Counts what goes into the new database, and stops where a test says so.
struct Writer<'a> {
    stop: &'a dyn Fn(Step) -> bool,
    written: u64,
    counts: UpgradeCounts,
}

impl Writer<'_> {
    fn insert(&mut self, tree: &Tree, key: &[u8], value: &[u8]) -> Result<(), UpgradeError> {
        checkpoint(self.stop, Step::Written(self.written))?;
        tree.insert(key, value).map_err(engine)?;
        self.written += 1;
        Ok(())
    }
}

/// One conversion: the old database, the new one, and how times are coarsened.
struct Converter<'a> {
    from: &'a Db,
    to: &'a Db,
    keys: &'a DataKeys,
    period: u64,
    rng: SystemRandom,
}

impl Converter<'_> {
    fn tree(db: &Db, name: &str) -> Result<Tree, UpgradeError> {
        Ok(db.open_tree(name).map_err(engine)?)
    }

    fn convert(&self, out: &mut Writer<'_>) -> Result<(), UpgradeError> {
        for name in COPIED {
            let to = Self::tree(self.to, name)?;
            for item in Self::tree(self.from, name)?.iter() {
                let (key, value) = item.map_err(engine)?;
                if name == "meta" && &key[..] == FORMAT_KEY {
                    continue;
                }
                out.insert(&to, &key, &value)?;
                out.counts.copied += 1;
            }
        }
        self.uploads(out)?;
        self.queue(out)?;
        self.codes(out)?;
        self.expiry(out)
    }

    /// The start of the batch period `t` falls in (format 4's arrival time).
    fn period_start(&self, t: UnixTime) -> UnixTime {
        UnixTime(t.0 / self.period * self.period)
    }

    /// The first boundary at or after `t`.
    fn boundary_from(&self, t: UnixTime) -> UnixTime {
        UnixTime(t.0.div_ceil(self.period) * self.period)
    }

    /// A release time as format 4 files it for an upload that arrived at `received_at`
    /// (`None`: not known): never before the first boundary after the arrival, and a time
    /// finer than a key interval (an arrival second) moved to the next boundary. Either
    /// way the cut that published it before publishes it still.
    fn release(&self, release: UnixTime, received_at: Option<UnixTime>) -> UnixTime {
        let floor = received_at.map_or(UnixTime(0), |r| self.boundary_from(r));
        let release = release.max(floor);
        if release.0.is_multiple_of(INTERVAL_SECONDS) {
            release
        } else {
            self.boundary_from(release)
        }
    }

    /// The old upload record of `id`, if there is one.
    fn old_upload(&self, uploads: &Tree, id: &[u8]) -> Result<Option<StoredUpload>, UpgradeError> {
        match uploads.get(id).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes, "uploads")?)),
            None => Ok(None),
        }
    }

    fn uploads(&self, out: &mut Writer<'_>) -> Result<(), UpgradeError> {
        let to = Self::tree(self.to, "uploads")?;
        for item in Self::tree(self.from, "uploads")?.iter() {
            let (key, value) = item.map_err(engine)?;
            let id = UploadId(
                key.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt { tree: "uploads" })?,
            );
            let mut record: StoredUpload = decode(&value, "uploads")?;
            let received_at = record.received_at;
            for release in record.releases.iter_mut().flatten() {
                *release = self.release(*release, Some(received_at));
            }
            record.received_at = self.period_start(received_at);
            out.insert(&to, &id.0, &self.keys.seal_upload(&id, &record)?)?;
            out.counts.uploads += 1;
        }
        Ok(())
    }

    fn queue(&self, out: &mut Writer<'_>) -> Result<(), UpgradeError> {
        let uploads = Self::tree(self.from, "uploads")?;
        let to = Self::tree(self.to, "queue")?;
        for item in Self::tree(self.from, "queue")?.iter() {
            let (key, value) = item.map_err(engine)?;
            let old = QueueKey::from_bytes(&key).ok_or(StoreError::Corrupt { tree: "queue" })?;
            let mut group: QueuedGroup = decode(&value, "queue")?;
            let received_at = self
                .old_upload(&uploads, &old.upload.0)?
                .map(|r| r.received_at);
            let release_at = self.release(old.release_at, received_at);
            let day = received_at
                .map_or(release_at, |r| self.period_start(r))
                .day();
            let key = QueueKey {
                release_at,
                upload: old.upload,
            }
            .to_bytes();
            // Groups of one upload that now share a release time become one.
            if let Some(sealed) = to.get(key).map_err(engine)? {
                match self.keys.open_sealed("queue", &[b"queue", &key], &sealed)? {
                    Unsealed::Plain(bytes) => {
                        let mut merged: QueuedGroup = decode(&bytes, "queue")?;
                        merged.append(&mut group);
                        group = merged;
                    }
                    Unsealed::Shredded => return Err(StoreError::Corrupt { tree: "queue" }.into()),
                }
            } else {
                out.counts.queued += 1;
            }
            out.insert(
                &to,
                &key,
                &self.keys.seal_group(day, &key, &encode(&group))?,
            )?;
        }
        Ok(())
    }

    fn codes(&self, out: &mut Writer<'_>) -> Result<(), UpgradeError> {
        let to = Self::tree(self.to, "codes")?;
        let expiry = Self::tree(self.to, "expiry")?;
        for item in Self::tree(self.from, "codes")?.iter() {
            let (key, value) = item.map_err(engine)?;
            let hash = CodeHash(
                key.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt { tree: "codes" })?,
            );
            let record = CodeRecord::decode(&value)?;
            let lookup = code_lookup(&hash);
            out.insert(
                &to,
                &lookup,
                &seal_code(&self.rng, &hash, &encode(&record))?,
            )?;
            let entry = expiry_key(code_purge_at(record.expires_at), ExpiryKind::Code, &lookup);
            out.insert(&expiry, &entry, &[])?;
            out.counts.codes += 1;
            out.counts.expiry += 1;
        }
        Ok(())
    }

    /// The expiry index but its code entries (written from the codes themselves: an entry
    /// of a used code names its hash and expires nothing).
    fn expiry(&self, out: &mut Writer<'_>) -> Result<(), UpgradeError> {
        let uploads = Self::tree(self.from, "uploads")?;
        let certificates = Self::tree(self.from, "certificates")?;
        let to = Self::tree(self.to, "expiry")?;
        let corrupt = || StoreError::Corrupt { tree: "expiry" };
        let hour_up = |t: UnixTime| UnixTime(t.0.div_ceil(HOUR_SECONDS) * HOUR_SECONDS);
        for item in Self::tree(self.from, "expiry")?.iter() {
            let (key, _) = item.map_err(engine)?;
            let (at, kind, reference) = parse_expiry_key(&key).ok_or_else(corrupt)?;
            let entry = match kind {
                ExpiryKind::Code => continue,
                // Formats before 4 held no venue release: its entries pass as they are.
                ExpiryKind::Batch | ExpiryKind::Export | ExpiryKind::VenueRelease => key.to_vec(),
                ExpiryKind::Certificate => expiry_key(hour_up(at), kind, reference),
                ExpiryKind::Upload => {
                    if reference.len() != UPLOAD_EXPIRY_REFERENCE_LEN {
                        return Err(corrupt().into());
                    }
                    let (id, rest) = reference.split_at(32);
                    let (certificate, mark_purge) = rest.split_at(16);
                    let mark_purge = UnixTime(u64::from_be_bytes(
                        mark_purge.try_into().map_err(|_| corrupt())?,
                    ));
                    let state = certificates
                        .get(certificate)
                        .map_err(engine)?
                        .and_then(|bytes| CertificateUse::from_bytes(&bytes))
                        .map(|mark| mark.state);
                    let received_at = self.old_upload(&uploads, id)?.map(|r| r.received_at);
                    let purge_at = match (received_at, state) {
                        // A phone's upload: a retention period after its period's start.
                        (Some(received_at), Some(CertificateState::Accepted))
                        | (Some(received_at), Some(CertificateState::Revised)) => UnixTime(
                            at.0.saturating_sub(received_at.0 - self.period_start(received_at).0),
                        ),
                        // Relayed (counted from its certificate), or its record is gone.
                        _ => hour_up(at),
                    };
                    let mut reference = reference[..48].to_vec();
                    reference.extend_from_slice(&hour_up(mark_purge).0.to_be_bytes());
                    expiry_key(purge_at, kind, &reference)
                }
            };
            out.insert(&to, &entry, &[])?;
            out.counts.expiry += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
