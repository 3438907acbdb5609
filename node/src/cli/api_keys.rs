//! `api-keys`: API keys of lab and hospital systems on a stopped node's data folder, for
//! the operator. Each change is recorded in the audit trail as by the operator and flushed
//! before the command reports it; a key is printed once and only its hash is stored.

use std::io::Write;

use ephemera_proto::audit::AuditAction;

use super::users::{record, stdout};
use super::{ApiKeysCommand, CliError};
use crate::accounts::api_key::{self, ApiKeyError};
use crate::accounts::{NAME_RULE, is_account_name};
use crate::api::error::ApiError;
use crate::api::types::TestType;
use crate::clock::{Clock, SystemClock};
use crate::node::NodeError;

/// Runs an `api-keys` subcommand.
///
/// # Errors
/// [`CliError::NodeRunning`] while a node serves the folder; a bad config; key or store
/// errors; [`CliError::Argument`] for a bad name, test type or id; [`CliError::Account`]
/// for an unknown or revoked key (recorded as refused).
pub async fn api_keys(command: &ApiKeysCommand, out: &mut impl Write) -> Result<(), CliError> {
    let folder = match command {
        ApiKeysCommand::Create(args) => &args.folder,
        ApiKeysCommand::List(folder) => folder,
        ApiKeysCommand::Revoke(args) => &args.folder,
    };
    let (store, keys) = super::audit::open(folder).await?;
    let today = SystemClock.now().day();
    match command {
        ApiKeysCommand::List(_) => {
            writeln!(
                out,
                "id\tname\ttest_types\tcreated_by\tcreated\trevoked\tlast_used"
            )
            .map_err(stdout)?;
            for k in api_key::list(&store).map_err(NodeError::from)? {
                let types: Vec<&str> = k.test_types.iter().map(|t| t.as_str()).collect();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.name,
                    if types.is_empty() {
                        "any".to_owned()
                    } else {
                        types.join(",")
                    },
                    k.created_by,
                    k.created,
                    k.revoked.as_deref().unwrap_or("-"),
                    k.last_used.as_deref().unwrap_or("-"),
                )
                .map_err(stdout)?;
            }
            Ok(())
        }
        ApiKeysCommand::Create(args) => {
            if !is_account_name(&args.name) {
                return Err(CliError::Argument {
                    name: "--name",
                    reason: NAME_RULE.to_owned(),
                });
            }
            let test_types = args
                .test_types
                .iter()
                .map(|name| {
                    TestType::parse(name).ok_or_else(|| CliError::Argument {
                        name: "--test-type",
                        reason: format!(
                            "unknown test type `{name}`; types are confirmed, likely and negative"
                        ),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let key = api_key::create(
                &store,
                &args.name,
                &test_types,
                "operator",
                today,
                &mut rand::rng(),
            )
            .map_err(NodeError::from)?;
            let id = hex::encode(key.id());
            let action = AuditAction::ApiKeyCreated {
                id: id.clone(),
                name: args.name.clone(),
                test_types: args.test_types.clone(),
            };
            record(&store, &keys, action, Ok(()))?;
            writeln!(
                out,
                "API key {id} ({}) created; the key, shown once (send it as \
                 `Authorization: Bearer <key>` to POST /v1/codes):\n{}",
                args.name,
                key.reveal().as_str()
            )
            .map_err(stdout)
        }
        ApiKeysCommand::Revoke(args) => {
            let id = api_key::parse_id(&args.id).ok_or_else(|| CliError::Argument {
                name: "id",
                reason: "must be 16 hex digits".to_owned(),
            })?;
            let action = AuditAction::ApiKeyRevoked {
                id: hex::encode(id),
            };
            let result = api_key::revoke(&store, &id, today)
                .map_err(NodeError::from)?
                .map_err(|e| match e {
                    ApiKeyError::Unknown => ApiError::UnknownApiKey,
                    ApiKeyError::Revoked => ApiError::ApiKeyRevoked,
                });
            record(&store, &keys, action, result)?;
            writeln!(out, "API key {} revoked", hex::encode(id)).map_err(stdout)
        }
    }
}
