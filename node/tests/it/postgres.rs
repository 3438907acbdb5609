//! Nodes on PostgreSQL: several `serve` processes of one authority share one database.
//!
//! They need a server: `POSTGRES_TEST_URL` (`.ci/postgres.sh` starts one). Without
//! it they say so and pass, except under `CI=true`.

use ephemera_node::clock::ManualClock;
use ephemera_node::config::{DatabaseUrl, NodeConfig, StoreBackend};
use ephemera_proto::report::ReportContents;

use crate::util::*;

/// The test server's URL, or `None` (with a note) outside CI.
pub(crate) fn server_url() -> Option<String> {
    match std::env::var("POSTGRES_TEST_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the PostgreSQL tests: source .ci/postgres.sh first"
            );
            eprintln!("POSTGRES_TEST_URL is not set: PostgreSQL nodes are not tested");
            None
        }
    }
}

/// A node's config on `schema` of the test server, its data folder (keys) in `dir`.
pub(crate) fn on_postgres(dir: &std::path::Path, url: &str, schema: &str) -> NodeConfig {
    let mut config = test_config(dir);
    config.storage.backend = StoreBackend::Postgres;
    config.storage.url = Some(DatabaseUrl::parse(url).unwrap());
    config.storage.schema = schema.to_owned();
    config.storage.pool_size = 4;
    config
}

pub(crate) fn copy_keys(from: &std::path::Path, to: &std::path::Path) {
    let keys = ephemera_node_core::keys::KEYS_DIR;
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(from.join(keys))
        .arg(to.join(keys))
        .status()
        .unwrap();
    assert!(copied.success());
}

#[tokio::test]
async fn two_nodes_share_codes_accounts_uploads_and_batches_and_a_restart_keeps_them() {
    let Some(url) = server_url() else { return };
    let schema = format!("it_{}", hex::encode(rand::random::<[u8; 6]>()));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = ManualClock::new(T0);
    let a = TestNode::start_with(on_postgres(dir_a.path(), &url, &schema), clock.clone()).await;
    assert!(
        dir_a
            .path()
            .join(ephemera_node::node::DB_DIR)
            .read_dir()
            .is_err(),
        "no sled database beside a PostgreSQL node"
    );
    let (name, password) = a.case_worker.clone().unwrap();
    let session_a = a.login().await;
    let first = pet_contents(4, T0.day());
    a.report(&session_a, "confirmed", first.clone()).await;
    let code_from_a = a.one_code(&session_a).await;

    // The second node of the group: the same keys, the same schema.
    std::fs::create_dir_all(dir_b.path()).unwrap();
    copy_keys(dir_a.path(), dir_b.path());
    let b = TestNode::start_with(on_postgres(dir_b.path(), &url, &schema), clock.clone()).await;
    assert!(
        b.case_worker.is_none(),
        "accounts are shared: none made again"
    );
    let session_b = b.login_as(&name, &password).await;
    // A code issued at A is redeemed at B, once in the whole group.
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    let contents = pet_contents(1, T0.day());
    assert!(b.certify(&code_from_a, &contents, &hmac_key).await.is_ok());
    assert!(
        a.certify(&code_from_a, &contents, &hmac_key).await.is_err(),
        "a used code is used at every node"
    );
    let second = pet_contents(4, T0.day());
    b.report(&session_b, "confirmed", second.clone()).await;
    assert_eq!(a.node.store().upload_count().unwrap(), 2);

    // Both reach the boundary at once: one of them publishes it, the other drops its plan,
    // and B serves whatever was cut.
    let period = a.node.config().publication.batch_period_seconds;
    clock.set(ephemera_proto::UnixTime(
        (clock.now_secs() / period + 1) * period + 1,
    ));
    let (from_a, from_b) = tokio::join!(a.node.cut_due(), b.node.cut_due());
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    assert!(
        from_a.is_empty() != from_b.is_empty(),
        "exactly one node cut: {from_a:?} {from_b:?}"
    );
    let cut = if from_a.is_empty() { from_b } else { from_a };
    let at_b = b.index(0).await.batches;
    assert_eq!(at_b.len(), cut.len());
    assert_eq!(
        b.get(&format!("/v1/batches/{}", cut[0].id)).await.body,
        a.get(&format!("/v1/batches/{}", cut[0].id)).await.body
    );
    b.stop().await;
    a.stop().await;

    // Everything restarted: reports, codes, accounts and batches are still there.
    let a = TestNode::start_with(on_postgres(dir_a.path(), &url, &schema), clock.clone()).await;
    let session = a.login_as(&name, &password).await;
    assert_eq!(a.node.store().upload_count().unwrap(), 2);
    let unused = a.one_code(&session).await;
    a.stop().await;
    let a = TestNode::start_with(on_postgres(dir_a.path(), &url, &schema), clock.clone()).await;
    assert!(
        a.certify(&unused, &contents, &hmac_key).await.is_ok(),
        "codes survive"
    );
    let published = a.all_published().await;
    for contents in [first, second] {
        let ReportContents::Pet(tokens) = contents else {
            unreachable!()
        };
        assert!(tokens.iter().all(|t| published.tokens.contains(t)));
    }
    a.stop().await;
}
