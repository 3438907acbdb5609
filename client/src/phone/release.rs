//! `gaen` same-day key release, as deployed GAEN does it: a report includes the key still in
//! use today with its rolling period cut to the intervals elapsed so far, and the phone rolls
//! to a fresh key at once, so the reported key never covers an identifier broadcast after
//! the report. The node holds every key until its (cut) rolling period has ended plus the
//! 2-hour tolerance (`proto::upload::key_publishable_at`).
//!
//! A day can so have several keys: the released ones, kept in the store (meta
//! [`MetaKey::ReleasedKeys`]) so a later report includes them again, and the current one
//! (the day's own key), which starts in the interval of the last release (the
//! fresh key is broadcast from then on, so both keys cover that interval).

use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::scheme::DailyKey;
use ephemera_proto::{DayNumber, INTERVALS_PER_DAY, IntervalNumber, ReportType, UnixTime};
use zeroize::Zeroizing;

use super::Phone;
use crate::error::{ClientError, StoreError};
use crate::store::{MetaKey, OwnKey, Store};

/// Bytes of one released key in the meta record.
const RECORD_LEN: usize = 4 + 1 + 16;

/// A key released before its day ended.
#[derive(Clone)]
pub(super) struct Released {
    start: IntervalNumber,
    period: u8,
    key: TemporaryExposureKey,
}

impl Released {
    fn end(&self) -> IntervalNumber {
        self.start.plus(u32::from(self.period))
    }

    fn diagnosis_key(&self) -> DiagnosisKey {
        diagnosis_key(self.key.clone(), self.start, self.period)
    }
}

/// A diagnosis key as the phone reports it (the node applies the certificate's test type
/// and onset).
fn diagnosis_key(key: TemporaryExposureKey, start: IntervalNumber, period: u8) -> DiagnosisKey {
    DiagnosisKey {
        key,
        rolling_start: start,
        rolling_period: period,
        report_type: ReportType::ConfirmedTest,
        days_since_onset: None,
    }
}

/// The released keys kept in `store`, oldest first.
fn load(store: &impl Store) -> Result<Vec<Released>, ClientError> {
    let Some(bytes) = store.meta(MetaKey::ReleasedKeys)? else {
        return Ok(Vec::new());
    };
    let bytes = Zeroizing::new(bytes);
    if bytes.len() % RECORD_LEN != 0 {
        return Err(StoreError::Corrupt {
            what: "released keys",
        }
        .into());
    }
    Ok(bytes
        .chunks_exact(RECORD_LEN)
        .map(|r| {
            let mut key = [0u8; 16];
            key.copy_from_slice(&r[5..]);
            Released {
                start: IntervalNumber(u32::from_le_bytes([r[0], r[1], r[2], r[3]])),
                period: r[4],
                key: TemporaryExposureKey(key),
            }
        })
        .collect())
}

/// Keeps `released` in `store` (not yet flushed).
fn save(store: &mut impl Store, released: &[Released]) -> Result<(), ClientError> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(released.len() * RECORD_LEN));
    for r in released {
        bytes.extend_from_slice(&r.start.0.to_le_bytes());
        bytes.push(r.period);
        bytes.extend_from_slice(r.key.as_bytes());
    }
    store.set_meta(MetaKey::ReleasedKeys, &bytes)?;
    Ok(())
}

/// Where the current own key of `day` starts: in the interval the last key of `day` was
/// released (the fresh key is broadcast from then on, so both cover that interval), or at
/// the start of the day.
fn current_start(released: &[Released], day: DayNumber) -> IntervalNumber {
    released
        .iter()
        .filter(|r| r.start.day() == day)
        .map(|r| IntervalNumber(r.end().0 - 1))
        .max()
        .unwrap_or(day.first_interval())
}

