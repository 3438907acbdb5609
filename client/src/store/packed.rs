//! Encounter records packed into bytes and filed by day, for [`MemoryStore`](super::MemoryStore).
//!
//! A phone keeps about 30 encounters a day for the retention period; a simulator keeps them
//! for every phone of a city. As a `Vec<EncounterRecord>` each costs 96 bytes plus the
//! vector's doubling slack (up to as much again). Packed, a `pet` encounter costs about 46
//! bytes: the two 16-byte tokens (or a GAEN RPI and metadata), the interval, the times as
//! small offsets and only the signal levels actually heard. Each day's records share one
//! buffer, which retention drops whole and which is trimmed once the next day begins. The
//! packing is lossless: a record reads back equal to what was put.
//!
//! Layout of one record: a flags byte (bit 0: levels are negated RSSI; bit 1: `pet`
//! evidence), the interval (`u32` LE), the first sighting's offset from the interval's start
//! and the last's from the first (zigzag LEB128 varints, wrapping, so any time packs), a
//! 3-byte bitmap of the signal bins heard, each such bin's seconds (LEB128), then the
//! evidence (RPI ‖ AEM, 20 bytes; or own ‖ peer token, 32 bytes).

use std::fmt;

use ephemera_proto::pet::EncounterToken;
use ephemera_proto::{DayNumber, IntervalNumber, UnixTime};

use super::records::{EncounterRecord, Evidence};
use crate::signal::{LevelKind, SIGNAL_BINS, SignalHistogram};

const NEGATED_RSSI: u8 = 1;
const PET: u8 = 2;
const BITMAP_BYTES: usize = 3;
const _: () = assert!(SIGNAL_BINS <= BITMAP_BYTES * 8);

/// Encounter records, packed, by day (oldest first).
#[derive(Default)]
pub(super) struct PackedEncounters {
    days: Vec<DayChunk>,
    count: usize,
}

/// One day's records.
struct DayChunk {
    day: DayNumber,
    count: usize,
    bytes: Vec<u8>,
}

impl fmt::Debug for PackedEncounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackedEncounters")
            .field("days", &self.days.len())
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl PackedEncounters {
    /// Records kept.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Keeps `record`, filed under its day.
    pub(super) fn push(&mut self, record: &EncounterRecord) {
        let day = record.day();
        let at = match self.days.binary_search_by_key(&day, |c| c.day) {
            Ok(at) => at,
            Err(at) => {
                // A new latest day: the one before it is (nearly always) complete.
                if at == self.days.len()
                    && let Some(last) = self.days.last_mut()
                {
                    last.bytes.shrink_to_fit();
                }
                self.days.insert(
                    at,
                    DayChunk {
                        day,
                        count: 0,
                        bytes: Vec::new(),
                    },
                );
                at
            }
        };
        let chunk = &mut self.days[at];
        pack(record, &mut chunk.bytes);
        chunk.count += 1;
        self.count += 1;
    }

    /// Visits every record, oldest day first, in the order they were put within a day.
    pub(super) fn for_each(&self, visit: &mut dyn FnMut(&EncounterRecord)) {
        for chunk in &self.days {
            let mut rest = chunk.bytes.as_slice();
            while !rest.is_empty() {
                visit(&unpack(&mut rest));
            }
        }
    }

    /// Drops the records of days before `oldest_kept`; returns how many.
    pub(super) fn purge_before(&mut self, oldest_kept: DayNumber) -> usize {
        let cut = self.days.partition_point(|c| c.day < oldest_kept);
        let removed: usize = self.days.drain(..cut).map(|c| c.count).sum();
        self.count -= removed;
        removed
    }
}

fn pack(record: &EncounterRecord, out: &mut Vec<u8>) {
    let mut flags = 0;
    if record.level_kind == LevelKind::NegatedRssi {
        flags |= NEGATED_RSSI;
    }
    if matches!(record.evidence, Evidence::Pet { .. }) {
        flags |= PET;
    }
    out.push(flags);
    out.extend_from_slice(&record.interval.0.to_le_bytes());
    let start = record.interval.start().0;
    put_varint(out, zigzag(record.first_seen.0.wrapping_sub(start)));
    put_varint(
        out,
        zigzag(record.last_seen.0.wrapping_sub(record.first_seen.0)),
    );
    let bins = record.signal.bins();
    let heard = bins
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != 0)
        .fold(0u32, |map, (i, _)| map | 1 << i);
    out.extend_from_slice(&heard.to_le_bytes()[..BITMAP_BYTES]);
    for seconds in bins.iter().filter(|s| **s != 0) {
        put_varint(out, u64::from(*seconds));
    }
    match &record.evidence {
        Evidence::Gaen { rpi, aem } => {
            out.extend_from_slice(rpi);
            out.extend_from_slice(aem);
        }
        Evidence::Pet { own, peer } => {
            out.extend_from_slice(&own.0);
            out.extend_from_slice(&peer.0);
        }
    }
}

