//! Configuration: a sectioned TOML file, `EPHEMERA_*` environment variables and
//! command-line flags.
//!
//! Every key is declared once, in the [`config_keys!`] table below, with its type, default,
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

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use ephemera_node_core::Policy;
use ephemera_proto::SchemeKind;
use ephemera_proto::signing::Ed25519PublicKey;
use thiserror::Error;

/// The config file `serve` reads when no `--config` is given and the file exists.
pub const DEFAULT_CONFIG_FILE: &str = "ephemera.toml";
/// Prefix of the environment variables that set config keys.
pub const ENV_PREFIX: &str = "EPHEMERA_";
/// The environment variable that names the config file (not a key).
pub const CONFIG_FILE_ENV: &str = "EPHEMERA_CONFIG";

/// Where a config value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A line of a config file.
    File {
        /// The file, as given.
        path: String,
        /// 1-based line of the key.
        line: usize,
    },
    /// An environment variable.
    Env(String),
    /// A command-line flag (`--listen`, `--set http.listen`).
    Flag(String),
    /// The default (for checks that span several keys).
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{path} line {line}"),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Default => f.write_str("the defaults"),
        }
    }
}

/// A configuration that could not be read or is not valid. Messages never show the value of
/// a secret key.
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
    /// The config file is not valid TOML.
    #[error("{origin} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A file or `--set` names a key that does not exist.
    #[error("{origin}: unknown key '{key}'{}", in_section(section))]
    UnknownKey {
        /// Where.
        origin: Origin,
        /// The key as written.
        key: String,
        /// Its section, if it is in one.
        section: Option<String>,
    },
    /// A file has a section that does not exist.
    #[error("{origin}: unknown section [{section}]")]
    UnknownSection {
        /// Where.
        origin: Origin,
        /// The section as written.
        section: String,
    },
    /// One source sets a key twice (under its old and its new name).
    #[error("{second}: {key} is already set at {first}")]
    Duplicate {
        /// The key, as `section.key`.
        key: &'static str,
        /// The first place.
        first: Origin,
        /// The second place.
        second: Origin,
    },
    /// A `--set` item has no `=`.
    #[error("flag --set: expected section.key=value")]
    NotKeyValue,
    /// A value does not fit its key, is outside its range or clashes with another.
    #[error("{origin}: invalid value for {}: {reason}", Key::display_path(key))]
    Invalid {
        /// Where the value came from.
        origin: Origin,
        /// The key, as `section.key` (`data_dir` at the top level).
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn in_section(section: &Option<String>) -> String {
    match section {
        Some(section) => format!(" in [{section}]"),
        None => String::new(),
    }
}

/// Something in the configuration that works but should change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// A key was set under its flat name from before sections.
    Renamed {
        /// Where.
        origin: Origin,
        /// The old name as written (key, variable or `--set` key).
        old: String,
        /// The key it now is.
        key: &'static Key,
    },
    /// An `EPHEMERA_*` variable names no key.
    UnknownEnv(String),
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::Renamed {
                origin: origin @ Origin::Env(_),
                old,
                key,
            } => write!(f, "{origin}: {old} is now {} ({key})", key.env()),
            ConfigWarning::Renamed {
                origin: origin @ Origin::Flag(_),
                old,
                key,
            } => write!(f, "{origin}: `{old}` is now `{}` ({key})", key.path),
            ConfigWarning::Renamed { origin, old, key } => write!(
                f,
                "{origin}: {old} is now {key} (`ephemera-node config defaults` prints the new layout)"
            ),
            ConfigWarning::UnknownEnv(name) => {
                write!(
                    f,
                    "environment variable {name} names no config key; ignored"
                )
            }
        }
    }
}

/// One config key, as declared in the table of this module.
#[derive(Debug)]
pub struct Key {
    /// Its section ("" at the top level).
    pub section: &'static str,
    /// Its name in the section.
    pub name: &'static str,
    /// `section.name` (`name` at the top level): the `--set` key and the TOML dotted key.
    pub path: &'static str,
    /// Its doc comment, one entry per line.
    pub doc: &'static [&'static str],
    /// Its named `serve` flag, without `--`.
    pub flag: Option<&'static str>,
    /// Its flat name from before sections.
    pub was: Option<&'static str>,
    /// Whether it holds a list (the environment and flags also take comma-separated text).
    pub list: bool,
    /// Whether its value is secret (never printed).
    pub secret: bool,
    default: fn() -> toml::Value,
    range: Option<fn() -> String>,
}

