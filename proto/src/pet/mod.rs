//! `pet`: private encounter tokens, the default scheme.
//!
//! Each interval a phone broadcasts an ephemeral X25519 public key derived from its
//! [`KeyRatchet`]. Two phones that heard each other derive a shared secret and from it two
//! [`EncounterToken`]s, one per role; a positive phone publishes its own-role tokens and every
//! other phone looks for its peer-role tokens. A broadcast sniffer learns nothing from the
//! published tokens because it cannot compute them without one of the two private keys.
//!
//! - [`KeyRatchet`] → [`EphemeralKeyPair`] per 10-minute interval: the phone's keys, a
//!   one-way chain within the day, so a seized phone reveals no earlier interval's key
//!   ([`DailySecret`] derives the same kind of keys from one secret per day: tools and
//!   simulations use it, phones do not);
//! - the public key goes out whole (extended advertising, GATT) or as four [`KeySlice`]s
//!   ([`slices`], [`SliceCarousel`]) that a receiver puts back together with a
//!   [`SliceAssembler`];
//! - [`encounter_tokens`] turns our key pair and a heard key into [`EncounterTokens`].
//!
//! Every HKDF salt and info label starts with `ephemera/pet/v1/` and is a `const` here:
//! [`EPHEMERAL_KEY_SALT`], [`EPHEMERAL_KEY_INFO`], [`SLICE_TAG_SALT`], [`SLICE_TAG_INFO`],
//! [`ENCOUNTER_SALT`], [`TOKEN_LOW_INFO`], [`TOKEN_HIGH_INFO`], [`RATCHET_SALT`],
//! [`RATCHET_STEP_INFO`], [`RATCHET_KEY_INFO`].

mod daily_secret;
mod encounter;
mod ephemeral;
mod ratchet;
mod slice;
mod types;

pub use daily_secret::{DailySecret, EPHEMERAL_KEY_INFO, EPHEMERAL_KEY_SALT};
pub use encounter::{
    ENCOUNTER_SALT, EncounterTokens, Role, TOKEN_HIGH_INFO, TOKEN_LOW_INFO, encounter_tokens,
};
pub use ephemeral::EphemeralKeyPair;
pub use ratchet::{
    KeyRatchet, RATCHET_BYTES, RATCHET_KEY_INFO, RATCHET_SALT, RATCHET_STEP_INFO, RatchetError,
};
pub use slice::{
    KeySlice, PARITY_INDEX, SLICE_COUNT, SLICE_DATA_LEN, SLICE_LEN, SLICE_TAG_INFO, SLICE_TAG_LEN,
    SLICE_TAG_SALT, SLICE_VERSION, SliceAssembler, SliceCarousel, reassemble, slice_tag, slices,
};
pub use types::{EncounterToken, EphemeralPublicKey};

/// The prefix of every HKDF salt and label of this scheme (version 1).
pub const LABEL_PREFIX: &[u8] = b"ephemera/pet/v1/";

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_LABELS: [&[u8]; 10] = [
        EPHEMERAL_KEY_SALT,
        EPHEMERAL_KEY_INFO,
        SLICE_TAG_SALT,
        SLICE_TAG_INFO,
        ENCOUNTER_SALT,
        TOKEN_LOW_INFO,
        TOKEN_HIGH_INFO,
        RATCHET_SALT,
        RATCHET_STEP_INFO,
        RATCHET_KEY_INFO,
    ];

    #[test]
    fn labels_share_the_prefix_and_are_pairwise_distinct_and_prefix_free() {
        for (i, a) in ALL_LABELS.iter().enumerate() {
            assert!(
                a.starts_with(LABEL_PREFIX),
                "{}",
                String::from_utf8_lossy(a)
            );
            assert!(a.len() > LABEL_PREFIX.len());
            for (j, b) in ALL_LABELS.iter().enumerate() {
                if i != j {
                    assert_ne!(a, b);
                    // No label is a prefix of another, so `label ‖ suffix` never collides
                    // across derivations either.
                    assert!(!b.starts_with(a), "{i} is a prefix of {j}");
                }
            }
        }
    }
}
