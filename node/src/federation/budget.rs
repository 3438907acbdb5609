//! The in-flight response budget: bytes of catch-up answers this node has built and not yet
//! written, per peer and in total.
//!
//! An answer reserves its largest possible size before it is built, from its peer's
//! semaphore and then from the total one, waiting up to
//! `FederationConfig::response_budget_wait`; past that the request is refused (left
//! unanswered: the peer sees a failed request and may retry). Once built and encoded, the
//! reservation shrinks to the frame's exact size and travels with the frame
//! ([`super::sync::OutgoingReply`]) until the frame is written or dropped. So a peer that
//! asks much and reads slowly pins at most its own share, and all peers together at most
//! the total.
//!
//! Configured peers (bootstrap and reserved peers) draw on their own per-peer budget only,
//! not on the total: strangers filling the total cannot starve them. The most bytes in
//! flight are therefore the total plus one per-peer budget per configured peer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budgets of the peers with answers in flight, and the total.
pub(crate) struct ResponseBudget {
    total: Arc<Semaphore>,
    total_cap: usize,
    per_peer_cap: usize,
    peers: HashMap<PeerId, Arc<Semaphore>>,
    wait: Duration,
    peak: Arc<AtomicUsize>,
}

/// What one answer task needs to reserve its bytes (cloned out of the event loop).
#[derive(Clone)]
pub(crate) struct Reserver {
    peer: Arc<Semaphore>,
    /// `None` for a configured peer.
    total: Option<Arc<Semaphore>>,
    total_cap: usize,
    per_peer_cap: usize,
    wait: Duration,
    peak: Arc<AtomicUsize>,
}

impl ResponseBudget {
    pub(crate) fn new(total_cap: usize, per_peer_cap: usize, wait: Duration) -> Self {
        ResponseBudget {
            total: Arc::new(Semaphore::new(total_cap)),
            total_cap,
            per_peer_cap,
            peers: HashMap::new(),
            wait,
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The reserver for one answer to `peer`; a `configured` peer does not draw on the
    /// total.
    pub(crate) fn reserver(&mut self, peer: PeerId, configured: bool) -> Reserver {
        let per_peer_cap = self.per_peer_cap;
        let peer = self
            .peers
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(per_peer_cap)))
            .clone();
        Reserver {
            peer,
            total: (!configured).then(|| self.total.clone()),
            total_cap: self.total_cap,
            per_peer_cap,
            wait: self.wait,
            peak: self.peak.clone(),
        }
    }

    /// Forgets a disconnected peer's semaphore once no answer of its is in flight.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        if self
            .peers
            .get(peer)
            .is_some_and(|s| s.available_permits() == self.per_peer_cap)
        {
            self.peers.remove(peer);
        }
    }

    /// Drops the semaphores of peers with nothing in flight that are not `connected`.
    pub(crate) fn prune(&mut self, connected: impl Fn(&PeerId) -> bool) {
        let cap = self.per_peer_cap;
        self.peers
            .retain(|peer, s| connected(peer) || s.available_permits() != cap);
    }

    /// Bytes of answers built for peers that are not configured and not yet written, now.
    pub(crate) fn in_flight(&self) -> usize {
        self.total_cap - self.total.available_permits()
    }

    /// The most bytes ever in flight at once for peers that are not configured.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Reserver {
    /// Reserves `bytes` (clamped to the per-peer cap) from the peer's budget and the total,
    /// waiting up to the configured time; `None` means refuse.
    pub(crate) async fn reserve(&self, bytes: usize) -> Option<Vec<OwnedSemaphorePermit>> {
        let bytes = u32::try_from(bytes.clamp(1, self.per_peer_cap)).ok()?;
        let acquire = async {
            let mut held = vec![self.peer.clone().acquire_many_owned(bytes).await.ok()?];
            if let Some(total) = &self.total {
                held.push(total.clone().acquire_many_owned(bytes).await.ok()?);
            }
            Some(held)
        };
        let held = tokio::time::timeout(self.wait, acquire)
            .await
            .ok()
            .flatten()?;
        self.note_peak();
        Some(held)
    }

    /// Adjusts `held` (from [`Self::reserve`]) to exactly `bytes`: returns the excess, or
    /// reserves the shortfall (waiting like [`Self::reserve`]). `None` means refuse (the
    /// answer is larger than the peer's whole budget, or the budget stayed full).
    pub(crate) async fn fit(
        &self,
        mut held: Vec<OwnedSemaphorePermit>,
        bytes: usize,
    ) -> Option<Vec<OwnedSemaphorePermit>> {
        let reserved = held.first().map_or(0, OwnedSemaphorePermit::num_permits);
        if bytes <= reserved {
            for permit in &mut held {
                drop(permit.split(reserved - bytes));
            }
            return Some(held);
        }
        if bytes > self.per_peer_cap {
            return None;
        }
        let more = self.reserve(bytes - reserved).await?;
        for (permit, extra) in held.iter_mut().zip(more) {
            permit.merge(extra);
        }
        Some(held)
    }

    fn note_peak(&self) {
        if let Some(total) = &self.total {
            let now = self.total_cap - total.available_permits();
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_are_capped_per_peer_and_in_total_and_return_when_dropped() {
        let mut budget = ResponseBudget::new(300, 200, Duration::from_millis(50));
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let ra = budget.reserver(a, false);
        let first = ra.reserve(150).await.expect("within both caps");
        // A's second answer would pass its own cap: refused after the wait.
        assert!(ra.reserve(100).await.is_none());
        // B fits in the total (150 + 150 = 300), C does not.
        let rb = budget.reserver(b, false);
        let second = rb.reserve(150).await.expect("within the total");
        assert_eq!(budget.in_flight(), 300);
        assert!(budget.reserver(c, false).reserve(10).await.is_none());
        // A configured peer is served from its own budget while the total is full.
        let configured = budget.reserver(PeerId::random(), true);
        assert!(configured.reserve(200).await.is_some());
        // Shrinking to the exact size gives the rest back at once.
        let first = ra.fit(first, 40).await.expect("smaller fits");
        assert_eq!(budget.in_flight(), 190);
        // Growing past the peer's cap is refused; within it, reserved.
        assert!(ra.fit(first, 500).await.is_none());
        assert_eq!(budget.in_flight(), 150, "a refused answer holds nothing");
        drop(second);
        assert_eq!(budget.in_flight(), 0);
        assert_eq!(budget.peak(), 300);
        budget.prune(|_| false);
        assert!(budget.peers.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_answer_gets_the_budget_when_it_frees() {
        let mut budget = ResponseBudget::new(100, 100, Duration::from_secs(5));
        let r = budget.reserver(PeerId::random(), false);
        let held = r.reserve(100).await.unwrap();
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.reserve(60).await.map(|h| h[0].num_permits()) })
        };
        tokio::task::yield_now().await;
        drop(held);
        assert_eq!(waiter.await.unwrap(), Some(60));
    }
}
