//! Configuration: a sectioned TOML file, `EPHEMERA_*` environment variables and
//! command-line flags.
//!
//! Every key is declared once, in the `config_keys!` table below, with its type, default,
//! doc comment, allowed range, `serve` flag (if it has one) and its flat name from before
//! sections. Everything else is derived from that table: the [`NodeConfig`] section structs
//! and their `Default`, the environment variable (`EPHEMERA_<SECTION>_<KEY>`, e.g.
//! `EPHEMERA_PUBLICATION_BATCH_PERIOD_SECONDS`), the `--set section.key=value` path, the
//! named flags ([`ConfigFlags`]), the checks, and the documented default file
//! ([`documented_defaults`], printed by `ephemera-node config defaults`).
//!
//! Each source is read into a [`RawConfig`] (file: [`RawConfig::from_toml`], environment:
//! [`RawConfig::from_env`], flags: [`RawConfig::from_flags`]); they are merged
//! file < environment < flags ([`RawConfig::merge`]) and converted once, with every check,
//! into a [`NodeConfig`] ([`NodeConfig::try_from`]). Errors say where the bad value came
//! from: the file and line, the variable or the flag.
//!
//! `data_dir` stays at the top level of the file, outside any section: it is the one key
//! every command (`init`, `serve`) takes, it locates everything else the node keeps, and its
//! name, variable (`EPHEMERA_DATA_DIR`) and flag (`--data-dir`) did not change.
//!
//! Files, variables and `--set` keys of the flat layout (before sections) still load; each
//! old name gives a [`ConfigWarning`] that names the new key. An unknown key in a file or in
//! `--set` is an error that names the key and its line; an unknown `EPHEMERA_*` variable is
//! only a warning, since the environment is shared with other programs.

mod error;
mod flags;
mod key;
mod source;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use ephemera_node_core::Policy;
use ephemera_node_core::publication::PublicationKey;
pub use ephemera_node_core::store::StoreRole;
use ephemera_proto::SchemeKind;
use ephemera_proto::rollover::KeyRollover;
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::sunset::SunsetCommittee;

pub use error::{ConfigError, ConfigWarning, Origin};
pub use flags::ConfigFlags;
pub use key::Key;
pub use source::RawConfig;

use key::config_keys;
use source::Setting;
use value::ConfigValue;

/// The config file `serve` reads when no `--config` is given and the file exists.
pub const DEFAULT_CONFIG_FILE: &str = "ephemera.toml";
/// Prefix of the environment variables that set config keys.
pub const ENV_PREFIX: &str = "EPHEMERA_";
/// The environment variable that names the config file (not a key).
pub const CONFIG_FILE_ENV: &str = "EPHEMERA_CONFIG";
/// The default federation port, TCP and QUIC (UDP): fixed, so that peers' `bootstrap_peers`
/// survive a restart.
pub const DEFAULT_FEDERATION_PORT: u16 = 4001;

