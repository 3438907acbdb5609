//! The audit trail, driven: staff actions are recorded before their answer and made
//! durable by the same flush; the purge runs with the retention purge.

use ephemera_node_core::audit::{AuditTrail, verify_stored_trail};
use ephemera_node_core::store::{ReportStore, SettingDigest, StoreError};
use ephemera_proto::DayNumber;
use ephemera_proto::UnixTime;
use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};
use ephemera_proto::auth::CodePepper;

use super::{Need, Node, NodeError};
use crate::api::error::ApiError;
use crate::audit_export::AuditRow;
use crate::config::NodeConfig;
use crate::store::Role;

/// Label of the keyed digests of settings (HMAC-SHA256 under the code pepper).
const SETTINGS_LABEL: &[u8] = b"ephemera/settings-digest";

/// Most records one `GET /v1/audit` page holds.
pub const MAX_AUDIT_PAGE: usize = 10_000;

/// What an auditor asks of the trail: records after a sequence, within a day range, at
/// most a page.
#[derive(Copy, Clone, Debug, Default)]
pub struct AuditPage {
    /// Only records after this sequence (the last of the page before).
    pub after: u64,
    /// Only records of this day or later (UTC).
    pub from: Option<DayNumber>,
    /// Only records of this day or earlier (UTC).
    pub to: Option<DayNumber>,
    /// At most this many records (1 to [`MAX_AUDIT_PAGE`]).
    pub limit: usize,
}

/// The trail as an auditor reads it: whether the whole stored trail verifies, and a page
/// of its records.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditExport {
    /// Whether every stored record and the anchor verify (`ephemera-node audit verify`).
    pub verified: bool,
    /// Where it stops verifying, when it does not.
    pub problem: Option<String>,
    /// Records checked.
    pub records_checked: u64,
    /// The sequence of the signed head (the last record, or the anchor).
    pub head_sequence: Option<u64>,
    /// Its hash (hex): note it, and a later head must continue from it.
    pub head_hash: Option<String>,
    /// The records of this page, oldest first.
    pub records: Vec<AuditRow>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<u64>,
}

impl Node {
    /// Records on the trail, as the operator's change, which settings differ from those the
    /// node last ran with (at its first start: from the defaults), by name only; then keeps
    /// this start's. Values are kept only as keyed digests, since some are secrets.
    ///
    /// # Errors
    /// [`NodeError::Store`].
    pub(crate) fn audit_configuration(&self) -> Result<(), NodeError> {
        let pepper = &self.inner.core.keys().pepper;
        let current = settings_digests(pepper, self.config());
        let mut last = self.inner.store.applied_settings()?;
        let first = last.is_empty();
        if first {
            last = settings_digests(pepper, &NodeConfig::default());
        }
        let mut changed: Vec<String> = current
            .iter()
            .filter(|setting| !last.contains(setting))
            .map(|(path, _)| path.clone())
            .collect();
        // A setting the node no longer has (an upgrade removed it) changed too.
        changed.extend(
            last.iter()
                .filter(|(path, _)| !current.iter().any(|(p, _)| p == path))
                .map(|(path, _)| path.clone()),
        );
        if !changed.is_empty() {
            self.audit(
                AuditActor::Operator,
                AuditAction::ConfigurationChanged { settings: changed },
                AuditOutcome::Success,
            )?;
        }
        if first || current != last {
            self.inner.store.set_applied_settings(&current)?;
        }
        self.inner.store.flush()?;
        Ok(())
    }

