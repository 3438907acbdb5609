//! Which routes a node of each `[storage] role` serves (`node/docs/OPERATIONS.md`,
//! "Least-privilege roles"): a node answers what its role does not serve with 421
//! `wrong-node` before any handler runs, so it never reaches for a table its database role
//! may not touch.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ephemera_node_core::store::StoreRole;

use super::error::ApiError;
use crate::node::Node;

/// The part of a group's work a route belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Every node: health, metrics, the OpenAPI document, the authority's public keys, and
    /// paths no route has (they answer 404 everywhere).
    Every,
    /// Phones' verify and upload, and the keys phones verify with.
    Intake,
    /// Published batches, heads, GAEN exports, venue releases and the sunset order.
    Publisher,
    /// Staff: sessions, accounts, codes, API keys, audit, statistics, venues, venue traces,
    /// the console page.
    Console,
}

/// The part `path` belongs to.
pub(crate) fn part_of(path: &str) -> Part {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if ["/v1/verify", "/v2/verify", "/v1/uploads", "/v2/token-keys"].contains(&path) {
        Part::Intake
    } else if under("/v1/batches")
        || under("/v1/heads")
        || under("/v1/exports")
        || under("/v1/sunset")
        || under("/v1/venue-releases")
    {
        Part::Publisher
    } else if under("/v1/session")
        || under("/v1/sessions")
        || under("/v1/accounts")
        || under("/v1/codes")
        || under("/v1/api-keys")
        || under("/v1/audit")
        || under("/v1/stats")
        || under("/v1/venues")
        || under("/v1/venue-traces")
        || [
            "/",
            "/console",
            "/case-worker",
            "/console.js",
            "/console.css",
        ]
        .contains(&path)
    {
        Part::Console
    } else {
        Part::Every
    }
}

/// Whether a node of `role` serves `part`.
pub(crate) fn serves(role: StoreRole, part: Part) -> bool {
    match part {
        Part::Every => true,
        Part::Intake => role.takes_uploads(),
        Part::Publisher => role.publishes(),
        Part::Console => role.runs_console(),
    }
}

/// The layer: 421 `wrong-node` for a route of another role.
pub(crate) async fn refuse_other_roles(
    State(node): State<Node>,
    request: Request,
    next: Next,
) -> Response {
    let role = node.config().storage.role;
    if serves(role, part_of(request.uri().path())) {
        next.run(request).await
    } else {
        ApiError::WrongNode { role: role.name() }.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_belongs_to_one_part_and_all_serves_every_part() {
        for (path, part) in [
            ("/healthz", Part::Every),
            ("/metrics", Part::Every),
            ("/v1/openapi.json", Part::Every),
            ("/v1/authority", Part::Every),
            ("/v1/sealing-key", Part::Every),
            ("/v1/venue-key", Part::Every),
            ("/v1/verify", Part::Intake),
            ("/v2/verify", Part::Intake),
            ("/v1/uploads", Part::Intake),
            ("/v2/token-keys", Part::Intake),
            ("/v1/batches", Part::Publisher),
            ("/v1/batches/ab/filter", Part::Publisher),
            ("/v1/heads/conflicts", Part::Publisher),
            ("/v1/exports/index.txt", Part::Publisher),
            ("/v1/session", Part::Console),
            ("/v1/session/totp/confirm", Part::Console),
            ("/v1/sessions", Part::Console),
            ("/v1/accounts/ada/roles", Part::Console),
            ("/v1/codes", Part::Console),
            ("/v1/codes/x/revoke", Part::Console),
            ("/v1/api-keys", Part::Console),
            ("/v1/audit", Part::Console),
            ("/v1/stats/chart.svg", Part::Console),
            ("/v1/venues", Part::Console),
            ("/console", Part::Console),
            ("/", Part::Console),
            ("/v1/batchesx", Part::Every),
            ("/v1/uploads/x", Part::Every),
            ("/nothing", Part::Every),
        ] {
            assert_eq!(part_of(path), part, "{path}");
            assert!(serves(StoreRole::All, part), "{path}");
        }
        for (role, part) in [
            (StoreRole::Intake, Part::Intake),
            (StoreRole::Publisher, Part::Publisher),
            (StoreRole::Console, Part::Console),
        ] {
            for other in [Part::Intake, Part::Publisher, Part::Console] {
                assert_eq!(serves(role, other), other == part, "{role} {other:?}");
            }
            assert!(serves(role, Part::Every));
        }
    }
}
