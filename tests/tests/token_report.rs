//! A report with a blind upload token end to end (issue 31 item 1, docs/PROTOCOL.md §4.4): a
//! real phone core against a real node with `blind_token_keys = true` (in process, sled in a
//! temporary folder, a manual clock). Phone A fetches the authority's token keys with its
//! sync, redeems a `likely` code for a blind token at `POST /v2/verify`, and uploads on the
//! next UTC day (the default delay), not before; phone B, who met A, finds the exposure
//! once the node publishes it. A then revises its report to `confirmed` with a second code
//! and a second token. A decoy token verify of a third phone has the real one's sealed
//! size, and so has the node's answer to it.

mod common;

use common::{issue_code, meet, open_node, publishing_config};
use ephemera_client::config::DEFAULT_FEDERATION;
use ephemera_client::store::MemoryStore;
use ephemera_client::{ClientConfig, Phone, PhoneEvent, Purpose, Request, Response};
use ephemera_node::Node;
use ephemera_node::api::types::TestType;
use ephemera_node::clock::{Clock, ManualClock};
use ephemera_proto::sealed::SealedRoute;
use ephemera_proto::{SchemeKind, UnixTime};

/// 2023-11-15 07:00 UTC.
const MORNING: UnixTime = UnixTime(1_700_006_400 + 7 * 3600);

/// One request a phone sent: when, why, where, and the sizes on the wire.
#[derive(Debug)]
struct Sent {
    at: UnixTime,
    purpose: Purpose,
    path: String,
    request_len: usize,
    answer_len: usize,
}

/// The node's answer to `request` at `now` (its clock set to `now` first), as its HTTP
/// routes give it.
async fn serve(node: &Node, clock: &ManualClock, now: UnixTime, request: &Request) -> Response {
    clock.set(now);
    let body = match request.purpose {
        Purpose::FetchIndex => {
            let after = request.path.rsplit('=').next().unwrap().parse().unwrap();
            serde_json::to_vec(&node.batch_index(after).unwrap()).unwrap()
        }
        Purpose::FetchBatch(id) => node.batch(&id).unwrap().unwrap().body().to_vec(),
        Purpose::FetchFilter(id) => node.token_filter(&id).unwrap().unwrap().body().to_vec(),
        Purpose::FetchSealingKey => serde_json::to_vec(&node.sealing_key_announcement()).unwrap(),
        Purpose::FetchTokenKeys => node.token_key_set_frame(),
        Purpose::FetchVenueReleaseIndex => {
            let after = request.path.rsplit('=').next().unwrap().parse().unwrap();
            serde_json::to_vec(&node.venue_release_index(after).unwrap()).unwrap()
        }
        Purpose::FetchVenueRelease(id) => node.venue_release(&id).unwrap().unwrap(),
        _ => {
            let route = match request.path.as_str() {
                "/v1/verify" => SealedRoute::Verify,
                "/v2/verify" => SealedRoute::TokenVerify,
                "/v1/uploads" => SealedRoute::Upload,
                other => panic!("no sealed route {other}"),
            };
            assert_eq!(route.path(), request.path);
            node.sealed_exchange(route, &request.body).await.unwrap()
        }
    };
    Response { status: 200, body }
}

/// Sends every request `phone` has at `now` to `node`, and hands the answers back, until
/// it has none; records each.
async fn drive(
    phone: &mut Phone<MemoryStore>,
    node: &Node,
    clock: &ManualClock,
    now: UnixTime,
    log: &mut Vec<Sent>,
) {
    while let Some(request) = phone.poll_request() {
        let answer = serve(node, clock, now, &request).await;
        log.push(Sent {
            at: now,
            purpose: request.purpose,
            path: request.path.clone(),
            request_len: request.body.len(),
            answer_len: answer.body.len(),
        });
        phone.handle_response(now, request.id, answer).unwrap();
    }
}

/// Steps `phone` every `step` seconds from `from` (its timers, its requests) until
/// `until` holds for its log or `to` is passed; returns the time it held.
async fn step_until(
    phone: &mut Phone<MemoryStore>,
    node: &Node,
    clock: &ManualClock,
    (from, to, step): (UnixTime, UnixTime, u64),
    log: &mut Vec<Sent>,
    until: impl Fn(&[Sent]) -> bool,
) -> Option<UnixTime> {
    let mut now = from;
    while now <= to {
        phone.handle_timeout(now).unwrap();
        drive(phone, node, clock, now, log).await;
        if until(log) {
            return Some(now);
        }
        now = now.plus_seconds(step);
    }
    None
}

fn uploaded(events: &[PhoneEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, PhoneEvent::ReportUploaded { .. }))
}

