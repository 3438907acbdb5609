//! Venues (issue 20 item 2): the authority's venue key published signed by its authority
//! key; `POST /v1/venues` for case workers and admins (bearer, or cookie and CSRF) that
//! hands over a printable QR code, its text and the trace code and keeps nothing; and
//! `ephemera-node venue create` offline with the key a venue fetched.

use std::path::Path;
use std::process::{Command, Output};

use ephemera_node::clock::ManualClock;
use ephemera_node::keys::{NodeKeys, venue_key};
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::venue::{EntryCode, TraceCode, VenueKeyAnnouncement, open_authority_share};

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_ephemera-node");
const COOKIE: &str = "__Host-ephemera-session";

/// The authority key of `node`, as `GET /v1/authority` publishes it.
async fn authority_key(node: &TestNode) -> Ed25519PublicKey {
    let info = node.get("/v1/authority").await.json();
    Ed25519PublicKey::from_hex(info["authority_public_key"].as_str().unwrap()).unwrap()
}

/// Checks a made venue: its QR text holds the entry code the trace code holds, the trace
/// code's sealed share opens with the node's venue key, the SVG is one. Returns what a
/// privacy scan looks for.
fn check_venue(keys: &NodeKeys, qr_text: &str, trace_text: &str, svg: &str) -> Vec<Vec<u8>> {
    let entry = EntryCode::from_qr_text(qr_text).unwrap();
    let trace = TraceCode::from_text(trace_text).unwrap();
    assert_eq!(trace.entry_code(), &entry);
    open_authority_share(
        &venue_key(&keys.pepper),
        &entry,
        trace.sealed_authority_share(),
    )
    .expect("the authority's share opens with the node's venue key");
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    vec![
        qr_text.as_bytes().to_vec(),
        trace_text.as_bytes().to_vec(),
        trace_text.as_bytes()["ephemera-trace:".len()..].to_vec(),
        trace.to_bytes().to_vec(),
        trace.sealed_authority_share().to_vec(),
        entry.to_bytes(),
    ]
}

