//! The OpenAPI document: the node's HTTP contract.
//!
//! utoipa builds the paths and body schemas from the handlers' annotations; then
//! [`document`] writes in what the annotations cannot say, from the same definitions the
//! handlers enforce ([`super::contract`], the node's config):
//!
//! - the constraints of parameters and bodies (patterns, lengths, minimum and maximum,
//!   `additionalProperties: false`), the size limit of every body;
//! - every error status each operation can answer, with the `{"error", "message"}` schema
//!   narrowed to the list of its codes ([`errors_of`]), including the answers given before
//!   any handler runs (`crate::server`: 400 on a malformed head, 408, 413, 414, 431, 503);
//! - the headers of answers (`WWW-Authenticate` on 401, `Retry-After` on 503, the
//!   validators of immutable bodies).
//!
//! Nothing is left to a `default` response: a status missing here is a contract failure.
//!
//! The phone-facing bodies are defined in `ephemera_proto` (which does not depend on
//! utoipa); the `*Doc` structs here describe their JSON shapes for the document only.

#![allow(dead_code)]

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{contract, types};
use crate::config::NodeConfig;

/// `proto::api::VerifyRequest`.
#[derive(Serialize, ToSchema)]
#[schema(as = VerifyRequest)]
pub(crate) struct VerifyRequestDoc {
    /// The upload code as typed (dashes, spaces and case ignored).
    code: String,
    /// HMAC-SHA256 of the report, 64 hex characters.
    report_hmac: String,
    /// True for a decoy: answered with random bytes and forgotten.
    decoy: bool,
    /// Spaces up to 512 bytes.
    padding: String,
}

/// `proto::sealed::SealingKeyAnnouncement`.
#[derive(Serialize, ToSchema)]
#[schema(as = SealingKeyAnnouncement)]
pub(crate) struct SealingKeyDoc {
    /// The X25519 key phones seal to, 64 hex characters.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    public_key: String,
    /// The batch key that signed it, 64 hex characters.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    signer: String,
    /// Ed25519 over `ephemera/sealing-key/v1` ‖ key, 128 hex characters.
    #[schema(pattern = "^[0-9a-f]{128}$")]
    signature: String,
}

/// `proto::venue::VenueKeyAnnouncement`.
#[derive(Serialize, ToSchema)]
#[schema(as = VenueKeyAnnouncement)]
pub(crate) struct VenueKeyDoc {
    /// The authority's venue key (X25519, HPKE) venues seal its share to, 64 hex characters.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    public_key: String,
    /// The authority key that signed it (as `GET /v1/authority` gives it), 64 hex characters.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    authority: String,
    /// Ed25519 over `ephemera/venue-key-announcement/v1` ‖ key, 128 hex characters.
    #[schema(pattern = "^[0-9a-f]{128}$")]
    signature: String,
}

/// `proto::api::VerifyResponse`.
#[derive(Serialize, ToSchema)]
#[schema(as = VerifyResponse)]
pub(crate) struct VerifyResponseDoc {
    /// Hex of the certificate's wire frame (kind 0x01).
    certificate: String,
    /// Spaces up to 1024 bytes.
    padding: String,
}

/// `proto::api::UploadResponse`.
#[derive(Serialize, ToSchema)]
#[schema(as = UploadResponse)]
pub(crate) struct UploadResponseDoc {
    /// Hex of the opaque token that lets a version 1 phone revise this upload; empty for
    /// protocol version 2 (revisions are signed with the phone's revision key).
    revision_token: String,
    /// Spaces up to 512 bytes.
    padding: String,
}

/// `proto::api::ErrorBody`.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorBody)]
pub(crate) struct ErrorBodyDoc {
    /// Stable kebab-case code, e.g. `certificate-expired`; each response lists its codes.
    error: String,
    /// A sentence for people.
    message: String,
}

/// `proto::batch::BatchIndexEntry`.
#[derive(Serialize, ToSchema)]
#[schema(as = BatchIndexEntry)]
pub(crate) struct BatchIndexEntryDoc {
    /// Content id, 64 hex characters.
    id: String,
    /// Publication sequence number.
    sequence: u64,
    /// Cut time (the batch boundary), unix seconds.
    created_at: u64,
    /// Size in bytes.
    size: u64,
    /// Diagnosis keys, decoys included.
    keys: u32,
    /// Tokens, decoys included.
    tokens: u32,
}

/// `proto::batch::BatchIndex`.
#[derive(Serialize, ToSchema)]
#[schema(as = BatchIndex)]
pub(crate) struct BatchIndexDoc {
    /// Batches after the cursor, oldest first.
    batches: Vec<BatchIndexEntryDoc>,
    /// Pass as `after` for the next page.
    next_cursor: u64,
    /// Batch-key rollovers this node announced (hex `KeyRollover` frames, wire kind 0x09;
    /// docs/PROTOCOL.md §6.1): phones follow one signed under a key they trust. Absent when
    /// there is none.
    key_rollovers: Option<Vec<String>>,
    /// The node's signed batch-log head (hex `SignedHead` frame, wire kind 0x0d, protocol
    /// version 2; docs/PROTOCOL.md §6.2), signed before the page was read.
    head: Option<String>,
    /// Whether `/v1/batches/{id}/filter` serves the token filter of each listed version 2
    /// batch with tokens (publication version 3; docs/PROTOCOL.md §6.5). Absent: false.
    token_filters: Option<bool>,
    /// The sunset order the node holds (hex `SignedSunsetOrder` frame, wire kind 0x11;
    /// docs/PROTOCOL.md §11): a phone that verifies it against its app's committee erases
    /// everything and stops at its effective time. Absent while there is none.
    sunset: Option<String>,
}

/// `proto::venue::ReleaseIndexEntry`.
#[derive(Serialize, ToSchema)]
#[schema(as = ReleaseIndexEntry)]
pub(crate) struct ReleaseIndexEntryDoc {
    /// Content id, 64 hex characters: SHA-256 of the release's frame.
    id: String,
    /// Its place in this node's order of arrival.
    sequence: u64,
    /// Size in bytes.
    size: u64,
}

/// `proto::venue::ReleaseIndex`.
#[derive(Serialize, ToSchema)]
#[schema(as = ReleaseIndex)]
pub(crate) struct ReleaseIndexDoc {
    /// Venue releases after the cursor, oldest first.
    releases: Vec<ReleaseIndexEntryDoc>,
    /// Pass as `after` for the next page.
    next_cursor: u64,
}

