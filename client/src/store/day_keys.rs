//! Crypto-shredding by day: every record a [`SledStore`](super::SledStore) keeps is sealed
//! (ChaCha20-Poly1305) under the key of its day, and forgetting a day destroys its key.
//!
//! sled never overwrites a deleted value in place: its log keeps old bytes until a segment
//! is rewritten, which may be never. So deleting records is not enough to make them
//! unreadable on disk. The day keys live instead in a small file of fixed slots beside the
//! database (`day-keys`), which is overwritten in place (and synced) when a day is
//! forgotten: the sealed records of that day, wherever sled left copies of them, can no
//! longer be opened.
//!
//! # File format (`day-keys`)
//! [`SLOTS`] slots of [`SLOT_LEN`] bytes: a used flag (1), the day number (u32
//! big-endian), the 32-byte key. An unused slot is all zeros. Nothing else is in the file.
//!
//! # Sealed value format
//! `day (u32 BE) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`; the associated data is the tree
//! name and the record's key, so a sealed value cannot be moved to another record.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use ephemera_proto::DayNumber;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::StoreError;

/// Slots in the key file: retention (at most 14 days) plus days made by clock jumps, with
/// room to spare.
pub const SLOTS: usize = 64;
/// Bytes of one slot: used flag, day, key.
pub const SLOT_LEN: usize = 1 + 4 + 32;
/// The key file's name inside the store's folder.
pub const FILE_NAME: &str = "day-keys";

/// Domain separation of record-key tags from seals under the same day key.
const TAG_LABEL: &[u8] = b"ephemera-client-store-record-key-v1";

/// Bytes a sealed value adds to its plaintext: day, nonce, tag.
const OVERHEAD: usize = 4 + NONCE_LEN + 16;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        message: e.to_string(),
    }
}

/// One slot: unused, or a day and its key.
type Slot = Option<(DayNumber, Zeroizing<[u8; 32]>)>;

/// The day keys of one store: in memory, and in the key file when the store has a folder.
pub(super) struct DayKeys {
    file: Option<File>,
    slots: Vec<Slot>,
    rng: SystemRandom,
}

impl std::fmt::Debug for DayKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days: Vec<u32> = self.slots.iter().flatten().map(|(d, _)| d.0).collect();
        f.debug_struct("DayKeys")
            .field("days", &days)
            .finish_non_exhaustive()
    }
}

impl DayKeys {
    /// The keys of the file in `folder` (made empty if missing).
    ///
    /// # Errors
    /// [`StoreError::Backend`] for I/O, [`StoreError::Corrupt`] for a file of another size.
    pub(super) fn open(folder: &Path) -> Result<Self, StoreError> {
        let path = folder.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(backend)?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.read_to_end(&mut bytes).map_err(backend)?;
        if bytes.is_empty() {
            file.write_all(&[0u8; SLOTS * SLOT_LEN]).map_err(backend)?;
            file.sync_all().map_err(backend)?;
            bytes.resize(SLOTS * SLOT_LEN, 0);
        }
        let slots = parse(&bytes)?;
        Ok(DayKeys {
            file: Some(file),
            slots,
            rng: SystemRandom::new(),
        })
    }

    /// Keys kept in memory only (a temporary store).
    pub(super) fn in_memory() -> Self {
        DayKeys {
            file: None,
            slots: vec![None; SLOTS],
            rng: SystemRandom::new(),
        }
    }

    fn key(&self, day: DayNumber) -> Option<&[u8; 32]> {
        self.slots
            .iter()
            .flatten()
            .find(|(d, _)| *d == day)
            .map(|(_, k)| &**k)
    }

    /// Days that have a key, ascending.
    pub(super) fn days(&self) -> Vec<DayNumber> {
        let mut days: Vec<DayNumber> = self.slots.iter().flatten().map(|(d, _)| *d).collect();
        days.sort_unstable();
        days
    }

    /// The key of `day`, made (and durably kept) now if it has none.
    fn key_or_make(&mut self, day: DayNumber) -> Result<[u8; 32], StoreError> {
        if let Some(key) = self.key(day) {
            return Ok(*key);
        }
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or_else(|| backend("every day-key slot is in use"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        self.rng
            .fill(&mut *key)
            .map_err(|_| backend("the OS gave no randomness"))?;
        let mut bytes = Zeroizing::new([0u8; SLOT_LEN]);
        bytes[0] = 1;
        bytes[1..5].copy_from_slice(&day.0.to_be_bytes());
        bytes[5..].copy_from_slice(&*key);
        self.write_slot(slot, &bytes)?;
        let out = *key;
        self.slots[slot] = Some((day, key));
        Ok(out)
    }

    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), StoreError> {
        if let Some(file) = &mut self.file {
            file.seek(SeekFrom::Start((slot * SLOT_LEN) as u64))
                .map_err(backend)?;
            file.write_all(bytes).map_err(backend)?;
            file.sync_data().map_err(backend)?;
        }
        Ok(())
    }

    /// Destroys the keys of days before `oldest_kept`: their slots are overwritten with
    /// zeros on disk and in memory. Returns how many were destroyed.
    pub(super) fn forget_before(&mut self, oldest_kept: DayNumber) -> Result<usize, StoreError> {
        self.forget(|d| d < oldest_kept)
    }

    /// Destroys every key.
    pub(super) fn forget_all(&mut self) -> Result<usize, StoreError> {
        self.forget(|_| true)
    }

    fn forget(&mut self, doomed: impl Fn(DayNumber) -> bool) -> Result<usize, StoreError> {
        let mut n = 0;
        for slot in 0..self.slots.len() {
            if self.slots[slot].as_ref().is_some_and(|(d, _)| doomed(*d)) {
                self.write_slot(slot, &[0u8; SLOT_LEN])?;
                self.slots[slot] = None;
                n += 1;
            }
        }
        Ok(n)
    }

    /// A 16-byte tag of `data` keyed by the key of `day` (HMAC-SHA256, cut): record keys
    /// made of what was heard (an identifier, a token) are stored as this tag, so they
    /// are not on disk in clear, and cannot even be confirmed once the day is forgotten.
    pub(super) fn tag(&mut self, day: DayNumber, data: &[u8]) -> Result<[u8; 16], StoreError> {
        let key = Zeroizing::new(self.key_or_make(day)?);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &*key);
        let mut input = Vec::with_capacity(TAG_LABEL.len() + data.len());
        input.extend_from_slice(TAG_LABEL);
        input.extend_from_slice(data);
        let mut out = [0u8; 16];
        out.copy_from_slice(&ring::hmac::sign(&key, &input).as_ref()[..16]);
        Ok(out)
    }

