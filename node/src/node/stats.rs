//! The authority's statistics (issue 17 item 7): the store's daily counters read for an
//! auditor or an admin, as a table with small counts suppressed.
//!
//! Every cell is one day, one metric and one test type; a count from 1 to
//! `[authority] stats_min_count` − 1 is shown as `"<N"`, never its value. No total, sum or
//! other figure is derived from the cells, so no suppressed cell can be worked back from
//! what is shown (`node/docs/OPERATIONS.md`, "Statistics").

use std::collections::BTreeMap;

use ephemera_node_core::store::{StatsMetric, StoreError};
use ephemera_proto::DayNumber;
use ephemera_proto::report::ReportType;
use serde::Serialize;
use utoipa::ToSchema;

use super::Node;
use crate::api::error::ApiError;
use crate::clock::civil;

/// Most days one statistics read covers (a year, leap day included).
pub const MAX_STATS_DAYS: u32 = 366;

/// Days a statistics read covers when it names no `from`: the last 30, today included.
pub const DEFAULT_STATS_DAYS: u32 = 30;

/// Counters by day, metric and report type (`None`: batches), as the store gave them.
pub type Counters = BTreeMap<(DayNumber, StatsMetric, Option<ReportType>), u64>;

/// The CSV header line of `GET /v1/stats`.
pub const STATS_CSV_HEADER: &str = "day,metric,test_type,count";

/// The test types a metric is counted by, as shown, each with the report types it sums.
/// Codes are issued for three; uploads may carry any type a trusted authority certified,
/// and the two no code here grants (self-report, recursive) are shown together as `other`.
pub fn test_types(metric: StatsMetric) -> &'static [(&'static str, &'static [ReportType])] {
    const CODES: &[(&str, &[ReportType])] = &[
        ("confirmed", &[ReportType::ConfirmedTest]),
        ("likely", &[ReportType::ConfirmedClinicalDiagnosis]),
        ("negative", &[ReportType::Revoked]),
    ];
    const UPLOADS: &[(&str, &[ReportType])] = &[
        ("confirmed", &[ReportType::ConfirmedTest]),
        ("likely", &[ReportType::ConfirmedClinicalDiagnosis]),
        ("negative", &[ReportType::Revoked]),
        ("other", &[ReportType::SelfReport, ReportType::Recursive]),
    ];
    match metric {
        StatsMetric::CodesIssued
        | StatsMetric::CodesUsed
        | StatsMetric::CodesExpired
        | StatsMetric::CodesRevoked => CODES,
        StatsMetric::UploadsAccepted | StatsMetric::UploadsRelayed => UPLOADS,
        StatsMetric::BatchesPublished => &[],
    }
}

/// A count as shown: its value, or `"<N"` for one from 1 to N − 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ShownCount {
    /// 0, or at least the threshold.
    Exact(u64),
    /// From 1 to the threshold − 1: `"<N"`.
    Suppressed(String),
}

impl ShownCount {
    /// `count` as shown under threshold `min_count` (1 shows every count).
    pub fn of(count: u64, min_count: u32) -> ShownCount {
        if count == 0 || count >= u64::from(min_count) {
            ShownCount::Exact(count)
        } else {
            ShownCount::Suppressed(format!("<{min_count}"))
        }
    }

    /// As text (CSV, chart labels).
    pub fn text(&self) -> String {
        match self {
            ShownCount::Exact(n) => n.to_string(),
            ShownCount::Suppressed(s) => s.clone(),
        }
    }
}

/// One cell: a day, a metric, a test type and its count as shown.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StatsRow {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// `codes_issued`, `codes_used`, `codes_expired`, `codes_revoked`,
    /// `uploads_accepted`, `uploads_relayed` or `batches_published`.
    pub metric: &'static str,
    /// `confirmed`, `likely`, `negative` or (uploads) `other`; absent for
    /// `batches_published`, which has none.
    pub test_type: Option<&'static str>,
    /// The count, or `"<N"` for one from 1 to N − 1 (N: `min_count`).
    #[schema(value_type = Object)]
    pub count: ShownCount,
}

