//! Records at rest, sealed so that deleting them makes them unreadable (crypto-shredding).
//!
//! sled is log-structured: a removed value stays in its segment file until sled rewrites
//! that segment, which has no time bound. So the node never writes report material in
//! clear:
//!
//! - **Reports** (upload records and their publication queue groups) are sealed with
//!   ChaCha20-Poly1305 under a *data key* of the UTC day the upload arrived. Data keys are
//!   files in `keys/data/`, one per day. Once every record of a day is past retention, the
//!   purge destroys that day's key: whatever bytes sled still keeps are then noise.
//! - **Upload codes** are filed under a one-way hash of their [`CodeHash`] and sealed under
//!   a key derived from the `CodeHash` itself. The node holds a `CodeHash` only while a
//!   phone presents the code, so a used or expired code's leftover bytes cannot be read or
//!   even matched to a code, by anyone holding the disk and the keys folder alike.
//!
//! Each sealed value is `day (u32 BE) ‖ nonce (12) ‖ ciphertext ‖ tag`, with the tree name and
//! the record's key as associated data, so a value cannot be moved to another record.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ephemera_proto::DayNumber;
use ephemera_proto::auth::CodeHash;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use ephemera_proto::upload::UploadId;

use super::{QueueKey, QueuedGroup, StoreError, StoredUpload, decode, encode};

/// Sub-folder of `keys/` holding the per-day data keys.
pub const DATA_KEYS_DIR: &str = "data";
const KEY_SUFFIX: &str = "key";
const HEADER_LEN: usize = 4 + NONCE_LEN;
const CODE_LOOKUP_LABEL: &[u8] = b"ephemera/store/code-lookup/v1";
const CODE_SEAL_LABEL: &[u8] = b"ephemera/store/code-record/v1";

/// What a sealed value opened to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unsealed {
    /// The record's bytes.
    Plain(Vec<u8>),
    /// The key of its day was destroyed: the record is past retention and reads as gone.
    Shredded,
}

/// A day's data key as kept: its day and its bytes.
pub(crate) type DayKey = (u32, Zeroizing<Vec<u8>>);

/// Where the per-day data keys persist: a folder of files ([`KeyFolder`], beside sled), or a
/// table in the database a group of nodes shares (the PostgreSQL store).
pub(crate) trait KeyShelf: Send + Sync {
    /// Every key kept, by day (read once at open).
    fn load(&self) -> Result<Vec<DayKey>, StoreError>;
    /// Keeps `fresh` as the key of `day`, durably, unless a key is kept for that day already
    /// (another node of the group made it first); returns the key kept.
    fn keep(&self, day: u32, fresh: &[u8; 32]) -> Result<Zeroizing<Vec<u8>>, StoreError>;
    /// The key of `day` if one is kept now: a key another node made since [`Self::load`].
    fn fetch(&self, day: u32) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;
    /// Destroys the keys of `days`.
    fn destroy(&self, days: &[u32]) -> Result<(), StoreError>;
}

/// The per-day data keys: those of a [`KeyShelf`], cached.
pub(crate) struct DataKeys {
    shelf: Box<dyn KeyShelf>,
    keys: Mutex<BTreeMap<u32, Arc<LessSafeKey>>>,
    rng: SystemRandom,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("days", &self.days())
            .finish_non_exhaustive()
    }
}

fn key_io(what: &str, e: io::Error) -> StoreError {
    StoreError::Engine(format!("data keys: {what}: {e}"))
}

fn chacha_key(bytes: &[u8]) -> Option<LessSafeKey> {
    UnboundKey::new(&CHACHA20_POLY1305, bytes)
        .ok()
        .map(LessSafeKey::new)
}

fn data_key(day: u32, bytes: &[u8]) -> Result<Arc<LessSafeKey>, StoreError> {
    chacha_key(bytes)
        .map(Arc::new)
        .ok_or_else(|| StoreError::Engine(format!("data keys: the key of day {day} is not a key")))
}

