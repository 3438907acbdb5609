//! A report uploaded with a blind token, and the certificate the first node makes for it.
//!
//! The phone uploads its report with the [`UploadToken`] it unblinded after its verify. The
//! node it uploads to verifies the token against its authority's key set and then certifies
//! the report in the authority's name, as `POST /v1/verify` used to at verify time, so that
//! the rest of the federation keeps one relay format ([`crate::upload::SignedUpload`]) and
//! checks it as before. Everything in that certificate follows from the upload itself:
//!
//! | field | value |
//! | --- | --- |
//! | `id` | the token's [`TokenId`](crate::token::TokenId): single use across the federation |
//! | `report_hmac` | the report HMAC under a key derived from the token ([`TokenUpload::hmac_key`]) |
//! | `test_type` | the token key's class |
//! | `symptom_onset` | none: a token states only the onset bucket, never a day |
//! | `issued_at` | the start of the token key's epoch (its day) |
//! | `expires_at` | the end of the last day the token may be uploaded on |
//!
//! So the certificate says nothing the token did not (the day and the class), a retried
//! upload is certified to the same bytes (and so answered as a replay), and its time is the
//! upload's, which the phone's random delay keeps apart from the verify's.

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthoritySigningKey, Certificate, CertificateId, ExpiryPolicy, ReportHmacKey};
use crate::error::UploadError;
use crate::report::{ReportContents, ReportLimits};
use crate::revision::{Binding, HmacBinding};
use crate::time::{DayNumber, UnixTime};
use crate::token::{
    Audience, TOKEN_UPLOAD_DAYS, TokenError, TokenKeys, TokenStatement, UploadToken,
};
use crate::upload::{SignedUpload, VerifiedUpload};

/// Domain label of the report HMAC key a token's certificate uses.
const HMAC_KEY_LABEL: &[u8] = b"ephemera/token-report-key/v2";

/// A report and the blind token that authorises it: the phone's version 2 upload after a
/// `POST /v2/verify` (`docs/PROTOCOL.md` §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUpload {
    /// The keys or tokens, exactly as committed to at verify.
    pub contents: ReportContents,
    /// The unblinded token.
    pub token: UploadToken,
}

impl TokenUpload {
    /// The certificate id this upload is certified under: its token's id.
    pub fn certificate_id(&self) -> CertificateId {
        CertificateId(self.token.id().0)
    }

    /// The report HMAC key of the certificate:
    /// `SHA-256("ephemera/token-report-key/v2" ‖ token key id ‖ token signature)`. It hides
    /// nothing (it travels with the report), it only makes the certificate deterministic.
    pub fn hmac_key(&self) -> ReportHmacKey {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(HMAC_KEY_LABEL);
        ctx.update(&self.token.key.0);
        ctx.update(&self.token.signature);
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        ReportHmacKey(key)
    }

    /// Verifies the token for this report bound to `binding` in `audience` at `now` (a
    /// phone's upload: within [`TOKEN_UPLOAD_DAYS`] of the key's epoch), then certifies the
    /// report with `authority`, the key that signed the token key set: the result verifies
    /// with [`SignedUpload::verify_bound`] like any version 2 upload.
    ///
    /// Single use of the token (its certificate id) is the caller's to enforce.
    ///
    /// # Errors
    /// [`UploadToken::verify`]'s errors: [`TokenError::UnknownKey`] for a key not among
    /// `keys` (another authority's or another day's), [`TokenError::Expired`],
    /// [`TokenError::BadSignature`].
    pub fn certify(
        self,
        keys: &TokenKeys,
        audience: &Audience,
        binding: HmacBinding,
        authority: &AuthoritySigningKey,
        now: UnixTime,
    ) -> Result<SignedUpload, TokenError> {
        let statement = TokenStatement {
            audience,
            contents: &self.contents,
            binding,
        };
        let key = self
            .token
            .verify(keys, &statement, now, ExpiryPolicy::FirstUpload)?;
        let epoch = key.public().epoch;
        let class = key.public().class;
        let hmac_key = self.hmac_key();
        let certificate = authority.sign_certificate(Certificate {
            // Both set by `sign_certificate`.
            version: 0,
            authority: authority.public_key().key_id(),
            id: self.certificate_id(),
            report_hmac: hmac_key.authenticate_bound(&self.contents, binding),
            test_type: class.test_type,
            symptom_onset: None,
            issued_at: epoch.start(),
            expires_at: last_upload_day(epoch).start(),
        });
        Ok(SignedUpload {
            contents: self.contents,
            certificate,
            hmac_key,
        })
    }
}

impl TokenUpload {
    /// What the first node runs: [`Self::certify`] under `binding`'s HMAC role, then the
    /// checks every upload passes ([`SignedUpload::verify_bound`]) but the certificate's own
    /// signature and HMAC, which were just made here.
    ///
    /// # Errors
    /// [`UploadError::Token`] for [`Self::certify`]'s refusals; the report checks'
    /// [`UploadError`]s.
    pub fn certify_checked(
        self,
        keys: &TokenKeys,
        audience: &Audience,
        binding: Binding,
        authority: &AuthoritySigningKey,
        now: UnixTime,
        limits: &ReportLimits,
    ) -> Result<VerifiedUpload, UploadError> {
        let certified = self.certify(keys, audience, binding.hmac(), authority, now)?;
        let certificate = certified.certificate.certificate.clone();
        certified.check_rules(certificate, binding, now, ExpiryPolicy::FirstUpload, limits)
    }
}

