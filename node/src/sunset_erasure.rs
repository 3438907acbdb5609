//! Erasure under a sunset order (issue 21 item 3), on a stopped node: every record goes,
//! the database files are rewritten or removed, and the node keeps only the order, its keys
//! and a signed deletion receipt in `sunset/`.
//!
//! The steps survive a kill at any point: the order is written to `sunset/order` first, so
//! a node killed mid-way erases again when it starts, and `sunset/receipt` is written last,
//! through a temporary file and a rename.

use std::path::{Path, PathBuf};

use ephemera_node_core::keys::{KEYS_DIR, NodeKeys};
use ephemera_node_core::store::DATA_KEYS_DIR;
use ephemera_node_core::sunset::SunsetRules;
use ephemera_node_core::token_keys::TOKEN_KEYS_DIR;
use ephemera_proto::UnixTime;
use ephemera_proto::sunset::{
    DeletionReceipt, SignedDeletionReceipt, SignedSunsetOrder, remaining_state_hash,
};

use crate::config::{NodeConfig, StoreBackend};
use crate::node::{BLOB_DIR, DB_DIR, NodeError, SunsetSetupError, open_store};

/// Folder of an erased node's order and receipt, inside the data folder.
pub const SUNSET_DIR: &str = "sunset";
const ORDER_FILE: &str = "order";
const RECEIPT_FILE: &str = "receipt";

/// An erased node's order and receipt.
#[derive(Clone, Debug)]
pub struct Erased {
    /// The order it acted on.
    pub order: SignedSunsetOrder,
    /// Its signed receipt.
    pub receipt: SignedDeletionReceipt,
}

/// Whether `data_dir` holds an erasure begun under an order (`sunset/order`).
pub fn begun(data_dir: &Path) -> bool {
    data_dir.join(SUNSET_DIR).join(ORDER_FILE).exists()
}

/// The order and receipt of a finished erasure, if `data_dir` holds one.
///
/// # Errors
/// [`NodeError::Sunset`] for files that cannot be read or decoded.
pub fn finished(data_dir: &Path) -> Result<Option<Erased>, NodeError> {
    let dir = data_dir.join(SUNSET_DIR);
    if !dir.join(RECEIPT_FILE).exists() {
        return Ok(None);
    }
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| invalid(format!("reading sunset/{name}: {e}")))
    };
    let order = SignedSunsetOrder::from_bytes(&read(ORDER_FILE)?)
        .map_err(|e| invalid(format!("sunset/order: {e}")))?;
    let receipt = SignedDeletionReceipt::from_bytes(&read(RECEIPT_FILE)?)
        .map_err(|e| invalid(format!("sunset/receipt: {e}")))?;
    Ok(Some(Erased { order, receipt }))
}

fn invalid(why: String) -> NodeError {
    NodeError::Sunset(SunsetSetupError::HeldOrderInvalid(why))
}

