//! The embedded default store: sled trees of postcard records, each sealed under the key
//! of its day (see [`day_keys`](super::day_keys)).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ephemera_proto::{DayNumber, ReportType};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::day_keys::DayKeys;
use super::ratchet_slot::RatchetSlot;
use super::{CheckInRecord, EncounterRecord, MetaKey, OwnKey, PurgeCounts, Store, WindowId};
use crate::error::StoreError;
use crate::risk::{BUCKETS, ExposureWindow, Infectiousness};

/// A durable [`Store`] in a sled database folder.
///
/// Layout: tree `own-keys` (day BE → key), `encounters` (day BE ‖ first sighting BE ‖
/// tag of the lookup key → record), `windows` (day BE ‖ tag of the window id → window),
/// `check-ins` (day BE ‖ tag of the check-in → check-in), `meta` (name → bytes); the tags are keyed by the day's key. [`MetaKey::PetRatchet`] is
/// not in the database: it lives in the `pet-ratchet` file, overwritten in place at every
/// step (see [`ratchet_slot`](super::ratchet_slot)).
/// Keys start with the day so retention is a range delete. Writes are durable after
/// [`Store::flush`].
///
/// # Forgetting on disk
/// Every value is sealed under the key of its day (records) or of the current day (meta),
/// and the day keys live in the `day-keys` file beside the database, overwritten in place
/// when a day is forgotten. After each purge (daily), the live records are copied into a
/// fresh database and the old one deleted, so disk use levels off. After [`Store::purge_before`], what sled's log still holds of
/// a forgotten day cannot be opened by anyone. Meta records of forgotten days are sealed
/// again under the current day first.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    own_keys: sled::Tree,
    encounters: sled::Tree,
    windows: sled::Tree,
    check_ins: sled::Tree,
    meta: sled::Tree,
    keys: Arc<Mutex<DayKeys>>,
    /// [`MetaKey::PetRatchet`], outside the database.
    ratchet: Arc<Mutex<RatchetSlot>>,
    today: DayNumber,
    folder: Option<Folder>,
}

const OWN_KEYS: &str = "own-keys";
const ENCOUNTERS: &str = "encounters";
const WINDOWS: &str = "windows";
const CHECK_INS: &str = "check-ins";
const META: &str = "meta";

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

/// An exposure window as kept before `pet` windows carried when they were heard (stores
/// written up to stop 17): it reads as a window without a span, which stands alone.
#[derive(serde::Deserialize)]
struct WindowWithoutSpan {
    day: DayNumber,
    seconds_per_bucket: [u32; BUCKETS],
    infectiousness: Infectiousness,
    report_type: ReportType,
}

/// Decodes a kept window, in either layout.
fn decode_window(bytes: &[u8]) -> Result<ExposureWindow, StoreError> {
    decode(bytes, "window").or_else(|_| {
        let old: WindowWithoutSpan = decode(bytes, "window")?;
        Ok(ExposureWindow {
            day: old.day,
            seconds_per_bucket: old.seconds_per_bucket,
            infectiousness: old.infectiousness,
            report_type: old.report_type,
            heard: None,
        })
    })
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

/// Where a folder-backed store lives: `day-keys`, `pet-ratchet`, `generation` (the number of the current
/// database and the oldest day kept when it was made, `"<n> <day>"`, replaced atomically)
/// and `db-<generation>/` (sled).
#[derive(Debug, Clone)]
struct Folder {
    path: PathBuf,
    generation: u64,
    /// The oldest day kept when the current database was made by a compaction.
    compacted: DayNumber,
}

const GENERATION_FILE: &str = "generation";

impl Folder {
    fn db_path(&self, generation: u64) -> PathBuf {
        self.path.join(format!("db-{generation}"))
    }
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Backend {
        message: e.to_string(),
    }
}

/// `"<generation> <oldest day kept>"` (or, as first written, `"<generation>"`).
fn parse_generation(text: &str) -> Option<(u64, DayNumber)> {
    let mut parts = text.split_ascii_whitespace();
    let generation = parts.next()?.parse().ok()?;
    let day = match parts.next() {
        Some(day) => DayNumber(day.parse().ok()?),
        None => DayNumber(0),
    };
    parts.next().is_none().then_some((generation, day))
}

fn open_sled(path: &Path) -> Result<sled::Db, StoreError> {
    sled::open(path).map_err(|e| match &e {
        // sled takes an exclusive lock on its folder: a second phone object (in this
        // process or another) gets a typed error, not a backend message.
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::InUse
        }
        _ => backend(e),
    })
}

