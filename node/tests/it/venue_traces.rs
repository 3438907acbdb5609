//! The warning flow on a node (issue 20 item 4): a case worker enters a venue's trace code
//! and a case's times; the node publishes a signed, padded, content-addressed release; a
//! phone that checked in there is warned from the downloaded bytes, one that did not is
//! not; the release goes with retention; nothing of the venue, the visit or the message
//! is in the data folder or the logs.

use base64::Engine as _;
use ephemera_node::clock::ManualClock;
use ephemera_node_core::keys::venue_key;
use ephemera_proto::UnixTime;
use ephemera_proto::audit::AuditAction;
use ephemera_proto::auth::TrustedAuthorities;
use ephemera_proto::venue::{RELEASE_TRACES, SignedVenueRelease, check_in, match_check_ins};

use crate::console_session::{cookie_sign_in, with_cookie};
use crate::util::*;
use crate::venue_util::{ADDRESS, DESCRIPTION, MESSAGE, trace_body, venue};

/// The releases `node` lists from the start.
async fn releases(node: &TestNode) -> Vec<serde_json::Value> {
    let index = node.get("/v1/venue-releases").await.json();
    index["releases"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_case_worker_traces_a_venue_and_only_its_visitors_are_warned() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let (carol, carol_password) = node.staff(&admin, "carol", &["case-worker"]).await;
    let (ada, _) = node.staff(&admin, "ada", &["auditor"]).await;
    let venue_key = venue_key(&node.node.keys().pepper);
    let (entry, code) = venue(&venue_key);
    let (elsewhere, _) = venue(&venue_key);

    // Phones check in: one at the venue during the case's visit, one at another venue at
    // the same time, one at the venue on another day.
    let visit = T0.minus_seconds(3 * 3600);
    let mut rng = rand::rng();
    let visitor = check_in(&entry, visit, visit.plus_seconds(1800), &mut rng).unwrap();
    let stranger = check_in(&elsewhere, visit, visit.plus_seconds(1800), &mut rng).unwrap();
    let earlier = visit.minus_seconds(2 * 86_400);
    let other_day = check_in(&entry, earlier, earlier.plus_seconds(600), &mut rng).unwrap();

    let body = trace_body(
        &code,
        visit.minus_seconds(600),
        visit.plus_seconds(3000),
        MESSAGE,
    );
    // Who may: no session, another role, a cookie without its CSRF token are refused.
    node.post_json("/v1/venue-traces", &[], &body)
        .await
        .assert_error(401, "unauthorized");
    node.call("POST", "/v1/venue-traces", &ada, Some(body.clone()))
        .await
        .assert_error(403, "forbidden");
    let console = cookie_sign_in(&node, "carol", &carol_password).await;
    with_cookie(
        &node,
        "POST",
        "/v1/venue-traces",
        &console,
        None,
        Some(body.clone()),
    )
    .await
    .assert_error(403, "csrf-missing");
    assert!(releases(&node).await.is_empty());

    let traced = node
        .call("POST", "/v1/venue-traces", &carol, Some(body.clone()))
        .await;
    assert_eq!(
        traced.status,
        201,
        "{}",
        String::from_utf8_lossy(&traced.body)
    );
    assert_eq!(traced.header("cache-control"), Some("no-store"));
    let id = traced.json()["release"].as_str().unwrap().to_owned();

    // The phone's side: the index, then the release, immutable and content-addressed.
    let index = node.get("/v1/venue-releases").await.json();
    let listed = &index["releases"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(index["next_cursor"], listed["sequence"]);
    let path = format!("/v1/venue-releases/{id}");
    let fetched = node.get(&path).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.header("etag"), Some(format!("\"{id}\"").as_str()));
    assert_eq!(
        fetched.header("cache-control"),
        Some(ephemera_node::api::IMMUTABLE)
    );
    assert_eq!(listed["size"], fetched.body.len());
    let etag = format!("\"{id}\"");
    let again = request(node.addr, "GET", &path, &[("If-None-Match", &etag)], &[]).await;
    assert_eq!(again.status, 304);
    assert_eq!(
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &fetched.body)),
        id
    );
    let release = SignedVenueRelease::from_bytes(&fetched.body).unwrap();
    let trusted = TrustedAuthorities::new().with(node.node.keys().authority.public_key());
    let traces = release.verify(&trusted, T0).unwrap();
    assert_eq!(traces.len(), RELEASE_TRACES, "padded");
    let warnings = match_check_ins(&traces, &visitor);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].message, MESSAGE);
    assert!(match_check_ins(&traces, &stranger).is_empty());
    assert!(match_check_ins(&traces, &other_day).is_empty());

    // The cookie with its CSRF token traces too; a second release is listed after it.
    let second = with_cookie(
        &node,
        "POST",
        "/v1/venue-traces",
        &console,
        Some(&console.csrf),
        Some(body),
    )
    .await;
    assert_eq!(
        second.status,
        201,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    let cursor = listed["sequence"].as_u64().unwrap();
    let next = node
        .get(&format!("/v1/venue-releases?after={cursor}"))
        .await
        .json();
    assert_eq!(next["releases"].as_array().unwrap().len(), 1);
    assert_eq!(next["releases"][0]["id"], second.json()["release"]);

    // The audit trail names the release, never the venue or the message.
    let (_, trail) = node.node.store().audit_trail().unwrap();
    assert!(trail.iter().any(|e| e.record.action
        == AuditAction::VenueTraced {
            release: id.clone()
        }));

    // Privacy: no venue identity, entry code, trace code, visit time or message in clear in
    // the data folder or the logs.
    node.node.store().flush().unwrap();
    let folder = read_tree(dir.path());
    let logs = captured_logs();
    let entry_bytes = entry.to_bytes();
    let hex_code = hex::encode(&code);
    let base64_code = base64::engine::general_purpose::STANDARD.encode(&code);
    let visit_text = (visit.minus_seconds(600).0).to_string();
    let secrets: [(&str, &[u8]); 8] = [
        ("message", MESSAGE.as_bytes()),
        ("description", DESCRIPTION.as_bytes()),
        ("address", ADDRESS.as_bytes()),
        ("entry code", &entry_bytes[1..49]),
        ("venue share", &code[code.len() - 112..code.len() - 80]),
        ("trace code hex", &hex_code.as_bytes()[..64]),
        ("trace code base64", &base64_code.as_bytes()[..64]),
        ("case time", visit_text.as_bytes()),
    ];
    for (what, secret) in secrets {
        assert!(!contains(&folder, secret), "{what} in the data folder");
        assert!(
            !logs.contains(&*String::from_utf8_lossy(secret)),
            "{what} in the logs"
        );
    }

    // Retention: past it, the release is gone from the index and the route.
    node.clock
        .advance(u64::from(node.node.core().policy().retention_days) * 86_400 + 1);
    let counts = node.node.purge().unwrap();
    assert_eq!(counts.venue_releases, 2);
    node.get(&path).await.assert_error(404, "not-found");
    assert!(releases(&node).await.is_empty());
}

