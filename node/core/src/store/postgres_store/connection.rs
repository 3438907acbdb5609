//! The connection pool of the PostgreSQL store, and the bridge from the store's blocking
//! calls to tokio-postgres.
//!
//! [`super::super::ReportStore`] is synchronous (sled's calls are), and its callers run on
//! the node's tokio workers as well as on plain threads. A blocking PostgreSQL client would
//! start a runtime of its own inside the node's, which tokio refuses. So the store keeps a
//! small runtime of its own that drives the pool's connections, and each call waits for its
//! queries with `futures::executor::block_on`, in that runtime's context and outside any
//! task budget: the caller's thread waits, as it does on a sled write, and no runtime is
//! nested.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Timeouts};

use super::super::StoreError;
use super::role::StoreRole;

/// Where the database is and how many connections to hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresConfig {
    /// A libpq-style URL or key=value string (`postgres://user@host:5432/db`).
    pub url: String,
    /// The schema the tables live in (created when missing): several groups of nodes, or
    /// tests, may share one database.
    pub schema: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// The part of the group's work this node does, and so the database role the URL
    /// names: only [`StoreRole::All`] migrates.
    pub role: StoreRole,
}

impl PostgresConfig {
    /// `url`, schema `ephemera`, 16 connections, role `all`.
    pub fn new(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: url.into(),
            schema: "ephemera".to_owned(),
            pool_size: 16,
            role: StoreRole::All,
        }
    }
}

/// Whether `schema` is a plain lower-case SQL identifier (it is put into SQL text).
pub fn valid_schema_name(schema: &str) -> bool {
    let mut chars = schema.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63
}

/// What went wrong inside a database call.
pub(crate) enum Failure {
    /// The database refused or lost the query.
    Db(tokio_postgres::Error),
    /// A record did not decode, or another store-level refusal.
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// A database error as the store reports it: [`StoreError::Unavailable`] when the server
/// cannot be reached or went away (the node answers 503 and tries again),
/// [`StoreError::NotPermitted`] when the node's role lacks a grant, else
/// [`StoreError::Engine`].
fn db_error(e: &tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        // PostgreSQL's message names the table ("permission denied for table uploads"),
        // never a statement or a value.
        return StoreError::NotPermitted(e.as_db_error().map_or_else(
            || "permission denied".to_owned(),
            |d| d.message().to_owned(),
        ));
    }
    let gone = e.is_closed()
        || e.code().is_some_and(|code| {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        })
        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().starts_with("error connecting")
        || e.to_string().starts_with("timeout");
    if gone {
        StoreError::Unavailable(format!("PostgreSQL: {e}"))
    } else {
        StoreError::Engine(format!(
            "PostgreSQL: {}",
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        ))
    }
}

/// The pool and the runtime that drives its connections.
pub(crate) struct Database {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
}

impl Database {
    /// A pool for `config` (connections are made on first use).
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the URL or schema name is not valid.
    pub(crate) fn connect(config: &PostgresConfig) -> Result<Database, StoreError> {
        if !valid_schema_name(&config.schema) {
            return Err(StoreError::Engine(format!(
                "PostgreSQL: the schema name `{}` is not a lower-case identifier",
                config.schema
            )));
        }
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| StoreError::Engine(format!("PostgreSQL: the URL does not parse: {e}")))?;
        // Warnings only: the NOTICEs of `CREATE … IF NOT EXISTS` are no news.
        pg.options(format!(
            "-c search_path={} -c client_min_messages=warning",
            config.schema
        ));
        pg.application_name("ephemera-node");
        pg.connect_timeout(Duration::from_secs(5));
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ephemera-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Engine(format!("PostgreSQL: runtime: {e}")))?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(Duration::from_secs(10)),
                create: Some(Duration::from_secs(5)),
                recycle: Some(Duration::from_secs(5)),
            })
            .build()
            .map_err(|e| StoreError::Engine(format!("PostgreSQL: pool: {e}")))?;
        Ok(Database {
            runtime: Some(runtime),
            pool,
        })
    }

    /// Runs `job` on a pooled connection and waits for it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no connection can be had or it broke; what `job`
    /// failed with otherwise.
    pub(crate) fn run<T>(
        &self,
        job: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let runtime = self.runtime.as_ref().expect("present until dropped");
        let _context = runtime.enter();
        // Unconstrained: on a tokio worker, the caller's task budget would otherwise run out
        // after a few dozen awaits, and every later one would return Pending at once, never
        // to be polled by the scheduler that refills it (this is not that scheduler).
        futures::executor::block_on(tokio::task::unconstrained(async {
            let mut client = self.pool.get().await.map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => db_error(&e),
                other => StoreError::Unavailable(format!("PostgreSQL: {other}")),
            })?;
            match job(&mut client).await {
                Ok(value) => Ok(value),
                Err(Failure::Store(e)) => Err(e),
                Err(Failure::Db(e)) => {
                    if e.is_closed() {
                        // Not given back: the pool makes a new one.
                        let _ = deadpool_postgres::Object::take(client);
                    }
                    Err(db_error(&e))
                }
            }
        }))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.pool.close();
        // Not a blocking shutdown: the store may be dropped on a tokio worker.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["ephemera", "_x", "node_2", "a"] {
            assert!(valid_schema_name(good), "{good}");
        }
        for bad in [
            "",
            "Ephemera",
            "2x",
            "a-b",
            "a;drop",
            "a b",
            "\"x\"",
            &"x".repeat(64),
        ] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }
}
