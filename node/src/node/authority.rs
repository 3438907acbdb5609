//! The authority role, driven: staff issue codes (sign-in is `accounts.rs`); phones redeem
//! them (`NodeCore::issue_codes`, `NodeCore::redeem_code`), flushed before the answer.

use ephemera_node_core::authority::CodeGrant;
use ephemera_node_core::store::{CodeReference, CodeStatusRecord, RevokeOutcome};
use ephemera_proto::api::{VerifyRequest, VerifyResponse};
use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};
use ephemera_proto::token::{TokenVerifyRequest, TokenVerifyResponse};

use crate::api::error::ApiError;
use crate::api::types::{
    CodeStatusInfo, IssueCodesRequest, IssueCodesResponse, IssuedCode, TestType,
};
use crate::clock::civil;

use super::{KeyHolder, Node};

/// Who issues codes: a signed-in staff account, or a lab or hospital system's API key.
#[derive(Debug)]
pub enum Issuer {
    /// A staff account, by name.
    Account(String),
    /// An API key, live as of this request.
    Key(KeyHolder),
}

impl Issuer {
    /// Who the audit trail names.
    fn actor(&self) -> AuditActor {
        match self {
            Issuer::Account(name) => AuditActor::Account(name.clone()),
            Issuer::Key(key) => AuditActor::ApiKey(hex::encode(key.id)),
        }
    }

    /// Whether it may look up or revoke the code of `record`: an account any, a key only
    /// those it issued.
    fn may_see(&self, record: &CodeStatusRecord) -> Result<(), ApiError> {
        match self {
            Issuer::Account(_) => Ok(()),
            Issuer::Key(key) if record.issued_by_key == Some(key.id) => Ok(()),
            Issuer::Key(_) => Err(ApiError::ForeignCodeReference),
        }
    }

    /// What its daily quota is counted under.
    fn quota_subject(&self) -> String {
        match self {
            Issuer::Account(name) => format!("account:{name}"),
            Issuer::Key(key) => format!("key:{}", hex::encode(key.id)),
        }
    }
}

