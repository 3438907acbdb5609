//! The code lifecycle through the HTTP API (issue 17, item 5): every issued code comes
//! with a short random reference; its status (issued, used, expired, revoked, with the day
//! of the change) is looked up by reference; a revoked code is refused at `/v1/verify`
//! and `/v2/verify`; who may look up and revoke (a case worker or bulk issuer, any code of
//! the authority); each issue, look-up and revoke on the audit trail by reference only.

use ephemera_node::clock::ManualClock;
use ephemera_node::store::CodeReference;
use ephemera_proto::UnixTime;
use ephemera_proto::audit::{AuditAction, AuditOutcome};
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::token::{TokenExchange, TokenStatement};

use crate::blind_token::{blind_token_node, sealed_token_verify, sealing_key, token_keys};
use crate::util::*;

/// The day `time` falls on, `YYYY-MM-DD`.
fn date(time: UnixTime) -> String {
    ephemera_node::clock::civil::format_date(time.day())
}

#[tokio::test]
async fn a_code_has_a_reference_its_status_follows_it_and_a_revoke_stops_both_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let node = blind_token_node(dir.path()).await;
    let admin = node.login().await;
    let (carol, carol_password) = node.staff(&admin, "carol", &["case-worker"]).await;
    let (bea, _) = node.staff(&admin, "bea", &["bulk-issuer"]).await;
    let (ada, _) = node.staff(&admin, "ada", &["auditor"]).await;

    let issued = node.issue(&carol, "confirmed", None, 1).await;
    let first = &issued.codes[0];
    let reference = CodeReference::parse(&first.reference).expect("a reference");
    assert_eq!(reference.as_str(), first.reference);
    assert!(!first.code.replace('-', "").contains(&first.reference));
    let path = format!("/v1/codes/{}", first.reference);

    // Issued: looked up by the case worker who issued it, and by a bulk issuer (any code
    // of the authority); typed in lower case with a hyphen it is the same reference.
    let status = node.call("GET", &path, &carol, None).await;
    assert_eq!(
        status.status,
        200,
        "{}",
        String::from_utf8_lossy(&status.body)
    );
    assert_eq!(status.header("cache-control"), Some("no-store"));
    let body = status.json();
    assert_eq!(body["reference"], first.reference.as_str());
    assert_eq!(body["status"], "issued");
    assert_eq!(body["test_type"], "confirmed");
    assert_eq!(body["issued"], date(T0));
    assert!(body["changed"].is_null());
    let typed = format!(
        "/v1/codes/{}-{}",
        first.reference[..6].to_ascii_lowercase(),
        &first.reference[6..]
    );
    let by_bea = node.call("GET", &typed, &bea, None).await;
    assert_eq!(by_bea.status, 200);
    assert_eq!(by_bea.json()["reference"], first.reference.as_str());

    // Refusals: no session, the wrong role, a malformed and an unknown reference.
    node.get(&path).await.assert_error(401, "unauthorized");
    node.call("GET", &path, &ada, None)
        .await
        .assert_error(403, "forbidden");
    node.call("POST", &format!("{path}/revoke"), &ada, None)
        .await
        .assert_error(403, "forbidden");
    for bad in ["abc", "0123456789AU", "0123456789ABCDEF", "%00%00"] {
        node.call("GET", &format!("/v1/codes/{bad}"), &carol, None)
            .await
            .assert_error(400, "invalid-parameter");
    }
    let unknown = if first.reference == "000000000000" {
        "111111111111"
    } else {
        "000000000000"
    };
    node.call("GET", &format!("/v1/codes/{unknown}"), &carol, None)
        .await
        .assert_error(404, "unknown-code-reference");
    node.call("POST", &format!("/v1/codes/{unknown}/revoke"), &bea, None)
        .await
        .assert_error(404, "unknown-code-reference");

    // Revoked by the bulk issuer: /v1/verify refuses it as any unknown code.
    let revoked = node
        .call("POST", &format!("{path}/revoke"), &bea, None)
        .await;
    assert_eq!(
        revoked.status,
        200,
        "{}",
        String::from_utf8_lossy(&revoked.body)
    );
    let body = revoked.json();
    assert_eq!(body["status"], "revoked");
    assert_eq!(body["changed"], date(T0));
    assert_eq!(body["issued"], date(T0));
    let contents = pet_contents(2, T0.day());
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    node.certify(&first.code, &contents, &hmac_key)
        .await
        .unwrap_err()
        .assert_error(400, "invalid-code");
    node.call("POST", &format!("{path}/revoke"), &carol, None)
        .await
        .assert_error(409, "code-not-revocable");
    let again = node.call("GET", &path, &carol, None).await.json();
    assert_eq!(again["status"], "revoked");

    // A revoked code is refused at /v2/verify too (inside the seal, as any spent code).
    let second = node
        .issue(&carol, "confirmed", None, 1)
        .await
        .codes
        .remove(0);
    let revoke = format!("/v1/codes/{}/revoke", second.reference);
    assert_eq!(node.call("POST", &revoke, &carol, None).await.status, 200);
    let seal = sealing_key(&node).await;
    let keys = token_keys(&node).await;
    let phone = RevisionSecret::generate(&mut rand::rng());
    let audience = node.node.core().policy().audience;
    let statement = TokenStatement {
        audience: &audience,
        contents: &contents,
        binding: HmacBinding::Upload(phone.key()),
    };
    let code = ephemera_proto::auth::UploadCode::parse(&second.code).unwrap();
    let today = T0.day();
    let (_, request) =
        TokenExchange::prepare(&keys, today, &statement, &code, &mut rand::rng()).unwrap();
    let refused = sealed_token_verify(&node, seal, &request).await;
    assert_eq!(refused.3, 400, "{}", String::from_utf8_lossy(&refused.4));
    assert!(String::from_utf8_lossy(&refused.4).contains("invalid-code"));

    // Used: the day it was redeemed; it cannot be revoked after.
    let third = node.issue(&carol, "likely", None, 1).await.codes.remove(0);
    node.certify(&third.code, &contents, &hmac_key)
        .await
        .unwrap();
    let used = node
        .call(
            "GET",
            &format!("/v1/codes/{}", third.reference),
            &carol,
            None,
        )
        .await
        .json();
    assert_eq!(used["status"], "used");
    assert_eq!(used["test_type"], "likely");
    assert_eq!(used["changed"], date(T0));
    node.call(
        "POST",
        &format!("/v1/codes/{}/revoke", third.reference),
        &carol,
        None,
    )
    .await
    .assert_error(409, "code-not-revocable");

    // Expired: after its expiry day, on the day of its expiry.
    let fourth = node
        .issue(&carol, "confirmed", None, 1)
        .await
        .codes
        .remove(0);
    let expiry = UnixTime(fourth.expires_at);
    node.clock.set(expiry.day().plus(1).start());
    let carol = node.login_as("carol", &carol_password).await;
    let fourth_path = format!("/v1/codes/{}", fourth.reference);
    let expired = node.call("GET", &fourth_path, &carol, None).await.json();
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["changed"], date(expiry));
    assert_eq!(expired["expires"], date(expiry));
    let refusal = node
        .call("POST", &format!("{fourth_path}/revoke"), &carol, None)
        .await;
    refusal.assert_error(409, "code-not-revocable");
    assert!(
        refusal.json()["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // The trail: each issue by reference, each look-up and revoke, refusals too; never a
    // code.
    let (_, entries) = node.node.store().audit_trail().unwrap();
    let actions: Vec<(String, AuditAction, AuditOutcome)> = entries
        .iter()
        .map(|e| {
            (
                e.record.actor.to_string(),
                e.record.action.clone(),
                e.record.outcome.clone(),
            )
        })
        .collect();
    assert!(actions.contains(&(
        "account:carol".to_owned(),
        AuditAction::CodesIssuedWithReferences {
            test_type: ephemera_proto::report::ReportType::ConfirmedTest,
            references: vec![first.reference.clone()],
        },
        AuditOutcome::Success
    )));
    assert!(actions.contains(&(
        "account:bea".to_owned(),
        AuditAction::CodeRevoked {
            reference: first.reference.clone(),
        },
        AuditOutcome::Success
    )));
    assert!(actions.contains(&(
        "account:carol".to_owned(),
        AuditAction::CodeRevoked {
            reference: first.reference.clone(),
        },
        AuditOutcome::Refused("code-not-revocable".into())
    )));
    assert!(actions.contains(&(
        "account:carol".to_owned(),
        AuditAction::CodeStatusViewed {
            reference: unknown.to_owned(),
        },
        AuditOutcome::Refused("unknown-code-reference".into())
    )));
    let viewed = actions
        .iter()
        .filter(|(_, a, _)| matches!(a, AuditAction::CodeStatusViewed { .. }))
        .count();
    assert_eq!(viewed, 6, "every look-up, refused ones too");
    let text: String = entries
        .iter()
        .map(|e| e.record.action.to_string())
        .collect();
    for code in [&first.code, &second.code, &third.code, &fourth.code] {
        assert!(!text.contains(code.as_str()));
        assert!(!text.contains(&code.replace('-', "")));
    }
    node.stop().await;
}

#[tokio::test]
async fn references_are_distinct_and_a_revoke_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let session = node.login().await;
    let issued = node.issue(&session, "confirmed", None, 40).await;
    let mut references: Vec<&str> = issued.codes.iter().map(|c| c.reference.as_str()).collect();
    references.sort_unstable();
    references.dedup();
    assert_eq!(references.len(), 40);
    let doomed = &issued.codes[7];
    let revoke = format!("/v1/codes/{}/revoke", doomed.reference);
    assert_eq!(node.call("POST", &revoke, &session, None).await.status, 200);
    let (name, password) = node.case_worker.clone().unwrap();
    let clock = node.clock.clone();
    node.stop().await;

    let mut node = TestNode::start(dir.path(), clock).await;
    node.case_worker = Some((name, password));
    let session = node.login().await;
    let contents = pet_contents(2, T0.day());
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    node.certify(&doomed.code, &contents, &hmac_key)
        .await
        .unwrap_err()
        .assert_error(400, "invalid-code");
    let status = node
        .call(
            "GET",
            &format!("/v1/codes/{}", doomed.reference),
            &session,
            None,
        )
        .await;
    assert_eq!(status.json()["status"], "revoked");
    // Its neighbours still work.
    node.certify(&issued.codes[8].code, &contents, &hmac_key)
        .await
        .unwrap();
    // Statuses are kept as long as the audit records naming them: the purge after the
    // audit retention past their expiry day forgets them.
    let audit_days = node.node.core().policy().audit_retention_days;
    let expiry = UnixTime(doomed.expires_at).day();
    node.clock.set(expiry.plus(audit_days).start());
    node.node.purge().unwrap();
    let (name, password) = node.case_worker.clone().unwrap();
    let session = node.login_as(&name, &password).await;
    let kept = format!("/v1/codes/{}", doomed.reference);
    assert_eq!(node.call("GET", &kept, &session, None).await.status, 200);
    node.clock.set(expiry.plus(audit_days + 1).start());
    node.node.purge().unwrap();
    let session = node.login_as(&name, &password).await;
    node.call("GET", &kept, &session, None)
        .await
        .assert_error(404, "unknown-code-reference");
    node.stop().await;
}