impl Key {
    /// Its environment variable: `EPHEMERA_` + section + `_` + name, in upper case.
    pub fn env(&self) -> String {
        format!("{ENV_PREFIX}{}", self.path.replace('.', "_")).to_ascii_uppercase()
    }

    /// The environment variable of its flat name, if it had one other than [`Key::env`].
    pub fn old_env(&self) -> Option<String> {
        let old = format!("{ENV_PREFIX}{}", self.was?).to_ascii_uppercase();
        (old != self.env()).then_some(old)
    }

    /// Its default, as TOML.
    pub fn default_value(&self) -> toml::Value {
        (self.default)()
    }

    /// Its allowed range (`min..=max`), for numbers that have one.
    pub fn range(&self) -> Option<String> {
        self.range.map(|range| range())
    }

    /// The first sentence of its doc, on one line (the flag's help).
    pub fn summary(&self) -> String {
        let doc: Vec<&str> = self.doc.iter().map(|line| line.trim()).collect();
        let doc = doc.join(" ");
        match doc.find(". ") {
            Some(end) => doc[..=end].to_owned(),
            None => doc,
        }
    }

    /// The key for a `section.name` path.
    pub fn find(path: &str) -> Option<&'static Key> {
        KEYS.iter().find(|key| key.path == path)
    }

    fn display_path(path: &str) -> String {
        match path.split_once('.') {
            Some((section, name)) => format!("[{section}] {name}"),
            None => path.to_owned(),
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.path == other.path
    }
}

impl Eq for Key {}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Key::display_path(self.path))
    }
}

/// How a type is read from TOML or from text (the environment, flags) and written back.
trait ConfigValue: Sized {
    const LIST: bool = false;
    const SECRET: bool = false;
    fn from_toml(value: toml::Value) -> Result<Self, String>;
    fn from_text(text: &str) -> Result<Self, String>;
    fn to_toml(&self) -> toml::Value;
}

fn expected(what: &str, value: &toml::Value) -> String {
    format!("expected {what}, found {}", value.type_str())
}

macro_rules! integer_value {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            fn from_toml(value: toml::Value) -> Result<Self, String> {
                match value {
                    toml::Value::Integer(n) => {
                        <$t>::try_from(n).map_err(|_| format!("{n} is out of range"))
                    }
                    other => Err(expected("an integer", &other)),
                }
            }
            fn from_text(text: &str) -> Result<Self, String> {
                text.trim()
                    .replace('_', "")
                    .parse()
                    .map_err(|_| format!("`{text}` is not a whole number"))
            }
            fn to_toml(&self) -> toml::Value {
                toml::Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_value!(u32, u64, usize);

impl ConfigValue for bool {
    fn from_toml(value: toml::Value) -> Result<Self, String> {
        value
            .as_bool()
            .ok_or_else(|| expected("true or false", &value))
    }
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("`{other}` is not true or false")),
        }
    }
    fn to_toml(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
}

/// Types written as a TOML string: `parse` reads the text, `show` writes it.
macro_rules! string_value {
    ($t:ty, secret = $secret:expr, parse = $parse:expr, show = $show:expr) => {
        impl ConfigValue for $t {
            const SECRET: bool = $secret;
            fn from_toml(value: toml::Value) -> Result<Self, String> {
                match value {
                    toml::Value::String(text) => ($parse)(text.as_str()),
                    other => Err(expected("a string", &other)),
                }
            }
            fn from_text(text: &str) -> Result<Self, String> {
                // A quoted TOML string is unquoted; anything else is the text itself.
                match parse_value(text) {
                    Some(toml::Value::String(inner)) => ($parse)(inner.as_str()),
                    _ => ($parse)(text),
                }
            }
            fn to_toml(&self) -> toml::Value {
                toml::Value::String(($show)(self))
            }
        }
    };
}

/// Reads a single TOML value written as text (`"x"`, `[1, 2]`, `7`).
fn parse_value(text: &str) -> Option<toml::Value> {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
}

