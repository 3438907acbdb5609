//! The sunset order at one node (issue 21): taking orders over HTTP, refusing forged and
//! partial ones, publishing the held one, and refusing phones' and staff's work once it
//! takes effect, across a restart.

use ephemera_node::NodeError;
use ephemera_proto::UnixTime;
use ephemera_proto::batch::BatchIndex;
use ephemera_proto::revision::HmacBinding;
use ephemera_proto::signing::Ed25519SigningKey;
use ephemera_proto::sunset::{SignedSunsetOrder, SunsetCommittee, SunsetOrder, SunsetScope};
use ephemera_proto::upload::UploadBody;
use rand::SeedableRng as _;

use ephemera_node::clock::ManualClock;

use crate::util::{T0, TestNode, open_node, pet_contents, test_config};

/// Three sunset keys; the node takes orders approved by two.
fn committee_keys() -> Vec<Ed25519SigningKey> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2_021);
    (0..3)
        .map(|_| Ed25519SigningKey::generate(&mut rng))
        .collect()
}

fn config_with_committee(dir: &std::path::Path) -> ephemera_node::config::NodeConfig {
    let mut config = test_config(dir);
    config.sunset.keys = committee_keys()
        .iter()
        .map(Ed25519SigningKey::public_key)
        .collect();
    config.sunset.threshold = 2;
    config.federation.region = Some("north".into());
    config
}

fn order(effective_at: UnixTime, signers: &[usize]) -> SignedSunsetOrder {
    signed_order(
        &committee_keys(),
        SunsetScope::Federation,
        (T0, effective_at),
        signers,
    )
}

/// An order of federation "north" for the 2-of-`keys` committee, issued and effective at
/// `times`, approved by `signers` (indexes into `keys`).
fn signed_order(
    keys: &[Ed25519SigningKey],
    scope: SunsetScope,
    times: (UnixTime, UnixTime),
    signers: &[usize],
) -> SignedSunsetOrder {
    let publics: Vec<_> = keys.iter().map(Ed25519SigningKey::public_key).collect();
    let mut signed = SignedSunsetOrder::draft(SunsetOrder {
        federation: "north".into(),
        committee: SunsetCommittee::new(&publics, 2).unwrap().id(),
        scope,
        issued_at: times.0,
        effective_at: times.1,
        reason: "The epidemic is declared over.".into(),
    });
    for &i in signers {
        signed.sign(&keys[i]);
    }
    signed
}

async fn offer(node: &TestNode, frame: &[u8]) -> crate::util::Response {
    node.post_raw("/v1/sunset", "application/octet-stream", frame)
        .await
}

