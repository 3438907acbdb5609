//! Retention: when each record a node keeps is forgotten, and the purge that forgets it.
//! Everything about reports goes after the policy's retention period; codes after their
//! lifetime; single-use marks only once their certificate can no longer be presented.

use ephemera_proto::UnixTime;
use ephemera_proto::auth::Certificate;

use crate::NodeCore;
use crate::store::{PurgeCounts, ReportStore, StoreError};

/// Clock skew allowed by certificate checks; single-use marks outlive it.
pub const SKEW_SECONDS: u64 = 300;

impl NodeCore {
    /// When the single-use mark of `certificate` may go: after the certificate can no
    /// longer be presented to any node (its expiry, or for relays its day plus retention),
    /// plus the clock skew certificate checks allow.
    pub fn certificate_purge_at(&self, certificate: &Certificate) -> UnixTime {
        certificate
            .expires_at
            .max(
                certificate
                    .issued_at
                    .plus_seconds(self.policy.retention_seconds()),
            )
            .plus_seconds(SKEW_SECONDS)
    }

    /// When an upload accepted from a phone at `now` is purged: a retention period after
    /// the start of its arrival's batch period (the only arrival time kept).
    pub fn upload_purge_at(&self, now: UnixTime) -> UnixTime {
        self.arrival_period(now)
            .plus_seconds(self.policy.retention_seconds())
    }

    /// When an upload relayed by a peer is purged: with its certificate's day, as on every
    /// other node, but never before `now`.
    pub fn relayed_upload_purge_at(&self, certificate: &Certificate, now: UnixTime) -> UnixTime {
        certificate
            .issued_at
            .plus_seconds(self.policy.retention_seconds())
            .max(self.arrival_period(now))
    }

    /// Deletes everything whose retention or lifetime ended by `now`, and queue groups
    /// released more than a retention period ago.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn purge(&self, store: &dyn ReportStore, now: UnixTime) -> Result<PurgeCounts, StoreError> {
        store.purge(now, now.minus_seconds(self.policy.retention_seconds()))
    }
}

/// One kind of record in the retention report: when the oldest one held is due to go.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetentionLine {
    /// The kind: `upload`, `certificate-mark`, `batch`, `code`, `export`, `audit`.
    pub kind: String,
    /// When the oldest record of the kind is due for purging, unix seconds.
    pub oldest_due_at: UnixTime,
    /// How long past that time it still is at the report's time (0: not yet due).
    pub overdue_seconds: u64,
}

/// The retention report at `now`: for each kind of record the store holds, when the oldest
/// one is due to go, and how overdue it is. A node that purges as configured keeps every
/// `overdue_seconds` under one purge period (and so under one batch period).
///
/// # Errors
/// [`StoreError`].
pub fn retention_report(
    store: &dyn ReportStore,
    audit_retention_days: u32,
    now: UnixTime,
) -> Result<Vec<RetentionLine>, StoreError> {
    let mut lines: Vec<(String, UnixTime)> = store
        .earliest_expiries()?
        .into_iter()
        .map(|(kind, at)| (kind.to_owned(), at))
        .collect();
    // Audit records go a retention after their minute (`Node::purge_audit`).
    let (_, trail) = store.audit_trail()?;
    if let Some(first) = trail.first() {
        let written = UnixTime(first.record.minute.saturating_mul(60));
        lines.push((
            "audit".to_owned(),
            written.plus_seconds(u64::from(audit_retention_days) * 86_400),
        ));
    }
    Ok(lines
        .into_iter()
        .map(|(kind, at)| RetentionLine {
            kind,
            oldest_due_at: at,
            overdue_seconds: now.0.saturating_sub(at.0),
        })
        .collect())
}
