//! The node's long-lived keys, created on first start and kept in `<data_dir>/keys/`.
//!
//! | file | what |
//! | --- | --- |
//! | `authority.seed` | Ed25519 seed of the health authority's certificate key (hex) |
//! | `batch.seed` | Ed25519 seed of the node's batch-signing key (hex) |
//! | `gaen-export.pk8` | ECDSA P-256 PKCS#8 (DER) signing GAEN `export.sig` |
//! | `code-pepper` | HMAC key for stored upload-code hashes (hex) |
//! | `libp2p-identity.seed` | Ed25519 seed reserved for the federation identity (hex) |
//! | `sealing.seed` | X25519 (HPKE) seed of the key phones seal verify and upload bodies to (hex) |
//!
//! Files are created with mode 0600 in a 0700 folder and never rewritten. A rotation
//! (`key_rotation`) adds the next keys (`batch.next.seed`, `authority.next.seed`,
//! `gaen-export.next.pk8` and `gaen-export.next.version`) during its overlap, the signed
//! announcements under `rollovers/`, and at its switch moves the replaced key to
//! `retired/` and the next one into place (with `gaen-export.version`). `sealing.seed` is
//! the one key made whenever it is missing, history or not: phones fetch it signed by the
//! batch key at every sync, so a new one orphans nobody (and folders from before it lack it).

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ephemera_proto::auth::{AuthoritySigningKey, CodePepper};
use ephemera_proto::batch::NodeSigningKey;
use ephemera_proto::rollover::KeyRollover;
use ephemera_proto::sealed::SealingSecretKey;
use rand_core::CryptoRng;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use thiserror::Error;
use zeroize::Zeroizing;

/// Sub-folder of the data folder that holds the keys.
pub const KEYS_DIR: &str = "keys";
pub(crate) const AUTHORITY_FILE: &str = "authority.seed";
pub(crate) const BATCH_FILE: &str = "batch.seed";
pub(crate) const EXPORT_FILE: &str = "gaen-export.pk8";
const PEPPER_FILE: &str = "code-pepper";
const SEALING_FILE: &str = "sealing.seed";
/// The federation identity's seed; libp2p will read it as an Ed25519 secret key.
pub const LIBP2P_IDENTITY_FILE: &str = "libp2p-identity.seed";

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A key file could not be read, written or parsed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file exists but does not hold a valid key.
    #[error("key file {path} is corrupt")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// Key files are missing from a data folder that has history: new keys would orphan
    /// every phone and peer that pinned the old ones, so none are made.
    #[error(
        "{dir} lacks {}, but the data folder has a database: phones and peers know this \
         node's keys. Restore keys/ from your backup (node/docs/OPERATIONS.md, \"Keys and \
         backups\"), or move the whole data folder aside to start over as a new node",
        files.join(", ")
    )]
    Missing {
        /// The keys folder.
        dir: PathBuf,
        /// The missing files.
        files: Vec<&'static str>,
    },
    /// A rotation of this key is under way: finish it before starting another.
    #[error(
        "a rotation of the {key} key is under way (next key {next}): finish it with \
         `ephemera-node keys rotate {key} --finish` before starting another"
    )]
    RotationUnderWay {
        /// Which key.
        key: &'static str,
        /// The next key's id.
        next: String,
    },
    /// No rotation of this key is under way, so there is nothing to finish.
    #[error(
        "no rotation of the {key} key is under way: start one with `ephemera-node keys rotate {key}`"
    )]
    NoRotation {
        /// Which key.
        key: &'static str,
    },
    /// A rotation was interrupted between two of its file operations.
    #[error("{what}: run `{command}` again to complete it")]
    Interrupted {
        /// What is half done.
        what: String,
        /// The command that completes it.
        command: String,
    },
    /// A GAEN key version is not valid.
    #[error("GAEN key version {version:?}: {reason}")]
    BadVersion {
        /// The version given.
        version: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The ECDSA P-256 key that signs GAEN export files.
pub struct ExportSigningKey {
    pair: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl ExportSigningKey {
    /// Loads a PKCS#8 (DER) document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &SystemRandom::new())
            .ok()
            .map(|pair| ExportSigningKey {
                pair,
                pkcs8: Zeroizing::new(pkcs8.to_vec()),
            })
    }

    /// The signer of GAEN export files, naming itself with `info`.
    pub fn export_signer(
        &self,
        info: ephemera_proto::gaen::SignatureInfo,
    ) -> Result<ephemera_proto::gaen::ExportSigner, ephemera_proto::gaen::ExportError> {
        ephemera_proto::gaen::ExportSigner::from_pkcs8(&self.pkcs8, info, &SystemRandom::new())
    }

    /// Signs `message` with ECDSA P-256 SHA-256; the signature is DER (as GAEN wants).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            // ring only fails here when the system RNG fails; nothing sane can go on then.
            .expect("system random number generator")
    }

    /// The 65-byte uncompressed public point.
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as Google's tooling
    /// and app configuration take it.
    pub fn public_key_pem(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.public_point());
        let b64 = base64(&der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }
}

