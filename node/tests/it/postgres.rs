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

/// Every row of `schema`, as `pg_dump` writes it: what a refused start must leave alone.
fn schema_rows(url: &str, schema: &str) -> String {
    let bin = std::env::var("POSTGRES_TEST_BIN").expect("POSTGRES_TEST_BIN beside the URL");
    let dump = std::process::Command::new(std::path::Path::new(&bin).join("pg_dump"))
        .args(["--data-only", "--schema", schema, "--dbname", url])
        .output()
        .unwrap();
    assert!(dump.status.success(), "{dump:?}");
    // Less the dump's random `\restrict` key, which differs at every run.
    String::from_utf8(dump.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_node_without_the_groups_keys_refuses_to_start_and_changes_nothing() {
    let Some(url) = server_url() else { return };
    let schema = format!("it_{}", hex::encode(rand::random::<[u8; 6]>()));
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let clock = ManualClock::new(T0);
    let a = TestNode::start_with(on_postgres(dir_a.path(), &url, &schema), clock.clone()).await;
    let session = a.login().await;
    a.report(&session, "confirmed", pet_contents(2, T0.day()))
        .await;
    let group = a.node.keys().batch.public_key();
    a.stop().await;
    let before = schema_rows(&url, &schema);
    assert!(
        before.contains("bound-batch-key"),
        "the first node bound it"
    );
    let refusal = |opened: Result<ephemera_node::Opened, ephemera_node::NodeError>| match opened {
        Ok(_) => panic!("the node opened"),
        Err(e) => e.to_string(),
    };

    // An empty data folder on the group's schema: no new keys, a clear refusal.
    let error = refusal(open_node(on_postgres(dir_b.path(), &url, &schema), &clock).await);
    assert!(error.contains(&group.key_id().to_string()), "{error}");
    assert!(error.contains("Copy keys/ from another node"), "{error}");
    assert!(
        !dir_b
            .path()
            .join(ephemera_node_core::keys::KEYS_DIR)
            .exists(),
        "no key was made"
    );
    // Another node's keys (a node of its own): refused, naming both batch keys.
    let (foreign, _) =
        ephemera_node_core::keys::NodeKeys::load_or_create(dir_c.path(), &mut rand::rng()).unwrap();
    let error = refusal(open_node(on_postgres(dir_c.path(), &url, &schema), &clock).await);
    assert!(error.contains(&group.key_id().to_string()), "{error}");
    assert!(
        error.contains(&foreign.batch.public_key().key_id().to_string()),
        "{error}"
    );
    assert!(
        schema_rows(&url, &schema) == before,
        "refused starts leave the schema as it was"
    );

    // With keys/ copied from A, the second node starts and signs with the group's key.
    copy_keys(dir_a.path(), dir_b.path());
    let b = TestNode::start_with(on_postgres(dir_b.path(), &url, &schema), clock.clone()).await;
    assert_eq!(b.node.keys().batch.public_key(), group);
    assert!(b.case_worker.is_none());
    assert_eq!(b.node.store().upload_count().unwrap(), 1);
    b.stop().await;
}

#[tokio::test]
async fn a_blind_token_from_one_node_of_a_group_is_accepted_at_another() {
    use crate::blind_token::{
        prepare_token_verify, sealed_post, sealed_token_verify, sealing_key, token_keys,
    };
    use ephemera_proto::sealed::SealedRoute;
    use ephemera_proto::token::{TokenUpload, TokenVerifyResponse};
    use ephemera_proto::upload::UploadRequest;

    let Some(url) = server_url() else { return };
    let schema = format!("it_{}", hex::encode(rand::random::<[u8; 6]>()));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = ManualClock::new(T0);
    let tokened = |dir: &std::path::Path| {
        let mut config = on_postgres(dir, &url, &schema);
        config.authority.blind_token_keys = true;
        config
    };
    let a = TestNode::start_with(tokened(dir_a.path()), clock.clone()).await;
    std::fs::create_dir_all(dir_b.path()).unwrap();
    copy_keys(dir_a.path(), dir_b.path());
    let b = TestNode::start_with(tokened(dir_b.path()), clock.clone()).await;
    // Both make today's and tomorrow's keys at the same instant: one set is kept.
    let (made_a, made_b) = tokio::join!(a.node.ensure_token_keys(), b.node.ensure_token_keys());
    assert_eq!((made_a.unwrap(), made_b.unwrap()), (2, 2));
    let served = |node: &TestNode| {
        ephemera_proto::wire::decode::<ephemera_proto::token::SignedTokenKeySet>(
            &node.node.token_key_set_frame(),
        )
        .unwrap()
        .set
        .keys
    };
    assert_eq!(served(&a), served(&b), "one key set");
    for dir in [&dir_a, &dir_b] {
        assert!(
            !dir.path().join("keys").join("tokens").exists(),
            "the group's keys are in the store, not in a node's folder"
        );
    }

    // A phone verifies at A ...
    let keys = token_keys(&a).await;
    let contents = pet_contents(3, T0.day());
    let (phone, exchange, request) = prepare_token_verify(&a, &keys, &contents).await;
    let verified = sealed_token_verify(&a, sealing_key(&a).await, &request).await;
    assert_eq!(verified.3, 200, "{}", String::from_utf8_lossy(&verified.4));
    let answer: TokenVerifyResponse = serde_json::from_slice(&verified.4).unwrap();
    let token = exchange.finish(&keys, &answer).unwrap();

    // ... and uploads at B the next day.
    clock.set(ephemera_proto::UnixTime(
        T0.day().plus(1).start().0 + 5 * 3600,
    ));
    let upload = UploadRequest::tokened(
        TokenUpload {
            contents: contents.clone(),
            token,
        },
        phone.key(),
    );
    let uploaded = sealed_post(
        &b,
        sealing_key(&b).await,
        SealedRoute::Upload,
        &ephemera_proto::wire::encode(&upload),
    )
    .await;
    assert_eq!(uploaded.3, 200, "{}", String::from_utf8_lossy(&uploaded.4));
    assert_eq!(a.node.store().upload_count().unwrap(), 1);
    b.stop().await;
    a.stop().await;
}
