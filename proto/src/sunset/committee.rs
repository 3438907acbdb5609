//! The committee of sunset keys a federation configures: `threshold` of these keys must
//! approve an order.

use std::fmt;

use ring::digest;
use serde::{Deserialize, Serialize};

use super::SunsetError;
use crate::signing::Ed25519PublicKey;

/// Domain label of a committee's identifier.
const COMMITTEE_LABEL: &[u8] = b"ephemera/sunset-committee/v1";

/// Most keys one committee may hold.
pub const MAX_COMMITTEE: usize = 16;

/// The keys allowed to approve a sunset order, and how many must.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SunsetCommittee {
    keys: Vec<Ed25519PublicKey>,
    threshold: u8,
}

impl SunsetCommittee {
    /// A committee of `keys` (in any order) of which `threshold` must approve.
    ///
    /// # Errors
    /// [`SunsetError::BadCommittee`] for no keys, more than [`MAX_COMMITTEE`], a key given
    /// twice, or a threshold of 0 or above the number of keys.
    pub fn new(keys: &[Ed25519PublicKey], threshold: u8) -> Result<Self, SunsetError> {
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let problem = if keys.is_empty() {
            Some("it has no keys")
        } else if keys.len() > MAX_COMMITTEE {
            Some("it has more than 16 keys")
        } else if sorted.len() != keys.len() {
            Some("a key is listed twice")
        } else if threshold == 0 || usize::from(threshold) > keys.len() {
            Some("the threshold must be between 1 and the number of keys")
        } else {
            None
        };
        match problem {
            Some(why) => Err(SunsetError::BadCommittee(why)),
            None => Ok(SunsetCommittee {
                keys: sorted,
                threshold,
            }),
        }
    }

    /// The keys, sorted.
    pub fn keys(&self) -> &[Ed25519PublicKey] {
        &self.keys
    }

    /// How many distinct keys must approve.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// Whether `key` is one of the committee's.
    pub fn contains(&self, key: &Ed25519PublicKey) -> bool {
        self.keys.binary_search(key).is_ok()
    }

    /// `SHA-256(label ‖ threshold ‖ sorted keys)`: an order names the committee it was
    /// written for, so approvals gathered for one committee never count for another.
    pub fn id(&self) -> CommitteeId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(COMMITTEE_LABEL);
        ctx.update(&[self.threshold]);
        for key in &self.keys {
            ctx.update(&key.0);
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(ctx.finish().as_ref());
        CommitteeId(id)
    }
}

/// The identifier of a [`SunsetCommittee`]: its threshold and keys, hashed.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitteeId(pub [u8; 32]);

impl fmt::Debug for CommitteeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitteeId({})", hex::encode(self.0))
    }
}

impl fmt::Display for CommitteeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Ed25519PublicKey {
        Ed25519PublicKey([byte; 32])
    }

    #[test]
    fn the_id_ignores_key_order_and_commits_to_keys_and_threshold() {
        let a = SunsetCommittee::new(&[key(1), key(2), key(3)], 2).unwrap();
        let b = SunsetCommittee::new(&[key(3), key(1), key(2)], 2).unwrap();
        assert_eq!(a.id(), b.id());
        let higher = SunsetCommittee::new(&[key(1), key(2), key(3)], 3).unwrap();
        let other = SunsetCommittee::new(&[key(1), key(2), key(4)], 2).unwrap();
        assert_ne!(a.id(), higher.id());
        assert_ne!(a.id(), other.id());
    }

    #[test]
    fn a_committee_without_a_reachable_threshold_is_refused() {
        for (keys, threshold) in [
            (vec![], 1),
            (vec![key(1), key(2)], 0),
            (vec![key(1), key(2)], 3),
            (vec![key(1), key(1)], 1),
            ((0..17).map(key).collect(), 2),
        ] {
            assert!(
                matches!(
                    SunsetCommittee::new(&keys, threshold),
                    Err(SunsetError::BadCommittee(_))
                ),
                "{} keys, threshold {threshold}",
                keys.len()
            );
        }
    }
}
