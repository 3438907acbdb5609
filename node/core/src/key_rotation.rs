//! Key rotation with overlap, on the keys folder of a stopped node.
//!
//! A rotation has two steps, each a command the operator runs while the node is stopped
//! (`ephemera-node keys rotate <key>` and `... --finish`):
//!
//! 1. **Begin**: the next key is made and kept beside the current one. For the batch and
//!    authority keys a [`KeyRollover`] signed by the current key and the next is written to
//!    `rollovers/`; the node publishes batch rollovers in every batch index page, so phones
//!    that pinned the current key add the next one. For the export key, every GAEN export
//!    file is signed by both keys. Batches and certificates keep the current key: the one
//!    everybody trusts.
//! 2. **Finish** (the switch): the current key is copied to `retired/`, the next one takes
//!    its place. Rollovers stay published for good, so a phone that was offline for the
//!    whole overlap, or a fresh install of an app that pins an old key, still follows.
//!
//! Each step is a sequence of atomic renames; a crash between two of them is completed by
//! running the same step again (the node refuses to start on a half-finished switch).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use ephemera_proto::UnixTime;
use ephemera_proto::auth::AuthoritySigningKey;
use ephemera_proto::batch::NodeSigningKey;
use ephemera_proto::rollover::{KeyRole, KeyRollover};
use ephemera_proto::signing::Ed25519PublicKey;
use rand_core::CryptoRng;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use zeroize::Zeroizing;

use crate::keys::{
    AUTHORITY_FILE, BATCH_FILE, EXPORT_FILE, ExportSigningKey, KEYS_DIR, KeyError, NextKeys,
    NodeKeys, create_private_dir, read_or_create,
};

const BATCH_NEXT_FILE: &str = "batch.next.seed";
const AUTHORITY_NEXT_FILE: &str = "authority.next.seed";
const EXPORT_NEXT_FILE: &str = "gaen-export.next.pk8";
const EXPORT_NEXT_VERSION_FILE: &str = "gaen-export.next.version";
const EXPORT_VERSION_FILE: &str = "gaen-export.version";
/// Sub-folder of `keys/` with every rollover announced, one frame per file.
pub const ROLLOVERS_DIR: &str = "rollovers";
/// Sub-folder of `keys/` with the keys a switch replaced.
pub const RETIRED_DIR: &str = "retired";

/// A key that can be rotated.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RotatedKey {
    /// The batch-signing key (Ed25519), which phones pin.
    Batch,
    /// The authority's certificate key (Ed25519), which peers trust.
    Authority,
    /// The GAEN export key (ECDSA P-256), which GAEN apps are configured with.
    Export,
}

impl RotatedKey {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RotatedKey::Batch => "batch",
            RotatedKey::Authority => "authority",
            RotatedKey::Export => "export",
        }
    }

    fn files(self) -> (&'static str, &'static str) {
        match self {
            RotatedKey::Batch => (BATCH_FILE, BATCH_NEXT_FILE),
            RotatedKey::Authority => (AUTHORITY_FILE, AUTHORITY_NEXT_FILE),
            RotatedKey::Export => (EXPORT_FILE, EXPORT_NEXT_FILE),
        }
    }

    fn role(self) -> Option<KeyRole> {
        match self {
            RotatedKey::Batch => Some(KeyRole::Batch),
            RotatedKey::Authority => Some(KeyRole::Authority),
            RotatedKey::Export => None,
        }
    }
}

/// What a rotation step did, for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationStep {
    /// Which key.
    pub key: RotatedKey,
    /// The id of the key in use before the step.
    pub current: String,
    /// The id of the next key (after `finish`: the key now in use).
    pub next: String,
}

/// Where one key stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    /// Which key.
    pub key: RotatedKey,
    /// Its id (Ed25519 key id, or the export key's fingerprint).
    pub current: String,
    /// The public key (hex, or PEM for the export key).
    pub public: String,
    /// The next key's id and public key during a rotation's overlap.
    pub next: Option<(String, String)>,
    /// The GAEN key version (export key only): current, and next during an overlap.
    pub version: Option<(String, Option<String>)>,
}

