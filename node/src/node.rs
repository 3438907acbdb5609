//! The node: authority role, uploads, publication and retention, over a [`ReportStore`].
//!
//! [`Node`] is a cheap cloneable handle. HTTP handlers call its methods; so do tests, which
//! also drive [`Node::cut_due`] and [`Node::purge`] themselves with a
//! [`ManualClock`](crate::clock::ManualClock) instead of waiting for the background tasks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use ephemera_proto::api::{UploadResponse, VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{
    CertificateRequest, ExpiryPolicy, SignedCertificate, TrustedAuthorities, UploadCode,
};
use ephemera_proto::batch::{BatchId, BatchIndex, BatchIndexEntry};
use ephemera_proto::gaen::{ExportFile, ExportSigner, SignatureInfo, encode_export_zip};
use ephemera_proto::report::{ReportContents, ReportLimits, ReportType};
use ephemera_proto::time::SECONDS_PER_DAY;
use ephemera_proto::upload::{
    self, SignedUpload, UploadBody, UploadId, UploadRequest, VerifiedUpload,
};
use ephemera_proto::{SchemeKind, UnixTime, wire};
use ring::rand::SystemRandom;
use thiserror::Error;
use tokio::sync::Mutex as AsyncMutex;

use crate::api::error::ApiError;
use crate::api::types::{
    AuthorityInfo, IssueCodesRequest, IssueCodesResponse, IssuedCode, LoginResponse, TestType,
};
use crate::batch::{BatchCutter, CutBatch};
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
use crate::keys::{KeyError, NodeKeys};
use crate::metrics::Metrics;
use crate::revision_token::RevisionTokens;
use crate::store::{
    CertificateState, CodeRecord, CommitOutcome, CutCommit, PurgeCounts, QueueKey, QueuedEntry,
    QueuedGroup, ReportStore, SledReportStore, StoreError, StoredBatch, StoredExport, StoredUpload,
    UploadCommit,
};