config_keys! {
    top {
        /// Folder for the sled database (`db/`), batch and export files (`blobs/`) and the
        /// node's keys (`keys/`). Back it up; keep it private.
        data_dir: PathBuf = PathBuf::from("./ephemera-data"), flag = "data-dir", was = "data_dir";
    }

    /// The HTTP API.
    [http] HttpSection {
        /// HTTP listen address. Loopback by default, so nothing is reachable off the
        /// machine: put a TLS-terminating reverse proxy in front to publish the node.
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)),
            flag = "listen", was = "listen";
        /// Largest accepted upload body, in bytes (default: the upload frame's own cap).
        max_upload_bytes: usize = Policy::default().max_upload_bytes,
            range(4096, 64 << 20), was = "max_upload_bytes";
        /// Bearer token that `GET /metrics` requires (`Authorization: Bearer <token>`): 16 to
        /// 256 visible ASCII characters, e.g. from `openssl rand -hex 32`. Empty: /metrics is
        /// open, which is only safe while the node listens on loopback. Prefer this file
        /// (mode 0600) or the environment over `--set`, which other users can see in `ps`.
        metrics_token: Option<MetricsToken> = None, was = "metrics_token";
        // ---- limits against hostile clients (issue 24; node/docs/OPERATIONS.md "Limits")
        /// Milliseconds a client may take to send a request's head (also the idle limit
        /// between keep-alive requests).
        header_read_timeout_ms: u64 = 10_000, range(100, 600_000);
        /// Milliseconds a client may take to send a whole request body once its head
        /// arrived; a slower body is answered 408 `body-timeout`.
        body_read_timeout_ms: u64 = 10_000, range(100, 600_000);
        /// Milliseconds from a request's head to its answer, body included; past it the
        /// answer is 503 `deadline-exceeded`.
        request_deadline_ms: u64 = 30_000, range(100, 600_000);
        /// Least milliseconds from opening a sealed verify or upload to its answer, for
        /// every answer: real, decoy, refused. Raised to the recent real answers' p99 when
        /// the disk is slower, so time at the node says nothing about a request
        /// (`docs/SECURITY.md`, "Decoys"). 0 turns the floor off (benchmarks only).
        phone_answer_floor_ms: u64 = 50, range(0, 5_000);
        /// Most open connections. At the cap a new connection replaces the oldest one that
        /// is at least a second old, or is answered 503 `overloaded` when there is none.
        /// Keep it well below the process's open-file limit.
        max_connections: usize = 768, range(1, 1_000_000);
        /// Most phone requests (`/v1/verify`, `/v2/verify`, `/v1/uploads`) in flight at once; past it, 503
        /// `overloaded` with `Retry-After`.
        phone_in_flight: usize = 256, range(1, 1_000_000);
        /// Most console requests (sign-in, codes, the console page, `/metrics`) in flight.
        console_in_flight: usize = 32, range(1, 1_000_000);
        /// Most phone or console requests one client source has in flight at once (each class
        /// on its own), so that one client cannot take a whole class's cap. Sources are only
        /// told apart when `source_header` is set or clients connect from off the machine.
        per_source_in_flight: usize = 16, range(1, 1_000_000);
        /// Most serving requests (batches, exports, authority, OpenAPI) in flight that miss
        /// the in-memory batch cache (`/healthz` and cached batches are never capped).
        serving_in_flight: usize = 512, range(1, 1_000_000);
        /// Bytes that all request bodies being read or handled may hold together; a body that
        /// does not fit is answered 503 `overloaded` before it is read.
        in_flight_body_bytes: usize = 64 << 20, range(64 << 10, 1 << 40);
        /// Header that the reverse proxy in front sets to the client's address (e.g.
        /// "X-Forwarded-For", last value used), so that sign-in budgets and in-flight caps are
        /// per client and not per proxy. Set it only behind a proxy that writes this header. Empty: the TCP peer address. Addresses are only held in memory, as
        /// keyed hashes, and never stored or logged.
        source_header: Option<String> = None;
        // ---- end of issue 24 limits
    }

    /// Federation (libp2p): nodes exchange verified uploads by gossip and catch up after
    /// downtime. By default it listens on loopback only, knows no peers and sends nothing
    /// off the machine. Peers must trust the same authorities to accept each other's
    /// reports.
    [federation] FederationSection {
        /// Run federation beside the HTTP API.
        enabled: bool = true, was = "federation";
        /// Federation listen address, TCP and QUIC (UDP) on the same port. The port is fixed
        /// (4001) so that peers' `bootstrap_peers` stay valid across restarts; port 0 lets the
        /// OS pick one (tests, several nodes on one host). `serve` prints the addresses and
        /// the peer id.
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], DEFAULT_FEDERATION_PORT)),
            was = "federation_listen";
        /// Peers to dial at start and again while down, as multiaddrs ending in
        /// `/p2p/<peer id>`, e.g. "/ip4/10.0.0.2/tcp/4001/p2p/12D3Koo...".
        bootstrap_peers: Vec<libp2p::Multiaddr> = Vec::new(), was = "bootstrap_peers";
        /// Discover peers on the local network with mDNS (sends multicast off the machine).
        mdns: bool = false, was = "mdns";
        /// Gossip topic suffix, for federations whose nodes trust different authority sets:
        /// at most 32 characters of a-z, 0-9 and '-' (empty: none).
        region: Option<String> = None, check = check_region, was = "federation_region";
        /// A phone's upload is gossiped after a uniform random delay up to this many
        /// milliseconds, so gossip timing does not mirror the phone's request.
        publish_delay_ms: u64 = 2000, range(0, 3_600_000), was = "federation_publish_delay_ms";
        /// Seconds between catch-up rounds with every connected peer (there is also one on
        /// every new connection).
        sync_interval_seconds: u64 = 60, range(1, 86_400),
            was = "federation_sync_interval_seconds";
        /// Peers of other authorities that always get a connection slot and their own
        /// catch-up budget, however many strangers connect, as multiaddrs ending in
        /// `/p2p/<peer id>` ("/p2p/12D3Koo..." alone is enough). Bootstrap peers count too.
        reserved_peers: Vec<libp2p::Multiaddr> = Vec::new();
        /// Most federation connections; reserved and bootstrap peers always get in.
        max_connections: u32 = 128, range(1, 65_536);
        /// Most connections of other peers from one IP address (several nodes on one host:
        /// make them reserved peers, or raise this).
        max_connections_per_ip: u32 = 8, range(1, 65_536);
        /// Most connections of other peers from one /24 (IPv4) or /48 (IPv6) subnet.
        max_connections_per_subnet: u32 = 32, range(1, 65_536);
        /// Most inbound connections still in their handshake.
        max_pending_connections: u32 = 64, range(1, 65_536);
        /// While more than half the connections are taken, a peer that is not reserved and
        /// gave this node nothing new for this many seconds is disconnected.
        stranger_idle_seconds: u64 = 120, range(1, 86_400);
        /// Most bytes of catch-up answers built for peers that are not reserved and not yet
        /// read by them; past it, requests wait, then are refused.
        response_bytes_total: u64 = 32 << 20, range(4 << 20, 1 << 32);
        /// Most bytes of catch-up answers built for one peer and not yet read.
        response_bytes_per_peer: u64 = 4 << 20, range(1_114_112, 1 << 30);
        /// Find peers beyond the configured ones with Kademlia. An authority that federates
        /// with known authorities only should turn this off (OPERATIONS.md, "Hostile peers").
        discovery: bool = true;
        /// Dial addresses learned from peers even in loopback, private or link-local ranges
        /// (configured peers are always dialled). For a federation on one LAN.
        dial_private_addresses: bool = false;
        /// Dials to addresses learned from peers, per minute.
        dials_per_minute: u32 = 30, range(1, 100_000);
        /// Authority keys (hex Ed25519) of the federation directory that this node does not
        /// trust but relays for: their reports are verified in full and forwarded by gossip,
        /// so peers that trust them are reached through this node, but they are never stored,
        /// published or served here (OPERATIONS.md, "Partial trust").
        relay_authorities: Vec<Ed25519PublicKey> = Vec::new();
    }

    /// Signed batches and GAEN export files.
    [publication] PublicationSection {
        /// Batches are cut at multiples of this many seconds since the epoch.
        batch_period_seconds: u64 = Policy::default().batch_period_seconds, range(1, 86_400),
            flag = "batch-period-seconds", was = "batch_period_seconds";
        /// Each non-empty section of a batch is padded with random decoys to at least this
        /// many entries, so a batch reveals neither who uploaded nor how many.
        batch_min_entries: usize = Policy::default().batch_min_entries, range(0, 1_000_000),
            was = "batch_min_entries";
        /// Most real entries in one batch; a larger backlog is split over several batches.
        batch_max_entries: usize = Policy::default().batch_max_entries, range(1, 10_000_000),
            was = "batch_max_entries";
        /// Seconds over which the entries of one upload are released apart: each token or
        /// key waits for the first boundary of its own release class (one of this ÷
        /// batch_period_seconds), so one person's encounters land in different batches
        /// among everyone else's (`docs/PROTOCOL.md` §6.3). Phones learn of a contact up to
        /// this much later.
        release_spread_seconds: u64 = Policy::default().release_spread_seconds,
            range(1, 7 * 86_400);
        /// The federation's publication key: 64 hex digits, secret, the same at every node
        /// of the federation and known to nobody else (`openssl rand -hex 32`). It keys
        /// each entry's release slot and each batch's decoys, so every node publishes the
        /// same batch for the same reports and comparing nodes strips nothing. Unset: the
        /// node draws its own at each start (right for a node that does not federate).
        publication_key: Option<PublicationKey> = None;
        /// Token schemes accepted in uploads and published: "pet", "gaen".
        accept_schemes: Vec<SchemeKind> = Policy::default().accept_schemes,
            check = check_schemes, was = "accept_schemes";
        /// Region written in GAEN export files (default "ZZ", ISO 3166 user-assigned: set
        /// yours).
        export_region: String = Policy::default().export_region, was = "export_region";
        /// Verification key id written beside GAEN export signatures (apps are configured
        /// with it; Google's use the MCC, e.g. "310").
        export_key_id: String = Policy::default().export_key_id, was = "export_key_id";
        /// Verification key version written beside GAEN export signatures.
        export_key_version: String = Policy::default().export_key_version,
            was = "export_key_version";
        /// Seconds the wall clock may run ahead of the node's monotonic clock before it is
        /// taken as a step: purging and cutting then stop until it is back in step
        /// (`node/docs/OPERATIONS.md`, "Clock").
        clock_step_tolerance_seconds: u64 = 300, range(1, 86_400);
        /// Seconds past the last cut a node may start at before its clock is taken as
        /// stepped forward (a longer outage looks the same): purging and cutting wait until
        /// the operator starts it with `serve --accept-clock`.
        clock_max_start_gap_seconds: u64 = 2 * 86_400, range(3_600, 365 * 86_400);
        /// Also write what phones read (batches, filters, index pages, GAEN exports, the
        /// authority's keys) after each cut to "file:///absolute/folder" or
        /// "s3://bucket/prefix", for a CDN (`node/docs/OPERATIONS.md`, "Publishing to
        /// object storage and a CDN"). Unset: served by the node only. S3 credentials come
        /// from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...).
        object_store: Option<String> = None, check = check_object_store;
        /// Endpoint of an S3-compatible server (`https://s3.example.org`); unset: AWS.
        object_store_endpoint: Option<String> = None, check = check_endpoint;
        /// S3 region; unset: AWS_REGION from the environment, else us-east-1.
        object_store_region: Option<String> = None;
        /// Let the S3 client speak plain HTTP (a test server on loopback only).
        object_store_allow_http: bool = false;
    }

    /// What is kept, and for how long.
    [retention] RetentionSection {
        /// Everything about reports (uploads, batches, certificate ids) is deleted after
        /// this many days (`docs/PROTOCOL.md` §5.2).
        days: u32 = Policy::default().retention_days, range(1, 365),
            flag = "retention-days", was = "retention_days";
        /// Seconds between retention purges.
        purge_period_seconds: u64 = 300, range(1, 86_400), was = "purge_period_seconds";
        /// Audit records (who did what in the authority's console: staff and their
        /// actions, never a member of the public) are purged after this many days, behind
        /// a signed anchor so the rest still verifies (`ephemera-node audit verify`).
        audit_days: u32 = Policy::default().audit_retention_days, range(1, 3_650);
    }

    /// Where the node keeps its records: sled in the data folder (the default), or a
    /// PostgreSQL database that several nodes of one authority share
    /// (`node/docs/OPERATIONS.md`, "Several nodes on PostgreSQL").
    [storage] StorageSection {
        /// "sled" (the embedded default: nothing else to run) or "postgres" (`serve` refuses
        /// to start without `url`).
        backend: StoreBackend = StoreBackend::Sled;
        /// The PostgreSQL connection URL, e.g. "postgres://ephemera@db.internal/ephemera"
        /// (a password in it is never printed; prefer the environment or this file, mode
        /// 0600, or a `.pgpass`-free URL with trust by certificate).
        url: Option<DatabaseUrl> = None;
        /// The schema the tables live in (made and migrated at start): every node of a group
        /// names the same one.
        schema: String = "ephemera".to_owned();
        /// Connections each node holds to PostgreSQL.
        pool_size: usize = 16, range(1, 1_000);
        /// The part of a PostgreSQL group's work this node does, with the database role its
        /// `url` names (`node/deploy/postgres/roles.sql`): "all" (everything; connects as
        /// the schema's owner and migrates), "intake" (phones' verify and upload), the
        /// role "publisher" (cuts, purges, serves batches and exports) or "console"
        /// (accounts, codes, audit, statistics). A narrower node does not migrate or
        /// federate, answers 421 `wrong-node` for what another role serves, and needs the
        /// PostgreSQL backend.
        role: StoreRole = StoreRole::All;
        /// Megabytes of free space on the data folder's filesystem kept for batch cuts,
        /// purges and restarts: below it the node refuses new uploads and verifies with 503
        /// `insufficient-storage` (`Retry-After`) and `/healthz` says `"ready": false`, until
        /// space is freed (`node/docs/OPERATIONS.md`, "A full disk"). 0 turns the reserve off.
        free_space_reserve_mb: u64 = 256, range(0, 1 << 30);
    }

    /// The authority role: upload codes, certificates, case workers and trust.
    [authority] AuthoritySection {
        /// Seconds an issued upload code stays valid: long enough to type it in after a
        /// call, short enough that a leaked list is soon useless.
        code_lifetime_seconds: u64 = Policy::default().code_lifetime_seconds,
            range(60, 7 * 86_400), was = "code_lifetime_seconds";
        /// Seconds a certificate stays valid for a first upload (as the GAEN verification
        /// server's certificate tokens).
        certificate_lifetime_seconds: u64 = Policy::default().certificate_lifetime_seconds,
            range(60, 7 * 86_400), was = "certificate_lifetime_seconds";
        /// Seconds a case-worker session lasts (default: a working day).
        session_lifetime_seconds: u64 = 8 * 3600, range(60, 7 * 86_400),
            was = "session_lifetime_seconds";
        /// Seconds a staff session may go unused before it ends (counted in whole minutes).
        /// Sessions are kept in the database as hashes of their tokens, so they survive a
        /// restart; sign-out, sign-out everywhere and an admin's disable end them at once.
        session_idle_seconds: u64 = 30 * 60, range(60, 7 * 86_400);
        /// Require a TOTP second factor of every staff account: an account without one
        /// can, once signed in, only enrol one (`totp-enrolment-required` elsewhere).
        require_totp: bool = false;
        /// Make today's and tomorrow's blind-token keys ahead and serve them signed at
        /// `GET /v2/token-keys` (`docs/PROTOCOL.md` §4.4), so phones verify at
        /// `POST /v2/verify` with a blind token the authority cannot link to their upload.
        /// Off: the set served is empty and phones fall back to `POST /v1/verify`'s
        /// certificate, which the authority can link. The keys cost a second or two of one
        /// core per new day, on their own task.
        blind_token_keys: bool = true;
        /// Ignored (kept so that older files still load): `/v1/verify` has no guessing
        /// budget any more. A global one let any client lock every phone out, and 80-bit
        /// codes need none (`docs/SECURITY.md`, "Guessing codes").
        verify_failures_per_minute: u32 = 600, range(1, 1_000_000),
            was = "verify_failures_per_minute";
        /// Failed sign-ins per staff name per client source per 15 minutes (20 times that
        /// per source over all names, and 10 times that per name over all sources, whether
        /// or not the name is an account's).
        login_failures_per_user: u32 = 5, range(1, 1000), was = "login_failures_per_user";
        /// Most codes one API key may issue per UTC day; past it `POST /v1/codes` answers
        /// 429 `quota-exceeded` with `Retry-After` (seconds to midnight UTC).
        api_key_daily_codes: u32 = 10_000, range(1, 10_000_000);
        /// Most codes one staff account may issue per UTC day, likewise.
        account_daily_codes: u32 = 10_000, range(1, 10_000_000);
        /// Days the daily statistics counters are kept (`GET /v1/stats`). They hold only
        /// days, test types and numbers, yet are kept no longer than they serve: 400 lets
        /// an authority set a day beside the same day a year before, and write its annual
        /// report in the month after the year ends.
        stats_days: u32 = 400, range(1, 3_650);
        /// Statistics counts from 1 to this minus 1 are shown as "<N" (JSON, CSV and the
        /// chart), never as their value, so a small authority's daily figures do not
        /// point at a person. 1 shows every count.
        stats_min_count: u32 = 5, range(1, 1_000);
        /// Most codes one bulk request issues.
        max_codes_per_request: u32 = Policy::default().max_codes_per_request,
            range(1, 100_000), was = "max_codes_per_request";
        /// Ed25519 public keys (hex) of other health authorities whose certificates this
        /// node accepts. Its own authority key is always trusted.
        trusted_authorities: Vec<Ed25519PublicKey> = Policy::default().trusted_authorities,
            was = "trusted_authorities";
        /// Authority-key rollovers (hex frames, as `ephemera-node keys status` prints them
        /// on the authority's node): the successor of a trusted key is trusted too, beside
        /// it. See node/docs/OPERATIONS.md, "Rotating keys".
        trusted_authority_rollovers: Vec<KeyRollover> = Policy::default().authority_rollovers;
    }

    /// The end of purpose (`node/docs/OPERATIONS.md`, "Sunset"): the committee of sunset
    /// keys whose signed order stops this node and erases what it holds. The same in every
    /// node of the federation, and in the app's configuration.
    [sunset] SunsetSection {
        /// Ed25519 public keys (hex) of the sunset committee, for example the health
        /// authority's, the data-protection authority's and an independent party's, made
        /// with `ephemera-node sunset keygen`. Never the node's authority or batch key.
        /// Empty: this node accepts no sunset order.
        keys: Vec<Ed25519PublicKey> = Vec::new();
        /// How many distinct committee keys must approve an order (at most the number of
        /// keys).
        threshold: u32 = 2, range(1, 16);
    }

    /// Logs, on stderr. They never contain codes, tokens, keys or client addresses.
    [log] LogSection {
        /// Log format: "text" or "json".
        format: LogFormat = LogFormat::Text, was = "log_format";
        /// Log filter in `tracing` syntax, e.g. "info" or "ephemera_node=debug". It reaches
        /// the node's own crates; other crates are capped at `info` (libp2p at `warn`)
        /// whatever it says, because their detailed lines print records and addresses.
        filter: String = "info".to_owned(), was = "log_filter";
    }
}

