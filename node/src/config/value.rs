//! How each type of config value is read from TOML or from text (the environment, flags)
//! and written back (the documented default file).

use std::net::SocketAddr;
use std::path::PathBuf;

use ephemera_node_core::publication::PublicationKey;
use ephemera_proto::SchemeKind;
use ephemera_proto::rollover::{KeyRole, KeyRollover};
use ephemera_proto::signing::Ed25519PublicKey;

use super::{DatabaseUrl, LogFormat, MetricsToken, StoreBackend, StoreRole};

/// How a type is read from TOML or from text (the environment, flags) and written back.
pub(super) trait ConfigValue: Sized {
    const LIST: bool = false;
    const SECRET: bool = false;
    fn from_toml(value: toml::Value) -> Result<Self, String>;
    fn from_text(text: &str) -> Result<Self, String>;
    fn to_toml(&self) -> toml::Value;
    /// What the audit trail's settings digest is taken over ([`super::NodeConfig::settings`]):
    /// the value as written, or for a secret a one-way fingerprint of it (the written form
    /// of a secret is empty, which would hide a change).
    fn digest_text(&self) -> String {
        self.to_toml().to_string()
    }
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

/// Types written as a TOML string: `parse` reads the text, `show` writes it, and a secret's
/// `fingerprint` stands for it in the settings digest.
macro_rules! string_value {
    ($t:ty, secret = $secret:expr, parse = $parse:expr, show = $show:expr) => {
        string_value!(
            $t,
            secret = $secret,
            parse = $parse,
            show = $show,
            fingerprint = |value: &$t| ConfigValue::to_toml(value).to_string()
        );
    };
    ($t:ty, secret = $secret:expr, parse = $parse:expr, show = $show:expr,
        fingerprint = $fingerprint:expr) => {
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
            fn digest_text(&self) -> String {
                ($fingerprint)(self)
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
    StoreBackend,
    secret = false,
    parse = |s: &str| match s {
        "sled" => Ok(StoreBackend::Sled),
        "postgres" => Ok(StoreBackend::Postgres),
        other => Err(format!("`{other}` is not sled or postgres")),
    },
    show = |v: &StoreBackend| match v {
        StoreBackend::Sled => "sled".to_owned(),
        StoreBackend::Postgres => "postgres".to_owned(),
    }
);
string_value!(
    StoreRole,
    secret = false,
    parse = |s: &str| StoreRole::parse(s)
        .ok_or_else(|| format!("`{s}` is not all, intake, publisher or console")),
    show = |v: &StoreRole| v.name().to_owned()
);
string_value!(
    DatabaseUrl,
    secret = true,
    parse = |s: &str| DatabaseUrl::parse(s),
    show = |_: &DatabaseUrl| String::new(),
    fingerprint = |url: &DatabaseUrl| {
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            url.0.as_bytes(),
        ))
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
    KeyRollover,
    secret = false,
    parse = |s: &str| {
        let rollover = hex::decode(s.trim())
            .ok()
            .and_then(|bytes| KeyRollover::from_bytes(&bytes).ok())
            .ok_or_else(|| format!("`{s}` is not the hex of a key rollover"))?;
        rollover
            .verify()
            .map_err(|e| format!("key rollover {rollover}: {e}"))?;
        if rollover.role != KeyRole::Authority {
            return Err(format!("{rollover} is not an authority-key rollover"));
        }
        Ok(rollover)
    },
    show = |v: &KeyRollover| hex::encode(v.to_bytes())
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
    PublicationKey,
    secret = true,
    parse = |s: &str| PublicationKey::from_hex(s).map_err(|e| e.to_string()),
    show = |_: &PublicationKey| String::new(),
    fingerprint = |key: &PublicationKey| hex::encode(key.fingerprint())
);
string_value!(
    MetricsToken,
    secret = true,
    parse = |s: &str| MetricsToken::new(s).checked(),
    show = |_: &MetricsToken| String::new(),
    fingerprint = |token: &MetricsToken| {
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            token.0.as_bytes(),
        ))
    }
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
    fn digest_text(&self) -> String {
        let items: Vec<String> = self.iter().map(T::digest_text).collect();
        format!("[{}]", items.join(", "))
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
    fn digest_text(&self) -> String {
        match self {
            Some(value) => format!("some {}", value.digest_text()),
            None => "none".to_owned(),
        }
    }
}
