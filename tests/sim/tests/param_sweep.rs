//! `ephemera-sim sweep` varies one or two scenario parameters and aggregates every point
//! across seeds (issue 26, item 4).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ephemera_sim::param_sweep::Sweep;

/// A fresh folder for one test.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ephemera-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sim(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ephemera-sim"));
    command.args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    command.output().expect("runs")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A small town in which many people test and upload.
const EAGER: &str = "[epidemic]\ninitial_infected = 0.02\n[testing]\nsymptomatic_tested = 1.0\n\
                     asymptomatic_tested = 1.0\nupload_consent = 1.0\ndelay_days = [0.2, 0.5]\n";

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A column of a `seeds.csv`, in row order.
fn column(csv: &str, name: &str) -> Vec<f64> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| l.split(',').nth(i).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn an_uptake_sweep_is_the_seeds_run_of_each_point_and_notifies_more_with_more_uptake() {
    let dir = folder("sweep-uptake");
    std::fs::write(dir.join("eager.toml"), EAGER).unwrap();
    let plan = dir.join("uptake.toml");
    std::fs::write(
        &plan,
        "scenario = \"eager.toml\"\nseeds = 2\nschemes = [\"gaen\"]\n[set]\nagents = 1000\n\
         days = 5\n[set.interventions]\n[[vary]]\npath = \"population.app_uptake\"\n\
         values = [0.3, 0.8]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let args = ["sweep", "--threads", "2"];
    let stdout = ok(&sim(&args, &[("--plan", &plan), ("--out", &out)]));
    assert!(stdout.contains("| 1 | 0.8 | gaen |"), "{stdout}");

    // One row per point, scheme and figure: the figures of each point's seeds.csv.
    let seeds_csv = |k: usize| std::fs::read_to_string(out.join(format!("point-{k}/seeds.csv")));
    let figures = seeds_csv(0)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split(',')
        .count()
        - 2;
    assert!(figures > 20, "interventions add the impact figures");
    let points = std::fs::read_to_string(out.join("points.csv")).unwrap();
    let rows: Vec<&str> = points.lines().skip(1).collect();
    assert_eq!(rows.len(), 2 * figures, "{points}");
    for (k, uptake) in [(0, "0.3"), (1, "0.8")] {
        let prefix = format!("{k},{uptake},gaen,");
        assert_eq!(
            rows.iter().filter(|r| r.starts_with(&prefix)).count(),
            figures
        );
    }

    // The same point as a plain `--seeds` run: the same aggregate, figure by figure.
    let seeds_out = dir.join("seeds");
    ok(&sim(
        &[
            "--agents",
            "1000",
            "--days",
            "5",
            "--uptake",
            "0.8",
            "--scheme",
            "gaen",
            "--interventions",
            "--seeds",
            "2",
            "--threads",
            "2",
        ],
        &[
            ("--scenario", &dir.join("eager.toml")),
            ("--out", &seeds_out),
        ],
    ));
    let plain = &json(&seeds_out.join("summary.json"))["aggregate"];
    let point = &json(&out.join("point-1/summary.json"))["aggregate"];
    assert_eq!(plain, point);
    let all = json(&out.join("points.json"));
    assert_eq!(&all["points"][1]["aggregate"], plain);
    assert_eq!(all["points"][1]["values"]["population.app_uptake"], 0.8);
    assert_eq!(all["seeds"], serde_json::json!([1, 2]));
    for row in rows.iter().filter(|r| r.starts_with("1,0.8,gaen,")) {
        let cells: Vec<&str> = row.split(',').collect();
        let mean: f64 = cells[5].parse().unwrap();
        assert_eq!(
            plain["gaen"][cells[3]]["mean"].as_f64().unwrap(),
            mean,
            "{row}"
        );
    }

    // Paired seeds: each seed notifies more at 80 % uptake than at 30 %.
    let low = column(&seeds_csv(0).unwrap(), "notified");
    let high = column(&seeds_csv(1).unwrap(), "notified");
    assert_eq!(low.len(), 2);
    assert!(
        low.iter().zip(&high).all(|(l, h)| h > l),
        "{low:?} {high:?}"
    );
    assert!(high.iter().all(|h| *h > 0.0));

    // A plot with a band per headline figure.
    for figure in [
        "precision",
        "recall",
        "notifications_per_uploader",
        "infections_averted",
        "infections_averted_share",
    ] {
        let svg = std::fs::read_to_string(out.join(format!("{figure}.svg"))).unwrap();
        assert!(svg.contains("<polygon"), "{figure}: a 95 % band");
        assert!(svg.contains("population.app_uptake"), "{figure}");
    }

    // Never over an earlier sweep.
    let again = sim(&args, &[("--plan", &plan), ("--out", &out)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_two_parameter_sweep_covers_the_grid_for_each_scheme() {
    let dir = folder("sweep-grid");
    let plan = dir.join("grid.toml");
    std::fs::write(
        &plan,
        "seeds = 2\nschemes = [\"gaen\", \"pet\"]\n[set]\nagents = 300\ndays = 2\n\
         [[vary]]\npath = \"population.app_uptake\"\nvalues = [0.5, 1.0]\n\
         [[vary]]\npath = \"detection.attenuation_thresholds_db.2\"\nvalues = [66, 73]\n",
    )
    .unwrap();
    let out = dir.join("out");
    ok(&sim(
        &["sweep", "--threads", "2"],
        &[("--plan", &plan), ("--out", &out)],
    ));
    let points = std::fs::read_to_string(out.join("points.csv")).unwrap();
    assert!(points.starts_with(
        "point,population.app_uptake,detection.attenuation_thresholds_db.2,scheme,figure,"
    ));
    let grid = [(0, "0.5,66"), (1, "0.5,73"), (2, "1,66"), (3, "1,73")];
    for (k, values) in grid {
        for scheme in ["gaen", "pet"] {
            let row = format!("{k},{values},{scheme},notified,2,");
            assert!(points.contains(&row), "{row} in {points}");
            for seed in [1, 2] {
                let summary = out.join(format!("point-{k}/seed-{seed}/{scheme}/summary.json"));
                let threshold =
                    &json(&summary)["scenario"]["detection"]["attenuation_thresholds_db"];
                assert_eq!(threshold[2].to_string(), values.split(',').nth(1).unwrap());
            }
        }
    }
    assert!(!out.join("point-4").exists());
    // One line (and band) per scheme and threshold.
    let svg = std::fs::read_to_string(out.join("recall.svg")).unwrap();
    for label in [
        "gaen, detection.attenuation_thresholds_db.2 = 66",
        "pet, detection.attenuation_thresholds_db.2 = 73",
    ] {
        assert!(svg.contains(label), "{label}");
    }
    assert_eq!(svg.matches("<polygon").count(), 4);
    assert!(
        !out.join("infections_averted.svg").exists(),
        "no interventions"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_paths_and_bad_files_are_refused_before_any_run() {
    let dir = folder("sweep-bad");
    let cases = [
        (
            "seeds = 2\n[[vary]]\npath = \"population.app_uptak\"\nvalues = [0.5]\n",
            "population.app_uptak names no scenario parameter",
        ),
        (
            "seeds = 2\n[set]\ninterventions.quarantine_complience = 0.5\n\
             [[vary]]\npath = \"agents\"\nvalues = [300]\n",
            "interventions.quarantine_complience names no scenario parameter",
        ),
        (
            "seeds = 2\n[[vary]]\npath = \"days\"\nvalues = [2, 40]\n",
            "point days = 40",
        ),
        (
            "seeds = 1\n[[vary]]\npath = \"days\"\nvalues = [2]\n",
            "at least 2 seeds",
        ),
        ("seeds = 2\n", "no [[vary]]"),
        (
            "scenario = \"missing.toml\"\nseeds = 2\n[[vary]]\npath = \"days\"\nvalues = [2]\n",
            "missing.toml",
        ),
    ];
    for (n, (text, expected)) in cases.iter().enumerate() {
        let plan = dir.join(format!("bad-{n}.toml"));
        std::fs::write(&plan, text).unwrap();
        let out = dir.join(format!("out-{n}"));
        let run = sim(&["sweep"], &[("--plan", &plan), ("--out", &out)]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{text}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
        assert!(!stderr.contains("people,"), "nothing ran: {stderr}");
        assert!(!out.exists(), "nothing written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_shipped_sweep_files_are_valid() {
    let sweeps = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps");
    let adoption = Sweep::read(&sweeps.join("adoption.toml")).unwrap();
    assert_eq!(adoption.points.len(), 6);
    assert_eq!(adoption.schemes.len(), 2);
    assert!(
        adoption
            .points
            .iter()
            .all(|p| p.scenario.interventions.is_some())
    );
    let compliance = Sweep::read(&sweeps.join("adoption-compliance.toml")).unwrap();
    assert_eq!(compliance.points.len(), 8);
    let mut files = 0;
    for entry in std::fs::read_dir(&sweeps).unwrap() {
        Sweep::read(&entry.unwrap().path()).unwrap();
        files += 1;
    }
    assert!(files >= 2);
}