/// What became of an order handed to `POST /v1/sunset`.
#[derive(Serialize, ToSchema)]
#[schema(as = SunsetOffer)]
pub(crate) struct SunsetOfferDoc {
    /// Whether this order is now the one held (else the held one stops this node no later).
    adopted: bool,
    /// The held order's id (hex), as deletion receipts name it.
    held_order: String,
    /// When the held order takes effect, unix seconds.
    effective_at: u64,
}

/// `proto::batch_log::HeadList`: a node's own signed head and the latest it heard of each
/// other node.
#[derive(Serialize, ToSchema)]
#[schema(as = HeadList)]
pub(crate) struct HeadListDoc {
    /// Hex `SignedHead` frames (wire kind 0x0d), this node's first.
    heads: Vec<String>,
}

/// `proto::batch_log::HeadEvidence`: two signed heads of one node key that contradict
/// each other.
#[derive(Serialize, ToSchema)]
#[schema(as = HeadEvidence)]
pub(crate) struct HeadConflictDoc {
    /// `equivocation` or `rollback`.
    conflict: String,
    /// The head held first (hex `SignedHead` frame).
    first: String,
    /// The head that contradicts it (hex `SignedHead` frame).
    second: String,
}

/// Every conflict found, oldest first.
#[derive(Serialize, ToSchema)]
#[schema(as = HeadConflicts)]
pub(crate) struct HeadConflictsDoc(Vec<HeadConflictDoc>);

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The console's session cookie: every operation that takes "bearer" takes it too,
        // with the session's CSRF token in `X-CSRF-Token` (answers `csrf-missing`,
        // `csrf-invalid`, `csrf-session-mismatch` 403 and `session-ended` 401 otherwise).
        components.add_security_scheme(
            "console",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::caller::SESSION_COOKIE,
                "The console's session (POST /v1/session/cookie). Every request it authenticates but GET /v1/session/csrf also sends the session's CSRF token as `X-CSRF-Token`.",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Ephemera node", description = "Privacy-preserving contact tracing: authority, uploads, signed batches. This document is the contract: the node accepts what it describes and refuses the rest. Every error is `{\"error\", \"message\"}` JSON, and each error response lists its codes."),
    paths(
        super::healthz, super::metrics, super::openapi, super::authority, super::export_key,
        super::sealing_key, super::token_keys, super::verify, super::token_verify, super::upload,
        super::batch_index,
        super::batch, super::batch_filter, super::heads, super::head_conflicts,
        super::sunset::sunset_order, super::sunset::offer_sunset, super::sunset::receipt,
        super::venue_releases::trace_venue, super::venue_releases::release_index,
        super::venue_releases::release,
        super::export_index, super::export_file,
        super::login, super::cookie_login, super::console_session, super::logout, super::issue_codes,
        super::session_info, super::logout_everywhere, super::change_password,
        super::begin_totp, super::confirm_totp, super::recovery_codes,
        super::list_accounts, super::create_account, super::disable_account,
        super::enable_account, super::set_roles, super::reset_password,
        super::code_status, super::revoke_code,
        super::list_api_keys, super::create_api_key, super::revoke_api_key,
        super::audit_export, super::stats::stats, super::stats::chart,
        super::venues::venue_key, super::venues::create_venue,
        super::page::root, super::page::case_worker, super::page::page, super::page::script, super::page::style,
    ),
    components(schemas(
        VerifyRequestDoc, VerifyResponseDoc, UploadResponseDoc, SealingKeyDoc, VenueKeyDoc, ErrorBodyDoc, BatchIndexEntryDoc,
        BatchIndexDoc, SunsetOfferDoc, HeadListDoc, HeadConflictDoc, HeadConflictsDoc, types::LoginRequest, types::LoginResponse, types::TestType,
        types::IssueCodesRequest, types::IssuedCode, types::IssueCodesResponse,
        types::CodeStatusInfo, types::CreateApiKeyRequest, types::CreatedApiKey,
        types::CreateVenueRequest, types::CreatedVenue,
        crate::accounts::api_key::ApiKeySummary, crate::node::AuditExport,
        crate::audit_export::AuditRow, crate::node::StatsReport, crate::node::StatsRow,
        types::AuthorityInfo, types::Health, types::NotReady,
        types::SessionInfo, types::ConsoleSession, types::PasswordChangeRequest, types::CreateAccountRequest,
        types::RolesRequest, types::OneTimePassword, types::TotpEnrolment,
        types::TotpConfirmRequest, types::RecoveryCodes,
        crate::accounts::directory::AccountSummary,
        ReleaseIndexEntryDoc, ReleaseIndexDoc, super::venue_releases::VenueTraceRequest,
        super::venue_releases::VenueTraceResponse,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The answers any operation may give before its handler runs (`crate::server`): a head
/// hyper could not parse, an oversize or late body, a cap reached, the deadline passed.
const PRE_HANDLER: &[(u16, &[&str])] = &[
    (400, &["malformed-request", "unreadable-body"]),
    (408, &["body-timeout"]),
    (413, &["payload-too-large"]),
    (414, &["uri-too-long"]),
    (431, &["headers-too-large"]),
    (503, &["overloaded", "deadline-exceeded"]),
];

/// The codes of an upload's refusal with 400 (`error::intake_code`).
const UPLOAD_400: &[&str] = &[
    "unreadable-sealed-body",
    "unknown-sealing-key",
    "malformed-body",
    "unsupported-version",
    "certificate-expired",
    "certificate-not-yet-valid",
    "hmac-mismatch",
    "report-type-mismatch",
    "report-empty",
    "too-many-keys",
    "too-many-tokens",
    "bad-rolling-period",
    "key-in-future",
    "entry-too-old",
    "token-in-future",
    "duplicate-entry",
    "bad-days-since-onset",
    "wrong-scheme",
    "report-invalid",
    "scheme-not-accepted",
    "report-type-not-allowed",
    "invalid-revision-token",
    "invalid-revision-signature",
    "revision-not-allowed",
    "revision-mismatch",
    "revision-authority-mismatch",
    "token-expired",
];

/// The error statuses and codes an operation answers from its handler (beyond
/// [`PRE_HANDLER`], merged in by status).
pub(crate) fn errors_of(method: &str, path: &str) -> Vec<(u16, &'static [&'static str])> {
    const STORAGE: &[&str] = &["storage-error", "internal-error"];
    // A session that must set a password or enrol TOTP first, or lacks the role.
    const RESTRICTED: &[&str] = &[
        "password-change-required",
        "totp-enrolment-required",
        "forbidden",
    ];
    // As RESTRICTED, or an API key asking about a code it did not issue.
    const LIFECYCLE: &[&str] = &[
        "password-change-required",
        "totp-enrolment-required",
        "forbidden",
        "foreign-code-reference",
    ];
    const ADMIN: &[&str] = &[
        "password-change-required",
        "totp-enrolment-required",
        "forbidden",
        "above-own-roles",
    ];
    match (method, path) {
        ("get", "/metrics") => vec![(401, &["unauthorized"]), (500, &["internal-error"])],
        ("post", "/v1/verify") => vec![
            (
                400,
                &[
                    "unreadable-sealed-body",
                    "unknown-sealing-key",
                    "malformed-json",
                    "malformed-code",
                    "malformed-hmac",
                    "invalid-code",
                ],
            ),
            (500, STORAGE),
            (503, &["insufficient-storage"]),
        ],
        ("post", "/v2/verify") => vec![
            (
                400,
                &[
                    "unreadable-sealed-body",
                    "unknown-sealing-key",
                    "malformed-json",
                    "malformed-code",
                    "invalid-code",
                ],
            ),
            (409, &["stale-token-keys"]),
            (415, &["unsupported-media-type"]),
            (500, STORAGE),
            (503, &["insufficient-storage", "token-keys-not-ready"]),
        ],
        ("post", "/v1/uploads") => vec![
            (400, UPLOAD_400),
            (
                403,
                &[
                    "certificate-untrusted",
                    "certificate-invalid",
                    "token-unknown-key",
                    "token-invalid",
                ],
            ),
            (409, &["certificate-used"]),
            (500, STORAGE),
            (503, &["insufficient-storage"]),
        ],
        ("get", "/v1/batches") => vec![(400, &["invalid-parameter"]), (500, STORAGE)],
        ("get", "/v1/batches/{id}")
        | ("get", "/v1/batches/{id}/filter")
        | ("get", "/v1/exports/{file}") => vec![
            (400, &["invalid-parameter"]),
            (404, &["not-found"]),
            (500, STORAGE),
        ],
        ("get", "/v1/exports/index.txt") => vec![(500, STORAGE)],
        ("post", "/v1/venue-traces") => vec![
            (
                400,
                &[
                    "malformed-json",
                    "invalid-trace-code",
                    "trace-code-of-another-authority",
                    "invalid-time-range",
                    "too-many-hours",
                    "message-too-long",
                ],
            ),
            (401, &["unauthorized"]),
            (403, RESTRICTED),
            (415, &["unsupported-media-type"]),
            (500, STORAGE),
        ],
        ("get", "/v1/venue-releases") => vec![(400, &["invalid-parameter"]), (500, STORAGE)],
        ("get", "/v1/venue-releases/{id}") => vec![
            (400, &["invalid-parameter"]),
            (404, &["not-found"]),
            (500, STORAGE),
        ],
        ("post", "/v1/session") | ("post", "/v1/session/cookie") => vec![
            (400, &["malformed-json", "invalid-parameter"]),
            (401, &["invalid-credentials", "totp-required"]),
            (415, &["unsupported-media-type"]),
            (429, &["too-many-attempts"]),
            (500, STORAGE),
        ],
        ("delete", "/v1/session") | ("delete", "/v1/sessions") | ("get", "/v1/session") => {
            vec![(401, &["unauthorized"]), (500, STORAGE)]
        }
        ("get", "/v1/session/csrf") => {
            vec![(401, &["unauthorized", "session-ended"]), (500, STORAGE)]
        }
        ("post", "/v1/codes") => vec![
            (400, &["malformed-json", "invalid-parameter"]),
            (401, &["unauthorized"]),
            (
                403,
                &[
                    "password-change-required",
                    "totp-enrolment-required",
                    "forbidden",
                    "outside-key-scope",
                ],
            ),
            (415, &["unsupported-media-type"]),
            (429, &["quota-exceeded"]),
            (500, STORAGE),
        ],
        ("get", "/v1/stats") | ("get", "/v1/stats/chart.svg") => vec![
            (400, &["invalid-parameter"]),
            (401, &["unauthorized"]),
            (403, RESTRICTED),
            (500, STORAGE),
        ],
        ("get", "/v1/audit") => vec![
            (400, &["invalid-parameter"]),
            (401, &["unauthorized"]),
            (403, RESTRICTED),
            (500, STORAGE),
        ],
        ("get", "/v1/api-keys") => {
            vec![(401, &["unauthorized"]), (403, RESTRICTED), (500, STORAGE)]
        }
        ("post", "/v1/api-keys") => vec![
            (400, &["malformed-json", "invalid-parameter"]),
            (401, &["unauthorized"]),
            (403, RESTRICTED),
            (415, &["unsupported-media-type"]),
            (500, STORAGE),
        ],
        ("post", "/v1/venues") => vec![
            (400, &["malformed-json", "invalid-parameter"]),
            (401, &["unauthorized"]),
            (403, RESTRICTED),
            (415, &["unsupported-media-type"]),
            (500, STORAGE),
        ],
        ("post", "/v1/api-keys/{id}/revoke") => vec![
            (400, &["invalid-parameter"]),
            (401, &["unauthorized"]),
            (403, RESTRICTED),
            (404, &["unknown-api-key"]),
            (409, &["api-key-revoked"]),
            (500, STORAGE),
        ],
        ("get", "/v1/codes/{reference}") => vec![
            (400, &["invalid-parameter"]),
            (401, &["unauthorized"]),
            (403, LIFECYCLE),
            (404, &["unknown-code-reference"]),
            (500, STORAGE),
        ],
        ("post", "/v1/codes/{reference}/revoke") => vec![
            (400, &["invalid-parameter"]),
            (401, &["unauthorized"]),
            (403, LIFECYCLE),
            (404, &["unknown-code-reference"]),
            (409, &["code-not-revocable"]),
            (500, STORAGE),
        ],
        ("post", "/v1/session/password") => vec![
            (
                400,
                &["malformed-json", "invalid-parameter", "weak-password"],
            ),
            (401, &["unauthorized", "invalid-credentials"]),
            (415, &["unsupported-media-type"]),
            (429, &["too-many-attempts"]),
            (500, STORAGE),
        ],
        ("post", "/v1/session/totp") => vec![
            (401, &["unauthorized"]),
            (403, &["password-change-required"]),
            (500, STORAGE),
        ],
        ("post", "/v1/session/totp/confirm") => vec![
            (400, &["malformed-json", "invalid-totp-code"]),
            (401, &["unauthorized"]),
            (403, &["password-change-required"]),
            (415, &["unsupported-media-type"]),
            (500, STORAGE),
        ],
        ("post", "/v1/session/recovery-codes") => vec![
            (401, &["unauthorized"]),
            (
                403,
                &["password-change-required", "totp-enrolment-required"],
            ),
            (409, &["totp-not-enrolled"]),
            (500, STORAGE),
        ],
        ("get", "/v1/accounts") => {
            vec![(401, &["unauthorized"]), (403, RESTRICTED), (500, STORAGE)]
        }
        ("post", "/v1/accounts") => vec![
            (
                400,
                &["malformed-json", "invalid-parameter", "unknown-role"],
            ),
            (401, &["unauthorized"]),
            (403, ADMIN),
            (409, &["account-exists"]),
            (415, &["unsupported-media-type"]),
            (500, STORAGE),
        ],
        ("post", "/v1/accounts/{name}/disable") => vec![
            (400, &["invalid-parameter"]),
            (401, &["unauthorized"]),
            (403, RESTRICTED),
            (404, &["unknown-account"]),
            (409, &["last-admin"]),
            (500, STORAGE),
        ],
        ("post", "/v1/accounts/{name}/enable") | ("post", "/v1/accounts/{name}/reset-password") => {
            vec![
                (400, &["invalid-parameter"]),
                (401, &["unauthorized"]),
                (403, RESTRICTED),
                (404, &["unknown-account"]),
                (500, STORAGE),
            ]
        }
        ("post", "/v1/accounts/{name}/roles") => vec![
            (
                400,
                &["malformed-json", "invalid-parameter", "unknown-role"],
            ),
            (401, &["unauthorized"]),
            (403, ADMIN),
            (404, &["unknown-account"]),
            (409, &["last-admin"]),
            (415, &["unsupported-media-type"]),
            (500, STORAGE),
        ],
        _ => Vec::new(),
    }
}

/// The OpenAPI document of a node with `config`, as JSON.
pub fn document(config: &NodeConfig) -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    constrain(&mut doc, config);
    immutable_headers(&mut doc);
    add_errors(&mut doc);
    serde_json::to_string_pretty(&doc).expect("plain JSON")
}

/// `doc[key1][key2]...`, created as objects where missing.
fn at<'a>(doc: &'a mut Value, keys: &[&str]) -> &'a mut Value {
    keys.iter().fold(doc, |value, key| {
        if !value.is_object() {
            *value = json!({});
        }
        value
            .as_object_mut()
            .expect("an object")
            .entry(*key)
            .or_insert_with(|| json!({}))
    })
}

