//! Configuration: a TOML file, `EPHEMERA_*` environment variables and command-line flags.
//!
//! Each source is read into a [`RawConfig`] whose fields are all optional; they are merged
//! file < environment < flags ([`RawConfig::merge`]) and converted once, with every check,
//! into a [`NodeConfig`] ([`NodeConfig::try_from`]). Every key of the file has an
//! environment variable named `EPHEMERA_` + the key in upper case, e.g.
//! `EPHEMERA_RETENTION_DAYS=7`.

use std::net::SocketAddr;
use std::path::PathBuf;

use ephemera_node_core::Policy;
use ephemera_proto::SchemeKind;
use ephemera_proto::signing::Ed25519PublicKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The config file `serve` reads when no `--config` is given and the file exists.
pub const DEFAULT_CONFIG_FILE: &str = "ephemera.toml";
/// Prefix of the environment variables that set config keys.
pub const ENV_PREFIX: &str = "EPHEMERA_";

/// A configuration that could not be read or is not valid.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file or a value is not valid TOML for its key.
    #[error("invalid configuration in {origin}: {message}")]
    Parse {
        /// Where the value came from (a file, the environment, a flag).
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A value is outside its allowed range or inconsistent with another.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// The config key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

macro_rules! raw_config {
    ($( $(#[doc = $doc:expr])* $name:ident : $ty:ty, list = $list:expr; )*) => {
        /// Configuration as read from one source: every key optional.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawConfig {
            $( $(#[doc = $doc])* #[serde(default, skip_serializing_if = "Option::is_none")]
               pub $name: Option<$ty>, )*
        }

        impl RawConfig {
            /// Every config key, and whether it holds a list.
            pub const KEYS: &'static [(&'static str, bool)] = &[$( (stringify!($name), $list) ),*];

            /// `self` with every key that `over` sets replaced by `over`'s value.
            pub fn merge(self, over: RawConfig) -> RawConfig {
                RawConfig { $( $name: over.$name.or(self.$name), )* }
            }
        }
    };
}

raw_config! {
    /// Folder for the database and keys.
    data_dir: PathBuf, list = false;
    /// HTTP listen address.
    listen: SocketAddr, list = false;
    /// Seconds between batch boundaries.
    batch_period_seconds: u64, list = false;
    /// Smallest number of entries per scheme section of a batch (decoys fill up).
    batch_min_entries: usize, list = false;
    /// Largest number of real entries in one batch; more are split.
    batch_max_entries: usize, list = false;
    /// Days reports, batches and certificate ids are kept.
    retention_days: u32, list = false;
    /// Seconds between retention purges.
    purge_period_seconds: u64, list = false;
    /// Seconds an issued upload code stays valid.
    code_lifetime_seconds: u64, list = false;
    /// Seconds a certificate stays valid for a first upload.
    certificate_lifetime_seconds: u64, list = false;
    /// Seconds a case-worker session lasts.
    session_lifetime_seconds: u64, list = false;
    /// Failed code verifications allowed per minute, over all phones.
    verify_failures_per_minute: u32, list = false;
    /// Failed sign-ins allowed per case-worker name per 15 minutes.
    login_failures_per_user: u32, list = false;
    /// Largest upload request body, bytes.
    max_upload_bytes: usize, list = false;
    /// Most codes one bulk request may issue.
    max_codes_per_request: u32, list = false;
    /// Other authorities' Ed25519 public keys (hex) whose certificates this node accepts.
    trusted_authorities: Vec<String>, list = true;
    /// Token schemes accepted in uploads: "pet", "gaen".
    accept_schemes: Vec<String>, list = true;
    /// Region written in GAEN export files.
    export_region: String, list = false;
    /// Verification key id written in GAEN export signatures (apps match it).
    export_key_id: String, list = false;
    /// Verification key version written in GAEN export signatures.
    export_key_version: String, list = false;
    /// Log format: "text" or "json".
    log_format: String, list = false;
    /// Log filter in `tracing` syntax, e.g. "info" or "ephemera_node=debug".
    log_filter: String, list = false;
    /// Run federation (libp2p) beside the HTTP API.
    federation: bool, list = false;
    /// Federation TCP listen address (`ip:port`; port 0 lets the OS choose).
    federation_listen: SocketAddr, list = false;
    /// Peers to dial at start, as multiaddrs ending in `/p2p/<peer id>`.
    bootstrap_peers: Vec<String>, list = true;
    /// Discover peers on the local network with mDNS (sends multicast off the machine).
    mdns: bool, list = false;
    /// Optional region suffix of the gossip topic ("" for none).
    federation_region: String, list = false;
    /// Upper bound, in milliseconds, of the random delay before a phone's upload is gossiped.
    federation_publish_delay_ms: u64, list = false;
    /// Seconds between catch-up rounds with every connected peer.
    federation_sync_interval_seconds: u64, list = false;
    /// Bearer token `GET /metrics` requires ("" or absent: none, the endpoint is open).
    metrics_token: MetricsToken, list = false;
}

/// The bearer token that guards `GET /metrics`. Its `Debug` never shows it, it is wiped
/// from memory when dropped, and [`MetricsToken::matches`] compares in constant time.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// Shortest accepted token: 16 characters (with `openssl rand -hex 32`, 64).
    pub const MIN_LEN: usize = 16;
    /// Longest accepted token.
    pub const MAX_LEN: usize = 256;

    /// Wraps a token; [`NodeConfig::try_from`] checks its length and characters.
    pub fn new(token: impl Into<String>) -> MetricsToken {
        MetricsToken(token.into())
    }

    /// Whether `presented` (the text after `Bearer `) is this token. Compares SHA-256
    /// digests in constant time, so neither the token's bytes nor its length leak through
    /// timing.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        let expected = ring::digest::digest(&ring::digest::SHA256, self.0.as_bytes());
        let presented = ring::digest::digest(&ring::digest::SHA256, presented);
        expected.as_ref().ct_eq(presented.as_ref()).into()
    }

    fn check(self) -> Result<Option<MetricsToken>, ConfigError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let len = self.0.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(invalid(
                "metrics_token",
                format!(
                    "must be {}..={} characters long",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "metrics_token",
                "must be visible ASCII without spaces (it travels in a header)",
            ));
        }
        Ok(Some(self))
    }
}

