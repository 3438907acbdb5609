//! Writing a run's results: `summary.json`, CSV series and SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::error::SimError;
use super::metrics::Scored;
use super::provenance::{Provenance, ensure_fresh};

/// A named, coloured line drawn from each row.
type Series<T, V> = (&'static str, RGBColor, fn(&T) -> V);
/// One bar panel: where, title, fixed top (0: automatic), value.
type Panel<'a, 'b> = (
    &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    &'static str,
    f64,
    fn(&Scored) -> f64,
);

/// Maps an I/O error on `path` to [`SimError::Output`].
pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SimError + '_ {
    move |e| SimError::Output {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Maps a plotting error on `path` to [`SimError::Output`].
pub(crate) fn plot_error<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> SimError + '_ {
    move |e| SimError::Output {
        path: path.display().to_string(),
        message: format!("{e:?}"),
    }
}

/// Writes `summary.json`, `scenario.toml`, `daily.csv`, `sweep.csv`, `attack.csv` and the
/// plots `epidemic.svg`, `threshold.svg` and `attack.svg` into `dir` (created if missing;
/// refused if it holds anything: a run never overwrites another). `scenario.toml` is the
/// effective scenario, every parameter with defaults filled in, headed by the
/// [`Provenance`] as comments; `summary.json` holds the same scenario under `scenario` and
/// the provenance under `provenance`. `others` are runs of the other scheme on the same
/// scenario, shown beside this one in `attack.svg` and `attack.csv`. A run that kept its
/// line lists also writes `contacts.csv`, `infections.csv` and `notifications.csv`.
///
/// # Errors
/// [`SimError::Output`] when `dir` is not empty or a file cannot be written.
pub fn write_outputs(dir: &Path, scored: &Scored, others: &[&Scored]) -> Result<(), SimError> {
    ensure_fresh(dir)?;
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let provenance = Provenance::of_this_process(scored.scenario.seed);
    let path = dir.join("scenario.toml");
    let toml = provenance.as_toml_comment() + &scored.scenario.to_toml();
    std::fs::write(&path, toml).map_err(io_error(&path))?;
    let path = dir.join("summary.json");
    let mut summary = serde_json::to_value(&scored.summary).expect("summary serialises");
    if let serde_json::Value::Object(fields) = &mut summary {
        fields.insert(
            "provenance".to_owned(),
            serde_json::to_value(&provenance).expect("provenance serialises"),
        );
        fields.insert(
            "scenario".to_owned(),
            serde_json::to_value(&scored.scenario).expect("scenario serialises"),
        );
    }
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    std::fs::write(&path, json + "\n").map_err(io_error(&path))?;
    if let Some(misses) = &scored.misses {
        let path = dir.join("misses.json");
        let json = serde_json::to_string_pretty(misses).expect("report serialises");
        std::fs::write(&path, json + "\n").map_err(io_error(&path))?;
    }

    let mut daily = String::from(
        "day,episodes,app_episodes,new_infections,cumulative_infected,positives,uploads,notifications,sightings,advertisements,sniffed\n",
    );
    for d in &scored.daily {
        let _ = writeln!(
            daily,
            "{},{},{},{},{},{},{},{},{},{},{}",
            d.day,
            d.episodes,
            d.app_episodes,
            d.new_infections,
            d.cumulative_infected,
            d.positives,
            d.uploads,
            d.notifications,
            d.sightings,
            d.advertisements,
            d.sniffed
        );
    }
    let path = dir.join("daily.csv");
    std::fs::write(&path, daily).map_err(io_error(&path))?;

    for (name, points) in [
        ("sweep.csv", &scored.sweep),
        ("sweep_ideal.csv", &scored.ideal_sweep),
    ] {
        let mut sweep = String::from("threshold_db,precision,recall,f1,notified,true_positives\n");
        for p in points {
            let _ = writeln!(
                sweep,
                "{},{},{},{},{},{}",
                p.threshold_db, p.precision, p.recall, p.f1, p.notified, p.true_positives
            );
        }
        let path = dir.join(name);
        std::fs::write(&path, sweep).map_err(io_error(&path))?;
    }

    let runs: Vec<&Scored> = std::iter::once(scored)
        .chain(others.iter().copied())
        .collect();
    let mut attack = String::from(
        "scheme,sniffers,sniffer_records,positives_uploaded,positives_linked,linked_fraction,places_per_linked_positive_day,places_per_positive_day\n",
    );
    for r in &runs {
        let a = &r.summary.attack;
        let _ = writeln!(
            attack,
            "{},{},{},{},{},{},{},{}",
            r.summary.scheme,
            a.sniffers,
            a.sniffer_records,
            a.positives_uploaded,
            a.positives_linked,
            a.linked_fraction,
            a.places_per_linked_positive_day,
            a.places_per_positive_day
        );
    }
    let path = dir.join("attack.csv");
    std::fs::write(&path, attack).map_err(io_error(&path))?;

    plot_epidemic(&dir.join("epidemic.svg"), scored)?;
    plot_sweep(&dir.join("threshold.svg"), scored)?;
    plot_attack(&dir.join("attack.svg"), &runs)?;
    if let Some(lists) = &scored.line_lists {
        lists.write(dir)?;
    }
    Ok(())
}

fn plot_epidemic(path: &Path, scored: &Scored) -> Result<(), SimError> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error(path))?;
    let days = scored.daily.len() as u32;
    let top = scored
        .daily
        .iter()
        .map(|d| d.new_infections.max(d.notifications).max(d.positives))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Epidemic and notifications ({}, {} people)",
                scored.summary.scheme, scored.summary.agents
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        // Days are numbered from 0: the axis ends at the last day drawn.
        .build_cartesian_2d(0u32..days.saturating_sub(1).max(1), 0f64..top)
        .map_err(plot_error(path))?;
    chart
        .configure_mesh()
        .x_desc("day")
        .y_desc("people per day")
        .draw()
        .map_err(plot_error(path))?;
    let series: [Series<super::engine::DayStats, u64>; 4] = [
        ("new infections", RED, |d| d.new_infections),
        ("positive tests", BLUE, |d| d.positives),
        ("uploads", GREEN, |d| d.uploads),
        ("new notifications", MAGENTA, |d| d.notifications),
    ];
    let lines = series.map(|(name, color, f)| {
        let points = scored.daily.iter().map(|d| (d.day, f(d) as f64)).collect();
        (name, color, points)
    });
    draw_lines(&mut chart, lines, SeriesLabelPosition::UpperLeft, path)?;
    root.present().map_err(plot_error(path))
}

