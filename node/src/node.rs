//! The node: authority role, uploads, publication and retention, over a [`ReportStore`].
//!
//! [`Node`] is a cheap cloneable handle. HTTP handlers call its methods; so do tests, which
//! also drive [`Node::cut_due`] and [`Node::purge`] themselves with a
//! [`ManualClock`](crate::clock::ManualClock) instead of waiting for the background tasks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use ephemera_node_core::NodeCore;
use ephemera_node_core::authority::CodeGrant;
use ephemera_node_core::federation_intake::{RelayAdmission, RelayOutcome};
use ephemera_node_core::intake::{Admission, Settled, UploadKind};
use ephemera_node_core::keys::{KeyError, NodeKeys};
use ephemera_node_core::publication::{PublicationError, sort_export_names};
use ephemera_node_core::store::{PurgeCounts, ReportStore, SledReportStore, StoreError};
use ephemera_proto::api::{UploadResponse, VerifyRequest, VerifyResponse};
use ephemera_proto::batch::{BatchId, BatchIndex, BatchIndexEntry};
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadId, VerifiedUpload};
use ephemera_proto::{SchemeKind, UnixTime};
use thiserror::Error;
use tokio::sync::Mutex as AsyncMutex;

use crate::api::error::ApiError;
use crate::api::types::{
    AuthorityInfo, IssueCodesRequest, IssueCodesResponse, IssuedCode, LoginResponse,
};
use crate::batch_cache::{BatchCache, CachedBatch, DEFAULT_BATCH_CACHE_BYTES};
use crate::caseworker::{
    self, AttemptBudget, FIRST_CASE_WORKER, PBKDF2_ITERATIONS, Password, Sessions,
};
use crate::clock::{Clock, civil};
use crate::config::NodeConfig;
use crate::federation::{
    DayDigest, Federation, FederationConfig, FederationError, FederationHandle, FederationStore,
    NodeIdentity, StoreOutcome,
};
use crate::group_commit::Committer;
use crate::metrics::Metrics;

/// Folder of the sled database inside the data folder.
pub const DB_DIR: &str = "db";
/// Folder of batch bodies and GAEN export zips inside the data folder (files beside the
/// database: sled 0.34 does not reclaim the space of large values it deleted).
pub const BLOB_DIR: &str = "blobs";
/// Most index entries per `GET /v1/batches` page.
pub const INDEX_PAGE: usize = 1000;
/// Window of the global failed-sign-in budget, and of the per-name one.
const LOGIN_WINDOW_SECONDS: u64 = 15 * 60;

/// The node could not start or run a background step.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The data folder could not be created.
    #[error("cannot create data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Keys could not be loaded or created.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task,
    /// Federation could not start.
    #[error(transparent)]
    Federation(#[from] FederationError),
    /// A cut could not be planned (storage, or a GAEN export file that could not be signed).
    #[error(transparent)]
    Publication(#[from] PublicationError),
}

/// Coalesces concurrent flushes: a caller returns once a flush that began after its write
/// has finished, so one fsync acknowledges many uploads (group commit).
struct Flusher {
    store: Arc<dyn ReportStore>,
    written: AtomicU64,
    flushed: AtomicU64,
    lock: AsyncMutex<()>,
}

impl Flusher {
    async fn flush(&self) -> Result<(), ApiError> {
        let mine = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = self.lock.lock().await;
        if self.flushed.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        let target = self.written.load(Ordering::SeqCst);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|_| ApiError::Internal)??;
        self.flushed.store(target, Ordering::SeqCst);
        Ok(())
    }
}

