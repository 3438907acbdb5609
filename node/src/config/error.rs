//! Where a config value came from, what can be wrong with it, and what only deserves a
//! warning.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use super::Key;

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
