//! Helpers to run several federating nodes on loopback: for tests, the simulator and the
//! propagation benchmark. Nothing here leaves 127.0.0.1 (mDNS stays off).
//!
//! Built only with the `test-util` feature of `ephemera-node` (and in its own unit tests), so
//! the production library does not ship it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ephemera_node::federation::FederationError> {
//! use std::time::Duration;
//! use ephemera_node::federation::FederationConfig;
//! use ephemera_node::federation::testing::{LocalCluster, UploadFactory};
//!
//! let factory = UploadFactory::new();
//! let config = FederationConfig::default().with_trusted_authorities(factory.trusted());
//! let cluster = LocalCluster::start(10, |_| config.clone()).await?;
//! cluster.wait_for_mesh(Duration::from_secs(10)).await;
//! let upload = factory.upload(3);
//! let id = upload.id();
//! let sent = std::time::Instant::now();
//! cluster.nodes[0].store.store_local(upload.clone());
//! cluster.nodes[0].handle.publish(upload).await?;
//! cluster.wait_for(&id, Duration::from_secs(5)).await;
//! for node in &cluster.nodes[1..] {
//!     println!("{:?}", node.store.arrival(&id).map(|t| t - sent));
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ephemera_proto::auth::{
    AuthoritySigningKey, CertificateRequest, ExpiryPolicy, ReportHmacKey, TrustedAuthorities,
};
use ephemera_proto::federated::FederatedReport;
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::revision::HmacBinding;
use ephemera_proto::upload::{SignedUpload, UploadId, VerifiedUpload};
use ephemera_proto::{DayNumber, PublishedToken, ReportContents, ReportLimits, ReportType};
use libp2p::multiaddr::Protocol;
use tokio::task::JoinHandle;

use super::{
    Clock, DayDigest, Federation, FederationConfig, FederationError, FederationHandle,
    FederationStore, MemoryFederationStore, Multiaddr, NodeIdentity, StoreError, StoreOutcome,
    SystemClock,
};

/// A [`MemoryFederationStore`] that also records when each upload arrived.
#[derive(Debug, Default)]
pub struct RecordingStore {
    inner: MemoryFederationStore,
    arrivals: Mutex<HashMap<UploadId, Instant>>,
}

impl RecordingStore {
    /// An empty store.
    pub fn new() -> Self {
        RecordingStore::default()
    }

    /// When the upload `id` was stored here, if it was.
    pub fn arrival(&self, id: &UploadId) -> Option<Instant> {
        self.arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
    }

    fn record(&self, id: UploadId, outcome: StoreOutcome) {
        if outcome == StoreOutcome::Stored {
            self.arrivals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, Instant::now());
        }
    }

    /// Stores a phone's upload (what the node does before it publishes).
    pub fn store_local(&self, upload: VerifiedUpload) -> StoreOutcome {
        let id = upload.id();
        let outcome = self.inner.store_local(upload);
        self.record(id, outcome);
        outcome
    }

    /// The underlying memory store.
    pub fn memory(&self) -> &MemoryFederationStore {
        &self.inner
    }

    /// Whether an upload with this id is stored (this store cannot fail).
    pub fn holds(&self, id: &UploadId) -> bool {
        self.inner.holds(id)
    }
}

impl FederationStore for RecordingStore {
    fn contains(&self, id: &UploadId) -> Result<bool, StoreError> {
        self.inner.contains(id)
    }

    fn store_relayed(&self, upload: VerifiedUpload) -> Result<StoreOutcome, StoreError> {
        let id = upload.id();
        let outcome = self.inner.store_relayed(upload)?;
        self.record(id, outcome);
        Ok(outcome)
    }

