//! The `pet` key ratchet's state in a file of one slot, overwritten in place (and synced)
//! at every step, so an erased state is gone from the disk too.
//!
//! The ratchet (`ephemera_proto::pet::KeyRatchet`) moves every 10 minutes and must leave
//! nothing of its old states behind. sled keeps old values in its log until a segment is
//! rewritten, and its values are sealed under day keys that live for the retention period,
//! so a state kept in sled would stay readable for days. The state lives instead in
//! `pet-ratchet` beside the database, like the day keys in `day-keys`
//! ([`day_keys`](super::day_keys)).
//!
//! # File format (`pet-ratchet`)
//! One slot of [`SLOT_LEN`] bytes: a used flag (1), the ratchet's stored form
//! ([`RATCHET_BYTES`]: interval u32 little-endian ‖ 32-byte state), and a check (the first
//! 8 bytes of SHA-256 of [`CHECK_LABEL`] ‖ flag ‖ value), so a torn write reads as
//! corrupt, never as another state. An empty slot is all zeros. Nothing else is in the file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use ephemera_proto::pet::RATCHET_BYTES;
use zeroize::Zeroizing;

use crate::error::StoreError;

/// The slot file's name inside the store's folder.
pub const FILE_NAME: &str = "pet-ratchet";
/// Bytes of the slot: used flag, value, check.
pub const SLOT_LEN: usize = 1 + RATCHET_BYTES + CHECK_LEN;
/// Domain separation of the slot's check.
pub const CHECK_LABEL: &[u8] = b"ephemera-client-pet-ratchet-slot-v1";

const CHECK_LEN: usize = 8;
const WHAT: &str = "pet ratchet";

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        message: e.to_string(),
    }
}

/// What the slot holds.
enum Content {
    Empty,
    Value(Zeroizing<[u8; RATCHET_BYTES]>),
    /// Bytes that are no slot (a torn write, another file): read as corrupt until rewritten.
    Corrupt,
}

/// The ratchet slot of one store: in memory, and in the slot file when the store has a
/// folder.
pub(super) struct RatchetSlot {
    file: Option<File>,
    content: Content,
}

impl std::fmt::Debug for RatchetSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.content {
            Content::Empty => "empty",
            Content::Value(_) => "<redacted>",
            Content::Corrupt => "corrupt",
        };
        f.debug_struct("RatchetSlot")
            .field("state", &state)
            .finish()
    }
}

impl RatchetSlot {
    /// The slot of the file in `folder` (made empty if missing).
    ///
    /// # Errors
    /// [`StoreError::Backend`] for I/O. A damaged file opens, and reads as
    /// [`StoreError::Corrupt`] until the next write.
    pub(super) fn open(folder: &Path) -> Result<Self, StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(folder.join(FILE_NAME))
            .map_err(backend)?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.read_to_end(&mut bytes).map_err(backend)?;
        let content = if bytes.is_empty() {
            Content::Empty
        } else {
            parse(&bytes)
        };
        Ok(RatchetSlot {
            file: Some(file),
            content,
        })
    }

    /// A slot in memory only (a temporary store).
    pub(super) fn in_memory() -> Self {
        RatchetSlot {
            file: None,
            content: Content::Empty,
        }
    }

    /// The value kept, if any.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the file held no valid slot.
    pub(super) fn get(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.content {
            Content::Empty => Ok(None),
            Content::Value(v) => Ok(Some(v.to_vec())),
            Content::Corrupt => Err(StoreError::Corrupt { what: WHAT }),
        }
    }

    /// Overwrites the slot with `value` (durable on return).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a value of another length than [`RATCHET_BYTES`] (it is
    /// not written); [`StoreError::Backend`] for I/O.
    pub(super) fn set(&mut self, value: &[u8]) -> Result<(), StoreError> {
        let value: [u8; RATCHET_BYTES] = value
            .try_into()
            .map_err(|_| StoreError::Corrupt { what: WHAT })?;
        let value = Zeroizing::new(value);
        let mut slot = Zeroizing::new([0u8; SLOT_LEN]);
        slot[0] = 1;
        slot[1..1 + RATCHET_BYTES].copy_from_slice(&*value);
        let check = check(&slot[..1 + RATCHET_BYTES]);
        slot[1 + RATCHET_BYTES..].copy_from_slice(&check);
        self.write(&slot)?;
        self.content = Content::Value(value);
        Ok(())
    }

    /// Overwrites the slot with zeros (durable on return).
    ///
    /// # Errors
    /// [`StoreError::Backend`] for I/O.
    pub(super) fn clear(&mut self) -> Result<(), StoreError> {
        self.write(&[0u8; SLOT_LEN])?;
        self.content = Content::Empty;
        Ok(())
    }

    /// Writes the whole file in place: the slot at offset 0, nothing after it, synced.
    fn write(&mut self, slot: &[u8; SLOT_LEN]) -> Result<(), StoreError> {
        if let Some(file) = &mut self.file {
            file.seek(SeekFrom::Start(0)).map_err(backend)?;
            file.write_all(slot).map_err(backend)?;
            file.set_len(SLOT_LEN as u64).map_err(backend)?;
            file.sync_all().map_err(backend)?;
        }
        Ok(())
    }
}

