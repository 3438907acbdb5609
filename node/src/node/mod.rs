//! The node: the driver of the core ([`NodeCore`]) over a [`ReportStore`], one file per
//! concept: `authority.rs` (case workers, codes, certificates), `uploads.rs`,
//! `publication.rs` (cuts, serving, retention, the background loop) and `federation.rs`
//! (the libp2p bridge).
//!
//! [`Node`] is a cheap cloneable handle. HTTP handlers call its methods; so do tests, which
//! also drive [`Node::cut_due`] and [`Node::purge`] themselves with a
//! [`ManualClock`](crate::clock::ManualClock) instead of waiting for the background tasks.

mod accounts;
mod api_keys;
mod audit;
mod authority;
mod batch_log;
mod clock_watch;
mod console_session;
pub(crate) mod disk_reserve;
mod federation;
mod phone_timing;
mod publication;
mod sealed_exchange;
mod stats;
mod sunset;
mod sunset_spread;
mod token_keys;
mod twin_watch;
mod uploads;
mod venue_releases;
mod venues;

pub use accounts::{Need, SecondFactor, Session};
pub use api_keys::KeyHolder;
pub use audit::{AuditExport, AuditPage, MAX_AUDIT_PAGE};
pub use authority::Issuer;
pub use phone_timing::Answered;
pub use stats::{
    Counters, DEFAULT_STATS_DAYS, MAX_STATS_DAYS, STATS_CSV_HEADER, ShownCount, StatsRange,
    StatsReport, StatsRow, test_types,
};
pub use sunset::SunsetSetupError;
pub use sunset_spread::SunsetBeacon;
pub use venue_releases::RELEASE_INDEX_PAGE;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ephemera_node_core::NodeCore;
use ephemera_node_core::key_binding::{self, KeyBindingError};
use ephemera_node_core::keys::{KeyError, NodeKeys};
use ephemera_node_core::publication::PublicationError;
use ephemera_node_core::store::{
    BackupSummary, PostgresConfig, PostgresReportStore, ReportStore, SledReportStore, StoreError,
    StoreRole,
};
use ephemera_node_core::token_keys::shared::{EpochSeal, StoreEpochs};
use ephemera_node_core::token_keys::{EpochFolder, EpochShelf, EpochStoreError};
use ephemera_proto::UnixTime;
use thiserror::Error;
use tokio::sync::Mutex as AsyncMutex;

