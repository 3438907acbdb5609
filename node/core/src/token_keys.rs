//! The authority's blind-token keys (`docs/PROTOCOL.md` §4.4): one RSA key per epoch (UTC
//! day) and report class, made ahead of their day, published signed, kept for the
//! retention period so relayed uploads still verify.
//!
//! Generation is slow (an RSA-2048 key takes tens to hundreds of milliseconds, ten a day),
//! so it never runs on a request's path: the driver calls [`TokenKeyring::missing`] and
//! [`TokenKeyring::generate_epoch`] on a blocking thread ahead of the day, stores the
//! epoch with [`save_epoch`] and installs it with
//! [`NodeCore::install_token_epoch`](crate::NodeCore::install_token_epoch).
//!
//! Where epochs persist is an [`EpochShelf`]:
//!
//! - [`EpochFolder`] (a node of its own, on sled): files `keys/tokens/<epoch>.keys`, mode
//!   0600, postcard of `[(class, PKCS#8 DER)]`, written once (temporary name, sync, rename)
//!   and removed by [`forget_epochs_before`];
//! - [`shared::StoreEpochs`] (a group of nodes on PostgreSQL): rows of the store's
//!   `token_keys` table, the same postcard sealed under a key derived from the code pepper
//!   that every node of the group holds, made once per epoch by whichever node gets there
//!   first, so the whole group signs and verifies with one key per class and day.
//!
//! A past epoch's private keys stay stored until forgotten (residual: only the public
//! halves are needed once the day is over).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ephemera_proto::auth::AuthoritySigningKey;
use ephemera_proto::token::{
    Audience, SignedTokenKeySet, TokenClass, TokenError, TokenKeys, TokenSigningKey,
};
use ephemera_proto::{DayNumber, UnixTime};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::keys::{KEYS_DIR, KeyError, create_private_dir, read_or_create};
use crate::store::StoreError;

pub mod shared;

/// An epoch's keys could not be stored or read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EpochStoreError {
    /// A key file could not be read or written, or is corrupt.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store could not be asked or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store's keys of an epoch do not open with this node's code pepper, or are
    /// corrupt.
    #[error(
        "the stored blind-token keys of epoch (UTC day) {} do not open with this node's \
         keys/code-pepper: every node of a group needs the same keys/ (copy it from \
         another node of the group)",
        epoch.0
    )]
    Unreadable {
        /// The epoch (UTC day).
        epoch: DayNumber,
    },
}

/// Where a node's token epochs persist (see the module doc).
pub trait EpochShelf: Send + Sync {
    /// Every stored epoch from `oldest` on, oldest first.
    ///
    /// # Errors
    /// [`EpochStoreError`].
    fn load(
        &self,
        oldest: DayNumber,
    ) -> Result<Vec<(DayNumber, Vec<TokenSigningKey>)>, EpochStoreError>;

    /// Stores `keys` as `epoch`'s unless it is stored already (by another writer), and
    /// returns the keys stored: two writers of one epoch end with the same keys.
    ///
    /// # Errors
    /// [`EpochStoreError`].
    fn save(
        &self,
        epoch: DayNumber,
        keys: Vec<TokenSigningKey>,
    ) -> Result<Vec<TokenSigningKey>, EpochStoreError>;

    /// Removes the stored epochs before `oldest`.
    ///
    /// # Errors
    /// [`EpochStoreError`].
    fn forget_before(&self, oldest: DayNumber) -> Result<(), EpochStoreError>;
}

/// Epochs as files of `<data_dir>/keys/tokens/`.
#[derive(Debug)]
pub struct EpochFolder {
    data_dir: PathBuf,
}

impl EpochFolder {
    /// The folder of the node whose data folder is `data_dir`.
    pub fn new(data_dir: &Path) -> EpochFolder {
        EpochFolder {
            data_dir: data_dir.to_owned(),
        }
    }
}