impl Node {
    /// Issues codes for `issuer` (a signed-in case worker or an API key); they are stored
    /// only as hashes, and the audit trail records their references and test type (never
    /// the codes) under the issuer. A key issues only the test types of its scope; each
    /// issuer's codes per UTC day are bounded by `[authority] api_key_daily_codes` or
    /// `account_daily_codes` (a request with a count out of range spends nothing; one
    /// refused for its onset does).
    ///
    /// # Errors
    /// [`ApiError::InvalidParameter`] for a bad count or onset date,
    /// [`ApiError::OutsideKeyScope`], [`ApiError::QuotaExceeded`] (with the seconds to
    /// midnight UTC), [`ApiError::Sunset`] once a sunset order stopped the node,
    /// [`ApiError::Store`].
    pub async fn issue_codes(
        &self,
        request: &IssueCodesRequest,
        issuer: &Issuer,
    ) -> Result<IssueCodesResponse, ApiError> {
        self.refuse_after_sunset()?;
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
            issued_by_key: match issuer {
                Issuer::Account(_) => None,
                Issuer::Key(key) => Some(key.id),
            },
        };
        let count = request.count.unwrap_or(1);
        let test_type = request.test_type.report_type();
        let refused_action = || AuditAction::CodesIssuedWithReferences {
            test_type,
            references: Vec::new(),
        };
        if let Issuer::Key(key) = issuer
            && !key.record.allows(test_type)
        {
            let error = ApiError::OutsideKeyScope;
            return Err(self.refused(issuer.actor(), refused_action(), error).await);
        }
        let max = self.inner.core.policy().max_codes_per_request;
        if (1..=max).contains(&count) {
            let authority = &self.inner.config.authority;
            let limit = match issuer {
                Issuer::Account(_) => authority.account_daily_codes,
                Issuer::Key(_) => authority.api_key_daily_codes,
            };
            let now = self.now();
            let day = now.day();
            let subject = issuer.quota_subject();
            if !self.inner.store.charge_quota(&subject, day, count, limit)? {
                let seconds = day.plus(1).start().0.saturating_sub(now.0);
                let error = ApiError::QuotaExceeded {
                    retry_after: u32::try_from(seconds).unwrap_or(u32::MAX),
                };
                return Err(self.refused(issuer.actor(), refused_action(), error).await);
            }
        }
        let issued = self.inner.core.issue_codes(
            self.inner.store.as_ref(),
            grant,
            count,
            self.now(),
            &mut rand::rng(),
        )?;
        self.audit(
            issuer.actor(),
            AuditAction::CodesIssuedWithReferences {
                test_type,
                references: issued.references.iter().map(|r| r.to_string()).collect(),
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
                .zip(&issued.references)
                .map(|(code, reference)| IssuedCode {
                    code: code.reveal(),
                    expires_at: issued.expires_at.0,
                    expires_at_utc: civil::format_time(issued.expires_at),
                    reference: reference.to_string(),
                })
                .collect(),
        })
    }

    /// Where the code filed under `reference` stands, for `asker`: a signed-in account
    /// sees any code of this authority (references are not secret, and every look-up is
    /// audited), an API key only the codes it issued.
    ///
    /// # Errors
    /// [`ApiError::UnknownCodeReference`], [`ApiError::ForeignCodeReference`],
    /// [`ApiError::Store`].
    pub async fn code_status(
        &self,
        reference: &CodeReference,
        asker: &Issuer,
    ) -> Result<CodeStatusInfo, ApiError> {
        let record = self.inner.store.code_status(reference)?;
        let result = match &record {
            Some(record) => asker.may_see(record),
            None => Err(ApiError::UnknownCodeReference),
        };
        self.audit(
            asker.actor(),
            AuditAction::CodeStatusViewed {
                reference: reference.to_string(),
            },
            outcome_of(&result),
        )?;
        self.inner.flusher.flush().await?;
        result?;
        let record = record.ok_or(ApiError::UnknownCodeReference)?;
        self.status_info(reference, &record)
    }

    /// Revokes the code filed under `reference` for `asker` (an account: any code of this
    /// authority; an API key: the codes it issued): the code is removed, so neither
    /// `/v1/verify` nor `/v2/verify` can redeem it, and its status is `revoked` from today.
    /// Audited, refusals too.
    ///
    /// # Errors
    /// [`ApiError::UnknownCodeReference`], [`ApiError::ForeignCodeReference`];
    /// [`ApiError::CodeNotRevocable`] for a code used, expired or revoked before;
    /// [`ApiError::Store`].
    pub async fn revoke_code(
        &self,
        reference: &CodeReference,
        asker: &Issuer,
    ) -> Result<CodeStatusInfo, ApiError> {
        let today = self.now().day();
        // Who issued a code never changes, so the check may come before the revoke.
        let result = match self.inner.store.code_status(reference)? {
            None => Err(ApiError::UnknownCodeReference),
            Some(record) => match asker.may_see(&record) {
                Err(e) => Err(e),
                Ok(()) => match self.inner.store.revoke_code(reference, today)? {
                    RevokeOutcome::Revoked => Ok(()),
                    RevokeOutcome::Unknown => Err(ApiError::UnknownCodeReference),
                    RevokeOutcome::NotRevocable(record) => Err(ApiError::CodeNotRevocable {
                        status: record.status(today).as_str(),
                    }),
                },
            },
        };
        self.audit(
            asker.actor(),
            AuditAction::CodeRevoked {
                reference: reference.to_string(),
            },
            outcome_of(&result),
        )?;
        // The code's removal is durable before the answer says it is revoked.
        self.inner.flusher.flush().await?;
        result?;
        tracing::info!("upload code revoked");
        let record = self
            .inner
            .store
            .code_status(reference)?
            .ok_or(ApiError::UnknownCodeReference)?;
        self.status_info(reference, &record)
    }

    /// The API's view of a status record, as of today.
    fn status_info(
        &self,
        reference: &CodeReference,
        record: &CodeStatusRecord,
    ) -> Result<CodeStatusInfo, ApiError> {
        let status = record.status(self.now().day());
        Ok(CodeStatusInfo {
            reference: reference.to_string(),
            // Codes are issued only for the types a case worker picks.
            test_type: TestType::of(record.test_type).ok_or(ApiError::Internal)?,
            status: status.as_str().to_owned(),
            issued: civil::format_date(record.issued),
            expires: civil::format_date(record.expires),
            changed: status.day().map(civil::format_date),
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
        self.refuse_after_sunset()?;
        self.refuse_below_disk_reserve()?;
        let now = self.now();
        if request.decoy {
            self.inner.metrics.decoy("verify");
        }
        // A blind signature takes milliseconds of RSA, a decoy's too: on the signing pool, so
        // a flood of them (anonymous, sealed) cannot take every core, nor the sign-ins' pool.
        let node = self.clone();
        let response = super::bounded_blocking(&self.inner.signing, move || {
            node.inner.core.redeem_code_for_token(
                node.inner.store.as_ref(),
                &request,
                now,
                &mut rand::rng(),
            )
        })
        .await??;
        // As for a certificate: the spent code is durable before the signature leaves.
        self.inner.flusher.flush().await?;
        Ok(response)
    }

    async fn verify_inner(&self, request: &VerifyRequest) -> Result<VerifyResponse, ApiError> {
        // Before the code is spent: a certificate could expire while uploads are refused.
        // Decoys are refused alike.
        self.refuse_after_sunset()?;
        self.refuse_below_disk_reserve()?;
        let now = self.now();
        if request.decoy {
            self.inner.metrics.decoy("verify");
        }
        // On a blocking thread: the store call may wait (for a PostgreSQL connection, or a
        // row another node holds), and a wait on a runtime worker would stall every other
        // request, `/healthz` and cached batches too. The phone class's in-flight cap
        // bounds how many wait (`hostile_clients::an_exhausted_postgres_pool_…`).
        let node = self.clone();
        let request = request.clone();
        let response = tokio::task::spawn_blocking(move || {
            node.inner
                .core
                .redeem_code(node.inner.store.as_ref(), &request, now, &mut rand::rng())
        })
        .await
        .map_err(|_| ApiError::Internal)??;
        // The code is gone from the store; make that durable before handing out a
        // certificate, so a crash cannot let the same code be used twice. Decoys flush too.
        self.inner.flusher.flush().await?;
        // No line: a dated "certificate issued" would let a proxy's (address, time) log
        // name who verified. `verify` counts the outcome in metrics.
        Ok(response)
    }
}

/// The audit outcome of a staff request's `result`.
fn outcome_of<T>(result: &Result<T, ApiError>) -> AuditOutcome {
    match result {
        Ok(_) => AuditOutcome::Success,
        Err(e) => AuditOutcome::Refused(e.code().to_owned()),
    }
}
