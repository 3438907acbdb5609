//! A rough figure, not a benchmark: durable uploads per second through `Node::upload`
//! (measured: ~4 800/s in release on the shared 2-core VM, 10 tokens each, 256 in flight)
//! (verify, single-use check, sled commit, group-committed flush). Run with
//! `cargo test -p ephemera-node --release --test it throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use ephemera_node::clock::ManualClock;
use ephemera_proto::auth::{CertificateRequest, ReportHmacKey};
use ephemera_proto::report::ReportType;
use ephemera_proto::upload::{SignedUpload, UploadRequest};
use ephemera_proto::wire;

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn rough_upload_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_uncaptured(test_config(dir.path()), ManualClock::new(T0)).await;
    let n = 20_000;
    let mut rng = rand::rng();
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let contents = pet_contents(10, T0.day());
            let hmac_key = ReportHmacKey::generate(&mut rng);
            let request = CertificateRequest {
                report_hmac: hmac_key.authenticate(&contents),
                test_type: ReportType::ConfirmedTest,
                symptom_onset: None,
            };
            let certificate = node
                .node
                .keys()
                .authority
                .issue(&request, T0, 900, &mut rng);
            wire::encode(&UploadRequest::real_v1(SignedUpload {
                contents,
                certificate,
                hmac_key,
            }))
        })
        .collect();
    let bodies = Arc::new(bodies);
    let start = Instant::now();
    let tasks: Vec<_> = (0..256)
        .map(|t| {
            let node = node.node.clone();
            let bodies = bodies.clone();
            tokio::spawn(async move {
                for body in bodies.iter().skip(t).step_by(256) {
                    node.upload(body).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{n} durable uploads of 10 tokens in {seconds:.2} s: {:.0} uploads/s",
        n as f64 / seconds
    );
    assert_eq!(node.node.store().upload_count().unwrap(), n as u64);
    node.stop().await;
}
