//! Staff accounts through the HTTP API (issue 17, items 1 to 3): roles and what each may do,
//! grants never above the granter's roles, the last admin kept, the forced first password
//! change and its rules, sessions kept in the database (a restart keeps them; the idle
//! timeout, the lifetime, sign-out everywhere and a disable end them at once), TOTP with
//! recovery codes, and sign-in back-off that does not tell names apart.

use ephemera_node::accounts::TotpSecret;
use ephemera_node::api::types::LoginResponse;
use ephemera_node::clock::{Clock, ManualClock};
use ephemera_proto::UnixTime;

use crate::util::*;

#[tokio::test]
async fn the_first_sign_in_may_only_set_a_long_uncommon_password() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let one_time = node.create(&admin, "bob", &["case-worker"]).await;
    let answer = node
        .sign_in(serde_json::json!({"name": "bob", "password": one_time}))
        .await;
    assert_eq!(answer.status, 200);
    let login: LoginResponse = serde_json::from_slice(&answer.body).unwrap();
    assert!(login.password_change_required);
    assert_eq!(login.roles, ["case-worker"]);
    let bob = login.token;
    // Until it changes, the session does nothing else.
    node.issue_as("confirmed", &bob, 1, false)
        .await
        .assert_error(403, "password-change-required");
    node.call("POST", "/v1/session/totp", &bob, None)
        .await
        .assert_error(403, "password-change-required");
    let who = node.call("GET", "/v1/session", &bob, None).await.json();
    assert_eq!(who["password_change_required"], true);
    let change = |new: &str, current: &str| serde_json::json!({"current_password": current, "new_password": new});
    for (new, code) in [
        ("short", "weak-password"),
        ("qwerty123456", "weak-password"),
        ("Password1234!", "weak-password"),
        ("bob-is-my-name-here", "weak-password"),
    ] {
        node.call(
            "POST",
            "/v1/session/password",
            &bob,
            Some(change(new, &one_time)),
        )
        .await
        .assert_error(400, code);
    }
    node.call(
        "POST",
        "/v1/session/password",
        &bob,
        Some(change(
            "a good long passphrase",
            "not the one-time password",
        )),
    )
    .await
    .assert_error(401, "invalid-credentials");
    node.call(
        "POST",
        "/v1/session/password",
        &bob,
        Some(change(&one_time, &one_time)),
    )
    .await
    .assert_error(400, "weak-password");
    let changed = node
        .call(
            "POST",
            "/v1/session/password",
            &bob,
            Some(change("a good long passphrase", &one_time)),
        )
        .await;
    assert_eq!(changed.status, 204);
    // The same session is now free, and a case worker issues one code at a time.
    assert_eq!(node.issue_as("confirmed", &bob, 1, false).await.status, 200);
    node.issue_as("confirmed", &bob, 2, false)
        .await
        .assert_error(403, "forbidden");
    node.issue_as("confirmed", &bob, 1, true)
        .await
        .assert_error(403, "forbidden");
    // The one-time password is gone; the new one signs in, free of restrictions.
    node.sign_in(serde_json::json!({"name": "bob", "password": one_time}))
        .await
        .assert_error(401, "invalid-credentials");
    let again = node
        .sign_in(serde_json::json!({"name": "bob", "password": "a good long passphrase"}))
        .await
        .json();
    assert_eq!(again["password_change_required"], false);
}