fn check_object_store(url: &Option<String>) -> Result<(), String> {
    url.as_deref()
        .map_or(Ok(()), |url| crate::publish::Target::parse(url).map(|_| ()))
}

fn check_endpoint(endpoint: &Option<String>) -> Result<(), String> {
    match endpoint.as_deref() {
        Some(e) if !(e.starts_with("https://") || e.starts_with("http://")) => {
            Err("expected an http:// or https:// URL".to_owned())
        }
        Some(e) if e.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err("may not contain spaces or control characters".to_owned())
        }
        _ => Ok(()),
    }
}

fn check_region(region: &Option<String>) -> Result<(), String> {
    match region {
        Some(region)
            if region.len() > 32
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            Err("must be at most 32 characters of a-z, 0-9 and '-'".to_owned())
        }
        _ => Ok(()),
    }
}

fn check_schemes(schemes: &[SchemeKind]) -> Result<(), String> {
    if schemes.is_empty() {
        return Err("at least one scheme is needed".to_owned());
    }
    Ok(())
}

/// Which store keeps the node's records.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StoreBackend {
    /// sled, in the data folder.
    Sled,
    /// PostgreSQL, shared by a group of nodes.
    Postgres,
}

/// A PostgreSQL connection URL. It may hold a password: `Debug` never shows it and it is
/// wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL's text, to connect with.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Reads a URL (`postgres://…`, `postgresql://…`) or a libpq `key=value` string; the reason
    /// for a refusal never shows it.
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let url = text.trim();
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.contains('='))
        {
            return Err("must be a postgres:// URL or a key=value connection string".to_owned());
        }
        Ok(DatabaseUrl(url.to_owned()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

impl Drop for DatabaseUrl {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
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

/// The bearer token that guards `GET /metrics`. Its `Debug` never shows it, it is wiped
/// from memory when dropped, and [`MetricsToken::matches`] compares in constant time.
#[derive(Clone, Default)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// Shortest accepted token: 16 characters (with `openssl rand -hex 32`, 64).
    pub const MIN_LEN: usize = 16;
    /// Longest accepted token.
    pub const MAX_LEN: usize = 256;

    /// Wraps a token; reading it from the configuration checks its length and characters.
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

    /// The token if it is well formed; the reason never shows it.
    fn checked(self) -> Result<MetricsToken, String> {
        let len = self.0.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(format!(
                "must be {}..={} characters long",
                Self::MIN_LEN,
                Self::MAX_LEN
            ));
        }
        if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be visible ASCII without spaces (it travels in a header)".into());
        }
        Ok(self)
    }
}

