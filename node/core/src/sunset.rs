//! Which sunset order a node holds, and whether it stops this node
//! (`ephemera_proto::sunset`; `node/docs/OPERATIONS.md`, "Sunset").
//!
//! Orders arrive from anyone (an operator's `POST /v1/sunset`, a peer's gossip, catch-up):
//! each is checked against the committee the node was configured with, at the node's
//! clock. A node holds one order: the first valid one, replaced only by a valid order that
//! stops this node sooner. An order stops this node when its scope is the whole federation
//! or this node's own authority; an order for another authority is held and passed on.

use ephemera_proto::error::DecodeError;
use ephemera_proto::signing::{Ed25519PublicKey, KeyId};
use ephemera_proto::upload::UploadId;
use ephemera_proto::{DayNumber, UnixTime};

use crate::store::{QueueKey, ReportStore, StoreError};
use ephemera_proto::sunset::{SignedSunsetOrder, SunsetCommittee, SunsetError, SunsetScope};

/// What a node checks orders against.
#[derive(Clone, Debug)]
pub struct SunsetRules {
    /// The configured committee.
    pub committee: SunsetCommittee,
    /// The node's federation name.
    pub federation: String,
    /// The node's own authority key.
    pub own_authority: Ed25519PublicKey,
}

/// What became of an offered order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// The order is now the held one: store it, publish it, pass it on.
    Adopted(SignedSunsetOrder),
    /// Valid, but the held order stands (the same order, or one that stops this node no
    /// later).
    Kept,
}

