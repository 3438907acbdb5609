//! The command line: one library function per `ephemera-node` command, so `main` stays
//! thin and tests call the commands in-process.

mod api_keys;
mod audit;
mod backup;
pub mod derive;
mod export;
mod keys;
mod publish;
mod retention;
mod serve;
mod sunset;
mod upgrade;
mod users;
mod venue;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use thiserror::Error;

use crate::config::ConfigError;
use crate::node::NodeError;

pub use api_keys::api_keys;
pub use audit::audit;
pub use backup::backup;
pub use derive::{DeriveArgs, derive};
pub use export::{export_verify, write_verified_keys};
pub use keys::keys;
pub use publish::{publish_static, publish_to_folder};
pub use retention::retention;
pub use serve::{ServeArgs, config_defaults, init, load_config, serve};
pub use sunset::{
    CombineArgs, CommitteeArgs, DraftArgs, KeygenArgs, SignArgs, SunsetCommand, VerifyArgs,
    VerifyReceiptsArgs, sunset,
};
pub use upgrade::upgrade;
pub use users::users;
pub use venue::{INSTRUCTIONS_FILE, QR_SVG_FILE, QR_TEXT_FILE, TRACE_CODE_FILE, venue};

/// `ephemera-node`: the Ephemera server a health authority runs.
#[derive(Debug, Parser)]
#[command(name = "ephemera-node", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node (HTTP API, batches, retention). With no arguments: data in
    /// ./ephemera-data, HTTP on 127.0.0.1:8080, ./ephemera.toml read if present.
    Serve(ServeArgs),
    /// Write a commented config file and create the data folder, keys and first
    /// case-worker credentials (printed once).
    Init(InitArgs),
    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print derived identifiers for test vectors and outside tools.
    Derive(DeriveArgs),
    /// Work with GAEN export files.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Write a consistent copy of the data (`db/`, `blobs/`, `keys/data/`) into a new
    /// folder: through the running node (it keeps serving), or directly when none runs.
    Backup(BackupArgs),
    /// Write what phones read (batches, filters, index pages, GAEN exports, the
    /// authority's keys) into a folder for any web server: through the running node, or
    /// directly when none runs (node/docs/OPERATIONS.md, "Publishing to object storage and
    /// a CDN").
    PublishStatic(PublishStaticArgs),
    /// The node's keys: their state, and rotation with overlap (run while the node is
    /// stopped; node/docs/OPERATIONS.md, "Rotating keys").
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Convert the data folder's database from storage format 3 (0.1.0) to the format this
    /// build reads, in place: stop the node and back up the folder first; rerun it if it
    /// was cut short (node/docs/OPERATIONS.md, "Upgrading").
    Upgrade(FolderArgs),
    /// The authority's audit trail, on a stopped node's data folder or a restored backup
    /// (node/docs/OPERATIONS.md, "Audit trail").
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Staff accounts, on a stopped node's data folder: add, list, disable, enable, reset a
    /// password, set roles; each change recorded in the audit trail as by the operator
    /// (node/docs/OPERATIONS.md, "Staff accounts").
    #[command(subcommand)]
    Users(UsersCommand),
    /// API keys of lab and hospital systems, on a stopped node's data folder: create (the
    /// key is printed once), list, revoke; each change recorded in the audit trail as by
    /// the operator (node/docs/OPERATIONS.md, "API keys").
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// The end of purpose, offline: sunset keys for the committee, and drafting, signing,
    /// combining and checking a sunset order (node/docs/OPERATIONS.md, "Sunset").
    #[command(subcommand)]
    Sunset(SunsetCommand),
    /// Retention, shown: when the oldest record of each kind is due to go, through the
    /// running node or on a stopped one's folder (node/docs/OPERATIONS.md, "Retention").
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Venue check-in: make a venue's printable entry QR code and its private trace code,
    /// offline with the authority's venue key (node/docs/OPERATIONS.md, "Venues").
    #[command(subcommand)]
    Venue(VenueCommand),
}

/// `venue` subcommands.
#[derive(Debug, Subcommand)]
pub enum VenueCommand {
    /// Writes a venue's entry QR code (SVG), its text, its trace code (mode 0600) and an
    /// instruction sheet into a new folder; keeps nothing anywhere else.
    Create(VenueCreateArgs),
}

