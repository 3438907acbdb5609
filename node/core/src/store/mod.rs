//! What the node keeps, behind a small trait so another engine could replace sled.
//!
//! [`ReportStore`] speaks in node records ([`StoredUpload`], [`CodeRecord`], batches ...);
//! sled types never leave this module. Each mutating call is atomic, and
//! [`ReportStore::flush`] makes everything before it durable: the node calls it before it
//! acknowledges an upload or hands out a certificate.
//!
//! Every record that must be forgotten is registered in an expiry index at the moment it
//! is written, so [`ReportStore::purge`] only walks what is due.

mod account;
mod api_key;
mod backup;
mod blobs;
mod code_status;
mod memory;
mod postgres_store;
mod sealing;
mod sled_store;
mod stats;
mod upgrade;

use ephemera_proto::DayNumber;
use ephemera_proto::UnixTime;
use ephemera_proto::audit::{AuditAnchor, AuditEntry, AuditHash};
use ephemera_proto::auth::{CertificateId, CodeHash};
use ephemera_proto::batch::{BatchId, BatchIndexEntry};
use ephemera_proto::gaen::DiagnosisKey;
use ephemera_proto::report::{PublishedToken, ReportType};
use ephemera_proto::revision::{Binding, RevisionKey};
use ephemera_proto::signing::{Ed25519PublicKey, Signature};
use ephemera_proto::upload::{SignedUpload, UploadId};
use ephemera_proto::venue::{ReleaseId, ReleaseIndexEntry};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use account::{AccountRecord, Role, SessionRecord};
pub use api_key::{API_KEY_ID_LEN, ApiKeyRecord, QuotaRecord};
pub use backup::BackupSummary;
pub use code_status::{
    CodeReference, CodeState, CodeStatus, CodeStatusRecord, REFERENCE_LEN, RevokeOutcome,
};
pub use memory::MemoryReportStore;
pub use postgres_store::{PostgresConfig, PostgresReportStore, StoreRole, valid_schema_name};
pub use sealing::DATA_KEYS_DIR;
pub(crate) use sealing::code_lookup;
pub use sled_store::{STORE_FORMAT, SledReportStore};
pub use stats::{StatsKey, StatsMetric, StatsTally};
pub use upgrade::{UpgradeCounts, UpgradeError, UpgradeOutcome, upgrade};

/// The storage engine failed.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine reported an error (disk, corruption).
    #[error("storage engine: {0}")]
    Engine(String),
    /// The database server cannot be reached, or went away mid-call: nothing was written,
    /// and the call may be tried again (the node answers 503 with `Retry-After`).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Another node of the group cut first: the store's publication state is no longer the
    /// one this cut was planned from ([`CutCommit::from`]). Nothing was written.
    #[error("another node published this batch boundary first; the cut was dropped")]
    CutSuperseded,
    /// An audit record's sequence number is taken: another node of the group appended first.
    /// Nothing was written; the trail continues from the stored head.
    #[error("another node appended audit record {sequence} first")]
    AuditSequenceTaken {
        /// The sequence number.
        sequence: u64,
    },
    /// The PostgreSQL schema was migrated by a newer node than this one.
    #[error(
        "the PostgreSQL schema is at migration {found}, this node knows migrations up to \
         {known} only: run the newer node, or restore the database it replaced"
    )]
    SchemaTooNew {
        /// The newest migration applied to the schema.
        found: i32,
        /// The newest migration this node knows.
        known: i32,
    },
    /// A node of a narrower role (`[storage] role` other than `all`) found the PostgreSQL
    /// schema missing or older than its code: only the owner's node migrates.
    #[error(
        "the PostgreSQL schema `{schema}` is at migration {found} and this node needs \
         {known}; a node with [storage] role = \"{role}\" does not migrate: start the node \
         with role = \"all\" (connected as the schema's owner) first, then this one \
         (node/docs/OPERATIONS.md, \"Least-privilege roles\")"
    )]
    SchemaNotMigrated {
        /// The schema.
        schema: String,
        /// This node's role.
        role: &'static str,
        /// The newest migration applied to the schema (0: none, or no schema).
        found: i32,
        /// The newest migration this node knows.
        known: i32,
    },
    /// The database refused the node's role what a request needed (PostgreSQL's
    /// `permission denied`, SQLSTATE 42501): the request belongs to a node of another
    /// `[storage] role`, or the role's grants are not those of
    /// `node/deploy/postgres/roles.sql`.
    #[error("the database role of this node may not do this: {0}")]
    NotPermitted(String),
    /// A stored record could not be decoded.
    #[error("corrupt record in `{tree}`")]
    Corrupt {
        /// Which collection.
        tree: &'static str,
    },
    /// The file of a batch body or GAEN export zip that an index entry refers to is
    /// missing, has another length than the entry says, or bytes that do not hash to its
    /// name. `file` is the content hash the entry names (nothing identifying).
    #[error(
        "the {kind} file `{file}` is {problem}: the blobs folder beside the database is \
         damaged, or was not restored together with the database"
    )]
    Blob {
        /// `batch` or `export`.
        kind: &'static str,
        /// The file's name (hex SHA-256 of its expected bytes).
        file: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The database holds sealed reports but the data keys folder holds no key: it was not
    /// restored together with the database (or was deleted).
    #[error(
        "the database holds {uploads} sealed upload records but {dir} holds no data key: \
         restore keys/data/ together with the database (node/docs/OPERATIONS.md, \"Keys and \
         backups\")"
    )]
    DataKeysMissing {
        /// Upload records in the database.
        uploads: u64,
        /// The data keys folder.
        dir: std::path::PathBuf,
    },
    /// The data folder was written with another storage layout; this node does not read it.
    /// Format 3 converts with `ephemera-node upgrade` ([`upgrade()`]); the others do not.
    #[error(
        "the data folder holds storage format {}, this node reads format {expected} only; {}",
        format_name(*found),
        format_advice(*found)
    )]
    Format {
        /// The format found (`None`: written before formats were numbered).
        found: Option<u32>,
        /// The format this node reads.
        expected: u32,
    },
    /// A folder that [`upgrade()`] writes or leaves while it runs lies beside the database:
    /// an upgrade was cut short, and which database is current is for it to settle.
    #[error(
        "{} is left by an upgrade that did not finish: run `ephemera-node upgrade` again to \
         finish it (node/docs/OPERATIONS.md, \"Upgrading\")",
        folder.display()
    )]
    UpgradeUnfinished {
        /// The folder.
        folder: std::path::PathBuf,
    },
}