/// The running federation, once [`Node::start_federation`] was called.
struct FederationSlot {
    handle: FederationHandle,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    committer: Committer,
    federation: Mutex<Option<FederationSlot>>,
    config: NodeConfig,
    clock: Arc<dyn Clock>,
    store: Arc<dyn ReportStore>,
    /// Every rule the node applies: authority, intake, publication, retention.
    core: NodeCore,
    metrics: Metrics,
    flusher: Flusher,
    sessions: Mutex<Sessions>,
    verify_budget: Mutex<AttemptBudget>,
    login_budget: Mutex<(AttemptBudget, AttemptBudget)>,
    batch_cache: BatchCache,
    /// Serialises cuts and revisions, which both move queue groups.
    publication: AsyncMutex<()>,
    /// What a cut in progress has written but not yet flushed: never listed, so no phone or
    /// key server sees a batch that a crash could take back (and whose sequence number the
    /// next cut would then reuse).
    unflushed: Mutex<Unflushed>,
}

/// Batches and exports of a cut that are in the store but not yet durable.
#[derive(Debug, Default)]
struct Unflushed {
    /// Sequence of the cut's first batch: it and later ones are not listed.
    from_sequence: Option<u64>,
    /// File names of the cut's exports.
    exports: Vec<String>,
}

/// A running node's shared state; clone freely.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("listen", &self.inner.config.http.listen)
            .finish_non_exhaustive()
    }
}

/// A node just opened, with the credentials created on this start (to show once).
#[derive(Debug)]
pub struct Opened {
    /// The node.
    pub node: Node,
    /// Name and password of a case worker created now, if there was none.
    pub new_case_worker: Option<(String, Password)>,
    /// Whether keys were created now (first start).
    pub keys_created: bool,
}

/// OS randomness (the answer of a decoy upload).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand_core::Rng::fill_bytes(&mut rand::rng(), &mut out);
    out
}