impl EpochShelf for EpochFolder {
    fn load(
        &self,
        oldest: DayNumber,
    ) -> Result<Vec<(DayNumber, Vec<TokenSigningKey>)>, EpochStoreError> {
        Ok(load_epochs(&self.data_dir, oldest)?)
    }

    fn save(
        &self,
        epoch: DayNumber,
        keys: Vec<TokenSigningKey>,
    ) -> Result<Vec<TokenSigningKey>, EpochStoreError> {
        Ok(save_epoch(&self.data_dir, epoch, keys)?)
    }

    fn forget_before(&self, oldest: DayNumber) -> Result<(), EpochStoreError> {
        Ok(forget_epochs_before(&self.data_dir, oldest)?)
    }
}

/// Sub-folder of `keys/` holding the token keys.
pub const TOKEN_KEYS_DIR: &str = "tokens";
/// Extension of an epoch's key file.
const EPOCH_FILE_EXTENSION: &str = "keys";

/// The token keys a node holds: every class's signing key for each epoch it keeps.
#[derive(Debug)]
pub struct TokenKeyring {
    audience: Audience,
    epochs: BTreeMap<DayNumber, Vec<TokenSigningKey>>,
    verifiers: TokenKeys,
}

impl TokenKeyring {
    /// An empty keyring for `audience`.
    pub fn new(audience: Audience) -> TokenKeyring {
        TokenKeyring {
            audience,
            epochs: BTreeMap::new(),
            verifiers: TokenKeys::default(),
        }
    }

    /// The audience (federation) its keys sign for.
    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// The epochs a node should hold at `now` and does not: today's, which verifies sign
    /// with, and tomorrow's, so that midnight never finds a day without keys.
    pub fn missing(&self, now: UnixTime) -> Vec<DayNumber> {
        let today = now.day();
        [today, today.plus(1)]
            .into_iter()
            .filter(|day| !self.epochs.contains_key(day))
            .collect()
    }

    /// Makes every class's key for `epoch`. Slow: call it off any request's path.
    ///
    /// # Errors
    /// [`TokenError::KeyGeneration`].
    pub fn generate_epoch(
        epoch: DayNumber,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<TokenSigningKey>, TokenError> {
        TokenClass::ALL
            .iter()
            .map(|class| TokenSigningKey::generate(rng, epoch, *class))
            .collect()
    }

    /// Adds an epoch's keys (replacing none: an epoch already held keeps its keys, so
    /// every phone of that day sees one key per class).
    ///
    /// # Errors
    /// [`TokenError::DuplicateKey`] if `keys` names one class twice.
    pub fn insert_epoch(
        &mut self,
        epoch: DayNumber,
        keys: Vec<TokenSigningKey>,
    ) -> Result<(), TokenError> {
        if self.epochs.contains_key(&epoch) {
            return Ok(());
        }
        let mut verifiers = self.verifiers.clone();
        for key in &keys {
            verifiers.insert(key.public().parse()?)?;
        }
        self.verifiers = verifiers;
        self.epochs.insert(epoch, keys);
        Ok(())
    }

    /// Forgets the epochs before `oldest` (their tokens can no longer be relayed).
    pub fn forget_before(&mut self, oldest: DayNumber) {
        self.epochs = self.epochs.split_off(&oldest);
        let mut verifiers = TokenKeys::default();
        for key in self.epochs.values().flatten() {
            // Each was parsed and checked once already, when its epoch was inserted.
            if let Ok(parsed) = key.public().parse() {
                let _ = verifiers.insert(parsed);
            }
        }
        self.verifiers = verifiers;
    }

    /// The key that signs `class` on day `epoch`.
    pub fn signer(&self, epoch: DayNumber, class: TokenClass) -> Option<&TokenSigningKey> {
        self.epochs
            .get(&epoch)?
            .iter()
            .find(|key| key.public().class == class)
    }

    /// Every held key's public half, parsed: what uploads are verified with.
    pub fn verifiers(&self) -> &TokenKeys {
        &self.verifiers
    }

    /// The signed set a node publishes at `now`: yesterday's, today's and tomorrow's keys.
    pub fn signed_set(&self, authority: &AuthoritySigningKey, now: UnixTime) -> SignedTokenKeySet {
        let today = now.day();
        let keys = self
            .epochs
            .range(today.minus(1)..=today.plus(1))
            .flat_map(|(_, keys)| keys.iter());
        SignedTokenKeySet::publish(authority, self.audience, now, keys)
    }
}

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(KEYS_DIR).join(TOKEN_KEYS_DIR)
}

