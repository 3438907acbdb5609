//! A forward-secure ratchet within the day: the phone's `pet` keys as a one-way chain, so a
//! seized phone reveals no key of an interval before the one its ratchet stands at.
//!
//! # Derivation
//! ```text
//! s(i0)     = 32 random bytes                   (the first interval the phone keys that day)
//! s(i + 1)  = HKDF-SHA256(salt = RATCHET_SALT,
//!                         ikm  = s(i),
//!                         info = RATCHET_STEP_INFO ‖ (i + 1) as u32 little-endian,
//!                         L    = 32)
//! sk(i)     = HKDF-SHA256(salt = RATCHET_SALT,
//!                         ikm  = s(i),
//!                         info = RATCHET_KEY_INFO ‖ i as u32 little-endian,
//!                         L    = 32)
//! pk(i)     = X25519(sk(i), 9)                   (RFC 7748: the scalar is clamped)
//! ```
//! Steps stop at the last interval of `i0`'s UTC day: the next day starts from fresh random
//! bytes, so a state seized (or leaked) one day says nothing about the next.
//!
//! # Why a ratchet
//! [`DailySecret`](super::DailySecret) derives every interval's key from one secret, so a
//! phone that keeps it reveals, when seized, every key it broadcast that day: anyone who
//! recorded broadcasts could then place the phone at each of them. Here the phone keeps only
//! the state of its current interval: moving to interval `i + 1` computes `s(i + 1)` and
//! overwrites `s(i)`, and HKDF cannot be run backwards, so no earlier state or key can be
//! computed from what is kept. A seized phone reveals its current interval's key (and the
//! later ones of that day, which it has not broadcast yet), never an earlier one.
//!
//! # What the phone still can do
//! The tokens of an encounter need the private key of the interval the peer was heard in.
//! The phone computes them while that interval's key still exists (when it first hears the
//! peer) and keeps the tokens, never the key; a report uploads tokens. Nothing else ever
//! needs a past interval's private key.
//!
//! The chain is local to one phone: no other party derives a phone's keys, so the wire
//! protocol (keys heard, tokens published) is the same as with a [`DailySecret`](super::DailySecret).

use std::fmt;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::hkdf::hkdf_sha256;
use crate::time::IntervalNumber;

use super::ephemeral::EphemeralKeyPair;

/// HKDF salt of both the ratchet's step and its interval keys.
pub const RATCHET_SALT: &[u8] = b"ephemera/pet/v1/salt/ratchet";
/// HKDF info label of a ratchet step; the interval stepped to (u32 LE) follows it.
pub const RATCHET_STEP_INFO: &[u8] = b"ephemera/pet/v1/ratchet-step";
/// HKDF info label of an interval's X25519 private key from its ratchet state; the interval
/// (u32 LE) follows it.
pub const RATCHET_KEY_INFO: &[u8] = b"ephemera/pet/v1/ratchet-key";

/// Bytes of [`KeyRatchet::to_bytes`]: the interval (u32 little-endian), then the state.
pub const RATCHET_BYTES: usize = 4 + 32;

/// Why a ratchet cannot move to an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RatchetError {
    /// The interval is before the ratchet's: its state is gone, by design.
    #[error("interval {wanted} is before the ratchet's interval {at}: its key is erased")]
    Erased {
        /// The interval asked for.
        wanted: u32,
        /// The ratchet's interval.
        at: u32,
    },
    /// The interval is on another UTC day: each day starts a fresh ratchet.
    #[error("interval {wanted} is on another day than the ratchet's interval {at}")]
    OtherDay {
        /// The interval asked for.
        wanted: u32,
        /// The ratchet's interval.
        at: u32,
    },
}

/// A phone's `pet` key state at one interval: the key of that interval and of every later
/// interval of the same UTC day can be derived from it; no earlier one can.
///
/// # Privacy
/// It never leaves the phone. `Debug` shows the interval only, equality is constant-time,
/// the state is zeroed on drop, and [`advance_to`](KeyRatchet::advance_to) overwrites the
/// old state in place. It is not `Clone`: a copy would outlive the erasure.
pub struct KeyRatchet {
    interval: IntervalNumber,
    state: [u8; 32],
}