/// Folder of the sled database inside the data folder.
pub const DB_DIR: &str = "db";
/// Folder of batch bodies and GAEN export zips inside the data folder (files beside the
/// database: sled 0.34 does not reclaim the space of large values it deleted).
pub const BLOB_DIR: &str = "blobs";
/// Most index entries per `GET /v1/batches` page.
pub const INDEX_PAGE: usize = 1000;
/// Clock skew allowed by certificate checks; single-use marks outlive it.
const SKEW_SECONDS: u64 = 300;
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
    /// A GAEN export file could not be signed or written.
    #[error("GAEN export: {0}")]
    Export(ephemera_proto::gaen::ExportError),
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
    keys: NodeKeys,
    trusted: TrustedAuthorities,
    limits: ReportLimits,
    cutter: BatchCutter,
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
    /// A certificate verified on decoy uploads, so they cost what real ones do.
    decoy_certificate: SignedCertificate,
    /// Length of a certificate's wire form, for decoy verify answers.
    certificate_len: usize,
    /// Derives and checks revision tokens (none is stored).
    revision_tokens: RevisionTokens,
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
            .field("listen", &self.inner.config.listen)
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
        let mut trusted = TrustedAuthorities::new().with(keys.authority.public_key());
        for key in &config.trusted_authorities {
            trusted.insert(*key);
        }
        let limits = ReportLimits {
            retention_days: config.retention_days,
            ..ReportLimits::default()
        };
        let mut rng = rand::rng();
        let decoy_certificate = keys.authority.issue(
            &CertificateRequest {
                report_hmac: ephemera_proto::auth::ReportHmac([0; 32]),
                test_type: ReportType::ConfirmedTest,
                symptom_onset: None,
            },
            UnixTime(0),
            u64::MAX / 2,
            &mut rng,
        );
        let certificate_len = wire::encode(&decoy_certificate).len();
        let revision_tokens = RevisionTokens::new(&keys.pepper);
        let verify_budget = AttemptBudget::new(config.verify_failures_per_minute, 60);
        let login_budget = (
            AttemptBudget::new(config.login_failures_per_user, LOGIN_WINDOW_SECONDS),
            AttemptBudget::new(
                config.login_failures_per_user.saturating_mul(20),
                LOGIN_WINDOW_SECONDS,
            ),
        );
        Node {
            inner: Arc::new(Inner {
                committer: Committer::start(&store),
                federation: Mutex::new(None),
                cutter: BatchCutter::from_config(&config),
                flusher: Flusher {
                    store: store.clone(),
                    written: AtomicU64::new(0),
                    flushed: AtomicU64::new(0),
                    lock: AsyncMutex::new(()),
                },
                config,
                clock,
                store,
                keys,
                trusted,
                limits,
                metrics: Metrics::new(),
                sessions: Mutex::new(Sessions::default()),
                verify_budget: Mutex::new(verify_budget),
                login_budget: Mutex::new(login_budget),
                batch_cache: BatchCache::new(DEFAULT_BATCH_CACHE_BYTES),
                publication: AsyncMutex::new(()),
                unflushed: Mutex::new(Unflushed::default()),
                decoy_certificate,
                certificate_len,
                revision_tokens,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The keys.
    pub fn keys(&self) -> &NodeKeys {
        &self.inner.keys
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
        let expires_at = now.plus_seconds(self.inner.config.session_lifetime_seconds);
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
        let count = request.count.unwrap_or(1);
        if count == 0 || count > self.inner.config.max_codes_per_request {
            return Err(ApiError::InvalidParameter {
                name: "count",
                reason: "must be between 1 and max_codes_per_request",
            });
        }
        let now = self.now();
        let symptom_onset = match request.symptom_onset.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => {
                let day = civil::parse_date(text).ok_or(ApiError::InvalidParameter {
                    name: "symptom_onset",
                    reason: "must be a date YYYY-MM-DD",
                })?;
                if day > now.day() || day < now.day().minus(self.inner.config.retention_days + 14) {
                    return Err(ApiError::InvalidParameter {
                        name: "symptom_onset",
                        reason: "must not be in the future or long past",
                    });
                }
                Some(day)
            }
        };
        let expires_at = now.plus_seconds(self.inner.config.code_lifetime_seconds);
        let record = CodeRecord {
            test_type: request.test_type.report_type(),
            symptom_onset,
            expires_at,
        };
        let mut codes = Vec::with_capacity(count as usize);
        let mut hashes = Vec::with_capacity(count as usize);
        {
            let mut rng = rand::rng();
            for _ in 0..count {
                let code = UploadCode::generate(&mut rng);
                hashes.push((code.hash(&self.inner.keys.pepper), record.clone()));
                codes.push(IssuedCode {
                    code: code.reveal(),
                    expires_at: expires_at.0,
                    expires_at_utc: civil::format_time(expires_at),
                });
            }
        }
        self.inner.store.insert_codes(&hashes)?;
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
            codes,
        })
    }

    /// Exchanges a code and report HMAC for a signed certificate (`POST /v1/verify`).
    /// Decoys get a random answer of the same size after the same kind of work.
    ///
    /// # Errors
    /// [`ApiError::MalformedCode`], [`ApiError::MalformedHmac`], [`ApiError::InvalidCode`],
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
            // Same work as a real exchange: a lookup, a flush, a signature.
            let _ = self
                .inner
                .store
                .take_code(&ephemera_proto::auth::CodeHash(random_bytes()))?;
            self.inner.flusher.flush().await?;
            let mut rng = rand::rng();
            let _ = self.sign_certificate(ReportType::ConfirmedTest, None, [0; 32], now, &mut rng);
            return Ok(VerifyResponse::decoy(self.inner.certificate_len, &mut rng));
        }
        {
            let mut budget = self
                .inner
                .verify_budget
                .lock()
                .map_err(|_| ApiError::Internal)?;
            if !budget.allows("", now) {
                return Err(ApiError::TooManyAttempts);
            }
        }
        let failed = |e: ApiError| -> ApiError {
            if let Ok(mut budget) = self.inner.verify_budget.lock() {
                budget.record_failure("", now);
            }
            e
        };
        let code = UploadCode::parse(&request.code).map_err(|e| failed(e.into()))?;
        let hmac = request
            .parsed_hmac()
            .ok_or_else(|| failed(ApiError::MalformedHmac))?;
        let record = self
            .inner
            .store
            .take_code(&code.hash(&self.inner.keys.pepper))?
            .filter(|r| r.expires_at > now)
            .ok_or_else(|| failed(ApiError::InvalidCode))?;
        // The code is gone from the store; make that durable before handing out a
        // certificate, so a crash cannot let the same code be used twice.
        self.inner.flusher.flush().await?;
        let certificate = {
            let mut rng = rand::rng();
            self.sign_certificate(
                record.test_type,
                record.symptom_onset,
                hmac.0,
                now,
                &mut rng,
            )
        };
        tracing::info!("certificate issued");
        Ok(VerifyResponse::new(&certificate))
    }

    fn sign_certificate(
        &self,
        test_type: ReportType,
        symptom_onset: Option<ephemera_proto::DayNumber>,
        hmac: [u8; 32],
        now: UnixTime,
        rng: &mut impl rand_core::CryptoRng,
    ) -> SignedCertificate {
        self.inner.keys.authority.issue(
            &CertificateRequest {
                report_hmac: ephemera_proto::auth::ReportHmac(hmac),
                test_type,
                symptom_onset,
            },
            now,
            self.inner.config.certificate_lifetime_seconds,
            rng,
        )
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
        if body.len() > self.inner.config.max_upload_bytes {
            return Err(ApiError::PayloadTooLarge {
                max: self.inner.config.max_upload_bytes,
            });
        }
        let request: UploadRequest = wire::decode(body)?;
        let now = self.now();
        let token = match request.body {
            UploadBody::Decoy => {
                self.inner.metrics.decoy("upload");
                // Cost what a real upload costs: a signature check and a durable write.
                let _ = self.inner.decoy_certificate.verify(
                    &self.inner.trusted,
                    now,
                    ExpiryPolicy::FirstUpload,
                );
                self.inner.flusher.flush().await?;
                random_bytes::<32>()
            }
            UploadBody::Real(upload) => {
                let token = self.accept(upload, None, now).await?;
                self.inner.metrics.upload_accepted("real");
                token
            }
            UploadBody::Revision {
                upload,
                revision_token,
            } => {
                let token = self.accept(upload, Some(revision_token), now).await?;
                self.inner.metrics.upload_accepted("revision");
                token
            }
        };
        Ok(UploadResponse {
            revision_token: hex::encode(token),
            padding: String::new(),
        })
    }

    fn purge_times(
        &self,
        certificate: &ephemera_proto::auth::Certificate,
        now: UnixTime,
    ) -> (UnixTime, UnixTime) {
        let retention = u64::from(self.inner.config.retention_days) * SECONDS_PER_DAY;
        let certificate_purge = certificate
            .expires_at
            .max(certificate.issued_at.plus_seconds(retention))
            .plus_seconds(SKEW_SECONDS);
        (certificate_purge, now.plus_seconds(retention))
    }

    async fn accept(
        &self,
        upload: SignedUpload,
        revision_token: Option<Vec<u8>>,
        now: UnixTime,
    ) -> Result<[u8; 32], ApiError> {
        let verified = upload.verify(
            &self.inner.trusted,
            now,
            ExpiryPolicy::FirstUpload,
            &self.inner.limits,
        )?;
        let scheme = verified.contents().scheme();
        if !self.inner.config.accept_schemes.contains(&scheme) {
            return Err(ApiError::SchemeNotAccepted);
        }
        let gossip = self.federation_handle().map(|h| (h, verified.clone()));
        let upload_id = verified.id();
        let upload = verified.into_inner();
        let certificate = upload.certificate.certificate.clone();
        let (certificate_purge_at, upload_purge_at) = self.purge_times(&certificate, now);
        let token = self.inner.revision_tokens.token(&certificate.id);
        let mut commit = match revision_token {
            None => {
                if !matches!(
                    certificate.test_type,
                    ReportType::ConfirmedTest
                        | ReportType::ConfirmedClinicalDiagnosis
                        | ReportType::SelfReport
                ) {
                    return Err(ApiError::ReportTypeNotAllowed(certificate.test_type));
                }
                let releases: Vec<UnixTime> = match &upload.contents {
                    ReportContents::Gaen(keys) => keys
                        .iter()
                        .map(|k| upload::key_publishable_at(k).max(now))
                        .collect(),
                    ReportContents::Pet(tokens) => vec![now; tokens.len()],
                };
                let enqueue = group_entries(upload_id, &upload.contents, &releases);
                UploadCommit {
                    certificate: (certificate.id, certificate_purge_at),
                    relayed: false,
                    consume_revision: None,
                    upload: (
                        upload_id,
                        StoredUpload {
                            received_at: now,
                            upload,
                            releases: releases.into_iter().map(Some).collect(),
                        },
                        upload_purge_at,
                    ),
                    update_original: None,
                    dequeue: Vec::new(),
                    enqueue,
                }
            }
            Some(old_token) => {
                // Hold publication still while queue groups are rewritten.
                let _publication = self.inner.publication.lock().await;
                let planned = self.plan_revision(
                    upload,
                    upload_id,
                    &old_token,
                    now,
                    certificate_purge_at,
                    upload_purge_at,
                );
                let commit = match planned {
                    Ok(commit) => commit,
                    // The revision may have gone through already, its answer lost.
                    Err(ApiError::InvalidRevisionToken) => {
                        return self
                            .replayed(&certificate.id, upload_id)
                            .await?
                            .ok_or(ApiError::InvalidRevisionToken);
                    }
                    Err(e) => return Err(e),
                };
                return self.commit(commit, token).await;
            }
        };
        commit.dequeue.clear();
        let token = self.commit(commit, token).await?;
        // Gossip only what is durably stored. The federation adds its own random delay
        // (`federation_publish_delay_ms`), so gossip timing does not mirror the request.
        if let Some((handle, verified)) = gossip
            && let Err(e) = handle.publish(verified).await
        {
            tracing::warn!(error = %e, "upload not gossiped (peers fetch it by catch-up)");
        }
        Ok(token)
    }

    async fn commit(&self, commit: UploadCommit, token: [u8; 32]) -> Result<[u8; 32], ApiError> {
        let (certificate, upload_id) = (commit.certificate.0, commit.upload.0);
        // Group commit: returns once this upload's group is flushed to disk.
        match self.inner.committer.commit(commit).await? {
            CommitOutcome::Committed => Ok(token),
            CommitOutcome::CertificateUsed => self
                .replayed(&certificate, upload_id)
                .await?
                .ok_or(ApiError::CertificateUsed),
            CommitOutcome::RevisionTokenUnknown => Err(ApiError::InvalidRevisionToken),
        }
    }

    /// A retried request whose first answer was lost: if `certificate` was used by this
    /// very upload (byte for byte: the id is its content address), accepted here from a
    /// phone, the original answer's token once that use is durable. `None` otherwise.
    async fn replayed(
        &self,
        certificate: &ephemera_proto::auth::CertificateId,
        upload_id: ephemera_proto::upload::UploadId,
    ) -> Result<Option<[u8; 32]>, ApiError> {
        let mark = self.inner.store.certificate_use(certificate)?;
        let Some(mark) =
            mark.filter(|m| m.upload == upload_id && m.state != CertificateState::Relayed)
        else {
            return Ok(None);
        };
        // The first request may still be in its group: answer only what is on disk.
        self.inner.flusher.flush().await?;
        tracing::debug!(state = ?mark.state, "retried upload answered again");
        Ok(Some(self.inner.revision_tokens.token(certificate)))
    }

    /// Plans a revision as the GAEN reference server allows it: a `likely` upload becomes
    /// `confirmed` or is revoked. Entries not yet published move to the revised upload with
    /// the new type (revoked ones are dropped); `gaen` keys already published are published
    /// again with the new type, so phones learn of the change. (`pet` tokens carry no type:
    /// published ones cannot be withdrawn.)
    #[allow(clippy::too_many_arguments)]
    fn plan_revision(
        &self,
        upload: SignedUpload,
        upload_id: ephemera_proto::upload::UploadId,
        token: &[u8],
        now: UnixTime,
        certificate_purge_at: UnixTime,
        upload_purge_at: UnixTime,
    ) -> Result<UploadCommit, ApiError> {
        let original_certificate = self
            .inner
            .revision_tokens
            .open(token)
            .ok_or(ApiError::InvalidRevisionToken)?;
        let record = self
            .inner
            .store
            .certificate_use(&original_certificate)?
            .filter(|mark| mark.state == CertificateState::Accepted)
            .ok_or(ApiError::InvalidRevisionToken)?;
        let mut original = self
            .inner
            .store
            .upload(&record.upload)?
            .ok_or(ApiError::InvalidRevisionToken)?;
        let from = original.upload.certificate.certificate.test_type;
        let to = upload.certificate.certificate.test_type;
        let allowed = from == ReportType::ConfirmedClinicalDiagnosis
            && matches!(to, ReportType::ConfirmedTest | ReportType::Revoked);
        if !allowed {
            return Err(ApiError::RevisionNotAllowed { from, to });
        }
        let originals = entries_of(&original.upload.contents);
        let revised = entries_of(&upload.contents);
        if original.upload.contents.scheme() != upload.contents.scheme() {
            return Err(ApiError::RevisionMismatch);
        }
        let mut dequeue = Vec::new();
        let mut regroups: BTreeMap<QueueKey, QueuedGroup> = BTreeMap::new();
        let mut releases = Vec::with_capacity(revised.len());
        let mut revised_entries = Vec::with_capacity(revised.len());
        for (entry_id, entry) in &revised {
            let index = originals
                .iter()
                .position(|(id, _)| id == entry_id)
                .ok_or(ApiError::RevisionMismatch)?;
            let (release, queued_entry) = match original.releases[index] {
                Some(release_at) => {
                    let key = QueueKey {
                        release_at,
                        upload: record.upload,
                    };
                    let group = match regroups.get(&key) {
                        Some(g) => Some(g.clone()),
                        None => self.inner.store.queued(&key)?,
                    };
                    match group {
                        Some(mut group) => {
                            // Not published yet: take it out of the original's group.
                            group.retain(|e| entry_key(e) != *entry_id);
                            regroups.insert(key, group);
                            original.releases[index] = None;
                            (
                                (to != ReportType::Revoked).then_some(release_at),
                                entry.clone(),
                            )
                        }
                        None => published_again(entry, now),
                    }
                }
                None => published_again(entry, now),
            };
            releases.push(release);
            revised_entries.push(queued_entry);
        }
        let mut enqueue: Vec<(QueueKey, QueuedGroup)> = Vec::new();
        for (key, group) in regroups {
            dequeue.push(key);
            if !group.is_empty() {
                enqueue.push((key, group));
            }
        }
        let mut new_groups: BTreeMap<UnixTime, QueuedGroup> = BTreeMap::new();
        for (entry, release) in revised_entries.into_iter().zip(&releases) {
            if let Some(at) = release {
                new_groups.entry(*at).or_default().push(entry);
            }
        }
        enqueue.extend(new_groups.into_iter().map(|(release_at, group)| {
            (
                QueueKey {
                    release_at,
                    upload: upload_id,
                },
                group,
            )
        }));
        let certificate = upload.certificate.certificate.clone();
        Ok(UploadCommit {
            certificate: (certificate.id, certificate_purge_at),
            relayed: false,
            consume_revision: Some(original_certificate),
            upload: (
                upload_id,
                StoredUpload {
                    received_at: now,
                    upload,
                    releases,
                },
                upload_purge_at,
            ),
            update_original: Some((record.upload, original)),
            dequeue,
            enqueue,
        })
    }

    // ---- publication ----------------------------------------------------------------

    /// Cuts the batch boundary due now, if any: signs, stores and caches the batches.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub async fn cut_due(&self) -> Result<Vec<BatchIndexEntry>, NodeError> {
        let _publication = self.inner.publication.lock().await;
        let now = self.now();
        let store = &self.inner.store;
        let state = store.cutter_state()?;
        let Some(boundary) = self.inner.cutter.due(&state, now) else {
            return Ok(Vec::new());
        };
        let queued = store.queued_until(boundary)?;
        let cut = {
            let mut rng = rand::rng();
            self.inner.cutter.cut(&state, queued, now, &mut rng)
        };
        let Some(cut) = cut else {
            return Ok(Vec::new());
        };
        let mut stored = Vec::with_capacity(cut.batches.len());
        let mut exports = Vec::new();
        let batch_count = cut.batches.len();
        let period = self.inner.config.batch_period_seconds;
        for (
            position,
            CutBatch {
                contents,
                revised_keys,
            },
        ) in cut.batches.into_iter().enumerate()
        {
            if !contents.diagnosis_keys.is_empty() {
                let mut file = ExportFile::new(
                    cut.boundary.minus_seconds(period),
                    cut.boundary,
                    self.inner.config.export_region.clone(),
                );
                file.batch_num = position as u32 + 1;
                file.batch_size = batch_count as u32;
                file.keys = contents
                    .diagnosis_keys
                    .iter()
                    .filter(|k| !revised_keys.contains(k))
                    .cloned()
                    .collect();
                file.revised_keys = revised_keys;
                let name = format!(
                    "{}-{}-{:05}.zip",
                    file.start_timestamp.0, file.end_timestamp.0, file.batch_num
                );
                let bytes = encode_export_zip(&file, &self.export_signer()?, &SystemRandom::new())
                    .map_err(NodeError::Export)?;
                exports.push(StoredExport {
                    name,
                    bytes,
                    purge_at: self.inner.cutter.batch_purge_at(cut.boundary),
                });
            }
            let keys = contents.diagnosis_keys.len() as u32;
            let tokens = contents.tokens.len() as u32;
            let sequence = contents.sequence;
            let created_at = contents.created_at;
            let signed = contents.sign(&self.inner.keys.batch);
            let id = signed.id();
            let bytes = signed.into_bytes();
            stored.push(StoredBatch {
                entry: BatchIndexEntry {
                    id,
                    sequence,
                    created_at,
                    size: bytes.len() as u64,
                    keys,
                    tokens,
                },
                purge_at: self.inner.cutter.batch_purge_at(created_at),
                bytes,
            });
        }
        let commit = CutCommit {
            batches: stored,
            exports,
            dequeue: cut.dequeue,
            state: cut.state,
        };
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

    fn export_signer(&self) -> Result<ExportSigner, NodeError> {
        let config = &self.inner.config;
        self.inner
            .keys
            .export
            .export_signer(SignatureInfo::new(
                config.export_key_version.clone(),
                config.export_key_id.clone(),
            ))
            .map_err(NodeError::Export)
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
        // `<start>-<end>-<num>.zip`: order by the numbers, not as text.
        names.sort_by_key(|n| {
            n.split(['-', '.'])
                .take(3)
                .map(|p| p.parse::<u64>().unwrap_or(0))
                .collect::<Vec<_>>()
        });
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
        let keys = &self.inner.keys;
        AuthorityInfo {
            authority_public_key: keys.authority.public_key().to_hex(),
            authority_key_id: keys.authority.public_key().key_id().to_string(),
            batch_public_key: keys.batch.public_key().to_hex(),
            batch_key_id: keys.batch.public_key().key_id().to_string(),
            export_public_key_pem: keys.export.public_key_pem(),
            trusted_authorities: self.inner.trusted.iter().map(|k| k.to_hex()).collect(),
            accepted_schemes: self
                .inner
                .config
                .accept_schemes
                .iter()
                .map(|s| match s {
                    SchemeKind::Gaen => "gaen".to_owned(),
                    SchemeKind::Pet => "pet".to_owned(),
                })
                .collect(),
            batch_period_seconds: self.inner.config.batch_period_seconds,
            retention_days: self.inner.config.retention_days,
        }
    }

    // ---- retention ------------------------------------------------------------------

    /// Deletes everything past its retention or lifetime, and updates storage metrics.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn purge(&self) -> Result<PurgeCounts, NodeError> {
        let now = self.now();
        let retention = u64::from(self.inner.config.retention_days) * SECONDS_PER_DAY;
        let counts = self.inner.store.purge(now, now.minus_seconds(retention))?;
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
        let purge_every = Duration::from_secs(self.inner.config.purge_period_seconds);
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
            let to_boundary = self.inner.cutter.next_boundary(now).0.saturating_sub(now.0);
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

