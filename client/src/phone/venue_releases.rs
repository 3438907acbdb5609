//! The phone downloads venue releases itself, as a step of its sync round
//! (`docs/PROTOCOL.md` §10.1, `docs/MOBILE.md` §16).
//!
//! ```text
//!  the round's batch step ends (done or stopped) ─▶ GET /v1/venue-releases?after=<cursor>
//!     index page ─▶ each entry above the cursor, in sequence order:
//!        arrived before the retention period ─▶ skipped unfetched, cursor moves
//!        listed larger than any release      ─▶ VenueReleaseRejected(TooLarge), cursor moves
//!        else GET /v1/venue-releases/{id}
//!           SHA-256(body) ≠ id               ─▶ VenueReleaseRejected(WrongContent), round stops
//!           verify (pinned authorities) ─▶ match_check_ins ─▶ VenueWarning; cursor moves
//!           refused                          ─▶ VenueReleaseRejected, cursor moves
//!                                               (post-dated: round stops, retried)
//!     page done ─▶ next page; an empty page or MAX_RELEASES_PER_ROUND fetched ends the step
//! ```
//!
//! The cursor moves past a release only once the release's own bytes decided it: matched,
//! or refused for what its frame holds (a release is content-addressed, so the same id
//! always fetches the same verdict). What the way or the phone's clock may have caused (a
//! 5xx, no network, a truncated or altered body, a release issued after the phone's clock)
//! leaves the cursor, and the next round asks again.
//!
//! The releases are checked against [`ReportConfig::trusted_authorities`], the authority
//! keys the app pins for certificates too; with none pinned, the app trusts its node over
//! TLS and the phone checks everything but the signature (`SignedVenueRelease::traces`).
//!
//! [`ReportConfig::trusted_authorities`]: crate::ReportConfig::trusted_authorities

use std::collections::VecDeque;

use ephemera_proto::UnixTime;
use ephemera_proto::venue::{MAX_RELEASE_LEN, ReleaseIndex, ReleaseIndexEntry, SignedVenueRelease};
use ring::digest;

use super::{Pending, Phone};
use crate::error::{ClientError, VenueReleaseError};
use crate::request::{Method, PhoneEvent, Response};
use crate::store::{MetaKey, Store};

/// Most releases one sync round downloads (at most 3.8 MiB at [`MAX_RELEASE_LEN`]); the
/// next round goes on from the cursor. A node's page holds 256.
pub const MAX_RELEASES_PER_ROUND: usize = 256;
/// Most entries of one index page the phone reads: a node lists at most 256 a page.
pub const MAX_RELEASE_INDEX_ENTRIES: usize = 256;
/// Largest index page the phone reads: 256 entries take about 30 KiB of JSON.
pub const MAX_RELEASE_INDEX_BYTES: usize = 64 * 1024;

/// Where the release step of the sync round stands.
#[derive(Debug)]
pub(super) struct ReleaseSync {
    /// Sequence of the last release matched or skipped (persisted).
    cursor: u64,
    phase: Phase,
    /// Releases downloaded in this round.
    fetched: usize,
}

#[derive(Debug)]
enum Phase {
    Idle,
    AwaitingIndex,
    Fetching(VecDeque<ReleaseIndexEntry>),
}

impl ReleaseSync {
    pub(super) fn load(store: &impl Store) -> Result<Self, ClientError> {
        let cursor = store
            .meta(MetaKey::VenueReleaseCursor)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes);
        Ok(ReleaseSync {
            cursor,
            phase: Phase::Idle,
            fetched: 0,
        })
    }
}

/// How far ahead of the phone's clock a release's sequence may say it arrived: a node's
/// clock a day fast still has its releases read at once.
const MAX_SEQUENCE_AHEAD_SECONDS: u64 = 86_400;

/// Reads an index page of outside bytes at `now`: JSON within [`MAX_RELEASE_INDEX_BYTES`]
/// and [`MAX_RELEASE_INDEX_ENTRIES`]; the entries above `cursor`, in sequence order, up to
/// the last sequence a release could have by `now` (a node numbers a release arriving at
/// second `t` from `t × 1000`): an entry an unsigned index moved far ahead (`u64::MAX`)
/// waits rather than taking the cursor past every later release.
///
/// # Errors
/// [`VenueReleaseError::BadIndex`]; never panics.
pub(super) fn read_index(
    body: &[u8],
    cursor: u64,
    now: UnixTime,
) -> Result<Vec<ReleaseIndexEntry>, VenueReleaseError> {
    if body.len() > MAX_RELEASE_INDEX_BYTES {
        return Err(VenueReleaseError::BadIndex);
    }
    let index: ReleaseIndex =
        serde_json::from_slice(body).map_err(|_| VenueReleaseError::BadIndex)?;
    if index.releases.len() > MAX_RELEASE_INDEX_ENTRIES {
        return Err(VenueReleaseError::BadIndex);
    }
    let latest = now
        .plus_seconds(MAX_SEQUENCE_AHEAD_SECONDS)
        .0
        .saturating_mul(1000)
        .saturating_add(999);
    let mut entries: Vec<ReleaseIndexEntry> = index
        .releases
        .into_iter()
        .filter(|entry| entry.sequence > cursor && entry.sequence <= latest)
        .collect();
    entries.sort_by_key(|entry| entry.sequence);
    entries.dedup_by_key(|entry| entry.sequence);
    Ok(entries)
}

