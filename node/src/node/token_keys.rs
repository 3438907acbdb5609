//! Blind-token keys, driven (`docs/PROTOCOL.md` §4.4): stored epochs loaded, missing ones
//! (today's, tomorrow's) made on a blocking thread and stored (under `keys/tokens/`, or
//! in the group's PostgreSQL store, where the first node to make an epoch wins), never on
//! a request's path; the signed set served at `GET /v2/token-keys`.

use std::sync::atomic::Ordering;

use ephemera_node_core::token_keys::{EpochStoreError, TokenKeyring};
use ephemera_proto::token::TokenSigningKey;
use ephemera_proto::{DayNumber, wire};

use super::{Node, NodeError};

impl Node {
    /// Installs every token epoch the node lacks now: each stored one from `oldest` on (so
    /// relayed tokens of past days still verify after a restart), and today's and
    /// tomorrow's, made and stored when missing. Stored epochs past retention are removed.
    /// Returns how many epochs were installed.
    ///
    /// # Errors
    /// [`NodeError::Keys`] when a key file cannot be read or written, [`NodeError::Store`]
    /// when the store cannot, [`NodeError::TokenEpochs`] when the store's keys do not open
    /// with this node's pepper, [`NodeError::TokenKeys`] when a key cannot be made,
    /// [`NodeError::Task`].
    pub async fn ensure_token_keys(&self) -> Result<usize, NodeError> {
        let now = self.now();
        let core = &self.inner.core;
        let missing = core.token_epochs_missing(now);
        if missing.is_empty() {
            return Ok(0);
        }
        let shelf = self.inner.token_epochs.clone();
        let oldest = core.oldest_token_epoch(now);
        let epochs = tokio::task::spawn_blocking(
            move || -> Result<Vec<(DayNumber, Vec<TokenSigningKey>)>, NodeError> {
                let stored = |e| match e {
                    EpochStoreError::Keys(e) => NodeError::Keys(e),
                    EpochStoreError::Store(e) => NodeError::Store(e),
                    other => NodeError::TokenEpochs(other),
                };
                shelf.forget_before(oldest).map_err(stored)?;
                let mut epochs = shelf.load(oldest).map_err(stored)?;
                for epoch in missing {
                    if epochs.iter().any(|(held, _)| *held == epoch) {
                        continue;
                    }
                    let made = TokenKeyring::generate_epoch(epoch, &mut rand::rng())?;
                    epochs.push((epoch, shelf.save(epoch, made).map_err(stored)?));
                }
                Ok(epochs)
            },
        )
        .await
        .map_err(|_| NodeError::Task)??;
        let count = epochs.len();
        for (epoch, keys) in epochs {
            core.install_token_epoch(epoch, keys, now)?;
        }
        tracing::info!(epochs = count, "blind-token keys installed");
        Ok(count)
    }

    /// Starts [`Self::ensure_token_keys`] on its own task unless one runs already, so the
    /// background loop never waits for key generation.
    pub(super) fn refresh_token_keys(&self) {
        if self.inner.token_keys_busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let node = self.clone();
        tokio::spawn(async move {
            if let Err(e) = node.ensure_token_keys().await {
                tracing::error!(error = %e, "blind-token keys could not be made");
            }
            node.inner.token_keys_busy.store(false, Ordering::Release);
        });
    }

    /// The signed token key set, framed (`GET /v2/token-keys`).
    pub fn token_key_set_frame(&self) -> Vec<u8> {
        wire::encode(&self.inner.core.token_key_set(self.now()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ephemera_node_core::keys::NodeKeys;
    use ephemera_node_core::store::MemoryReportStore;
    use ephemera_proto::UnixTime;
    use ephemera_proto::auth::TrustedAuthorities;
    use ephemera_proto::token::{SignedTokenKeySet, TokenClass};

    use crate::clock::ManualClock;
    use crate::config::NodeConfig;

    use super::*;

    #[tokio::test]
    async fn token_keys_are_made_once_stored_served_and_reloaded_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig {
            data_dir: dir.path().to_owned(),
            ..NodeConfig::default()
        };
        let clock = ManualClock::new(UnixTime(1_700_000_000));
        let start = |config: NodeConfig| {
            let (keys, _) = NodeKeys::load_or_create(dir.path(), &mut rand::rng()).unwrap();
            Node::with_store(
                config,
                Arc::new(clock.clone()),
                Arc::new(MemoryReportStore::new()),
                keys,
            )
        };
        let node = start(config.clone());
        assert_eq!(node.ensure_token_keys().await.unwrap(), 2);
        assert_eq!(node.ensure_token_keys().await.unwrap(), 0);
        let served = |node: &Node| -> SignedTokenKeySet {
            wire::decode(&node.token_key_set_frame()).unwrap()
        };
        let set = served(&node);
        let trusted = TrustedAuthorities::new().with(node.keys().authority.public_key());
        let keys = set
            .verify(&trusted, &node.core().policy().audience)
            .unwrap();
        assert_eq!(keys.len(), 2 * TokenClass::ALL.len());
        // A restart loads the stored keys (the same ids), and makes none.
        let again = start(config);
        assert_eq!(again.ensure_token_keys().await.unwrap(), 2);
        assert_eq!(served(&again).set.keys, set.set.keys);
        // A day later, the day after tomorrow is made and the others stay.
        clock.advance(86_400);
        assert_eq!(again.ensure_token_keys().await.unwrap(), 3);
        assert_eq!(served(&again).set.keys.len(), 3 * TokenClass::ALL.len());
    }
}
