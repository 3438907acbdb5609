//! Signed batches: what a node publishes and every phone downloads.
//!
//! A batch is immutable and content-addressed: its [`BatchId`] is SHA-256 of the body, and
//! the node signs `"ephemera/batch/v2" ‖ id` with Ed25519 (`"ephemera/batch/v1"` for a
//! version 1 batch). The layout is fixed-size records so a phone can verify and match a
//! batch of any size while streaming it, in bounded memory ([`BatchStream`]):
//!
//! ```text
//! frame  = version (2) ‖ kind 0x04 (1) ‖ node key id (8) ‖ signature (64) ‖ body
//! body   = sequence (u64 LE) ‖ created_at (u64 LE) ‖ previous (32)
//!          ‖ key count (u32 LE) ‖ token count (u32 LE)
//!          ‖ key record × key count ‖ token record × token count
//! key    = TEK (16) ‖ rolling start (u32 LE) ‖ rolling period (u8) ‖ report type (u8)
//!          ‖ days since onset (i8, -128 = unknown) ‖ reserved 0 (u8)          = 24 bytes
//! token  = day (u32 LE) ‖ token (16)                                        = 20 bytes
//! ```
//!
//! `previous` is the [`BatchId`] of the node's batch before this one in sequence
//! ([`BatchId::NONE`] for its first): the batches of a node form a hash chain, its log,
//! whose head the node signs ([`crate::batch_log`]). A version 1 batch (frame version 1,
//! protocol version 1) has no `previous`; phones accept it during the transition.
//!
//! Records are sorted, and real entries are mixed with random decoys up to a minimum
//! count, so a batch reveals neither who uploaded nor how many did.

use std::fmt;

use rand_core::CryptoRng;
use ring::digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{BatchError, DecodeError};
use crate::gaen::{DiagnosisKey, TemporaryExposureKey};
use crate::pet::EncounterToken;
use crate::report::{PublishedToken, ReportType};
use crate::rollover::KeyRollover;
use crate::signing::{
    Ed25519PublicKey, Ed25519SigningKey, KeyId, Signature, TrustedKeys, Untrusted,
};
use crate::time::{DayNumber, IntervalNumber, UnixTime};
use crate::wire::{self, WIRE_VERSION, WIRE_VERSION_2};

/// Domain label of version 1 batch signatures.
const BATCH_LABEL: &[u8] = b"ephemera/batch/v1";
/// Domain label of version 2 (chained) batch signatures.
const BATCH_LABEL_2: &[u8] = b"ephemera/batch/v2";
/// Bytes before the body: version, kind, node key id, signature.
pub const FRAME_HEADER_LEN: usize = 2 + 8 + 64;
/// Bytes of a version 1 body header: sequence, created_at, key count, token count.
pub const BODY_HEADER_LEN: usize = 8 + 8 + 4 + 4;
/// Bytes of a version 2 body header: sequence, created_at, previous, key count, token count.
pub const BODY_HEADER_LEN_2: usize = BODY_HEADER_LEN + 32;
/// Bytes of one diagnosis-key record.
pub const KEY_RECORD_LEN: usize = 24;
/// Bytes of one token record.
pub const TOKEN_RECORD_LEN: usize = 20;
/// Most diagnosis keys [`BatchStream::push_records`] hands over at once.
pub const KEY_RUN: usize = 64;
/// The `days since onset` byte meaning "unknown".
const UNKNOWN_ONSET: i8 = i8::MIN;

/// The node keys a phone trusts to sign batches.
pub type TrustedNodes = TrustedKeys;

/// SHA-256 of a batch body: its name in URLs and its HTTP `ETag`.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub [u8; 32]);

impl BatchId {
    /// The `previous` of a node's first chained batch: no batch comes before it.
    pub const NONE: BatchId = BatchId([0; 32]);

    /// Lower-case hex, as used in URLs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<BatchId> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(BatchId(bytes))
    }
}

impl fmt::Debug for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchId({})", self.to_hex())
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for BatchId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for BatchId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            BatchId::from_hex(&text)
                .ok_or_else(|| serde::de::Error::custom("a batch id is 64 hex characters"))
        } else {
            Ok(BatchId(<[u8; 32]>::deserialize(deserializer)?))
        }
    }
}

/// A node's Ed25519 batch-signing key.
#[derive(Debug)]
pub struct NodeSigningKey(Ed25519SigningKey);

impl NodeSigningKey {
    /// Draws a new key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        NodeSigningKey(Ed25519SigningKey::generate(rng))
    }

    /// Rebuilds a stored key from its seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        NodeSigningKey(Ed25519SigningKey::from_seed(seed))
    }

    /// The seed, for storage. A secret.
    pub fn seed(&self) -> &[u8; 32] {
        self.0.seed()
    }

    /// Signs the node's sealing key, so phones that trust this key trust it too.
    pub fn announce_sealing_key(
        &self,
        key: &crate::sealed::SealingPublicKey,
    ) -> crate::sealed::SealingKeyAnnouncement {
        crate::sealed::SealingKeyAnnouncement::sign(key, &self.0)
    }

    /// The public key phones configure as trusted.
    pub fn public_key(&self) -> Ed25519PublicKey {
        self.0.public_key()
    }

    /// The Ed25519 key, to sign a rollover with.
    pub fn ed25519(&self) -> &Ed25519SigningKey {
        &self.0
    }
}

