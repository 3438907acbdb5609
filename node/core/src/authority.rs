//! The health authority's role (`docs/PROTOCOL.md` §4): one-time upload
//! codes for positive tests, and their exchange for a signed certificate over a report
//! HMAC. Codes are stored only as peppered hashes; a certificate names no one.
//!
//! Durability is the caller's: a redeemed code is gone from the store at once, but the
//! driver must flush before it hands out the certificate, so a crash cannot let one code
//! be used twice; issued codes likewise before they are shown.

use ephemera_proto::api::{VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{CertificateRequest, CodeHash, ReportHmac, UploadCode};
use ephemera_proto::report::ReportType;
use ephemera_proto::token::{
    BlindedMessage, TokenClass, TokenKeyId, TokenVerifyRequest, TokenVerifyResponse,
};
use ephemera_proto::{CodeError, DayNumber, UnixTime};
use rand_core::CryptoRng;
use thiserror::Error;

use crate::NodeCore;
use crate::store::{
    API_KEY_ID_LEN, CodeRecord, CodeReference, CodeState, CodeStatusRecord, StoreError, code_lookup,
};

/// Days before today a symptom onset may lie, beyond the retention period.
pub const ONSET_DAYS_BEFORE_RETENTION: u32 = 14;

/// What the authority refused, or why it could not answer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// An issue request asked for no code or more than the policy allows.
    #[error("between 1 and {max} codes may be issued at once, not {requested}")]
    CodeCountOutOfRange {
        /// Codes asked for.
        requested: u32,
        /// The policy's maximum.
        max: u32,
    },
    /// The symptom onset is after today or long before the retention period.
    #[error("the symptom onset must not be in the future or long past")]
    OnsetOutOfRange,
    /// The code is not well formed.
    #[error("malformed upload code: {0}")]
    MalformedCode(CodeError),
    /// The report HMAC is not 64 hex characters.
    #[error("report_hmac must be 64 hex characters")]
    MalformedHmac,
    /// The code is unknown, used or expired (deliberately not told apart).
    #[error("the upload code is unknown, already used or expired")]
    CodeUnknownOrExpired,
    /// A blind verify names keys that are not this node's keys of today, one per class
    /// (the phone fetched them before midnight, say): nothing is spent; fetch them again.
    #[error("the blinded messages are not for today's token keys")]
    StaleTokenKeys,
    /// The node holds no token key for today yet (it is making them).
    #[error("no token keys are ready yet")]
    TokenKeysNotReady,
    /// Storage failed.
    #[error("storage failure")]
    Store(#[from] StoreError),
}

impl AuthorityError {
    /// Whether the failure spends a guess of the code-guessing budget: a wrong, malformed
    /// or spent code does, a storage failure does not.
    pub fn is_failed_guess(&self) -> bool {
        matches!(
            self,
            AuthorityError::MalformedCode(_)
                | AuthorityError::MalformedHmac
                | AuthorityError::CodeUnknownOrExpired
        )
    }
}

/// What a case worker asks for: the report type and symptom onset the codes will certify.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CodeGrant {
    /// The report type of the certificates the codes will be exchanged for.
    pub test_type: ReportType,
    /// The symptom onset they will carry, if known.
    pub symptom_onset: Option<DayNumber>,
    /// The id of the API key that asks, if a lab's or hospital's system does: only that
    /// key may then look the codes up or revoke them.
    pub issued_by_key: Option<[u8; API_KEY_ID_LEN]>,
}

/// Codes just issued, to show once: the store holds only their hashes.
#[derive(Debug)]
pub struct IssuedCodes {
    /// The codes.
    pub codes: Vec<UploadCode>,
    /// Their references, in the same order (not secret).
    pub references: Vec<CodeReference>,
    /// When they stop working.
    pub expires_at: UnixTime,
}

