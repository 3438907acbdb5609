//! The venue-release exchange, the event loop's side (see `federation::venue_releases`):
//! asking peers with the ids held, answering their asks with what they lack, and peers'
//! releases handed to the node's keeper within their bounds. The keeper's calls (store
//! reads, signature checks) run in tasks, which report back over [`Internal`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ephemera_proto::venue::ReleaseId;
use libp2p::{PeerId, request_response};
use ring::digest;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::EventLoop;
use super::offer_budget::{OfferBudget, OfferRate};
use crate::federation::metrics;
use crate::federation::shared::Internal;
use crate::federation::venue_releases::{
    HaveRequest, MAX_HAVE_IDS, MAX_RELEASES_PER_ANSWER, Received, ReleaseAdmission, ReleasesAnswer,
};

/// Release checks a peer gets: four full answers in a burst, then four a second. A node
/// back from two weeks offline takes about 4,000 releases from one peer in a quarter hour.
pub(super) const RELEASE_RATE: OfferRate = OfferRate {
    burst: (4 * MAX_RELEASES_PER_ANSWER) as f64,
    refill: Duration::from_millis(250),
};
/// Answers under check at once, from all peers.
const MAX_ANSWERS_IN_FLIGHT: usize = 4;
/// Most release ids remembered as refused, so they are not fetched again. Cleared when
/// full.
const MAX_REFUSED: usize = 4_096;

/// The release state of the event loop.
pub(super) struct ReleaseSpread {
    /// Each connected peer's budget of release checks.
    budgets: HashMap<PeerId, OfferBudget>,
    /// Peers asked and not answered yet; `true`: ask again once answered (something new
    /// came meanwhile).
    asking: HashMap<PeerId, bool>,
    /// Releases refused here (another authority's, past retention, forged): listed with
    /// those held, so peers do not send them again.
    refused: Arc<Mutex<HashSet<ReleaseId>>>,
    /// Slots for answers under check.
    slots: Arc<Semaphore>,
}

impl ReleaseSpread {
    pub(super) fn new() -> Self {
        ReleaseSpread {
            budgets: HashMap::new(),
            asking: HashMap::new(),
            refused: Arc::new(Mutex::new(HashSet::new())),
            slots: Arc::new(Semaphore::new(MAX_ANSWERS_IN_FLIGHT)),
        }
    }
}

/// A frame's release id: SHA-256 of its bytes (`SignedVenueRelease::id`, for the canonical
/// frames nodes admit).
fn id_of(frame: &[u8]) -> ReleaseId {
    let mut id = [0u8; 32];
    id.copy_from_slice(digest::digest(&digest::SHA256, frame).as_ref());
    ReleaseId(id)
}

/// What a node lists in its ask: the newest `held`, then those refused, [`MAX_HAVE_IDS`]
/// in all.
fn have_list(mut held: Vec<ReleaseId>, refused: &HashSet<ReleaseId>) -> Vec<ReleaseId> {
    let skip = held.len().saturating_sub(MAX_HAVE_IDS);
    held.drain(..skip);
    let room = MAX_HAVE_IDS - held.len();
    held.extend(refused.iter().take(room).copied());
    held
}

/// Of `held` (oldest first), the newest the asker lacks, at most an answer's worth; and
/// whether the asker listed releases missing here (neither held nor refused).
fn answer_to(
    held: &[ReleaseId],
    asker_has: &[ReleaseId],
    refused: &HashSet<ReleaseId>,
) -> (Vec<ReleaseId>, bool) {
    let theirs: HashSet<&ReleaseId> = asker_has.iter().collect();
    let lacked = held
        .iter()
        .rev()
        .filter(|id| !theirs.contains(id))
        .take(MAX_RELEASES_PER_ANSWER)
        .copied()
        .collect();
    let ours: HashSet<&ReleaseId> = held.iter().collect();
    let missing_here = asker_has
        .iter()
        .any(|id| !ours.contains(id) && !refused.contains(id));
    (lacked, missing_here)
}