/// Why an offered order was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SunsetRefusal {
    /// The bytes are not an order frame.
    #[error("not a sunset order frame: {0}")]
    Malformed(#[from] DecodeError),
    /// The order does not verify here.
    #[error("{0}")]
    Invalid(#[from] SunsetError),
}

impl SunsetRules {
    /// Judges `frame` against the held order at `now`.
    ///
    /// # Errors
    /// [`SunsetRefusal`] for bytes that are not an order or an order that does not verify.
    pub fn offer(
        &self,
        frame: &[u8],
        held: Option<&SignedSunsetOrder>,
        now: UnixTime,
    ) -> Result<Offer, SunsetRefusal> {
        let offered = SignedSunsetOrder::from_bytes(frame)?;
        offered.verify(&self.committee, &self.federation, now)?;
        let Some(held) = held else {
            return Ok(Offer::Adopted(offered));
        };
        if held.order == offered.order {
            return Ok(Offer::Kept);
        }
        let sooner = match (self.stop_time(held), self.stop_time(&offered)) {
            (None, Some(_)) => true,
            (Some(held_at), Some(offered_at)) => offered_at < held_at,
            (_, None) => false,
        };
        Ok(if sooner {
            Offer::Adopted(offered)
        } else {
            Offer::Kept
        })
    }

    /// When `order` stops this node, if it does: its effective time when its scope is the
    /// federation or this node's authority.
    pub fn stop_time(&self, order: &SignedSunsetOrder) -> Option<UnixTime> {
        match order.order.scope {
            SunsetScope::Federation => Some(order.order.effective_at),
            SunsetScope::Authority(key) if key == self.own_authority => {
                Some(order.order.effective_at)
            }
            SunsetScope::Authority(_) => None,
        }
    }

    /// The authority whose reports `held` ended at this node at `now`: the order's scope is
    /// another authority and its time has come. This node then erases that authority's
    /// reports ([`uploads_of`]) and takes no more of them, and goes on serving its own.
    pub fn ended_authority(
        &self,
        held: Option<&SignedSunsetOrder>,
        now: UnixTime,
    ) -> Option<KeyId> {
        let order = &held?.order;
        match order.scope {
            SunsetScope::Authority(key)
                if key != self.own_authority && now >= order.effective_at =>
            {
                Some(key.key_id())
            }
            _ => None,
        }
    }

    /// Whether `held` (a stored order, checked when it was adopted) has stopped this node
    /// at `now`.
    pub fn stopped(&self, held: Option<&SignedSunsetOrder>, now: UnixTime) -> bool {
        held.and_then(|order| self.stop_time(order))
            .is_some_and(|at| now >= at)
    }
}

/// Every upload the store files under `days` whose certificate `authority` issued, with
/// the queue keys of its entries not yet published: what [`ReportStore::remove_uploads`]
/// takes when an order ends that authority here.
///
/// # Errors
/// [`StoreError`].
pub fn uploads_of(
    store: &dyn ReportStore,
    authority: KeyId,
    days: impl IntoIterator<Item = DayNumber>,
) -> Result<Vec<(UploadId, Vec<QueueKey>)>, StoreError> {
    const PAGE: usize = 1000;
    let mut found = Vec::new();
    for day in days {
        let mut after = None;
        loop {
            let ids = store.sync_ids(day, after, PAGE)?;
            for id in &ids {
                let Some(stored) = store.upload(id)? else {
                    continue;
                };
                if stored.upload.certificate.certificate.authority != authority {
                    continue;
                }
                let mut releases: Vec<UnixTime> =
                    stored.releases.iter().flatten().copied().collect();
                releases.sort_unstable();
                releases.dedup();
                let queued = releases
                    .into_iter()
                    .map(|release_at| QueueKey {
                        release_at,
                        upload: *id,
                    })
                    .collect();
                found.push((*id, queued));
            }
            if ids.len() < PAGE {
                break;
            }
            after = ids.last().copied();
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use ephemera_proto::signing::Ed25519SigningKey;
    use ephemera_proto::sunset::SunsetOrder;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn setup() -> (SunsetRules, Vec<Ed25519SigningKey>) {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let keys: Vec<_> = (0..3)
            .map(|_| Ed25519SigningKey::generate(&mut rng))
            .collect();
        let publics: Vec<_> = keys.iter().map(Ed25519SigningKey::public_key).collect();
        let rules = SunsetRules {
            committee: SunsetCommittee::new(&publics, 2).unwrap(),
            federation: "north".into(),
            own_authority: Ed25519PublicKey([9; 32]),
        };
        (rules, keys)
    }

    fn order(
        rules: &SunsetRules,
        keys: &[Ed25519SigningKey],
        scope: SunsetScope,
        delay: u64,
    ) -> SignedSunsetOrder {
        let mut signed = SignedSunsetOrder::draft(SunsetOrder {
            federation: rules.federation.clone(),
            committee: rules.committee.id(),
            scope,
            issued_at: NOW,
            effective_at: UnixTime(NOW.0 + delay),
            reason: "over".into(),
        });
        signed.sign(&keys[0]);
        signed.sign(&keys[2]);
        signed
    }

    #[test]
    fn the_first_valid_order_is_adopted_and_only_a_sooner_stop_replaces_it() {
        let (rules, keys) = setup();
        let later = order(&rules, &keys, SunsetScope::Federation, 7_200);
        let sooner = order(&rules, &keys, SunsetScope::Federation, 3_600);
        let elsewhere = order(
            &rules,
            &keys,
            SunsetScope::Authority(Ed25519PublicKey([1; 32])),
            60,
        );
        let ours = order(
            &rules,
            &keys,
            SunsetScope::Authority(rules.own_authority),
            60,
        );

        let offer = |o: &SignedSunsetOrder, held: Option<&SignedSunsetOrder>| {
            rules.offer(&o.to_bytes(), held, NOW).unwrap()
        };
        assert_eq!(offer(&later, None), Offer::Adopted(later.clone()));
        assert_eq!(offer(&later, Some(&later)), Offer::Kept);
        assert_eq!(offer(&sooner, Some(&later)), Offer::Adopted(sooner.clone()));
        assert_eq!(offer(&later, Some(&sooner)), Offer::Kept);
        // Another authority's order does not stop this node: it never replaces one that does,
        // and one that does replaces it.
        assert_eq!(offer(&elsewhere, Some(&later)), Offer::Kept);
        assert_eq!(
            offer(&later, Some(&elsewhere)),
            Offer::Adopted(later.clone())
        );
        assert_eq!(offer(&ours, Some(&sooner)), Offer::Adopted(ours.clone()));

        assert!(!rules.stopped(Some(&later), NOW));
        assert!(rules.stopped(Some(&later), UnixTime(NOW.0 + 7_200)));
        assert!(!rules.stopped(Some(&elsewhere), UnixTime(NOW.0 + 7_200)));
        assert!(rules.stopped(Some(&ours), UnixTime(NOW.0 + 60)));
        assert!(!rules.stopped(None, UnixTime(u64::MAX)));

        // Another authority's order ends that authority here at its time, and only that.
        let later_still = UnixTime(NOW.0 + 60);
        assert_eq!(rules.ended_authority(Some(&elsewhere), NOW), None);
        assert_eq!(
            rules.ended_authority(Some(&elsewhere), later_still),
            Some(Ed25519PublicKey([1; 32]).key_id())
        );
        assert_eq!(rules.ended_authority(Some(&ours), later_still), None);
        assert_eq!(
            rules.ended_authority(Some(&later), UnixTime(u64::MAX)),
            None
        );
    }

    #[test]
    fn bytes_that_are_not_a_valid_order_are_refused_and_say_why() {
        let (rules, keys) = setup();
        assert!(matches!(
            rules.offer(b"\x01\x11junk", None, NOW),
            Err(SunsetRefusal::Malformed(_))
        ));
        let mut partial = order(&rules, &keys, SunsetScope::Federation, 60);
        partial.approvals.truncate(1);
        let refusal = rules.offer(&partial.to_bytes(), None, NOW).unwrap_err();
        assert_eq!(
            refusal,
            SunsetRefusal::Invalid(SunsetError::BelowThreshold { got: 1, needed: 2 })
        );
        assert_eq!(
            refusal.to_string(),
            "1 valid approvals, the committee needs 2"
        );
        let other = SunsetRules {
            federation: "south".into(),
            ..rules.clone()
        };
        let valid = order(&rules, &keys, SunsetScope::Federation, 60).to_bytes();
        assert!(matches!(
            other.offer(&valid, None, NOW),
            Err(SunsetRefusal::Invalid(SunsetError::OtherFederation { .. }))
        ));
    }
}