fn check(covered: &[u8]) -> [u8; CHECK_LEN] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(CHECK_LABEL);
    ctx.update(covered);
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&ctx.finish().as_ref()[..CHECK_LEN]);
    out
}

/// The slot in a file's bytes.
fn parse(bytes: &[u8]) -> Content {
    if bytes.len() != SLOT_LEN {
        return Content::Corrupt;
    }
    if bytes.iter().all(|b| *b == 0) {
        return Content::Empty;
    }
    let (covered, stored_check) = bytes.split_at(1 + RATCHET_BYTES);
    if covered[0] != 1 || check(covered) != stored_check {
        return Content::Corrupt;
    }
    let mut value = Zeroizing::new([0u8; RATCHET_BYTES]);
    value.copy_from_slice(&covered[1..]);
    Content::Value(value)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_value_survives_a_reopen_and_each_write_overwrites_the_last_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut slot = RatchetSlot::open(dir.path()).unwrap();
        assert_eq!(slot.get().unwrap(), None);
        let (a, b) = ([0xa1; RATCHET_BYTES], [0xb2; RATCHET_BYTES]);
        slot.set(&a).unwrap();
        assert!(contains(&std::fs::read(&path).unwrap(), &a));
        slot.set(&b).unwrap();
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file.len(), SLOT_LEN);
        assert!(contains(&file, &b) && !contains(&file, &a[..8]));
        drop(slot);
        let mut slot = RatchetSlot::open(dir.path()).unwrap();
        assert_eq!(slot.get().unwrap().as_deref(), Some(&b[..]));
        slot.clear().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; SLOT_LEN]);
        assert_eq!(RatchetSlot::open(dir.path()).unwrap().get().unwrap(), None);
        // A value of another length is refused and nothing is written.
        assert!(slot.set(&[1u8; RATCHET_BYTES + 1]).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; SLOT_LEN]);
    }

    #[test]
    fn a_torn_or_foreign_file_reads_as_corrupt_until_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut slot = RatchetSlot::open(dir.path()).unwrap();
        slot.set(&[7; RATCHET_BYTES]).unwrap();
        drop(slot);
        let mut torn = std::fs::read(&path).unwrap();
        torn[20] ^= 1;
        std::fs::write(&path, &torn).unwrap();
        let mut slot = RatchetSlot::open(dir.path()).unwrap();
        assert_eq!(slot.get(), Err(StoreError::Corrupt { what: WHAT }));
        std::fs::write(&path, b"short").unwrap();
        assert!(RatchetSlot::open(dir.path()).unwrap().get().is_err());
        slot.set(&[8; RATCHET_BYTES]).unwrap();
        assert_eq!(
            RatchetSlot::open(dir.path()).unwrap().get().unwrap(),
            Some(vec![8; RATCHET_BYTES])
        );
    }

    proptest! {
        /// Any bytes as a slot file: empty, a value or corrupt, never a panic; only a
        /// slot with its check reads as a value.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            match parse(&bytes) {
                Content::Value(v) => {
                    prop_assert_eq!(bytes.len(), SLOT_LEN);
                    prop_assert_eq!(&check(&bytes[..1 + RATCHET_BYTES])[..], &bytes[1 + RATCHET_BYTES..]);
                    prop_assert_eq!(&v[..], &bytes[1..1 + RATCHET_BYTES]);
                }
                Content::Empty => prop_assert!(bytes.len() == SLOT_LEN && bytes.iter().all(|b| *b == 0)),
                Content::Corrupt => {}
            }
        }
    }
}
