//! The records a [`Store`](super::Store) keeps.

use std::fmt;

use ephemera_proto::gaen::TemporaryExposureKey;
use ephemera_proto::pet::DailySecret;
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::scheme::DailyKey;
use ephemera_proto::{DayNumber, IntervalNumber, SchemeKind, UnixTime};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::signal::{LevelKind, SignalHistogram};

/// An own daily key as stored: a GAEN TEK (16 bytes), or a `pet` daily secret (32 bytes) as
/// phones kept before the key ratchet (now removed at the first purge; `pet` phones keep
/// their [`MetaKey::PetRatchet`] instead).
///
/// # Privacy
/// `Debug` does not print it, equality is constant-time, and it is zeroed on drop.
#[derive(Clone, Serialize, Deserialize)]
pub struct OwnKey {
    scheme: SchemeKind,
    bytes: [u8; 32],
}

impl OwnKey {
    /// Wraps a proto daily key.
    pub fn from_daily_key(key: &DailyKey) -> Self {
        let mut bytes = [0u8; 32];
        match key {
            DailyKey::Gaen(tek) => bytes[..16].copy_from_slice(tek.as_bytes()),
            DailyKey::Pet(secret) => bytes.copy_from_slice(secret.as_bytes()),
        }
        OwnKey {
            scheme: key.scheme(),
            bytes,
        }
    }

    /// The proto daily key.
    pub fn daily_key(&self) -> DailyKey {
        match self.scheme {
            SchemeKind::Gaen => {
                let mut tek = [0u8; 16];
                tek.copy_from_slice(&self.bytes[..16]);
                DailyKey::Gaen(TemporaryExposureKey(tek))
            }
            SchemeKind::Pet => DailyKey::Pet(DailySecret::from_bytes(self.bytes)),
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> SchemeKind {
        self.scheme
    }
}

impl PartialEq for OwnKey {
    fn eq(&self, other: &Self) -> bool {
        self.scheme == other.scheme && bool::from(self.bytes.ct_eq(&other.bytes))
    }
}

impl Eq for OwnKey {}

impl fmt::Debug for OwnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnKey({:?}, <redacted>)", self.scheme)
    }
}

impl Drop for OwnKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// What links an encounter to a published key or token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Evidence {
    /// `gaen`: the identifier heard and its encrypted metadata.
    Gaen {
        /// The Rolling Proximity Identifier.
        rpi: [u8; 16],
        /// The Associated Encrypted Metadata.
        aem: [u8; 4],
    },
    /// `pet`: the encounter's two tokens (the private keys are never stored).
    Pet {
        /// Our token: published if we test positive.
        own: EncounterToken,
        /// The peer's token: looked for in batches.
        peer: EncounterToken,
    },
}

impl fmt::Debug for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Gaen { .. } => f.write_str("Evidence::Gaen(<redacted>)"),
            Evidence::Pet { .. } => f.write_str("Evidence::Pet(<redacted>)"),
        }
    }
}

/// The 16 bytes an encounter is looked up by: the RPI (`gaen`) or the peer token (`pet`).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EncounterKey(pub [u8; 16]);

impl fmt::Debug for EncounterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncounterKey(<redacted>)")
    }
}

/// A closed encounter: a peer heard for a while, summarised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncounterRecord {
    /// The interval our key belonged to (`pet`) or the peer was first heard (`gaen`).
    pub interval: IntervalNumber,
    /// First sighting.
    pub first_seen: UnixTime,
    /// Last sighting.
    pub last_seen: UnixTime,
    /// What the levels in `signal` are.
    pub level_kind: LevelKind,
    /// Seconds heard per signal level.
    pub signal: SignalHistogram,
    /// The link to published keys or tokens.
    pub evidence: Evidence,
}

impl EncounterRecord {
    /// The day the encounter belongs to (for retention and reports).
    pub fn day(&self) -> DayNumber {
        self.interval.day()
    }

    /// The lookup key.
    pub fn key(&self) -> EncounterKey {
        match &self.evidence {
            Evidence::Gaen { rpi, .. } => EncounterKey(*rpi),
            Evidence::Pet { peer, .. } => EncounterKey(peer.0),
        }
    }
}

/// Identifies a matched exposure window so that ingesting a batch twice counts it once.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowId {
    /// The exposure's day.
    pub day: DayNumber,
    /// A digest of what matched (the diagnosis key, or the peer token and first sighting).
    pub id: [u8; 16],
}

impl fmt::Debug for WindowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WindowId({:?}, <redacted>)", self.day)
    }
}

