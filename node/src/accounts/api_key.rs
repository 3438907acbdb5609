//! API keys of lab and hospital systems: created by an admin, shown once, kept as the
//! SHA-256 of a 256-bit secret (not a password: no slow hash is needed), scoped to issuing
//! codes of some or all test types, revocable, with the last day each was used.
//!
//! A key reads `ephk_<id>_<secret>`: the public id (16 hex digits) files the record; the
//! secret (64 hex digits) is checked against its hash in constant time.

use std::fmt;

use ephemera_proto::DayNumber;
use ephemera_proto::report::ReportType;
use rand_core::CryptoRng;
use ring::digest;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::api::types::TestType;
use crate::clock::civil;
use crate::store::{API_KEY_ID_LEN, ApiKeyRecord, ReportStore, StoreError};

/// What every API key starts with (a session token is hex, so never does).
pub const API_KEY_PREFIX: &str = "ephk_";

/// Bytes of an API key's secret.
const SECRET_LEN: usize = 32;

/// An API key as its holder presents it. Never printed in Debug; wiped when dropped.
pub struct ApiKey {
    id: [u8; API_KEY_ID_LEN],
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &hex::encode(self.id))
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// A fresh key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut id = [0u8; API_KEY_ID_LEN];
        rng.fill_bytes(&mut id);
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        rng.fill_bytes(secret.as_mut());
        ApiKey { id, secret }
    }

    /// Reads a presented key; `None` for anything not shaped as one.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(API_KEY_PREFIX)?;
        let (id_hex, secret_hex) = rest.split_once('_')?;
        let mut id = [0u8; API_KEY_ID_LEN];
        hex::decode_to_slice(id_hex, &mut id).ok()?;
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        hex::decode_to_slice(secret_hex, secret.as_mut()).ok()?;
        Some(ApiKey { id, secret })
    }

    /// The key as shown once to the admin who created it.
    pub fn reveal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{API_KEY_PREFIX}{}_{}",
            hex::encode(self.id),
            hex::encode(self.secret.as_ref())
        ))
    }

    /// Its public id.
    pub fn id(&self) -> [u8; API_KEY_ID_LEN] {
        self.id
    }

    /// The SHA-256 of its secret, as the store keeps it.
    pub fn secret_hash(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, self.secret.as_ref()).as_ref());
        out
    }

    /// Whether it is the key of `record` (in constant time).
    pub fn matches(&self, record: &ApiKeyRecord) -> bool {
        self.secret_hash().ct_eq(&record.secret_hash).into()
    }
}

/// What a key may no longer do, or why it cannot be changed.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiKeyError {
    /// No key has this id.
    Unknown,
    /// The key was revoked before.
    Revoked,
}

/// A key as admins list it: never its secret nor the hash.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApiKeySummary {
    /// Its public id (16 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The test types it may issue codes for; empty: any.
    pub test_types: Vec<TestType>,
    /// Who created it (an admin, or `operator` for the command line).
    pub created_by: String,
    /// The day it was created, `YYYY-MM-DD`.
    pub created: String,
    /// The day it was revoked, if it was.
    pub revoked: Option<String>,
    /// The last day it was used, if ever.
    pub last_used: Option<String>,
}

/// Creates a key named `name` for `test_types` (empty: any), by `created_by`, today; the
/// key to show once.
///
/// # Errors
/// [`StoreError`].
pub fn create(
    store: &dyn ReportStore,
    name: &str,
    test_types: &[TestType],
    created_by: &str,
    today: DayNumber,
    rng: &mut impl CryptoRng,
) -> Result<ApiKey, StoreError> {
    let key = loop {
        let key = ApiKey::generate(rng);
        if store.api_key(&key.id())?.is_none() {
            break key;
        }
    };
    let mut types: Vec<ReportType> = test_types.iter().map(|t| t.report_type()).collect();
    types.sort_by_key(|t| t.code());
    types.dedup();
    store.put_api_key(
        &key.id(),
        &ApiKeyRecord {
            name: name.to_owned(),
            secret_hash: key.secret_hash(),
            test_types: types,
            created_by: created_by.to_owned(),
            created: today,
            revoked: None,
            last_used: None,
        },
    )?;
    Ok(key)
}

/// Every key, oldest id first.
///
/// # Errors
/// [`StoreError`].
pub fn list(store: &dyn ReportStore) -> Result<Vec<ApiKeySummary>, StoreError> {
    Ok(store
        .api_keys()?
        .into_iter()
        .map(|(id, record)| ApiKeySummary {
            id: hex::encode(id),
            name: record.name,
            test_types: record
                .test_types
                .iter()
                .filter_map(|t| TestType::of(*t))
                .collect(),
            created_by: record.created_by,
            created: civil::format_date(record.created),
            revoked: record.revoked.map(civil::format_date),
            last_used: record.last_used.map(civil::format_date),
        })
        .collect())
}

