//! Peer scoring and bans: catch-up faults lower a peer's gossipsub application score, and a
//! peer whose score falls below the graylist threshold is banned for `ban_duration`.
//! Gossip verdicts are scored by gossipsub itself (see
//! [`crate::federation::validate::judge`] and `behaviour.rs`).

use libp2p::PeerId;
use tokio::time::Instant;

use super::EventLoop;
use crate::federation::behaviour::score_thresholds;
use crate::federation::metrics;

/// Score penalty per protocol fault in catch-up, as gossipsub application score (weight
/// 10): one fault costs as much as one invalid gossip message.
const SYNC_FAULT_PENALTY: f64 = -5.0;

impl EventLoop {
    pub(super) fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(peer)
    }

    /// Closes every connection to `peer` and refuses new ones until `until` (`None`: until
    /// unbanned); logged at WARN with `reason`.
    pub(super) fn ban(&mut self, peer: PeerId, until: Option<Instant>, reason: &'static str) {
        self.bans.insert(peer, until);
        self.swarm.behaviour_mut().block_list.block_peer(peer);
        tracing::warn!(%peer, reason, "peer banned");
    }

    pub(super) fn unban(&mut self, peer: PeerId) {
        self.bans.remove(&peer);
        self.swarm.behaviour_mut().block_list.unblock_peer(peer);
        tracing::info!(%peer, "peer unbanned");
    }

    /// Charges `peer` one catch-up protocol fault.
    pub(super) fn penalize(&mut self, peer: PeerId, reason: &'static str) {
        tracing::warn!(%peer, reason, "peer penalised: it broke the sync protocol");
        let score = self.app_scores.entry(peer).or_default();
        *score += SYNC_FAULT_PENALTY;
        let score = *score;
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
        self.check_score(&peer);
    }

    /// Bans `peer` if its score fell below the graylist threshold.
    pub(super) fn check_score(&mut self, peer: &PeerId) {
        if self.is_banned(peer) {
            return;
        }
        let Some(score) = self.swarm.behaviour().gossipsub.peer_score(peer) else {
            return;
        };
        if score < score_thresholds().graylist_threshold {
            metrics::banned();
            self.ban(
                *peer,
                Some(Instant::now() + self.config.ban_duration),
                "score below the graylist threshold",
            );
        }
    }

    /// Lifts expired bans and checks every connected peer's score.
    pub(super) fn maintain(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| until.is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.bans.remove(&peer);
            self.swarm.behaviour_mut().block_list.unblock_peer(peer);
            tracing::info!(%peer, "ban expired");
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.check_score(&peer);
        }
    }
}
