//! Staff accounts, driven: sign-in (password, then TOTP or a recovery code), sessions kept
//! in the store as hashes of their tokens, the restrictions of a session that must change
//! its password or enrol TOTP first, an account's own settings and an admin's management.
//! Every step is recorded in the audit trail (never a password, code, token or address)
//! and flushed with its own writes before the answer.

use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};
use zeroize::Zeroizing;

use crate::accounts::{
    self, SessionToken, TotpSecret, check_new_password, directory, is_live, recovery, to_minute,
    token_id,
};
use crate::api::error::ApiError;
use crate::api::types::{
    LoginResponse, OneTimePassword, RecoveryCodes, SessionInfo, TotpEnrolment,
};
use crate::store::{AccountRecord, Role, SessionRecord};

use super::{Node, NodeError};

/// What a sign-in presents beside the name and password.
#[derive(Default)]
pub struct SecondFactor {
    /// A TOTP code.
    pub totp: Option<Zeroizing<String>>,
    /// A recovery code.
    pub recovery_code: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactor").finish_non_exhaustive()
    }
}

/// A live session, checked.
#[derive(Clone, Debug)]
pub struct Session {
    /// The account.
    pub account: String,
    /// Its record as of this request.
    record: AccountRecord,
    /// When the session ends at the latest.
    expires_at: ephemera_proto::UnixTime,
    /// The SHA-256 of its token.
    pub(super) id: [u8; 32],
}

impl Session {
    /// Its account's roles.
    pub fn roles(&self) -> &[Role] {
        &self.record.roles
    }

    /// Whether its account has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.record.has(role)
    }
}

/// What a request needs of its session beyond being live.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Only to be live: setting a password, enrolling TOTP, signing out, `GET /v1/session`.
    Live,
    /// A session free of restrictions, with any role.
    Any,
    /// A session free of restrictions whose account has one of these roles.
    OneOf(&'static [Role]),
}

/// Roles by name, for the API.
fn parse_roles(names: &[String]) -> Result<Vec<Role>, ApiError> {
    accounts::parse_roles(names).map_err(|_| ApiError::UnknownRole)
}

/// An account name as the audit trail may keep it: a name that cannot be one (it may be a
/// password typed into the wrong field) is not kept.
fn trail_name(name: &str) -> String {
    if accounts::is_account_name(name) {
        name.to_owned()
    } else {
        "(invalid-name)".to_owned()
    }
}

/// Roles as the audit trail may keep them: only role names, never other text sent.
fn trail_roles(names: &[String]) -> Vec<String> {
    parse_roles(names).map_or_else(
        |_| vec!["(unknown-role)".to_owned()],
        |roles| accounts::role_names(&roles),
    )
}

impl Node {
    /// Signs a staff account in from within the process (tools, tests): as
    /// [`Node::login_from`] with one source shared by every such caller and no second
    /// factor.
    ///
    /// # Errors
    /// As [`Node::login_from`].
    pub async fn login(&self, name: &str, password: &str) -> Result<LoginResponse, ApiError> {
        self.login_from(
            name,
            password,
            SecondFactor::default(),
            crate::server::Source(0),
        )
        .await
    }

