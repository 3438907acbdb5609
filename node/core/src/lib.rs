//! The Ephemera node's policy, without I/O: every rule a health authority's node applies,
//! in one crate that the server (`ephemera-node`), the simulator and the tests all run.
//!
//! Like `quinn-proto` under `quinn`, [`NodeCore`] owns no socket, clock, thread or async
//! runtime. Each call takes the store (the node's state), its input and the time, and
//! returns an outcome; the driver does the I/O around it:
//!
//! | concept | module | what it decides |
//! | --- | --- | --- |
//! | authority | [`authority`] | issuing upload codes, redeeming one for a signed certificate or a blind token |
//! | token keys | [`token_keys`] | the blind-token keys per day and class, made ahead, published signed |
//! | intake | [`intake`] | verifying an upload, single use of its certificate, revisions, decoys |
//! | publication | [`publication`] | the GAEN embargo, batch boundaries, splitting, padding, signing, GAEN export files |
//! | retention | [`retention`] | when each record is forgotten, and the purge |
//! | federation intake | [`federation_intake`] | what a report relayed by a peer must pass to be stored and published |
//! | twins | [`twin_guard`] | whether another copy of this node runs, and which copy may cut |
//! | batch logs | [`head_watch`] | the latest head heard of each node, and evidence of equivocation or rollback |
//! | venue releases | [`venue_release`] | a case worker's trace of a venue made into a signed release; which releases from anywhere are kept, until when |
//!
//! Writes follow one rule: the core decides and the driver makes it durable. Uploads and
//! cuts come back as commits ([`store::UploadCommit`], [`store::CutCommit`]) that the
//! driver applies (grouped, flushed) before it acknowledges anything; the authority's two
//! single-record writes (codes in, a code taken) go to the store directly and are durable
//! after the driver's next [`store::ReportStore::flush`], which it calls before answering.
//!
//! Storage sits behind [`store::ReportStore`]: [`store::SledReportStore`] on disk (the
//! embedded default) and [`store::MemoryReportStore`] for tests and the simulator.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod arrival;
pub mod audit;
pub mod authority;
pub mod clock_guard;
pub mod federation_intake;
pub mod head_watch;
pub mod intake;
pub mod key_binding;
pub mod key_rotation;
pub mod keys;
pub mod policy;
pub mod publication;
pub mod retention;
pub mod revision_token;
pub mod store;
pub mod sunset;
pub mod token_keys;
pub mod twin_guard;
pub mod venue_release;

use ephemera_proto::auth::{CertificateRequest, ReportHmac, SignedCertificate, TrustedAuthorities};
use ephemera_proto::report::{ReportLimits, ReportType};
use ephemera_proto::rollover::KeyRole;
use ephemera_proto::token::{SignedTokenKeySet, TokenError, TokenSigningKey};
use ephemera_proto::{DayNumber, UnixTime, wire};
use rand_core::CryptoRng;

pub use authority::AuthorityError;
pub use intake::IntakeError;
pub use keys::NodeKeys;
pub use policy::Policy;
pub use publication::PublicationError;

use publication::{BatchCutter, PublicationKey};
use revision_token::RevisionTokens;
use token_keys::TokenKeyring;

/// One node's policy and keys: the state every rule needs besides the store.
pub struct NodeCore {
    policy: Policy,
    keys: NodeKeys,
    trusted: TrustedAuthorities,
    limits: ReportLimits,
    cutter: BatchCutter,
    /// The policy's publication key, or one drawn at start.
    publication_key: PublicationKey,
    revision_tokens: RevisionTokens,
    /// A certificate verified on decoy uploads, so they cost what real ones do.
    decoy_certificate: SignedCertificate,
    /// Length of a certificate's wire form, for decoy verify answers.
    certificate_len: usize,
    /// Blind-token keys: installed by the driver as it makes them, read by every verify.
    token_keys: std::sync::RwLock<TokenKeyring>,
}

