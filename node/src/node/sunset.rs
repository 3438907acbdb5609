//! The end of purpose at this node (`ephemera_node_core::sunset`): the sunset order it
//! holds, taking new ones, and refusing phones' work once an order has stopped it.

use std::sync::Mutex;

use ephemera_node_core::sunset::{Offer, SunsetRules};
use ephemera_proto::sunset::SignedSunsetOrder;

use super::{Node, NodeError};
use crate::api::error::ApiError;
use crate::config::NodeConfig;

/// The committee rules and the held order.
pub(super) struct SunsetWatch {
    /// `None`: no `[sunset] keys`, so no order is taken.
    rules: Option<SunsetRules>,
    held: Mutex<Option<SignedSunsetOrder>>,
    /// The authority whose reports this process has erased under the held order.
    authority_erased: Mutex<Option<ephemera_proto::signing::KeyId>>,
}

impl SunsetWatch {
    /// Rules from the configuration (already checked when it loaded); no order held yet.
    pub(super) fn new(
        config: &NodeConfig,
        own_authority: ephemera_proto::signing::Ed25519PublicKey,
    ) -> Self {
        let rules = config
            .sunset_committee()
            .ok()
            .flatten()
            .map(|committee| SunsetRules {
                committee,
                federation: config.federation_name().to_owned(),
                own_authority,
            });
        SunsetWatch {
            rules,
            held: Mutex::new(None),
            authority_erased: Mutex::new(None),
        }
    }
}

/// Why a node refuses to start over its sunset settings.
#[derive(Debug, thiserror::Error)]
pub enum SunsetSetupError {
    /// A committee key is one of the node's own keys.
    #[error(
        "[sunset] keys lists this node's {which} key: sunset keys must be held apart from the \
         node's day-to-day keys (node/docs/OPERATIONS.md, \"Sunset\")"
    )]
    NodeKeyInCommittee {
        /// Which key.
        which: &'static str,
    },
    /// The stored order does not verify under the configured committee.
    #[error(
        "the stored sunset order does not verify under the configured [sunset] keys and \
         threshold ({0}); restore the committee it was approved by (node/docs/OPERATIONS.md, \
         \"Sunset\")"
    )]
    HeldOrderInvalid(String),
    /// The data folder was erased under a sunset order: only `serve` runs on it, answering
    /// with the order and the receipt.
    #[error(
        "this node's data was erased under a sunset order (sunset/ in the data folder): \
         `ephemera-node serve` now only publishes the order and the deletion receipt"
    )]
    Erased,
}

impl Node {
    /// Checks the committee against the node's keys and loads the stored order, checking it
    /// again (not its issue time: the clock may read earlier than at adoption).
    pub(super) fn open_sunset(&self) -> Result<(), NodeError> {
        let Some(rules) = &self.inner.sunset.rules else {
            return Ok(());
        };
        let keys = self.keys();
        for (which, key) in [
            ("authority", keys.authority.public_key()),
            ("batch", keys.batch.public_key()),
        ] {
            if rules.committee.contains(&key) {
                return Err(NodeError::Sunset(SunsetSetupError::NodeKeyInCommittee {
                    which,
                }));
            }
        }
        self.reload_sunset()
    }

    /// Reads the stored order again (a node of a group learns of one another node took).
    ///
    /// # Errors
    /// [`NodeError::Store`]; [`NodeError::Sunset`] for a stored order that no longer
    /// verifies.
    pub fn reload_sunset(&self) -> Result<(), NodeError> {
        let Some(rules) = &self.inner.sunset.rules else {
            return Ok(());
        };
        let Some(frame) = self.inner.store.sunset_order()? else {
            return Ok(());
        };
        let order = SignedSunsetOrder::from_bytes(&frame)
            .map_err(|e| NodeError::Sunset(SunsetSetupError::HeldOrderInvalid(e.to_string())))?;
        order
            .verify(&rules.committee, &rules.federation, order.order.issued_at)
            .map_err(|e| NodeError::Sunset(SunsetSetupError::HeldOrderInvalid(e.to_string())))?;
        *self.inner.sunset.held.lock().unwrap() = Some(order);
        Ok(())
    }

    /// The order this node holds, if any.
    pub fn sunset_order(&self) -> Option<SignedSunsetOrder> {
        self.inner.sunset.held.lock().unwrap().clone()
    }