use crate::accounts::{LoginBudget, Password, TotpSeal};
use crate::api::error::ApiError;
use crate::api::types::NotReady;
use crate::batch_cache::{BatchCache, DEFAULT_BATCH_CACHE_BYTES};
use crate::clock::Clock;
use crate::config::{NodeConfig, StoreBackend};
use crate::federation::{FederationError, FederationHandle};
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
    /// The keys are not those of the store's group (or are missing from a group's node).
    #[error(transparent)]
    KeyBinding(KeyBindingError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task,
    /// The object store of `[publication] object_store` could not be set up.
    #[error(transparent)]
    Publish(#[from] crate::publish::PublishError),
    /// Federation could not start.
    #[error(transparent)]
    Federation(#[from] FederationError),
    /// A cut could not be planned (storage, or a GAEN export file that could not be signed).
    #[error(transparent)]
    Publication(#[from] PublicationError),
    /// The group's stored blind-token keys could not be read (another group's pepper).
    #[error(transparent)]
    TokenEpochs(EpochStoreError),
    /// A blind-token key could not be made or installed.
    #[error("blind-token keys: {0}")]
    TokenKeys(#[from] ephemera_proto::token::TokenError),
    /// The sunset settings or the stored order do not hold.
    #[error(transparent)]
    Sunset(SunsetSetupError),
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
    /// Seals staff accounts' TOTP secrets at rest (a key derived from the code pepper).
    totp_seal: TotpSeal,
    /// Derives and checks the CSRF tokens of the console's cookie sessions (keys derived
    /// from the code pepper).
    csrf: crate::accounts::CsrfKey,
    /// The last TOTP step each account signed in with, so that no code works twice: in
    /// memory only.
    totp_steps: Mutex<std::collections::HashMap<String, u64>>,
    /// Held while an account record is read, changed and written back.
    accounts_lock: Mutex<()>,
    /// Sign-in budgets per client source and per name (issues 24, 17): in memory only.
    login_budget: Mutex<LoginBudget>,
    /// The audit trail's head, opened from the store at its first record.
    audit: Mutex<Option<ephemera_node_core::audit::AuditTrail>>,
    /// Permits for password hashing: PBKDF2 runs on at most this many blocking threads.
    hashing: Arc<tokio::sync::Semaphore>,
    /// Permits for blind RSA signatures (`/v2/verify`, real or decoy): as many as for
    /// hashing, but their own, so an anonymous flood of them leaves a core to flushes,
    /// uploads and serving and never delays a staff sign-in.
    signing: Arc<tokio::sync::Semaphore>,
    batch_cache: BatchCache,
    /// Token filters (`docs/PROTOCOL.md` §6.5) recently cut or asked for, read from storage.
    filter_cache: BatchCache,
    /// The memory files of both caches' bodies, sent with `sendfile` by connections.
    body_files: Arc<crate::send_file::BodyFiles>,
    /// Serialises cuts and revisions, which both move queue groups.
    publication: AsyncMutex<()>,
    /// What a cut in progress has written but not yet flushed: never listed, so no phone or
    /// key server sees a batch that a crash could take back (and whose sequence number the
    /// next cut would then reuse).
    unflushed: Mutex<Unflushed>,
    /// Whether a task is making blind-token keys (`token_keys`).
    token_keys_busy: AtomicBool,
    /// Where blind-token epochs persist: `keys/tokens/`, or the group's store.
    token_epochs: Arc<dyn EpochShelf>,
    /// Judges the wall clock before purges and cuts.
    clock_watch: Mutex<clock_watch::ClockWatch>,
    /// Whether another copy of this node runs (twin detection through federation).
    twins: twin_watch::TwinWatch,
    /// The first boundary this process may cut (`BatchCutter::first_boundary_after_start`).
    first_cut: UnixTime,
    /// Recent real latencies of the sealed phone routes, to hold other answers to.
    phone_timing: phone_timing::PhoneTiming,
    /// Free disk against `[storage] free_space_reserve_mb`: uploads and verifies wait below it.
    disk_reserve: disk_reserve::DiskReserve,
    /// The signed head of this node's batch log and the heads heard of others.
    batch_log: batch_log::BatchLog,
    /// Writes the published tree to an object store after cuts (`[publication]
    /// object_store`); unset: the node only serves it.
    publisher: std::sync::OnceLock<Arc<crate::publish::Publisher>>,
    /// The sunset committee and the order held.
    sunset: sunset::SunsetWatch,
}

/// Batches and exports of a cut that are in the store but not yet durable.
#[derive(Clone, Debug, Default)]
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
    /// Name and one-time password of the first account (an admin with every role, whose
    /// first sign-in must set a new password), if it was created now.
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
    /// and a first account if there is none.
    ///
    /// # Errors
    /// [`NodeError`] when the folder, keys or database cannot be opened, or when a `[storage]
    /// role` other than `all` is set on sled.
    pub fn open(config: NodeConfig, clock: Arc<dyn Clock>) -> Result<Opened, NodeError> {
        if config.storage.backend == StoreBackend::Sled && config.storage.role != StoreRole::All {
            // Refused before anything is made: a node on sled does everything.
            return Err(NodeError::Store(StoreError::Engine(format!(
                "[storage] role = \"{}\" needs [storage] backend = \"postgres\": a node on \
                 sled does everything (role = \"all\")",
                config.storage.role
            ))));
        }
        if crate::sunset_erasure::begun(&config.data_dir) {
            return Err(NodeError::Sunset(SunsetSetupError::Erased));
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        // Whether the sled folder has history: checked before opening makes the folder.
        let folder_history = matches!(config.storage.backend, StoreBackend::Sled)
            && config.data_dir.join(DB_DIR).exists();
        let (store, shared_tables) = open_store(&config)?;
        // Keys are made for a new store only, and must be the ones its data was made
        // under: a node of a group never forks the group's batches (`key_binding`).
        let (keys, keys_created) = key_binding::open_keys(
            &config.data_dir,
            store.as_ref(),
            folder_history,
            &mut rand::rng(),
        )
        .map_err(|e| match e {
            KeyBindingError::Keys(e) => NodeError::Keys(e),
            KeyBindingError::Store(e) => NodeError::Store(e),
            other => NodeError::KeyBinding(other),
        })?;
        let publisher = match &config.publication.object_store {
            Some(url) => Some(crate::publish::Publisher::new(
                &crate::publish::Target::parse(url).map_err(crate::publish::PublishError::Url)?,
                &crate::publish::S3Settings {
                    endpoint: config.publication.object_store_endpoint.clone(),
                    region: config.publication.object_store_region.clone(),
                    allow_http: config.publication.object_store_allow_http,
                },
            )?),
            None => None,
        };
        let token_epochs: Arc<dyn EpochShelf> = match shared_tables {
            Some(tables) => Arc::new(StoreEpochs::new(tables, EpochSeal::new(&keys.pepper))),
            None => Arc::new(EpochFolder::new(&config.data_dir)),
        };
        let node = Node::build(config, clock, store, keys, token_epochs);
        if let Some(publisher) = publisher {
            node.publish_to(publisher);
        }
        node.open_sunset()?;
        // Accounts and the audit trail are the console's: a node of another role may not
        // touch them.
        let role = node.config().storage.role;
        let new_case_worker = if role.runs_console() {
            node.ensure_first_account()?
        } else {
            None
        };
        if role.runs_console() {
            node.audit_configuration()?;
        }
        Ok(Opened {
            node,
            new_case_worker,
            keys_created,
        })
    }

    /// A node over any store and keys (tests, other engines); its blind-token keys are
    /// files of its data folder.
    pub fn with_store(
        config: NodeConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn ReportStore>,
        keys: NodeKeys,
    ) -> Node {
        let token_epochs = Arc::new(EpochFolder::new(&config.data_dir));
        Node::build(config, clock, store, keys, token_epochs)
    }

    fn build(
        config: NodeConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn ReportStore>,
        keys: NodeKeys,
        token_epochs: Arc<dyn EpochShelf>,
    ) -> Node {
        let login_budget = LoginBudget::new(
            config.authority.login_failures_per_user,
            config.authority.login_failures_per_user.saturating_mul(20),
            config.authority.login_failures_per_user.saturating_mul(10),
            LOGIN_WINDOW_SECONDS,
        );
        let totp_seal = TotpSeal::new(&keys.pepper);
        let csrf = crate::accounts::CsrfKey::new(&keys.pepper);
        let sunset = sunset::SunsetWatch::new(&config, keys.authority.public_key());
        let core = NodeCore::new(config.policy(), keys, &mut rand::rng());
        // A store that cannot say whether it cut before is taken to have cut.
        let last_cut = store
            .cutter_state()
            .map_or(Some(UnixTime(0)), |state| state.last_boundary);
        let first_cut = core
            .cutter()
            .first_boundary_after_start(clock.now(), last_cut);
        let twins = twin_watch::TwinWatch::new(clock.now(), core.keys().batch.public_key());
        // What the store holds at open is durable: the head phones may be shown.
        let batch_log = batch_log::BatchLog::new(store.chain_head().ok().flatten());
        let body_files = Arc::<crate::send_file::BodyFiles>::default();
        // Hashing leaves a core to the rest of the node (flushes, serving) where there are two
        // or more.
        let hashing_threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .saturating_sub(1)
            .max(1);
        let node = Node {
            inner: Arc::new(Inner {
                first_cut,
                phone_timing: phone_timing::PhoneTiming::new(std::time::Duration::from_millis(
                    config.http.phone_answer_floor_ms,
                )),
                committer: Committer::start(&store),
                federation: Mutex::new(None),
                core,
                flusher: Flusher {
                    store: store.clone(),
                    written: AtomicU64::new(0),
                    flushed: AtomicU64::new(0),
                    lock: AsyncMutex::new(()),
                },
                clock_watch: Mutex::new(clock_watch::ClockWatch::new(&config)),
                twins,
                disk_reserve: disk_reserve::DiskReserve::new(
                    config.data_dir.clone(),
                    config.storage.free_space_reserve_mb,
                ),
                config,
                clock,
                store,
                metrics: Metrics::new(),
                totp_seal,
                csrf,
                totp_steps: Mutex::new(std::collections::HashMap::new()),
                accounts_lock: Mutex::new(()),
                login_budget: Mutex::new(login_budget),
                audit: Mutex::new(None),
                hashing: Arc::new(tokio::sync::Semaphore::new(hashing_threads)),
                signing: Arc::new(tokio::sync::Semaphore::new(hashing_threads)),
                batch_cache: BatchCache::with_files(DEFAULT_BATCH_CACHE_BYTES, body_files.clone()),
                filter_cache: BatchCache::with_files(
                    DEFAULT_BATCH_CACHE_BYTES / 4,
                    body_files.clone(),
                ),
                body_files,
                publication: AsyncMutex::new(()),
                unflushed: Mutex::new(Unflushed::default()),
                batch_log,
                token_keys_busy: AtomicBool::new(false),
                token_epochs,
                publisher: std::sync::OnceLock::new(),
                sunset,
            }),
        };
        node.init_metrics();
        node
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

    /// Why the node does not take new uploads now, if it does not (`GET /healthz`): free
    /// disk below `[storage] free_space_reserve_mb`. Samples the disk at most once a second.
    pub fn not_ready(&self) -> Option<NotReady> {
        self.inner
            .disk_reserve
            .below(&self.inner.metrics)
            .then_some(NotReady::DiskReserve)
    }

    /// Refuses a request that would store a new upload (an upload, or the verify before one)
    /// while free disk is below the reserve; real and decoy requests alike, before anything
    /// in them is read.
    ///
    /// # Errors
    /// [`ApiError::InsufficientStorage`].
    fn refuse_below_disk_reserve(&self) -> Result<(), ApiError> {
        // The last sample, never a new one: see `disk_reserve`.
        if self.inner.disk_reserve.holds() {
            Err(ApiError::InsufficientStorage)
        } else {
            Ok(())
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ReportStore> {
        &self.inner.store
    }

    /// Writes a consistent copy of the node's data (`db/`, `blobs/`, `keys/data/`) into `to`,
    /// a new or empty folder, while it serves: writers wait for the copy, readers do not.
    ///
    /// # Errors
    /// [`NodeError::Store`] when `to` is not empty or a copy fails.
    pub async fn backup(&self, to: PathBuf) -> Result<BackupSummary, NodeError> {
        let store = self.inner.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.backup(&to))
            .await
            .map_err(|_| NodeError::Task)??)
    }

    /// The current time by the node's clock.
    pub fn now(&self) -> UnixTime {
        self.inner.clock.now()
    }
}

/// A node's store, and on PostgreSQL the same store as its tables, which the group's nodes
/// share blind-token keys through (`token_keys::shared`).
pub type OpenedStore = (Arc<dyn ReportStore>, Option<Arc<PostgresReportStore>>);

/// Opens the store `config` names.
///
/// # Errors
/// [`NodeError::Store`].
pub fn open_store(config: &NodeConfig) -> Result<OpenedStore, NodeError> {
    match (&config.storage.backend, &config.storage.url) {
        (StoreBackend::Postgres, Some(url)) => {
            let mut postgres = PostgresConfig::new(url.reveal());
            postgres.schema.clone_from(&config.storage.schema);
            postgres.pool_size = config.storage.pool_size;
            postgres.role = config.storage.role;
            let store = Arc::new(PostgresReportStore::open(&postgres)?);
            Ok((store.clone(), Some(store)))
        }
        (StoreBackend::Postgres, None) => Err(NodeError::Store(StoreError::Engine(
            "[storage] backend is \"postgres\" but [storage] url is not set".to_owned(),
        ))),
        (StoreBackend::Sled, _) => Ok((
            Arc::new(SledReportStore::open(
                &config.data_dir.join(DB_DIR),
                &config.data_dir.join(BLOB_DIR),
                &config
                    .data_dir
                    .join(ephemera_node_core::keys::KEYS_DIR)
                    .join(ephemera_node_core::store::DATA_KEYS_DIR),
            )?),
            None,
        )),
    }
}

/// Runs `work` on a blocking thread under one of `pool`'s permits: at most that many such
/// jobs run at once, and the rest of the blocking pool (store flushes) stays free.
async fn bounded_blocking<T: Send + 'static>(
    pool: &Arc<tokio::sync::Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = pool
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::Internal)
}
