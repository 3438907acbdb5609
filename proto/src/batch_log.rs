//! A node's batch log: its chained batches and the head it signs (protocol version 2).
//!
//! Every version 2 batch names its predecessor's [`BatchId`] under the node's signature
//! ([`crate::batch`]), so a node's batches form a hash chain. The node signs its head —
//! the latest batch's sequence and id — with the time, and serves it beside its index:
//!
//! ```text
//! frame  = version 2 (1) ‖ kind 0x0d (1) ‖ postcard(SignedHead)
//! signed = "ephemera/batch-head/v1" ‖ node key (32) ‖ u64le(sequence) ‖ head id (32)
//!          ‖ u64le(issued_at)
//! ```
//!
//! A phone holds the node to it: each batch must chain to the one before, the index must
//! reach the head, and a head must be fresh ([`SignedHead::check_fresh`]). Nodes gossip
//! the heads they see; two heads of one key that cannot both be honest
//! ([`HeadConflict`]) are evidence of equivocation or rollback, self-contained: anyone can
//! check both signatures.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::batch::{BatchId, NodeSigningKey, TrustedNodes};
use crate::error::DecodeError;
use crate::signing::{Ed25519PublicKey, Signature};
use crate::time::UnixTime;
use crate::wire::{self, WireMessage};

/// Domain label of head signatures.
const HEAD_LABEL: &[u8] = b"ephemera/batch-head/v1";
/// A head's time is rounded down to this many seconds: every phone asking in the same
/// minute gets the same bytes (caches can share them), and the time says nothing finer.
pub const HEAD_GRANULARITY_SECONDS: u64 = 60;
/// Largest head frame: header, key, sequence (varint), id, time (varint), signature with
/// its length.
pub const MAX_HEAD_FRAME: usize = 2 + 32 + 10 + 32 + 10 + 65;

/// What a node states about its log: its latest batch, at a time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHead {
    /// The node's batch key, which signs the head.
    pub node: Ed25519PublicKey,
    /// The sequence of the node's latest published batch (0: none yet).
    pub sequence: u64,
    /// That batch's id ([`BatchId::NONE`] when there is none).
    pub head: BatchId,
    /// When the node signed, rounded down to [`HEAD_GRANULARITY_SECONDS`].
    pub issued_at: UnixTime,
}

/// A [`BatchHead`] signed by its node's key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The head.
    pub head: BatchHead,
    /// The node key's signature over the head.
    pub signature: Signature,
}

impl WireMessage for SignedHead {
    const KIND: u8 = wire::kind::SIGNED_HEAD;
    const MAX_SIZE: usize = MAX_HEAD_FRAME;
    const VERSIONS: &'static [u8] = &[wire::WIRE_VERSION_2];

    fn wire_version(&self) -> u8 {
        wire::WIRE_VERSION_2
    }
}

/// A head failed a check.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// Signed by a key that is not trusted here.
    #[error("the head is signed by an untrusted node key")]
    UntrustedNode,
    /// The signature does not verify.
    #[error("the head's signature is invalid")]
    BadSignature,
    /// Issued longer ago than the accepted age: a cache or a node replays an old head.
    #[error("the head was issued at {issued_at}, more than {max_age} s before now")]
    Stale {
        /// When it was issued (unix seconds).
        issued_at: u64,
        /// The accepted age in seconds.
        max_age: u64,
    },
}

impl BatchHead {
    fn signed_message(&self) -> [u8; 32 + 8 + 32 + 8] {
        let mut message = [0u8; 80];
        message[..32].copy_from_slice(&self.node.0);
        message[32..40].copy_from_slice(&self.sequence.to_le_bytes());
        message[40..72].copy_from_slice(&self.head.0);
        message[72..].copy_from_slice(&self.issued_at.0.to_le_bytes());
        message
    }
}

impl SignedHead {
    /// `key` signs that its latest batch is `sequence` with id `head`, at `now` (rounded
    /// down to [`HEAD_GRANULARITY_SECONDS`]).
    pub fn sign(key: &NodeSigningKey, sequence: u64, head: BatchId, now: UnixTime) -> SignedHead {
        let head = BatchHead {
            node: key.public_key(),
            sequence,
            head,
            issued_at: UnixTime(now.0 - now.0 % HEAD_GRANULARITY_SECONDS),
        };
        SignedHead {
            signature: key.ed25519().sign(HEAD_LABEL, &head.signed_message()),
            head,
        }
    }

    /// Whether the key the head names made its signature (trusted or not: what gossip
    /// keeps as evidence needs no trust, only the key's own signature).
    pub fn is_self_signed(&self) -> bool {
        self.head
            .node
            .verify(HEAD_LABEL, &self.head.signed_message(), &self.signature)
    }