/// Merges the members of `patch` into the object `target`.
fn merge(target: &mut Value, patch: Value) {
    if let (Some(target), Value::Object(patch)) = (target.as_object_mut(), patch) {
        target.extend(patch);
    }
}

/// The parameter `name` of an operation.
fn parameter<'a>(doc: &'a mut Value, path: &str, method: &str, name: &str) -> &'a mut Value {
    let parameters = at(doc, &["paths", path, method, "parameters"]);
    parameters
        .as_array_mut()
        .and_then(|list| list.iter_mut().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} has a parameter {name}"))
}

/// The constraints of parameters and bodies ([`contract`], `config`).
fn constrain(doc: &mut Value, config: &NodeConfig) {
    for path in ["/v1/batches", "/v1/venue-releases"] {
        merge(
            &mut parameter(doc, path, "get", "after")["schema"],
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": contract::MAX_CURSOR}),
        );
    }
    for path in [
        "/v1/batches/{id}",
        "/v1/batches/{id}/filter",
        "/v1/venue-releases/{id}",
    ] {
        merge(
            &mut parameter(doc, path, "get", "id")["schema"],
            json!({"type": "string", "pattern": contract::BATCH_ID_PATTERN, "minLength": 64, "maxLength": 64}),
        );
    }
    merge(
        &mut parameter(doc, "/v1/exports/{file}", "get", "file")["schema"],
        json!({"type": "string", "pattern": contract::EXPORT_FILE_PATTERN}),
    );
    for action in ["disable", "enable", "roles", "reset-password"] {
        let path = format!("/v1/accounts/{{name}}/{action}");
        merge(
            &mut parameter(doc, &path, "post", "name")["schema"],
            json!({"type": "string", "pattern": contract::ACCOUNT_NAME_PATTERN, "maxLength": crate::accounts::MAX_NAME_CHARS}),
        );
    }

    let schemas = at(doc, &["components", "schemas"]);
    let login = &mut schemas["LoginRequest"];
    login["additionalProperties"] = json!(false);
    merge(
        at(login, &["properties", "name"]),
        json!({"minLength": 1, "maxLength": contract::MAX_NAME_CHARS}),
    );
    merge(
        at(login, &["properties", "password"]),
        json!({"minLength": 1, "maxLength": contract::MAX_PASSWORD_CHARS}),
    );
    merge(
        at(login, &["properties", "totp"]),
        json!({"minLength": 1, "maxLength": 64}),
    );
    merge(
        at(login, &["properties", "recovery_code"]),
        json!({"minLength": 1, "maxLength": 64}),
    );
    let change = &mut schemas["PasswordChangeRequest"];
    change["additionalProperties"] = json!(false);
    merge(
        at(change, &["properties", "current_password"]),
        json!({"minLength": 1, "maxLength": contract::MAX_PASSWORD_CHARS}),
    );
    merge(
        at(change, &["properties", "new_password"]),
        json!({"minLength": crate::accounts::MIN_PASSWORD_CHARS, "maxLength": contract::MAX_PASSWORD_CHARS}),
    );
    let roles = json!({
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "enum": ["admin", "case-worker", "bulk-issuer", "auditor"]},
    });
    let create = &mut schemas["CreateAccountRequest"];
    create["additionalProperties"] = json!(false);
    merge(
        at(create, &["properties", "name"]),
        json!({"pattern": contract::ACCOUNT_NAME_PATTERN, "maxLength": crate::accounts::MAX_NAME_CHARS}),
    );
    create["properties"]["roles"] = roles.clone();
    let set_roles = &mut schemas["RolesRequest"];
    set_roles["additionalProperties"] = json!(false);
    set_roles["properties"]["roles"] = roles;
    schemas["TotpConfirmRequest"]["additionalProperties"] = json!(false);
    let create_key = &mut schemas["CreateApiKeyRequest"];
    create_key["additionalProperties"] = json!(false);
    merge(
        at(create_key, &["properties", "name"]),
        json!({"pattern": contract::ACCOUNT_NAME_PATTERN, "maxLength": crate::accounts::MAX_NAME_CHARS}),
    );
    let venue = &mut schemas["CreateVenueRequest"];
    venue["additionalProperties"] = json!(false);
    // Bytes of UTF-8, not characters: the node refuses 101 bytes; 100 ASCII characters
    // always fit.
    for text in ["description", "address"] {
        merge(
            at(venue, &["properties", text]),
            json!({"maxLength": contract::MAX_VENUE_TEXT_ASCII}),
        );
    }
    for day in ["valid_from", "valid_until"] {
        merge(at(venue, &["properties", day]), json!({"format": "date"}));
    }
    let issue = &mut schemas["IssueCodesRequest"];
    issue["additionalProperties"] = json!(false);
    merge(
        at(issue, &["properties", "count"]),
        json!({"minimum": 1, "maximum": config.authority.max_codes_per_request}),
    );
    let window = config.retention.days + ephemera_node_core::authority::ONSET_DAYS_BEFORE_RETENTION;
    merge(
        at(issue, &["properties", "symptom_onset"]),
        json!({
            // RFC 3339 `full-date`: exactly `contract::DATE_PATTERN` and a real day.
            "format": "date",
            "description": format!(
                "Symptom onset, `YYYY-MM-DD` (UTC), if known: a calendar day not after today \
                 and not more than {window} days before it (retention plus 14 days)."
            ),
        }),
    );
    merge(
        at(schemas, &["IssuedCode", "properties", "code"]),
        json!({"pattern": contract::ISSUED_CODE_PATTERN, "minLength": 19, "maxLength": 19}),
    );
    // A statistics count: a number, or "<N" for one suppressed below the threshold N.
    schemas["StatsRow"]["properties"]["count"] = json!({
        "description": "The count, or `\"<N\"` for one from 1 to N − 1 (N: the report's `min_count`).",
        "oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": "^<[0-9]+$"},
        ],
    });
    schemas["UploadCode"] = json!({
        "type": "string",
        "description": "An upload code as a person types it: 16 Crockford base32 symbols, either case, O read as 0 and I, L as 1, dashes and spaces ignored.",
        "pattern": contract::TYPED_CODE_PATTERN,
    });

    // The code lifecycle's references, API key ids and the audit query.
    for (path, method) in [
        ("/v1/codes/{reference}", "get"),
        ("/v1/codes/{reference}/revoke", "post"),
    ] {
        *at(parameter(doc, path, method, "reference"), &["schema"]) = json!({
            "type": "string",
            "pattern": contract::TYPED_REFERENCE_PATTERN,
            "maxLength": contract::MAX_REFERENCE_CHARS,
        });
    }
    *at(
        parameter(doc, "/v1/api-keys/{id}/revoke", "post", "id"),
        &["schema"],
    ) = json!({"type": "string", "pattern": contract::API_KEY_ID_PATTERN});
    merge(
        at(parameter(doc, "/v1/audit", "get", "after"), &["schema"]),
        json!({"minimum": 0}),
    );
    merge(
        at(parameter(doc, "/v1/audit", "get", "limit"), &["schema"]),
        json!({"minimum": 1, "maximum": crate::node::MAX_AUDIT_PAGE}),
    );
    for (path, name) in [
        ("/v1/audit", "from"),
        ("/v1/audit", "to"),
        ("/v1/stats", "from"),
        ("/v1/stats", "to"),
        ("/v1/stats/chart.svg", "from"),
        ("/v1/stats/chart.svg", "to"),
    ] {
        merge(
            at(parameter(doc, path, "get", name), &["schema"]),
            json!({"format": "date"}),
        );
    }
    merge(
        at(
            parameter(doc, "/v1/stats/chart.svg", "get", "metric"),
            &["schema"],
        ),
        json!({"enum": ephemera_node_core::store::StatsMetric::ALL.map(|m| m.as_str())}),
    );

    // Every body's size limit (`crate::server` refuses a larger one with 413).
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let limit = match path.as_str() {
            "/v1/uploads" => config.http.max_upload_bytes,
            "/v1/sunset" => super::sunset::SUNSET_ORDER_MAX,
            "/v1/venue-traces" => super::venue_releases::MAX_VENUE_TRACE_BODY,
            _ => super::MAX_JSON_BODY,
        };
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let Some(body) = operation.get_mut("requestBody") else {
                continue;
            };
            body["required"] = json!(true);
            let note = format!("At most {limit} bytes (larger: 413 `payload-too-large`).");
            let description = match body["description"].as_str() {
                Some(text) if !text.is_empty() => format!("{text}. {note}"),
                _ => note,
            };
            body["description"] = json!(description);
            if let Some(binary) = body.pointer_mut("/content/application~1octet-stream/schema") {
                *binary = json!({"type": "string", "format": "binary", "maxLength": limit});
            }
        }
    }
    sealed_bodies(doc, config);
}

