//! The audit trail (issue 17, item 6): staff actions are recorded with who, what, outcome
//! and the minute, never a code or an address; `audit verify` passes an untouched data
//! folder and names the record of an edit or a deletion; `audit export` prints it.

use std::path::Path;
use std::process::{Command, Output};

use ephemera_node::clock::ManualClock;
use ephemera_proto::audit::{AuditAction, AuditEntry};

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_ephemera-node");

fn audit(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .arg("audit")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

/// Rewrites record `sequence` of the folder's trail with `edit`, or removes it.
async fn tamper(dir: &Path, sequence: u64, edit: Option<fn(&mut AuditEntry)>) -> Vec<u8> {
    let db = sled_open(&dir.join("db")).await;
    let tree = db.open_tree("audit").unwrap();
    let key = sequence.to_be_bytes();
    let original = tree
        .get(key)
        .unwrap()
        .expect("the record is there")
        .to_vec();
    match edit {
        Some(edit) => {
            let mut entry: AuditEntry = postcard::from_bytes(&original).unwrap();
            edit(&mut entry);
            tree.insert(key, postcard::to_allocvec(&entry).unwrap())
                .unwrap();
        }
        None => {
            tree.remove(key).unwrap();
        }
    }
    db.flush().unwrap();
    original
}

async fn restore(dir: &Path, sequence: u64, original: &[u8]) {
    let db = sled_open(&dir.join("db")).await;
    let tree = db.open_tree("audit").unwrap();
    tree.insert(sequence.to_be_bytes(), original).unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn staff_actions_make_a_trail_that_verifies_and_an_edit_or_deletion_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let (name, password) = node.case_worker.clone().expect("first start");
    let wrong = serde_json::json!({"name": name, "password": "not-the-password"});
    assert_eq!(node.post_json("/v1/session", &[], &wrong).await.status, 401);
    // A name that is no account may be a password typed into the wrong field: not kept.
    let typo = serde_json::json!({"name": "Tr0ub4dor&3", "password": "x"});
    assert_eq!(node.post_json("/v1/session", &[], &typo).await.status, 401);
    let session = node.login().await;
    let issued = node.issue(&session, "confirmed", None, 3).await;
    assert_eq!(node.logout(&session).await.status, 204);
    node.stop().await;

    let verified = audit(&["verify"], dir.path());
    let text = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        text.contains("the audit trail verifies: 9 records"),
        "{text}"
    );

    let export = audit(&["export", "--format", "csv"], dir.path());
    assert!(export.status.success());
    let csv = String::from_utf8(export.stdout).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let mut what: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[2], r[3], r[4])).collect();
    // The first start also ran with the harness's settings, not the defaults.
    let (_, configured, _) = what.remove(1);
    assert!(
        configured.starts_with("configuration-changed settings=data_dir+http.listen+"),
        "{configured}"
    );
    let account = format!("account:{name}");
    let references: Vec<&str> = issued.codes.iter().map(|c| c.reference.as_str()).collect();
    let issued_row = format!(
        "codes-issued count=3 test_type=1 references={}",
        references.join("+")
    );
    let created =
        format!("account-created account={name} roles=admin+case-worker+bulk-issuer+auditor");
    assert_eq!(
        what,
        [
            // The first start, and the harness's first sign-in that sets a password.
            ("operator", created.as_str(), "success"),
            (account.as_str(), "sign-in", "success"),
            (account.as_str(), "password-changed", "success"),
            (account.as_str(), "sign-in", "refused:invalid-credentials"),
            ("unknown-account", "sign-in", "refused:invalid-credentials"),
            (account.as_str(), "sign-in", "success"),
            (account.as_str(), issued_row.as_str(), "success"),
            (account.as_str(), "sign-out", "success"),
            ("operator", "exported", "success"),
        ]
    );
    assert!(
        rows.iter().all(|r| r[1].ends_with(":00Z")),
        "minutes only: {csv}"
    );
    for secret in issued.codes.iter().map(|c| c.code.as_str()).chain([
        "Tr0ub4dor&3",
        "127.0.0.1",
        password.as_str(),
    ]) {
        assert!(!csv.contains(secret), "{secret} in the trail");
        assert!(!contains(
            &read_tree(&dir.path().join("db")),
            secret.as_bytes()
        ));
    }
    let json = audit(&["export"], dir.path());
    let records: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        records.as_array().map(Vec::len),
        Some(11),
        "the second export is on it too"
    );

    // An edit: three codes become three hundred.
    let original = tamper(
        dir.path(),
        7,
        Some(|entry| {
            entry.record.action = AuditAction::CodesIssued {
                count: 300,
                test_type: ephemera_proto::report::ReportType::ConfirmedTest,
            }
        }),
    )
    .await;
    let broken = audit(&["verify"], dir.path());
    assert!(!broken.status.success());
    let error = String::from_utf8_lossy(&broken.stderr);
    assert!(error.contains("record 7 was altered"), "{error}");
    restore(dir.path(), 7, &original).await;
    assert!(audit(&["verify"], dir.path()).status.success());

    // A deletion.
    tamper(dir.path(), 2, None).await;
    let broken = audit(&["verify"], dir.path());
    assert!(!broken.status.success());
    let error = String::from_utf8_lossy(&broken.stderr);
    assert!(error.contains("records 2 to 2 are missing"), "{error}");
}

