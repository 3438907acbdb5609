//! JSON bodies of the case-worker and information endpoints (the phone-facing bodies are
//! `ephemera_proto::api`'s).

use std::fmt;

use ephemera_proto::report::ReportType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/session`: a staff account signs in. Unknown fields are refused.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Account name, 1 to 64 characters.
    pub name: String,
    /// Password, 1 to 256 characters.
    pub password: String,
    /// The current TOTP code (six digits), for an account with a second factor.
    #[serde(default)]
    pub totp: Option<String>,
    /// One of the account's recovery codes instead of `totp` (each works once).
    #[serde(default)]
    pub recovery_code: Option<String>,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest").finish_non_exhaustive()
    }
}

/// The answer to a sign-in: a bearer token for `Authorization: Bearer <token>`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The session's bearer token.
    pub token: String,
    /// When the session ends at the latest (its absolute lifetime), unix seconds; it ends
    /// earlier when unused for `[authority] session_idle_seconds`.
    pub expires_at: u64,
    /// The account signed in.
    #[serde(default)]
    pub account: String,
    /// Its roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether the session may do nothing but set a new password
    /// (`POST /v1/session/password`) until it does.
    #[serde(default)]
    pub password_change_required: bool,
    /// Whether the session may do nothing but enrol a TOTP second factor
    /// (`[authority] require_totp`) until it does.
    #[serde(default)]
    pub totp_enrolment_required: bool,
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/session/password`: the signed-in account sets a new password. Unknown fields
/// are refused.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    /// The password the session signed in with, 1 to 256 characters.
    pub current_password: String,
    /// The new one: 12 to 256 characters, not a common password, not containing the
    /// account's name.
    pub new_password: String,
}

impl fmt::Debug for PasswordChangeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChangeRequest")
            .finish_non_exhaustive()
    }
}

/// `GET /v1/session`: who the session is.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    /// The account.
    pub account: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// Whether it has a TOTP second factor.
    pub totp: bool,
    /// See [`LoginResponse::password_change_required`].
    pub password_change_required: bool,
    /// See [`LoginResponse::totp_enrolment_required`].
    pub totp_enrolment_required: bool,
    /// When the session ends at the latest, unix seconds.
    pub expires_at: u64,
}

/// `POST /v1/session/cookie` and `GET /v1/session/csrf`: who the console's cookie session
/// is, and the CSRF token to send as `X-CSRF-Token` with every request it makes. The
/// session's token itself is only in the HttpOnly cookie.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsoleSession {
    /// Who the session is.
    #[serde(flatten)]
    pub session: SessionInfo,
    /// The session's CSRF token, 64 hex characters.
    pub csrf_token: String,
}

impl fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/accounts`: an admin creates an account. Unknown fields are refused.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    /// 1 to 64 letters, digits, `.`, `_`, `-` or `@`, starting with a letter or digit.
    pub name: String,
    /// One or more of `admin`, `case-worker`, `bulk-issuer`, `auditor`, none above the
    /// admin's own.
    pub roles: Vec<String>,
}

/// `POST /v1/api-keys`: an admin creates an API key for a lab or hospital system. Unknown
/// fields are refused.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// Its name, as an account name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
    pub name: String,
    /// The test types it may issue codes for; absent or empty: any.
    #[serde(default)]
    pub test_types: Vec<TestType>,
}

/// A new API key, shown once: the node keeps only the SHA-256 of its secret. Send it as
/// `Authorization: Bearer <key>` to `POST /v1/codes`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// Its public id (16 hex digits), for listing and revoking.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The key, `ephk_<id>_<64 hex digits>`.
    pub key: String,
    /// The test types it may issue codes for; empty: any.
    pub test_types: Vec<TestType>,
}

impl fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for CreatedApiKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// `POST /v1/accounts/{name}/roles`: an admin sets an account's roles. Unknown fields are
/// refused.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesRequest {
    /// One or more of `admin`, `case-worker`, `bulk-issuer`, `auditor`; every role added or
    /// taken away must be one the admin holds.
    pub roles: Vec<String>,
}

/// A one-time password for an account (created or reset), shown once: its first sign-in
/// must replace it.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct OneTimePassword {
    /// The account.
    pub name: String,
    /// The password, 24 characters.
    pub password: String,
}

impl fmt::Debug for OneTimePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimePassword")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/session/totp`: a TOTP secret being enrolled, shown once. It takes effect when
/// `POST /v1/session/totp/confirm` gets a code from it.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TotpEnrolment {
    /// The secret, base32 (160 bits).
    pub secret: String,
    /// The same as an `otpauth://totp/...` URI (SHA-1, 6 digits, 30 seconds).
    pub uri: String,
}