impl PartialEq for MetricsToken {
    fn eq(&self, other: &MetricsToken) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

impl Drop for MetricsToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl TryFrom<RawConfig> for NodeConfig {
    type Error = ConfigError;

    /// Reads every value as its key's type and checks it, then the rules that span keys.
    fn try_from(raw: RawConfig) -> Result<NodeConfig, ConfigError> {
        // The place to blame: the minimum if it was set, else the maximum.
        let min_origin = [
            "publication.batch_min_entries",
            "publication.batch_max_entries",
        ]
        .iter()
        .find_map(|path| raw.settings.get(path))
        .map_or(Origin::Default, |s| s.origin.clone());
        let storage_origin = |key: &str| {
            raw.settings
                .get(key)
                .map_or(Origin::Default, |s| s.origin.clone())
        };
        let schema_origin = storage_origin("storage.schema");
        let role_origin = storage_origin("storage.role");
        let federation_set = raw.settings.contains_key("federation.enabled");
        let sunset_origin = storage_origin("sunset.keys");
        let config = NodeConfig::from_raw(raw)?;
        if !ephemera_node_core::store::valid_schema_name(&config.storage.schema) {
            return Err(ConfigError::Invalid {
                origin: schema_origin,
                key: "storage.schema",
                reason: "must be a lower-case SQL identifier of at most 63 characters".to_owned(),
            });
        }
        // (A narrower role on sled is refused when the node opens its store: `Node::open`.)
        if config.storage.role != StoreRole::All && config.federation.enabled && federation_set {
            return Err(ConfigError::Invalid {
                origin: role_origin,
                key: "storage.role",
                reason: format!(
                    "\"{}\" does not federate: federation reads and writes reports, which \
                     only a node with role = \"all\" may; leave [federation] enabled unset \
                     or false",
                    config.storage.role
                ),
            });
        }
        if let Err(reason) = config.sunset_committee() {
            return Err(ConfigError::Invalid {
                origin: sunset_origin,
                key: "sunset.keys",
                reason,
            });
        }
        if config.publication.batch_min_entries > config.publication.batch_max_entries {
            return Err(ConfigError::Invalid {
                origin: min_origin,
                key: "publication.batch_min_entries",
                reason: "must not exceed [publication] batch_max_entries".to_owned(),
            });
        }
        Ok(config)
    }
}

impl NodeConfig {
    /// The sunset committee, when `[sunset] keys` names one.
    ///
    /// # Errors
    /// Why the keys and threshold cannot form a committee.
    pub fn sunset_committee(&self) -> Result<Option<SunsetCommittee>, String> {
        let section = &self.sunset;
        if section.keys.is_empty() {
            return Ok(None);
        }
        let threshold = u8::try_from(section.threshold).unwrap_or(u8::MAX);
        SunsetCommittee::new(&section.keys, threshold)
            .map(Some)
            .map_err(|e| format!("{e} ([sunset] threshold is {})", section.threshold))
    }