/// The entries of a batch before signing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchContents {
    /// Position in the node's publication order, from 1.
    pub sequence: u64,
    /// When the node cut the batch.
    pub created_at: UnixTime,
    /// The id of the node's batch before this one ([`BatchId::NONE`] for its first),
    /// signed with it (a version 2 batch); `None` signs a version 1 batch, without a link.
    pub previous: Option<BatchId>,
    /// `gaen` diagnosis keys.
    pub diagnosis_keys: Vec<DiagnosisKey>,
    /// `pet` tokens.
    pub tokens: Vec<PublishedToken>,
}

/// One record of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchEntry {
    /// A diagnosis key.
    Key(DiagnosisKey),
    /// A published token.
    Token(PublishedToken),
}

impl BatchContents {
    /// Number of keys and tokens together.
    pub fn len(&self) -> usize {
        self.diagnosis_keys.len() + self.tokens.len()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds random decoys until each non-empty scheme section (and the token section when
    /// both are empty) holds at least `min_entries` entries.
    ///
    /// Decoy keys copy the metadata (window, report type, onset) of a random real key and
    /// decoy tokens the day of a random real token, so their distribution matches the real
    /// one; with no real entry, days are drawn uniformly from the retention period ending at
    /// `now`. Nobody can tell decoys from real entries without the matching phone.
    pub fn pad_with_decoys(
        &mut self,
        min_entries: usize,
        now: UnixTime,
        retention_days: u32,
        rng: &mut impl CryptoRng,
    ) {
        let random_day =
            |rng: &mut dyn FnMut() -> u32| now.day().minus(rng() % retention_days.max(1));
        let real_keys = self.diagnosis_keys.len();
        if real_keys > 0 {
            while self.diagnosis_keys.len() < min_entries {
                let template = self.diagnosis_keys[rng.next_u32() as usize % real_keys].clone();
                self.diagnosis_keys.push(DiagnosisKey {
                    key: TemporaryExposureKey::generate(rng),
                    ..template
                });
            }
        }
        if real_keys == 0 || !self.tokens.is_empty() {
            let real_tokens = self.tokens.len();
            while self.tokens.len() < min_entries {
                let day = if real_tokens > 0 {
                    self.tokens[rng.next_u32() as usize % real_tokens].day
                } else {
                    random_day(&mut || rng.next_u32())
                };
                let mut token = [0u8; 16];
                rng.fill_bytes(&mut token);
                self.tokens.push(PublishedToken {
                    day,
                    token: EncounterToken(token),
                });
            }
        }
    }

    /// Sorts the records and signs the batch with `key`: a version 2 batch when it names
    /// its `previous`, else a version 1 batch.
    pub fn sign(mut self, key: &NodeSigningKey) -> SignedBatch {
        self.diagnosis_keys.sort_unstable();
        self.tokens.sort_unstable();
        let (version, header_len, label) = match self.previous {
            Some(_) => (WIRE_VERSION_2, BODY_HEADER_LEN_2, BATCH_LABEL_2),
            None => (WIRE_VERSION, BODY_HEADER_LEN, BATCH_LABEL),
        };
        let body_len = header_len
            + self.diagnosis_keys.len() * KEY_RECORD_LEN
            + self.tokens.len() * TOKEN_RECORD_LEN;
        let mut bytes = Vec::with_capacity(FRAME_HEADER_LEN + body_len);
        bytes.extend_from_slice(&[version, wire::kind::SIGNED_BATCH]);
        bytes.extend_from_slice(&key.public_key().key_id().0);
        bytes.extend_from_slice(&[0; 64]);
        bytes.extend_from_slice(&self.sequence.to_le_bytes());
        bytes.extend_from_slice(&self.created_at.0.to_le_bytes());
        if let Some(previous) = self.previous {
            bytes.extend_from_slice(&previous.0);
        }
        bytes.extend_from_slice(&(self.diagnosis_keys.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(self.tokens.len() as u32).to_le_bytes());
        for k in &self.diagnosis_keys {
            bytes.extend_from_slice(k.key.as_bytes());
            bytes.extend_from_slice(&k.rolling_start.0.to_le_bytes());
            bytes.push(k.rolling_period);
            bytes.push(k.report_type.code());
            bytes.push(k.days_since_onset.unwrap_or(UNKNOWN_ONSET) as u8);
            bytes.push(0);
        }
        for t in &self.tokens {
            bytes.extend_from_slice(&t.day.0.to_le_bytes());
            bytes.extend_from_slice(&t.token.0);
        }
        let id = body_id(&bytes[FRAME_HEADER_LEN..]);
        let signature = key.0.sign(label, &id.0);
        bytes[10..FRAME_HEADER_LEN].copy_from_slice(&signature.0);
        SignedBatch { bytes, id }
    }
}

fn body_id(body: &[u8]) -> BatchId {
    let mut id = [0u8; 32];
    id.copy_from_slice(digest::digest(&digest::SHA256, body).as_ref());
    BatchId(id)
}

/// A signed batch as served: its bytes and content id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedBatch {
    bytes: Vec<u8>,
    id: BatchId,
}

impl SignedBatch {
    /// The content id (SHA-256 of the body).
    pub fn id(&self) -> BatchId {
        self.id
    }

    /// The bytes to serve.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Verifies and decodes a whole batch held in memory.
    ///
    /// # Errors
    /// [`BatchError`] for bad framing, an untrusted node, a bad signature or bad records.
    pub fn verify(
        bytes: &[u8],
        trusted: &TrustedNodes,
    ) -> Result<(BatchSummary, BatchContents), BatchError> {
        let mut contents = BatchContents::default();
        let mut stream = BatchStream::new(trusted);
        stream.push(bytes, &mut |entry| match entry {
            BatchEntry::Key(k) => contents.diagnosis_keys.push(k),
            BatchEntry::Token(t) => contents.tokens.push(t),
        })?;
        let summary = stream.finish()?;
        contents.sequence = summary.sequence;
        contents.created_at = summary.created_at;
        contents.previous = summary.previous;
        Ok((summary, contents))
    }
}

/// What a verified batch announced about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchSummary {
    /// Content id.
    pub id: BatchId,
    /// The signing node's key id.
    pub node: KeyId,
    /// Publication sequence number.
    pub sequence: u64,
    /// Cut time.
    pub created_at: UnixTime,
    /// The signed id of the node's batch before this one (version 2); `None` for a
    /// version 1 batch.
    pub previous: Option<BatchId>,
    /// Diagnosis keys in the batch (decoys included).
    pub keys: u32,
    /// Tokens in the batch (decoys included).
    pub tokens: u32,
}

/// A push parser that verifies and decodes a batch chunk by chunk in bounded memory.
///
/// Entries are handed out as they arrive, before the signature can be checked: treat what
/// you derive from them as tentative until [`BatchStream::finish`] returns `Ok`.
pub struct BatchStream<'a> {
    trusted: &'a TrustedNodes,
    /// Bytes of a header or record split across chunks.
    pending: Vec<u8>,
    hasher: digest::Context,
    /// The frame's version, key id and signature, once read.
    node: Option<(u8, KeyId, Signature)>,
    header: Option<BodyHeader>,
    keys_left: u64,
    tokens_left: u64,
    /// Keys decoded by [`BatchStream::push_records`] and not yet handed over.
    key_run: Vec<DiagnosisKey>,
    failed: bool,
}

