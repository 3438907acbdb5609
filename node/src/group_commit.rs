//! Group commit for uploads, pipelined: nothing is acknowledged before it is on disk, and
//! the disk's flush of one group overlaps the writing of the next.
//!
//! The commit thread takes every upload queued while it was busy and writes them in one
//! store transaction ([`ReportStore::commit_uploads`]); it then hands the group's answers
//! to the flush thread and goes on with the next group at once. The flush thread takes
//! every group handed over meanwhile, flushes once (a flush covers every write before it
//! began, so all those groups) and only then answers them. Profiling the ingest benchmark
//! showed the commit thread as the serial path, idle for a fifth of its time waiting for
//! flushes when it flushed itself.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Weak};

use crate::store::{CommitOutcome, ReportStore, StoreError, UploadCommit};

/// Where an upload's outcome goes.
type Reply = tokio::sync::oneshot::Sender<Result<CommitOutcome, StoreError>>;

/// One upload waiting in the queue, with where to send its outcome.
type PendingCommit = (UploadCommit, Reply);

/// A written group waiting for its flush: each upload's reply and outcome.
type WrittenGroup = Vec<(Reply, CommitOutcome)>;

/// Most uploads written by one group commit.
const MAX_GROUP: usize = 4096;

/// The group-commit queue; its threads end when it is dropped.
pub(crate) struct Committer {
    queue: Sender<PendingCommit>,
}

fn stopped() -> StoreError {
    StoreError::Engine("commit thread stopped".to_owned())
}

fn closed() -> StoreError {
    StoreError::Engine("store closed".to_owned())
}

/// Every item queued now, after `first`, up to `max` in all.
fn drain<T>(rx: &Receiver<T>, first: T, max: usize) -> Vec<T> {
    let mut items = vec![first];
    while items.len() < max {
        match rx.try_recv() {
            Ok(next) => items.push(next),
            Err(_) => break,
        }
    }
    items
}

/// Writes groups; hands the written ones to the flush thread.
fn commit_loop(
    store: &Weak<dyn ReportStore>,
    rx: &Receiver<PendingCommit>,
    written: &Sender<WrittenGroup>,
) {
    while let Ok(first) = rx.recv() {
        let (commits, replies): (Vec<_>, Vec<_>) = drain(rx, first, MAX_GROUP).into_iter().unzip();
        let result = match store.upgrade() {
            Some(store) => store.commit_uploads(&commits),
            None => Err(closed()),
        };
        match result {
            Ok(outcomes) => {
                let group = replies.into_iter().zip(outcomes).collect();
                if let Err(unsent) = written.send(group) {
                    for (reply, _) in unsent.0 {
                        let _ = reply.send(Err(stopped()));
                    }
                }
            }
            // The transaction wrote nothing.
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Flushes once for every group written meanwhile, then answers them.
fn flush_loop(store: &Weak<dyn ReportStore>, rx: &Receiver<WrittenGroup>) {
    while let Ok(first) = rx.recv() {
        let groups = drain(rx, first, usize::MAX);
        let flushed = match store.upgrade() {
            Some(store) => store.flush(),
            None => Err(closed()),
        };
        for (reply, outcome) in groups.into_iter().flatten() {
            let _ = reply.send(match &flushed {
                Ok(()) => Ok(outcome),
                Err(e) => Err(e.clone()),
            });
        }
    }
}

impl Committer {
    /// Starts the commit and flush threads on `store`.
    pub(crate) fn start(store: &Arc<dyn ReportStore>) -> Committer {
        let (queue, rx) = channel::<PendingCommit>();
        let (written, written_rx) = channel::<WrittenGroup>();
        // Weak references: the node owns the store; the threads end when the node is
        // dropped (the queue's sender with it, then the commit thread's sender to the
        // flush thread), and never keep the database open after that.
        let commit_store = Arc::downgrade(store);
        let flush_store = Arc::downgrade(store);
        std::thread::Builder::new()
            .name("ephemera-commit".to_owned())
            .spawn(move || commit_loop(&commit_store, &rx, &written))
            .expect("spawning the commit thread");
        std::thread::Builder::new()
            .name("ephemera-flush".to_owned())
            .spawn(move || flush_loop(&flush_store, &written_rx))
            .expect("spawning the flush thread");
        Committer { queue }
    }

    /// Writes `commit` with whatever else is queued and returns once it is durable.
    pub(crate) async fn commit(&self, commit: UploadCommit) -> Result<CommitOutcome, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.send((commit, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// As [`Self::commit`], from a blocking context (federation's store calls).
    pub(crate) fn commit_blocking(
        &self,
        commit: UploadCommit,
    ) -> Result<CommitOutcome, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.send((commit, tx)).map_err(|_| stopped())?;
        rx.blocking_recv().map_err(|_| stopped())?
    }
}