impl fmt::Debug for ExportSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportSigningKey(<redacted>)")
    }
}

/// A ChaCha20-Poly1305 key derived from the code pepper for one use, named by `label`
/// (HMAC-SHA256(pepper, label)): what the group's shared rows are sealed under where the
/// database must not be able to open them (TOTP secrets, blind-token keys), since every
/// node of a group holds the pepper and the database never does.
pub fn pepper_seal_key(pepper: &CodePepper, label: &[u8]) -> ring::aead::LessSafeKey {
    let derived = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &pepper.0[..]),
        label,
    );
    let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, derived.as_ref())
        .expect("32 bytes is a ChaCha20 key");
    ring::aead::LessSafeKey::new(key)
}

/// The authority's venue key (HPKE, X25519): venues seal the authority's master secret
/// share to its public half when they are created (`proto::venue::create_venue`), and a
/// case worker's node opens it to trace. Derived from the code pepper
/// (HMAC-SHA256(pepper, [`VENUE_KEY_LABEL`])) so every node of an authority's group holds
/// the same key, it survives the rotation of every other key (a venue keeps its trace
/// code for years), and no file or table holds it.
pub fn venue_key(pepper: &CodePepper) -> SealingSecretKey {
    let derived = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &pepper.0[..]),
        VENUE_KEY_LABEL,
    );
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        derived
            .as_ref()
            .try_into()
            .expect("HMAC-SHA256 gives 32 bytes"),
    );
    SealingSecretKey::from_seed(&seed)
}

/// The HMAC label of [`venue_key`].
pub const VENUE_KEY_LABEL: &[u8] = b"ephemera/venue-key/v1";

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every long-lived key of a node. `Debug` shows public parts only.
pub struct NodeKeys {
    /// Signs certificates (authority role).
    pub authority: AuthoritySigningKey,
    /// Signs batches.
    pub batch: NodeSigningKey,
    /// Signs GAEN export files.
    pub export: ExportSigningKey,
    /// Keys the hashes of stored upload codes.
    pub pepper: CodePepper,
    /// Seed of the node's libp2p identity (federation).
    pub libp2p_seed: Zeroizing<[u8; 32]>,
    /// Opens sealed phone requests (`proto::sealed`).
    pub sealing: SealingSecretKey,
    /// Keys announced by a rotation and not switched to yet (its overlap).
    pub next: NextKeys,
    /// Every rollover this node announced (batch and authority), oldest first.
    pub rollovers: Vec<KeyRollover>,
    /// The GAEN key version of `export` when a rotation switched to it; else the policy's
    /// `export_key_version` names it.
    pub export_version: Option<String>,
}

