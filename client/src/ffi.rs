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
//! control it (see the clock contract in `docs/MOBILE.md`). Each phone's RNG seed comes
//! from the OS (`getrandom`), which is the only place production randomness enters.
//!
//! # Integer types
//! Signed types throughout (`Long`/`Int` in Kotlin, `Int64`/`Int32` in Swift): times,
//! ids, days and counts are far from the signed limits, and a negative value where none
//! makes sense is refused with [`FfiError::InvalidInput`].
//!
//! # Threads and lifetime
//! An [`EphemeraPhone`] is `Send + Sync` (one mutex inside): call it from any thread.
//! One folder holds one phone: make one `EphemeraPhone` per folder for the life of the
//! process (a second one on the same folder, here or in another process, gets
//! [`FfiError::FolderInUse`]); [`EphemeraPhone::close`] releases the folder at once.
#![allow(unreachable_pub)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use ephemera_proto::auth::UploadCode;
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::sunset::SunsetCommittee;
use ephemera_proto::token::UploadDelay;
use ephemera_proto::{DayNumber, SchemeKind, UnixTime};

use crate::error::{CheckInError, ReportError, StoreError};
use crate::risk::{DailyExposure, ExposureWindow};
use crate::store::{
    CheckInRecord, EncounterRecord, MemoryStore, MetaKey, OwnKey, PurgeCounts, SledStore, Store,
    WindowId,
};
use crate::{ClientConfig, ClientError, Phone, PhoneEvent, RequestId, Response, Sighting, Signal};

uniffi::setup_scaffolding!("ephemera");

/// Errors across the boundary: one variant per kind an app acts on; `message` is English
/// for logs only (never parse it).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum FfiError {
    /// The configuration is invalid (bad key hex, value out of range, another scheme).
    #[error("invalid configuration: {message}")]
    Config {
        /// English, for logs only.
        message: String,
    },
    /// An argument is malformed (a code, a payload of another scheme, a negative time).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// English, for logs only.
        message: String,
    },
    /// The time given is earlier than one already seen: nothing was done. Call again
    /// with the current time once the clock is right.
    #[error("the time went back by {seconds} s")]
    ClockWentBack {
        /// How far back, in seconds.
        seconds: i64,
    },
    /// Another phone object has this folder open (in this or another process).
    #[error("the data folder is in use by another phone object")]
    FolderInUse,
    /// The phone was closed (`close` or `delete_all_data` failed half-way): make a new one.
    #[error("this phone object is closed")]
    Closed,
    /// Tracing is paused: nothing to broadcast.
    #[error("tracing is paused")]
    Paused,
    /// A report is already on its way.
    #[error("a report is already in progress")]
    ReportInProgress,
    /// Nothing to report in the infectious window.
    #[error("nothing to report in the infectious window")]
    NothingToReport,
    /// No report to retry or revise.
    #[error("no report to retry or revise")]
    NoReport,
    /// A batch or export file failed to decode or verify (untrusted node, tampered).
    #[error("rejected: {message}")]
    Rejected {
        /// English, for logs only.
        message: String,
    },
    /// The answer names a request this phone is not waiting for.
    #[error("no request with this id is in flight")]
    UnknownRequest,
    /// The data folder failed (I/O, corruption).
    #[error("storage: {message}")]
    Storage {
        /// English, for logs only.
        message: String,
    },
    /// The phone has ended (a sunset order took effect, or its end of life came): its data
    /// is erased and it does nothing more. Stop the Bluetooth work, show the closing
    /// screen.
    #[error("this phone has ended (sunset)")]
    Ended,
    /// The scanned text is not a valid venue code, or the code is outside its validity
    /// (`code`: `venue-code-invalid`, `venue-code-not-yet-valid`, `venue-code-expired`).
    #[error("{code}: {message}")]
    BadVenueCode {
        /// The stable kebab-case code.
        code: String,
        /// English, for logs only.
        message: String,
    },
    /// A check-in is open already: check out first.
    #[error("already checked in")]
    AlreadyCheckedIn,
    /// No check-in is open (the phone may have checked out by itself: `VenueCheckedOut`).
    #[error("not checked in")]
    NotCheckedIn,
    /// Anything else, with its stable kebab-case code.
    #[error("{code}: {message}")]
    Other {
        /// The stable kebab-case code.
        code: String,
        /// English, for logs only.
        message: String,
    },
}

impl From<ClientError> for FfiError {
    fn from(e: ClientError) -> Self {
        let message = e.to_string();
        match e {
            ClientError::Config(_) => FfiError::Config { message },
            ClientError::ForeignPayload => FfiError::InvalidInput { message },
            ClientError::ClockWentBack { seconds } => FfiError::ClockWentBack {
                seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
            },
            ClientError::Store(StoreError::InUse) => FfiError::FolderInUse,
            ClientError::Store(_) => FfiError::Storage { message },
            ClientError::Paused => FfiError::Paused,
            ClientError::Report(ReportError::InProgress) => FfiError::ReportInProgress,
            ClientError::Report(ReportError::NothingToReport) => FfiError::NothingToReport,
            ClientError::Report(ReportError::NoReport) => FfiError::NoReport,
            ClientError::Batch(_)
            | ClientError::Filter(_)
            | ClientError::Export(_)
            | ClientError::NoExportKey
            | ClientError::BatchIdMismatch
            | ClientError::BatchSequenceMismatch => FfiError::Rejected { message },
            ClientError::UnknownRequest => FfiError::UnknownRequest,
            ClientError::Ended => FfiError::Ended,
            ClientError::CheckIn(CheckInError::AlreadyCheckedIn) => FfiError::AlreadyCheckedIn,
            ClientError::CheckIn(CheckInError::NotCheckedIn) => FfiError::NotCheckedIn,
            ClientError::CheckIn(
                ref c @ (CheckInError::BadCode(_)
                | CheckInError::NotYetValid
                | CheckInError::Expired),
            ) => FfiError::BadVenueCode {
                code: c.code().to_owned(),
                message,
            },
            // The batch log's findings (`stale-head`, `head-forked`, `head-mismatch`, …)
            // keep their codes: an app shows and reports them apart from a bad batch.
            other => FfiError::Other {
                code: other.code().to_owned(),
                message,
            },
        }
    }
}

fn invalid(message: &str) -> FfiError {
    FfiError::InvalidInput {
        message: message.to_owned(),
    }
}

/// Unix seconds from the app: never negative.
fn time(now: i64) -> Result<UnixTime, FfiError> {
    u64::try_from(now)
        .map(UnixTime)
        .map_err(|_| invalid("a time is unix seconds, never negative"))
}

fn day(d: i32) -> Result<DayNumber, FfiError> {
    u32::try_from(d)
        .map(DayNumber)
        .map_err(|_| invalid("a day number is never negative"))
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn int(v: impl TryInto<i32>) -> i32 {
    v.try_into().unwrap_or(i32::MAX)
}

/// The token scheme.
#[derive(Copy, Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum FfiScheme {
    /// Interoperable GAEN.
    Gaen,
    /// Private encounter tokens (default).
    Pet,
}