#[tokio::test]
async fn case_workers_and_admins_make_venues_and_the_node_keeps_nothing_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let admin = node.login().await;
    let (carol, carol_password) = node.staff(&admin, "carol", &["case-worker"]).await;
    let (ada, _) = node.staff(&admin, "ada", &["auditor"]).await;
    let (bob, _) = node.staff(&admin, "bob", &["bulk-issuer"]).await;

    // The venue key: signed by the authority key that GET /v1/authority gives, and the
    // one the node opens shares with.
    let published = node.get("/v1/venue-key").await;
    assert_eq!(published.status, 200);
    assert_eq!(
        published.header("cache-control"),
        Some("public, max-age=3600")
    );
    let announcement: VenueKeyAnnouncement = serde_json::from_slice(&published.body).unwrap();
    assert_eq!(
        announcement.verify(&authority_key(&node).await).unwrap(),
        venue_key(&node.node.keys().pepper).public_key()
    );

    let description = "Café Nord vc-7f3a";
    let address = "Main Street 1 vc-91be";
    let body = serde_json::json!({
        "description": description, "address": address,
        "valid_from": "2023-11-14", "valid_until": "2024-11-13",
    });
    // Auditors and bulk issuers may not; nobody signed out may not.
    for token in [&ada, &bob] {
        node.call("POST", "/v1/venues", token, Some(body.clone()))
            .await
            .assert_error(403, "forbidden");
    }
    node.post_json("/v1/venues", &[], &body)
        .await
        .assert_error(401, "unauthorized");

    // Bad input: texts over 100 bytes (100 two-byte letters are 200 bytes), an inverted
    // or unreadable validity, unknown fields.
    let long = "é".repeat(51);
    for (bad, field) in [
        (
            serde_json::json!({"description": "x".repeat(101), "address": address}),
            "description",
        ),
        (
            serde_json::json!({"description": long, "address": address}),
            "description",
        ),
        (
            serde_json::json!({"description": description, "address": "y".repeat(101)}),
            "address",
        ),
        (
            serde_json::json!({"description": description, "valid_from": "2024-01-02", "valid_until": "2024-01-01"}),
            "valid_until",
        ),
        (
            serde_json::json!({"description": description, "valid_from": "2024-02-30"}),
            "valid_from",
        ),
        (
            serde_json::json!({"description": description, "valid_until": ""}),
            "valid_until",
        ),
    ] {
        let refused = node.call("POST", "/v1/venues", &carol, Some(bad)).await;
        refused.assert_error(400, "invalid-parameter");
        assert!(
            refused.json()["message"].as_str().unwrap().contains(field),
            "{}",
            String::from_utf8_lossy(&refused.body)
        );
    }
    node.call(
        "POST",
        "/v1/venues",
        &carol,
        Some(serde_json::json!({"description": description, "owner": "x"})),
    )
    .await
    .assert_error(400, "malformed-json");

    // A case worker (bearer) and an admin make one each.
    let mut secrets = vec![description.as_bytes().to_vec(), address.as_bytes().to_vec()];
    for token in [&carol, &admin] {
        let made = node
            .call("POST", "/v1/venues", token, Some(body.clone()))
            .await;
        assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
        assert_eq!(made.header("cache-control"), Some("no-store"));
        let made = made.json();
        assert_eq!(made["valid_from"], "2023-11-14");
        assert_eq!(made["valid_until"], "2024-11-13");
        let instructions = made["instructions"].as_str().unwrap();
        assert!(instructions.contains(description) && instructions.contains("OFFLINE"));
        let qr_text = made["qr_text"].as_str().unwrap();
        let entry = EntryCode::from_qr_text(qr_text).unwrap();
        assert_eq!(
            (entry.description(), entry.address()),
            (description, address)
        );
        secrets.extend(check_venue(
            node.node.keys(),
            qr_text,
            made["trace_code"].as_str().unwrap(),
            made["qr_svg"].as_str().unwrap(),
        ));
    }

    // The console: the session cookie needs its CSRF token.
    let signed_in = node
        .post_json(
            "/v1/session/cookie",
            &[],
            &serde_json::json!({"name": "carol", "password": carol_password}),
        )
        .await;
    let set = signed_in.header("set-cookie").unwrap().to_owned();
    let cookie = set.split_once(';').unwrap().0.to_owned();
    let csrf = signed_in.json()["csrf_token"].as_str().unwrap().to_owned();
    assert!(cookie.starts_with(COOKIE));
    node.post_json("/v1/venues", &[("Cookie", &cookie)], &body)
        .await
        .assert_error(403, "csrf-missing");
    node.post_json(
        "/v1/venues",
        &[("Cookie", &cookie), ("X-CSRF-Token", &"0".repeat(64))],
        &body,
    )
    .await
    .assert_error(403, "csrf-invalid");
    let made = node
        .post_json(
            "/v1/venues",
            &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
            &body,
        )
        .await;
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    let made = made.json();
    secrets.extend(check_venue(
        node.node.keys(),
        made["qr_text"].as_str().unwrap(),
        made["trace_code"].as_str().unwrap(),
        made["qr_svg"].as_str().unwrap(),
    ));

    // The audit trail has the fact, by whom, and nothing of the venue.
    let trail = node.call("GET", "/v1/audit", &admin, None).await;
    let trail_text = String::from_utf8_lossy(&trail.body).into_owned();
    let made: Vec<String> = trail.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "venue-created")
        .map(|r| format!("{} {}", r["actor"], r["outcome"]))
        .collect();
    let case_worker = node.case_worker.clone().unwrap().0;
    assert_eq!(
        made,
        [
            "\"account:carol\" \"success\"".to_owned(),
            format!("\"account:{case_worker}\" \"success\""),
            "\"account:carol\" \"success\"".to_owned(),
        ]
    );

    // Nothing of any venue in the data folder, the logs or the trail.
    node.stop().await;
    let stored = read_tree(dir.path());
    let logs = captured_logs();
    for secret in &secrets {
        assert!(!contains(&stored, secret), "stored: {secret:02x?}");
        assert!(!contains(logs.as_bytes(), secret), "logged: {secret:02x?}");
        assert!(!contains(trail_text.as_bytes(), secret), "audited");
    }
}

fn venue_create(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["venue", "create"])
        .args(args)
        .env_remove("EPHEMERA_CONFIG")
        .output()
        .unwrap()
}