    /// Takes an order from outside (an operator, a peer): adopts, stores and logs it when it
    /// verifies and stops this node sooner than the held one, or is the first.
    ///
    /// # Errors
    /// [`ApiError::SunsetNotConfigured`] without `[sunset] keys`; [`ApiError::SunsetRefused`]
    /// for bytes that are not a valid order; [`ApiError::Store`].
    pub async fn offer_sunset(&self, frame: &[u8]) -> Result<Offer, ApiError> {
        let Some(rules) = self.inner.sunset.rules.clone() else {
            return Err(ApiError::SunsetNotConfigured);
        };
        let held = self.sunset_order();
        let offer = rules
            .offer(frame, held.as_ref(), self.now())
            .map_err(ApiError::SunsetRefused)?;
        if let Offer::Adopted(order) = &offer {
            let store = self.inner.store.clone();
            let bytes = order.to_bytes();
            tokio::task::spawn_blocking(move || store.record_sunset_order(&bytes))
                .await
                .map_err(|_| ApiError::Internal)??;
            let o = &order.order;
            tracing::warn!(
                order = %o.id(),
                effective_at = o.effective_at.0,
                stops_this_node = rules.stop_time(order).is_some(),
                reason = %o.reason,
                "sunset order adopted"
            );
            *self.inner.sunset.held.lock().unwrap() = Some(order.clone());
        }
        Ok(offer)
    }

    /// Whether a sunset order has stopped this node (its time has come).
    pub fn stopped_by_sunset(&self) -> bool {
        let Some(rules) = &self.inner.sunset.rules else {
            return false;
        };
        rules.stopped(self.inner.sunset.held.lock().unwrap().as_ref(), self.now())
    }

    /// Whether the node should stop serving and erase its data now
    /// ([`crate::sunset_erasure`]): an order stops it, its time has come, and the wall clock
    /// is trusted (a forward step never erases anything; see `clock_guard`).
    pub fn sunset_due(&self) -> bool {
        self.stopped_by_sunset() && self.judge_clock().is_ok_and(|(_, v)| v.may_purge())
    }

    /// Resolves once [`Node::sunset_due`] holds, checking every second: `serve` then stops
    /// and erases.
    pub async fn sunset_reached(&self) {
        loop {
            if self.sunset_due() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// The other authority whose reports the held order ended here, once its time has come
    /// (`SunsetRules::ended_authority`): this node takes no more of them.
    pub fn ended_authority(&self) -> Option<ephemera_proto::signing::KeyId> {
        let rules = self.inner.sunset.rules.as_ref()?;
        rules.ended_authority(self.inner.sunset.held.lock().unwrap().as_ref(), self.now())
    }

    /// Erases the reports of the authority the held order ended here (its relayed uploads
    /// and their entries not yet published), once per process and only with the clock
    /// trusted. The background loop calls it; `Ok(0)` when there is nothing to do.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn erase_ended_authority(&self) -> Result<u64, NodeError> {
        let Some(authority) = self.ended_authority() else {
            return Ok(0);
        };
        if *self.inner.sunset.authority_erased.lock().unwrap() == Some(authority) {
            return Ok(0);
        }
        let (now, verdict) = self.judge_clock()?;
        if !verdict.may_purge() {
            return Ok(0);
        }
        // Every sync day a stored upload can be filed under.
        let retention = self.inner.core.policy().retention_days;
        let days = (now.day().0.saturating_sub(retention + 2)..=now.day().0 + 1)
            .map(ephemera_proto::DayNumber);
        let store = self.inner.store.as_ref();
        let found = ephemera_node_core::sunset::uploads_of(store, authority, days)?;
        let removed = store.remove_uploads(&found)?;
        *self.inner.sunset.authority_erased.lock().unwrap() = Some(authority);
        tracing::warn!(
            authority = %authority,
            uploads = removed,
            "a sunset order ended another authority here: its reports are erased"
        );
        Ok(removed)
    }

    /// Refuses phones' and staff's new work once a sunset order stopped the node: before
    /// anything in the request is read, so decoys get the same answer.
    ///
    /// # Errors
    /// [`ApiError::Sunset`].
    pub(super) fn refuse_after_sunset(&self) -> Result<(), ApiError> {
        if self.stopped_by_sunset() {
            Err(ApiError::Sunset)
        } else {
            Ok(())
        }
    }
}
