//! Test harness: a node on 127.0.0.1:0 with a fake clock, a tiny HTTP/1.1 client, a phone
//! that builds real uploads with `ephemera_proto`, and a tracing capture.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use ephemera_node::Node;
use ephemera_node::api::types::{IssueCodesResponse, LoginResponse};
use ephemera_node::clock::ManualClock;
use ephemera_node::config::{LogFormat, NodeConfig};
use ephemera_node::server::{Background, serve};
use ephemera_proto::api::{UploadResponse, VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{ReportHmacKey, SignedCertificate};
use ephemera_proto::batch::{BatchContents, BatchIndex, SignedBatch, TrustedNodes};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents};
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadRequest};
use ephemera_proto::{UnixTime, wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// 2023-11-14 22:13:20 UTC.
pub(crate) const T0: UnixTime = UnixTime(1_700_000_000);
/// The `User-Agent` every request of these tests sends (unless it sets its own), so the
/// privacy scans can show that none is ever stored or logged.
pub(crate) const USER_AGENT: &str = "EphemeraTestPhone/7.3 (privacy-scan; Pixel 9)";
/// The client address every request claims in `X-Forwarded-For` (a documentation address,
/// RFC 5737), for the same scans.
pub(crate) const FORWARDED_FOR: &str = "203.0.113.77";

// ---- log capture ------------------------------------------------------------------------

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the node's own log pipeline, as an operator debugging at `log.filter = "trace"`
/// would run it (dependencies capped: `ephemera_node::logging`), recording every line.
pub(crate) fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        ephemera_node::logging::init_with_writer(LogFormat::Text, "trace", move || writer.clone());
        buffer
    });
}

/// Everything logged so far by every test in this process.
pub(crate) fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.get().expect("capture_logs first").lock().unwrap()).into_owned()
}

// ---- HTTP -------------------------------------------------------------------------------

/// A response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an error answer: status, code, JSON shape.
    pub(crate) fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        assert_eq!(body["error"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    assert!(addr.ip().is_loopback(), "tests talk to loopback only");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    for (name, value) in [
        ("User-Agent", USER_AGENT),
        ("X-Forwarded-For", FORWARDED_FOR),
    ] {
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) before reading everything; ignore a reset then.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse_response(&raw)
}

/// Parses a whole HTTP/1.1 answer (head and body, chunked or not).
pub(crate) fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("a full head: {}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// The value of `series` (name and labels exactly as rendered) in the exposition `text`.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// `GET /metrics` of `node`, as text.
pub(crate) async fn scrape(node: &TestNode) -> String {
    let response = node.get("/metrics").await;
    assert_eq!(response.status, 200);
    String::from_utf8(response.body).unwrap()
}

// ---- node -------------------------------------------------------------------------------

/// A node serving on an ephemeral loopback port, with a fake clock.
pub(crate) struct TestNode {
    pub(crate) node: Node,
    pub(crate) addr: SocketAddr,
    pub(crate) clock: ManualClock,
    pub(crate) case_worker: Option<(String, String)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The config tests use: loopback, small batches.
pub(crate) fn test_config(dir: &Path) -> NodeConfig {
    let mut config = NodeConfig {
        data_dir: dir.to_owned(),
        ..NodeConfig::default()
    };
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    // Nodes run side by side: not the fixed default federation port.
    config.federation.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.publication.batch_min_entries = 16;
    // Tests look for an upload's entries in the next batch: no release spread (its own
    // tests are the core's, `publication::tests`).
    config.publication.release_spread_seconds = 1;
    // Most tests certify at `POST /v1/verify`: no RSA keys made at every start (the blind
    // token tests turn them on).
    config.authority.blind_token_keys = false;
    // Tests move the clock by hours between a sign-in and the next request: a session then
    // lasts as before accounts (its lifetime); `accounts.rs` tests the idle timeout itself.
    config.authority.session_idle_seconds = config.authority.session_lifetime_seconds;
    config
}

/// Runs `attempt` again, for up to 5 s, while sled still holds the lock of a handle
/// dropped just before: its background threads let go of it a moment after the last handle
/// is dropped. Any other outcome comes back at once.
pub(crate) async fn waiting_for_sled<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    mut attempt: impl FnMut() -> F,
) -> Result<T, E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match attempt().await {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            done => return done,
        }
    }
}

