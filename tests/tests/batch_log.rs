//! The batch log end to end (issue 31, item 5; docs/PROTOCOL.md §6.2): a real phone core
//! syncs from a real node (in process, a manual clock) through several cuts and follows its
//! signed head; then a second copy of the node (its keys, another store) publishes another
//! history under the same sequences. The phone refuses it, and its cross-check with the
//! copy's `/v1/heads` answer names the equivocation.

use std::sync::Arc;

use ephemera_client::store::MemoryStore;
use ephemera_client::{ClientConfig, ClientError, HeadCrossCheck, Phone, Purpose, Response};
use ephemera_node::Node;
use ephemera_node::clock::ManualClock;
use ephemera_node::config::NodeConfig;
use ephemera_node::keys::NodeKeys;
use ephemera_node::store::MemoryReportStore;
use ephemera_proto::{SchemeKind, UnixTime};

const START: UnixTime = UnixTime(1_700_006_400 + 7 * 3600);

/// One sync round of `phone` against `node` at `now`, answered in process; the first
/// error, or `Ok` once the round ended.
async fn sync(
    phone: &mut Phone<MemoryStore>,
    node: &Node,
    now: UnixTime,
) -> Result<(), ClientError> {
    phone.start_sync(now)?;
    let result = loop {
        let Some(request) = phone.poll_request() else {
            break Ok(());
        };
        let body = match request.purpose {
            Purpose::FetchIndex => {
                let after = request.path.rsplit('=').next().unwrap().parse().unwrap();
                serde_json::to_vec(&node.batch_index(after).unwrap()).unwrap()
            }
            Purpose::FetchBatch(id) => node.batch(&id).unwrap().unwrap().body().to_vec(),
            Purpose::FetchFilter(id) => node.token_filter(&id).unwrap().unwrap().body().to_vec(),
            _ => continue,
        };
        if let Err(e) = phone.handle_response(now, request.id, Response { status: 200, body }) {
            break Err(e);
        }
    };
    while phone.poll_request().is_some() {}
    result
}

/// Moves `clock` an hour on and cuts what is due (a decoy-only batch at least).
async fn cut(node: &Node, clock: &ManualClock) -> UnixTime {
    let now = clock.now_secs().plus_seconds(3600);
    clock.set(now);
    assert!(!node.cut_due().await.unwrap().is_empty());
    now
}

trait Now {
    fn now_secs(&self) -> UnixTime;
}

impl Now for ManualClock {
    fn now_secs(&self) -> UnixTime {
        use ephemera_node::clock::Clock;
        self.now()
    }
}

#[tokio::test]
async fn a_phone_follows_its_nodes_log_and_refuses_a_copy_that_forks_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let config = NodeConfig {
        data_dir: dir.path().to_owned(),
        ..NodeConfig::default()
    };
    let node = Node::open(config.clone(), Arc::new(clock.clone()))
        .unwrap()
        .node;
    let phone_config = ClientConfig::new(SchemeKind::Pet)
        .with_trusted_node(node.keys().batch.public_key())
        .with_decoy_rate(0.0);
    let mut phone = Phone::new(phone_config, MemoryStore::new(), [3; 32]).unwrap();

    // Three cuts, a sync after each: the phone walks the chain to the head.
    let mut now = START;
    for _ in 0..3 {
        now = cut(&node, &clock).await;
        sync(&mut phone, &node, now).await.unwrap();
        let head = node.signed_head();
        assert_eq!(phone.sync_cursor(), head.head.sequence);
    }
    assert_eq!(phone.status().last_error, None);

    // A copy of the node (same keys, another store) cuts the next boundary too: the same
    // sequence, another batch, another chain.
    let copy_clock = ManualClock::new(now);
    let copy = Node::with_store(
        config,
        Arc::new(copy_clock.clone()),
        Arc::new(MemoryReportStore::new()),
        NodeKeys::load(dir.path()).unwrap(),
    );
    let next = cut(&node, &clock).await;
    assert_eq!(cut(&copy, &copy_clock).await, next);
    assert_eq!(
        copy.signed_head().head.sequence,
        node.signed_head().head.sequence
    );
    let refused = sync(&mut phone, &copy, next).await;
    assert_eq!(refused, Err(ClientError::BatchChainBroken), "{refused:?}");

    // The phone follows the real node, then asks the copy what it saw.
    sync(&mut phone, &node, next).await.unwrap();
    let theirs = serde_json::to_vec(&copy.heads()).unwrap();
    assert_eq!(
        phone.cross_check_heads(&theirs),
        Err(ClientError::HeadMismatch {
            conflict: "equivocation"
        })
    );
    let ours = serde_json::to_vec(&node.heads()).unwrap();
    assert!(matches!(
        phone.cross_check_heads(&ours),
        Ok(HeadCrossCheck::Consistent { .. })
    ));
    // And the copy's head, shown to the phone now, is a fork at its cursor.
    assert_eq!(
        sync(&mut phone, &copy, next).await,
        Err(ClientError::HeadForked)
    );
}