    /// Seals `plaintext` for record `record` of `tree` under the key of `day`.
    pub(super) fn seal(
        &mut self,
        day: DayNumber,
        tree: &str,
        record: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let key = Zeroizing::new(self.key_or_make(day)?);
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &*key).map_err(|_| backend("bad key"))?,
        );
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| backend("the OS gave no randomness"))?;
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&day.0.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(tree, record)),
            &mut body,
        )
        .map_err(|_| backend("sealing failed"))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a value sealed by [`seal`](DayKeys::seal) for the same tree and record, and
    /// gives its day too.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when it is too short, its day's key is gone, or it does not
    /// authenticate.
    pub(super) fn open_sealed(
        &self,
        tree: &str,
        record: &[u8],
        sealed: &[u8],
        what: &'static str,
    ) -> Result<(DayNumber, Zeroizing<Vec<u8>>), StoreError> {
        let corrupt = StoreError::Corrupt { what };
        if sealed.len() < OVERHEAD {
            return Err(corrupt);
        }
        let day = DayNumber(u32::from_be_bytes(sealed[..4].try_into().expect("4 bytes")));
        let key = self.key(day).ok_or(corrupt.clone())?;
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| corrupt.clone())?,
        );
        let nonce: [u8; NONCE_LEN] = sealed[4..4 + NONCE_LEN].try_into().expect("12 bytes");
        let mut body = Zeroizing::new(sealed[4 + NONCE_LEN..].to_vec());
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(tree, record)),
                &mut body,
            )
            .map_err(|_| corrupt)?
            .len();
        body.truncate(len);
        Ok((day, body))
    }
}

fn aad(tree: &str, record: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tree.len() + 1 + record.len());
    aad.extend_from_slice(tree.as_bytes());
    aad.push(0);
    aad.extend_from_slice(record);
    aad
}

/// The slots of a key file's bytes.
fn parse(bytes: &[u8]) -> Result<Vec<Slot>, StoreError> {
    let corrupt = StoreError::Corrupt { what: "day keys" };
    if bytes.len() != SLOTS * SLOT_LEN {
        return Err(corrupt);
    }
    bytes
        .chunks_exact(SLOT_LEN)
        .map(|slot| match slot[0] {
            0 if slot.iter().all(|b| *b == 0) => Ok(None),
            1 => {
                let day = DayNumber(u32::from_be_bytes(slot[1..5].try_into().expect("4")));
                let mut key = Zeroizing::new([0u8; 32]);
                key.copy_from_slice(&slot[5..]);
                Ok(Some((day, key)))
            }
            _ => Err(corrupt.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn sealed_values_open_only_in_place_and_only_while_their_key_lives() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = DayKeys::open(dir.path()).unwrap();
        let sealed = keys
            .seal(DayNumber(7), "encounters", b"k1", b"heard")
            .unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"heard"));
        let (day, plain) = keys.open_sealed("encounters", b"k1", &sealed, "x").unwrap();
        assert_eq!((day, plain.as_slice()), (DayNumber(7), &b"heard"[..]));
        // Moved to another record or tree: refused.
        assert!(keys.open_sealed("encounters", b"k2", &sealed, "x").is_err());
        assert!(keys.open_sealed("windows", b"k1", &sealed, "x").is_err());
        // The key survives a reopen, then is destroyed on disk too.
        drop(keys);
        let mut keys = DayKeys::open(dir.path()).unwrap();
        let key = *keys.key(DayNumber(7)).unwrap();
        assert!(
            std::fs::read(dir.path().join(FILE_NAME))
                .unwrap()
                .windows(32)
                .any(|w| w == key)
        );
        assert_eq!(keys.forget_before(DayNumber(8)).unwrap(), 1);
        assert!(keys.open_sealed("encounters", b"k1", &sealed, "x").is_err());
        let file = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert!(!file.windows(32).any(|w| w == key));
        assert_eq!(DayKeys::open(dir.path()).unwrap().days(), vec![]);
    }

    proptest! {
        /// Any bytes as a key file or a sealed value: a typed error or a value, never a
        /// panic.
        #[test]
        fn arbitrary_bytes_never_panic(file in proptest::collection::vec(any::<u8>(), 0..3000),
                                       sealed in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&file);
            let mut keys = DayKeys::in_memory();
            keys.key_or_make(DayNumber(u32::from_be_bytes([0, 0, 0, sealed.first().copied().unwrap_or(0)]))).unwrap();
            let _ = keys.open_sealed("t", b"r", &sealed, "x");
        }
    }
}