impl KeyRatchet {
    /// A fresh ratchet standing at `interval`, its state drawn from `rng`.
    pub fn generate(interval: IntervalNumber, rng: &mut impl CryptoRng) -> Self {
        let mut state = [0u8; 32];
        rng.fill_bytes(&mut state);
        KeyRatchet { interval, state }
    }

    /// A ratchet from its stored form ([`to_bytes`](KeyRatchet::to_bytes)). Any 36 bytes are
    /// a ratchet.
    pub fn from_bytes(bytes: &[u8; RATCHET_BYTES]) -> Self {
        let mut interval = [0u8; 4];
        interval.copy_from_slice(&bytes[..4]);
        let mut state = [0u8; 32];
        state.copy_from_slice(&bytes[4..]);
        KeyRatchet {
            interval: IntervalNumber(u32::from_le_bytes(interval)),
            state,
        }
    }

    /// The stored form, for the phone's own storage only: the interval (u32 little-endian),
    /// then the 32-byte state. Zeroed when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; RATCHET_BYTES]> {
        let mut out = Zeroizing::new([0u8; RATCHET_BYTES]);
        out[..4].copy_from_slice(&self.interval.0.to_le_bytes());
        out[4..].copy_from_slice(&self.state);
        out
    }

    /// The interval the ratchet stands at.
    pub fn interval(&self) -> IntervalNumber {
        self.interval
    }

    /// The raw state, for the phone's own storage and for test vectors only.
    pub fn state_bytes(&self) -> &[u8; 32] {
        &self.state
    }

    /// The X25519 key pair of the ratchet's interval.
    ///
    /// Deterministic: the same state and interval always give the same key pair.
    pub fn key_pair(&self) -> EphemeralKeyPair {
        let mut okm = Zeroizing::new([0u8; 32]);
        hkdf_sha256(
            RATCHET_SALT,
            &self.state,
            &[RATCHET_KEY_INFO, &self.interval.0.to_le_bytes()],
            &mut okm[..],
        );
        EphemeralKeyPair::new(self.interval, StaticSecret::from(*okm))
    }

    /// Moves the ratchet forward to `interval`, one HKDF step per interval, overwriting the
    /// state at each step. Staying at the current interval changes nothing.
    ///
    /// # Errors
    /// [`RatchetError::Erased`] for an earlier interval, [`RatchetError::OtherDay`] for an
    /// interval on another UTC day (the ratchet is left as it was in both cases).
    pub fn advance_to(&mut self, interval: IntervalNumber) -> Result<(), RatchetError> {
        let (wanted, at) = (interval.0, self.interval.0);
        if interval.day() != self.interval.day() {
            return Err(RatchetError::OtherDay { wanted, at });
        }
        if interval < self.interval {
            return Err(RatchetError::Erased { wanted, at });
        }
        while self.interval < interval {
            let next = self.interval.plus(1);
            let mut okm = Zeroizing::new([0u8; 32]);
            hkdf_sha256(
                RATCHET_SALT,
                &self.state,
                &[RATCHET_STEP_INFO, &next.0.to_le_bytes()],
                &mut okm[..],
            );
            self.state.copy_from_slice(&okm[..]);
            self.interval = next;
        }
        Ok(())
    }
}

impl PartialEq for KeyRatchet {
    fn eq(&self, other: &Self) -> bool {
        self.interval == other.interval && bool::from(self.state.ct_eq(&other.state))
    }
}

impl Eq for KeyRatchet {}

impl fmt::Debug for KeyRatchet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRatchet")
            .field("interval", &self.interval.0)
            .finish_non_exhaustive()
    }
}

impl Drop for KeyRatchet {
    fn drop(&mut self) {
        self.state.zeroize();
    }
}

impl ZeroizeOnDrop for KeyRatchet {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    /// 2020-07-01 00:00 UTC.
    const DAY_START: u32 = 2_655_936;

    fn step(state: &[u8; 32], to: u32) -> [u8; 32] {
        let mut out = [0u8; 32];
        hkdf_sha256(
            RATCHET_SALT,
            state,
            &[RATCHET_STEP_INFO, &to.to_le_bytes()],
            &mut out,
        );
        out
    }

