//! Token filters: the compact published form of a batch's `pet` tokens (publication
//! version 3, `docs/PROTOCOL.md` §6.5).
//!
//! A phone does not need the published tokens, only the answer to "did anyone publish one
//! of mine?". A token filter answers it in about 4.5 bytes per token instead of a 20-byte
//! record: a binary fuse filter with 32-bit fingerprints (Graf and Lemire, "Binary Fuse
//! Filters", 2022; the `xorf` crate) over the batch's tokens, decoys included. It has no
//! false negatives and answers "yes" for a token nobody published with probability 2⁻³²
//! per query. The node signs it, bound to the batch it summarises, with the batch's key:
//!
//! ```text
//! frame  = version 3 ‖ kind 0x10 ‖ node key id (8) ‖ signature (64) ‖ body
//! body   = batch id (32) ‖ sequence (u64 LE) ‖ created_at (u64 LE) ‖ previous (32)
//!          ‖ tokens (u32 LE) ‖ salt (u64 LE) ‖ seed (u64 LE)
//!          ‖ segment length (u32 LE) ‖ segment count length (u32 LE)
//!          ‖ fingerprint count (u32 LE) ‖ fingerprint (u32 LE) × count
//! signature over "ephemera/token-filter/v1" ‖ SHA-256(body)
//! ```
//!
//! `sequence`, `created_at` and `previous` are the batch's own, so a phone can follow the
//! node's batch log through filters alone. A filter key is a token's 16 bytes folded to 64
//! bits and mixed with the per-filter `salt`, drawn at random when the node builds it: nobody
//! who uploads tokens knows the salt, so nobody can choose tokens that make the construction
//! fail. Days are not in the filter: a phone tests each token it holds and takes the day
//! from its own encounter record.
//!
//! A filter reveals nothing a batch does not: whoever can compute a token can test it
//! against either. It tells an observer less, since nobody can list its tokens.

use ring::digest;
use xorf::{BinaryFuse32, Filter};

use crate::batch::{BatchId, BatchSummary, NodeSigningKey, TrustedNodes};
use crate::error::{DecodeError, FilterError};
use crate::pet::EncounterToken;
use crate::signing::{KeyId, Signature, Untrusted};
use crate::time::UnixTime;
use crate::wire::{self, WIRE_VERSION_3};

/// Domain label of token-filter signatures.
const FILTER_LABEL: &[u8] = b"ephemera/token-filter/v1";
/// Bytes before the body: version, kind, node key id, signature.
const FRAME_HEADER_LEN: usize = 2 + 8 + 64;
/// Bytes of the body before the fingerprints.
pub const FILTER_BODY_HEADER_LEN: usize = 32 + 8 + 8 + 32 + 4 + 8 + 8 + 4 + 4 + 4;
/// Most fingerprints a filter may hold (64 MiB): far above the node's largest batch.
pub const MAX_FINGERPRINTS: u32 = 1 << 24;
/// Largest segment length a binary fuse filter of this size uses.
const MAX_SEGMENT_LENGTH: u32 = 1 << 18;
/// Salts tried before construction gives up (each try fails with probability about 2⁻³⁰
/// for distinct keys).
const CONSTRUCTION_TRIES: usize = 8;
/// The probability that a filter answers "yes" for one token it does not hold.
pub const FALSE_MATCH_PROBABILITY: f64 = 1.0 / 4_294_967_296.0;

/// The filter key of `token` under `salt`: its two halves folded, then the salt.
#[inline(always)]
fn filter_key(salt: u64, token: &[u8; 16]) -> u64 {
    let low = u64::from_le_bytes(token[..8].try_into().expect("8 bytes"));
    let high = u64::from_le_bytes(token[8..].try_into().expect("8 bytes"));
    low ^ high.rotate_left(32) ^ salt
}

/// A verified token filter: what the batch it names held, for the question "is this one
/// of them?".
#[derive(Clone, Debug)]
pub struct TokenFilter {
    /// The batch it summarises.
    pub batch: BatchId,
    /// The signing node's key id.
    pub node: KeyId,
    /// The batch's publication sequence number.
    pub sequence: u64,
    /// The batch's cut time.
    pub created_at: UnixTime,
    /// The batch before it in the node's log.
    pub previous: BatchId,
    /// Tokens in the batch, decoys included.
    pub tokens: u32,
    salt: u64,
    fuse: BinaryFuse32,
}

