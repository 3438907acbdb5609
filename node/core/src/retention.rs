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