impl fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrolment").finish_non_exhaustive()
    }
}

/// `POST /v1/session/totp/confirm`: a code from the secret being enrolled. Unknown fields
/// are refused.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmRequest {
    /// Six digits.
    pub code: String,
}

impl fmt::Debug for TotpConfirmRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpConfirmRequest").finish_non_exhaustive()
    }
}

/// Recovery codes, shown once; each signs in once in place of a TOTP code. A new set
/// replaces the old one.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten codes, `XXXX-XXXX-XXXX-XXXX`.
    pub codes: Vec<String>,
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes").finish_non_exhaustive()
    }
}

/// What a code certifies, as a case worker picks it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TestType {
    /// A laboratory test confirmed the infection (GAEN `CONFIRMED_TEST`).
    Confirmed,
    /// A clinician diagnosed it without a test (GAEN `CONFIRMED_CLINICAL_DIAGNOSIS`).
    Likely,
    /// A later test was negative: only for revising a `likely` upload (GAEN `REVOKED`).
    Negative,
}

impl TestType {
    /// The report type certificates carry.
    pub fn report_type(self) -> ReportType {
        match self {
            TestType::Confirmed => ReportType::ConfirmedTest,
            TestType::Likely => ReportType::ConfirmedClinicalDiagnosis,
            TestType::Negative => ReportType::Revoked,
        }
    }

    /// The test type named `name` (`confirmed`, `likely`, `negative`), if one is.
    pub fn parse(name: &str) -> Option<TestType> {
        [TestType::Confirmed, TestType::Likely, TestType::Negative]
            .into_iter()
            .find(|t| t.as_str() == name)
    }

    /// The test type of certificates of `report_type`, if codes grant it.
    pub fn of(report_type: ReportType) -> Option<TestType> {
        [TestType::Confirmed, TestType::Likely, TestType::Negative]
            .into_iter()
            .find(|t| t.report_type() == report_type)
    }

    /// The name used in JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            TestType::Confirmed => "confirmed",
            TestType::Likely => "likely",
            TestType::Negative => "negative",
        }
    }
}

/// `POST /v1/codes`: issue one or more upload codes. Unknown fields are refused.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueCodesRequest {
    /// The test type the codes certify.
    pub test_type: TestType,
    /// Symptom onset, `YYYY-MM-DD`, if known.
    #[serde(default)]
    pub symptom_onset: Option<String>,
    /// How many codes (default 1), at most `[authority] max_codes_per_request`.
    #[serde(default, deserialize_with = "whole_number")]
    pub count: Option<u32>,
}

/// An optional whole number as JSON Schema counts one: `3` and `3.0` alike (the document
/// says `integer`, which admits both). Anything else, or one past `u32::MAX`, is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = match number.as_u64() {
        Some(n) => Some(n),
        // Exact: below 2^53 every whole f64 converts without loss, and larger ones are
        // out of range anyway.
        None => number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
            .map(|f| f as u64),
    };
    whole
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom("expected a whole number from 0 to 4294967295"))
}

/// One issued code: shown once, never stored in clear.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedCode {
    /// The code, `XXXX-XXXX-XXXX-XXXX`.
    pub code: String,
    /// When it stops working, unix seconds.
    pub expires_at: u64,
    /// The same, RFC 3339 UTC.
    pub expires_at_utc: String,
    /// Its reference: 12 characters, not secret, to note in the case worker's own system
    /// and to look up or revoke the code by (`GET /v1/codes/{reference}`).
    pub reference: String,
}

impl fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCode")
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("reference", &self.reference)
            .finish()
    }
}

/// The header line of issued codes as CSV.
pub const CODES_CSV_HEADER: &str =
    "code,expires_at,expires_at_utc,test_type,symptom_onset,reference";

