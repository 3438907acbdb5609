//! `venues.svg`: recall by check-in share (left) and the observer by venue coverage
//! (right), each scheme a line.

use std::path::Path;

use plotters::prelude::*;

use super::Comparison;
use super::exposure::{BLUETOOTH, CHECK_IN, PUBLISHED};
use crate::error::SimError;
use crate::output::plot_error;

/// A named, coloured line of (x, y) points.
type Line = (String, RGBColor, Vec<(f64, f64)>);

/// Draws `lines` on `area` with `title` and axis descriptions.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: Vec<Line>,
    legend: SeriesLabelPosition,
    path: &Path,
) -> Result<(), SimError> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 17))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..1.0, 0f64..1.05)
        .map_err(plot_error(path))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(plot_error(path))?;
    for (name, color, points) in lines {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(plot_error(path))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(plot_error(path))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(plot_error(path))
}

/// Writes the two panels to `path`.
pub(super) fn plot(path: &Path, c: &Comparison) -> Result<(), SimError> {
    let root = SVGBackend::new(path, (1000, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error(path))?;
    let (left, right) = root.split_horizontally(500);
    let flat = |name: &str| {
        let recall = c.scheme(name).map_or(0.0, |s| s.recall);
        vec![(0.0, recall), (1.0, recall)]
    };
    let grey = RGBColor(120, 120, 120);
    panel(
        &left,
        &format!(
            "Recall of room-shared exposures (≥ {} min)",
            c.scenario.threshold_minutes
        ),
        "share of visits checked in",
        "recall",
        vec![
            (PUBLISHED.to_owned(), RED, flat(PUBLISHED)),
            (CHECK_IN.to_owned(), BLUE, c.check_in_curve.clone()),
            (BLUETOOTH.to_owned(), grey, flat(BLUETOOTH)),
        ],
        SeriesLabelPosition::MiddleLeft,
        path,
    )?;
    let mut lines = vec![(
        PUBLISHED.to_owned(),
        RED,
        c.observer
            .iter()
            .map(|r| (r.coverage, r.published))
            .collect(),
    )];
    let blues = [BLUE, RGBColor(90, 140, 230), RGBColor(160, 190, 240)];
    for (i, lambda) in c.scenario.other_cases_per_batch.iter().enumerate() {
        lines.push((
            format!("check-in, {lambda} other cases a batch"),
            blues[i.min(blues.len() - 1)],
            c.observer
                .iter()
                .map(|r| (r.coverage, r.check_in.get(i).copied().unwrap_or(0.0)))
                .collect(),
        ));
    }
    lines.push((
        BLUETOOTH.to_owned(),
        grey,
        c.observer
            .iter()
            .map(|r| (r.coverage, r.bluetooth))
            .collect(),
    ));
    panel(
        &right,
        &format!(
            "Trails reconstructed (check-in {}, {}-h batches)",
            c.scenario.check_in_share, c.scenario.batch_hours
        ),
        "share of venues whose QR codes the observer holds",
        "share of cases",
        lines,
        SeriesLabelPosition::MiddleRight,
        path,
    )?;
    root.present().map_err(plot_error(path))
}