/// What the app configures. Start from [`default_config`]; an authority may publish new
/// risk and cadence values that the app applies with [`EphemeraPhone::update_config`],
/// without an app release.
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiConfig {
    /// The scheme (fixed for a phone's life).
    pub scheme: FfiScheme,
    /// Hex Ed25519 public keys of the nodes whose batches are trusted: the node's
    /// `batch_public_key` from `GET /v1/authority` (not the authority key).
    pub trusted_node_keys: Vec<String>,
    /// `gaen`: P-256 public keys (raw point or DER SPKI) of key servers whose GAEN export
    /// files are accepted (`GET /v1/authority/export-key.pem`, base64 body decoded).
    pub gaen_export_keys: Vec<Vec<u8>>,
    /// Retention in days (14).
    pub retention_days: i32,
    /// Mean decoy flows a day (0.1); 0 turns them off.
    pub decoy_rate_per_day: f64,
    /// Share of decoy flows that retry once, like a mistyped code (0.1): set it to the
    /// share of real verifies that fail.
    pub decoy_retry_fraction: f64,
    /// Least seconds between the sync before a decoy and its verify, and between a
    /// decoy's two attempts (20).
    pub decoy_delay_min_seconds: i64,
    /// Most seconds for the same delays (180).
    pub decoy_delay_max_seconds: i64,
    /// GAEN transmit power announced in the metadata (dBm).
    pub tx_power: i8,
    /// Seconds between scheduled syncs (14,400).
    pub sync_interval_seconds: i64,
    /// Oldest a node's signed head may be before a sync reports it stale (21,600).
    pub max_head_age_seconds: i64,
    /// Sightings within this many seconds of a scan's first one form one scan (20).
    pub scan_window_seconds: i32,
    /// The app's scan period: each scan credits at most this (240; set your cadence).
    pub scan_period_seconds: i32,
    /// Longest time credited between two scans (300).
    pub max_gap_seconds: i32,
    /// Open encounters are checkpointed at most this often (60).
    pub checkpoint_seconds: i32,
    /// `pet`: least credited seconds for an encounter to be kept (120).
    pub min_pet_encounter_seconds: i32,
    /// First report retry after this many seconds, doubling (30).
    pub retry_initial_seconds: i64,
    /// Longest wait between report retries (3,600).
    pub retry_max_seconds: i64,
    /// A forward clock jump beyond this is not trusted for retention until confirmed
    /// (172,800).
    pub max_forward_jump_seconds: i64,
    /// Risk: upper bounds (dB) of the immediate, near and medium buckets (56, 62, 73).
    pub attenuation_thresholds_db: Vec<i32>,
    /// Risk: weights of the immediate, near, medium and other buckets (1.5, 1.0, 0.4, 0).
    pub attenuation_weights: Vec<f64>,
    /// Risk: weight of a `confirmed` report (1.0).
    pub confirmed_test_weight: f64,
    /// Risk: weight of a `likely` (clinical diagnosis) report (0: only `confirmed`
    /// reports produce risk by default).
    pub clinical_diagnosis_weight: f64,
    /// Risk: a window counts from this many weighted seconds (300).
    pub minimum_window_score: f64,
    /// Risk: a day is high risk from this many weighted seconds (900).
    pub minimum_daily_score: f64,
    /// Hex Ed25519 public keys of the authorities whose certificates, token key sets and
    /// venue releases this phone accepts (the node's `authority_public_key` from
    /// `GET /v1/authority`). Empty by default: certificates are then checked by the node
    /// only, venue releases are taken from the node (over TLS) with every check but the
    /// signature, and no blind token is used.
    pub trusted_authority_keys: Vec<String>,
    /// The federation (the nodes' `[federation] region`; `ephemera` when they set none)
    /// whose blind upload tokens this phone uses. `None` (default): reports go with
    /// certificates. Set, it needs `trusted_authority_keys`.
    pub federation: Option<String>,
    /// With a blind token, the most seconds between the verify's answer and the upload,
    /// drawn uniformly (0: at once). `None` (default, recommended): a random time of the
    /// next UTC day, which a few hours cannot replace (docs/PROTOCOL.md §4.4).
    pub upload_delay_max_seconds: Option<i64>,
    /// `pet`: upload only encounters that could count for the peer, taken this many dB
    /// closer than measured (default 10); `None` uploads every encounter of the window.
    pub upload_margin_db: Option<i32>,
    /// Sunset: hex Ed25519 public keys of the sunset committee whose orders end this app
    /// (not the authority's keys). Empty (default): orders are ignored, only
    /// `end_of_life` ends the app.
    pub sunset_committee_keys: Vec<String>,
    /// Sunset: how many of `sunset_committee_keys` must approve an order (1 to their
    /// number; ignored while there are none).
    pub sunset_threshold: i32,
    /// Sunset: the federation an order must name; `None` (default): `federation`, else
    /// `ephemera`.
    pub sunset_federation: Option<String>,
    /// Sunset: unix seconds at which the app erases everything and stops even if no order
    /// ever came: the legal end of the programme, fixed in the app build (2020 to 2100).
    /// `None` (default): no hard end.
    pub end_of_life: Option<i64>,
    /// Venue check-in: seconds after arrival at which the phone checks out by itself
    /// (43,200: 12 hours; at most 82,800).
    pub venue_max_stay_seconds: i64,
}