/// `GET /v1/codes/{reference}` and its revoke: where one issued code stands. No personal
/// data, no code, and days only.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CodeStatusInfo {
    /// The reference.
    pub reference: String,
    /// The test type the code certifies.
    pub test_type: TestType,
    /// `issued`, `used`, `expired` or `revoked`.
    pub status: String,
    /// The day it was issued, `YYYY-MM-DD` (UTC).
    pub issued: String,
    /// The day it stops (or stopped) working, `YYYY-MM-DD` (UTC).
    pub expires: String,
    /// The day of the change to `status` (used, expired, revoked), `YYYY-MM-DD`; absent
    /// while issued.
    pub changed: Option<String>,
}

/// The answer to [`IssueCodesRequest`] (as JSON; `Accept: text/csv` gives CSV).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct IssueCodesResponse {
    /// The test type.
    pub test_type: TestType,
    /// Symptom onset, `YYYY-MM-DD`.
    pub symptom_onset: Option<String>,
    /// The codes.
    pub codes: Vec<IssuedCode>,
}

impl IssueCodesResponse {
    /// The CSV form: a header line, then
    /// `code,expires_at,expires_at_utc,test_type,symptom_onset,reference` (the reference
    /// last, so readers of the five columns before it read on as they did).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CODES_CSV_HEADER);
        out.push('\n');
        for code in &self.codes {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                code.code,
                code.expires_at,
                code.expires_at_utc,
                self.test_type.as_str(),
                self.symptom_onset.as_deref().unwrap_or(""),
                code.reference
            ));
        }
        out
    }
}

/// `GET /v1/authority`: the public keys phones and other nodes configure.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthorityInfo {
    /// Ed25519 key that signs certificates (hex).
    pub authority_public_key: String,
    /// Its 8-byte key id (hex), as in certificates.
    pub authority_key_id: String,
    /// Ed25519 key that signs batches (hex).
    pub batch_public_key: String,
    /// Its key id (hex), as in batch frames.
    pub batch_key_id: String,
    /// ECDSA P-256 key that signs GAEN export files (PEM SubjectPublicKeyInfo).
    pub export_public_key_pem: String,
    /// Every authority key (hex) whose certificates this node accepts.
    pub trusted_authorities: Vec<String>,
    /// Schemes accepted in uploads.
    pub accepted_schemes: Vec<String>,
    /// Seconds between batch boundaries.
    pub batch_period_seconds: u64,
    /// Days of retention.
    pub retention_days: u32,
}

/// `GET /healthz`: liveness (any answer), and readiness to take new uploads.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// "ok": the process answers (liveness).
    pub status: String,
    /// Whether the node takes new uploads and verifies now (readiness). Batches, exports
    /// and the console are served either way.
    pub ready: bool,
    /// Why it does not, when `ready` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<NotReady>,
    /// The node's build version (`ephemera-node` crate version).
    pub version: String,
    /// The storage format this build reads and writes (`store::STORE_FORMAT`).
    pub storage_format: u32,
}

/// Why a node is not ready for new uploads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NotReady {
    /// Free disk is below `[storage] free_space_reserve_mb`: uploads and verifies get 503
    /// `insufficient-storage` until space is freed.
    DiskReserve,
}

