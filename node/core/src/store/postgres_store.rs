//! [`ReportStore`] on PostgreSQL: several nodes of one authority share one database.
//!
//! Every method is one transaction (or one statement), so what it returns is durable and
//! seen by every node of the group. Races between nodes are settled by the database: a
//! certificate's single use and a code's single use by a primary key (`INSERT … ON
//! CONFLICT DO NOTHING`, `DELETE … RETURNING`), a revision, a revoke and a quota charge by
//! row locks (`SELECT … FOR UPDATE`), and a purge by `FOR UPDATE SKIP LOCKED`.
//!
//! Records are the postcard bytes sled keeps, sealed the same way ([`super::sealing`]); the
//! data keys are rows of `data_keys`, shared by the group, and a purge deletes them (then
//! `VACUUM FULL` rewrites that small table, so its old file goes).

mod connection;
mod day_digests;
mod role;
mod schema;
mod token_epochs;

use std::collections::HashSet;
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use ephemera_proto::audit::{AuditAnchor, AuditEntry, AuditHash};
use ephemera_proto::auth::{CertificateId, CodeHash};
use ephemera_proto::batch::{BatchId, BatchIndexEntry};
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::sync::{DayDigest, sync_day};
use ephemera_proto::upload::UploadId;
use ephemera_proto::venue::{ReleaseId, ReleaseIndexEntry};
use ephemera_proto::{DayNumber, UnixTime};
use ring::rand::SystemRandom;
use tokio_postgres::types::ToSql;
use zeroize::Zeroizing;

use connection::{Database, Failure};
pub use connection::{PostgresConfig, valid_schema_name};
use day_digests::DigestDelta;
pub use role::StoreRole;
use schema::{Migrated, migrate};

use super::sealing::{DataKeys, DayKey, KeyShelf, code_lookup, open_code, seal_code};
use super::sled_store::shreddable_through;
use super::stats::apply_delta;
use super::{
    API_KEY_ID_LEN, AccountRecord, ApiKeyRecord, CertificateState, CertificateUse, ChainHead,
    CodeRecord, CodeReference, CodeState, CodeStatus, CodeStatusRecord, CommitOutcome,
    CredentialRecord, CutCommit, CutterState, Expiring, ExpiryKind, PurgeCounts, QueueKey,
    QueuedGroup, QuotaRecord, ReportStore, RevokeOutcome, SUNSET_ORDER_KEY, SessionRecord,
    SettingDigest, StatsKey, StatsTally, StoreError, StoredUpload, UploadCommit, code_purge_at,
    decode, encode, expiry_key, issued_tally, next_release_sequence, parse_expiring,
    release_expiry_reference,
};
use super::{BOUND_KEY_KEY, decode_bound_key};

const CUTTER_STATE_KEY: &str = "cutter-state";
const CHAIN_HEAD_KEY: &str = "chain-head";
const AUDIT_ANCHOR_KEY: &str = "audit-anchor";
const APPLIED_SETTINGS_KEY: &str = "applied-settings";

/// PostgreSQL-backed storage, shared by every node of a group.
pub struct PostgresReportStore {
    db: Arc<Database>,
    keys: DataKeys,
    rng: SystemRandom,
    schema: String,
}

impl std::fmt::Debug for PostgresReportStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresReportStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The data keys as rows of `data_keys`.
struct KeyTable {
    db: Arc<Database>,
    /// Whether this node's role may read them (the console's may not, and needs none).
    readable: bool,
}

impl KeyShelf for KeyTable {
    fn load(&self) -> Result<Vec<DayKey>, StoreError> {
        if !self.readable {
            return Ok(Vec::new());
        }
        self.db.run(async |c| {
            let rows = c.query("SELECT day, key FROM data_keys", &[]).await?;
            Ok(rows
                .iter()
                .map(|row| (day_of(row.get(0)), Zeroizing::new(row.get::<_, Vec<u8>>(1))))
                .collect())
        })
    }

    fn keep(&self, day: u32, fresh: &[u8; 32]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let day = sql_day(day);
        self.db.run(async |c| {
            c.execute(
                "INSERT INTO data_keys VALUES ($1, $2) ON CONFLICT (day) DO NOTHING",
                &[&day, &fresh.as_slice()],
            )
            .await?;
            let row = c
                .query_one("SELECT key FROM data_keys WHERE day = $1", &[&day])
                .await?;
            Ok(Zeroizing::new(row.get(0)))
        })
    }

    fn fetch(&self, day: u32) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let day = sql_day(day);
        self.db.run(async |c| {
            let row = c
                .query_opt("SELECT key FROM data_keys WHERE day = $1", &[&day])
                .await?;
            Ok(row.map(|row| Zeroizing::new(row.get(0))))
        })
    }

    fn destroy(&self, days: &[u32]) -> Result<(), StoreError> {
        if days.is_empty() {
            return Ok(());
        }
        let days: Vec<i32> = days.iter().map(|d| sql_day(*d)).collect();
        self.db.run(async |c| {
            // VACUUM FULL by a role that does not own the table only warns and skips it:
            // refuse before deleting, so the keys go only where their bytes go too.
            let owns: bool = c
                .query_one(
                    "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class \
                     WHERE oid = 'data_keys'::regclass",
                    &[],
                )
                .await?
                .get(0);
            if !owns {
                return Err(StoreError::NotPermitted(
                    "only the owner of the table data_keys may rewrite it (VACUUM FULL) after \
                     destroying keys: node/deploy/postgres/roles.sql gives it to \
                     ephemera_publisher"
                        .to_owned(),
                )
                .into());
            }
            c.execute("DELETE FROM data_keys WHERE day = ANY($1)", &[&days])
                .await?;
            // A deleted row stays in the table's file until it is rewritten: rewrite this
            // small table now, so the destroyed keys' bytes leave the data folder.
            c.batch_execute("VACUUM FULL data_keys").await?;
            Ok(())
        })
    }
}

fn sql_day(day: u32) -> i32 {
    i32::try_from(day).unwrap_or(i32::MAX)
}

fn day_of(day: i32) -> u32 {
    u32::try_from(day).unwrap_or(0)
}

fn sql_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `bigint` column read back as the `u64` [`sql_u64`] wrote.
fn u64_of_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn array<const N: usize>(bytes: &[u8], tree: &'static str) -> Result<[u8; N], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt { tree })
}

