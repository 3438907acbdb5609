//! The health authority's audit trail: append-only records of who did what, chained by
//! hash, each head signed with the node's authority key, so that an edit, a deletion or a
//! reordering shows and says where.
//!
//! ```text
//! hash(record)  = SHA-256("ephemera/audit-record/v1" ‖ postcard(AuditRecord))
//! record n      : sequence n (from 1), previous = hash(record n−1), or 32 zero bytes for
//!                 record 1, or the anchor's head after a purge
//! signed head n = Ed25519(authority key, "ephemera/audit-head/v1" ‖ u64le(n) ‖ hash(record n))
//! ```
//!
//! Every record carries the signed head it makes. Purging records older than the audit
//! retention keeps the last purged record's signed head as the [`AuditAnchor`], so what
//! remains still verifies. What the trail cannot show on its own is a cut of its newest
//! records by someone who holds the data folder: an auditor who noted a signed head
//! (`audit export` prints it) detects that too.
//!
//! No record holds personal data of the public: actors are staff account names, API key
//! ids, the operator or the node; actions carry counts and test types, never a code, an
//! address, a user agent or a token. Times are whole minutes.

use std::fmt;

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::report::ReportType;
use crate::signing::{Ed25519PublicKey, Ed25519SigningKey, Signature};
use crate::time::UnixTime;

const RECORD_LABEL: &[u8] = b"ephemera/audit-record/v1";
const HEAD_LABEL: &[u8] = b"ephemera/audit-head/v1";

/// The SHA-256 hash of an audit record.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditHash(pub [u8; 32]);

impl fmt::Debug for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Display for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditActor {
    /// A staff account, by name.
    Account(String),
    /// A sign-in under a name that is no account (the name is not kept: it may be a
    /// password typed into the wrong field).
    UnknownAccount,
    /// The operator, through the command line on the data folder.
    Operator,
    /// The node itself (retention).
    Node,
    /// A lab or hospital system, by its API key's public id (hex).
    ApiKey(String),
}

impl fmt::Display for AuditActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditActor::Account(name) => write!(f, "account:{name}"),
            AuditActor::UnknownAccount => f.write_str("unknown-account"),
            AuditActor::Operator => f.write_str("operator"),
            AuditActor::Node => f.write_str("node"),
            AuditActor::ApiKey(id) => write!(f, "api-key:{id}"),
        }
    }
}

