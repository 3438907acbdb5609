//! Gossiped messages waiting for verification, checked in batches: a blocking task per
//! core at most takes every message waiting (up to [`MAX_BATCH`]), checks their
//! certificates' signatures together and stores the valid ones in shared group commits
//! ([`Verifier::check_gossip_batch`](crate::federation::validate::Verifier::check_gossip_batch)),
//! and reports each verdict to the event loop. Arrival order is kept; a burst makes larger
//! batches, which is when batching saves the most.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use ephemera_proto::signing::KeyId;
use libp2p::{PeerId, gossipsub};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::federation::shared::{Internal, Shared};
use crate::federation::validate::GossipMessage;

/// Most messages checked in one batch: past about 64 the batch equation saves little more,
/// and a batch with a bad signature is split in halves.
const MAX_BATCH: usize = 64;

/// A received message waiting for its verdict.
pub(super) struct Queued {
    /// Its gossipsub id.
    pub message_id: gossipsub::MessageId,
    /// The peer it came from.
    pub source: PeerId,
    /// The message.
    pub message: gossipsub::Message,
    /// The authority of the topic it came on.
    pub authority: KeyId,
    /// Its share of the pending-verification bound, given back with the verdict.
    pub _held: OwnedSemaphorePermit,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Queued>,
    /// Blocking tasks draining `waiting`.
    running: usize,
}

/// The queue and its draining tasks.
pub(super) struct VerifyQueue {
    state: Mutex<State>,
    workers: usize,
    shared: Arc<Shared>,
    verdicts: mpsc::UnboundedSender<Internal>,
}

impl VerifyQueue {
    /// A queue drained by at most one blocking task per core, reporting to `verdicts`.
    pub(super) fn new(shared: Arc<Shared>, verdicts: mpsc::UnboundedSender<Internal>) -> Self {
        VerifyQueue {
            state: Mutex::new(State::default()),
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            shared,
            verdicts,
        }
    }

    /// Queues `queued`, starting a draining task if fewer than one per core run.
    pub(super) fn push(self: &Arc<Self>, queued: Queued) {
        let mut state = self.lock();
        state.waiting.push_back(queued);
        if state.running < self.workers {
            state.running += 1;
            let queue = self.clone();
            tokio::task::spawn_blocking(move || queue.drain());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks batches until the queue is empty.
    fn drain(&self) {
        // Counted out under the lock when the queue is found empty, or on a panic.
        let mut running = Running {
            queue: self,
            counted: true,
        };
        loop {
            let batch: Vec<Queued> = {
                let mut state = self.lock();
                if state.waiting.is_empty() {
                    state.running -= 1;
                    running.counted = false;
                    return;
                }
                let take = state.waiting.len().min(MAX_BATCH);
                state.waiting.drain(..take).collect()
            };
            let messages: Vec<GossipMessage<'_>> = batch
                .iter()
                .map(|q| GossipMessage {
                    message_id: &q.message_id.0,
                    data: &q.message.data,
                    topic: q.authority,
                })
                .collect();
            let now = self.shared.clock.now();
            let verdicts =
                self.shared
                    .verifier
                    .check_gossip_batch(&*self.shared.store, &messages, now);
            drop(messages);
            for (queued, verdict) in batch.into_iter().zip(verdicts) {
                let _ = self.verdicts.send(Internal::Verdict {
                    message_id: queued.message_id,
                    source: queued.source,
                    verdict,
                });
            }
        }
    }
}

/// A draining task's place in the count, given back if it panics.
struct Running<'a> {
    queue: &'a VerifyQueue,
    counted: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.queue.lock().running -= 1;
        }
    }
}