#[tokio::test]
async fn roles_bound_what_each_account_does_and_grants_never_exceed_the_granter() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let (bulk, _) = node.staff(&admin, "bulk", &["bulk-issuer"]).await;
    let (auditor, _) = node.staff(&admin, "audit", &["auditor"]).await;
    let (lead, _) = node.staff(&admin, "lead", &["admin", "case-worker"]).await;
    assert_eq!(
        node.issue_as("confirmed", &bulk, 5, false).await.status,
        200
    );
    let csv = node.issue_as("confirmed", &bulk, 2, true).await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    node.issue_as("confirmed", &auditor, 1, false)
        .await
        .assert_error(403, "forbidden");
    for token in [&bulk, &auditor] {
        node.call("GET", "/v1/accounts", token, None)
            .await
            .assert_error(403, "forbidden");
        node.call(
            "POST",
            "/v1/accounts",
            token,
            Some(serde_json::json!({"name": "x", "roles": ["auditor"]})),
        )
        .await
        .assert_error(403, "forbidden");
    }
    // An admin without `auditor` grants neither it nor takes it away; it cannot raise itself.
    node.call(
        "POST",
        "/v1/accounts",
        &lead,
        Some(serde_json::json!({"name": "eve", "roles": ["auditor"]})),
    )
    .await
    .assert_error(403, "above-own-roles");
    node.call(
        "POST",
        "/v1/accounts/lead/roles",
        &lead,
        Some(serde_json::json!({"roles": ["admin", "case-worker", "bulk-issuer"]})),
    )
    .await
    .assert_error(403, "above-own-roles");
    node.call(
        "POST",
        "/v1/accounts/audit/roles",
        &lead,
        Some(serde_json::json!({"roles": ["case-worker"]})),
    )
    .await
    .assert_error(403, "above-own-roles");
    assert_eq!(
        node.create(&lead, "carol", &["case-worker"]).await.len(),
        24
    );
    for (body, status, code) in [
        (
            serde_json::json!({"name": "x", "roles": ["root"]}),
            400,
            "unknown-role",
        ),
        (
            serde_json::json!({"name": "x", "roles": []}),
            400,
            "unknown-role",
        ),
        (
            serde_json::json!({"name": "x", "roles": "admin"}),
            400,
            "malformed-json",
        ),
        (
            serde_json::json!({"name": "a/b", "roles": ["auditor"]}),
            400,
            "invalid-parameter",
        ),
        (
            serde_json::json!({"name": "x".repeat(65), "roles": ["auditor"]}),
            400,
            "invalid-parameter",
        ),
        (
            serde_json::json!({"name": "carol", "roles": ["auditor"]}),
            409,
            "account-exists",
        ),
        (
            serde_json::json!({"name": "x", "roles": ["auditor"], "extra": 1}),
            400,
            "malformed-json",
        ),
    ] {
        node.call("POST", "/v1/accounts", &admin, Some(body))
            .await
            .assert_error(status, code);
    }
    node.call(
        "POST",
        "/v1/accounts/nobody/roles",
        &admin,
        Some(serde_json::json!({"roles": ["auditor"]})),
    )
    .await
    .assert_error(404, "unknown-account");
    let listed = node.call("GET", "/v1/accounts", &admin, None).await.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "bulk", "carol", "caseworker", "lead"]);
    assert!(
        !listed.to_string().contains("password\":\""),
        "no secret listed"
    );
}

#[tokio::test]
async fn the_last_enabled_admin_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    node.call("POST", "/v1/accounts/caseworker/disable", &admin, None)
        .await
        .assert_error(409, "last-admin");
    node.call(
        "POST",
        "/v1/accounts/caseworker/roles",
        &admin,
        Some(serde_json::json!({"roles": ["case-worker"]})),
    )
    .await
    .assert_error(409, "last-admin");
    let (second, _) = node.staff(&admin, "second", &["admin"]).await;
    assert_eq!(
        node.call("POST", "/v1/accounts/caseworker/disable", &second, None)
            .await
            .status,
        204
    );
    node.call("POST", "/v1/accounts/second/disable", &second, None)
        .await
        .assert_error(409, "last-admin");
    // The disabled admin's session ended with it.
    node.call("GET", "/v1/accounts", &admin, None)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn a_disable_or_a_reset_ends_sessions_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let (bob, password) = node.staff(&admin, "bob", &["case-worker"]).await;
    assert_eq!(node.issue_as("confirmed", &bob, 1, false).await.status, 200);
    assert_eq!(
        node.call("POST", "/v1/accounts/bob/disable", &admin, None)
            .await
            .status,
        204
    );
    node.issue_as("confirmed", &bob, 1, false)
        .await
        .assert_error(401, "unauthorized");
    // A disabled account's right password gets the answer of a wrong one.
    node.sign_in(serde_json::json!({"name": "bob", "password": password}))
        .await
        .assert_error(401, "invalid-credentials");
    assert_eq!(
        node.call("POST", "/v1/accounts/bob/enable", &admin, None)
            .await
            .status,
        204
    );
    let bob = node.login_as("bob", &password).await;
    let reset = node
        .call("POST", "/v1/accounts/bob/reset-password", &admin, None)
        .await
        .json();
    node.issue_as("confirmed", &bob, 1, false)
        .await
        .assert_error(401, "unauthorized");
    let one_time = reset["password"].as_str().unwrap();
    node.first_sign_in("bob", one_time, "another long passphrase")
        .await;
    node.call("POST", "/v1/accounts/a%2Fb/disable", &admin, None)
        .await
        .assert_error(400, "invalid-parameter");
    node.call("POST", "/v1/accounts/nobody/disable", &admin, None)
        .await
        .assert_error(404, "unknown-account");
}