/// `venue create` arguments.
#[derive(Debug, Args)]
pub struct VenueCreateArgs {
    /// What phones show for the venue: at most 100 bytes of UTF-8.
    #[arg(long)]
    pub description: String,
    /// Its address, as phones show it: at most 100 bytes of UTF-8.
    #[arg(long, default_value = "")]
    pub address: String,
    /// The first day its codes are valid, YYYY-MM-DD (UTC) [default: today].
    #[arg(long)]
    pub valid_from: Option<String>,
    /// The last day its codes are valid, YYYY-MM-DD (UTC) [default: a year after
    /// --valid-from].
    #[arg(long)]
    pub valid_until: Option<String>,
    /// The health authority's venue key: 64 hex digits, or a file holding them or the JSON
    /// of `GET /v1/venue-key` (its signature is checked). Without it, the key is read from
    /// the data folder of one of the authority's nodes (--config, --data-dir).
    #[arg(long)]
    pub authority_key: Option<String>,
    /// The authority key (64 hex digits, as `GET /v1/authority` or the authority's own
    /// publication gives it) that must have signed the JSON of --authority-key.
    #[arg(long, requires = "authority_key")]
    pub authority: Option<String>,
    /// The folder to write: new, or empty (a trace code is never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// The data folder to read the venue key from, when --authority-key is not given.
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// `retention` subcommands.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Prints each kind's oldest record's due time; fails when one is held more than a
    /// batch period past its retention.
    Report(FolderArgs),
}

/// `api-keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Creates a key that may issue codes (of the test types given, or any) and prints it
    /// once.
    Create(ApiKeyCreateArgs),
    /// Lists every key: id, name, test types, created by, created, revoked, last used.
    List(FolderArgs),
    /// Revokes a key by its id.
    Revoke(ApiKeyRevokeArgs),
}

/// `api-keys create`.
#[derive(Debug, Args)]
pub struct ApiKeyCreateArgs {
    /// Its name (as an account name, e.g. `lab-north`).
    #[arg(long)]
    pub name: String,
    /// A test type it may issue codes for: confirmed, likely or negative (repeat for
    /// more; none: any).
    #[arg(long = "test-type")]
    pub test_types: Vec<String>,
    /// The data folder.
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// `api-keys revoke`.
#[derive(Debug, Args)]
pub struct ApiKeyRevokeArgs {
    /// The key's id (16 hex digits, as `list` shows it).
    pub id: String,
    /// The data folder.
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// `users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Adds an account with one or more roles and prints its one-time password once; its
    /// first sign-in must set a new one.
    Add(UserRolesArgs),
    /// Lists every account: name, roles, enabled, TOTP, forced password change, created.
    List(FolderArgs),
    /// Disables an account (its sessions end); the last enabled admin is kept.
    Disable(UserArgs),
    /// Enables a disabled account again.
    Enable(UserArgs),
    /// Gives an account a new one-time password (printed once) and ends its sessions.
    ResetPassword(ResetArgs),
    /// Sets an account's roles to exactly those given.
    Grant(UserRolesArgs),
}

/// An account on a data folder.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The account's name.
    pub name: String,
    /// The data folder.
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// `users reset-password`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The account's name.
    pub name: String,
    /// Also remove its TOTP second factor and recovery codes (for a person who lost both);
    /// it may enrol again after signing in.
    #[arg(long)]
    pub clear_totp: bool,
    /// The data folder.
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// An account and roles on a data folder.
#[derive(Debug, Args)]
pub struct UserRolesArgs {
    /// The account's name.
    pub name: String,
    /// A role: admin, case-worker, bulk-issuer or auditor (repeat for more).
    #[arg(long = "role", required = true)]
    pub roles: Vec<String>,
    /// The data folder.
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's signed head and link; on an edit, a deletion or a reordering,
    /// fail and say which record.
    Verify(FolderArgs),
    /// Print the trail (JSON or CSV); the export itself is recorded first.
    Export(AuditExportArgs),
}

/// `audit export` arguments.
#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Json)]
    pub format: AuditFormat,
    /// The data folder.
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// Formats of `audit export`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// A JSON array of records.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Which data folder a command works on.
#[derive(Debug, Args)]
pub struct FolderArgs {
    /// Config file naming the data folder (default: ./ephemera.toml when it exists).
    #[arg(long, env = "EPHEMERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data folder (overrides the config file).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print each key's id, the next key during a rotation, the rollovers announced (with
    /// their hex frames) and the retired keys.
    Status(FolderArgs),
    /// Begin a rotation (the next key is announced and used beside the current one), or
    /// with --finish switch to the next key. The node must be stopped.
    Rotate(RotateArgs),
}

/// A key that `keys rotate` rotates.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyName {
    /// The batch-signing key phones pin.
    Batch,
    /// The authority's certificate key peers trust.
    Authority,
    /// The GAEN export key (ECDSA P-256).
    Export,
}