impl NodeCore {
    /// Issues `count` codes for `grant`, storing only their peppered hashes, each with a
    /// fresh random reference (drawn apart from the code) filing its status.
    ///
    /// # Errors
    /// [`AuthorityError::CodeCountOutOfRange`], [`AuthorityError::OnsetOutOfRange`],
    /// [`AuthorityError::Store`].
    pub fn issue_codes(
        &self,
        store: &dyn crate::store::ReportStore,
        grant: CodeGrant,
        count: u32,
        now: UnixTime,
        rng: &mut impl CryptoRng,
    ) -> Result<IssuedCodes, AuthorityError> {
        let max = self.policy.max_codes_per_request;
        if count == 0 || count > max {
            return Err(AuthorityError::CodeCountOutOfRange {
                requested: count,
                max,
            });
        }
        if let Some(day) = grant.symptom_onset {
            let oldest = now
                .day()
                .minus(self.policy.retention_days + ONSET_DAYS_BEFORE_RETENTION);
            if day > now.day() || day < oldest {
                return Err(AuthorityError::OnsetOutOfRange);
            }
        }
        let expires_at = now.plus_seconds(self.policy.code_lifetime_seconds);
        let codes: Vec<UploadCode> = (0..count).map(|_| UploadCode::generate(rng)).collect();
        let mut references: Vec<CodeReference> = Vec::with_capacity(codes.len());
        while references.len() < codes.len() {
            // 60 random bits: a repeat is rare, but a reference must name one code.
            let reference = CodeReference::generate(rng);
            if !references.contains(&reference) && store.code_status(&reference)?.is_none() {
                references.push(reference);
            }
        }
        let mut hashes: Vec<(CodeHash, CodeRecord)> = Vec::with_capacity(codes.len());
        let mut statuses: Vec<(CodeReference, CodeStatusRecord)> = Vec::with_capacity(codes.len());
        for (code, reference) in codes.iter().zip(&references) {
            let hash = code.hash(&self.keys.pepper);
            statuses.push((
                *reference,
                CodeStatusRecord {
                    lookup: code_lookup(&hash),
                    test_type: grant.test_type,
                    issued: now.day(),
                    expires: expires_at.day(),
                    state: CodeState::Issued,
                    issued_by_key: grant.issued_by_key,
                },
            ));
            hashes.push((
                hash,
                CodeRecord {
                    test_type: grant.test_type,
                    symptom_onset: grant.symptom_onset,
                    expires_at,
                    reference: Some(*reference),
                },
            ));
        }
        // Statuses first: a code never exists without one (a crash in between leaves a
        // status whose code was never shown, and so whose reference was never seen).
        store.insert_code_statuses(&statuses)?;
        store.insert_codes(&hashes)?;
        Ok(IssuedCodes {
            codes,
            references,
            expires_at,
        })
    }

    /// `POST /v1/verify`: takes the code (single use) and certifies the report HMAC. A decoy
    /// request does the same work (a code lookup, a signature) and gets a random answer of
    /// the same length.
    ///
    /// # Errors
    /// [`AuthorityError::MalformedCode`], [`AuthorityError::MalformedHmac`],
    /// [`AuthorityError::CodeUnknownOrExpired`], [`AuthorityError::Store`].
    pub fn redeem_code(
        &self,
        store: &dyn crate::store::ReportStore,
        request: &VerifyRequest,
        now: UnixTime,
        rng: &mut impl CryptoRng,
    ) -> Result<VerifyResponse, AuthorityError> {
        if request.decoy {
            let mut unknown = [0u8; 32];
            rng.fill_bytes(&mut unknown);
            let _ = store.take_code(&CodeHash(unknown))?;
            let _ = self.certify(
                ReportType::ConfirmedTest,
                None,
                ReportHmac([0; 32]),
                now,
                rng,
            );
            return Ok(VerifyResponse::decoy(self.certificate_len, rng));
        }
        let code = UploadCode::parse(&request.code).map_err(AuthorityError::MalformedCode)?;
        let hmac = request.parsed_hmac().ok_or(AuthorityError::MalformedHmac)?;
        let record = store
            .take_code(&code.hash(&self.keys.pepper))?
            .filter(|r| r.expires_at > now)
            .ok_or(AuthorityError::CodeUnknownOrExpired)?;
        mark_used(store, &record, now)?;
        let certificate = self.certify(record.test_type, record.symptom_onset, hmac, now, rng);
        Ok(VerifyResponse::new(&certificate))
    }

