//! Real and decoy answer times at the node, side by side (issue 30): what a proxy or a
//! co-located observer sees of sealed verify and upload exchanges.
//!
//! A release-built node in this process on 127.0.0.1 (sled in a temporary folder), one
//! client connection sending sealed exchanges one at a time in a shuffled order: real
//! verifies (issued codes) followed by their real uploads, and decoy verifies and uploads
//! sized alike. Twice: with the default `[http] phone_answer_floor_ms` and with the floor
//! off (the node as it was before issue 30). Prints p50, p90, p99 and max per kind, and the
//! AUC of telling them apart by time alone (0.5: no better than a coin).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera_node::api::types::{IssueCodesRequest, TestType};
use ephemera_node::clock::SystemClock;
use ephemera_node::config::NodeConfig;
use ephemera_node::node::{Issuer, Node};
use ephemera_node::server::{Background, serve};
use ephemera_proto::api::VerifyRequest;
use ephemera_proto::auth::{ReportHmacKey, UploadCode};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportContents};
use ephemera_proto::sealed::{self, SealedRoute, SealingPublicKey};
use ephemera_proto::upload::{SignedUpload, UploadRequest};
use ephemera_proto::{UnixTime, wire};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::Figure;
use crate::http::Connection;

/// Exchanges of each kind (real, decoy) per run.
const EXCHANGES: usize = 400;

/// Answer times in seconds of one kind on one route.
#[derive(Default)]
struct Times(Vec<f64>);

impl Times {
    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }
}

/// The probability that a random real time exceeds a random decoy time (ties count half):
/// the AUC of a classifier that calls the slower answer real.
fn auc(real: &Times, decoy: &Times) -> f64 {
    let mut wins = 0.0;
    for r in &real.0 {
        for d in &decoy.0 {
            wins += match r.total_cmp(d) {
                std::cmp::Ordering::Greater => 1.0,
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Less => 0.0,
            };
        }
    }
    let auc = wins / (real.0.len() * decoy.0.len()) as f64;
    auc.max(1.0 - auc)
}

/// Runs both floors; prints the distributions to stderr and returns the AUC figures.
pub fn run() -> Vec<Figure> {
    let runtime = super::two_core_runtime();
    let floor = NodeConfig::default().http.phone_answer_floor_ms;
    let mut figures = Vec::new();
    for floor_ms in [floor, 0] {
        figures.extend(runtime.block_on(measure(floor_ms)));
    }
    figures
}