fn written(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Reads the venue `venue create` wrote into `out` and checks it against `keys`; the bytes
/// a privacy scan looks for.
fn check_folder(out: &Path, keys: &NodeKeys) -> Vec<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        written(out),
        [
            "entry-qr.svg",
            "entry-qr.txt",
            "instructions.txt",
            "trace-code.txt"
        ]
    );
    let trace_file = out.join("trace-code.txt");
    assert_eq!(
        std::fs::metadata(&trace_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let trace_text = read("trace-code.txt");
    let instructions = read("instructions.txt");
    assert!(instructions.contains("OFFLINE") && !instructions.contains(trace_text.trim()));
    check_venue(
        keys,
        read("entry-qr.txt").trim(),
        trace_text.trim(),
        &read("entry-qr.svg"),
    )
}

#[tokio::test]
async fn venue_create_works_offline_with_the_key_a_venue_fetched_and_writes_nothing_else() {
    let node_dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(node_dir.path(), ManualClock::new(T0)).await;
    let fetched = node.get("/v1/venue-key").await.body;
    let authority = authority_key(&node).await.to_hex();
    let keys_before_stop = venue_key(&node.node.keys().pepper).public_key();
    node.stop().await;
    let keys = NodeKeys::load(node_dir.path()).unwrap();
    assert_eq!(venue_key(&keys.pepper).public_key(), keys_before_stop);

    let venue_dir = tempfile::tempdir().unwrap();
    let key_file = venue_dir.path().join("venue-key.json");
    std::fs::write(&key_file, &fetched).unwrap();
    let key_path = key_file.to_str().unwrap();
    let out = venue_dir.path().join("cafe");
    let out_path = out.to_str().unwrap();

    // The JSON of GET /v1/venue-key, checked against the authority key given.
    let made = venue_create(&[
        "--description",
        "Café Nord cli-5d1c",
        "--address",
        "Main Street 1 cli-0a7e",
        "--authority-key",
        key_path,
        "--authority",
        &authority,
        "--out",
        out_path,
    ]);
    let stdout = String::from_utf8_lossy(&made.stdout).into_owned();
    assert!(
        made.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut secrets = check_folder(&out, &keys);
    // The QR text is printed (it is public); the trace code never is.
    assert!(stdout.contains(std::str::from_utf8(&secrets[0]).unwrap()));
    for secret in &secrets[1..] {
        assert!(!contains(&made.stdout, secret) && !contains(&made.stderr, secret));
    }
    // Valid from today for a year by default.
    let entry = EntryCode::from_qr_text(std::str::from_utf8(&secrets[0]).unwrap()).unwrap();
    let days = entry.valid_until().day().0 - entry.valid_from().day().0;
    assert_eq!(days, 365);

    // The folder is not overwritten: the trace code stays as it was.
    let trace_before = std::fs::read(out.join("trace-code.txt")).unwrap();
    let again = venue_create(&[
        "--description",
        "Other",
        "--authority-key",
        key_path,
        "--out",
        out_path,
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read(out.join("trace-code.txt")).unwrap(),
        trace_before
    );

    // The bare hex key, and the key read from the (stopped) node's data folder, which is
    // left exactly as it was.
    let hex = serde_json::from_slice::<VenueKeyAnnouncement>(&fetched)
        .unwrap()
        .public_key;
    let before = read_tree(node_dir.path());
    for (i, source) in [
        vec!["--authority-key", hex.as_str()],
        vec!["--data-dir", node_dir.path().to_str().unwrap()],
    ]
    .into_iter()
    .enumerate()
    {
        let out = venue_dir.path().join(format!("venue-{i}"));
        let mut args = vec![
            "--description",
            "Gym cli-33f0",
            "--valid-from",
            "2030-01-01",
            "--valid-until",
            "2030-01-31",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(source);
        let made = venue_create(&args);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        secrets.extend(check_folder(&out, &keys));
    }
    assert_eq!(read_tree(node_dir.path()), before);
    for secret in &secrets {
        assert!(!contains(&before, secret));
    }

    // Refused, with the argument named and nothing written: another authority's pin, an
    // altered key file, texts over 100 bytes, an inverted validity, a key that is none.
    let mut altered: serde_json::Value = serde_json::from_slice(&fetched).unwrap();
    altered["public_key"] = serde_json::json!("11".repeat(32));
    let altered_file = venue_dir.path().join("altered.json");
    std::fs::write(&altered_file, altered.to_string()).unwrap();
    let long = "x".repeat(101);
    let other = "22".repeat(32);
    let big = venue_dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 5000]).unwrap();
    let binary = venue_dir.path().join("binary.key");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let text = venue_dir.path().join("text.key");
    std::fs::write(&text, "the authority's key, I think").unwrap();
    for (args, named) in [
        (
            vec!["--authority-key", key_path, "--authority", other.as_str()],
            "does not verify",
        ),
        (
            vec!["--authority-key", altered_file.to_str().unwrap()],
            "does not verify",
        ),
        (
            vec!["--authority-key", hex.as_str(), "--address", long.as_str()],
            "--address",
        ),
        (
            vec![
                "--authority-key",
                hex.as_str(),
                "--valid-from",
                "2030-01-02",
                "--valid-until",
                "2030-01-01",
            ],
            "--valid-until",
        ),
        (vec!["--authority-key", "not-a-key"], "--authority-key"),
        (
            vec!["--authority-key", big.to_str().unwrap()],
            "at most 4096",
        ),
        (
            vec!["--authority-key", binary.to_str().unwrap()],
            "is not text",
        ),
        (
            vec!["--authority-key", text.to_str().unwrap()],
            "neither 64 hex digits",
        ),
        (
            vec![
                "--authority-key",
                hex.as_str(),
                "--valid-from",
                "2030-02-30",
            ],
            "--valid-from",
        ),
    ] {
        let out = venue_dir.path().join("refused");
        let mut all = vec!["--description", "Bar", "--out", out.to_str().unwrap()];
        all.extend(args);
        let refused = venue_create(&all);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success());
        assert!(stderr.contains(named), "{named}: {stderr}");
        assert!(!out.exists(), "{named}: nothing written");
    }
    let refused = venue_create(&[
        "--description",
        &long,
        "--authority-key",
        &hex,
        "--out",
        venue_dir.path().join("refused").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--description"));
}