impl StatsRow {
    /// Its CSV line (no line break): every field is generated, none needs quoting.
    pub fn csv_line(&self) -> String {
        format!(
            "{},{},{},{}",
            self.day,
            self.metric,
            self.test_type.unwrap_or(""),
            self.count.text()
        )
    }
}

/// `GET /v1/stats`: every day of the range, every metric and test type, 0 included.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StatsReport {
    /// The first day, `YYYY-MM-DD` (UTC).
    pub from: String,
    /// The last day, `YYYY-MM-DD` (UTC).
    pub to: String,
    /// The threshold: counts from 1 to this − 1 are shown as `"<min_count"`.
    pub min_count: u32,
    /// The cells, by day, then metric, then test type. No totals: a total would give away
    /// the suppressed cells it sums.
    pub rows: Vec<StatsRow>,
}

impl StatsReport {
    /// The report of `counters` (by day, metric and report type) over `from..=to`.
    pub fn build(
        counters: &Counters,
        from: DayNumber,
        to: DayNumber,
        min_count: u32,
    ) -> StatsReport {
        let mut rows = Vec::new();
        let mut day = from;
        while day <= to {
            for metric in StatsMetric::ALL {
                let count = |types: &[ReportType]| -> u64 {
                    if types.is_empty() {
                        return counters.get(&(day, metric, None)).copied().unwrap_or(0);
                    }
                    types
                        .iter()
                        .map(|t| counters.get(&(day, metric, Some(*t))).copied().unwrap_or(0))
                        .fold(0u64, u64::saturating_add)
                };
                let columns = test_types(metric);
                if columns.is_empty() {
                    rows.push(StatsRow {
                        day: civil::format_date(day),
                        metric: metric.as_str(),
                        test_type: None,
                        count: ShownCount::of(count(&[]), min_count),
                    });
                }
                for (name, types) in columns {
                    rows.push(StatsRow {
                        day: civil::format_date(day),
                        metric: metric.as_str(),
                        test_type: Some(name),
                        count: ShownCount::of(count(types), min_count),
                    });
                }
            }
            day = day.plus(1);
        }
        StatsReport {
            from: civil::format_date(from),
            to: civil::format_date(to),
            min_count,
            rows,
        }
    }

    /// The whole CSV form: header, then a line per row.
    pub fn csv(&self) -> String {
        let mut out = String::from(STATS_CSV_HEADER);
        out.push('\n');
        for row in &self.rows {
            out.push_str(&row.csv_line());
            out.push('\n');
        }
        out
    }
}

/// The days a read covers, checked: `from` at most `to`, at most [`MAX_STATS_DAYS`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StatsRange {
    /// The first day.
    pub from: DayNumber,
    /// The last day.
    pub to: DayNumber,
}

impl StatsRange {
    /// The range `from..=to`, defaulting `to` to `today` and `from` to the
    /// [`DEFAULT_STATS_DAYS`] days ending at `to`.
    ///
    /// # Errors
    /// [`ApiError::InvalidParameter`] when `from` is after `to` or the range holds more
    /// than [`MAX_STATS_DAYS`] days.
    pub fn new(
        from: Option<DayNumber>,
        to: Option<DayNumber>,
        today: DayNumber,
    ) -> Result<StatsRange, ApiError> {
        let to = to.unwrap_or(today);
        let from = from.unwrap_or_else(|| to.minus(DEFAULT_STATS_DAYS - 1));
        if from > to {
            return Err(ApiError::InvalidParameter {
                name: "from",
                reason: "must not be after to",
            });
        }
        if to.0 - from.0 >= MAX_STATS_DAYS {
            return Err(ApiError::InvalidParameter {
                name: "to",
                reason: "the range holds at most 366 days",
            });
        }
        Ok(StatsRange { from, to })
    }
}