async fn measure(floor_ms: u64) -> Vec<Figure> {
    let dir = std::env::temp_dir().join(format!(
        "ephemera-decoy-timing-{}-{floor_ms}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = NodeConfig {
        data_dir: dir.clone(),
        ..NodeConfig::default()
    };
    config.federation.enabled = false;
    config.http.phone_answer_floor_ms = floor_ms;
    let node = Node::open(config, Arc::new(SystemClock))
        .expect("open node")
        .node;
    let key = node.keys().sealing.public_key();
    let codes = issue(&node).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(node.clone(), listener, Background::Off, async move {
        let _ = stopped.await;
    }));
    let mut connection = Connection::open(addr).await.expect("connect");
    let mut rng = ChaCha20Rng::from_seed([30; 32]);
    let mut kinds: Vec<bool> = (0..2 * EXCHANGES).map(|i| i < EXCHANGES).collect();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let mut times: [[Times; 2]; 2] = Default::default();
    let mut codes = codes.into_iter();
    for real in kinds {
        let contents = contents(&mut rng);
        let hmac_key = ReportHmacKey::generate(&mut rng);
        let code = if real { codes.next() } else { None };
        let request = match code {
            Some(code) => VerifyRequest::real(
                &code,
                &hmac_key.authenticate_bound(
                    &contents,
                    ephemera_proto::revision::HmacBinding::Upload(
                        ephemera_proto::revision::RevisionSecret::from_seed(&[7; 32]).key(),
                    ),
                ),
            ),
            None => VerifyRequest::decoy(&mut rng),
        };
        let (answer, verify) = exchange(
            &mut connection,
            key,
            SealedRoute::Verify,
            &request.to_padded_json(),
            &mut rng,
        )
        .await;
        let upload = if real {
            let response: ephemera_proto::api::VerifyResponse =
                serde_json::from_slice(&answer).expect("a certificate");
            wire::encode(&UploadRequest::real(
                SignedUpload {
                    contents,
                    certificate: response.certificate().expect("certificate"),
                    hmac_key,
                },
                ephemera_proto::revision::RevisionSecret::from_seed(&[7; 32]).key(),
            ))
        } else {
            wire::encode(&UploadRequest::decoy(upload_len(&contents, &mut rng)))
        };
        let (_, upload_took) =
            exchange(&mut connection, key, SealedRoute::Upload, &upload, &mut rng).await;
        let kind = usize::from(!real);
        times[0][kind].0.push(verify.as_secs_f64());
        times[1][kind].0.push(upload_took.as_secs_f64());
    }
    let _ = stop.send(());
    let _ = server.await;
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    let mut figures = Vec::new();
    for (route, [real, decoy]) in ["verify", "upload"].iter().zip(&times) {
        let ms = |t: &Times, q| t.quantile(q) * 1000.0;
        eprintln!(
            "floor {floor_ms:>3} ms  {route:<6}  real p50 {:7.2} p90 {:7.2} p99 {:7.2} max {:7.2} ms | decoy p50 {:7.2} p90 {:7.2} p99 {:7.2} max {:7.2} ms",
            ms(real, 0.5),
            ms(real, 0.9),
            ms(real, 0.99),
            ms(real, 1.0),
            ms(decoy, 0.5),
            ms(decoy, 0.9),
            ms(decoy, 0.99),
            ms(decoy, 1.0),
        );
        figures.push(Figure::new(
            &format!("decoy-timing-{route}-floor-{floor_ms}ms"),
            auc(real, decoy),
            "AUC",
            0.55,
        ));
    }
    figures
}

/// `EXCHANGES` upload codes from the node's authority.
async fn issue(node: &Node) -> Vec<UploadCode> {
    let mut codes = Vec::new();
    while codes.len() < EXCHANGES {
        let issued = node
            .issue_codes(
                &IssueCodesRequest {
                    test_type: TestType::Confirmed,
                    symptom_onset: None,
                    count: Some(100),
                },
                &Issuer::Account("bench".to_owned()),
            )
            .await
            .expect("codes");
        codes.extend(
            issued
                .codes
                .iter()
                .map(|c| UploadCode::parse(&c.code).expect("an issued code")),
        );
    }
    codes
}

/// A `pet` report of a few tokens today.
fn contents(rng: &mut ChaCha20Rng) -> ReportContents {
    let today = UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .day();
    ReportContents::Pet(
        (0..10)
            .map(|_| {
                let mut token = [0u8; 16];
                rng.fill_bytes(&mut token);
                PublishedToken {
                    day: today,
                    token: EncounterToken(token),
                }
            })
            .collect(),
    )
}

/// The length of a real upload of `contents`, for its decoy.
fn upload_len(contents: &ReportContents, rng: &mut ChaCha20Rng) -> usize {
    let authority = ephemera_proto::auth::AuthoritySigningKey::generate(rng);
    super::certified_upload_body(&authority, contents.clone(), UnixTime(0), rng).len()
}

/// One sealed exchange: the opened answer's body and the time to the whole answer.
async fn exchange(
    connection: &mut Connection,
    key: SealingPublicKey,
    route: SealedRoute,
    inner: &[u8],
    rng: &mut ChaCha20Rng,
) -> (Vec<u8>, Duration) {
    let (body, opener) = key.seal_request(route, inner, rng).expect("seal");
    let start = Instant::now();
    let response = connection
        .post(route.path(), sealed::CONTENT_TYPE, &body)
        .await
        .expect("exchange");
    let took = start.elapsed();
    assert_eq!(response.status, 200);
    let inner = opener.open(&response.body).expect("a sealed answer");
    assert_eq!(
        inner.status,
        200,
        "{}",
        String::from_utf8_lossy(&inner.body)
    );
    (inner.body, took)
}
