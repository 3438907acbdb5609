//! Many Ed25519 signatures checked at once (feature `batch-verify`).
//!
//! ed25519-dalek's batch equation checks n signatures with one multiscalar multiplication,
//! 2–3 times fewer cycles a signature than n single checks. When the equation fails, the
//! batch's halves are checked again, down to single checks ([`TrustedKeys::signer`]), which
//! name the bad signatures and so give exactly the one-by-one answers.
//!
//! What a batch accepts: every signature the single check accepts. The batch equation is
//! cofactorless with 128-bit coefficients derived from the inputs; a signature that fails
//! the single check only by a small-order component can pass inside a batch, and making one
//! takes the signing key (the trusted authority itself): nobody else can make a signature
//! that a batch accepts and the single check refuses.

use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};

use super::{Ed25519PublicKey, KeyId, Signature, TrustedKeys, Untrusted};

/// Batches of this many or fewer are checked one by one: below it the batch equation saves
/// less than a failed batch costs.
const SINGLE_BELOW: usize = 4;

/// One signature to check: the id of the key it claims, its domain label, the message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Claim<'a> {
    /// The claimed key's id.
    pub id: &'a KeyId,
    /// The domain label signed before the message.
    pub label: &'a [u8],
    /// The signed message.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a Signature,
}

/// A claim in the batch: its index, the trusted key, the dalek forms.
struct Prepared<'t> {
    index: usize,
    key: &'t Ed25519PublicKey,
    verifying: VerifyingKey,
    input: Vec<u8>,
    signature: DalekSignature,
}

