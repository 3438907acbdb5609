//! The authority role, driven: case workers sign in and issue codes; phones redeem them
//! (`NodeCore::issue_codes`, `NodeCore::redeem_code`), flushed before the answer.

use ephemera_node_core::authority::CodeGrant;
use ephemera_proto::api::{VerifyRequest, VerifyResponse};
use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};
use ephemera_proto::token::{TokenVerifyRequest, TokenVerifyResponse};

use crate::api::error::ApiError;
use crate::api::types::{IssueCodesRequest, IssueCodesResponse, IssuedCode, LoginResponse};
use crate::caseworker::{self, PBKDF2_ITERATIONS};
use crate::clock::civil;

use super::Node;

impl Node {
    /// Signs a case worker in from within the process (tools, tests): as
    /// [`Node::login_from`] with one source shared by every such caller.
    ///
    /// # Errors
    /// As [`Node::login_from`].
    pub async fn login(&self, name: &str, password: &str) -> Result<LoginResponse, ApiError> {
        self.login_from(name, password, crate::server::Source(0))
            .await
    }

    /// Signs a case worker in from `source`. The attempt is charged to `source`'s budgets before the
    /// password is hashed (and given back on success), and the hash runs on the node's
    /// bounded hashing pool, so a burst of guesses neither overruns the budget nor starves
    /// the store's flushes on the blocking pool.
    ///
    /// # Errors
    /// [`ApiError::TooManyAttempts`] when the source's budget for the name or over all
    /// names is spent, [`ApiError::InvalidCredentials`] on a wrong name or password.
    pub async fn login_from(
        &self,
        name: &str,
        password: &str,
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
        let record = self.inner.store.credential(name)?;
        // The trail names an account only when the name is one: a name that is none may
        // be a password typed into the wrong field.
        let actor = match &record {
            Some(_) => AuditActor::Account(name.to_owned()),
            None => AuditActor::UnknownAccount,
        };
        let password = zeroize::Zeroizing::new(password.to_owned());
        // One of the pool's permits per hash: at most that many PBKDF2s run at once, and
        // the rest of the blocking pool (store flushes) stays free.
        let _permit = self
            .inner
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal)?;
        // PBKDF2 takes a while on purpose: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || match record {
            Some(record) => caseworker::check_password(&record, &password),
            None => {
                // Spend the same time on unknown names, so timing does not list names.
                let dummy = crate::store::CredentialRecord {
                    salt: [0; 16],
                    iterations: PBKDF2_ITERATIONS,
                    hash: [0; 32],
                };
                caseworker::check_password(&dummy, &password);
                false
            }
        })
        .await
        .map_err(|_| ApiError::Internal)?;
        if !ok {
            tracing::info!("case-worker sign-in failed");
            return Err(self
                .refused_sign_in(actor, ApiError::InvalidCredentials)
                .await);
        }
        if let Ok(mut budget) = self.inner.login_budget.lock() {
            budget.refund(source.0, name, now);
        }
        self.audit(actor, AuditAction::SignIn, AuditOutcome::Success)?;
        self.inner.flusher.flush().await?;
        let expires_at = now.plus_seconds(self.inner.config.authority.session_lifetime_seconds);
        let token = self
            .inner
            .sessions
            .lock()
            .map_err(|_| ApiError::Internal)?
            .open(name, expires_at, &mut rand::rng());
        tracing::info!("case worker signed in");
        Ok(LoginResponse {
            token: token.0.to_string(),
            expires_at: expires_at.0,
        })
    }

    /// Records a refused sign-in durably; the answer is `error`, or the store's error when
    /// the refusal could not be recorded.
    async fn refused_sign_in(&self, actor: AuditActor, error: ApiError) -> ApiError {
        let outcome = AuditOutcome::Refused(error.code().to_owned());
        if let Err(e) = self.audit(actor, AuditAction::SignIn, outcome) {
            return e.into();
        }
        match self.inner.flusher.flush().await {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    /// The case worker a bearer token belongs to.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`].
    pub fn session(&self, token: &str) -> Result<String, ApiError> {
        self.inner
            .sessions
            .lock()
            .map_err(|_| ApiError::Internal)?
            .check(token, self.now())
            .ok_or(ApiError::Unauthorized)
    }

    /// Ends the session of `token` (which [`Node::session`] checked) and records who
    /// signed out.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] for no open session; [`ApiError::Store`] when the sign-out
    /// cannot be recorded (the session is closed all the same).
    pub async fn logout(&self, token: &str) -> Result<(), ApiError> {
        let account = self.session(token)?;
        if let Ok(mut sessions) = self.inner.sessions.lock() {
            sessions.close(token);
        }
        self.audit(
            AuditActor::Account(account),
            AuditAction::SignOut,
            AuditOutcome::Success,
        )?;
        self.inner.flusher.flush().await?;
        Ok(())
    }

    /// Issues codes for the signed-in case worker `account`; they are stored only as
    /// hashes, and the audit trail records how many of which test type `account` issued.
    ///
    /// # Errors
    /// [`ApiError::InvalidParameter`] for a bad count or onset date, [`ApiError::Store`].
    pub async fn issue_codes(
        &self,
        request: &IssueCodesRequest,
        account: &str,
    ) -> Result<IssueCodesResponse, ApiError> {
        let symptom_onset = match request.symptom_onset.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(civil::parse_date(text).ok_or(ApiError::InvalidParameter {
                name: "symptom_onset",
                reason: "must be a date YYYY-MM-DD",
            })?),
        };
        let grant = CodeGrant {
            test_type: request.test_type.report_type(),
            symptom_onset,
        };
        let count = request.count.unwrap_or(1);
        let issued = self.inner.core.issue_codes(
            self.inner.store.as_ref(),
            grant,
            count,
            self.now(),
            &mut rand::rng(),
        )?;
        self.audit(
            AuditActor::Account(account.to_owned()),
            AuditAction::CodesIssued {
                count,
                test_type: request.test_type.report_type(),
            },
            AuditOutcome::Success,
        )?;
        self.inner.flusher.flush().await?;
        self.inner.metrics.codes_issued(u64::from(count));
        tracing::info!(
            count,
            test_type = request.test_type.as_str(),
            "upload codes issued"
        );
        Ok(IssueCodesResponse {
            test_type: request.test_type,
            symptom_onset: symptom_onset.map(civil::format_date),
            codes: issued
                .codes
                .iter()
                .map(|code| IssuedCode {
                    code: code.reveal(),
                    expires_at: issued.expires_at.0,
                    expires_at_utc: civil::format_time(issued.expires_at),
                })
                .collect(),
        })
    }

    /// Exchanges a code and report HMAC for a signed certificate (`POST /v1/verify`).
    /// Decoys get a random answer of the same size after the same work.
    ///
    /// There is no guessing budget: with 80-bit codes none is needed, and a global one let
    /// any client lock every phone out (and made decoys stand out while it did), see
    /// `docs/SECURITY.md` "Guessing codes".
    ///
    /// # Errors
    /// [`ApiError::Authority`] for a malformed, unknown, used or expired code,
    /// [`ApiError::InsufficientStorage`] while free disk is below the reserve,
    /// [`ApiError::Store`].
    pub async fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, ApiError> {
        let result = self.verify_inner(request).await;
        let outcome = match &result {
            Ok(_) if request.decoy => "decoy",
            Ok(_) => "certified",
            Err(e) => e.code(),
        };
        self.inner.metrics.verification(outcome);
        result
    }

    /// `POST /v2/verify` (sealed only): spends the code and signs, blindly, the phone's
    /// message for the code's class ([`ephemera_node_core::NodeCore::redeem_code_for_token`], on a blocking
    /// thread: an RSA signature takes milliseconds), then flushes before answering. A decoy
    /// does the same work. Like [`Self::verify`], it writes no line.
    ///
    /// # Errors
    /// [`ApiError::Authority`] for a malformed, unknown, used or expired code, blinded
    /// messages that are not for today's keys (nothing spent), or keys not made yet;
    /// [`ApiError::InsufficientStorage`], [`ApiError::Store`], [`ApiError::Internal`].
    pub async fn token_verify(
        &self,
        request: TokenVerifyRequest,
    ) -> Result<TokenVerifyResponse, ApiError> {
        let decoy = request.decoy;
        let result = self.token_verify_inner(request).await;
        let outcome = match &result {
            Ok(_) if decoy => "decoy",
            Ok(_) => "token-signed",
            Err(e) => e.code(),
        };
        self.inner.metrics.verification(outcome);
        result
    }

    async fn token_verify_inner(
        &self,
        request: TokenVerifyRequest,
    ) -> Result<TokenVerifyResponse, ApiError> {
        self.refuse_below_disk_reserve()?;
        let now = self.now();
        if request.decoy {
            self.inner.metrics.decoy("verify");
        }
        let node = self.clone();
        let response = tokio::task::spawn_blocking(move || {
            node.inner.core.redeem_code_for_token(
                node.inner.store.as_ref(),
                &request,
                now,
                &mut rand::rng(),
            )
        })
        .await
        .map_err(|_| ApiError::Internal)??;
        // As for a certificate: the spent code is durable before the signature leaves.
        self.inner.flusher.flush().await?;
        Ok(response)
    }

    async fn verify_inner(&self, request: &VerifyRequest) -> Result<VerifyResponse, ApiError> {
        // Before the code is spent: a certificate could expire while uploads are refused.
        // Decoys are refused alike.
        self.refuse_below_disk_reserve()?;
        let now = self.now();
        if request.decoy {
            self.inner.metrics.decoy("verify");
        }
        let response = self.inner.core.redeem_code(
            self.inner.store.as_ref(),
            request,
            now,
            &mut rand::rng(),
        )?;
        // The code is gone from the store; make that durable before handing out a
        // certificate, so a crash cannot let the same code be used twice. Decoys flush too.
        self.inner.flusher.flush().await?;
        // No line: a dated "certificate issued" would let a proxy's (address, time) log
        // name who verified. `verify` counts the outcome in metrics.
        Ok(response)
    }
}