/// What was done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    /// A sign-in to the console or the API.
    SignIn,
    /// A sign-out.
    SignOut,
    /// Upload codes issued: how many, of which test type (never the codes).
    CodesIssued {
        /// Codes issued.
        count: u32,
        /// Their test type.
        test_type: ReportType,
    },
    /// Records older than the audit retention were purged, up to this sequence.
    Purged {
        /// The last purged record.
        through: u64,
    },
    /// The trail was exported.
    Exported,
    /// A staff account was created with these roles.
    AccountCreated {
        /// The new account.
        account: String,
        /// Its roles, by name.
        roles: Vec<String>,
    },
    /// A staff account was disabled (its sessions end with it).
    AccountDisabled {
        /// The account.
        account: String,
    },
    /// A disabled staff account was enabled again.
    AccountEnabled {
        /// The account.
        account: String,
    },
    /// A staff account's roles were set to these.
    RolesChanged {
        /// The account.
        account: String,
        /// Its roles now, by name.
        roles: Vec<String>,
    },
    /// The actor changed its own password.
    PasswordChanged,
    /// An account's password was reset to a one-time password (never recorded).
    PasswordReset {
        /// The account.
        account: String,
    },
    /// The actor enrolled a TOTP second factor.
    TotpEnrolled,
    /// The actor was given a new set of recovery codes (never recorded).
    RecoveryCodesIssued,
    /// The actor signed in with one of its recovery codes (never recorded).
    RecoveryCodeUsed,
    /// Every session of an account was ended.
    SessionsRevoked {
        /// The account.
        account: String,
    },
    /// An account's TOTP second factor and recovery codes were removed (the operator, for
    /// a person who lost both).
    TotpRemoved {
        /// The account.
        account: String,
    },
    /// Upload codes issued, by their references (never the codes): how many is their
    /// number.
    CodesIssuedWithReferences {
        /// Their test type.
        test_type: ReportType,
        /// Their references, in issue order.
        references: Vec<String>,
    },
    /// The status of the code with this reference was looked up.
    CodeStatusViewed {
        /// The reference.
        reference: String,
    },
    /// The code with this reference was revoked (or a revoke of it was refused).
    CodeRevoked {
        /// The reference.
        reference: String,
    },
    /// An API key was created (its secret is never recorded).
    ApiKeyCreated {
        /// Its public id (hex).
        id: String,
        /// Its name.
        name: String,
        /// The test types it may issue codes for, by name; empty: any.
        test_types: Vec<String>,
    },
    /// An API key was revoked.
    ApiKeyRevoked {
        /// Its public id (hex).
        id: String,
    },
    /// The node started with settings other than those it last ran with (the first start:
    /// other than the defaults). Names only: a value may be a secret.
    ConfigurationChanged {
        /// The changed settings' paths (`section.key`), in file order.
        settings: Vec<String>,
    },
    /// A venue's entry and trace codes were made (nothing about the venue is recorded: the
    /// node keeps no list of venues).
    VenueCreated,
    /// A case worker traced a venue (or was refused): the published release, by its id
    /// (empty when refused). Never the venue, the case's times or the message.
    VenueTraced {
        /// The release's id (hex).
        release: String,
    },
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditAction::SignIn => f.write_str("sign-in"),
            AuditAction::SignOut => f.write_str("sign-out"),
            AuditAction::CodesIssued { count, test_type } => {
                write!(
                    f,
                    "codes-issued count={count} test_type={}",
                    test_type.code()
                )
            }
            AuditAction::Purged { through } => write!(f, "purged through={through}"),
            AuditAction::Exported => f.write_str("exported"),
            AuditAction::AccountCreated { account, roles } => {
                write!(
                    f,
                    "account-created account={account} roles={}",
                    roles.join("+")
                )
            }
            AuditAction::AccountDisabled { account } => {
                write!(f, "account-disabled account={account}")
            }
            AuditAction::AccountEnabled { account } => {
                write!(f, "account-enabled account={account}")
            }
            AuditAction::RolesChanged { account, roles } => {
                write!(
                    f,
                    "roles-changed account={account} roles={}",
                    roles.join("+")
                )
            }
            AuditAction::PasswordChanged => f.write_str("password-changed"),
            AuditAction::PasswordReset { account } => {
                write!(f, "password-reset account={account}")
            }
            AuditAction::TotpEnrolled => f.write_str("totp-enrolled"),
            AuditAction::RecoveryCodesIssued => f.write_str("recovery-codes-issued"),
            AuditAction::RecoveryCodeUsed => f.write_str("recovery-code-used"),
            AuditAction::SessionsRevoked { account } => {
                write!(f, "sessions-revoked account={account}")
            }
            AuditAction::TotpRemoved { account } => write!(f, "totp-removed account={account}"),
            AuditAction::CodesIssuedWithReferences {
                test_type,
                references,
            } => write!(
                f,
                "codes-issued count={} test_type={} references={}",
                references.len(),
                test_type.code(),
                references.join("+")
            ),
            AuditAction::CodeStatusViewed { reference } => {
                write!(f, "code-status-viewed reference={reference}")
            }
            AuditAction::CodeRevoked { reference } => {
                write!(f, "code-revoked reference={reference}")
            }
            AuditAction::ApiKeyCreated {
                id,
                name,
                test_types,
            } => write!(
                f,
                "api-key-created id={id} name={name} test_types={}",
                if test_types.is_empty() {
                    "any".to_owned()
                } else {
                    test_types.join("+")
                }
            ),
            AuditAction::ApiKeyRevoked { id } => write!(f, "api-key-revoked id={id}"),
            AuditAction::ConfigurationChanged { settings } => {
                write!(f, "configuration-changed settings={}", settings.join("+"))
            }
            AuditAction::VenueCreated => f.write_str("venue-created"),
            AuditAction::VenueTraced { release } => write!(f, "venue-traced release={release}"),
        }
    }
}

/// How it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditOutcome {
    /// Done.
    Success,
    /// Refused, with the error code the caller got (`invalid-credentials`, …).
    Refused(String),
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditOutcome::Success => f.write_str("success"),
            AuditOutcome::Refused(code) => write!(f, "refused:{code}"),
        }
    }
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the trail, from 1, without gaps.
    pub sequence: u64,
    /// When, in whole minutes since the unix epoch.
    pub minute: u64,
    /// Who.
    pub actor: AuditActor,
    /// What.
    pub action: AuditAction,
    /// With which outcome.
    pub outcome: AuditOutcome,
    /// The hash of the record before (zeros for the first).
    pub previous: AuditHash,
}

