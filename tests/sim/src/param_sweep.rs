//! Sweeps (`ephemera-sim sweep --plan FILE --out DIR`): a sweep file varies one or two
//! scenario parameters over listed values, every point (every combination) runs across
//! seeds and schemes through [`seeds::run_seeds`], and the figures of each point are
//! aggregated with 95 % t intervals into `points.csv`, `points.json` and one SVG plot per
//! headline figure with a shaded band.
//!
//! A sweep file (TOML):
//!
//! ```toml
//! scenario = "base.toml"        # optional, relative to the sweep file
//! seeds = 10                    # at least 2: the scenario's seed, + 1, …
//! schemes = ["gaen", "pet"]     # optional: the scenario's scheme
//! [set]                         # optional fixed values, by dotted path
//! agents = 10000
//! [set.interventions]           # an empty table turns an optional section on
//! [[vary]]                      # one or two
//! path = "population.app_uptake"
//! values = [0.2, 0.4, 0.6, 0.8]
//! ```
//!
//! A path is the parameter's dotted path in the scenario's TOML (`ephemera-sim
//! show-scenario` prints them all); an array element is named by its index
//! (`detection.attenuation_thresholds_db.2`). Every point's scenario is read back through
//! the scenario's own deserialisation and [`Scenario::validate`], so types and ranges are
//! checked, before anything runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::RunOptions;
use super::error::SimError;
use super::output::{io_error, plot_error};
use super::provenance::{Provenance, ensure_fresh};
use super::scenario::{Scenario, SchemeName};
use super::seeds::{self, Interval};

/// Why a sweep file was refused or a sweep failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SweepError {
    /// The sweep file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("sweep file: {0}")]
    File(String),
    /// The sweep file has no `[[vary]]`.
    #[error("sweep file: no [[vary]]: a sweep varies one or two parameters")]
    NoVary,
    /// The sweep file has more than two `[[vary]]`.
    #[error("sweep file: {0} [[vary]] sections: a sweep varies one or two parameters")]
    TooManyVaries(usize),
    /// A `[[vary]]` lists no value.
    #[error("sweep file: [[vary]] {0} lists no values")]
    NoValues(String),
    /// Both `[[vary]]` name the same parameter.
    #[error("sweep file: {0} is varied twice")]
    VariedTwice(String),
    /// Fewer than 2 seeds: no interval.
    #[error("sweep file: seeds = {0}: a sweep needs at least 2 seeds for its intervals")]
    TooFewSeeds(u32),
    /// A path names no parameter of the scenario.
    #[error(
        "sweep file: {0} names no scenario parameter (`ephemera-sim show-scenario` prints them)"
    )]
    UnknownPath(String),
    /// A path names what the sweep sets itself (`seed`, `scheme`).
    #[error("sweep file: {0} is set by the sweep itself: use `seeds` or `schemes`")]
    Reserved(String),
    /// A varied path names a section or an array, not one number.
    #[error("sweep file: {0} is not a number: a varied parameter is plotted on an axis")]
    NotANumber(String),
    /// The base scenario file cannot be read or is invalid.
    #[error("scenario {path}: {message}")]
    Scenario {
        /// The scenario file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A point's scenario is invalid (a value out of range or of the wrong type).
    #[error("point {point}: {message}")]
    Point {
        /// The point, as `path = value` pairs.
        point: String,
        /// What the scenario's checks said.
        message: String,
    },
    /// A run or an output failed.
    #[error(transparent)]
    Run(#[from] SimError),
}

/// A sweep file as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// The base scenario file, relative to the sweep file (absent: the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<PathBuf>,
    /// Seeds per point (at least 2): the scenario's seed, + 1, …
    pub seeds: u32,
    /// The schemes each point runs (empty: the scenario's scheme).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemes: Vec<SchemeName>,
    /// Fixed values by dotted path (nested tables are paths too; an empty table turns an
    /// optional section such as `interventions` on with its defaults).
    #[serde(default)]
    pub set: toml::Table,
    /// The varied parameters, one or two.
    #[serde(default)]
    pub vary: Vec<Vary>,
}