impl FfiConfig {
    fn into_config(self) -> Result<ClientConfig, FfiError> {
        let bad = |field: &str| FfiError::Config {
            message: format!("bad `{field}`"),
        };
        let scheme = match self.scheme {
            FfiScheme::Gaen => SchemeKind::Gaen,
            FfiScheme::Pet => SchemeKind::Pet,
        };
        let u32_of = |v: i32, field: &str| u32::try_from(v).map_err(|_| bad(field));
        let u64_of = |v: i64, field: &str| u64::try_from(v).map_err(|_| bad(field));
        let mut config = ClientConfig::new(scheme)
            .with_retention_days(u32_of(self.retention_days, "retention_days")?)
            .with_decoy_rate(self.decoy_rate_per_day);
        config.tx_power = self.tx_power;
        config.decoy.retry_fraction = self.decoy_retry_fraction;
        config.decoy.delay_seconds = (
            u64_of(self.decoy_delay_min_seconds, "decoy_delay_min_seconds")?,
            u64_of(self.decoy_delay_max_seconds, "decoy_delay_max_seconds")?,
        );
        for hex in &self.trusted_node_keys {
            let key = Ed25519PublicKey::from_hex(hex).ok_or_else(|| FfiError::Config {
                message: "a node key is 64 hex characters".into(),
            })?;
            config.trusted_nodes.insert(key);
        }
        config.gaen_export_keys = self.gaen_export_keys;
        config.sync.interval_seconds = u64_of(self.sync_interval_seconds, "sync_interval_seconds")?;
        config.sync.max_head_age_seconds =
            u64_of(self.max_head_age_seconds, "max_head_age_seconds")?;
        config.encounter.scan_window_seconds =
            u32_of(self.scan_window_seconds, "scan_window_seconds")?;
        config.encounter.scan_period_seconds =
            u32_of(self.scan_period_seconds, "scan_period_seconds")?;
        config.encounter.max_gap_seconds = u32_of(self.max_gap_seconds, "max_gap_seconds")?;
        config.encounter.checkpoint_seconds =
            u32_of(self.checkpoint_seconds, "checkpoint_seconds")?;
        config.encounter.min_pet_encounter_seconds =
            u32_of(self.min_pet_encounter_seconds, "min_pet_encounter_seconds")?;
        config.report.retry_initial_seconds =
            u64_of(self.retry_initial_seconds, "retry_initial_seconds")?;
        config.report.retry_max_seconds = u64_of(self.retry_max_seconds, "retry_max_seconds")?;
        config.clock.max_forward_jump_seconds =
            u64_of(self.max_forward_jump_seconds, "max_forward_jump_seconds")?;
        let thresholds: Vec<u8> = self
            .attenuation_thresholds_db
            .iter()
            .map(|t| u8::try_from(*t).map_err(|_| bad("attenuation_thresholds_db")))
            .collect::<Result<_, _>>()?;
        config.risk.attenuation_thresholds_db = thresholds
            .try_into()
            .map_err(|_| bad("attenuation_thresholds_db (3 values)"))?;
        config.risk.attenuation_weights = self
            .attenuation_weights
            .try_into()
            .map_err(|_| bad("attenuation_weights (4 values)"))?;
        config.risk.report_type_weights.confirmed_test = self.confirmed_test_weight;
        config.risk.report_type_weights.confirmed_clinical_diagnosis =
            self.clinical_diagnosis_weight;
        config.risk.minimum_window_score = self.minimum_window_score;
        config.risk.minimum_daily_score = self.minimum_daily_score;
        for hex in &self.trusted_authority_keys {
            let key = Ed25519PublicKey::from_hex(hex).ok_or_else(|| FfiError::Config {
                message: "an authority key is 64 hex characters".into(),
            })?;
            config.report.trusted_authorities.insert(key);
        }
        config.report.federation = self.federation;
        config.report.upload_delay = match self.upload_delay_max_seconds {
            None => UploadDelay::NextDay,
            Some(0) => UploadDelay::Immediate,
            Some(max) => UploadDelay::Uniform {
                max_seconds: u64_of(max, "upload_delay_max_seconds")?,
            },
        };
        config.report.upload_margin_db = self
            .upload_margin_db
            .map(|m| u8::try_from(m).map_err(|_| bad("upload_margin_db")))
            .transpose()?;
        if !self.sunset_committee_keys.is_empty() {
            let keys = self
                .sunset_committee_keys
                .iter()
                .map(|hex| {
                    Ed25519PublicKey::from_hex(hex).ok_or_else(|| FfiError::Config {
                        message: "a sunset committee key is 64 hex characters".into(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let threshold =
                u8::try_from(self.sunset_threshold).map_err(|_| bad("sunset_threshold"))?;
            let committee =
                SunsetCommittee::new(&keys, threshold).map_err(|e| FfiError::Config {
                    message: e.to_string(),
                })?;
            config.sunset.committee = Some(committee);
        }
        config.sunset.federation = self.sunset_federation;
        config.sunset.end_of_life = self
            .end_of_life
            .map(|at| u64_of(at, "end_of_life").map(UnixTime))
            .transpose()?;
        config.venue.max_stay_seconds = u32::try_from(self.venue_max_stay_seconds)
            .map_err(|_| bad("venue_max_stay_seconds"))?;
        config.validate().map_err(|e| FfiError::Config {
            message: e.to_string(),
        })?;
        Ok(config)
    }
}

/// The default configuration for `scheme`, with no trusted node.
#[uniffi::export]
pub fn default_config(scheme: FfiScheme) -> FfiConfig {
    let d = ClientConfig::default();
    FfiConfig {
        scheme,
        trusted_node_keys: Vec::new(),
        gaen_export_keys: Vec::new(),
        retention_days: int(d.retention_days),
        decoy_rate_per_day: d.decoy.rate_per_day,
        decoy_retry_fraction: d.decoy.retry_fraction,
        decoy_delay_min_seconds: signed(d.decoy.delay_seconds.0),
        decoy_delay_max_seconds: signed(d.decoy.delay_seconds.1),
        tx_power: d.tx_power,
        sync_interval_seconds: signed(d.sync.interval_seconds),
        max_head_age_seconds: signed(d.sync.max_head_age_seconds),
        scan_window_seconds: int(d.encounter.scan_window_seconds),
        scan_period_seconds: int(d.encounter.scan_period_seconds),
        max_gap_seconds: int(d.encounter.max_gap_seconds),
        checkpoint_seconds: int(d.encounter.checkpoint_seconds),
        min_pet_encounter_seconds: int(d.encounter.min_pet_encounter_seconds),
        retry_initial_seconds: signed(d.report.retry_initial_seconds),
        retry_max_seconds: signed(d.report.retry_max_seconds),
        max_forward_jump_seconds: signed(d.clock.max_forward_jump_seconds),
        attenuation_thresholds_db: d
            .risk
            .attenuation_thresholds_db
            .iter()
            .map(|t| i32::from(*t))
            .collect(),
        attenuation_weights: d.risk.attenuation_weights.to_vec(),
        confirmed_test_weight: d.risk.report_type_weights.confirmed_test,
        clinical_diagnosis_weight: d.risk.report_type_weights.confirmed_clinical_diagnosis,
        minimum_window_score: d.risk.minimum_window_score,
        minimum_daily_score: d.risk.minimum_daily_score,
        trusted_authority_keys: Vec::new(),
        federation: None,
        upload_delay_max_seconds: None,
        upload_margin_db: d.report.upload_margin_db.map(i32::from),
        sunset_committee_keys: Vec::new(),
        sunset_threshold: 0,
        sunset_federation: None,
        end_of_life: None,
        venue_max_stay_seconds: signed(u64::from(d.venue.max_stay_seconds)),
    }
}

/// What to broadcast now.
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiAdvertisement {
    /// The interval number.
    pub interval: i64,
    /// Legacy advertisement payload (GAEN 20 bytes or the next 16-byte `pet` slice).
    pub legacy: Vec<u8>,
    /// Extended advertising / GATT payload (GAEN 20 bytes or the 32-byte `pet` key).
    pub full: Vec<u8>,
    /// Unix seconds when it must rotate.
    pub valid_until: i64,
}

/// A request to send to the node.
///
/// # Privacy
/// A verify body holds the user's code: `Debug` prints its length only. Never log bodies.
#[derive(Clone, uniffi::Record)]
pub struct FfiRequest {
    /// Hand back with the answer.
    pub id: i64,
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query below the node's base URL.
    pub path: String,
    /// Content type of the body, for POSTs.
    pub content_type: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for FfiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfiRequest")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// One day's exposure.
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiExposure {
    /// UTC day number (unix seconds / 86400).
    pub day: i32,
    /// Seconds per attenuation bucket: immediate, near, medium, other.
    pub seconds_per_bucket: Vec<i32>,
    /// Minutes per bucket, rounded down.
    pub minutes_per_bucket: Vec<i32>,
    /// Weighted seconds.
    pub score: f64,
    /// Whether the day reached the risk threshold.
    pub high_risk: bool,
}

impl From<DailyExposure> for FfiExposure {
    fn from(d: DailyExposure) -> Self {
        FfiExposure {
            day: int(d.day.0),
            seconds_per_bucket: d.seconds_per_bucket.iter().map(|s| int(*s)).collect(),
            minutes_per_bucket: d.minutes_per_bucket().iter().map(|m| int(*m)).collect(),
            score: d.score,
            high_risk: d.high_risk,
        }
    }
}

/// Why a report failed for good.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum FfiReportFailure {
    /// The authority refused the code (`http_status`, the node's error code such as
    /// `invalid-code`): the user needs a new code.
    CodeRefused {
        /// The node's HTTP status.
        http_status: i32,
        /// The node's error code (`{"error": …}`).
        node_code: String,
    },
    /// The node refused the upload (`http_status`, the node's error code).
    UploadRefused {
        /// The node's HTTP status.
        http_status: i32,
        /// The node's error code (`{"error": …}`).
        node_code: String,
    },
    /// The certificate received does not certify this report.
    BadCertificate,
    /// The certificate expired before the upload was accepted: a new code is needed.
    CertificateExpired,
    /// Another reason, by its stable code.
    Other {
        /// The stable kebab-case code.
        code: String,
    },
}

impl From<ReportError> for FfiReportFailure {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Refused { status, code } => FfiReportFailure::CodeRefused {
                http_status: i32::from(status),
                node_code: code,
            },
            ReportError::UploadRefused { status, code } => FfiReportFailure::UploadRefused {
                http_status: i32::from(status),
                node_code: code,
            },
            ReportError::BadCertificate => FfiReportFailure::BadCertificate,
            ReportError::CertificateExpired => FfiReportFailure::CertificateExpired,
            other => FfiReportFailure::Other {
                code: other.code().to_owned(),
            },
        }
    }
}

/// An event for the app.
///
/// # Privacy
/// `Debug` does not print the revision token (it lets its holder revise the report).
#[derive(Clone, uniffi::Enum)]
pub enum FfiEvent {
    /// Exposure found on a day (the summary covers the whole day).
    ExposureFound {
        /// The day's exposure.
        exposure: FfiExposure,
    },
    /// The report is kept on the phone and on its way.
    ReportPending,
    /// A report step got no definitive answer; it is sent again at `next_attempt`.
    ReportRetrying {
        /// Sends of the step so far.
        attempt: i32,
        /// Unix seconds of the next send.
        next_attempt: i64,
    },
    /// The node acknowledged the report.
    ReportUploaded {
        /// Revision token (hex) of a protocol version 1 upload; empty for version 2 (the
        /// phone keeps its revision secret itself for `start_revision`).
        revision_token: String,
    },
    /// The report failed for good.
    ReportFailed {
        /// Why.
        reason: FfiReportFailure,
    },
    /// A sync round ended.
    SyncCompleted {
        /// Cursor now.
        cursor: i64,
        /// Batches ingested.
        batches: i32,
    },
    /// A batch was refused (the next sync retries it).
    BatchRejected {
        /// English, for logs.
        message: String,
    },
    /// A valid sunset order for this app was received: at `effective_at` the phone erases
    /// everything and stops, even if it never connects again. Tell the user why.
    SunsetScheduled {
        /// Unix seconds when the phone ends.
        effective_at: i64,
        /// Why, in the committee's words.
        reason: String,
    },
    /// The phone has ended: its data is erased, and every call now fails with `Ended`.
    /// Stop the Bluetooth work and show the closing screen.
    Ended {
        /// Unix seconds of the end (the order's effective time, or the end of life).
        at: i64,
        /// The order's reason, or `end of life`.
        reason: String,
        /// Hex id of the order that ended it (what nodes' deletion receipts name); `None`
        /// at the end of life.
        order_id: Option<String>,
    },
    /// The node's index carried a sunset order this phone could not verify (forged,
    /// partial, another federation or committee, or no committee configured): ignored,
    /// nothing erased.
    SunsetOrderRejected,
    /// Venue traces matched a check-in: a case was at a place while the user was. Show
    /// the day, hours and message (never where: the phone does not know it any more).
    VenueWarning {
        /// The warning.
        warning: FfiVenueWarning,
    },
    /// The check-in was open for `venue_max_stay_seconds`: the phone checked out by
    /// itself (the visit is kept, encrypted). Update the screen.
    VenueCheckedOut,
    /// The phone refused its node's venue release index or a release it listed (forged,
    /// of an authority not in `trusted_authority_keys`, expired, truncated on the way,
    /// over the phone's limits). For logs; nothing to show the user.
    VenueReleaseRejected {
        /// Stable code: `venue-release-index-invalid`, `venue-release-too-large`,
        /// `venue-release-mismatch`, `venue-release-malformed`, `venue-release-untrusted`,
        /// `venue-release-forged`, `venue-release-expired`, `venue-release-post-dated`,
        /// `venue-release-invalid`.
        code: String,
        /// Whether the next sync asks again (the way or the clock may be at fault);
        /// otherwise the release was skipped for good.
        retried: bool,
    },
}

/// A venue warning: day, hours and the authority's message, never the venue.
#[derive(Clone, uniffi::Record)]
pub struct FfiVenueWarning {
    /// The UTC day of the visit (unix seconds / 86,400).
    pub day: i32,
    /// Unix seconds of the start of each hour of the visit a case's time matched.
    pub hour_starts: Vec<i64>,
    /// The health authority's message.
    pub message: String,
}

impl std::fmt::Debug for FfiVenueWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfiVenueWarning")
            .field("day", &self.day)
            .field("hours", &self.hour_starts.len())
            .finish_non_exhaustive()
    }
}

impl From<crate::VenueWarning> for FfiVenueWarning {
    fn from(w: crate::VenueWarning) -> Self {
        FfiVenueWarning {
            day: int(w.day.0),
            hour_starts: w.hours.iter().map(|h| signed(h.start().0)).collect(),
            message: w.message,
        }
    }
}

/// The open check-in.
#[cfg(feature = "venue")]
#[derive(Clone, uniffi::Record)]
pub struct FfiCheckIn {
    /// The venue's name, for the screen of the place the user is in now (gone from the
    /// phone at check-out).
    pub venue_name: String,
    /// Unix seconds of the check-in.
    pub arrival: i64,
    /// Unix seconds at which the phone checks out by itself.
    pub automatic_check_out: i64,
}

#[cfg(feature = "venue")]
impl std::fmt::Debug for FfiCheckIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FfiCheckIn(<redacted>)")
    }
}