impl SledStore {
    /// Opens (or creates) the store in folder `path`.
    ///
    /// # Errors
    /// [`StoreError::InUse`] when another phone object has it open;
    /// [`StoreError::Backend`] when it cannot be opened; [`StoreError::Corrupt`] for a
    /// damaged key or generation file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        std::fs::create_dir_all(&path).map_err(io_error)?;
        let (generation, compacted) = match std::fs::read_to_string(path.join(GENERATION_FILE)) {
            Ok(text) => parse_generation(&text).ok_or(StoreError::Corrupt {
                what: "generation file",
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, DayNumber(0)),
            Err(e) => return Err(io_error(e)),
        };
        let folder = Folder {
            path,
            generation,
            compacted,
        };
        let db = open_sled(&folder.db_path(generation))?;
        // Holding the current database's lock: any other `db-*` is what an interrupted
        // compaction left (a newer copy never made current, or an older one not removed).
        for entry in std::fs::read_dir(&folder.path).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("db-") && entry.path() != folder.db_path(generation) {
                std::fs::remove_dir_all(entry.path()).map_err(io_error)?;
            }
        }
        let keys = DayKeys::open(&folder.path)?;
        let ratchet = RatchetSlot::open(&folder.path)?;
        Self::from_db(db, keys, ratchet, Some(folder))
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
        Self::from_db(db, DayKeys::in_memory(), RatchetSlot::in_memory(), None)
    }

    fn from_db(
        db: sled::Db,
        keys: DayKeys,
        ratchet: RatchetSlot,
        folder: Option<Folder>,
    ) -> Result<Self, StoreError> {
        let today = keys.days().last().copied().unwrap_or(DayNumber(0));
        Ok(SledStore {
            own_keys: db.open_tree(OWN_KEYS).map_err(backend)?,
            encounters: db.open_tree(ENCOUNTERS).map_err(backend)?,
            windows: db.open_tree(WINDOWS).map_err(backend)?,
            check_ins: db.open_tree(CHECK_INS).map_err(backend)?,
            meta: db.open_tree(META).map_err(backend)?,
            db,
            keys: Arc::new(Mutex::new(keys)),
            ratchet: Arc::new(Mutex::new(ratchet)),
            today,
            folder,
        })
    }

    /// Copies the live records into a fresh database and deletes the old one: sled's log
    /// keeps the space of deleted values, so without this the folder grows for ever. Run
    /// after each (daily) purge, so disk use levels off at the retention period. Crash-safe: the
    /// new database becomes current by an atomic rename of the generation file, and
    /// whichever copy is not current is removed at the next open.
    fn compact(&mut self, oldest_kept: DayNumber) -> Result<(), StoreError> {
        let Some(folder) = self.folder.clone() else {
            return Ok(());
        };
        if oldest_kept <= folder.compacted {
            // Already compacted today (the phone purges at every start).
            return Ok(());
        }
        let (db, next) = Self::open_next(&folder)?;
        for (name, old) in [
            (OWN_KEYS, &self.own_keys),
            (ENCOUNTERS, &self.encounters),
            (WINDOWS, &self.windows),
            (CHECK_INS, &self.check_ins),
            (META, &self.meta),
        ] {
            let tree = db.open_tree(name).map_err(backend)?;
            for entry in old.iter() {
                let (key, value) = entry.map_err(backend)?;
                tree.insert(key, value).map_err(backend)?;
            }
        }
        db.flush().map_err(backend)?;
        self.make_current(db, next, oldest_kept)
    }

    /// An empty database of the next generation of `folder` (one an interrupted run left
    /// there is removed first), and its generation.
    fn open_next(folder: &Folder) -> Result<(sled::Db, u64), StoreError> {
        let next = folder.generation + 1;
        let next_path = folder.db_path(next);
        if next_path.exists() {
            std::fs::remove_dir_all(&next_path).map_err(io_error)?;
        }
        Ok((open_sled(&next_path)?, next))
    }

    /// Makes `db` (generation `next`, of a folder store) the current database: the
    /// generation file is replaced atomically, the trees are opened in `db`, and the old
    /// database's folder is deleted.
    fn make_current(
        &mut self,
        db: sled::Db,
        next: u64,
        compacted: DayNumber,
    ) -> Result<(), StoreError> {
        let Some(folder) = self.folder.clone() else {
            return Ok(());
        };
        let tmp = folder.path.join("generation.tmp");
        {
            let mut file = std::fs::File::create(&tmp).map_err(io_error)?;
            let text = format!("{next} {}", compacted.0);
            std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
        }
        std::fs::rename(&tmp, folder.path.join(GENERATION_FILE)).map_err(io_error)?;
        if let Ok(dir) = std::fs::File::open(&folder.path) {
            // The rename is durable once the folder is synced (best effort on platforms
            // that cannot sync a folder).
            let _ = dir.sync_all();
        }
        let old_path = folder.db_path(folder.generation);
        self.own_keys = db.open_tree(OWN_KEYS).map_err(backend)?;
        self.encounters = db.open_tree(ENCOUNTERS).map_err(backend)?;
        self.windows = db.open_tree(WINDOWS).map_err(backend)?;
        self.check_ins = db.open_tree(CHECK_INS).map_err(backend)?;
        self.meta = db.open_tree(META).map_err(backend)?;
        self.db = db;
        self.folder = Some(Folder {
            path: folder.path,
            generation: next,
            compacted,
        });
        std::fs::remove_dir_all(old_path).map_err(io_error)?;
        Ok(())
    }

    /// Replaces a folder store's database with an empty one and deletes the old one's
    /// files: sled's log keeps cleared values until it rewrites them.
    fn replace_with_empty(&mut self) -> Result<(), StoreError> {
        let Some(folder) = self.folder.clone() else {
            return Ok(());
        };
        let (db, next) = Self::open_next(&folder)?;
        db.flush().map_err(backend)?;
        self.make_current(db, next, folder.compacted)
    }

    /// Every value the trees hold, as kept (sealed), for tests that look for them on disk.
    #[cfg(test)]
    pub(crate) fn raw_values(&self) -> Vec<Vec<u8>> {
        [
            &self.own_keys,
            &self.encounters,
            &self.windows,
            &self.check_ins,
            &self.meta,
        ]
        .into_iter()
        .flat_map(|tree| tree.iter().values())
        .map(|v| v.expect("a readable value").to_vec())
        .collect()
    }

    fn keys(&self) -> MutexGuard<'_, DayKeys> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ratchet(&self) -> MutexGuard<'_, RatchetSlot> {
        self.ratchet.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals `value` for `record` of `tree` under the key of `day`.
    fn seal<T: Serialize>(
        &self,
        day: DayNumber,
        tree: &str,
        record: &[u8],
        value: &T,
    ) -> Result<Vec<u8>, StoreError> {
        let plain = zeroize::Zeroizing::new(encode(value));
        self.keys().seal(day, tree, record, &plain)
    }

    /// Opens and decodes a sealed value.
    fn open_value<T: DeserializeOwned>(
        &self,
        tree: &str,
        record: &[u8],
        sealed: &[u8],
        what: &'static str,
    ) -> Result<T, StoreError> {
        let (_, plain) = self.keys().open_sealed(tree, record, sealed, what)?;
        decode(&plain, what)
    }

    fn open_window(&self, record: &[u8], sealed: &[u8]) -> Result<ExposureWindow, StoreError> {
        let (_, plain) = self.keys().open_sealed(WINDOWS, record, sealed, "window")?;
        decode_window(&plain)
    }

    /// The days that have a key (tests: what is still readable).
    pub fn key_days(&self) -> Vec<DayNumber> {
        self.keys().days()
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
        let key = day_key(day);
        self.own_keys
            .get(key)
            .map_err(backend)?
            .map(|v| self.open_value(OWN_KEYS, &key, &v, "own key"))
            .transpose()
    }

    fn put_own_key(&mut self, day: DayNumber, key: &OwnKey) -> Result<(), StoreError> {
        let record = day_key(day);
        let sealed = self.seal(day, OWN_KEYS, &record, key)?;
        self.own_keys.insert(record, sealed).map_err(backend)?;
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
        // What was heard is in the record key only as a tag keyed by the day's key.
        let mut key = [0u8; 28];
        key[..4].copy_from_slice(&day_key(record.day()));
        key[4..12].copy_from_slice(&record.first_seen.0.to_be_bytes());
        key[12..].copy_from_slice(&self.keys().tag(record.day(), &record.key().0)?);
        let sealed = self.seal(record.day(), ENCOUNTERS, &key, record)?;
        self.encounters.insert(key, sealed).map_err(backend)?;
        Ok(())
    }

    fn for_each_encounter(
        &self,
        visit: &mut dyn FnMut(&EncounterRecord),
    ) -> Result<(), StoreError> {
        for entry in self.encounters.iter() {
            let (key, value) = entry.map_err(backend)?;
            let record: EncounterRecord = self.open_value(ENCOUNTERS, &key, &value, "encounter")?;
            visit(&record);
        }
        Ok(())
    }

    fn put_window(&mut self, id: &WindowId, window: &ExposureWindow) -> Result<bool, StoreError> {
        let mut key = [0u8; 20];
        key[..4].copy_from_slice(&day_key(id.day));
        key[4..].copy_from_slice(&self.keys().tag(id.day, &id.id)?);
        if let Some(old) = self.windows.get(key).map_err(backend)? {
            let kept = self.open_window(&key, &old)?;
            if kept == *window {
                return Ok(false);
            }
        }
        let sealed = self.seal(id.day, WINDOWS, &key, window)?;
        self.windows.insert(key, sealed).map_err(backend)?;
        Ok(true)
    }

    fn windows_of(&self, day: DayNumber) -> Result<Vec<ExposureWindow>, StoreError> {
        self.windows
            .scan_prefix(day_key(day))
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                self.open_window(&key, &value)
            })
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

    fn put_check_in(&mut self, record: &CheckInRecord) -> Result<(), StoreError> {
        let mut key = [0u8; 20];
        key[..4].copy_from_slice(&day_key(record.day));
        key[4..].copy_from_slice(&self.keys().tag(record.day, &record.bytes)?);
        let sealed = self.seal(record.day, CHECK_INS, &key, &record.bytes)?;
        self.check_ins.insert(key, sealed).map_err(backend)?;
        Ok(())
    }

    fn check_ins(&self) -> Result<Vec<CheckInRecord>, StoreError> {
        self.check_ins
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                Ok(CheckInRecord {
                    day: day_of(&key)?,
                    bytes: self.open_value(CHECK_INS, &key, &value, "check-in")?,
                })
            })
            .collect()
    }

    fn set_meta(&mut self, key: MetaKey, value: &[u8]) -> Result<(), StoreError> {
        if key == MetaKey::PetRatchet {
            return self.ratchet().set(value);
        }
        let name = key.name().as_bytes();
        let sealed = self.keys().seal(self.today, META, name, value)?;
        self.meta.insert(name, sealed).map_err(backend)?;
        Ok(())
    }

    fn meta(&self, key: MetaKey) -> Result<Option<Vec<u8>>, StoreError> {
        if key == MetaKey::PetRatchet {
            return self.ratchet().get();
        }
        let name = key.name().as_bytes();
        let Some(sealed) = self.meta.get(name).map_err(backend)? else {
            return Ok(None);
        };
        let (_, plain) = self.keys().open_sealed(META, name, &sealed, "meta")?;
        Ok(Some(plain.to_vec()))
    }

    fn remove_meta(&mut self, key: MetaKey) -> Result<(), StoreError> {
        if key == MetaKey::PetRatchet {
            return self.ratchet().clear();
        }
        self.meta.remove(key.name()).map_err(backend)?;
        Ok(())
    }

    fn erase_all(&mut self) -> Result<(), StoreError> {
        for tree in [
            &self.own_keys,
            &self.encounters,
            &self.windows,
            &self.check_ins,
            &self.meta,
        ] {
            tree.clear().map_err(backend)?;
        }
        self.db.flush().map_err(backend)?;
        self.ratchet().clear()?;
        self.keys().forget_all()?;
        self.replace_with_empty()
    }

    fn purge_before(&mut self, oldest_kept: DayNumber) -> Result<PurgeCounts, StoreError> {
        let counts = PurgeCounts {
            own_keys: Self::purge_tree(&self.own_keys, oldest_kept)?,
            encounters: Self::purge_tree(&self.encounters, oldest_kept)?,
            windows: Self::purge_tree(&self.windows, oldest_kept)?,
            check_ins: Self::purge_tree(&self.check_ins, oldest_kept)?,
        };
        // Meta records sealed under a day about to be forgotten are sealed again under
        // the current day (they are current state, not history).
        let current = self.today.max(oldest_kept);
        for entry in self.meta.iter() {
            let (name, sealed) = entry.map_err(backend)?;
            let mut keys = self.keys();
            let (day, plain) = keys.open_sealed(META, &name, &sealed, "meta")?;
            if day < oldest_kept {
                let resealed = keys.seal(current, META, &name, &plain)?;
                drop(keys);
                self.meta.insert(name, resealed).map_err(backend)?;
            }
        }
        // The new seals are durable before the old keys are destroyed.
        self.db.flush().map_err(backend)?;
        self.keys().forget_before(oldest_kept)?;
        // Once a day: the day's deleted and overwritten values go too.
        self.compact(oldest_kept)?;
        Ok(counts)
    }

    fn set_today(&mut self, today: DayNumber) {
        self.today = today;
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_kept_before_spans_reads_as_one_without_a_span() {
        #[derive(Serialize)]
        struct Old {
            day: DayNumber,
            seconds_per_bucket: [u32; BUCKETS],
            infectiousness: Infectiousness,
            report_type: ReportType,
        }
        let old = encode(&Old {
            day: DayNumber(20_000),
            seconds_per_bucket: [0, 600, 0, 0],
            infectiousness: Infectiousness::Standard,
            report_type: ReportType::ConfirmedTest,
        });
        let window = decode_window(&old).expect("the old layout decodes");
        assert_eq!(window.seconds_per_bucket, [0, 600, 0, 0]);
        assert_eq!(window.heard, None);
        assert!(matches!(
            decode_window(&old[..old.len() - 1]),
            Err(StoreError::Corrupt { what: "window" })
        ));
    }
}
