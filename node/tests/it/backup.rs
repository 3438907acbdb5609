//! `ephemera-node backup` while the node serves: writers wait for the copy, and the copy
//! opens with every upload acknowledged before the backup was asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ephemera_node::clock::ManualClock;
use ephemera_node::control::{self, CONTROL_SOCKET, ControlAnswer, ControlRequest};
use ephemera_node::keys::KEYS_DIR;
use ephemera_node::store::{DATA_KEYS_DIR, ReportStore, SledReportStore};
use ephemera_proto::auth::CertificateId;
use tokio::sync::Mutex;

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_upload() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Arc::new(TestNode::start(&data, ManualClock::new(T0)).await);
    let socket = data.join(CONTROL_SOCKET);
    let listener = control::listen(node.node.clone(), &socket).unwrap();
    let session = node.login().await;
    node.next_batches().await;

    // Phones upload without pause while the backup runs.
    let acknowledged: Arc<Mutex<Vec<CertificateId>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (node, acknowledged, stop, session) = (
            node.clone(),
            acknowledged.clone(),
            stop.clone(),
            session.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (_, upload) = node
                    .report(&session, "confirmed", pet_contents(5, T0.day()))
                    .await;
                acknowledged
                    .lock()
                    .await
                    .push(upload.certificate.certificate.id);
            }
        })
    };
    while acknowledged.lock().await.len() < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: Vec<CertificateId> = acknowledged.lock().await.clone();
    let to = dir.path().join("backup");
    let answer = control::request(
        &socket,
        &ControlRequest::Backup { to: to.clone() },
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let ControlAnswer::BackedUp { files, .. } = answer else {
        panic!("{answer:?}")
    };
    assert!(files >= 3, "{answer:?}");
    // The node kept serving: more uploads were acknowledged after the copy.
    let during = acknowledged.lock().await.len();
    while acknowledged.lock().await.len() < during + 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    listener.abort();

    // A second backup into the same folder is refused.
    let again = control::request(
        &socket,
        &ControlRequest::Backup { to: to.clone() },
        Duration::from_secs(60),
    )
    .await;
    assert!(again.is_err() || matches!(again, Ok(ControlAnswer::Failed { .. })));

    // The copy opens as a store, with every upload acknowledged before it was asked for.
    let copy = SledReportStore::open(
        &to.join("db"),
        &to.join("blobs"),
        &to.join(KEYS_DIR).join(DATA_KEYS_DIR),
    )
    .expect("the copy opens");
    for certificate in &before {
        let mark = copy
            .certificate_use(certificate)
            .unwrap()
            .expect("an acknowledged upload is in the copy");
        assert!(copy.upload(&mark.upload).unwrap().is_some());
    }
    assert!(copy.upload_count().unwrap() >= before.len() as u64);
    assert_eq!(copy.batch_index(0, 10).unwrap().len(), 1);
}