/// Erases the node of `config` under its held order, which must stop this node and be in
/// effect at `now`. The node must not be running.
///
/// # Errors
/// [`NodeError`]: no committee, no order or one not in effect, storage, files.
pub fn erase(config: &NodeConfig, now: UnixTime) -> Result<Erased, NodeError> {
    let data_dir = &config.data_dir;
    let keys = NodeKeys::load(data_dir)?;
    let committee = config
        .sunset_committee()
        .map_err(invalid)?
        .ok_or_else(|| invalid("no [sunset] keys are configured".to_owned()))?;
    let rules = SunsetRules {
        committee,
        federation: config.federation_name().to_owned(),
        own_authority: keys.authority.public_key(),
    };
    let dir = data_dir.join(SUNSET_DIR);
    let order_path = dir.join(ORDER_FILE);
    let (store, _) = open_store(config)?;
    // The order: from a begun erasure's file, else the store's.
    let frame = match std::fs::read(&order_path) {
        Ok(frame) => frame,
        Err(_) => store
            .sunset_order()?
            .ok_or_else(|| invalid("the node holds no sunset order".to_owned()))?,
    };
    let order = SignedSunsetOrder::from_bytes(&frame).map_err(|e| invalid(e.to_string()))?;
    order
        .verify(&rules.committee, &rules.federation, order.order.issued_at)
        .map_err(|e| invalid(e.to_string()))?;
    if !rules.stopped(Some(&order), now) {
        return Err(invalid(format!(
            "the held order does not stop this node at {} (scope {:?}, effective at {})",
            now.0, order.order.scope, order.order.effective_at.0
        )));
    }
    write_durably(&dir, ORDER_FILE, &frame)?;

    let bytes_before = store.size_on_disk()? + folder_size(&data_dir.join(KEYS_DIR));
    let mut erased = store.erase_all()?;
    drop(store);
    // sled keeps deleted records in its log files: the folder goes whole. Blind-token keys
    // and data keys go with it.
    let mut folders = vec![
        data_dir.join(KEYS_DIR).join(DATA_KEYS_DIR),
        data_dir.join(KEYS_DIR).join(TOKEN_KEYS_DIR),
    ];
    if config.storage.backend == StoreBackend::Sled {
        folders.push(data_dir.join(DB_DIR));
        folders.push(data_dir.join(BLOB_DIR));
    }
    let mut files = 0u64;
    for folder in &folders {
        files += shred(folder).map_err(|e| io_error(folder, e))?;
    }
    erased.push(("files-removed".to_owned(), files));
    erased.sort();

    let kept = kept_files(data_dir).map_err(|e| io_error(data_dir, e))?;
    let receipt = DeletionReceipt {
        order: order.order.id(),
        node: keys.batch.public_key(),
        erased,
        bytes_before,
        bytes_after: kept.iter().map(|(_, bytes)| bytes.len() as u64).sum(),
        remaining_state: remaining_state_hash(
            kept.iter()
                .map(|(path, bytes)| (path.as_str(), bytes.as_slice())),
        ),
        erased_at: now,
    }
    .sign(keys.batch.ed25519());
    write_durably(&dir, RECEIPT_FILE, &receipt.to_bytes())?;
    tracing::warn!(
        order = %order.order.id(),
        bytes_before = receipt.receipt.bytes_before,
        bytes_after = receipt.receipt.bytes_after,
        "sunset erasure finished; the node now serves only its order and receipt"
    );
    Ok(Erased { order, receipt })
}

/// Every file left in `data_dir` but the receipt, as (path relative to it, contents).
fn kept_files(data_dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if entry.file_type()?.is_file() {
                let relative = path
                    .strip_prefix(data_dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                if relative != format!("{SUNSET_DIR}/{RECEIPT_FILE}") {
                    out.push((relative, std::fs::read(&path)?));
                }
            }
        }
    }
    Ok(out)
}

/// Overwrites every file under `folder` with zeros, syncs, and removes the folder; returns
/// the files removed (0 for a folder that is not there). The overwrite is best effort: a
/// copy-on-write file system or an SSD's remapping may keep old blocks, which is why
/// records are also sealed under data keys that are destroyed first.
fn shred(folder: &Path) -> std::io::Result<u64> {
    if !folder.exists() {
        return Ok(0);
    }
    let mut files = 0;
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else if entry.file_type()?.is_file() {
                let mut file = std::fs::OpenOptions::new().write(true).open(entry.path())?;
                let len = file.metadata()?.len();
                let zeros = vec![0u8; 1 << 16];
                let mut left = len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    std::io::Write::write_all(&mut file, &zeros[..n])?;
                    left -= n as u64;
                }
                file.sync_all()?;
                files += 1;
            }
        }
    }
    std::fs::remove_dir_all(folder)?;
    Ok(files)
}

fn folder_size(folder: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => folder_size(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Writes `dir/name` through a temporary file, a sync and a rename.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), NodeError> {
    let fail = |path: &PathBuf, e| io_error(path, e);
    std::fs::create_dir_all(dir).map_err(|e| fail(&dir.to_path_buf(), e))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| fail(&path, e))
}

fn io_error(path: &Path, source: std::io::Error) -> NodeError {
    NodeError::DataDir {
        path: path.to_path_buf(),
        source,
    }
}