/// `keys rotate` arguments.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Which key.
    #[arg(value_enum)]
    pub key: KeyName,
    /// Switch to the next key (ends the overlap).
    #[arg(long)]
    pub finish: bool,
    /// The next export key's GAEN key version (default: the current one's number + 1).
    #[arg(long, conflicts_with = "finish")]
    pub version: Option<String>,
    /// The data folder.
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// `backup` arguments.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Config file naming the data folder (default: ./ephemera.toml when it exists).
    #[arg(long, env = "EPHEMERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data folder (overrides the config file).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The folder to write: new, or empty.
    #[arg(long)]
    pub to: PathBuf,
}

/// `publish-static` arguments.
#[derive(Debug, Args)]
pub struct PublishStaticArgs {
    /// Config file naming the data folder (default: ./ephemera.toml when it exists).
    #[arg(long, env = "EPHEMERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data folder (overrides the config file).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The folder to write (made if missing); files the node no longer has are deleted
    /// from it.
    pub dir: PathBuf,
}

/// `init` arguments.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the config file.
    #[arg(long, default_value = crate::config::DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
    /// Data folder to create (keys, database, first credentials).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Overwrite an existing config file.
    #[arg(long)]
    pub force: bool,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the documented default config file: every key, commented, at its default.
    Defaults,
}

/// `export` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Verify an export zip's signature and print `<key hex> <rolling start> <rolling
    /// period>` per key.
    Verify(ExportVerifyArgs),
}

/// `export verify` arguments.
#[derive(Debug, Args)]
pub struct ExportVerifyArgs {
    /// PEM file with the ECDSA P-256 public key (as `GET /v1/authority/export-key.pem`).
    #[arg(long)]
    pub public_key: PathBuf,
    /// The export zip.
    pub zip: PathBuf,
}

/// A command failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CliError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node could not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A file could not be read or written, or the listener could not bind.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// An argument is not valid.
    #[error("invalid argument {name}: {reason}")]
    Argument {
        /// The argument.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A GAEN export file did not verify or decode.
    #[error("export file rejected: {0}")]
    Export(String),
    /// The database could not be converted (`upgrade`).
    #[error(transparent)]
    Upgrade(#[from] ephemera_node_core::store::UpgradeError),
    /// The audit trail does not verify.
    #[error("the audit trail does not verify: {0}")]
    AuditBroken(#[from] ephemera_proto::audit::AuditBreak),
    /// An account change was refused (unknown account or role, the last admin ...).
    #[error("{0}")]
    Account(crate::api::error::ApiError),
    /// The command needs the node stopped.
    #[error(
        "a node is running on {}: stop it first (keys and the database change only while \
         the node is stopped, and take effect when it starts)",
        data_dir.display()
    )]
    NodeRunning {
        /// The data folder.
        data_dir: PathBuf,
    },
}

/// The configuration of the node on a data folder: the config file (`config`, else
/// ./ephemera.toml when it exists) and the environment, `data_dir` overriding its folder.
///
/// # Errors
/// [`CliError::Config`].
pub(crate) fn node_config(
    config: &Option<PathBuf>,
    data_dir: &Option<PathBuf>,
) -> Result<crate::config::NodeConfig, CliError> {
    let serve = ServeArgs {
        config: config.clone(),
        ..ServeArgs::default()
    };
    let mut node = load_config(&serve, std::env::vars())?.0;
    if let Some(dir) = data_dir {
        node.data_dir = dir.clone();
    }
    Ok(node)
}