/// A storage format as an operator knows it (format 1 carried no number).
pub(crate) fn format_name(found: Option<u32>) -> String {
    found.map_or_else(|| "1 (unversioned)".to_owned(), |f| f.to_string())
}

/// What an operator does with a folder of storage format `found`.
pub(crate) fn format_advice(found: Option<u32>) -> &'static str {
    match found {
        Some(3) => {
            "stop the node, back up the data folder and convert it with `ephemera-node \
             upgrade` (node/docs/OPERATIONS.md, \"Upgrading\")"
        }
        Some(f) if f > STORE_FORMAT => {
            "a newer node wrote it: run that version, or restore a backup taken before it \
             (node/docs/OPERATIONS.md, \"Upgrading\")"
        }
        _ => {
            "formats 1 and 2 were never released and are not converted: move the folder \
             aside and start on a new one (node/docs/OPERATIONS.md, \"Upgrading\")"
        }
    }
}

/// An issued upload code, kept until used or expired. The sled store files it under a
/// one-way hash of its [`CodeHash`] and seals it under a key derived from the `CodeHash`, so
/// its exact expiry is readable only to whoever presents the code; the clear expiry index
/// knows only its day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// Test type the certificate will carry.
    pub test_type: ReportType,
    /// Symptom onset the certificate will carry.
    pub symptom_onset: Option<DayNumber>,
    /// When the code stops working.
    pub expires_at: UnixTime,
    /// Its reference, whose status record the redeem marks used (`None`: issued before
    /// references existed; such records, stored without this field, still decode).
    pub reference: Option<CodeReference>,
}

/// A code record as stored before references: three fields.
#[derive(Deserialize)]
struct CodeRecordV1 {
    test_type: ReportType,
    symptom_onset: Option<DayNumber>,
    expires_at: UnixTime,
}

impl CodeRecord {
    /// Decodes a stored code record, of today's layout or of the one before references.
    pub(crate) fn decode(bytes: &[u8]) -> Result<CodeRecord, StoreError> {
        decode::<CodeRecord>(bytes, "codes").or_else(|_| {
            let old: CodeRecordV1 = decode(bytes, "codes")?;
            Ok(CodeRecord {
                test_type: old.test_type,
                symptom_onset: old.symptom_onset,
                expires_at: old.expires_at,
                reference: None,
            })
        })
    }
}

/// A staff sign-in credential: a salted PBKDF2 hash, never the password.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CredentialRecord {
    /// Random salt.
    pub salt: [u8; 16],
    /// PBKDF2-HMAC-SHA256 iterations.
    pub iterations: u32,
    /// The derived hash.
    pub hash: [u8; 32],
}

impl std::fmt::Debug for CredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialRecord(<redacted>)")
    }
}

/// One key or token waiting for publication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueuedEntry {
    /// A `gaen` diagnosis key.
    Key(DiagnosisKey),
    /// A `pet` token.
    Token(PublishedToken),
    /// A `gaen` key published before, out again with a revised report type (GAEN export
    /// files list these as `revised_keys`).
    RevisedKey(DiagnosisKey),
}

/// A group of entries of one upload that share a release time: the unit of the
/// publication queue, ordered by release time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    /// The first moment the entries may be published.
    pub release_at: UnixTime,
    /// The upload they came from.
    pub upload: UploadId,
}

impl QueueKey {
    /// Byte length of the encoded key.
    pub const LEN: usize = 8 + 32;

    /// Big-endian encoding that sorts like the key.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.release_at.0.to_be_bytes());
        out[8..].copy_from_slice(&self.upload.0);
        out
    }

    /// Decodes [`QueueKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<QueueKey> {
        if bytes.len() != Self::LEN {
            return None;
        }
        Some(QueueKey {
            release_at: UnixTime(u64::from_be_bytes(bytes[..8].try_into().ok()?)),
            upload: UploadId(bytes[8..].try_into().ok()?),
        })
    }
}

/// Entries of one queue group.
pub type QueuedGroup = Vec<QueuedEntry>;

/// An accepted upload as kept until retention ends (for revisions and, later, federation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUpload {
    /// When the node accepted it.
    pub received_at: UnixTime,
    /// The verified upload in canonical form.
    pub upload: SignedUpload,
    /// Release time of each entry (same order as the contents); `None` once the entry has
    /// been dropped by a revision.
    pub releases: Vec<Option<UnixTime>>,
}

/// Where an upload whose certificate id is marked used came from, and whether it was
/// revised: the value of the single-use mark.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CertificateState {
    /// A phone uploaded it to this node; it may still be revised.
    Accepted = 0,
    /// A phone uploaded it to this node and it was revised since (its revision token is
    /// spent).
    Revised = 1,
    /// A peer relayed it; nobody holds a revision token for it here (a version 2 upload
    /// relayed with its key may be revised with that key's signature, like one accepted
    /// here).
    Relayed = 2,
}

impl CertificateState {
    /// Whether an upload with this mark may still be revised (by its token or its key's
    /// signature): it was accepted here or relayed, and not revised yet.
    pub fn revisable(self) -> bool {
        matches!(self, CertificateState::Accepted | CertificateState::Relayed)
    }

    /// Decodes the state byte.
    pub fn from_byte(b: u8) -> Option<CertificateState> {
        Some(match b {
            0 => CertificateState::Accepted,
            1 => CertificateState::Revised,
            2 => CertificateState::Relayed,
            _ => return None,
        })
    }
}