impl AuditRecord {
    /// The record's hash, which the next record names.
    pub fn hash(&self) -> AuditHash {
        let body = postcard::to_allocvec(self).expect("postcard encoding into a Vec");
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(RECORD_LABEL);
        ctx.update(&body);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        AuditHash(out)
    }

    /// The minute of `now`.
    pub fn minute_of(now: UnixTime) -> u64 {
        now.0 / 60
    }
}

/// A record with the signed head it makes: what the store keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The record.
    pub record: AuditRecord,
    /// The authority key's signature over the head this record makes.
    pub head_signature: Signature,
}

impl AuditEntry {
    /// Chains a new record after `previous` (`None` for the first, or the anchor after a
    /// purge) and signs the head it makes.
    pub fn append(
        previous: Option<(u64, AuditHash)>,
        minute: u64,
        actor: AuditActor,
        action: AuditAction,
        outcome: AuditOutcome,
        key: &Ed25519SigningKey,
    ) -> AuditEntry {
        let (sequence, previous) = match previous {
            Some((sequence, hash)) => (sequence + 1, hash),
            None => (1, AuditHash::default()),
        };
        let record = AuditRecord {
            sequence,
            minute,
            actor,
            action,
            outcome,
            previous,
        };
        let head_signature = key.sign(HEAD_LABEL, &head_message(sequence, &record.hash()));
        AuditEntry {
            record,
            head_signature,
        }
    }

    /// The anchor this entry leaves when it is purged.
    pub fn anchor(&self) -> AuditAnchor {
        AuditAnchor {
            sequence: self.record.sequence,
            head: self.record.hash(),
            head_signature: self.head_signature,
        }
    }
}

/// The signed head of the last purged record: where the kept trail starts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    /// The last purged record's sequence.
    pub sequence: u64,
    /// Its hash.
    pub head: AuditHash,
    /// Its signed head.
    pub head_signature: Signature,
}

fn head_message(sequence: u64, hash: &AuditHash) -> [u8; 40] {
    let mut message = [0u8; 40];
    message[..8].copy_from_slice(&sequence.to_le_bytes());
    message[8..].copy_from_slice(&hash.0);
    message
}

fn signed_by_any(
    keys: &[Ed25519PublicKey],
    sequence: u64,
    hash: &AuditHash,
    sig: &Signature,
) -> bool {
    let message = head_message(sequence, hash);
    keys.iter().any(|key| key.verify(HEAD_LABEL, &message, sig))
}

/// Where a trail stops verifying.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditBreak {
    /// The anchor's signature is not the authority's.
    #[error("the purge anchor (through record {sequence}) is not signed by the authority key")]
    ForgedAnchor {
        /// The anchor's sequence.
        sequence: u64,
    },
    /// A record's content changed after it was signed.
    #[error("record {sequence} was altered: its signed head does not match its content")]
    Altered {
        /// The altered record.
        sequence: u64,
    },
    /// Records are missing.
    #[error("records {from} to {to} are missing")]
    Missing {
        /// First missing sequence.
        from: u64,
        /// Last missing sequence.
        to: u64,
    },
    /// A record is out of its place.
    #[error("record {found} stands where record {expected} belongs: the trail was reordered")]
    Reordered {
        /// The sequence expected at this place.
        expected: u64,
        /// The sequence found.
        found: u64,
    },
    /// A record does not name the hash of the one before it.
    #[error("record {sequence} does not follow record {}: the trail was spliced", sequence - 1)]
    Unlinked {
        /// The record whose link breaks.
        sequence: u64,
    },
}

/// What a verified trail holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTrail {
    /// Records checked.
    pub records: u64,
    /// The sequence and hash of the last record (or of the anchor, or none).
    pub head: Option<(u64, AuditHash)>,
}

