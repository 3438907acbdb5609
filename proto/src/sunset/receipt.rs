//! A node's signed deletion receipt: what it erased under an order, and a hash of what it
//! kept, so that anyone can check every node of a federation against the order.

use ring::digest;
use serde::{Deserialize, Serialize};

use super::order::OrderId;
use crate::error::DecodeError;
use crate::signing::{Ed25519PublicKey, Ed25519SigningKey, Signature};
use crate::time::UnixTime;
use crate::wire::{self, WireMessage};

/// Domain label of a receipt's signature.
const RECEIPT_LABEL: &[u8] = b"ephemera/sunset-receipt/v1";
/// Most kinds a receipt counts.
pub const MAX_KINDS: usize = 64;
/// Longest kind name.
const MAX_KIND_BYTES: usize = 48;
/// Largest frame: header, order id, key, kinds (name and count each), sizes, hash, time,
/// signature.
const MAX_FRAME: usize =
    2 + 32 + 32 + 1 + MAX_KINDS * (1 + MAX_KIND_BYTES + 10) + 20 + 32 + 10 + 65;

/// What a node erased, signed by its batch key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionReceipt {
    /// The order it acted on.
    pub order: OrderId,
    /// The node's batch public key: its identity to phones and peers.
    pub node: Ed25519PublicKey,
    /// Records erased per kind (a table or tree, blob files), sorted by kind.
    pub erased: Vec<(String, u64)>,
    /// Bytes the node's data took before.
    pub bytes_before: u64,
    /// Bytes its data folder takes after (the order, this receipt's frame excluded, and the
    /// node's keys).
    pub bytes_after: u64,
    /// SHA-256 over what the node kept: each remaining file's path, length and contents, in
    /// path order.
    pub remaining_state: [u8; 32],
    /// When the erasure finished.
    pub erased_at: UnixTime,
}

/// A receipt with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDeletionReceipt {
    /// The receipt.
    pub receipt: DeletionReceipt,
    /// Ed25519 by `receipt.node` over label ‖ postcard(receipt).
    pub signature: Signature,
}

impl WireMessage for SignedDeletionReceipt {
    const KIND: u8 = wire::kind::SUNSET_RECEIPT;
    const MAX_SIZE: usize = MAX_FRAME;
}

/// Why a receipt does not stand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The signature is not the named node's.
    #[error("the receipt's signature does not verify under the node key it names")]
    BadSignature,
    /// The receipt is for another order.
    #[error("the receipt is for order {got}, not {expected}")]
    OtherOrder {
        /// The receipt's.
        got: OrderId,
        /// The one checked against.
        expected: OrderId,
    },
    /// Too many kinds, or a kind name too long.
    #[error("the receipt lists more than 64 kinds or a kind name over 48 bytes")]
    TooLong,
}

impl DeletionReceipt {
    /// Signs the receipt with the node's batch key (which must be `self.node`).
    pub fn sign(self, key: &Ed25519SigningKey) -> SignedDeletionReceipt {
        let signature = key.sign(RECEIPT_LABEL, &postcard_bytes(&self));
        SignedDeletionReceipt {
            receipt: self,
            signature,
        }
    }
}

impl SignedDeletionReceipt {
    /// Checks the signature and that the receipt is for `order`.
    ///
    /// # Errors
    /// [`ReceiptError`].
    pub fn verify(&self, order: &OrderId) -> Result<&DeletionReceipt, ReceiptError> {
        let r = &self.receipt;
        if r.erased.len() > MAX_KINDS || r.erased.iter().any(|(k, _)| k.len() > MAX_KIND_BYTES) {
            return Err(ReceiptError::TooLong);
        }
        if !r
            .node
            .verify(RECEIPT_LABEL, &postcard_bytes(r), &self.signature)
        {
            return Err(ReceiptError::BadSignature);
        }
        if r.order != *order {
            return Err(ReceiptError::OtherOrder {
                got: r.order,
                expected: *order,
            });
        }
        Ok(r)
    }

    /// The versioned frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self)
    }

    /// Decodes a frame (unchecked: call [`SignedDeletionReceipt::verify`]).
    ///
    /// # Errors
    /// A [`DecodeError`]; never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        wire::decode(bytes)
    }
}

