//! UniFFI bindings (Kotlin, Swift, Python): [`EphemeraPhone`] wraps a [`Phone`] behind a
//! mutex, with plain records and byte vectors at the boundary.
//!
//! # The one unsafe exception
//! This is the only module allowed `unsafe_code`: UniFFI's proc-macros expand to
//! `#[unsafe(no_mangle)] extern "C"` functions that the foreign side calls. No hand-written
//! unsafe code is here; the crate forbids unsafe code when the `ffi` feature is off.
//!
//! # Time and randomness
//! Every method takes the current time as unix seconds from the app, so apps and tests
//! control it. Each phone's RNG seed comes from the OS (`getrandom`), which is the only
//! place production randomness enters.
#![allow(missing_docs, unreachable_pub)]

use std::sync::{Arc, Mutex, MutexGuard};

use ephemera_proto::auth::UploadCode;
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::{DayNumber, SchemeKind, UnixTime};

use crate::error::StoreError;
use crate::risk::{DailyExposure, ExposureWindow};
use crate::store::{
    EncounterRecord, MemoryStore, MetaKey, OwnKey, PurgeCounts, SledStore, Store, WindowId,
};
use crate::{ClientConfig, ClientError, Phone, PhoneEvent, RequestId, Response, Sighting, Signal};

uniffi::setup_scaffolding!("ephemera");

/// Errors across the boundary, flattened to a message.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum FfiError {
    /// The configuration is invalid (bad key hex, bad value).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An argument is malformed (a code, a payload).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The core refused or failed.
    #[error("{0}")]
    Client(String),
}

impl From<ClientError> for FfiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::ForeignPayload => FfiError::InvalidInput(e.to_string()),
            ClientError::Config(_) => FfiError::Config(e.to_string()),
            other => FfiError::Client(other.to_string()),
        }
    }
}

/// The token scheme.
#[derive(Copy, Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum FfiScheme {
    /// Interoperable GAEN.
    Gaen,
    /// Private encounter tokens (default).
    Pet,
}

/// What the app configures; everything else keeps [`ClientConfig::default`].
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiConfig {
    /// The scheme.
    pub scheme: FfiScheme,
    /// Hex Ed25519 public keys of the nodes whose batches are trusted.
    pub trusted_node_keys: Vec<String>,
    /// Retention in days (14).
    pub retention_days: u32,
    /// Mean decoys a day (0.1); 0 turns them off.
    pub decoy_rate_per_day: f64,
    /// GAEN transmit power announced in the metadata (dBm).
    pub tx_power: i8,
}

impl FfiConfig {
    fn into_config(self) -> Result<ClientConfig, FfiError> {
        let scheme = match self.scheme {
            FfiScheme::Gaen => SchemeKind::Gaen,
            FfiScheme::Pet => SchemeKind::Pet,
        };
        let mut config = ClientConfig::new(scheme)
            .with_retention_days(self.retention_days)
            .with_decoy_rate(self.decoy_rate_per_day);
        config.tx_power = self.tx_power;
        for hex in &self.trusted_node_keys {
            let key = Ed25519PublicKey::from_hex(hex)
                .ok_or_else(|| FfiError::Config("a node key is 64 hex characters".into()))?;
            config.trusted_nodes.insert(key);
        }
        config
            .validate()
            .map_err(|e| FfiError::Config(e.to_string()))?;
        Ok(config)
    }
}

/// The default configuration for `scheme`, with no trusted node.
#[uniffi::export]
pub fn default_config(scheme: FfiScheme) -> FfiConfig {
    let defaults = ClientConfig::default();
    FfiConfig {
        scheme,
        trusted_node_keys: Vec::new(),
        retention_days: defaults.retention_days,
        decoy_rate_per_day: defaults.decoy.rate_per_day,
        tx_power: defaults.tx_power,
    }
}

/// What to broadcast now.
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiAdvertisement {
    /// The interval number.
    pub interval: u32,
    /// Legacy advertisement payload (GAEN 20 bytes or the next 16-byte `pet` slice).
    pub legacy: Vec<u8>,
    /// Extended advertising / GATT payload (GAEN 20 bytes or the 32-byte `pet` key).
    pub full: Vec<u8>,
    /// Unix seconds when it must rotate.
    pub valid_until: u64,
}

