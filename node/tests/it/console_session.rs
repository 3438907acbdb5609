//! The console's cookie sessions through the HTTP API (issue 17 item 3): the session token
//! goes only into an HttpOnly, Secure, SameSite=Strict `__Host-` cookie; every request the
//! cookie authenticates needs the session's CSRF token as `X-CSRF-Token`; a missing, forged
//! or other session's token, and an ended or disabled session's cookie, each get their own
//! error; sign-out clears the cookie; bearer tokens work as before.

use ephemera_node::clock::ManualClock;

use crate::util::*;

const COOKIE: &str = "__Host-ephemera-session";

/// A console session: the cookie's value and the CSRF token.
pub(crate) struct Console {
    cookie: String,
    pub(crate) csrf: String,
}

impl Console {
    fn cookie_header(&self) -> String {
        format!("other=1; {COOKIE}={}", self.cookie)
    }
}

pub(crate) async fn cookie_sign_in(node: &TestNode, name: &str, password: &str) -> Console {
    let answer = node
        .post_json(
            "/v1/session/cookie",
            &[],
            &serde_json::json!({"name": name, "password": password}),
        )
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let set = answer.header("set-cookie").expect("a cookie").to_owned();
    let (pair, attributes) = set.split_once(';').unwrap();
    let cookie = pair.strip_prefix(&format!("{COOKIE}=")).unwrap().to_owned();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(attributes.contains(attribute), "{attribute} in {set}");
    }
    assert!(!attributes.contains("Domain"), "{set}");
    let body = answer.json();
    assert!(
        body.get("token").is_none(),
        "the token stays in the cookie: {body}"
    );
    assert!(!String::from_utf8_lossy(&answer.body).contains(&cookie));
    assert_eq!(body["account"], name);
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 64);
    assert!(csrf.bytes().all(|b| b.is_ascii_hexdigit()));
    Console { cookie, csrf }
}

pub(crate) async fn with_cookie(
    node: &TestNode,
    method: &str,
    path: &str,
    console: &Console,
    csrf: Option<&str>,
    body: Option<serde_json::Value>,
) -> Response {
    let cookie = console.cookie_header();
    let mut headers = vec![("Cookie", cookie.as_str())];
    if let Some(csrf) = csrf {
        headers.push(("X-CSRF-Token", csrf));
    }
    let bytes = match &body {
        Some(body) => {
            headers.push(("Content-Type", "application/json"));
            body.to_string().into_bytes()
        }
        None => Vec::new(),
    };
    request(node.addr, method, path, &headers, &bytes).await
}

fn assert_clears_cookie(answer: &Response) {
    let set = answer.header("set-cookie").expect("the cookie is cleared");
    assert!(set.starts_with(&format!("{COOKIE}=;")), "{set}");
    assert!(set.contains("Max-Age=0"), "{set}");
}