/// One varied parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vary {
    /// Its dotted path in the scenario's TOML.
    pub path: String,
    /// Its values, in the order they run.
    pub values: Vec<f64>,
}

/// One point of the grid: the varied values (in the order of the `[[vary]]`) and the
/// scenario they give.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The varied values.
    pub values: Vec<f64>,
    /// The point's scenario (validated), with the first seed.
    pub scenario: Scenario,
}

/// A checked sweep: the file, the schemes and every point's scenario.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The sweep file.
    pub file: SweepFile,
    /// The schemes each point runs.
    pub schemes: Vec<SchemeName>,
    /// Every point, the last `[[vary]]` varying fastest.
    pub points: Vec<Point>,
}

/// A point's figures across its seeds: per scheme and figure ([`seeds::aggregate`]).
pub type Aggregate = BTreeMap<&'static str, BTreeMap<&'static str, Interval>>;

/// The figures drawn, one plot each, and their axis titles (those a sweep has).
const HEADLINE: [(&str, &str); 5] = [
    ("notifications_per_uploader", "notifications per uploader"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("infections_averted", "infections averted"),
    (
        "infections_averted_share",
        "share of app-off infections averted",
    ),
];

/// Line colours, in turn.
const COLOURS: [RGBColor; 6] = [
    RGBColor(200, 30, 30),
    RGBColor(30, 70, 200),
    RGBColor(20, 140, 60),
    RGBColor(170, 40, 170),
    RGBColor(230, 130, 0),
    RGBColor(0, 150, 170),
];

impl SweepFile {
    /// Parses and checks a sweep file's structure (not yet its paths).
    ///
    /// # Errors
    /// [`SweepError`] naming what is wrong.
    pub fn from_toml(text: &str) -> Result<SweepFile, SweepError> {
        let file: SweepFile = toml::from_str(text).map_err(|e| SweepError::File(e.to_string()))?;
        file.check()?;
        Ok(file)
    }

    /// Checks the structure: 2 or more seeds, one or two `[[vary]]` of distinct paths,
    /// each with values.
    ///
    /// # Errors
    /// [`SweepError`] naming what is wrong.
    pub fn check(&self) -> Result<(), SweepError> {
        if self.seeds < 2 {
            return Err(SweepError::TooFewSeeds(self.seeds));
        }
        match self.vary.len() {
            0 => return Err(SweepError::NoVary),
            1 | 2 => {}
            n => return Err(SweepError::TooManyVaries(n)),
        }
        if let Some(v) = self.vary.iter().find(|v| v.values.is_empty()) {
            return Err(SweepError::NoValues(v.path.clone()));
        }
        if self.vary.len() == 2 && self.vary[0].path == self.vary[1].path {
            return Err(SweepError::VariedTwice(self.vary[0].path.clone()));
        }
        Ok(())
    }
}

/// `set`'s entries as (dotted path, value); an empty table is a leaf.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) if !t.is_empty() => flatten(&path, t, out),
            _ => out.push((path, value.clone())),
        }
    }
}