#[cfg(feature = "venue")]
impl From<crate::CheckInStatus> for FfiCheckIn {
    fn from(s: crate::CheckInStatus) -> Self {
        FfiCheckIn {
            venue_name: s.venue_name,
            arrival: signed(s.arrival.0),
            automatic_check_out: signed(s.automatic_check_out.0),
        }
    }
}

/// What matching venue traces did.
#[cfg(feature = "venue")]
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiVenueMatch {
    /// Traces given.
    pub traces: i32,
    /// Traces that did not decode (skipped).
    pub undecodable: i32,
    /// Decryptions tried.
    pub attempts: i64,
    /// Warnings not found before (each also comes as a `VenueWarning` event).
    pub new_warnings: i32,
}

impl std::fmt::Debug for FfiEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FfiEvent::ExposureFound { exposure } => f
                .debug_struct("ExposureFound")
                .field("exposure", exposure)
                .finish(),
            FfiEvent::ReportPending => f.write_str("ReportPending"),
            FfiEvent::ReportRetrying {
                attempt,
                next_attempt,
            } => f
                .debug_struct("ReportRetrying")
                .field("attempt", attempt)
                .field("next_attempt", next_attempt)
                .finish(),
            FfiEvent::ReportUploaded { .. } => f.write_str("ReportUploaded { <redacted> }"),
            FfiEvent::ReportFailed { reason } => f
                .debug_struct("ReportFailed")
                .field("reason", reason)
                .finish(),
            FfiEvent::SyncCompleted { cursor, batches } => f
                .debug_struct("SyncCompleted")
                .field("cursor", cursor)
                .field("batches", batches)
                .finish(),
            FfiEvent::BatchRejected { message } => f
                .debug_struct("BatchRejected")
                .field("message", message)
                .finish(),
            FfiEvent::SunsetScheduled {
                effective_at,
                reason,
            } => f
                .debug_struct("SunsetScheduled")
                .field("effective_at", effective_at)
                .field("reason", reason)
                .finish(),
            FfiEvent::Ended {
                at,
                reason,
                order_id,
            } => f
                .debug_struct("Ended")
                .field("at", at)
                .field("reason", reason)
                .field("order_id", order_id)
                .finish(),
            FfiEvent::SunsetOrderRejected => f.write_str("SunsetOrderRejected"),
            FfiEvent::VenueWarning { warning } => f
                .debug_struct("VenueWarning")
                .field("warning", warning)
                .finish(),
            FfiEvent::VenueCheckedOut => f.write_str("VenueCheckedOut"),
            FfiEvent::VenueReleaseRejected { code, retried } => f
                .debug_struct("VenueReleaseRejected")
                .field("code", code)
                .field("retried", retried)
                .finish(),
        }
    }
}