/// Data keys as files of a folder (`keys/data/`), one per day.
pub(crate) struct KeyFolder {
    dir: PathBuf,
}

impl KeyFolder {
    /// Opens (or creates, mode 0700) the folder; removes leftover temporary files (a crash
    /// while creating a key leaves them).
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the folder cannot be made or read.
    pub(crate) fn open(dir: &Path) -> Result<KeyFolder, StoreError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| key_io("create folder", e))?;
        for entry in fs::read_dir(dir).map_err(|e| key_io("read folder", e))? {
            let path = entry.map_err(|e| key_io("read folder", e))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path).map_err(|e| key_io("remove temporary file", e))?;
            }
        }
        Ok(KeyFolder {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, day: u32) -> PathBuf {
        self.dir.join(format!("{day}.{KEY_SUFFIX}"))
    }
}

impl KeyShelf for KeyFolder {
    fn load(&self) -> Result<Vec<DayKey>, StoreError> {
        let mut keys = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| key_io("read folder", e))? {
            let path = entry.map_err(|e| key_io("read folder", e))?.path();
            let day = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|_| path.extension().is_some_and(|e| e == KEY_SUFFIX));
            let Some(day) = day else { continue };
            let bytes = Zeroizing::new(fs::read(&path).map_err(|e| key_io("read key", e))?);
            keys.push((day, bytes));
        }
        Ok(keys)
    }

    fn keep(&self, day: u32, fresh: &[u8; 32]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        // Temporary name, sync, rename, sync the folder: a record is never sealed under a
        // key that a crash could lose.
        let path = self.path(day);
        let tmp = path.with_extension("tmp");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let write = || -> io::Result<()> {
            let mut file = options.open(&tmp)?;
            file.write_all(fresh)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| key_io("create key", e))?;
        Ok(Zeroizing::new(fresh.to_vec()))
    }

    fn fetch(&self, _day: u32) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        // One node writes this folder, and its cache holds every key it made.
        Ok(None)
    }

    fn destroy(&self, days: &[u32]) -> Result<(), StoreError> {
        for day in days {
            let path = self.path(*day);
            // Overwrite first: on a file system that rewrites in place the old bytes go too
            // (copy-on-write file systems and SSDs may keep them: docs/SECURITY.md).
            let overwrite = || -> io::Result<()> {
                let mut file = fs::OpenOptions::new().write(true).open(&path)?;
                file.write_all(&[0u8; 32])?;
                file.sync_all()
            };
            match overwrite() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(key_io("overwrite key", e)),
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(key_io("remove key", e)),
            }
        }
        if !days.is_empty() {
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| key_io("sync folder", e))?;
        }
        Ok(())
    }
}

impl DataKeys {
    /// The keys of the folder `dir` (created when missing).
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the folder cannot be read, or a key file is not a key.
    pub(crate) fn open(dir: &Path) -> Result<DataKeys, StoreError> {
        DataKeys::on(Box::new(KeyFolder::open(dir)?))
    }

    /// The keys of `shelf`, all loaded.
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the shelf cannot be read, or holds something not a key.
    pub(crate) fn on(shelf: Box<dyn KeyShelf>) -> Result<DataKeys, StoreError> {
        let mut keys = BTreeMap::new();
        for (day, bytes) in shelf.load()? {
            keys.insert(day, data_key(day, &bytes)?);
        }
        Ok(DataKeys {
            shelf,
            keys: Mutex::new(keys),
            rng: SystemRandom::new(),
        })
    }

    /// The days that still have a key, oldest first.
    pub(crate) fn days(&self) -> Vec<u32> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Arc<LessSafeKey>>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key of `day`, created and made durable first when it does not exist yet.
    fn key_for(&self, day: DayNumber) -> Result<Arc<LessSafeKey>, StoreError> {
        let mut keys = self.lock();
        if let Some(key) = keys.get(&day.0) {
            return Ok(key.clone());
        }
        let mut fresh = Zeroizing::new([0u8; 32]);
        self.rng
            .fill(fresh.as_mut())
            .map_err(|_| StoreError::Engine("data keys: no randomness".to_owned()))?;
        let kept = self.shelf.keep(day.0, &fresh)?;
        let key = data_key(day.0, &kept)?;
        keys.insert(day.0, key.clone());
        Ok(key)
    }

