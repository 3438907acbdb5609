//! Staff accounts and their sessions, as the store keeps them.
//!
//! An [`AccountRecord`] holds everything about one named account: its roles, whether it is
//! enabled (accounts are disabled, never deleted, so the audit trail keeps its meaning),
//! its password hash, its second factor (sealed by the node before it gets here) and the
//! hashes of its unused recovery codes. A [`SessionRecord`] is filed under the SHA-256 of
//! its bearer token: the token itself is never stored.

use std::fmt;

use ephemera_proto::UnixTime;
use serde::{Deserialize, Serialize};

use super::CredentialRecord;

/// What an account may do. An account has one or more.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Manages accounts.
    Admin,
    /// Issues single upload codes.
    CaseWorker,
    /// Issues codes in batches and as CSV.
    BulkIssuer,
    /// Reads the audit log; issues nothing.
    Auditor,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::CaseWorker,
        Role::BulkIssuer,
        Role::Auditor,
    ];

    /// The role's name in the API, the CLI and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::CaseWorker => "case-worker",
            Role::BulkIssuer => "bulk-issuer",
            Role::Auditor => "auditor",
        }
    }

    /// The role named `name`, if one is.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One staff account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Its roles, sorted, without repeats, never empty.
    pub roles: Vec<Role>,
    /// Whether it may sign in.
    pub enabled: bool,
    /// Its password hash.
    pub credential: CredentialRecord,
    /// Whether its password was set by someone else (first start, an admin's reset): the
    /// next sign-in may do nothing but set a new one.
    pub must_change_password: bool,
    /// Its TOTP secret, sealed by the node (`None`: no second factor).
    pub totp: Option<Vec<u8>>,
    /// A TOTP secret being enrolled, sealed likewise, until a code from it confirms it.
    pub totp_pending: Option<Vec<u8>>,
    /// SHA-256 hashes of its unused recovery codes.
    pub recovery_codes: Vec<[u8; 32]>,
    /// The day it was created.
    pub created: ephemera_proto::DayNumber,
}

impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("roles", &self.roles)
            .field("enabled", &self.enabled)
            .field("must_change_password", &self.must_change_password)
            .field("totp", &self.totp.is_some())
            .field("recovery_codes", &self.recovery_codes.len())
            .finish_non_exhaustive()
    }
}

impl AccountRecord {
    /// Whether it has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// One signed-in session, filed under the SHA-256 of its bearer token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The account it belongs to.
    pub account: String,
    /// When it ends whatever happens (the absolute lifetime), unix seconds.
    pub expires_at: UnixTime,
    /// When it was last used, to the minute (the idle timeout counts from here).
    pub last_used: UnixTime,
}
