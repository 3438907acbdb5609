//! The authority's audit trail, kept: each record chained to the last and its head signed
//! with the node's authority key as it is appended ([`ephemera_proto::audit`] has the
//! format and the check), and purged after the audit retention behind a signed anchor.

use ephemera_proto::UnixTime;
use ephemera_proto::audit::{
    AuditAction, AuditActor, AuditBreak, AuditEntry, AuditHash, AuditOutcome, AuditRecord,
    VerifiedTrail, verify_trail,
};
use ephemera_proto::rollover::KeyRole;
use ephemera_proto::signing::Ed25519PublicKey;

use ephemera_proto::auth::AuthoritySigningKey;

use crate::keys::NodeKeys;
use crate::store::{ReportStore, StoreError};

/// Appends tried before giving up when other nodes keep taking the next sequence.
const APPEND_ATTEMPTS: usize = 16;

/// The head of the trail, held by the driver (one per node, behind a lock): appends
/// and purges go through it, so sequences never repeat or skip.
#[derive(Debug)]
pub struct AuditTrail {
    head: Option<(u64, AuditHash)>,
}

impl AuditTrail {
    /// The trail of `store`, continued from its newest entry (or purge anchor).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn open(store: &dyn ReportStore) -> Result<AuditTrail, StoreError> {
        Ok(AuditTrail {
            head: store.audit_head()?,
        })
    }

    /// Appends a record of `actor` doing `action` with `outcome` at `now` (to the minute),
    /// signed by the node's authority key. Durable with the store's next flush.
    ///
    /// # Errors
    /// [`StoreError`]; the head stays where it was.
    pub fn record(
        &mut self,
        key: &AuthoritySigningKey,
        store: &dyn ReportStore,
        now: UnixTime,
        actor: AuditActor,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> Result<AuditEntry, StoreError> {
        // Nodes of a group append to one trail: when another node took the next sequence,
        // continue from the stored head (a few times at most: each retry follows an append
        // that succeeded elsewhere).
        for _ in 0..APPEND_ATTEMPTS {
            let entry = AuditEntry::append(
                self.head,
                AuditRecord::minute_of(now),
                actor.clone(),
                action.clone(),
                outcome.clone(),
                key.ed25519(),
            );
            match store.append_audit(&entry) {
                Ok(()) => {
                    self.head = Some((entry.record.sequence, entry.record.hash()));
                    return Ok(entry);
                }
                Err(StoreError::AuditSequenceTaken { .. }) => self.head = store.audit_head()?,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Engine(format!(
            "the audit trail's head moved {APPEND_ATTEMPTS} times during one append"
        )))
    }

    /// Purges the oldest records, those older than `retention_days`, behind the last
    /// one's signed head, and records the purge (signed with `key`). A record newer than the
    /// retention ends the purge: whatever follows it stays, even if the clock once stepped
    /// back. Returns how many records went.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn purge(
        &mut self,
        key: &AuthoritySigningKey,
        store: &dyn ReportStore,
        now: UnixTime,
        retention_days: u32,
    ) -> Result<u64, StoreError> {
        let retention_minutes = u64::from(retention_days) * 24 * 60;
        let cutoff = AuditRecord::minute_of(now).saturating_sub(retention_minutes);
        let (_, entries) = store.audit_trail()?;
        let Some(last) = entries
            .iter()
            .take_while(|e| e.record.minute < cutoff)
            .last()
        else {
            return Ok(0);
        };
        let through = last.record.sequence;
        let purged = store.purge_audit(&last.anchor())?;
        self.record(
            key,
            store,
            now,
            AuditActor::Node,
            AuditAction::Purged { through },
            AuditOutcome::Success,
        )?;
        Ok(purged)
    }
}

