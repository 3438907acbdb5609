//! Sightings → open encounters → stored encounter records.
//!
//! # Contact time from the phone's own scan cadence
//! Sightings that arrive within `scan_window_seconds` of the first one of a burst form one
//! *scan instance* of this phone (as GAEN's scan instances). Every peer heard in a scan
//! instance is credited the time since the phone's previous scan instance, at most the
//! app's declared `scan_period_seconds`, once per scan instance. So a peer heard in every
//! scan of a contact is credited the contact's duration (to within one scan period),
//! whatever the period, and a peer whose key rotated is credited from its first sighting
//! under the new key without linking the two keys: the credit comes from this phone's
//! cadence, not from the peer's history. Scans that heard no one are not seen by the core;
//! the cap is what keeps the first scan after a silence from claiming the whole silence.
//!
//! # `pet` tokens when first heard
//! A `pet` encounter's tokens need our private key of the interval the peer was heard in,
//! and the key ratchet (`pet_keys.rs`) erases that key when the next interval begins. So
//! the tokens are computed when a peer is first heard in an interval, with that interval's
//! key, and the open encounter keeps the tokens (the closed one too): no key of a past
//! interval is ever needed again.
//!
//! # Surviving a kill
//! The open encounters and the scan clock are checkpointed to the store (meta
//! [`MetaKey::OpenEncounters2`]) at most every `checkpoint_seconds` while they change, and
//! whenever encounters close; a phone made again on the store resumes them. A kill loses
//! at most the contact time since the last checkpoint. A checkpoint that phones before the
//! ratchet kept ([`MetaKey::OpenEncounters`], without tokens) is read once: its `pet`
//! encounters get their tokens from the daily secret those phones kept, where it still is.

use ephemera_proto::pet::{
    EncounterToken, EphemeralPublicKey, SliceAssembler, encounter_tokens, slice_tag,
};
use ephemera_proto::scheme::{DailyKey, HeardPayload};
use ephemera_proto::{IntervalNumber, SchemeKind, UnixTime};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Phone;
use crate::error::{ClientError, StoreError};
use crate::signal::{LevelKind, Signal, SignalHistogram};
use crate::store::{EncounterRecord, Evidence, MetaKey, Store};

/// One advertisement heard: its service-data payload and its signal.
///
/// # Privacy
/// Nothing about place: the app passes only bytes and signal strength.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sighting<'a> {
    /// The payload: 20 bytes (`gaen`), 32 bytes (`pet` key) or 16 bytes (`pet` slice).
    pub payload: &'a [u8],
    /// Signal strength.
    pub signal: Signal,
}

/// Who was heard.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Peer {
    Gaen {
        rpi: [u8; 16],
        aem: [u8; 4],
    },
    Pet {
        key: EphemeralPublicKey,
        tag: [u8; 4],
    },
}

/// A `pet` encounter's two tokens (`Debug` shows none).
#[derive(Copy, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PetTokens {
    own: EncounterToken,
    peer: EncounterToken,
}

impl std::fmt::Debug for PetTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PetTokens(<redacted>)")
    }
}

/// A peer being heard now.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct OpenEncounter {
    peer: Peer,
    /// The start of the last scan instance that credited this encounter.
    credited_scan: UnixTime,
    /// `pet`: the interval of our key while we heard it; `gaen`: first interval heard.
    interval: IntervalNumber,
    first_seen: UnixTime,
    pub(super) last_seen: UnixTime,
    level_kind: LevelKind,
    signal: SignalHistogram,
    /// `pet`: the tokens, computed when first heard (see the module's notes); `gaen`: none.
    tokens: Option<PetTokens>,
}

/// An open encounter as phones before the `pet` ratchet checkpointed it (no tokens).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct OpenEncounterWithoutTokens {
    peer: Peer,
    credited_scan: UnixTime,
    interval: IntervalNumber,
    first_seen: UnixTime,
    last_seen: UnixTime,
    level_kind: LevelKind,
    signal: SignalHistogram,
}

/// This phone's own scan instances.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ScanClock {
    /// The first sighting of the current scan instance.
    current: Option<UnixTime>,
    /// The first sighting of the scan instance before it.
    previous: Option<UnixTime>,
}

impl ScanClock {
    /// Files a sighting at `now` under a scan instance: gives the instance's start and the
    /// seconds it credits (time since the previous instance, at most `period`).
    fn observe(&mut self, now: UnixTime, window: u32, period: u32) -> (UnixTime, u32) {
        let start = match self.current {
            Some(current) if now.0 < current.0 + u64::from(window) && now >= current => current,
            _ => {
                self.previous = self.current;
                self.current = Some(now);
                now
            }
        };
        let credit = self.previous.map_or(period, |p| {
            start.0.saturating_sub(p.0).min(u64::from(period)) as u32
        });
        (start, credit)
    }
}