string_value!(
    String,
    secret = false,
    parse = |s: &str| Ok(s.to_owned()),
    show = |v: &String| v.clone()
);
string_value!(
    PathBuf,
    secret = false,
    parse = |s: &str| Ok(PathBuf::from(s)),
    show = |v: &PathBuf| v.display().to_string()
);
string_value!(
    SocketAddr,
    secret = false,
    parse = |s: &str| s
        .parse()
        .map_err(|_| format!("`{s}` is not an ip:port address")),
    show = |v: &SocketAddr| v.to_string()
);
string_value!(
    LogFormat,
    secret = false,
    parse = |s: &str| match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("`{other}` is not text or json")),
    },
    show = |v: &LogFormat| match v {
        LogFormat::Text => "text".to_owned(),
        LogFormat::Json => "json".to_owned(),
    }
);
string_value!(
    SchemeKind,
    secret = false,
    parse = |s: &str| match s {
        "pet" => Ok(SchemeKind::Pet),
        "gaen" => Ok(SchemeKind::Gaen),
        other => Err(format!("unknown scheme `{other}` (pet, gaen)")),
    },
    show = |v: &SchemeKind| match v {
        SchemeKind::Pet => "pet".to_owned(),
        SchemeKind::Gaen => "gaen".to_owned(),
    }
);
string_value!(
    Ed25519PublicKey,
    secret = false,
    parse = |s: &str| Ed25519PublicKey::from_hex(s)
        .ok_or_else(|| format!("`{s}` is not 64 hex characters")),
    show = |v: &Ed25519PublicKey| v.to_hex()
);
string_value!(
    libp2p::Multiaddr,
    secret = false,
    parse = |s: &str| {
        let addr: libp2p::Multiaddr = s.parse().map_err(|_| format!("`{s}` is not a multiaddr"))?;
        if !matches!(
            addr.iter().last(),
            Some(libp2p::multiaddr::Protocol::P2p(_))
        ) {
            return Err(format!("`{s}` does not end in /p2p/<peer id>"));
        }
        Ok(addr)
    },
    show = |v: &libp2p::Multiaddr| v.to_string()
);
string_value!(
    MetricsToken,
    secret = true,
    parse = |s: &str| MetricsToken::new(s).checked(),
    show = |_: &MetricsToken| String::new()
);

impl<T: ConfigValue> ConfigValue for Vec<T> {
    const LIST: bool = true;
    const SECRET: bool = T::SECRET;
    fn from_toml(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Array(items) => items.into_iter().map(T::from_toml).collect(),
            other => Err(expected("an array", &other)),
        }
    }
    fn from_text(text: &str) -> Result<Self, String> {
        if text.trim_start().starts_with('[') {
            let value = parse_value(text).ok_or_else(|| format!("`{text}` is not a TOML array"))?;
            return Self::from_toml(value);
        }
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(T::from_text)
            .collect()
    }
    fn to_toml(&self) -> toml::Value {
        toml::Value::Array(self.iter().map(T::to_toml).collect())
    }
}

/// An optional value: `""` means none.
impl<T: ConfigValue> ConfigValue for Option<T> {
    const SECRET: bool = T::SECRET;
    fn from_toml(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::String(text) if text.is_empty() => Ok(None),
            other => T::from_toml(other).map(Some),
        }
    }
    fn from_text(text: &str) -> Result<Self, String> {
        match text {
            "" | "\"\"" => Ok(None),
            text => T::from_text(text).map(Some),
        }
    }
    fn to_toml(&self) -> toml::Value {
        match self {
            Some(value) => value.to_toml(),
            None => toml::Value::String(String::new()),
        }
    }
}

/// A value as a source gave it, before it is read as its key's type.
#[derive(Clone)]
enum RawValue {
    /// From a TOML file.
    Toml(toml::Value),
    /// From the environment or a flag.
    Text(String),
}

impl RawValue {
    fn read<T: ConfigValue>(self) -> Result<T, String> {
        match self {
            RawValue::Toml(value) => T::from_toml(value),
            RawValue::Text(text) => T::from_text(&text),
        }
    }
}

#[derive(Clone)]
struct Setting {
    value: RawValue,
    origin: Origin,
}

/// Configuration as read from one or more sources: the keys they set, where, and the
/// warnings they gave. `Debug` shows keys and origins, never values.
#[derive(Clone, Default)]
pub struct RawConfig {
    settings: BTreeMap<&'static str, Setting>,
    warnings: Vec<ConfigWarning>,
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.settings.iter().map(|(key, s)| (key, &s.origin)))
            .finish()
    }
}