/// How an entry is told apart from others of its report: the TEK or the token bytes.
fn entry_key(entry: &QueuedEntry) -> [u8; 16] {
    match entry {
        QueuedEntry::Key(k) | QueuedEntry::RevisedKey(k) => *k.key.as_bytes(),
        QueuedEntry::Token(t) => t.token.0,
    }
}

fn entries_of(contents: &ReportContents) -> Vec<([u8; 16], QueuedEntry)> {
    match contents {
        ReportContents::Gaen(keys) => keys
            .iter()
            .map(|k| (*k.key.as_bytes(), QueuedEntry::Key(k.clone())))
            .collect(),
        ReportContents::Pet(tokens) => tokens
            .iter()
            .map(|t| (t.token.0, QueuedEntry::Token(*t)))
            .collect(),
    }
}

/// A revised entry that was published already: `gaen` keys go out again, now, as revised
/// keys with the new type; `pet` tokens have no type to change.
fn published_again(entry: &QueuedEntry, now: UnixTime) -> (Option<UnixTime>, QueuedEntry) {
    match entry {
        QueuedEntry::Key(k) | QueuedEntry::RevisedKey(k) => {
            (Some(now), QueuedEntry::RevisedKey(k.clone()))
        }
        QueuedEntry::Token(_) => (None, entry.clone()),
    }
}

