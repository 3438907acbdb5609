//! The three sources of configuration (a file, the environment, the command line), each
//! read into a [`RawConfig`] that says where every value came from.

use std::collections::BTreeMap;
use std::fmt;

use super::value::ConfigValue;
use super::{
    CONFIG_FILE_ENV, ConfigError, ConfigFlags, ConfigWarning, ENV_PREFIX, KEYS, Key, Origin,
    SECTIONS,
};

/// A value as a source gave it, before it is read as its key's type.
#[derive(Clone)]
pub(super) enum RawValue {
    /// From a TOML file.
    Toml(toml::Value),
    /// From the environment or a flag.
    Text(String),
}

impl RawValue {
    pub(super) fn read<T: ConfigValue>(self) -> Result<T, String> {
        match self {
            RawValue::Toml(value) => T::from_toml(value),
            RawValue::Text(text) => T::from_text(&text),
        }
    }
}

#[derive(Clone)]
pub(super) struct Setting {
    pub(super) value: RawValue,
    pub(super) origin: Origin,
}

/// Configuration as read from one or more sources: the keys they set, where, and the
/// warnings they gave. `Debug` shows keys and origins, never values.
#[derive(Clone, Default)]
pub struct RawConfig {
    pub(super) settings: BTreeMap<&'static str, Setting>,
    warnings: Vec<ConfigWarning>,
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.settings.iter().map(|(key, s)| (key, &s.origin)))
            .finish()
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
    /// [`NodeConfig::try_from`](super::NodeConfig::try_from).
    pub fn from_toml(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        };
        // Plain values to read, and spans for the line of each key.
        let values: toml::Table = toml::from_str(text).map_err(syntax)?;
        let spanned = toml::de::DeTable::parse(text).map_err(syntax)?;
        let at = |section: Option<&str>, key: &str| {
            let top = spanned.get_ref();
            let table = match section {
                None => Some(top),
                Some(section) => top.get(section).and_then(|t| t.get_ref().as_table()),
            };
            let start = table
                .and_then(|table| table.get_key_value(key))
                .map_or(0, |(key, _)| key.span().start);
            Origin::File {
                path: origin.to_owned(),
                line: text[..start.min(text.len())].matches('\n').count() + 1,
            }
        };
        let mut raw = RawConfig::default();
        for (name, value) in values {
            let section = SECTIONS.iter().map(|(s, _)| *s).find(|s| *s == name);
            match (section, value) {
                (Some(section), toml::Value::Table(table)) => {
                    for (key_name, value) in table {
                        let here = at(Some(section), &key_name);
                        let Some(key) = Key::find(&format!("{section}.{key_name}")) else {
                            return Err(ConfigError::UnknownKey {
                                origin: here,
                                key: key_name,
                                section: Some(section.to_owned()),
                            });
                        };
                        raw.set(key, RawValue::Toml(value), here, false)?;
                    }
                }
                (_, value) => {
                    let here = at(None, &name);
                    let top = KEYS.iter().find(|k| k.section.is_empty() && k.name == name);
                    if let Some(key) = top {
                        raw.set(key, RawValue::Toml(value), here, false)?;
                    } else if let Some(key) = KEYS.iter().find(|k| k.was == Some(&name)) {
                        // A flat key from before sections (`federation = true` included).
                        raw.set(key, RawValue::Toml(value), here.clone(), false)?;
                        raw.warnings.push(ConfigWarning::Renamed {
                            origin: here,
                            old: name,
                            key,
                        });
                    } else if let Some(section) = section {
                        return Err(ConfigError::Invalid {
                            origin: here,
                            key: section,
                            reason: format!("must be a section, [{section}]"),
                        });
                    } else if value.is_table() {
                        return Err(ConfigError::UnknownSection {
                            origin: here,
                            section: name,
                        });
                    } else {
                        return Err(ConfigError::UnknownKey {
                            origin: here,
                            key: name,
                            section: None,
                        });
                    }
                }
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