/// The checkpoint of open encounters (postcard).
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    open: Vec<OpenEncounter>,
    scan: ScanClock,
}

/// The checkpoint as phones before the `pet` ratchet kept it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct CheckpointWithoutTokens {
    open: Vec<OpenEncounterWithoutTokens>,
    scan: ScanClock,
}

/// The open encounters and scan clock checkpointed in `store` (none if never written), and
/// whether they came from a checkpoint without tokens (to be removed at the next write).
pub(super) fn load_checkpoint(
    store: &impl Store,
) -> Result<(Vec<OpenEncounter>, ScanClock, bool), ClientError> {
    let corrupt = StoreError::Corrupt {
        what: "open encounters",
    };
    if let Some(bytes) = store.meta(MetaKey::OpenEncounters2)? {
        let bytes = Zeroizing::new(bytes);
        let checkpoint: Checkpoint = postcard::from_bytes(&bytes).map_err(|_| corrupt)?;
        return Ok((checkpoint.open, checkpoint.scan, false));
    }
    let Some(bytes) = store.meta(MetaKey::OpenEncounters)? else {
        return Ok((Vec::new(), ScanClock::default(), false));
    };
    let bytes = Zeroizing::new(bytes);
    let old: CheckpointWithoutTokens = postcard::from_bytes(&bytes).map_err(|_| corrupt)?;
    let mut open = Vec::with_capacity(old.open.len());
    for o in old.open {
        let tokens = match o.peer {
            Peer::Gaen { .. } => None,
            Peer::Pet { key, .. } => {
                // Phones before the ratchet kept the day's secret: the tokens come from it,
                // or the encounter is dropped.
                let Some(DailyKey::Pet(secret)) =
                    store.own_key(o.interval.day())?.map(|k| k.daily_key())
                else {
                    continue;
                };
                match encounter_tokens(&secret.ephemeral_key_pair(o.interval), &key) {
                    Ok(t) => Some(PetTokens {
                        own: t.own,
                        peer: t.peer,
                    }),
                    Err(_) => continue,
                }
            }
        };
        open.push(OpenEncounter {
            peer: o.peer,
            credited_scan: o.credited_scan,
            interval: o.interval,
            first_seen: o.first_seen,
            last_seen: o.last_seen,
            level_kind: o.level_kind,
            signal: o.signal,
            tokens,
        });
    }
    Ok((open, old.scan, true))
}

impl<S: Store> Phone<S> {
    /// Records a payload heard at `now`.
    ///
    /// Sightings of one peer (`gaen`: one RPI; `pet`: one peer key while we broadcast one
    /// key) are aggregated into an encounter; each sighting credits the time since the
    /// previous one, up to `max_gap_seconds`, to its signal level. A `pet` slice is matched
    /// to a peer already heard by its tag, or fed to the reassembler.
    ///
    /// # Errors
    /// [`ClientError::ForeignPayload`] for a payload of another scheme or length;
    /// [`ClientError::Store`] when closing encounters fails.
    pub fn handle_sighting(
        &mut self,
        now: UnixTime,
        sighting: &Sighting<'_>,
    ) -> Result<(), ClientError> {
        let now = self.tick(now)?;
        if self.paused {
            return Ok(());
        }
        let scheme = self.config.scheme;
        let parsed = HeardPayload::parse(scheme, sighting.payload)
            .map_err(|_| ClientError::ForeignPayload)?;
        let peer = match parsed {
            HeardPayload::Gaen { rpi, aem } => Peer::Gaen {
                rpi: rpi.0,
                aem: aem.0,
            },
            HeardPayload::PetKey(key) => Peer::Pet {
                key,
                tag: slice_tag(&key),
            },
            HeardPayload::PetSlice(slice) => {
                let known = self.open.iter().find_map(|o| match o.peer {
                    Peer::Pet { key, tag } if tag == slice.tag() => Some((key, tag)),
                    _ => None,
                });
                match known {
                    Some((key, tag)) => Peer::Pet { key, tag },
                    None => {
                        let capacity = self.config.encounter.slice_groups;
                        let assembler = self.assembler.get_or_insert_with(|| {
                            SliceAssembler::new(capacity, SliceAssembler::DEFAULT_MAX_AGE_SECONDS)
                        });
                        match assembler.handle_slice(now, slice) {
                            Some(key) => Peer::Pet {
                                key,
                                tag: slice.tag(),
                            },
                            None => return Ok(()),
                        }
                    }
                }
            }
        };
        let interval = now.interval();
        if let Peer::Pet { key, .. } = &peer
            && self.is_own_current_key(interval, key)
        {
            // Our own broadcast echoed back: no encounter.
            return Ok(());
        }
        let (level_kind, level) = match (scheme, sighting.signal) {
            // `pet` payloads carry no transmit power: use the advertised one or the assumed.
            (SchemeKind::Pet, Signal::Rssi { rssi, tx_power }) => {
                let tx = tx_power.unwrap_or(self.config.encounter.assumed_tx_power);
                let attenuation = (i16::from(tx) - i16::from(rssi)).clamp(0, 255) as u8;
                (LevelKind::Attenuation, attenuation)
            }
            // `gaen` takes the transmit power from the sender's metadata once matched.
            (_, signal) => signal.level(),
        };
        self.record(now, peer, interval, level_kind, level)?;
        self.checkpoint_dirty = true;
        self.checkpoint_if_due(now)
    }

