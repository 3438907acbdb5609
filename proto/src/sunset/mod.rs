//! The end of purpose: a sunset order that stops the system and erases what it held
//! (`docs/PROTOCOL.md` §11).
//!
//! ```text
//! frame     = version (1) ‖ kind 0x11 (1) ‖ postcard(SignedSunsetOrder)
//! approved  = Ed25519(signer, "ephemera/sunset-order/v1" ‖ postcard(SunsetOrder))
//! order id  = SHA-256("ephemera/sunset-order-id/v1" ‖ postcard(SunsetOrder))
//! ```
//!
//! An order names its federation, the committee of sunset keys it is for (by
//! [`CommitteeId`]), a scope, when it was issued and when it takes effect, and a reason in
//! words. It counts only with approvals from at least `threshold` distinct keys of that
//! committee, for example 2 of 3: the health authority, the data-protection authority and
//! an independent party. The sunset keys are not the authority's day-to-day keys. Whoever
//! relays an order (a node, a peer, a phone's download) adds nothing to it: every holder
//! checks the approvals against the committee it was configured with.

mod committee;
mod order;
mod receipt;

pub use committee::{CommitteeId, MAX_COMMITTEE, SunsetCommittee};
pub use order::{
    MAX_CLOCK_SKEW_SECONDS, MAX_NOTICE_SECONDS, MAX_REASON_BYTES, OrderId, SignedSunsetOrder,
    SunsetApproval, SunsetError, SunsetOrder, SunsetScope,
};
pub use receipt::{
    DeletionReceipt, MAX_KINDS, ReceiptError, SignedDeletionReceipt, remaining_state_hash,
};