/// Checks a trail: the anchor (if records were purged), then every entry in order, each
/// signed by one of `keys` (the authority keys the node has had) and chained to the one
/// before.
///
/// # Errors
/// [`AuditBreak`] at the first place the trail stops verifying.
pub fn verify_trail(
    anchor: Option<&AuditAnchor>,
    entries: &[AuditEntry],
    keys: &[Ed25519PublicKey],
) -> Result<VerifiedTrail, AuditBreak> {
    let mut head = match anchor {
        Some(a) if !signed_by_any(keys, a.sequence, &a.head, &a.head_signature) => {
            return Err(AuditBreak::ForgedAnchor {
                sequence: a.sequence,
            });
        }
        Some(a) => Some((a.sequence, a.head)),
        None => None,
    };
    let mut records = 0;
    for (place, entry) in entries.iter().enumerate() {
        let record = &entry.record;
        let expected = head.map_or(1, |(sequence, _)| sequence + 1);
        let later = &entries[place + 1..];
        if record.sequence > expected && later.iter().any(|e| e.record.sequence == expected) {
            return Err(AuditBreak::Reordered {
                expected,
                found: record.sequence,
            });
        }
        if record.sequence > expected {
            return Err(AuditBreak::Missing {
                from: expected,
                to: record.sequence - 1,
            });
        }
        if record.sequence < expected {
            return Err(AuditBreak::Reordered {
                expected,
                found: record.sequence,
            });
        }
        let hash = record.hash();
        if !signed_by_any(keys, record.sequence, &hash, &entry.head_signature) {
            return Err(AuditBreak::Altered {
                sequence: record.sequence,
            });
        }
        if record.previous != head.map(|(_, h)| h).unwrap_or_default() {
            return Err(AuditBreak::Unlinked {
                sequence: record.sequence,
            });
        }
        head = Some((record.sequence, hash));
        records += 1;
    }
    Ok(VerifiedTrail { records, head })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Ed25519SigningKey {
        Ed25519SigningKey::from_seed(&[7; 32])
    }

    fn trail(n: u64) -> Vec<AuditEntry> {
        let key = key();
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let previous = out.last().map(|e| (e.record.sequence, e.record.hash()));
            out.push(AuditEntry::append(
                previous,
                29_000_000 + i,
                AuditActor::Account("alice".to_owned()),
                AuditAction::CodesIssued {
                    count: 1 + i as u32,
                    test_type: ReportType::ConfirmedTest,
                },
                AuditOutcome::Success,
                &key,
            ));
        }
        out
    }

    #[test]
    fn an_untouched_trail_verifies() {
        let entries = trail(5);
        let got = verify_trail(None, &entries, &[key().public_key()]).expect("verifies");
        assert_eq!(got.records, 5);
        assert_eq!(got.head, Some((5, entries[4].record.hash())));
        assert_eq!(
            verify_trail(None, &[], &[key().public_key()]),
            Ok(VerifiedTrail {
                records: 0,
                head: None
            })
        );
    }

    #[test]
    fn an_edit_a_deletion_a_reorder_and_a_splice_each_say_where() {
        let keys = [key().public_key()];
        let mut edited = trail(5);
        edited[2].record.action = AuditAction::CodesIssued {
            count: 1,
            test_type: ReportType::ConfirmedTest,
        };
        assert_eq!(
            verify_trail(None, &edited, &keys),
            Err(AuditBreak::Altered { sequence: 3 })
        );

        let mut deleted = trail(5);
        deleted.remove(1);
        assert_eq!(
            verify_trail(None, &deleted, &keys),
            Err(AuditBreak::Missing { from: 2, to: 2 })
        );

        let mut reordered = trail(5);
        reordered.swap(1, 2);
        assert_eq!(
            verify_trail(None, &reordered, &keys),
            Err(AuditBreak::Reordered {
                expected: 2,
                found: 3
            })
        );
        let mut moved_back = trail(5);
        let second = moved_back[1].clone();
        moved_back.push(second);
        assert_eq!(
            verify_trail(None, &moved_back, &keys),
            Err(AuditBreak::Reordered {
                expected: 6,
                found: 2
            })
        );

        // A record of another trail under the same key, renumbered into place: its
        // signature covers its sequence, so renumbering shows as an alteration; taken as
        // it is, its link breaks.
        let other = trail(3);
        let mut spliced = trail(2);
        let mut foreign = other[2].clone();
        foreign.record.previous = AuditHash([9; 32]);
        spliced.push(foreign);
        assert_eq!(
            verify_trail(None, &spliced, &keys),
            Err(AuditBreak::Altered { sequence: 3 })
        );
        let mut relinked = trail(2);
        relinked.push(AuditEntry::append(
            Some((2, AuditHash([1; 32]))),
            0,
            AuditActor::Node,
            AuditAction::Exported,
            AuditOutcome::Success,
            &key(),
        ));
        assert_eq!(
            verify_trail(None, &relinked, &keys),
            Err(AuditBreak::Unlinked { sequence: 3 })
        );
    }

    #[test]
    fn another_key_signs_nothing() {
        let entries = trail(2);
        let stranger = Ed25519SigningKey::from_seed(&[8; 32]).public_key();
        assert_eq!(
            verify_trail(None, &entries, &[stranger]),
            Err(AuditBreak::Altered { sequence: 1 })
        );
        // Rotated keys: either of the node's keys verifies.
        assert!(verify_trail(None, &entries, &[stranger, key().public_key()]).is_ok());
    }

    #[test]
    fn a_purged_trail_verifies_from_its_anchor() {
        let entries = trail(6);
        let keys = [key().public_key()];
        let anchor = entries[2].anchor();
        let got = verify_trail(Some(&anchor), &entries[3..], &keys).expect("verifies");
        assert_eq!(got.records, 3);
        assert_eq!(
            verify_trail(None, &entries[3..], &keys),
            Err(AuditBreak::Missing { from: 1, to: 3 }),
            "without the anchor the purge looks like a deletion"
        );
        let mut forged = anchor;
        forged.sequence = 1;
        assert_eq!(
            verify_trail(Some(&forged), &entries[3..], &keys),
            Err(AuditBreak::ForgedAnchor { sequence: 1 })
        );
    }

    #[test]
    fn records_are_free_of_anything_that_names_a_member_of_the_public() {
        // The record types admit no code, address, agent or token: their text forms show
        // every field a record has.
        let entry = &trail(1)[0];
        let text = format!(
            "{} {} {}",
            entry.record.actor, entry.record.action, entry.record.outcome
        );
        assert_eq!(
            text,
            "account:alice codes-issued count=1 test_type=1 success"
        );
        assert_eq!(AuditActor::UnknownAccount.to_string(), "unknown-account");
        // Actors too are named by index: the API key, appended, is the fifth.
        let key = AuditActor::ApiKey("0011223344556677".into());
        assert_eq!(postcard::to_allocvec(&key).unwrap()[0], 4);
        assert_eq!(key.to_string(), "api-key:0011223344556677");
    }

    #[test]
    fn account_actions_are_appended_so_old_trails_decode_alike() {
        // postcard names a variant by its index: the ones before the account actions keep
        // theirs, so a trail written before them decodes and hashes as it did.
        let old = postcard::to_allocvec(&AuditAction::Exported).unwrap();
        assert_eq!(old, vec![4]);
        let actions = [
            AuditAction::AccountCreated {
                account: "bob".into(),
                roles: vec!["case-worker".into(), "auditor".into()],
            },
            AuditAction::AccountDisabled {
                account: "bob".into(),
            },
            AuditAction::AccountEnabled {
                account: "bob".into(),
            },
            AuditAction::RolesChanged {
                account: "bob".into(),
                roles: vec!["admin".into()],
            },
            AuditAction::PasswordChanged,
            AuditAction::PasswordReset {
                account: "bob".into(),
            },
            AuditAction::TotpEnrolled,
            AuditAction::RecoveryCodesIssued,
            AuditAction::RecoveryCodeUsed,
            AuditAction::SessionsRevoked {
                account: "bob".into(),
            },
            AuditAction::TotpRemoved {
                account: "bob".into(),
            },
            AuditAction::CodesIssuedWithReferences {
                test_type: ReportType::ConfirmedTest,
                references: vec!["0123456789AB".into(), "CDEFGHJKMNPQ".into()],
            },
            AuditAction::CodeStatusViewed {
                reference: "0123456789AB".into(),
            },
            AuditAction::CodeRevoked {
                reference: "0123456789AB".into(),
            },
            AuditAction::ApiKeyCreated {
                id: "0011223344556677".into(),
                name: "lab-north".into(),
                test_types: vec![],
            },
            AuditAction::ApiKeyRevoked {
                id: "0011223344556677".into(),
            },
            AuditAction::ConfigurationChanged {
                settings: vec!["authority.require_totp".into(), "http.listen".into()],
            },
            AuditAction::VenueCreated,
        ];
        for (index, action) in actions.iter().enumerate() {
            let bytes = postcard::to_allocvec(action).unwrap();
            assert_eq!(usize::from(bytes[0]), 5 + index, "{action}");
            assert_eq!(
                &postcard::from_bytes::<AuditAction>(&bytes).unwrap(),
                action
            );
        }
        assert_eq!(
            actions[0].to_string(),
            "account-created account=bob roles=case-worker+auditor"
        );
        assert_eq!(
            actions[11].to_string(),
            "codes-issued count=2 test_type=1 references=0123456789AB+CDEFGHJKMNPQ"
        );
        assert_eq!(
            actions[16].to_string(),
            "configuration-changed settings=authority.require_totp+http.listen"
        );
    }
}