#[tokio::test]
async fn a_token_report_uploads_the_next_day_is_matched_and_revised() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(MORNING);
    let mut config = publishing_config(dir.path());
    config.authority.blind_token_keys = true;
    // The phone's default federation is the node's, whose region is unset here.
    assert_eq!(config.federation.region, None);
    assert_eq!(
        DEFAULT_FEDERATION,
        ephemera_node::core::policy::DEFAULT_AUDIENCE
    );
    let node = open_node(config, &clock).await;
    assert!(node.ensure_token_keys().await.unwrap() > 0);

    let config = ClientConfig::new(SchemeKind::Pet)
        .with_trusted_node(node.keys().batch.public_key())
        .with_trusted_authority(node.keys().authority.public_key())
        .with_federation(DEFAULT_FEDERATION)
        .with_decoy_rate(0.0);
    let mut config_b = config.clone();
    // B counts `likely` reports too, so the first upload alone raises its risk.
    config_b
        .risk
        .report_type_weights
        .confirmed_clinical_diagnosis = 1.0;
    let mut a = Phone::new(config.clone(), MemoryStore::new(), [1; 32]).unwrap();
    let mut b = Phone::new(config_b, MemoryStore::new(), [2; 32]).unwrap();

    // Twenty minutes together, a sighting every 10 s each way; then apart for an hour.
    let mut now = meet(&mut a, &mut b, MORNING, 20 * 60);
    now = now.plus_seconds(3600);
    let (mut log_a, mut log_b) = (Vec::new(), Vec::new());
    for (p, log) in [(&mut a, &mut log_a), (&mut b, &mut log_b)] {
        p.handle_timeout(now).unwrap();
        p.start_sync(now).unwrap();
        drive(p, &node, &clock, now, log).await;
        while p.poll_event().is_some() {}
    }
    assert!(log_a.iter().any(|s| s.purpose == Purpose::FetchTokenKeys));

    // A reports with a `likely` code: a token verify, and no upload the same day.
    let likely = issue_code(&node, &clock, now, TestType::Likely).await;
    a.start_report(now, &likely, None, None).unwrap();
    drive(&mut a, &node, &clock, now, &mut log_a).await;
    let verify = log_a.last().unwrap();
    assert_eq!(
        (verify.purpose, verify.path.as_str()),
        (Purpose::Verify, "/v2/verify")
    );
    let (real_verify_len, real_answer_len) = (verify.request_len, verify.answer_len);
    let verified_at = now;
    let next_day = verified_at.day().plus(1);
    let is_upload = |log: &[Sent]| log.iter().any(|s| s.purpose == Purpose::Upload);
    let window = (
        now.plus_seconds(60),
        next_day.start().plus_seconds(86_400),
        300,
    );
    let uploaded_at = step_until(&mut a, &node, &clock, window, &mut log_a, is_upload)
        .await
        .expect("the upload on the next day");
    assert_eq!(
        uploaded_at.day(),
        next_day,
        "uploaded on the UTC day after the verify"
    );
    let events: Vec<PhoneEvent> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(uploaded(&events), "{events:?}");
    assert!(a.can_revise());

    // The node publishes it; B, who met A, finds the exposure.
    let mut found = None;
    let mut t = uploaded_at;
    while found.is_none() && t.0 < uploaded_at.0 + 2 * 86_400 {
        t = t.plus_seconds(3600);
        clock.set(t);
        node.cut_due().await.unwrap();
        b.handle_timeout(t).unwrap();
        b.start_sync(t).unwrap();
        drive(&mut b, &node, &clock, t, &mut log_b).await;
        found = std::iter::from_fn(|| b.poll_event()).find_map(|e| match e {
            PhoneEvent::ExposureFound(daily) => Some(daily),
            _ => None,
        });
    }
    let daily = found.expect("B finds the exposure");
    // Through token filters (publication version 3): B never fetched a batch with tokens.
    assert!(
        log_b
            .iter()
            .any(|s| matches!(s.purpose, Purpose::FetchFilter(_)))
    );
    assert!(
        !log_b
            .iter()
            .any(|s| matches!(s.purpose, Purpose::FetchBatch(_)))
    );
    assert_eq!(daily.day, MORNING.day());

    // likely → confirmed: a new code, a new token, uploaded the day after its verify again.
    let revised_at = t.max(uploaded_at.plus_seconds(600));
    clock.set(revised_at);
    node.ensure_token_keys().await.unwrap();
    let confirmed = issue_code(&node, &clock, revised_at, TestType::Confirmed).await;
    a.start_revision(revised_at, &confirmed).unwrap();
    let uploads_before = log_a
        .iter()
        .filter(|s| s.purpose == Purpose::Upload)
        .count();
    let window = (revised_at, revised_at.day().plus(2).start(), 300);
    let revision_sent = step_until(&mut a, &node, &clock, window, &mut log_a, |log| {
        log.iter().filter(|s| s.purpose == Purpose::Upload).count() > uploads_before
    })
    .await
    .expect("the revision's upload");
    assert_eq!(revision_sent.day(), revised_at.day().plus(1));
    let revision_verify = log_a
        .iter()
        .rev()
        .find(|s| s.purpose == Purpose::Verify)
        .unwrap();
    assert_eq!(revision_verify.path, "/v2/verify");
    assert!(revision_verify.at < revision_sent);
    let events: Vec<PhoneEvent> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(
        uploaded(&events),
        "the node accepted the revision: {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, PhoneEvent::ReportFailed(_))),
        "{events:?}"
    );

    // A decoy token verify: the real one's sealed size, and the node's answer too.
    let decoys = config.clone().with_decoy_rate(48.0);
    let mut c = Phone::new(decoys, MemoryStore::new(), [3; 32]).unwrap();
    let from = clock.now();
    let mut log_c = Vec::new();
    let is_decoy_verify = |log: &[Sent]| log.iter().any(|s| s.purpose == Purpose::DecoyVerify);
    step_until(
        &mut c,
        &node,
        &clock,
        (from, from.plus_seconds(86_400), 60),
        &mut log_c,
        is_decoy_verify,
    )
    .await
    .expect("a decoy flow within a day");
    let decoy = log_c
        .iter()
        .find(|s| s.purpose == Purpose::DecoyVerify)
        .unwrap();
    assert_eq!(decoy.path, "/v2/verify");
    assert_eq!(decoy.request_len, real_verify_len);
    assert_eq!(decoy.answer_len, real_answer_len);
}
