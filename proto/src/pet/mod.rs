//! `pet`: private encounter tokens, the default scheme.
//!
//! Each interval a phone broadcasts an ephemeral X25519 public key derived from its
//! [`DailySecret`]. Two phones that heard each other derive a shared secret and from it two
//! [`EncounterToken`]s, one per role; a positive phone publishes its own-role tokens and every
//! other phone looks for its peer-role tokens. A broadcast sniffer learns nothing from the
//! published tokens because it cannot compute them without one of the two private keys.

mod types;

pub use types::{EncounterToken, EphemeralPublicKey};