impl Node {
    /// Opens the node's data folder (sled database and keys), creating what is missing,
    /// and a first case worker if there is none.
    ///
    /// # Errors
    /// [`NodeError`] when the folder, keys or database cannot be opened.
    pub fn open(config: NodeConfig, clock: Arc<dyn Clock>) -> Result<Opened, NodeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let (keys, keys_created) = NodeKeys::load_or_create(&config.data_dir, &mut rand::rng())?;
        let store = Arc::new(SledReportStore::open(
            &config.data_dir.join(DB_DIR),
            &config.data_dir.join(BLOB_DIR),
        )?);
        let node = Node::with_store(config, clock, store, keys);
        let new_case_worker = node.ensure_case_worker()?;
        Ok(Opened {
            node,
            new_case_worker,
            keys_created,
        })
    }

    /// A node over any store and keys (tests, other engines).
    pub fn with_store(
        config: NodeConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn ReportStore>,
        keys: NodeKeys,
    ) -> Node {
        let verify_budget = AttemptBudget::new(config.authority.verify_failures_per_minute, 60);
        let login_budget = (
            AttemptBudget::new(
                config.authority.login_failures_per_user,
                LOGIN_WINDOW_SECONDS,
            ),
            AttemptBudget::new(
                config.authority.login_failures_per_user.saturating_mul(20),
                LOGIN_WINDOW_SECONDS,
            ),
        );
        Node {
            inner: Arc::new(Inner {
                committer: Committer::start(&store),
                federation: Mutex::new(None),
                core: NodeCore::new(config.policy(), keys, &mut rand::rng()),
                flusher: Flusher {
                    store: store.clone(),
                    written: AtomicU64::new(0),
                    flushed: AtomicU64::new(0),
                    lock: AsyncMutex::new(()),
                },
                config,
                clock,
                store,
                metrics: Metrics::new(),
                sessions: Mutex::new(Sessions::default()),
                verify_budget: Mutex::new(verify_budget),
                login_budget: Mutex::new(login_budget),
                batch_cache: BatchCache::new(DEFAULT_BATCH_CACHE_BYTES),
                publication: AsyncMutex::new(()),
                unflushed: Mutex::new(Unflushed::default()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The keys.
    pub fn keys(&self) -> &NodeKeys {
        self.inner.core.keys()
    }

    /// The policy core every request goes through.
    pub fn core(&self) -> &NodeCore {
        &self.inner.core
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ReportStore> {
        &self.inner.store
    }

    /// The current time by the node's clock.
    pub fn now(&self) -> UnixTime {
        self.inner.clock.now()
    }

    /// Creates the first case worker if there is none; returns its name and password.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn ensure_case_worker(&self) -> Result<Option<(String, Password)>, NodeError> {
        if !self.inner.store.credential_names()?.is_empty() {
            return Ok(None);
        }
        let password = self.add_case_worker(FIRST_CASE_WORKER)?;
        Ok(Some((FIRST_CASE_WORKER.to_owned(), password)))
    }

    /// Creates (or resets) a case worker and returns the new password, to show once.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn add_case_worker(&self, name: &str) -> Result<Password, NodeError> {
        let mut rng = rand::rng();
        let password = Password::generate(&mut rng);
        let record = caseworker::hash_password(password.reveal(), &mut rng, PBKDF2_ITERATIONS);
        self.inner.store.put_credential(name, &record)?;
        self.inner.store.flush()?;
        Ok(password)
    }

    // ---- authority role -------------------------------------------------------------

    /// Signs a case worker in.
    ///
    /// # Errors
    /// [`ApiError::TooManyAttempts`] when the name's or the global budget is spent,
    /// [`ApiError::InvalidCredentials`] otherwise on a wrong name or password.
    pub async fn login(&self, name: &str, password: &str) -> Result<LoginResponse, ApiError> {
        let now = self.now();
        {
            let mut budgets = self
                .inner
                .login_budget
                .lock()
                .map_err(|_| ApiError::Internal)?;
            let (per_name, global) = &mut *budgets;
            if !per_name.allows(name, now) || !global.allows("", now) {
                return Err(ApiError::TooManyAttempts);
            }
        }
        let record = self.inner.store.credential(name)?;
        let password = zeroize::Zeroizing::new(password.to_owned());
        // PBKDF2 takes a while on purpose: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || match record {
            Some(record) => caseworker::check_password(&record, &password),
            None => {
                // Spend the same time on unknown names, so timing does not list names.
                let dummy = crate::store::CredentialRecord {
                    salt: [0; 16],
                    iterations: PBKDF2_ITERATIONS,
                    hash: [0; 32],
                };
                caseworker::check_password(&dummy, &password);
                false
            }
        })
        .await
        .map_err(|_| ApiError::Internal)?;
        if !ok {
            let mut budgets = self
                .inner
                .login_budget
                .lock()
                .map_err(|_| ApiError::Internal)?;
            budgets.0.record_failure(name, now);
            budgets.1.record_failure("", now);
            tracing::info!("case-worker sign-in failed");
            return Err(ApiError::InvalidCredentials);
        }
        let expires_at = now.plus_seconds(self.inner.config.authority.session_lifetime_seconds);
        let token = self
            .inner
            .sessions
            .lock()
            .map_err(|_| ApiError::Internal)?
            .open(name, expires_at, &mut rand::rng());
        tracing::info!("case worker signed in");
        Ok(LoginResponse {
            token: token.0.to_string(),
            expires_at: expires_at.0,
        })
    }

    /// The case worker a bearer token belongs to.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`].
    pub fn session(&self, token: &str) -> Result<String, ApiError> {
        self.inner
            .sessions
            .lock()
            .map_err(|_| ApiError::Internal)?
            .check(token, self.now())
            .ok_or(ApiError::Unauthorized)
    }

    /// Ends a session.
    pub fn logout(&self, token: &str) {
        if let Ok(mut sessions) = self.inner.sessions.lock() {
            sessions.close(token);
        }
    }

    /// Issues codes for a signed-in case worker; they are stored only as hashes.
    ///
    /// # Errors
    /// [`ApiError::InvalidParameter`] for a bad count or onset date, [`ApiError::Store`].
    pub async fn issue_codes(
        &self,
        request: &IssueCodesRequest,
    ) -> Result<IssueCodesResponse, ApiError> {
        let symptom_onset = match request.symptom_onset.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(civil::parse_date(text).ok_or(ApiError::InvalidParameter {
                name: "symptom_onset",
                reason: "must be a date YYYY-MM-DD",
            })?),
        };
        let grant = CodeGrant {
            test_type: request.test_type.report_type(),
            symptom_onset,
        };
        let count = request.count.unwrap_or(1);
        let issued = self.inner.core.issue_codes(
            self.inner.store.as_ref(),
            grant,
            count,
            self.now(),
            &mut rand::rng(),
        )?;
        self.inner.flusher.flush().await?;
        self.inner.metrics.codes_issued(u64::from(count));
        tracing::info!(
            count,
            test_type = request.test_type.as_str(),
            "upload codes issued"
        );
        Ok(IssueCodesResponse {
            test_type: request.test_type,
            symptom_onset: symptom_onset.map(civil::format_date),
            codes: issued
                .codes
                .iter()
                .map(|code| IssuedCode {
                    code: code.reveal(),
                    expires_at: issued.expires_at.0,
                    expires_at_utc: civil::format_time(issued.expires_at),
                })
                .collect(),
        })
    }

    /// Exchanges a code and report HMAC for a signed certificate (`POST /v1/verify`).
    /// Decoys get a random answer of the same size after the same work.
    ///
    /// # Errors
    /// [`ApiError::Authority`] for a malformed, unknown, used or expired code,
    /// [`ApiError::TooManyAttempts`], [`ApiError::Store`].
    pub async fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, ApiError> {
        let result = self.verify_inner(request).await;
        let outcome = match &result {
            Ok(_) if request.decoy => "decoy",
            Ok(_) => "certified",
            Err(e) => e.code(),
        };
        self.inner.metrics.verification(outcome);
        result
    }

    async fn verify_inner(&self, request: &VerifyRequest) -> Result<VerifyResponse, ApiError> {
        let now = self.now();
        if request.decoy {
            self.inner.metrics.decoy("verify");
        } else if !self
            .inner
            .verify_budget
            .lock()
            .map_err(|_| ApiError::Internal)?
            .allows("", now)
        {
            return Err(ApiError::TooManyAttempts);
        }
        let redeemed =
            self.inner
                .core
                .redeem_code(self.inner.store.as_ref(), request, now, &mut rand::rng());
        let response = match redeemed {
            Ok(response) => response,
            Err(e) => {
                if e.is_failed_guess()
                    && let Ok(mut budget) = self.inner.verify_budget.lock()
                {
                    budget.record_failure("", now);
                }
                return Err(e.into());
            }
        };
        // The code is gone from the store; make that durable before handing out a
        // certificate, so a crash cannot let the same code be used twice. Decoys flush too.
        self.inner.flusher.flush().await?;
        if !request.decoy {
            tracing::info!("certificate issued");
        }
        Ok(response)
    }

    // ---- uploads --------------------------------------------------------------------

    /// Handles a `POST /v1/uploads` body: verifies, stores durably, then answers.
    ///
    /// # Errors
    /// The [`ApiError`] of the first failed check; rejections are counted by code.
    pub async fn upload(&self, body: &[u8]) -> Result<UploadResponse, ApiError> {
        let result = self.upload_inner(body).await;
        if let Err(e) = &result {
            self.inner.metrics.upload_rejected(e.code());
            tracing::info!(reason = e.code(), "upload rejected");
        }
        result
    }

    async fn upload_inner(&self, body: &[u8]) -> Result<UploadResponse, ApiError> {
        let core = &self.inner.core;
        let store = self.inner.store.as_ref();
        let request = core.decode_upload(body)?;
        // A revision rewrites queue groups: hold publication still until it is applied.
        let _publication = match request.body {
            UploadBody::Revision { .. } => Some(self.inner.publication.lock().await),
            _ => None,
        };
        let admission = core.admit_upload(store, request, self.now())?;
        let token = match admission {
            Admission::Decoy => {
                self.inner.metrics.decoy("upload");
                // A durable write's cost, as for a real upload.
                self.inner.flusher.flush().await?;
                random_bytes::<32>()
            }
            Admission::Replayed(token) => {
                // The first request may still be in its group: answer only what is on disk.
                self.inner.flusher.flush().await?;
                tracing::debug!("retried upload answered again");
                token
            }
            Admission::Commit(planned) => {
                // Group commit: returns once this upload's group is flushed to disk.
                let outcome = self.inner.committer.commit(planned.commit.clone()).await?;
                let token = match core.settle_upload(store, &planned, outcome)? {
                    Settled::Accepted(token) => token,
                    Settled::Replayed(token) => {
                        self.inner.flusher.flush().await?;
                        tracing::debug!("retried upload answered again");
                        return Ok(upload_response(token));
                    }
                };
                self.inner.metrics.upload_accepted(match planned.kind {
                    UploadKind::First => "real",
                    UploadKind::Revision => "revision",
                });
                // Gossip only what is durably stored. The federation adds its own random
                // delay (`[federation] publish_delay_ms`), so gossip timing does not mirror
                // the request.
                if let (Some(verified), Some(handle)) = (planned.gossip, self.federation_handle())
                    && let Err(e) = handle.publish(verified).await
                {
                    tracing::warn!(error = %e, "upload not gossiped (peers fetch it by catch-up)");
                }
                token
            }
        };
        Ok(upload_response(token))
    }

    // ---- publication ----------------------------------------------------------------

    /// Cuts the batch boundary due now, if any: signs, stores and caches the batches.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub async fn cut_due(&self) -> Result<Vec<BatchIndexEntry>, NodeError> {
        let _publication = self.inner.publication.lock().await;
        let store = &self.inner.store;
        let planned = self
            .inner
            .core
            .plan_cut(store.as_ref(), self.now(), &mut rand::rng())?;
        let Some(cut) = planned else {
            return Ok(Vec::new());
        };
        let commit = cut.commit;
        // Hidden until flushed. When the commit or the flush fails they stay hidden (with
        // any earlier ones still hidden) until a later cut's flush makes them durable too.
        {
            let mut unflushed = self.inner.unflushed.lock().expect("not poisoned");
            let first = commit.batches.first().map(|b| b.entry.sequence);
            unflushed.from_sequence = unflushed.from_sequence.or(first);
            unflushed
                .exports
                .extend(commit.exports.iter().map(|e| e.name.clone()));
        }
        store.commit_cut(&commit)?;
        let flush_store = store.clone();
        tokio::task::spawn_blocking(move || flush_store.flush())
            .await
            .map_err(|_| NodeError::Task)??;
        *self.inner.unflushed.lock().expect("not poisoned") = Unflushed::default();
        let mut entries = Vec::with_capacity(commit.batches.len());
        for batch in commit.batches {
            self.inner
                .metrics
                .batch_published(u64::from(batch.entry.keys + batch.entry.tokens));
            self.inner
                .batch_cache
                .insert(batch.entry.id, Bytes::from(batch.bytes));
            entries.push(batch.entry);
        }
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

    /// The in-memory batch cache (the HTTP fast path reads it without touching storage).
    pub fn batch_cache(&self) -> &BatchCache {
        &self.inner.batch_cache
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
    /// batches are listed only once its flush returned).
    ///
    /// # Errors
    /// [`ApiError::Store`].
    pub fn batch_index(&self, after: u64) -> Result<BatchIndex, ApiError> {
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
        Ok(BatchIndex {
            batches,
            next_cursor,
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

    // ---- retention ------------------------------------------------------------------

    /// Deletes everything past its retention or lifetime, and updates storage metrics.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn purge(&self) -> Result<PurgeCounts, NodeError> {
        let counts = self
            .inner
            .core
            .purge(self.inner.store.as_ref(), self.now())?;
        if counts.batches > 0 {
            let live: std::collections::HashSet<BatchId> = self
                .inner
                .store
                .batch_index(0, usize::MAX)?
                .into_iter()
                .map(|e| e.id)
                .collect();
            self.inner.batch_cache.retain(|id| live.contains(id));
        }
        let metrics = &self.inner.metrics;
        metrics.purged("upload", counts.uploads);
        metrics.purged("certificate", counts.certificates);
        metrics.purged("batch", counts.batches);
        metrics.purged("export", counts.exports);
        metrics.purged("code", counts.codes);
        metrics.purged("queued", counts.queued);
        self.update_storage_metrics()?;
        if counts.total() > 0 {
            tracing::info!(
                uploads = counts.uploads,
                certificates = counts.certificates,
                batches = counts.batches,
                exports = counts.exports,
                codes = counts.codes,
                queued = counts.queued,
                "retention purge"
            );
        }
        Ok(counts)
    }

    /// Refreshes the storage gauges.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn update_storage_metrics(&self) -> Result<(), NodeError> {
        let store = &self.inner.store;
        self.inner
            .metrics
            .storage(store.size_on_disk()?, store.upload_count()?);
        Ok(())
    }

    /// Runs the batch and purge loops until `stop` turns true.
    pub async fn run_background(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let purge_every = Duration::from_secs(self.inner.config.retention.purge_period_seconds);
        let mut next_purge = tokio::time::Instant::now();
        loop {
            if let Err(e) = self.cut_due().await {
                tracing::error!(error = %e, "batch cut failed");
            }
            if tokio::time::Instant::now() >= next_purge {
                if let Err(e) = self.purge() {
                    tracing::error!(error = %e, "retention purge failed");
                }
                next_purge = tokio::time::Instant::now() + purge_every;
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
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

/// The answer to an upload: its revision token, in hex.
fn upload_response(token: [u8; 32]) -> UploadResponse {
    UploadResponse {
        revision_token: hex::encode(token),
        padding: String::new(),
    }
}

// ---- federation ---------------------------------------------------------------------

impl Node {
    /// The federation handle, when federation runs.
    pub fn federation_handle(&self) -> Option<FederationHandle> {
        self.inner
            .federation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|slot| slot.handle.clone())
    }

    /// The federation settings this node's config asks for: TCP and QUIC on `[federation] listen`, the
    /// node's trusted authorities and report rules, the persistent libp2p identity.
    pub fn federation_config(&self) -> FederationConfig {
        let config = &self.inner.config;
        let ip = match config.federation.listen.ip() {
            std::net::IpAddr::V4(ip) => libp2p::multiaddr::Protocol::Ip4(ip),
            std::net::IpAddr::V6(ip) => libp2p::multiaddr::Protocol::Ip6(ip),
        };
        let port = config.federation.listen.port();
        let tcp = libp2p::Multiaddr::empty()
            .with(ip.clone())
            .with(libp2p::multiaddr::Protocol::Tcp(port));
        // QUIC on the same address and (UDP) port.
        let quic = libp2p::Multiaddr::empty()
            .with(ip)
            .with(libp2p::multiaddr::Protocol::Udp(port))
            .with(libp2p::multiaddr::Protocol::QuicV1);
        let mut federation = FederationConfig::default()
            .with_trusted_authorities(self.inner.core.trusted().clone())
            .with_bootstrap_peers(config.federation.bootstrap_peers.clone())
            .with_sync_interval(Duration::from_secs(config.federation.sync_interval_seconds));
        federation.listen_addrs = vec![tcp, quic];
        federation.mdns = config.federation.mdns;
        federation.region = config.federation.region.clone();
        federation.limits = self.inner.core.limits().clone();
        federation.publish_delay_max = Duration::from_millis(config.federation.publish_delay_ms);
        federation
    }

    /// Starts federation with `config` (see [`Self::federation_config`]) and the node's
    /// persistent identity; accepted phone uploads are gossiped from now on, and relayed
    /// ones are stored and published in this node's batches. Returns the handle.
    ///
    /// # Errors
    /// [`NodeError::Federation`] if the swarm cannot start (e.g. the port is taken).
    pub fn start_federation(
        &self,
        config: FederationConfig,
    ) -> Result<FederationHandle, NodeError> {
        let identity = NodeIdentity::from_ed25519_seed(&self.keys().libp2p_seed);
        let store: Arc<dyn FederationStore> = Arc::new(NodeFederationStore {
            inner: Arc::downgrade(&self.inner),
        });
        let (handle, task) = Federation::spawn(config, identity, store, self.inner.clock.clone())?;
        *self
            .inner
            .federation
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(FederationSlot {
            handle: handle.clone(),
            task: Some(task),
        });
        Ok(handle)
    }

    /// Stops federation (if it runs) and waits for its event loop to end.
    pub async fn stop_federation(&self) {
        let slot = self
            .inner
            .federation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut slot) = slot {
            let _ = slot.handle.shutdown().await;
            if let Some(task) = slot.task.take() {
                let _ = task.await;
            }
        }
    }

    /// Stores an upload a peer relayed (already verified by federation): same single-use
    /// rule and sync-day filing as a phone's upload, and its entries join this node's
    /// publication queue. Blocks until durable.
    fn store_relayed(&self, upload: VerifiedUpload) -> Result<StoreOutcome, StoreError> {
        let (core, store) = (&self.inner.core, self.inner.store.as_ref());
        let id = upload.id();
        let commit = match core.admit_relayed(store, upload, self.now())? {
            RelayAdmission::AlreadyStored => return Ok(StoreOutcome::AlreadyStored),
            RelayAdmission::Commit(commit) => commit,
        };
        let outcome = self.inner.committer.commit_blocking(*commit)?;
        Ok(match core.settle_relayed(store, &id, outcome)? {
            RelayOutcome::Stored => {
                self.inner.metrics.upload_accepted("relayed");
                StoreOutcome::Stored
            }
            RelayOutcome::AlreadyStored => StoreOutcome::AlreadyStored,
            RelayOutcome::CertificateUsed => StoreOutcome::CertificateUsed,
        })
    }
}

/// The node's store as federation sees it. Holds the node weakly, so a running federation
/// does not keep a stopped node alive.
struct NodeFederationStore {
    inner: std::sync::Weak<Inner>,
}

impl NodeFederationStore {
    /// The node, or a store error once it has stopped (its store is closed, so nothing can
    /// be said about what it holds).
    fn node(&self) -> Result<Node, crate::federation::StoreError> {
        self.inner
            .upgrade()
            .map(|inner| Node { inner })
            .ok_or_else(|| federation_error(StoreError::Engine("node stopped".to_owned())))
    }
}

fn federation_error(e: StoreError) -> crate::federation::StoreError {
    crate::federation::StoreError(Box::new(e))
}

impl FederationStore for NodeFederationStore {
    fn contains(&self, id: &UploadId) -> Result<bool, crate::federation::StoreError> {
        let node = self.node()?;
        let record = node.inner.store.upload(id).map_err(federation_error)?;
        Ok(record.is_some())
    }

    fn store_relayed(
        &self,
        upload: VerifiedUpload,
    ) -> Result<StoreOutcome, crate::federation::StoreError> {
        self.node()?.store_relayed(upload).map_err(federation_error)
    }

    fn ids_for_day(
        &self,
        day: ephemera_proto::DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, crate::federation::StoreError> {
        let node = self.node()?;
        node.inner
            .store
            .sync_ids(day, after, limit)
            .map_err(federation_error)
    }

    fn get(&self, id: &UploadId) -> Result<Option<SignedUpload>, crate::federation::StoreError> {
        let node = self.node()?;
        let record = node.inner.store.upload(id).map_err(federation_error)?;
        Ok(record.map(|record| record.upload))
    }

    fn day_digest(
        &self,
        day: ephemera_proto::DayNumber,
    ) -> Result<DayDigest, crate::federation::StoreError> {
        let node = self.node()?;
        node.inner.store.day_digest(day).map_err(federation_error)
    }
}

#[cfg(test)]
mod tests {
    use ephemera_node_core::store::MemoryReportStore;

    use super::*;
    use crate::clock::ManualClock;

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

        store.fail_flushes(true);
        next_boundary();
        assert!(node.cut_due().await.is_err());
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
        assert_eq!(
            listed.iter().map(|b| b.sequence).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }
}