    #[test]
    fn a_step_is_the_documented_hkdf_and_the_key_is_x25519_of_it() {
        let mut r = KeyRatchet::from_bytes(&[0u8; RATCHET_BYTES]);
        // Interval 0, state zero: step to 1, then check the key of 1.
        assert_eq!(r.interval(), IntervalNumber(0));
        r.advance_to(IntervalNumber(1)).unwrap();
        let s1 = step(&[0u8; 32], 1);
        assert_eq!(r.state_bytes(), &s1);
        let mut sk = [0u8; 32];
        hkdf_sha256(
            RATCHET_SALT,
            &s1,
            &[RATCHET_KEY_INFO, &1u32.to_le_bytes()],
            &mut sk,
        );
        assert_eq!(
            r.key_pair().public().0,
            x25519_dalek::x25519(sk, x25519_dalek::X25519_BASEPOINT_BYTES)
        );
        assert_eq!(r.key_pair().interval(), IntervalNumber(1));
    }

    #[test]
    fn it_refuses_the_past_and_another_day_and_stays_put() {
        let mut r = KeyRatchet::generate(
            IntervalNumber(DAY_START + 5),
            &mut ChaCha20Rng::seed_from_u64(1),
        );
        let before = r.to_bytes();
        assert_eq!(
            r.advance_to(IntervalNumber(DAY_START + 4)),
            Err(RatchetError::Erased {
                wanted: DAY_START + 4,
                at: DAY_START + 5
            })
        );
        assert_eq!(
            r.advance_to(IntervalNumber(DAY_START + 144)),
            Err(RatchetError::OtherDay {
                wanted: DAY_START + 144,
                at: DAY_START + 5
            })
        );
        assert!(matches!(
            r.advance_to(IntervalNumber(DAY_START - 1)),
            Err(RatchetError::OtherDay { .. })
        ));
        assert_eq!(*r.to_bytes(), *before);
        // The last interval of the day is reachable.
        r.advance_to(IntervalNumber(DAY_START + 143)).unwrap();
        assert_eq!(r.interval(), IntervalNumber(DAY_START + 143));
    }

    #[test]
    fn every_interval_of_a_day_has_its_own_key() {
        let mut r = KeyRatchet::generate(
            IntervalNumber(DAY_START),
            &mut ChaCha20Rng::seed_from_u64(2),
        );
        let mut keys = vec![r.key_pair().public()];
        for i in 1..144 {
            r.advance_to(IntervalNumber(DAY_START + i)).unwrap();
            keys.push(r.key_pair().public());
        }
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), 144);
    }

    #[test]
    fn debug_shows_no_state() {
        let r = KeyRatchet::from_bytes(&[0xab; RATCHET_BYTES]);
        let shown = format!("{r:?}");
        assert!(shown.starts_with("KeyRatchet"), "{shown}");
        assert!(!shown.contains("171,") && !shown.to_lowercase().contains("abab"));
    }

    proptest! {
        /// Advancing in one go or in any split gives the same state; the stored form round
        /// trips; the state of a later interval differs from every earlier one.
        #[test]
        fn advancing_is_path_independent_and_round_trips(
            state in any::<[u8; 32]>(),
            start in 0u32..144,
            cuts in proptest::collection::vec(0u32..144, 0..5),
            end in 0u32..144,
        ) {
            let (start, end) = (start.min(end), start.max(end));
            let mut bytes = [0u8; RATCHET_BYTES];
            bytes[..4].copy_from_slice(&(DAY_START + start).to_le_bytes());
            bytes[4..].copy_from_slice(&state);
            let mut direct = KeyRatchet::from_bytes(&bytes);
            prop_assert_eq!(*direct.to_bytes(), bytes);
            direct.advance_to(IntervalNumber(DAY_START + end)).unwrap();

            let mut stepped = KeyRatchet::from_bytes(&bytes);
            let mut cuts: Vec<u32> = cuts.into_iter().filter(|c| (start..=end).contains(c)).collect();
            cuts.sort_unstable();
            for cut in cuts {
                stepped.advance_to(IntervalNumber(DAY_START + cut)).unwrap();
            }
            stepped.advance_to(IntervalNumber(DAY_START + end)).unwrap();
            prop_assert!(direct == stepped);
            prop_assert_eq!(
                KeyRatchet::from_bytes(&direct.to_bytes()).key_pair().public(),
                direct.key_pair().public()
            );
            if end > start {
                prop_assert_ne!(direct.state_bytes(), &state);
            }
        }
    }
}