fn epoch_path(data_dir: &Path, epoch: DayNumber) -> PathBuf {
    dir(data_dir).join(format!("{}.{EPOCH_FILE_EXTENSION}", epoch.0))
}

/// Stores an epoch's keys (once: an existing file is kept, and its keys returned, so two
/// writers of one epoch end with the same keys).
///
/// # Errors
/// [`KeyError`] when the file cannot be written or read back.
pub fn save_epoch(
    data_dir: &Path,
    epoch: DayNumber,
    keys: Vec<TokenSigningKey>,
) -> Result<Vec<TokenSigningKey>, KeyError> {
    create_private_dir(&dir(data_dir))?;
    let path = epoch_path(data_dir, epoch);
    let corrupt = || KeyError::Corrupt { path: path.clone() };
    let encoded = encode_epoch(&keys).ok_or_else(corrupt)?;
    let bytes = read_or_create(&path, "a token key file", &mut false, Some(|| encoded))?;
    decode_epoch(&bytes, epoch).ok_or_else(corrupt)
}

/// Loads every stored epoch from `oldest` on.
///
/// # Errors
/// [`KeyError`] when the folder or a file cannot be read, or a file is corrupt.
pub fn load_epochs(
    data_dir: &Path,
    oldest: DayNumber,
) -> Result<Vec<(DayNumber, Vec<TokenSigningKey>)>, KeyError> {
    let folder = dir(data_dir);
    let io = |source| KeyError::Io {
        path: folder.clone(),
        source,
    };
    let entries = match fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io)?.path();
        let Some(epoch) = epoch_of(&path) else {
            continue;
        };
        if epoch < oldest {
            continue;
        }
        let bytes = Zeroizing::new(fs::read(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?);
        let keys = decode_epoch(&bytes, epoch).ok_or(KeyError::Corrupt { path })?;
        out.push((epoch, keys));
    }
    out.sort_by_key(|(epoch, _)| *epoch);
    Ok(out)
}

/// Removes the stored epochs before `oldest`.
///
/// # Errors
/// [`KeyError::Io`].
pub fn forget_epochs_before(data_dir: &Path, oldest: DayNumber) -> Result<(), KeyError> {
    for (epoch, _) in load_epoch_paths(data_dir)? {
        if epoch < oldest {
            let path = epoch_path(data_dir, epoch);
            fs::remove_file(&path).map_err(|source| KeyError::Io { path, source })?;
        }
    }
    Ok(())
}

fn load_epoch_paths(data_dir: &Path) -> Result<Vec<(DayNumber, PathBuf)>, KeyError> {
    let folder = dir(data_dir);
    match fs::read_dir(&folder) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|path| epoch_of(&path).map(|epoch| (epoch, path)))
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(KeyError::Io {
            path: folder,
            source,
        }),
    }
}

fn epoch_of(path: &Path) -> Option<DayNumber> {
    if path.extension()? != EPOCH_FILE_EXTENSION {
        return None;
    }
    path.file_stem()?.to_str()?.parse().ok().map(DayNumber)
}

