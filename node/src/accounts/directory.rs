//! Account management over the store, shared by the HTTP API (an admin) and the command
//! line on a stopped node's data folder (the operator, who holds every role): create,
//! disable and enable, set roles, reset a password, list.
//!
//! Each step reads and writes one account record, so nothing is half written; the callers
//! record it in the audit trail and flush. Password hashing happens here: HTTP callers run
//! these on the node's hashing pool.

use ephemera_proto::UnixTime;
use rand_core::CryptoRng;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::error::ApiError;
use crate::store::{AccountRecord, ReportStore, Role};

use super::{PBKDF2_ITERATIONS, Password, grantable, hash_password, is_account_name, role_names};

/// One account as listed (`GET /v1/accounts`, `ephemera-node users list`): never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccountSummary {
    /// The account's name.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// Whether it may sign in.
    pub enabled: bool,
    /// Whether it has a TOTP second factor.
    pub totp: bool,
    /// Whether its next sign-in must set a new password.
    pub password_change_required: bool,
    /// The day it was created, `YYYY-MM-DD`.
    pub created: String,
}

impl AccountSummary {
    fn of(name: &str, record: &AccountRecord) -> AccountSummary {
        AccountSummary {
            name: name.to_owned(),
            roles: role_names(&record.roles),
            enabled: record.enabled,
            totp: record.totp.is_some(),
            password_change_required: record.must_change_password,
            created: crate::clock::civil::format_date(record.created),
        }
    }
}

/// Every account, by name.
///
/// # Errors
/// [`ApiError::Store`].
pub fn list(store: &dyn ReportStore) -> Result<Vec<AccountSummary>, ApiError> {
    Ok(store
        .accounts()?
        .iter()
        .map(|(name, record)| AccountSummary::of(name, record))
        .collect())
}

fn existing(store: &dyn ReportStore, name: &str) -> Result<AccountRecord, ApiError> {
    store.account(name)?.ok_or(ApiError::UnknownAccount)
}

/// Enabled admins other than `name`.
fn other_admins(store: &dyn ReportStore, name: &str) -> Result<usize, ApiError> {
    Ok(store
        .accounts()?
        .iter()
        .filter(|(other, record)| other != name && record.enabled && record.has(Role::Admin))
        .count())
}

/// A new account with `roles` (which the granter must hold) and a one-time password to
/// show once; its first sign-in must set a new one.
///
/// # Errors
/// [`ApiError::InvalidParameter`] for a bad name, [`ApiError::AboveOwnRoles`],
/// [`ApiError::AccountExists`], [`ApiError::Store`].
pub fn create(
    store: &dyn ReportStore,
    granter: &[Role],
    name: &str,
    roles: &[Role],
    now: UnixTime,
    rng: &mut impl CryptoRng,
) -> Result<Password, ApiError> {
    if !is_account_name(name) {
        return Err(ApiError::InvalidParameter {
            name: "name",
            reason: crate::accounts::NAME_RULE,
        });
    }
    if roles.is_empty() {
        return Err(ApiError::UnknownRole);
    }
    if !grantable(granter, roles) {
        return Err(ApiError::AboveOwnRoles);
    }
    if store.account(name)?.is_some() {
        return Err(ApiError::AccountExists);
    }
    let password = Password::generate(rng);
    let record = AccountRecord {
        roles: roles.to_vec(),
        enabled: true,
        credential: hash_password(password.reveal(), rng, PBKDF2_ITERATIONS),
        must_change_password: true,
        totp: None,
        totp_pending: None,
        recovery_codes: Vec::new(),
        created: now.day(),
    };
    store.put_account(name, &record)?;
    Ok(password)
}

/// Disables (`enabled` false) or enables an account; disabling ends its sessions at once.
/// The last enabled admin is never disabled.
///
/// # Errors
/// [`ApiError::UnknownAccount`], [`ApiError::LastAdmin`], [`ApiError::Store`].
pub fn set_enabled(store: &dyn ReportStore, name: &str, enabled: bool) -> Result<(), ApiError> {
    let mut record = existing(store, name)?;
    if !enabled && record.has(Role::Admin) && other_admins(store, name)? == 0 {
        return Err(ApiError::LastAdmin);
    }
    record.enabled = enabled;
    store.put_account(name, &record)?;
    if !enabled {
        store.remove_sessions(&|s| s.account == name)?;
    }
    Ok(())
}