impl EventLoop {
    /// Asks `peer` for the releases it holds and this node lacks, unless an ask is already
    /// out (then asks again once it is answered).
    pub(super) fn ask_releases(&mut self, peer: PeerId) {
        let Some(keeper) = self.config.venue_releases.clone() else {
            return;
        };
        if self.is_banned(&peer) {
            return;
        }
        if let Some(again) = self.releases.asking.get_mut(&peer) {
            *again = true;
            return;
        }
        self.releases.asking.insert(peer, false);
        let refused = self.releases.refused.clone();
        let internal = self.internal_tx.clone();
        metrics::spawn(async move {
            let held = keeper.0.held().await;
            let have = have_list(
                held,
                &refused.lock().unwrap_or_else(PoisonError::into_inner),
            );
            let _ = internal.send(Internal::AskReleases { peer, have });
        });
    }

    /// Sends the ask a task prepared, if `peer` is still connected.
    pub(super) fn send_release_ask(&mut self, peer: PeerId, have: Vec<ReleaseId>) {
        if self.swarm.is_connected(&peer) && !self.is_banned(&peer) {
            self.swarm
                .behaviour_mut()
                .venue_releases
                .send_request(&peer, Received::Message(have));
        } else {
            self.releases.asking.remove(&peer);
        }
    }