/// Adds `tally` to the counters, inside the transaction of the event it counts.
async fn count_in(c: &impl GenericClient, tally: &StatsTally) -> Result<(), Failure> {
    for (key, delta) in tally.changes() {
        let key = key.to_bytes();
        if delta > 0 {
            // Counting up, the common case: one statement.
            c.execute(
                "INSERT INTO stats VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET count = stats.count + excluded.count",
                &[&key.as_slice(), &delta],
            )
            .await?;
            continue;
        }
        let current: i64 = c
            .query_opt(
                "SELECT count FROM stats WHERE key = $1 FOR UPDATE",
                &[&key.as_slice()],
            )
            .await?
            .map_or(0, |row| row.get(0));
        match apply_delta(u64::try_from(current).unwrap_or(0), delta) {
            0 => {
                c.execute("DELETE FROM stats WHERE key = $1", &[&key.as_slice()])
                    .await?;
            }
            next => {
                c.execute(
                    "INSERT INTO stats VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET count = excluded.count",
                    &[&key.as_slice(), &sql_u64(next)],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Moves `record` (filed under `reference`, its row locked) to `state` and counts the
/// change, inside the caller's transaction.
async fn write_code_state(
    c: &impl GenericClient,
    reference: &CodeReference,
    mut record: CodeStatusRecord,
    state: CodeState,
) -> Result<(), Failure> {
    count_in(c, &record.count_change(state)).await?;
    record.state = state;
    c.execute(
        "UPDATE code_status SET record = $2 WHERE reference = $1",
        &[&reference.as_bytes().as_slice(), &encode(&record)],
    )
    .await?;
    Ok(())
}

async fn put_meta(c: &impl GenericClient, key: &str, value: &[u8]) -> Result<(), Failure> {
    c.execute(
        "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}

async fn meta(c: &impl GenericClient, key: &str) -> Result<Option<Vec<u8>>, Failure> {
    Ok(
        c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .await?
            .map(|row| row.get(0)),
    )
}

/// Deletes an upload record and takes it out of its day's digest; whether there was one.
async fn delete_upload(
    c: &impl GenericClient,
    id: &UploadId,
    digests: &mut DigestDelta,
) -> Result<bool, Failure> {
    let row = c
        .query_opt(
            "DELETE FROM uploads WHERE id = $1 RETURNING sync_day",
            &[&id.0.as_slice()],
        )
        .await?;
    if let Some(row) = &row {
        digests.change(row.get(0), &id.0, false);
    }
    Ok(row.is_some())
}

async fn insert_expiry(c: &impl GenericClient, key: &[u8]) -> Result<(), Failure> {
    c.execute(
        "INSERT INTO expiry VALUES ($1) ON CONFLICT DO NOTHING",
        &[&key],
    )
    .await?;
    Ok(())
}

impl PostgresReportStore {
    /// Connects, creates the schema and applies the migrations it lacks (under a lock),
    /// and loads the data keys.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server cannot be reached;
    /// [`StoreError::SchemaTooNew`] when a newer node migrated the schema;
    /// [`StoreError::SchemaNotMigrated`] when a node whose role does not migrate finds the
    /// schema missing or older than its code;
    /// [`StoreError::Engine`] for a bad URL or schema name, or a refused migration.
    pub fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        let db = Arc::new(Database::connect(config)?);
        let schema = config.schema.clone();
        if !config.role.migrates() {
            db.run(async |c| role::check_migrated(c, &schema, config.role).await)?;
        }
        let migrated = if config.role.migrates() {
            db.run(async |c| migrate(c, &schema).await)?
        } else {
            Migrated::Current { applied: 0 }
        };
        match migrated {
            Migrated::Current { applied } => {
                if applied > 0 {
                    tracing::info!(applied, schema = %schema, "PostgreSQL migrations applied");
                }
            }
            Migrated::TooNew { found, known } => {
                return Err(StoreError::SchemaTooNew { found, known });
            }
        }
        let keys = DataKeys::on(Box::new(KeyTable {
            db: db.clone(),
            readable: config.role.reads_data_keys(),
        }))?;
        Ok(PostgresReportStore {
            db,
            keys,
            rng: SystemRandom::new(),
            schema,
        })
    }

    /// Moves the status record of `reference` to the state `next` gives it (`None`: leave
    /// it), counting the change, in one transaction with the row locked.
    fn update_code_state(
        &self,
        reference: &CodeReference,
        next: impl FnOnce(&CodeStatusRecord) -> Option<CodeState>,
    ) -> Result<(), StoreError> {
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            let row = tx
                .query_opt(
                    "SELECT record FROM code_status WHERE reference = $1 FOR UPDATE",
                    &[&reference.as_bytes().as_slice()],
                )
                .await?;
            if let Some(row) = row {
                let record = CodeStatusRecord::decode(row.get(0))?;
                if let Some(state) = next(&record) {
                    write_code_state(&tx, reference, record, state).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The record filed under `key` in `table` (its `record` column), decoded.
    fn read_record<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        key_column: &'static str,
        key: &(dyn ToSql + Sync),
    ) -> Result<Option<T>, StoreError> {
        let sql = format!("SELECT record FROM {table} WHERE {key_column} = $1");
        self.db
            .run(async |c| match c.query_opt(&sql, &[key]).await? {
                Some(row) => Ok(Some(decode(row.get(0), table)?)),
                None => Ok(None),
            })
    }

    /// Files `record` under `key` in `table`, replacing what was there.
    fn write_record(
        &self,
        table: &'static str,
        key_column: &'static str,
        key: &(dyn ToSql + Sync),
        record: &[u8],
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {table} VALUES ($1, $2) \
             ON CONFLICT ({key_column}) DO UPDATE SET record = excluded.record"
        );
        self.db.run(async |c| {
            c.execute(&sql, &[key, &record]).await?;
            Ok(())
        })
    }

    /// The schema this store's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

/// An [`UploadCommit`]'s records, encoded and sealed before its transaction.
struct Prepared {
    record: Vec<u8>,
    original: Option<([u8; 32], Vec<u8>, i32)>,
    enqueue: Vec<([u8; QueueKey::LEN], Vec<u8>)>,
    mark: Vec<u8>,
    expiry: Vec<u8>,
    day: i32,
}

impl PostgresReportStore {
    fn prepare(&self, commit: &UploadCommit) -> Result<Prepared, StoreError> {
        let (upload_id, ref record, purge_at) = commit.upload;
        let arrival_day = record.received_at.day();
        let original = match &commit.update_original {
            Some((id, original)) => Some((
                id.0,
                self.keys.seal_upload(id, original)?,
                sql_day(sync_day(&original.upload).0),
            )),
            None => None,
        };
        let enqueue = commit
            .enqueue
            .iter()
            .map(|(k, group)| {
                let key = k.to_bytes();
                Ok((
                    key,
                    self.keys.seal_group(arrival_day, &key, &encode(group))?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Prepared {
            record: self.keys.seal_upload(&upload_id, record)?,
            original,
            enqueue,
            mark: commit.certificate_use().to_bytes(),
            expiry: expiry_key(
                purge_at,
                ExpiryKind::Upload,
                &commit.upload_expiry_reference(),
            ),
            day: sql_day(sync_day(&record.upload).0),
        })
    }
}

/// One commit inside the group's transaction.
async fn commit_one(
    tx: &impl GenericClient,
    commit: &UploadCommit,
    p: &Prepared,
    digests: &mut DigestDelta,
) -> Result<CommitOutcome, Failure> {
    let certificate = commit.certificate.0;
    let taken = tx
        .execute(
            "INSERT INTO certificates VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            &[&certificate.0.as_slice(), &p.mark],
        )
        .await?;
    if taken == 0 {
        return Ok(CommitOutcome::CertificateUsed);
    }
    if let Some(original) = &commit.consume_revision {
        let mark = tx
            .query_opt(
                "SELECT mark FROM certificates WHERE id = $1 FOR UPDATE",
                &[&original.0.as_slice()],
            )
            .await?
            .and_then(|row| CertificateUse::from_bytes(row.get(0)));
        match mark {
            Some(mut mark) if mark.state.revisable() => {
                mark.state = CertificateState::Revised;
                tx.execute(
                    "UPDATE certificates SET mark = $2 WHERE id = $1",
                    &[&original.0.as_slice(), &mark.to_bytes()],
                )
                .await?;
            }
            _ => {
                // Undo this commit's mark (the savepoint's work, by hand).
                tx.execute(
                    "DELETE FROM certificates WHERE id = $1",
                    &[&certificate.0.as_slice()],
                )
                .await?;
                return Ok(CommitOutcome::RevisionTokenUnknown);
            }
        }
    }
    let upload_id = commit.upload.0;
    upsert_upload(tx, &upload_id.0, p.day, &p.record, digests).await?;
    insert_expiry(tx, &p.expiry).await?;
    if let Some((id, bytes, day)) = &p.original {
        upsert_upload(tx, id, *day, bytes, digests).await?;
    }
    for key in &commit.dequeue {
        tx.execute(
            "DELETE FROM queue WHERE key = $1",
            &[&key.to_bytes().as_slice()],
        )
        .await?;
    }
    for (key, group) in &p.enqueue {
        tx.execute(
            "INSERT INTO queue VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET sealed = excluded.sealed",
            &[&key.as_slice(), group],
        )
        .await?;
    }
    Ok(CommitOutcome::Committed)
}

/// The end of an upload group's transaction: the day digests, then the statistics (last,
/// as in every transaction that changes them), then the commit.
async fn finish_commit(
    tx: deadpool_postgres::Transaction<'_>,
    commits: &[UploadCommit],
    outcomes: Vec<CommitOutcome>,
    digests: &DigestDelta,
) -> Result<Vec<CommitOutcome>, Failure> {
    digests.apply(&tx).await?;
    let mut tally = StatsTally::new();
    for (commit, outcome) in commits.iter().zip(&outcomes) {
        if *outcome == CommitOutcome::Committed {
            tally.add(commit.counted_as(), 1);
        }
    }
    count_in(&tx, &tally).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Files an upload's record, replacing one under its id; a new one counts in `digests`
/// under the day of its row (a replaced row keeps its day).
async fn upsert_upload(
    tx: &impl GenericClient,
    id: &[u8; 32],
    day: i32,
    sealed: &[u8],
    digests: &mut DigestDelta,
) -> Result<(), Failure> {
    let row = tx
        .query_one(
            "INSERT INTO uploads VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed \
             RETURNING sync_day, (xmax = 0)",
            &[&id.as_slice(), &day, &sealed],
        )
        .await?;
    if row.get::<_, bool>(1) {
        digests.change(row.get(0), id, true);
    }
    Ok(())
}

/// The items of `items` (in order) that are the last with their key.
fn last_of(items: &[usize], key: impl Fn(usize) -> Vec<u8>) -> Vec<usize> {
    let mut seen = HashSet::new();
    let mut kept: Vec<usize> = items
        .iter()
        .rev()
        .copied()
        .filter(|i| seen.insert(key(*i)))
        .collect();
    kept.reverse();
    kept
}

/// A group of plain commits (no revision: [`UploadCommit::is_plain`]) in a few statements
/// whatever its size, each over arrays: one round trip per table rather than per upload.
/// Inside the group the first commit of a certificate takes it, as one by one. `None` when
/// an upload's id was already stored (only a test's made-up uploads): the caller rolls back
/// and does the group one by one.
async fn commit_plain(
    tx: &impl GenericClient,
    commits: &[UploadCommit],
    prepared: &[Prepared],
    digests: &mut DigestDelta,
) -> Result<Option<Vec<CommitOutcome>>, Failure> {
    let mut first_of_certificate = HashSet::new();
    let candidates: Vec<usize> = (0..commits.len())
        .filter(|i| first_of_certificate.insert(commits[*i].certificate.0))
        .collect();
    let ids: Vec<&[u8]> = candidates
        .iter()
        .map(|i| commits[*i].certificate.0.0.as_slice())
        .collect();
    let marks: Vec<&[u8]> = candidates
        .iter()
        .map(|i| prepared[*i].mark.as_slice())
        .collect();
    let take = tx
        .prepare_cached(
            "INSERT INTO certificates SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
             ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .await?;
    let taken: HashSet<Vec<u8>> = tx
        .query(&take, &[&ids, &marks])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let outcomes: Vec<CommitOutcome> = (0..commits.len())
        .map(|i| {
            let certificate = commits[i].certificate.0.0;
            if candidates.binary_search(&i).is_ok() && taken.contains(certificate.as_slice()) {
                CommitOutcome::Committed
            } else {
                CommitOutcome::CertificateUsed
            }
        })
        .collect();
    let committed: Vec<usize> = (0..commits.len())
        .filter(|i| outcomes[*i] == CommitOutcome::Committed)
        .collect();
    if committed.is_empty() {
        return Ok(Some(outcomes));
    }
    // One statement may not write a row twice: where two commits of the group write the
    // same upload or queue key, the later one's record stands, as one by one.
    let uploads: Vec<usize> = last_of(&committed, |i| commits[i].upload.0.0.to_vec());
    let upload_ids: Vec<&[u8]> = uploads
        .iter()
        .map(|i| commits[*i].upload.0.0.as_slice())
        .collect();
    let days: Vec<i32> = uploads.iter().map(|i| prepared[*i].day).collect();
    let sealed: Vec<&[u8]> = uploads
        .iter()
        .map(|i| prepared[*i].record.as_slice())
        .collect();
    let expiry: Vec<&[u8]> = committed
        .iter()
        .map(|i| prepared[*i].expiry.as_slice())
        .collect();
    let enqueued: Vec<(&[u8], &[u8])> = committed
        .iter()
        .flat_map(|i| prepared[*i].enqueue.iter())
        .map(|(key, group)| (key.as_slice(), group.as_slice()))
        .collect();
    let (queue_keys, groups): (Vec<&[u8]>, Vec<&[u8]>) =
        last_of(&(0..enqueued.len()).collect::<Vec<_>>(), |i| {
            enqueued[i].0.to_vec()
        })
        .into_iter()
        .map(|i| enqueued[i])
        .unzip();
    // DO NOTHING where one by one replaces: an upload's id is the hash of its bytes,
    // certificate included, so a committed upload never meets a stored one of its id or
    // queue key (that one took the certificate first). And DO UPDATE, or a conflict target,
    // would read the row (through EXCLUDED, or the target's columns), which the intake role
    // may not (node/deploy/postgres/roles.sql): the primary key is the only constraint.
    // For the same reason every upload row written here is new: the day digests count
    // them all (RETURNING would need SELECT on `uploads`; the row count checks it, and a
    // group where it does not hold is done again one by one, which replaces as sled does).
    // Issued together, so the connection pipelines them.
    let upload_params: [&(dyn ToSql + Sync); 3] = [&upload_ids, &days, &sealed];
    let expiry_params: [&(dyn ToSql + Sync); 1] = [&expiry];
    let queue_params: [&(dyn ToSql + Sync); 2] = [&queue_keys, &groups];
    let statements = futures::try_join!(
        tx.prepare_cached(
            "INSERT INTO uploads SELECT * FROM unnest($1::bytea[], $2::int4[], $3::bytea[]) \
             ON CONFLICT DO NOTHING",
        ),
        tx.prepare_cached(
            "INSERT INTO expiry SELECT * FROM unnest($1::bytea[]) ON CONFLICT DO NOTHING",
        ),
        tx.prepare_cached(
            "INSERT INTO queue SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
             ON CONFLICT DO NOTHING",
        ),
    )?;
    let uploads = tx.execute(&statements.0, &upload_params);
    let expiries = tx.execute(&statements.1, &expiry_params);
    let queued = tx.execute(&statements.2, &queue_params);
    let (uploads, expiries, queued) = futures::join!(uploads, expiries, queued);
    let inserted = uploads?;
    expiries?;
    queued?;
    if inserted != upload_ids.len() as u64 {
        // An id already stored under another certificate: never with real uploads (see
        // above), which are all new here.
        return Ok(None);
    }
    for (day, id) in days.iter().zip(&upload_ids) {
        digests.change(*day, id, true);
    }
    Ok(Some(outcomes))
}

impl ReportStore for PostgresReportStore {
    fn stats(&self, from: DayNumber, to: DayNumber) -> Result<Vec<(StatsKey, u64)>, StoreError> {
        let start = StatsKey::day_start(from);
        let end = StatsKey::day_start(to.plus(1));
        self.db.run(async |c| {
            let rows = c
                .query(
                    "SELECT key, count FROM stats WHERE key >= $1 AND key < $2 ORDER BY key",
                    &[&start.as_slice(), &end.as_slice()],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    let key = StatsKey::from_bytes(row.get(0))
                        .ok_or(StoreError::Corrupt { tree: "stats" })?;
                    Ok((key, u64::try_from(row.get::<_, i64>(1)).unwrap_or(0)))
                })
                .collect()
        })
    }

    fn expire_code_statuses(&self, today: DayNumber) -> Result<u64, StoreError> {
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            let rows = tx
                .query("SELECT reference, record FROM code_status FOR UPDATE", &[])
                .await?;
            let mut tally = StatsTally::new();
            let mut expired = 0;
            for row in &rows {
                let mut record = CodeStatusRecord::decode(row.get(1))?;
                if record.state == CodeState::Issued && record.expires < today {
                    let state = CodeState::Expired(record.expires);
                    tally.merge(&record.count_change(state));
                    record.state = state;
                    tx.execute(
                        "UPDATE code_status SET record = $2 WHERE reference = $1",
                        &[&row.get::<_, &[u8]>(0), &encode(&record)],
                    )
                    .await?;
                    expired += 1;
                }
            }
            count_in(&tx, &tally).await?;
            tx.commit().await?;
            Ok(expired)
        })
    }

    fn purge_stats(&self, before: DayNumber) -> Result<u64, StoreError> {
        let end = StatsKey::day_start(before);
        self.db.run(async |c| {
            Ok(
                c.execute("DELETE FROM stats WHERE key < $1", &[&end.as_slice()])
                    .await?,
            )
        })
    }

    fn insert_codes(&self, codes: &[(CodeHash, CodeRecord)]) -> Result<(), StoreError> {
        let sealed = codes
            .iter()
            .map(|(hash, record)| {
                let lookup = code_lookup(hash);
                let expiry =
                    expiry_key(code_purge_at(record.expires_at), ExpiryKind::Code, &lookup);
                Ok((lookup, seal_code(&self.rng, hash, &encode(record))?, expiry))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO codes VALUES ($1, $2) ON CONFLICT (lookup) DO UPDATE SET sealed = excluded.sealed",
                )
                .await?;
            for (lookup, value, expiry) in &sealed {
                tx.execute(&insert, &[&lookup.as_slice(), value]).await?;
                insert_expiry(&tx, expiry).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn take_code(&self, hash: &CodeHash) -> Result<Option<CodeRecord>, StoreError> {
        let lookup = code_lookup(hash);
        // The delete alone decides who takes the code, across the whole group.
        let sealed: Option<Vec<u8>> = self.db.run(async |c| {
            Ok(c.query_opt(
                "DELETE FROM codes WHERE lookup = $1 RETURNING sealed",
                &[&lookup.as_slice()],
            )
            .await?
            .map(|row| row.get(0)))
        })?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let record = CodeRecord::decode(&open_code(hash, &sealed)?)?;
        let expiry = expiry_key(code_purge_at(record.expires_at), ExpiryKind::Code, &lookup);
        self.db.run(async |c| {
            c.execute("DELETE FROM expiry WHERE key = $1", &[&expiry])
                .await?;
            Ok(())
        })?;
        Ok(Some(record))
    }

    fn insert_code_statuses(
        &self,
        records: &[(CodeReference, CodeStatusRecord)],
    ) -> Result<(), StoreError> {
        let tally = issued_tally(records);
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            for (reference, record) in records {
                tx.execute(
                    "INSERT INTO code_status VALUES ($1, $2) \
                     ON CONFLICT (reference) DO UPDATE SET record = excluded.record",
                    &[&reference.as_bytes().as_slice(), &encode(record)],
                )
                .await?;
            }
            count_in(&tx, &tally).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn code_status(
        &self,
        reference: &CodeReference,
    ) -> Result<Option<CodeStatusRecord>, StoreError> {
        self.db.run(async |c| {
            match c
                .query_opt(
                    "SELECT record FROM code_status WHERE reference = $1",
                    &[&reference.as_bytes().as_slice()],
                )
                .await?
            {
                Some(row) => Ok(Some(CodeStatusRecord::decode(row.get(0))?)),
                None => Ok(None),
            }
        })
    }

    fn set_code_state(
        &self,
        reference: &CodeReference,
        state: CodeState,
    ) -> Result<(), StoreError> {
        self.update_code_state(reference, |_| Some(state))
    }

    fn purge_code_statuses(&self, expired_before: DayNumber) -> Result<u64, StoreError> {
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            let rows = tx
                .query("SELECT reference, record FROM code_status FOR UPDATE", &[])
                .await?;
            let mut purged = 0;
            for row in &rows {
                if CodeStatusRecord::decode(row.get(1))?.expires < expired_before {
                    tx.execute(
                        "DELETE FROM code_status WHERE reference = $1",
                        &[&row.get::<_, &[u8]>(0)],
                    )
                    .await?;
                    purged += 1;
                }
            }
            tx.commit().await?;
            Ok(purged)
        })
    }

    fn revoke_code(
        &self,
        reference: &CodeReference,
        day: DayNumber,
    ) -> Result<RevokeOutcome, StoreError> {
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            let Some(row) = tx
                .query_opt(
                    "SELECT record FROM code_status WHERE reference = $1 FOR UPDATE",
                    &[&reference.as_bytes().as_slice()],
                )
                .await?
            else {
                return Ok(RevokeOutcome::Unknown);
            };
            let record = CodeStatusRecord::decode(row.get(0))?;
            if record.status(day) != CodeStatus::Issued {
                return Ok(RevokeOutcome::NotRevocable(record));
            }
            // The delete decides between a revoke and a redeem, as between two redeems.
            let removed = tx
                .execute(
                    "DELETE FROM codes WHERE lookup = $1",
                    &[&record.lookup.as_slice()],
                )
                .await?;
            if removed == 0 {
                return Ok(RevokeOutcome::NotRevocable(record));
            }
            write_code_state(&tx, reference, record, CodeState::Revoked(day)).await?;
            tx.commit().await?;
            Ok(RevokeOutcome::Revoked)
        })
    }

    fn commit_upload(&self, commit: &UploadCommit) -> Result<CommitOutcome, StoreError> {
        Ok(self
            .commit_uploads(std::slice::from_ref(commit))?
            .pop()
            .unwrap_or(CommitOutcome::Committed))
    }

    fn commit_uploads(&self, commits: &[UploadCommit]) -> Result<Vec<CommitOutcome>, StoreError> {
        let prepared = commits
            .iter()
            .map(|c| self.prepare(c))
            .collect::<Result<Vec<Prepared>, StoreError>>()?;
        self.db.run(async |c| {
            if commits.iter().all(UploadCommit::is_plain) {
                let tx = c.transaction().await?;
                let mut digests = DigestDelta::default();
                if let Some(outcomes) = commit_plain(&tx, commits, &prepared, &mut digests).await? {
                    return finish_commit(tx, commits, outcomes, &digests).await;
                }
                tx.rollback().await?;
            }
            let tx = c.transaction().await?;
            let mut digests = DigestDelta::default();
            let mut outcomes = Vec::with_capacity(commits.len());
            for (commit, p) in commits.iter().zip(&prepared) {
                outcomes.push(commit_one(&tx, commit, p, &mut digests).await?);
            }
            finish_commit(tx, commits, outcomes, &digests).await
        })
    }

    fn sync_ids(
        &self,
        day: DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, StoreError> {
        let after = after.map_or_else(Vec::new, |id| id.0.to_vec());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db.run(async |c| {
            let rows = c
                .query(
                    "SELECT id FROM uploads WHERE sync_day = $1 AND id > $2 ORDER BY id LIMIT $3",
                    &[&sql_day(day.0), &after, &limit],
                )
                .await?;
            rows.iter()
                .map(|row| Ok(UploadId(array(row.get(0), "uploads")?)))
                .collect()
        })
    }

    fn day_digest(&self, day: DayNumber) -> Result<DayDigest, StoreError> {
        self.db
            .run(async |c| day_digests::day_digest(&*c, day).await)
    }

    fn certificate_use(&self, id: &CertificateId) -> Result<Option<CertificateUse>, StoreError> {
        self.db.run(async |c| {
            match c
                .query_opt(
                    "SELECT mark FROM certificates WHERE id = $1",
                    &[&id.0.as_slice()],
                )
                .await?
            {
                Some(row) => Ok(Some(CertificateUse::from_bytes(row.get(0)).ok_or(
                    StoreError::Corrupt {
                        tree: "certificates",
                    },
                )?)),
                None => Ok(None),
            }
        })
    }

    fn upload(&self, id: &UploadId) -> Result<Option<StoredUpload>, StoreError> {
        let sealed: Option<Vec<u8>> = self.db.run(async |c| {
            Ok(c.query_opt(
                "SELECT sealed FROM uploads WHERE id = $1",
                &[&id.0.as_slice()],
            )
            .await?
            .map(|row| row.get(0)))
        })?;
        match sealed {
            Some(sealed) => self.keys.open_upload(id, &sealed),
            None => Ok(None),
        }
    }

    fn upload_count(&self) -> Result<u64, StoreError> {
        self.db.run(async |c| day_digests::upload_count(&*c).await)
    }

    fn queued_until(&self, until: UnixTime) -> Result<Vec<(QueueKey, QueuedGroup)>, StoreError> {
        let end = QueueKey {
            release_at: until,
            upload: UploadId([0xff; 32]),
        }
        .to_bytes();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self.db.run(async |c| {
            Ok(c.query(
                "SELECT key, sealed FROM queue WHERE key <= $1 ORDER BY key",
                &[&end.as_slice()],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
        })?;
        let mut out = Vec::new();
        for (key, sealed) in rows {
            let group = self.keys.open_group(&key, &sealed)?;
            let key = QueueKey::from_bytes(&key).ok_or(StoreError::Corrupt { tree: "queue" })?;
            // A group whose day's key is gone is past retention: the purge removes it.
            out.extend(group.map(|group| (key, group)));
        }
        Ok(out)
    }

    fn queued(&self, key: &QueueKey) -> Result<Option<QueuedGroup>, StoreError> {
        let key = key.to_bytes();
        let sealed: Option<Vec<u8>> = self.db.run(async |c| {
            Ok(c.query_opt(
                "SELECT sealed FROM queue WHERE key = $1",
                &[&key.as_slice()],
            )
            .await?
            .map(|row| row.get(0)))
        })?;
        match sealed {
            Some(sealed) => self.keys.open_group(&key, &sealed),
            None => Ok(None),
        }
    }

    fn cutter_state(&self) -> Result<CutterState, StoreError> {
        match self.db.run(async |c| meta(&*c, CUTTER_STATE_KEY).await)? {
            Some(bytes) => decode(&bytes, "meta"),
            None => Ok(CutterState::INITIAL),
        }
    }

    fn chain_head(&self) -> Result<Option<ChainHead>, StoreError> {
        self.db.run(async |c| {
            if let Some(bytes) = meta(&*c, CHAIN_HEAD_KEY).await? {
                return Ok(Some(decode(&bytes, "meta")?));
            }
            match c
                .query_opt(
                    "SELECT entry FROM batch_index ORDER BY sequence DESC LIMIT 1",
                    &[],
                )
                .await?
            {
                Some(row) => {
                    let entry: BatchIndexEntry = decode(row.get(0), "batch-index")?;
                    Ok(Some(ChainHead {
                        sequence: entry.sequence,
                        id: entry.id,
                    }))
                }
                None => Ok(None),
            }
        })
    }

    fn commit_cut(&self, cut: &CutCommit) -> Result<(), StoreError> {
        let initial = encode(&CutterState::INITIAL);
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            // The state row, locked: a second node committing the same boundary waits here,
            // then finds the state moved and drops its cut.
            tx.execute(
                "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&CUTTER_STATE_KEY, &initial],
            )
            .await?;
            let row = tx
                .query_one(
                    "SELECT value FROM meta WHERE key = $1 FOR UPDATE",
                    &[&CUTTER_STATE_KEY],
                )
                .await?;
            let current: CutterState = decode(row.get(0), "meta")?;
            if current != cut.from {
                return Err(StoreError::CutSuperseded.into());
            }
            for export in &cut.exports {
                tx.execute(
                    "INSERT INTO exports VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET zip = excluded.zip",
                    &[&export.name, &export.bytes],
                )
                .await?;
                insert_expiry(
                    &tx,
                    &expiry_key(export.purge_at, ExpiryKind::Export, export.name.as_bytes()),
                )
                .await?;
            }
            for batch in &cut.batches {
                let id = batch.entry.id.0;
                let sequence = batch.entry.sequence;
                tx.execute(
                    "INSERT INTO batches VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body, filter = excluded.filter",
                    &[&id.as_slice(), &batch.bytes, &batch.filter],
                )
                .await?;
                tx.execute(
                    "INSERT INTO batch_index VALUES ($1, $2)",
                    &[&sql_u64(sequence), &encode(&batch.entry)],
                )
                .await?;
                let mut reference = sequence.to_be_bytes().to_vec();
                reference.extend_from_slice(&id);
                insert_expiry(&tx, &expiry_key(batch.purge_at, ExpiryKind::Batch, &reference))
                    .await?;
            }
            for key in &cut.dequeue {
                tx.execute("DELETE FROM queue WHERE key = $1", &[&key.to_bytes().as_slice()])
                    .await?;
            }
            put_meta(&tx, CUTTER_STATE_KEY, &encode(&cut.state)).await?;
            if let Some(last) = cut.batches.last() {
                let head = ChainHead {
                    sequence: last.entry.sequence,
                    id: last.entry.id,
                };
                put_meta(&tx, CHAIN_HEAD_KEY, &encode(&head)).await?;
            }
            count_in(&tx, &cut.counted()).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn batch(&self, id: &BatchId) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.run(async |c| {
            Ok(c.query_opt(
                "SELECT body FROM batches WHERE id = $1",
                &[&id.0.as_slice()],
            )
            .await?
            .map(|row| row.get(0)))
        })
    }

    fn token_filter(&self, id: &BatchId) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.run(async |c| {
            Ok(c.query_opt(
                "SELECT filter FROM batches WHERE id = $1",
                &[&id.0.as_slice()],
            )
            .await?
            .and_then(|row| row.get(0)))
        })
    }

    fn batch_index(&self, after: u64, limit: usize) -> Result<Vec<BatchIndexEntry>, StoreError> {
        if after >= i64::MAX as u64 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db.run(async |c| {
            c.query(
                "SELECT entry FROM batch_index WHERE sequence > $1 ORDER BY sequence LIMIT $2",
                &[&sql_u64(after), &limit],
            )
            .await?
            .iter()
            .map(|row| Ok(decode(row.get(0), "batch-index")?))
            .collect()
        })
    }

    fn export(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.run(async |c| {
            Ok(
                c.query_opt("SELECT zip FROM exports WHERE name = $1", &[&name])
                    .await?
                    .map(|row| row.get(0)),
            )
        })
    }

    fn export_names(&self) -> Result<Vec<String>, StoreError> {
        self.db.run(async |c| {
            Ok(
                c.query("SELECT name FROM exports ORDER BY name COLLATE \"C\"", &[])
                    .await?
                    .iter()
                    .map(|row| row.get(0))
                    .collect(),
            )
        })
    }

    fn credential(&self, name: &str) -> Result<Option<CredentialRecord>, StoreError> {
        self.read_record("credentials", "name", &name)
    }

    fn put_credential(&self, name: &str, record: &CredentialRecord) -> Result<(), StoreError> {
        self.write_record("credentials", "name", &name, &encode(record))
    }

    fn credential_names(&self) -> Result<Vec<String>, StoreError> {
        self.db.run(async |c| {
            Ok(c.query(
                "SELECT name FROM credentials ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
        })
    }

    fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.read_record("accounts", "name", &name)
    }

    fn put_account(&self, name: &str, record: &AccountRecord) -> Result<(), StoreError> {
        self.write_record("accounts", "name", &name, &encode(record))
    }

    fn accounts(&self) -> Result<Vec<(String, AccountRecord)>, StoreError> {
        self.db.run(async |c| {
            c.query(
                "SELECT name, record FROM accounts ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await?
            .iter()
            .map(|row| Ok((row.get(0), decode(row.get(1), "accounts")?)))
            .collect()
        })
    }

    fn session(&self, id: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        self.read_record("sessions", "id", &id.as_slice())
    }

    fn put_session(&self, id: &[u8; 32], record: &SessionRecord) -> Result<(), StoreError> {
        self.write_record("sessions", "id", &id.as_slice(), &encode(record))
    }

    fn remove_session(&self, id: &[u8; 32]) -> Result<bool, StoreError> {
        self.db.run(async |c| {
            Ok(
                c.execute("DELETE FROM sessions WHERE id = $1", &[&id.as_slice()])
                    .await?
                    > 0,
            )
        })
    }

    fn remove_sessions(&self, doomed: &dyn Fn(&SessionRecord) -> bool) -> Result<u64, StoreError> {
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            let rows = tx
                .query("SELECT id, record FROM sessions FOR UPDATE", &[])
                .await?;
            let mut removed = 0;
            for row in &rows {
                let record: SessionRecord = decode(row.get(1), "sessions")?;
                if doomed(&record) {
                    removed += tx
                        .execute(
                            "DELETE FROM sessions WHERE id = $1",
                            &[&row.get::<_, &[u8]>(0)],
                        )
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(removed)
        })
    }

    fn api_key(&self, id: &[u8; API_KEY_ID_LEN]) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.read_record("api_keys", "id", &id.as_slice())
    }

    fn put_api_key(
        &self,
        id: &[u8; API_KEY_ID_LEN],
        record: &ApiKeyRecord,
    ) -> Result<(), StoreError> {
        self.write_record("api_keys", "id", &id.as_slice(), &encode(record))
    }

    fn api_keys(&self) -> Result<Vec<([u8; API_KEY_ID_LEN], ApiKeyRecord)>, StoreError> {
        self.db.run(async |c| {
            c.query("SELECT id, record FROM api_keys ORDER BY id", &[])
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        array(row.get(0), "api-keys")?,
                        decode(row.get(1), "api-keys")?,
                    ))
                })
                .collect()
        })
    }

    fn charge_quota(
        &self,
        subject: &str,
        day: DayNumber,
        amount: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let fresh = encode(&QuotaRecord { day, used: 0 });
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            tx.execute(
                "INSERT INTO quotas VALUES ($1, $2) ON CONFLICT (subject) DO NOTHING",
                &[&subject, &fresh],
            )
            .await?;
            let row = tx
                .query_one(
                    "SELECT record FROM quotas WHERE subject = $1 FOR UPDATE",
                    &[&subject],
                )
                .await?;
            let current: QuotaRecord = decode(row.get(0), "quotas")?;
            let Some(charged) = current.charge(day, amount, limit) else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE quotas SET record = $2 WHERE subject = $1",
                &[&subject, &encode(&charged)],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let sequence = entry.record.sequence;
        self.db.run(async |c| {
            let written = c
                .execute(
                    "INSERT INTO audit VALUES ($1, $2) ON CONFLICT (sequence) DO NOTHING",
                    &[&sql_u64(sequence), &encode(entry)],
                )
                .await?;
            if written == 0 {
                return Err(StoreError::AuditSequenceTaken { sequence }.into());
            }
            Ok(())
        })
    }

    fn audit_trail(&self) -> Result<(Option<AuditAnchor>, Vec<AuditEntry>), StoreError> {
        self.db.run(async |c| {
            let tx = c
                .build_transaction()
                .read_only(true)
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .start()
                .await?;
            let anchor = match meta(&tx, AUDIT_ANCHOR_KEY).await? {
                Some(bytes) => Some(decode(&bytes, "audit anchor")?),
                None => None,
            };
            let entries = tx
                .query("SELECT entry FROM audit ORDER BY sequence", &[])
                .await?
                .iter()
                .map(|row| decode(row.get(0), "audit"))
                .collect::<Result<Vec<AuditEntry>, StoreError>>()?;
            tx.commit().await?;
            Ok((anchor, entries))
        })
    }

    fn audit_head(&self) -> Result<Option<(u64, AuditHash)>, StoreError> {
        self.db.run(async |c| {
            if let Some(row) = c
                .query_opt(
                    "SELECT entry FROM audit ORDER BY sequence DESC LIMIT 1",
                    &[],
                )
                .await?
            {
                let entry: AuditEntry = decode(row.get(0), "audit")?;
                return Ok(Some((entry.record.sequence, entry.record.hash())));
            }
            Ok(match meta(&*c, AUDIT_ANCHOR_KEY).await? {
                Some(bytes) => {
                    let anchor: AuditAnchor = decode(&bytes, "audit anchor")?;
                    Some((anchor.sequence, anchor.head))
                }
                None => None,
            })
        })
    }

    fn applied_settings(&self) -> Result<Vec<SettingDigest>, StoreError> {
        match self
            .db
            .run(async |c| meta(&*c, APPLIED_SETTINGS_KEY).await)?
        {
            Some(bytes) => decode(&bytes, "meta"),
            None => Ok(Vec::new()),
        }
    }

    fn set_applied_settings(&self, settings: &[SettingDigest]) -> Result<(), StoreError> {
        let bytes = encode(&settings);
        self.db
            .run(async |c| put_meta(&*c, APPLIED_SETTINGS_KEY, &bytes).await)
    }

    fn purge_audit(&self, anchor: &AuditAnchor) -> Result<u64, StoreError> {
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            let purged = tx
                .execute(
                    "DELETE FROM audit WHERE sequence <= $1",
                    &[&sql_u64(anchor.sequence)],
                )
                .await?;
            put_meta(&tx, AUDIT_ANCHOR_KEY, &encode(anchor)).await?;
            tx.commit().await?;
            Ok(purged)
        })
    }

    fn purge(&self, now: UnixTime, stale_before: UnixTime) -> Result<PurgeCounts, StoreError> {
        let end = now.0.saturating_add(1).to_be_bytes();
        let stale_end = stale_before.0.to_be_bytes();
        let mut counts = self.db.run(async |c| {
            let tx = c.transaction().await?;
            let mut counts = PurgeCounts::default();
            let mut digests = DigestDelta::default();
            // SKIP LOCKED: another node purging at the same time takes the other entries.
            let due = tx
                .query(
                    "SELECT key FROM expiry WHERE key < $1 ORDER BY key FOR UPDATE SKIP LOCKED",
                    &[&end.as_slice()],
                )
                .await?;
            for row in &due {
                let key: &[u8] = row.get(0);
                match parse_expiring(key)? {
                    Expiring::Upload {
                        id,
                        certificate,
                        certificate_purge_at,
                    } => {
                        if delete_upload(&tx, &id, &mut digests).await? {
                            counts.uploads += 1;
                        }
                        if certificate_purge_at <= now {
                            counts.certificates += tx
                                .execute(
                                    "DELETE FROM certificates WHERE id = $1",
                                    &[&certificate.0.as_slice()],
                                )
                                .await?;
                        } else {
                            insert_expiry(
                                &tx,
                                &expiry_key(
                                    certificate_purge_at,
                                    ExpiryKind::Certificate,
                                    &certificate.0,
                                ),
                            )
                            .await?;
                        }
                    }
                    Expiring::Certificate(id) => {
                        counts.certificates += tx
                            .execute(
                                "DELETE FROM certificates WHERE id = $1",
                                &[&id.0.as_slice()],
                            )
                            .await?;
                    }
                    Expiring::Batch { sequence, id } => {
                        tx.execute(
                            "DELETE FROM batch_index WHERE sequence = $1",
                            &[&sql_u64(sequence)],
                        )
                        .await?;
                        counts.batches += tx
                            .execute("DELETE FROM batches WHERE id = $1", &[&id.0.as_slice()])
                            .await?;
                    }
                    Expiring::Code(lookup) => {
                        counts.codes += tx
                            .execute("DELETE FROM codes WHERE lookup = $1", &[&lookup.as_slice()])
                            .await?;
                    }
                    Expiring::Export(name) => {
                        counts.exports += tx
                            .execute(
                                "DELETE FROM exports WHERE name = $1",
                                &[&&*String::from_utf8_lossy(name)],
                            )
                            .await?;
                    }
                    Expiring::VenueRelease { sequence, id } => {
                        counts.venue_releases += tx
                            .execute(
                                "DELETE FROM venue_releases WHERE sequence = $1 AND id = $2",
                                &[&sql_u64(sequence), &id.0.as_slice()],
                            )
                            .await?;
                    }
                }
                tx.execute("DELETE FROM expiry WHERE key = $1", &[&key])
                    .await?;
            }
            counts.queued += tx
                .execute("DELETE FROM queue WHERE key < $1", &[&stale_end.as_slice()])
                .await?;
            digests.apply(&tx).await?;
            tx.commit().await?;
            Ok(counts)
        })?;
        if let Some(last) = shreddable_through(stale_before)
            && self.keys.days().first().is_some_and(|d| *d <= last.0)
        {
            counts.data_keys += self.keys.destroy_through(last)? as u64;
        }
        Ok(counts)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every method commits its own transaction: what returned is durable already.
        Ok(())
    }

    fn backup(&self, _to: &std::path::Path) -> Result<super::BackupSummary, StoreError> {
        Err(StoreError::Engine(
            "a PostgreSQL store is backed up with the database's own tools (pg_dump, or \
             pg_basebackup with WAL archiving): node/docs/OPERATIONS.md"
                .to_owned(),
        ))
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.run(async |c| {
            let size: i64 = c
                .query_one(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                    &[],
                )
                .await?
                .get(0);
            Ok(u64::try_from(size).unwrap_or(0))
        })
    }

    // One transaction, so two nodes that start together bind one key between them.
    fn bind_key(
        &self,
        expected: Option<&Ed25519PublicKey>,
        key: &Ed25519PublicKey,
    ) -> Result<Ed25519PublicKey, StoreError> {
        let bytes = self.db.run(async |c| {
            let tx = c.transaction().await?;
            let new = key.0.as_slice();
            match expected {
                // The first node of a group: whoever inserts first wins, the others read it.
                None => {
                    tx.execute(
                        "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                        &[&BOUND_KEY_KEY, &new],
                    )
                    .await?;
                }
                Some(old) => {
                    tx.execute(
                        "UPDATE meta SET value = $2 WHERE key = $1 AND value = $3",
                        &[&BOUND_KEY_KEY, &new, &old.0.as_slice()],
                    )
                    .await?;
                }
            }
            let now = meta(&tx, BOUND_KEY_KEY).await?;
            tx.commit().await?;
            Ok(now)
        })?;
        decode_bound_key(bytes)?.ok_or(StoreError::Corrupt { tree: "meta" })
    }

    fn bound_key(&self) -> Result<Option<Ed25519PublicKey>, StoreError> {
        decode_bound_key(self.db.run(async |c| meta(&*c, BOUND_KEY_KEY).await)?)
    }

    fn sunset_order(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.run(async |c| meta(&*c, SUNSET_ORDER_KEY).await)
    }

    fn remove_uploads(&self, uploads: &[(UploadId, Vec<QueueKey>)]) -> Result<u64, StoreError> {
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            let mut digests = DigestDelta::default();
            let mut removed = 0;
            for (id, queued) in uploads {
                for key in queued {
                    tx.execute(
                        "DELETE FROM queue WHERE key = $1",
                        &[&key.to_bytes().as_slice()],
                    )
                    .await?;
                }
                if delete_upload(&tx, id, &mut digests).await? {
                    removed += 1;
                }
            }
            digests.apply(&tx).await?;
            tx.commit().await?;
            Ok(removed)
        })
    }

    fn earliest_expiries(&self) -> Result<Vec<(&'static str, UnixTime)>, StoreError> {
        let keys: Vec<Vec<u8>> = self.db.run(async |c| {
            let mut keys = Vec::new();
            // The kind is the byte after the time; one short ordered scan per kind.
            for kind in ExpiryKind::ALL {
                if let Some(row) = c
                    .query_opt(
                        "SELECT key FROM expiry WHERE get_byte(key, 8) = $1 ORDER BY key LIMIT 1",
                        &[&i32::from(kind as u8)],
                    )
                    .await?
                {
                    keys.push(row.get(0));
                }
            }
            Ok(keys)
        })?;
        let mut keys = keys;
        keys.sort();
        super::earliest_per_kind(keys.iter().map(Ok))
    }

    fn erase_all(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.db.run(async |c| {
            // Every table is rewritten after (VACUUM FULL), which a role that does not own a
            // table only skips with a warning: refuse before deleting anything.
            let owns_all: bool = c
                .query_one(
                    "SELECT coalesce(bool_and(pg_has_role(c.relowner, 'USAGE')), true) \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                    &[],
                )
                .await?
                .get(0);
            if !owns_all {
                return Err(StoreError::NotPermitted(
                    "a sunset erasure rewrites every table (VACUUM FULL): run it with the role \
                     that owns the schema"
                        .to_owned(),
                )
                .into());
            }
            let tables: Vec<String> = c
                .query(
                    "SELECT c.relname::text FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind = 'r' \
                     AND c.relname <> 'migrations' ORDER BY 1",
                    &[],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let tx = c.transaction().await?;
            let mut counts = Vec::new();
            for table in &tables {
                let erased = if table == "meta" {
                    tx.execute("DELETE FROM meta WHERE key <> $1", &[&SUNSET_ORDER_KEY])
                        .await?
                } else {
                    // Table names come from the catalogue of our own schema.
                    tx.execute(&format!("DELETE FROM \"{table}\""), &[]).await?
                };
                if erased > 0 {
                    counts.push((table.clone(), erased));
                }
            }
            tx.commit().await?;
            // Deleted rows stay in the tables' files until they are rewritten: this schema's
            // tables only (a bare VACUUM FULL would rewrite every group's).
            for table in &tables {
                c.batch_execute(&format!("VACUUM FULL \"{table}\"")).await?;
            }
            Ok(counts)
        })
    }

    fn insert_venue_release(
        &self,
        id: &ReleaseId,
        frame: &[u8],
        arrived_at: UnixTime,
        purge_at: UnixTime,
    ) -> Result<Option<ReleaseIndexEntry>, StoreError> {
        self.db.run(async |c| {
            let tx = c.transaction().await?;
            // Nodes of a group insert one at a time, so each takes the next sequence (an
            // advisory lock: a table lock this strong would need UPDATE, which no role has).
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('ephemera/venue-releases'))",
                &[],
            )
            .await?;
            if tx
                .query_opt(
                    "SELECT 1 FROM venue_releases WHERE id = $1",
                    &[&id.0.as_slice()],
                )
                .await?
                .is_some()
            {
                return Ok(None);
            }
            let last: Option<i64> = tx
                .query_one("SELECT max(sequence) FROM venue_releases", &[])
                .await?
                .get(0);
            let sequence = next_release_sequence(last.map(u64_of_sql), arrived_at);
            tx.execute(
                "INSERT INTO venue_releases VALUES ($1, $2, $3)",
                &[&sql_u64(sequence), &id.0.as_slice(), &frame],
            )
            .await?;
            insert_expiry(
                &tx,
                &expiry_key(
                    purge_at,
                    ExpiryKind::VenueRelease,
                    &release_expiry_reference(sequence, id),
                ),
            )
            .await?;
            tx.commit().await?;
            Ok(Some(ReleaseIndexEntry {
                id: *id,
                sequence,
                size: frame.len() as u64,
            }))
        })
    }

    fn venue_release(&self, id: &ReleaseId) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.run(async |c| {
            Ok(c.query_opt(
                "SELECT frame FROM venue_releases WHERE id = $1",
                &[&id.0.as_slice()],
            )
            .await?
            .map(|row| row.get(0)))
        })
    }

    fn venue_release_index(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ReleaseIndexEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db.run(async |c| {
            c.query(
                "SELECT sequence, id, length(frame) FROM venue_releases \
                 WHERE sequence > $1 ORDER BY sequence LIMIT $2",
                &[&sql_u64(after), &limit],
            )
            .await?
            .iter()
            .map(|row| {
                let id: &[u8] = row.get(1);
                let size: i32 = row.get(2);
                Ok(ReleaseIndexEntry {
                    id: ReleaseId(id.try_into().map_err(|_| StoreError::Corrupt {
                        tree: "venue_releases",
                    })?),
                    sequence: u64_of_sql(row.get(0)),
                    size: u64::try_from(size).unwrap_or(0),
                })
            })
            .collect()
        })
    }

    fn record_sunset_order(&self, frame: &[u8]) -> Result<(), StoreError> {
        self.db.run(async |c| {
            c.execute(
                "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
                &[&SUNSET_ORDER_KEY, &frame],
            )
            .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