/// `sled::open` of a database a node stopped just before.
pub(crate) async fn sled_open(path: &Path) -> sled::Db {
    waiting_for_sled(|| async move { sled::open(path) })
        .await
        .unwrap()
}

/// `Node::open`, once a node stopped just before has let go of the folder.
pub(crate) async fn open_node(
    config: NodeConfig,
    clock: &ManualClock,
) -> Result<ephemera_node::Opened, ephemera_node::NodeError> {
    waiting_for_sled(|| async { Node::open(config.clone(), Arc::new(clock.clone())) }).await
}

/// The password tests set in place of a one-time password `one_time`.
///
/// Digits only after the prefix: a one-time password's letters could spell a short
/// account name ("ada" in one draw of about 1,500), which the node rightly refuses.
pub(crate) fn test_password(one_time: &str) -> String {
    let digits: String = one_time
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    format!("set-by-test-{digits}")
}

impl TestNode {
    pub(crate) async fn start(dir: &Path, clock: ManualClock) -> TestNode {
        TestNode::start_with(test_config(dir), clock).await
    }

    pub(crate) async fn start_with(config: NodeConfig, clock: ManualClock) -> TestNode {
        capture_logs();
        TestNode::start_uncaptured(config, clock).await
    }

    /// Without the TRACE log capture (for measurements: sled logs a lot at TRACE).
    pub(crate) async fn start_uncaptured(config: NodeConfig, clock: ManualClock) -> TestNode {
        let listen = config.http.listen;
        assert!(listen.ip().is_loopback());
        let opened = open_node(config, &clock).await.unwrap();
        let case_worker = opened
            .new_case_worker
            .map(|(name, password)| (name, password.reveal().to_owned()));
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let node = opened.node.clone();
        let task = tokio::spawn(serve(node, listener, Background::Off, async move {
            let _ = stopped.await;
        }));
        let mut node = TestNode {
            node: opened.node,
            addr,
            clock,
            case_worker: None,
            stop: Some(stop),
            task: Some(task),
        };
        // The first account's one-time password must be replaced at its first sign-in: do
        // it now, as a person would, so tests sign in with a password of their own.
        if let Some((name, one_time)) = case_worker {
            let password = test_password(&one_time);
            node.first_sign_in(&name, &one_time, &password).await;
            node.case_worker = Some((name, password));
        }
        node
    }

