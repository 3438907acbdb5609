//! One catch-up round with one peer, run as its own task (see [`super::sync`] for the
//! protocol). The task talks to the swarm only through the event loop's internal channel
//! ([`Internal`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ephemera_proto::DayNumber;
use ephemera_proto::upload::{UploadId, VerifiedUpload};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use super::metrics;
use super::shared::{Internal, SessionReport, Shared, SyncFailure};
use super::store::{DayDigest, StoreError};
use super::sync::{SyncRequest, SyncResponse, ids_page_is_valid, window};
use super::validate::{Verdict, judge, store_verdict};

/// Most digest requests in one round (each covers up to `MAX_DIGEST_DAYS` days).
const MAX_DIGEST_REQUESTS: usize = 16;

struct Session {
    peer: PeerId,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Internal>,
    report: SessionReport,
}

/// Reconciles this node's store with `peer`'s over the retention window.
pub(crate) async fn run(
    peer: PeerId,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Internal>,
) -> Result<SessionReport, SyncFailure> {
    let mut session = Session {
        peer,
        shared,
        tx,
        report: SessionReport::default(),
    };
    session.round().await?;
    Ok(session.report)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SyncFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| SyncFailure::Stopped)
}

impl Session {
    async fn request(&self, request: SyncRequest) -> Result<SyncResponse, SyncFailure> {
        metrics::sync_request("outbound", request.kind());
        let (reply, response) = oneshot::channel();
        self.tx
            .send(Internal::SyncRequest {
                peer: self.peer,
                request,
                reply,
            })
            .map_err(|_| SyncFailure::Stopped)?;
        response.await.map_err(|_| SyncFailure::Stopped)?
    }

    /// Penalises the peer and ends the round.
    fn misbehaved(&self, reason: &'static str) -> SyncFailure {
        let _ = self.tx.send(Internal::Penalize {
            peer: self.peer,
            reason,
        });
        SyncFailure::Protocol(reason)
    }

    async fn round(&mut self) -> Result<(), SyncFailure> {
        let retention = self.shared.verifier.limits.retention_days;
        let today = self.shared.clock.now().day();
        let (oldest, newest) = window(today, retention);

        let theirs = self.their_digests(oldest, newest).await?;
        let store = self.shared.store.clone();
        let days: Vec<DayNumber> = theirs.keys().copied().collect();
        let ours: Vec<DayDigest> = blocking(move || {
            days.iter()
                .map(|d| store.day_digest(*d))
                .collect::<Result<_, StoreError>>()
        })
        .await??;
        let differing: Vec<DayNumber> = ours
            .iter()
            .filter(|ours| theirs.get(&ours.day) != Some(ours))
            .map(|ours| ours.day)
            .collect();
        self.report.days_differing = differing.len();
        for day in differing {
            let advertised = theirs.get(&day).map_or(0, |d| u64::from(d.count));
            self.reconcile_day(day, advertised).await?;
        }
        Ok(())
    }

    /// The peer's non-empty days in `oldest..=newest`, paging when it clamps the range.
    async fn their_digests(
        &self,
        oldest: DayNumber,
        newest: DayNumber,
    ) -> Result<BTreeMap<DayNumber, DayDigest>, SyncFailure> {
        let mut theirs = BTreeMap::new();
        let mut from = oldest;
        for _ in 0..MAX_DIGEST_REQUESTS {
            let response = self
                .request(SyncRequest::Digests { from, to: newest })
                .await?;
            let SyncResponse::Digests {
                from: got_from,
                to: got_to,
                days,
            } = response
            else {
                return Err(self.misbehaved("unexpected-response"));
            };
            let ascending = days.windows(2).all(|w| w[0].day < w[1].day);
            let in_range = days
                .iter()
                .all(|d| d.day >= got_from && d.day <= got_to && d.count > 0);
            if !ascending || !in_range {
                return Err(self.misbehaved("bad-digests"));
            }
            for digest in days {
                if digest.day >= oldest && digest.day <= newest {
                    theirs.insert(digest.day, digest);
                }
            }
            if got_to >= newest || got_to < from {
                break;
            }
            from = got_to.plus(1);
        }
        Ok(theirs)
    }