#[derive(Copy, Clone, Debug)]
struct BodyHeader {
    sequence: u64,
    created_at: UnixTime,
    previous: Option<BatchId>,
    keys: u32,
    tokens: u32,
}

impl BodyHeader {
    /// Bytes of the body its counts announce, header included.
    fn body_len(&self) -> u64 {
        let header = if self.previous.is_some() {
            BODY_HEADER_LEN_2
        } else {
            BODY_HEADER_LEN
        };
        header as u64
            + u64::from(self.keys) * KEY_RECORD_LEN as u64
            + u64::from(self.tokens) * TOKEN_RECORD_LEN as u64
    }
}

impl<'a> BatchStream<'a> {
    /// A parser that accepts batches signed by `trusted` node keys.
    pub fn new(trusted: &'a TrustedNodes) -> Self {
        BatchStream {
            trusted,
            pending: Vec::with_capacity(FRAME_HEADER_LEN),
            hasher: digest::Context::new(&digest::SHA256),
            node: None,
            header: None,
            keys_left: 0,
            tokens_left: 0,
            key_run: Vec::new(),
            failed: false,
        }
    }

    /// Feeds the next chunk; calls `on_entry` for each complete record.
    ///
    /// # Errors
    /// Framing errors and an untrusted node are reported as soon as they are seen; after an
    /// error the stream refuses further input.
    pub fn push(
        &mut self,
        mut chunk: &[u8],
        on_entry: &mut impl FnMut(BatchEntry),
    ) -> Result<(), BatchError> {
        if self.failed {
            return Err(BatchError::Decode(DecodeError::Malformed));
        }
        let result = self.push_inner(&mut chunk, on_entry);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Feeds the next chunk, handing records over in bulk: diagnosis keys decoded, a run of
    /// at most [`KEY_RUN`] at a time (the size [`GaenMatcher::match_keys`] wants), and token
    /// records raw, as whole contiguous slabs of 20-byte records
    /// (`day (u32 LE) ‖ token (16)`) borrowed straight from `chunk` (a record split across
    /// chunks comes as a slab of one) — what [`PetMatcher::match_records`] takes.
    ///
    /// Hashing, framing and length checks are those of [`BatchStream::push`], and so is the
    /// caveat: treat what you derive as tentative until [`BatchStream::finish`] returns
    /// `Ok`. Keys are buffered in the stream (at most [`KEY_RUN`]) and handed over when the
    /// run is full or the key section ends. Use one of `push` and `push_records` per
    /// stream; if mixed, keys buffered by `push_records` are handed to `push`'s callback
    /// first.
    ///
    /// [`GaenMatcher::match_keys`]: crate::matching::GaenMatcher::match_keys
    /// [`PetMatcher::match_records`]: crate::matching::PetMatcher::match_records
    ///
    /// # Errors
    /// As [`BatchStream::push`].
    pub fn push_records(
        &mut self,
        mut chunk: &[u8],
        on_keys: &mut impl FnMut(&[DiagnosisKey]),
        on_token_records: &mut impl FnMut(&[u8]),
    ) -> Result<(), BatchError> {
        if self.failed {
            return Err(BatchError::Decode(DecodeError::Malformed));
        }
        let result = self.push_records_inner(&mut chunk, on_keys, on_token_records);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn push_records_inner(
        &mut self,
        chunk: &mut &[u8],
        on_keys: &mut impl FnMut(&[DiagnosisKey]),
        on_token_records: &mut impl FnMut(&[u8]),
    ) -> Result<(), BatchError> {
        if !self.parse_headers(chunk)? {
            return Ok(());
        }
        while self.keys_left > 0 {
            let Some(record) = self.next_record(chunk, KEY_RECORD_LEN) else {
                return Ok(());
            };
            let key = decode_key_record(&record)?;
            self.keys_left -= 1;
            self.key_run.push(key);
            if self.key_run.len() == KEY_RUN || self.keys_left == 0 {
                on_keys(&self.key_run);
                self.key_run.clear();
            }
        }
        self.push_token_records(chunk, on_token_records)
    }

    /// Hands the token records in `chunk` to `on_token_records` (raw, a whole number of
    /// records each time), then checks that nothing trails them. Tokens are the hot path:
    /// whole records go straight from the chunk.
    fn push_token_records(
        &mut self,
        chunk: &mut &[u8],
        on_token_records: &mut impl FnMut(&[u8]),
    ) -> Result<(), BatchError> {
        while self.tokens_left > 0 {
            if self.pending.is_empty() && chunk.len() >= TOKEN_RECORD_LEN {
                let whole = (chunk.len() / TOKEN_RECORD_LEN)
                    .min(self.tokens_left.min(usize::MAX as u64) as usize);
                let (records, rest) = chunk.split_at(whole * TOKEN_RECORD_LEN);
                self.hasher.update(records);
                on_token_records(records);
                self.tokens_left -= whole as u64;
                *chunk = rest;
                continue;
            }
            let Some(record) = self.next_record(chunk, TOKEN_RECORD_LEN) else {
                return Ok(());
            };
            self.tokens_left -= 1;
            on_token_records(&record);
        }
        self.check_trailing(chunk)
    }

    /// Parses the frame and body headers as far as `chunk` allows; true once both are in.
    fn parse_headers(&mut self, chunk: &mut &[u8]) -> Result<bool, BatchError> {
        if self.node.is_none() {
            if !self.fill_pending(chunk, FRAME_HEADER_LEN) {
                return Ok(false);
            }
            let frame = std::mem::take(&mut self.pending);
            wire::check_header_versions(
                &frame,
                wire::kind::SIGNED_BATCH,
                usize::MAX,
                &[WIRE_VERSION, WIRE_VERSION_2],
            )?;
            let node = KeyId(frame[2..10].try_into().expect("8 bytes"));
            if !self.trusted.knows_id(&node) {
                return Err(BatchError::UntrustedNode);
            }
            let signature = Signature(frame[10..FRAME_HEADER_LEN].try_into().expect("64 bytes"));
            self.node = Some((frame[0], node, signature));
        }
        if self.header.is_none() {
            let chained = matches!(self.node, Some((WIRE_VERSION_2, ..)));
            let len = if chained {
                BODY_HEADER_LEN_2
            } else {
                BODY_HEADER_LEN
            };
            if !self.fill_pending(chunk, len) {
                return Ok(false);
            }
            let h = std::mem::take(&mut self.pending);
            self.hasher.update(&h);
            let (previous, counts) = if chained {
                (
                    Some(BatchId(h[16..48].try_into().expect("32 bytes"))),
                    &h[48..],
                )
            } else {
                (None, &h[16..])
            };
            let header = BodyHeader {
                sequence: u64::from_le_bytes(h[0..8].try_into().expect("8 bytes")),
                created_at: UnixTime(u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"))),
                previous,
                keys: u32::from_le_bytes(counts[0..4].try_into().expect("4 bytes")),
                tokens: u32::from_le_bytes(counts[4..8].try_into().expect("4 bytes")),
            };
            self.keys_left = u64::from(header.keys);
            self.tokens_left = u64::from(header.tokens);
            self.header = Some(header);
        }
        Ok(true)
    }

    /// Refuses bytes after the last record.
    fn check_trailing(&self, chunk: &[u8]) -> Result<(), BatchError> {
        if !chunk.is_empty() {
            let expected = self
                .header
                .expect("header parsed before records")
                .body_len();
            return Err(BatchError::LengthMismatch {
                expected,
                got: expected + chunk.len() as u64,
            });
        }
        Ok(())
    }

    fn push_inner(
        &mut self,
        chunk: &mut &[u8],
        on_entry: &mut impl FnMut(BatchEntry),
    ) -> Result<(), BatchError> {
        if !self.parse_headers(chunk)? {
            return Ok(());
        }
        for key in self.key_run.drain(..) {
            on_entry(BatchEntry::Key(key));
        }
        while self.keys_left > 0 {
            let Some(record) = self.next_record(chunk, KEY_RECORD_LEN) else {
                return Ok(());
            };
            let key = decode_key_record(&record)?;
            self.keys_left -= 1;
            on_entry(BatchEntry::Key(key));
        }
        self.push_token_records(chunk, &mut |records| {
            for record in records.chunks_exact(TOKEN_RECORD_LEN) {
                on_entry(BatchEntry::Token(decode_token_record(record)));
            }
        })
    }

    /// Moves bytes from `chunk` into `pending` until it holds `len`; true when it does.
    fn fill_pending(&mut self, chunk: &mut &[u8], len: usize) -> bool {
        let take = (len - self.pending.len()).min(chunk.len());
        self.pending.extend_from_slice(&chunk[..take]);
        *chunk = &chunk[take..];
        self.pending.len() == len
    }

    /// The next record of `len` bytes, hashed, if complete.
    fn next_record(&mut self, chunk: &mut &[u8], len: usize) -> Option<Vec<u8>> {
        if !self.fill_pending(chunk, len) {
            return None;
        }
        let record = std::mem::take(&mut self.pending);
        self.hasher.update(&record);
        Some(record)
    }

    /// Checks that the batch was complete and its signature verifies.
    ///
    /// # Errors
    /// [`BatchError::LengthMismatch`] for a truncated batch, [`BatchError::BadSignature`].
    pub fn finish(self) -> Result<BatchSummary, BatchError> {
        if self.failed {
            return Err(BatchError::Decode(DecodeError::Malformed));
        }
        let Some((version, node, signature)) = self.node else {
            return Err(DecodeError::Truncated {
                got: self.pending.len(),
                min: FRAME_HEADER_LEN,
            }
            .into());
        };
        let Some(header) = self.header else {
            return Err(DecodeError::Truncated {
                got: self.pending.len(),
                min: if version == WIRE_VERSION_2 {
                    BODY_HEADER_LEN_2
                } else {
                    BODY_HEADER_LEN
                },
            }
            .into());
        };
        if self.keys_left > 0 || self.tokens_left > 0 {
            let expected = header.body_len();
            let missing = self.keys_left * KEY_RECORD_LEN as u64
                + self.tokens_left * TOKEN_RECORD_LEN as u64
                - self.pending.len() as u64;
            return Err(BatchError::LengthMismatch {
                expected,
                got: expected - missing,
            });
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(self.hasher.finish().as_ref());
        let id = BatchId(id);
        // Every trusted key with the batch's key id is tried: a second key with the same id
        // never shadows the first.
        let label = if version == WIRE_VERSION_2 {
            BATCH_LABEL_2
        } else {
            BATCH_LABEL
        };
        self.trusted
            .signer(&node, label, &id.0, &signature)
            .map_err(|e| match e {
                Untrusted::Id => BatchError::UntrustedNode,
                Untrusted::Signature => BatchError::BadSignature,
            })?;
        Ok(BatchSummary {
            id,
            node,
            sequence: header.sequence,
            created_at: header.created_at,
            previous: header.previous,
            keys: header.keys,
            tokens: header.tokens,
        })
    }
}

fn decode_key_record(r: &[u8]) -> Result<DiagnosisKey, DecodeError> {
    let key = TemporaryExposureKey(r[0..16].try_into().expect("16 bytes"));
    let rolling_start = IntervalNumber(u32::from_le_bytes(r[16..20].try_into().expect("4 bytes")));
    let rolling_period = r[20];
    if rolling_period == 0 || u32::from(rolling_period) > crate::time::INTERVALS_PER_DAY {
        return Err(DecodeError::InvalidField {
            field: "rolling_period",
        });
    }
    let report_type = ReportType::from_code(r[21]).ok_or(DecodeError::InvalidField {
        field: "report_type",
    })?;
    let dso = r[22] as i8;
    if r[23] != 0 {
        return Err(DecodeError::InvalidField { field: "reserved" });
    }
    Ok(DiagnosisKey {
        key,
        rolling_start,
        rolling_period,
        report_type,
        days_since_onset: (dso != UNKNOWN_ONSET).then_some(dso),
    })
}

fn decode_token_record(r: &[u8]) -> PublishedToken {
    PublishedToken {
        day: DayNumber(u32::from_le_bytes(r[0..4].try_into().expect("4 bytes"))),
        token: EncounterToken(r[4..20].try_into().expect("16 bytes")),
    }
}

/// One published batch as listed in a node's index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchIndexEntry {
    /// Content id; fetch it at `/v1/batches/{id}`.
    pub id: BatchId,
    /// Publication sequence number; the index cursor.
    pub sequence: u64,
    /// Cut time, unix seconds.
    pub created_at: UnixTime,
    /// Size in bytes.
    pub size: u64,
    /// Diagnosis keys in it (decoys included).
    pub keys: u32,
    /// Tokens in it (decoys included).
    pub tokens: u32,
}

/// A page of a node's batch index, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchIndex {
    /// The batches after the requested cursor.
    pub batches: Vec<BatchIndexEntry>,
    /// Pass as `after` to get the next page; equal to the request's when nothing is new.
    pub next_cursor: u64,
    /// Every batch-key rollover the node ever announced, as hex frames: a phone adds the
    /// successors of the keys it trusts (`rollover`). Absent (older nodes) reads as none;
    /// phones of before rollovers ignore the field.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::rollover::as_hex_frames"
    )]
    pub key_rollovers: Vec<KeyRollover>,
    /// The node's signed head (protocol version 2, [`crate::batch_log`]), as a hex frame,
    /// signed before the page was read: the page reaches at least to it. Absent from
    /// nodes of version 1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::as_optional_hex_frame"
    )]
    pub head: Option<crate::batch_log::SignedHead>,
    /// Whether the node serves the token filter of each listed version 2 batch with
    /// tokens at `/v1/batches/{id}/filter` (publication version 3, [`crate::filter`]).
    /// Absent (older nodes) reads as `false`: phones fetch the batches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub token_filters: bool,
    /// The sunset order the node holds, as a hex frame ([`crate::sunset`]): a phone that
    /// verifies it against its configured committee erases everything and stops at its
    /// effective time. Absent while there is none, and from older nodes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::as_optional_hex_frame"
    )]
    pub sunset: Option<crate::sunset::SignedSunsetOrder>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn sample(rng: &mut ChaCha20Rng) -> BatchContents {
        let mut contents = BatchContents {
            sequence: 7,
            created_at: NOW,
            ..Default::default()
        };
        for i in 0..5u8 {
            contents.diagnosis_keys.push(DiagnosisKey {
                key: TemporaryExposureKey::generate(rng),
                rolling_start: NOW.day().minus(u32::from(i) + 1).first_interval(),
                rolling_period: 144,
                report_type: ReportType::ConfirmedTest,
                days_since_onset: if i % 2 == 0 { Some(i as i8 - 2) } else { None },
            });
        }
        for i in 0..40u32 {
            let mut t = [0u8; 16];
            rng.fill_bytes(&mut t);
            contents.tokens.push(PublishedToken {
                day: NOW.day().minus(i % 14),
                token: EncounterToken(t),
            });
        }
        contents
    }

    fn setup() -> (NodeSigningKey, TrustedNodes, BatchContents) {
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let key = NodeSigningKey::generate(&mut rng);
        let trusted = TrustedNodes::new().with(key.public_key());
        (key, trusted, sample(&mut rng))
    }

    #[test]
    fn sign_then_verify_round_trips_in_canonical_order() {
        let (key, trusted, contents) = setup();
        let signed = contents.clone().sign(&key);
        let (summary, decoded) = SignedBatch::verify(signed.bytes(), &trusted).unwrap();
        assert_eq!(summary.id, signed.id());
        assert_eq!((summary.sequence, summary.keys, summary.tokens), (7, 5, 40));
        let mut expected = contents;
        expected.diagnosis_keys.sort();
        expected.tokens.sort();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn a_chained_batch_signs_its_link_and_cannot_pass_for_another_version() {
        let (key, trusted, mut contents) = setup();
        contents.previous = Some(BatchId([4; 32]));
        let signed = contents.clone().sign(&key);
        assert_eq!(signed.bytes()[0], WIRE_VERSION_2);
        let (summary, decoded) = SignedBatch::verify(signed.bytes(), &trusted).unwrap();
        assert_eq!(summary.previous, Some(BatchId([4; 32])));
        assert_eq!(decoded.previous, Some(BatchId([4; 32])));
        // A forged link changes the id, so the signature fails.
        let mut relinked = signed.bytes().to_vec();
        relinked[FRAME_HEADER_LEN + 16] ^= 1;
        assert_eq!(
            SignedBatch::verify(&relinked, &trusted).unwrap_err(),
            BatchError::BadSignature
        );
        // Read as version 1 the body does not parse to the signed length, or the label
        // differs: never a valid batch.
        let mut downgraded = signed.bytes().to_vec();
        downgraded[0] = WIRE_VERSION;
        assert!(SignedBatch::verify(&downgraded, &trusted).is_err());
        let unchained = BatchContents {
            previous: None,
            ..contents
        }
        .sign(&key);
        let mut upgraded = unchained.bytes().to_vec();
        upgraded[0] = WIRE_VERSION_2;
        assert!(SignedBatch::verify(&upgraded, &trusted).is_err());
    }

    #[test]
    fn input_order_does_not_change_the_bytes() {
        let (key, _, contents) = setup();
        let mut shuffled = contents.clone();
        shuffled.diagnosis_keys.reverse();
        shuffled.tokens.rotate_left(13);
        assert_eq!(contents.sign(&key), shuffled.sign(&key));
    }

    #[test]
    fn streaming_in_any_chunking_gives_the_same_result() {
        let (key, trusted, contents) = setup();
        let signed = contents.sign(&key);
        let (_, whole) = SignedBatch::verify(signed.bytes(), &trusted).unwrap();
        for chunk_size in [1, 7, 20, 23, 64, 1000] {
            let mut stream = BatchStream::new(&trusted);
            let mut got = BatchContents::default();
            for chunk in signed.bytes().chunks(chunk_size) {
                stream
                    .push(chunk, &mut |e| match e {
                        BatchEntry::Key(k) => got.diagnosis_keys.push(k),
                        BatchEntry::Token(t) => got.tokens.push(t),
                    })
                    .unwrap();
            }
            let summary = stream.finish().unwrap();
            assert_eq!(summary.id, signed.id());
            assert_eq!(got.diagnosis_keys, whole.diagnosis_keys);
            assert_eq!(got.tokens, whole.tokens);
        }
    }

    #[test]
    fn tampering_truncation_and_strangers_are_refused() {
        let (key, trusted, contents) = setup();
        let bytes = contents.sign(&key).into_bytes();
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            SignedBatch::verify(&flipped, &trusted).unwrap_err(),
            BatchError::BadSignature
        );
        assert!(matches!(
            SignedBatch::verify(&bytes[..bytes.len() - 3], &trusted).unwrap_err(),
            BatchError::LengthMismatch { .. }
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            SignedBatch::verify(&longer, &trusted).unwrap_err(),
            BatchError::LengthMismatch { .. }
        ));
        assert_eq!(
            SignedBatch::verify(&bytes, &TrustedNodes::new()).unwrap_err(),
            BatchError::UntrustedNode
        );
        assert!(matches!(
            SignedBatch::verify(&bytes[..10], &trusted).unwrap_err(),
            BatchError::Decode(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn decoys_pad_to_the_minimum_and_follow_real_days() {
        let (_, _, mut contents) = setup();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let real_days: std::collections::BTreeSet<_> =
            contents.tokens.iter().map(|t| t.day).collect();
        contents.pad_with_decoys(100, NOW, 14, &mut rng);
        assert_eq!(contents.tokens.len(), 100);
        assert_eq!(contents.diagnosis_keys.len(), 100);
        assert!(contents.tokens.iter().all(|t| real_days.contains(&t.day)));
        let mut empty = BatchContents::default();
        empty.pad_with_decoys(50, NOW, 14, &mut rng);
        assert_eq!((empty.tokens.len(), empty.diagnosis_keys.len()), (50, 0));
        assert!(
            empty
                .tokens
                .iter()
                .all(|t| t.day <= NOW.day() && t.day > NOW.day().minus(14))
        );
    }

    #[test]
    fn batch_ids_are_hex_in_json() {
        let id = BatchId([0xab; 32]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<BatchId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<BatchId>("\"zz\"").is_err());
    }

    /// What a stream yields, as entries: via `push` or via `push_records`.
    type Outcome = (Vec<BatchEntry>, Result<BatchSummary, BatchError>);

    fn via_entries(trusted: &TrustedNodes, bytes: &[u8], cuts: &[usize]) -> Outcome {
        let mut stream = BatchStream::new(trusted);
        let mut got = Vec::new();
        for chunk in split_at_cuts(bytes, cuts) {
            if let Err(e) = stream.push(chunk, &mut |e| got.push(e)) {
                return (got, Err(e));
            }
        }
        (got, stream.finish())
    }

    fn via_records(trusted: &TrustedNodes, bytes: &[u8], cuts: &[usize]) -> Outcome {
        let mut stream = BatchStream::new(trusted);
        let mut got = Vec::new();
        for chunk in split_at_cuts(bytes, cuts) {
            let mut keys = Vec::new();
            let mut tokens = Vec::new();
            let result = stream.push_records(
                chunk,
                &mut |run: &[DiagnosisKey]| {
                    assert!(!run.is_empty() && run.len() <= KEY_RUN);
                    keys.extend(run.iter().cloned().map(BatchEntry::Key));
                },
                &mut |slab: &[u8]| {
                    assert!(!slab.is_empty() && slab.len().is_multiple_of(TOKEN_RECORD_LEN));
                    tokens.extend(
                        slab.chunks_exact(TOKEN_RECORD_LEN)
                            .map(|r| BatchEntry::Token(decode_token_record(r))),
                    );
                },
            );
            // Keys all come before tokens in a batch; one chunk can end the first section
            // and start the second.
            got.extend(keys);
            got.extend(tokens);
            if let Err(e) = result {
                return (got, Err(e));
            }
        }
        (got, stream.finish())
    }

    /// `bytes` cut at the (sorted, clamped) positions in `cuts`.
    fn split_at_cuts<'b>(bytes: &'b [u8], cuts: &[usize]) -> Vec<&'b [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut at = 0;
        for c in cuts {
            out.push(&bytes[at..c]);
            at = c;
        }
        out.push(&bytes[at..]);
        out
    }

    fn sized(seed: u64, keys: usize, tokens: usize) -> (TrustedNodes, SignedBatch) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = NodeSigningKey::generate(&mut rng);
        let trusted = TrustedNodes::new().with(key.public_key());
        let mut contents = sample(&mut rng);
        // Half the batches chained (version 2), half not (version 1).
        contents.previous = seed.is_multiple_of(2).then_some(BatchId([seed as u8; 32]));
        contents.diagnosis_keys.truncate(keys);
        contents.tokens.truncate(tokens);
        while contents.diagnosis_keys.len() < keys {
            let template = contents
                .diagnosis_keys
                .first()
                .cloned()
                .unwrap_or(DiagnosisKey {
                    key: TemporaryExposureKey([0; 16]),
                    rolling_start: NOW.day().minus(1).first_interval(),
                    rolling_period: 144,
                    report_type: ReportType::ConfirmedTest,
                    days_since_onset: None,
                });
            contents.diagnosis_keys.push(DiagnosisKey {
                key: TemporaryExposureKey::generate(&mut rng),
                ..template
            });
        }
        while contents.tokens.len() < tokens {
            let mut token = [0u8; 16];
            rng.fill_bytes(&mut token);
            contents.tokens.push(PublishedToken {
                day: NOW.day().minus(rng.next_u32() % 14),
                token: EncounterToken(token),
            });
        }
        (trusted, contents.sign(&key))
    }

    #[test]
    fn record_runs_hand_over_keys_in_runs_and_tokens_in_slabs() {
        let (trusted, signed) = sized(3, 150, 1000);
        let mut runs = Vec::new();
        let mut slabs = 0;
        let mut stream = BatchStream::new(&trusted);
        stream
            .push_records(
                signed.bytes(),
                &mut |run: &[DiagnosisKey]| runs.push(run.len()),
                &mut |slab: &[u8]| slabs += slab.len() / TOKEN_RECORD_LEN,
            )
            .unwrap();
        assert_eq!(stream.finish().unwrap().id, signed.id());
        assert_eq!(runs, [64, 64, 22]);
        assert_eq!(slabs, 1000);
    }

    proptest! {
        #[test]
        fn both_paths_agree_under_any_chunking(
            keys in 0usize..140,
            tokens in 0usize..300,
            seed in any::<u64>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            flip in proptest::option::of((any::<usize>(), 0u8..8)),
            cut_short in proptest::option::of(any::<usize>()),
        ) {
            let (trusted, signed) = sized(seed, keys, tokens);
            let mut bytes = signed.into_bytes();
            if let Some((i, bit)) = flip {
                let i = i % bytes.len();
                bytes[i] ^= 1 << bit;
            }
            if let Some(n) = cut_short {
                bytes.truncate(n % (bytes.len() + 1));
            }
            let a = via_entries(&trusted, &bytes, &cuts);
            let b = via_records(&trusted, &bytes, &cuts);
            prop_assert_eq!(&a.1, &b.1);
            if a.1.is_ok() {
                prop_assert_eq!(&a.0, &b.0);
                prop_assert_eq!(a.0.len(), keys + tokens);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), split in 0usize..400) {
            let (_, trusted, _) = setup();
            let _ = SignedBatch::verify(&bytes, &trusted);
            for version in [WIRE_VERSION, WIRE_VERSION_2] {
                let mut framed = vec![version, wire::kind::SIGNED_BATCH];
                framed.extend_from_slice(&bytes);
                let mut stream = BatchStream::new(&trusted);
                let split = split.min(framed.len());
                let _ = stream.push(&framed[..split], &mut |_| {});
                let _ = stream.push(&framed[split..], &mut |_| {});
                let _ = stream.finish();
            }
        }

        #[test]
        fn mutated_batches_never_verify_with_changed_content(index in 0usize..2000, bit in 0u8..8) {
            let (key, trusted, contents) = setup();
            let bytes = contents.sign(&key).into_bytes();
            let mut mutated = bytes.clone();
            let i = index % mutated.len();
            mutated[i] ^= 1 << bit;
            prop_assert!(SignedBatch::verify(&mutated, &trusted).is_err());
        }
    }
}