/// A used certificate id's mark: the upload it was used for, its state and, for an upload
/// of protocol version 2, its binding to a revision key.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CertificateUse {
    /// The upload the certificate was used for.
    pub upload: UploadId,
    /// Accepted here, revised, or relayed.
    pub state: CertificateState,
    /// The upload's binding (`docs/PROTOCOL.md` §5.4): for a first upload the key whose
    /// secret alone may revise it, for a revision its key, the certificate it revises and
    /// its signature (so catch-up can serve it as it was relayed); [`Binding::Unbound`] for
    /// a version 1 upload (revised by its token).
    pub binding: Binding,
}

impl CertificateUse {
    /// Byte length of an encoded mark without a revision key (the only length before
    /// protocol version 2, still read as it is).
    pub const LEN: usize = 33;
    /// Byte length of an encoded mark with a revision key (a first upload).
    pub const LEN_WITH_KEY: usize = Self::LEN + 32;
    /// Byte length of an encoded mark of a signed revision: key, revised certificate id and
    /// signature.
    pub const LEN_REVISION: usize = Self::LEN_WITH_KEY + 16 + 64;
    /// Byte length of an encoded mark of a revision authorised by a blind token: a signed
    /// revision's, and a trailing 1 ([`Binding::TokenRevision`]).
    pub const LEN_TOKEN_REVISION: usize = Self::LEN_REVISION + 1;

    /// `upload id ‖ state ‖ revision key ‖ revised certificate id ‖ signature ‖ 1`, each of
    /// the last four only when the binding has it (the 1 for a token revision).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN_REVISION);
        out.extend_from_slice(&self.upload.0);
        out.push(self.state as u8);
        match &self.binding {
            Binding::Unbound => {}
            Binding::Upload(key) => out.extend_from_slice(&key.0.0),
            Binding::Revision {
                key,
                revises,
                signature,
            }
            | Binding::TokenRevision {
                key,
                revises,
                signature,
            } => {
                out.extend_from_slice(&key.0.0);
                out.extend_from_slice(&revises.0);
                out.extend_from_slice(&signature.0);
            }
        }
        if matches!(self.binding, Binding::TokenRevision { .. }) {
            out.push(1);
        }
        out
    }

    /// Decodes [`CertificateUse::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<CertificateUse> {
        let key = |bytes: &[u8]| -> Option<RevisionKey> {
            Some(RevisionKey(Ed25519PublicKey(
                bytes.get(Self::LEN..Self::LEN_WITH_KEY)?.try_into().ok()?,
            )))
        };
        let revision = |bytes: &[u8]| -> Option<(RevisionKey, CertificateId, Signature)> {
            Some((
                key(bytes)?,
                CertificateId(
                    bytes
                        .get(Self::LEN_WITH_KEY..Self::LEN_WITH_KEY + 16)?
                        .try_into()
                        .ok()?,
                ),
                Signature(
                    bytes
                        .get(Self::LEN_WITH_KEY + 16..Self::LEN_REVISION)?
                        .try_into()
                        .ok()?,
                ),
            ))
        };
        let binding = match bytes.len() {
            Self::LEN => Binding::Unbound,
            Self::LEN_WITH_KEY => Binding::Upload(key(bytes)?),
            Self::LEN_REVISION => {
                let (key, revises, signature) = revision(bytes)?;
                Binding::Revision {
                    key,
                    revises,
                    signature,
                }
            }
            Self::LEN_TOKEN_REVISION if bytes[Self::LEN_REVISION] == 1 => {
                let (key, revises, signature) = revision(bytes)?;
                Binding::TokenRevision {
                    key,
                    revises,
                    signature,
                }
            }
            _ => return None,
        };
        Some(CertificateUse {
            upload: UploadId(bytes[..32].try_into().ok()?),
            state: CertificateState::from_byte(bytes[32])?,
            binding,
        })
    }
}

/// Everything one accepted upload (or revision) writes, applied atomically.
///
/// One upload is a handful of records: the certificate's single-use mark, the upload, its
/// sync-day entry, one expiry entry (which also retires the certificate mark) and its queue
/// groups. Revision tokens are derived from the certificate id, so none is stored.
#[derive(Clone, Debug)]
pub struct UploadCommit {
    /// The certificate id to mark used, and when that mark may be forgotten.
    pub certificate: (CertificateId, UnixTime),
    /// Whether a peer relayed the upload (no revision token exists for it here).
    pub relayed: bool,
    /// The upload's binding to a revision key (protocol version 2), kept in the
    /// certificate's mark: a first upload's key, which its revisions must be signed with,
    /// or a revision's key and proof.
    pub binding: Binding,
    /// For a revision: the certificate id of the upload it revises, whose mark must still
    /// say [`CertificateState::Accepted`] or [`CertificateState::Relayed`]; it becomes
    /// [`CertificateState::Revised`].
    pub consume_revision: Option<CertificateId>,
    /// The upload record, its id and when it is purged.
    pub upload: (UploadId, StoredUpload, UnixTime),
    /// For a revision: the original upload's record, updated.
    pub update_original: Option<(UploadId, StoredUpload)>,
    /// Queue groups to remove (revised before publication).
    pub dequeue: Vec<QueueKey>,
    /// Queue groups to add (or replace).
    pub enqueue: Vec<(QueueKey, QueuedGroup)>,
}

impl UploadCommit {
    /// Whether it is a first upload: it consumes no revision, updates no original and
    /// takes nothing out of the queue (a store may write a group of these in bulk).
    pub fn is_plain(&self) -> bool {
        self.consume_revision.is_none() && self.update_original.is_none() && self.dequeue.is_empty()
    }