/// Attempts past a source's sign-in budget are refused unchecked and leave no record: a
/// flood from one source writes at most its budget to the trail.
#[tokio::test]
async fn sign_ins_past_the_budget_are_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.authority.login_failures_per_user = 2;
    let node = TestNode::start_with(config, ManualClock::new(T0)).await;
    let (name, _) = node.case_worker.clone().expect("first start");
    let wrong = serde_json::json!({"name": name, "password": "not-the-password"});
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(node.post_json("/v1/session", &[], &wrong).await.status);
    }
    assert_eq!(statuses[..2], [401, 401]);
    assert!(statuses[2..].iter().all(|s| *s == 429), "{statuses:?}");
    node.stop().await;
    let export = audit(&["export", "--format", "csv"], dir.path());
    let csv = String::from_utf8(export.stdout).unwrap();
    let refused = csv
        .lines()
        .filter(|l| l.contains("sign-in,refused"))
        .count();
    assert_eq!(refused, 2, "{csv}");
    assert!(!csv.contains("too-many-attempts"), "{csv}");
}

/// Auditors (and admins) read the trail over HTTP (issue 17, item 6): whether it verifies
/// and its signed head, pages of records by sequence and day, JSON or CSV; the read is
/// itself recorded; other roles are refused; an edit shows as `verified: false`.
#[tokio::test]
async fn auditors_read_the_trail_over_http_by_page_and_day_as_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let admin = node.login().await;
    let (ada, ada_password) = node.staff(&admin, "ada", &["auditor"]).await;
    let (carol, _) = node.staff(&admin, "carol", &["case-worker"]).await;
    node.one_code(&carol).await;

    node.get("/v1/audit")
        .await
        .assert_error(401, "unauthorized");
    node.call("GET", "/v1/audit", &carol, None)
        .await
        .assert_error(403, "forbidden");
    for bad in [
        "limit=0",
        "limit=10001",
        "after=-1",
        "after=9223372036854775808",
        "from=2023-13-01",
        "to=yesterday",
    ] {
        node.call("GET", &format!("/v1/audit?{bad}"), &ada, None)
            .await
            .assert_error(400, "invalid-parameter");
    }

    let all = node.call("GET", "/v1/audit", &ada, None).await;
    assert_eq!(all.status, 200, "{}", String::from_utf8_lossy(&all.body));
    assert_eq!(all.header("cache-control"), Some("no-store"));
    let all = all.json();
    assert_eq!(all["verified"], true);
    let records = all["records"].as_array().unwrap();
    let last = records.last().unwrap();
    assert_eq!(last["actor"], "account:ada");
    assert_eq!(last["action"], "exported");
    assert_eq!(all["head_sequence"], last["sequence"]);
    assert_eq!(all["head_hash"], last["hash"]);
    assert!(all["next_after"].is_null());
    assert!(records.iter().any(|r| {
        r["actor"] == "account:carol"
            && r["action"]
                .as_str()
                .unwrap()
                .starts_with("codes-issued count=1")
    }));

    // Pages: two at a time, then on from the cursor.
    let page = node
        .call("GET", "/v1/audit?limit=2", &ada, None)
        .await
        .json();
    let sequences = |page: &serde_json::Value| -> Vec<u64> {
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["sequence"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(sequences(&page), [1, 2]);
    assert_eq!(page["next_after"], 2);
    let next = node
        .call("GET", "/v1/audit?after=2&limit=2", &ada, None)
        .await
        .json();
    assert_eq!(sequences(&next), [3, 4]);

    // Days: today holds everything, tomorrow nothing (but for nothing: the read of it is
    // recorded today).
    let today = ephemera_node::clock::civil::format_date(T0.day());
    let tomorrow = ephemera_node::clock::civil::format_date(T0.day().plus(1));
    let on_day = node
        .call(
            "GET",
            &format!("/v1/audit?from={today}&to={today}"),
            &ada,
            None,
        )
        .await
        .json();
    assert!(sequences(&on_day).len() >= 8);
    let later = node
        .call("GET", &format!("/v1/audit?from={tomorrow}"), &ada, None)
        .await
        .json();
    assert!(sequences(&later).is_empty());

    // CSV, with the verification in a header.
    let auth = format!("Bearer {ada}");
    let csv = request(
        node.addr,
        "GET",
        "/v1/audit?limit=3",
        &[("Authorization", &auth), ("Accept", "text/csv")],
        b"",
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(csv.header("audit-trail-verified"), Some("true"));
    assert_eq!(csv.header("audit-next-after"), Some("3"));
    let text = String::from_utf8(csv.body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "sequence,minute_utc,actor,action,outcome,previous,hash"
    );
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("1,"));
    node.stop().await;

    // An edit of record 2 while stopped: the next read says so and where.
    tamper(
        dir.path(),
        2,
        Some(|entry| entry.record.action = AuditAction::SignOut),
    )
    .await;
    let node = TestNode::start(dir.path(), clock).await;
    let ada = node.login_as("ada", &ada_password).await;
    let broken = node.call("GET", "/v1/audit", &ada, None).await.json();
    assert_eq!(broken["verified"], false);
    assert!(
        broken["problem"].as_str().unwrap().contains("record 2"),
        "{broken}"
    );
    node.stop().await;
}

/// A start with other settings than the last is on the trail as the operator's change,
/// naming the settings and never a value: a secret token changed shows by name alone.
#[tokio::test]
async fn a_start_with_changed_settings_is_recorded_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let settings_records = || async {
        let opened = open_node(test_config(dir.path()), &clock).await.unwrap();
        let (_, entries) = opened.node.store().audit_trail().unwrap();
        entries
            .iter()
            .map(|e| e.record.action.to_string())
            .filter(|a| a.starts_with("configuration-changed"))
            .collect::<Vec<_>>()
    };
    TestNode::start(dir.path(), clock.clone())
        .await
        .stop()
        .await;
    // The same settings again: nothing new.
    TestNode::start(dir.path(), clock.clone())
        .await
        .stop()
        .await;
    assert_eq!(settings_records().await.len(), 1);

    let token = "metrics-token-of-the-operator-0123";
    let mut config = test_config(dir.path());
    config.http.per_source_in_flight = 8;
    config.http.metrics_token = Some(ephemera_node::config::MetricsToken::new(token));
    TestNode::start_with(config.clone(), clock.clone())
        .await
        .stop()
        .await;
    // Another secret of the same length: changed again, by name.
    config.http.metrics_token = Some(ephemera_node::config::MetricsToken::new(
        "metrics-token-of-the-operator-9876",
    ));
    TestNode::start_with(config, clock.clone())
        .await
        .stop()
        .await;
    let records = settings_records().await;
    assert_eq!(
        records[1..],
        [
            "configuration-changed settings=http.metrics_token+http.per_source_in_flight",
            "configuration-changed settings=http.metrics_token",
            // Back to the harness's settings (`settings_records` opens with them).
            "configuration-changed settings=http.metrics_token+http.per_source_in_flight",
        ]
    );
    assert!(!contains(
        &read_tree(&dir.path().join("db")),
        token.as_bytes()
    ));
    assert!(audit(&["verify"], dir.path()).status.success());
}