    /// `POST /v2/verify` (`docs/PROTOCOL.md` §4.4): takes the code (single use) and signs,
    /// blindly, the phone's message for the code's class under today's key of that class.
    /// The request must hold one message for each of today's keys, each modulus-sized and
    /// below its modulus, before the code is spent, so a malformed request never costs a
    /// person their code. A decoy does the same work (a code lookup, a blind signature over
    /// one of its messages, or a random one) and gets random bytes of the same size.
    ///
    /// What the node learns is the code's class and the day; the blinded message is
    /// uniformly random to it, and nothing about the answer is stored.
    ///
    /// # Errors
    /// [`AuthorityError::MalformedCode`], [`AuthorityError::StaleTokenKeys`],
    /// [`AuthorityError::TokenKeysNotReady`], [`AuthorityError::CodeUnknownOrExpired`],
    /// [`AuthorityError::Store`].
    pub fn redeem_code_for_token(
        &self,
        store: &dyn crate::store::ReportStore,
        request: &TokenVerifyRequest,
        now: UnixTime,
        rng: &mut impl CryptoRng,
    ) -> Result<TokenVerifyResponse, AuthorityError> {
        let ring = self.token_keys();
        let today = now.day();
        let any_signer = ring
            .signer(today, TokenClass::ALL[0])
            .ok_or(AuthorityError::TokenKeysNotReady)?;
        let modulus_len = any_signer
            .public()
            .parse()
            .map(|key| key.modulus_len())
            .map_err(|_| AuthorityError::TokenKeysNotReady)?;
        if request.decoy {
            let mut unknown = [0u8; 32];
            rng.fill_bytes(&mut unknown);
            let _ = store.take_code(&CodeHash(unknown))?;
            let mut message = vec![0u8; modulus_len];
            rng.fill_bytes(&mut message);
            message[0] = 0;
            let _ = any_signer.blind_sign(&BlindedMessage(message), rng);
            return Ok(TokenVerifyResponse::decoy(modulus_len, rng));
        }
        let code = UploadCode::parse(&request.code).map_err(AuthorityError::MalformedCode)?;
        let entries = request
            .entries()
            .map_err(|_| AuthorityError::StaleTokenKeys)?;
        let verifiers = ring.verifiers();
        let mut messages: Vec<(TokenKeyId, BlindedMessage)> = Vec::with_capacity(entries.len());
        for class in TokenClass::ALL {
            let signer = ring
                .signer(today, class)
                .ok_or(AuthorityError::TokenKeysNotReady)?;
            let id = signer.public().id();
            let message = entries
                .iter()
                .find(|(key, _)| *key == id)
                .map(|(_, message)| message)
                .filter(|message| verifiers.get(&id).is_some_and(|key| key.fits(message)))
                .ok_or(AuthorityError::StaleTokenKeys)?;
            messages.push((id, message.clone()));
        }
        if entries.len() != messages.len() {
            return Err(AuthorityError::StaleTokenKeys);
        }
        let record = store
            .take_code(&code.hash(&self.keys.pepper))?
            .filter(|r| r.expires_at > now)
            .ok_or(AuthorityError::CodeUnknownOrExpired)?;
        mark_used(store, &record, now)?;
        // A grant's onset lies before today (checked at issue), and its type is one a code
        // grants, so its class exists; a record from a store written otherwise is refused
        // as an unknown code.
        let class = TokenClass::of(record.test_type, record.symptom_onset, today)
            .map_err(|_| AuthorityError::CodeUnknownOrExpired)?;
        let signer = ring
            .signer(today, class)
            .ok_or(AuthorityError::TokenKeysNotReady)?;
        let id = signer.public().id();
        let (_, message) = messages
            .iter()
            .find(|(key, _)| *key == id)
            .ok_or(AuthorityError::StaleTokenKeys)?;
        // Checked to fit above, so signing cannot fail on the message.
        let signature = signer
            .blind_sign(message, rng)
            .map_err(|_| AuthorityError::StaleTokenKeys)?;
        Ok(TokenVerifyResponse::new(id, &signature))
    }