/// Small pieces of state kept by name.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetaKey {
    /// The batch index cursor (u64 little-endian).
    SyncCursor,
    /// `gaen`: own keys released before their day ended (same-day release), each 21 bytes:
    /// rolling start (u32 little-endian), rolling period, the 16-byte key. Secret like the
    /// own keys.
    ReleasedKeys,
    /// The report on its way as phones before protocol version 2 kept it (postcard); read
    /// once and moved to [`MetaKey::PendingReport2`].
    PendingReport,
    /// The open encounters checkpoint as phones before the `pet` ratchet kept it
    /// (postcard); read once and moved to [`MetaKey::OpenEncounters2`].
    OpenEncounters,
    /// Events not yet acknowledged by the app (postcard).
    Events,
    /// The clock state (postcard): the latest time seen, the latest time confirmed.
    Clock,
    /// The revision token of the last upload, as phones before protocol version 2 kept it
    /// (postcard), for a later revision of that version 1 upload.
    Revision,
    /// Tracing paused by the user (one byte, 1 = paused).
    Paused,
    /// When the last sync round completed (u64 little-endian unix seconds).
    LastSync,
    /// The decoy flow on its way (postcard): its step, attempts and next send time.
    PendingDecoy,
    /// Batch-key rollovers followed (each the old then the new Ed25519 key, 64 bytes),
    /// verified when learned.
    NodeKeyRollovers,
    /// The report on its way (postcard): the stage, the report, its HMAC key, its revision
    /// secret and, once certified, the upload. Secret like the own keys; deleted once the
    /// node acknowledged the upload or definitively refused it.
    PendingReport2,
    /// What revising the last upload takes (postcard): its certificate id, the revision
    /// secret whose key it carried, its contents. Secret like the own keys.
    RevisionKey,
    /// The batch at the cursor, which the next batch must name as its `previous`: its id
    /// (32 bytes) and whether the phone has seen a chained (version 2) batch (1 byte).
    SyncHeld,
    /// The latest signed head of the phone's node that the phone verified (its frame).
    NodeHead,
    /// `pet`: the key ratchet's state (`KeyRatchet::to_bytes`, 36 bytes), replaced at every
    /// interval. Secret: it derives the current and later keys of the day. A folder store
    /// keeps it in its `pet-ratchet` file, overwritten in place, never in its database
    /// (see [`ratchet_slot`](super::ratchet_slot)).
    PetRatchet,
    /// The open encounters checkpoint (postcard) with each `pet` encounter's tokens; read
    /// once from [`MetaKey::OpenEncounters`] (without tokens) where a phone kept that.
    OpenEncounters2,
    /// A verified sunset order not yet in effect (its frame): kept so that a phone that
    /// never connects again still ends at its effective time.
    SunsetOrder,
    /// The phone has ended (postcard of its `EndReason`): the one record a phone keeps
    /// after its sunset erasure, so it stays stopped after a restart.
    Ended,
    /// The venue check-in still open (postcard): the scanned entry code's bytes and the
    /// arrival, which check-out encrypts; removed at check-out. Names the venue: the one
    /// venue record that does, and only while the visit lasts.
    OpenCheckIn,
    /// The venue warnings found (postcard): day, hours and message of each, never the
    /// venue; those of days past retention are dropped at the daily purge.
    VenueWarnings,
    /// The venue release index cursor (u64 little-endian): the sequence of the last
    /// release the phone matched or skipped.
    VenueReleaseCursor,
}

impl MetaKey {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            MetaKey::SyncCursor => "sync-cursor",
            MetaKey::ReleasedKeys => "released-keys",
            MetaKey::PendingReport => "pending-report",
            MetaKey::OpenEncounters => "open-encounters",
            MetaKey::Events => "events",
            MetaKey::Clock => "clock",
            MetaKey::Revision => "revision",
            MetaKey::Paused => "paused",
            MetaKey::LastSync => "last-sync",
            MetaKey::PendingDecoy => "pending-decoy",
            MetaKey::NodeKeyRollovers => "node-key-rollovers",
            MetaKey::PendingReport2 => "pending-report-2",
            MetaKey::RevisionKey => "revision-key",
            MetaKey::SyncHeld => "sync-held",
            MetaKey::NodeHead => "node-head",
            MetaKey::PetRatchet => "pet-ratchet",
            MetaKey::OpenEncounters2 => "open-encounters-2",
            MetaKey::SunsetOrder => "sunset-order",
            MetaKey::Ended => "ended",
            MetaKey::OpenCheckIn => "open-check-in",
            MetaKey::VenueWarnings => "venue-warnings",
            MetaKey::VenueReleaseCursor => "venue-release-cursor",
        }
    }
}

/// How much a purge deleted.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Own daily keys.
    pub own_keys: usize,
    /// Encounters.
    pub encounters: usize,
    /// Exposure windows.
    pub windows: usize,
    /// Venue check-ins (one per hour of a visit).
    pub check_ins: usize,
}

/// A kept venue check-in: one hour of a visit, encrypted to the venue's identity of that
/// hour (`ephemera_proto::venue::CheckIn`, 197 bytes). Nothing else of the visit is kept.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInRecord {
    /// The UTC day of the check-in's hour (for retention).
    pub day: DayNumber,
    /// The check-in's encoding (`CheckIn::to_bytes`).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for CheckInRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckInRecord({:?}, <redacted>)", self.day)
    }
}
