//! The end of purpose on the phone (`docs/MOBILE.md`, "Sunset"; `docs/PROTOCOL.md` §11).
//!
//! A node's batch index may carry a sunset order. The phone checks it against the sunset
//! committee and federation of its configuration at its own time; an order that fails is
//! ignored and never kept ([`PhoneEvent::SunsetOrderRejected`], counted in the status). A
//! valid order scoped to the whole federation, or to an authority this phone pins, is kept
//! ([`MetaKey::SunsetOrder`]) and announced ([`PhoneEvent::SunsetScheduled`]). At its
//! effective time, or at the configured end of life if that comes first, the phone erases
//! everything (store and memory; a folder store replaces its database and deletes the old
//! files), keeps only the [`MetaKey::Ended`] marker, raises [`PhoneEvent::Ended`] and
//! refuses every input with [`ClientError::Ended`] from then on, after restarts too.
//!
//! The deadline is checked at every input that carries a time, before anything else, so a
//! phone that never syncs again stops at the deadline all the same. It acts on the app's
//! time, not on the confirmed time retention waits for: a phone that never connects again
//! could never confirm a jump, and the time cannot be set back to delay the end (a time
//! before the latest seen is refused).

use ephemera_proto::UnixTime;
use ephemera_proto::sunset::{OrderId, SignedSunsetOrder, SunsetOrder, SunsetScope};
use serde::{Deserialize, Serialize};

use super::Phone;
use crate::config::ClientConfig;
use crate::error::{ClientError, StoreError};
use crate::request::PhoneEvent;
use crate::store::{MetaKey, Store};

/// Why a phone ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// A sunset order took effect.
    Order {
        /// The order's identifier (what nodes' deletion receipts name).
        id: OrderId,
        /// When it took effect.
        effective_at: UnixTime,
        /// Why, in the committee's words.
        reason: String,
    },
    /// The end of life configured in the app came (no order needed).
    EndOfLife {
        /// The configured end of life.
        at: UnixTime,
    },
}

impl EndReason {
    /// When the phone ended (or ends).
    pub fn at(&self) -> UnixTime {
        match self {
            EndReason::Order { effective_at, .. } => *effective_at,
            EndReason::EndOfLife { at } => *at,
        }
    }

    /// The reason in words: the order's, or `end of life` for the configured end.
    pub fn reason(&self) -> &str {
        match self {
            EndReason::Order { reason, .. } => reason,
            EndReason::EndOfLife { .. } => "end of life",
        }
    }

    fn of_order(order: &SunsetOrder) -> Self {
        EndReason::Order {
            id: order.id(),
            effective_at: order.effective_at,
            reason: order.reason.clone(),
        }
    }
}

/// What an order read from a node means for this phone.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Valid, but scoped to an authority this phone does not pin: not ours to act on.
    NotForUs,
    /// Not valid for this phone's committee and federation at `now` (or no committee is
    /// configured): ignored.
    Rejected,
    /// Valid and ours.
    Applies,
}

/// Judges `order` for a phone configured with `config` at `now`.
pub(super) fn judge(config: &ClientConfig, order: &SignedSunsetOrder, now: UnixTime) -> Verdict {
    let Some(committee) = &config.sunset.committee else {
        return Verdict::Rejected;
    };
    let Ok(order) = order.verify(committee, config.sunset_federation(), now) else {
        return Verdict::Rejected;
    };
    match order.scope {
        SunsetScope::Federation => Verdict::Applies,
        SunsetScope::Authority(key) if config.report.trusted_authorities.contains(&key) => {
            Verdict::Applies
        }
        SunsetScope::Authority(_) => Verdict::NotForUs,
    }
}

/// When the phone ends and why: the earlier of the kept order's effective time and the
/// configured end of life (the order wins a tie: it says why).
pub(super) fn deadline(
    config: &ClientConfig,
    scheduled: Option<&SunsetOrder>,
) -> Option<EndReason> {
    let by_order = scheduled.map(EndReason::of_order);
    let by_life = config
        .sunset
        .end_of_life
        .map(|at| EndReason::EndOfLife { at });
    match (by_order, by_life) {
        (Some(order), Some(life)) if life.at() < order.at() => Some(life),
        (Some(order), _) => Some(order),
        (None, life) => life,
    }
}

/// The sunset state kept across restarts: the scheduled order and the end marker.
#[derive(Debug, Default)]
pub(super) struct SunsetState {
    /// A verified order of this phone, not yet in effect (kept).
    pub(super) scheduled: Option<SignedSunsetOrder>,
    /// The phone has ended (kept).
    pub(super) ended: Option<EndReason>,
    /// Orders read from indexes and rejected, since this phone object was made.
    pub(super) rejected: u64,
}

