//! An in-memory store: compact vectors, nothing durable.

use ephemera_proto::DayNumber;

use super::{CheckInRecord, EncounterRecord, MetaKey, OwnKey, PurgeCounts, Store, WindowId};
use crate::error::StoreError;
use crate::risk::ExposureWindow;

/// A [`Store`] in memory, for tests and the simulator. Nothing survives a drop.
///
/// Kept small: plain vectors with no per-entry allocation, so 100,000 phones fit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    keys: Vec<(DayNumber, OwnKey)>,
    encounters: Vec<EncounterRecord>,
    windows: Vec<(WindowId, ExposureWindow)>,
    check_ins: Vec<CheckInRecord>,
    cursor: Option<Vec<u8>>,
    released: Option<SecretBytes>,
    /// The other meta records (reports, checkpoints, events, clock): few and small.
    other: Vec<(MetaKey, SecretBytes)>,
}

/// Bytes that hold keys: not printed, zeroed on drop.
#[derive(Default)]
struct SecretBytes(Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Number of kept encounters.
    pub fn encounter_count(&self) -> usize {
        self.encounters.len()
    }
}

impl Store for MemoryStore {
    fn own_key(&self, day: DayNumber) -> Result<Option<OwnKey>, StoreError> {
        Ok(self
            .keys
            .iter()
            .find(|(d, _)| *d == day)
            .map(|(_, k)| k.clone()))
    }

    fn put_own_key(&mut self, day: DayNumber, key: &OwnKey) -> Result<(), StoreError> {
        self.keys.retain(|(d, _)| *d != day);
        self.keys.push((day, key.clone()));
        self.keys.sort_by_key(|(d, _)| *d);
        Ok(())
    }

    fn own_key_days(&self) -> Result<Vec<DayNumber>, StoreError> {
        Ok(self.keys.iter().map(|(d, _)| *d).collect())
    }

    fn remove_own_key(&mut self, day: DayNumber) -> Result<(), StoreError> {
        self.keys.retain(|(d, _)| *d != day);
        Ok(())
    }

    fn put_encounter(&mut self, record: &EncounterRecord) -> Result<(), StoreError> {
        self.encounters.push(record.clone());
        Ok(())
    }

    fn for_each_encounter(
        &self,
        visit: &mut dyn FnMut(&EncounterRecord),
    ) -> Result<(), StoreError> {
        self.encounters.iter().for_each(visit);
        Ok(())
    }

    fn put_window(&mut self, id: &WindowId, window: &ExposureWindow) -> Result<bool, StoreError> {
        match self.windows.iter_mut().find(|(i, _)| i == id) {
            Some((_, kept)) if kept == window => Ok(false),
            Some((_, kept)) => {
                *kept = window.clone();
                Ok(true)
            }
            None => {
                self.windows.push((*id, window.clone()));
                Ok(true)
            }
        }
    }

    fn windows_of(&self, day: DayNumber) -> Result<Vec<ExposureWindow>, StoreError> {
        Ok(self
            .windows
            .iter()
            .filter(|(i, _)| i.day == day)
            .map(|(_, w)| w.clone())
            .collect())
    }

    fn window_days(&self) -> Result<Vec<DayNumber>, StoreError> {
        let mut days: Vec<DayNumber> = self.windows.iter().map(|(i, _)| i.day).collect();
        days.sort_unstable();
        days.dedup();
        Ok(days)
    }

    fn put_check_in(&mut self, record: &CheckInRecord) -> Result<(), StoreError> {
        if !self.check_ins.contains(record) {
            self.check_ins.push(record.clone());
            self.check_ins.sort_by_key(|r| r.day);
        }
        Ok(())
    }

    fn check_ins(&self) -> Result<Vec<CheckInRecord>, StoreError> {
        Ok(self.check_ins.clone())
    }

    fn set_meta(&mut self, key: MetaKey, value: &[u8]) -> Result<(), StoreError> {
        match key {
            MetaKey::SyncCursor => self.cursor = Some(value.to_vec()),
            MetaKey::ReleasedKeys => self.released = Some(SecretBytes(value.to_vec())),
            other => {
                self.other.retain(|(k, _)| *k != other);
                self.other.push((other, SecretBytes(value.to_vec())));
            }
        }
        Ok(())
    }

    fn meta(&self, key: MetaKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(match key {
            MetaKey::SyncCursor => self.cursor.clone(),
            MetaKey::ReleasedKeys => self.released.as_ref().map(|b| b.0.clone()),
            other => self
                .other
                .iter()
                .find(|(k, _)| *k == other)
                .map(|(_, b)| b.0.clone()),
        })
    }

    fn remove_meta(&mut self, key: MetaKey) -> Result<(), StoreError> {
        match key {
            MetaKey::SyncCursor => self.cursor = None,
            MetaKey::ReleasedKeys => self.released = None,
            other => self.other.retain(|(k, _)| *k != other),
        }
        Ok(())
    }

    fn erase_all(&mut self) -> Result<(), StoreError> {
        *self = MemoryStore::default();
        Ok(())
    }

    fn purge_before(&mut self, oldest_kept: DayNumber) -> Result<PurgeCounts, StoreError> {
        let before = (
            self.keys.len(),
            self.encounters.len(),
            self.windows.len(),
            self.check_ins.len(),
        );
        self.keys.retain(|(d, _)| *d >= oldest_kept);
        self.check_ins.retain(|r| r.day >= oldest_kept);
        self.encounters.retain(|r| r.day() >= oldest_kept);
        self.windows.retain(|(i, _)| i.day >= oldest_kept);
        self.encounters.shrink_to_fit();
        Ok(PurgeCounts {
            own_keys: before.0 - self.keys.len(),
            encounters: before.1 - self.encounters.len(),
            windows: before.2 - self.windows.len(),
            check_ins: before.3 - self.check_ins.len(),
        })
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