    /// Signs a staff account in from `source`. The attempt is charged to the budgets of the
    /// source, of the (source, name) pair and of the name before the password is hashed
    /// (and given back on success), and the hash runs on the node's bounded hashing pool.
    /// The name is charged alike whether or not it is an account's, and an unknown name
    /// costs the same hash, so neither the answer nor its time tells names apart.
    ///
    /// # Errors
    /// [`ApiError::TooManyAttempts`] when a budget is spent; [`ApiError::InvalidCredentials`]
    /// on a wrong name or password, a disabled account, or a wrong second factor;
    /// [`ApiError::TotpRequired`] when the password is right and the account's second factor
    /// is missing.
    pub async fn login_from(
        &self,
        name: &str,
        password: &str,
        second: SecondFactor,
        source: crate::server::Source,
    ) -> Result<LoginResponse, ApiError> {
        let now = self.now();
        let charged = self
            .inner
            .login_budget
            .lock()
            .map_err(|_| ApiError::Internal)?
            .charge(source.0, name, now);
        // Over budget: refused before any store access and not recorded, so one source can
        // write at most its budget of refusals to the trail, not one per request.
        if !charged {
            return Err(ApiError::TooManyAttempts);
        }
        let record = self.inner.store.account(name)?;
        // The trail names an account only when the name is one: a name that is none may
        // be a password typed into the wrong field.
        let actor = match &record {
            Some(_) => AuditActor::Account(name.to_owned()),
            None => AuditActor::UnknownAccount,
        };
        let credential = record
            .as_ref()
            .map_or_else(accounts::dummy_record, |r| r.credential.clone());
        let password = Zeroizing::new(password.to_owned());
        let ok = self
            .hashing(move || accounts::check_password(&credential, &password))
            .await?;
        let Some(mut record) = record.filter(|_| ok) else {
            tracing::info!("staff sign-in failed");
            return Err(self
                .refused(actor, AuditAction::SignIn, ApiError::InvalidCredentials)
                .await);
        };
        if !record.enabled {
            // The same answer as a wrong password: only the trail says why.
            return Err(self
                .refused_as(
                    actor,
                    AuditAction::SignIn,
                    "account-disabled",
                    ApiError::InvalidCredentials,
                )
                .await);
        }
        if let Some(sealed) = record.totp.clone() {
            let refund = |node: &Node| {
                if let Ok(mut budget) = node.inner.login_budget.lock() {
                    budget.refund(source.0, name, now);
                }
            };
            match (&second.totp, &second.recovery_code) {
                (Some(code), _) => {
                    let secret = self
                        .inner
                        .totp_seal
                        .open(name, &sealed)
                        .ok_or(ApiError::Internal)?;
                    let taken = {
                        let mut steps = self
                            .inner
                            .totp_steps
                            .lock()
                            .map_err(|_| ApiError::Internal)?;
                        let step = secret.check(code, now, steps.get(name).copied());
                        if let Some(step) = step {
                            steps.insert(name.to_owned(), step);
                        }
                        step.is_some()
                    };
                    if !taken {
                        return Err(self
                            .refused_as(
                                actor,
                                AuditAction::SignIn,
                                "invalid-totp",
                                ApiError::InvalidCredentials,
                            )
                            .await);
                    }
                }
                (None, Some(code)) => {
                    // Spent under the accounts lock on a fresh read: two sign-ins with one
                    // code cannot both take it.
                    let spent = self.update_account(name, |fresh| {
                        let spent = recovery::spend(name, code, &mut fresh.recovery_codes);
                        record = fresh.clone();
                        Ok(spent)
                    })?;
                    if !spent {
                        return Err(self
                            .refused_as(
                                actor,
                                AuditAction::RecoveryCodeUsed,
                                "invalid-recovery-code",
                                ApiError::InvalidCredentials,
                            )
                            .await);
                    }
                    self.audit(
                        actor.clone(),
                        AuditAction::RecoveryCodeUsed,
                        AuditOutcome::Success,
                    )?;
                }
                (None, None) => {
                    // The password was right: this is no guess, and costs none.
                    refund(self);
                    return Err(self
                        .refused(actor, AuditAction::SignIn, ApiError::TotpRequired)
                        .await);
                }
            }
        }
        if let Ok(mut budget) = self.inner.login_budget.lock() {
            budget.refund(source.0, name, now);
        }
        let idle = self.inner.config.authority.session_idle_seconds;
        // Sessions that ended on their own go as others begin.
        self.inner
            .store
            .remove_sessions(&|s| !is_live(s, now, idle))?;
        let token = SessionToken::generate(&mut rand::rng());
        let expires_at = now.plus_seconds(self.inner.config.authority.session_lifetime_seconds);
        self.inner.store.put_session(
            &token_id(&token.0),
            &SessionRecord {
                account: name.to_owned(),
                expires_at,
                last_used: to_minute(now),
            },
        )?;
        self.audit(actor, AuditAction::SignIn, AuditOutcome::Success)?;
        self.inner.flusher.flush().await?;
        tracing::info!("staff account signed in");
        Ok(LoginResponse {
            token: token.0.to_string(),
            expires_at: expires_at.0,
            account: name.to_owned(),
            roles: accounts::role_names(&record.roles),
            password_change_required: record.must_change_password,
            totp_enrolment_required: self.totp_enrolment_required(&record),
        })
    }

