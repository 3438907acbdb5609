//! `users`: staff accounts on a stopped node's data folder, for the operator (who holds
//! every role). Each change is recorded in the audit trail as by the operator and flushed
//! before the command reports it; one-time passwords are printed once and never stored.

use std::io::Write;

use ephemera_node_core::audit::AuditTrail;
use ephemera_node_core::keys::NodeKeys;
use ephemera_node_core::store::{ReportStore, Role, SledReportStore};
use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};

use super::{CliError, UserRolesArgs, UsersCommand};
use crate::accounts::{self, directory};
use crate::api::error::ApiError;
use crate::clock::{Clock, SystemClock};
use crate::node::NodeError;

/// Runs a `users` subcommand.
///
/// # Errors
/// [`CliError::NodeRunning`] while a node serves the folder; a bad config; key or store
/// errors; [`CliError::Account`] for a refused change (recorded as refused);
/// [`CliError::Argument`] for an unknown role.
pub async fn users(command: &UsersCommand, out: &mut impl Write) -> Result<(), CliError> {
    let folder = match command {
        UsersCommand::Add(args) | UsersCommand::Grant(args) => &args.folder,
        UsersCommand::List(folder) => folder,
        UsersCommand::Disable(args) | UsersCommand::Enable(args) => &args.folder,
        UsersCommand::ResetPassword(args) => &args.folder,
    };
    let (store, keys) = super::audit::open(folder).await?;
    let now = SystemClock.now();
    directory::migrate_legacy(&store, now).map_err(account_error)?;
    let mut rng = rand::rng();
    match command {
        UsersCommand::List(_) => {
            writeln!(
                out,
                "name\troles\tenabled\ttotp\tpassword_change_required\tcreated"
            )
            .map_err(stdout)?;
            for a in directory::list(&store).map_err(account_error)? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    a.name,
                    a.roles.join(","),
                    a.enabled,
                    a.totp,
                    a.password_change_required,
                    a.created
                )
                .map_err(stdout)?;
            }
            Ok(())
        }
        UsersCommand::Add(args) => {
            let roles = roles(args)?;
            let action = AuditAction::AccountCreated {
                account: args.name.clone(),
                roles: accounts::role_names(&roles),
            };
            let result = directory::create(&store, &Role::ALL, &args.name, &roles, now, &mut rng);
            let password = record(&store, &keys, action, result)?;
            writeln!(
                out,
                "account {} created with roles {}; its one-time password, shown once (the \
                 first sign-in must replace it):\n{}",
                args.name,
                accounts::role_names(&roles).join(","),
                password.reveal()
            )
            .map_err(stdout)
        }
        UsersCommand::Grant(args) => {
            let roles = roles(args)?;
            let action = AuditAction::RolesChanged {
                account: args.name.clone(),
                roles: accounts::role_names(&roles),
            };
            let result = directory::set_roles(&store, &Role::ALL, &args.name, &roles);
            record(&store, &keys, action, result)?;
            writeln!(
                out,
                "account {} now has roles {}",
                args.name,
                accounts::role_names(&roles).join(",")
            )
            .map_err(stdout)
        }
        UsersCommand::Disable(args) | UsersCommand::Enable(args) => {
            let enabled = matches!(command, UsersCommand::Enable(_));
            let account = args.name.clone();
            let action = if enabled {
                AuditAction::AccountEnabled { account }
            } else {
                AuditAction::AccountDisabled { account }
            };
            let result = directory::set_enabled(&store, &args.name, enabled);
            record(&store, &keys, action, result)?;
            let done = if enabled {
                "enabled"
            } else {
                "disabled; its sessions ended"
            };
            writeln!(out, "account {} {done}", args.name).map_err(stdout)
        }
        UsersCommand::ResetPassword(args) => {
            let action = AuditAction::PasswordReset {
                account: args.name.clone(),
            };
            let result = directory::reset_password(&store, &args.name, args.clear_totp, &mut rng);
            let password = record(&store, &keys, action, result)?;
            if args.clear_totp {
                let removed = AuditAction::TotpRemoved {
                    account: args.name.clone(),
                };
                record(&store, &keys, removed, Ok(()))?;
            }
            writeln!(
                out,
                "account {}: its sessions ended; its one-time password, shown once (the next \
                 sign-in must replace it):\n{}",
                args.name,
                password.reveal()
            )
            .map_err(stdout)
        }
    }
}

fn roles(args: &UserRolesArgs) -> Result<Vec<Role>, CliError> {
    accounts::parse_roles(&args.roles).map_err(|name| CliError::Argument {
        name: "--role",
        reason: format!(
            "unknown role `{name}`; roles are admin, case-worker, bulk-issuer and auditor"
        ),
    })
}

/// Records `action` by the operator with `result`'s outcome and flushes; passes the result
/// on.
pub(super) fn record<T>(
    store: &SledReportStore,
    keys: &NodeKeys,
    action: AuditAction,
    result: Result<T, ApiError>,
) -> Result<T, CliError> {
    let outcome = match &result {
        Ok(_) => AuditOutcome::Success,
        Err(e) => AuditOutcome::Refused(e.code().to_owned()),
    };
    AuditTrail::open(store)
        .and_then(|mut trail| {
            trail.record(
                &keys.authority,
                store,
                SystemClock.now(),
                AuditActor::Operator,
                action,
                outcome,
            )
        })
        .and_then(|_| store.flush())
        .map_err(NodeError::from)?;
    result.map_err(account_error)
}

pub(super) fn account_error(e: ApiError) -> CliError {
    match e {
        ApiError::Store(e) => CliError::Node(NodeError::Store(e)),
        e => CliError::Account(e),
    }
}

pub(super) fn stdout(source: std::io::Error) -> CliError {
    CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    }
}