#[tokio::test]
async fn cookie_requests_need_their_own_sessions_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let (_, password) = node.staff(&admin, "bob", &["case-worker"]).await;
    let bob = cookie_sign_in(&node, "bob", &password).await;
    let other = cookie_sign_in(&node, "bob", &password).await;
    assert_ne!(bob.csrf, other.csrf);

    let who = with_cookie(&node, "GET", "/v1/session", &bob, Some(&bob.csrf), None).await;
    assert_eq!(who.status, 200);
    assert_eq!(who.json()["account"], "bob");
    let issue = serde_json::json!({"test_type": "confirmed"});
    let issued = with_cookie(
        &node,
        "POST",
        "/v1/codes",
        &bob,
        Some(&bob.csrf),
        Some(issue.clone()),
    )
    .await;
    assert_eq!(
        issued.status,
        200,
        "{}",
        String::from_utf8_lossy(&issued.body)
    );

    // Missing, forged, another session's: three refusals, each its own, nothing issued.
    let zeros = "00".repeat(32);
    for (csrf, code) in [
        (None, "csrf-missing"),
        (Some(""), "csrf-missing"),
        (Some(zeros.as_str()), "csrf-invalid"),
        (Some("not hex at all"), "csrf-invalid"),
        (Some(other.csrf.as_str()), "csrf-session-mismatch"),
    ] {
        with_cookie(&node, "POST", "/v1/codes", &bob, csrf, Some(issue.clone()))
            .await
            .assert_error(403, code);
        with_cookie(&node, "GET", "/v1/session", &bob, csrf, None)
            .await
            .assert_error(403, code);
    }
    // One changed character of a real token: forged, not another session's.
    let mut edited = bob.csrf.clone().into_bytes();
    edited[40] = if edited[40] == b'0' { b'1' } else { b'0' };
    with_cookie(
        &node,
        "GET",
        "/v1/session",
        &bob,
        Some(std::str::from_utf8(&edited).unwrap()),
        None,
    )
    .await
    .assert_error(403, "csrf-invalid");

    // The role checks stay the server's: a case worker's cookie may not list accounts.
    with_cookie(&node, "GET", "/v1/accounts", &bob, Some(&bob.csrf), None)
        .await
        .assert_error(403, "forbidden");

    // A reload gets the session and its token back with the cookie alone; not with a
    // bearer token, and not without the cookie.
    let resumed = with_cookie(&node, "GET", "/v1/session/csrf", &bob, None, None).await;
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.json()["csrf_token"], bob.csrf.as_str());
    assert_eq!(resumed.json()["roles"], serde_json::json!(["case-worker"]));
    node.get("/v1/session/csrf")
        .await
        .assert_error(401, "unauthorized");
    node.call("GET", "/v1/session/csrf", &admin, None)
        .await
        .assert_error(401, "unauthorized");

    // A bearer token works as before, and wins over a cookie sent beside it.
    let auth = format!("Bearer {admin}");
    let cookie = bob.cookie_header();
    let both = request(
        node.addr,
        "GET",
        "/v1/session",
        &[("Authorization", &auth), ("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(both.status, 200);
    assert_ne!(both.json()["account"], "bob");
    node.stop().await;
}

#[tokio::test]
async fn ended_and_disabled_sessions_cookies_are_refused_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let (_, password) = node.staff(&admin, "carol", &["auditor"]).await;

    // Sign-out with the cookie ends the session and clears the cookie.
    let first = cookie_sign_in(&node, "carol", &password).await;
    let out = with_cookie(
        &node,
        "DELETE",
        "/v1/session",
        &first,
        Some(&first.csrf),
        None,
    )
    .await;
    assert_eq!(out.status, 204);
    assert_clears_cookie(&out);
    let ended = with_cookie(&node, "GET", "/v1/audit", &first, Some(&first.csrf), None).await;
    ended.assert_error(401, "session-ended");
    assert_clears_cookie(&ended);
    with_cookie(&node, "GET", "/v1/session/csrf", &first, None, None)
        .await
        .assert_error(401, "session-ended");
    // The ended session's CSRF token replayed with a new session's cookie.
    let second = cookie_sign_in(&node, "carol", &password).await;
    with_cookie(&node, "GET", "/v1/audit", &second, Some(&first.csrf), None)
        .await
        .assert_error(403, "csrf-session-mismatch");
    let audit = with_cookie(&node, "GET", "/v1/audit", &second, Some(&second.csrf), None).await;
    assert_eq!(audit.status, 200);

    // Sign-out everywhere ends this one and the others, and clears the cookie.
    let third = cookie_sign_in(&node, "carol", &password).await;
    let everywhere = with_cookie(
        &node,
        "DELETE",
        "/v1/sessions",
        &third,
        Some(&third.csrf),
        None,
    )
    .await;
    assert_eq!(everywhere.status, 204);
    assert_clears_cookie(&everywhere);
    with_cookie(&node, "GET", "/v1/audit", &second, Some(&second.csrf), None)
        .await
        .assert_error(401, "session-ended");

    // An admin's disable ends the account's cookie sessions at once.
    let fourth = cookie_sign_in(&node, "carol", &password).await;
    let disabled = node
        .call("POST", "/v1/accounts/carol/disable", &admin, None)
        .await;
    assert_eq!(disabled.status, 204);
    with_cookie(&node, "GET", "/v1/audit", &fourth, Some(&fourth.csrf), None)
        .await
        .assert_error(401, "session-ended");
    // A cookie that was never a session's is ended too, and a disabled account cannot
    // get a new one.
    let made_up = Console {
        cookie: "ab".repeat(32),
        csrf: fourth.csrf.clone(),
    };
    with_cookie(
        &node,
        "GET",
        "/v1/session",
        &made_up,
        Some(&made_up.csrf),
        None,
    )
    .await
    .assert_error(401, "session-ended");
    node.post_json(
        "/v1/session/cookie",
        &[],
        &serde_json::json!({"name": "carol", "password": password}),
    )
    .await
    .assert_error(401, "invalid-credentials");
    node.stop().await;
}

#[tokio::test]
async fn cookie_sign_in_refuses_bad_input_like_the_bearer_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let path = "/v1/session/cookie";
    for (body, status, code) in [
        (serde_json::json!({"name": "x"}), 400, "malformed-json"),
        (
            serde_json::json!({"name": "x", "password": "y", "extra": 1}),
            400,
            "malformed-json",
        ),
        (
            serde_json::json!({"name": "", "password": "y"}),
            400,
            "invalid-parameter",
        ),
        (
            serde_json::json!({"name": "nobody", "password": "wrong"}),
            401,
            "invalid-credentials",
        ),
    ] {
        let answer = node.post_json(path, &[], &body).await;
        answer.assert_error(status, code);
        assert!(answer.header("set-cookie").is_none());
    }
    request(
        node.addr,
        "POST",
        path,
        &[("Content-Type", "text/plain")],
        b"{}",
    )
    .await
    .assert_error(415, "unsupported-media-type");
    node.stop().await;
}