impl From<PhoneEvent> for FfiEvent {
    fn from(e: PhoneEvent) -> Self {
        match e {
            PhoneEvent::ExposureFound(d) => FfiEvent::ExposureFound { exposure: d.into() },
            PhoneEvent::ReportPending => FfiEvent::ReportPending,
            PhoneEvent::ReportRetrying {
                attempt,
                next_attempt,
            } => FfiEvent::ReportRetrying {
                attempt: int(attempt),
                next_attempt: signed(next_attempt.0),
            },
            PhoneEvent::ReportUploaded { revision_token } => {
                FfiEvent::ReportUploaded { revision_token }
            }
            PhoneEvent::ReportFailed(reason) => FfiEvent::ReportFailed {
                reason: reason.into(),
            },
            PhoneEvent::SyncCompleted { cursor, batches } => FfiEvent::SyncCompleted {
                cursor: signed(cursor),
                batches: int(batches),
            },
            PhoneEvent::BatchRejected(e) => FfiEvent::BatchRejected {
                message: e.to_string(),
            },
            PhoneEvent::SunsetScheduled {
                effective_at,
                reason,
            } => FfiEvent::SunsetScheduled {
                effective_at: signed(effective_at.0),
                reason,
            },
            PhoneEvent::Ended(end) => FfiEvent::Ended {
                at: signed(end.at().0),
                reason: end.reason().to_owned(),
                order_id: match &end {
                    crate::EndReason::Order { id, .. } => Some(id.to_string()),
                    crate::EndReason::EndOfLife { .. } => None,
                },
            },
            PhoneEvent::SunsetOrderRejected => FfiEvent::SunsetOrderRejected,
            PhoneEvent::VenueWarning(w) => FfiEvent::VenueWarning { warning: w.into() },
            PhoneEvent::VenueCheckedOut => FfiEvent::VenueCheckedOut,
            PhoneEvent::VenueReleaseRejected(e) => FfiEvent::VenueReleaseRejected {
                code: e.code().to_owned(),
                retried: e.retried(),
            },
            // `PhoneEvent` is non-exhaustive; a future kind shows as a rejected batch's
            // neighbour rather than vanishing.
            #[allow(unreachable_patterns)]
            other => FfiEvent::BatchRejected {
                message: format!("{other:?}"),
            },
        }
    }
}

/// What a second node's `/v1/heads` showed of this phone's node (`cross_check_heads`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum FfiHeadCrossCheck {
    /// The second node holds no head of this phone's node, or the phone verified none yet.
    NotSeen,
    /// The second node's heads agree with the phone's view.
    Consistent {
        /// The highest sequence it saw.
        peer_sequence: i64,
    },
    /// It saw a later head: the next sync should reach it.
    PeerAhead {
        /// The highest sequence it saw.
        peer_sequence: i64,
    },
}

impl From<crate::HeadCrossCheck> for FfiHeadCrossCheck {
    fn from(check: crate::HeadCrossCheck) -> Self {
        match check {
            crate::HeadCrossCheck::NotSeen => FfiHeadCrossCheck::NotSeen,
            crate::HeadCrossCheck::Consistent { peer_sequence } => FfiHeadCrossCheck::Consistent {
                peer_sequence: signed(peer_sequence),
            },
            crate::HeadCrossCheck::PeerAhead { peer_sequence } => FfiHeadCrossCheck::PeerAhead {
                peer_sequence: signed(peer_sequence),
            },
        }
    }
}

/// What a second node's `/v2/token-keys` showed of this phone's token keys
/// (`cross_check_token_keys`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum FfiTokenKeysCrossCheck {
    /// The phone holds no key of today yet, or the second node serves none.
    NotSeen,
    /// The second node names the same key for each of today's classes.
    Consistent {
        /// Classes compared.
        classes: i32,
    },
}

impl From<crate::TokenKeysCrossCheck> for FfiTokenKeysCrossCheck {
    fn from(check: crate::TokenKeysCrossCheck) -> Self {
        match check {
            crate::TokenKeysCrossCheck::NotSeen => FfiTokenKeysCrossCheck::NotSeen,
            crate::TokenKeysCrossCheck::Consistent { classes } => {
                FfiTokenKeysCrossCheck::Consistent {
                    classes: int(classes),
                }
            }
        }
    }
}

/// An event with the id to acknowledge it by.
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiEventRecord {
    /// Pass to `acknowledge_event` once acted on.
    pub id: i64,
    /// The event.
    pub event: FfiEvent,
}

