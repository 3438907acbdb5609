//! Publication and retention, driven: cuts planned by the core are written, flushed,
//! listed and cached; the purge and the background loop.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use ephemera_node_core::publication::sort_export_names;
use ephemera_node_core::store::{PurgeCounts, StoreError};
use ephemera_proto::SchemeKind;
use ephemera_proto::batch::{BatchId, BatchIndex, BatchIndexEntry};
use ephemera_proto::rollover::KeyRole;

use crate::api::error::ApiError;
use crate::api::types::AuthorityInfo;
use crate::batch_cache::{BatchCache, CachedBatch};
use crate::config::StoreBackend;

use super::{INDEX_PAGE, Node, NodeError, Unflushed};

/// Longest one round of publication to the object store may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(120);

impl Node {
    /// Cuts the batch boundary due now, if any: signs, stores and caches the batches.
    /// A failure counts in `ephemera_cut_failures_total`.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub async fn cut_due(&self) -> Result<Vec<BatchIndexEntry>, NodeError> {
        let result = self.cut_due_unmetered().await;
        if result.is_err() {
            self.inner.metrics.cut_failed();
        }
        result
    }

    async fn cut_due_unmetered(&self) -> Result<Vec<BatchIndexEntry>, NodeError> {
        let _publication = self.inner.publication.lock().await;
        let (now, clock) = self.judge_clock()?;
        if !clock.may_cut()
            // On a shared database the store lets one cut through per boundary, so nodes of
            // a group (one batch key by design) are no twins to stop.
            || (!self.inner.twins.may_cut()
                && self.inner.config.storage.backend != StoreBackend::Postgres)
            || self.inner.core.cutter().boundary_at(now) < self.inner.first_cut
        {
            return Ok(Vec::new());
        }
        let store = &self.inner.store;
        // Signing, GAEN exports and token filters take CPU: off the async workers.
        let node = self.clone();
        let planned = tokio::task::spawn_blocking(move || {
            node.inner.core.plan_cut(node.inner.store.as_ref(), now)
        })
        .await
        .map_err(|_| NodeError::Task)??;
        let Some(cut) = planned else {
            return Ok(Vec::new());
        };
        let commit = cut.commit;
        // Hidden until flushed. When the commit or the flush fails they stay hidden (with
        // any earlier ones still hidden) until a later cut's flush makes them durable too.
        let before = {
            let mut unflushed = self.inner.unflushed.lock().expect("not poisoned");
            let before = unflushed.clone();
            let first = commit.batches.first().map(|b| b.entry.sequence);
            unflushed.from_sequence = unflushed.from_sequence.or(first);
            unflushed
                .exports
                .extend(commit.exports.iter().map(|e| e.name.clone()));
            before
        };
        match store.commit_cut(&commit) {
            Ok(()) => {}
            // Another node of the group (one PostgreSQL database) published this boundary:
            // its batches are the log's; this plan is dropped and nothing of it was written.
            Err(StoreError::CutSuperseded) => {
                *self.inner.unflushed.lock().expect("not poisoned") = before;
                tracing::debug!("another node of the group published this batch boundary");
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        }
        let flush_store = store.clone();
        tokio::task::spawn_blocking(move || flush_store.flush())
            .await
            .map_err(|_| NodeError::Task)??;
        *self.inner.unflushed.lock().expect("not poisoned") = Unflushed::default();
        // Everything committed is durable now, earlier cuts left unflushed included.
        if let Some(head) = store.chain_head()? {
            self.head_published(head);
        }
        let mut entries = Vec::with_capacity(commit.batches.len());
        for batch in commit.batches {
            self.inner
                .metrics
                .batch_published(u64::from(batch.entry.keys + batch.entry.tokens));
            self.inner
                .batch_cache
                .insert(batch.entry.id, Bytes::from(batch.bytes));
            if let Some(filter) = batch.filter {
                self.cache_filter(batch.entry.id, filter);
            }
            entries.push(batch.entry);
        }
        self.inner.metrics.last_cut(cut.boundary.0);
        tracing::info!(
            batches = entries.len(),
            boundary = cut.boundary.0,
            "batches published"
        );
        Ok(entries)
    }

    /// A batch ready to serve: from memory when cached, else read from storage and cached.
    ///
    /// # Errors
    /// [`ApiError::Store`].
    pub fn batch(&self, id: &BatchId) -> Result<Option<CachedBatch>, ApiError> {
        if let Some(batch) = self.inner.batch_cache.get(id) {
            return Ok(Some(batch));
        }
        let Some(bytes) = self.inner.store.batch(id)? else {
            return Ok(None);
        };
        Ok(Some(self.inner.batch_cache.insert(*id, Bytes::from(bytes))))
    }

    /// The token filter of batch `id` (`docs/PROTOCOL.md` §6.5), ready to serve: from
    /// memory when cached, else read from storage (where its cut put it) and cached. A read
    /// never builds one, so no request can spend the CPU of building a filter. `None` when
    /// there is no such batch or it has no filter: no tokens, or cut before filters were
    /// stored (phones then fetch the batch itself).
    ///
    /// # Errors
    /// [`ApiError::Store`].
    pub fn token_filter(&self, id: &BatchId) -> Result<Option<CachedBatch>, ApiError> {
        if let Some(filter) = self.inner.filter_cache.get(id) {
            return Ok(Some(filter));
        }
        Ok(self
            .inner
            .store
            .token_filter(id)?
            .map(|filter| self.cache_filter(*id, filter)))
    }

    /// Caches the token filter of batch `id`, served with its own SHA-256 as its `ETag`.
    fn cache_filter(&self, id: BatchId, filter: Vec<u8>) -> CachedBatch {
        let tag = BatchId(
            ring::digest::digest(&ring::digest::SHA256, &filter)
                .as_ref()
                .try_into()
                .expect("32 bytes"),
        );
        self.inner
            .filter_cache
            .insert_tagged(id, &tag, Bytes::from(filter))
    }

    /// The in-memory batch cache (the HTTP fast path reads it without touching storage).
    pub fn batch_cache(&self) -> &BatchCache {
        &self.inner.batch_cache
    }

    /// The memory files of the cached bodies, for connections' `sendfile`.
    pub(crate) fn body_files(&self) -> &Arc<crate::send_file::BodyFiles> {
        &self.inner.body_files
    }

    /// A GAEN export zip by file name.
    ///
    /// # Errors
    /// [`ApiError::Store`].
    pub fn export(&self, name: &str) -> Result<Option<Bytes>, ApiError> {
        Ok(self.inner.store.export(name)?.map(Bytes::from))
    }

    /// GAEN's `index.txt`: one `v1/exports/<file>` path per line, oldest first.
    ///
    /// # Errors
    /// [`ApiError::Store`].
    pub fn export_index(&self) -> Result<String, ApiError> {
        let mut names = self.inner.store.export_names()?;
        {
            let unflushed = self.inner.unflushed.lock().expect("not poisoned");
            names.retain(|n| !unflushed.exports.contains(n));
        }
        sort_export_names(&mut names);
        Ok(names.iter().map(|n| format!("v1/exports/{n}\n")).collect())
    }

    /// A page of the batch index after `after`: batches whose cut is durable (a cut's
    /// batches are listed only once its flush returned), every batch-key rollover this
    /// node announced, so a phone that pinned any of its batch keys follows to the next,
    /// and the signed head, read before the page so the page reaches at least to it.
    ///
    /// # Errors
    /// [`ApiError::Store`].
    pub fn batch_index(&self, after: u64) -> Result<BatchIndex, ApiError> {
        let head = self.signed_head();
        let mut batches = self.inner.store.batch_index(after, INDEX_PAGE)?;
        if let Some(hidden) = self
            .inner
            .unflushed
            .lock()
            .expect("not poisoned")
            .from_sequence
        {
            batches.retain(|b| b.sequence < hidden);
        }
        let next_cursor = batches.last().map_or(after, |b| b.sequence);
        let key_rollovers = self
            .inner
            .core
            .keys()
            .rollovers
            .iter()
            .filter(|r| r.role == KeyRole::Batch)
            .cloned()
            .collect();
        Ok(BatchIndex {
            batches,
            next_cursor,
            key_rollovers,
            head: Some(head),
            token_filters: true,
            sunset: self.sunset_order(),
        })
    }

    /// The public keys and settings phones and peers need.
    pub fn authority_info(&self) -> AuthorityInfo {
        let keys = self.inner.core.keys();
        AuthorityInfo {
            authority_public_key: keys.authority.public_key().to_hex(),
            authority_key_id: keys.authority.public_key().key_id().to_string(),
            batch_public_key: keys.batch.public_key().to_hex(),
            batch_key_id: keys.batch.public_key().key_id().to_string(),
            export_public_key_pem: keys.export.public_key_pem(),
            trusted_authorities: self
                .inner
                .core
                .trusted()
                .iter()
                .map(|k| k.to_hex())
                .collect(),
            accepted_schemes: self
                .inner
                .config
                .publication
                .accept_schemes
                .iter()
                .map(|s| match s {
                    SchemeKind::Gaen => "gaen".to_owned(),
                    SchemeKind::Pet => "pet".to_owned(),
                })
                .collect(),
            batch_period_seconds: self.inner.config.publication.batch_period_seconds,
            retention_days: self.inner.config.retention.days,
        }
    }

    // ---- object storage ---------------------------------------------------------------

    /// Publishes to `publisher` after each cut and purge from now on (`[publication]
    /// object_store`, or a test's store). False when a publisher was already set.
    pub fn publish_to(&self, publisher: crate::publish::Publisher) -> bool {
        self.inner.publisher.set(Arc::new(publisher)).is_ok()
    }

    /// One round of publication, if a publisher is set: writes what is new, deletes what
    /// was purged, within 120 s (what is left is retried next round). Never
    /// holds the cut lock, so uploads and cuts go on whatever the store does.
    pub async fn publish(&self) -> Option<crate::publish::Published> {
        let publisher = self.inner.publisher.get()?.clone();
        match tokio::time::timeout(PUBLISH_TIMEOUT, publisher.publish(self)).await {
            Ok(Ok(round)) => {
                if round.written + round.deleted + round.failed > 0 {
                    tracing::info!(
                        written = round.written,
                        bytes = round.bytes,
                        deleted = round.deleted,
                        failed = round.failed,
                        "published to the object store"
                    );
                }
                return Some(round);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "publication to the object store failed; retried");
            }
            Err(_) => tracing::warn!("publication to the object store timed out; retried"),
        }
        self.inner.metrics.publication(&crate::publish::Published {
            failed: 1,
            ..Default::default()
        });
        None
    }

    // ---- retention ------------------------------------------------------------------

    /// The retention report at the node's clock (`ephemera-node retention report`).
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn retention_report(
        &self,
    ) -> Result<Vec<ephemera_node_core::retention::RetentionLine>, NodeError> {
        Ok(ephemera_node_core::retention::retention_report(
            self.inner.store.as_ref(),
            self.inner.core.policy().audit_retention_days,
            self.now(),
        )?)
    }

    /// Deletes everything past its retention or lifetime, and updates storage metrics.
    /// Deletes nothing while the wall clock is stepped forward (`judge_clock`).
    /// Each run counts in `ephemera_purge_runs_total{result}`.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn purge(&self) -> Result<PurgeCounts, NodeError> {
        let result = self.purge_unmetered();
        self.inner.metrics.purge_run(result.is_ok(), self.now().0);
        result
    }

    fn purge_unmetered(&self) -> Result<PurgeCounts, NodeError> {
        let (now, clock) = self.judge_clock()?;
        if !clock.may_purge() {
            return Ok(PurgeCounts::default());
        }
        // Reports, batches and keys are the publisher's to purge; the audit trail, code
        // statuses and counters the console's (`[storage] role`).
        let role = self.inner.config.storage.role;
        let counts = if role.publishes() {
            self.inner.core.purge(self.inner.store.as_ref(), now)?
        } else {
            PurgeCounts::default()
        };
        if role.runs_console() {
            self.purge_console_records(now)?;
        }
        if counts.batches > 0 {
            let live: std::collections::HashSet<BatchId> = self
                .inner
                .store
                .batch_index(0, usize::MAX)?
                .into_iter()
                .map(|e| e.id)
                .collect();
            self.inner.batch_cache.retain(|id| live.contains(id));
            self.inner.filter_cache.retain(|id| live.contains(id));
        }
        let metrics = &self.inner.metrics;
        metrics.purged("upload", counts.uploads);
        metrics.purged("certificate", counts.certificates);
        metrics.purged("batch", counts.batches);
        metrics.purged("export", counts.exports);
        metrics.purged("code", counts.codes);
        metrics.purged("queued", counts.queued);
        metrics.purged("venue-release", counts.venue_releases);
        self.update_storage_metrics()?;
        if counts.total() > 0 {
            tracing::info!(
                uploads = counts.uploads,
                certificates = counts.certificates,
                batches = counts.batches,
                exports = counts.exports,
                codes = counts.codes,
                queued = counts.queued,
                venue_releases = counts.venue_releases,
                "retention purge"
            );
        }
        Ok(counts)
    }

    /// The console's share of a purge: audit records past retention (behind a signed
    /// anchor), unused codes past their day marked expired, old counters and code statuses.
    fn purge_console_records(&self, now: ephemera_proto::UnixTime) -> Result<(), NodeError> {
        let audit_records = self.purge_audit(now)?;
        if audit_records > 0 {
            tracing::info!(audit_records, "audit records past retention purged");
        }
        // Issued codes past their expiry day are marked expired and counted, once, before
        // their statuses can go.
        let expired_codes = self.inner.store.expire_code_statuses(now.day())?;
        if expired_codes > 0 {
            tracing::info!(
                expired_codes,
                "unused codes past their expiry day marked expired"
            );
        }
        let stats_days = self.inner.config.authority.stats_days;
        let counters = self.inner.store.purge_stats(now.day().minus(stats_days))?;
        if counters > 0 {
            tracing::info!(counters, "statistics counters past stats_days purged");
        }
        // A code's status is kept as long as the audit records that name its reference.
        let audit_days = self.inner.core.policy().audit_retention_days;
        let code_statuses = self
            .inner
            .store
            .purge_code_statuses(now.day().minus(audit_days))?;
        if code_statuses > 0 {
            tracing::info!(
                code_statuses,
                "code statuses past the audit retention purged"
            );
        }
        Ok(())
    }

    /// Refreshes the storage gauges and the free space of the data folder.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn update_storage_metrics(&self) -> Result<(), NodeError> {
        let store = &self.inner.store;
        // Only a role that may read uploads counts them (the others' gauge stays at 0).
        let uploads = if self.inner.config.storage.role.publishes() {
            store.upload_count()?
        } else {
            0
        };
        self.inner.metrics.storage(store.size_on_disk()?, uploads);
        self.inner.disk_reserve.below(&self.inner.metrics);
        Ok(())
    }

    /// Sets the metrics that describe the node rather than count events: build info,
    /// settings, start time, the newest durable cut and free disk.
    pub(super) fn init_metrics(&self) {
        let config = &self.inner.config;
        let schemes: Vec<&'static str> = config
            .publication
            .accept_schemes
            .iter()
            .map(|s| match s {
                SchemeKind::Gaen => "gaen",
                SchemeKind::Pet => "pet",
            })
            .collect();
        let metrics = &self.inner.metrics;
        metrics.node_info(
            ephemera_node_core::store::STORE_FORMAT,
            &schemes,
            config.publication.batch_period_seconds,
            self.now().0,
        );
        metrics.clock(self.now().0, false);
        metrics.authorities(self.inner.core.trusted().iter().map(|key| key.key_id()));
        if config.storage.role.publishes() {
            match self.inner.store.batch_index(0, usize::MAX) {
                Ok(index) => {
                    if let Some(last) = index.last() {
                        metrics.last_cut(last.created_at.0);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the batch index for metrics"),
            }
        }
        // Free disk and the reserve's state from the start (a folder that cannot be measured
        // is logged once, and the reserve then stays off).
        self.inner.disk_reserve.below(metrics);
    }

    /// Runs the batch and purge loops until `stop` turns true.
    pub async fn run_background(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let purge_every = Duration::from_secs(self.inner.config.retention.purge_period_seconds);
        let mut next_purge = tokio::time::Instant::now();
        // Whether the last round of publication wrote everything (else retried each turn).
        let mut publication_clean = false;
        let mut disk_ticks = tokio::time::interval(super::disk_reserve::SAMPLE_EVERY);
        disk_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let role = self.inner.config.storage.role;
            // Today's and tomorrow's blind-token keys, made ahead on their own task, where
            // phones verify.
            if self.inner.config.authority.blind_token_keys && role.takes_uploads() {
                self.refresh_token_keys();
            }
            let mut changed = if role.publishes() {
                match self.cut_due().await {
                    Ok(entries) => !entries.is_empty(),
                    Err(e) => {
                        tracing::error!(error = %e, "batch cut failed");
                        false
                    }
                }
            } else {
                false
            };
            if tokio::time::Instant::now() >= next_purge {
                match self.purge() {
                    Ok(counts) => changed |= counts.batches + counts.exports > 0,
                    Err(e) => tracing::error!(error = %e, "retention purge failed"),
                }
                if role.publishes()
                    && let Err(e) = self.erase_ended_authority()
                {
                    tracing::error!(error = %e, "erasing an ended authority's reports failed");
                }
                next_purge = tokio::time::Instant::now() + purge_every;
            }
            // After a change, and at each purge period (retrying what failed).
            if role.publishes() && (changed || !publication_clean) {
                publication_clean = self.publish().await.is_some_and(|r| r.failed == 0);
            }
            let now = self.now();
            let to_boundary = self
                .inner
                .core
                .cutter()
                .next_boundary(now)
                .0
                .saturating_sub(now.0);
            let wait = Duration::from_secs(to_boundary.clamp(1, 60))
                .min(next_purge.saturating_duration_since(tokio::time::Instant::now()))
                .max(Duration::from_millis(200));
            let until = tokio::time::Instant::now() + wait;
            // Free disk is sampled here every second, so no phone request is what notices
            // (and logs) a change of the reserve's state.
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    _ = disk_ticks.tick() => {
                        self.inner.disk_reserve.below(&self.inner.metrics);
                    }
                    _ = stop.changed() => return,
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ephemera_node_core::keys::NodeKeys;
    use ephemera_node_core::store::{MemoryReportStore, ReportStore as _};
    use ephemera_proto::UnixTime;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::NodeConfig;

    /// A cut whose flush fails is not listed (a crash could still take it back, and the
    /// next cut would reuse its sequence numbers); the next cut that flushes lists both.
    #[tokio::test]
    async fn batches_are_listed_only_once_their_cut_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = NodeKeys::load_or_create(dir.path(), &mut rand::rng()).unwrap();
        let config = NodeConfig {
            data_dir: dir.path().to_owned(),
            ..NodeConfig::default()
        };
        let period = config.publication.batch_period_seconds;
        let clock = ManualClock::new(UnixTime(1_700_000_000 / period * period + 1));
        let store = Arc::new(MemoryReportStore::new());
        let node = Node::with_store(config, Arc::new(clock.clone()), store.clone(), keys);
        let next_boundary = || clock.advance(period);

        next_boundary();
        let first = node.cut_due().await.unwrap();
        assert_eq!(
            first.len(),
            1,
            "an empty boundary still gets a padded batch"
        );
        assert_eq!(node.batch_index(0).unwrap().batches, first);

        let first_boundary = first[0].created_at.0;
        let text = node.metrics().render();
        assert!(text.contains("\nephemera_cut_failures_total 0\n"), "{text}");
        assert!(text.contains(&format!(
            "\nephemera_last_cut_timestamp_seconds {first_boundary}\n"
        )));

        store.fail_flushes(true);
        next_boundary();
        assert!(node.cut_due().await.is_err());
        // Counted, and the last durable cut is still the first.
        let text = node.metrics().render();
        assert!(text.contains("\nephemera_cut_failures_total 1\n"), "{text}");
        assert!(text.contains(&format!(
            "\nephemera_last_cut_timestamp_seconds {first_boundary}\n"
        )));
        // In the store, not durable: not listed.
        assert_eq!(store.batch_index(0, usize::MAX).unwrap().len(), 2);
        assert_eq!(node.batch_index(0).unwrap().batches, first);
        assert_eq!(node.batch_index(0).unwrap().next_cursor, first[0].sequence);

        store.fail_flushes(false);
        next_boundary();
        let third = node.cut_due().await.unwrap();
        let listed = node.batch_index(0).unwrap().batches;
        assert_eq!(listed.len(), 3);
        assert_eq!(listed.last(), third.last());
        // Three boundaries an hour apart, numbered by their boundary (none lost or reused).
        let sequences: Vec<u64> = listed.iter().map(|b| b.sequence).collect();
        assert!(sequences.windows(2).all(|w| w[1] == w[0] + 3600 * 1000));
    }
}
