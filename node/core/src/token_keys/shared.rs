//! Token epochs a group of nodes shares: rows of the store (PostgreSQL's `token_keys`),
//! sealed under a key every node of the group holds.
//!
//! Why the code pepper, and not the store's per-day data keys: data keys live in the same
//! database as the rows they seal (they exist to be destroyed at retention, not to keep a
//! reader of the database out), so a dump would hold the RSA keys that sign phones'
//! tokens, and anyone with it could mint tokens that every node accepts. The pepper is in
//! `keys/` on each node of the group and never in the database (the TOTP secrets of the
//! shared `accounts` table are sealed under it for the same reason), so a database dump
//! alone signs nothing. Sealed value: `nonce (12) ‖ ciphertext ‖ tag`, ChaCha20-Poly1305
//! under HMAC-SHA256(pepper, label), with the label and the epoch as associated data so a
//! row cannot be moved to another day.

use std::sync::Arc;

use ephemera_proto::DayNumber;
use ephemera_proto::auth::CodePepper;
use ephemera_proto::token::TokenSigningKey;
use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::{EpochShelf, EpochStoreError, decode_epoch, encode_epoch};
use crate::store::StoreError;

const SEAL_LABEL: &[u8] = b"ephemera/store/token-keys/v1";

/// A table of sealed epochs, one row per epoch, written once.
pub trait EpochTable: Send + Sync {
    /// Every row from `oldest` on: the epoch (UTC day) and its sealed keys.
    ///
    /// # Errors
    /// [`StoreError`].
    fn token_epochs(&self, oldest: DayNumber) -> Result<Vec<(DayNumber, Vec<u8>)>, StoreError>;

    /// Keeps `sealed` as `epoch`'s row unless there is one (another node made it first),
    /// durably, and returns the row kept.
    ///
    /// # Errors
    /// [`StoreError`].
    fn keep_token_epoch(&self, epoch: DayNumber, sealed: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Removes the rows before `oldest`; returns how many.
    ///
    /// # Errors
    /// [`StoreError`].
    fn forget_token_epochs(&self, oldest: DayNumber) -> Result<u64, StoreError>;
}

/// Seals epochs under a key derived from the code pepper.
pub struct EpochSeal {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for EpochSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochSeal(<redacted>)")
    }
}

fn aad(epoch: DayNumber) -> Vec<u8> {
    let mut aad = SEAL_LABEL.to_vec();
    aad.extend_from_slice(&epoch.0.to_be_bytes());
    aad
}

impl EpochSeal {
    /// The seal of the group whose code pepper is `pepper`.
    pub fn new(pepper: &CodePepper) -> EpochSeal {
        EpochSeal {
            key: crate::keys::pepper_seal_key(pepper, SEAL_LABEL),
            rng: SystemRandom::new(),
        }
    }

    /// `plain` sealed for `epoch`.
    fn seal(&self, epoch: DayNumber, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("system random number generator");
        let mut body = Zeroizing::new(plain.to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(epoch)),
                &mut *body,
            )
            .expect("an epoch's keys fit one ChaCha20-Poly1305 message");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// What was sealed for `epoch`, or `None` when `sealed` is not that.
    fn open(&self, epoch: DayNumber, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = Zeroizing::new(body.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(epoch)), &mut body)
            .ok()?
            .len();
        body.truncate(plain);
        Some(body)
    }

    fn keys(
        &self,
        epoch: DayNumber,
        sealed: &[u8],
    ) -> Result<Vec<TokenSigningKey>, EpochStoreError> {
        self.open(epoch, sealed)
            .and_then(|plain| decode_epoch(&plain, epoch))
            .ok_or(EpochStoreError::Unreadable { epoch })
    }
}

/// The epochs of a group, in its store's table.
pub struct StoreEpochs {
    table: Arc<dyn EpochTable>,
    seal: EpochSeal,
}

impl std::fmt::Debug for StoreEpochs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreEpochs").finish_non_exhaustive()
    }
}

impl StoreEpochs {
    /// The epochs of `table`, sealed with `seal`.
    pub fn new(table: Arc<dyn EpochTable>, seal: EpochSeal) -> StoreEpochs {
        StoreEpochs { table, seal }
    }
}

impl EpochShelf for StoreEpochs {
    fn load(
        &self,
        oldest: DayNumber,
    ) -> Result<Vec<(DayNumber, Vec<TokenSigningKey>)>, EpochStoreError> {
        let mut out = self
            .table
            .token_epochs(oldest)?
            .into_iter()
            .map(|(epoch, sealed)| Ok((epoch, self.seal.keys(epoch, &sealed)?)))
            .collect::<Result<Vec<_>, EpochStoreError>>()?;
        out.sort_by_key(|(epoch, _)| *epoch);
        Ok(out)
    }