/// Whether the release of `entry` reached its node before `oldest_kept`: a node gives a
/// release arriving at second `t` a sequence of at least `t × 1000` (`docs/PROTOCOL.md`
/// §10.1), so it arrived at `sequence / 1000` at the latest. A case's hours precede its
/// trace, so such a release holds no hour of a check-in the phone still keeps (the day
/// of margin covers the window's padding hours and clock skew) and is past use.
fn arrived_before(entry: &ReleaseIndexEntry, oldest_kept: UnixTime) -> bool {
    UnixTime(entry.sequence / 1000).plus_seconds(86_400) < oldest_kept
}

impl<S: Store> Phone<S> {
    /// The venue release cursor: the sequence of the last release matched or skipped.
    pub fn venue_release_cursor(&self) -> u64 {
        self.releases.cursor
    }

    /// Starts the release step of a sync round unless one is running (when the round's
    /// batch step ends).
    pub(super) fn start_release_round(&mut self) {
        if matches!(self.releases.phase, Phase::Idle) {
            self.releases.fetched = 0;
            self.request_release_index();
        }
    }

    fn request_release_index(&mut self) {
        self.releases.phase = Phase::AwaitingIndex;
        let path = format!("/v1/venue-releases?after={}", self.releases.cursor);
        self.push_request(
            Pending::FetchReleaseIndex,
            Method::Get,
            path,
            None,
            Vec::new(),
        );
    }

    /// The step stops; the next round goes on from the cursor.
    pub(super) fn release_round_stopped(&mut self) {
        self.releases.phase = Phase::Idle;
    }

    /// An index page came.
    pub(super) fn on_release_index(
        &mut self,
        now: UnixTime,
        response: &Response,
    ) -> Result<(), ClientError> {
        if response.status != 200 {
            // A node without venue releases (404), or one that failed: nothing to do now.
            self.release_round_stopped();
            return Ok(());
        }
        match read_index(&response.body, self.releases.cursor, now) {
            Ok(entries) if entries.is_empty() => {
                self.release_round_stopped();
                Ok(())
            }
            Ok(entries) => {
                self.releases.phase = Phase::Fetching(entries.into());
                self.fetch_next_release()
            }
            Err(error) => self.release_rejected(error),
        }
    }

    /// Fetches the next release of the page worth fetching (moving the cursor past those
    /// that are not); at the page's end asks for the next page.
    fn fetch_next_release(&mut self) -> Result<(), ClientError> {
        let oldest_kept = self
            .trusted_now()
            .day()
            .minus(self.config.retention_days)
            .start();
        loop {
            let Phase::Fetching(queue) = &mut self.releases.phase else {
                return Ok(());
            };
            let Some(entry) = queue.pop_front() else {
                if self.releases.fetched >= MAX_RELEASES_PER_ROUND {
                    self.release_round_stopped();
                } else {
                    self.request_release_index();
                }
                return Ok(());
            };
            if arrived_before(&entry, oldest_kept) {
                self.release_done(entry.sequence)?;
                continue;
            }
            if entry.size > MAX_RELEASE_LEN as u64 {
                self.reject_release(entry, VenueReleaseError::TooLarge { size: entry.size })?;
                continue;
            }
            if self.releases.fetched >= MAX_RELEASES_PER_ROUND {
                self.release_round_stopped();
                return Ok(());
            }
            self.releases.fetched += 1;
            let path = format!("/v1/venue-releases/{}", entry.id.to_hex());
            self.push_request(
                Pending::FetchRelease(entry),
                Method::Get,
                path,
                None,
                Vec::new(),
            );
            return Ok(());
        }
    }

    /// A release came: checked, matched, the cursor moved; then the next.
    pub(super) fn on_release(
        &mut self,
        now: UnixTime,
        response: &Response,
        entry: ReleaseIndexEntry,
    ) -> Result<(), ClientError> {
        if response.status != 200 {
            self.release_round_stopped();
            return Ok(());
        }
        let body = &response.body;
        if body.len() > MAX_RELEASE_LEN
            || digest::digest(&digest::SHA256, body).as_ref() != entry.id.0
        {
            return self.release_rejected(VenueReleaseError::WrongContent);
        }
        let trusted = &self.config.report.trusted_authorities;
        let checked = SignedVenueRelease::from_bytes(body)
            .map_err(VenueReleaseError::Malformed)
            .and_then(|release| {
                if trusted.is_empty() {
                    release.traces(now)
                } else {
                    release.verify(trusted, now)
                }
                .map_err(VenueReleaseError::Refused)
            });
        match checked {
            Ok(traces) => {
                self.warn_on(&traces)?;
                self.release_done(entry.sequence)?;
            }
            Err(error) if error.retried() => return self.release_rejected(error),
            Err(error) => self.reject_release(entry, error)?,
        }
        self.fetch_next_release()
    }

