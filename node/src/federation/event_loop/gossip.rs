//! Gossip: publishing this node's uploads, verifying received messages in blocking tasks,
//! and telling gossipsub what became of each.

use std::time::Duration;

use ephemera_proto::UnixTime;
use ephemera_proto::federated::{self, FederatedReport};
use ephemera_proto::upload::VerifiedUpload;
use libp2p::{PeerId, gossipsub};

use super::EventLoop;
use crate::federation::metrics;
use crate::federation::shared::Internal;
use crate::federation::validate::{Verdict, judge};

impl EventLoop {
    /// Publishes a phone's upload now, or after a random delay of up to
    /// `publish_delay_max` (which blurs, for a direct neighbour, where the report entered).
    pub(super) fn publish_later(&mut self, upload: VerifiedUpload) {
        let max = self.config.publish_delay_max;
        if max.is_zero() {
            self.publish(&upload);
            return;
        }
        let delay = Duration::from_millis(rand::random_range(
            0..=max.as_millis().min(u128::from(u64::MAX)) as u64,
        ));
        let tx = self.internal_tx.clone();
        metrics::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Internal::PublishNow(upload));
        });
    }

    /// Publishes an upload (a version 2 one with its revision key, a signed revision with
    /// its proof: [`federated::encode`]) on its authority's topic.
    pub(super) fn publish(&mut self, upload: &VerifiedUpload) {
        let authority = upload.upload().certificate.certificate.authority;
        let Some(topic) = self.topics.by_authority.get(&authority).cloned() else {
            // A verified upload is under a trusted authority, whose topic was joined.
            tracing::warn!("upload of an authority without a topic not published");
            metrics::published("error");
            return;
        };
        let data = federated::encode(&FederatedReport::from(upload.clone()));
        let result = self.swarm.behaviour_mut().gossipsub.publish(topic, data);
        let label = match result {
            Ok(_) => "ok",
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => "no-peers",
            Err(gossipsub::PublishError::Duplicate) => "duplicate",
            Err(e) => {
                tracing::warn!(error = %e, "gossip publish failed");
                "error"
            }
        };
        tracing::debug!(result = label, "upload published");
        metrics::published(label);
    }

    /// Publishes raw bytes, bypassing verification, on the topic of the authority they
    /// name (the first topic if they do not decode): only for tests of forged traffic.
    #[cfg(test)]
    pub(super) fn publish_raw(&mut self, bytes: Vec<u8>) {
        let named = federated::decode(&bytes).ok().and_then(|r| {
            let authority = r.upload.certificate.certificate.authority;
            self.topics.by_authority.get(&authority).cloned()
        });
        let Some(topic) = named.or_else(|| self.topics.by_authority.values().next().cloned())
        else {
            return;
        };
        let result = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes);
        tracing::debug!(ok = result.is_ok(), "published raw test bytes");
    }

    /// Verifies a received message in a blocking task, which reports an
    /// [`Internal::Verdict`]. Messages wait for a verification slot in arrival order
    /// (backpressure, not loss); a message on a topic this node did not join is ignored at
    /// once, and so is one past the pending-verification bound, which also starts a
    /// catch-up round with its sender to fill the gap at once.
    pub(super) fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let Some(&authority) = self.topics.by_hash.get(&message.topic) else {
            self.report_verdict(
                message_id,
                propagation_source,
                Verdict::Ignore("wrong-topic"),
            );
            return;
        };
        let kib = u32::try_from(message.data.len().div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let Ok(pending) = self.pending_kib.clone().try_acquire_many_owned(kib) else {
            self.report_verdict(
                message_id,
                propagation_source,
                Verdict::Ignore("overloaded"),
            );
            self.start_session(propagation_source);
            return;
        };
        let slots = self.verify_slots.clone();
        let shared = self.shared.clone();
        let tx = self.internal_tx.clone();
        metrics::spawn(async move {
            let id = message_id.clone();
            let Ok(slot) = slots.acquire_owned().await else {
                return;
            };
            let verdict = tokio::task::spawn_blocking(move || {
                let _held = (slot, pending);
                let now: UnixTime = shared.clock.now();
                shared
                    .verifier
                    .check_gossip(&*shared.store, &id.0, &message.data, authority, now)
            })
            .await
            .unwrap_or(Verdict::Ignore("internal"));
            let _ = tx.send(Internal::Verdict {
                message_id,
                source: propagation_source,
                verdict,
            });
        });
    }

    /// Tells gossipsub what became of a message (it forwards only accepted ones and scores
    /// rejected ones against `source`), then bans `source` if its score fell too low.
    pub(super) fn report_verdict(
        &mut self,
        message_id: gossipsub::MessageId,
        source: PeerId,
        verdict: Verdict,
    ) {
        let judgement = judge(verdict);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &source, judgement.acceptance);
        metrics::gossip(verdict);
        if verdict == Verdict::StoreFailed {
            metrics::store_error("gossip");
        }
        let reason = verdict.reason();
        match verdict {
            Verdict::Accept => {
                self.useful(source);
                tracing::debug!(peer = %source, "gossiped upload stored");
            }
            Verdict::Relay => {
                self.useful(source);
                tracing::debug!(peer = %source, "gossiped upload relayed");
            }
            Verdict::Reject(_) => {
                tracing::warn!(peer = %source, reason, "gossiped upload rejected; peer penalised")
            }
            Verdict::Ignore(_) | Verdict::Later(_) | Verdict::StoreFailed => {
                tracing::debug!(peer = %source, reason, "gossiped upload ignored");
            }
        }
        if judgement.penalise {
            self.check_score(&source);
        }
    }
}
