//! The OpenAPI document is the contract: its patterns and bounds, read from the node's own
//! `GET /v1/openapi.json` and evaluated here, match what the node accepts and refuses, and
//! every refusal's status and code is one the document lists for that operation.
//! (`.ci/extra/openapi.sh` runs schemathesis over the whole document; this pins the
//! constraints that a fuzzer found missing or wrong once: issue 16.)

use ephemera_node::clock::ManualClock;
use ephemera_proto::auth::UploadCode;
use proptest::prelude::*;
use std::sync::LazyLock;

use rand::{RngExt, SeedableRng};
use regex::Regex;
use serde_json::Value;

use crate::util::*;

/// The document as a node serves it.
async fn document(node: &TestNode) -> Value {
    let response = node.get("/v1/openapi.json").await;
    assert_eq!(response.status, 200);
    response.json()
}

/// The schema of an operation's parameter.
fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} documents {name}"))
}

/// A JSON Schema `pattern` as a regex (the patterns here use only the common subset of
/// ECMA 262 and Rust's syntax).
fn regex(schema: &Value) -> Regex {
    Regex::new(schema["pattern"].as_str().expect("a pattern")).unwrap()
}

/// Whether `response` is a refusal with a status and code the document lists for the
/// operation (or a success).
fn documented(doc: &Value, method: &str, path: &str, response: &Response) -> bool {
    let status = response.status.to_string();
    let documented = &doc["paths"][path][method]["responses"][&status];
    if response.status < 400 {
        return documented.is_object();
    }
    let code = response.json()["error"].clone();
    documented["content"]["application/json"]["schema"]["properties"]["error"]["enum"]
        .as_array()
        .is_some_and(|codes| codes.contains(&code))
}