#[tokio::test]
async fn sessions_survive_a_restart_and_end_when_idle_at_their_lifetime_or_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut config = test_config(dir.path());
    config.authority.session_idle_seconds = 600;
    config.authority.session_lifetime_seconds = 3600;
    let node = TestNode::start_with(config.clone(), clock.clone()).await;
    let (name, password) = node.case_worker.clone().unwrap();
    let session = node.login().await;
    let token_on_disk = session.clone();
    node.stop().await;
    assert!(
        !contains(&read_tree(&dir.path().join("db")), token_on_disk.as_bytes()),
        "kept as a hash only"
    );
    let mut node = TestNode::start_with(config.clone(), clock.clone()).await;
    node.case_worker = Some((name.clone(), password.clone()));
    assert_eq!(
        node.issue_as("confirmed", &session, 1, false).await.status,
        200,
        "kept"
    );
    // Used every 9 minutes it lives on; 10 minutes unused end it.
    for _ in 0..3 {
        clock.advance(540);
        assert_eq!(
            node.issue_as("confirmed", &session, 1, false).await.status,
            200
        );
    }
    clock.advance(600);
    node.issue_as("confirmed", &session, 1, false)
        .await
        .assert_error(401, "unauthorized");
    // However busy, a session ends at its lifetime.
    let session = node.login().await;
    let started = clock.now();
    while clock.now().0 + 300 < started.plus_seconds(3600).0 {
        clock.advance(300);
        assert_eq!(
            node.issue_as("confirmed", &session, 1, false).await.status,
            200
        );
    }
    clock.set(started.plus_seconds(3600));
    node.issue_as("confirmed", &session, 1, false)
        .await
        .assert_error(401, "unauthorized");
    // Sign-out ends one session; sign-out everywhere ends them all.
    let a = node.login().await;
    let b = node.login().await;
    let c = node.login().await;
    assert_eq!(node.logout(&a).await.status, 204);
    node.issue_as("confirmed", &a, 1, false)
        .await
        .assert_error(401, "unauthorized");
    node.logout(&a).await.assert_error(401, "unauthorized");
    assert_eq!(node.issue_as("confirmed", &b, 1, false).await.status, 200);
    assert_eq!(
        node.call("DELETE", "/v1/sessions", &b, None).await.status,
        204
    );
    for token in [&b, &c] {
        node.issue_as("confirmed", token, 1, false)
            .await
            .assert_error(401, "unauthorized");
    }
    node.stop().await;
}