/// A request to send to the node.
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiRequest {
    /// Hand back with the answer.
    pub id: u64,
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query below the node's base URL.
    pub path: String,
    /// Content type of the body, for POSTs.
    pub content_type: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// One day's exposure.
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiExposure {
    /// UTC day number (unix seconds / 86400).
    pub day: u32,
    /// Seconds per attenuation bucket: immediate, near, medium, other.
    pub seconds_per_bucket: Vec<u32>,
    /// Minutes per bucket, rounded down.
    pub minutes_per_bucket: Vec<u32>,
    /// Weighted seconds.
    pub score: f64,
    /// Whether the day reached the risk threshold.
    pub high_risk: bool,
}

impl From<DailyExposure> for FfiExposure {
    fn from(d: DailyExposure) -> Self {
        FfiExposure {
            day: d.day.0,
            seconds_per_bucket: d.seconds_per_bucket.to_vec(),
            minutes_per_bucket: d.minutes_per_bucket().to_vec(),
            score: d.score,
            high_risk: d.high_risk,
        }
    }
}

/// An event for the app.
#[derive(Clone, Debug, uniffi::Enum)]
pub enum FfiEvent {
    /// Exposure found on a day.
    ExposureFound {
        /// The day's exposure.
        exposure: FfiExposure,
    },
    /// The report was uploaded.
    ReportUploaded {
        /// Revision token (hex).
        revision_token: String,
    },
    /// The report failed.
    ReportFailed {
        /// Why.
        reason: String,
    },
    /// A sync round ended.
    SyncCompleted {
        /// Cursor now.
        cursor: u64,
        /// Batches ingested.
        batches: u32,
    },
    /// A batch was refused.
    BatchRejected {
        /// Why.
        reason: String,
    },
}

/// A store chosen at run time: sled in a folder, or memory.
#[derive(Debug)]
enum AnyStore {
    Sled(SledStore),
    Memory(MemoryStore),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sled($s) => $e,
            AnyStore::Memory($s) => $e,
        }
    };
}

impl Store for AnyStore {
    fn own_key(&self, day: DayNumber) -> Result<Option<OwnKey>, StoreError> {
        delegate!(self, s => s.own_key(day))
    }
    fn put_own_key(&mut self, day: DayNumber, key: &OwnKey) -> Result<(), StoreError> {
        delegate!(self, s => s.put_own_key(day, key))
    }
    fn own_key_days(&self) -> Result<Vec<DayNumber>, StoreError> {
        delegate!(self, s => s.own_key_days())
    }
    fn remove_own_key(&mut self, day: DayNumber) -> Result<(), StoreError> {
        delegate!(self, s => s.remove_own_key(day))
    }
    fn put_encounter(&mut self, record: &EncounterRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.put_encounter(record))
    }
    fn for_each_encounter(
        &self,
        visit: &mut dyn FnMut(&EncounterRecord),
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.for_each_encounter(visit))
    }
    fn put_window(&mut self, id: &WindowId, window: &ExposureWindow) -> Result<bool, StoreError> {
        delegate!(self, s => s.put_window(id, window))
    }
    fn windows_of(&self, day: DayNumber) -> Result<Vec<ExposureWindow>, StoreError> {
        delegate!(self, s => s.windows_of(day))
    }
    fn window_days(&self) -> Result<Vec<DayNumber>, StoreError> {
        delegate!(self, s => s.window_days())
    }
    fn set_meta(&mut self, key: MetaKey, value: &[u8]) -> Result<(), StoreError> {
        delegate!(self, s => s.set_meta(key, value))
    }
    fn meta(&self, key: MetaKey) -> Result<Option<Vec<u8>>, StoreError> {
        delegate!(self, s => s.meta(key))
    }
    fn purge_before(&mut self, oldest_kept: DayNumber) -> Result<PurgeCounts, StoreError> {
        delegate!(self, s => s.purge_before(oldest_kept))
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        delegate!(self, s => s.flush())
    }
}

/// A phone for the app: every method takes `now` as unix seconds.
#[derive(Debug, uniffi::Object)]
pub struct EphemeraPhone {
    inner: Mutex<Phone<AnyStore>>,
}

impl EphemeraPhone {
    fn phone(&self) -> MutexGuard<'_, Phone<AnyStore>> {
        // A panic while holding the lock leaves the phone as it was at the last input.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[uniffi::export]
impl EphemeraPhone {
    /// A phone keeping its state in sled under `data_dir`, or in memory when `None`.
    #[uniffi::constructor]
    pub fn new(config: FfiConfig, data_dir: Option<String>) -> Result<Arc<Self>, FfiError> {
        let config = config.into_config()?;
        let store = match data_dir {
            Some(dir) => {
                AnyStore::Sled(SledStore::open(dir).map_err(|e| FfiError::Client(e.to_string()))?)
            }
            None => AnyStore::Memory(MemoryStore::new()),
        };
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|_| FfiError::Client("the OS gave no randomness".into()))?;
        let phone = Phone::new(config, store, seed)?;
        Ok(Arc::new(EphemeraPhone {
            inner: Mutex::new(phone),
        }))
    }

