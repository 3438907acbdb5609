//! A sunset order, its approvals, and the checks every holder runs.

use std::fmt;

use ring::digest;
use serde::{Deserialize, Serialize};

use super::committee::{CommitteeId, MAX_COMMITTEE, SunsetCommittee};
use crate::error::DecodeError;
use crate::signing::{Ed25519PublicKey, Ed25519SigningKey, Signature};
use crate::time::UnixTime;
use crate::wire::{self, WireMessage};

/// Domain label of an approval's signature.
const APPROVAL_LABEL: &[u8] = b"ephemera/sunset-order/v1";
/// Domain label of an order's identifier.
const ORDER_ID_LABEL: &[u8] = b"ephemera/sunset-order-id/v1";

/// Longest reason text, in UTF-8 bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Longest federation name, in bytes (as `[federation] region`).
const MAX_FEDERATION_BYTES: usize = 32;
/// How far an order's issue time may lie ahead of the checker's clock.
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
/// Longest notice between issue and effect: one year. An order signed years ahead would be
/// a standing threat nobody remembers.
pub const MAX_NOTICE_SECONDS: u64 = 366 * 86_400;
/// Largest frame: header, federation, committee, scope, two times, reason, and a full
/// committee's approvals (32 + 65 bytes each).
const MAX_FRAME: usize = 2 + 33 + 32 + 34 + 20 + 2 + MAX_REASON_BYTES + 1 + MAX_COMMITTEE * 97;

/// What an order ends.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SunsetScope {
    /// Everything about one health authority, by its certificate key: its reports and the
    /// batches that publish them, its venue data, codes, sessions and accounts.
    Authority(Ed25519PublicKey),
    /// Everything, at every node of the federation.
    Federation,
}

/// The order itself, as the committee reads and approves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SunsetOrder {
    /// The federation it ends (`[federation] region`), so it cannot be replayed to another.
    pub federation: String,
    /// The committee whose keys approve it.
    pub committee: CommitteeId,
    /// What it ends.
    pub scope: SunsetScope,
    /// When it was written.
    pub issued_at: UnixTime,
    /// When nodes stop and erase, and phones erase and stop.
    pub effective_at: UnixTime,
    /// Why, in words, for the public record.
    pub reason: String,
}

impl SunsetOrder {
    /// `key`'s approval of this order.
    pub fn approve(&self, key: &Ed25519SigningKey) -> SunsetApproval {
        SunsetApproval {
            signer: key.public_key(),
            signature: key.sign(APPROVAL_LABEL, &self.signed_bytes()),
        }
    }

    /// The order's identifier, which receipts name.
    pub fn id(&self) -> OrderId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(ORDER_ID_LABEL);
        ctx.update(&self.signed_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(ctx.finish().as_ref());
        OrderId(id)
    }

    /// Whether the order has taken effect at `now`.
    pub fn is_effective(&self, now: UnixTime) -> bool {
        now >= self.effective_at
    }

    fn signed_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encoding into a Vec")
    }

    /// Checks what holds without any approval: names, lengths and times.
    fn check_contents(
        &self,
        committee: &SunsetCommittee,
        federation: &str,
        now: UnixTime,
    ) -> Result<(), SunsetError> {
        if self.federation.len() > MAX_FEDERATION_BYTES || self.reason.len() > MAX_REASON_BYTES {
            return Err(SunsetError::TooLong);
        }
        if self.federation != federation {
            return Err(SunsetError::OtherFederation {
                order: self.federation.clone(),
                ours: federation.to_owned(),
            });
        }
        if self.committee != committee.id() {
            return Err(SunsetError::OtherCommittee);
        }
        if self.issued_at.0 > now.0.saturating_add(MAX_CLOCK_SKEW_SECONDS) {
            return Err(SunsetError::PostDated {
                issued_at: self.issued_at,
                now,
            });
        }
        if self.effective_at < self.issued_at {
            return Err(SunsetError::EffectiveBeforeIssued);
        }
        if self.effective_at.0 - self.issued_at.0 > MAX_NOTICE_SECONDS {
            return Err(SunsetError::NoticeTooLong);
        }
        Ok(())
    }
}