    /// Writes the open encounters checkpoint if it changed and `checkpoint_seconds` have
    /// passed since the last one.
    pub(super) fn checkpoint_if_due(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let every = u64::from(self.config.encounter.checkpoint_seconds);
        if self.checkpoint_dirty
            && self
                .last_checkpoint
                .is_none_or(|last| now.0 >= last.0 + every || now < last)
        {
            self.write_checkpoint()?;
            self.store.flush()?;
            self.last_checkpoint = Some(now);
        }
        Ok(())
    }

    /// Keeps the open encounters and scan clock in the store (not flushed).
    pub(super) fn write_checkpoint(&mut self) -> Result<(), ClientError> {
        let checkpoint = Checkpoint {
            open: self.open.clone(),
            scan: self.scan,
        };
        let bytes =
            Zeroizing::new(postcard::to_allocvec(&checkpoint).expect("postcard into a Vec"));
        self.store.set_meta(MetaKey::OpenEncounters2, &bytes)?;
        if std::mem::take(&mut self.legacy_checkpoint) {
            self.store.remove_meta(MetaKey::OpenEncounters)?;
        }
        self.checkpoint_dirty = false;
        self.checkpoints_written += 1;
        self.checkpoint_bytes += bytes.len() as u64;
        Ok(())
    }

    fn is_own_current_key(&mut self, interval: IntervalNumber, key: &EphemeralPublicKey) -> bool {
        match self.current.as_ref() {
            Some(c) if c.interval == interval => {
                matches!(&c.broadcast, ephemera_proto::scheme::Broadcast::Pet { key: own, .. } if own == key)
            }
            _ => false,
        }
    }

    fn record(
        &mut self,
        now: UnixTime,
        peer: Peer,
        interval: IntervalNumber,
        level_kind: LevelKind,
        level: u8,
    ) -> Result<(), ClientError> {
        let encounter = &self.config.encounter;
        let (scan, credit) = self.scan.observe(
            now,
            encounter.scan_window_seconds,
            encounter.scan_period_seconds,
        );
        let found = self.open.iter_mut().find(|o| {
            o.peer == peer && (matches!(peer, Peer::Gaen { .. }) || o.interval == interval)
        });
        if let Some(open) = found {
            if open.credited_scan != scan {
                open.credited_scan = scan;
                open.signal.add(level, credit);
            }
            open.last_seen = open.last_seen.max(now);
            return Ok(());
        }
        if self.open.len() >= self.config.encounter.max_open_encounters
            && let Some(stalest) = self
                .open
                .iter()
                .enumerate()
                .min_by_key(|(_, o)| o.last_seen)
                .map(|(i, _)| i)
        {
            let open = self.open.swap_remove(stalest);
            self.close(open)?;
            self.write_checkpoint()?;
            self.store.flush()?;
        }
        let tokens = match peer {
            Peer::Gaen { .. } => None,
            // Our key of this interval exists now, and not after it: the tokens now.
            Peer::Pet { key, .. } => match encounter_tokens(self.pet_pair(interval)?, &key) {
                Ok(t) => Some(PetTokens {
                    own: t.own,
                    peer: t.peer,
                }),
                // Our own key echoed, a low-order point or a non-canonical spelling of a
                // key: nothing to keep.
                Err(_) => return Ok(()),
            },
        };
        let mut signal = SignalHistogram::default();
        signal.add(level, credit);
        self.open.push(OpenEncounter {
            peer,
            credited_scan: scan,
            interval,
            first_seen: now,
            last_seen: now,
            level_kind,
            signal,
            tokens,
        });
        Ok(())
    }

