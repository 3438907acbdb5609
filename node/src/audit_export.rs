//! The audit trail as auditors read it, in JSON or CSV: one shape for the command line
//! (`ephemera-node audit export`) and the API (`GET /v1/audit`).

use ephemera_proto::audit::AuditEntry;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::civil;

/// The CSV header line.
pub const CSV_HEADER: &str = "sequence,minute_utc,actor,action,outcome,previous,hash";

/// One audit record as exported: who, what, outcome, the minute, and its chain links.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditRow {
    /// Its position in the trail, from 1.
    pub sequence: u64,
    /// The minute, RFC 3339 UTC.
    pub minute_utc: String,
    /// Who: `account:<name>`, `api-key:<id>`, `operator`, `node`, `unknown-account`.
    pub actor: String,
    /// What, e.g. `codes-issued count=1 test_type=1 references=…`.
    pub action: String,
    /// `success` or `refused:<code>`.
    pub outcome: String,
    /// The hash of the record before (hex).
    pub previous: String,
    /// Its own hash (hex).
    pub hash: String,
}

impl AuditRow {
    /// The row of `entry`.
    pub fn of(entry: &AuditEntry) -> AuditRow {
        let r = &entry.record;
        AuditRow {
            sequence: r.sequence,
            minute_utc: civil::format_time(ephemera_proto::UnixTime(r.minute * 60)),
            actor: r.actor.to_string(),
            action: r.action.to_string(),
            outcome: r.outcome.to_string(),
            previous: r.previous.to_string(),
            hash: r.hash().to_string(),
        }
    }

    /// Its CSV line (no line break).
    pub fn csv_line(&self) -> String {
        format!(
            "{},{},{},{},{},{},{}",
            self.sequence,
            self.minute_utc,
            csv(&self.actor),
            csv(&self.action),
            csv(&self.outcome),
            self.previous,
            self.hash
        )
    }
}

/// A CSV field: quoted when it holds a comma, a quote or a line break (account names are
/// free text), and prefixed with `'` when a spreadsheet would take it for a formula.
fn csv(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@']) {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv("=1+1"), "'=1+1");
        assert_eq!(csv("-x,y"), "\"'-x,y\"");
    }
}