/// Sets `path` in `tree` (a serialised scenario) to `value`. A missing optional section
/// is first copied from `full` (the scenario with every optional section on); an integer
/// parameter takes a whole float as an integer.
fn set_path(
    tree: &mut toml::Value,
    full: &toml::Value,
    path: &str,
    value: toml::Value,
) -> Result<(), SweepError> {
    let unknown = || SweepError::UnknownPath(path.to_owned());
    if path == "seed" || path == "scheme" {
        return Err(SweepError::Reserved(path.to_owned()));
    }
    let mut here = tree;
    let mut defaults = Some(full);
    for key in path.split('.') {
        defaults = defaults.and_then(|d| match d {
            toml::Value::Table(t) => t.get(key),
            toml::Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        });
        here = match here {
            toml::Value::Table(t) => {
                if !t.contains_key(key) {
                    let default = defaults.ok_or_else(unknown)?;
                    t.insert(key.to_owned(), default.clone());
                }
                t.get_mut(key).ok_or_else(unknown)?
            }
            toml::Value::Array(a) => key
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get_mut(i))
                .ok_or_else(unknown)?,
            _ => return Err(unknown()),
        };
    }
    *here = match (&*here, value) {
        // An empty table only turns a section on.
        (toml::Value::Table(_), toml::Value::Table(t)) if t.is_empty() => return Ok(()),
        (toml::Value::Integer(_), toml::Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9e15 => {
            toml::Value::Integer(f as i64)
        }
        (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
        (_, value) => value,
    };
    Ok(())
}

/// Whether `path` names one number of `full` (a varied parameter must).
fn names_a_number(full: &toml::Value, path: &str) -> Result<(), SweepError> {
    let mut here = full;
    for key in path.split('.') {
        here = match here {
            toml::Value::Table(t) => t.get(key),
            toml::Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| SweepError::UnknownPath(path.to_owned()))?;
    }
    match here {
        toml::Value::Integer(_) | toml::Value::Float(_) => Ok(()),
        _ => Err(SweepError::NotANumber(path.to_owned())),
    }
}

/// `path = value` pairs naming a point.
fn describe(file: &SweepFile, values: &[f64]) -> String {
    file.vary
        .iter()
        .zip(values)
        .map(|(v, x)| format!("{} = {x}", v.path))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Sweep {
    /// Reads the sweep file at `path` and its base scenario, and checks every point.
    ///
    /// # Errors
    /// [`SweepError`] naming the file, the path or the point that is wrong.
    pub fn read(path: &Path) -> Result<Sweep, SweepError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SweepError::File(format!("{}: {e}", path.display())))?;
        let file = SweepFile::from_toml(&text)?;
        let base = match &file.scenario {
            None => Scenario::default(),
            Some(relative) => {
                let scenario_path = path.parent().unwrap_or(Path::new(".")).join(relative);
                let error = |message: String| SweepError::Scenario {
                    path: scenario_path.display().to_string(),
                    message,
                };
                let text =
                    std::fs::read_to_string(&scenario_path).map_err(|e| error(e.to_string()))?;
                Scenario::from_toml(&text).map_err(|e| error(e.to_string()))?
            }
        };
        Sweep::new(file, &base)
    }

    /// Checks `file` ([`SweepFile::check`]), builds every point on `base` and checks its
    /// scenario.
    ///
    /// # Errors
    /// [`SweepError`] naming the path or the point that is wrong.
    pub fn new(file: SweepFile, base: &Scenario) -> Result<Sweep, SweepError> {
        file.check()?;
        let tree = toml::Value::try_from(base).expect("a scenario serialises");
        let full = toml::Value::try_from(Scenario {
            interventions: Some(base.interventions.clone().unwrap_or_default()),
            bystanders: Some(base.bystanders.clone().unwrap_or_default()),
            ..base.clone()
        })
        .expect("a scenario serialises");
        let mut fixed = tree;
        let mut set = Vec::new();
        flatten("", &file.set, &mut set);
        for (path, value) in set {
            set_path(&mut fixed, &full, &path, value)?;
        }
        for v in &file.vary {
            names_a_number(&full, &v.path)?;
        }
        let mut grid: Vec<Vec<f64>> = vec![Vec::new()];
        for v in &file.vary {
            grid = grid
                .into_iter()
                .flat_map(|head| {
                    v.values.iter().map(move |x| {
                        let mut point = head.clone();
                        point.push(*x);
                        point
                    })
                })
                .collect();
        }
        let points = grid
            .into_iter()
            .map(|values| {
                let mut tree = fixed.clone();
                for (v, x) in file.vary.iter().zip(&values) {
                    set_path(&mut tree, &full, &v.path, toml::Value::Float(*x))?;
                }
                let invalid = |message: String| SweepError::Point {
                    point: describe(&file, &values),
                    message,
                };
                let scenario: Scenario = tree.try_into().map_err(|e| invalid(e.to_string()))?;
                scenario.validate().map_err(|e| invalid(e.to_string()))?;
                Ok(Point { values, scenario })
            })
            .collect::<Result<Vec<_>, SweepError>>()?;
        let schemes = if file.schemes.is_empty() {
            vec![base.scheme]
        } else {
            file.schemes.clone()
        };
        Ok(Sweep {
            file,
            schemes,
            points,
        })
    }

    /// Runs every point across the seeds, writing each point's outputs (as `--seeds`
    /// does) into `out/point-K` and then `points.csv`, `points.json` and the plots into
    /// `out`, which must be new or empty. Returns each point's aggregate.
    ///
    /// # Errors
    /// [`SweepError::Run`] when `out` is used, a run fails or a file cannot be written.
    pub fn run(&self, options: &RunOptions, out: &Path) -> Result<Vec<Aggregate>, SweepError> {
        ensure_fresh(out)?;
        let mut aggregates = Vec::new();
        for (k, point) in self.points.iter().enumerate() {
            eprintln!(
                "ephemera-sim: point {k} of {} ({})",
                self.points.len(),
                describe(&self.file, &point.values)
            );
            let seeds = seeds::seed_list(point.scenario.seed, self.file.seeds);
            let dir = out.join(format!("point-{k}"));
            let summaries = seeds::run_seeds(
                &point.scenario,
                &self.schemes,
                &seeds,
                options,
                false,
                Some(&dir),
                &mut |_| {},
            )?;
            aggregates.push(seeds::aggregate(&summaries));
        }
        self.write(out, &aggregates)?;
        Ok(aggregates)
    }

    /// Writes `points.csv`, `points.json` and the plots of `aggregates` into `out`.
    fn write(&self, out: &Path, aggregates: &[Aggregate]) -> Result<(), SimError> {
        std::fs::create_dir_all(out).map_err(io_error(out))?;
        let path = out.join("points.csv");
        std::fs::write(&path, csv(self, aggregates)).map_err(io_error(&path))?;
        let first_seed = self.points[0].scenario.seed;
        let points: Vec<_> = self
            .points
            .iter()
            .zip(aggregates)
            .enumerate()
            .map(|(k, (p, a))| {
                let values: BTreeMap<&str, f64> = self
                    .file
                    .vary
                    .iter()
                    .map(|v| v.path.as_str())
                    .zip(p.values.iter().copied())
                    .collect();
                serde_json::json!({ "point": k, "values": values, "aggregate": a })
            })
            .collect();
        let json = serde_json::json!({
            "interval": "95 % Student t interval of the mean across seeds: mean ± t(0.975, n − 1) · sd / √n",
            "sweep": self.file,
            "schemes": self.schemes,
            "seeds": seeds::seed_list(first_seed, self.file.seeds),
            "provenance": Provenance::of_this_process(first_seed),
            "points": points,
        });
        let path = out.join("points.json");
        let text = serde_json::to_string_pretty(&json).expect("points serialise");
        std::fs::write(&path, text + "\n").map_err(io_error(&path))?;
        for (figure, title) in HEADLINE {
            if aggregates
                .iter()
                .all(|a| a.values().all(|f| f.contains_key(figure)))
            {
                plot(
                    &out.join(format!("{figure}.svg")),
                    self,
                    aggregates,
                    figure,
                    title,
                )?;
            }
        }
        Ok(())
    }
}

