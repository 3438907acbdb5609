//! Storage behind a small trait: [`SledStore`] (default, durable) and [`MemoryStore`]
//! (tests and the simulator).
//!
//! The core keeps only its working set in memory (today's key or `pet` key ratchet, the
//! peers in range, queued requests); everything that must outlive a restart goes through
//! [`Store`]. sled types stay inside this module so another engine can replace it.
//!
//! Two small files beside a folder store's database are overwritten in place rather than
//! logged, so what they forget is gone from the disk: [`day_keys`] (the keys records are
//! sealed under) and [`ratchet_slot`] (the `pet` key ratchet, [`MetaKey::PetRatchet`]).
//! An engine that replaces sled must keep [`MetaKey::PetRatchet`] the same way.

pub mod day_keys;
mod memory;
pub mod ratchet_slot;
mod records;
mod sled_store;

pub use memory::MemoryStore;
pub use records::{
    CheckInRecord, EncounterKey, EncounterRecord, Evidence, MetaKey, OwnKey, PurgeCounts, WindowId,
};
pub use sled_store::SledStore;

use ephemera_proto::DayNumber;

use crate::error::StoreError;
use crate::risk::ExposureWindow;

/// What a phone keeps across restarts.
///
/// Writes become durable at [`Store::flush`]; the phone flushes after creating a daily key
/// or moving the `pet` key ratchet (before broadcasting the key), after closing encounters,
/// after matching and after moving the sync cursor.
pub trait Store {
    /// The own daily key of `day`, if one was made.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn own_key(&self, day: DayNumber) -> Result<Option<OwnKey>, StoreError>;

    /// Keeps the own daily key of `day`.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn put_own_key(&mut self, day: DayNumber, key: &OwnKey) -> Result<(), StoreError>;

    /// Days that have an own key, ascending.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn own_key_days(&self) -> Result<Vec<DayNumber>, StoreError>;

    /// Forgets the own key of `day`.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn remove_own_key(&mut self, day: DayNumber) -> Result<(), StoreError>;

    /// Keeps a closed encounter.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn put_encounter(&mut self, record: &EncounterRecord) -> Result<(), StoreError>;

    /// Visits every kept encounter, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn for_each_encounter(&self, visit: &mut dyn FnMut(&EncounterRecord))
    -> Result<(), StoreError>;

    /// Keeps a matched exposure window under `id`; returns false if the same window was
    /// already kept under `id` (the same batch ingested twice). A different window under a
    /// kept `id` replaces it and returns true: a revision republished the key with another
    /// report type (`likely` → `confirmed`, or revoked), and the newer publication holds.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn put_window(&mut self, id: &WindowId, window: &ExposureWindow) -> Result<bool, StoreError>;

    /// The kept exposure windows of `day`.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn windows_of(&self, day: DayNumber) -> Result<Vec<ExposureWindow>, StoreError>;

    /// Days that have exposure windows, ascending.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn window_days(&self) -> Result<Vec<DayNumber>, StoreError>;

    /// Keeps a venue check-in (kept once: the same record again is ignored).
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn put_check_in(&mut self, record: &CheckInRecord) -> Result<(), StoreError>;

    /// Every kept venue check-in, oldest day first.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn check_ins(&self) -> Result<Vec<CheckInRecord>, StoreError>;

    /// Sets a small piece of state.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn set_meta(&mut self, key: MetaKey, value: &[u8]) -> Result<(), StoreError>;

    /// Reads a small piece of state.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn meta(&self, key: MetaKey) -> Result<Option<Vec<u8>>, StoreError>;

    /// Forgets a small piece of state.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn remove_meta(&mut self, key: MetaKey) -> Result<(), StoreError>;

    /// Forgets everything this store holds (the user's "delete my data", a sunset),
    /// durably, and erases it from the disk: a folder store overwrites its key and ratchet
    /// files in place, replaces its database with an empty one and deletes the old one's
    /// files (sled's log would keep cleared values until it rewrites them). An engine that
    /// replaces sled must erase as thoroughly.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn erase_all(&mut self) -> Result<(), StoreError>;

    /// Deletes own keys, encounters, windows and venue check-ins of days before
    /// `oldest_kept`.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn purge_before(&mut self, oldest_kept: DayNumber) -> Result<PurgeCounts, StoreError>;

    /// The phone's current (confirmed) day: a store that seals records by day seals
    /// state that is not history (meta records) under it. The phone calls it before every
    /// input's work. Default: ignored.
    fn set_today(&mut self, today: DayNumber) {
        let _ = today;
    }

    /// Makes every write so far durable.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn flush(&mut self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests;
