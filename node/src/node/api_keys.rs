//! API keys of lab and hospital systems, driven: admins create, list and revoke them; a
//! key authenticates `POST /v1/codes` within its scope (`crate::accounts::api_key`).
//! Every change is on the audit trail, refusals too.

use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};

use crate::accounts::api_key::{self, ApiKeyError, ApiKeySummary};
use crate::accounts::{NAME_RULE, is_account_name};
use crate::api::error::ApiError;
use crate::api::types::{CreatedApiKey, TestType};
use crate::store::{API_KEY_ID_LEN, ApiKeyRecord, Role};

use super::{Need, Node};

/// A key's live record, as an issue request presents it.
#[derive(Debug)]
pub struct KeyHolder {
    /// Its public id.
    pub id: [u8; API_KEY_ID_LEN],
    /// Its record as of this request.
    pub record: ApiKeyRecord,
}

impl Node {
    /// `POST /v1/api-keys`: an admin creates a key named `name` for `test_types` (empty:
    /// any); the key is shown once.
    ///
    /// # Errors
    /// [`ApiError::InvalidParameter`] for a name that cannot be one, and as
    /// [`Node::authorize`].
    pub async fn create_api_key(
        &self,
        token: &str,
        name: &str,
        test_types: &[TestType],
    ) -> Result<CreatedApiKey, ApiError> {
        let admin = self.authorize(token, Need::OneOf(&[Role::Admin]))?;
        if !is_account_name(name) {
            return Err(ApiError::InvalidParameter {
                name: "name",
                reason: NAME_RULE,
            });
        }
        let today = self.now().day();
        let store = self.inner.store.as_ref();
        let key = api_key::create(
            store,
            name,
            test_types,
            &admin.account,
            today,
            &mut rand::rng(),
        )?;
        let summary = api_key::list(store)?
            .into_iter()
            .find(|k| k.id == hex::encode(key.id()))
            .ok_or(ApiError::Internal)?;
        self.audit(
            AuditActor::Account(admin.account),
            AuditAction::ApiKeyCreated {
                id: summary.id.clone(),
                name: name.to_owned(),
                test_types: summary
                    .test_types
                    .iter()
                    .map(|t| t.as_str().to_owned())
                    .collect(),
            },
            AuditOutcome::Success,
        )?;
        self.inner.flusher.flush().await?;
        Ok(CreatedApiKey {
            id: summary.id,
            name: summary.name,
            key: key.reveal().to_string(),
            test_types: summary.test_types,
        })
    }

    /// `GET /v1/api-keys`: every key, never its secret (admins only).
    ///
    /// # Errors
    /// As [`Node::authorize`].
    pub fn list_api_keys(&self, token: &str) -> Result<Vec<ApiKeySummary>, ApiError> {
        self.authorize(token, Need::OneOf(&[Role::Admin]))?;
        Ok(api_key::list(self.inner.store.as_ref())?)
    }

    /// `POST /v1/api-keys/{id}/revoke`: an admin revokes a key; it works no more from the
    /// next request on.
    ///
    /// # Errors
    /// [`ApiError::UnknownApiKey`], [`ApiError::ApiKeyRevoked`], and as
    /// [`Node::authorize`].
    pub async fn revoke_api_key(
        &self,
        token: &str,
        id: &[u8; API_KEY_ID_LEN],
    ) -> Result<(), ApiError> {
        let admin = self.authorize(token, Need::OneOf(&[Role::Admin]))?;
        let actor = AuditActor::Account(admin.account);
        let action = AuditAction::ApiKeyRevoked {
            id: hex::encode(id),
        };
        let today = self.now().day();
        match api_key::revoke(self.inner.store.as_ref(), id, today)? {
            Ok(()) => {
                self.audit(actor, action, AuditOutcome::Success)?;
                self.inner.flusher.flush().await?;
                Ok(())
            }
            Err(e) => {
                let error = match e {
                    ApiKeyError::Unknown => ApiError::UnknownApiKey,
                    ApiKeyError::Revoked => ApiError::ApiKeyRevoked,
                };
                Err(self.refused(actor, action, error).await)
            }
        }
    }

    /// The live key a request presents, its last-used day moved to today.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] for a key that is malformed, unknown, revoked or wrong
    /// (not told apart); [`ApiError::Store`].
    pub fn authorize_api_key(&self, presented: &str) -> Result<KeyHolder, ApiError> {
        let today = self.now().day();
        match api_key::authenticate(self.inner.store.as_ref(), presented, today)? {
            Some((id, record)) => Ok(KeyHolder { id, record }),
            None => Err(ApiError::Unauthorized),
        }
    }
}