macro_rules! config_keys {
    (@opt) => { None };
    (@opt $value:expr) => { Some($value) };
    (@range $ty:ty, []) => { None };
    (@range $ty:ty, [$lo:expr, $hi:expr]) => {
        Some(|| {
            let (lo, hi): ($ty, $ty) = ($lo, $hi);
            format!("{lo}..={hi}")
        })
    };
    (@key $section:expr, $name:ident, $path:expr, $ty:ty, $default:expr,
        [$($doc:literal)*], [$($lo:expr, $hi:expr)?], [$($flag:literal)?], [$($was:literal)?]) => {
        Key {
            section: $section,
            name: stringify!($name),
            path: $path,
            doc: &[$($doc),*],
            flag: config_keys!(@opt $($flag)?),
            was: config_keys!(@opt $($was)?),
            list: <$ty as ConfigValue>::LIST,
            secret: <$ty as ConfigValue>::SECRET,
            default: || {
                let default: $ty = $default;
                default.to_toml()
            },
            range: config_keys!(@range $ty, [$($lo, $hi)?]),
        }
    };
    (@value $raw:ident, $path:expr, $ty:ty, $default:expr, [$($lo:expr, $hi:expr)?], [$($check:path)?]) => {
        match $raw.settings.remove($path) {
            None => $default,
            Some(Setting { value, origin }) => {
                let invalid = |reason: String| ConfigError::Invalid {
                    origin: origin.clone(),
                    key: $path,
                    reason,
                };
                let value: $ty = value.read().map_err(invalid)?;
                $(
                    let (lo, hi): ($ty, $ty) = ($lo, $hi);
                    if value < lo || value > hi {
                        return Err(invalid(format!("{value} is outside {lo}..={hi}")));
                    }
                )?
                $( $check(&value).map_err(invalid)?; )?
                value
            }
        }
    };
    (
        top {
            $(
                $(#[doc = $tdoc:literal])*
                $tkey:ident : $tty:ty = $tdefault:expr
                $(, range($tlo:expr, $thi:expr))?
                $(, check = $tcheck:path)?
                $(, flag = $tflag:literal)?
                $(, was = $twas:literal)? ;
            )*
        }
        $(
            $(#[doc = $sdoc:literal])*
            [$section:ident] $Section:ident {
                $(
                    $(#[doc = $doc:literal])*
                    $key:ident : $ty:ty = $default:expr
                    $(, range($lo:expr, $hi:expr))?
                    $(, check = $check:path)?
                    $(, flag = $flag:literal)?
                    $(, was = $was:literal)? ;
                )*
            }
        )*
    ) => {
        /// The checked configuration of a node, one field per top-level key and one per
        /// section. `Default` is the documented safe choice (see each key).
        #[derive(Clone, Debug, PartialEq)]
        pub struct NodeConfig {
            $( $(#[doc = $tdoc])* pub $tkey: $tty, )*
            $( $(#[doc = $sdoc])* pub $section: $Section, )*
        }

        impl Default for NodeConfig {
            fn default() -> Self {
                NodeConfig {
                    $( $tkey: $tdefault, )*
                    $( $section: $Section::default(), )*
                }
            }
        }

        $(
            $(#[doc = $sdoc])*
            #[derive(Clone, Debug, PartialEq)]
            pub struct $Section {
                $( $(#[doc = $doc])* pub $key: $ty, )*
            }

            impl Default for $Section {
                fn default() -> Self {
                    $Section { $( $key: $default, )* }
                }
            }
        )*

        /// Every config key, in the order of the documented default file.
        pub static KEYS: &[Key] = &[
            $( config_keys!(@key "", $tkey, stringify!($tkey), $tty, $tdefault,
                [$($tdoc)*], [$($tlo, $thi)?], [$($tflag)?], [$($twas)?]), )*
            $( $( config_keys!(@key stringify!($section), $key,
                concat!(stringify!($section), ".", stringify!($key)), $ty, $default,
                [$($doc)*], [$($lo, $hi)?], [$($flag)?], [$($was)?]), )* )*
        ];

        /// Each section's name and doc comment, in file order.
        const SECTIONS: &[(&str, &[&str])] = &[ $( (stringify!($section), &[$($sdoc),*]), )* ];

        impl NodeConfig {
            fn from_raw(mut raw: RawConfig) -> Result<NodeConfig, ConfigError> {
                Ok(NodeConfig {
                    $( $tkey: config_keys!(@value raw, stringify!($tkey), $tty, $tdefault,
                        [$($tlo, $thi)?], [$($tcheck)?]), )*
                    $( $section: $Section {
                        $( $key: config_keys!(@value raw,
                            concat!(stringify!($section), ".", stringify!($key)), $ty, $default,
                            [$($lo, $hi)?], [$($check)?]), )*
                    }, )*
                })
            }
        }
    };
}

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
    }

    /// Federation (libp2p): nodes exchange verified uploads by gossip and catch up after
    /// downtime. By default it listens on loopback only, knows no peers and sends nothing
    /// off the machine. Peers must trust the same authorities to accept each other's
    /// reports.
    [federation] FederationSection {
        /// Run federation beside the HTTP API.
        enabled: bool = true, was = "federation";
        /// Federation listen address, TCP and QUIC (UDP) on the same port (port 0: the OS
        /// picks one; `serve` prints the addresses and the peer id).
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0)), was = "federation_listen";
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
    }

    /// What is kept, and for how long.
    [retention] RetentionSection {
        /// Everything about reports (uploads, batches, certificate ids) is deleted after
        /// this many days (`docs/PROTOCOL.md` §5.2).
        days: u32 = Policy::default().retention_days, range(1, 365),
            flag = "retention-days", was = "retention_days";
        /// Seconds between retention purges.
        purge_period_seconds: u64 = 300, range(1, 86_400), was = "purge_period_seconds";
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
        /// Failed code verifications per minute, over all phones (never per IP address),
        /// before `/v1/verify` answers 429. Guessing an 80-bit code at 600 a minute takes
        /// longer than the universe's age.
        verify_failures_per_minute: u32 = 600, range(1, 1_000_000),
            was = "verify_failures_per_minute";
        /// Failed sign-ins per case-worker name per 15 minutes (20 times that over all
        /// names).
        login_failures_per_user: u32 = 5, range(1, 1000), was = "login_failures_per_user";
        /// Most codes one bulk request issues.
        max_codes_per_request: u32 = Policy::default().max_codes_per_request,
            range(1, 100_000), was = "max_codes_per_request";
        /// Ed25519 public keys (hex) of other health authorities whose certificates this
        /// node accepts. Its own authority key is always trusted.
        trusted_authorities: Vec<Ed25519PublicKey> = Policy::default().trusted_authorities,
            was = "trusted_authorities";
    }

    /// Logs, on stderr. They never contain codes, tokens, keys or client addresses.
    [log] LogSection {
        /// Log format: "text" or "json".
        format: LogFormat = LogFormat::Text, was = "log_format";
        /// Log filter in `tracing` syntax, e.g. "info" or "ephemera_node=debug" (libp2p's
        /// crates stay at `warn` unless named: their debug output names addresses).
        filter: String = "info".to_owned(), was = "log_filter";
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

impl RawConfig {
    /// The warnings its sources gave (old key names, unknown variables), in order.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// `self` with every key that `over` sets replaced by `over`'s value.
    pub fn merge(mut self, over: RawConfig) -> RawConfig {
        self.settings.extend(over.settings);
        self.warnings.extend(over.warnings);
        self
    }

    /// Sets `key`; a second value from a source that must not repeat keys is an error.
    fn set(
        &mut self,
        key: &'static Key,
        value: RawValue,
        origin: Origin,
        repeat_ok: bool,
    ) -> Result<(), ConfigError> {
        if let Some(first) = self.settings.get(key.path)
            && !repeat_ok
        {
            // A file is read section by section: report the lines in order.
            let (first, second) = match (&first.origin, &origin) {
                (Origin::File { line: a, .. }, Origin::File { line: b, .. }) if a > b => {
                    (origin, first.origin.clone())
                }
                _ => (first.origin.clone(), origin),
            };
            return Err(ConfigError::Duplicate {
                key: key.path,
                first,
                second,
            });
        }
        self.settings.insert(key.path, Setting { value, origin });
        Ok(())
    }

    /// Parses a TOML config file's text; `origin` names it in errors and warnings.
    ///
    /// Keys of the flat layout from before sections are read as their new key, with a
    /// [`ConfigWarning::Renamed`].
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] for bad TOML, [`ConfigError::UnknownKey`] and
    /// [`ConfigError::UnknownSection`] (with the line), [`ConfigError::Duplicate`] for a key
    /// set under both its old and its new name. Values are checked by
    /// [`NodeConfig::try_from`].
    pub fn from_toml(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        };
        // Spans for line numbers, and plain values to read.
        let spanned = toml::de::DeTable::parse(text).map_err(syntax)?;
        let values: toml::Table = toml::from_str(text).map_err(syntax)?;
        let at = |span: std::ops::Range<usize>| Origin::File {
            path: origin.to_owned(),
            line: text[..span.start.min(text.len())].matches('\n').count() + 1,
        };
        let mut raw = RawConfig::default();
        for (name, item) in spanned.get_ref() {
            let name_str: &str = name.get_ref();
            let value = values
                .get(name_str)
                .cloned()
                .unwrap_or(toml::Value::Boolean(false));
            let is_section = SECTIONS.iter().any(|(section, _)| *section == name_str);
            if let (true, toml::de::DeValue::Table(items), toml::Value::Table(mut table)) =
                (is_section, item.get_ref(), value.clone())
            {
                for (key_name, _) in items {
                    let key_str: &str = key_name.get_ref();
                    let path = format!("{name_str}.{key_str}");
                    let Some(key) = Key::find(&path) else {
                        return Err(ConfigError::UnknownKey {
                            origin: at(key_name.span()),
                            key: key_str.to_owned(),
                            section: Some(name_str.to_owned()),
                        });
                    };
                    let value = table.remove(key_str).unwrap_or(toml::Value::Boolean(false));
                    raw.set(key, RawValue::Toml(value), at(key_name.span()), false)?;
                }
                continue;
            }
            let here = at(name.span());
            if let Some(key) = KEYS
                .iter()
                .find(|key| key.section.is_empty() && key.name == name_str)
            {
                raw.set(key, RawValue::Toml(value), here, false)?;
            } else if let Some(key) = KEYS.iter().find(|key| key.was == Some(name_str)) {
                raw.set(key, RawValue::Toml(value), here.clone(), false)?;
                raw.warnings.push(ConfigWarning::Renamed {
                    origin: here,
                    old: name_str.to_owned(),
                    key,
                });
            } else if value.is_table() {
                return Err(ConfigError::UnknownSection {
                    origin: here,
                    section: name_str.to_owned(),
                });
            } else if is_section {
                return Err(ConfigError::Invalid {
                    origin: here,
                    key: SECTIONS
                        .iter()
                        .map(|(section, _)| *section)
                        .find(|section| *section == name_str)
                        .unwrap_or_default(),
                    reason: format!("must be a section ([{name_str}])"),
                });
            } else {
                return Err(ConfigError::UnknownKey {
                    origin: here,
                    key: name_str.to_owned(),
                    section: None,
                });
            }
        }
        Ok(raw)
    }

    /// Reads a config file.
    ///
    /// # Errors
    /// [`ConfigError::Read`], or those of [`RawConfig::from_toml`].
    pub fn from_file(path: &std::path::Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        RawConfig::from_toml(&text, &path.display().to_string())
    }

    /// Reads the `EPHEMERA_<SECTION>_<KEY>` variables from `vars` (pass `std::env::vars()`).
    /// A flat name from before sections (`EPHEMERA_MDNS`) still works, with a warning; other
    /// `EPHEMERA_*` variables give a warning and are ignored, except `EPHEMERA_CONFIG` (the
    /// file). Values are text: lists may be comma-separated.
    ///
    /// # Errors
    /// [`ConfigError::Duplicate`] when a key is set under both its old and its new name.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<RawConfig, ConfigError> {
        let mut raw = RawConfig::default();
        for (name, value) in vars {
            if !name.starts_with(ENV_PREFIX) || name == CONFIG_FILE_ENV {
                continue;
            }
            let origin = Origin::Env(name.clone());
            if let Some(key) = KEYS.iter().find(|key| key.env() == name) {
                raw.set(key, RawValue::Text(value), origin, false)?;
            } else if let Some(key) = KEYS
                .iter()
                .find(|key| key.old_env().as_deref() == Some(name.as_str()))
            {
                raw.set(key, RawValue::Text(value), origin.clone(), false)?;
                raw.warnings.push(ConfigWarning::Renamed {
                    origin,
                    old: name,
                    key,
                });
            } else {
                raw.warnings.push(ConfigWarning::UnknownEnv(name));
            }
        }
        Ok(raw)
    }

    /// Reads the command line: `--set section.key=value` items (`set`), then the named
    /// flags (`flags`), which win. A flat `--set` key from before sections still works, with
    /// a warning.
    ///
    /// # Errors
    /// [`ConfigError::UnknownKey`] for a `--set` key that does not exist, or
    /// [`ConfigError::NotKeyValue`] for an item without `=`.
    pub fn from_flags(set: &[String], flags: &ConfigFlags) -> Result<RawConfig, ConfigError> {
        let mut raw = RawConfig::default();
        for item in set {
            let Some((path, value)) = item.split_once('=') else {
                return Err(ConfigError::NotKeyValue);
            };
            let (path, value) = (path.trim(), value.trim());
            let origin = Origin::Flag(format!("--set {path}"));
            if let Some(key) = Key::find(path) {
                raw.set(key, RawValue::Text(value.to_owned()), origin, true)?;
            } else if let Some(key) = KEYS.iter().find(|key| key.was == Some(path)) {
                raw.set(key, RawValue::Text(value.to_owned()), origin.clone(), true)?;
                raw.warnings.push(ConfigWarning::Renamed {
                    origin,
                    old: path.to_owned(),
                    key,
                });
            } else {
                return Err(ConfigError::UnknownKey {
                    origin,
                    key: path.to_owned(),
                    section: None,
                });
            }
        }
        for (key, value) in &flags.values {
            let flag = key.flag.unwrap_or(key.name);
            let origin = Origin::Flag(format!("--{flag}"));
            raw.set(key, RawValue::Text(value.clone()), origin, true)?;
        }
        Ok(raw)
    }
}

impl TryFrom<RawConfig> for NodeConfig {
    type Error = ConfigError;

    /// Reads every value as its key's type and checks it, then the rules that span keys.
    fn try_from(raw: RawConfig) -> Result<NodeConfig, ConfigError> {
        let origin_of = |path: &str| {
            raw.settings
                .get(path)
                .map_or(Origin::Default, |s| s.origin.clone())
        };
        let min_origin = origin_of("publication.batch_min_entries");
        let config = NodeConfig::from_raw(raw)?;
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
            batch_period_seconds: p.batch_period_seconds,
            batch_min_entries: p.batch_min_entries,
            batch_max_entries: p.batch_max_entries,
            export_region: p.export_region.clone(),
            export_key_id: p.export_key_id.clone(),
            export_key_version: p.export_key_version.clone(),
        }
    }
}

/// The named `serve` flags, one per key declared with a `flag` (`--data-dir`, `--listen`,
/// `--batch-period-seconds`, `--retention-days`). `Debug` shows which are given, not their
/// values.
#[derive(Clone, Default)]
pub struct ConfigFlags {
    values: Vec<(&'static Key, String)>,
}

impl ConfigFlags {
    /// Flags as if given on the command line: `(key path, value)` pairs.
    ///
    /// # Panics
    /// When a path is not a key with a flag (a bug in the caller).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ConfigFlags {
        let values = pairs
            .into_iter()
            .map(|(path, value)| {
                let key = Key::find(path)
                    .filter(|key| key.flag.is_some())
                    .unwrap_or_else(|| panic!("{path} has no flag"));
                (key, value.to_owned())
            })
            .collect();
        ConfigFlags { values }
    }
}

impl fmt::Debug for ConfigFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.values.iter().map(|(key, _)| key.path))
            .finish()
    }
}

impl clap::FromArgMatches for ConfigFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = ConfigFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for key in KEYS {
            if let Some(flag) = key.flag
                && let Some(value) = matches.get_one::<String>(flag)
            {
                self.values.retain(|(k, _)| k.path != key.path);
                self.values.push((key, value.clone()));
            }
        }
        Ok(())
    }
}

impl clap::Args for ConfigFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        KEYS.iter().fold(cmd, |cmd, key| match key.flag {
            Some(flag) => cmd.arg(clap::Arg::new(flag).long(flag).value_name("VALUE").help(
                format!("{} (config key {key}, env {})", key.summary(), key.env()),
            )),
            None => cmd,
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The documented default file, as `ephemera-node config defaults` prints and
/// `ephemera-node init` writes it: every key with its doc, variable, flag, range and
/// default, commented out. It parses back to the defaults.
pub fn documented_defaults() -> String {
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
        out.push_str(&format!("# {} = {}\n", key.name, key.default_value()));
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

#[cfg(test)]
mod tests;