/// Every rotatable key's state, the rollovers announced and the retired keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysStatus {
    /// One entry per key.
    pub keys: Vec<KeyState>,
    /// The rollovers announced, oldest first.
    pub rollovers: Vec<KeyRollover>,
    /// Files in `retired/`.
    pub retired: Vec<String>,
}

impl fmt::Display for KeysStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for key in &self.keys {
            let phase = if key.next.is_some() {
                "overlap"
            } else {
                "in use"
            };
            write!(f, "{:<9} {} ({phase})", key.key.name(), key.current)?;
            if let Some((version, _)) = &key.version {
                write!(f, " version {version}")?;
            }
            writeln!(f)?;
            if let Some((id, public)) = &key.next {
                write!(f, "  next    {id}")?;
                if let Some((_, Some(version))) = &key.version {
                    write!(f, " version {version}")?;
                }
                writeln!(f)?;
                for line in public.lines() {
                    writeln!(f, "          {line}")?;
                }
            }
        }
        for rollover in &self.rollovers {
            writeln!(
                f,
                "rollover  {rollover} announced {} {}",
                rollover.announced_at.0,
                hex::encode(rollover.to_bytes())
            )?;
        }
        for file in &self.retired {
            writeln!(f, "retired   {file}")?;
        }
        Ok(())
    }
}

/// What the keys folder holds besides the current keys.
pub(crate) struct RotationState {
    pub(crate) next: NextKeys,
    pub(crate) rollovers: Vec<KeyRollover>,
    pub(crate) export_version: Option<String>,
}

/// Reads the rotation files of `dir` (the keys folder).
pub(crate) fn load_rotation_state(dir: &Path) -> Result<RotationState, KeyError> {
    let export_next = read_optional(&dir.join(EXPORT_NEXT_FILE))?;
    let export_next_version = read_version(&dir.join(EXPORT_NEXT_VERSION_FILE))?;
    let export = match (export_next, export_next_version) {
        (Some(pkcs8), Some(version)) => Some((
            ExportSigningKey::from_pkcs8(&pkcs8).ok_or_else(|| KeyError::Corrupt {
                path: dir.join(EXPORT_NEXT_FILE),
            })?,
            version,
        )),
        (None, None) => None,
        (Some(_), None) => {
            return Err(interrupted(
                "the export key rotation lacks its version file",
                RotatedKey::Export,
                false,
            ));
        }
        (None, Some(_)) => {
            return Err(interrupted(
                "the export key switch is half done",
                RotatedKey::Export,
                true,
            ));
        }
    };
    Ok(RotationState {
        next: NextKeys {
            batch: read_seed(&dir.join(BATCH_NEXT_FILE))?.map(|s| NodeSigningKey::from_seed(&s)),
            authority: read_seed(&dir.join(AUTHORITY_NEXT_FILE))?
                .map(|s| AuthoritySigningKey::from_seed(&s)),
            export,
        },
        rollovers: read_rollovers(&dir.join(ROLLOVERS_DIR))?,
        export_version: read_version(&dir.join(EXPORT_VERSION_FILE))?,
    })
}

