//! The statistics routes (issue 17 item 7), for auditors and admins: `GET /v1/stats` as
//! JSON, or CSV for `Accept: text/csv` (as `GET /v1/audit`), and
//! `GET /v1/stats/chart.svg`, drawn by the node ([`crate::stats_chart`]).

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ephemera_node_core::store::StatsMetric;
use serde::Deserialize;

use super::error::ApiError;
use super::{caller, no_store, query_day, wants_csv};
use crate::node::{Node, StatsRange};

/// The chart may not run script or load anything: its SVG needs none of it.
const CHART_CSP: &str = "default-src 'none'; frame-ancestors 'self'; base-uri 'none'";

pub(super) fn routes() -> Router<Node> {
    Router::new()
        .route("/v1/stats", get(stats))
        .route("/v1/stats/chart.svg", get(chart))
}

/// The days of a statistics read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StatsQuery {
    /// The first day, `YYYY-MM-DD` (UTC); default: 29 days before `to`.
    from: Option<String>,
    /// The last day, `YYYY-MM-DD` (UTC); default: today. Not before `from`, at most 365
    /// days after it (366 days in all).
    to: Option<String>,
}

/// The days and metric of a chart.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ChartQuery {
    /// The first day, `YYYY-MM-DD` (UTC); default: 29 days before `to`.
    from: Option<String>,
    /// The last day, `YYYY-MM-DD` (UTC); default: today. Not before `from`, at most 365
    /// days after it (366 days in all).
    to: Option<String>,
    /// What to draw (default `codes_issued`): `codes_issued`, `codes_used`,
    /// `codes_expired`, `codes_revoked`, `uploads_accepted`, `uploads_relayed` or
    /// `batches_published`.
    metric: Option<String>,
}

/// The query's days, checked against today.
fn range(node: &Node, from: Option<&str>, to: Option<&str>) -> Result<StatsRange, ApiError> {
    StatsRange::new(
        query_day("from", from)?,
        query_day("to", to)?,
        node.now().day(),
    )
}

/// A query string that is not one of ours (a field twice, say).
fn unreadable() -> ApiError {
    ApiError::InvalidParameter {
        name: "from",
        reason: "from and to must be dates YYYY-MM-DD, metric a metric's name, each at most once",
    }
}

/// Daily counts per test type (codes issued, used, expired and revoked; uploads accepted
/// from phones and relayed by peers) and batches published per day, for auditors and
/// admins. Counts from 1 to `[authority] stats_min_count` − 1 read `"<N"`; there are no
/// totals. JSON, or CSV for `Accept: text/csv`. The read is recorded in the audit trail.
#[utoipa::path(get, path = "/v1/stats", params(StatsQuery),
    responses((status = 200, description = "The counts: JSON, or CSV for `Accept: text/csv`", content(
        (crate::node::StatsReport = "application/json"),
        (String = "text/csv", example = "day,metric,test_type,count"),
    ))),
    security(("bearer" = [])))]
pub(super) async fn stats(
    State(node): State<Node>,
    headers: HeaderMap,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let token = caller(&node, &headers)?;
    let Ok(Query(query)) = query else {
        return Err(unreadable());
    };
    let range = range(&node, query.from.as_deref(), query.to.as_deref())?;
    let report = node.stats(token, range).await?;
    if !wants_csv(&headers) {
        return Ok(no_store(StatusCode::OK, report));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        report.csv(),
    )
        .into_response())
}

/// One metric's counts per day as an SVG bar chart drawn by the node (one colour per test
/// type; a count below the threshold is a dashed bar marked `<N`), with a title, a text
/// description and labels, and no script: served under a policy that forbids script and
/// every outside load. For auditors and admins; the read is recorded in the audit trail.
#[utoipa::path(get, path = "/v1/stats/chart.svg", params(ChartQuery),
    responses((status = 200, description = "The chart", content_type = "image/svg+xml",
        headers(("Content-Security-Policy" = String, description = "`default-src 'none'`: no script, no outside load")))),
    security(("bearer" = [])))]
pub(super) async fn chart(
    State(node): State<Node>,
    headers: HeaderMap,
    query: Result<Query<ChartQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let token = caller(&node, &headers)?;
    let Ok(Query(query)) = query else {
        return Err(unreadable());
    };
    let metric = match query.metric.as_deref() {
        None => StatsMetric::CodesIssued,
        Some(name) => StatsMetric::parse(name).ok_or(ApiError::InvalidParameter {
            name: "metric",
            reason: "must be codes_issued, codes_used, codes_expired, codes_revoked, \
                     uploads_accepted, uploads_relayed or batches_published",
        })?,
    };
    let range = range(&node, query.from.as_deref(), query.to.as_deref())?;
    let report = node.stats(token, range).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CHART_CSP),
            (header::CACHE_CONTROL, "no-store"),
        ],
        crate::stats_chart::render(&report, metric),
    )
        .into_response())
}