    /// The counter it adds one to when it is written: relayed or accepted, on its arrival
    /// day, by its certificate's type.
    pub fn counted_as(&self) -> StatsKey {
        StatsKey {
            day: self.upload.1.received_at.day(),
            metric: if self.relayed {
                StatsMetric::UploadsRelayed
            } else {
                StatsMetric::UploadsAccepted
            },
            test_type: Some(self.upload.1.upload.certificate.certificate.test_type),
        }
    }

    /// The mark its certificate id gets.
    pub fn certificate_use(&self) -> CertificateUse {
        CertificateUse {
            upload: self.upload.0,
            state: if self.relayed {
                CertificateState::Relayed
            } else {
                CertificateState::Accepted
            },
            binding: self.binding,
        }
    }

    /// The expiry reference of its upload: `upload id ‖ certificate id ‖ certificate purge
    /// time`, so purging the upload also retires the certificate mark (at once when due,
    /// else by filing it under its own time).
    pub(crate) fn upload_expiry_reference(&self) -> [u8; UPLOAD_EXPIRY_REFERENCE_LEN] {
        let mut out = [0u8; UPLOAD_EXPIRY_REFERENCE_LEN];
        out[..32].copy_from_slice(&self.upload.0.0);
        out[32..48].copy_from_slice(&self.certificate.0.0);
        out[48..].copy_from_slice(&self.certificate.1.0.to_be_bytes());
        out
    }
}

/// Length of an upload's expiry reference.
pub(crate) const UPLOAD_EXPIRY_REFERENCE_LEN: usize = 32 + 16 + 8;

/// A due entry of the expiry index, decoded: what to forget.
#[derive(Debug)]
pub(crate) enum Expiring<'a> {
    /// An upload, and its certificate's single-use mark (at once when due, else filed
    /// under its own time).
    Upload {
        /// The upload.
        id: UploadId,
        /// Its certificate.
        certificate: CertificateId,
        /// When the certificate's mark may go.
        certificate_purge_at: UnixTime,
    },
    /// A certificate's single-use mark.
    Certificate(CertificateId),
    /// A batch and its index entry.
    Batch {
        /// Its sequence number.
        sequence: u64,
        /// Its id.
        id: BatchId,
    },
    /// An upload code, by hash.
    Code([u8; 32]),
    /// A GAEN export file, by name.
    Export(&'a [u8]),
    /// A venue release and its index entry.
    VenueRelease {
        /// Its sequence number.
        sequence: u64,
        /// Its id.
        id: ReleaseId,
    },
}

/// `bytes` as an array of exactly `N` bytes, or a corrupt expiry index.
fn array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt { tree: "expiry" })
}

/// Decodes an expiry index key; a key that does not decode is a corrupt index.
pub(crate) fn parse_expiring(key: &[u8]) -> Result<Expiring<'_>, StoreError> {
    let corrupt = || StoreError::Corrupt { tree: "expiry" };
    let (_, kind, reference) = parse_expiry_key(key).ok_or_else(corrupt)?;
    Ok(match kind {
        ExpiryKind::Upload => {
            if reference.len() != UPLOAD_EXPIRY_REFERENCE_LEN {
                return Err(corrupt());
            }
            Expiring::Upload {
                id: UploadId(array(&reference[..32])?),
                certificate: CertificateId(array(&reference[32..48])?),
                certificate_purge_at: UnixTime(u64::from_be_bytes(array(&reference[48..])?)),
            }
        }
        ExpiryKind::Certificate => Expiring::Certificate(CertificateId(array(reference)?)),
        ExpiryKind::Batch => {
            if reference.len() != 8 + 32 {
                return Err(corrupt());
            }
            Expiring::Batch {
                sequence: u64::from_be_bytes(array(&reference[..8])?),
                id: BatchId(array(&reference[8..])?),
            }
        }
        ExpiryKind::Code => Expiring::Code(array(reference)?),
        ExpiryKind::Export => Expiring::Export(reference),
        ExpiryKind::VenueRelease => {
            if reference.len() != 8 + 32 {
                return Err(corrupt());
            }
            Expiring::VenueRelease {
                sequence: u64::from_be_bytes(array(&reference[..8])?),
                id: ReleaseId(array(&reference[8..])?),
            }
        }
    })
}

/// What happened to an [`UploadCommit`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Written.
    Committed,
    /// Nothing written: the certificate id was used before.
    CertificateUsed,
    /// Nothing written: the upload to revise is gone, or was revised meanwhile.
    RevisionTokenUnknown,
}

/// Where publication stands: the next sequence number and the last boundary cut.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutterState {
    /// Sequence number of the next batch (the first batch is 1).
    pub next_sequence: u64,
    /// The last batch boundary that was cut.
    pub last_boundary: Option<UnixTime>,
}

impl CutterState {
    /// A store's state before its first cut.
    pub const INITIAL: CutterState = CutterState {
        next_sequence: 1,
        last_boundary: None,
    };
}

/// The last batch a node published, the head of its batch log (`docs/PROTOCOL.md` §6.2):
/// the next batch names it as its `previous`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Its sequence.
    pub sequence: u64,
    /// Its id.
    pub id: BatchId,
}

/// A signed batch ready to store.
#[derive(Clone, Debug)]
pub struct StoredBatch {
    /// Its index entry (id, sequence, size ...).
    pub entry: BatchIndexEntry,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its signed token filter (`docs/PROTOCOL.md` §6.5), purged with it; `None` for a
    /// batch without tokens.
    pub filter: Option<Vec<u8>>,
    /// When it is purged.
    pub purge_at: UnixTime,
}

/// One setting the node ran with: its key path and a keyed digest of its value.
pub type SettingDigest = (String, [u8; 32]);

/// A signed GAEN export zip ready to store.
#[derive(Clone, Debug)]
pub struct StoredExport {
    /// File name, `<start>-<end>-<batch num:05>.zip`.
    pub name: String,
    /// The zip.
    pub bytes: Vec<u8>,
    /// When it is purged.
    pub purge_at: UnixTime,
}

