//! API keys of lab and hospital systems through the HTTP API (issue 17, item 4): created by
//! an admin and shown once, scoped to test types, used as a bearer on `POST /v1/codes`,
//! revocable at once, with the last day used; daily quotas per key and per account answered
//! 429 with `Retry-After` to midnight UTC; every step on the audit trail under the key's id.

use ephemera_node::clock::ManualClock;
use ephemera_proto::UnixTime;

use crate::util::*;

#[tokio::test]
async fn an_admins_key_issues_codes_in_its_scope_within_its_quota_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.authority.api_key_daily_codes = 5;
    config.authority.account_daily_codes = 2;
    let node = TestNode::start_with(config, ManualClock::new(T0)).await;
    let admin = node.login().await;
    let (carol, _) = node.staff(&admin, "carol", &["case-worker"]).await;

    // Only an admin creates keys; a bad body is refused before anything is written.
    let body = serde_json::json!({"name": "lab-north", "test_types": ["confirmed"]});
    node.call("POST", "/v1/api-keys", &carol, Some(body.clone()))
        .await
        .assert_error(403, "forbidden");
    for bad in [
        serde_json::json!({"name": "lab-north", "test_types": "confirmed"}),
        serde_json::json!({"name": "lab-north", "test_types": ["pcr"]}),
        serde_json::json!({"name": "lab-north", "extra": 1}),
        serde_json::json!({"name": 7}),
    ] {
        node.call("POST", "/v1/api-keys", &admin, Some(bad))
            .await
            .assert_error(400, "malformed-json");
    }
    node.call(
        "POST",
        "/v1/api-keys",
        &admin,
        Some(serde_json::json!({"name": "lab north, Dr. X"})),
    )
    .await
    .assert_error(400, "invalid-parameter");
    let created = node.call("POST", "/v1/api-keys", &admin, Some(body)).await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let created = created.json();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("ephk_{id}_")));
    assert_eq!(created["test_types"], serde_json::json!(["confirmed"]));
    let listed = node.call("GET", "/v1/api-keys", &admin, None).await;
    assert_eq!(listed.status, 200);
    let text = String::from_utf8_lossy(&listed.body).into_owned();
    assert!(!text.contains(&key[22..]), "the secret is shown once only");
    assert_eq!(listed.json()[0]["last_used"], serde_json::Value::Null);

    // In scope: JSON and CSV; out of scope: refused.
    let issued = node.issue_as("confirmed", &key, 3, false).await;
    assert_eq!(
        issued.status,
        200,
        "{}",
        String::from_utf8_lossy(&issued.body)
    );
    assert_eq!(issued.json()["codes"].as_array().unwrap().len(), 3);
    node.issue_as("likely", &key, 1, false)
        .await
        .assert_error(403, "outside-key-scope");
    let csv = node.issue_as("confirmed", &key, 2, true).await;
    assert_eq!(csv.status, 200);
    assert_eq!(String::from_utf8(csv.body).unwrap().lines().count(), 3);
    // The quota (5 a day) is spent: 429 until midnight UTC.
    let over = node.issue_as("confirmed", &key, 1, false).await;
    over.assert_error(429, "quota-exceeded");
    let midnight = T0.day().plus(1).start().0 - T0.0;
    assert_eq!(
        over.header("retry-after"),
        Some(midnight.to_string().as_str())
    );
    // A case worker has a quota of its own (2 a day).
    for _ in 0..2 {
        node.one_code(&carol).await;
    }
    node.issue_as("confirmed", &carol, 1, false)
        .await
        .assert_error(429, "quota-exceeded");
    // A wrong secret, a malformed key: 401, as a stale session.
    let mut wrong = key.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    for bad in [wrong.as_str(), "ephk_zz", "ephk_"] {
        node.issue_as("confirmed", bad, 1, false)
            .await
            .assert_error(401, "unauthorized");
    }

    // The next day it issues again, and the list shows it was used today.
    node.clock.set(UnixTime(T0.day().plus(1).start().0 + 60));
    assert_eq!(node.issue_as("confirmed", &key, 1, false).await.status, 200);
    let admin = node.login().await;
    let listed = node.call("GET", "/v1/api-keys", &admin, None).await.json();
    let today = ephemera_node::clock::civil::format_date(T0.day().plus(1));
    assert_eq!(listed[0]["last_used"], today.as_str());

    // Revoked: 401 from the next request on; twice, unknown or malformed ids refused.
    let revoke = format!("/v1/api-keys/{id}/revoke");
    let revoked = node.call("POST", &revoke, &admin, None).await;
    assert_eq!(revoked.status, 204);
    node.issue_as("confirmed", &key, 1, false)
        .await
        .assert_error(401, "unauthorized");
    node.call("POST", &revoke, &admin, None)
        .await
        .assert_error(409, "api-key-revoked");
    node.call("POST", "/v1/api-keys/00000000000000ff/revoke", &admin, None)
        .await
        .assert_error(404, "unknown-api-key");
    node.call("POST", "/v1/api-keys/xyz/revoke", &admin, None)
        .await
        .assert_error(400, "invalid-parameter");
    let listed = node.call("GET", "/v1/api-keys", &admin, None).await.json();
    assert_eq!(listed[0]["revoked"], today.as_str());

    // The trail names the key by its id, never its secret.
    let (_, entries) = node.node.store().audit_trail().unwrap();
    let lines = trail_lines(&entries);
    let actor = format!("api-key:{id}");
    let has = |text: &str| lines.iter().any(|l| l.contains(text));
    assert!(has(&format!(
        "api-key-created id={id} name=lab-north test_types=confirmed success"
    )));
    assert!(has(&format!("{actor} codes-issued count=3 test_type=")));
    assert!(has(&format!(
        "{actor} codes-issued count=0 test_type=2 references= refused:outside-key-scope"
    )));
    assert!(has(&format!(
        "{actor} codes-issued count=0 test_type=1 references= refused:quota-exceeded"
    )));
    assert!(has(
        "account:carol codes-issued count=0 test_type=1 references= refused:quota-exceeded"
    ));
    assert!(has(&format!("api-key-revoked id={id} success")));
    assert!(has(&format!(
        "api-key-revoked id={id} refused:api-key-revoked"
    )));
    assert!(lines.iter().all(|l| !l.contains(&key[22..])));
    node.stop().await;
}