    /// The name of the federation this node belongs to: `[federation] region`, or the
    /// default when unset. Tokens and sunset orders are bound to it.
    pub fn federation_name(&self) -> &str {
        self.federation
            .region
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or(ephemera_node_core::policy::DEFAULT_AUDIENCE)
    }

    /// The policy these settings give the node's core.
    pub fn policy(&self) -> Policy {
        let (p, a) = (&self.publication, &self.authority);
        Policy {
            retention_days: self.retention.days,
            code_lifetime_seconds: a.code_lifetime_seconds,
            certificate_lifetime_seconds: a.certificate_lifetime_seconds,
            max_codes_per_request: a.max_codes_per_request,
            max_upload_bytes: self.http.max_upload_bytes,
            accept_schemes: p.accept_schemes.clone(),
            trusted_authorities: a.trusted_authorities.clone(),
            authority_rollovers: a.trusted_authority_rollovers.clone(),
            batch_period_seconds: p.batch_period_seconds,
            batch_min_entries: p.batch_min_entries,
            batch_max_entries: p.batch_max_entries,
            release_spread_seconds: p.release_spread_seconds,
            publication_key: p.publication_key.clone(),
            export_region: p.export_region.clone(),
            export_key_id: p.export_key_id.clone(),
            export_key_version: p.export_key_version.clone(),
            audit_retention_days: self.retention.audit_days,
            // Tokens are valid in one federation: the one its region names (item 6 of
            // issue 31; docs/PROTOCOL.md §4.4).
            audience: ephemera_proto::token::Audience::named(self.federation_name()),
        }
    }
}

/// The documented default file, as `ephemera-node config defaults` prints and
/// `ephemera-node init` writes it: every key with its doc, variable, flag, range and
/// default, commented out. It parses back to the defaults.
pub fn documented_defaults() -> String {
    documented_file(&BTreeMap::new())
}

/// The documented file with `settings` (by key path, as [`settings_of`] reads them) set and
/// every other key commented out at its default: what `init --force` writes over an existing
/// file, so the operator's settings survive.
pub fn documented_file(settings: &BTreeMap<&'static str, toml::Value>) -> String {
    let mut out = String::from(
        "# Ephemera node configuration (TOML), as `ephemera-node config defaults` prints it.\n\
         # Every key is optional; each is shown commented out at its default. Precedence:\n\
         # this file < environment (EPHEMERA_<SECTION>_<KEY>) < flags (`ephemera-node serve\n\
         # --set section.key=value`, or the named flags). Unknown keys are an error.\n",
    );
    let write_key = |out: &mut String, key: &Key| {
        out.push('\n');
        for line in key.doc {
            out.push_str(&format!("#{line}\n"));
        }
        let mut facts = vec![format!("env {}", key.env())];
        if let Some(flag) = key.flag {
            facts.push(format!("flag --{flag}"));
        }
        if let Some(range) = key.range() {
            facts.push(format!("range {range}"));
        }
        out.push_str(&format!("# ({})\n", facts.join(", ")));
        match settings.get(key.path) {
            Some(value) => out.push_str(&format!("{} = {value}\n", key.name)),
            None => out.push_str(&format!("# {} = {}\n", key.name, key.default_value())),
        }
    };
    for key in KEYS.iter().filter(|key| key.section.is_empty()) {
        write_key(&mut out, key);
    }
    for (section, doc) in SECTIONS {
        out.push('\n');
        for line in *doc {
            out.push_str(&format!("#{line}\n"));
        }
        out.push_str(&format!("[{section}]\n"));
        for key in KEYS.iter().filter(|key| key.section == *section) {
            write_key(&mut out, key);
        }
    }
    out
}

/// The keys a config file sets, by key path, with their values as written; keys under their
/// flat names from before sections are filed under their new path.
///
/// # Errors
/// [`ConfigError`] as for loading the file (syntax, unknown keys, bad values).
pub fn settings_of(
    text: &str,
    origin: &str,
) -> Result<BTreeMap<&'static str, toml::Value>, ConfigError> {
    NodeConfig::try_from(RawConfig::from_toml(text, origin)?)?;
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        origin: origin.to_owned(),
        message: e.to_string(),
    })?;
    let mut settings = BTreeMap::new();
    for (name, value) in table {
        match value {
            toml::Value::Table(keys) if SECTIONS.iter().any(|(s, _)| *s == name) => {
                for (key_name, value) in keys {
                    if let Some(key) = Key::find(&format!("{name}.{key_name}")) {
                        settings.insert(key.path, value);
                    }
                }
            }
            value => {
                let key =
                    Key::find(&name).or_else(|| KEYS.iter().find(|k| k.was == Some(name.as_str())));
                if let Some(key) = key {
                    settings.insert(key.path, value);
                }
            }
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests;
