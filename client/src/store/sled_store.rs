//! The embedded default store: sled trees of postcard records.

use std::path::Path;

use ephemera_proto::DayNumber;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EncounterRecord, MetaKey, OwnKey, PurgeCounts, Store, WindowId};
use crate::error::StoreError;
use crate::risk::ExposureWindow;

/// A durable [`Store`] in a sled database folder.
///
/// Layout: tree `own-keys` (day BE → key), `encounters` (day BE ‖ first sighting BE ‖
/// lookup key → record), `windows` (day BE ‖ window id → window), `meta` (name → bytes).
/// Keys start with the day so retention is a range delete. Writes are durable after
/// [`Store::flush`].
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    own_keys: sled::Tree,
    encounters: sled::Tree,
    windows: sled::Tree,
    meta: sled::Tree,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend {
        message: e.to_string(),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encoding into a Vec")
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|_| StoreError::Corrupt { what })
}

fn day_key(day: DayNumber) -> [u8; 4] {
    day.0.to_be_bytes()
}

fn day_of(key: &[u8]) -> Result<DayNumber, StoreError> {
    let bytes: [u8; 4] = key
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(StoreError::Corrupt { what: "key" })?;
    Ok(DayNumber(u32::from_be_bytes(bytes)))
}

impl SledStore {
    /// Opens (or creates) the store in folder `path`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when sled cannot open it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = sled::open(path).map_err(|e| match &e {
            // sled takes an exclusive lock on the folder: a second phone object (in this
            // process or another) gets a typed error, not a backend message.
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                StoreError::InUse
            }
            _ => backend(e),
        })?;
        Self::from_db(db)
    }

    /// A store in a temporary sled database, deleted on drop (tests).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when sled cannot create it.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(backend)?;
        Self::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        Ok(SledStore {
            own_keys: db.open_tree("own-keys").map_err(backend)?,
            encounters: db.open_tree("encounters").map_err(backend)?,
            windows: db.open_tree("windows").map_err(backend)?,
            meta: db.open_tree("meta").map_err(backend)?,
            db,
        })
    }

    fn purge_tree(tree: &sled::Tree, oldest_kept: DayNumber) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in tree.range(..day_key(oldest_kept).to_vec()) {
            let (key, _) = entry.map_err(backend)?;
            tree.remove(key).map_err(backend)?;
            removed += 1;
        }
        Ok(removed)
    }
}

impl Store for SledStore {
    fn own_key(&self, day: DayNumber) -> Result<Option<OwnKey>, StoreError> {
        self.own_keys
            .get(day_key(day))
            .map_err(backend)?
            .map(|v| decode(&v, "own key"))
            .transpose()
    }

    fn put_own_key(&mut self, day: DayNumber, key: &OwnKey) -> Result<(), StoreError> {
        self.own_keys
            .insert(day_key(day), encode(key))
            .map_err(backend)?;
        Ok(())
    }

    fn own_key_days(&self) -> Result<Vec<DayNumber>, StoreError> {
        self.own_keys
            .iter()
            .keys()
            .map(|k| day_of(&k.map_err(backend)?))
            .collect()
    }

    fn remove_own_key(&mut self, day: DayNumber) -> Result<(), StoreError> {
        self.own_keys.remove(day_key(day)).map_err(backend)?;
        Ok(())
    }

    fn put_encounter(&mut self, record: &EncounterRecord) -> Result<(), StoreError> {
        let mut key = [0u8; 28];
        key[..4].copy_from_slice(&day_key(record.day()));
        key[4..12].copy_from_slice(&record.first_seen.0.to_be_bytes());
        key[12..].copy_from_slice(&record.key().0);
        self.encounters
            .insert(key, encode(record))
            .map_err(backend)?;
        Ok(())
    }

    fn for_each_encounter(
        &self,
        visit: &mut dyn FnMut(&EncounterRecord),
    ) -> Result<(), StoreError> {
        for entry in self.encounters.iter().values() {
            let record: EncounterRecord = decode(&entry.map_err(backend)?, "encounter")?;
            visit(&record);
        }
        Ok(())
    }

    fn put_window(&mut self, id: &WindowId, window: &ExposureWindow) -> Result<bool, StoreError> {
        let mut key = [0u8; 20];
        key[..4].copy_from_slice(&day_key(id.day));
        key[4..].copy_from_slice(&id.id);
        let value = encode(window);
        let previous = self
            .windows
            .insert(key, value.as_slice())
            .map_err(backend)?;
        Ok(previous.is_none_or(|p| p.as_ref() != value.as_slice()))
    }

    fn windows_of(&self, day: DayNumber) -> Result<Vec<ExposureWindow>, StoreError> {
        self.windows
            .scan_prefix(day_key(day))
            .values()
            .map(|v| decode(&v.map_err(backend)?, "window"))
            .collect()
    }

    fn window_days(&self) -> Result<Vec<DayNumber>, StoreError> {
        let mut days = Vec::new();
        for key in self.windows.iter().keys() {
            let day = day_of(&key.map_err(backend)?)?;
            if days.last() != Some(&day) {
                days.push(day);
            }
        }
        Ok(days)
    }

    fn set_meta(&mut self, key: MetaKey, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key.name(), value).map_err(backend)?;
        Ok(())
    }

    fn meta(&self, key: MetaKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .meta
            .get(key.name())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn remove_meta(&mut self, key: MetaKey) -> Result<(), StoreError> {
        self.meta.remove(key.name()).map_err(backend)?;
        Ok(())
    }

    fn erase_all(&mut self) -> Result<(), StoreError> {
        for tree in [&self.own_keys, &self.encounters, &self.windows, &self.meta] {
            tree.clear().map_err(backend)?;
        }
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn purge_before(&mut self, oldest_kept: DayNumber) -> Result<PurgeCounts, StoreError> {
        Ok(PurgeCounts {
            own_keys: Self::purge_tree(&self.own_keys, oldest_kept)?,
            encounters: Self::purge_tree(&self.encounters, oldest_kept)?,
            windows: Self::purge_tree(&self.windows, oldest_kept)?,
        })
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}