/// Groups an upload's entries by release time into queue groups.
fn group_entries(
    upload: ephemera_proto::upload::UploadId,
    contents: &ReportContents,
    releases: &[UnixTime],
) -> Vec<(QueueKey, QueuedGroup)> {
    let mut groups: BTreeMap<UnixTime, QueuedGroup> = BTreeMap::new();
    for ((_, entry), release_at) in entries_of(contents).into_iter().zip(releases) {
        groups.entry(*release_at).or_default().push(entry);
    }
    groups
        .into_iter()
        .map(|(release_at, group)| (QueueKey { release_at, upload }, group))
        .collect()
}

impl TestType {
    /// The test type a report type came from, if a case worker can issue it.
    pub fn from_report_type(t: ReportType) -> Option<TestType> {
        match t {
            ReportType::ConfirmedTest => Some(TestType::Confirmed),
            ReportType::ConfirmedClinicalDiagnosis => Some(TestType::Likely),
            ReportType::Revoked => Some(TestType::Negative),
            _ => None,
        }
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

    /// The federation settings this node's config asks for: TCP and QUIC on `federation_listen`, the
    /// node's trusted authorities and report rules, the persistent libp2p identity.
    pub fn federation_config(&self) -> FederationConfig {
        let config = &self.inner.config;
        let ip = match config.federation_listen.ip() {
            std::net::IpAddr::V4(ip) => libp2p::multiaddr::Protocol::Ip4(ip),
            std::net::IpAddr::V6(ip) => libp2p::multiaddr::Protocol::Ip6(ip),
        };
        let port = config.federation_listen.port();
        let tcp = libp2p::Multiaddr::empty()
            .with(ip.clone())
            .with(libp2p::multiaddr::Protocol::Tcp(port));
        // QUIC on the same address and (UDP) port.
        let quic = libp2p::Multiaddr::empty()
            .with(ip)
            .with(libp2p::multiaddr::Protocol::Udp(port))
            .with(libp2p::multiaddr::Protocol::QuicV1);
        let mut federation = FederationConfig::default()
            .with_trusted_authorities(self.inner.trusted.clone())
            .with_bootstrap_peers(config.bootstrap_peers.clone())
            .with_sync_interval(Duration::from_secs(config.federation_sync_interval_seconds));
        federation.listen_addrs = vec![tcp, quic];
        federation.mdns = config.mdns;
        federation.region = config.federation_region.clone();
        federation.limits = self.inner.limits.clone();
        federation.publish_delay_max = Duration::from_millis(config.federation_publish_delay_ms);
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
        let identity = NodeIdentity::from_ed25519_seed(&self.inner.keys.libp2p_seed);
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
        let id = upload.id();
        if self.inner.store.upload(&id)?.is_some() {
            return Ok(StoreOutcome::AlreadyStored);
        }
        let now = self.now();
        let scheme = upload.contents().scheme();
        let upload = upload.into_inner();
        let certificate = upload.certificate.certificate.clone();
        let (certificate_purge_at, _) = self.purge_times(&certificate, now);
        let retention = u64::from(self.inner.config.retention_days) * SECONDS_PER_DAY;
        // Purged with the certificate's day, as every other node does.
        let upload_purge_at = certificate.issued_at.plus_seconds(retention).max(now);
        let publish = certificate.test_type != ReportType::Revoked
            && self.inner.config.accept_schemes.contains(&scheme);
        let releases: Vec<UnixTime> = match &upload.contents {
            ReportContents::Gaen(keys) => keys
                .iter()
                .map(|k| upload::key_publishable_at(k).max(now))
                .collect(),
            ReportContents::Pet(tokens) => vec![now; tokens.len()],
        };
        let enqueue = if publish {
            group_entries(id, &upload.contents, &releases)
        } else {
            Vec::new()
        };
        // Nobody holds a revision token for a relayed upload: its mark says so.
        let commit = UploadCommit {
            certificate: (certificate.id, certificate_purge_at),
            relayed: true,
            consume_revision: None,
            upload: (
                id,
                StoredUpload {
                    received_at: now,
                    upload,
                    releases: releases.into_iter().map(|r| publish.then_some(r)).collect(),
                },
                upload_purge_at,
            ),
            update_original: None,
            dequeue: Vec::new(),
            enqueue,
        };
        Ok(match self.inner.committer.commit_blocking(commit)? {
            CommitOutcome::Committed => {
                self.inner.metrics.upload_accepted("relayed");
                StoreOutcome::Stored
            }
            _ if self.inner.store.upload(&id)?.is_some() => StoreOutcome::AlreadyStored,
            _ => StoreOutcome::CertificateUsed,
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
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryReportStore;

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
        let period = config.batch_period_seconds;
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

        store.failing_flush.store(true, Ordering::SeqCst);
        next_boundary();
        assert!(node.cut_due().await.is_err());
        // In the store, not durable: not listed.
        assert_eq!(store.batch_index(0, usize::MAX).unwrap().len(), 2);
        assert_eq!(node.batch_index(0).unwrap().batches, first);
        assert_eq!(node.batch_index(0).unwrap().next_cursor, first[0].sequence);

        store.failing_flush.store(false, Ordering::SeqCst);
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