    /// Closes encounters not heard for more than `max_gap_seconds`.
    pub(super) fn close_stale(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let gap = u64::from(self.config.encounter.max_gap_seconds);
        if !self.open.iter().any(|o| now.0 > o.last_seen.0 + gap) {
            return Ok(());
        }
        let mut i = 0;
        while i < self.open.len() {
            if now.0 > self.open[i].last_seen.0 + gap {
                let open = self.open.swap_remove(i);
                self.close(open)?;
            } else {
                i += 1;
            }
        }
        // The closed encounters leave the checkpoint in the same flush, so a restart never
        // counts them twice.
        self.write_checkpoint()?;
        self.store.flush()?;
        Ok(())
    }

    /// Closes every open encounter now (e.g. before the app is suspended for long).
    ///
    /// # Errors
    /// [`ClientError::Store`] when the store fails.
    pub fn close_all_encounters(&mut self) -> Result<(), ClientError> {
        for open in std::mem::take(&mut self.open) {
            self.close(open)?;
        }
        self.write_checkpoint()?;
        self.store.flush()?;
        Ok(())
    }

    /// Turns an open encounter into a stored record, or drops it: `gaen` keeps any peer
    /// heard for some time; `pet` keeps one heard at least `min_pet_encounter_seconds`, with
    /// the tokens computed when it was first heard, never a private key.
    fn close(&mut self, open: OpenEncounter) -> Result<(), ClientError> {
        let total = open.signal.total_seconds();
        if total == 0 {
            return Ok(());
        }
        let evidence = match open.peer {
            Peer::Gaen { rpi, aem } => Evidence::Gaen { rpi, aem },
            Peer::Pet { .. } => {
                let Some(tokens) = open.tokens else {
                    return Ok(());
                };
                if total < self.config.encounter.min_pet_encounter_seconds {
                    return Ok(());
                }
                Evidence::Pet {
                    own: tokens.own,
                    peer: tokens.peer,
                }
            }
        };
        self.store.put_encounter(&EncounterRecord {
            interval: open.interval,
            first_seen: open.first_seen,
            last_seen: open.last_seen,
            level_kind: open.level_kind,
            signal: open.signal,
            evidence,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::pet::DailySecret;
    use ephemera_proto::scheme::DailyKey;

    use super::*;
    use crate::store::{Evidence, MemoryStore, OwnKey};
    use crate::{ClientConfig, Phone};

    /// A phone updated while hearing someone: its checkpoint without tokens and its daily
    /// secret, as phones before the ratchet kept them. The `pet` encounter resumes with the
    /// tokens of that secret's key, the old checkpoint goes at the next write, and the
    /// secret at the phone's first purge.
    #[test]
    fn a_checkpoint_from_before_the_ratchet_resumes_with_tokens_of_the_kept_secret() {
        let interval = UnixTime(1_700_000_000).interval().plus(200);
        let now = interval.start().plus_seconds(300);
        let secret = DailySecret::from_bytes([0x42; 32]);
        let key = DailySecret::from_bytes([0x24; 32])
            .ephemeral_key_pair(interval)
            .public();
        let expected = encounter_tokens(&secret.ephemeral_key_pair(interval), &key).unwrap();
        let mut signal = SignalHistogram::default();
        signal.add(55, 280);
        let old = CheckpointWithoutTokens {
            open: vec![OpenEncounterWithoutTokens {
                peer: Peer::Pet {
                    key,
                    tag: slice_tag(&key),
                },
                credited_scan: now,
                interval,
                first_seen: interval.start(),
                last_seen: now,
                level_kind: LevelKind::Attenuation,
                signal,
            }],
            scan: ScanClock {
                current: Some(now),
                previous: Some(now.minus_seconds(60)),
            },
        };
        let mut store = MemoryStore::new();
        let own = OwnKey::from_daily_key(&DailyKey::Pet(secret));
        store.put_own_key(interval.day(), &own).unwrap();
        let bytes = postcard::to_allocvec(&old).unwrap();
        store.set_meta(MetaKey::OpenEncounters, &bytes).unwrap();
        let config = ClientConfig::new(SchemeKind::Pet).with_decoy_rate(0.0);
        let mut phone = Phone::new(config, store, [9; 32]).unwrap();
        assert_eq!(phone.open_encounters(), 1);
        phone.handle_timeout(now.plus_seconds(1)).unwrap();
        assert!(phone.store().own_key_days().unwrap().is_empty(), "purged");
        phone.close_all_encounters().unwrap();
        assert_eq!(phone.store().meta(MetaKey::OpenEncounters).unwrap(), None);
        let mut kept = Vec::new();
        phone
            .store()
            .for_each_encounter(&mut |r| kept.push(r.evidence.clone()))
            .unwrap();
        let want = Evidence::Pet {
            own: expected.own,
            peer: expected.peer,
        };
        assert_eq!(kept, vec![want]);
    }
}
