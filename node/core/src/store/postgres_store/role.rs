//! The database role a node of a group connects as (`[storage] role`), and what follows
//! from it at open: only the owner migrates; a narrower role finds the schema migrated, or
//! says that the owner's node must start first.
//!
//! The roles and their grants are `node/deploy/postgres/roles.sql`; each role's grants are
//! what the store methods of its subsystems touch, and nothing else.

use super::super::StoreError;
use super::connection::Failure;
use super::schema::MIGRATIONS;

/// Which part of a group's work a node does, and so which database role it connects as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StoreRole {
    /// Everything (the default, and sled's only role): connects as the schema's owner,
    /// migrates, and runs every subsystem.
    #[default]
    All,
    /// Phones' verify and upload: consumes codes, inserts certificates and uploads; never
    /// reads or deletes an upload.
    Intake,
    /// Cuts batches, purges what is past retention, serves batches and exports.
    Publisher,
    /// The authority's console: accounts, sessions, API keys, codes, audit, statistics.
    Console,
}

impl StoreRole {
    /// Every role, in the order the documentation lists them.
    pub const ALL: [StoreRole; 4] = [
        StoreRole::All,
        StoreRole::Intake,
        StoreRole::Publisher,
        StoreRole::Console,
    ];

    /// The name in config (`all`, `intake`, `publisher`, `console`).
    pub fn name(self) -> &'static str {
        match self {
            StoreRole::All => "all",
            StoreRole::Intake => "intake",
            StoreRole::Publisher => "publisher",
            StoreRole::Console => "console",
        }
    }

    /// The role named `name`, if any.
    pub fn parse(name: &str) -> Option<StoreRole> {
        StoreRole::ALL.into_iter().find(|role| role.name() == name)
    }

    /// Whether this node applies migrations (only the schema's owner may).
    pub fn migrates(self) -> bool {
        self == StoreRole::All
    }

    /// Whether this node verifies codes and takes uploads.
    pub fn takes_uploads(self) -> bool {
        matches!(self, StoreRole::All | StoreRole::Intake)
    }

    /// Whether this node cuts, purges reports and serves what it published.
    pub fn publishes(self) -> bool {
        matches!(self, StoreRole::All | StoreRole::Publisher)
    }

    /// Whether this node runs the console: accounts, codes, audit, statistics.
    pub fn runs_console(self) -> bool {
        matches!(self, StoreRole::All | StoreRole::Console)
    }

    /// Whether this node seals or opens reports, and so reads the data keys (the console
    /// never does, and is granted no access to them).
    pub fn reads_data_keys(self) -> bool {
        self != StoreRole::Console
    }
}

impl std::fmt::Display for StoreRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The newest migration this code knows.
pub(crate) fn known_migration() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// For a node that does not migrate: the schema's migration, checked against this code's
/// without changing anything.
///
/// # Errors
/// [`StoreError::SchemaNotMigrated`] when the schema is missing or older than this code;
/// [`StoreError::SchemaTooNew`] when it is newer.
pub(crate) async fn check_migrated(
    client: &mut deadpool_postgres::Client,
    schema: &str,
    role: StoreRole,
) -> Result<(), Failure> {
    let known = known_migration();
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(format('%I.migrations', $1::text)) IS NOT NULL",
            &[&schema],
        )
        .await?
        .get(0);
    let found: i32 = if exists {
        client
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {schema}.migrations"),
                &[],
            )
            .await?
            .get(0)
    } else {
        0
    };
    if found < known {
        return Err(StoreError::SchemaNotMigrated {
            schema: schema.to_owned(),
            role: role.name(),
            found,
            known,
        }
        .into());
    }
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known }.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_all_migrates() {
        for role in StoreRole::ALL {
            assert_eq!(StoreRole::parse(role.name()), Some(role));
            assert_eq!(role.to_string(), role.name());
            assert_eq!(role.migrates(), role == StoreRole::All);
        }
        for bad in ["", "ALL", "owner", "intake ", "publish"] {
            assert_eq!(StoreRole::parse(bad), None, "{bad}");
        }
        assert_eq!(StoreRole::default(), StoreRole::All);
        assert!(!StoreRole::Console.reads_data_keys());
        assert!(!StoreRole::Intake.publishes() && !StoreRole::Intake.runs_console());
        assert!(!StoreRole::Publisher.takes_uploads() && !StoreRole::Console.takes_uploads());
    }
}