/// Every authority key a node has had: the current one, the next one of a rotation under
/// way, and those its rollovers replaced; audit heads verify under any of them.
pub fn audit_keys(keys: &NodeKeys) -> Vec<Ed25519PublicKey> {
    let mut out = vec![keys.authority.public_key()];
    out.extend(keys.next.authority.as_ref().map(|k| k.public_key()));
    for rollover in keys
        .rollovers
        .iter()
        .filter(|r| r.role == KeyRole::Authority)
    {
        out.extend([rollover.old, rollover.new]);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Checks the trail kept in `store` against `keys`' authority keys.
///
/// # Errors
/// [`StoreError`] when the trail cannot be read; the inner [`AuditBreak`] says where it
/// stops verifying.
pub fn verify_stored_trail(
    store: &dyn ReportStore,
    keys: &NodeKeys,
) -> Result<Result<VerifiedTrail, AuditBreak>, StoreError> {
    let (anchor, entries) = store.audit_trail()?;
    Ok(verify_trail(anchor.as_ref(), &entries, &audit_keys(keys)))
}

#[cfg(test)]
mod tests {
    use ephemera_proto::report::ReportType;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::policy::Policy;
    use crate::store::MemoryReportStore;
    use crate::tests::core;

    const DAY: u64 = 86_400;

    fn issued(count: u32) -> AuditAction {
        AuditAction::CodesIssued {
            count,
            test_type: ReportType::ConfirmedTest,
        }
    }

    #[test]
    fn appended_records_chain_and_verify_across_a_reopen() {
        let core = core();
        let store = MemoryReportStore::new();
        let mut trail = AuditTrail::open(&store).expect("opens");
        let alice = || AuditActor::Account("alice".to_owned());
        for i in 0..3 {
            trail
                .record(
                    &core.keys().authority,
                    &store,
                    UnixTime(1_700_000_000 + i * 60),
                    alice(),
                    issued(1),
                    AuditOutcome::Success,
                )
                .expect("appends");
        }
        // A restart continues the chain where it ended.
        let mut reopened = AuditTrail::open(&store).expect("opens");
        let entry = reopened
            .record(
                &core.keys().authority,
                &store,
                UnixTime(1_700_000_300),
                AuditActor::UnknownAccount,
                AuditAction::SignIn,
                AuditOutcome::Refused("invalid-credentials".to_owned()),
            )
            .expect("appends");
        assert_eq!(entry.record.sequence, 4);
        let verified = verify_stored_trail(&store, core.keys())
            .expect("reads")
            .expect("verifies");
        assert_eq!(verified.records, 4);
    }

    #[test]
    fn two_nodes_appending_to_one_store_keep_one_chain_that_verifies() {
        let core = core();
        let store = MemoryReportStore::new();
        // Two nodes of a group, each with its own idea of the head.
        let mut first = AuditTrail::open(&store).expect("opens");
        let mut second = AuditTrail::open(&store).expect("opens");
        for i in 0..6u64 {
            let trail = if i % 3 == 0 { &mut second } else { &mut first };
            let entry = trail
                .record(
                    &core.keys().authority,
                    &store,
                    UnixTime(1_700_000_000 + i * 60),
                    AuditActor::Node,
                    issued(1),
                    AuditOutcome::Success,
                )
                .expect("appends after catching up");
            assert_eq!(entry.record.sequence, i + 1);
        }
        let verified = verify_stored_trail(&store, core.keys())
            .expect("reads")
            .expect("verifies");
        assert_eq!(verified.records, 6);
    }

    #[test]
    fn a_purge_removes_only_records_past_retention_and_the_rest_still_verifies() {
        let core = core();
        let retention_days = Policy::default().audit_retention_days;
        let store = MemoryReportStore::new();
        let mut trail = AuditTrail::open(&store).expect("opens");
        let start = 1_700_000_000;
        for day in 0..5 {
            trail
                .record(
                    &core.keys().authority,
                    &store,
                    UnixTime(start + day * DAY),
                    AuditActor::Operator,
                    issued(2),
                    AuditOutcome::Success,
                )
                .expect("appends");
        }
        let retention = u64::from(retention_days) * DAY;
        // Two days past the retention of the first record: days 0 and 1 go.
        let now = UnixTime(start + retention + DAY + 60);
        assert_eq!(
            trail
                .purge(&core.keys().authority, &store, now, retention_days)
                .expect("purges"),
            2
        );
        let (anchor, entries) = store.audit_trail().expect("reads");
        assert_eq!(anchor.map(|a| a.sequence), Some(2));
        assert_eq!(entries.first().map(|e| e.record.sequence), Some(3));
        assert_eq!(
            entries.last().map(|e| e.record.action.clone()),
            Some(AuditAction::Purged { through: 2 })
        );
        let verified = verify_stored_trail(&store, core.keys())
            .expect("reads")
            .expect("verifies");
        assert_eq!(verified.records, 4, "three kept and the purge's own record");
        assert_eq!(
            trail
                .purge(&core.keys().authority, &store, now, retention_days)
                .expect("purges"),
            0
        );
    }

    #[test]
    fn records_verify_under_any_authority_key_the_node_has_had() {
        let core = core();
        let store = MemoryReportStore::new();
        let mut trail = AuditTrail::open(&store).expect("opens");
        trail
            .record(
                &core.keys().authority,
                &store,
                UnixTime(1_700_000_000),
                AuditActor::Operator,
                issued(1),
                AuditOutcome::Success,
            )
            .expect("appends");
        let mut rotated = NodeKeys::generate(&mut ChaCha20Rng::seed_from_u64(3));
        assert_eq!(
            verify_stored_trail(&store, &rotated).expect("reads"),
            Err(AuditBreak::Altered { sequence: 1 }),
            "another authority's keys verify nothing"
        );
        // The key that signed is still one of the node's (here: its next key).
        rotated.next.authority = Some(AuthoritySigningKey::from_seed(core.keys().authority.seed()));
        assert!(
            verify_stored_trail(&store, &rotated)
                .expect("reads")
                .is_ok()
        );
    }
}