/// Everything one cut writes, applied atomically.
#[derive(Clone, Debug)]
pub struct CutCommit {
    /// New batches.
    pub batches: Vec<StoredBatch>,
    /// New GAEN export files.
    pub exports: Vec<StoredExport>,
    /// Queue groups now published (or dropped as too old).
    pub dequeue: Vec<QueueKey>,
    /// The state the cut was planned from: the store applies the cut only while its state
    /// is still this one ([`StoreError::CutSuperseded`] otherwise), so when two nodes of a
    /// group plan the same boundary, one publishes and the batch log never forks.
    pub from: CutterState,
    /// The state after the cut.
    pub state: CutterState,
}

impl CutCommit {
    /// The counters it adds to: one per batch, on the day it was cut.
    pub fn counted(&self) -> StatsTally {
        let mut tally = StatsTally::new();
        for batch in &self.batches {
            tally.count(
                batch.entry.created_at.day(),
                StatsMetric::BatchesPublished,
                None,
            );
        }
        tally
    }
}

/// The counters that filing `records` adds to: one issued code each, on its issue day.
pub(crate) fn issued_tally(records: &[(CodeReference, CodeStatusRecord)]) -> StatsTally {
    let mut tally = StatsTally::new();
    for (_, record) in records {
        tally.count(
            record.issued,
            StatsMetric::CodesIssued,
            Some(record.test_type),
        );
    }
    tally
}

/// How many records a purge removed, by kind.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Upload records.
    pub uploads: u64,
    /// Used certificate ids.
    pub certificates: u64,
    /// Batches.
    pub batches: u64,
    /// GAEN export files.
    pub exports: u64,
    /// Expired upload codes.
    pub codes: u64,
    /// Queue groups left unpublished past retention.
    pub queued: u64,
    /// Venue releases past their expiry.
    pub venue_releases: u64,
    /// Data keys destroyed, each a day of sealed reports shredded (not records: not in
    /// [`PurgeCounts::total`]).
    pub data_keys: u64,
}

impl PurgeCounts {
    /// Total records removed.
    pub fn total(&self) -> u64 {
        self.uploads
            + self.certificates
            + self.batches
            + self.exports
            + self.codes
            + self.queued
            + self.venue_releases
    }
}

