//! The phone's `pet` keys: a [`KeyRatchet`] within the day, kept in the store's ratchet
//! slot ([`MetaKey::PetRatchet`]) and moved forward as time passes.
//!
//! # When a past interval's key is needed
//! Only to compute an encounter's tokens, and the phone computes them when it first hears
//! the peer, in the interval whose key it holds (`sighting.rs`); open and closed encounters
//! keep tokens, never keys, and a report uploads tokens. So the phone needs the current
//! interval's key only, and every input that acts on time moves the ratchet to the current
//! interval, overwriting the old state in memory and in the slot (a synced overwrite in
//! place). The next day starts a fresh ratchet from the RNG when it is first needed; the
//! last day's state is erased at the first input of the new day.
//!
//! # What a seized phone reveals
//! Its ratchet state: the key of the interval of its last input and the later keys of that
//! day. No earlier key: with inputs at least every interval (the app re-arms the
//! `poll_timeout` timer, which includes every interval boundary) that is at most 10 minutes
//! back.
//!
//! # A lost state
//! A state that cannot be read (a torn write, a damaged file) is replaced by a fresh one:
//! nothing depends on it but the keys still to be broadcast.

use ephemera_proto::pet::{EphemeralKeyPair, KeyRatchet, RATCHET_BYTES};
use ephemera_proto::{IntervalNumber, SchemeKind, UnixTime};
use zeroize::Zeroizing;

use super::Phone;
use crate::error::{ClientError, StoreError};
use crate::store::{MetaKey, Store};

/// The ratchet in memory and its interval's key pair.
#[derive(Debug)]
pub(super) struct PetKeys {
    ratchet: KeyRatchet,
    pair: EphemeralKeyPair,
}

impl PetKeys {
    fn new(ratchet: KeyRatchet) -> Self {
        let pair = ratchet.key_pair();
        PetKeys { ratchet, pair }
    }
}

/// The ratchet kept in `store`: none if none, or if what is kept cannot be read.
///
/// # Errors
/// [`ClientError::Store`] when the store fails (other than a damaged value).
fn load(store: &impl Store) -> Result<Option<KeyRatchet>, ClientError> {
    let bytes = match store.meta(MetaKey::PetRatchet) {
        Ok(Some(bytes)) => Zeroizing::new(bytes),
        Ok(None) | Err(StoreError::Corrupt { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(<&[u8; RATCHET_BYTES]>::try_from(bytes.as_slice())
        .ok()
        .map(KeyRatchet::from_bytes))
}

impl<S: Store> Phone<S> {
    /// Our `pet` key pair of `interval`, the current one: the ratchet moved forward to it
    /// (and kept durably before use), or a fresh ratchet made for it.
    ///
    /// # Errors
    /// [`ClientError::Store`] when the ratchet cannot be kept.
    pub(super) fn pet_pair(
        &mut self,
        interval: IntervalNumber,
    ) -> Result<&EphemeralKeyPair, ClientError> {
        self.load_pet_keys()?;
        let at = self.pet_keys.as_ref().map(|k| k.ratchet.interval());
        if at != Some(interval) {
            let mut ratchet = match self.pet_keys.take() {
                Some(keys) => keys.ratchet,
                None => KeyRatchet::generate(interval, &mut self.rng),
            };
            if ratchet.advance_to(interval).is_err() {
                // Another day, or (after a clock change across an erase) an interval the
                // state is past: a fresh ratchet; the old one is zeroed as it drops.
                ratchet = KeyRatchet::generate(interval, &mut self.rng);
            }
            self.keep_ratchet(ratchet)?;
        }
        Ok(&self.pet_keys.as_ref().expect("kept above").pair)
    }

    /// Moves an existing ratchet forward to `now`'s interval, or erases it once its day is
    /// over; makes none. Runs before every input's work.
    ///
    /// # Errors
    /// [`ClientError::Store`] when the store fails.
    pub(super) fn advance_pet_keys(&mut self, now: UnixTime) -> Result<(), ClientError> {
        if self.config.scheme != SchemeKind::Pet {
            return Ok(());
        }
        self.load_pet_keys()?;
        let interval = now.interval();
        let Some(mut ratchet) = self
            .pet_keys
            .take_if(|k| k.ratchet.interval() != interval)
            .map(|k| k.ratchet)
        else {
            return Ok(());
        };
        if ratchet.advance_to(interval).is_ok() {
            return self.keep_ratchet(ratchet);
        }
        drop(ratchet);
        self.store.remove_meta(MetaKey::PetRatchet)?;
        self.store.flush()?;
        Ok(())
    }

    /// Reads the kept ratchet into memory once per phone object.
    fn load_pet_keys(&mut self) -> Result<(), ClientError> {
        if !self.pet_keys_loaded {
            self.pet_keys = load(&self.store)?.map(PetKeys::new);
            self.pet_keys_loaded = true;
        }
        Ok(())
    }

    /// Keeps `ratchet` durably (overwriting the state before it), then in memory.
    fn keep_ratchet(&mut self, ratchet: KeyRatchet) -> Result<(), ClientError> {
        self.store
            .set_meta(MetaKey::PetRatchet, &*ratchet.to_bytes())?;
        self.store.flush()?;
        self.pet_keys = Some(PetKeys::new(ratchet));
        Ok(())
    }

    /// Forgets the ratchet in memory (the store's copy goes with the store's erase).
    pub(super) fn forget_pet_keys(&mut self) {
        self.pet_keys = None;
        self.pet_keys_loaded = false;
    }
}