impl Node {
    /// `GET /v1/stats` and its chart: the counters of `range` for an auditor or an admin,
    /// with small counts suppressed. The read is recorded first (as an export) and flushed.
    ///
    /// # Errors
    /// As [`Node::authorize`]; [`ApiError::Store`].
    pub async fn stats(&self, token: &str, range: StatsRange) -> Result<StatsReport, ApiError> {
        self.authorize_export(token).await?;
        let counters = self.stats_counters(range)?;
        Ok(StatsReport::build(
            &counters,
            range.from,
            range.to,
            self.inner.config.authority.stats_min_count,
        ))
    }

    fn stats_counters(&self, range: StatsRange) -> Result<Counters, StoreError> {
        Ok(self
            .inner
            .store
            .stats(range.from, range.to)?
            .into_iter()
            .map(|(key, count)| ((key.day, key.metric, key.test_type), count))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_shown_as_below_the_threshold_and_zero_as_zero() {
        assert_eq!(ShownCount::of(0, 5), ShownCount::Exact(0));
        for n in 1..5 {
            assert_eq!(ShownCount::of(n, 5), ShownCount::Suppressed("<5".into()));
        }
        assert_eq!(ShownCount::of(5, 5), ShownCount::Exact(5));
        assert_eq!(ShownCount::of(1, 1), ShownCount::Exact(1));
        assert_eq!(ShownCount::of(2, 3).text(), "<3");
        assert_eq!(
            serde_json::to_string(&[ShownCount::of(7, 5), ShownCount::of(3, 5)]).unwrap(),
            r#"[7,"<5"]"#
        );
    }

    #[test]
    fn a_report_has_every_cell_of_the_range_and_no_total() {
        let day = DayNumber(20_000);
        let mut counters = BTreeMap::new();
        counters.insert(
            (
                day,
                StatsMetric::UploadsAccepted,
                Some(ReportType::SelfReport),
            ),
            3,
        );
        counters.insert(
            (
                day,
                StatsMetric::UploadsAccepted,
                Some(ReportType::Recursive),
            ),
            4,
        );
        counters.insert((day, StatsMetric::BatchesPublished, None), 2);
        let report = StatsReport::build(&counters, day, day.plus(1), 5);
        // 4 code metrics x 3 types + 2 upload metrics x 4 types + batches, per day.
        assert_eq!(report.rows.len(), 2 * (12 + 8 + 1));
        let other = report
            .rows
            .iter()
            .find(|r| r.metric == "uploads_accepted" && r.test_type == Some("other"))
            .unwrap();
        // The two types no code grants are summed before suppression: 7 is shown.
        assert_eq!(other.count, ShownCount::Exact(7));
        let batches = report
            .rows
            .iter()
            .find(|r| r.metric == "batches_published")
            .unwrap();
        assert_eq!(batches.csv_line(), "2024-10-04,batches_published,,<5");
        let csv = report.csv();
        assert!(
            csv.starts_with("day,metric,test_type,count\n2024-10-04,codes_issued,confirmed,0\n")
        );
        assert!(!csv.contains("total"));
    }

    #[test]
    fn a_range_is_ordered_and_at_most_366_days() {
        let today = DayNumber(20_000);
        let default = StatsRange::new(None, None, today).unwrap();
        assert_eq!((default.from, default.to), (today.minus(29), today));
        assert!(StatsRange::new(Some(today.minus(365)), Some(today), today).is_ok());
        assert!(matches!(
            StatsRange::new(Some(today.minus(366)), Some(today), today),
            Err(ApiError::InvalidParameter { name: "to", .. })
        ));
        assert!(matches!(
            StatsRange::new(Some(today.plus(1)), Some(today), today),
            Err(ApiError::InvalidParameter { name: "from", .. })
        ));
    }
}
