//! Cross-checking the node's head with a second node (`docs/PROTOCOL.md` §6.2): the app
//! fetches another node's `GET /v1/heads` and hands the body over; the phone compares the
//! heads of its own node found there with the head it verified and the batch it holds.
//!
//! A node that shows one log to this phone and another to the federation is caught when
//! the two meet: a head of the same key that contradicts the phone's is an error the app
//! can show and report ([`ClientError::HeadMismatch`]). Nothing here moves the cursor.

use ephemera_proto::batch_log::{HeadConflict, HeadList, MAX_HEAD_FRAME, MAX_HEADS_PER_LIST};

use super::Phone;
use crate::error::ClientError;
use crate::store::Store;

/// Largest `/v1/heads` body read: [`MAX_HEADS_PER_LIST`] hex frames and JSON around them.
pub const MAX_HEAD_LIST_BYTES: usize = MAX_HEADS_PER_LIST * (2 * MAX_HEAD_FRAME + 3) + 16;

/// What a second node's view of this phone's node showed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HeadCrossCheck {
    /// The second node holds no head of this phone's node, or the phone has verified no
    /// head yet: nothing to compare.
    NotSeen,
    /// The second node's heads agree with the phone's view.
    Consistent {
        /// The highest sequence the second node saw.
        peer_sequence: u64,
    },
    /// The second node saw a later head than the phone: nothing contradicts, the phone's
    /// next sync should reach it (if it does not, the node withholds: `index-behind-head`
    /// or a `stale-head`).
    PeerAhead {
        /// The highest sequence the second node saw.
        peer_sequence: u64,
    },
}

impl<S: Store> Phone<S> {
    /// Compares a second node's `/v1/heads` answer with this phone's view of its node.
    ///
    /// # Errors
    /// [`ClientError::Decode`] for a body that is not a head list (or over
    /// [`MAX_HEAD_LIST_BYTES`]); [`ClientError::HeadMismatch`] when a head of this phone's
    /// node, signed by its key, contradicts the head this phone verified or names another
    /// batch under the cursor's sequence.
    pub fn cross_check_heads(&self, body: &[u8]) -> Result<HeadCrossCheck, ClientError> {
        if body.len() > MAX_HEAD_LIST_BYTES {
            return Err(ClientError::Decode(ephemera_proto::DecodeError::TooLarge {
                got: body.len(),
                max: MAX_HEAD_LIST_BYTES,
            }));
        }
        let list: HeadList = serde_json::from_slice(body)
            .map_err(|_| ClientError::Decode(ephemera_proto::DecodeError::Malformed))?;
        let Some(mine) = self.sync.head() else {
            return Ok(HeadCrossCheck::NotSeen);
        };
        let trusted = self.trusted_nodes();
        let mut highest = None;
        for theirs in list.heads.iter().take(MAX_HEADS_PER_LIST) {
            if theirs.verify(&trusted).is_err() {
                continue;
            }
            if let Some(conflict) = theirs.conflict_with(&mine) {
                return Err(ClientError::HeadMismatch {
                    conflict: conflict.name(),
                });
            }
            if self.sync.forks_at_cursor(theirs) {
                return Err(ClientError::HeadMismatch {
                    conflict: HeadConflict::Equivocation.name(),
                });
            }
            highest = highest.max(Some(theirs.head.sequence));
        }
        Ok(match highest {
            None => HeadCrossCheck::NotSeen,
            Some(peer_sequence) if peer_sequence > mine.head.sequence => {
                HeadCrossCheck::PeerAhead { peer_sequence }
            }
            Some(peer_sequence) => HeadCrossCheck::Consistent { peer_sequence },
        })
    }
}