    /// Seals `plain` under the key of `day`, bound to `aad`.
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the day's key cannot be created.
    pub(crate) fn seal(
        &self,
        day: DayNumber,
        aad: &[&[u8]],
        plain: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let key = self.key_for(day)?;
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + CHACHA20_POLY1305.tag_len());
        out.extend_from_slice(&day.0.to_be_bytes());
        seal_into(&key, &self.rng, aad, plain, out)
    }

    /// Opens a value written by [`DataKeys::seal`].
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] (naming `tree`) when it is too short or fails authentication.
    pub(crate) fn open_sealed(
        &self,
        tree: &'static str,
        aad: &[&[u8]],
        sealed: &[u8],
    ) -> Result<Unsealed, StoreError> {
        let corrupt = StoreError::Corrupt { tree };
        if sealed.len() < HEADER_LEN {
            return Err(corrupt);
        }
        let day = u32::from_be_bytes(sealed[..4].try_into().expect("4 bytes"));
        let cached = self.lock().get(&day).cloned();
        let key = match cached {
            Some(key) => key,
            None => match self.shelf.fetch(day)? {
                Some(bytes) => {
                    let key = data_key(day, &bytes)?;
                    self.lock().insert(day, key.clone());
                    key
                }
                None => return Ok(Unsealed::Shredded),
            },
        };
        open_with(&key, aad, &sealed[4..])
            .map(Unsealed::Plain)
            .ok_or(corrupt)
    }

    /// Destroys the keys of every day up to and including `last`. Returns how many went.
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the shelf cannot destroy them (the keys are then kept).
    pub(crate) fn destroy_through(&self, last: DayNumber) -> Result<usize, StoreError> {
        let mut keys = self.lock();
        let doomed: Vec<u32> = keys.range(..=last.0).map(|(day, _)| *day).collect();
        self.shelf.destroy(&doomed)?;
        for day in &doomed {
            keys.remove(day);
        }
        Ok(doomed.len())
    }
}

impl DataKeys {
    /// An upload record sealed under the data key of the day it arrived, bound to its id.
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the day's key cannot be created.
    pub(crate) fn seal_upload(
        &self,
        id: &UploadId,
        record: &StoredUpload,
    ) -> Result<Vec<u8>, StoreError> {
        self.seal(
            record.received_at.day(),
            &[b"uploads", &id.0],
            &encode(record),
        )
    }

    /// An upload record, opened; `None` once its day's key is destroyed.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when it fails authentication or does not decode.
    pub(crate) fn open_upload(
        &self,
        id: &UploadId,
        sealed: &[u8],
    ) -> Result<Option<StoredUpload>, StoreError> {
        match self.open_sealed("uploads", &[b"uploads", &id.0], sealed)? {
            Unsealed::Plain(bytes) => Ok(Some(decode(&bytes, "uploads")?)),
            Unsealed::Shredded => Ok(None),
        }
    }

    /// An encoded queue group sealed under the data key of its upload's arrival day, bound
    /// to its queue key.
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the day's key cannot be created.
    pub(crate) fn seal_group(
        &self,
        arrival_day: DayNumber,
        key: &[u8; QueueKey::LEN],
        group: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        self.seal(arrival_day, &[b"queue", key], group)
    }