/// `points.csv`: one row per point, scheme and figure, with the varied values.
pub fn csv(sweep: &Sweep, aggregates: &[Aggregate]) -> String {
    let mut out = String::from("point");
    for v in &sweep.file.vary {
        let _ = write!(out, ",{}", v.path);
    }
    out.push_str(",scheme,figure,n,mean,sd,ci95_low,ci95_high\n");
    for (k, (point, aggregate)) in sweep.points.iter().zip(aggregates).enumerate() {
        for (scheme, figures) in aggregate {
            for (figure, i) in figures {
                let _ = write!(out, "{k}");
                for x in &point.values {
                    let _ = write!(out, ",{x}");
                }
                let _ = writeln!(
                    out,
                    ",{scheme},{figure},{},{},{},{},{}",
                    i.n, i.mean, i.sd, i.ci95_low, i.ci95_high
                );
            }
        }
    }
    out
}

/// The sweep as a Markdown table: per point and scheme, the headline figures' means
/// with their 95 % intervals.
pub fn table(sweep: &Sweep, aggregates: &[Aggregate]) -> String {
    let figures: Vec<&str> = ["notified"]
        .into_iter()
        .chain(HEADLINE.iter().map(|(f, _)| *f))
        .filter(|f| {
            aggregates
                .iter()
                .all(|a| a.values().all(|m| m.contains_key(f)))
        })
        .collect();
    let mut out = String::from("| point |");
    for v in &sweep.file.vary {
        let _ = write!(out, " {} |", v.path);
    }
    out.push_str(" scheme |");
    for f in &figures {
        let _ = write!(out, " {f} |");
    }
    out.push('\n');
    out.push_str(&"| --- ".repeat(2 + sweep.file.vary.len() + figures.len()));
    out.push_str("|\n");
    for (k, (point, aggregate)) in sweep.points.iter().zip(aggregates).enumerate() {
        for (scheme, by_figure) in aggregate {
            let _ = write!(out, "| {k} |");
            for x in &point.values {
                let _ = write!(out, " {x} |");
            }
            let _ = write!(out, " {scheme} |");
            for f in &figures {
                let i = &by_figure[f];
                let _ = write!(
                    out,
                    " {:.3} ({:.3} – {:.3}) |",
                    i.mean, i.ci95_low, i.ci95_high
                );
            }
            out.push('\n');
        }
    }
    out
}