#[tokio::test]
async fn each_bad_trace_request_gets_its_own_error_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let (carol, _) = node.staff(&admin, "carol", &["case-worker"]).await;
    let own = venue_key(&node.node.keys().pepper);
    let (_, code) = venue(&own);
    let other_authority = ephemera_proto::sealed::SealingSecretKey::generate(&mut rand::rng());
    let (_, foreign) = venue(&other_authority);
    let from = T0.minus_seconds(7200);
    let until = T0.minus_seconds(3600);
    let long = "x".repeat(501);
    let cases = [
        (
            serde_json::json!({"trace_code": "not a code!", "case_from": from.0, "case_until": until.0, "message": "m"}),
            "invalid-trace-code",
        ),
        (
            trace_body(&code[..code.len() - 1], from, until, "m"),
            "invalid-trace-code",
        ),
        (
            trace_body(&foreign, from, until, "m"),
            "trace-code-of-another-authority",
        ),
        (trace_body(&code, until, from, "m"), "invalid-time-range"),
        (
            trace_body(&code, from, from.plus_seconds(25 * 3600), "m"),
            "too-many-hours",
        ),
        (trace_body(&code, from, until, &long), "message-too-long"),
        (
            serde_json::json!({"trace_code": "00", "case_from": "yesterday"}),
            "malformed-json",
        ),
    ];
    for (body, error) in cases {
        node.call("POST", "/v1/venue-traces", &carol, Some(body))
            .await
            .assert_error(400, error);
    }
    let auth = format!("Bearer {carol}");
    request(
        node.addr,
        "POST",
        "/v1/venue-traces",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        trace_body(&code, from, until, "m").to_string().as_bytes(),
    )
    .await
    .assert_error(415, "unsupported-media-type");
    node.get("/v1/venue-releases/00")
        .await
        .assert_error(400, "invalid-parameter");
    node.get(&format!("/v1/venue-releases/{}", "ab".repeat(32)))
        .await
        .assert_error(404, "not-found");
    node.get("/v1/venue-releases?after=-1")
        .await
        .assert_error(400, "invalid-parameter");
    assert!(releases(&node).await.is_empty());
    // A day-long case (24 hours, the most) is fine.
    let day_start = UnixTime(T0.0 / 3600 * 3600 - 86_400);
    let day = trace_body(&code, day_start, day_start.plus_seconds(86_399), "m");
    let traced = node
        .call("POST", "/v1/venue-traces", &carol, Some(day))
        .await;
    assert_eq!(
        traced.status,
        201,
        "{}",
        String::from_utf8_lossy(&traced.body)
    );
}