/// The keys of rotations under way: each is announced, and used beside the current one,
/// until the rotation switches to it.
#[derive(Default)]
pub struct NextKeys {
    /// The next batch key (announced in the batch index; batches keep the current key).
    pub batch: Option<NodeSigningKey>,
    /// The next authority key (announced; certificates keep the current key).
    pub authority: Option<AuthoritySigningKey>,
    /// The next export key and its GAEN key version (exports carry both signatures).
    pub export: Option<(ExportSigningKey, String)>,
}

impl fmt::Debug for NextKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextKeys")
            .field("batch", &self.batch.as_ref().map(|k| k.public_key()))
            .field(
                "authority",
                &self.authority.as_ref().map(|k| k.public_key()),
            )
            .field("export", &self.export.as_ref().map(|(_, version)| version))
            .finish()
    }
}

impl fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKeys")
            .field("authority", &self.authority.public_key())
            .field("batch", &self.batch.public_key())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl NodeKeys {
    /// Fresh keys that live in memory only (the simulator, tests): seeds drawn from `rng`;
    /// the export key's from the OS, as ring generates P-256 keys only that way.
    pub fn generate(rng: &mut impl CryptoRng) -> NodeKeys {
        let mut seed = || {
            let mut seed = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(seed.as_mut());
            seed
        };
        let authority = AuthoritySigningKey::from_seed(&seed());
        let batch = NodeSigningKey::from_seed(&seed());
        let pepper = CodePepper(seed());
        let libp2p_seed = seed();
        let sealing = SealingSecretKey::from_seed(&seed());
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .expect("system random number generator");
        NodeKeys {
            authority,
            batch,
            export: ExportSigningKey::from_pkcs8(pkcs8.as_ref())
                .expect("ring parses the PKCS#8 document it generated"),
            pepper,
            libp2p_seed,
            sealing,
            next: NextKeys::default(),
            rollovers: Vec::new(),
            export_version: None,
        }
    }

    /// Loads the keys of a data folder that has history (a database): every key file must
    /// be there.
    ///
    /// # Errors
    /// [`KeyError::Missing`] naming the missing files; [`KeyError`] when a file cannot be
    /// read or is corrupt.
    pub fn load(data_dir: &Path) -> Result<NodeKeys, KeyError> {
        let dir = data_dir.join(KEYS_DIR);
        let files: Vec<&'static str> = [
            AUTHORITY_FILE,
            BATCH_FILE,
            EXPORT_FILE,
            PEPPER_FILE,
            LIBP2P_IDENTITY_FILE,
        ]
        .into_iter()
        .filter(|f| !dir.join(f).exists())
        .collect();
        if !files.is_empty() {
            return Err(KeyError::Missing { dir, files });
        }
        Ok(NodeKeys::open(data_dir, None)?.0)
    }

    /// Loads the keys from `data_dir/keys`, creating any that are missing with `rng` (a new
    /// node's first start). Returns the keys and whether any was created.
    ///
    /// # Errors
    /// [`KeyError`] when a file cannot be read or written, or is corrupt.
    pub fn load_or_create(
        data_dir: &Path,
        rng: &mut impl CryptoRng,
    ) -> Result<(NodeKeys, bool), KeyError> {
        let mut new_seed = || {
            let mut seed = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(seed.as_mut());
            seed
        };
        NodeKeys::open(data_dir, Some(&mut new_seed))
    }

    /// Reads the keys; a missing one is created with `new_seed` when given, else
    /// [`KeyError::Missing`].
    fn open(
        data_dir: &Path,
        mut new_seed: Option<&mut dyn FnMut() -> Zeroizing<[u8; 32]>>,
    ) -> Result<(NodeKeys, bool), KeyError> {
        let dir = data_dir.join(KEYS_DIR);
        let may_create = new_seed.is_some();
        if may_create {
            create_private_dir(&dir)?;
        }
        let mut created = false;
        let mut seed_file =
            |name: &'static str, created: &mut bool| -> Result<Zeroizing<[u8; 32]>, KeyError> {
                let path = dir.join(name);
                let make = new_seed.as_mut().map(|new_seed| {
                    move || Zeroizing::new(hex::encode(new_seed().as_ref()).into_bytes())
                });
                let text = read_or_create(&path, name, created, make)?;
                let mut seed = Zeroizing::new([0u8; 32]);
                let trimmed = std::str::from_utf8(&text).map(str::trim).unwrap_or("");
                hex::decode_to_slice(trimmed, seed.as_mut())
                    .map_err(|_| KeyError::Corrupt { path: path.clone() })?;
                Ok(seed)
            };
        let authority = AuthoritySigningKey::from_seed(&*seed_file(AUTHORITY_FILE, &mut created)?);
        let batch = NodeSigningKey::from_seed(&*seed_file(BATCH_FILE, &mut created)?);
        let pepper = CodePepper(seed_file(PEPPER_FILE, &mut created)?);
        let libp2p_seed = seed_file(LIBP2P_IDENTITY_FILE, &mut created)?;
        let sealing = SealingSecretKey::from_seed(&*sealing_seed(&dir)?);
        let export_path = dir.join(EXPORT_FILE);
        let make_export = may_create.then_some(|| {
            let doc =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                    .expect("system random number generator");
            Zeroizing::new(doc.as_ref().to_vec())
        });
        let pkcs8 = read_or_create(&export_path, EXPORT_FILE, &mut created, make_export)?;
        let export =
            ExportSigningKey::from_pkcs8(&pkcs8).ok_or(KeyError::Corrupt { path: export_path })?;
        let rotation = crate::key_rotation::load_rotation_state(&dir)?;
        Ok((
            NodeKeys {
                authority,
                batch,
                export,
                pepper,
                libp2p_seed,
                sealing,
                next: rotation.next,
                rollovers: rotation.rollovers,
                export_version: rotation.export_version,
            },
            created,
        ))
    }
}