    fn ids_for_day(
        &self,
        day: DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, StoreError> {
        self.inner.ids_for_day(day, after, limit)
    }

    fn get(&self, id: &UploadId) -> Result<Option<FederatedReport>, StoreError> {
        self.inner.get(id)
    }

    fn day_digest(&self, day: DayNumber) -> Result<DayDigest, StoreError> {
        self.inner.day_digest(day)
    }
}

/// Makes valid (and, for tests, forged) `pet` uploads certified by one test authority.
#[derive(Debug)]
pub struct UploadFactory {
    authority: AuthoritySigningKey,
}

impl Default for UploadFactory {
    fn default() -> Self {
        UploadFactory::new()
    }
}

impl UploadFactory {
    /// A factory with a fresh random authority.
    pub fn new() -> Self {
        UploadFactory {
            authority: AuthoritySigningKey::generate(&mut rand::rng()),
        }
    }

    /// This factory's authority key.
    pub fn public_key(&self) -> ephemera_proto::signing::Ed25519PublicKey {
        self.authority.public_key()
    }

    /// The trusted set holding this factory's authority.
    pub fn trusted(&self) -> TrustedAuthorities {
        TrustedAuthorities::new().with(self.authority.public_key())
    }

    /// A signed, not yet verified upload of `tokens` random tokens of today, certified now
    /// (version 1: its HMAC covers the entries only).
    pub fn signed(&self, tokens: usize) -> SignedUpload {
        self.certify(
            Self::contents(tokens),
            ReportType::ConfirmedTest,
            HmacBinding::Unbound,
        )
    }

    /// `tokens` random `pet` tokens of today.
    pub fn contents(tokens: usize) -> ReportContents {
        let now = SystemClock.now();
        let mut rng = rand::rng();
        ReportContents::Pet(
            (0..tokens.max(1))
                .map(|_| {
                    let mut token = [0u8; 16];
                    rand::Rng::fill_bytes(&mut rng, &mut token);
                    PublishedToken {
                        day: now.day(),
                        token: EncounterToken(token),
                    }
                })
                .collect(),
        )
    }

    /// `contents` certified now as `test_type`, with a fresh HMAC key and the HMAC bound
    /// to `binding` (a version 2 upload or revision; [`HmacBinding::Unbound`] for version 1).
    pub fn certify(
        &self,
        contents: ReportContents,
        test_type: ReportType,
        binding: HmacBinding,
    ) -> SignedUpload {
        let now = SystemClock.now();
        let mut rng = rand::rng();
        let hmac_key = ReportHmacKey::generate(&mut rng);
        let request = CertificateRequest {
            report_hmac: hmac_key.authenticate_bound(&contents, binding),
            test_type,
            symptom_onset: None,
        };
        SignedUpload {
            contents,
            certificate: self.authority.issue(&request, now, 3600, &mut rng),
            hmac_key,
        }
    }

    /// A verified upload of `tokens` random tokens, as a node holds it after a phone's
    /// upload.
    ///
    /// # Panics
    /// Never for `tokens` within the default report limits.
    pub fn upload(&self, tokens: usize) -> VerifiedUpload {
        self.signed(tokens)
            .verify(
                &self.trusted(),
                SystemClock.now(),
                ExpiryPolicy::FirstUpload,
                &ReportLimits::default(),
            )
            .expect("factory uploads are valid")
    }
}

/// One node of a [`LocalCluster`].
#[derive(Debug)]
pub struct LocalNode {
    /// Its federation handle.
    pub handle: FederationHandle,
    /// Its store.
    pub store: Arc<RecordingStore>,
    /// Its identity (kept to restart it under the same peer id).
    pub identity: NodeIdentity,
    /// Its listen addresses, each ending in `/p2p/<peer id>`.
    pub addrs: Vec<Multiaddr>,
    join: Option<JoinHandle<()>>,
}

impl LocalNode {
    /// Starts a node over `store`, bootstrapping from `bootstrap`.
    ///
    /// # Errors
    /// As [`Federation::spawn`].
    pub async fn start(
        mut config: FederationConfig,
        identity: NodeIdentity,
        store: Arc<RecordingStore>,
        bootstrap: Vec<Multiaddr>,
    ) -> Result<LocalNode, FederationError> {
        config.mdns = false;
        // A local cluster lives on 127.0.0.1: its nodes find each other there.
        config.dial_private_addrs = true;
        // Every node of a local cluster shares 127.0.0.1: no per-address cap among them.
        config.max_connections_per_ip = config.max_connections as usize * 2;
        config.max_connections_per_subnet = config.max_connections as usize * 2;
        config.bootstrap_peers.extend(bootstrap);
        let (handle, join) = Federation::spawn(
            config,
            identity.clone(),
            store.clone(),
            Arc::new(SystemClock),
        )?;
        let peer_id = handle.peer_id();
        let addrs = handle
            .listen_addrs()
            .await?
            .into_iter()
            .map(|a| a.with(Protocol::P2p(peer_id)))
            .collect();
        Ok(LocalNode {
            handle,
            store,
            identity,
            addrs,
            join: Some(join),
        })
    }

