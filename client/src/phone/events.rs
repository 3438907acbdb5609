//! Events kept until the app acknowledges them.
//!
//! Every event gets an id. [`Phone::poll_event_record`] hands it out without forgetting it:
//! it stays in the store (meta [`MetaKey::Events`]) until
//! [`Phone::acknowledge_event`], and a phone made again on the same store hands out every
//! unacknowledged event again. [`Phone::poll_event`] is the older call: it acknowledges
//! what it hands out.
//!
//! `BatchRejected`, `SunsetOrderRejected` and `VenueReleaseRejected` are the events not
//! kept: they are for logs, and the next sync meets a batch or an order again and raises
//! them again.

use ephemera_proto::UnixTime;
use serde::{Deserialize, Serialize};

use super::Phone;
use crate::error::{ClientError, ReportError, StoreError};
use crate::request::PhoneEvent;
use crate::risk::DailyExposure;
use crate::store::{MetaKey, Store};

/// Most unacknowledged events kept; beyond it the oldest are dropped (an app that never
/// acknowledges must not grow the store without bound).
pub const MAX_KEPT_EVENTS: usize = 256;

/// An event with the id to acknowledge it by.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    /// Pass to [`Phone::acknowledge_event`] once the app has acted on the event.
    pub id: u64,
    /// The event.
    pub event: PhoneEvent,
}

/// The stored form of an event (postcard).
#[derive(Clone, Debug, Serialize, Deserialize)]
enum StoredEvent {
    ExposureFound(DailyExposure),
    ReportPending,
    ReportRetrying { attempt: u32, next_attempt: u64 },
    ReportUploaded { revision_token: String },
    ReportFailed(StoredFailure),
    SyncCompleted { cursor: u64, batches: u32 },
    SunsetScheduled { effective_at: u64, reason: String },
    Ended(super::EndReason),
    VenueWarning(super::VenueWarning),
    VenueCheckedOut,
}

/// The stored form of a final report failure.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum StoredFailure {
    Refused { status: u16, code: String },
    UploadRefused { status: u16, code: String },
    BadCertificate,
    CertificateExpired,
    Other(String),
}

impl StoredEvent {
    fn from_event(event: &PhoneEvent) -> Option<Self> {
        Some(match event {
            PhoneEvent::ExposureFound(d) => StoredEvent::ExposureFound(d.clone()),
            PhoneEvent::ReportPending => StoredEvent::ReportPending,
            PhoneEvent::ReportRetrying {
                attempt,
                next_attempt,
            } => StoredEvent::ReportRetrying {
                attempt: *attempt,
                next_attempt: next_attempt.0,
            },
            PhoneEvent::ReportUploaded { revision_token } => StoredEvent::ReportUploaded {
                revision_token: revision_token.clone(),
            },
            PhoneEvent::ReportFailed(e) => StoredEvent::ReportFailed(match e {
                ReportError::Refused { status, code } => StoredFailure::Refused {
                    status: *status,
                    code: code.clone(),
                },
                ReportError::UploadRefused { status, code } => StoredFailure::UploadRefused {
                    status: *status,
                    code: code.clone(),
                },
                ReportError::BadCertificate => StoredFailure::BadCertificate,
                ReportError::CertificateExpired => StoredFailure::CertificateExpired,
                other => StoredFailure::Other(other.code().to_owned()),
            }),
            PhoneEvent::SyncCompleted { cursor, batches } => StoredEvent::SyncCompleted {
                cursor: *cursor,
                batches: *batches,
            },
            PhoneEvent::SunsetScheduled {
                effective_at,
                reason,
            } => StoredEvent::SunsetScheduled {
                effective_at: effective_at.0,
                reason: reason.clone(),
            },
            PhoneEvent::Ended(reason) => StoredEvent::Ended(reason.clone()),
            PhoneEvent::VenueWarning(w) => StoredEvent::VenueWarning(w.clone()),
            PhoneEvent::VenueCheckedOut => StoredEvent::VenueCheckedOut,
            PhoneEvent::BatchRejected(_)
            | PhoneEvent::SunsetOrderRejected
            | PhoneEvent::VenueReleaseRejected(_) => return None,
        })
    }

    fn into_event(self) -> PhoneEvent {
        match self {
            StoredEvent::ExposureFound(d) => PhoneEvent::ExposureFound(d),
            StoredEvent::ReportPending => PhoneEvent::ReportPending,
            StoredEvent::ReportRetrying {
                attempt,
                next_attempt,
            } => PhoneEvent::ReportRetrying {
                attempt,
                next_attempt: UnixTime(next_attempt),
            },
            StoredEvent::ReportUploaded { revision_token } => {
                PhoneEvent::ReportUploaded { revision_token }
            }
            StoredEvent::ReportFailed(f) => PhoneEvent::ReportFailed(match f {
                StoredFailure::Refused { status, code } => ReportError::Refused { status, code },
                StoredFailure::UploadRefused { status, code } => {
                    ReportError::UploadRefused { status, code }
                }
                StoredFailure::BadCertificate => ReportError::BadCertificate,
                StoredFailure::CertificateExpired => ReportError::CertificateExpired,
                StoredFailure::Other(_) => ReportError::Transport,
            }),
            StoredEvent::SyncCompleted { cursor, batches } => {
                PhoneEvent::SyncCompleted { cursor, batches }
            }
            StoredEvent::SunsetScheduled {
                effective_at,
                reason,
            } => PhoneEvent::SunsetScheduled {
                effective_at: UnixTime(effective_at),
                reason,
            },
            StoredEvent::Ended(reason) => PhoneEvent::Ended(reason),
            StoredEvent::VenueWarning(w) => PhoneEvent::VenueWarning(w),
            StoredEvent::VenueCheckedOut => PhoneEvent::VenueCheckedOut,
        }
    }
}