/// Begins a rotation of `key` in the data folder `data_dir` (the node stopped): makes the
/// next key and, for the batch and authority keys, the rollover announcing it, dated `now`.
/// `version` names the next export key for GAEN (default: the current version with its
/// number raised by one; `policy_version` is the current one unless a rotation set it).
///
/// Running it again after a crash completes a half-written begin.
///
/// # Errors
/// [`KeyError::RotationUnderWay`]; [`KeyError::BadVersion`]; file errors.
pub fn begin(
    data_dir: &Path,
    key: RotatedKey,
    now: UnixTime,
    version: Option<&str>,
    policy_version: &str,
    rng: &mut impl CryptoRng,
) -> Result<RotationStep, KeyError> {
    let dir = data_dir.join(KEYS_DIR);
    let (_, next_file) = key.files();
    let mut created = false;
    // A crash after the next export key and before its version: write the version now.
    let completing = key == RotatedKey::Export
        && dir.join(EXPORT_NEXT_FILE).exists()
        && !dir.join(EXPORT_NEXT_VERSION_FILE).exists();
    if completing {
        let current = read_version(&dir.join(EXPORT_VERSION_FILE))?
            .unwrap_or_else(|| policy_version.to_owned());
        let version = next_version(version, &current)?;
        write_file(
            &dir.join(EXPORT_NEXT_VERSION_FILE),
            version.as_bytes(),
            &mut created,
        )?;
        sync_dir(&dir)?;
    }
    let keys = NodeKeys::load(data_dir)?;
    let step = match key {
        RotatedKey::Export => {
            if let Some((next, version)) = &keys.next.export {
                if completing {
                    return Ok(RotationStep {
                        key,
                        current: fingerprint(&keys.export),
                        next: fingerprint(next),
                    });
                }
                return Err(KeyError::RotationUnderWay {
                    key: key.name(),
                    next: format!("{} version {version}", fingerprint(next)),
                });
            }
            let current_version = keys.export_version.as_deref().unwrap_or(policy_version);
            let version = next_version(version, current_version)?;
            let make = || {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    &SystemRandom::new(),
                )
                .expect("system random number generator");
                Zeroizing::new(doc.as_ref().to_vec())
            };
            let pkcs8 = read_or_create(
                &dir.join(next_file),
                EXPORT_NEXT_FILE,
                &mut created,
                Some(make),
            )?;
            let next = ExportSigningKey::from_pkcs8(&pkcs8).ok_or_else(|| KeyError::Corrupt {
                path: dir.join(next_file),
            })?;
            // The key first, then its version: a crash between the two is completed above.
            sync_dir(&dir)?;
            write_file(
                &dir.join(EXPORT_NEXT_VERSION_FILE),
                version.as_bytes(),
                &mut created,
            )?;
            RotationStep {
                key,
                current: fingerprint(&keys.export),
                next: fingerprint(&next),
            }
        }
        RotatedKey::Batch | RotatedKey::Authority => {
            let role = key.role().expect("an Ed25519 key has a role");
            let current = match key {
                RotatedKey::Batch => keys.batch.ed25519(),
                _ => keys.authority.ed25519(),
            };
            let under_way = match key {
                RotatedKey::Batch => keys.next.batch.as_ref().map(|k| k.public_key()),
                _ => keys.next.authority.as_ref().map(|k| k.public_key()),
            };
            if let Some(next) = under_way
                && announced(&keys.rollovers, role, &current.public_key(), &next)
            {
                return Err(KeyError::RotationUnderWay {
                    key: key.name(),
                    next: next.key_id().to_string(),
                });
            }
            let mut new_seed = || {
                let mut seed = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(seed.as_mut());
                Zeroizing::new(hex::encode(seed.as_ref()).into_bytes())
            };
            let text = read_or_create(
                &dir.join(next_file),
                "next key",
                &mut created,
                Some(&mut new_seed),
            )?;
            let seed = parse_seed(&text, &dir.join(next_file))?;
            let next = ephemera_proto::signing::Ed25519SigningKey::from_seed(&seed);
            let rollover = KeyRollover::announce(role, current, &next, now);
            let rollovers = dir.join(ROLLOVERS_DIR);
            create_private_dir(&rollovers)?;
            let (old_id, new_id) = rollover.key_ids();
            write_file(
                &rollovers.join(format!("{}-{old_id}-{new_id}.frame", role.name())),
                &rollover.to_bytes(),
                &mut created,
            )?;
            RotationStep {
                key,
                current: old_id.to_string(),
                next: new_id.to_string(),
            }
        }
    };
    sync_dir(&dir)?;
    Ok(step)
}