    /// Tells the app of a refusal the next round retries, and stops the step.
    fn release_rejected(&mut self, error: VenueReleaseError) -> Result<(), ClientError> {
        self.last_error = Some(error.code());
        self.release_round_stopped();
        self.push_event(PhoneEvent::VenueReleaseRejected(error))
    }

    /// Tells the app of a release refused for its own bytes, and moves past it.
    fn reject_release(
        &mut self,
        entry: ReleaseIndexEntry,
        error: VenueReleaseError,
    ) -> Result<(), ClientError> {
        self.last_error = Some(error.code());
        self.push_event(PhoneEvent::VenueReleaseRejected(error))?;
        self.release_done(entry.sequence)
    }

    /// Moves and persists the cursor.
    fn release_done(&mut self, sequence: u64) -> Result<(), ClientError> {
        if sequence > self.releases.cursor {
            self.releases.cursor = sequence;
            self.store
                .set_meta(MetaKey::VenueReleaseCursor, &sequence.to_le_bytes())?;
            self.store.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::venue::ReleaseId;
    use proptest::prelude::*;

    use super::*;

    const NOW: UnixTime = UnixTime(1_772_367_000);

    fn entry(sequence: u64, size: u64) -> ReleaseIndexEntry {
        ReleaseIndexEntry {
            id: ReleaseId([sequence as u8; 32]),
            sequence,
            size,
        }
    }

    #[test]
    fn a_page_is_read_above_the_cursor_in_sequence_order() {
        let page = ReleaseIndex {
            releases: vec![entry(9, 1), entry(3, 1), entry(5, 1), entry(9, 2)],
            next_cursor: 9,
        };
        let body = serde_json::to_vec(&page).unwrap();
        let read = read_index(&body, 3, NOW).unwrap();
        let sequences: Vec<u64> = read.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, [5, 9]);
        // A sequence from beyond tomorrow waits (and what follows it too).
        let ahead = ReleaseIndex {
            releases: vec![
                entry(u64::MAX, 1),
                entry(5, 1),
                entry((NOW.0 + 2 * 86_400) * 1000, 1),
            ],
            next_cursor: u64::MAX,
        };
        let read = read_index(&serde_json::to_vec(&ahead).unwrap(), 3, NOW).unwrap();
        assert_eq!(read, [entry(5, 1)]);
        assert_eq!(
            read_index(
                b"{\"releases\":[{\"id\":\"zz\",\"sequence\":1,\"size\":1}],\"next_cursor\":1}",
                0,
                NOW,
            ),
            Err(VenueReleaseError::BadIndex)
        );
    }

    proptest! {
        /// Any bytes a node or cache sends: read or refused, never a panic; what is read
        /// is within the caps, above the cursor, in strictly growing sequence order.
        #[test]
        fn any_index_body_is_read_within_the_caps_or_refused(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            cursor in any::<u64>(),
        ) {
            if let Ok(entries) = read_index(&body, cursor, NOW) {
                prop_assert!(entries.len() <= MAX_RELEASE_INDEX_ENTRIES);
                prop_assert!(entries.iter().all(|e| e.sequence > cursor));
                prop_assert!(entries.windows(2).all(|w| w[0].sequence < w[1].sequence));
            }
        }

        /// Well-formed pages of any entries, up to twice the cap.
        #[test]
        fn any_index_page_is_read_within_the_caps_or_refused(
            listed in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..2 * MAX_RELEASE_INDEX_ENTRIES),
            cursor in any::<u64>(),
        ) {
            let page = ReleaseIndex {
                releases: listed.iter().map(|&(sequence, size)| entry(sequence, size)).collect(),
                next_cursor: 0,
            };
            let body = serde_json::to_vec(&page).unwrap();
            match read_index(&body, cursor, NOW) {
                Ok(entries) => {
                    prop_assert!(listed.len() <= MAX_RELEASE_INDEX_ENTRIES);
                    prop_assert!(entries.iter().all(|e| e.sequence > cursor));
                    prop_assert!(entries.windows(2).all(|w| w[0].sequence < w[1].sequence));
                    let above = listed.iter().filter(|(s, _)| *s > cursor).count();
                    prop_assert!(entries.len() <= above);
                }
                Err(error) => {
                    prop_assert_eq!(error, VenueReleaseError::BadIndex);
                    prop_assert!(listed.len() > MAX_RELEASE_INDEX_ENTRIES || body.len() > MAX_RELEASE_INDEX_BYTES);
                }
            }
        }
    }
}
