//! The federation bridge: starting libp2p with the node's identity, and the node's store
//! as federation reads and writes it (relayed uploads go through the core's federation
//! intake).

use std::sync::Arc;
use std::time::Duration;

use ephemera_node_core::federation_intake::{RelayAdmission, RelayOutcome};
use ephemera_node_core::store::StoreError;
use ephemera_proto::federated::FederatedReport;
use ephemera_proto::revision::Binding;
use ephemera_proto::upload::{UploadId, VerifiedUpload};

use crate::federation::{
    DayDigest, Federation, FederationConfig, FederationHandle, FederationStore, HeadSink,
    MetricsSink, NodeIdentity, ReleaseSink, StoreOutcome, SunsetSink, TwinSink,
};

use super::{FederationSlot, Inner, Node, NodeError};

/// Federation's metrics, recorded into the node's own recorder (so `/metrics` shows them).
/// Holds the node weakly: federation must not keep a stopped node alive.
struct NodeRecorder(std::sync::Weak<Inner>);

impl metrics::Recorder for NodeRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(
        &self,
        key: &metrics::Key,
        meta: &metrics::Metadata<'_>,
    ) -> metrics::Counter {
        match self.0.upgrade() {
            Some(inner) => inner.metrics.recorder().register_counter(key, meta),
            None => metrics::Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &metrics::Key, meta: &metrics::Metadata<'_>) -> metrics::Gauge {
        match self.0.upgrade() {
            Some(inner) => inner.metrics.recorder().register_gauge(key, meta),
            None => metrics::Gauge::noop(),
        }
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        meta: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        match self.0.upgrade() {
            Some(inner) => inner.metrics.recorder().register_histogram(key, meta),
            None => metrics::Histogram::noop(),
        }
    }
}

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
        let mut federation = federation_settings(&self.inner.config)
            .with_trusted_authorities(self.inner.core.trusted().clone());
        federation.limits = self.inner.core.limits().clone();
        federation.metrics = Some(MetricsSink(Arc::new(NodeRecorder(Arc::downgrade(
            &self.inner,
        )))));
        federation.twins = Some(TwinSink(Arc::new(super::twin_watch::NodeTwins(
            Arc::downgrade(&self.inner),
        ))));
        federation.heads = Some(HeadSink(Arc::new(super::batch_log::NodeHeads(
            Arc::downgrade(&self.inner),
        ))));
        federation.sunset = Some(SunsetSink(Arc::new(super::sunset_spread::NodeSunset(
            Arc::downgrade(&self.inner),
        ))));
        federation.venue_releases = Some(ReleaseSink(Arc::new(
            super::venue_releases::NodeReleases(Arc::downgrade(&self.inner)),
        )));
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
        if self.ended_authority() == Some(upload.upload().certificate.certificate.authority) {
            return Ok(StoreOutcome::AuthorityEnded);
        }
        let id = upload.id();
        let commit = match core.admit_relayed(store, upload, self.now())? {
            RelayAdmission::AlreadyStored => return Ok(StoreOutcome::AlreadyStored),
            RelayAdmission::OriginalMissing => return Ok(StoreOutcome::OriginalMissing),
            RelayAdmission::RevisionRefused => return Ok(StoreOutcome::RevisionRefused),
            RelayAdmission::Commit(commit) => commit,
        };
        let authority = commit.upload.1.upload.certificate.certificate.authority;
        let outcome = self.inner.committer.commit_blocking(*commit)?;
        Ok(match core.settle_relayed(store, &id, outcome)? {
            RelayOutcome::Stored => {
                self.inner.metrics.upload_accepted("relayed", authority);
                StoreOutcome::Stored
            }
            RelayOutcome::AlreadyStored => StoreOutcome::AlreadyStored,
            RelayOutcome::CertificateUsed => StoreOutcome::CertificateUsed,
            RelayOutcome::RevisionRefused => StoreOutcome::RevisionRefused,
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
        let node = self.node()?;
        // Below the disk reserve a peer's upload waits like a phone's: a store failure to
        // federation (the gossip is ignored without penalty, the catch-up round ends and
        // nothing is marked as fetched), so catch-up brings it once there is room.
        if node.inner.disk_reserve.holds() {
            return Err(crate::federation::StoreError(Box::new(
                super::disk_reserve::BelowDiskReserve,
            )));
        }
        node.store_relayed(upload).map_err(federation_error)
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

    fn get(&self, id: &UploadId) -> Result<Option<FederatedReport>, crate::federation::StoreError> {
        let node = self.node()?;
        let store = &node.inner.store;
        let Some(record) = store.upload(id).map_err(federation_error)? else {
            return Ok(None);
        };
        // The binding is kept in the certificate's mark, which lives as long as the upload.
        let binding = store
            .certificate_use(&record.upload.certificate.certificate.id)
            .map_err(federation_error)?
            .filter(|mark| mark.upload == *id)
            .map_or(Binding::Unbound, |mark| mark.binding);
        Ok(Some(FederatedReport {
            upload: record.upload,
            binding,
        }))
    }

    fn day_digest(
        &self,
        day: ephemera_proto::DayNumber,
    ) -> Result<DayDigest, crate::federation::StoreError> {
        let node = self.node()?;
        node.inner.store.day_digest(day).map_err(federation_error)
    }
}

/// The federation settings of `config` that do not need an open node: listeners, peers,
/// discovery, connection caps and budgets. No authority is trusted and no witness set.
pub(crate) fn federation_settings(config: &crate::config::NodeConfig) -> FederationConfig {
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
        .with_bootstrap_peers(config.federation.bootstrap_peers.clone())
        .with_sync_interval(Duration::from_secs(config.federation.sync_interval_seconds));
    federation.listen_addrs = vec![tcp, quic];
    federation.mdns = config.federation.mdns;
    federation.region = config.federation.region.clone();
    federation.publish_delay_max = Duration::from_millis(config.federation.publish_delay_ms);
    let f = &config.federation;
    federation.reserved_peers = f
        .reserved_peers
        .iter()
        .filter_map(|addr| {
            addr.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
                _ => None,
            })
        })
        .collect();
    federation.max_connections = f.max_connections;
    federation.max_connections_per_ip = f.max_connections_per_ip as usize;
    federation.max_connections_per_subnet = f.max_connections_per_subnet as usize;
    federation.max_pending_incoming = f.max_pending_connections;
    federation.stranger_idle_timeout = Duration::from_secs(f.stranger_idle_seconds);
    federation.response_bytes_total = f.response_bytes_total as usize;
    federation.response_bytes_per_peer = f.response_bytes_per_peer as usize;
    federation.discovery = f.discovery;
    federation.dial_private_addrs = f.dial_private_addresses;
    federation.dials_per_minute = f.dials_per_minute;
    for key in &f.relay_authorities {
        federation.relay_authorities.insert(*key);
    }
    federation
}
