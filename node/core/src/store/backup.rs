//! Consistent copies of a store's folders while the node serves (`ephemera-node backup`).
//!
//! The store holds every writer back, flushes, and copies its three folders file by file
//! (each synced) into a new folder laid out like a data folder: `db/`, `blobs/` and
//! `keys/data/`. Restoring is copying them back (`node/docs/OPERATIONS.md`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::StoreError;

/// Where a store keeps its files.
#[derive(Clone, Debug)]
pub(crate) struct StorePaths {
    /// The database folder.
    pub(crate) db: PathBuf,
    /// Batch bodies and export zips.
    pub(crate) blobs: PathBuf,
    /// The per-day data keys.
    pub(crate) data_keys: PathBuf,
}

/// What a backup wrote.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// Files copied.
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// How long writers waited for the copy.
    pub paused: Duration,
}

fn io_error(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Engine(format!("backup: {what} {}: {e}", path.display()))
}

/// Checks that `to` does not exist yet or is an empty folder, and creates it.
pub(crate) fn prepare_target(to: &Path) -> Result<(), StoreError> {
    match fs::read_dir(to) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(StoreError::Engine(format!(
                    "backup: {} is not empty; give a new folder",
                    to.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(to).map_err(|e| io_error("create", to, e))
        }
        Err(e) => Err(io_error("read", to, e)),
    }
}

impl StorePaths {
    /// Copies the three folders under `to` (`db/`, `blobs/`, `keys/data/`).
    pub(crate) fn copy_to(
        &self,
        to: &Path,
        paused_since: std::time::Instant,
    ) -> Result<BackupSummary, StoreError> {
        let mut summary = BackupSummary {
            files: 0,
            bytes: 0,
            paused: Duration::ZERO,
        };
        for (from, name) in [
            (&self.db, Path::new("db")),
            (&self.blobs, Path::new("blobs")),
            (&self.data_keys, &Path::new("keys").join("data")),
        ] {
            copy_tree(from, &to.join(name), &mut summary)?;
        }
        for dir in [to.to_owned(), to.join("keys")] {
            sync_dir(&dir)?;
        }
        summary.paused = paused_since.elapsed();
        Ok(summary)
    }
}

/// Copies every file under `from` to `to`, syncing each file and folder.
fn copy_tree(from: &Path, to: &Path, summary: &mut BackupSummary) -> Result<(), StoreError> {
    fs::create_dir_all(to).map_err(|e| io_error("create", to, e))?;
    for entry in fs::read_dir(from).map_err(|e| io_error("read", from, e))? {
        let entry = entry.map_err(|e| io_error("read", from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(|e| io_error("read", &source, e))?;
        if kind.is_dir() {
            copy_tree(&source, &target, summary)?;
        } else if kind.is_file() {
            summary.bytes +=
                fs::copy(&source, &target).map_err(|e| io_error("copy", &source, e))?;
            fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_error("sync", &target, e))?;
            summary.files += 1;
        }
    }
    sync_dir(to)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync", dir, e))
}