/// Where the phone stands.
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiStatus {
    /// Tracing on (not paused).
    pub tracing: bool,
    /// The latest time given (unix seconds), if any.
    pub latest_time: Option<i64>,
    /// A forward clock jump waits for confirmation (nothing is purged meanwhile).
    pub clock_jump_pending: bool,
    /// Inputs refused because the time went back.
    pub clock_refusals: i64,
    /// When a sync round last completed.
    pub last_sync: Option<i64>,
    /// The batch cursor.
    pub sync_cursor: i64,
    /// A report is on its way.
    pub report_pending: bool,
    /// The pending report has its certificate (the code is spent).
    pub report_certified: bool,
    /// Sends of the pending report's current step.
    pub report_attempts: i32,
    /// When the pending report is sent next, if it waits.
    pub report_next_attempt: Option<i64>,
    /// The last accepted upload can be revised.
    pub can_revise: bool,
    /// Peers heard now.
    pub open_encounters: i32,
    /// Encounters kept (closed).
    pub stored_encounters: i32,
    /// Events kept until acknowledged.
    pub unacknowledged_events: i32,
    /// Stable code of the last error (`transport`, `clock-went-back`, …).
    pub last_error: Option<String>,
    /// Open-encounter checkpoints written by this phone object.
    pub checkpoints_written: i64,
    /// Their bytes.
    pub checkpoint_bytes: i64,
    /// Unix seconds when the phone will end (a sunset order, or the end of life), unless
    /// it already has.
    pub ends_at: Option<i64>,
    /// The phone has ended: its data is erased and it does nothing more.
    pub ended: bool,
    /// Sunset orders from the node rejected (forged, partial, another federation) since
    /// this phone object was made.
    pub sunset_orders_rejected: i64,
}

/// What importing one GAEN export file did.
#[derive(Clone, Debug, uniffi::Record)]
pub struct FfiExportSummary {
    /// Keys in the file.
    pub keys: i32,
    /// Exposure windows newly found.
    pub new_windows: i32,
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
    fn put_check_in(&mut self, record: &CheckInRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.put_check_in(record))
    }
    fn check_ins(&self) -> Result<Vec<CheckInRecord>, StoreError> {
        delegate!(self, s => s.check_ins())
    }
    fn set_meta(&mut self, key: MetaKey, value: &[u8]) -> Result<(), StoreError> {
        delegate!(self, s => s.set_meta(key, value))
    }
    fn meta(&self, key: MetaKey) -> Result<Option<Vec<u8>>, StoreError> {
        delegate!(self, s => s.meta(key))
    }
    fn remove_meta(&mut self, key: MetaKey) -> Result<(), StoreError> {
        delegate!(self, s => s.remove_meta(key))
    }
    fn erase_all(&mut self) -> Result<(), StoreError> {
        delegate!(self, s => s.erase_all())
    }
    fn purge_before(&mut self, oldest_kept: DayNumber) -> Result<PurgeCounts, StoreError> {
        delegate!(self, s => s.purge_before(oldest_kept))
    }
    fn set_today(&mut self, today: DayNumber) {
        delegate!(self, s => s.set_today(today))
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        delegate!(self, s => s.flush())
    }
}

/// A phone for the app: every method takes `now` as unix seconds.
#[derive(Debug, uniffi::Object)]
pub struct EphemeraPhone {
    inner: Mutex<Option<Phone<AnyStore>>>,
    config: Mutex<ClientConfig>,
    data_dir: Option<PathBuf>,
}

fn open_store(data_dir: Option<&PathBuf>) -> Result<AnyStore, FfiError> {
    Ok(match data_dir {
        Some(dir) => AnyStore::Sled(SledStore::open(dir).map_err(ClientError::from)?),
        None => AnyStore::Memory(MemoryStore::new()),
    })
}

fn new_phone(config: ClientConfig, store: AnyStore) -> Result<Phone<AnyStore>, FfiError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|_| FfiError::Other {
        code: "no-randomness".into(),
        message: "the OS gave no randomness".into(),
    })?;
    Ok(Phone::new(config, store, seed)?)
}

impl EphemeraPhone {
    fn lock(&self) -> MutexGuard<'_, Option<Phone<AnyStore>>> {
        // A panic while holding the lock leaves the phone as it was at the last input.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the phone, unless it is closed.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Phone<AnyStore>) -> Result<T, ClientError>,
    ) -> Result<T, FfiError> {
        let mut guard = self.lock();
        let phone = guard.as_mut().ok_or(FfiError::Closed)?;
        Ok(f(phone)?)
    }
}

#[uniffi::export]
impl EphemeraPhone {
    /// A phone keeping its state in `data_dir` (created if missing), or in memory when
    /// `None`. A phone made again on the same folder resumes everything: keys, open
    /// encounters, the report on its way (retried), unacknowledged events.
    #[uniffi::constructor]
    pub fn new(config: FfiConfig, data_dir: Option<String>) -> Result<Arc<Self>, FfiError> {
        let config = config.into_config()?;
        let data_dir = data_dir.map(PathBuf::from);
        let store = open_store(data_dir.as_ref())?;
        let phone = new_phone(config.clone(), store)?;
        Ok(Arc::new(EphemeraPhone {
            inner: Mutex::new(Some(phone)),
            config: Mutex::new(config),
            data_dir,
        }))
    }

    /// Releases the data folder now (every later call gets `Closed`). Dropping the object
    /// does the same, when the runtime collects it.
    pub fn close(&self) {
        self.lock().take();
    }

    /// Forgets everything and erases it from the disk: the store is emptied, closed, its
    /// folder deleted and made again empty, and the phone goes on as a new one. A
    /// scheduled sunset order and the end marker of an ended phone stay: the phone still
    /// ends at its time, or stays ended.
    pub fn delete_all_data(&self) -> Result<(), FfiError> {
        let mut guard = self.lock();
        let mut phone = guard.take().ok_or(FfiError::Closed)?;
        phone.erase_all_data()?;
        let kept = [MetaKey::SunsetOrder, MetaKey::Ended]
            .into_iter()
            .map(|key| Ok((key, phone.store().meta(key)?)))
            .collect::<Result<Vec<_>, StoreError>>()
            .map_err(ClientError::from)?;
        drop(phone);
        if let Some(dir) = &self.data_dir {
            std::fs::remove_dir_all(dir).map_err(|e| FfiError::Storage {
                message: e.to_string(),
            })?;
        }
        let config = self
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut store = open_store(self.data_dir.as_ref())?;
        for (key, value) in kept {
            if let Some(value) = value {
                store.set_meta(key, &value).map_err(ClientError::from)?;
            }
        }
        store.flush().map_err(ClientError::from)?;
        *guard = Some(new_phone(config, store)?);
        Ok(())
    }