impl PartialEq for MetricsToken {
    fn eq(&self, other: &MetricsToken) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

impl Drop for MetricsToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl RawConfig {
    /// Parses a TOML config file's text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for bad TOML, unknown keys or wrong types.
    pub fn from_toml(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads a config file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn from_file(path: &std::path::Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        RawConfig::from_toml(&text, &path.display().to_string())
    }

    /// Reads `EPHEMERA_<KEY>` variables from `vars` (pass `std::env::vars()`); variables
    /// with the prefix that name no key are ignored, except `EPHEMERA_CONFIG` (the file).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] when a value does not fit its key.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<RawConfig, ConfigError> {
        let pairs = vars.into_iter().filter_map(|(name, value)| {
            let key = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
            Some((key, value))
        });
        RawConfig::from_pairs(pairs, "the environment")
    }

    /// Builds a config from `key=value` pairs (flags' `--set`, the environment): each value
    /// is read as a TOML value, or as a string when it is not one; list keys also take
    /// comma-separated text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for an unknown key (from flags) or a value of the wrong type.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
        origin: &str,
    ) -> Result<RawConfig, ConfigError> {
        let strict = origin != "the environment";
        let mut table = toml::Table::new();
        for (key, text) in pairs {
            let Some(&(_, is_list)) = RawConfig::KEYS.iter().find(|(k, _)| *k == key) else {
                if strict {
                    return Err(ConfigError::Parse {
                        origin: origin.to_owned(),
                        message: format!("unknown key `{key}`"),
                    });
                }
                continue;
            };
            let parsed = toml::from_str::<toml::Table>(&format!("v = {text}"))
                .ok()
                .and_then(|mut t| t.remove("v"));
            let value = match parsed {
                Some(v) if !is_list || v.is_array() => v,
                _ if is_list => toml::Value::Array(
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                ),
                _ => toml::Value::String(text),
            };
            table.insert(key, value);
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                origin: origin.to_owned(),
                message: e.to_string(),
            })
    }
}

