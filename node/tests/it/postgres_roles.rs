//! Least-privilege roles (issue 22 item 1): `node/deploy/postgres/roles.sql` run on a fresh
//! schema, one node per `[storage] role`, each connected as its own database role. A code
//! issued at the console verifies at intake, intake takes the upload, the publisher cuts and
//! serves it; and, connected directly as each role, PostgreSQL itself refuses what the
//! role must not do.
//!
//! They need a server: `POSTGRES_TEST_URL` (`.ci/postgres.sh` starts one, a superuser). Without
//! it they say so and pass, except under `CI=true`.

use ephemera_node::clock::ManualClock;
use ephemera_node::config::StoreRole;
use ephemera_proto::report::ReportContents;
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::upload::{UploadBody, UploadRequest};
use ephemera_proto::wire;

use crate::postgres::{copy_keys, on_postgres, server_url};
use crate::util::*;

/// The file the documentation shows and operators run.
const ROLES_SQL: &str = include_str!("../../deploy/postgres/roles.sql");

/// `url` with its user replaced by `user` (no password: the test cluster trusts loopback).
fn as_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Runs roles.sql as the superuser of `url`, with `schema` first on the search path.
async fn run_roles_sql(url: &str, schema: &str) {
    let admin = connect(url).await;
    admin
        .batch_execute(&format!("SET search_path = {schema}"))
        .await
        .unwrap();
    admin.batch_execute(ROLES_SQL).await.unwrap();
}

/// The SQLSTATE of `statement` run as `user` on `schema`, or `None` if it succeeded.
async fn refusal(url: &str, user: &str, schema: &str, statement: &str) -> Option<String> {
    let client = connect(&as_user(url, user)).await;
    client
        .batch_execute(&format!("SET search_path = {schema}"))
        .await
        .unwrap();
    match client.batch_execute(statement).await {
        Ok(()) => None,
        Err(e) => Some(
            e.code()
                .map_or_else(|| e.to_string(), |c| c.code().to_owned()),
        ),
    }
}

fn with_role(
    mut config: ephemera_node::config::NodeConfig,
    role: StoreRole,
) -> ephemera_node::config::NodeConfig {
    config.storage.role = role;
    // Narrower nodes do not federate (the config refuses it set explicitly).
    config.federation.enabled = false;
    config
}

