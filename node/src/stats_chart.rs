//! The statistics chart (`GET /v1/stats/chart.svg`): one metric's bars per day, one colour
//! per test type, drawn by the node itself as SVG.
//!
//! The SVG has no script, no style sheet, no outside font, image or link: presentation
//! attributes and the generic `sans-serif` family only, so it renders under a policy of
//! `default-src 'none'`. It names itself (`<title>`, `<desc>`, `role="img"`), labels its
//! axes, legend and days in text, and every bar has a `<title>` with its day, test type and
//! count as shown, for a screen reader. A suppressed count (`"<N"`) is drawn as a dashed,
//! unfilled bar of the threshold's height marked `<N`: its height never tells its value.

use std::fmt::Write;

use ephemera_node_core::store::StatsMetric;

use crate::node::{ShownCount, StatsReport, test_types};

/// Width of the plot area, in SVG units.
const PLOT_WIDTH: f64 = 880.0;
/// Height of the plot area.
const PLOT_HEIGHT: f64 = 260.0;
/// Left margin (the count axis labels).
const LEFT: f64 = 60.0;
/// Top margin (title and legend).
const TOP: f64 = 60.0;
/// Bottom margin (day labels).
const BOTTOM: f64 = 50.0;

/// One colour per test type, told apart also without colour vision (Okabe-Ito palette).
const COLOURS: [&str; 4] = ["#0072B2", "#E69F00", "#009E73", "#CC79A7"];
/// The colour of the metric without test types (batches).
const SINGLE_COLOUR: &str = "#0072B2";

/// A human name of a metric.
fn label(metric: StatsMetric) -> &'static str {
    match metric {
        StatsMetric::CodesIssued => "Codes issued",
        StatsMetric::CodesUsed => "Codes used",
        StatsMetric::CodesExpired => "Codes expired unused",
        StatsMetric::CodesRevoked => "Codes revoked",
        StatsMetric::UploadsAccepted => "Uploads accepted from phones",
        StatsMetric::UploadsRelayed => "Uploads relayed by peers",
        StatsMetric::BatchesPublished => "Batches published",
    }
}