    fn certify(
        &self,
        test_type: ReportType,
        symptom_onset: Option<DayNumber>,
        report_hmac: ReportHmac,
        now: UnixTime,
        rng: &mut impl CryptoRng,
    ) -> ephemera_proto::auth::SignedCertificate {
        self.keys.authority.issue(
            &CertificateRequest {
                report_hmac,
                test_type,
                symptom_onset,
            },
            now,
            self.policy.certificate_lifetime_seconds,
            rng,
        )
    }
}

/// Marks a just-taken code's status used today (a code from before references has none).
fn mark_used(
    store: &dyn crate::store::ReportStore,
    record: &CodeRecord,
    now: UnixTime,
) -> Result<(), StoreError> {
    match record.reference {
        Some(reference) => store.set_code_state(&reference, CodeState::Used(now.day())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::auth::ExpiryPolicy;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::store::MemoryReportStore;
    use crate::tests::core;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn request(code: &str) -> VerifyRequest {
        VerifyRequest {
            code: code.to_owned(),
            report_hmac: "ab".repeat(32),
            decoy: false,
            padding: String::new(),
        }
    }

    #[test]
    fn a_code_is_redeemed_once_and_certifies_its_grant() {
        let (core, mut rng) = (core(), ChaCha20Rng::seed_from_u64(1));
        let store = MemoryReportStore::new();
        let grant = CodeGrant {
            test_type: ReportType::ConfirmedClinicalDiagnosis,
            symptom_onset: Some(NOW.day().minus(2)),
            issued_by_key: None,
        };
        let issued = core.issue_codes(&store, grant, 1, NOW, &mut rng).unwrap();
        let code = issued.codes[0].reveal();
        let answer = core
            .redeem_code(&store, &request(&code), NOW, &mut rng)
            .unwrap();
        let certificate = answer.certificate().unwrap();
        let checked = certificate
            .verify(core.trusted(), NOW, ExpiryPolicy::FirstUpload)
            .unwrap();
        assert_eq!(checked.test_type, grant.test_type);
        assert_eq!(checked.symptom_onset, grant.symptom_onset);
        assert!(matches!(
            core.redeem_code(&store, &request(&code), NOW, &mut rng),
            Err(AuthorityError::CodeUnknownOrExpired)
        ));
    }

    #[test]
    fn expired_malformed_and_out_of_range_requests_say_what_is_wrong() {
        let (core, mut rng) = (core(), ChaCha20Rng::seed_from_u64(2));
        let store = MemoryReportStore::new();
        let grant = CodeGrant {
            test_type: ReportType::ConfirmedTest,
            symptom_onset: None,
            issued_by_key: None,
        };
        let issued = core.issue_codes(&store, grant, 1, NOW, &mut rng).unwrap();
        let late = issued.expires_at;
        let error = core
            .redeem_code(&store, &request(&issued.codes[0].reveal()), late, &mut rng)
            .unwrap_err();
        assert!(matches!(error, AuthorityError::CodeUnknownOrExpired));
        assert!(error.is_failed_guess());
        assert!(matches!(
            core.redeem_code(&store, &request("not a code"), NOW, &mut rng),
            Err(AuthorityError::MalformedCode(_))
        ));
        let max = core.policy().max_codes_per_request;
        assert!(matches!(
            core.issue_codes(&store, grant, max + 1, NOW, &mut rng),
            Err(AuthorityError::CodeCountOutOfRange { .. })
        ));
        let tomorrow = CodeGrant {
            symptom_onset: Some(NOW.day().plus(1)),
            ..grant
        };
        assert!(matches!(
            core.issue_codes(&store, tomorrow, 1, NOW, &mut rng),
            Err(AuthorityError::OnsetOutOfRange)
        ));
    }

    #[test]
    fn a_decoy_gets_an_answer_as_long_as_a_real_one_and_takes_no_code() {
        let (core, mut rng) = (core(), ChaCha20Rng::seed_from_u64(3));
        let store = MemoryReportStore::new();
        let grant = CodeGrant {
            test_type: ReportType::ConfirmedTest,
            symptom_onset: None,
            issued_by_key: None,
        };
        let issued = core.issue_codes(&store, grant, 1, NOW, &mut rng).unwrap();
        let mut decoy = request("");
        decoy.decoy = true;
        let fake = core.redeem_code(&store, &decoy, NOW, &mut rng).unwrap();
        let real = core
            .redeem_code(&store, &request(&issued.codes[0].reveal()), NOW, &mut rng)
            .unwrap();
        assert_eq!(fake.to_padded_json().len(), real.to_padded_json().len());
    }

    /// A core holding today's token keys.
    fn core_with_tokens(rng: &mut ChaCha20Rng) -> NodeCore {
        let core = core();
        let keys = crate::token_keys::TokenKeyring::generate_epoch(NOW.day(), rng).unwrap();
        core.install_token_epoch(NOW.day(), keys, NOW).unwrap();
        core
    }

    #[test]
    fn a_code_buys_one_blind_signature_of_its_class_and_a_stale_request_spends_nothing() {
        use ephemera_proto::pet::EncounterToken;
        use ephemera_proto::revision::HmacBinding;
        use ephemera_proto::token::{TokenExchange, TokenStatement};
        use ephemera_proto::{PublishedToken, ReportContents};

        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let core = core_with_tokens(&mut rng);
        let store = MemoryReportStore::new();
        let grant = CodeGrant {
            test_type: ReportType::ConfirmedClinicalDiagnosis,
            symptom_onset: Some(NOW.day().minus(9)),
            issued_by_key: None,
        };
        let code = core
            .issue_codes(&store, grant, 1, NOW, &mut rng)
            .unwrap()
            .codes
            .remove(0);
        let set = core.token_key_set(NOW);
        let keys = set.verify(core.trusted(), &core.policy().audience).unwrap();
        let contents = ReportContents::Pet(vec![PublishedToken {
            day: NOW.day(),
            token: EncounterToken([8; 16]),
        }]);
        let statement = TokenStatement {
            audience: &core.policy().audience,
            contents: &contents,
            binding: HmacBinding::Unbound,
        };
        // Yesterday's keys (none held): refused before the code is looked at.
        let yesterday = keys.clone();
        assert!(
            TokenExchange::prepare(&yesterday, NOW.day().minus(1), &statement, &code, &mut rng)
                .is_err()
        );
        let (exchange, mut request) =
            TokenExchange::prepare(&keys, NOW.day(), &statement, &code, &mut rng).unwrap();
        let dropped = request.blinded.pop().unwrap();
        assert!(matches!(
            core.redeem_code_for_token(&store, &request, NOW, &mut rng),
            Err(AuthorityError::StaleTokenKeys)
        ));
        request.blinded.push(dropped);
        let answer = core
            .redeem_code_for_token(&store, &request, NOW, &mut rng)
            .unwrap();
        let token = exchange.finish(&keys, &answer).unwrap();
        let key = token
            .verify(&keys, &statement, NOW, ExpiryPolicy::FirstUpload)
            .unwrap();
        assert_eq!(
            key.public().class,
            TokenClass {
                test_type: ReportType::ConfirmedClinicalDiagnosis,
                onset: ephemera_proto::token::OnsetClass::Earlier,
            }
        );
        assert!(matches!(
            core.redeem_code_for_token(&store, &request, NOW, &mut rng),
            Err(AuthorityError::CodeUnknownOrExpired)
        ));
        // A decoy answer is as long as a real one; without keys the node says so.
        let decoy = TokenVerifyRequest::decoy(10, 256, &mut rng);
        let fake = core
            .redeem_code_for_token(&store, &decoy, NOW, &mut rng)
            .unwrap();
        assert_eq!(fake.to_padded_json().len(), answer.to_padded_json().len());
        assert!(matches!(
            crate::tests::core().redeem_code_for_token(&store, &request, NOW, &mut rng),
            Err(AuthorityError::TokenKeysNotReady)
        ));
    }
}