/// An epoch's keys as stored: postcard of `[(class, PKCS#8 DER)]`; `None` when a key does
/// not encode.
fn encode_epoch(keys: &[TokenSigningKey]) -> Option<Zeroizing<Vec<u8>>> {
    let encoded = keys
        .iter()
        .map(|key| Some((key.public().class, key.to_der().ok()?)))
        .collect::<Option<Vec<(TokenClass, Zeroizing<Vec<u8>>)>>>()?;
    let plain: Vec<(TokenClass, &[u8])> = encoded
        .iter()
        .map(|(class, der)| (*class, der.as_slice()))
        .collect();
    Some(Zeroizing::new(
        postcard::to_allocvec(&plain).expect("postcard into a Vec"),
    ))
}

/// The keys of `epoch` from what [`encode_epoch`] wrote; `None` when they do not decode.
fn decode_epoch(bytes: &[u8], epoch: DayNumber) -> Option<Vec<TokenSigningKey>> {
    let plain: Vec<(TokenClass, Vec<u8>)> = postcard::from_bytes(bytes).ok()?;
    plain
        .into_iter()
        .map(|(class, der)| {
            let der = Zeroizing::new(der);
            TokenSigningKey::from_der(epoch, class, &der).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use ephemera_proto::auth::TrustedAuthorities;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn epochs_are_made_ahead_stored_once_published_signed_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let audience = Audience::named("north");
        let mut ring = TokenKeyring::new(audience);
        let today = NOW.day();
        assert_eq!(ring.missing(NOW), [today, today.plus(1)]);
        for epoch in ring.missing(NOW) {
            let made = TokenKeyring::generate_epoch(epoch, &mut rng).unwrap();
            let kept = save_epoch(dir.path(), epoch, made).unwrap();
            // A second writer of the same epoch gets the stored keys, not its own.
            let other = TokenKeyring::generate_epoch(epoch, &mut rng).unwrap();
            let again = save_epoch(dir.path(), epoch, other).unwrap();
            assert_eq!(
                kept.iter().map(|k| k.public().id()).collect::<Vec<_>>(),
                again.iter().map(|k| k.public().id()).collect::<Vec<_>>()
            );
            ring.insert_epoch(epoch, kept).unwrap();
        }
        assert!(ring.missing(NOW).is_empty());
        assert_eq!(ring.verifiers().len(), 2 * TokenClass::ALL.len());
        let authority = AuthoritySigningKey::from_seed(&[4; 32]);
        let set = ring.signed_set(&authority, NOW);
        let keys = set
            .verify(
                &TrustedAuthorities::new().with(authority.public_key()),
                &audience,
            )
            .unwrap();
        assert_eq!(keys.len(), 2 * TokenClass::ALL.len());
        for class in TokenClass::ALL {
            let signer = ring.signer(today, class).unwrap();
            assert_eq!(
                keys.key_for(today, class).unwrap().id(),
                signer.public().id()
            );
        }
        // Restart: the stored epochs come back with the same keys.
        let loaded = load_epochs(dir.path(), today).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(
            loaded[0].1[0].public().id(),
            ring.signer(today, TokenClass::ALL[0])
                .unwrap()
                .public()
                .id()
        );
        // Forgetting drops today's file and keys, and tomorrow's stay.
        forget_epochs_before(dir.path(), today.plus(1)).unwrap();
        ring.forget_before(today.plus(1));
        assert_eq!(load_epochs(dir.path(), DayNumber(0)).unwrap().len(), 1);
        assert!(ring.signer(today, TokenClass::ALL[0]).is_none());
        assert_eq!(ring.verifiers().len(), TokenClass::ALL.len());
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        create_private_dir(&super::dir(dir.path())).unwrap();
        let path = epoch_path(dir.path(), DayNumber(19_000));
        fs::write(&path, b"not keys").unwrap();
        match load_epochs(dir.path(), DayNumber(0)) {
            Err(KeyError::Corrupt { path: named }) => assert_eq!(named, path),
            other => panic!("{other:?}"),
        }
    }
}
