//! The OpenAPI document, generated from the handlers' annotations.
//!
//! The phone-facing bodies are defined in `ephemera_proto` (which does not depend on
//! utoipa); the `*Doc` structs here describe their JSON shapes for the document only.

#![allow(dead_code)]

use std::sync::OnceLock;

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::types;

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
    /// Hex of the opaque token that lets the phone revise this upload.
    revision_token: String,
    /// Spaces up to 512 bytes.
    padding: String,
}

/// `proto::api::ErrorBody`.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorBody)]
pub(crate) struct ErrorBodyDoc {
    /// Stable kebab-case code, e.g. `certificate-expired`.
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
}

struct BearerAuth;

/// The answers any route may give before its handler runs (`crate::server`): a head hyper
/// could not parse, an oversize or late body, a cap reached, the deadline passed.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let common: [(&str, &str); 7] = [
            (
                "400",
                "malformed-request (the head, a header or Content-Length), unreadable-body",
            ),
            (
                "408",
                "body-timeout: the body did not arrive within [http] body_read_timeout_ms",
            ),
            (
                "413",
                "payload-too-large: announced or sent body larger than the endpoint takes",
            ),
            ("414", "uri-too-long"),
            ("431", "headers-too-large"),
            (
                "503",
                "overloaded (a connection, in-flight or body-memory cap; with Retry-After), deadline-exceeded",
            ),
            ("default", "Every error is `{\"error\", \"message\"}` JSON"),
        ];
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                for (status, description) in common {
                    let response = ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build();
                    match operation.responses.responses.get_mut(status) {
                        Some(utoipa::openapi::RefOr::T(existing)) => {
                            existing.description =
                                format!("{}; {description}", existing.description);
                        }
                        Some(_) => {}
                        None => {
                            operation
                                .responses
                                .responses
                                .insert(status.to_owned(), response.into());
                        }
                    }
                }
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Ephemera node", description = "Privacy-preserving contact tracing: authority, uploads, signed batches. Errors are `{\"error\", \"message\"}`."),
    paths(
        super::healthz, super::metrics, super::openapi, super::authority, super::export_key,
        super::sealing_key, super::verify, super::upload, super::batch_index, super::batch,
        super::export_index, super::export_file,
        super::login, super::logout, super::issue_codes,
    ),
    components(schemas(
        VerifyRequestDoc, VerifyResponseDoc, UploadResponseDoc, SealingKeyDoc, ErrorBodyDoc, BatchIndexEntryDoc,
        BatchIndexDoc, types::LoginRequest, types::LoginResponse, types::TestType,
        types::IssueCodesRequest, types::IssuedCode, types::IssueCodesResponse,
        types::AuthorityInfo, types::Health,
    )),
    modifiers(&BearerAuth, &CommonErrors),
)]
struct ApiDoc;

/// The OpenAPI document as JSON (built once).
pub fn openapi_json() -> String {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("OpenAPI serializes")
    })
    .clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(&super::openapi_json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/healthz",
            "/metrics",
            "/v1/openapi.json",
            "/v1/authority",
            "/v1/verify",
            "/v1/uploads",
            "/v1/batches",
            "/v1/batches/{id}",
            "/v1/session",
            "/v1/codes",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        assert!(doc["components"]["schemas"]["VerifyRequest"].is_object());
        // The codes answered before any handler are documented on every route.
        let text = doc.to_string();
        for code in crate::api::error::ApiError::PRE_ROUTER_CODES {
            assert!(text.contains(code), "{code} missing");
        }
        for status in ["408", "413", "414", "431", "503"] {
            assert!(
                doc["paths"]["/healthz"]["get"]["responses"][status].is_object(),
                "{status} on /healthz"
            );
        }
    }
}