/// The sealed form of the phone bodies (`proto::sealed`, docs/PROTOCOL.md §5.3): what this
/// library's phones send; the unsealed forms stay for earlier phones until the next
/// protocol version.
fn sealed_bodies(doc: &mut Value, config: &NodeConfig) {
    use ephemera_proto::sealed::{CONTENT_TYPE, REQUEST_OVERHEAD, SealedRoute};
    for (path, route, limit) in [
        ("/v1/verify", SealedRoute::Verify, super::MAX_JSON_BODY),
        ("/v2/verify", SealedRoute::TokenVerify, super::MAX_JSON_BODY),
        (
            "/v1/uploads",
            SealedRoute::Upload,
            config.http.max_upload_bytes + REQUEST_OVERHEAD,
        ),
    ] {
        let operation = at(doc, &["paths", path, "post"]);
        at(operation, &["requestBody", "content"])[CONTENT_TYPE] = json!({
            "schema": {
                "type": "string",
                "format": "binary",
                "minLength": REQUEST_OVERHEAD,
                "maxLength": limit,
                "description": "The unsealed body sealed to GET /v1/sealing-key: key id (8) ‖ HPKE enc (32) ‖ AEAD ciphertext.",
            }
        });
        let size = route.sealed_response_size();
        at(operation, &["responses", "200", "content"])[CONTENT_TYPE] = json!({
            "schema": {
                "type": "string",
                "format": "binary",
                "minLength": size,
                "maxLength": size,
                "description": "The node's answer sealed back: status, error or success inside, one size for every answer.",
            }
        });
    }
}