/// Durable state of a node. Implementations must make each call atomic.
pub trait ReportStore: Send + Sync + 'static {
    /// The statistics counters of the days `from` to `to` (both included) that are not
    /// zero, by key.
    ///
    /// # Errors
    /// [`StoreError`].
    fn stats(&self, from: DayNumber, to: DayNumber) -> Result<Vec<(StatsKey, u64)>, StoreError>;

    /// Marks every code still issued whose expiry day is before `today` expired (on its
    /// expiry day) and counts it in the same write, so each expired code counts once; how
    /// many.
    ///
    /// # Errors
    /// [`StoreError`].
    fn expire_code_statuses(&self, today: DayNumber) -> Result<u64, StoreError>;

    /// Removes the statistics counters of days before `before`; how many went.
    ///
    /// # Errors
    /// [`StoreError`].
    fn purge_stats(&self, before: DayNumber) -> Result<u64, StoreError>;

    /// Stores issued codes.
    ///
    /// # Errors
    /// [`StoreError`] from the engine (the same for every method).
    fn insert_codes(&self, codes: &[(CodeHash, CodeRecord)]) -> Result<(), StoreError>;

    /// Removes and returns the code with this hash, if any: a code is taken once.
    ///
    /// # Errors
    /// [`StoreError`].
    fn take_code(&self, hash: &CodeHash) -> Result<Option<CodeRecord>, StoreError>;

    /// Files the status records of codes about to be issued, each under its reference,
    /// and counts them issued (on their issue day, by test type) in the same write.
    ///
    /// # Errors
    /// [`StoreError`].
    fn insert_code_statuses(
        &self,
        records: &[(CodeReference, CodeStatusRecord)],
    ) -> Result<(), StoreError>;

    /// The status record filed under `reference`, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    fn code_status(
        &self,
        reference: &CodeReference,
    ) -> Result<Option<CodeStatusRecord>, StoreError>;

    /// Sets the state of the code filed under `reference` (a redeem marks it used);
    /// nothing if there is none. The change is counted in the same write
    /// ([`CodeStatusRecord::count_change`]).
    ///
    /// # Errors
    /// [`StoreError`].
    fn set_code_state(&self, reference: &CodeReference, state: CodeState)
    -> Result<(), StoreError>;

    /// Removes the status records of codes whose expiry day is before `expired_before`
    /// (whatever their state); how many went.
    ///
    /// # Errors
    /// [`StoreError`].
    fn purge_code_statuses(&self, expired_before: DayNumber) -> Result<u64, StoreError>;

    /// Revokes the code filed under `reference` on `day`: removes the code itself (so no
    /// redeem can take it from then on) and marks it revoked, unless it is used, revoked,
    /// past its expiry day, or gone already. The revoke is counted in the same write.
    ///
    /// # Errors
    /// [`StoreError`].
    fn revoke_code(
        &self,
        reference: &CodeReference,
        day: DayNumber,
    ) -> Result<RevokeOutcome, StoreError>;

    /// Applies an accepted upload or revision, unless its certificate id was used before
    /// (or, for a revision, the token is gone). A commit that is written is counted in the
    /// same write: [`StatsMetric::UploadsRelayed`] when `relayed`, else
    /// [`StatsMetric::UploadsAccepted`], on its arrival day, by its certificate's type.
    ///
    /// # Errors
    /// [`StoreError`].
    fn commit_upload(&self, commit: &UploadCommit) -> Result<CommitOutcome, StoreError>;

    /// Applies a group of commits in one atomic write, in order; each gets its own outcome
    /// (a later commit sees the earlier ones, so two commits of one certificate in a group
    /// give `Committed` then `CertificateUsed`). Nothing is durable before [`Self::flush`].
    ///
    /// # Errors
    /// [`StoreError`]: then none of the group is written.
    fn commit_uploads(&self, commits: &[UploadCommit]) -> Result<Vec<CommitOutcome>, StoreError> {
        commits.iter().map(|c| self.commit_upload(c)).collect()
    }

    /// Up to `limit` ids of uploads filed under sync day `day` (the day their certificate
    /// was issued, [`ephemera_proto::sync::sync_day`]), ascending, strictly after `after`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn sync_ids(
        &self,
        day: DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, StoreError>;

    /// Count and XOR of the ids filed under sync day `day`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn day_digest(&self, day: DayNumber) -> Result<ephemera_proto::sync::DayDigest, StoreError>;

    /// The mark of a used certificate id, if it is marked.
    ///
    /// # Errors
    /// [`StoreError`].
    fn certificate_use(&self, id: &CertificateId) -> Result<Option<CertificateUse>, StoreError>;

    /// An upload record.
    ///
    /// # Errors
    /// [`StoreError`].
    fn upload(&self, id: &UploadId) -> Result<Option<StoredUpload>, StoreError>;

    /// Number of upload records kept.
    ///
    /// # Errors
    /// [`StoreError`].
    fn upload_count(&self) -> Result<u64, StoreError>;

    /// Queue groups released at or before `until`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    fn queued_until(&self, until: UnixTime) -> Result<Vec<(QueueKey, QueuedGroup)>, StoreError>;

    /// The queue group under `key`, if still queued.
    ///
    /// # Errors
    /// [`StoreError`].
    fn queued(&self, key: &QueueKey) -> Result<Option<QueuedGroup>, StoreError>;

    /// The publication state.
    ///
    /// # Errors
    /// [`StoreError`].
    fn cutter_state(&self) -> Result<CutterState, StoreError>;

    /// The head of the batch log: the last batch of the last cut committed, kept after
    /// that batch is purged so the chain never restarts. A store written before the chain
    /// existed answers its last listed batch until its first chained cut; `None` before any
    /// batch.
    ///
    /// # Errors
    /// [`StoreError`].
    fn chain_head(&self) -> Result<Option<ChainHead>, StoreError>;

    /// Stores the batches of a cut, removes what they published, saves the state and moves
    /// the chain head to the cut's last batch; counts the batches published (on their cut
    /// day) in the same write.
    ///
    /// # Errors
    /// [`StoreError`].
    fn commit_cut(&self, cut: &CutCommit) -> Result<(), StoreError>;

    /// A batch's bytes.
    ///
    /// # Errors
    /// [`StoreError`].
    fn batch(&self, id: &BatchId) -> Result<Option<Vec<u8>>, StoreError>;

    /// The token filter stored with batch `id` at its cut; `None` when it has none (no
    /// tokens, cut before filters were stored, or purged).
    ///
    /// # Errors
    /// [`StoreError`].
    fn token_filter(&self, id: &BatchId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` index entries with a sequence above `after`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    fn batch_index(&self, after: u64, limit: usize) -> Result<Vec<BatchIndexEntry>, StoreError>;

    /// A GAEN export file by name.
    ///
    /// # Errors
    /// [`StoreError`].
    fn export(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Names of the stored export files, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    fn export_names(&self) -> Result<Vec<String>, StoreError>;

    /// A case worker's credential.
    ///
    /// # Errors
    /// [`StoreError`].
    fn credential(&self, name: &str) -> Result<Option<CredentialRecord>, StoreError>;

    /// Adds or replaces a case worker's credential.
    ///
    /// # Errors
    /// [`StoreError`].
    fn put_credential(&self, name: &str, record: &CredentialRecord) -> Result<(), StoreError>;

    /// Names of the case workers.
    ///
    /// # Errors
    /// [`StoreError`].
    fn credential_names(&self) -> Result<Vec<String>, StoreError>;

    /// A staff account.
    ///
    /// # Errors
    /// [`StoreError`].
    fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError>;

    /// Adds or replaces a staff account, in one atomic write.
    ///
    /// # Errors
    /// [`StoreError`].
    fn put_account(&self, name: &str, record: &AccountRecord) -> Result<(), StoreError>;

    /// Every staff account, by name.
    ///
    /// # Errors
    /// [`StoreError`].
    fn accounts(&self) -> Result<Vec<(String, AccountRecord)>, StoreError>;

    /// The session filed under `id` (the SHA-256 of its bearer token).
    ///
    /// # Errors
    /// [`StoreError`].
    fn session(&self, id: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError>;

    /// Adds or replaces the session filed under `id`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn put_session(&self, id: &[u8; 32], record: &SessionRecord) -> Result<(), StoreError>;

    /// Removes the session filed under `id`; whether there was one.
    ///
    /// # Errors
    /// [`StoreError`].
    fn remove_session(&self, id: &[u8; 32]) -> Result<bool, StoreError>;

    /// Removes every session for which `doomed` is true (sign-out everywhere, a disabled
    /// account, expired sessions); how many went.
    ///
    /// # Errors
    /// [`StoreError`].
    fn remove_sessions(&self, doomed: &dyn Fn(&SessionRecord) -> bool) -> Result<u64, StoreError>;

    /// The API key filed under `id`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn api_key(&self, id: &[u8; API_KEY_ID_LEN]) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Adds or replaces the API key filed under `id`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn put_api_key(
        &self,
        id: &[u8; API_KEY_ID_LEN],
        record: &ApiKeyRecord,
    ) -> Result<(), StoreError>;

    /// Every API key, by id.
    ///
    /// # Errors
    /// [`StoreError`].
    fn api_keys(&self) -> Result<Vec<([u8; API_KEY_ID_LEN], ApiKeyRecord)>, StoreError>;

    /// Counts `amount` codes on `day` against the daily quota `limit` of `subject` (a key
    /// or an account), atomically; whether they fit (nothing is counted when not).
    ///
    /// # Errors
    /// [`StoreError`].
    fn charge_quota(
        &self,
        subject: &str,
        day: DayNumber,
        amount: u32,
        limit: u32,
    ) -> Result<bool, StoreError>;

    /// Appends an entry to the audit trail; the caller chains it to the last one
    /// ([`crate::audit::AuditTrail`]). An entry never replaces another.
    ///
    /// # Errors
    /// [`StoreError::AuditSequenceTaken`] when its sequence is stored already (another node
    /// of the group appended first); [`StoreError`].
    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// The audit trail: the anchor of the last purge (if any) and the kept entries, oldest
    /// first, as stored (unchecked: [`ephemera_proto::audit::verify_trail`] checks them).
    ///
    /// # Errors
    /// [`StoreError`].
    fn audit_trail(&self) -> Result<(Option<AuditAnchor>, Vec<AuditEntry>), StoreError>;

    /// The sequence and hash of the newest audit entry, or of the anchor when every entry
    /// was purged; `None` for an empty trail.
    ///
    /// # Errors
    /// [`StoreError`].
    fn audit_head(&self) -> Result<Option<(u64, AuditHash)>, StoreError>;

    /// The digests of the settings the node last ran with, by key path (empty before its
    /// first start that recorded them). Digests only: a setting may be a secret.
    ///
    /// # Errors
    /// [`StoreError`].
    fn applied_settings(&self) -> Result<Vec<SettingDigest>, StoreError>;

    /// Replaces the digests of the settings the node runs with.
    ///
    /// # Errors
    /// [`StoreError`].
    fn set_applied_settings(&self, settings: &[SettingDigest]) -> Result<(), StoreError>;

    /// Removes the audit entries up to `anchor.sequence` and keeps `anchor` in their place,
    /// in one atomic step. Returns how many entries went.
    ///
    /// # Errors
    /// [`StoreError`].
    fn purge_audit(&self, anchor: &AuditAnchor) -> Result<u64, StoreError>;

    /// Removes everything whose retention or lifetime ended at or before `now`, and queue
    /// groups released before `stale_before`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn purge(&self, now: UnixTime, stale_before: UnixTime) -> Result<PurgeCounts, StoreError>;

    /// Makes every write so far durable (fsync).
    ///
    /// # Errors
    /// [`StoreError`].
    fn flush(&self) -> Result<(), StoreError>;

    /// Writes a consistent copy of everything stored into `to` (a new or empty folder),
    /// laid out as a data folder (`db/`, `blobs/`, `keys/data/`): the state after the last
    /// flush, taken while writers wait (readers do not).
    ///
    /// # Errors
    /// [`StoreError::Engine`] when `to` is not empty or a copy fails; a store that keeps
    /// nothing on disk has nothing to copy.
    fn backup(&self, to: &std::path::Path) -> Result<BackupSummary, StoreError>;

    /// Bytes used on disk (0 for memory).
    ///
    /// # Errors
    /// [`StoreError`].
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// The batch public key the stored data was made under, once recorded: the key of
    /// every node that shares this store (see [`crate::key_binding`]).
    ///
    /// # Errors
    /// [`StoreError`]; [`StoreError::Corrupt`] for a record that is not a key.
    fn bound_key(&self) -> Result<Option<Ed25519PublicKey>, StoreError>;

    /// Records `key` as the store's batch key if the recorded one is `expected` (`None`:
    /// none recorded yet), in one atomic and durable step, and returns the key recorded
    /// afterwards: another node's, when it got there first.
    ///
    /// # Errors
    /// [`StoreError`].
    fn bind_key(
        &self,
        expected: Option<&Ed25519PublicKey>,
        key: &Ed25519PublicKey,
    ) -> Result<Ed25519PublicKey, StoreError>;

    /// The sunset order the store holds, as the frame it was received in
    /// ([`crate::sunset`]), if any.
    ///
    /// # Errors
    /// [`StoreError`].
    fn sunset_order(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Durably records `frame` as the held sunset order, in place of any earlier one (the
    /// caller chose it with [`crate::sunset::SunsetRules`]).
    ///
    /// # Errors
    /// [`StoreError`].
    fn record_sunset_order(&self, frame: &[u8]) -> Result<(), StoreError>;

    /// Erases every record under a sunset order but the held order itself: reports,
    /// batches, exports, codes, sessions, accounts, API keys, audit, counters, data keys.
    /// Returns how many records of each kind (tree or table, blob files, data keys) went,
    /// sorted by kind. sled keeps old bytes in its log until the folder is rewritten: the
    /// caller removes the folder after (`ephemera_node`'s sunset erasure); PostgreSQL
    /// rewrites each table (`VACUUM FULL`).
    ///
    /// # Errors
    /// [`StoreError`]; [`StoreError::NotPermitted`] for a database role that does not own
    /// the tables.
    fn erase_all(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// The earliest purge time held in the expiry index for each kind of record that has
    /// one (`upload`, `certificate-mark`, `batch`, `code`, `export`, `venue-release`), in that
    /// order: what
    /// the retention report shows ([`crate::retention::retention_report`]).
    ///
    /// # Errors
    /// [`StoreError`]; [`StoreError::Corrupt`] for an expiry key that does not parse.
    fn earliest_expiries(&self) -> Result<Vec<(&'static str, UnixTime)>, StoreError>;

    /// Removes uploads, with their catch-up filing and the queued groups named (entries
    /// not yet published), durably: an authority's reports under a sunset order
    /// ([`crate::sunset`]). Their single-use marks and expiry entries stay, and go on time.
    /// Returns how many upload records went.
    ///
    /// # Errors
    /// [`StoreError`].
    fn remove_uploads(&self, uploads: &[(UploadId, Vec<QueueKey>)]) -> Result<u64, StoreError>;

    /// Durably stores a verified venue release's `frame` under `id` (the caller checked
    /// that it is the frame's hash) with the next sequence number, at least
    /// [`release_sequence_floor`] of `arrived_at`, and files it for purge at `purge_at`.
    /// Returns the entry it made, or `None` when the store already holds `id` (and then
    /// changes nothing).
    ///
    /// # Errors
    /// [`StoreError`].
    fn insert_venue_release(
        &self,
        id: &ReleaseId,
        frame: &[u8],
        arrived_at: UnixTime,
        purge_at: UnixTime,
    ) -> Result<Option<ReleaseIndexEntry>, StoreError>;

    /// The frame of the venue release `id`, if held.
    ///
    /// # Errors
    /// [`StoreError`].
    fn venue_release(&self, id: &ReleaseId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` venue releases with a sequence above `after`, in sequence order.
    ///
    /// # Errors
    /// [`StoreError`].
    fn venue_release_index(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ReleaseIndexEntry>, StoreError>;
}

/// The lowest sequence a venue release arriving at `arrived_at` takes: its second × 1000,
/// so sequences keep growing across restores of older backups (as batches' do,
/// `docs/PROTOCOL.md` §6).
pub fn release_sequence_floor(arrived_at: UnixTime) -> u64 {
    arrived_at.0.saturating_mul(1000)
}

/// The sequence of the next venue release: above `last`, at least the floor of
/// `arrived_at`.
pub(crate) fn next_release_sequence(last: Option<u64>, arrived_at: UnixTime) -> u64 {
    last.map_or(0, |l| l.saturating_add(1))
        .max(release_sequence_floor(arrived_at))
}

/// The expiry reference of a venue release: `sequence (u64 BE) ‖ id`.
pub(crate) fn release_expiry_reference(sequence: u64, id: &ReleaseId) -> [u8; 40] {
    let mut reference = [0u8; 40];
    reference[..8].copy_from_slice(&sequence.to_be_bytes());
    reference[8..].copy_from_slice(&id.0);
    reference
}

/// The first purge time of each kind among expiry keys given in key order (time first):
/// stops as soon as every kind was seen.
pub(crate) fn earliest_per_kind<K: AsRef<[u8]>>(
    keys: impl Iterator<Item = Result<K, StoreError>>,
) -> Result<Vec<(&'static str, UnixTime)>, StoreError> {
    let mut first: [Option<UnixTime>; 6] = [None; 6];
    for key in keys {
        let key = key?;
        let (at, kind, _) =
            parse_expiry_key(key.as_ref()).ok_or(StoreError::Corrupt { tree: "expiry" })?;
        let slot = &mut first[kind as usize - 1];
        if slot.is_none() {
            *slot = Some(at);
            if first.iter().all(Option::is_some) {
                break;
            }
        }
    }
    Ok(ExpiryKind::ALL
        .iter()
        .zip(first)
        .filter_map(|(kind, at)| at.map(|at| (kind.name(), at)))
        .collect())
}

/// `meta` key of the held sunset order.
pub(crate) const SUNSET_ORDER_KEY: &str = "sunset-order";

/// `meta` key of the batch public key the store's data was made under.
pub(crate) const BOUND_KEY_KEY: &str = "bound-batch-key";

/// The key a `meta` record of [`BOUND_KEY_KEY`] holds, if there is one.
pub(crate) fn decode_bound_key(
    bytes: Option<impl AsRef<[u8]>>,
) -> Result<Option<Ed25519PublicKey>, StoreError> {
    bytes
        .map(|bytes| {
            <[u8; 32]>::try_from(bytes.as_ref())
                .map(Ed25519PublicKey)
                .map_err(|_| StoreError::Corrupt { tree: "meta" })
        })
        .transpose()
}

/// Kinds of records in the expiry index.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ExpiryKind {
    Upload = 1,
    Certificate = 2,
    Batch = 3,
    Code = 4,
    Export = 5,
    VenueRelease = 6,
}