    /// Checks that a trusted key signed the head.
    ///
    /// # Errors
    /// [`HeadError::UntrustedNode`], [`HeadError::BadSignature`].
    pub fn verify(&self, trusted: &TrustedNodes) -> Result<(), HeadError> {
        if !trusted.contains(&self.head.node) {
            return Err(HeadError::UntrustedNode);
        }
        if !self.is_self_signed() {
            return Err(HeadError::BadSignature);
        }
        Ok(())
    }

    /// Checks that the head was issued at most `max_age` seconds before `now` (a head
    /// from the future, a clock apart, counts as fresh).
    ///
    /// # Errors
    /// [`HeadError::Stale`].
    pub fn check_fresh(&self, now: UnixTime, max_age: u64) -> Result<(), HeadError> {
        if now.0.saturating_sub(self.head.issued_at.0) > max_age {
            return Err(HeadError::Stale {
                issued_at: self.head.issued_at.0,
                max_age,
            });
        }
        Ok(())
    }

    /// The versioned frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self)
    }

    /// Decodes a frame (signature unchecked: call [`SignedHead::verify`]).
    ///
    /// # Errors
    /// [`DecodeError`] for a frame that is not a head.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedHead, DecodeError> {
        wire::decode(bytes)
    }

    /// How this head and `other`, both of the same key and both self-signed, contradict
    /// each other, if they do: one id for two batches of one sequence (equivocation), or
    /// a later head at a lower sequence (rollback). Heads of different keys never
    /// conflict.
    pub fn conflict_with(&self, other: &SignedHead) -> Option<HeadConflict> {
        let (a, b) = (&self.head, &other.head);
        if a.node != b.node {
            return None;
        }
        if a.sequence == b.sequence && a.head != b.head {
            return Some(HeadConflict::Equivocation);
        }
        let rolled_back = |earlier: &BatchHead, later: &BatchHead| {
            later.issued_at > earlier.issued_at && later.sequence < earlier.sequence
        };
        if rolled_back(a, b) || rolled_back(b, a) {
            return Some(HeadConflict::Rollback);
        }
        None
    }
}

impl fmt::Display for SignedHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} sequence {} head {} at {}",
            self.head.node.key_id(),
            self.head.sequence,
            self.head.head,
            self.head.issued_at.0
        )
    }
}

/// How two signed heads of one node contradict each other.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HeadConflict {
    /// Two different batches under one sequence: the node shows different logs to
    /// different readers.
    Equivocation,
    /// A head signed later names a lower sequence: the node went back in its log.
    Rollback,
}

impl HeadConflict {
    /// The conflict's name in metrics, logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            HeadConflict::Equivocation => "equivocation",
            HeadConflict::Rollback => "rollback",
        }
    }
}

/// Serde for a head as the hex of its frame in human-readable formats (JSON), as a
/// structure otherwise.
pub mod as_hex_frame {
    use super::*;

    /// Serializes the head as the hex of its frame.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(head: &SignedHead, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(head.to_bytes()))
        } else {
            head.serialize(s)
        }
    }

    /// Reads the hex of a head frame (or a structure).
    ///
    /// # Errors
    /// A string that is not the hex of a head frame.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedHead, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            from_hex(&text).map_err(serde::de::Error::custom)
        } else {
            SignedHead::deserialize(d)
        }
    }

    /// Decodes the hex of a head frame.
    pub(crate) fn from_hex(text: &str) -> Result<SignedHead, DecodeError> {
        if text.len() > 2 * MAX_HEAD_FRAME {
            return Err(DecodeError::TooLarge {
                got: text.len() / 2,
                max: MAX_HEAD_FRAME,
            });
        }
        let bytes = hex::decode(text).map_err(|_| DecodeError::Malformed)?;
        SignedHead::from_bytes(&bytes)
    }
}

/// Serde for a list of heads as hex frames in JSON (a node's `/v1/heads`).
pub mod as_hex_frames {
    use super::*;

    /// Serializes each head as the hex of its frame.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(list: &[SignedHead], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_seq(list.iter().map(|h| hex::encode(h.to_bytes())))
        } else {
            list.serialize(s)
        }
    }

    /// Reads hex frames (or structures).
    ///
    /// # Errors
    /// A string that is not the hex of a head frame.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SignedHead>, D::Error> {
        if d.is_human_readable() {
            Vec::<String>::deserialize(d)?
                .iter()
                .map(|t| as_hex_frame::from_hex(t).map_err(serde::de::Error::custom))
                .collect()
        } else {
            Vec::<SignedHead>::deserialize(d)
        }
    }
}