/// Reads one record [`pack`] wrote at the start of `bytes` and moves past it. Only ever
/// given this module's own output, never outside bytes.
fn unpack(bytes: &mut &[u8]) -> EncounterRecord {
    let flags = take::<1>(bytes)[0];
    let interval = IntervalNumber(u32::from_le_bytes(take::<4>(bytes)));
    let first_seen = interval
        .start()
        .0
        .wrapping_add(unzigzag(take_varint(bytes)));
    let last_seen = first_seen.wrapping_add(unzigzag(take_varint(bytes)));
    let mut map = [0u8; 4];
    map[..BITMAP_BYTES].copy_from_slice(&take::<BITMAP_BYTES>(bytes));
    let heard = u32::from_le_bytes(map);
    let mut bins = [0u16; SIGNAL_BINS];
    for (i, bin) in bins.iter_mut().enumerate() {
        if heard & (1 << i) != 0 {
            *bin = take_varint(bytes) as u16;
        }
    }
    let evidence = if flags & PET != 0 {
        Evidence::Pet {
            own: EncounterToken(take::<16>(bytes)),
            peer: EncounterToken(take::<16>(bytes)),
        }
    } else {
        Evidence::Gaen {
            rpi: take::<16>(bytes),
            aem: take::<4>(bytes),
        }
    };
    EncounterRecord {
        interval,
        first_seen: UnixTime(first_seen),
        last_seen: UnixTime(last_seen),
        level_kind: if flags & NEGATED_RSSI != 0 {
            LevelKind::NegatedRssi
        } else {
            LevelKind::Attenuation
        },
        signal: SignalHistogram::from_bins(bins),
        evidence,
    }
}

fn take<const N: usize>(bytes: &mut &[u8]) -> [u8; N] {
    let (head, rest) = bytes.split_at(N);
    *bytes = rest;
    head.try_into().expect("split at N")
}

fn zigzag(wrapped: u64) -> u64 {
    let signed = wrapped as i64;
    ((signed << 1) ^ (signed >> 63)) as u64
}

fn unzigzag(z: u64) -> u64 {
    ((z >> 1) as i64 ^ -((z & 1) as i64)) as u64
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take::<1>(bytes)[0];
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn record(
        interval: u32,
        first: u64,
        last: u64,
        negated: bool,
        bins: [u16; SIGNAL_BINS],
        pet: Option<[u8; 32]>,
    ) -> EncounterRecord {
        let evidence = match pet {
            Some(t) => Evidence::Pet {
                own: EncounterToken(t[..16].try_into().unwrap()),
                peer: EncounterToken(t[16..].try_into().unwrap()),
            },
            None => Evidence::Gaen {
                rpi: [7; 16],
                aem: [1, 2, 3, 4],
            },
        };
        EncounterRecord {
            interval: IntervalNumber(interval),
            first_seen: UnixTime(first),
            last_seen: UnixTime(last),
            level_kind: if negated {
                LevelKind::NegatedRssi
            } else {
                LevelKind::Attenuation
            },
            signal: SignalHistogram::from_bins(bins),
            evidence,
        }
    }

    fn all(packed: &PackedEncounters) -> Vec<EncounterRecord> {
        let mut out = Vec::new();
        packed.for_each(&mut |r| out.push(r.clone()));
        out
    }

    proptest! {
        /// Any record reads back equal, whatever its times (before the interval, far after,
        /// the extremes), levels and evidence, and records of several days come back by day.
        #[test]
        fn every_record_reads_back_equal(
            records in proptest::collection::vec(
                (
                    any::<u32>(),
                    any::<u64>(),
                    any::<u64>(),
                    any::<bool>(),
                    any::<[u16; SIGNAL_BINS]>(),
                    proptest::option::of(any::<[u8; 32]>()),
                ),
                0..40,
            )
        ) {
            let records: Vec<EncounterRecord> = records
                .into_iter()
                .map(|(i, f, l, n, b, p)| record(i, f, l, n, b, p))
                .collect();
            let mut packed = PackedEncounters::default();
            for r in &records {
                packed.push(r);
            }
            let mut expected = records.clone();
            expected.sort_by_key(|r| r.day());
            prop_assert_eq!(all(&packed), expected);
            prop_assert_eq!(packed.len(), records.len());
        }
    }

    #[test]
    fn a_pet_encounter_packs_in_under_half_a_record_and_retention_drops_whole_days() {
        let day = 20_000u32;
        let interval = day * 144 + 60;
        let start = u64::from(interval) * 600;
        let mut bins = [0u16; SIGNAL_BINS];
        bins[5] = 240;
        bins[6] = 60;
        let typical = record(
            interval,
            start + 20,
            start + 560,
            false,
            bins,
            Some([9; 32]),
        );
        let mut packed = PackedEncounters::default();
        packed.push(&typical);
        let size = packed.days[0].bytes.len();
        assert!(size <= 48, "{size} bytes");
        assert!(size * 2 < std::mem::size_of::<EncounterRecord>());

        // Three days, one put out of order (closed after midnight): filed by day.
        let next = record(
            interval + 144,
            start + 86_400,
            start + 86_500,
            false,
            bins,
            None,
        );
        let late = record(
            interval + 1,
            start + 600,
            start + 700,
            true,
            bins,
            Some([3; 32]),
        );
        packed.push(&next);
        packed.push(&late);
        let earlier = record(
            interval - 144,
            start - 86_400,
            start - 86_000,
            false,
            bins,
            None,
        );
        packed.push(&earlier);
        assert_eq!(all(&packed), vec![earlier, typical, late, next.clone()]);
        assert_eq!(packed.purge_before(DayNumber(day + 1)), 3);
        assert_eq!((packed.len(), all(&packed)), (1, vec![next]));
        assert_eq!(packed.purge_before(DayNumber(day + 9)), 1);
        assert_eq!(packed.len(), 0);
    }
}