/// One line to draw: its name, colour and points.
type Line = (&'static str, RGBColor, Vec<(u32, f64)>);

/// A line chart over days or dB (x) and a count or share (y).
type LineChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordu32, plotters::coord::types::RangedCoordf64>,
>;

/// Draws one labelled line per `(name, colour, points)`, then the legend at `position`.
fn draw_lines<'a, const N: usize>(
    chart: &mut LineChart<'a, 'a>,
    lines: [Line; N],
    position: SeriesLabelPosition,
    path: &Path,
) -> Result<(), SimError> {
    for (name, color, points) in lines {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error(path))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(plot_error(path))
}

fn plot_sweep(path: &Path, scored: &Scored) -> Result<(), SimError> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error(path))?;
    let (lo, hi) = match (scored.sweep.first(), scored.sweep.last()) {
        (Some(a), Some(b)) => (
            u32::from(a.threshold_db),
            u32::from(b.threshold_db).max(u32::from(a.threshold_db) + 1),
        ),
        _ => (0, 1),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{} client scoring by its last attenuation bound (shipped {} dB: P {:.2}, R {:.2})",
                scored.summary.scheme,
                scored.scenario.detection.attenuation_thresholds_db[2],
                scored.summary.precision,
                scored.summary.recall
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(lo..hi, 0f64..1.05)
        .map_err(plot_error(path))?;
    chart
        .configure_mesh()
        .x_desc("attenuation threshold (dB)")
        .y_desc("share")
        .draw()
        .map_err(plot_error(path))?;
    let series: [Series<super::metrics::SweepPoint, f64>; 3] = [
        ("precision", BLUE, |p| p.precision),
        ("recall", RED, |p| p.recall),
        ("F1", BLACK, |p| p.f1),
    ];
    let ideal = |p: &super::metrics::SweepPoint| (u32::from(p.threshold_db), p.f1);
    let lines = series.map(|(name, color, f)| {
        let points = scored
            .sweep
            .iter()
            .map(|p| (u32::from(p.threshold_db), f(p)))
            .collect();
        (name, color, points)
    });
    let [precision, recall, f1] = lines;
    let lines = [
        precision,
        recall,
        f1,
        (
            "F1, idealised detector (both schemes)",
            RGBColor(150, 150, 150),
            scored.ideal_sweep.iter().map(ideal).collect(),
        ),
    ];
    draw_lines(&mut chart, lines, SeriesLabelPosition::LowerRight, path)?;
    root.present().map_err(plot_error(path))
}

fn plot_attack(path: &Path, runs: &[&Scored]) -> Result<(), SimError> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error(path))?;
    let (left, right) = root.split_horizontally(400);
    let n = runs.len() as u32;
    let names: Vec<&str> = runs.iter().map(|r| r.summary.scheme).collect();
    let panels: [Panel<'_, '_>; 2] = [
        (&left, "uploading positives linked", 1.05, |r| {
            r.summary.attack.linked_fraction
        }),
        (&right, "places linked per positive-day", 0.0, |r| {
            r.summary.attack.places_per_linked_positive_day
        }),
    ];
    for (area, title, fixed_top, f) in panels {
        let top = if fixed_top > 0.0 {
            fixed_top
        } else {
            runs.iter().map(|r| f(r)).fold(0.0, f64::max).max(1.0) * 1.2
        };
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(0u32..n, 0f64..top)
            .map_err(plot_error(path))?;
        let names = names.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n as usize + 1)
            .x_label_formatter(&move |x| {
                names
                    .get(*x as usize)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            })
            .draw()
            .map_err(plot_error(path))?;
        chart
            .draw_series(runs.iter().enumerate().map(|(i, r)| {
                let color = if r.summary.scheme == "gaen" {
                    RED
                } else {
                    BLUE
                };
                let mut bar =
                    Rectangle::new([(i as u32, 0.0), (i as u32 + 1, f(r))], color.filled());
                bar.set_margin(0, 0, 30, 30);
                bar
            }))
            .map_err(plot_error(path))?;
        // Every bar carries its value, so a zero reads as 0 and not as a missing bar.
        chart
            .draw_series(runs.iter().enumerate().map(|(i, r)| {
                let value = f(r);
                // Just inside the bar's left edge (30 px into its slot), above its top.
                EmptyElement::at((i as u32, value))
                    + Text::new(
                        format!("{value:.2}"),
                        (34, -20),
                        ("sans-serif", 16).into_font().color(&BLACK),
                    )
            }))
            .map_err(plot_error(path))?;
    }
    root.present().map_err(plot_error(path))
}
