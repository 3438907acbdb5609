//! What an app shows on its status screen, in one call.

use ephemera_proto::UnixTime;

use super::Phone;
use crate::error::ClientError;
use crate::store::{MetaKey, Store};

/// Where a phone stands: for the app's status screen and its diagnostics.
///
/// # Privacy
/// Counts and times only: no key, token, code or encounter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneStatus {
    /// Tracing is on (advertising and recording sightings); off after
    /// [`Phone::set_paused`]`(true)`.
    pub tracing: bool,
    /// The latest time the phone was given (`None` before the first input).
    pub latest_time: Option<UnixTime>,
    /// A forward clock jump waits for confirmation ([`Phone::confirm_time`]); retention
    /// purges nothing meanwhile.
    pub clock_jump_pending: bool,
    /// Inputs refused since this phone object was made because the time went back.
    pub clock_refusals: u64,
    /// Node times that disagreed with the app's time since this phone object was made.
    pub clock_disagreements: u64,
    /// When a sync round last completed (kept across restarts).
    pub last_sync: Option<UnixTime>,
    /// The batch cursor.
    pub sync_cursor: u64,
    /// A report is on its way (kept; sent or waiting to be retried).
    pub report_pending: bool,
    /// The pending report has its certificate (the code is spent; only the upload is left).
    pub report_certified: bool,
    /// Sends of the pending report's current step.
    pub report_attempts: u32,
    /// When the pending report is sent next, if it waits.
    pub report_next_attempt: Option<UnixTime>,
    /// The last accepted upload can be revised ([`Phone::start_revision`]).
    pub can_revise: bool,
    /// Peers heard now (open encounters).
    pub open_encounters: u32,
    /// Events kept until acknowledged.
    pub unacknowledged_events: u32,
    /// The stable code of the last error an input returned or a background step met
    /// (e.g. `transport`, `clock-went-back`, `batch-rejected`).
    pub last_error: Option<&'static str>,
    /// Open-encounter checkpoints written by this phone object, and their bytes: the
    /// write cost of surviving a kill.
    pub checkpoints_written: u64,
    /// Bytes of those checkpoints.
    pub checkpoint_bytes: u64,
    /// When the phone will end (a kept sunset order, or the configured end of life),
    /// unless it already has.
    pub ends_at: Option<UnixTime>,
    /// The phone has ended: its data is erased and it does nothing more.
    pub ended: bool,
    /// Sunset orders read from the node and rejected (forged, partial, another federation
    /// or committee) since this phone object was made.
    pub sunset_orders_rejected: u64,
}

impl<S: Store> Phone<S> {
    /// Where the phone stands (see [`PhoneStatus`]).
    pub fn status(&self) -> PhoneStatus {
        let report = self.report.as_ref();
        PhoneStatus {
            tracing: !self.paused && self.sunset.ended.is_none(),
            latest_time: (self.clock.latest != 0).then_some(UnixTime(self.clock.latest)),
            clock_jump_pending: self.clock.jump_pending,
            clock_refusals: self.clock.refused,
            clock_disagreements: self.clock_disagreements,
            last_sync: self.last_sync,
            sync_cursor: self.sync_cursor(),
            report_pending: report.is_some(),
            report_certified: report.is_some_and(|r| r.certified()),
            report_attempts: report.map_or(0, |r| r.attempts()),
            report_next_attempt: report
                .filter(|_| !self.report_in_flight)
                .map(|r| r.next_attempt()),
            can_revise: self.can_revise(),
            open_encounters: self.open.len() as u32,
            unacknowledged_events: self.unacknowledged_events().len() as u32,
            last_error: self.last_error,
            checkpoints_written: self.checkpoints_written,
            checkpoint_bytes: self.checkpoint_bytes,
            ends_at: self.scheduled_end().map(|end| end.at()),
            ended: self.sunset.ended.is_some(),
            sunset_orders_rejected: self.sunset.rejected,
        }
    }

    /// Encounters kept in the store (closed ones; open ones are in
    /// [`PhoneStatus::open_encounters`]): what an app shows as "contacts recorded".
    ///
    /// # Errors
    /// [`ClientError::Store`].
    pub fn stored_encounters(&self) -> Result<u32, ClientError> {
        let mut n = 0u32;
        self.store.for_each_encounter(&mut |_| n += 1)?;
        Ok(n)
    }

    /// Pauses (`true`) or resumes tracing, durably: while paused,
    /// [`advertisement`](Phone::advertisement) refuses with [`ClientError::Paused`] and
    /// sightings are ignored; open encounters are closed on pause. Sync, matching and
    /// reporting go on.
    ///
    /// # Errors
    /// [`ClientError::Store`]; [`ClientError::Ended`] once the phone has ended.
    pub fn set_paused(&mut self, paused: bool) -> Result<(), ClientError> {
        self.ensure_running()?;
        if paused && !self.paused {
            self.close_all_encounters()?;
        }
        self.paused = paused;
        self.store.set_meta(MetaKey::Paused, &[u8::from(paused)])?;
        self.store.flush()?;
        Ok(())
    }

    pub(super) fn load_paused(store: &S) -> Result<bool, ClientError> {
        Ok(store.meta(MetaKey::Paused)?.is_some_and(|v| v == [1]))
    }
}