/// Finishes the rotation of `key` (the switch): the current key goes to `retired/`, the
/// next one takes its place. Running it again after a crash completes it.
///
/// # Errors
/// [`KeyError::NoRotation`]; [`KeyError::Interrupted`] when the begin step is half done;
/// file errors.
pub fn finish(data_dir: &Path, key: RotatedKey) -> Result<RotationStep, KeyError> {
    let dir = data_dir.join(KEYS_DIR);
    if key == RotatedKey::Export
        && !dir.join(EXPORT_NEXT_FILE).exists()
        && dir.join(EXPORT_NEXT_VERSION_FILE).exists()
    {
        // A crash after the key moved: only the version is left to move.
        rename(
            &dir.join(EXPORT_NEXT_VERSION_FILE),
            &dir.join(EXPORT_VERSION_FILE),
        )?;
        sync_dir(&dir)?;
    }
    let keys = NodeKeys::load(data_dir)?;
    let (current_file, next_file) = key.files();
    let (current, next) = match key {
        RotatedKey::Export => {
            let Some((next, _)) = &keys.next.export else {
                return Err(KeyError::NoRotation { key: key.name() });
            };
            (fingerprint(&keys.export), fingerprint(next))
        }
        RotatedKey::Batch | RotatedKey::Authority => {
            let role = key.role().expect("an Ed25519 key has a role");
            let (current, next) = match key {
                RotatedKey::Batch => (
                    keys.batch.public_key(),
                    keys.next.batch.as_ref().map(|k| k.public_key()),
                ),
                _ => (
                    keys.authority.public_key(),
                    keys.next.authority.as_ref().map(|k| k.public_key()),
                ),
            };
            let Some(next) = next else {
                return Err(KeyError::NoRotation { key: key.name() });
            };
            if !announced(&keys.rollovers, role, &current, &next) {
                return Err(interrupted(
                    "the next key was made but its rollover was not written",
                    key,
                    false,
                ));
            }
            (current.key_id().to_string(), next.key_id().to_string())
        }
    };
    let retired = dir.join(RETIRED_DIR);
    create_private_dir(&retired)?;
    let bytes =
        Zeroizing::new(
            fs::read(dir.join(current_file)).map_err(|source| KeyError::Io {
                path: dir.join(current_file),
                source,
            })?,
        );
    let mut created = false;
    write_file(
        &retired.join(format!("{current_file}.{current}")),
        &bytes,
        &mut created,
    )?;
    sync_dir(&retired)?;
    rename(&dir.join(next_file), &dir.join(current_file))?;
    if key == RotatedKey::Export {
        sync_dir(&dir)?;
        rename(
            &dir.join(EXPORT_NEXT_VERSION_FILE),
            &dir.join(EXPORT_VERSION_FILE),
        )?;
    }
    sync_dir(&dir)?;
    Ok(RotationStep { key, current, next })
}

/// The state of every rotatable key of `data_dir`; `policy_version` is the configured GAEN
/// key version.
///
/// # Errors
/// As [`NodeKeys::load`].
pub fn status(data_dir: &Path, policy_version: &str) -> Result<KeysStatus, KeyError> {
    let keys = NodeKeys::load(data_dir)?;
    let ed =
        |key: RotatedKey, current: Ed25519PublicKey, next: Option<Ed25519PublicKey>| KeyState {
            key,
            current: current.key_id().to_string(),
            public: current.to_hex(),
            next: next.map(|n| (n.key_id().to_string(), n.to_hex())),
            version: None,
        };
    let retired_dir = data_dir.join(KEYS_DIR).join(RETIRED_DIR);
    let mut retired = Vec::new();
    if retired_dir.exists() {
        for entry in fs::read_dir(&retired_dir).map_err(|source| KeyError::Io {
            path: retired_dir.clone(),
            source,
        })? {
            let entry = entry.map_err(|source| KeyError::Io {
                path: retired_dir.clone(),
                source,
            })?;
            retired.push(entry.file_name().to_string_lossy().into_owned());
        }
        retired.sort();
    }
    Ok(KeysStatus {
        keys: vec![
            ed(
                RotatedKey::Batch,
                keys.batch.public_key(),
                keys.next.batch.as_ref().map(|k| k.public_key()),
            ),
            ed(
                RotatedKey::Authority,
                keys.authority.public_key(),
                keys.next.authority.as_ref().map(|k| k.public_key()),
            ),
            KeyState {
                key: RotatedKey::Export,
                current: fingerprint(&keys.export),
                public: keys.export.public_key_pem(),
                next: keys
                    .next
                    .export
                    .as_ref()
                    .map(|(k, _)| (fingerprint(k), k.public_key_pem())),
                version: Some((
                    keys.export_version
                        .clone()
                        .unwrap_or_else(|| policy_version.to_owned()),
                    keys.next.export.as_ref().map(|(_, v)| v.clone()),
                )),
            },
        ],
        rollovers: keys.rollovers,
        retired,
    })
}