    /// Appends a record of `actor` doing `action` with `outcome`, now (to the minute). The
    /// caller's flush makes it durable with the action's own writes.
    ///
    /// # Errors
    /// [`StoreError`]: the caller refuses the action, since it could not be accounted for.
    pub(crate) fn audit(
        &self,
        actor: AuditActor,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> Result<(), StoreError> {
        let now = self.now();
        self.with_audit_trail(|trail, store| {
            let key = &self.inner.core.keys().authority;
            trail.record(key, store, now, actor, action, outcome)?;
            Ok(())
        })
    }

    /// Lets an auditor or an admin read (the trail, the statistics): records the read as
    /// `exported` by the account and makes it durable before anything is read, so a read
    /// that cannot be accounted for is refused.
    ///
    /// # Errors
    /// As [`Node::authorize`]; [`ApiError::Store`].
    pub(crate) async fn authorize_export(&self, token: &str) -> Result<(), ApiError> {
        let session = self.authorize(token, Need::OneOf(&[Role::Auditor, Role::Admin]))?;
        self.audit(
            AuditActor::Account(session.account),
            AuditAction::Exported,
            AuditOutcome::Success,
        )?;
        self.inner.flusher.flush().await?;
        Ok(())
    }

    /// `GET /v1/audit`: the trail's verification and a page of it, for an auditor or an
    /// admin. The export is recorded first (so it is on the page it reads) and flushed.
    ///
    /// # Errors
    /// As [`Node::authorize`]; [`ApiError::Store`].
    pub async fn audit_export(
        &self,
        token: &str,
        page: AuditPage,
    ) -> Result<AuditExport, ApiError> {
        self.authorize_export(token).await?;
        let store = self.inner.store.as_ref();
        let (verified, problem, records_checked, head) =
            match verify_stored_trail(store, self.inner.core.keys())? {
                Ok(trail) => (true, None, trail.records, trail.head),
                Err(broken) => (false, Some(broken.to_string()), 0, None),
            };
        let (_, entries) = store.audit_trail()?;
        let day = |minute: u64| DayNumber(u32::try_from(minute / 1440).unwrap_or(u32::MAX));
        let mut matching = entries.iter().filter(|e| {
            let record_day = day(e.record.minute);
            e.record.sequence > page.after
                && page.from.is_none_or(|from| record_day >= from)
                && page.to.is_none_or(|to| record_day <= to)
        });
        let records: Vec<AuditRow> = matching
            .by_ref()
            .take(page.limit)
            .map(AuditRow::of)
            .collect();
        let next_after = match matching.next() {
            Some(_) => records.last().map(|r| r.sequence),
            None => None,
        };
        Ok(AuditExport {
            verified,
            problem,
            records_checked,
            head_sequence: head.map(|(sequence, _)| sequence),
            head_hash: head.map(|(_, hash)| hash.to_string()),
            records,
            next_after,
        })
    }

    /// Purges audit records past `[retention] audit_days`; how many went.
    pub(super) fn purge_audit(&self, now: UnixTime) -> Result<u64, StoreError> {
        let core = &self.inner.core;
        let days = core.policy().audit_retention_days;
        self.with_audit_trail(|trail, store| trail.purge(&core.keys().authority, store, now, days))
    }

    /// Runs `work` on the trail (opened from the store on first use) under its lock.
    fn with_audit_trail<T>(
        &self,
        work: impl FnOnce(&mut AuditTrail, &dyn ReportStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let store = self.inner.store.as_ref();
        let mut slot = self.inner.audit.lock().unwrap_or_else(|p| p.into_inner());
        let trail = match &mut *slot {
            Some(trail) => trail,
            empty => empty.insert(AuditTrail::open(store)?),
        };
        work(trail, store)
    }
}

/// Each setting of `config` with a digest of its value keyed by `pepper`: equal values
/// give equal digests, and nobody without the node's keys can test a guess at a secret.
fn settings_digests(pepper: &CodePepper, config: &NodeConfig) -> Vec<SettingDigest> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pepper.0.as_ref());
    config
        .settings()
        .into_iter()
        .map(|(path, value)| {
            let mut context = ring::hmac::Context::with_key(&key);
            context.update(SETTINGS_LABEL);
            context.update(path.as_bytes());
            context.update(&[0]);
            context.update(value.as_bytes());
            let mut digest = [0u8; 32];
            digest.copy_from_slice(context.sign().as_ref());
            (path.to_owned(), digest)
        })
        .collect()
}