/// The validators and cache lifetime of immutable bodies, on 200 and 304.
fn immutable_headers(doc: &mut Value) {
    for path in [
        "/v1/batches/{id}",
        "/v1/batches/{id}/filter",
        "/v1/exports/{file}",
    ] {
        for status in ["200", "304"] {
            at(doc, &["paths", path, "get", "responses", status])["headers"] = json!({
                "ETag": {
                    "required": true,
                    "description": "Strong validator: the hex SHA-256 of the body, quoted",
                    "schema": {"type": "string", "pattern": "^\"[0-9a-f]{64}\"$"},
                },
                "Cache-Control": {
                    "required": true,
                    "schema": {"type": "string", "enum": [super::IMMUTABLE]},
                },
            });
        }
    }
}

/// Every operation's error responses (its own and [`PRE_HANDLER`]'s), each with the
/// `ErrorBody` schema narrowed to its codes, and the headers of answers.
fn add_errors(doc: &mut Value) {
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let mut statuses: Vec<(u16, Vec<&str>)> = Vec::new();
            let cookie = if takes_console_cookie(operation) && path != "/metrics" {
                COOKIE_ERRORS
            } else {
                &[]
            };
            for (status, codes) in errors_of(method, path)
                .into_iter()
                .chain(cookie.iter().copied())
                .chain(PRE_HANDLER.iter().copied())
            {
                match statuses.iter_mut().find(|(s, _)| *s == status) {
                    Some((_, list)) => list.extend(codes.iter().copied()),
                    None => statuses.push((status, codes.to_vec())),
                }
            }
            // Where storage is touched, a PostgreSQL store that cannot be reached answers
            // 503 `storage-unavailable` (with `Retry-After`) rather than 500.
            if statuses
                .iter()
                .any(|(s, codes)| *s == 500 && codes.contains(&"storage-error"))
            {
                match statuses.iter_mut().find(|(s, _)| *s == 503) {
                    Some((_, list)) => list.push("storage-unavailable"),
                    None => statuses.push((503, vec!["storage-unavailable"])),
                }
            }
            // A node whose `[storage] role` does not serve the route, or whose database role
            // lacks a grant it needs, answers 421 `wrong-node`.
            if super::served_by::part_of(path) != super::served_by::Part::Every
                || statuses
                    .iter()
                    .any(|(s, codes)| *s == 500 && codes.contains(&"storage-error"))
            {
                statuses.push((421, vec!["wrong-node"]));
            }
            operation
                .as_object_mut()
                .expect("an operation")
                .remove("tags");
            let responses = at(operation, &["responses"]);
            for (status, codes) in statuses {
                responses[status.to_string()] = error_response(status, &codes);
            }
        }
    }
}