/// The export key's fingerprint: the first 8 bytes of SHA-256 of its public point, in hex.
pub fn fingerprint(key: &ExportSigningKey) -> String {
    hex::encode(&ring::digest::digest(&ring::digest::SHA256, key.public_point()).as_ref()[..8])
}

fn announced(
    rollovers: &[KeyRollover],
    role: KeyRole,
    old: &Ed25519PublicKey,
    new: &Ed25519PublicKey,
) -> bool {
    rollovers
        .iter()
        .any(|r| r.role == role && r.old == *old && r.new == *new)
}

fn interrupted(what: &str, key: RotatedKey, finishing: bool) -> KeyError {
    KeyError::Interrupted {
        what: what.to_owned(),
        command: format!(
            "ephemera-node keys rotate {}{}",
            key.name(),
            if finishing { " --finish" } else { "" }
        ),
    }
}

/// The next export key's version: `given`, else `current` counted up; checked.
fn next_version(given: Option<&str>, current: &str) -> Result<String, KeyError> {
    let version = match given {
        Some(v) => v.to_owned(),
        None => bumped(current)?,
    };
    check_version(&version, current)?;
    Ok(version)
}

/// `v1` -> `v2`; a version with no trailing number gets `2`.
fn bumped(version: &str) -> Result<String, KeyError> {
    let stem = version.trim_end_matches(|c: char| c.is_ascii_digit());
    let number: u64 = version[stem.len()..].parse().unwrap_or(1);
    let next = number.checked_add(1).ok_or_else(|| KeyError::BadVersion {
        version: version.to_owned(),
        reason: "its number cannot be raised",
    })?;
    Ok(format!("{stem}{next}"))
}

fn check_version(version: &str, current: &str) -> Result<(), KeyError> {
    let bad = |reason| KeyError::BadVersion {
        version: version.to_owned(),
        reason,
    };
    if version.is_empty()
        || version.len() > 32
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(bad("1 to 32 letters, digits or _, as GAEN wants"));
    }
    if version == current {
        return Err(bad("it is the current key's version"));
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn parse_seed(text: &[u8], path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    let trimmed = std::str::from_utf8(text).map(str::trim).unwrap_or("");
    hex::decode_to_slice(trimmed, seed.as_mut()).map_err(|_| KeyError::Corrupt {
        path: path.to_owned(),
    })?;
    Ok(seed)
}

fn read_seed(path: &Path) -> Result<Option<Zeroizing<[u8; 32]>>, KeyError> {
    read_optional(path)?
        .map(|text| parse_seed(&text, path))
        .transpose()
}

fn read_version(path: &Path) -> Result<Option<String>, KeyError> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&bytes)
        .map(|t| t.trim().to_owned())
        .map_err(|_| KeyError::Corrupt {
            path: path.to_owned(),
        })?;
    if text.is_empty() {
        return Err(KeyError::Corrupt {
            path: path.to_owned(),
        });
    }
    Ok(Some(text))
}

/// Every rollover frame in `dir`, each verified, oldest first.
fn read_rollovers(dir: &Path) -> Result<Vec<KeyRollover>, KeyError> {
    let io = |source| KeyError::Io {
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut rollovers = Vec::new();
    for entry in entries {
        let path = entry.map_err(io)?.path();
        if path.extension().is_none_or(|e| e != "frame") {
            continue;
        }
        let bytes = fs::read(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let rollover = KeyRollover::from_bytes(&bytes)
            .ok()
            .filter(|r| r.verify().is_ok())
            .ok_or(KeyError::Corrupt { path })?;
        rollovers.push(rollover);
    }
    rollovers.sort_by_key(|r| (r.announced_at, r.key_ids()));
    Ok(rollovers)
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename), mode 0600.
fn write_file(path: &Path, bytes: &[u8], created: &mut bool) -> Result<(), KeyError> {
    let _ = fs::remove_file(path.with_extension("tmp"));
    if path.exists() {
        fs::remove_file(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
    }
    let name: &'static str = "rotation file";
    read_or_create(path, name, created, Some(|| Zeroizing::new(bytes.to_vec()))).map(drop)
}

fn rename(from: &Path, to: &Path) -> Result<(), KeyError> {
    fs::rename(from, to).map_err(|source| KeyError::Io {
        path: PathBuf::from(from),
        source,
    })
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| KeyError::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests;