#[tokio::test]
async fn a_valid_order_is_held_published_and_stops_the_node_at_its_time_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start_with(config_with_committee(dir.path()), clock.clone()).await;
    let session = node.login().await;
    node.get("/v1/sunset").await.assert_error(404, "not-found");

    // Forged, partial and other-federation orders are refused and say why.
    let effective = UnixTime(T0.0 + 3_600);
    let partial = offer(&node, &order(effective, &[1]).to_bytes()).await;
    partial.assert_error(400, "invalid-sunset-order");
    assert!(
        partial.json()["message"]
            .as_str()
            .unwrap()
            .contains("1 valid approvals, the committee needs 2"),
        "{:?}",
        partial.json()
    );
    let mut forged = order(effective, &[0, 1]);
    forged.order.effective_at = UnixTime(T0.0 + 60);
    offer(&node, &forged.to_bytes())
        .await
        .assert_error(400, "invalid-sunset-order");
    let mut elsewhere = order(effective, &[]);
    elsewhere.order.federation = "south".into();
    for i in [0, 2] {
        elsewhere.sign(&committee_keys()[i]);
    }
    offer(&node, &elsewhere.to_bytes())
        .await
        .assert_error(400, "invalid-sunset-order");
    offer(&node, b"not a frame")
        .await
        .assert_error(400, "invalid-sunset-order");
    node.get("/v1/sunset").await.assert_error(404, "not-found");

    // A valid order is adopted, served and listed in the index; until its time the node
    // works as before.
    let valid = order(effective, &[0, 2]);
    let adopted = offer(&node, &valid.to_bytes()).await;
    assert_eq!(adopted.status, 200, "{:?}", adopted.json());
    assert_eq!(adopted.json()["adopted"], true);
    assert_eq!(adopted.json()["held_order"], valid.order.id().to_string());
    assert_eq!(
        offer(&node, &valid.to_bytes()).await.json()["adopted"],
        false
    );
    let served = node.get("/v1/sunset").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, valid.to_bytes());
    let index: BatchIndex = serde_json::from_slice(&node.get("/v1/batches").await.body).unwrap();
    assert_eq!(index.sunset, Some(valid.clone()));
    let (_, _) = node
        .report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;

    // A later order does not replace it.
    let later = order(UnixTime(T0.0 + 7_200), &[1, 2]);
    let kept = offer(&node, &later.to_bytes()).await;
    assert_eq!(kept.json()["adopted"], false);
    assert_eq!(kept.json()["held_order"], valid.order.id().to_string());

    // At its time: codes, verifies (decoys alike) and uploads are refused with 410.
    let contents = pet_contents(2, T0.day());
    let ready = node
        .certified(&session, "confirmed", &contents, HmacBinding::Unbound)
        .await;
    clock.set(effective);
    let auth = format!("Bearer {session}");
    node.post_json(
        "/v1/codes",
        &[("Authorization", &auth)],
        &serde_json::json!({"test_type": "confirmed", "count": 1}),
    )
    .await
    .assert_error(410, "sunset");
    for decoy in [false, true] {
        let verify = ephemera_proto::api::VerifyRequest {
            code: "0".repeat(16),
            report_hmac: "00".repeat(32),
            decoy,
            padding: String::new(),
        };
        node.post_raw("/v1/verify", "application/json", &verify.to_padded_json())
            .await
            .assert_error(410, "sunset");
    }
    node.upload_body(UploadBody::RealV1(ready))
        .await
        .assert_error(410, "sunset");

    // A restart keeps the order and the stop.
    let (name, password) = node.case_worker.clone().unwrap();
    node.stop().await;
    let node = TestNode::start_with(config_with_committee(dir.path()), clock.clone()).await;
    assert_eq!(node.get("/v1/sunset").await.body, valid.to_bytes());
    let session = node.login_as(&name, &password).await;
    node.post_json(
        "/v1/codes",
        &[("Authorization", &format!("Bearer {session}"))],
        &serde_json::json!({"test_type": "confirmed", "count": 1}),
    )
    .await
    .assert_error(410, "sunset");
    node.stop().await;

    // A node restarted with another committee refuses to start rather than drop the order.
    let mut other = config_with_committee(dir.path());
    other.sunset.threshold = 3;
    let err = open_node(other, &clock).await.unwrap_err();
    assert!(matches!(err, NodeError::Sunset(_)), "{err}");
    assert!(err.to_string().contains("restore the committee"), "{err}");
}

#[tokio::test]
async fn a_node_without_a_committee_takes_no_order_and_none_may_hold_its_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    offer(&node, &order(UnixTime(T0.0 + 60), &[0, 1]).to_bytes())
        .await
        .assert_error(409, "sunset-not-configured");
    node.post_raw("/v1/sunset", "application/json", b"{}")
        .await
        .assert_error(415, "unsupported-media-type");
    let authority = node.node.keys().authority.public_key();
    node.stop().await;

    let mut config = config_with_committee(dir.path());
    config.sunset.keys.push(authority);
    let err = open_node(config, &clock).await.unwrap_err();
    assert!(
        err.to_string().contains("lists this node's authority key"),
        "{err}"
    );
}