/// What a request with the console's session cookie may answer beyond a bearer request's
/// (`super::caller`).
const COOKIE_ERRORS: &[(u16, &[&str])] = &[
    (401, &["session-ended"]),
    (
        403,
        &["csrf-missing", "csrf-invalid", "csrf-session-mismatch"],
    ),
];

/// Whether an operation takes a bearer session, and so the console's cookie too; adds
/// the cookie as the other way to authenticate.
fn takes_console_cookie(operation: &mut Value) -> bool {
    let Some(security) = operation.get_mut("security").and_then(Value::as_array_mut) else {
        return false;
    };
    let bearer = security
        .iter()
        .any(|requirement| requirement.get("bearer").is_some());
    if bearer {
        security.push(json!({"console": []}));
    }
    bearer
}

/// One error response: its codes in the description and as the schema's enum.
fn error_response(status: u16, codes: &[&str]) -> Value {
    let list: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
    let mut response = json!({
        "description": format!("Error codes: {}.", list.join(", ")),
        "content": {"application/json": {"schema": {
            "allOf": [{"$ref": "#/components/schemas/ErrorBody"}],
            "properties": {"error": {"type": "string", "enum": codes}},
        }}},
    });
    match status {
        401 => {
            response["headers"] = json!({"WWW-Authenticate": {
                "required": true,
                "description": "`Bearer`",
                "schema": {"type": "string", "enum": ["Bearer"]},
            }});
        }
        503 => {
            response["headers"] = json!({"Retry-After": {
                "required": true,
                "description": "Seconds to wait before trying again",
                "schema": {"type": "integer", "minimum": 1},
            }});
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ApiError;

    fn doc() -> Value {
        serde_json::from_str(&document(&NodeConfig::default())).unwrap()
    }

    #[test]
    fn the_document_lists_every_route() {
        let doc = doc();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/healthz",
            "/metrics",
            "/v1/openapi.json",
            "/v1/authority",
            "/v1/authority/export-key.pem",
            "/v1/verify",
            "/v2/verify",
            "/v1/uploads",
            "/v1/batches",
            "/v1/batches/{id}",
            "/v1/batches/{id}/filter",
            "/v1/exports/index.txt",
            "/v1/exports/{file}",
            "/v1/session",
            "/v1/sessions",
            "/v1/session/password",
            "/v1/session/totp",
            "/v1/session/totp/confirm",
            "/v1/session/recovery-codes",
            "/v1/accounts",
            "/v1/accounts/{name}/disable",
            "/v1/accounts/{name}/enable",
            "/v1/accounts/{name}/roles",
            "/v1/accounts/{name}/reset-password",
            "/v1/codes",
            "/",
            "/console",
            "/console.js",
            "/console.css",
            "/case-worker",
            "/v1/session/cookie",
            "/v1/session/csrf",
            "/v1/venue-key",
            "/v1/venues",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        assert!(doc["components"]["schemas"]["VerifyRequest"].is_object());
    }

    #[test]
    fn every_operation_lists_the_pre_handler_errors_and_no_default() {
        let doc = doc();
        let text = doc.to_string();
        for code in crate::api::error::ApiError::PRE_ROUTER_CODES {
            assert!(text.contains(code), "{code} missing");
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(!responses.contains_key("default"), "{method} {path}");
                for status in ["400", "408", "413", "414", "431", "503"] {
                    let codes = &responses[status]["content"]["application/json"]["schema"]["properties"]
                        ["error"]["enum"];
                    assert!(
                        codes.as_array().is_some_and(|c| !c.is_empty()),
                        "{method} {path} {status}"
                    );
                }
                assert_eq!(
                    responses["503"]["headers"]["Retry-After"]["required"], true,
                    "{method} {path}"
                );
            }
        }
        let session = &doc["paths"]["/v1/session"]["post"]["responses"];
        let codes = session["400"]["content"]["application/json"]["schema"]["properties"]["error"]
            ["enum"]
            .to_string();
        for code in ["malformed-json", "invalid-parameter", "malformed-request"] {
            assert!(codes.contains(code), "{code} in {codes}");
        }
    }

    /// Whether `error` is documented for `method path`: its status, with its code in the
    /// status's enum.
    fn documents(doc: &Value, method: &str, path: &str, error: &ApiError) -> bool {
        let status = error.status().as_u16().to_string();
        doc["paths"][path][method]["responses"][&status]["content"]["application/json"]
            ["schema"]["properties"]["error"]["enum"]
            .as_array()
            .is_some_and(|codes| codes.iter().any(|c| c == error.code()))
    }

    #[test]
    fn every_refusal_of_the_handlers_is_documented() {
        use ephemera_node_core::{AuthorityError as A, IntakeError as I};
        use ephemera_proto::report::{ReportType, SchemeKind};
        use ephemera_proto::token::TokenError;
        use ephemera_proto::{CertificateError as C, CodeError, DecodeError as D};
        use ephemera_proto::{DayNumber, IntervalNumber, UploadError as U, ValidationError as V};

        use crate::store::StoreError;

        let doc = doc();
        let day = DayNumber(1);
        let certificate = [
            C::UntrustedAuthority,
            C::BadSignature,
            C::Expired {
                expired_at: 1,
                now: 2,
            },
            C::NotYetValid,
            C::HmacMismatch,
            C::ReportTypeMismatch,
        ]
        .map(|e| I::Rejected(U::Certificate(e)));
        let validation = [
            V::Empty,
            V::TooManyKeys { got: 2, max: 1 },
            V::TooManyTokens { got: 2, max: 1 },
            V::BadRollingPeriod { got: 0 },
            V::FutureKey {
                rolling_start: IntervalNumber(2),
                now: IntervalNumber(1),
            },
            V::TooOld { day, oldest: day },
            V::FutureToken { day, today: day },
            V::Duplicate,
            V::BadDaysSinceOnset { got: 20 },
            V::WrongScheme,
        ]
        .map(|e| I::Rejected(U::Validation(e)));
        let decode = [
            D::Truncated { got: 0, min: 1 },
            D::TooLarge { got: 2, max: 1 },
            D::UnsupportedVersion {
                got: 9,
                supported: 1,
            },
            D::WrongKind {
                got: 1,
                expected: 2,
            },
            D::Malformed,
            D::TrailingBytes { extra: 1 },
        ]
        .map(I::Decode);
        let intake = [
            I::TooLarge { max: 1 },
            I::SchemeNotAccepted(SchemeKind::Gaen),
            I::ReportTypeNotAllowed(ReportType::Revoked),
            I::CertificateUsed,
            I::InvalidRevisionToken,
            I::InvalidRevisionSignature,
            I::RevisionNotAllowed {
                from: ReportType::ConfirmedTest,
                to: ReportType::Revoked,
            },
            I::RevisionMismatch,
            I::RevisionAuthorityMismatch,
            I::Token(TokenError::UnknownKey),
            I::Token(TokenError::BadSignature),
            I::Token(TokenError::Expired { epoch: 1, today: 3 }),
            I::Store(StoreError::Engine("disk".into())),
        ];
        for error in certificate
            .into_iter()
            .chain(validation)
            .chain(decode)
            .chain(intake)
            .map(ApiError::from)
            .chain([
                ApiError::UnreadableBody,
                ApiError::PayloadTooLarge { max: 1 },
                ApiError::InsufficientStorage,
            ])
        {
            assert!(documents(&doc, "post", "/v1/uploads", &error), "{error:?}");
        }

        let verify = [
            A::MalformedCode(CodeError::BadCharacter),
            A::MalformedHmac,
            A::CodeUnknownOrExpired,
            A::Store(StoreError::Engine("disk".into())),
        ];
        for error in verify.into_iter().map(ApiError::from).chain([
            ApiError::MalformedJson("x".into()),
            ApiError::InsufficientStorage,
        ]) {
            assert!(documents(&doc, "post", "/v1/verify", &error), "{error:?}");
        }

        let token_verify = [
            A::MalformedCode(CodeError::BadCharacter),
            A::CodeUnknownOrExpired,
            A::StaleTokenKeys,
            A::TokenKeysNotReady,
            A::Store(StoreError::Engine("disk".into())),
        ];
        for error in token_verify.into_iter().map(ApiError::from).chain([
            ApiError::MalformedJson("x".into()),
            ApiError::InsufficientStorage,
            ApiError::UnsupportedMediaType {
                expected: ephemera_proto::sealed::CONTENT_TYPE,
            },
        ]) {
            assert!(documents(&doc, "post", "/v2/verify", &error), "{error:?}");
        }

        let codes = [
            A::CodeCountOutOfRange {
                requested: 0,
                max: 1,
            },
            A::OnsetOutOfRange,
            A::Store(StoreError::Engine("disk".into())),
        ];
        let json = ApiError::UnsupportedMediaType {
            expected: "application/json",
        };
        for error in codes.into_iter().map(ApiError::from).chain([
            ApiError::Unauthorized,
            ApiError::MalformedJson("x".into()),
            ApiError::InvalidParameter {
                name: "symptom_onset",
                reason: "x",
            },
        ]) {
            assert!(documents(&doc, "post", "/v1/codes", &error), "{error:?}");
        }
        for error in [
            ApiError::InvalidCredentials,
            ApiError::TooManyAttempts,
            ApiError::MalformedJson("x".into()),
            ApiError::InvalidParameter {
                name: "name",
                reason: "x",
            },
            ApiError::Internal,
        ] {
            assert!(documents(&doc, "post", "/v1/session", &error), "{error:?}");
        }
        assert!(documents(&doc, "post", "/v1/session", &json));
        assert!(documents(&doc, "post", "/v1/codes", &json));
        let lifecycle = [
            ApiError::InvalidParameter {
                name: "reference",
                reason: "x",
            },
            ApiError::Unauthorized,
            ApiError::Forbidden {
                role: "case-worker",
            },
            ApiError::PasswordChangeRequired,
            ApiError::UnknownCodeReference,
            ApiError::ForeignCodeReference,
            ApiError::Store(StoreError::Engine("disk".into())),
        ];
        for error in &lifecycle {
            assert!(
                documents(&doc, "get", "/v1/codes/{reference}", error),
                "{error:?}"
            );
            let path = "/v1/codes/{reference}/revoke";
            assert!(documents(&doc, "post", path, error), "{error:?}");
        }
        assert!(documents(
            &doc,
            "post",
            "/v1/codes/{reference}/revoke",
            &ApiError::CodeNotRevocable { status: "used" }
        ));
        for error in [
            ApiError::OutsideKeyScope,
            ApiError::QuotaExceeded { retry_after: 1 },
        ] {
            assert!(documents(&doc, "post", "/v1/codes", &error), "{error:?}");
        }
        for (method, path, error) in [
            ("get", "/v1/api-keys", ApiError::Forbidden { role: "admin" }),
            ("post", "/v1/api-keys", ApiError::MalformedJson("x".into())),
            (
                "post",
                "/v1/api-keys",
                ApiError::InvalidParameter {
                    name: "name",
                    reason: "x",
                },
            ),
            ("post", "/v1/api-keys/{id}/revoke", ApiError::UnknownApiKey),
            ("post", "/v1/api-keys/{id}/revoke", ApiError::ApiKeyRevoked),
            ("post", "/v1/api-keys/{id}/revoke", ApiError::Unauthorized),
            ("get", "/v1/stats", ApiError::Forbidden { role: "auditor" }),
            ("get", "/v1/stats", ApiError::Unauthorized),
            (
                "post",
                "/v1/venues",
                ApiError::Forbidden {
                    role: "case-worker",
                },
            ),
            ("post", "/v1/venues", ApiError::Unauthorized),
            ("post", "/v1/venues", ApiError::CsrfMissing),
            ("post", "/v1/venues", ApiError::MalformedJson("x".into())),
            (
                "post",
                "/v1/venues",
                ApiError::InvalidParameter {
                    name: "description",
                    reason: "x",
                },
            ),
            (
                "get",
                "/v1/stats/chart.svg",
                ApiError::InvalidParameter {
                    name: "metric",
                    reason: "x",
                },
            ),
            (
                "get",
                "/v1/stats/chart.svg",
                ApiError::Forbidden { role: "auditor" },
            ),
            ("get", "/v1/audit", ApiError::Forbidden { role: "auditor" }),
            ("get", "/v1/audit", ApiError::Unauthorized),
            (
                "get",
                "/v1/audit",
                ApiError::InvalidParameter {
                    name: "limit",
                    reason: "x",
                },
            ),
            (
                "get",
                "/v1/audit",
                ApiError::Store(StoreError::Engine("disk".into())),
            ),
        ] {
            assert!(documents(&doc, method, path, &error), "{error:?}");
        }
        assert!(documents(
            &doc,
            "post",
            "/v1/session",
            &ApiError::TotpRequired
        ));
        for error in [
            ApiError::PasswordChangeRequired,
            ApiError::TotpEnrolmentRequired,
            ApiError::Forbidden {
                role: "case-worker",
            },
        ] {
            assert!(documents(&doc, "post", "/v1/codes", &error), "{error:?}");
            assert!(documents(&doc, "get", "/v1/accounts", &error), "{error:?}");
        }
        let weak = ApiError::WeakPassword { reason: "x" };
        for (method, path, error) in [
            ("post", "/v1/session/password", &weak),
            (
                "post",
                "/v1/session/password",
                &ApiError::InvalidCredentials,
            ),
            (
                "post",
                "/v1/session/totp/confirm",
                &ApiError::InvalidTotpCode,
            ),
            (
                "post",
                "/v1/session/recovery-codes",
                &ApiError::TotpNotEnrolled,
            ),
            ("post", "/v1/accounts", &ApiError::AccountExists),
            ("post", "/v1/accounts", &ApiError::UnknownRole),
            ("post", "/v1/accounts", &ApiError::AboveOwnRoles),
            ("post", "/v1/accounts/{name}/roles", &ApiError::LastAdmin),
            (
                "post",
                "/v1/accounts/{name}/roles",
                &ApiError::AboveOwnRoles,
            ),
            ("post", "/v1/accounts/{name}/disable", &ApiError::LastAdmin),
            (
                "post",
                "/v1/accounts/{name}/disable",
                &ApiError::UnknownAccount,
            ),
            (
                "post",
                "/v1/accounts/{name}/reset-password",
                &ApiError::UnknownAccount,
            ),
            ("delete", "/v1/sessions", &ApiError::Unauthorized),
            ("get", "/v1/session", &ApiError::Unauthorized),
        ] {
            assert!(
                documents(&doc, method, path, error),
                "{method} {path} {error:?}"
            );
        }
        // Answered before any handler: documented on every operation.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                for error in [
                    ApiError::MalformedRequest,
                    ApiError::UnreadableBody,
                    ApiError::BodyTimeout,
                    ApiError::PayloadTooLarge { max: 1 },
                    ApiError::UriTooLong,
                    ApiError::HeadersTooLarge,
                    ApiError::Overloaded,
                    ApiError::DeadlineExceeded,
                ] {
                    assert!(
                        documents(&doc, method, path, &error),
                        "{method} {path} {error:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_limits_come_from_the_config() {
        let mut config = NodeConfig::default();
        config.http.max_upload_bytes = 12_345;
        config.authority.max_codes_per_request = 7;
        let doc: Value = serde_json::from_str(&document(&config)).unwrap();
        let upload = &doc["paths"]["/v1/uploads"]["post"]["requestBody"];
        assert_eq!(
            upload["content"]["application/octet-stream"]["schema"]["maxLength"],
            12_345
        );
        assert_eq!(
            doc["components"]["schemas"]["IssueCodesRequest"]["properties"]["count"]["maximum"],
            7
        );
        assert_eq!(
            doc["paths"]["/v1/batches"]["get"]["parameters"][0]["in"],
            "query"
        );
    }
}