/// `text` with the five XML specials escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The chart of `metric` over the report's days.
pub fn render(report: &StatsReport, metric: StatsMetric) -> String {
    let columns: Vec<&str> = match test_types(metric) {
        [] => vec![""],
        types => types.iter().map(|(name, _)| *name).collect(),
    };
    // The report's cells of this metric, by day, in column order.
    let mut days: Vec<(&str, Vec<&ShownCount>)> = Vec::new();
    for row in report.rows.iter().filter(|r| r.metric == metric.as_str()) {
        match days.last_mut() {
            Some((day, cells)) if *day == row.day => cells.push(&row.count),
            _ => days.push((&row.day, vec![&row.count])),
        }
    }
    let threshold = u64::from(report.min_count.max(1));
    let height_of = |count: &ShownCount| match count {
        ShownCount::Exact(n) => *n,
        ShownCount::Suppressed(_) => threshold,
    };
    let top = days
        .iter()
        .flat_map(|(_, cells)| cells.iter().map(|c| height_of(c)))
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = PLOT_HEIGHT / top as f64;
    let group = PLOT_WIDTH / days.len().max(1) as f64;
    let bar = (group * 0.8 / columns.len() as f64).max(0.5);
    let width = LEFT + PLOT_WIDTH + 20.0;
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let title = format!("{}, {} to {}", label(metric), report.from, report.to);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-labelledby=\"chart-title chart-desc\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <title id=\"chart-title\">{}</title>\n<desc id=\"chart-desc\">{}</desc>\n\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"15\" fill=\"#000000\">{}</text>\n",
        escape(&title),
        escape(&describe(metric, &columns, &days, report.min_count)),
        escape(&title),
    );
    // Legend.
    if columns != [""] {
        for (i, name) in columns.iter().enumerate() {
            let x = LEFT + i as f64 * 110.0;
            let _ = writeln!(
                out,
                "<rect x=\"{x}\" y=\"32\" width=\"12\" height=\"12\" fill=\"{}\"/>\
                 <text x=\"{}\" y=\"43\" fill=\"#000000\">{}</text>",
                COLOURS[i % COLOURS.len()],
                x + 16.0,
                escape(name)
            );
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"43\" fill=\"#444444\">dashed: fewer than {} (value not shown)</text>",
        LEFT + 450.0,
        report.min_count
    );
    // Axes, with the top count and 0.
    let base = TOP + PLOT_HEIGHT;
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base}\" stroke=\"#000000\"/>\
         <line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#000000\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#000000\">{top}</text>\
         <text x=\"{}\" y=\"{base}\" text-anchor=\"end\" fill=\"#000000\">0</text>\n",
        LEFT + PLOT_WIDTH,
        LEFT - 6.0,
        TOP + 4.0,
        LEFT - 6.0,
    );
    // A day label at most every 40 units.
    let every = ((40.0 / group).ceil() as usize).max(1);
    for (d, (day, cells)) in days.iter().enumerate() {
        let x0 = LEFT + d as f64 * group + group * 0.1;
        for (i, count) in cells.iter().enumerate() {
            let x = x0 + i as f64 * bar;
            let h = height_of(count) as f64 * scale;
            let y = base - h;
            let colour = if columns == [""] {
                SINGLE_COLOUR
            } else {
                COLOURS[i % COLOURS.len()]
            };
            let name = columns.get(i).copied().unwrap_or("");
            let what = if name.is_empty() {
                format!("{day}: {}", count.text())
            } else {
                format!("{day}, {name}: {}", count.text())
            };
            match count {
                ShownCount::Exact(0) => {}
                ShownCount::Exact(_) => {
                    let _ = writeln!(
                        out,
                        "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{bar:.2}\" height=\"{h:.2}\" \
                         fill=\"{colour}\"><title>{}</title></rect>",
                        escape(&what)
                    );
                }
                ShownCount::Suppressed(text) => {
                    let _ = writeln!(
                        out,
                        "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{bar:.2}\" height=\"{h:.2}\" \
                         fill=\"#ffffff\" stroke=\"{colour}\" stroke-dasharray=\"3 2\">\
                         <title>{}</title></rect><text x=\"{:.2}\" y=\"{:.2}\" font-size=\"9\" \
                         text-anchor=\"middle\" fill=\"#000000\">{}</text>",
                        escape(&what),
                        x + bar / 2.0,
                        y - 2.0,
                        escape(text)
                    );
                }
            }
        }
        if d % every == 0 {
            let _ = writeln!(
                out,
                "<text x=\"{:.2}\" y=\"{}\" font-size=\"10\" fill=\"#000000\">{}</text>",
                x0,
                base + 16.0,
                escape(&day[5..])
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// The chart in words: what it shows, the threshold, and the days with any count above 0.
fn describe(
    metric: StatsMetric,
    columns: &[&str],
    days: &[(&str, Vec<&ShownCount>)],
    min_count: u32,
) -> String {
    let mut text = format!(
        "Bar chart of {} per UTC day{}. Counts from 1 to {} are shown as <{} and drawn as \
         dashed bars of that height.",
        label(metric).to_lowercase(),
        if columns == [""] {
            String::new()
        } else {
            format!(", one bar per test type ({})", columns.join(", "))
        },
        min_count.saturating_sub(1),
        min_count
    );
    let busy: Vec<String> = days
        .iter()
        .filter(|(_, cells)| cells.iter().any(|c| **c != ShownCount::Exact(0)))
        .map(|(day, cells)| {
            let values: Vec<String> = cells
                .iter()
                .zip(columns)
                .map(|(c, name)| {
                    if name.is_empty() {
                        c.text()
                    } else {
                        format!("{name} {}", c.text())
                    }
                })
                .collect();
            format!("{day}: {}", values.join(", "))
        })
        .collect();
    if busy.is_empty() {
        text.push_str(" Every count is 0.");
    } else {
        text.push_str(" Days with counts: ");
        text.push_str(&busy.join("; "));
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ephemera_proto::DayNumber;
    use ephemera_proto::report::ReportType;

    use super::*;

    fn report(min_count: u32) -> StatsReport {
        let day = DayNumber(20_000);
        let mut counters = BTreeMap::new();
        counters.insert(
            (
                day,
                StatsMetric::CodesIssued,
                Some(ReportType::ConfirmedTest),
            ),
            12,
        );
        counters.insert(
            (
                day.plus(1),
                StatsMetric::CodesIssued,
                Some(ReportType::Revoked),
            ),
            3,
        );
        StatsReport::build(&counters, day, day.plus(2), min_count)
    }

    #[test]
    fn a_suppressed_bar_is_marked_and_never_drawn_at_its_value() {
        let svg = render(&report(5), StatsMetric::CodesIssued);
        assert!(svg.contains("<title id=\"chart-title\">Codes issued, 2024-10-04 to 2024-10-06"));
        assert!(svg.contains("2024-10-05, negative: &lt;5</title>"));
        assert!(svg.contains("stroke-dasharray"));
        assert!(!svg.contains("negative: 3"));
        assert!(!svg.contains("<script") && !svg.contains("href") && !svg.contains("style"));
        // With no threshold the same count is drawn and told.
        let exact = render(&report(1), StatsMetric::CodesIssued);
        assert!(exact.contains("2024-10-05, negative: 3</title>"));
        assert!(!exact.contains("stroke-dasharray"));
        let batches = render(&report(5), StatsMetric::BatchesPublished);
        assert!(batches.contains("Every count is 0."));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a & 'b'>\""), "&lt;a &amp; &apos;b&apos;&gt;&quot;");
    }
}