/// One line of a plot: its label and (x, mean, low, high) points in x order.
type Band = (String, Vec<(f64, f64, f64, f64)>);

/// The lines of `figure`: one per scheme, and per value of the second varied parameter.
fn bands(sweep: &Sweep, aggregates: &[Aggregate], figure: &str) -> Vec<Band> {
    let mut lines: BTreeMap<(usize, usize), Band> = BTreeMap::new();
    let seconds: Vec<f64> = sweep
        .file
        .vary
        .get(1)
        .map_or(vec![0.0], |v| v.values.clone());
    for (point, aggregate) in sweep.points.iter().zip(aggregates) {
        let second = seconds
            .iter()
            .position(|x| point.values.get(1).is_none_or(|y| y == x))
            .unwrap_or(0);
        for (s, scheme) in sweep.schemes.iter().enumerate() {
            let Some(i) = aggregate.get(scheme.as_str()).and_then(|f| f.get(figure)) else {
                continue;
            };
            let line = lines.entry((second, s)).or_insert_with(|| {
                let label = match sweep.file.vary.get(1) {
                    Some(v) => format!("{}, {} = {}", scheme.as_str(), v.path, seconds[second]),
                    None => scheme.as_str().to_owned(),
                };
                (label, Vec::new())
            });
            line.1
                .push((point.values[0], i.mean, i.ci95_low, i.ci95_high));
        }
    }
    let mut lines: Vec<Band> = lines.into_values().collect();
    for (_, points) in &mut lines {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

/// Draws `figure` against the first varied parameter: a line per [`bands`] entry with a
/// shaded 95 % band; the y axis fits the data and starts at zero unless a value is below.
fn plot(
    path: &Path,
    sweep: &Sweep,
    aggregates: &[Aggregate],
    figure: &str,
    title: &str,
) -> Result<(), SimError> {
    let lines = bands(sweep, aggregates, figure);
    let all = lines.iter().flat_map(|(_, p)| p.iter());
    let (x_lo, x_hi, y_lo, y_hi) = all.fold(
        (f64::INFINITY, f64::NEG_INFINITY, 0.0_f64, 0.0_f64),
        |(a, b, c, d), p| (a.min(p.0), b.max(p.0), c.min(p.2), d.max(p.3)),
    );
    let x_hi = if x_hi > x_lo { x_hi } else { x_lo + 1.0 };
    let y_hi = if y_hi > y_lo { y_hi * 1.1 } else { y_lo + 1.0 };
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{title} by {} (mean, 95 % interval)",
                sweep.file.vary[0].path
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(plot_error(path))?;
    chart
        .configure_mesh()
        .x_desc(sweep.file.vary[0].path.as_str())
        .y_desc(title)
        .draw()
        .map_err(plot_error(path))?;
    for (n, (label, points)) in lines.into_iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let band: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.0, p.3))
            .chain(points.iter().rev().map(|p| (p.0, p.2)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                band,
                colour.mix(0.18).filled(),
            )))
            .map_err(plot_error(path))?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.1)),
                colour.stroke_width(2),
            ))
            .map_err(plot_error(path))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 3, colour.filled())),
            )
            .map_err(plot_error(path))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_error(path))?;
    root.present().map_err(plot_error(path))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const GOOD: &str = "seeds = 3\nschemes = [\"gaen\"]\n[set]\nagents = 500\n\
                        [set.interventions]\n[[vary]]\npath = \"population.app_uptake\"\n\
                        values = [0.2, 0.6]\n";

    fn sweep(text: &str) -> Result<Sweep, SweepError> {
        Sweep::new(SweepFile::from_toml(text)?, &Scenario::default())
    }

    #[test]
    fn a_sweep_sets_its_values_and_turns_a_section_on() {
        let s = sweep(GOOD).unwrap();
        assert_eq!(s.points.len(), 2);
        assert_eq!(s.schemes, [SchemeName::Gaen]);
        for (p, uptake) in s.points.iter().zip([0.2, 0.6]) {
            assert_eq!(p.values, [uptake]);
            assert_eq!(p.scenario.population.app_uptake, uptake);
            assert_eq!(p.scenario.agents, 500);
            assert_eq!(
                p.scenario.interventions,
                Some(crate::scenario::InterventionConfig::default())
            );
            assert_eq!(p.scenario.seed, Scenario::default().seed);
        }
    }

    #[test]
    fn two_parameters_make_a_grid_and_reach_into_sections_and_arrays() {
        let s = sweep(
            "seeds = 2\n[set]\ninterventions.quarantine_compliance_traced_positive = 0.5\n\
             [[vary]]\npath = \"agents\"\nvalues = [300, 400, 500]\n\
             [[vary]]\npath = \"detection.attenuation_thresholds_db.2\"\nvalues = [66, 73]\n",
        )
        .unwrap();
        let grid: Vec<(u32, u8)> = s
            .points
            .iter()
            .map(|p| {
                (
                    p.scenario.agents,
                    p.scenario.detection.attenuation_thresholds_db[2],
                )
            })
            .collect();
        assert_eq!(
            grid,
            [
                (300, 66),
                (300, 73),
                (400, 66),
                (400, 73),
                (500, 66),
                (500, 73)
            ]
        );
        let i = s.points[0].scenario.interventions.as_ref().unwrap();
        assert_eq!(i.quarantine_compliance_traced_positive, 0.5);
        assert_eq!(s.schemes, [Scenario::default().scheme]);
    }

    #[test]
    fn bad_sweep_files_are_refused_with_what_is_wrong() {
        let vary = "[[vary]]\npath = \"agents\"\nvalues = [300]\n";
        let cases: [(String, &str); 11] = [
            ("seeds = 3\n".to_owned(), "no [[vary]]"),
            (format!("seeds = 3\n{vary}{vary}{vary}"), "3 [[vary]]"),
            (format!("seeds = 3\n{vary}{vary}"), "agents is varied twice"),
            (
                "seeds = 3\n[[vary]]\npath = \"agents\"\nvalues = []\n".to_owned(),
                "agents lists no values",
            ),
            (format!("seeds = 1\n{vary}"), "at least 2 seeds"),
            (format!("seeds = \"ten\"\n{vary}"), "invalid type"),
            (
                "seeds = 3\n[[vary]]\npath = \"agents\"\nvalues = [\"many\"]\n".to_owned(),
                "invalid type",
            ),
            (
                format!("seeds = 3\nschemes = [\"rsa\"]\n{vary}"),
                "unknown variant",
            ),
            (format!("seeds = 3\nseed = 4\n{vary}"), "unknown field"),
            (vary.to_owned(), "missing field `seeds`"),
            ("seeds = [".to_owned(), "line 1"),
        ];
        for (text, expected) in cases {
            let err = sweep(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_path_that_names_no_parameter_is_refused_by_name() {
        let vary = |path: &str, values: &str| {
            sweep(&format!(
                "seeds = 2\n[[vary]]\npath = \"{path}\"\nvalues = {values}\n"
            ))
            .unwrap_err()
            .to_string()
        };
        for path in [
            "population.app_uptak",
            "populations.app_uptake",
            "agents.count",
            "detection.attenuation_thresholds_db.3",
            "",
        ] {
            let err = vary(path, "[0.5]");
            assert!(
                err.contains(&format!("{path} names no scenario parameter")),
                "{err}"
            );
        }
        assert!(vary("seed", "[1]").contains("use `seeds`"));
        assert!(vary("population", "[1]").contains("is not a number"));
        assert!(vary("detection.attenuation_thresholds_db", "[1]").contains("is not a number"));
        assert!(vary("detection.upload_all_encounters", "[1]").contains("is not a number"));
        let set = sweep("seeds = 2\n[set]\nepidemic.r_nought = 2\n[[vary]]\npath = \"agents\"\nvalues = [300]\n")
            .unwrap_err()
            .to_string();
        assert!(
            set.contains("epidemic.r_nought names no scenario parameter"),
            "{set}"
        );
    }

    #[test]
    fn a_value_out_of_range_or_of_the_wrong_type_names_its_point() {
        let err =
            sweep("seeds = 2\n[[vary]]\npath = \"population.app_uptake\"\nvalues = [0.5, 1.5]\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("population.app_uptake = 1.5"), "{err}");
        assert!(err.contains("app_uptake must be in 0..=1"), "{err}");
        let err = sweep("seeds = 2\n[[vary]]\npath = \"agents\"\nvalues = [300.5]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("point agents = 300.5"), "{err}");
        let err =
            sweep("seeds = 2\n[set]\nagents = \"many\"\n[[vary]]\npath = \"days\"\nvalues = [2]\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn the_csv_has_a_row_per_point_scheme_and_figure() {
        let s = sweep(GOOD).unwrap();
        let interval = |mean: f64| Interval::of(&[mean - 1.0, mean + 1.0]).unwrap();
        let aggregates: Vec<Aggregate> = [1.0, 2.0]
            .iter()
            .map(|m| {
                BTreeMap::from([(
                    "gaen",
                    BTreeMap::from([("notified", interval(*m)), ("precision", interval(*m))]),
                )])
            })
            .collect();
        let csv = csv(&s, &aggregates);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "point,population.app_uptake,scheme,figure,n,mean,sd,ci95_low,ci95_high"
        );
        assert_eq!(lines.len(), 1 + 2 * 2);
        assert!(lines[3].starts_with("1,0.6,gaen,notified,2,2,"), "{csv}");
        let table = table(&s, &aggregates);
        assert!(table.contains("| 1 | 0.6 | gaen | 2.000 ("), "{table}");
    }

    proptest! {
        #[test]
        fn any_text_is_a_sweep_or_an_error_never_a_panic(text in "\\PC{0,200}") {
            let _ = sweep(&text);
        }

        #[test]
        fn any_vary_section_is_a_sweep_or_an_error_never_a_panic(
            path in "[a-z_.0-9]{0,40}",
            values in proptest::collection::vec(-1e3f64..1e3, 0..4),
            seeds in 0u32..4,
        ) {
            let values: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            let text = format!(
                "seeds = {seeds}\n[[vary]]\npath = \"{path}\"\nvalues = [{}]\n",
                values.join(", ")
            );
            let _ = sweep(&text);
        }
    }
}