    /// Lists `day`'s ids at the peer page by page and fetches those missing here. The peer
    /// advertised `advertised` uploads for the day in its digest: listing more than that
    /// (with slack for uploads that arrive during the round) keeps a round going past the
    /// peer's own range, which no honest node does, and is penalised. Every page counts
    /// against the round's page budget.
    async fn reconcile_day(&mut self, day: DayNumber, advertised: u64) -> Result<(), SyncFailure> {
        let page = self.shared.page_size;
        let allowed = advertised
            .saturating_add(advertised / 4)
            .saturating_add(page as u64);
        let mut listed = 0u64;
        let mut after = None;
        loop {
            if self.report.pages >= self.shared.round_pages {
                return Err(SyncFailure::Budget("pages"));
            }
            self.report.pages += 1;
            let response = self
                .request(SyncRequest::Ids {
                    day,
                    after,
                    limit: page as u32,
                })
                .await?;
            let SyncResponse::Ids {
                day: got_day,
                ids,
                more,
            } = response
            else {
                return Err(self.misbehaved("unexpected-response"));
            };
            if got_day != day || !ids_page_is_valid(&ids, after, page) {
                return Err(self.misbehaved("bad-ids-page"));
            }
            listed = listed.saturating_add(ids.len() as u64);
            if listed > allowed || (more && listed >= allowed) {
                return Err(self.misbehaved("past-advertised-range"));
            }
            let store = self.shared.store.clone();
            let page_ids = ids.clone();
            // A failed read ends the round: an id this node cannot check is not "missing".
            let missing: Vec<UploadId> = blocking(move || {
                let mut missing = Vec::new();
                for id in page_ids {
                    if !store.contains(&id)? {
                        missing.push(id);
                    }
                }
                Ok::<_, StoreError>(missing)
            })
            .await??;
            let missing = self.shared.not_refused(missing);
            self.report.missing += missing.len();
            for chunk in missing.chunks(self.shared.fetch_batch) {
                self.fetch(chunk).await?;
            }
            match ids.last() {
                Some(last) if more => after = Some(*last),
                _ => return Ok(()),
            }
        }
    }

    /// Fetches, verifies and stores the uploads `ids`, asking again for what a size-capped
    /// response left out.
    async fn fetch(&mut self, ids: &[UploadId]) -> Result<(), SyncFailure> {
        let mut wanted: BTreeSet<UploadId> = ids.iter().copied().collect();
        while !wanted.is_empty() {
            let response = self
                .request(SyncRequest::FetchReports {
                    ids: wanted.iter().copied().collect(),
                })
                .await?;
            let SyncResponse::Reports { reports } = response else {
                return Err(self.misbehaved("unexpected-response"));
            };
            if reports.is_empty() {
                // The peer no longer holds them (purged since it listed them).
                return Ok(());
            }
            let shared = self.shared.clone();
            let asked = wanted.clone();
            let results: Vec<(Option<UploadId>, Verdict, Option<VerifiedUpload>)> =
                blocking(move || {
                    let now = shared.clock.now();
                    reports
                        .into_iter()
                        .map(|report| {
                            let raw = report.upload.content_id();
                            if !asked.contains(&raw) {
                                return (None, Verdict::Reject("not-requested"), None);
                            }
                            match shared.verifier.verify(report, now) {
                                Err(verdict) => (Some(raw), verdict, None),
                                Ok(verified) if verified.id() != raw => {
                                    (Some(raw), Verdict::Reject("non-canonical"), None)
                                }
                                Ok(verified) => {
                                    let copy = shared.republish_synced.then(|| verified.clone());
                                    let verdict = store_verdict(&*shared.store, verified);
                                    let copy = copy.filter(|_| verdict == Verdict::Accept);
                                    (Some(raw), verdict, copy)
                                }
                            }
                        })
                        .collect()
                })
                .await?;
            let mut progress = false;
            let mut rejected = false;
            let mut store_failed = false;
            for (id, verdict, republish) in results {
                metrics::sync_fetched(verdict);
                let judgement = judge(verdict);
                if let Some(id) = id {
                    progress |= wanted.remove(&id);
                    if judgement.refuse {
                        self.shared.refuse(id);
                    }
                }
                if verdict == Verdict::Accept {
                    self.report.stored += 1;
                }
                if judgement.penalise {
                    rejected = true;
                    tracing::info!(peer = %self.peer, reason = verdict.reason(), "rejected an upload received by catch-up");
                }
                store_failed |= judgement.abort;
                if let Some(upload) = republish {
                    let _ = self.tx.send(Internal::Republish(upload));
                }
            }
            if rejected {
                return Err(self.misbehaved("invalid-upload"));
            }
            if store_failed {
                return Err(SyncFailure::Store(StoreError(
                    "storing an upload received by catch-up failed".into(),
                )));
            }
            if !progress {
                return Err(self.misbehaved("no-progress"));
            }
        }
        Ok(())
    }
}