    /// What to broadcast now.
    pub fn advertisement(&self, now: u64) -> Result<FfiAdvertisement, FfiError> {
        let ad = self.phone().advertisement(UnixTime(now))?;
        Ok(FfiAdvertisement {
            interval: ad.interval.0,
            legacy: ad.legacy,
            full: ad.full,
            valid_until: ad.valid_until.0,
        })
    }

    /// A payload heard with its RSSI (dBm) and the advertised TX power, if any.
    pub fn handle_sighting(
        &self,
        now: u64,
        payload: Vec<u8>,
        rssi: i8,
        tx_power: Option<i8>,
    ) -> Result<(), FfiError> {
        let sighting = Sighting {
            payload: &payload,
            signal: Signal::Rssi { rssi, tx_power },
        };
        Ok(self.phone().handle_sighting(UnixTime(now), &sighting)?)
    }

    /// A payload heard with an attenuation (dB) the platform computed.
    pub fn handle_sighting_attenuation(
        &self,
        now: u64,
        payload: Vec<u8>,
        attenuation: u8,
    ) -> Result<(), FfiError> {
        let sighting = Sighting {
            payload: &payload,
            signal: Signal::Attenuation(attenuation),
        };
        Ok(self.phone().handle_sighting(UnixTime(now), &sighting)?)
    }

    /// The timer from `poll_timeout` fired.
    pub fn handle_timeout(&self, now: u64) -> Result<(), FfiError> {
        Ok(self.phone().handle_timeout(UnixTime(now))?)
    }

    /// When to call `handle_timeout` next (unix seconds).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.phone().poll_timeout().map(|t| t.0)
    }

    /// The next request to send, if any.
    pub fn poll_request(&self) -> Option<FfiRequest> {
        self.phone().poll_request().map(|r| FfiRequest {
            id: r.id.0,
            method: r.method.as_str().to_owned(),
            path: r.path,
            content_type: r.content_type.map(str::to_owned),
            body: r.body,
        })
    }

    /// The answer to request `id`.
    pub fn handle_response(
        &self,
        now: u64,
        id: u64,
        status: u16,
        body: Vec<u8>,
    ) -> Result<(), FfiError> {
        Ok(self
            .phone()
            .handle_response(UnixTime(now), RequestId(id), Response { status, body })?)
    }

    /// Request `id` could not be delivered.
    pub fn handle_failure(&self, now: u64, id: u64) -> Result<(), FfiError> {
        Ok(self.phone().handle_failure(UnixTime(now), RequestId(id))?)
    }

    /// Verifies and matches a batch the app fetched itself; returns new exposure windows.
    pub fn handle_batch(&self, now: u64, batch: Vec<u8>) -> Result<u32, FfiError> {
        let summary = self.phone().handle_batch(UnixTime(now), &batch)?;
        Ok(summary.new_windows as u32)
    }

    /// The next event, if any.
    pub fn poll_event(&self) -> Option<FfiEvent> {
        self.phone().poll_event().map(|e| match e {
            PhoneEvent::ExposureFound(d) => FfiEvent::ExposureFound { exposure: d.into() },
            PhoneEvent::ReportUploaded { revision_token } => {
                FfiEvent::ReportUploaded { revision_token }
            }
            PhoneEvent::ReportFailed(reason) => FfiEvent::ReportFailed {
                reason: reason.to_string(),
            },
            PhoneEvent::SyncCompleted { cursor, batches } => {
                FfiEvent::SyncCompleted { cursor, batches }
            }
            PhoneEvent::BatchRejected(e) => FfiEvent::BatchRejected {
                reason: e.to_string(),
            },
        })
    }

    /// Starts a report with the code the case worker gave; returns the entries reported.
    /// Days are UTC day numbers (unix seconds / 86400).
    pub fn start_report(
        &self,
        now: u64,
        code: String,
        symptom_onset_day: Option<u32>,
        test_day: Option<u32>,
    ) -> Result<u32, FfiError> {
        let code = UploadCode::parse(&code).map_err(|e| FfiError::InvalidInput(e.to_string()))?;
        let preview = self.phone().start_report(
            UnixTime(now),
            &code,
            symptom_onset_day.map(DayNumber),
            test_day.map(DayNumber),
        )?;
        Ok(preview.entries as u32)
    }

    /// Starts a sync round now.
    pub fn start_sync(&self, now: u64) -> Result<(), FfiError> {
        Ok(self.phone().start_sync(UnixTime(now))?)
    }

    /// Every day with exposure.
    pub fn exposures(&self, now: u64) -> Result<Vec<FfiExposure>, FfiError> {
        Ok(self
            .phone()
            .exposures(UnixTime(now))?
            .into_iter()
            .map(FfiExposure::from)
            .collect())
    }

    /// Closes every open encounter (call before a long suspension).
    pub fn close_all_encounters(&self) -> Result<(), FfiError> {
        Ok(self.phone().close_all_encounters()?)
    }
}