    /// Asks every connected peer: this node holds a release they may lack (they ask back).
    pub(super) fn offer_releases(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.ask_releases(peer);
        }
    }

    /// Forgets a disconnected peer.
    pub(super) fn forget_release_peer(&mut self, peer: &PeerId) {
        self.releases.budgets.remove(peer);
        self.releases.asking.remove(peer);
    }

    /// A peer's ask: answered in a task with the newest releases it lacks; if it listed
    /// releases missing here, it is asked back.
    fn answer_release_ask(
        &mut self,
        peer: PeerId,
        request: HaveRequest,
        channel: request_response::ResponseChannel<ReleasesAnswer>,
    ) {
        let Received::Message(asker_has) = request else {
            // Who sent more than any ask, or something misshapen, gets no answer.
            return self.penalize(peer, "venue-release-ask-malformed");
        };
        let Some(keeper) = self.config.venue_releases.clone() else {
            let _ = self
                .swarm
                .behaviour_mut()
                .venue_releases
                .send_response(channel, Received::Message(Vec::new()));
            return;
        };
        let refused = self.releases.refused.clone();
        let internal = self.internal_tx.clone();
        metrics::spawn(async move {
            let held = keeper.0.held().await;
            let (lacked, missing_here) = {
                let refused = refused.lock().unwrap_or_else(PoisonError::into_inner);
                answer_to(&held, &asker_has, &refused)
            };
            let frames = keeper.0.frames(lacked).await;
            let _ = internal.send(Internal::AnswerReleases { channel, frames });
            if missing_here {
                let _ = internal.send(Internal::ReleasesWanted { peer });
            }
        });
    }

    /// Sends an answer a task prepared.
    pub(super) fn send_release_answer(
        &mut self,
        channel: request_response::ResponseChannel<ReleasesAnswer>,
        frames: Vec<Vec<u8>>,
    ) {
        let _ = self
            .swarm
            .behaviour_mut()
            .venue_releases
            .send_response(channel, Received::Message(frames));
    }

    /// A peer's answer: each release not refused before is checked within the peer's
    /// budget, one after another in a task, which reports what it stored.
    fn take_release_answer(&mut self, peer: PeerId, answer: ReleasesAnswer) {
        let again = self.releases.asking.remove(&peer).unwrap_or(false);
        let Some(keeper) = self.config.venue_releases.clone() else {
            return;
        };
        let Received::Message(frames) = answer else {
            return self.penalize(peer, "venue-release-answer-malformed");
        };
        let full = frames.len() == MAX_RELEASES_PER_ANSWER;
        let now = Instant::now();
        let budget = self
            .releases
            .budgets
            .entry(peer)
            .or_insert_with(|| OfferBudget::full(RELEASE_RATE, now));
        let mut checked = Vec::new();
        let mut over_budget = false;
        {
            let refused = self
                .releases
                .refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for frame in frames {
                let id = id_of(&frame);
                if refused.contains(&id) {
                    continue;
                }
                if !budget.take(now) {
                    over_budget = true;
                    break;
                }
                checked.push((id, frame));
            }
        }
        if over_budget {
            metrics::venue_releases("dropped-peer-budget");
            tracing::debug!(%peer, "venue releases dropped: peer over its budget");
        }
        if checked.is_empty() {
            if again {
                self.ask_releases(peer);
            }
            return;
        }
        let Ok(slot) = self.releases.slots.clone().try_acquire_owned() else {
            metrics::venue_releases("dropped-busy");
            tracing::debug!(%peer, "venue releases dropped: checks busy");
            return;
        };
        let refused = self.releases.refused.clone();
        let internal = self.internal_tx.clone();
        metrics::spawn(async move {
            let mut stored = 0;
            for (id, frame) in checked {
                match keeper.0.offered(frame).await {
                    ReleaseAdmission::Stored => {
                        metrics::venue_releases("stored");
                        stored += 1;
                    }
                    ReleaseAdmission::Known => metrics::venue_releases("known"),
                    ReleaseAdmission::Later => metrics::venue_releases("later"),
                    ReleaseAdmission::Refused { blame } => {
                        metrics::venue_releases(if blame { "invalid" } else { "not-kept" });
                        let mut refused = refused.lock().unwrap_or_else(PoisonError::into_inner);
                        if refused.len() >= MAX_REFUSED {
                            refused.clear();
                        }
                        refused.insert(id);
                        if blame {
                            let _ = internal.send(Internal::Penalize {
                                peer,
                                reason: "venue-release-invalid",
                            });
                        }
                    }
                }
            }
            drop(slot);
            let _ = internal.send(Internal::ReleasesTaken {
                peer,
                stored,
                ask_again: full || again || over_budget,
            });
        });
    }

    /// A task checked a peer's answer: what is new here goes on to every peer; a full (or
    /// cut) answer is followed by another ask.
    pub(super) fn releases_taken(&mut self, peer: PeerId, stored: usize, ask_again: bool) {
        if stored > 0 {
            tracing::info!(stored, "venue releases taken from a peer");
            self.offer_releases();
        }
        if ask_again {
            self.ask_releases(peer);
        }
    }

    pub(super) fn on_venue_releases(
        &mut self,
        event: request_response::Event<HaveRequest, ReleasesAnswer>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => self.answer_release_ask(peer, request, channel),
                Message::Response { response, .. } => self.take_release_answer(peer, response),
            },
            // An older peer does not speak the protocol, a connection closed: no penalty.
            Event::OutboundFailure { peer, error, .. } => {
                self.releases.asking.remove(&peer);
                tracing::debug!(%peer, %error, "venue-release ask not answered");
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound venue-release ask failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u16) -> ReleaseId {
        let mut id = [0u8; 32];
        id[..2].copy_from_slice(&n.to_be_bytes());
        ReleaseId(id)
    }

    #[test]
    fn an_ask_lists_the_newest_held_then_the_refused_within_the_cap() {
        let refused: HashSet<ReleaseId> = [id(60_000)].into();
        assert_eq!(
            have_list(vec![id(1), id(2)], &refused),
            vec![id(1), id(2), id(60_000)]
        );
        let held: Vec<ReleaseId> = (0..MAX_HAVE_IDS as u16 + 10).map(id).collect();
        let have = have_list(held.clone(), &refused);
        assert_eq!(have.len(), MAX_HAVE_IDS);
        assert_eq!(have, held[10..]);
    }

    #[test]
    fn an_answer_holds_the_newest_the_asker_lacks_and_tells_what_is_missing_here() {
        let held: Vec<ReleaseId> = (0..100).map(id).collect();
        let none = HashSet::new();
        // The asker holds the first ten: the newest 64 of the rest, newest first.
        let (lacked, missing) = answer_to(&held, &held[..10], &none);
        assert_eq!(lacked.len(), MAX_RELEASES_PER_ANSWER);
        assert_eq!(lacked[0], id(99));
        assert_eq!(lacked[63], id(36));
        assert!(!missing);
        // The asker holds one more, not held here: asked back, unless refused here.
        let mut asker = held.clone();
        asker.push(id(500));
        assert_eq!(answer_to(&held, &asker, &none), (Vec::new(), true));
        let refused: HashSet<ReleaseId> = [id(500)].into();
        assert_eq!(answer_to(&held, &asker, &refused), (Vec::new(), false));
    }

    #[test]
    fn a_frames_id_is_its_content_address() {
        let bytes = b"any frame";
        let expected = digest::digest(&digest::SHA256, bytes);
        assert_eq!(id_of(bytes).0.as_slice(), expected.as_ref());
    }
}