/// The sealing key's seed, made from the OS when missing (see the module doc).
fn sealing_seed(dir: &Path) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let path = dir.join(SEALING_FILE);
    let make = || {
        let mut seed = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&SystemRandom::new(), seed.as_mut())
            .expect("system random number generator");
        Zeroizing::new(hex::encode(seed.as_ref()).into_bytes())
    };
    let text = read_or_create(&path, SEALING_FILE, &mut false, Some(make))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    let trimmed = std::str::from_utf8(&text).map(str::trim).unwrap_or("");
    hex::decode_to_slice(trimmed, seed.as_mut()).map_err(|_| KeyError::Corrupt { path })?;
    Ok(seed)
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io)
}

/// Reads the key file `path` (named `name`); when it is missing, writes what `make` gives,
/// or without `make` answers [`KeyError::Missing`].
pub(crate) fn read_or_create(
    path: &Path,
    name: &'static str,
    created: &mut bool,
    make: Option<impl FnOnce() -> Zeroizing<Vec<u8>>>,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::read(path) {
        Ok(bytes) => return Ok(Zeroizing::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let Some(make) = make else {
        return Err(KeyError::Missing {
            dir: path.parent().unwrap_or(path).to_owned(),
            files: vec![name],
        });
    };
    let bytes = make();
    // Write to a temporary name, sync, then rename: a crash never leaves half a key.
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    *created = true;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rng();
        let (first, created) = NodeKeys::load_or_create(dir.path(), &mut rng).unwrap();
        assert!(created);
        let (again, created) = NodeKeys::load_or_create(dir.path(), &mut rng).unwrap();
        assert!(!created);
        assert_eq!(first.authority.public_key(), again.authority.public_key());
        assert_eq!(first.batch.public_key(), again.batch.public_key());
        assert_eq!(first.export.public_point(), again.export.public_point());
        assert_eq!(*first.libp2p_seed, *again.libp2p_seed);
        assert_ne!(first.authority.public_key(), first.batch.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEYS_DIR).join(BATCH_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key files are private");
        }
        let shown = format!("{first:?}");
        assert!(!shown.contains(&hex::encode(first.batch.seed())));
    }

    #[test]
    fn the_venue_key_is_the_peppers_own_and_no_other_key() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = NodeKeys::load_or_create(dir.path(), &mut rand::rng()).unwrap();
        let loaded = NodeKeys::load(dir.path()).unwrap();
        let venue = venue_key(&keys.pepper);
        assert_eq!(venue.public_key(), venue_key(&loaded.pepper).public_key());
        assert_ne!(venue.public_key(), keys.sealing.public_key());
        assert_ne!(venue.seed()[..], keys.pepper.0[..]);
        let other = NodeKeys::generate(&mut rand::rng());
        assert_ne!(venue_key(&other.pepper).public_key(), venue.public_key());
    }

    #[test]
    fn loading_a_folder_with_history_needs_every_key_and_creates_none() {
        let dir = tempfile::tempdir().unwrap();
        let (created, _) = NodeKeys::load_or_create(dir.path(), &mut rand::rng()).unwrap();
        let loaded = NodeKeys::load(dir.path()).unwrap();
        assert_eq!(loaded.batch.public_key(), created.batch.public_key());
        let keys = dir.path().join(KEYS_DIR);
        fs::remove_file(keys.join(BATCH_FILE)).unwrap();
        fs::remove_file(keys.join(EXPORT_FILE)).unwrap();
        let error = NodeKeys::load(dir.path()).unwrap_err();
        assert!(
            matches!(&error, KeyError::Missing { files, .. } if *files == [BATCH_FILE, EXPORT_FILE]),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("batch.seed, gaen-export.pk8"), "{message}");
        assert!(message.contains("Restore keys/"), "{message}");
        assert!(!keys.join(BATCH_FILE).exists(), "nothing was created");
        // An empty folder (no keys folder at all) is refused the same way.
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            NodeKeys::load(empty.path()),
            Err(KeyError::Missing { files, .. }) if files.len() == 5
        ));
        assert!(!empty.path().join(KEYS_DIR).exists());
    }

    #[test]
    fn a_missing_sealing_seed_is_made_again_and_every_other_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (created, _) = NodeKeys::load_or_create(dir.path(), &mut rand::rng()).unwrap();
        let seed_file = dir.path().join(KEYS_DIR).join(SEALING_FILE);
        fs::remove_file(&seed_file).unwrap();
        // A folder with history still loads: phones fetch the new key, signed, at their
        // next sync.
        let loaded = NodeKeys::load(dir.path()).unwrap();
        assert_ne!(loaded.sealing.public_key(), created.sealing.public_key());
        assert_eq!(loaded.batch.public_key(), created.batch.public_key());
        assert_eq!(
            loaded.authority.public_key(),
            created.authority.public_key()
        );
        assert_eq!(loaded.export.public_point(), created.export.public_point());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&seed_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the new seed is private");
        }
        // Made once: the next start reads the same one.
        let again = NodeKeys::load(dir.path()).unwrap();
        assert_eq!(again.sealing.public_key(), loaded.sealing.public_key());
    }

    #[test]
    fn corrupt_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(KEYS_DIR)).unwrap();
        fs::write(dir.path().join(KEYS_DIR).join(AUTHORITY_FILE), "not hex").unwrap();
        assert!(matches!(
            NodeKeys::load_or_create(dir.path(), &mut rand::rng()),
            Err(KeyError::Corrupt { .. })
        ));
    }

    #[test]
    fn pem_is_a_p256_subject_public_key_info() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = NodeKeys::load_or_create(dir.path(), &mut rand::rng()).unwrap();
        let pem = keys.export.public_key_pem();
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")
        );
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        let message = b"export.bin bytes";
        let sig = keys.export.sign(message);
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            keys.export.public_point(),
        );
        assert!(public.verify(message, &sig).is_ok());
        // proto's PEM reader takes what we publish.
        assert_eq!(
            ephemera_proto::gaen::p256_public_key_from_pem(&pem)
                .unwrap()
                .as_slice(),
            keys.export.public_point()
        );
    }
}
