//! The audit trail, driven: staff actions are recorded before their answer and made
//! durable by the same flush; the purge runs with the retention purge.

use ephemera_node_core::audit::AuditTrail;
use ephemera_node_core::store::{ReportStore, StoreError};
use ephemera_proto::UnixTime;
use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};

use super::Node;

impl Node {
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