    /// The one helper for a forced first password change: signs `name` in with its
    /// one-time password (the session may do nothing else until it changes it), then sets
    /// `password` over HTTP. Returns the session, now unrestricted.
    pub(crate) async fn first_sign_in(&self, name: &str, one_time: &str, password: &str) -> String {
        let login = self.signed_in(name, one_time).await;
        assert!(login.password_change_required, "a one-time password");
        let auth = format!("Bearer {}", login.token);
        let changed = self
            .post_json(
                "/v1/session/password",
                &[("Authorization", &auth)],
                &serde_json::json!({"current_password": one_time, "new_password": password}),
            )
            .await;
        assert_eq!(
            changed.status,
            204,
            "{}",
            String::from_utf8_lossy(&changed.body)
        );
        login.token
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> Response {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        let bytes = match &body {
            Some(body) => {
                headers.push(("Content-Type", "application/json"));
                body.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        request(self.addr, method, path, &headers, &bytes).await
    }

    /// Signs in with a JSON body as given; the raw answer.
    pub(crate) async fn sign_in(&self, body: serde_json::Value) -> Response {
        self.post_json("/v1/session", &[], &body).await
    }

    /// Creates `name` with `roles` as `admin`; its one-time password.
    pub(crate) async fn create(&self, admin: &str, name: &str, roles: &[&str]) -> String {
        let created = self
            .call(
                "POST",
                "/v1/accounts",
                admin,
                Some(serde_json::json!({"name": name, "roles": roles})),
            )
            .await;
        assert_eq!(
            created.status,
            201,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
        created.json()["password"].as_str().unwrap().to_owned()
    }

    /// Creates `name` with `roles` and signs it in past its forced password change; its
    /// session and password.
    pub(crate) async fn staff(&self, admin: &str, name: &str, roles: &[&str]) -> (String, String) {
        let one_time = self.create(admin, name, roles).await;
        let password = test_password(&one_time);
        let session = self.first_sign_in(name, &one_time, &password).await;
        (session, password)
    }

    /// Issues `count` codes of `test_type` with `token` (a session or an API key), as CSV
    /// when `csv`; the raw answer.
    pub(crate) async fn issue_as(
        &self,
        test_type: &str,
        token: &str,
        count: u32,
        csv: bool,
    ) -> Response {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if csv {
            headers.push(("Accept", "text/csv"));
        }
        let body = serde_json::json!({"test_type": test_type, "count": count});
        self.post_json("/v1/codes", &headers, &body).await
    }

    /// Graceful shutdown; waits until the database is closed.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        // Drop every handle to the store so sled releases its lock.
        let TestNode { node, .. } = self;
        drop(node);
        // The router's state clone goes away with the server task; give the runtime a beat.
        tokio::task::yield_now().await;
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"").await
    }

    pub(crate) async fn post_json(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Response {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        request(self.addr, "POST", path, &all, body.to_string().as_bytes()).await
    }

    pub(crate) async fn login(&self) -> String {
        let (name, password) = self.case_worker.clone().expect("first start");
        self.login_as(&name, &password).await
    }

    pub(crate) async fn login_as(&self, name: &str, password: &str) -> String {
        self.signed_in(name, password).await.token
    }

    /// Signs `name` in, asserting success; the whole answer.
    pub(crate) async fn signed_in(&self, name: &str, password: &str) -> LoginResponse {
        let response = self
            .post_json(
                "/v1/session",
                &[],
                &serde_json::json!({"name": name, "password": password}),
            )
            .await;
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        serde_json::from_slice(&response.body).unwrap()
    }

    /// Signs `session` out (`DELETE /v1/session`).
    pub(crate) async fn logout(&self, session: &str) -> Response {
        let auth = format!("Bearer {session}");
        request(
            self.addr,
            "DELETE",
            "/v1/session",
            &[("Authorization", &auth)],
            b"",
        )
        .await
    }

    /// Issues `count` codes of `test_type` with a session token.
    pub(crate) async fn issue(
        &self,
        session: &str,
        test_type: &str,
        onset: Option<&str>,
        count: u32,
    ) -> IssueCodesResponse {
        let auth = format!("Bearer {session}");
        let mut body = serde_json::json!({"test_type": test_type, "count": count});
        if let Some(onset) = onset {
            body["symptom_onset"] = onset.into();
        }
        let response = self
            .post_json("/v1/codes", &[("Authorization", &auth)], &body)
            .await;
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        serde_json::from_slice(&response.body).unwrap()
    }

    /// One fresh `confirmed` code from `session`.
    pub(crate) async fn one_code(&self, session: &str) -> String {
        self.issue(session, "confirmed", None, 1)
            .await
            .codes
            .remove(0)
            .code
    }

    /// Exchanges a code for a certificate over HMAC(contents) (version 1: the entries only).
    pub(crate) async fn certify(
        &self,
        code: &str,
        contents: &ReportContents,
        hmac_key: &ReportHmacKey,
    ) -> Result<SignedCertificate, Response> {
        self.certify_bound(code, contents, hmac_key, HmacBinding::Unbound)
            .await
    }

    /// Exchanges a code for a certificate over the HMAC of `contents` bound to `binding`
    /// (version 2: a revision key and its role).
    pub(crate) async fn certify_bound(
        &self,
        code: &str,
        contents: &ReportContents,
        hmac_key: &ReportHmacKey,
        binding: HmacBinding,
    ) -> Result<SignedCertificate, Response> {
        let request = VerifyRequest {
            code: code.to_owned(),
            report_hmac: hex::encode(hmac_key.authenticate_bound(contents, binding).0),
            decoy: false,
            padding: String::new(),
        };
        let response = self
            .post_raw("/v1/verify", "application/json", &request.to_padded_json())
            .await;
        if response.status != 200 {
            return Err(response);
        }
        let parsed: VerifyResponse = serde_json::from_slice(&response.body).unwrap();
        Ok(parsed.certificate().unwrap())
    }

    /// A fresh code of `test_type` from `session`, certified for `contents` bound to
    /// `binding`, as the upload a phone would send with it.
    pub(crate) async fn certified(
        &self,
        session: &str,
        test_type: &str,
        contents: &ReportContents,
        binding: HmacBinding,
    ) -> SignedUpload {
        self.certified_by(self, session, test_type, contents, binding)
            .await
    }

    /// As [`TestNode::certified`], the code issued at `issuer` (another node of the group)
    /// and certified here.
    pub(crate) async fn certified_by(
        &self,
        issuer: &TestNode,
        session: &str,
        test_type: &str,
        contents: &ReportContents,
        binding: HmacBinding,
    ) -> SignedUpload {
        let code = issuer
            .issue(session, test_type, None, 1)
            .await
            .codes
            .remove(0)
            .code;
        let hmac_key = ReportHmacKey::generate(&mut rand::rng());
        let certificate = self
            .certify_bound(&code, contents, &hmac_key, binding)
            .await
            .unwrap();
        SignedUpload {
            contents: contents.clone(),
            certificate,
            hmac_key,
        }
    }

    /// A phone's version 2 report: a fresh code of `test_type` certified for `contents`
    /// bound to `phone`'s key, uploaded with that key; asserts 200 and returns the upload.
    pub(crate) async fn report_v2(
        &self,
        session: &str,
        test_type: &str,
        contents: &ReportContents,
        phone: &RevisionSecret,
    ) -> SignedUpload {
        let upload = self
            .certified(
                session,
                test_type,
                contents,
                HmacBinding::Upload(phone.key()),
            )
            .await;
        self.post_ok(&UploadRequest::real(upload.clone(), phone.key()))
            .await;
        upload
    }

    /// The phone's signed revision to `test_type` of its version 2 upload `original`;
    /// asserts 200.
    pub(crate) async fn revise_v2(
        &self,
        session: &str,
        test_type: &str,
        original: &SignedUpload,
        phone: &RevisionSecret,
    ) {
        let revision = self
            .certified(
                session,
                test_type,
                &original.contents,
                HmacBinding::Revision(phone.key()),
            )
            .await;
        let revises = original.certificate.certificate.id;
        self.post_ok(&UploadRequest::revision(revision, revises, phone))
            .await;
    }

    /// Posts `request` to `/v1/uploads` and asserts 200.
    async fn post_ok(&self, request: &UploadRequest) {
        let sent = self
            .post_raw(
                "/v1/uploads",
                "application/octet-stream",
                &wire::encode(request),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", String::from_utf8_lossy(&sent.body));
    }

    pub(crate) async fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> Response {
        request(
            self.addr,
            "POST",
            path,
            &[("Content-Type", content_type)],
            body,
        )
        .await
    }

    pub(crate) async fn upload_body(&self, body: UploadBody) -> Response {
        let request = match body {
            UploadBody::RealV1(upload) => UploadRequest::real_v1(upload),
            other => {
                let mut r = UploadRequest {
                    body: other,
                    padding: Vec::new(),
                };
                let len = wire::encode(&r).len();
                r.padding = vec![0; ephemera_proto::upload::padded_request_size(len) - len];
                r
            }
        };
        self.post_raw(
            "/v1/uploads",
            "application/octet-stream",
            &wire::encode(&request),
        )
        .await
    }

    /// A fresh `confirmed` code from `session`, certified for `contents`, then the upload:
    /// the node's answer, whatever it is.
    pub(crate) async fn upload_certified(
        &self,
        session: &str,
        contents: ReportContents,
    ) -> Response {
        let upload = self
            .certified(session, "confirmed", &contents, HmacBinding::Unbound)
            .await;
        self.upload_body(UploadBody::RealV1(upload)).await
    }

    /// Issue, certify and upload `contents`; returns the revision token.
    pub(crate) async fn report(
        &self,
        session: &str,
        test_type: &str,
        contents: ReportContents,
    ) -> (String, SignedUpload) {
        let upload = self
            .certified(session, test_type, &contents, HmacBinding::Unbound)
            .await;
        let response = self.upload_body(UploadBody::RealV1(upload.clone())).await;
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(
            response.body.len(),
            ephemera_proto::api::UPLOAD_RESPONSE_SIZE
        );
        let parsed: UploadResponse = serde_json::from_slice(&response.body).unwrap();
        (parsed.revision_token, upload)
    }

    /// Moves the clock to the next boundary and cuts.
    pub(crate) async fn next_batches(&self) -> Vec<ephemera_proto::batch::BatchIndexEntry> {
        let period = self.node.config().publication.batch_period_seconds;
        let now = self.clock.now_secs();
        self.clock.set(UnixTime((now / period + 1) * period + 1));
        self.node.cut_due().await.unwrap()
    }

    pub(crate) async fn index(&self, after: u64) -> BatchIndex {
        let response = self.get(&format!("/v1/batches?after={after}")).await;
        assert_eq!(response.status, 200);
        serde_json::from_slice(&response.body).unwrap()
    }

    /// Fetches and verifies every published batch, merged.
    pub(crate) async fn all_published(&self) -> BatchContents {
        let trusted = TrustedNodes::new().with(self.node.keys().batch.public_key());
        let mut all = BatchContents::default();
        for entry in self.index(0).await.batches {
            let response = self.get(&format!("/v1/batches/{}", entry.id)).await;
            assert_eq!(response.status, 200);
            let (summary, contents) = SignedBatch::verify(&response.body, &trusted).unwrap();
            assert_eq!(summary.id, entry.id);
            all.diagnosis_keys.extend(contents.diagnosis_keys);
            all.tokens.extend(contents.tokens);
        }
        all
    }
}

pub(crate) trait ClockExt {
    fn now_secs(&self) -> u64;
}

impl ClockExt for ManualClock {
    fn now_secs(&self) -> u64 {
        use ephemera_node::clock::Clock;
        self.now().0
    }
}

/// `n` random pet tokens dated `days_ago`.
pub(crate) fn pet_contents(n: usize, day: ephemera_proto::DayNumber) -> ReportContents {
    ReportContents::Pet(
        (0..n)
            .map(|_| {
                let mut t = [0u8; 16];
                rand_core::Rng::fill_bytes(&mut rand::rng(), &mut t);
                PublishedToken {
                    day,
                    token: EncounterToken(t),
                }
            })
            .collect(),
    )
}

/// Every regular file under `dir`, concatenated.
/// The audit records `entries` as `actor action outcome` lines.
pub(crate) fn trail_lines(entries: &[ephemera_proto::audit::AuditEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e.record.actor, e.record.action, e.record.outcome
            )
        })
        .collect()
}

pub(crate) fn read_tree(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(read_tree(&path));
        } else if path.is_file() {
            // (Not the control socket of a running node.)
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

pub(crate) fn _flush_stdout() {
    let _ = std::io::stdout().flush();
}