/// The events of a phone: those to hand out, and those kept until acknowledged.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    /// Not yet handed out in this process, oldest first.
    pending: std::collections::VecDeque<EventRecord>,
    /// Kept until acknowledged (ids ascending).
    kept: Vec<(u64, StoredEvent)>,
    next_id: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredQueue {
    next_id: u64,
    kept: Vec<(u64, StoredEvent)>,
}

impl EventQueue {
    /// The kept events of `store`, all to be handed out again.
    pub(super) fn load(store: &impl Store) -> Result<Self, ClientError> {
        let Some(bytes) = store.meta(MetaKey::Events)? else {
            return Ok(EventQueue::default());
        };
        let stored: StoredQueue =
            postcard::from_bytes(&bytes).map_err(|_| StoreError::Corrupt { what: "events" })?;
        let pending = stored
            .kept
            .iter()
            .map(|(id, e)| EventRecord {
                id: *id,
                event: e.clone().into_event(),
            })
            .collect();
        Ok(EventQueue {
            pending,
            kept: stored.kept,
            next_id: stored.next_id,
        })
    }

    fn save(&self, store: &mut impl Store) -> Result<(), ClientError> {
        let bytes = postcard::to_allocvec(&StoredQueue {
            next_id: self.next_id,
            kept: self.kept.clone(),
        })
        .expect("postcard into a Vec");
        store.set_meta(MetaKey::Events, &bytes)?;
        Ok(())
    }
}

impl<S: Store> Phone<S> {
    /// Queues `event` for the app and keeps it in the store until acknowledged (durable at
    /// the next flush, which every event-raising step does).
    pub(super) fn push_event(&mut self, event: PhoneEvent) -> Result<(), ClientError> {
        let queue = &mut self.events;
        let id = queue.next_id;
        queue.next_id += 1;
        if let Some(stored) = StoredEvent::from_event(&event) {
            queue.kept.push((id, stored));
            if queue.kept.len() > MAX_KEPT_EVENTS {
                let excess = queue.kept.len() - MAX_KEPT_EVENTS;
                queue.kept.drain(..excess);
            }
            queue.save(&mut self.store)?;
        }
        self.events.pending.push_back(EventRecord { id, event });
        Ok(())
    }

    /// The next event with its id, if any; it stays kept (and comes again from a phone made
    /// on the same store) until [`acknowledge_event`](Phone::acknowledge_event). Drain
    /// after every input.
    #[must_use]
    pub fn poll_event_record(&mut self) -> Option<EventRecord> {
        self.events.pending.pop_front()
    }

    /// The app has acted on event `id` (shown the notification, updated its screen): the
    /// phone forgets it, durably. Unknown ids are ignored (acknowledging twice is fine).
    ///
    /// # Errors
    /// [`ClientError::Store`].
    pub fn acknowledge_event(&mut self, id: u64) -> Result<(), ClientError> {
        let before = self.events.kept.len();
        self.events.kept.retain(|(i, _)| *i != id);
        if self.events.kept.len() != before {
            self.events.save(&mut self.store)?;
            self.store.flush()?;
        }
        Ok(())
    }

    /// Every event kept and not yet acknowledged, oldest first (whether handed out or not).
    pub fn unacknowledged_events(&self) -> Vec<EventRecord> {
        self.events
            .kept
            .iter()
            .map(|(id, e)| EventRecord {
                id: *id,
                event: e.clone().into_event(),
            })
            .collect()
    }

    /// The next outcome event for the app, if any, acknowledged as it is handed out. This
    /// is the older call: it skips the progress events ([`PhoneEvent::ReportPending`],
    /// [`PhoneEvent::ReportRetrying`]), which only [`poll_event_record`] hands out. An app
    /// that may be killed before it acts on an event uses `poll_event_record` and
    /// [`acknowledge_event`](Phone::acknowledge_event). Drain after every input.
    ///
    /// [`poll_event_record`]: Phone::poll_event_record
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PhoneEvent> {
        loop {
            let record = self.events.pending.pop_front()?;
            if self.events.kept.iter().any(|(i, _)| *i == record.id) {
                self.events.kept.retain(|(i, _)| *i != record.id);
                // The event was handed out; if forgetting it fails it is only handed out
                // again after a restart, which the caller of this call accepted.
                let _ = self.events.save(&mut self.store);
            }
            if !matches!(
                record.event,
                PhoneEvent::ReportPending | PhoneEvent::ReportRetrying { .. }
            ) {
                return Some(record.event);
            }
        }
    }
}
