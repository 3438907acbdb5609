//! `--seeds N` runs a scenario across seeds in one process and aggregates them with 95 %
//! t intervals (issue 26, item 4).

use std::process::Command;

use ephemera_sim::Scenario;

#[test]
fn seeds_run_one_after_another_and_aggregate_with_intervals() {
    let out = std::env::temp_dir().join(format!("ephemera-sim-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let sim = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ephemera-sim"))
            .args([
                "--agents",
                "300",
                "--days",
                "2",
                "--seed",
                "3",
                "--threads",
                "2",
            ])
            .args(["--scheme", "both", "--sniffers", "2"])
            .args(extra)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("runs")
    };
    let one = sim(&["--seeds", "1"]);
    assert!(!one.status.success(), "one seed is refused");
    assert!(String::from_utf8_lossy(&one.stderr).contains("at least 2 seeds"));

    let run = sim(&["--seeds", "3"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("| gaen | notified | 3 |"), "{stdout}");

    // Each seed's own folder, with its own seed in its scenario.
    let mut notified: Vec<f64> = Vec::new();
    for seed in 3..=5u64 {
        for scheme in ["gaen", "pet"] {
            let dir = out.join(format!("seed-{seed}")).join(scheme);
            let toml = std::fs::read_to_string(dir.join("scenario.toml")).unwrap();
            assert_eq!(Scenario::from_toml(&toml).unwrap().seed, seed);
            let summary: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                    .unwrap();
            if scheme == "gaen" {
                notified.push(summary["notified"].as_f64().unwrap());
            }
        }
    }

    let csv = std::fs::read_to_string(out.join("seeds.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 6, "{csv}");
    assert!(rows[0].starts_with("seed,scheme,infected,"), "{csv}");
    assert!(
        rows[1].starts_with("3,gaen,") && rows[6].starts_with("5,pet,"),
        "{csv}"
    );

    let aggregate: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(aggregate["seeds"], serde_json::json!([3, 4, 5]));
    let gaen = &aggregate["aggregate"]["gaen"]["notified"];
    let mean = notified.iter().sum::<f64>() / 3.0;
    assert!(
        (gaen["mean"].as_f64().unwrap() - mean).abs() < 1e-6,
        "{gaen}"
    );
    assert_eq!(gaen["n"], 3);
    let (low, high) = (
        gaen["ci95_low"].as_f64().unwrap(),
        gaen["ci95_high"].as_f64().unwrap(),
    );
    assert!(low <= mean && mean <= high, "{gaen}");
    assert!(aggregate["aggregate"]["pet"]["recall"]["n"] == 3);
    assert!(
        aggregate["interval"]
            .as_str()
            .unwrap()
            .contains("Student t")
    );
    assert_eq!(aggregate["provenance"]["seed"], 3);
    std::fs::remove_dir_all(&out).unwrap();
}