/// A node process and the lines it prints.
struct Process {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn start(dir: &std::path::Path, committee: &[String]) -> Process {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ephemera-node"))
            .current_dir(dir)
            .args(["serve", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", "127.0.0.1:0", "--set", "log.filter=warn"])
            .args(["--set", "federation.enabled=false"])
            .args(["--set", "federation.region=north"])
            .args(["--set", &format!("sunset.keys={}", committee.join(","))])
            .args(["--set", "sunset.threshold=2"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start ephemera-node");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Process { child, lines }
    }

    /// The value after `prefix` in the next line that starts with it (up to 60 s).
    fn after(&self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line starting {prefix:?}"));
            if let Some(rest) = line.trim().strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }
}

/// Issue 21 item 3, as an operator sees it: a node takes an order, reaches its time,
/// erases everything, and from then on (restarts included) serves only the order and a
/// receipt that verifies; no uploaded token, code or account name is left in any file.
#[tokio::test]
async fn at_its_time_a_node_erases_everything_and_keeps_only_the_order_and_a_receipt() {
    use crate::crash::{login, send, set_first_password, today};
    use crate::util::request;

    let dir = tempfile::tempdir().unwrap();
    let keys = committee_keys();
    let committee: Vec<String> = keys.iter().map(|k| k.public_key().to_hex()).collect();
    let node = Process::start(dir.path(), &committee);
    let name = node.after("name:");
    let one_time = node.after("password:");
    let addr: std::net::SocketAddr = node
        .after("ephemera-node listening on http://")
        .parse()
        .unwrap();
    let password = set_first_password(addr, &name, &one_time).await;
    let session = login(addr, &name, &password).await;
    let info = request(addr, "GET", "/v1/authority", &[], b"").await.json();
    let batch_key = info["batch_public_key"].as_str().unwrap().to_owned();

    // Three reports, their codes and tokens remembered.
    let mut secrets: Vec<Vec<u8>> = vec![name.clone().into_bytes(), password.clone().into_bytes()];
    for _ in 0..3 {
        let crate::crash::Attempt::Acked(acked) = crate::crash::attempt(addr, &session).await
        else {
            panic!("an upload was refused");
        };
        // The upload's tokens are in its body; the code was spent on it.
        let upload =
            ephemera_proto::wire::decode::<ephemera_proto::upload::UploadRequest>(&acked.body)
                .unwrap();
        if let ephemera_proto::upload::UploadBody::RealV1(signed) = upload.body
            && let ephemera_proto::ReportContents::Pet(tokens) = &signed.contents
        {
            secrets.extend(tokens.iter().map(|t| t.token.0.to_vec()));
        }
        secrets.push(acked.code.into_bytes());
    }
    assert_eq!(
        secrets.len(),
        2 + 3 * 5,
        "names, tokens and codes to look for"
    );
    // Account names are keys of the database, in clear: the scan below can see what is
    // there.
    let before = crate::util::read_tree(dir.path());
    assert!(
        crate::util::contains(&before, name.as_bytes()),
        "the scan finds the account name before the sunset"
    );

    // An order effective in 3 s.
    let now = today();
    let order = signed_order(
        &keys,
        SunsetScope::Federation,
        (now, UnixTime(now.0 + 3)),
        &[0, 1],
    );
    let r = send(
        addr,
        "/v1/sunset",
        "application/octet-stream",
        None,
        order.to_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // The node stops, erases and comes back serving the order and its receipt.
    let addr: std::net::SocketAddr = node
        .after("ephemera-node sunset: listening on http://")
        .parse()
        .unwrap();
    let first = check_erased(addr, &order, &batch_key).await;
    // The operator's check, from the files alone.
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("order"), order.to_bytes()).unwrap();
    std::fs::write(files.path().join("a.receipt"), first.to_bytes()).unwrap();
    let verify_receipts = |node: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ephemera-node"))
            .current_dir(files.path())
            .args([
                "sunset",
                "verify-receipts",
                "--order",
                "order",
                "--node",
                node,
            ])
            .arg("a.receipt")
            .output()
            .unwrap()
    };
    let ok = verify_receipts(&batch_key);
    let printed = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        printed.contains("all 1 receipts verify for order"),
        "{printed}"
    );
    assert!(printed.contains("uploads 3"), "{printed}");
    let missing = verify_receipts(&"ab".repeat(32));
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no receipt from node"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let after = crate::util::read_tree(dir.path());
    for secret in &secrets {
        assert!(
            !crate::util::contains(&after, secret),
            "a token, code, name or password survived the erasure"
        );
    }
    drop(node);

    // A restart serves the same receipt, and nothing else.
    let again = Process::start(dir.path(), &committee);
    let addr = again
        .after("ephemera-node sunset: listening on http://")
        .parse()
        .unwrap();
    assert_eq!(check_erased(addr, &order, &batch_key).await, first);
}

/// What an erased node at `addr` answers: the order, a receipt that verifies for it and
/// `batch_key`, and 410 for anything else.
async fn check_erased(
    addr: std::net::SocketAddr,
    order: &SignedSunsetOrder,
    batch_key: &str,
) -> ephemera_proto::sunset::SignedDeletionReceipt {
    use crate::util::request;
    let served = request(addr, "GET", "/v1/sunset", &[], b"").await;
    assert_eq!(served.body, order.to_bytes());
    let receipt = request(addr, "GET", "/v1/sunset/receipt", &[], b"").await;
    assert_eq!(receipt.status, 200);
    let receipt = ephemera_proto::sunset::SignedDeletionReceipt::from_bytes(&receipt.body).unwrap();
    let r = receipt.verify(&order.order.id()).unwrap().clone();
    assert_eq!(r.node.to_hex(), batch_key);
    let count = |kind: &str| r.erased.iter().find(|(k, _)| k == kind).map(|(_, n)| *n);
    assert_eq!(count("uploads"), Some(3), "{:?}", r.erased);
    assert_eq!(count("accounts"), Some(1), "{:?}", r.erased);
    assert!(count("files-removed").unwrap() > 0, "{:?}", r.erased);
    assert!(r.bytes_after < r.bytes_before, "{r:?}");
    request(addr, "POST", "/v1/uploads", &[], b"x")
        .await
        .assert_error(410, "sunset");
    request(addr, "GET", "/v1/batches", &[], b"")
        .await
        .assert_error(410, "sunset");
    receipt
}

/// Distrust the clock: a wall clock stepped forward past the effective time already
/// refuses new work (reversible), but erases nothing until time has really passed.
#[tokio::test]
async fn a_clock_stepped_past_the_order_refuses_work_but_erases_only_when_time_has_passed() {
    let effective = UnixTime(T0.0 + 3_600);
    for stepped in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let node = TestNode::start_with(config_with_committee(dir.path()), clock.clone()).await;
        assert_eq!(
            offer(&node, &order(effective, &[0, 1]).to_bytes())
                .await
                .status,
            200
        );
        assert!(!node.node.sunset_due());
        // The background loop reads the clock all the time; here a purge does.
        node.node.purge().unwrap();
        if stepped {
            clock.step(effective);
        } else {
            clock.advance(3_600);
        }
        assert!(node.node.stopped_by_sunset());
        node.post_raw("/v1/uploads", "application/octet-stream", b"x")
            .await
            .assert_error(410, "sunset");
        assert_eq!(
            node.node.sunset_due(),
            !stepped,
            "erasure is due only when time has passed"
        );
        node.stop().await;
    }
}

/// An order whose scope is another authority: at its time this node takes no more of that
/// authority's reports, erases the ones it holds (with their entries not yet published),
/// and goes on serving its own.
#[tokio::test]
async fn an_order_for_another_authority_erases_its_reports_here_and_keeps_ours() {
    let (dir_x, dir_y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = ManualClock::new(T0);
    let x = TestNode::start_with(config_with_committee(dir_x.path()), clock.clone()).await;
    let x_key = x.node.keys().authority.public_key();
    let mut config = config_with_committee(dir_y.path());
    config.authority.trusted_authorities = vec![x_key];
    let y = TestNode::start_with(config, clock.clone()).await;
    let (x_session, y_session) = (x.login().await, y.login().await);

    // A report certified by X and one by Y, both uploaded to Y.
    let theirs = pet_contents(3, T0.day());
    let certified = x
        .certified(&x_session, "confirmed", &theirs, HmacBinding::Unbound)
        .await;
    assert_eq!(
        y.upload_body(UploadBody::RealV1(certified)).await.status,
        200
    );
    let ours = pet_contents(3, T0.day());
    y.report(&y_session, "confirmed", ours.clone()).await;
    assert_eq!(y.node.store().upload_count().unwrap(), 2);

    let order = signed_order(
        &committee_keys(),
        SunsetScope::Authority(x_key),
        (T0, UnixTime(T0.0 + 3_600)),
        &[0, 2],
    );
    let adopted = offer(&y, &order.to_bytes()).await;
    assert_eq!(adopted.json()["adopted"], true);
    assert_eq!(y.node.erase_ended_authority().unwrap(), 0, "not yet");

    clock.advance(3_600);
    assert!(!y.node.stopped_by_sunset(), "Y goes on serving");
    assert_eq!(y.node.erase_ended_authority().unwrap(), 1);
    assert_eq!(y.node.erase_ended_authority().unwrap(), 0, "once");
    assert_eq!(y.node.store().upload_count().unwrap(), 1);
    // X's entries were never published; Y's are.
    y.next_batches().await;
    let published = y.all_published().await;
    let tokens = |contents: &ephemera_proto::ReportContents| match contents {
        ephemera_proto::ReportContents::Pet(tokens) => tokens.clone(),
        _ => unreachable!(),
    };
    for token in tokens(&ours) {
        assert!(published.tokens.contains(&token), "Y's report is published");
    }
    for token in tokens(&theirs) {
        assert!(!published.tokens.contains(&token), "X's report is not");
    }
    // X's reports are refused from now on; Y's work goes on.
    let more = x
        .certified(
            &x_session,
            "confirmed",
            &pet_contents(2, T0.day()),
            HmacBinding::Unbound,
        )
        .await;
    y.upload_body(UploadBody::RealV1(more))
        .await
        .assert_error(410, "sunset");
    y.report(&y_session, "confirmed", pet_contents(2, T0.day()))
        .await;
    x.stop().await;
    y.stop().await;
}
