//! The tables of the PostgreSQL store, as numbered migrations applied at open under an
//! advisory lock, so nodes that start together do not race.
//!
//! Values are the same postcard records sled keeps, sealed where sled seals them (reports
//! and queue groups under the data key of their arrival day, codes under their own hash):
//! a dump of the database shows no report, code or token in clear.

use super::connection::Failure;

/// Each migration: its number, what it does, and its SQL. Never edit one that shipped; add
/// the next.
pub(crate) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "the tables of store format 4", V1),
    (
        2,
        "the group's blind-token keys and the per-day upload digests",
        V2,
    ),
    (3, "the venue releases", V3),
];

const V1: &str = "
CREATE TABLE data_keys (day integer PRIMARY KEY, key bytea NOT NULL);
CREATE TABLE codes (lookup bytea PRIMARY KEY, sealed bytea NOT NULL);
CREATE TABLE code_status (reference bytea PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE stats (key bytea PRIMARY KEY, count bigint NOT NULL);
CREATE TABLE api_keys (id bytea PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE quotas (subject text PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE certificates (id bytea PRIMARY KEY, mark bytea NOT NULL);
CREATE TABLE uploads (id bytea PRIMARY KEY, sync_day integer NOT NULL, sealed bytea NOT NULL);
CREATE INDEX uploads_by_sync_day ON uploads (sync_day, id);
CREATE TABLE queue (key bytea PRIMARY KEY, sealed bytea NOT NULL);
CREATE TABLE batches (id bytea PRIMARY KEY, body bytea NOT NULL, filter bytea);
CREATE TABLE batch_index (sequence bigint PRIMARY KEY, entry bytea NOT NULL);
CREATE TABLE exports (name text PRIMARY KEY, zip bytea NOT NULL);
CREATE TABLE credentials (name text PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE accounts (name text PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE sessions (id bytea PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE audit (sequence bigint PRIMARY KEY, entry bytea NOT NULL);
CREATE TABLE meta (key text PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE expiry (key bytea PRIMARY KEY);
";

/// The group's blind-token keys, one row per epoch (UTC day), sealed under a key derived
/// from the code pepper (`token_keys::shared`); the per-day upload digests
/// (`day_digests`), counted from the uploads already stored while no node writes them.
const V2: &str = "
CREATE TABLE token_keys (epoch integer PRIMARY KEY, sealed bytea NOT NULL);
CREATE TABLE day_digests (
    sync_day integer PRIMARY KEY,
    n bigint NOT NULL,
    x0 bigint NOT NULL, x1 bigint NOT NULL, x2 bigint NOT NULL, x3 bigint NOT NULL);
LOCK TABLE uploads IN SHARE MODE;
INSERT INTO day_digests
SELECT sync_day, count(*),
    bit_xor(('x' || encode(substring(id FROM 1 FOR 8), 'hex'))::bit(64)::bigint),
    bit_xor(('x' || encode(substring(id FROM 9 FOR 8), 'hex'))::bit(64)::bigint),
    bit_xor(('x' || encode(substring(id FROM 17 FOR 8), 'hex'))::bit(64)::bigint),
    bit_xor(('x' || encode(substring(id FROM 25 FOR 8), 'hex'))::bit(64)::bigint)
FROM uploads GROUP BY sync_day;
";

/// The venue releases held: public frames an authority signed (`ephemera_proto::venue`),
/// by sequence, each id once.
const V3: &str = "
CREATE TABLE venue_releases (
    sequence bigint PRIMARY KEY, id bytea NOT NULL UNIQUE, frame bytea NOT NULL);
";

/// What [`migrate`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Migrated {
    /// The schema is at the newest version this code knows; how many migrations it applied.
    Current { applied: usize },
    /// The schema is newer than this code: a newer node migrated it.
    TooNew { found: i32, known: i32 },
}

/// Creates `schema` when missing and applies the migrations it lacks, holding an advisory
/// lock on it for the whole time: a second node starting at the same instant waits, then
/// finds nothing left to do.
pub(crate) async fn migrate(
    client: &mut deadpool_postgres::Client,
    schema: &str,
) -> Result<Migrated, Failure> {
    let lock = format!("ephemera-migrations/{schema}");
    client
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&lock])
        .await?;
    let result = apply(client, schema).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock])
        .await;
    let migrated = result?;
    unlocked?;
    Ok(migrated)
}

async fn apply(client: &mut deadpool_postgres::Client, schema: &str) -> Result<Migrated, Failure> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.migrations (
                 version integer PRIMARY KEY, description text NOT NULL)"
        ))
        .await?;
    let found: i32 = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.migrations"),
            &[],
        )
        .await?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if found > known {
        return Ok(Migrated::TooNew { found, known });
    }
    let mut applied = 0;
    for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let tx = client.transaction().await?;
        tx.batch_execute(&format!("SET LOCAL search_path = {schema}; {sql}"))
            .await?;
        tx.execute(
            &format!("INSERT INTO {schema}.migrations VALUES ($1, $2)"),
            &[version, description],
        )
        .await?;
        tx.commit().await?;
        applied += 1;
    }
    Ok(Migrated::Current { applied })
}