/// Sets an account's roles. Every role added or taken away must be one the granter holds;
/// the last enabled admin keeps `admin`.
///
/// # Errors
/// [`ApiError::UnknownAccount`], [`ApiError::UnknownRole`] for none,
/// [`ApiError::AboveOwnRoles`], [`ApiError::LastAdmin`], [`ApiError::Store`].
pub fn set_roles(
    store: &dyn ReportStore,
    granter: &[Role],
    name: &str,
    roles: &[Role],
) -> Result<(), ApiError> {
    if roles.is_empty() {
        return Err(ApiError::UnknownRole);
    }
    let mut record = existing(store, name)?;
    let changed: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|role| record.has(*role) != roles.contains(role))
        .collect();
    if !grantable(granter, &changed) {
        return Err(ApiError::AboveOwnRoles);
    }
    if record.enabled
        && record.has(Role::Admin)
        && !roles.contains(&Role::Admin)
        && other_admins(store, name)? == 0
    {
        return Err(ApiError::LastAdmin);
    }
    record.roles = roles.to_vec();
    store.put_account(name, &record)?;
    Ok(())
}

/// Gives an account a new one-time password (to show once) that its next sign-in must
/// replace, and ends its sessions. Its second factor stays unless `clear_totp` (for a person
/// who lost both the authenticator and the recovery codes: the operator's, on the command
/// line).
///
/// # Errors
/// [`ApiError::UnknownAccount`], [`ApiError::Store`].
pub fn reset_password(
    store: &dyn ReportStore,
    name: &str,
    clear_totp: bool,
    rng: &mut impl CryptoRng,
) -> Result<Password, ApiError> {
    let mut record = existing(store, name)?;
    let password = Password::generate(rng);
    record.credential = hash_password(password.reveal(), rng, PBKDF2_ITERATIONS);
    record.must_change_password = true;
    if clear_totp {
        record.totp = None;
        record.totp_pending = None;
        record.recovery_codes.clear();
    }
    store.put_account(name, &record)?;
    store.remove_sessions(&|s| s.account == name)?;
    Ok(password)
}

/// The first account, if the store has none: `caseworker`, an admin with every role and a
/// one-time password. A store from before accounts, with a case worker's credential only,
/// gets that credential as an account with every role and no forced change (its password
/// was generated).
///
/// # Errors
/// [`ApiError::Store`].
pub fn ensure_first(
    store: &dyn ReportStore,
    now: UnixTime,
    rng: &mut impl CryptoRng,
) -> Result<Option<(String, Password)>, ApiError> {
    migrate_legacy(store, now)?;
    if !store.accounts()?.is_empty() {
        return Ok(None);
    }
    let name = super::FIRST_ACCOUNT;
    let password = create(store, &Role::ALL, name, &Role::ALL, now, rng)?;
    Ok(Some((name.to_owned(), password)))
}