    fn save(
        &self,
        epoch: DayNumber,
        keys: Vec<TokenSigningKey>,
    ) -> Result<Vec<TokenSigningKey>, EpochStoreError> {
        let plain = encode_epoch(&keys).ok_or(EpochStoreError::Unreadable { epoch })?;
        let kept = self
            .table
            .keep_token_epoch(epoch, &self.seal.seal(epoch, &plain))?;
        self.seal.keys(epoch, &kept)
    }

    fn forget_before(&self, oldest: DayNumber) -> Result<(), EpochStoreError> {
        self.table.forget_token_epochs(oldest)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use ephemera_proto::token::TokenClass;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::token_keys::TokenKeyring;

    /// The table's contract in memory (PostgreSQL's is `store::postgres_store::tests`).
    #[derive(Default)]
    struct Rows(Mutex<BTreeMap<DayNumber, Vec<u8>>>);

    impl EpochTable for Rows {
        fn token_epochs(&self, oldest: DayNumber) -> Result<Vec<(DayNumber, Vec<u8>)>, StoreError> {
            let rows = self.0.lock().unwrap();
            Ok(rows.range(oldest..).map(|(d, v)| (*d, v.clone())).collect())
        }

        fn keep_token_epoch(&self, epoch: DayNumber, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
            let mut rows = self.0.lock().unwrap();
            Ok(rows.entry(epoch).or_insert_with(|| sealed.to_vec()).clone())
        }

        fn forget_token_epochs(&self, oldest: DayNumber) -> Result<u64, StoreError> {
            let mut rows = self.0.lock().unwrap();
            let before = rows.len();
            rows.retain(|d, _| *d >= oldest);
            Ok((before - rows.len()) as u64)
        }
    }

    fn ids(keys: &[TokenSigningKey]) -> Vec<ephemera_proto::token::TokenKeyId> {
        keys.iter().map(|k| k.public().id()).collect()
    }

    #[test]
    fn two_nodes_of_a_group_end_with_the_first_ones_keys_sealed_under_the_pepper() {
        let rows: Arc<Rows> = Arc::default();
        let pepper = CodePepper(Zeroizing::new([7; 32]));
        let a = StoreEpochs::new(rows.clone(), EpochSeal::new(&pepper));
        let b = StoreEpochs::new(rows.clone(), EpochSeal::new(&pepper));
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let epoch = DayNumber(19_700);
        let made_a = TokenKeyring::generate_epoch(epoch, &mut rng).unwrap();
        let made_b = TokenKeyring::generate_epoch(epoch, &mut rng).unwrap();
        let (ids_a, ids_b) = (ids(&made_a), ids(&made_b));
        assert_ne!(ids_a, ids_b);
        assert_eq!(ids(&a.save(epoch, made_a).unwrap()), ids_a);
        assert_eq!(
            ids(&b.save(epoch, made_b).unwrap()),
            ids_a,
            "the first one's"
        );
        let loaded = b.load(DayNumber(0)).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(ids(&loaded[0].1), ids_a);
        assert_eq!(loaded[0].1.len(), TokenClass::ALL.len());

        // The row holds no key in clear: no DER of any key appears in it.
        let row = rows.0.lock().unwrap()[&epoch].clone();
        for key in &loaded[0].1 {
            let der = key.to_der().unwrap();
            let secret = &der[der.len() / 2..der.len() / 2 + 32];
            assert!(!row.windows(32).any(|w| w == secret));
        }
        // Another pepper (a node with another group's keys/) cannot read it.
        let stranger = StoreEpochs::new(
            rows.clone(),
            EpochSeal::new(&CodePepper(Zeroizing::new([8; 32]))),
        );
        assert!(matches!(
            stranger.load(DayNumber(0)),
            Err(EpochStoreError::Unreadable { epoch: e }) if e == epoch
        ));
        // A row moved to another day does not open.
        rows.0.lock().unwrap().insert(epoch.plus(1), row);
        assert!(matches!(
            a.load(DayNumber(0)),
            Err(EpochStoreError::Unreadable { epoch: e }) if e == epoch.plus(1)
        ));
        a.forget_before(epoch.plus(1)).unwrap();
        assert_eq!(rows.0.lock().unwrap().len(), 1);
        // Bytes that are not a sealed value at all.
        assert!(EpochSeal::new(&pepper).open(epoch, &[1, 2, 3]).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// A row of the shared table is outside bytes (anyone with write access to the
        /// database): whatever it holds is `Unreadable`, never a panic.
        #[test]
        fn any_row_is_read_or_refused_without_a_panic(
            row in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            day in 0u32..40_000,
        ) {
            let rows: Arc<Rows> = Arc::default();
            rows.0.lock().unwrap().insert(DayNumber(day), row);
            let shelf = StoreEpochs::new(
                rows,
                EpochSeal::new(&CodePepper(Zeroizing::new([7; 32]))),
            );
            let refused = matches!(
                shelf.load(DayNumber(0)),
                Err(EpochStoreError::Unreadable { epoch }) if epoch == DayNumber(day)
            );
            proptest::prop_assert!(refused);
        }
    }
}