/// The day after the last day a token of `epoch` may be uploaded on.
fn last_upload_day(epoch: DayNumber) -> DayNumber {
    DayNumber(epoch.0.saturating_add(TOKEN_UPLOAD_DAYS + 1))
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::auth::TrustedAuthorities;
    use crate::pet::EncounterToken;
    use crate::report::{PublishedToken, ReportLimits, ReportType};
    use crate::revision::{Binding, RevisionSecret};
    use crate::token::tests::{CLASS, EPOCH, signing_key};
    use crate::token::{PendingToken, TokenSigningKey};

    fn upload(key: &TokenSigningKey, audience: &Audience, binding: HmacBinding) -> TokenUpload {
        let verifier = key.public().parse().unwrap();
        let contents = ReportContents::Pet(vec![PublishedToken {
            day: EPOCH,
            token: EncounterToken([4; 16]),
        }]);
        let statement = TokenStatement {
            audience,
            contents: &contents,
            binding,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (pending, blinded) =
            PendingToken::blind(&verifier, statement.commitment(EPOCH, CLASS), &mut rng).unwrap();
        let token = pending
            .finalize(&verifier, &key.blind_sign(&blinded, &mut rng).unwrap())
            .unwrap();
        TokenUpload { contents, token }
    }

    #[test]
    fn a_token_upload_is_certified_deterministically_with_only_its_day_and_class() {
        let key = signing_key();
        let mut keys = TokenKeys::default();
        keys.insert(key.public().parse().unwrap()).unwrap();
        let audience = Audience::named("north");
        let authority = AuthoritySigningKey::from_seed(&[5; 32]);
        let revision = RevisionSecret::from_seed(&[6; 32]).key();
        let binding = HmacBinding::Upload(revision);
        let tokened = upload(&key, &audience, binding);
        let noon = EPOCH.start().plus_seconds(43_200);
        let next_evening = EPOCH.start().plus_seconds(86_400 + 80_000);
        let a = tokened
            .clone()
            .certify(&keys, &audience, binding, &authority, noon)
            .unwrap();
        let b = tokened
            .clone()
            .certify(&keys, &audience, binding, &authority, next_evening)
            .unwrap();
        assert_eq!(a, b, "the upload time leaves no trace in the certificate");
        let certificate = &a.certificate.certificate;
        assert_eq!(certificate.id, tokened.certificate_id());
        assert_eq!(certificate.test_type, ReportType::ConfirmedTest);
        assert_eq!(certificate.symptom_onset, None);
        assert_eq!(certificate.issued_at, EPOCH.start());
        assert_eq!(
            certificate.expires_at,
            EPOCH.start().plus_seconds(2 * 86_400)
        );
        // Every node checks it as any version 2 upload.
        let trusted = TrustedAuthorities::new().with(authority.public_key());
        let verified = a
            .verify_bound(
                Binding::Upload(revision),
                &trusted,
                next_evening,
                ExpiryPolicy::FirstUpload,
                &ReportLimits::default(),
            )
            .unwrap();
        assert_eq!(verified.contents(), &tokened.contents);
        // The first node's path, which does not check the certificate it made, agrees.
        let checked = tokened
            .clone()
            .certify_checked(
                &keys,
                &audience,
                Binding::Upload(revision),
                &authority,
                next_evening,
                &ReportLimits::default(),
            )
            .unwrap();
        assert_eq!(checked, verified);
        // Another binding, audience or day: refused before anything is signed.
        let other = HmacBinding::Upload(RevisionSecret::from_seed(&[7; 32]).key());
        assert_eq!(
            tokened
                .clone()
                .certify(&keys, &audience, other, &authority, noon)
                .unwrap_err(),
            TokenError::BadSignature
        );
        assert_eq!(
            tokened
                .clone()
                .certify(&keys, &Audience::named("south"), binding, &authority, noon)
                .unwrap_err(),
            TokenError::BadSignature
        );
        let two_days_on = EPOCH.start().plus_seconds(2 * 86_400);
        assert!(matches!(
            tokened.certify(&keys, &audience, binding, &authority, two_days_on),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn a_token_revision_signature_holds_only_for_its_certificate_id() {
        let key = signing_key();
        let mut keys = TokenKeys::default();
        keys.insert(key.public().parse().unwrap()).unwrap();
        let audience = Audience::named("north");
        let authority = AuthoritySigningKey::from_seed(&[5; 32]);
        let secret = RevisionSecret::from_seed(&[6; 32]);
        let revises = CertificateId([9; 16]);
        let tokened = upload(&key, &audience, HmacBinding::Revision(secret.key()));
        let signature = secret.sign_token_revision(&revises, &tokened.certificate_id());
        let certified = tokened
            .certify(
                &keys,
                &audience,
                HmacBinding::Revision(secret.key()),
                &authority,
                EPOCH.start(),
            )
            .unwrap();
        let binding = Binding::TokenRevision {
            key: secret.key(),
            revises,
            signature,
        };
        assert!(binding.signature_holds(&certified.certificate));
        assert_eq!(binding.revises(), Some(revises));
        let stranger = Binding::TokenRevision {
            key: RevisionSecret::from_seed(&[1; 32]).key(),
            revises,
            signature,
        };
        assert!(!stranger.signature_holds(&certified.certificate));
        let elsewhere = Binding::TokenRevision {
            key: secret.key(),
            revises: CertificateId([8; 16]),
            signature,
        };
        assert!(!elsewhere.signature_holds(&certified.certificate));
    }
}