    /// Applies a new configuration (risk parameters and cadences an authority published,
    /// new trusted keys); the scheme cannot change.
    pub fn update_config(&self, config: FfiConfig) -> Result<(), FfiError> {
        let config = config.into_config()?;
        self.with(|p| p.update_config(config.clone()))?;
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// Where the phone stands.
    pub fn status(&self) -> Result<FfiStatus, FfiError> {
        self.with(|p| {
            let s = p.status();
            Ok(FfiStatus {
                tracing: s.tracing,
                latest_time: s.latest_time.map(|t| signed(t.0)),
                clock_jump_pending: s.clock_jump_pending,
                clock_refusals: signed(s.clock_refusals),
                last_sync: s.last_sync.map(|t| signed(t.0)),
                sync_cursor: signed(s.sync_cursor),
                report_pending: s.report_pending,
                report_certified: s.report_certified,
                report_attempts: int(s.report_attempts),
                report_next_attempt: s.report_next_attempt.map(|t| signed(t.0)),
                can_revise: s.can_revise,
                open_encounters: int(s.open_encounters),
                stored_encounters: int(p.stored_encounters()?),
                unacknowledged_events: int(s.unacknowledged_events),
                last_error: s.last_error.map(str::to_owned),
                checkpoints_written: signed(s.checkpoints_written),
                checkpoint_bytes: signed(s.checkpoint_bytes),
                ends_at: s.ends_at.map(|t| signed(t.0)),
                ended: s.ended,
                sunset_orders_rejected: signed(s.sunset_orders_rejected),
            })
        })
    }

    /// Pauses or resumes tracing (kept across restarts).
    pub fn set_paused(&self, paused: bool) -> Result<(), FfiError> {
        self.with(|p| p.set_paused(paused))
    }

    /// What to broadcast now.
    pub fn advertisement(&self, now: i64) -> Result<FfiAdvertisement, FfiError> {
        let now = time(now)?;
        self.with(|p| {
            let ad = p.advertisement(now)?;
            Ok(FfiAdvertisement {
                interval: i64::from(ad.interval.0),
                legacy: ad.legacy,
                full: ad.full,
                valid_until: signed(ad.valid_until.0),
            })
        })
    }

    /// A payload heard with its RSSI (dBm) and the advertised TX power, if any.
    pub fn handle_sighting(
        &self,
        now: i64,
        payload: Vec<u8>,
        rssi: i8,
        tx_power: Option<i8>,
    ) -> Result<(), FfiError> {
        let now = time(now)?;
        let sighting = Sighting {
            payload: &payload,
            signal: Signal::Rssi { rssi, tx_power },
        };
        self.with(|p| p.handle_sighting(now, &sighting))
    }

    /// A payload heard with an attenuation (dB, 0..=255) the platform computed.
    pub fn handle_sighting_attenuation(
        &self,
        now: i64,
        payload: Vec<u8>,
        attenuation: i32,
    ) -> Result<(), FfiError> {
        let now = time(now)?;
        let attenuation =
            u8::try_from(attenuation).map_err(|_| invalid("attenuation is 0..=255 dB"))?;
        let sighting = Sighting {
            payload: &payload,
            signal: Signal::Attenuation(attenuation),
        };
        self.with(|p| p.handle_sighting(now, &sighting))
    }

    /// The timer from `poll_timeout` fired.
    pub fn handle_timeout(&self, now: i64) -> Result<(), FfiError> {
        let now = time(now)?;
        self.with(|p| p.handle_timeout(now))
    }

    /// When to call `handle_timeout` next (unix seconds); `None` until the phone has been
    /// given a time.
    pub fn poll_timeout(&self) -> Result<Option<i64>, FfiError> {
        self.with(|p| Ok(p.poll_timeout().map(|t| signed(t.0))))
    }

    /// The next request to send, if any.
    pub fn poll_request(&self) -> Result<Option<FfiRequest>, FfiError> {
        self.with(|p| {
            Ok(p.poll_request().map(|r| FfiRequest {
                id: signed(r.id.0),
                method: r.method.as_str().to_owned(),
                path: r.path,
                content_type: r.content_type.map(str::to_owned),
                body: r.body,
            }))
        })
    }

    /// The answer to request `id`: its HTTP status and body.
    pub fn handle_response(
        &self,
        now: i64,
        id: i64,
        status: i32,
        body: Vec<u8>,
    ) -> Result<(), FfiError> {
        let now = time(now)?;
        let id = u64::try_from(id).map_err(|_| FfiError::UnknownRequest)?;
        let status = u16::try_from(status).map_err(|_| invalid("an HTTP status is 0..=65535"))?;
        self.with(|p| p.handle_response(now, RequestId(id), Response { status, body }))
    }

    /// Request `id` could not be delivered (no network, timeout).
    pub fn handle_failure(&self, now: i64, id: i64) -> Result<(), FfiError> {
        let now = time(now)?;
        let id = u64::try_from(id).map_err(|_| FfiError::UnknownRequest)?;
        self.with(|p| p.handle_failure(now, RequestId(id)))
    }

    /// The node's `Date` (unix seconds) of an answer received at `now`: confirms a forward
    /// clock jump so retention may act on it. Returns whether the times agree.
    pub fn confirm_time(&self, now: i64, node_date: i64) -> Result<bool, FfiError> {
        let (now, date) = (time(now)?, time(node_date)?);
        self.with(|p| p.confirm_time(now, date))
    }

    /// Verifies and matches a batch the app fetched itself; returns new exposure windows.
    pub fn handle_batch(&self, now: i64, batch: Vec<u8>) -> Result<i32, FfiError> {
        let now = time(now)?;
        self.with(|p| Ok(int(p.handle_batch(now, &batch)?.new_windows)))
    }

    /// Compares the body of a second node's `GET /v1/heads` with this phone's view of its
    /// node; a contradiction (equivocation or rollback) is `Other` with code
    /// `head-mismatch`: show it, report it.
    pub fn cross_check_heads(&self, body: Vec<u8>) -> Result<FfiHeadCrossCheck, FfiError> {
        self.with(|p| Ok(p.cross_check_heads(&body)?.into()))
    }

    /// Compares the body of a second node's `GET /v2/token-keys` with the token keys this
    /// phone holds; a contradiction is `Other` with code `token-keys-mismatch`, and the
    /// phone does not blind under the contested keys: show it, report it.
    pub fn cross_check_token_keys(
        &self,
        now: i64,
        body: Vec<u8>,
    ) -> Result<FfiTokenKeysCrossCheck, FfiError> {
        let now = time(now)?;
        self.with(|p| Ok(p.cross_check_token_keys(now, &body)?.into()))
    }

    /// `gaen`: verifies (against `gaen_export_keys`) and matches a GAEN export zip
    /// (`export.bin` + `export.sig`) from a key server.
    pub fn handle_gaen_export(&self, now: i64, zip: Vec<u8>) -> Result<FfiExportSummary, FfiError> {
        let now = time(now)?;
        self.with(|p| {
            let summary = p.handle_gaen_export(now, &zip)?;
            Ok(FfiExportSummary {
                keys: int(summary.keys),
                new_windows: int(summary.new_windows),
            })
        })
    }

    /// The next event with its id, if any. It is kept (and comes again after a restart)
    /// until `acknowledge_event(id)`.
    pub fn poll_event(&self) -> Result<Option<FfiEventRecord>, FfiError> {
        self.with(|p| {
            Ok(p.poll_event_record().map(|r| FfiEventRecord {
                id: signed(r.id),
                event: r.event.into(),
            }))
        })
    }

    /// The app has acted on event `id`: forget it.
    pub fn acknowledge_event(&self, id: i64) -> Result<(), FfiError> {
        let id = u64::try_from(id).map_err(|_| invalid("an event id is never negative"))?;
        self.with(|p| p.acknowledge_event(id))
    }

    /// Every event not yet acknowledged, oldest first.
    pub fn unacknowledged_events(&self) -> Result<Vec<FfiEventRecord>, FfiError> {
        self.with(|p| {
            Ok(p.unacknowledged_events()
                .into_iter()
                .map(|r| FfiEventRecord {
                    id: signed(r.id),
                    event: r.event.into(),
                })
                .collect())
        })
    }

    /// Starts a report with the code the case worker gave; returns the entries reported.
    /// Days are UTC day numbers (unix seconds / 86400). The report is kept and retried
    /// until the node acknowledges it (`ReportUploaded`) or definitively refuses it
    /// (`ReportFailed`).
    pub fn start_report(
        &self,
        now: i64,
        code: String,
        symptom_onset_day: Option<i32>,
        test_day: Option<i32>,
    ) -> Result<i32, FfiError> {
        let now = time(now)?;
        let code = UploadCode::parse(&code).map_err(|e| invalid(&e.to_string()))?;
        let onset = symptom_onset_day.map(day).transpose()?;
        let test = test_day.map(day).transpose()?;
        self.with(|p| Ok(int(p.start_report(now, &code, onset, test)?.entries)))
    }

    /// Revises the last accepted upload with a new code (a `likely` report becoming
    /// `confirmed`): kept and retried like a report.
    pub fn start_revision(&self, now: i64, code: String) -> Result<(), FfiError> {
        let now = time(now)?;
        let code = UploadCode::parse(&code).map_err(|e| invalid(&e.to_string()))?;
        self.with(|p| p.start_revision(now, &code))
    }

    /// Sends the report on its way now instead of at its next retry time.
    pub fn retry_report(&self, now: i64) -> Result<(), FfiError> {
        let now = time(now)?;
        self.with(|p| p.retry_report(now))
    }

    /// Starts a sync round now.
    pub fn start_sync(&self, now: i64) -> Result<(), FfiError> {
        let now = time(now)?;
        self.with(|p| p.start_sync(now))
    }

    /// Every day with exposure.
    pub fn exposures(&self, now: i64) -> Result<Vec<FfiExposure>, FfiError> {
        let now = time(now)?;
        self.with(|p| {
            Ok(p.exposures(now)?
                .into_iter()
                .map(FfiExposure::from)
                .collect())
        })
    }

    /// Closes every open encounter now (they are checkpointed anyway; this records them
    /// as finished encounters).
    pub fn close_all_encounters(&self) -> Result<(), FfiError> {
        self.with(|p| p.close_all_encounters())
    }
}

/// Venue check-in (`docs/MOBILE.md` §16; feature `venue`).
#[cfg(feature = "venue")]
#[uniffi::export]
impl EphemeraPhone {
    /// Checks in at the venue whose QR code the camera read (`qr_text`) at `now`.
    /// Errors: `BadVenueCode` (not a venue code, not valid yet, expired),
    /// `AlreadyCheckedIn`.
    pub fn check_in(&self, now: i64, qr_text: String) -> Result<FfiCheckIn, FfiError> {
        let now = time(now)?;
        self.with(|p| Ok(p.check_in(now, &qr_text)?.into()))
    }

