//! Which keys a store belongs to: the one rule that decides whether a node may make keys.
//!
//! Phones pin a node's batch key, and every node that shares a store (a group of `serve`
//! processes on one PostgreSQL schema) publishes the same batches, so signs them with the
//! same key. A store therefore records the batch public key its data was made under
//! ([`ReportStore::bind_key`]), once, by the first node that opens it, and every later
//! open compares:
//!
//! - a store or data folder with **history** (a sled database folder that existed before
//!   this open, a recorded key, or an audit trail) never gets new keys: missing key files
//!   are an error, never a reason to make them;
//! - keys whose batch key differs from the recorded one are refused, naming both ids;
//! - the one accepted difference is a finished rotation: the node's rollovers lead from
//!   the recorded key to its current one (`ephemera-node keys rotate batch --finish`), and
//!   the record moves on to the new key, atomically, so the other nodes of the group then
//!   refuse their old keys until keys/ is copied to them.

use std::path::{Path, PathBuf};

use ephemera_proto::rollover::KeyRole;
use ephemera_proto::signing::{Ed25519PublicKey, KeyId};
use rand_core::CryptoRng;
use thiserror::Error;

use crate::keys::{KeyError, NodeKeys};
use crate::store::{ReportStore, StoreError};

/// The keys do not belong to the store, or could not be checked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyBindingError {
    /// Key files are missing, and the store belongs to an existing group of nodes.
    #[error(
        "{dir} lacks {}, and the store already holds the data of the group whose batch key \
         is {group}: new keys would fork its published batches, so none are made. Copy \
         keys/ from another node of the group (node/docs/OPERATIONS.md, \"Several nodes, \
         one authority\"), or point this node at another store to start a new group",
        files.join(", ")
    )]
    MissingForGroup {
        /// The keys folder.
        dir: PathBuf,
        /// The missing files.
        files: Vec<&'static str>,
        /// The id of the batch key the store records.
        group: KeyId,
    },
    /// The node's batch key is not the one the store's data was made under.
    #[error(
        "the store's data was made under batch key {group}, but keys/ holds batch key \
         {ours}: this node's keys belong to another node or group. Copy keys/ from a node \
         of the group that uses this store (node/docs/OPERATIONS.md, \"Several nodes, one \
         authority\"), or point this node at its own store"
    )]
    Mismatch {
        /// The id of the batch key the store records.
        group: KeyId,
        /// The id of the batch key in keys/.
        ours: KeyId,
    },
    /// Key files could not be read, written or parsed (or are missing from a folder whose
    /// store has history but records no key yet).
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store could not be asked or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens the keys of `data_dir` for `store`, making them only for a new store, and records
/// or checks the store's batch key (see the module doc). `folder_history` says whether the
/// data folder had history before this open (sled: its database folder existed). Returns
/// the keys and whether any was made now.
///
/// # Errors
/// [`KeyBindingError`] naming what does not fit and what to do.
pub fn open_keys(
    data_dir: &Path,
    store: &dyn ReportStore,
    folder_history: bool,
    rng: &mut impl CryptoRng,
) -> Result<(NodeKeys, bool), KeyBindingError> {
    let recorded = store.bound_key()?;
    let history = folder_history || recorded.is_some() || store.audit_head()?.is_some();
    let (keys, created) = if history {
        match (NodeKeys::load(data_dir), recorded) {
            (Ok(keys), _) => (keys, false),
            (Err(KeyError::Missing { dir, files }), Some(group)) if !folder_history => {
                return Err(KeyBindingError::MissingForGroup {
                    dir,
                    files,
                    group: group.key_id(),
                });
            }
            (Err(e), _) => return Err(e.into()),
        }
    } else {
        NodeKeys::load_or_create(data_dir, rng)?
    };
    let ours = keys.batch.public_key();
    let expected = match recorded {
        Some(group) if group == ours => return Ok((keys, created)),
        Some(group) if rotated_from(&keys, &group) => Some(group),
        Some(group) => {
            return Err(KeyBindingError::Mismatch {
                group: group.key_id(),
                ours: ours.key_id(),
            });
        }
        None => None,
    };
    let bound = store.bind_key(expected.as_ref(), &ours)?;
    if bound != ours {
        // Another node of the group bound its key (or moved it on) in the meantime.
        return Err(KeyBindingError::Mismatch {
            group: bound.key_id(),
            ours: ours.key_id(),
        });
    }
    if let Some(from) = expected {
        tracing::info!(from = %from.key_id(), to = %ours.key_id(),
            "the store's batch key follows this node's finished rotation");
    }
    Ok((keys, created))
}