/// Random strings over `alphabet`, `lengths` long: near misses of a pattern.
fn near_misses(alphabet: &str, lengths: std::ops::RangeInclusive<usize>, n: usize) -> Vec<String> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(16);
    let symbols: Vec<char> = alphabet.chars().collect();
    (0..n)
        .map(|_| {
            let len = rng.random_range(lengths.clone());
            (0..len)
                .map(|_| symbols[rng.random_range(0..symbols.len())])
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn path_and_query_parameters_accept_exactly_what_the_document_says() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let doc = document(&node).await;

    // Batch ids: 64 hex characters, either case; a well-formed unknown id is 404.
    let id = parameter(&doc, "get", "/v1/batches/{id}", "id");
    let pattern = regex(id);
    assert_eq!(
        (id["minLength"].as_u64(), id["maxLength"].as_u64()),
        (Some(64), Some(64))
    );
    let mut samples = near_misses("0123456789abcdefABCDEFgG", 62..=66, 300);
    samples.extend([
        "0".repeat(64),
        "aB".repeat(32),
        format!("{}g", "0".repeat(63)),
    ]);
    let mut accepted = 0;
    for sample in &samples {
        let response = node.get(&format!("/v1/batches/{sample}")).await;
        let matches = pattern.is_match(sample);
        assert_eq!(
            matches,
            response.status == 404,
            "{sample}: {}",
            response.status
        );
        assert!(
            documented(&doc, "get", "/v1/batches/{id}", &response),
            "{sample}"
        );
        accepted += usize::from(matches);
    }
    assert!(accepted >= 3, "the samples reach both sides of the pattern");

    // Export files: `<start>-<end>-<number>.zip`.
    let file = parameter(&doc, "get", "/v1/exports/{file}", "file");
    let pattern = regex(file);
    let mut samples = near_misses("0123-.zip", 10..=16, 300);
    samples.extend(["1-2-00001.zip".to_owned(), "1-2-1.zip".to_owned()]);
    for sample in &samples {
        let response = node.get(&format!("/v1/exports/{sample}")).await;
        assert_eq!(
            pattern.is_match(sample),
            response.status == 404,
            "{sample}: {}",
            response.status
        );
        assert!(
            documented(&doc, "get", "/v1/exports/{file}", &response),
            "{sample}"
        );
    }

    // The batch cursor: an integer from the minimum to the maximum, and nothing else.
    let after = parameter(&doc, "get", "/v1/batches", "after");
    assert_eq!(
        doc["paths"]["/v1/batches"]["get"]["parameters"][0]["in"],
        "query"
    );
    let (min, max) = (
        after["minimum"].as_u64().unwrap(),
        after["maximum"].as_u64().unwrap(),
    );
    assert_eq!((min, max), (0, i64::MAX as u64));
    for (value, ok) in [
        (min.to_string(), true),
        (max.to_string(), true),
        ((max + 1).to_string(), false),
        (u64::MAX.to_string(), false),
        ("-1".to_owned(), false),
        ("1.5".to_owned(), false),
        ("x".to_owned(), false),
    ] {
        let response = node.get(&format!("/v1/batches?after={value}")).await;
        assert_eq!(
            response.status == 200,
            ok,
            "after={value}: {}",
            response.status
        );
        assert!(documented(&doc, "get", "/v1/batches", &response), "{value}");
    }
    node.stop().await;
}

#[tokio::test]
async fn bodies_accept_exactly_what_the_document_says() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.authority.max_codes_per_request = 5;
    let node = TestNode::start_with(config, ManualClock::new(T0)).await;
    let doc = document(&node).await;
    let schemas = &doc["components"]["schemas"];

    // Sign-in: lengths in characters, no unknown fields. A well-formed wrong password is
    // 401, a malformed request 400 (and spends no guess).
    let login = &schemas["LoginRequest"];
    assert_eq!(login["additionalProperties"], false);
    let name_max = login["properties"]["name"]["maxLength"].as_u64().unwrap() as usize;
    let password_max = login["properties"]["password"]["maxLength"]
        .as_u64()
        .unwrap() as usize;
    for (body, ok) in [
        (
            serde_json::json!({"name": "é".repeat(name_max), "password": "x"}),
            true,
        ),
        (
            serde_json::json!({"name": "n", "password": "p".repeat(password_max)}),
            true,
        ),
        (
            serde_json::json!({"name": "é".repeat(name_max + 1), "password": "x"}),
            false,
        ),
        (
            serde_json::json!({"name": "n", "password": "p".repeat(password_max + 1)}),
            false,
        ),
        (serde_json::json!({"name": "", "password": "x"}), false),
        (serde_json::json!({"name": "n", "password": ""}), false),
        (
            serde_json::json!({"name": "n", "password": "x", "role": "admin"}),
            false,
        ),
    ] {
        let response = node.post_json("/v1/session", &[], &body).await;
        let expected = if ok { 401 } else { 400 };
        assert_eq!(response.status, expected, "{body}");
        assert!(documented(&doc, "post", "/v1/session", &response), "{body}");
    }

    // Only the documented media type.
    let response = node
        .post_raw(
            "/v1/session",
            "text/plain",
            br#"{"name":"n","password":"x"}"#,
        )
        .await;
    response.assert_error(415, "unsupported-media-type");
    assert!(documented(&doc, "post", "/v1/session", &response));
    assert!(
        doc["paths"]["/v1/session"]["post"]["requestBody"]["content"]
            .as_object()
            .is_some_and(|c| c.len() == 1 && c.contains_key("application/json"))
    );

    // Codes: the count's bounds are the config's; `3.0` is an integer to JSON Schema and
    // to the node; the onset is a `format: date`, nothing looser.
    let session = node.login().await;
    let auth = format!("Bearer {session}");
    let auth = [("Authorization", auth.as_str())];
    let issue = &schemas["IssueCodesRequest"];
    assert_eq!(issue["additionalProperties"], false);
    let count = &issue["properties"]["count"];
    assert_eq!(
        (count["minimum"].as_u64(), count["maximum"].as_u64()),
        (Some(1), Some(5))
    );
    assert_eq!(issue["properties"]["symptom_onset"]["format"], "date");
    let today = ephemera_node::clock::civil::format_date(T0.day());
    for (body, ok) in [
        (
            serde_json::json!({"test_type": "confirmed", "count": 5}),
            true,
        ),
        (
            serde_json::json!({"test_type": "confirmed", "count": 5.0}),
            true,
        ),
        (
            serde_json::json!({"test_type": "likely", "count": null}),
            true,
        ),
        (
            serde_json::json!({"test_type": "likely", "symptom_onset": today}),
            true,
        ),
        (
            serde_json::json!({"test_type": "confirmed", "count": 6}),
            false,
        ),
        (
            serde_json::json!({"test_type": "confirmed", "count": 0}),
            false,
        ),
        (
            serde_json::json!({"test_type": "confirmed", "count": 1.5}),
            false,
        ),
        (
            serde_json::json!({"test_type": "likely", "symptom_onset": ""}),
            false,
        ),
        (
            serde_json::json!({"test_type": "likely", "symptom_onset": " 2023-11-14"}),
            false,
        ),
        (
            serde_json::json!({"test_type": "likely", "symptom_onset": "2023-11-1"}),
            false,
        ),
        (
            serde_json::json!({"test_type": "likely", "symptom_onset": "+023-11-14"}),
            false,
        ),
        (
            serde_json::json!({"test_type": "likely", "other": 1}),
            false,
        ),
        (serde_json::json!({"test_type": "positive"}), false),
    ] {
        let response = node.post_json("/v1/codes", &auth, &body).await;
        assert_eq!(response.status, if ok { 200 } else { 400 }, "{body}");
        assert!(documented(&doc, "post", "/v1/codes", &response), "{body}");
        if ok {
            // Issued codes have the documented shape.
            let pattern = regex(&schemas["IssuedCode"]["properties"]["code"]);
            for code in response.json()["codes"].as_array().unwrap() {
                assert!(pattern.is_match(code["code"].as_str().unwrap()), "{code}");
            }
        }
    }

    // Binary bodies carry the configured size limit, and a larger one is 413.
    let limit = node.node.config().http.max_upload_bytes;
    let upload = &doc["paths"]["/v1/uploads"]["post"]["requestBody"];
    assert_eq!(
        upload["content"]["application/octet-stream"]["schema"]["maxLength"],
        limit
    );
    let response = node
        .post_raw(
            "/v1/uploads",
            "application/octet-stream",
            &vec![0; limit + 1],
        )
        .await;
    response.assert_error(413, "payload-too-large");
    assert!(documented(&doc, "post", "/v1/uploads", &response));
    node.stop().await;
}