impl TokenFilter {
    /// Builds and signs the filter of a batch (`summary`, as [`crate::batch::SignedBatch::verify`]
    /// or the cutter states it) holding `tokens`, with a salt drawn from `rng`.
    ///
    /// # Errors
    /// [`FilterError::Construction`] when every salt tried failed (never seen; the node then
    /// publishes the batch without a filter), [`FilterError::Shape`] for a batch without a
    /// `previous` (version 1) or with more tokens than a filter holds.
    pub fn build(
        summary: &BatchSummary,
        tokens: &[EncounterToken],
        key: &NodeSigningKey,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Vec<u8>, FilterError> {
        let previous = summary.previous.ok_or(FilterError::Shape {
            reason: "a version 1 batch has no filter",
        })?;
        let mut keys = Vec::with_capacity(tokens.len());
        for _ in 0..CONSTRUCTION_TRIES {
            let salt = rng.next_u64();
            keys.clear();
            keys.extend(tokens.iter().map(|t| filter_key(salt, &t.0)));
            keys.sort_unstable();
            keys.dedup();
            let Ok(fuse) = BinaryFuse32::try_from(&keys) else {
                continue;
            };
            if fuse.fingerprints.len() > MAX_FINGERPRINTS as usize {
                return Err(FilterError::Shape {
                    reason: "too many tokens for one filter",
                });
            }
            let filter = TokenFilter {
                batch: summary.id,
                node: summary.node,
                sequence: summary.sequence,
                created_at: summary.created_at,
                previous,
                tokens: summary.tokens,
                salt,
                fuse,
            };
            return Ok(filter.sign(key));
        }
        Err(FilterError::Construction)
    }

    fn sign(&self, key: &NodeSigningKey) -> Vec<u8> {
        let fingerprints = &self.fuse.fingerprints;
        let mut bytes =
            Vec::with_capacity(FRAME_HEADER_LEN + FILTER_BODY_HEADER_LEN + 4 * fingerprints.len());
        bytes.extend_from_slice(&[WIRE_VERSION_3, wire::kind::TOKEN_FILTER]);
        bytes.extend_from_slice(&key.public_key().key_id().0);
        bytes.extend_from_slice(&[0; 64]);
        bytes.extend_from_slice(&self.batch.0);
        bytes.extend_from_slice(&self.sequence.to_le_bytes());
        bytes.extend_from_slice(&self.created_at.0.to_le_bytes());
        bytes.extend_from_slice(&self.previous.0);
        bytes.extend_from_slice(&self.tokens.to_le_bytes());
        bytes.extend_from_slice(&self.salt.to_le_bytes());
        let descriptor = &self.fuse.descriptor;
        bytes.extend_from_slice(&descriptor.seed.to_le_bytes());
        bytes.extend_from_slice(&descriptor.segment_length.to_le_bytes());
        bytes.extend_from_slice(&descriptor.segment_count_length.to_le_bytes());
        bytes.extend_from_slice(&(fingerprints.len() as u32).to_le_bytes());
        for f in fingerprints.iter() {
            bytes.extend_from_slice(&f.to_le_bytes());
        }
        let signature = key.ed25519().sign(FILTER_LABEL, &body_digest(&bytes));
        bytes[10..FRAME_HEADER_LEN].copy_from_slice(&signature.0);
        bytes
    }

    /// Verifies and decodes a filter from outside bytes.
    ///
    /// # Errors
    /// [`FilterError`] for bad framing, an inconsistent filter shape, an untrusted node or
    /// a bad signature; it never panics on any input.
    pub fn verify(bytes: &[u8], trusted: &TrustedNodes) -> Result<TokenFilter, FilterError> {
        let max = FRAME_HEADER_LEN + FILTER_BODY_HEADER_LEN + 4 * MAX_FINGERPRINTS as usize;
        wire::check_header_versions(bytes, wire::kind::TOKEN_FILTER, max, &[WIRE_VERSION_3])?;
        let min = FRAME_HEADER_LEN + FILTER_BODY_HEADER_LEN;
        if bytes.len() < min {
            return Err(DecodeError::Truncated {
                got: bytes.len(),
                min,
            }
            .into());
        }
        let node = KeyId(bytes[2..10].try_into().expect("8 bytes"));
        let signature = Signature(bytes[10..FRAME_HEADER_LEN].try_into().expect("64 bytes"));
        let mut body = Reader(&bytes[FRAME_HEADER_LEN..]);
        let batch = BatchId(body.array());
        let sequence = u64::from_le_bytes(body.array());
        let created_at = UnixTime(u64::from_le_bytes(body.array()));
        let previous = BatchId(body.array());
        let tokens = u32::from_le_bytes(body.array());
        let salt = u64::from_le_bytes(body.array());
        let seed = u64::from_le_bytes(body.array());
        let segment_length = u32::from_le_bytes(body.array());
        let segment_count_length = u32::from_le_bytes(body.array());
        let count = u32::from_le_bytes(body.array());
        check_shape(segment_length, segment_count_length, count)?;
        let expected = min as u64 + 4 * u64::from(count);
        if bytes.len() as u64 != expected {
            return Err(FilterError::LengthMismatch {
                expected,
                got: bytes.len() as u64,
            });
        }
        trusted
            .signer(&node, FILTER_LABEL, &body_digest(bytes), &signature)
            .map_err(|e| match e {
                Untrusted::Id => FilterError::UntrustedNode,
                Untrusted::Signature => FilterError::BadSignature,
            })?;
        let fingerprints = body
            .0
            .chunks_exact(4)
            .map(|f| u32::from_le_bytes(f.try_into().expect("4 bytes")))
            .collect();
        Ok(TokenFilter {
            batch,
            node,
            sequence,
            created_at,
            previous,
            tokens,
            salt,
            fuse: fuse_of(seed, segment_length, segment_count_length, fingerprints),
        })
    }

    /// Whether the batch held `token` (or, with probability [`FALSE_MATCH_PROBABILITY`], a
    /// false "yes").
    #[inline]
    pub fn contains(&self, token: &EncounterToken) -> bool {
        self.fuse.contains(&filter_key(self.salt, &token.0))
    }

    /// Bytes the filter's fingerprints take in memory.
    pub fn memory_bytes(&self) -> usize {
        4 * self.fuse.fingerprints.len()
    }
}

/// The filter of a shape [`check_shape`] accepted.
fn fuse_of(
    seed: u64,
    segment_length: u32,
    segment_count_length: u32,
    fingerprints: Box<[u32]>,
) -> BinaryFuse32 {
    BinaryFuse32 {
        descriptor: xorf::Descriptor {
            seed,
            segment_length,
            segment_length_mask: segment_length - 1,
            segment_count_length,
        },
        fingerprints,
    }
}

/// SHA-256 of a filter frame's body (everything after the signature).
fn body_digest(frame: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, &frame[FRAME_HEADER_LEN..]).as_ref());
    out
}

