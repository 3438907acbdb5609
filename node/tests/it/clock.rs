//! Clock steps, driven through the injected clock: a step forward purges and cuts nothing
//! (no batch dated in the future), a step behind the last cut waits and resumes by itself,
//! and a start far past the last cut waits for the operator (`serve --accept-clock`).

use ephemera_node::clock::{Clock, ManualClock};
use ephemera_proto::UnixTime;

use crate::util::*;

const DAY: u64 = 86_400;

/// The value of a gauge in the node's `/metrics`.
async fn gauge(node: &TestNode, name: &str) -> f64 {
    let text = String::from_utf8(node.get("/metrics").await.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// A node with one upload published at the first boundary after `T0`.
async fn node_with_a_cut(dir: &std::path::Path) -> (TestNode, UnixTime) {
    let node = TestNode::start(dir, ManualClock::new(T0)).await;
    let session = node.login().await;
    node.report(&session, "confirmed", pet_contents(3, T0.day()))
        .await;
    let cut = node.next_batches().await;
    assert_eq!(cut.len(), 1);
    let boundary = last_cut(&node);
    (node, boundary)
}

fn last_cut(node: &TestNode) -> UnixTime {
    let state = node.node.store().cutter_state().unwrap();
    state.last_boundary.expect("a cut")
}

#[tokio::test]
async fn a_forward_step_purges_and_cuts_nothing_until_the_clock_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (node, boundary) = node_with_a_cut(dir.path()).await;
    let before = node.clock.now();
    assert_eq!(gauge(&node, "ephemera_clock_anomaly").await, 0.0);

    // +15 days, no time passing: past retention for everything stored.
    node.clock.step(before.plus_seconds(15 * DAY));
    let purged = node.node.purge().unwrap();
    assert_eq!(purged.total(), 0, "nothing purged on a step");
    assert!(node.node.cut_due().await.unwrap().is_empty(), "nothing cut");
    assert_eq!(node.node.store().upload_count().unwrap(), 1);
    assert_eq!(gauge(&node, "ephemera_clock_anomaly").await, 1.0);
    assert_eq!(
        gauge(&node, "ephemera_last_cut_timestamp_seconds").await,
        boundary.0 as f64
    );
    assert!(
        captured_logs().contains("wall clock stepped forward"),
        "an ERROR says why"
    );

    // The clock is set right again, an hour later: the next boundary is cut, dated now.
    node.clock.step(before);
    node.clock.advance(3600);
    let resumed = node.node.cut_due().await.unwrap();
    assert_eq!(resumed.len(), 1);
    let last = last_cut(&node);
    assert!(last <= node.clock.now() && last > boundary);
    assert_eq!(gauge(&node, "ephemera_clock_anomaly").await, 0.0);
    assert_eq!(node.node.store().upload_count().unwrap(), 1);
    node.stop().await;
}

#[tokio::test]
async fn a_step_behind_the_last_cut_cuts_nothing_and_resumes_at_the_next_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let (node, boundary) = node_with_a_cut(dir.path()).await;
    // Two hours back.
    node.clock.step(node.clock.now().minus_seconds(2 * 3600));
    assert!(node.node.cut_due().await.unwrap().is_empty());
    assert_eq!(gauge(&node, "ephemera_clock_anomaly").await, 1.0);
    // Purging with an earlier time deletes less: it runs.
    node.node.purge().unwrap();
    // Time passes until the wall clock is past the next boundary after the last cut.
    let period = node.node.config().publication.batch_period_seconds;
    node.clock.set(UnixTime(boundary.0 + period + 1));
    let resumed = node.node.cut_due().await.unwrap();
    assert_eq!(resumed.len(), 1, "publication resumes by itself");
    assert_eq!(gauge(&node, "ephemera_clock_anomaly").await, 0.0);
    node.stop().await;
}

#[tokio::test]
async fn a_start_far_past_the_last_cut_waits_for_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = node_with_a_cut(dir.path()).await;
    let later = node.clock.now().plus_seconds(15 * DAY);
    node.stop().await;

    let node = TestNode::start(dir.path(), ManualClock::new(later)).await;
    assert_eq!(node.node.purge().unwrap().total(), 0);
    assert!(node.node.cut_due().await.unwrap().is_empty());
    assert_eq!(node.node.store().upload_count().unwrap(), 1);
    // The operator checked the clock and restarted with `--accept-clock`.
    node.node.accept_clock();
    assert_eq!(node.node.purge().unwrap().uploads, 1);
    // The boundary it started in may have been cut before: the next one is cut.
    assert!(node.node.cut_due().await.unwrap().is_empty());
    assert_eq!(node.next_batches().await.len(), 1);
    node.stop().await;
}