impl std::fmt::Debug for NodeCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCore")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl NodeCore {
    /// A node applying `policy` with `keys`. It trusts its own authority key, the keys of
    /// its own authority rollovers (the next key of an overlap, the keys it replaced, whose
    /// certificates may still be in flight), those the policy lists, and their successors
    /// announced by the rollovers the policy lists. `rng` draws the decoy certificate, and
    /// the publication key when the policy holds none.
    pub fn new(policy: Policy, keys: NodeKeys, rng: &mut impl CryptoRng) -> NodeCore {
        let mut trusted = TrustedAuthorities::new().with(keys.authority.public_key());
        for key in &policy.trusted_authorities {
            trusted.insert(*key);
        }
        for own in keys
            .rollovers
            .iter()
            .filter(|r| r.role == KeyRole::Authority)
        {
            trusted.insert(own.old);
            trusted.insert(own.new);
        }
        for followed in trusted.follow(KeyRole::Authority, &policy.authority_rollovers) {
            tracing::info!(rollover = %followed, "trusting an announced authority key");
        }
        let limits = ReportLimits {
            retention_days: policy.retention_days,
            ..ReportLimits::default()
        };
        let decoy_certificate = keys.authority.issue(
            &CertificateRequest {
                report_hmac: ReportHmac([0; 32]),
                test_type: ReportType::ConfirmedTest,
                symptom_onset: None,
            },
            UnixTime(0),
            u64::MAX / 2,
            rng,
        );
        let certificate_len = wire::encode(&decoy_certificate).len();
        let publication_key = policy
            .publication_key
            .clone()
            .unwrap_or_else(|| PublicationKey::generate(rng));
        NodeCore {
            token_keys: std::sync::RwLock::new(TokenKeyring::new(policy.audience)),
            cutter: BatchCutter::from_policy(&policy),
            publication_key,
            revision_tokens: RevisionTokens::new(&keys.pepper),
            policy,
            keys,
            trusted,
            limits,
            decoy_certificate,
            certificate_len,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The keys.
    pub fn keys(&self) -> &NodeKeys {
        &self.keys
    }

    /// The authority keys this node trusts: its own and the policy's.
    pub fn trusted(&self) -> &TrustedAuthorities {
        &self.trusted
    }

    /// The report rules uploads are checked against.
    pub fn limits(&self) -> &ReportLimits {
        &self.limits
    }

    /// The token keyring, read (a poisoned lock is recovered: the keyring is only ever
    /// replaced whole, never left half written).
    pub(crate) fn token_keys(&self) -> std::sync::RwLockReadGuard<'_, TokenKeyring> {
        self.token_keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The token epochs this node should hold at `now` and does not (today, tomorrow):
    /// the driver makes them off any request's path ([`TokenKeyring::generate_epoch`]).
    pub fn token_epochs_missing(&self, now: UnixTime) -> Vec<DayNumber> {
        self.token_keys().missing(now)
    }

    /// Installs an epoch's token keys, and forgets the epochs older than the retention
    /// period at `now` (their tokens can no longer be relayed).
    ///
    /// # Errors
    /// [`TokenError::DuplicateKey`] if `keys` names one class twice.
    pub fn install_token_epoch(
        &self,
        epoch: DayNumber,
        keys: Vec<TokenSigningKey>,
        now: UnixTime,
    ) -> Result<(), TokenError> {
        let mut ring = self
            .token_keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ring.insert_epoch(epoch, keys)?;
        ring.forget_before(self.oldest_token_epoch(now));
        Ok(())
    }

    /// The oldest epoch whose tokens may still arrive relayed at `now`.
    pub fn oldest_token_epoch(&self, now: UnixTime) -> DayNumber {
        now.day().minus(self.policy.retention_days)
    }

    /// `GET /v2/token-keys`: yesterday's, today's and tomorrow's token keys, signed with
    /// the authority key.
    pub fn token_key_set(&self, now: UnixTime) -> SignedTokenKeySet {
        self.token_keys().signed_set(&self.keys.authority, now)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    /// A core with the default policy and keys drawn from a fixed seed.
    pub(crate) fn core() -> NodeCore {
        core_with_seed(7)
    }

    /// A core with the default policy and keys drawn from `seed`: another authority.
    pub(crate) fn core_with_seed(seed: u64) -> NodeCore {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let keys = NodeKeys::generate(&mut rng);
        NodeCore::new(Policy::default(), keys, &mut rng)
    }
}