/// Turns each case worker's credential from before accounts into an account with every
/// role and no forced change (its password was generated by the node). Idempotent.
///
/// # Errors
/// [`ApiError::Store`].
pub fn migrate_legacy(store: &dyn ReportStore, now: UnixTime) -> Result<(), ApiError> {
    for name in store.credential_names()? {
        if store.account(&name)?.is_none()
            && let Some(credential) = store.credential(&name)?
        {
            let record = AccountRecord {
                roles: Role::ALL.to_vec(),
                enabled: true,
                credential,
                must_change_password: false,
                totp: None,
                totp_pending: None,
                recovery_codes: Vec::new(),
                created: now.day(),
            };
            store.put_account(&name, &record)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::check_password;
    use crate::store::{MemoryReportStore, SessionRecord};

    const NOW: UnixTime = UnixTime(1_800_000_000);

    #[test]
    fn the_first_admin_grants_within_its_roles_and_stays() {
        let store = MemoryReportStore::new();
        let mut rng = rand::rng();
        let (name, password) = ensure_first(&store, NOW, &mut rng).unwrap().unwrap();
        assert!(ensure_first(&store, NOW, &mut rng).unwrap().is_none());
        let admin = store.account(&name).unwrap().unwrap();
        assert_eq!(admin.roles, Role::ALL.to_vec());
        assert!(admin.must_change_password);
        assert!(check_password(&admin.credential, password.reveal()));

        let partial = [Role::Admin, Role::CaseWorker];
        assert!(matches!(
            create(&store, &partial, "bob", &[Role::Auditor], NOW, &mut rng),
            Err(ApiError::AboveOwnRoles)
        ));
        create(&store, &partial, "bob", &[Role::CaseWorker], NOW, &mut rng).unwrap();
        assert!(matches!(
            create(&store, &partial, "bob", &[Role::CaseWorker], NOW, &mut rng),
            Err(ApiError::AccountExists)
        ));
        assert!(matches!(
            set_roles(
                &store,
                &partial,
                "bob",
                &[Role::CaseWorker, Role::BulkIssuer]
            ),
            Err(ApiError::AboveOwnRoles)
        ));
        // The last enabled admin can be neither disabled nor demoted.
        assert!(matches!(
            set_enabled(&store, &name, false),
            Err(ApiError::LastAdmin)
        ));
        assert!(matches!(
            set_roles(&store, &Role::ALL, &name, &[Role::Auditor]),
            Err(ApiError::LastAdmin)
        ));
        set_roles(&store, &Role::ALL, "bob", &[Role::Admin]).unwrap();
        set_enabled(&store, &name, false).unwrap();
        assert!(matches!(
            set_enabled(&store, "bob", false),
            Err(ApiError::LastAdmin)
        ));
        assert!(matches!(
            set_enabled(&store, "nobody", false),
            Err(ApiError::UnknownAccount)
        ));
        let listed = list(&store).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].name, "bob");
        assert_eq!(listed[0].roles, vec!["admin"]);
        assert!(!listed[1].enabled);
    }

    #[test]
    fn disabling_and_resetting_end_sessions_and_a_legacy_credential_becomes_an_account() {
        let store = MemoryReportStore::new();
        let mut rng = rand::rng();
        let legacy = hash_password("old generated one", &mut rng, 1000);
        store.put_credential("caseworker", &legacy).unwrap();
        assert!(ensure_first(&store, NOW, &mut rng).unwrap().is_none());
        let migrated = store.account("caseworker").unwrap().unwrap();
        assert_eq!(migrated.roles, Role::ALL.to_vec());
        assert!(!migrated.must_change_password);
        create(&store, &Role::ALL, "eve", &[Role::Auditor], NOW, &mut rng).unwrap();
        let session = SessionRecord {
            account: "eve".into(),
            expires_at: NOW.plus_seconds(60),
            last_used: NOW,
        };
        store.put_session(&[1; 32], &session).unwrap();
        set_enabled(&store, "eve", false).unwrap();
        assert_eq!(store.session(&[1; 32]).unwrap(), None);
        store.put_session(&[2; 32], &session).unwrap();
        store
            .put_account(
                "eve",
                &AccountRecord {
                    totp: Some(vec![1; 48]),
                    recovery_codes: vec![[2; 32]],
                    ..store.account("eve").unwrap().unwrap()
                },
            )
            .unwrap();
        reset_password(&store, "eve", false, &mut rng).unwrap();
        assert!(
            store.account("eve").unwrap().unwrap().totp.is_some(),
            "kept"
        );
        let fresh = reset_password(&store, "eve", true, &mut rng).unwrap();
        assert_eq!(store.session(&[2; 32]).unwrap(), None);
        let eve = store.account("eve").unwrap().unwrap();
        assert!(eve.must_change_password && check_password(&eve.credential, fresh.reveal()));
        assert!(
            eve.totp.is_none() && eve.recovery_codes.is_empty(),
            "cleared"
        );
        assert!(matches!(
            create(&store, &Role::ALL, "a b", &[Role::Auditor], NOW, &mut rng),
            Err(ApiError::InvalidParameter { .. })
        ));
    }
}