impl TrustedKeys {
    /// [`TrustedKeys::signer`] of each claim, checked together.
    pub(crate) fn signers<'t>(
        &'t self,
        claims: &[Claim<'_>],
    ) -> Vec<Result<&'t Ed25519PublicKey, Untrusted>> {
        let mut results: Vec<Option<Result<&'t Ed25519PublicKey, Untrusted>>> =
            vec![None; claims.len()];
        // Decompressing a key costs about a third of a check: once per distinct key.
        let mut decompressed: Vec<(&'t Ed25519PublicKey, Option<VerifyingKey>)> = Vec::new();
        let mut batch = Vec::with_capacity(claims.len());
        for (index, claim) in claims.iter().enumerate() {
            let mut same_id = self.with_id(claim.id);
            let key = match (same_id.next(), same_id.next()) {
                (None, _) => {
                    results[index] = Some(Err(Untrusted::Id));
                    continue;
                }
                (Some(key), None) => key,
                // Keys sharing an id: each is tried, one by one.
                _ => {
                    results[index] = Some(self.single(claim));
                    continue;
                }
            };
            let verifying = match decompressed.iter().find(|(k, _)| *k == key) {
                Some((_, verifying)) => *verifying,
                None => {
                    let verifying = VerifyingKey::from_bytes(&key.0).ok();
                    decompressed.push((key, verifying));
                    verifying
                }
            };
            let Some(verifying) = verifying else {
                results[index] = Some(self.single(claim));
                continue;
            };
            let mut input = Vec::with_capacity(claim.label.len() + claim.message.len());
            input.extend_from_slice(claim.label);
            input.extend_from_slice(claim.message);
            batch.push(Prepared {
                index,
                key,
                verifying,
                input,
                signature: DalekSignature::from_bytes(&claim.signature.0),
            });
        }
        self.check(claims, &batch, &mut results);
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Untrusted::Signature)))
            .collect()
    }

    /// Checks `batch` with one equation; on failure, each half on its own.
    fn check<'t>(
        &'t self,
        claims: &[Claim<'_>],
        batch: &[Prepared<'t>],
        results: &mut [Option<Result<&'t Ed25519PublicKey, Untrusted>>],
    ) {
        if batch.len() <= SINGLE_BELOW {
            for prepared in batch {
                results[prepared.index] = Some(self.single(&claims[prepared.index]));
            }
            return;
        }
        let inputs: Vec<&[u8]> = batch.iter().map(|p| p.input.as_slice()).collect();
        let signatures: Vec<DalekSignature> = batch.iter().map(|p| p.signature).collect();
        let keys: Vec<VerifyingKey> = batch.iter().map(|p| p.verifying).collect();
        if ed25519_dalek::verify_batch(&inputs, &signatures, &keys).is_ok() {
            for prepared in batch {
                results[prepared.index] = Some(Ok(prepared.key));
            }
            return;
        }
        let (first, second) = batch.split_at(batch.len() / 2);
        self.check(claims, first, results);
        self.check(claims, second, results);
    }

    fn single<'t>(&'t self, claim: &Claim<'_>) -> Result<&'t Ed25519PublicKey, Untrusted> {
        self.signer(claim.id, claim.label, claim.message, claim.signature)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::signing::Ed25519SigningKey;

    const LABEL: &[u8] = b"ephemera/test/batch";

    /// `n` messages signed by `keys` in turn, and the trusted set of those keys.
    fn signed(
        n: usize,
        keys: usize,
        seed: u64,
    ) -> (Vec<Vec<u8>>, Vec<Signature>, Vec<KeyId>, TrustedKeys) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let signers: Vec<Ed25519SigningKey> = (0..keys)
            .map(|_| Ed25519SigningKey::generate(&mut rng))
            .collect();
        let trusted = signers
            .iter()
            .fold(TrustedKeys::new(), |t, k| t.with(k.public_key()));
        let messages: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("message {i}").into_bytes())
            .collect();
        let signatures = messages
            .iter()
            .enumerate()
            .map(|(i, m)| signers[i % keys].sign(LABEL, m))
            .collect();
        let ids = (0..n)
            .map(|i| signers[i % keys].public_key().key_id())
            .collect();
        (messages, signatures, ids, trusted)
    }

    fn claims<'a>(m: &'a [Vec<u8>], s: &'a [Signature], ids: &'a [KeyId]) -> Vec<Claim<'a>> {
        (0..m.len())
            .map(|i| Claim {
                id: &ids[i],
                label: LABEL,
                message: &m[i],
                signature: &s[i],
            })
            .collect()
    }

    fn one_by_one<'t>(
        trusted: &'t TrustedKeys,
        claims: &[Claim<'_>],
    ) -> Vec<Result<&'t Ed25519PublicKey, Untrusted>> {
        claims.iter().map(|c| trusted.single(c)).collect()
    }

    #[test]
    fn a_valid_batch_names_each_signer() {
        let (m, s, ids, trusted) = signed(64, 3, 1);
        let claims = claims(&m, &s, &ids);
        let batch = trusted.signers(&claims);
        assert!(batch.iter().all(Result::is_ok));
        assert_eq!(batch, one_by_one(&trusted, &claims));
    }

    #[test]
    fn an_unknown_id_and_a_key_shared_by_two_ids_are_answered_as_one_by_one() {
        let (m, s, mut ids, mut trusted) = signed(16, 2, 2);
        ids[3] = KeyId([9; 8]);
        // A second key under the first key's id: claims of that id are tried against both.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        trusted.insert_under(ids[0], Ed25519SigningKey::generate(&mut rng).public_key());
        let claims = claims(&m, &s, &ids);
        let batch = trusted.signers(&claims);
        assert_eq!(batch[3], Err(Untrusted::Id));
        assert!(batch[0].is_ok() && batch[2].is_ok());
        assert_eq!(batch, one_by_one(&trusted, &claims));
    }

    proptest! {
        /// Whatever signatures are bad (a flipped bit, another message's signature), the
        /// batch gives exactly the one-by-one answers.
        #[test]
        fn a_batch_answers_exactly_as_single_checks(
            n in 1usize..80,
            keys in 1usize..4,
            seed in any::<u64>(),
            bad in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 0..6),
        ) {
            let (m, mut s, ids, trusted) = signed(n, keys, seed);
            for (at, bit, swap) in bad {
                let i = at % n;
                if swap && n > 1 {
                    s[i] = s[(i + 1) % n];
                } else {
                    s[i].0[usize::from(bit) % 64] ^= 1 << (bit % 8);
                }
            }
            let claims = claims(&m, &s, &ids);
            prop_assert_eq!(trusted.signers(&claims), one_by_one(&trusted, &claims));
        }
    }
}