impl ExpiryKind {
    /// Every kind, in byte order.
    pub(crate) const ALL: [ExpiryKind; 6] = [
        ExpiryKind::Upload,
        ExpiryKind::Certificate,
        ExpiryKind::Batch,
        ExpiryKind::Code,
        ExpiryKind::Export,
        ExpiryKind::VenueRelease,
    ];

    /// The kind's name in the retention report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ExpiryKind::Upload => "upload",
            ExpiryKind::Certificate => "certificate-mark",
            ExpiryKind::Batch => "batch",
            ExpiryKind::Code => "code",
            ExpiryKind::Export => "export",
            ExpiryKind::VenueRelease => "venue-release",
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<ExpiryKind> {
        Some(match b {
            1 => ExpiryKind::Upload,
            2 => ExpiryKind::Certificate,
            3 => ExpiryKind::Batch,
            4 => ExpiryKind::Code,
            5 => ExpiryKind::Export,
            6 => ExpiryKind::VenueRelease,
            _ => return None,
        })
    }
}

/// When an expired code's record goes: the start of the UTC day after its expiry, so the
/// expiry index stores no time of a code finer than its day.
pub(crate) fn code_purge_at(expires_at: UnixTime) -> UnixTime {
    expires_at.day().plus(1).start()
}

/// `purge_at (u64 BE) ‖ kind ‖ reference`: sorts by time, so a purge reads a prefix.
pub(crate) fn expiry_key(at: UnixTime, kind: ExpiryKind, reference: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + reference.len());
    key.extend_from_slice(&at.0.to_be_bytes());
    key.push(kind as u8);
    key.extend_from_slice(reference);
    key
}

/// Splits an expiry key.
pub(crate) fn parse_expiry_key(key: &[u8]) -> Option<(UnixTime, ExpiryKind, &[u8])> {
    if key.len() < 9 {
        return None;
    }
    let at = UnixTime(u64::from_be_bytes(key[..8].try_into().ok()?));
    Some((at, ExpiryKind::from_byte(key[8])?, &key[9..]))
}

/// postcard encoding of a record.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encoding into a Vec")
}

/// postcard decoding of a record from `tree`.
pub(crate) fn decode<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    tree: &'static str,
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|_| StoreError::Corrupt { tree })
}

#[cfg(test)]
mod tests;