/// The document's `UploadCode` pattern: a code as a person types it.
static TYPED_CODE: LazyLock<Regex> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(&ephemera_node::api::openapi_document(
        &ephemera_node::config::NodeConfig::default(),
    ))
    .unwrap();
    regex(&doc["components"]["schemas"]["UploadCode"])
});

proptest! {
    /// What `UploadCode::parse` accepts is exactly what the pattern matches.
    #[test]
    fn typed_codes_parse_exactly_when_they_match_the_pattern(
        text in "[ -]?([0-9A-Za-z][ -]{0,2}){15,17}|[0-9A-Za-z\u{e9}._ -]{0,24}",
    ) {
        prop_assert_eq!(TYPED_CODE.is_match(&text), UploadCode::parse(&text).is_ok(), "{:?}", text);
    }
}

/// The document's schema of a code's reference in its path, and its most characters.
static TYPED_REFERENCE: LazyLock<(Regex, usize)> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(&ephemera_node::api::openapi_document(
        &ephemera_node::config::NodeConfig::default(),
    ))
    .unwrap();
    let schema = &doc["paths"]["/v1/codes/{reference}"]["get"]["parameters"][0]["schema"];
    let max = usize::try_from(schema["maxLength"].as_u64().unwrap()).unwrap();
    (regex(schema), max)
});

proptest! {
    /// What `CodeReference::parse` accepts is exactly what the document describes: the
    /// pattern, within the length.
    #[test]
    fn typed_references_parse_exactly_when_they_match_the_pattern(
        text in "[ -]?([0-9A-Za-z][ -]{0,2}){11,13}|[0-9A-Za-z\u{e9}._ -]{0,50}",
    ) {
        let (pattern, max) = &*TYPED_REFERENCE;
        let described = pattern.is_match(&text) && text.chars().count() <= *max;
        let parsed = ephemera_node::store::CodeReference::parse(&text).is_some();
        prop_assert_eq!(described, parsed, "{:?}", text);
    }
}

#[test]
fn issued_codes_parse_back() {
    let pattern = &*TYPED_CODE;
    let mut rng = rand::rng();
    for _ in 0..100 {
        let shown = UploadCode::generate(&mut rng).reveal();
        assert!(pattern.is_match(&shown), "{shown}");
        assert!(pattern.is_match(&shown.to_lowercase().replace('-', " ")));
    }
}