    /// Its TCP address (with `/p2p/`).
    pub fn tcp_addr(&self) -> Multiaddr {
        self.addrs
            .iter()
            .find(|a| a.iter().any(|p| matches!(p, Protocol::Tcp(_))))
            .or(self.addrs.first())
            .cloned()
            .expect("a node listens somewhere")
    }

    /// Its QUIC address (with `/p2p/`), if it listens on one.
    pub fn quic_addr(&self) -> Option<Multiaddr> {
        self.addrs
            .iter()
            .find(|a| a.iter().any(|p| matches!(p, Protocol::QuicV1)))
            .cloned()
    }

    /// Stops the node's event loop and waits for it to end; the store is kept.
    pub async fn stop(&mut self) {
        let _ = self.handle.shutdown().await;
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }
}

/// Several nodes on 127.0.0.1: node `i` bootstraps from node `i - 1`, and Kademlia
/// introduces the rest.
#[derive(Debug)]
pub struct LocalCluster {
    /// The nodes, in start order.
    pub nodes: Vec<LocalNode>,
}

impl LocalCluster {
    /// Starts `n` nodes; `config(i)` gives node `i`'s settings (its bootstrap list is
    /// extended with the previous node).
    ///
    /// # Errors
    /// As [`Federation::spawn`].
    pub async fn start(
        n: usize,
        config: impl Fn(usize) -> FederationConfig,
    ) -> Result<LocalCluster, FederationError> {
        let mut nodes: Vec<LocalNode> = Vec::with_capacity(n);
        for i in 0..n {
            let bootstrap = nodes.last().map(|p| vec![p.tcp_addr()]).unwrap_or_default();
            let node = LocalNode::start(
                config(i),
                NodeIdentity::generate(),
                Arc::new(RecordingStore::new()),
                bootstrap,
            )
            .await?;
            nodes.push(node);
        }
        Ok(LocalCluster { nodes })
    }

    /// Waits until every running node has at least `min(n - 1, 3)` peers on the topic and
    /// one mesh peer; returns whether that happened within `timeout`.
    pub async fn wait_for_mesh(&self, timeout: Duration) -> bool {
        let want = self.nodes.len().saturating_sub(1).min(3);
        let deadline = Instant::now() + timeout;
        loop {
            let mut ready = true;
            for node in &self.nodes {
                match node.handle.status().await {
                    Ok(s) if s.topic_peers >= want && (want == 0 || s.mesh_peers > 0) => {}
                    Ok(_) => ready = false,
                    Err(_) => {}
                }
            }
            if ready {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every node stores `id`; returns whether that happened within `timeout`.
    pub async fn wait_for(&self, id: &UploadId, timeout: Duration) -> bool {
        let stores: Vec<&RecordingStore> = self.nodes.iter().map(|n| &*n.store).collect();
        wait_until(timeout, || stores.iter().all(|s| s.holds(id))).await
    }

    /// Stops every node.
    pub async fn stop(mut self) {
        for node in &mut self.nodes {
            node.stop().await;
        }
    }
}

/// Polls `done` every 10 ms until it holds or `timeout` passes; returns its last value.
pub async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