#[cfg(feature = "test-node")]
pub use test_node::TestNode;

/// An in-process authority and node for binding tests: it certifies any code, verifies
/// uploads and cuts signed batches. Never ship it: its keys come from a seed.
#[cfg(feature = "test-node")]
mod test_node {
    use std::sync::Mutex;

    use ephemera_proto::api::{UploadResponse, VerifyRequest, VerifyResponse};
    use ephemera_proto::auth::{
        AuthoritySigningKey, CertificateRequest, ExpiryPolicy, TrustedAuthorities, UploadCode,
    };
    use ephemera_proto::batch::{BatchContents, NodeSigningKey};
    use ephemera_proto::upload::{UploadBody, UploadRequest};
    use ephemera_proto::{ReportLimits, ReportType, UnixTime, wire};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::FfiError;

    struct State {
        authority: AuthoritySigningKey,
        node: NodeSigningKey,
        rng: ChaCha20Rng,
        pending: BatchContents,
    }

    /// See the module docs.
    #[derive(uniffi::Object)]
    pub struct TestNode {
        state: Mutex<State>,
    }

    impl std::fmt::Debug for TestNode {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("TestNode")
        }
    }

    fn bad(e: impl std::fmt::Display) -> FfiError {
        FfiError::InvalidInput(e.to_string())
    }

    #[uniffi::export]
    impl TestNode {
        /// A node and authority whose keys derive from `seed`.
        #[uniffi::constructor]
        pub fn new(seed: u64) -> std::sync::Arc<Self> {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            std::sync::Arc::new(TestNode {
                state: Mutex::new(State {
                    authority: AuthoritySigningKey::generate(&mut rng),
                    node: NodeSigningKey::generate(&mut rng),
                    rng,
                    pending: BatchContents::default(),
                }),
            })
        }

        /// The node's batch key, hex, for the phone's config.
        pub fn node_key(&self) -> String {
            self.state.lock().expect("lock").node.public_key().to_hex()
        }

        /// A fresh upload code.
        pub fn issue_code(&self) -> String {
            let mut s = self.state.lock().expect("lock");
            UploadCode::generate(&mut s.rng).reveal()
        }

        /// Answers a `POST /v1/verify` body with a certificate (JSON body).
        pub fn answer_verify(&self, now: u64, body: Vec<u8>) -> Result<Vec<u8>, FfiError> {
            let mut s = self.state.lock().expect("lock");
            let request: VerifyRequest = serde_json::from_slice(&body).map_err(bad)?;
            let hmac = request.parsed_hmac().ok_or_else(|| bad("bad hmac"))?;
            let State { authority, rng, .. } = &mut *s;
            let certificate = authority.issue(
                &CertificateRequest {
                    report_hmac: hmac,
                    test_type: ReportType::ConfirmedTest,
                    symptom_onset: None,
                },
                UnixTime(now),
                3600,
                rng,
            );
            Ok(VerifyResponse::new(&certificate).to_padded_json())
        }

        /// Verifies a `POST /v1/uploads` body and queues its entries for the next batch;
        /// returns the JSON answer.
        pub fn accept_upload(&self, now: u64, body: Vec<u8>) -> Result<Vec<u8>, FfiError> {
            let mut s = self.state.lock().expect("lock");
            let request: UploadRequest = wire::decode(&body).map_err(bad)?;
            let UploadBody::Real(upload) = request.body else {
                return Err(bad("not a real upload"));
            };
            let trusted = TrustedAuthorities::new().with(s.authority.public_key());
            let verified = upload
                .verify(
                    &trusted,
                    UnixTime(now),
                    ExpiryPolicy::FirstUpload,
                    &ReportLimits::default(),
                )
                .map_err(bad)?;
            match verified.contents() {
                ephemera_proto::ReportContents::Gaen(keys) => {
                    s.pending.diagnosis_keys.extend(keys.iter().cloned())
                }
                ephemera_proto::ReportContents::Pet(tokens) => {
                    s.pending.tokens.extend(tokens.iter().copied())
                }
            }
            Ok(UploadResponse {
                revision_token: "00".into(),
                padding: String::new(),
            }
            .to_padded_json())
        }

        /// Cuts a signed batch of everything accepted so far, padded with decoys.
        pub fn cut_batch(&self, now: u64) -> Vec<u8> {
            let mut s = self.state.lock().expect("lock");
            let State {
                node, rng, pending, ..
            } = &mut *s;
            let mut batch = std::mem::take(pending);
            batch.sequence = 1;
            batch.created_at = UnixTime(now);
            batch.pad_with_decoys(100, UnixTime(now), 14, rng);
            batch.sign(node).into_bytes()
        }
    }
}