/// The heads a node serves at `GET /v1/heads`: its own and the latest it holds of each
/// peer (learned from gossip), so a phone can compare its node's head with what another
/// node saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadList {
    /// Signed heads, as hex frames in JSON.
    #[serde(with = "as_hex_frames")]
    pub heads: Vec<SignedHead>,
}

/// Most heads a phone or node reads from one [`HeadList`]: a federation has a few dozen
/// nodes.
pub const MAX_HEADS_PER_LIST: usize = 256;

impl WireMessage for HeadList {
    const KIND: u8 = wire::kind::HEAD_LIST;
    // The list's length (varint, up to 3 bytes) and at most MAX_HEADS_PER_LIST heads, each
    // its frame less the frame's header.
    const MAX_SIZE: usize = 2 + 3 + MAX_HEADS_PER_LIST * (MAX_HEAD_FRAME - 2);
    const VERSIONS: &'static [u8] = &[wire::WIRE_VERSION_2];

    fn wire_version(&self) -> u8 {
        wire::WIRE_VERSION_2
    }
}

/// Two heads that contradict each other, with both signed objects: evidence anyone can
/// check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadEvidence {
    /// How they conflict.
    pub conflict: HeadConflict,
    /// The head held first.
    #[serde(with = "as_hex_frame")]
    pub first: SignedHead,
    /// The head that contradicts it.
    #[serde(with = "as_hex_frame")]
    pub second: SignedHead,
}