impl TestType {
    /// The test type a report type came from, if a case worker can issue it.
    pub fn from_report_type(t: ephemera_proto::report::ReportType) -> Option<TestType> {
        match t {
            ephemera_proto::report::ReportType::ConfirmedTest => Some(TestType::Confirmed),
            ephemera_proto::report::ReportType::ConfirmedClinicalDiagnosis => {
                Some(TestType::Likely)
            }
            ephemera_proto::report::ReportType::Revoked => Some(TestType::Negative),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_whole_numbers_in_either_spelling() {
        let count = |json: &str| {
            serde_json::from_str::<IssueCodesRequest>(&format!(
                r#"{{"test_type":"confirmed","count":{json}}}"#
            ))
            .map(|r| r.count)
        };
        assert_eq!(count("3").unwrap(), Some(3));
        assert_eq!(count("3.0").unwrap(), Some(3));
        assert_eq!(count("4294967295").unwrap(), Some(u32::MAX));
        assert_eq!(count("null").unwrap(), None);
        for bad in ["3.5", "-1", "4294967296", "1e300", "\"3\"", "true"] {
            assert!(count(bad).is_err(), "{bad}");
        }
        let absent: IssueCodesRequest = serde_json::from_str(r#"{"test_type":"likely"}"#).unwrap();
        assert_eq!(absent.count, None);
        assert!(
            serde_json::from_str::<IssueCodesRequest>(r#"{"test_type":"likely","extra":1}"#)
                .is_err(),
            "unknown fields are refused"
        );
    }

    proptest::proptest! {
        /// Any bytes sent as an account body parse or are refused, never a panic, and the
        /// bodies that hold secrets never show them in `Debug`.
        #[test]
        fn any_account_body_parses_or_fails_cleanly(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            secret in "[0-9]{8,16}",
        ) {
            let _ = serde_json::from_slice::<LoginRequest>(&bytes);
            let _ = serde_json::from_slice::<PasswordChangeRequest>(&bytes);
            let _ = serde_json::from_slice::<CreateAccountRequest>(&bytes);
            let _ = serde_json::from_slice::<RolesRequest>(&bytes);
            let _ = serde_json::from_slice::<TotpConfirmRequest>(&bytes);
            let _ = serde_json::from_slice::<CreateApiKeyRequest>(&bytes);
            let change: PasswordChangeRequest = serde_json::from_value(
                serde_json::json!({"current_password": secret, "new_password": secret}),
            )
            .unwrap();
            let login: LoginRequest = serde_json::from_value(
                serde_json::json!({"name": "a", "password": secret, "totp": secret}),
            )
            .unwrap();
            let confirm: TotpConfirmRequest =
                serde_json::from_value(serde_json::json!({"code": secret})).unwrap();
            let created = CreatedApiKey {
                id: "00".into(),
                name: "lab".into(),
                key: format!("ephk_00_{secret}"),
                test_types: Vec::new(),
            };
            let shown = format!("{change:?} {login:?} {confirm:?} {created:?}");
            proptest::prop_assert!(!shown.contains(&secret), "{}", shown);
        }
    }
}

/// What became of an order handed to `POST /v1/sunset`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SunsetOffer {
    /// Whether this order is now the one held (else the held one stops this node no later).
    pub adopted: bool,
    /// The held order's id (hex), as deletion receipts name it.
    pub held_order: String,
    /// When the held order takes effect, unix seconds.
    pub effective_at: u64,
}

/// `POST /v1/venues`: a case worker or an admin makes a venue's codes. Unknown fields are
/// refused. The node keeps none of it.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVenueRequest {
    /// What phones show for the venue (its name, "Café Nord, terrace"): at most 100 bytes
    /// of UTF-8.
    pub description: String,
    /// Its address, as phones show it: at most 100 bytes of UTF-8; may be empty.
    #[serde(default)]
    pub address: String,
    /// The first day its codes are valid, `YYYY-MM-DD` (UTC); absent: today.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// The last day its codes are valid, `YYYY-MM-DD` (UTC), not before `valid_from`;
    /// absent: a year after `valid_from`.
    #[serde(default)]
    pub valid_until: Option<String>,
}

impl fmt::Debug for CreateVenueRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateVenueRequest").finish_non_exhaustive()
    }
}

/// A venue's codes, shown once: print the QR code, give the venue its trace code to keep
/// offline. The node keeps none of it.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedVenue {
    /// The entry QR code as a standalone SVG document, to print.
    pub qr_svg: String,
    /// The QR code's text, `ephemera-venue:` + unpadded base64url (what phones scan).
    pub qr_text: String,
    /// The venue's trace code, `ephemera-trace:` + unpadded base64url: a secret the venue
    /// keeps offline and hands to the health authority only when it asks after a case.
    pub trace_code: String,
    /// The first day the codes are valid, `YYYY-MM-DD` (UTC).
    pub valid_from: String,
    /// The last day the codes are valid, `YYYY-MM-DD` (UTC).
    pub valid_until: String,
    /// The printable instructions for the venue (plain text).
    pub instructions: String,
}

impl fmt::Debug for CreatedVenue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedVenue")
            .field("valid_from", &self.valid_from)
            .field("valid_until", &self.valid_until)
            .finish_non_exhaustive()
    }
}

impl Drop for CreatedVenue {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.trace_code);
    }
}
