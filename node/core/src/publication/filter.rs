//! Token filters of published batches (`docs/PROTOCOL.md` §6.5): the compact form phones
//! fetch instead of a batch's token records. Each is built from its signed batch when the
//! batch is cut and stored beside it, so serving one never builds one.

use ephemera_proto::batch::{BatchId, NodeSigningKey, SignedBatch, TrustedNodes};
use ephemera_proto::error::{BatchError, FilterError};
use ephemera_proto::filter::TokenFilter;
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::rollover::KeyRole;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ring::hmac;
use thiserror::Error;

use crate::NodeCore;

/// Label of the salt derivation (publication version 3).
const SALT_LABEL: &[u8] = b"ephemera/v3/token-filter-salt";

/// The salt stream of the filter of batch `id`: HMAC-SHA256 under the batch key's seed.
fn salt_rng(key: &NodeSigningKey, id: &BatchId) -> ChaCha20Rng {
    let mac_key = hmac::Key::new(hmac::HMAC_SHA256, key.seed());
    let mut context = hmac::Context::with_key(&mac_key);
    context.update(SALT_LABEL);
    context.update(&id.0);
    let mut seed = [0u8; 32];
    seed.copy_from_slice(context.sign().as_ref());
    ChaCha20Rng::from_seed(seed)
}

/// A stored batch could not be summarised as a filter.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenFilterError {
    /// The stored bytes are not a batch this node signed (a damaged store).
    #[error("stored batch does not verify: {0}")]
    Batch(#[from] BatchError),
    /// The filter could not be built.
    #[error("token filter: {0}")]
    Filter(#[from] FilterError),
}

impl NodeCore {
    /// The signed token filter of the stored batch `batch`, or `None` for a batch without
    /// tokens or of version 1 (phones fetch the batch itself). The salt comes from the
    /// batch key's secret and the batch id, so the filter is the same on every call and
    /// after restarts, and nobody without the key can predict it when uploading.
    ///
    /// # Errors
    /// [`TokenFilterError`].
    pub fn token_filter(&self, batch: &[u8]) -> Result<Option<Vec<u8>>, TokenFilterError> {
        let (summary, contents) = SignedBatch::verify(batch, &self.own_batch_keys())?;
        if summary.tokens == 0 || summary.previous.is_none() {
            return Ok(None);
        }
        let tokens: Vec<EncounterToken> = contents.tokens.iter().map(|t| t.token).collect();
        let mut rng = salt_rng(&self.keys.batch, &summary.id);
        Ok(Some(TokenFilter::build(
            &summary,
            &tokens,
            &self.keys.batch,
            &mut rng,
        )?))
    }

    /// Every batch key this node signed with: the current one and those its rollovers
    /// named.
    fn own_batch_keys(&self) -> TrustedNodes {
        let mut trusted = TrustedNodes::new().with(self.keys.batch.public_key());
        for rollover in self
            .keys
            .rollovers
            .iter()
            .filter(|r| r.role == KeyRole::Batch)
        {
            trusted.insert(rollover.old);
            trusted.insert(rollover.new);
        }
        trusted
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::UnixTime;
    use ephemera_proto::batch::{BatchContents, BatchId};
    use ephemera_proto::report::PublishedToken;

    use crate::tests::core;

    #[test]
    fn a_batch_gets_the_same_filter_each_time_holding_its_tokens() {
        let core = core();
        let tokens: Vec<PublishedToken> = (0..300u32)
            .map(|i| {
                let mut token = [0u8; 16];
                token[..4].copy_from_slice(&i.to_le_bytes());
                PublishedToken {
                    day: UnixTime(1_700_000_000).day(),
                    token: ephemera_proto::pet::EncounterToken(token),
                }
            })
            .collect();
        let chained = BatchContents {
            sequence: 1,
            created_at: UnixTime(1_700_000_000),
            previous: Some(BatchId::NONE),
            tokens: tokens.clone(),
            ..Default::default()
        }
        .sign(&core.keys().batch);
        let first = core.token_filter(chained.bytes()).unwrap().unwrap();
        assert_eq!(core.token_filter(chained.bytes()).unwrap().unwrap(), first);
        let trusted = super::TrustedNodes::new().with(core.keys().batch.public_key());
        let filter = ephemera_proto::filter::TokenFilter::verify(&first, &trusted).unwrap();
        assert_eq!(filter.batch, chained.id());
        assert!(tokens.iter().all(|t| filter.contains(&t.token)));

        let unchained = BatchContents {
            sequence: 1,
            created_at: UnixTime(1_700_000_000),
            previous: None,
            tokens,
            ..Default::default()
        }
        .sign(&core.keys().batch);
        assert!(core.token_filter(unchained.bytes()).unwrap().is_none());
        let empty = BatchContents {
            previous: Some(BatchId::NONE),
            ..Default::default()
        }
        .sign(&core.keys().batch);
        assert!(core.token_filter(empty.bytes()).unwrap().is_none());
        assert!(core.token_filter(b"not a batch").is_err());
    }
}