impl SunsetState {
    /// Reads the kept state. A kept order is checked again against `config` (at its own
    /// issue time): an app update that changed the committee or federation drops it.
    pub(super) fn load(store: &impl Store, config: &ClientConfig) -> Result<Self, ClientError> {
        let ended = match store.meta(MetaKey::Ended)? {
            Some(bytes) => Some(
                postcard::from_bytes(&bytes)
                    .map_err(|_| StoreError::Corrupt { what: "end marker" })?,
            ),
            None => None,
        };
        let scheduled = match store.meta(MetaKey::SunsetOrder)? {
            Some(bytes) => {
                let order =
                    SignedSunsetOrder::from_bytes(&bytes).map_err(|_| StoreError::Corrupt {
                        what: "sunset order",
                    })?;
                (judge(config, &order, order.order.issued_at) == Verdict::Applies).then_some(order)
            }
            None => None,
        };
        Ok(SunsetState {
            scheduled,
            ended,
            rejected: 0,
        })
    }
}

impl<S: Store> Phone<S> {
    /// Whether the phone has ended, and why.
    pub fn ended(&self) -> Option<&EndReason> {
        self.sunset.ended.as_ref()
    }

    /// When the phone will end and why (a kept order or the end of life), unless it
    /// already has.
    pub fn scheduled_end(&self) -> Option<EndReason> {
        if self.sunset.ended.is_some() {
            return None;
        }
        deadline(
            &self.config,
            self.sunset.scheduled.as_ref().map(|o| &o.order),
        )
    }

    /// [`ClientError::Ended`] once the phone has ended.
    pub(super) fn ensure_running(&self) -> Result<(), ClientError> {
        match self.sunset.ended {
            Some(_) => Err(ClientError::Ended),
            None => Ok(()),
        }
    }

    /// [`ClientError::Ended`] once the phone has ended or its end has come at `now` (for
    /// queries, which erase nothing: the next input does).
    pub(super) fn ensure_running_at(&self, now: UnixTime) -> Result<(), ClientError> {
        self.ensure_running()?;
        match self.scheduled_end() {
            Some(end) if now >= end.at() => Err(ClientError::Ended),
            _ => Ok(()),
        }
    }

    /// Ends the phone if its deadline has come at `now`; then, and on an ended phone,
    /// [`ClientError::Ended`].
    pub(super) fn enforce_sunset(&mut self, now: UnixTime) -> Result<(), ClientError> {
        self.ensure_running()?;
        if let Some(end) = self.scheduled_end()
            && now >= end.at()
        {
            self.end(end)?;
            return Err(ClientError::Ended);
        }
        Ok(())
    }

    /// Reads the order an index page carried: rejected ones are counted and ignored, a
    /// valid one of this phone is kept and announced (the earliest wins), and if it is
    /// already in effect the phone ends ([`ClientError::Ended`]).
    pub(super) fn on_sunset_order(
        &mut self,
        now: UnixTime,
        order: &SignedSunsetOrder,
    ) -> Result<(), ClientError> {
        match judge(&self.config, order, now) {
            Verdict::NotForUs => return Ok(()),
            Verdict::Rejected => {
                self.sunset.rejected += 1;
                self.last_error = Some("sunset-order-rejected");
                self.push_event(PhoneEvent::SunsetOrderRejected)?;
                return Ok(());
            }
            Verdict::Applies => {}
        }
        let earlier = self
            .sunset
            .scheduled
            .as_ref()
            .is_none_or(|kept| order.order.effective_at < kept.order.effective_at);
        if earlier {
            self.store
                .set_meta(MetaKey::SunsetOrder, &order.to_bytes())?;
            self.sunset.scheduled = Some(order.clone());
            self.push_event(PhoneEvent::SunsetScheduled {
                effective_at: order.order.effective_at,
                reason: order.order.reason.clone(),
            })?;
            self.store.flush()?;
        }
        self.enforce_sunset(now)
    }

    /// Erases everything (store and memory), keeps the end marker and raises
    /// [`PhoneEvent::Ended`].
    fn end(&mut self, reason: EndReason) -> Result<(), ClientError> {
        self.wipe()?;
        self.sunset.scheduled = None;
        let marker = postcard::to_allocvec(&reason).expect("postcard into a Vec");
        self.store.set_meta(MetaKey::Ended, &marker)?;
        self.sunset.ended = Some(reason.clone());
        self.push_event(PhoneEvent::Ended(reason))?;
        self.store.flush()?;
        Ok(())
    }
}
