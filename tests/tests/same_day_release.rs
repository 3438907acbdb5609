//! GAEN same-day key release end to end: a real phone core reports to a real node (in
//! process, sled in a temporary folder, a manual clock) on the day it met someone; the node
//! accepts today's key with its cut rolling period, holds it until that cut end plus 2 hours
//! (not the end of the day), then publishes it, and the other phone matches the contact.

mod common;

use std::sync::Arc;

use common::{issue_code, meet, open_node, publishing_config};
use ephemera_client::store::MemoryStore;
use ephemera_client::{ClientConfig, Phone, PhoneEvent, Purpose, Response};
use ephemera_node::Node;
use ephemera_node::api::types::TestType;
use ephemera_node::clock::ManualClock;
use ephemera_proto::gaen::DiagnosisKey;
use ephemera_proto::sealed::SealedRoute;
use ephemera_proto::{ReportContents, SchemeKind, UnixTime};

/// 2023-11-15 07:00 UTC: a morning, so the meeting and the report are on one day.
const MORNING: UnixTime = UnixTime(1_700_006_400 + 7 * 3600);

fn phone(config: &Arc<ClientConfig>, seed: u8) -> Phone<MemoryStore> {
    Phone::new(Arc::clone(config), MemoryStore::new(), [seed; 32]).unwrap()
}

/// Cuts the batches due at `at`, and hands every published batch to `phone`; returns the
/// keys published so far.
async fn published_until(
    node: &Node,
    clock: &ManualClock,
    at: UnixTime,
    phone: &mut Phone<MemoryStore>,
) -> Vec<DiagnosisKey> {
    clock.set(at);
    node.cut_due().await.unwrap();
    let trusted = phone.config().trusted_nodes.clone();
    let mut keys = Vec::new();
    for entry in node.batch_index(0).unwrap().batches {
        let batch = node.batch(&entry.id).unwrap().unwrap();
        let bytes = batch.body();
        let (_, contents) = ephemera_proto::batch::SignedBatch::verify(bytes, &trusted).unwrap();
        keys.extend(contents.diagnosis_keys);
        phone.handle_batch(at, bytes).unwrap();
    }
    keys
}

#[tokio::test]
async fn a_contact_on_the_upload_day_is_matched_once_the_cut_key_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(MORNING);
    let config = publishing_config(dir.path());
    let node = open_node(config, &clock).await;

    let config = Arc::new(
        ClientConfig::new(SchemeKind::Gaen)
            .with_trusted_node(node.keys().batch.public_key())
            .with_decoy_rate(0.0),
    );
    let (mut a, mut b) = (phone(&config, 1), phone(&config, 2));

    // Twenty minutes together, a sighting every 10 s each way.
    let mut now = meet(&mut a, &mut b, MORNING, 20 * 60);
    // Apart for an hour, then a tests positive and reports, the same day.
    now = now.plus_seconds(3600);
    for p in [&mut a, &mut b] {
        p.handle_timeout(now).unwrap();
        while p.poll_request().is_some() {}
    }
    let code = issue_code(&node, &clock, now, TestType::Confirmed).await;
    // The app's sync at opening brings the node's sealing key.
    a.start_sync(now).unwrap();
    while let Some(r) = a.poll_request() {
        if r.purpose == Purpose::FetchSealingKey {
            let body = serde_json::to_vec(&node.sealing_key_announcement()).unwrap();
            a.handle_response(now, r.id, Response { status: 200, body })
                .unwrap();
        }
    }
    while a.poll_event().is_some() {}
    a.start_report(now, &code, None, None).unwrap();
    let verify = a.poll_request().unwrap();
    assert_eq!(verify.purpose, Purpose::Verify);
    let answer = node
        .sealed_exchange(SealedRoute::Verify, &verify.body)
        .await
        .unwrap();
    a.handle_response(
        now,
        verify.id,
        Response {
            status: 200,
            body: answer,
        },
    )
    .unwrap();
    // The upload follows the verify's answer 1 to 3 s later, on the phone's timer.
    a.handle_timeout(now.plus_seconds(3)).unwrap();
    let upload = std::iter::from_fn(|| a.poll_request())
        .find(|r| r.purpose == Purpose::Upload)
        .unwrap();
    let (inner, _) = node
        .keys()
        .sealing
        .open_request(SealedRoute::Upload, &upload.body)
        .unwrap();
    let sent: ephemera_proto::upload::UploadRequest = ephemera_proto::wire::decode(&inner).unwrap();
    let ephemera_proto::upload::UploadBody::Real { upload: sent, .. } = sent.body else {
        panic!("a real upload")
    };
    let ReportContents::Gaen(sent_keys) = sent.contents else {
        panic!("gaen keys")
    };
    let accepted = node
        .sealed_exchange(SealedRoute::Upload, &upload.body)
        .await
        .unwrap();
    a.handle_response(
        now,
        upload.id,
        Response {
            status: 200,
            body: accepted,
        },
    )
    .unwrap();
    assert!(matches!(
        a.poll_event(),
        Some(PhoneEvent::ReportUploaded { .. })
    ));

    // The cut key: published 2 hours after the interval of the report ends, and not before.
    let report_end = now.interval().plus(1);
    let embargo_end = report_end.plus(12).start();
    let day_start = MORNING.day().first_interval();
    let cut = sent_keys
        .iter()
        .find(|k| k.rolling_start == day_start)
        .expect("today's key in the upload");
    assert_eq!(cut.rolling_end(), report_end);
    assert!(cut.rolling_period < 144);
    let is_cut_key = |k: &DiagnosisKey| k.key == cut.key;
    let before = published_until(&node, &clock, UnixTime(embargo_end.0 - 1), &mut b).await;
    assert!(
        !before.iter().any(is_cut_key),
        "held until the embargo ends"
    );
    assert!(
        !std::iter::from_fn(|| b.poll_event()).any(|e| matches!(e, PhoneEvent::ExposureFound(_))),
        "nothing matches before the embargo ends"
    );
    let period = node.config().publication.batch_period_seconds;
    let after = UnixTime((embargo_end.0 / period + 1) * period + 1);
    assert_eq!(after.day(), MORNING.day(), "published the same day");
    let published = published_until(&node, &clock, after, &mut b).await;
    assert_eq!(published.iter().filter(|k| is_cut_key(k)).count(), 1);
    let mut found = None;
    while let Some(event) = b.poll_event() {
        if let PhoneEvent::ExposureFound(daily) = event {
            found = Some(daily);
        }
    }
    let daily = found.expect("the contact of the upload day is matched");
    assert_eq!(daily.day, MORNING.day());
    assert!(
        daily.seconds_per_bucket.iter().sum::<u32>() >= 15 * 60,
        "{daily:?}"
    );
}