#[tokio::test]
async fn each_role_does_its_part_and_postgres_refuses_it_the_rest() {
    let Some(url) = server_url() else { return };
    let schema = format!("roles_{}", hex::encode(rand::random::<[u8; 6]>()));
    let clock = ManualClock::new(T0);
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();

    // Before the owner's first start: the roles exist, the schema does not.
    run_roles_sql(&url, &schema).await;
    let early = tempfile::tempdir().unwrap();
    let refused = open_node(
        with_role(
            on_postgres(early.path(), &as_user(&url, "ephemera_intake"), &schema),
            StoreRole::Intake,
        ),
        &clock,
    )
    .await
    .unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("does not migrate") && message.contains("role = \"all\""),
        "{message}"
    );

    // The owner's node migrates and makes the first account; then the grants.
    let owner = TestNode::start_with(
        on_postgres(dirs[0].path(), &as_user(&url, "ephemera_owner"), &schema),
        clock.clone(),
    )
    .await;
    let (name, password) = owner.case_worker.clone().unwrap();
    owner.stop().await;
    run_roles_sql(&url, &schema).await;

    for dir in &dirs[1..] {
        copy_keys(dirs[0].path(), dir.path());
    }
    let start_as = async |dir: &tempfile::TempDir, role: StoreRole| {
        let user = format!("ephemera_{role}");
        let config = on_postgres(dir.path(), &as_user(&url, &user), &schema);
        TestNode::start_with(with_role(config, role), clock.clone()).await
    };
    let intake = start_as(&dirs[1], StoreRole::Intake).await;
    let publisher = start_as(&dirs[2], StoreRole::Publisher).await;
    let console = start_as(&dirs[3], StoreRole::Console).await;
    assert!(
        intake.case_worker.is_none() && console.case_worker.is_none(),
        "the owner made the one first account"
    );

    // A code issued at the console verifies at intake, which takes the upload.
    let session = console.login_as(&name, &password).await;
    let contents = pet_contents(4, T0.day());
    let upload = intake
        .certified_by(
            &console,
            &session,
            "confirmed",
            &contents,
            HmacBinding::Unbound,
        )
        .await;
    let taken = intake.upload_body(UploadBody::RealV1(upload)).await;
    assert_eq!(taken.status, 200, "{}", taken.json());

    // A revision must read the upload it revises, which intake may not: a clear 421
    // `wrong-node`, never a 500 with PostgreSQL's words (an `all` node takes it).
    let phone = RevisionSecret::generate(&mut rand::rng());
    let likely = pet_contents(2, T0.day());
    let certify = async |test_type: &str, binding: HmacBinding| {
        intake
            .certified_by(&console, &session, test_type, &likely, binding)
            .await
    };
    let first = certify("likely", HmacBinding::Upload(phone.key())).await;
    let post = async |request: &UploadRequest| {
        intake
            .post_raw(
                "/v1/uploads",
                "application/octet-stream",
                &wire::encode(request),
            )
            .await
    };
    assert_eq!(
        post(&UploadRequest::real(first.clone(), phone.key()))
            .await
            .status,
        200
    );
    let revision = certify("confirmed", HmacBinding::Revision(phone.key())).await;
    let revises = first.certificate.certificate.id;
    post(&UploadRequest::revision(revision, revises, &phone))
        .await
        .assert_error(421, "wrong-node");

    // The publisher cuts a batch holding it and serves it.
    let cut = publisher.next_batches().await;
    assert!(!cut.is_empty());
    let published = publisher.all_published().await;
    let ReportContents::Pet(tokens) = contents else {
        unreachable!()
    };
    assert!(tokens.iter().all(|t| published.tokens.contains(t)));

    // Each node answers what another role serves with 421 `wrong-node`, before any handler.
    intake
        .get("/v1/batches?after=0")
        .await
        .assert_error(421, "wrong-node");
    intake.get("/console").await.assert_error(421, "wrong-node");
    publisher
        .post_raw("/v1/verify", "application/json", b"{}")
        .await
        .assert_error(421, "wrong-node");
    console
        .post_raw("/v1/uploads", "application/octet-stream", b"x")
        .await
        .assert_error(421, "wrong-node");
    console
        .get("/v1/batches?after=0")
        .await
        .assert_error(421, "wrong-node");
    for node in [&intake, &publisher, &console] {
        assert_eq!(node.get("/healthz").await.status, 200);
    }

    // Past retention, each purges its share: the publisher the report, its batch and the
    // day's data key (rewriting data_keys, which it owns), the console the rest.
    clock.advance(publisher.node.core().policy().retention_seconds() + 2 * 86_400);
    let purged = publisher.node.purge().unwrap();
    assert_eq!((purged.uploads, purged.data_keys), (2, 1), "{purged:?}");
    console.node.purge().unwrap();
    intake.node.purge().unwrap();
    // No node reached for a table its role may not touch, but for the revision.
    let refusals = captured_logs().matches("NotPermitted").count();
    assert_eq!(refusals, 1, "{}", captured_logs());

    // Connected directly: PostgreSQL itself refuses each role what it must not do.
    let denied = Some("42501".to_owned());
    for (user, statement) in [
        ("ephemera_intake", "SELECT * FROM uploads"),
        ("ephemera_intake", "SELECT sealed FROM uploads"),
        ("ephemera_intake", "SELECT count(*) FROM uploads"),
        ("ephemera_intake", "DELETE FROM uploads"),
        ("ephemera_intake", "SELECT * FROM queue"),
        ("ephemera_intake", "SELECT * FROM accounts"),
        ("ephemera_console", "SELECT * FROM uploads"),
        ("ephemera_console", "SELECT * FROM queue"),
        ("ephemera_console", "SELECT * FROM data_keys"),
        (
            "ephemera_publisher",
            "INSERT INTO codes VALUES ('\\x01', '\\x01')",
        ),
        ("ephemera_publisher", "SELECT * FROM accounts"),
        (
            "ephemera_publisher",
            "INSERT INTO uploads VALUES ('\\x01', 1, '\\x01')",
        ),
    ] {
        assert_eq!(
            refusal(&url, user, &schema, statement).await,
            denied,
            "{user}: {statement}"
        );
    }
    // And lets each do what its node just did.
    for (user, statement) in [
        (
            "ephemera_intake",
            "INSERT INTO expiry VALUES ('\\x00') ON CONFLICT DO NOTHING",
        ),
        ("ephemera_publisher", "SELECT count(*) FROM uploads"),
        ("ephemera_console", "SELECT count(*) FROM accounts"),
    ] {
        assert_eq!(
            refusal(&url, user, &schema, statement).await,
            None,
            "{user}: {statement}"
        );
    }

    intake.stop().await;
    publisher.stop().await;
    console.stop().await;
}

/// OPERATIONS.md shows the file as it ships, byte for byte: what an operator reads is what
/// this test ran.
#[test]
fn operations_shows_roles_sql_as_shipped() {
    let operations = include_str!("../../docs/OPERATIONS.md");
    let start = "<!-- roles.sql: the shipped file, compared byte for byte by it::postgres_roles -->\n```sql\n";
    let shown = operations
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("```\n<!-- /roles.sql -->"))
        .map(|(sql, _)| sql)
        .expect("OPERATIONS.md shows roles.sql between its markers");
    assert_eq!(shown, ROLES_SQL);
}

/// A narrower role on sled is refused at open, before anything is served: a node on sled
/// does everything.
#[tokio::test]
async fn a_narrower_role_on_sled_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    for role in [StoreRole::Intake, StoreRole::Publisher, StoreRole::Console] {
        let refused = open_node(with_role(test_config(dir.path()), role), &clock)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(&format!(
                "role = \"{role}\" needs [storage] backend = \"postgres\""
            )),
            "{refused}"
        );
    }
}
