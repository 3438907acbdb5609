//! Peer scoring and bans: catch-up faults (and answers that cost this node work: malformed,
//! oversized, timed out) lower a peer's gossipsub application score, and a peer whose score
//! falls below the graylist threshold is banned for `ban_duration`. Gossip verdicts are
//! scored by gossipsub itself (see [`crate::federation::validate::judge`] and
//! `behaviour.rs`).
//!
//! Penalties decay: the application score halves every `penalty_half_life` (default
//! 5 minutes), and a peer
//! whose score has decayed to nothing is forgotten, so the list of penalised peers is
//! pruned and never grows past [`MAX_PENALISED`]. A peer is therefore not banned again the
//! moment its ban ends (two faults decay below the graylist threshold within the ban), and a
//! peer that erred once long ago is whole again. Every penalty and every ban is logged at
//! WARN with its reason (peer ids only).

use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

use super::EventLoop;
use crate::federation::behaviour::score_thresholds;
use crate::federation::metrics;

/// Score penalty per protocol fault in catch-up, as gossipsub application score (weight
/// 10): one fault costs as much as one invalid gossip message.
pub(super) const SYNC_FAULT_PENALTY: f64 = -5.0;
/// Penalty for a request that timed out: the peer kept a stream and this node waiting.
/// Small (-0.5 after weight), since an honest peer under load can be slow, and any negative
/// score takes a peer out of the gossip mesh: a long-connected quiet peer has about +1 from
/// its time in the mesh, so one or two timeouts leave its gossip alone (see
/// `node/src/federation/mod.rs` on why a negative score silences gossip).
pub(super) const TIMEOUT_PENALTY: f64 = -0.05;
/// A score this close to zero is forgotten.
const FORGET_BELOW: f64 = 0.05;
/// Most peers remembered with a penalty; past it the mildest are forgotten first.
const MAX_PENALISED: usize = 4096;

/// One application score, decaying from when it was last set.
#[derive(Clone, Copy, Debug)]
pub(super) struct Penalty {
    score: f64,
    at: Instant,
    reason: &'static str,
}

impl Penalty {
    /// The score at `now`, after decay.
    fn at(&self, now: Instant, half_life: Duration) -> f64 {
        let halves = now.duration_since(self.at).as_secs_f64() / half_life.as_secs_f64();
        self.score * 0.5f64.powf(halves)
    }
}

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
        self.charge(peer, SYNC_FAULT_PENALTY, reason);
    }

    /// Lowers `peer`'s application score by `penalty` (negative), logs it, and bans the
    /// peer if its score fell below the graylist threshold.
    pub(super) fn charge(&mut self, peer: PeerId, penalty: f64, reason: &'static str) {
        let now = Instant::now();
        let half_life = self.config.penalty_half_life;
        let score = self
            .app_scores
            .get(&peer)
            .map_or(0.0, |p| p.at(now, half_life))
            + penalty;
        tracing::warn!(%peer, reason, score, "peer penalised");
        metrics::penalised(reason);
        self.app_scores.insert(
            peer,
            Penalty {
                score,
                at: now,
                reason,
            },
        );
        if self.app_scores.len() > MAX_PENALISED {
            self.forget_mildest(now);
        }
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
            let reason = self
                .app_scores
                .get(peer)
                .map_or("invalid-gossip", |p| p.reason);
            let duration = self.config.ban_duration;
            tracing::warn!(%peer, score, last_reason = reason, ?duration, "score below the graylist threshold");
            metrics::banned();
            self.ban(*peer, Some(Instant::now() + duration), reason);
        }
    }

    /// Lifts expired bans, decays application scores (forgetting those decayed to nothing),
    /// and checks every connected peer's score.
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
        self.decay_scores(now);
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.check_score(&peer);
        }
        let swarm = &self.swarm;
        self.budget.prune(|p| swarm.is_connected(p));
        self.evict_idle_strangers();
        metrics::response_bytes(self.budget.in_flight(), self.budget.peak());
    }

    /// Hands gossipsub each penalised peer's decayed score; forgets scores near zero.
    fn decay_scores(&mut self, now: Instant) {
        let mut forgotten = Vec::new();
        let half_life = self.config.penalty_half_life;
        for (peer, penalty) in &self.app_scores {
            let score = penalty.at(now, half_life);
            let score = if score.abs() < FORGET_BELOW {
                forgotten.push(*peer);
                0.0
            } else {
                score
            };
            self.swarm
                .behaviour_mut()
                .gossipsub
                .set_application_score(peer, score);
        }
        for peer in forgotten {
            self.app_scores.remove(&peer);
        }
    }

    /// Forgets the mildest penalties until the list is back within [`MAX_PENALISED`].
    fn forget_mildest(&mut self, now: Instant) {
        let half_life = self.config.penalty_half_life;
        let mut by_score: Vec<(PeerId, f64)> = self
            .app_scores
            .iter()
            .map(|(p, s)| (*p, s.at(now, half_life).abs()))
            .collect();
        by_score.sort_by(|a, b| a.1.total_cmp(&b.1));
        let excess = self.app_scores.len().saturating_sub(MAX_PENALISED);
        for (peer, _) in by_score.into_iter().take(excess) {
            self.app_scores.remove(&peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalties_halve_every_half_life() {
        let half_life = crate::federation::FederationConfig::default().penalty_half_life;
        let start = Instant::now();
        let p = Penalty {
            score: -200.0,
            at: start,
            reason: "test",
        };
        assert_eq!(p.at(start, half_life), -200.0);
        assert!((p.at(start + half_life, half_life) + 100.0).abs() < 1e-9);
        // A 10-minute ban: two faults (-100 after weight) have decayed past the graylist
        // threshold (-80) by the time it ends.
        let two_faults = Penalty {
            score: 2.0 * SYNC_FAULT_PENALTY,
            at: start,
            reason: "test",
        };
        let ban = crate::federation::FederationConfig::default().ban_duration;
        let weighted_after_ban = 10.0 * two_faults.at(start + ban, half_life);
        assert!(weighted_after_ban > score_thresholds().graylist_threshold);
        assert!(p.at(start + 20 * half_life, half_life).abs() < FORGET_BELOW);
    }
}
