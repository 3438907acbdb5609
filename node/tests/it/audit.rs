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
fn tamper(dir: &Path, sequence: u64, edit: Option<fn(&mut AuditEntry)>) -> Vec<u8> {
    let db = sled::open(dir.join("db")).unwrap();
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

fn restore(dir: &Path, sequence: u64, original: &[u8]) {
    let db = sled::open(dir.join("db")).unwrap();
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
        text.contains("the audit trail verifies: 8 records"),
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
    let what: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[2], r[3], r[4])).collect();
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
        Some(10),
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
    );
    let broken = audit(&["verify"], dir.path());
    assert!(!broken.status.success());
    let error = String::from_utf8_lossy(&broken.stderr);
    assert!(error.contains("record 7 was altered"), "{error}");
    restore(dir.path(), 7, &original);
    assert!(audit(&["verify"], dir.path()).status.success());

    // A deletion.
    tamper(dir.path(), 2, None);
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
