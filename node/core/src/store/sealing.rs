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

use super::StoreError;

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

/// The per-day data keys of `keys/data/`.
pub(crate) struct DataKeys {
    dir: PathBuf,
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

impl DataKeys {
    /// Opens (or creates, mode 0700) the folder and loads every day's key; removes
    /// leftover temporary files (a crash while creating a key leaves them).
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the folder cannot be read, or a key file is not a key.
    pub(crate) fn open(dir: &Path) -> Result<DataKeys, StoreError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| key_io("create folder", e))?;
        let mut keys = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(|e| key_io("read folder", e))? {
            let path = entry.map_err(|e| key_io("read folder", e))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path).map_err(|e| key_io("remove temporary file", e))?;
                continue;
            }
            let day = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|_| path.extension().is_some_and(|e| e == KEY_SUFFIX));
            let Some(day) = day else { continue };
            let bytes = Zeroizing::new(fs::read(&path).map_err(|e| key_io("read key", e))?);
            let key = chacha_key(&bytes).ok_or_else(|| {
                StoreError::Engine(format!("data keys: `{}` is not a key", path.display()))
            })?;
            keys.insert(day, Arc::new(key));
        }
        Ok(DataKeys {
            dir: dir.to_owned(),
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

    fn path(&self, day: u32) -> PathBuf {
        self.dir.join(format!("{day}.{KEY_SUFFIX}"))
    }

    /// The key of `day`, created and made durable first when it does not exist yet.
    fn key_for(&self, day: DayNumber) -> Result<Arc<LessSafeKey>, StoreError> {
        let mut keys = self.lock();
        if let Some(key) = keys.get(&day.0) {
            return Ok(key.clone());
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        self.rng
            .fill(bytes.as_mut())
            .map_err(|_| StoreError::Engine("data keys: no randomness".to_owned()))?;
        // Temporary name, sync, rename, sync the folder: a record is never sealed under a
        // key that a crash could lose.
        let path = self.path(day.0);
        let tmp = path.with_extension("tmp");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let write = || -> io::Result<()> {
            let mut file = options.open(&tmp)?;
            file.write_all(bytes.as_ref())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| key_io("create key", e))?;
        let key = Arc::new(chacha_key(bytes.as_ref()).expect("32 bytes is a ChaCha20 key"));
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
        let Some(key) = self.lock().get(&day).cloned() else {
            return Ok(Unsealed::Shredded);
        };
        open_with(&key, aad, &sealed[4..])
            .map(Unsealed::Plain)
            .ok_or(corrupt)
    }

    /// Destroys the keys of every day up to and including `last`: overwritten, synced,
    /// unlinked, and the folder synced. Returns how many went.
    ///
    /// # Errors
    /// [`StoreError::Engine`] when a file cannot be removed (the key is then kept).
    pub(crate) fn destroy_through(&self, last: DayNumber) -> Result<usize, StoreError> {
        let mut keys = self.lock();
        let doomed: Vec<u32> = keys.range(..=last.0).map(|(day, _)| *day).collect();
        for day in &doomed {
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
            keys.remove(day);
        }
        if !doomed.is_empty() {
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| key_io("sync folder", e))?;
        }
        Ok(doomed.len())
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