/// The id named in a path or on the command line, if it can be one.
pub fn parse_id(text: &str) -> Option<[u8; API_KEY_ID_LEN]> {
    let mut id = [0u8; API_KEY_ID_LEN];
    hex::decode_to_slice(text, &mut id).ok()?;
    Some(id)
}

/// Revokes the key `id` on `today`.
///
/// # Errors
/// [`StoreError`]; the inner [`ApiKeyError`] says why nothing was revoked.
pub fn revoke(
    store: &dyn ReportStore,
    id: &[u8; API_KEY_ID_LEN],
    today: DayNumber,
) -> Result<Result<(), ApiKeyError>, StoreError> {
    let Some(mut record) = store.api_key(id)? else {
        return Ok(Err(ApiKeyError::Unknown));
    };
    if record.revoked.is_some() {
        return Ok(Err(ApiKeyError::Revoked));
    }
    record.revoked = Some(today);
    store.put_api_key(id, &record)?;
    Ok(Ok(()))
}

/// The live key record of a presented key, its last-used day moved to `today` (written at
/// most once a day); `None` for a key that is malformed, unknown, revoked or wrong.
///
/// # Errors
/// [`StoreError`].
pub fn authenticate(
    store: &dyn ReportStore,
    presented: &str,
    today: DayNumber,
) -> Result<Option<([u8; API_KEY_ID_LEN], ApiKeyRecord)>, StoreError> {
    let Some(key) = ApiKey::parse(presented) else {
        return Ok(None);
    };
    let Some(mut record) = store.api_key(&key.id())? else {
        return Ok(None);
    };
    if !key.matches(&record) || record.revoked.is_some() {
        return Ok(None);
    }
    if record.last_used != Some(today) {
        record.last_used = Some(today);
        store.put_api_key(&key.id(), &record)?;
    }
    Ok(Some((key.id(), record)))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::store::MemoryReportStore;

    #[test]
    fn a_key_is_shown_once_kept_hashed_scoped_and_revocable() {
        let store = MemoryReportStore::new();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let key = create(
            &store,
            "lab-north",
            &[TestType::Confirmed, TestType::Confirmed],
            "alice",
            DayNumber(10),
            &mut rng,
        )
        .unwrap();
        let shown = key.reveal();
        assert!(shown.starts_with(API_KEY_PREFIX));
        assert_eq!(shown.len(), API_KEY_PREFIX.len() + 16 + 1 + 64);
        assert!(!format!("{key:?}").contains(&shown[22..]));
        let record = store.api_key(&key.id()).unwrap().unwrap();
        assert_eq!(record.test_types, vec![ReportType::ConfirmedTest]);
        assert!(record.allows(ReportType::ConfirmedTest));
        assert!(!record.allows(ReportType::ConfirmedClinicalDiagnosis));
        assert_ne!(record.secret_hash.as_slice(), &shown.as_bytes()[22..54]);

        let (id, used) = authenticate(&store, &shown, DayNumber(11))
            .unwrap()
            .unwrap();
        assert_eq!(id, key.id());
        assert_eq!(used.last_used, Some(DayNumber(11)));
        assert_eq!(
            list(&store).unwrap()[0].last_used.as_deref(),
            Some("1970-01-12")
        );
        // One hex digit of the secret changed: not the key.
        let mut wrong = shown.to_string();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert!(
            authenticate(&store, &wrong, DayNumber(11))
                .unwrap()
                .is_none()
        );
        assert_eq!(revoke(&store, &key.id(), DayNumber(12)).unwrap(), Ok(()));
        assert_eq!(
            revoke(&store, &key.id(), DayNumber(12)).unwrap(),
            Err(ApiKeyError::Revoked)
        );
        assert_eq!(
            revoke(&store, &[0; 8], DayNumber(12)).unwrap(),
            Err(ApiKeyError::Unknown)
        );
        assert!(
            authenticate(&store, &shown, DayNumber(12))
                .unwrap()
                .is_none()
        );
        assert_eq!(parse_id(&hex::encode(key.id())), Some(key.id()));
        assert_eq!(parse_id("xyz"), None);
    }

    proptest! {
        #[test]
        fn any_presented_key_parses_or_is_refused_cleanly(text in "(ephk_)?[0-9a-f_]{0,90}|\\PC{0,100}") {
            let store = MemoryReportStore::new();
            prop_assert!(authenticate(&store, &text, DayNumber(1)).unwrap().is_none());
            if let Some(key) = ApiKey::parse(&text) {
                let shown = key.reveal();
                prop_assert_eq!(shown.as_str(), text.to_ascii_lowercase());
            }
        }
    }
}