impl<S: Store> Phone<S> {
    /// The `gaen` keys of a report made at `now` for the days from `first_day`: every key
    /// released earlier, every past day's key, and today's key cut to the intervals elapsed
    /// so far (including the current one). Keys not yet publishable are included: the node
    /// holds each until [`key_publishable_at`](ephemera_proto::upload::key_publishable_at).
    pub(super) fn gaen_report_keys(
        &mut self,
        now: UnixTime,
        first_day: DayNumber,
    ) -> Result<Vec<DiagnosisKey>, ClientError> {
        let released = load(&self.store)?;
        let today = now.day();
        let mut keys: Vec<DiagnosisKey> = released
            .iter()
            .filter(|r| r.start.day() >= first_day)
            .map(Released::diagnosis_key)
            .collect();
        for day in self.store.own_key_days()? {
            if day < first_day || day > today {
                continue;
            }
            let Some(stored) = self.store.own_key(day)? else {
                continue;
            };
            let DailyKey::Gaen(tek) = stored.daily_key() else {
                continue;
            };
            let start = current_start(&released, day);
            let end = if day == today {
                now.interval().plus(1)
            } else {
                day.first_interval().plus(INTERVALS_PER_DAY)
            };
            // 1..=144: `start` is at most the current interval.
            let Some(period) = end.0.checked_sub(start.0).filter(|p| *p > 0) else {
                continue;
            };
            keys.push(diagnosis_key(
                tek,
                start,
                period.min(INTERVALS_PER_DAY) as u8,
            ));
        }
        Ok(keys)
    }

    /// After a report that included today's key (cut at `now`, the current interval
    /// included): remembers it as released and rolls to a fresh key for the rest of today,
    /// kept durably before it is broadcast, whose rolling period starts in the current
    /// interval. The new key's broadcast is made here, so the next
    /// [`advertisement`](Phone::advertisement) gives it with no more work than any other:
    /// made lazily there, it was the first advertisement after a report that took longer
    /// (issue 30: the timer step that sends the upload read 0.106 ms against a decoy's
    /// 0.071, AUC 0.56 on the gap to the upload in the traffic test).
    pub(super) fn release_todays_key(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let today = now.day();
        let Some(DailyKey::Gaen(tek)) = self.store.own_key(today)?.map(|k| k.daily_key()) else {
            return Ok(());
        };
        let mut released = load(&self.store)?;
        let start = current_start(&released, today);
        let Some(period) = now
            .interval()
            .plus(1)
            .0
            .checked_sub(start.0)
            .filter(|p| *p > 0)
        else {
            return Ok(());
        };
        released.push(Released {
            start,
            period: period.min(INTERVALS_PER_DAY) as u8,
            key: tek,
        });
        save(&mut self.store, &released)?;
        let fresh = DailyKey::generate(self.config.scheme, &mut self.rng);
        self.store
            .put_own_key(today, &OwnKey::from_daily_key(&fresh))?;
        self.store.flush()?;
        self.keys.retain(|(d, _)| *d != today);
        self.keys.push((today, fresh));
        self.start_broadcast(now.interval())
    }

    /// Retention for released keys: forgets those of days before `oldest_kept`.
    pub(super) fn purge_released(&mut self, oldest_kept: DayNumber) -> Result<(), ClientError> {
        let released = load(&self.store)?;
        if released.iter().all(|r| r.start.day() >= oldest_kept) {
            return Ok(());
        }
        let kept: Vec<Released> = released
            .into_iter()
            .filter(|r| r.start.day() >= oldest_kept)
            .collect();
        save(&mut self.store, &kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released(start: u32, period: u8, byte: u8) -> Released {
        Released {
            start: IntervalNumber(start),
            period,
            key: TemporaryExposureKey([byte; 16]),
        }
    }

    #[test]
    fn records_round_trip_through_the_store() {
        let mut store = crate::store::MemoryStore::new();
        assert!(load(&store).unwrap().is_empty());
        let day = DayNumber(20_000).first_interval().0;
        save(
            &mut store,
            // Released in interval 39 of the day, then again two intervals later.
            &[released(day, 40, 1), released(day + 39, 3, 2)],
        )
        .unwrap();
        let back = load(&store).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].start, IntervalNumber(day + 39));
        assert_eq!(back[1].period, 3);
        assert_eq!(back[1].key.as_bytes(), &[2; 16]);
        // The fresh key started in the interval of the last release.
        assert_eq!(
            current_start(&back, DayNumber(20_000)),
            IntervalNumber(day + 41)
        );
        assert_eq!(
            current_start(&back, DayNumber(20_001)),
            DayNumber(20_001).first_interval()
        );
    }

    #[test]
    fn a_truncated_record_is_a_store_error() {
        let mut store = crate::store::MemoryStore::new();
        store.set_meta(MetaKey::ReleasedKeys, &[0; 20]).unwrap();
        assert!(matches!(
            load(&store),
            Err(ClientError::Store(StoreError::Corrupt { .. }))
        ));
    }
}