#[tokio::test]
async fn totp_signs_in_with_a_computed_code_and_recovery_codes_work_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut config = test_config(dir.path());
    // Room for the wrong codes below within one window.
    config.authority.login_failures_per_user = 20;
    let node = TestNode::start_with(config, clock.clone()).await;
    let (name, password) = node.case_worker.clone().unwrap();
    let admin = node.login().await;
    let enrolment = node
        .call("POST", "/v1/session/totp", &admin, None)
        .await
        .json();
    let secret = TotpSecret::from_base32(enrolment["secret"].as_str().unwrap()).unwrap();
    assert!(
        enrolment["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Ephemera:caseworker?secret=")
    );
    let confirm = |code: String| Some(serde_json::json!({"code": code}));
    let wrong = format!(
        "{:06}",
        (secret.code_at(clock.now()).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    node.call(
        "POST",
        "/v1/session/totp/confirm",
        &admin,
        confirm(wrong.clone()),
    )
    .await
    .assert_error(400, "invalid-totp-code");
    let codes = node
        .call(
            "POST",
            "/v1/session/totp/confirm",
            &admin,
            confirm(secret.code_at(clock.now())),
        )
        .await
        .json();
    let recovery: Vec<String> = codes["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);

    let with = |extra: serde_json::Value| {
        let mut body = serde_json::json!({"name": name, "password": password});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    node.sign_in(with(serde_json::json!({})))
        .await
        .assert_error(401, "totp-required");
    node.sign_in(with(serde_json::json!({"totp": wrong})))
        .await
        .assert_error(401, "invalid-credentials");
    // The code confirmed with is spent: the next step's works, once.
    node.sign_in(with(
        serde_json::json!({"totp": secret.code_at(clock.now())}),
    ))
    .await
    .assert_error(401, "invalid-credentials");
    clock.advance(30);
    let code = secret.code_at(clock.now());
    assert_eq!(
        node.sign_in(with(serde_json::json!({"totp": code})))
            .await
            .status,
        200
    );
    node.sign_in(with(serde_json::json!({"totp": code})))
        .await
        .assert_error(401, "invalid-credentials");
    // A wrong password with a right code is a wrong password.
    clock.advance(30);
    node.sign_in(
        serde_json::json!({"name": name, "password": "wrong", "totp": secret.code_at(clock.now())}),
    )
    .await
    .assert_error(401, "invalid-credentials");
    let by_recovery = node
        .sign_in(with(
            serde_json::json!({"recovery_code": recovery[0].to_lowercase()}),
        ))
        .await;
    assert_eq!(by_recovery.status, 200);
    node.sign_in(with(serde_json::json!({"recovery_code": recovery[0]})))
        .await
        .assert_error(401, "invalid-credentials");
    // A new set replaces the old one.
    let token = by_recovery.json()["token"].as_str().unwrap().to_owned();
    let renewed = node
        .call("POST", "/v1/session/recovery-codes", &token, None)
        .await
        .json();
    node.sign_in(with(serde_json::json!({"recovery_code": recovery[1]})))
        .await
        .assert_error(401, "invalid-credentials");
    let fresh = renewed["codes"][0].as_str().unwrap();
    assert_eq!(
        node.sign_in(with(serde_json::json!({"recovery_code": fresh})))
            .await
            .status,
        200
    );
    // Two sign-ins at once with one code: exactly one gets in.
    let twice = renewed["codes"][1].as_str().unwrap();
    let (a, b) = tokio::join!(
        node.sign_in(with(serde_json::json!({"recovery_code": twice}))),
        node.sign_in(with(serde_json::json!({"recovery_code": twice}))),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "a recovery code is spent once");
    node.sign_in(with(serde_json::json!({"totp": ""})))
        .await
        .assert_error(400, "invalid-parameter");
}

#[tokio::test]
async fn require_totp_lets_an_account_without_it_only_enrol() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut config = test_config(dir.path());
    config.authority.require_totp = true;
    let node = TestNode::start_with(config, clock.clone()).await;
    let (name, password) = node.case_worker.clone().unwrap();
    let answer = node
        .sign_in(serde_json::json!({"name": name, "password": password}))
        .await
        .json();
    assert_eq!(answer["totp_enrolment_required"], true);
    let session = answer["token"].as_str().unwrap().to_owned();
    node.issue_as("confirmed", &session, 1, false)
        .await
        .assert_error(403, "totp-enrolment-required");
    node.call("POST", "/v1/session/recovery-codes", &session, None)
        .await
        .assert_error(403, "totp-enrolment-required");
    let enrolment = node
        .call("POST", "/v1/session/totp", &session, None)
        .await
        .json();
    let secret = TotpSecret::from_base32(enrolment["secret"].as_str().unwrap()).unwrap();
    let confirmed = node
        .call(
            "POST",
            "/v1/session/totp/confirm",
            &session,
            Some(serde_json::json!({"code": secret.code_at(clock.now())})),
        )
        .await;
    assert_eq!(confirmed.status, 200);
    assert_eq!(
        node.issue_as("confirmed", &session, 1, false).await.status,
        200
    );
}

#[tokio::test]
async fn sign_in_backs_off_per_name_over_sources_alike_for_names_that_are_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.authority.login_failures_per_user = 2;
    config.http.source_header = Some("X-Forwarded-For".to_owned());
    let node = TestNode::start_with(config, ManualClock::new(T0)).await;
    let (name, password) = node.case_worker.clone().unwrap();
    let mut seen = Vec::new();
    for target in [name.as_str(), "nobody-at-all"] {
        let mut answers = Vec::new();
        // Ten sources with two guesses each spend the name's budget over all sources (20).
        for source in 0..11 {
            let from = format!("10.0.0.{source}");
            for _ in 0..2 {
                let answer = node
                    .post_json(
                        "/v1/session",
                        &[("X-Forwarded-For", &from)],
                        &serde_json::json!({"name": target, "password": "wrong guess"}),
                    )
                    .await;
                answers.push((answer.status, answer.json()));
            }
        }
        assert!(answers[..20].iter().all(|(s, _)| *s == 401));
        assert!(answers[20..].iter().all(|(s, _)| *s == 429), "{answers:?}");
        seen.push(answers);
    }
    assert_eq!(
        seen[0], seen[1],
        "the same answers whether or not the name is an account's"
    );
    // The right password waits too, from a new source, until the window passes.
    node.post_json(
        "/v1/session",
        &[("X-Forwarded-For", "10.0.1.1")],
        &serde_json::json!({"name": name, "password": password}),
    )
    .await
    .assert_error(429, "too-many-attempts");
    node.clock.advance(15 * 60);
    assert_eq!(
        node.post_json(
            "/v1/session",
            &[("X-Forwarded-For", "10.0.1.1")],
            &serde_json::json!({"name": name, "password": password}),
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn account_changes_are_in_the_audit_trail_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(UnixTime(T0.0))).await;
    let admin = node.login().await;
    let one_time = node.create(&admin, "bob", &["case-worker"]).await;
    node.call(
        "POST",
        "/v1/accounts/bob/roles",
        &admin,
        Some(serde_json::json!({"roles": ["root"]})),
    )
    .await
    .assert_error(400, "unknown-role");
    node.call(
        "POST",
        "/v1/accounts",
        &admin,
        Some(serde_json::json!({"name": "Tr0ub4dor&3 typed here", "roles": ["auditor"]})),
    )
    .await
    .assert_error(400, "invalid-parameter");
    node.call("POST", "/v1/accounts/bob/disable", &admin, None)
        .await;
    node.call("DELETE", "/v1/sessions", &admin, None).await;
    node.stop().await;
    let trail = ephemera_node::store::SledReportStore::open(
        &dir.path().join("db"),
        &dir.path().join("blobs"),
        &dir.path().join("keys").join("data"),
    )
    .unwrap();
    let (_, entries) = ephemera_node::store::ReportStore::audit_trail(&trail).unwrap();
    let lines = trail_lines(&entries);
    let tail = &lines[lines.len() - 6..];
    assert_eq!(
        tail,
        [
            "account:caseworker sign-in success",
            "account:caseworker account-created account=bob roles=case-worker success",
            "account:caseworker roles-changed account=bob roles=(unknown-role) refused:unknown-role",
            "account:caseworker account-created account=(invalid-name) roles=auditor refused:invalid-parameter",
            "account:caseworker account-disabled account=bob success",
            "account:caseworker sessions-revoked account=caseworker success",
        ]
    );
    assert!(!lines.concat().contains(&one_time));
    assert!(
        !lines.concat().contains("Tr0ub4dor"),
        "a name that is none is not kept"
    );
}