    /// A queue group, opened; `None` once its day's key is destroyed.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when it fails authentication or does not decode.
    pub(crate) fn open_group(
        &self,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Option<QueuedGroup>, StoreError> {
        match self.open_sealed("queue", &[b"queue", key], sealed)? {
            Unsealed::Plain(bytes) => Ok(Some(decode(&bytes, "queue")?)),
            Unsealed::Shredded => Ok(None),
        }
    }
}

fn seal_into(
    key: &LessSafeKey,
    rng: &SystemRandom,
    aad: &[&[u8]],
    plain: &[u8],
    mut out: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)
        .map_err(|_| StoreError::Engine("sealing: no randomness".to_owned()))?;
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plain);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.concat()),
            &mut out[start..],
        )
        .map_err(|_| StoreError::Engine("sealing failed".to_owned()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens `nonce ‖ ciphertext ‖ tag`.
fn open_with(key: &LessSafeKey, aad: &[&[u8]], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).ok()?;
    let mut buffer = sealed[NONCE_LEN..].to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad.concat()), &mut buffer)
        .ok()?;
    Some(plain.to_vec())
}

/// The key a code is filed under: `SHA-256(label ‖ code hash)`, which cannot be turned back
/// into the code hash.
pub(crate) fn code_lookup(hash: &CodeHash) -> [u8; 32] {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        &[CODE_LOOKUP_LABEL, &hash.0].concat(),
    );
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The key a code's record is sealed under: `HMAC-SHA256(code hash, label)`.
fn code_key(hash: &CodeHash) -> LessSafeKey {
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &hash.0),
        CODE_SEAL_LABEL,
    );
    chacha_key(mac.as_ref()).expect("an HMAC-SHA256 tag is a ChaCha20 key")
}

/// Seals a code's record under a key only its [`CodeHash`] gives.
///
/// # Errors
/// [`StoreError::Engine`] when the OS gives no randomness.
pub(crate) fn seal_code(
    rng: &SystemRandom,
    hash: &CodeHash,
    plain: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let lookup = code_lookup(hash);
    seal_into(
        &code_key(hash),
        rng,
        &[b"codes", &lookup],
        plain,
        Vec::new(),
    )
}

/// Opens [`seal_code`]'s output.
///
/// # Errors
/// [`StoreError::Corrupt`] when it fails authentication.
pub(crate) fn open_code(hash: &CodeHash, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
    let lookup = code_lookup(hash);
    open_with(&code_key(hash), &[b"codes", &lookup], sealed)
        .ok_or(StoreError::Corrupt { tree: "codes" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_record_opens_with_its_key_and_is_noise_once_the_day_is_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = DataKeys::open(dir.path()).unwrap();
        let plain = b"tokens tokens tokens".to_vec();
        let sealed = keys
            .seal(DayNumber(20_000), &[b"uploads", b"id"], &plain)
            .unwrap();
        assert!(!sealed.windows(plain.len()).any(|w| w == plain));
        assert_eq!(
            keys.open_sealed("uploads", &[b"uploads", b"id"], &sealed)
                .unwrap(),
            Unsealed::Plain(plain.clone())
        );
        // Bound to its record: under another key it does not open.
        assert!(
            keys.open_sealed("uploads", &[b"uploads", b"other"], &sealed)
                .is_err()
        );
        // Keys survive a reopen.
        let keys = DataKeys::open(dir.path()).unwrap();
        assert_eq!(keys.days(), vec![20_000]);
        assert_eq!(keys.destroy_through(DayNumber(19_999)).unwrap(), 0);
        assert_eq!(keys.destroy_through(DayNumber(20_000)).unwrap(), 1);
        assert_eq!(
            keys.open_sealed("uploads", &[b"uploads", b"id"], &sealed)
                .unwrap(),
            Unsealed::Shredded
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(DataKeys::open(dir.path()).unwrap().days().is_empty());
    }

    #[test]
    fn a_code_record_needs_the_code_hash_and_its_lookup_key_does_not_reveal_it() {
        let rng = SystemRandom::new();
        let hash = CodeHash([7; 32]);
        let sealed = seal_code(&rng, &hash, b"record").unwrap();
        assert_eq!(open_code(&hash, &sealed).unwrap(), b"record");
        assert!(open_code(&CodeHash([8; 32]), &sealed).is_err());
        let lookup = code_lookup(&hash);
        assert_ne!(lookup, hash.0);
        assert!(!sealed.windows(32).any(|w| w == hash.0));
    }
}