impl HeadEvidence {
    /// Evidence from two heads, if they conflict and both are self-signed.
    pub fn of(first: &SignedHead, second: &SignedHead) -> Option<HeadEvidence> {
        let conflict = first.conflict_with(second)?;
        (first.is_self_signed() && second.is_self_signed()).then_some(HeadEvidence {
            conflict,
            first: *first,
            second: *second,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::batch::{BatchContents, SignedBatch};

    fn key(byte: u8) -> NodeSigningKey {
        NodeSigningKey::from_seed(&[byte; 32])
    }

    const NOW: UnixTime = UnixTime(1_700_000_042);

    /// Frozen: seed 0x07, sequence 1 700 000 000 000, head id 0xab × 32, at
    /// 1 700 000 042 (signed as 1 700 000 040). A change here is a protocol change
    /// (docs/PROTOCOL.md §6.2).
    const FROZEN_HEAD: &str = include_str!("../tests/vectors/batch_head.hex");
    /// Frozen: a version 2 batch of seed 0x07, sequence 1 700 000 000 001, created at
    /// 1 700 000 000, previous 0xab × 32, one token (day 19 675, 0x11 × 16)
    /// (docs/PROTOCOL.md §6).
    const FROZEN_BATCH: &str = include_str!("../tests/vectors/batch_v2.hex");

    #[test]
    fn frozen_vectors_hold() {
        let head = SignedHead::sign(&key(7), 1_700_000_000_000, BatchId([0xab; 32]), NOW);
        assert_eq!(head.head.issued_at, UnixTime(1_700_000_040));
        assert_eq!(hex::encode(head.to_bytes()), FROZEN_HEAD.trim());
        let decoded = SignedHead::from_bytes(&hex::decode(FROZEN_HEAD.trim()).unwrap()).unwrap();
        assert_eq!(decoded, head);
        let trusted = TrustedNodes::new().with(key(7).public_key());
        assert_eq!(decoded.verify(&trusted), Ok(()));
        assert!(head.to_bytes().len() <= MAX_HEAD_FRAME);

        let batch = BatchContents {
            sequence: 1_700_000_000_001,
            created_at: UnixTime(1_700_000_000),
            previous: Some(BatchId([0xab; 32])),
            tokens: vec![crate::PublishedToken {
                day: crate::DayNumber(19_675),
                token: crate::pet::EncounterToken([0x11; 16]),
            }],
            ..Default::default()
        }
        .sign(&key(7));
        assert_eq!(hex::encode(batch.bytes()), FROZEN_BATCH.trim());
        let (summary, _) = SignedBatch::verify(batch.bytes(), &trusted).unwrap();
        assert_eq!(summary.previous, Some(BatchId([0xab; 32])));
    }

    #[test]
    fn strangers_forgeries_and_stale_heads_are_refused() {
        let head = SignedHead::sign(&key(1), 5, BatchId([1; 32]), NOW);
        let trusted = TrustedNodes::new().with(key(1).public_key());
        assert_eq!(
            head.verify(&TrustedNodes::new()),
            Err(HeadError::UntrustedNode)
        );
        let mut forged = head;
        forged.head.sequence = u64::MAX;
        assert_eq!(forged.verify(&trusted), Err(HeadError::BadSignature));
        let mut renamed = SignedHead::sign(&key(2), 5, BatchId([1; 32]), NOW);
        renamed.head.node = key(1).public_key();
        assert_eq!(renamed.verify(&trusted), Err(HeadError::BadSignature));
        let issued = head.head.issued_at;
        assert_eq!(head.check_fresh(issued.plus_seconds(3600), 3600), Ok(()));
        assert_eq!(
            head.check_fresh(issued.plus_seconds(3600), 3500),
            Err(HeadError::Stale {
                issued_at: 1_700_000_040,
                max_age: 3500
            })
        );
        assert_eq!(head.check_fresh(UnixTime(0), 1), Ok(()));
    }

    #[test]
    fn equivocation_and_rollback_are_told_apart_from_progress() {
        let k = key(1);
        let at = |s: u64| NOW.plus_seconds(s * 60);
        let five = SignedHead::sign(&k, 5, BatchId([5; 32]), at(0));
        let five_again_later = SignedHead::sign(&k, 5, BatchId([5; 32]), at(3));
        let six = SignedHead::sign(&k, 6, BatchId([6; 32]), at(1));
        let other_five = SignedHead::sign(&k, 5, BatchId([9; 32]), at(2));
        let four_later = SignedHead::sign(&k, 4, BatchId([4; 32]), at(2));
        let stranger = SignedHead::sign(&key(2), 5, BatchId([9; 32]), at(0));
        assert_eq!(five.conflict_with(&five_again_later), None);
        assert_eq!(five.conflict_with(&six), None);
        assert_eq!(five.conflict_with(&stranger), None);
        assert_eq!(
            five.conflict_with(&other_five),
            Some(HeadConflict::Equivocation)
        );
        assert_eq!(six.conflict_with(&four_later), Some(HeadConflict::Rollback));
        assert_eq!(four_later.conflict_with(&six), Some(HeadConflict::Rollback));
        let evidence = HeadEvidence::of(&six, &four_later).unwrap();
        let json = serde_json::to_string(&evidence).unwrap();
        assert_eq!(
            serde_json::from_str::<HeadEvidence>(&json).unwrap(),
            evidence
        );
        let mut unsigned = four_later;
        unsigned.signature = six.signature;
        assert_eq!(
            HeadEvidence::of(&six, &unsigned),
            None,
            "evidence is signed"
        );
    }

    #[test]
    fn a_full_head_list_fits_its_cap_between_nodes() {
        let head = SignedHead::sign(&key(1), u64::MAX, BatchId([1; 32]), UnixTime(u64::MAX));
        let list = HeadList {
            heads: vec![head; MAX_HEADS_PER_LIST],
        };
        let bytes = wire::encode(&list);
        assert!(bytes.len() <= HeadList::MAX_SIZE, "{}", bytes.len());
        assert_eq!(wire::decode::<HeadList>(&bytes).unwrap(), list);
    }

    #[test]
    fn head_lists_are_hex_frames_in_json() {
        let list = HeadList {
            heads: vec![SignedHead::sign(&key(1), 5, BatchId([1; 32]), NOW)],
        };
        let json = serde_json::to_string(&list).unwrap();
        assert!(json.starts_with(r#"{"heads":["020d"#), "{json}");
        assert_eq!(serde_json::from_str::<HeadList>(&json).unwrap(), list);
        assert!(serde_json::from_str::<HeadList>(r#"{"heads":["zz"]}"#).is_err());
        let long = format!(r#"{{"heads":["{}"]}}"#, "00".repeat(MAX_HEAD_FRAME + 1));
        assert!(serde_json::from_str::<HeadList>(&long).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut framed = vec![wire::WIRE_VERSION_2, wire::kind::SIGNED_HEAD];
            framed.extend_from_slice(&bytes);
            for frame in [&bytes[..], &framed[..]] {
                if let Ok(head) = SignedHead::from_bytes(frame) {
                    let _ = head.is_self_signed();
                }
                let _ = as_hex_frame::from_hex(&hex::encode(frame));
            }
        }

        #[test]
        fn arbitrary_head_lists_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut framed = vec![wire::WIRE_VERSION_2, wire::kind::HEAD_LIST];
            framed.extend_from_slice(&bytes);
            if let Ok(list) = wire::decode::<HeadList>(&framed) {
                prop_assert!(wire::encode(&list).len() <= HeadList::MAX_SIZE);
            }
        }

        #[test]
        fn any_changed_bit_breaks_the_signature(index in 0usize..200, bit in 0u8..8) {
            let head = SignedHead::sign(&key(3), 77, BatchId([3; 32]), NOW);
            let mut bytes = head.to_bytes();
            let i = index % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(decoded) = SignedHead::from_bytes(&bytes) {
                prop_assert!(decoded == head || !decoded.is_self_signed());
            }
        }
    }
}