/// Checks that a filter's shape keeps every lookup inside its fingerprints: the three
/// positions of a key lie below `segment_count_length + 2 × segment_length`.
fn check_shape(
    segment_length: u32,
    segment_count_length: u32,
    count: u32,
) -> Result<(), FilterError> {
    if !segment_length.is_power_of_two() || segment_length > MAX_SEGMENT_LENGTH {
        return Err(FilterError::Shape {
            reason: "segment length is not a power of two up to 2^18",
        });
    }
    if segment_count_length == 0 || !segment_count_length.is_multiple_of(segment_length) {
        return Err(FilterError::Shape {
            reason: "segment count length is not a positive multiple of the segment length",
        });
    }
    if count > MAX_FINGERPRINTS
        || u64::from(count) != u64::from(segment_count_length) + 2 * u64::from(segment_length)
    {
        return Err(FilterError::Shape {
            reason: "fingerprint count does not fit the segments",
        });
    }
    Ok(())
}

/// Reads fixed-size fields off the front of a body whose length was checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().expect("length checked")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    use super::*;
    use crate::batch::BatchContents;
    use crate::report::PublishedToken;

    fn token(rng: &mut ChaCha20Rng) -> EncounterToken {
        let mut t = [0u8; 16];
        rng.fill_bytes(&mut t);
        EncounterToken(t)
    }

    /// A signed batch of `n` tokens and its filter bytes.
    fn batch_and_filter(
        n: usize,
        rng: &mut ChaCha20Rng,
    ) -> (Vec<EncounterToken>, Vec<u8>, NodeSigningKey) {
        let key = NodeSigningKey::generate(rng);
        let tokens: Vec<_> = (0..n).map(|_| token(rng)).collect();
        let contents = BatchContents {
            sequence: 3,
            created_at: UnixTime(1_700_000_000),
            previous: Some(BatchId([7; 32])),
            tokens: tokens
                .iter()
                .map(|&token| PublishedToken {
                    day: UnixTime(1_700_000_000).day(),
                    token,
                })
                .collect(),
            ..Default::default()
        };
        let signed = contents.sign(&key);
        let trusted = TrustedNodes::new().with(key.public_key());
        let (summary, _) = crate::batch::SignedBatch::verify(signed.bytes(), &trusted).unwrap();
        let filter = TokenFilter::build(&summary, &tokens, &key, rng).unwrap();
        (tokens, filter, key)
    }

    #[test]
    fn holds_every_token_names_its_batch_and_takes_under_4_8_bytes_a_token_at_100k() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for n in [0, 1, 2, 3, 100, 100_000] {
            let (tokens, bytes, key) = batch_and_filter(n, &mut rng);
            let trusted = TrustedNodes::new().with(key.public_key());
            let filter = TokenFilter::verify(&bytes, &trusted).unwrap();
            assert!(tokens.iter().all(|t| filter.contains(t)), "n = {n}");
            assert_eq!(filter.sequence, 3);
            assert_eq!(filter.previous, BatchId([7; 32]));
            assert_eq!(filter.tokens as usize, n);
            if n == 100_000 {
                let per_token = bytes.len() as f64 / n as f64;
                assert!(per_token < 4.8, "{per_token} bytes a token");
            }
        }
    }

    #[test]
    fn false_matches_are_rare() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (_, bytes, key) = batch_and_filter(50_000, &mut rng);
        let filter =
            TokenFilter::verify(&bytes, &TrustedNodes::new().with(key.public_key())).unwrap();
        // 2 million probes at 2^-32 each: the expected count is 0.0005.
        let false_matches = (0..2_000_000)
            .filter(|_| filter.contains(&token(&mut rng)))
            .count();
        assert_eq!(false_matches, 0);
    }

    #[test]
    fn refuses_other_keys_edits_and_bad_shapes() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (_, bytes, key) = batch_and_filter(500, &mut rng);
        let trusted = TrustedNodes::new().with(key.public_key());
        let stranger = TrustedNodes::new().with(NodeSigningKey::generate(&mut rng).public_key());
        assert!(matches!(
            TokenFilter::verify(&bytes, &stranger),
            Err(FilterError::UntrustedNode)
        ));
        let mut edited = bytes.clone();
        let last = edited.len() - 1;
        edited[last] ^= 1;
        assert!(matches!(
            TokenFilter::verify(&edited, &trusted),
            Err(FilterError::BadSignature)
        ));
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() - 4);
        assert!(matches!(
            TokenFilter::verify(&truncated, &trusted),
            Err(FilterError::LengthMismatch { .. })
        ));
        let segment_at = FRAME_HEADER_LEN + 32 + 8 + 8 + 32 + 4 + 8 + 8;
        let mut odd = bytes.clone();
        odd[segment_at..segment_at + 4].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            TokenFilter::verify(&odd, &trusted),
            Err(FilterError::Shape { .. })
        ));
        assert!(matches!(
            TokenFilter::verify(&bytes[..40], &trusted),
            Err(FilterError::Decode(DecodeError::Truncated { .. }))
        ));
    }

    #[test]
    fn a_version_1_batch_gets_no_filter() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let key = NodeSigningKey::generate(&mut rng);
        let summary = BatchSummary {
            id: BatchId([1; 32]),
            node: key.public_key().key_id(),
            sequence: 1,
            created_at: UnixTime(0),
            previous: None,
            keys: 0,
            tokens: 1,
        };
        assert!(matches!(
            TokenFilter::build(&summary, &[token(&mut rng)], &key, &mut rng),
            Err(FilterError::Shape { .. })
        ));
    }

    proptest! {
        /// Any bytes, and any edit of a real filter, give a clear error, never a panic.
        #[test]
        fn outside_bytes_never_panic(
            noise in proptest::collection::vec(any::<u8>(), 0..400),
            at in 0usize..(FRAME_HEADER_LEN + FILTER_BODY_HEADER_LEN),
            value in any::<u32>(),
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(5);
            let (_, bytes, key) = batch_and_filter(30, &mut rng);
            let trusted = TrustedNodes::new().with(key.public_key());
            let _ = TokenFilter::verify(&noise, &trusted);
            let mut edited = bytes.clone();
            let end = (at + 4).min(edited.len());
            edited[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
            let _ = TokenFilter::verify(&edited, &trusted);
        }

        /// Every shape [`check_shape`] accepts keeps lookups inside the fingerprints, for
        /// any seed, salt and token: a signed filter of a hostile node cannot panic a phone.
        #[test]
        fn accepted_shapes_keep_lookups_in_bounds(
            length_log in 0u32..12,
            segments in 1u32..64,
            seed in any::<u64>(),
            salt in any::<u64>(),
            probes in proptest::collection::vec(any::<[u8; 16]>(), 1..64),
        ) {
            let segment_length = 1u32 << length_log;
            let segment_count_length = segments * segment_length;
            let count = segment_count_length + 2 * segment_length;
            prop_assert!(check_shape(segment_length, segment_count_length, count).is_ok());
            prop_assert!(check_shape(segment_length, segment_count_length, count + 1).is_err());
            let filter = TokenFilter {
                batch: BatchId([0; 32]),
                node: KeyId([0; 8]),
                sequence: 1,
                created_at: UnixTime(0),
                previous: BatchId([0; 32]),
                tokens: 0,
                salt,
                fuse: fuse_of(
                    seed,
                    segment_length,
                    segment_count_length,
                    vec![0x5a5a_5a5a; count as usize].into(),
                ),
            };
            for probe in probes {
                filter.contains(&EncounterToken(probe));
            }
        }
    }
}