/// One committee member's signature on an order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SunsetApproval {
    /// The sunset key that approved.
    pub signer: Ed25519PublicKey,
    /// Ed25519 over label ‖ postcard(order).
    pub signature: Signature,
}

/// An order with the approvals gathered so far, as it travels (files, HTTP, libp2p).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSunsetOrder {
    /// The order.
    pub order: SunsetOrder,
    /// Approvals, one per signer, sorted by signer.
    pub approvals: Vec<SunsetApproval>,
}

impl WireMessage for SignedSunsetOrder {
    const KIND: u8 = wire::kind::SUNSET_ORDER;
    const MAX_SIZE: usize = MAX_FRAME;
}

impl SignedSunsetOrder {
    /// An order with no approval yet, to pass to the signers.
    pub fn draft(order: SunsetOrder) -> Self {
        SignedSunsetOrder {
            order,
            approvals: Vec::new(),
        }
    }

    /// Adds `key`'s approval (replacing an earlier one by the same key).
    pub fn sign(&mut self, key: &Ed25519SigningKey) {
        let approval = self.order.approve(key);
        self.approvals.retain(|a| a.signer != approval.signer);
        self.approvals.push(approval);
        self.approvals.sort_by_key(|a| a.signer);
    }

    /// Merges the approvals of copies of one order, each signed by some members.
    ///
    /// # Errors
    /// [`SunsetError::DifferentOrders`] when the copies are not of one order;
    /// [`SunsetError::BadSignature`] for an approval that does not verify.
    pub fn combine(copies: &[SignedSunsetOrder]) -> Result<Self, SunsetError> {
        let Some(first) = copies.first() else {
            return Err(SunsetError::DifferentOrders);
        };
        let mut combined = SignedSunsetOrder::draft(first.order.clone());
        let signed = first.order.signed_bytes();
        for copy in copies {
            if copy.order != first.order {
                return Err(SunsetError::DifferentOrders);
            }
            for approval in &copy.approvals {
                if !approval
                    .signer
                    .verify(APPROVAL_LABEL, &signed, &approval.signature)
                {
                    return Err(SunsetError::BadSignature {
                        signer: approval.signer,
                    });
                }
                if !combined
                    .approvals
                    .iter()
                    .any(|a| a.signer == approval.signer)
                {
                    combined.approvals.push(*approval);
                }
            }
        }
        combined.approvals.sort_by_key(|a| a.signer);
        Ok(combined)
    }

    /// Checks the order for `federation` under `committee` at `now`: every approval is by a
    /// distinct committee key and verifies, there are at least `threshold`, and the times
    /// hold. Returns the order.
    ///
    /// # Errors
    /// A [`SunsetError`] naming the first check that failed.
    pub fn verify(
        &self,
        committee: &SunsetCommittee,
        federation: &str,
        now: UnixTime,
    ) -> Result<&SunsetOrder, SunsetError> {
        self.order.check_contents(committee, federation, now)?;
        let signed = self.order.signed_bytes();
        let mut seen: Vec<Ed25519PublicKey> = Vec::with_capacity(self.approvals.len());
        for approval in &self.approvals {
            if !committee.contains(&approval.signer) {
                return Err(SunsetError::UnknownSigner {
                    signer: approval.signer,
                });
            }
            if seen.contains(&approval.signer) {
                return Err(SunsetError::DuplicateApproval {
                    signer: approval.signer,
                });
            }
            if !approval
                .signer
                .verify(APPROVAL_LABEL, &signed, &approval.signature)
            {
                return Err(SunsetError::BadSignature {
                    signer: approval.signer,
                });
            }
            seen.push(approval.signer);
        }
        if seen.len() < usize::from(committee.threshold()) {
            return Err(SunsetError::BelowThreshold {
                got: seen.len(),
                needed: committee.threshold(),
            });
        }
        Ok(&self.order)
    }

    /// The versioned frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self)
    }

    /// Decodes a frame (approvals unchecked: call [`SignedSunsetOrder::verify`]).
    ///
    /// # Errors
    /// A [`DecodeError`]; never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        wire::decode(bytes)
    }
}

/// The identifier of an order: what a deletion receipt names.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderId(pub [u8; 32]);

