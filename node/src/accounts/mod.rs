//! Staff accounts: named accounts with roles, passwords, an optional TOTP second factor with
//! recovery codes, sessions kept in the store as hashes, and sign-in budgets.
//!
//! | file | concept |
//! | --- | --- |
//! | `password.rs` | one-time passwords, PBKDF2 hashes, the rules for a chosen password |
//! | `session.rs` | bearer tokens, filed by hash; idle timeout and lifetime |
//! | `csrf.rs` | CSRF tokens of the console's cookie sessions, bound to the session |
//! | `totp.rs` | RFC 6238 codes and the sealed secret |
//! | `recovery.rs` | one-time recovery codes, kept hashed |
//! | `budget.rs` | failed sign-in budgets per (source, name), source and name |
//! | `directory.rs` | creating, disabling, granting and resetting accounts |
//! | `api_key.rs` | API keys of lab and hospital systems: shown once, kept hashed, scoped |
//!
//! The rules about who may do what to an account are here ([`grantable`],
//! [`parse_roles`]); the node applies them (`crate::node`'s `accounts.rs`).

pub mod api_key;
mod budget;
mod csrf;
pub mod directory;
mod password;
pub(crate) mod recovery;
mod session;
mod totp;

pub(crate) use budget::LoginBudget;
pub(crate) use csrf::{CsrfKey, CsrfRefusal};
pub use password::{MIN_PASSWORD_CHARS, Password, WeakPassword, check_new_password};
pub(crate) use password::{PBKDF2_ITERATIONS, check_password, dummy_record, hash_password};
pub(crate) use session::{SessionToken, is_live, to_minute, token_id};
pub(crate) use totp::TotpSeal;
pub use totp::TotpSecret;

use crate::store::Role;

/// The name of the account created on first start (an admin with every role).
pub(crate) const FIRST_ACCOUNT: &str = "caseworker";
/// The most characters of an account name.
pub const MAX_NAME_CHARS: usize = 64;
/// What [`is_account_name`] requires, as an error states it.
pub const NAME_RULE: &str =
    "must be 1 to 64 ASCII letters, digits, '.', '_', '-' or '@', starting with a letter or digit";

/// Roles by name, sorted and without repeats.
///
/// # Errors
/// The first name that is no role, or `""` for an empty list.
pub fn parse_roles<S: AsRef<str>>(names: &[S]) -> Result<Vec<Role>, String> {
    if names.is_empty() {
        return Err(String::new());
    }
    let mut roles = names
        .iter()
        .map(|name| Role::parse(name.as_ref()).ok_or_else(|| name.as_ref().to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// Whether someone with `granter`'s roles may give `roles`: never above their own.
pub fn grantable(granter: &[Role], roles: &[Role]) -> bool {
    roles.iter().all(|role| granter.contains(role))
}

/// Role names, for answers and the audit trail.
pub fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}

/// Whether `name` may name an account: 1 to 64 ASCII letters, digits, `.`, `_`, `-` and
/// `@`, starting with a letter or digit (it appears in the audit trail, URLs and
/// `otpauth://` URIs).
pub fn is_account_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= MAX_NAME_CHARS
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_sorted_and_grants_stay_within_the_granter() {
        assert_eq!(
            parse_roles(&["auditor", "admin", "auditor"]),
            Ok(vec![Role::Admin, Role::Auditor])
        );
        assert_eq!(parse_roles(&["root"]), Err("root".to_owned()));
        assert_eq!(parse_roles::<&str>(&[]), Err(String::new()));
        let admin = [Role::Admin, Role::CaseWorker];
        assert!(grantable(&admin, &[Role::CaseWorker]));
        assert!(!grantable(&admin, &[Role::BulkIssuer]), "above the granter");
        assert_eq!(role_names(&admin), vec!["admin", "case-worker"]);
    }

    #[test]
    fn account_names_are_plain() {
        assert!(is_account_name("alice.b-c_d@lab"));
        assert!(is_account_name(&"x".repeat(64)));
        for bad in ["", "-alice", "a b", "a/b", "a:b", "Ärztin", &"x".repeat(65)] {
            assert!(!is_account_name(bad), "{bad}");
        }
    }
}