/// Hashes the files a node kept: `(path, contents)` in any order.
pub fn remaining_state_hash<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> [u8; 32] {
    let mut files: Vec<_> = files.into_iter().collect();
    files.sort_unstable_by_key(|(path, _)| *path);
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"ephemera/sunset-remaining/v1");
    for (path, contents) in files {
        ctx.update(&(path.len() as u64).to_le_bytes());
        ctx.update(path.as_bytes());
        ctx.update(&(contents.len() as u64).to_le_bytes());
        ctx.update(contents);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn postcard_bytes(receipt: &DeletionReceipt) -> Vec<u8> {
    postcard::to_allocvec(receipt).expect("postcard encoding into a Vec")
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn receipt(node: &Ed25519SigningKey) -> DeletionReceipt {
        DeletionReceipt {
            order: OrderId([7; 32]),
            node: node.public_key(),
            erased: vec![("accounts".into(), 3), ("uploads".into(), 120)],
            bytes_before: 9_000_000,
            bytes_after: 4_096,
            remaining_state: remaining_state_hash([("keys/batch.key", &b"k"[..])]),
            erased_at: UnixTime(1_800_000_000),
        }
    }

    #[test]
    fn a_receipt_verifies_for_its_order_and_node_only() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let node = Ed25519SigningKey::generate(&mut rng);
        let signed = receipt(&node).sign(&node);
        let back = SignedDeletionReceipt::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(back.verify(&OrderId([7; 32])), Ok(&receipt(&node)));
        assert!(matches!(
            back.verify(&OrderId([8; 32])),
            Err(ReceiptError::OtherOrder { .. })
        ));
        // Counts changed after signing, or another node's name on it.
        let mut altered = back.clone();
        altered.receipt.erased[1].1 = 0;
        assert_eq!(
            altered.verify(&OrderId([7; 32])),
            Err(ReceiptError::BadSignature)
        );
        let mut renamed = back;
        renamed.receipt.node = Ed25519SigningKey::generate(&mut rng).public_key();
        assert_eq!(
            renamed.verify(&OrderId([7; 32])),
            Err(ReceiptError::BadSignature)
        );
    }

    #[test]
    fn the_remaining_state_hash_ignores_order_and_sees_every_byte_and_name() {
        let a = remaining_state_hash([("a", &b"1"[..]), ("b", &b"2"[..])]);
        assert_eq!(
            a,
            remaining_state_hash([("b", &b"2"[..]), ("a", &b"1"[..])])
        );
        assert_ne!(
            a,
            remaining_state_hash([("a", &b"1"[..]), ("b", &b"3"[..])])
        );
        assert_ne!(
            a,
            remaining_state_hash([("a", &b"1"[..]), ("c", &b"2"[..])])
        );
        // Path and contents are length-prefixed: no shift between them collides.
        assert_ne!(
            remaining_state_hash([("ab", &b"c"[..])]),
            remaining_state_hash([("a", &b"bc"[..])])
        );
    }

    #[test]
    fn the_largest_receipt_fits_its_frame() {
        let node = Ed25519SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let mut big = receipt(&node);
        big.erased = (0..MAX_KINDS)
            .map(|i| (format!("{i:0>48}"), u64::MAX))
            .collect();
        big.bytes_before = u64::MAX;
        big.bytes_after = u64::MAX;
        big.erased_at = UnixTime(u64::MAX);
        let bytes = big.sign(&node).to_bytes();
        assert!(bytes.len() <= MAX_FRAME, "{} > {MAX_FRAME}", bytes.len());
    }

    proptest::proptest! {
        #[test]
        fn the_decoder_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut framed = vec![wire::WIRE_VERSION, wire::kind::SUNSET_RECEIPT];
            framed.extend_from_slice(&bytes);
            for frame in [&bytes[..], &framed[..]] {
                if let Ok(receipt) = SignedDeletionReceipt::from_bytes(frame) {
                    let _ = receipt.verify(&OrderId([0; 32]));
                }
            }
        }
    }
}