/// Log output format.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The checked configuration of a node.
///
/// `Default` is the documented safe choice: loopback only, data in `./ephemera-data`,
/// hourly batches, 14 days of retention (`docs/PROTOCOL.md` §5.2), short-lived codes and
/// certificates.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// Folder for the database and keys. Default `./ephemera-data`.
    pub data_dir: PathBuf,
    /// HTTP listen address. Default 127.0.0.1:8080: nothing is reachable off the machine
    /// unless an operator says so.
    pub listen: SocketAddr,
    /// Seconds between batch boundaries. Default 3600 (hourly).
    pub batch_period_seconds: u64,
    /// Entries per non-empty batch section, decoys included. Default 1000, so a batch does
    /// not reveal a small number of uploads.
    pub batch_min_entries: usize,
    /// Most real entries per batch. Default 100 000 (2 MB of tokens).
    pub batch_max_entries: usize,
    /// Days everything about reports is kept. Default 14, the retention period of
    /// `docs/PROTOCOL.md` §5.2.
    pub retention_days: u32,
    /// Seconds between purges. Default 300.
    pub purge_period_seconds: u64,
    /// Upload-code lifetime. Default 3600 s: long enough to type it in after a call, short
    /// enough that a leaked list is soon useless.
    pub code_lifetime_seconds: u64,
    /// Certificate lifetime for a first upload. Default 900 s, as the GAEN verification
    /// server's certificate tokens.
    pub certificate_lifetime_seconds: u64,
    /// Case-worker session length. Default 8 hours (a working day).
    pub session_lifetime_seconds: u64,
    /// Failed verifications per minute before `/v1/verify` answers 429. Default 600:
    /// guessing an 80-bit code at that rate takes longer than the universe's age.
    pub verify_failures_per_minute: u32,
    /// Failed sign-ins per case-worker name per 15 minutes. Default 5.
    pub login_failures_per_user: u32,
    /// Largest upload body. Default 2 MiB, the upload frame's own cap.
    pub max_upload_bytes: usize,
    /// Most codes per bulk request. Default 1000.
    pub max_codes_per_request: u32,
    /// Other authorities' keys. The node's own authority key is always trusted.
    pub trusted_authorities: Vec<Ed25519PublicKey>,
    /// Schemes accepted in uploads. Default both.
    pub accept_schemes: Vec<SchemeKind>,
    /// Region of GAEN export files. Default "ZZ" (ISO 3166 user-assigned: set yours).
    pub export_region: String,
    /// Verification key id of GAEN export signatures (Google's apps use the MCC, e.g.
    /// "310"). Default "ephemera".
    pub export_key_id: String,
    /// Verification key version of GAEN export signatures. Default "v1".
    pub export_key_version: String,
    /// Log format. Default text.
    pub log_format: LogFormat,
    /// Log filter. Default "info".
    pub log_filter: String,
    /// Run federation. Default true (on loopback, with no peers: nothing leaves the machine).
    pub federation: bool,
    /// Federation TCP listen address. Default 127.0.0.1:0 (the OS picks a port).
    pub federation_listen: SocketAddr,
    /// Bootstrap peers (each ends in `/p2p/<peer id>`). Default none.
    pub bootstrap_peers: Vec<libp2p::Multiaddr>,
    /// mDNS discovery. Default off.
    pub mdns: bool,
    /// Topic region suffix. Default none.
    pub federation_region: Option<String>,
    /// Most random delay before a phone's upload is gossiped, ms. Default 2000.
    pub federation_publish_delay_ms: u64,
    /// Seconds between catch-up rounds. Default 60.
    pub federation_sync_interval_seconds: u64,
    /// Bearer token `GET /metrics` requires. Default none (open): the default listen
    /// address is loopback, so only the machine itself (or a proxy that should not forward
    /// `/metrics`) can reach it, and a scraper works without setup; set one whenever the
    /// node listens beyond loopback.
    pub metrics_token: Option<MetricsToken>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        // The policy keys' defaults are the core's, declared once in `Policy::default`.
        let policy = Policy::default();
        NodeConfig {
            data_dir: PathBuf::from("./ephemera-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            batch_period_seconds: policy.batch_period_seconds,
            batch_min_entries: policy.batch_min_entries,
            batch_max_entries: policy.batch_max_entries,
            retention_days: policy.retention_days,
            purge_period_seconds: 300,
            code_lifetime_seconds: policy.code_lifetime_seconds,
            certificate_lifetime_seconds: policy.certificate_lifetime_seconds,
            session_lifetime_seconds: 8 * 3600,
            verify_failures_per_minute: 600,
            login_failures_per_user: 5,
            max_upload_bytes: policy.max_upload_bytes,
            max_codes_per_request: policy.max_codes_per_request,
            trusted_authorities: policy.trusted_authorities,
            accept_schemes: policy.accept_schemes,
            export_region: policy.export_region,
            export_key_id: policy.export_key_id,
            export_key_version: policy.export_key_version,
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            federation: true,
            federation_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            bootstrap_peers: Vec::new(),
            mdns: false,
            federation_region: None,
            federation_publish_delay_ms: 2000,
            federation_sync_interval_seconds: 60,
            metrics_token: None,
        }
    }
}