    /// Checks out at `now`: the visit is kept encrypted, the venue's code is forgotten.
    /// Returns the hours kept. Errors: `NotCheckedIn`.
    pub fn check_out(&self, now: i64) -> Result<i32, FfiError> {
        let now = time(now)?;
        self.with(|p| Ok(int(p.check_out(now)?)))
    }

    /// The open check-in, if any.
    pub fn open_check_in(&self) -> Result<Option<FfiCheckIn>, FfiError> {
        self.with(|p| Ok(p.open_check_in().map(FfiCheckIn::from)))
    }

    /// Matches venue traces a node published (each record's bytes) against the kept
    /// check-ins, on the calling thread (seconds for thousands of traces: call it off the
    /// main thread). New warnings come as `VenueWarning` events.
    pub fn match_venue_traces(
        &self,
        now: i64,
        traces: Vec<Vec<u8>>,
    ) -> Result<FfiVenueMatch, FfiError> {
        let now = time(now)?;
        self.with(|p| {
            let summary = p.match_venue_traces(now, &traces)?;
            Ok(FfiVenueMatch {
                traces: int(summary.traces),
                undecodable: int(summary.undecodable),
                attempts: signed(u64::try_from(summary.attempts).unwrap_or(u64::MAX)),
                new_warnings: int(summary.new_warnings),
            })
        })
    }

    /// The venue release cursor: the sequence of the last release the phone's sync
    /// matched or skipped (`GET /v1/venue-releases?after=` of the next sync).
    pub fn venue_release_cursor(&self) -> Result<i64, FfiError> {
        self.with(|p| Ok(signed(p.venue_release_cursor())))
    }

    /// Every venue warning kept (those of the retention period), oldest first.
    pub fn venue_warnings(&self) -> Result<Vec<FfiVenueWarning>, FfiError> {
        self.with(|p| {
            Ok(p.venue_warnings()?
                .into_iter()
                .map(FfiVenueWarning::from)
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bodies_or_revision_tokens() {
        let request = FfiRequest {
            id: 1,
            method: "POST".into(),
            path: "/v1/verify".into(),
            content_type: None,
            body: b"{\"code\":\"SECRET-CODE\"}".to_vec(),
        };
        assert!(!format!("{request:?}").contains("SECRET"));
        let event = FfiEvent::ReportUploaded {
            revision_token: "cafe1234".into(),
        };
        assert!(!format!("{event:?}").contains("cafe1234"));
    }

    #[test]
    fn batch_log_findings_keep_their_codes() {
        for (error, code) in [
            (ClientError::HeadForked, "head-forked"),
            (
                ClientError::HeadMismatch {
                    conflict: "rollback",
                },
                "head-mismatch",
            ),
            (ClientError::BatchChainBroken, "batch-chain-broken"),
            (ClientError::TokenKeysMismatch, "token-keys-mismatch"),
        ] {
            assert!(
                matches!(FfiError::from(error), FfiError::Other { code: c, .. } if c == code),
                "{code}"
            );
        }
    }

    #[test]
    fn negative_and_out_of_range_values_are_typed_errors() {
        assert!(matches!(time(-1), Err(FfiError::InvalidInput { .. })));
        assert!(matches!(day(-5), Err(FfiError::InvalidInput { .. })));
        let mut config = default_config(FfiScheme::Pet);
        config.attenuation_weights = vec![1.0];
        assert!(matches!(config.into_config(), Err(FfiError::Config { .. })));
        let mut config = default_config(FfiScheme::Pet);
        config.retention_days = -1;
        assert!(matches!(config.into_config(), Err(FfiError::Config { .. })));
        let mut config = default_config(FfiScheme::Gaen);
        config.trusted_node_keys = vec!["zz".into()];
        assert!(matches!(config.into_config(), Err(FfiError::Config { .. })));
        assert!(default_config(FfiScheme::Gaen).into_config().is_ok());
        let mut config = default_config(FfiScheme::Pet);
        config.federation = Some("north".into());
        let no_authority = config.clone().into_config();
        assert!(matches!(no_authority, Err(FfiError::Config { .. })));
        config.trusted_authority_keys = vec!["11".repeat(32)];
        config.upload_delay_max_seconds = Some(-1);
        assert!(matches!(
            config.clone().into_config(),
            Err(FfiError::Config { .. })
        ));
        config.upload_delay_max_seconds = Some(600);
        let federated = config.into_config().unwrap();
        assert_eq!(federated.report.federation.as_deref(), Some("north"));
        assert_eq!(
            federated.report.upload_delay,
            UploadDelay::Uniform { max_seconds: 600 }
        );
    }
}