#[tokio::test]
async fn a_key_looks_up_and_revokes_only_the_codes_it_issued() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let (carol, _) = node.staff(&admin, "carol", &["case-worker"]).await;
    let create = |name: &'static str| {
        let node = &node;
        let admin = admin.clone();
        async move {
            let body = serde_json::json!({ "name": name });
            let created = node.call("POST", "/v1/api-keys", &admin, Some(body)).await;
            assert_eq!(created.status, 201);
            let created = created.json();
            (
                created["key"].as_str().unwrap().to_owned(),
                created["id"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (north, north_id) = create("lab-north").await;
    let (south, _) = create("lab-south").await;
    let reference_of = |issued: Response| {
        assert_eq!(issued.status, 200);
        issued.json()["codes"][0]["reference"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let by_north = reference_of(node.issue_as("confirmed", &north, 1, false).await);
    let by_carol = reference_of(node.issue_as("confirmed", &carol, 1, false).await);
    let status = |reference: &str| format!("/v1/codes/{reference}");
    let revoke = |reference: &str| format!("/v1/codes/{reference}/revoke");

    // The issuing key sees its code; another key, and a key asking about staff's code,
    // are told it is not theirs. Staff see every code of the authority.
    let seen = node.call("GET", &status(&by_north), &north, None).await;
    assert_eq!(
        (seen.status, seen.json()["status"].as_str()),
        (200, Some("issued"))
    );
    for (reference, key) in [(&by_north, &south), (&by_carol, &north)] {
        node.call("GET", &status(reference), key, None)
            .await
            .assert_error(403, "foreign-code-reference");
        node.call("POST", &revoke(reference), key, None)
            .await
            .assert_error(403, "foreign-code-reference");
    }
    assert_eq!(
        node.call("GET", &status(&by_north), &carol, None)
            .await
            .status,
        200
    );
    // The foreign revoke changed nothing; the issuing key's revoke takes effect.
    let revoked = node.call("POST", &revoke(&by_north), &north, None).await;
    assert_eq!(
        (revoked.status, revoked.json()["status"].as_str()),
        (200, Some("revoked"))
    );
    node.call("GET", &status("000000000000"), &north, None)
        .await
        .assert_error(404, "unknown-code-reference");

    // A revoked key looks up nothing any more.
    let revoked_key = format!("/v1/api-keys/{north_id}/revoke");
    assert_eq!(
        node.call("POST", &revoked_key, &admin, None).await.status,
        204
    );
    node.call("GET", &status(&by_north), &north, None)
        .await
        .assert_error(401, "unauthorized");

    // Every look-up and revoke is on the trail under the key's id, refusals too.
    let (_, entries) = node.node.store().audit_trail().unwrap();
    let lines = trail_lines(&entries);
    let has = |text: &str| lines.iter().any(|l| l.contains(text));
    let actor = format!("api-key:{north_id}");
    assert!(has(&format!(
        "{actor} code-status-viewed reference={by_north} success"
    )));
    assert!(has(&format!(
        "{actor} code-status-viewed reference={by_carol} refused:foreign-code-reference"
    )));
    assert!(has(&format!(
        "{actor} code-revoked reference={by_north} success"
    )));
    node.stop().await;
}