/// Whether `keys`' batch rollovers lead from `old` to their current batch key.
fn rotated_from(keys: &NodeKeys, old: &Ed25519PublicKey) -> bool {
    let current = keys.batch.public_key();
    let mut at = *old;
    // Each step follows a rollover announced by `at`; a chain is never longer than the
    // list, so a loop in a tampered folder ends too.
    for _ in 0..keys.rollovers.len() {
        let Some(next) = keys
            .rollovers
            .iter()
            .find(|r| r.role == KeyRole::Batch && r.old == at && r.verify().is_ok())
        else {
            return false;
        };
        at = next.new;
        if at == current {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use ephemera_proto::UnixTime;
    use ephemera_proto::batch::NodeSigningKey;
    use ephemera_proto::rollover::KeyRollover;

    use super::*;
    use crate::store::MemoryReportStore;

    #[test]
    fn the_first_open_binds_and_later_ones_must_match() {
        let store = MemoryReportStore::new();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (keys, created) = open_keys(a.path(), &store, false, &mut rand::rng()).unwrap();
        assert!(created);
        assert_eq!(store.bound_key().unwrap(), Some(keys.batch.public_key()));
        let (again, created) = open_keys(a.path(), &store, false, &mut rand::rng()).unwrap();
        assert!(!created);
        assert_eq!(again.batch.public_key(), keys.batch.public_key());

        // An empty folder on the bound store: refused, nothing made.
        let error = open_keys(b.path(), &store, false, &mut rand::rng()).unwrap_err();
        let group = keys.batch.public_key().key_id().to_string();
        assert!(
            matches!(&error, KeyBindingError::MissingForGroup { files, .. } if files.len() == 5),
            "{error}"
        );
        assert!(error.to_string().contains(&group), "{error}");
        assert!(!b.path().join(crate::keys::KEYS_DIR).exists());

        // Another node's keys: refused, naming both ids.
        let other = tempfile::tempdir().unwrap();
        let (foreign, _) = NodeKeys::load_or_create(other.path(), &mut rand::rng()).unwrap();
        let error = open_keys(other.path(), &store, false, &mut rand::rng()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&group), "{message}");
        assert!(
            message.contains(&foreign.batch.public_key().key_id().to_string()),
            "{message}"
        );
        assert_eq!(store.bound_key().unwrap(), Some(keys.batch.public_key()));
    }

    #[test]
    fn a_store_with_history_but_no_record_never_gets_new_keys() {
        let store = MemoryReportStore::new();
        let dir = tempfile::tempdir().unwrap();
        // sled: the database folder existed.
        assert!(matches!(
            open_keys(dir.path(), &store, true, &mut rand::rng()),
            Err(KeyBindingError::Keys(KeyError::Missing { .. }))
        ));
        assert_eq!(store.bound_key().unwrap(), None);
        // With its keys it opens and records them.
        let (keys, _) = NodeKeys::load_or_create(dir.path(), &mut rand::rng()).unwrap();
        let (opened, created) = open_keys(dir.path(), &store, true, &mut rand::rng()).unwrap();
        assert!(!created);
        assert_eq!(opened.batch.public_key(), keys.batch.public_key());
        assert_eq!(store.bound_key().unwrap(), Some(keys.batch.public_key()));
    }

    #[test]
    fn a_finished_rotation_moves_the_record_on_and_only_a_real_one() {
        let store = MemoryReportStore::new();
        let old = NodeSigningKey::from_seed(&[1; 32]);
        let new = NodeSigningKey::from_seed(&[2; 32]);
        store.bind_key(None, &old.public_key()).unwrap();
        let mut keys = NodeKeys::generate(&mut rand::rng());
        keys.batch = NodeSigningKey::from_seed(&[2; 32]);
        assert!(!rotated_from(&keys, &old.public_key()), "no rollover");
        keys.rollovers.push(KeyRollover::announce(
            KeyRole::Batch,
            old.ed25519(),
            new.ed25519(),
            UnixTime(1),
        ));
        assert!(rotated_from(&keys, &old.public_key()));
        assert!(!rotated_from(&keys, &new.public_key()), "not from itself");
        let unrelated = NodeSigningKey::from_seed(&[3; 32]);
        assert!(!rotated_from(&keys, &unrelated.public_key()));
        // The record moves from the old key only.
        assert_eq!(
            store
                .bind_key(Some(&unrelated.public_key()), &new.public_key())
                .unwrap(),
            old.public_key()
        );
        assert_eq!(
            store
                .bind_key(Some(&old.public_key()), &new.public_key())
                .unwrap(),
            new.public_key()
        );
    }
}
