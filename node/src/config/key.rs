//! One config key as the table in `config.rs` declares it, and the `config_keys!` macro that
//! turns that table into the section structs, their defaults, [`KEYS`](super::KEYS) and the
//! conversion from a [`RawConfig`](super::RawConfig).

use std::fmt;

use super::{ENV_PREFIX, KEYS};

/// One config key, as declared in the table of `config.rs`.
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
    pub(super) default: fn() -> toml::Value,
    pub(super) range: Option<fn() -> String>,
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

    pub(super) fn display_path(path: &str) -> String {
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

/// Turns the key table into `NodeConfig`, the section structs and their `Default`, `KEYS`,
/// `SECTIONS` and `NodeConfig::from_raw`. Each key reads
/// `/// doc` `name: Type = default [, range(min, max)] [, check = fn] [, flag = "name"]
/// [, was = "flat_name"];`.
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
            /// Every key's path and the text its value is told apart by (the value as
            /// written; for a secret, a one-way fingerprint of it), in the order of the
            /// documented default file.
            pub fn settings(&self) -> Vec<(&'static str, String)> {
                vec![
                    $( (stringify!($tkey), self.$tkey.digest_text()), )*
                    $( $( (concat!(stringify!($section), ".", stringify!($key)),
                        self.$section.$key.digest_text()), )* )*
                ]
            }

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
pub(super) use config_keys;