impl fmt::Debug for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrderId({})", hex::encode(self.0))
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Why a sunset order or committee is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SunsetError {
    /// The committee cannot work as configured.
    #[error("the sunset committee is not valid: {0}")]
    BadCommittee(&'static str),
    /// The order is for another federation (a replay from elsewhere).
    #[error("the order is for federation {order:?}, this is {ours:?}")]
    OtherFederation {
        /// The order's federation.
        order: String,
        /// Ours.
        ours: String,
    },
    /// The order names a committee other than the one configured here.
    #[error("the order was written for another sunset committee (keys or threshold differ)")]
    OtherCommittee,
    /// An approval is by a key outside the committee.
    #[error("approval by {signer:?}, which is not a sunset key of this committee")]
    UnknownSigner {
        /// The key.
        signer: Ed25519PublicKey,
    },
    /// Two approvals by one key.
    #[error("two approvals by {signer:?}")]
    DuplicateApproval {
        /// The key.
        signer: Ed25519PublicKey,
    },
    /// An approval's signature does not verify: forged, or over another order.
    #[error("the approval by {signer:?} does not verify over this order (forged or altered)")]
    BadSignature {
        /// The key it claims.
        signer: Ed25519PublicKey,
    },
    /// Too few approvals.
    #[error("{got} valid approvals, the committee needs {needed}")]
    BelowThreshold {
        /// Distinct valid approvals.
        got: usize,
        /// The threshold.
        needed: u8,
    },
    /// The issue time is ahead of the checker's clock by more than the allowed skew.
    #[error("the order is post-dated: issued at {issued_at:?}, the clock reads {now:?}")]
    PostDated {
        /// The order's issue time.
        issued_at: UnixTime,
        /// The checker's clock.
        now: UnixTime,
    },
    /// The order would take effect before it was written.
    #[error("the order takes effect before it was issued")]
    EffectiveBeforeIssued,
    /// More than a year between issue and effect.
    #[error("the order takes effect more than 366 days after it was issued")]
    NoticeTooLong,
    /// The federation name or the reason is over its limit.
    #[error("the federation name is over 32 bytes or the reason over 1024")]
    TooLong,
    /// Copies to combine differ, or there were none.
    #[error("the copies to combine are not all of one order")]
    DifferentOrders,
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const NOW: UnixTime = UnixTime(1_800_000_000);

    struct Setup {
        keys: Vec<Ed25519SigningKey>,
        committee: SunsetCommittee,
        order: SunsetOrder,
    }

    fn setup() -> Setup {
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let keys: Vec<_> = (0..3)
            .map(|_| Ed25519SigningKey::generate(&mut rng))
            .collect();
        let publics: Vec<_> = keys.iter().map(Ed25519SigningKey::public_key).collect();
        let committee = SunsetCommittee::new(&publics, 2).unwrap();
        let order = SunsetOrder {
            federation: "ephemera-test".into(),
            committee: committee.id(),
            scope: SunsetScope::Federation,
            issued_at: NOW,
            effective_at: UnixTime(NOW.0 + 86_400),
            reason: "The epidemic is declared over.".into(),
        };
        Setup {
            keys,
            committee,
            order,
        }
    }

    fn signed_by(setup: &Setup, signers: &[usize]) -> SignedSunsetOrder {
        let mut signed = SignedSunsetOrder::draft(setup.order.clone());
        for &i in signers {
            signed.sign(&setup.keys[i]);
        }
        signed
    }

    #[test]
    fn two_of_three_verify_and_copies_combine_after_a_frame_round_trip() {
        let s = setup();
        let copies: Vec<_> = [0, 2]
            .iter()
            .map(|&i| {
                let bytes = signed_by(&s, &[i]).to_bytes();
                SignedSunsetOrder::from_bytes(&bytes).unwrap()
            })
            .collect();
        let combined = SignedSunsetOrder::combine(&copies).unwrap();
        assert_eq!(
            combined.verify(&s.committee, "ephemera-test", NOW),
            Ok(&s.order)
        );
        assert_eq!(combined, signed_by(&s, &[2, 0]));
        let all = signed_by(&s, &[0, 1, 2]);
        assert!(all.verify(&s.committee, "ephemera-test", NOW).is_ok());
    }

    #[test]
    fn a_partial_order_is_below_the_threshold() {
        let s = setup();
        for signers in [&[][..], &[1]] {
            assert_eq!(
                signed_by(&s, signers).verify(&s.committee, "ephemera-test", NOW),
                Err(SunsetError::BelowThreshold {
                    got: signers.len(),
                    needed: 2
                })
            );
        }
        // Signing twice with one key is still one approval.
        let mut twice = signed_by(&s, &[1]);
        twice.sign(&s.keys[1]);
        assert!(matches!(
            twice.verify(&s.committee, "ephemera-test", NOW),
            Err(SunsetError::BelowThreshold { got: 1, .. })
        ));
        let mut duplicated = signed_by(&s, &[1]);
        duplicated.approvals.push(duplicated.approvals[0]);
        assert!(matches!(
            duplicated.verify(&s.committee, "ephemera-test", NOW),
            Err(SunsetError::DuplicateApproval { .. })
        ));
    }

    #[test]
    fn forged_or_altered_orders_are_refused() {
        let s = setup();
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let outsider = Ed25519SigningKey::generate(&mut rng);

        let mut by_outsider = signed_by(&s, &[0]);
        by_outsider.sign(&outsider);
        assert!(matches!(
            by_outsider.verify(&s.committee, "ephemera-test", NOW),
            Err(SunsetError::UnknownSigner { .. })
        ));

        // A member's name on a signature made by someone else.
        let mut forged = signed_by(&s, &[0]);
        let mut fake = s.order.approve(&outsider);
        fake.signer = s.keys[1].public_key();
        forged.approvals.push(fake);
        assert_eq!(
            forged.verify(&s.committee, "ephemera-test", NOW),
            Err(SunsetError::BadSignature {
                signer: s.keys[1].public_key()
            })
        );

        // Approvals moved onto an altered order (later effect, narrower scope, new reason).
        for alter in [
            |o: &mut SunsetOrder| o.effective_at.0 += 1,
            |o: &mut SunsetOrder| o.scope = SunsetScope::Authority(Ed25519PublicKey([7; 32])),
            |o: &mut SunsetOrder| o.reason.push('!'),
        ] {
            let mut altered = signed_by(&s, &[0, 1]);
            alter(&mut altered.order);
            assert!(matches!(
                altered.verify(&s.committee, "ephemera-test", NOW),
                Err(SunsetError::BadSignature { .. })
            ));
            assert!(matches!(
                SignedSunsetOrder::combine(&[altered]),
                Err(SunsetError::BadSignature { .. })
            ));
        }
        assert_eq!(
            SignedSunsetOrder::combine(&[signed_by(&s, &[0]), {
                let mut other = SignedSunsetOrder::draft(s.order.clone());
                other.order.reason = "another".into();
                other
            }]),
            Err(SunsetError::DifferentOrders)
        );
    }

    #[test]
    fn an_order_for_another_federation_or_committee_is_refused() {
        let s = setup();
        let signed = signed_by(&s, &[0, 1]);
        assert_eq!(
            signed.verify(&s.committee, "ephemera-other", NOW),
            Err(SunsetError::OtherFederation {
                order: "ephemera-test".into(),
                ours: "ephemera-other".into()
            })
        );
        let publics: Vec<_> = s.keys.iter().map(Ed25519SigningKey::public_key).collect();
        let stricter = SunsetCommittee::new(&publics, 3).unwrap();
        assert_eq!(
            signed.verify(&stricter, "ephemera-test", NOW),
            Err(SunsetError::OtherCommittee)
        );
    }

    #[test]
    fn post_dated_and_badly_timed_orders_are_refused() {
        let s = setup();
        let sign = |order: SunsetOrder| {
            let mut signed = SignedSunsetOrder::draft(order);
            signed.sign(&s.keys[0]);
            signed.sign(&s.keys[1]);
            signed
        };
        let post_dated = sign(SunsetOrder {
            issued_at: UnixTime(NOW.0 + MAX_CLOCK_SKEW_SECONDS + 1),
            effective_at: UnixTime(NOW.0 + 86_400),
            ..s.order.clone()
        });
        assert!(matches!(
            post_dated.verify(&s.committee, "ephemera-test", NOW),
            Err(SunsetError::PostDated { .. })
        ));
        // Within the skew it is accepted.
        let skewed = sign(SunsetOrder {
            issued_at: UnixTime(NOW.0 + MAX_CLOCK_SKEW_SECONDS),
            ..s.order.clone()
        });
        assert!(skewed.verify(&s.committee, "ephemera-test", NOW).is_ok());
        let backwards = sign(SunsetOrder {
            effective_at: UnixTime(NOW.0 - 1),
            ..s.order.clone()
        });
        assert_eq!(
            backwards.verify(&s.committee, "ephemera-test", NOW),
            Err(SunsetError::EffectiveBeforeIssued)
        );
        let far = sign(SunsetOrder {
            effective_at: UnixTime(NOW.0 + MAX_NOTICE_SECONDS + 1),
            ..s.order.clone()
        });
        assert_eq!(
            far.verify(&s.committee, "ephemera-test", NOW),
            Err(SunsetError::NoticeTooLong)
        );
        let long = sign(SunsetOrder {
            reason: "x".repeat(MAX_REASON_BYTES + 1),
            ..s.order.clone()
        });
        assert_eq!(
            long.verify(&s.committee, "ephemera-test", NOW),
            Err(SunsetError::TooLong)
        );
    }

    #[test]
    fn the_largest_order_fits_its_frame_and_the_id_commits_to_every_field() {
        let s = setup();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut largest = SignedSunsetOrder::draft(SunsetOrder {
            federation: "f".repeat(MAX_FEDERATION_BYTES),
            scope: SunsetScope::Authority(Ed25519PublicKey([0xff; 32])),
            issued_at: UnixTime(u64::MAX),
            effective_at: UnixTime(u64::MAX),
            reason: "é".repeat(MAX_REASON_BYTES / 2),
            ..s.order.clone()
        });
        for _ in 0..MAX_COMMITTEE {
            largest.sign(&Ed25519SigningKey::generate(&mut rng));
        }
        let bytes = largest.to_bytes();
        assert!(bytes.len() <= MAX_FRAME, "{} > {MAX_FRAME}", bytes.len());
        assert_eq!(SignedSunsetOrder::from_bytes(&bytes).unwrap(), largest);

        let id = s.order.id();
        let mut other = s.order.clone();
        other.issued_at.0 += 1;
        assert_ne!(id, other.id());
    }

    #[test]
    fn the_batch_index_carries_the_order_as_a_hex_frame() {
        let s = setup();
        let index = crate::batch::BatchIndex {
            batches: Vec::new(),
            next_cursor: 3,
            key_rollovers: Vec::new(),
            head: None,
            token_filters: false,
            sunset: Some(signed_by(&s, &[0, 1])),
        };
        let json = serde_json::to_string(&index).unwrap();
        assert!(json.contains(r#""sunset":"0111"#), "{json}");
        let back: crate::batch::BatchIndex = serde_json::from_str(&json).unwrap();
        assert_eq!(back, index);
        let without = r#"{"batches":[],"next_cursor":3}"#;
        let older: crate::batch::BatchIndex = serde_json::from_str(without).unwrap();
        assert_eq!(older.sunset, None);
        for bad in [
            r#"{"batches":[],"next_cursor":3,"sunset":"zz"}"#.to_owned(),
            format!(
                r#"{{"batches":[],"next_cursor":3,"sunset":"{}"}}"#,
                "00".repeat(MAX_FRAME + 1)
            ),
        ] {
            assert!(serde_json::from_str::<crate::batch::BatchIndex>(&bad).is_err());
        }
    }

    proptest::proptest! {
        /// Outside bytes (a file, an HTTP body, a gossip message) never panic the decoder,
        /// and a byte changed in a valid order never yields one that verifies.
        #[test]
        fn the_decoder_never_panics_and_a_changed_byte_never_verifies(
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..MAX_FRAME + 8),
            at in proptest::num::usize::ANY,
            flip in 1u8..,
        ) {
            let _ = SignedSunsetOrder::from_bytes(&noise);
            let s = setup();
            let mut bytes = signed_by(&s, &[0, 1]).to_bytes();
            let at = at % bytes.len();
            bytes[at] ^= flip;
            if let Ok(changed) = SignedSunsetOrder::from_bytes(&bytes) {
                proptest::prop_assert!(changed.verify(&s.committee, "ephemera-test", NOW).is_err());
            }
        }
    }
}