impl NodeConfig {
    /// The policy these settings give the node's core.
    pub fn policy(&self) -> Policy {
        Policy {
            retention_days: self.retention_days,
            code_lifetime_seconds: self.code_lifetime_seconds,
            certificate_lifetime_seconds: self.certificate_lifetime_seconds,
            max_codes_per_request: self.max_codes_per_request,
            max_upload_bytes: self.max_upload_bytes,
            accept_schemes: self.accept_schemes.clone(),
            trusted_authorities: self.trusted_authorities.clone(),
            batch_period_seconds: self.batch_period_seconds,
            batch_min_entries: self.batch_min_entries,
            batch_max_entries: self.batch_max_entries,
            export_region: self.export_region.clone(),
            export_key_id: self.export_key_id.clone(),
            export_key_version: self.export_key_version.clone(),
        }
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(invalid(key, format!("{value} is outside {min}..={max}")));
    }
    Ok(value)
}

impl TryFrom<RawConfig> for NodeConfig {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<NodeConfig, ConfigError> {
        let d = NodeConfig::default();
        let trusted_authorities = raw
            .trusted_authorities
            .unwrap_or_default()
            .iter()
            .map(|hex| {
                Ed25519PublicKey::from_hex(hex).ok_or_else(|| {
                    invalid(
                        "trusted_authorities",
                        format!("`{hex}` is not 64 hex characters"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let accept_schemes = match raw.accept_schemes {
            None => d.accept_schemes,
            Some(names) => {
                let schemes = names
                    .iter()
                    .map(|n| match n.as_str() {
                        "pet" => Ok(SchemeKind::Pet),
                        "gaen" => Ok(SchemeKind::Gaen),
                        other => Err(invalid(
                            "accept_schemes",
                            format!("unknown scheme `{other}`"),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if schemes.is_empty() {
                    return Err(invalid("accept_schemes", "at least one scheme is needed"));
                }
                schemes
            }
        };
        let log_format = match raw.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log_format",
                    format!("`{other}` is not text or json"),
                ));
            }
        };
        let batch_min_entries = in_range(
            "batch_min_entries",
            raw.batch_min_entries.unwrap_or(d.batch_min_entries),
            0,
            1_000_000,
        )?;
        let batch_max_entries = in_range(
            "batch_max_entries",
            raw.batch_max_entries.unwrap_or(d.batch_max_entries),
            1,
            10_000_000,
        )?;
        if batch_min_entries > batch_max_entries {
            return Err(invalid(
                "batch_min_entries",
                "must not exceed batch_max_entries",
            ));
        }
        let retention_days = in_range(
            "retention_days",
            raw.retention_days.unwrap_or(d.retention_days),
            1,
            365,
        )?;
        let code_lifetime_seconds = in_range(
            "code_lifetime_seconds",
            raw.code_lifetime_seconds.unwrap_or(d.code_lifetime_seconds),
            60,
            7 * 86_400,
        )?;
        let bootstrap_peers = raw
            .bootstrap_peers
            .unwrap_or_default()
            .iter()
            .map(|text| {
                let addr: libp2p::Multiaddr = text.parse().map_err(|_| {
                    invalid("bootstrap_peers", format!("`{text}` is not a multiaddr"))
                })?;
                if !matches!(
                    addr.iter().last(),
                    Some(libp2p::multiaddr::Protocol::P2p(_))
                ) {
                    return Err(invalid(
                        "bootstrap_peers",
                        format!("`{text}` does not end in /p2p/<peer id>"),
                    ));
                }
                Ok(addr)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let federation_region = raw.federation_region.filter(|r| !r.is_empty());
        if let Some(region) = &federation_region
            && (region.len() > 32
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            return Err(invalid(
                "federation_region",
                "must be at most 32 characters of a-z, 0-9 and '-'",
            ));
        }
        let metrics_token = match raw.metrics_token {
            Some(token) => token.check()?,
            None => d.metrics_token,
        };
        Ok(NodeConfig {
            metrics_token,
            federation: raw.federation.unwrap_or(d.federation),
            federation_listen: raw.federation_listen.unwrap_or(d.federation_listen),
            bootstrap_peers,
            mdns: raw.mdns.unwrap_or(d.mdns),
            federation_region,
            federation_publish_delay_ms: in_range(
                "federation_publish_delay_ms",
                raw.federation_publish_delay_ms
                    .unwrap_or(d.federation_publish_delay_ms),
                0,
                3_600_000,
            )?,
            federation_sync_interval_seconds: in_range(
                "federation_sync_interval_seconds",
                raw.federation_sync_interval_seconds
                    .unwrap_or(d.federation_sync_interval_seconds),
                1,
                86_400,
            )?,
            data_dir: raw.data_dir.unwrap_or(d.data_dir),
            listen: raw.listen.unwrap_or(d.listen),
            batch_period_seconds: in_range(
                "batch_period_seconds",
                raw.batch_period_seconds.unwrap_or(d.batch_period_seconds),
                1,
                86_400,
            )?,
            batch_min_entries,
            batch_max_entries,
            retention_days,
            purge_period_seconds: in_range(
                "purge_period_seconds",
                raw.purge_period_seconds.unwrap_or(d.purge_period_seconds),
                1,
                86_400,
            )?,
            code_lifetime_seconds,
            certificate_lifetime_seconds: in_range(
                "certificate_lifetime_seconds",
                raw.certificate_lifetime_seconds
                    .unwrap_or(d.certificate_lifetime_seconds),
                60,
                7 * 86_400,
            )?,
            session_lifetime_seconds: in_range(
                "session_lifetime_seconds",
                raw.session_lifetime_seconds
                    .unwrap_or(d.session_lifetime_seconds),
                60,
                7 * 86_400,
            )?,
            verify_failures_per_minute: in_range(
                "verify_failures_per_minute",
                raw.verify_failures_per_minute
                    .unwrap_or(d.verify_failures_per_minute),
                1,
                1_000_000,
            )?,
            login_failures_per_user: in_range(
                "login_failures_per_user",
                raw.login_failures_per_user
                    .unwrap_or(d.login_failures_per_user),
                1,
                1000,
            )?,
            max_upload_bytes: in_range(
                "max_upload_bytes",
                raw.max_upload_bytes.unwrap_or(d.max_upload_bytes),
                4096,
                64 << 20,
            )?,
            max_codes_per_request: in_range(
                "max_codes_per_request",
                raw.max_codes_per_request.unwrap_or(d.max_codes_per_request),
                1,
                100_000,
            )?,
            trusted_authorities,
            accept_schemes,
            export_region: raw.export_region.unwrap_or(d.export_region),
            export_key_id: raw.export_key_id.unwrap_or(d.export_key_id),
            export_key_version: raw.export_key_version.unwrap_or(d.export_key_version),
            log_format,
            log_filter: raw.log_filter.unwrap_or(d.log_filter),
        })
    }
}

/// The commented config file `ephemera-node init` writes: every key, at its default,
/// commented out.
pub fn config_template() -> String {
    let d = NodeConfig::default();
    format!(
        r#"# Ephemera node configuration (TOML).
# Every key is optional; the value shown is the default. Precedence: this file <
# environment (EPHEMERA_<KEY IN UPPER CASE>, e.g. EPHEMERA_RETENTION_DAYS=7) < flags
# (`ephemera-node serve --set key=value`, or the named flags).

# Folder for the sled database and the node's keys. Back it up; keep it private.
# data_dir = "{data_dir}"

# HTTP listen address. Loopback by default: put a TLS reverse proxy in front to publish.
# listen = "{listen}"

# Batches are cut at fixed boundaries every this many seconds.
# batch_period_seconds = {period}
# Each non-empty section of a batch is padded with random decoys to at least this many
# entries, so a batch reveals neither who uploaded nor how many.
# batch_min_entries = {min}
# Most real entries in one batch; a larger backlog is split over several batches.
# batch_max_entries = {max}

# Everything about reports (uploads, batches, certificate ids) is deleted after this many
# days, by a purge that runs every purge_period_seconds.
# retention_days = {retention}
# purge_period_seconds = {purge}

# Authority role: lifetime of issued upload codes and of the certificates exchanged for them.
# code_lifetime_seconds = {code}
# certificate_lifetime_seconds = {cert}
# Case-worker session length.
# session_lifetime_seconds = {session}
# Guessing budgets (never per IP address): failed code verifications per minute over all
# phones, and failed sign-ins per case-worker name per 15 minutes.
# verify_failures_per_minute = {verify}
# login_failures_per_user = {login}
# Most codes one bulk request issues.
# max_codes_per_request = {codes}

# Largest accepted upload body in bytes.
# max_upload_bytes = {upload}

# Ed25519 public keys (hex) of other health authorities whose certificates are accepted.
# This node's own authority key is always trusted.
# trusted_authorities = []

# Token schemes accepted in uploads.
# accept_schemes = ["pet", "gaen"]

# GAEN export files (for Google's and Apple's tooling): region, and the verification key
# id and version written beside each signature (apps are configured with these).
# export_region = "{region}"
# export_key_id = "{key_id}"
# export_key_version = "{key_version}"

# Logs go to stderr: "text" or "json", filtered with tracing's syntax. Logs never contain
# codes, tokens, keys or client addresses.
# log_format = "text"
# log_filter = "{filter}"

# Federation (libp2p): nodes exchange verified uploads by gossip and catch up after
# downtime. By default it listens on loopback only, knows no peers and sends nothing off
# the machine. Peers must trust the same authorities to accept each other's reports.
# federation = true
# TCP listen address (port 0: the OS picks one; `serve` prints the address and peer id).
# federation_listen = "{fed_listen}"
# Peers to dial, e.g. ["/ip4/10.0.0.2/tcp/4001/p2p/12D3Koo..."].
# bootstrap_peers = []
# mDNS discovery on the local network (sends multicast off the machine).
# mdns = false
# Topic suffix for federations whose nodes trust different authority sets (empty: none).
# federation_region = ""
# A phone's upload is gossiped after a random delay up to this many milliseconds, so
# gossip timing does not mirror the phone's request.
# federation_publish_delay_ms = {fed_delay}
# Seconds between catch-up rounds with connected peers.
# federation_sync_interval_seconds = {fed_sync}

# Bearer token that GET /metrics requires (Authorization: Bearer <token>); 16 to 256
# visible ASCII characters, e.g. from `openssl rand -hex 32`. Empty: /metrics is open, which
# is only safe while the node listens on loopback. Prefer this file (mode 0600) or
# EPHEMERA_METRICS_TOKEN over `--set metrics_token=...`, which other users can see in `ps`.
# metrics_token = ""
"#,
        fed_listen = d.federation_listen,
        fed_delay = d.federation_publish_delay_ms,
        fed_sync = d.federation_sync_interval_seconds,
        data_dir = d.data_dir.display(),
        listen = d.listen,
        period = d.batch_period_seconds,
        min = d.batch_min_entries,
        max = d.batch_max_entries,
        retention = d.retention_days,
        purge = d.purge_period_seconds,
        code = d.code_lifetime_seconds,
        cert = d.certificate_lifetime_seconds,
        session = d.session_lifetime_seconds,
        verify = d.verify_failures_per_minute,
        login = d.login_failures_per_user,
        codes = d.max_codes_per_request,
        upload = d.max_upload_bytes,
        filter = d.log_filter,
        region = d.export_region,
        key_id = d.export_key_id,
        key_version = d.export_key_version,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_fourteen_days() {
        let config = NodeConfig::try_from(RawConfig::default()).unwrap();
        assert_eq!(config, NodeConfig::default());
        assert!(config.listen.ip().is_loopback());
        assert_eq!(config.retention_days, 14);
        assert_eq!(config.data_dir, PathBuf::from("./ephemera-data"));
    }

    #[test]
    fn file_env_flags_merge_in_order() {
        let file = RawConfig::from_toml(
            "retention_days = 10\nbatch_period_seconds = 60\nlisten = \"127.0.0.1:9000\"\n",
            "test",
        )
        .unwrap();
        let env = RawConfig::from_env([
            ("EPHEMERA_RETENTION_DAYS".to_owned(), "7".to_owned()),
            ("EPHEMERA_ACCEPT_SCHEMES".to_owned(), "pet".to_owned()),
            ("EPHEMERA_NOT_A_KEY".to_owned(), "x".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ])
        .unwrap();
        let flags = RawConfig::from_pairs(
            [("batch_period_seconds".to_owned(), "30".to_owned())],
            "flags",
        )
        .unwrap();
        let config = NodeConfig::try_from(file.merge(env).merge(flags)).unwrap();
        assert_eq!(config.retention_days, 7);
        assert_eq!(config.batch_period_seconds, 30);
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert_eq!(config.accept_schemes, vec![SchemeKind::Pet]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = RawConfig::from_toml("retention_days = \"ten\"", "f").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        assert!(RawConfig::from_toml("no_such_key = 1", "f").is_err());
        assert!(RawConfig::from_pairs([("bogus".to_owned(), "1".to_owned())], "flags").is_err());
        let raw = RawConfig {
            retention_days: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            NodeConfig::try_from(raw),
            Err(ConfigError::Invalid {
                key: "retention_days",
                ..
            })
        ));
        let raw = RawConfig {
            trusted_authorities: Some(vec!["zz".into()]),
            ..Default::default()
        };
        assert!(NodeConfig::try_from(raw).is_err());
        let raw = RawConfig {
            batch_min_entries: Some(10),
            batch_max_entries: Some(5),
            ..Default::default()
        };
        assert!(NodeConfig::try_from(raw).is_err());
    }

    #[test]
    fn metrics_token_is_optional_checked_and_never_shown() {
        let none = RawConfig::from_toml("metrics_token = \"\"", "f").unwrap();
        assert_eq!(NodeConfig::try_from(none).unwrap().metrics_token, None);

        let secret = "s3cret-Token_0123456789";
        let file = RawConfig::from_toml("metrics_token = \"from-the-file-0123\"", "f").unwrap();
        let env = RawConfig::from_env([("EPHEMERA_METRICS_TOKEN".to_owned(), secret.to_owned())])
            .unwrap();
        let config = NodeConfig::try_from(file.clone().merge(env)).unwrap();
        let token = config.metrics_token.clone().unwrap();
        assert!(
            token.matches(secret.as_bytes()),
            "the environment wins over the file"
        );
        assert!(!token.matches(b"from-the-file-0123"));
        assert!(!token.matches(&secret.as_bytes()[1..]));
        assert!(!token.matches(b""));
        assert!(!format!("{config:?}").contains(secret));
        assert!(!format!("{token:?}").contains(secret));

        let flags = RawConfig::from_pairs(
            [("metrics_token".to_owned(), "from-a-flag-0123456".to_owned())],
            "flags",
        )
        .unwrap();
        let config = NodeConfig::try_from(file.merge(flags)).unwrap();
        assert!(
            config
                .metrics_token
                .unwrap()
                .matches(b"from-a-flag-0123456")
        );

        for bad in ["short", "has a space in it 0123", &"x".repeat(257)] {
            let raw = RawConfig {
                metrics_token: Some(MetricsToken::new(bad)),
                ..Default::default()
            };
            assert!(
                matches!(
                    NodeConfig::try_from(raw),
                    Err(ConfigError::Invalid {
                        key: "metrics_token",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_template_parses_and_names_every_key() {
        let template = config_template();
        assert_eq!(
            RawConfig::from_toml(&template, "template").unwrap(),
            RawConfig::default()
        );
        // Uncommenting every line gives the defaults back.
        let uncommented: String = template
            .lines()
            .filter_map(|l| l.strip_prefix("# ").filter(|l| l.contains(" = ")))
            .map(|l| format!("{l}\n"))
            .collect();
        let raw = RawConfig::from_toml(&uncommented, "uncommented").unwrap();
        assert_eq!(NodeConfig::try_from(raw).unwrap(), NodeConfig::default());
        for (key, _) in RawConfig::KEYS {
            assert!(template.contains(&format!("# {key} = ")), "{key} missing");
        }
    }
}
