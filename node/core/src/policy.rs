//! The rules a node applies, as numbers: the part of a node's configuration that decides
//! what is accepted, published and forgotten. The driver builds one from its config file;
//! the simulator builds one directly. Nothing here is about sockets, logs or threads.

use ephemera_proto::SchemeKind;
use ephemera_proto::rollover::KeyRollover;
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::token::Audience;

/// The federation name of a node that configures no `[federation] region`.
pub const DEFAULT_AUDIENCE: &str = "ephemera";

use crate::publication::PublicationKey;

/// Every policy setting of a node. [`Policy::default`] is the documented default of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Days everything about a report is kept (14 by default).
    pub retention_days: u32,
    /// Seconds an issued upload code stays redeemable.
    pub code_lifetime_seconds: u64,
    /// Seconds a certificate stays valid for its first upload.
    pub certificate_lifetime_seconds: u64,
    /// Most codes one issue request may ask for.
    pub max_codes_per_request: u32,
    /// Largest upload body accepted, in bytes.
    pub max_upload_bytes: usize,
    /// Schemes whose reports this node accepts and publishes.
    pub accept_schemes: Vec<SchemeKind>,
    /// Authority keys trusted besides this node's own.
    pub trusted_authorities: Vec<Ed25519PublicKey>,
    /// Authority-key rollovers: the successor of a trusted key is trusted too.
    pub authority_rollovers: Vec<KeyRollover>,
    /// Seconds between batch boundaries.
    pub batch_period_seconds: u64,
    /// Entries each published section is padded up to with decoys.
    pub batch_min_entries: usize,
    /// Most real entries in one batch; a boundary with more is split.
    pub batch_max_entries: usize,
    /// Seconds over which the entries of one upload are released apart: each waits for the
    /// first boundary of its own release class, one of `release_spread_seconds ÷
    /// batch_period_seconds` (one day by default; at most one boundary's wait below the
    /// period).
    pub release_spread_seconds: u64,
    /// The federation's publication key (release classes and decoys), the same at every
    /// node of the federation; `None`: the node draws its own at start.
    pub publication_key: Option<PublicationKey>,
    /// `region` of GAEN export files.
    pub export_region: String,
    /// `verification_key_id` of GAEN export signatures.
    pub export_key_id: String,
    /// `verification_key_version` of GAEN export signatures.
    pub export_key_version: String,
    /// Days audit records are kept (30 by default).
    pub audit_retention_days: u32,
    /// The federation blind upload tokens are valid in (`docs/PROTOCOL.md` §4.4): a token
    /// commits to it, and this node accepts only tokens of its own.
    pub audience: Audience,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retention_days: 14,
            code_lifetime_seconds: 3600,
            certificate_lifetime_seconds: 900,
            max_codes_per_request: 1000,
            max_upload_bytes: 2 << 20,
            accept_schemes: vec![SchemeKind::Pet, SchemeKind::Gaen],
            trusted_authorities: Vec::new(),
            authority_rollovers: Vec::new(),
            batch_period_seconds: 3600,
            batch_min_entries: 1000,
            batch_max_entries: 100_000,
            release_spread_seconds: 86_400,
            publication_key: None,
            export_region: "ZZ".to_owned(),
            export_key_id: "ephemera".to_owned(),
            export_key_version: "v1".to_owned(),
            audit_retention_days: 30,
            audience: Audience::named(DEFAULT_AUDIENCE),
        }
    }
}

impl Policy {
    /// Whether reports of `scheme` are accepted.
    pub fn accepts(&self, scheme: SchemeKind) -> bool {
        self.accept_schemes.contains(&scheme)
    }

    /// The retention period in seconds.
    pub fn retention_seconds(&self) -> u64 {
        u64::from(self.retention_days) * ephemera_proto::time::SECONDS_PER_DAY
    }
}