    /// Applies `change` to a fresh read of `name`'s record and writes it back, under the
    /// accounts lock, so that concurrent changes (a recovery code spent twice, an admin's
    /// change during a password change) never overwrite each other.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] when the account is gone or disabled meanwhile; `change`'s
    /// error (nothing written); [`ApiError::Store`].
    fn update_account<T>(
        &self,
        name: &str,
        change: impl FnOnce(&mut AccountRecord) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let _changing = self
            .inner
            .accounts_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut record = match self.inner.store.account(name)? {
            Some(record) if record.enabled => record,
            _ => return Err(ApiError::Unauthorized),
        };
        let value = change(&mut record)?;
        self.inner.store.put_account(name, &record)?;
        Ok(value)
    }

    fn totp_enrolment_required(&self, record: &AccountRecord) -> bool {
        self.inner.config.authority.require_totp && record.totp.is_none()
    }

    /// Runs `work` (a password hash) on a blocking thread under one of the hashing pool's
    /// permits: at most that many run at once, and the rest of the blocking pool (store
    /// flushes) and a core stay free.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        super::bounded_blocking(&self.inner.hashing, work).await
    }

    /// Records a refusal of `action` durably, with `error`'s code; the answer is `error`,
    /// or the store's error when the refusal could not be recorded.
    pub(super) async fn refused(
        &self,
        actor: AuditActor,
        action: AuditAction,
        error: ApiError,
    ) -> ApiError {
        let code = error.code();
        self.refused_as(actor, action, code, error).await
    }

    /// As [`Self::refused`], recording `code` rather than the answer's.
    async fn refused_as(
        &self,
        actor: AuditActor,
        action: AuditAction,
        code: &str,
        error: ApiError,
    ) -> ApiError {
        let outcome = AuditOutcome::Refused(code.to_owned());
        if let Err(e) = self.audit(actor, action, outcome) {
            return e.into();
        }
        match self.inner.flusher.flush().await {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    /// The live session of a bearer token, checked against `need`. A session past its
    /// lifetime or idle timeout, of a disabled account, or signed out, is none. Use within
    /// a minute of the last moves the idle timeout on (kept to the minute).
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] for no live session; [`ApiError::PasswordChangeRequired`]
    /// or [`ApiError::TotpEnrolmentRequired`] for a restricted one; [`ApiError::Forbidden`]
    /// without a needed role; [`ApiError::Store`].
    pub fn authorize(&self, token: &str, need: Need) -> Result<Session, ApiError> {
        let now = self.now();
        let id = token_id(token);
        let store = &self.inner.store;
        let Some(mut session) = store.session(&id)? else {
            return Err(ApiError::Unauthorized);
        };
        if !is_live(
            &session,
            now,
            self.inner.config.authority.session_idle_seconds,
        ) {
            store.remove_session(&id)?;
            return Err(ApiError::Unauthorized);
        }
        let record = match store.account(&session.account)? {
            Some(record) if record.enabled => record,
            _ => {
                store.remove_session(&id)?;
                return Err(ApiError::Unauthorized);
            }
        };
        let minute = to_minute(now);
        if session.last_used < minute {
            session.last_used = minute;
            store.put_session(&id, &session)?;
        }
        if need != Need::Live {
            if record.must_change_password {
                return Err(ApiError::PasswordChangeRequired);
            }
            if self.totp_enrolment_required(&record) {
                return Err(ApiError::TotpEnrolmentRequired);
            }
        }
        if let Need::OneOf(roles) = need
            && !roles.iter().any(|role| record.has(*role))
        {
            return Err(ApiError::Forbidden {
                role: roles.first().map_or("admin", |r| r.as_str()),
            });
        }
        Ok(Session {
            account: session.account,
            record,
            expires_at: session.expires_at,
            id,
        })
    }

    /// The account a bearer token belongs to, for a session free of restrictions.
    ///
    /// # Errors
    /// As [`Node::authorize`].
    pub fn session(&self, token: &str) -> Result<String, ApiError> {
        Ok(self.authorize(token, Need::Any)?.account)
    }

    /// `GET /v1/session`: who a live session is.
    ///
    /// # Errors
    /// As [`Node::authorize`].
    pub fn session_info(&self, token: &str) -> Result<SessionInfo, ApiError> {
        let session = self.authorize(token, Need::Live)?;
        Ok(SessionInfo {
            roles: accounts::role_names(session.roles()),
            totp: session.record.totp.is_some(),
            password_change_required: session.record.must_change_password,
            totp_enrolment_required: self.totp_enrolment_required(&session.record),
            expires_at: session.expires_at.0,
            account: session.account,
        })
    }

    /// Ends the session of `token` and records who signed out.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] for no live session; [`ApiError::Store`] when the
    /// sign-out cannot be recorded (the session is ended all the same).
    pub async fn logout(&self, token: &str) -> Result<(), ApiError> {
        let session = self.authorize(token, Need::Live)?;
        self.inner.store.remove_session(&session.id)?;
        self.audit(
            AuditActor::Account(session.account),
            AuditAction::SignOut,
            AuditOutcome::Success,
        )?;
        self.inner.flusher.flush().await?;
        Ok(())
    }

    /// Ends every session of the account `token` belongs to (sign-out everywhere).
    ///
    /// # Errors
    /// As [`Node::logout`].
    pub async fn logout_everywhere(&self, token: &str) -> Result<(), ApiError> {
        let session = self.authorize(token, Need::Live)?;
        let account = session.account;
        self.inner
            .store
            .remove_sessions(&|s| s.account == account)?;
        self.audit(
            AuditActor::Account(account.clone()),
            AuditAction::SessionsRevoked { account },
            AuditOutcome::Success,
        )?;
        self.inner.flusher.flush().await?;
        Ok(())
    }

    /// Sets a new password for the account of `token`, which must give its current one.
    /// Lifts the forced change; the account's other sessions end, this one stays.
    ///
    /// # Errors
    /// [`ApiError::InvalidCredentials`] for a wrong current password (charged to the sign-in
    /// budgets), [`ApiError::WeakPassword`], [`ApiError::TooManyAttempts`], and as
    /// [`Node::authorize`].
    pub async fn change_password(
        &self,
        token: &str,
        current: &str,
        new: &str,
        source: crate::server::Source,
    ) -> Result<(), ApiError> {
        let session = self.authorize(token, Need::Live)?;
        let name = session.account.clone();
        let actor = AuditActor::Account(name.clone());
        if let Err(weak) = check_new_password(&name, new) {
            return Err(self
                .refused(
                    actor,
                    AuditAction::PasswordChanged,
                    ApiError::WeakPassword {
                        reason: weak.reason(),
                    },
                )
                .await);
        }
        let now = self.now();
        let charged = self
            .inner
            .login_budget
            .lock()
            .map_err(|_| ApiError::Internal)?
            .charge(source.0, &name, now);
        if !charged {
            return Err(ApiError::TooManyAttempts);
        }
        let credential = session.record.credential.clone();
        let current = Zeroizing::new(current.to_owned());
        let new = Zeroizing::new(new.to_owned());
        let checked = self
            .hashing(move || {
                if !accounts::check_password(&credential, &current) {
                    return Err(ApiError::InvalidCredentials);
                }
                if bool::from(subtle::ConstantTimeEq::ct_eq(
                    current.as_bytes(),
                    new.as_bytes(),
                )) {
                    return Err(ApiError::WeakPassword {
                        reason: "must differ from the current one",
                    });
                }
                Ok(accounts::hash_password(
                    &new,
                    &mut rand::rng(),
                    accounts::PBKDF2_ITERATIONS,
                ))
            })
            .await?;
        if !matches!(checked, Err(ApiError::InvalidCredentials))
            && let Ok(mut budget) = self.inner.login_budget.lock()
        {
            budget.refund(source.0, &name, now);
        }
        let fresh = match checked {
            Ok(fresh) => fresh,
            Err(error) => {
                return Err(self
                    .refused(actor, AuditAction::PasswordChanged, error)
                    .await);
            }
        };
        // On a fresh read: an admin may have changed the account while the hash ran.
        self.update_account(&name, |record| {
            record.credential = fresh;
            record.must_change_password = false;
            Ok(())
        })?;
        // Whoever else held a session under the old password is signed out.
        let store = &self.inner.store;
        store.remove_sessions(&|s| s.account == name)?;
        store.put_session(
            &session.id,
            &SessionRecord {
                account: name.clone(),
                expires_at: session.expires_at,
                last_used: to_minute(now),
            },
        )?;
        self.audit(actor, AuditAction::PasswordChanged, AuditOutcome::Success)?;
        self.inner.flusher.flush().await?;
        Ok(())
    }

    /// Starts enrolling a TOTP second factor for the account of `token`: a new secret,
    /// shown once, that takes effect when [`Node::confirm_totp`] gets a code from it.
    ///
    /// # Errors
    /// As [`Node::authorize`] (a session that must change its password first may not).
    pub async fn begin_totp(&self, token: &str) -> Result<TotpEnrolment, ApiError> {
        let session = self.authorize(token, Need::Live)?;
        if session.record.must_change_password {
            return Err(ApiError::PasswordChangeRequired);
        }
        let name = session.account;
        let secret = TotpSecret::generate(&mut rand::rng());
        let sealed = self.inner.totp_seal.seal(&name, &secret, &mut rand::rng());
        self.update_account(&name, |record| {
            record.totp_pending = Some(sealed);
            Ok(())
        })?;
        self.inner.flusher.flush().await?;
        Ok(TotpEnrolment {
            secret: secret.to_base32().to_string(),
            uri: secret.uri("Ephemera", &name).to_string(),
        })
    }

    /// Confirms a TOTP enrolment with a code from its secret: the secret becomes the
    /// account's second factor, and a new set of recovery codes is shown once.
    ///
    /// # Errors
    /// [`ApiError::InvalidTotpCode`] for a wrong code or no enrolment under way, and as
    /// [`Node::begin_totp`].
    pub async fn confirm_totp(&self, token: &str, code: &str) -> Result<RecoveryCodes, ApiError> {
        let session = self.authorize(token, Need::Live)?;
        if session.record.must_change_password {
            return Err(ApiError::PasswordChangeRequired);
        }
        let name = session.account;
        let actor = AuditActor::Account(name.clone());
        let pending = session.record.totp_pending;
        let secret = pending
            .as_deref()
            .and_then(|sealed| self.inner.totp_seal.open(&name, sealed));
        let step = secret
            .as_ref()
            .and_then(|secret| secret.check(code, self.now(), None));
        let Some(step) = step else {
            return Err(self
                .refused(actor, AuditAction::TotpEnrolled, ApiError::InvalidTotpCode)
                .await);
        };
        if let Ok(mut steps) = self.inner.totp_steps.lock() {
            steps.insert(name.clone(), step);
        }
        self.issue_recovery_codes(name, |record| {
            // The enrolment confirmed is still the one under way (not replaced meanwhile).
            if record.totp_pending.is_none() || record.totp_pending != pending {
                return Err(ApiError::InvalidTotpCode);
            }
            record.totp = record.totp_pending.take();
            Ok(Some(AuditAction::TotpEnrolled))
        })
        .await
    }

    /// Gives `name` a new set of recovery codes once `first` (on a fresh read, under the
    /// accounts lock) allows it, records it (and `first`'s action) and flushes: the codes to
    /// show once.
    async fn issue_recovery_codes(
        &self,
        name: String,
        first: impl FnOnce(&mut AccountRecord) -> Result<Option<AuditAction>, ApiError>,
    ) -> Result<RecoveryCodes, ApiError> {
        let (codes, hashes) = recovery::generate(&name, &mut rand::rng());
        let before = self.update_account(&name, |record| {
            let before = first(record)?;
            if record.totp.is_none() {
                return Err(ApiError::TotpNotEnrolled);
            }
            record.recovery_codes = hashes;
            Ok(before)
        })?;
        let actor = AuditActor::Account(name);
        if let Some(action) = before {
            self.audit(actor.clone(), action, AuditOutcome::Success)?;
        }
        self.audit(
            actor,
            AuditAction::RecoveryCodesIssued,
            AuditOutcome::Success,
        )?;
        self.inner.flusher.flush().await?;
        Ok(RecoveryCodes {
            codes: codes.iter().map(|c| c.to_string()).collect(),
        })
    }

    /// A new set of recovery codes for the account of `token` (the old set stops working),
    /// shown once.
    ///
    /// # Errors
    /// [`ApiError::TotpNotEnrolled`], and as [`Node::authorize`].
    pub async fn renew_recovery_codes(&self, token: &str) -> Result<RecoveryCodes, ApiError> {
        let session = self.authorize(token, Need::Any)?;
        self.issue_recovery_codes(session.account, |_| Ok(None))
            .await
    }

    /// `GET /v1/accounts`: every account (admins only).
    ///
    /// # Errors
    /// As [`Node::authorize`].
    pub fn list_accounts(&self, token: &str) -> Result<Vec<directory::AccountSummary>, ApiError> {
        self.authorize(token, Need::OneOf(&[Role::Admin]))?;
        directory::list(self.inner.store.as_ref())
    }

    /// Runs an admin's change `work` (on the hashing pool: it may hash a password), then
    /// records `action` with its outcome and flushes.
    async fn admin_change<T: Send + 'static>(
        &self,
        token: &str,
        action: AuditAction,
        work: impl FnOnce(&Node, &[Role]) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let admin = self.authorize(token, Need::OneOf(&[Role::Admin]))?;
        let actor = AuditActor::Account(admin.account.clone());
        let node = self.clone();
        let result = self
            .hashing(move || {
                // One change at a time: the last-admin rule reads every account.
                let _changing = node
                    .inner
                    .accounts_lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                work(&node, admin.roles())
            })
            .await?;
        match result {
            Ok(value) => {
                self.audit(actor, action, AuditOutcome::Success)?;
                self.inner.flusher.flush().await?;
                Ok(value)
            }
            Err(error) => Err(self.refused(actor, action, error).await),
        }
    }

    /// `POST /v1/accounts`: an admin creates an account with roles up to its own; the
    /// one-time password is shown once.
    ///
    /// # Errors
    /// [`ApiError::UnknownRole`], [`ApiError::AboveOwnRoles`], [`ApiError::AccountExists`],
    /// [`ApiError::InvalidParameter`], and as [`Node::authorize`].
    pub async fn create_account(
        &self,
        token: &str,
        name: &str,
        roles: &[String],
    ) -> Result<OneTimePassword, ApiError> {
        let action = AuditAction::AccountCreated {
            account: trail_name(name),
            roles: trail_roles(roles),
        };
        let name = name.to_owned();
        let roles = roles.to_vec();
        self.admin_change(token, action, move |node, granter| {
            let roles = parse_roles(&roles)?;
            let password = directory::create(
                node.inner.store.as_ref(),
                granter,
                &name,
                &roles,
                node.now(),
                &mut rand::rng(),
            )?;
            Ok(OneTimePassword {
                name,
                password: password.reveal().to_owned(),
            })
        })
        .await
    }

    /// `POST /v1/accounts/{name}/disable` and `/enable`: an admin disables an account (its
    /// sessions end at once) or enables it again.
    ///
    /// # Errors
    /// [`ApiError::UnknownAccount`], [`ApiError::LastAdmin`], and as [`Node::authorize`].
    pub async fn set_account_enabled(
        &self,
        token: &str,
        name: &str,
        enabled: bool,
    ) -> Result<(), ApiError> {
        let account = name.to_owned();
        let action = if enabled {
            AuditAction::AccountEnabled { account }
        } else {
            AuditAction::AccountDisabled { account }
        };
        let name = name.to_owned();
        self.admin_change(token, action, move |node, _| {
            directory::set_enabled(node.inner.store.as_ref(), &name, enabled)
        })
        .await
    }

    /// `POST /v1/accounts/{name}/roles`: an admin sets an account's roles.
    ///
    /// # Errors
    /// [`ApiError::UnknownRole`], [`ApiError::AboveOwnRoles`], [`ApiError::LastAdmin`],
    /// [`ApiError::UnknownAccount`], and as [`Node::authorize`].
    pub async fn set_account_roles(
        &self,
        token: &str,
        name: &str,
        roles: &[String],
    ) -> Result<(), ApiError> {
        let action = AuditAction::RolesChanged {
            account: trail_name(name),
            roles: trail_roles(roles),
        };
        let name = name.to_owned();
        let roles = roles.to_vec();
        self.admin_change(token, action, move |node, granter| {
            let roles = parse_roles(&roles)?;
            directory::set_roles(node.inner.store.as_ref(), granter, &name, &roles)
        })
        .await
    }

    /// `POST /v1/accounts/{name}/reset-password`: an admin gives an account a one-time
    /// password (shown once) that its next sign-in must replace; its sessions end.
    ///
    /// # Errors
    /// [`ApiError::UnknownAccount`], and as [`Node::authorize`].
    pub async fn reset_account_password(
        &self,
        token: &str,
        name: &str,
    ) -> Result<OneTimePassword, ApiError> {
        let action = AuditAction::PasswordReset {
            account: name.to_owned(),
        };
        let name = name.to_owned();
        self.admin_change(token, action, move |node, _| {
            let password = directory::reset_password(
                node.inner.store.as_ref(),
                &name,
                false,
                &mut rand::rng(),
            )?;
            Ok(OneTimePassword {
                name,
                password: password.reveal().to_owned(),
            })
        })
        .await
    }

    /// Creates the first account if there is none (and turns a case worker's credential
    /// from before accounts into an account); returns its name and one-time password.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub fn ensure_first_account(&self) -> Result<Option<(String, accounts::Password)>, NodeError> {
        let created =
            directory::ensure_first(self.inner.store.as_ref(), self.now(), &mut rand::rng())
                .map_err(|e| match e {
                    ApiError::Store(e) => NodeError::Store(e),
                    _ => NodeError::Task,
                })?;
        if let Some((name, _)) = &created {
            self.audit(
                AuditActor::Operator,
                AuditAction::AccountCreated {
                    account: name.clone(),
                    roles: accounts::role_names(&Role::ALL),
                },
                AuditOutcome::Success,
            )?;
        }
        self.inner.store.flush()?;
        Ok(created)
    }

    /// Creates an account with `roles` as the operator (tools, load tests); returns its
    /// one-time password, which its first sign-in must replace.
    ///
    /// # Errors
    /// [`ApiError::AccountExists`], [`ApiError::InvalidParameter`], [`ApiError::Store`].
    pub fn add_account(&self, name: &str, roles: &[Role]) -> Result<accounts::Password, ApiError> {
        let password = directory::create(
            self.inner.store.as_ref(),
            &Role::ALL,
            name,
            roles,
            self.now(),
            &mut rand::rng(),
        )?;
        self.audit(
            AuditActor::Operator,
            AuditAction::AccountCreated {
                account: name.to_owned(),
                roles: accounts::role_names(roles),
            },
            AuditOutcome::Success,
        )?;
        self.inner.store.flush()?;
        Ok(password)
    }
}
