//! What the end-to-end tests share: a node in process with its first case worker signed
//! in, codes issued by it, and one phone hearing another.

use std::sync::Arc;

use ephemera_client::store::MemoryStore;
use ephemera_client::{Phone, Sighting, Signal};
use ephemera_node::Node;
use ephemera_node::api::types::{IssueCodesRequest, TestType};
use ephemera_node::clock::ManualClock;
use ephemera_node::config::NodeConfig;
use ephemera_node::node::Issuer;
use ephemera_proto::UnixTime;
use ephemera_proto::auth::UploadCode;

/// A node config keeping its data in `dir` that publishes what it holds at the next cut:
/// batches of 16 entries at least (decoys fill them), and the embargo alone with no
/// release spread (with one, a report waits for its own slot within a day after the
/// embargo, docs/PROTOCOL.md §6.3).
pub(crate) fn publishing_config(dir: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig {
        data_dir: dir.to_owned(),
        ..NodeConfig::default()
    };
    config.publication.batch_min_entries = 16;
    config.publication.release_spread_seconds = 1;
    config
}

/// Opens a node with `config` on `clock` and signs its first account in (as
/// `caseworker`, who issues codes), setting a password of its own in place of the one-time
/// password as the first sign-in must.
pub(crate) async fn open_node(config: NodeConfig, clock: &ManualClock) -> Node {
    let opened = Node::open(config, Arc::new(clock.clone())).unwrap();
    let node = opened.node;
    let (name, password) = opened.new_case_worker.expect("a first case worker");
    let login = node.login(&name, password.reveal()).await.unwrap();
    assert!(login.password_change_required);
    node.change_password(
        &login.token,
        password.reveal(),
        &format!("set-by-test-{}", password.reveal()),
        ephemera_node::server::Source(0),
    )
    .await
    .unwrap();
    node.session(&login.token).unwrap();
    node
}

/// One code of `test_type`, issued by the case worker at `now`.
pub(crate) async fn issue_code(
    node: &Node,
    clock: &ManualClock,
    now: UnixTime,
    test_type: TestType,
) -> UploadCode {
    clock.set(now);
    let issued = node
        .issue_codes(
            &IssueCodesRequest {
                test_type,
                symptom_onset: None,
                count: Some(1),
            },
            &Issuer::Account("caseworker".to_owned()),
        )
        .await
        .unwrap();
    UploadCode::parse(&issued.codes[0].code).unwrap()
}

/// `from`'s current advertisement, heard by `to` at `now`.
fn hear(from: &mut Phone<MemoryStore>, to: &mut Phone<MemoryStore>, now: UnixTime) {
    let ad = from.advertisement(now).unwrap();
    let sighting = Sighting {
        payload: &ad.full,
        signal: Signal::Rssi {
            rssi: -60,
            tx_power: None,
        },
    };
    to.handle_sighting(now, &sighting).unwrap();
}

/// `a` and `b` together from `from` for `seconds`, each hearing the other every 10 s;
/// returns the time they part.
pub(crate) fn meet(
    a: &mut Phone<MemoryStore>,
    b: &mut Phone<MemoryStore>,
    from: UnixTime,
    seconds: u64,
) -> UnixTime {
    let mut now = from;
    while now.0 <= from.0 + seconds {
        hear(a, b, now);
        hear(b, a, now);
        now = now.plus_seconds(10);
    }
    now
}
