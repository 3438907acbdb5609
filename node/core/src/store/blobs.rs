//! Batch bodies and GAEN export zips as files in a folder beside the sled database.
//!
//! sled 0.34 does not give back the disk space of segments that held large values: a node
//! that keeps inserting ~300 KB batch bodies and deleting old ones grows its database file
//! without bound while its live data stays flat (`ephemera-bench load`, docs/BENCHMARKS.md).
//! So the large, immutable values live here, one file each, and sled keeps only a small
//! [`BlobRef`] (content hash and length) in their index entry.
//!
//! A file is named by the lower-case hex SHA-256 of its bytes: nothing identifying, and a
//! read checks that it got exactly the bytes the index entry names. Writing is
//! crash-safe: `<hash>.tmp`, fsync, rename to `<hash>`, fsync the folder; the caller makes
//! the index entry visible only after [`BlobDir::sync`]. Deleting comes after the index
//! entry's removal is durable. A crash therefore leaves at worst a file no entry refers to
//! (or a `.tmp`), which [`BlobDir::sweep`] removes at the next open.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use ring::digest;
use serde::{Deserialize, Serialize};

/// Suffix of a file being written.
const TEMP_SUFFIX: &str = ".tmp";

/// What an index entry keeps of its body: the file's content hash and length.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct BlobRef {
    /// SHA-256 of the bytes; the file name is its hex.
    pub hash: [u8; 32],
    /// Length of the bytes.
    pub len: u64,
}

impl BlobRef {
    /// The reference of `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> BlobRef {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
        BlobRef {
            hash,
            len: bytes.len() as u64,
        }
    }

    /// The file name: 64 lower-case hex characters.
    pub(crate) fn file_name(&self) -> String {
        hex::encode(self.hash)
    }
}

/// Why a stored body could not be read back.
#[derive(Debug)]
pub(crate) enum BlobReadError {
    /// The file is missing, shorter or longer than the index entry says, or its bytes do not
    /// hash to its name: the folder was damaged (or restored without its database).
    Damaged(&'static str),
    /// Any other I/O error (permissions, disk).
    Io(io::Error),
}

/// What [`BlobDir::sweep`] removed.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Files no index entry refers to.
    pub orphans: u64,
    /// Leftover `.tmp` files of writes a crash cut short.
    pub temps: u64,
}

/// The folder of body files.
#[derive(Debug)]
pub(crate) struct BlobDir {
    dir: PathBuf,
}

/// Whether `name` is a body file's name (64 lower-case hex characters).
fn is_blob_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// fsync of a folder, so the names created, renamed or removed in it are durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl BlobDir {
    /// Opens `dir`, creating it (durably) when missing.
    pub(crate) fn open(dir: &Path) -> io::Result<BlobDir> {
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(BlobDir {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, blob: &BlobRef) -> PathBuf {
        self.dir.join(blob.file_name())
    }

    /// Writes `bytes` to its file (through a synced temporary file and a rename) and returns
    /// its reference. The new name is durable only after [`BlobDir::sync`].
    pub(crate) fn write(&self, bytes: &[u8]) -> io::Result<BlobRef> {
        let blob = BlobRef::of(bytes);
        let name = blob.file_name();
        let temp = self.dir.join(format!("{name}{TEMP_SUFFIX}"));
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, self.dir.join(name))?;
        Ok(blob)
    }

    /// Makes the names written or removed so far durable (fsync of the folder).
    pub(crate) fn sync(&self) -> io::Result<()> {
        sync_dir(&self.dir)
    }

    /// Reads a body back, checking its length and hash.
    pub(crate) fn read(&self, blob: &BlobRef) -> Result<Vec<u8>, BlobReadError> {
        let bytes = match fs::read(self.path(blob)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobReadError::Damaged("missing"));
            }
            Err(e) => return Err(BlobReadError::Io(e)),
        };
        let len = bytes.len() as u64;
        if len < blob.len {
            return Err(BlobReadError::Damaged("shorter than its index entry says"));
        }
        if len > blob.len {
            return Err(BlobReadError::Damaged("longer than its index entry says"));
        }
        if BlobRef::of(&bytes).hash != blob.hash {
            return Err(BlobReadError::Damaged(
                "altered (its bytes do not match its hash)",
            ));
        }
        Ok(bytes)
    }

    /// Whether the file of `blob` is there with the right length (no hash check).
    pub(crate) fn looks_complete(&self, blob: &BlobRef) -> bool {
        fs::metadata(self.path(blob)).is_ok_and(|m| m.is_file() && m.len() == blob.len)
    }

    /// Removes the files of `blobs` (those already gone are fine) and syncs the folder.
    pub(crate) fn remove<'a>(
        &self,
        blobs: impl IntoIterator<Item = &'a [u8; 32]>,
    ) -> io::Result<()> {
        let mut removed = false;
        for hash in blobs {
            match fs::remove_file(self.dir.join(hex::encode(hash))) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if removed {
            self.sync()?;
        }
        Ok(())
    }

    /// Removes leftover `.tmp` files and every body file whose hash is not in `live`. Files
    /// with other names are left alone (they are not this store's).
    pub(crate) fn sweep(&self, live: &HashSet<[u8; 32]>) -> io::Result<Swept> {
        let mut swept = Swept::default();
        for item in fs::read_dir(&self.dir)? {
            let item = item?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if !item.file_type()?.is_file() {
                continue;
            }
            if name.strip_suffix(TEMP_SUFFIX).is_some_and(is_blob_name) {
                fs::remove_file(item.path())?;
                swept.temps += 1;
            } else if is_blob_name(name) {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(name, &mut hash)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if !live.contains(&hash) {
                    fs::remove_file(item.path())?;
                    swept.orphans += 1;
                }
            }
        }
        if swept != Swept::default() {
            self.sync()?;
        }
        Ok(swept)
    }

    /// Bytes of all files in the folder.
    pub(crate) fn size(&self) -> io::Result<u64> {
        let mut total = 0;
        for item in fs::read_dir(&self.dir)? {
            let item = item?;
            match item.metadata() {
                Ok(meta) if meta.is_file() => total += meta.len(),
                Ok(_) => {}
                // Removed by a purge between the listing and the stat.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }
}
