//! Every run folder holds its effective scenario, the version, commit, seed and command
//! line, and a run never overwrites another (issue 26, item 5).

use std::path::PathBuf;
use std::process::Command;

use ephemera_sim::{Scenario, SchemeName};

/// A fresh, missing folder under the system's temporary folder.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ephemera-sim-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_binary_writes_its_effective_scenario_and_provenance_and_never_overwrites() {
    let base = scratch("provenance");
    let scenario_file = base.join("in.toml");
    std::fs::create_dir_all(&base).unwrap();
    // A scenario file that sets a few knobs; the flags override others.
    let mut input = Scenario::tiny(300, 2, 5, SchemeName::Gaen);
    input.detection.attenuation_thresholds_db = [50, 60, 70];
    input.epidemic.beta = 0.011;
    std::fs::write(&scenario_file, input.to_toml()).unwrap();
    let out = base.join("run");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_ephemera-sim"))
            .arg("--scenario")
            .arg(&scenario_file)
            .args(["--seed", "9", "--uptake", "0.7", "--threads", "2", "--out"])
            .arg(&out)
            .output()
            .expect("runs")
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    // The effective scenario: the file's knobs, the flags' overrides, every default.
    let written = std::fs::read_to_string(out.join("scenario.toml")).unwrap();
    let effective = Scenario::from_toml(&written).expect("scenario.toml reads back");
    let expected = Scenario {
        seed: 9,
        population: ephemera_sim::scenario::PopulationConfig {
            app_uptake: 0.7,
            ..input.population.clone()
        },
        ..input.clone()
    };
    assert_eq!(effective, expected);
    assert!(
        written.starts_with("# Written by ephemera-sim "),
        "{written}"
    );
    assert!(written.contains("--uptake 0.7"), "{written}");

    // summary.json records the provenance and every parameter.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let provenance = &summary["provenance"];
    assert_eq!(provenance["seed"], 9);
    assert_eq!(provenance["version"], env!("CARGO_PKG_VERSION"));
    assert!(provenance["commit"].as_str().is_some_and(|c| !c.is_empty()));
    let command: Vec<&str> = provenance["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        command.windows(2).any(|w| w == ["--seed", "9"]),
        "{command:?}"
    );
    let s = &summary["scenario"];
    assert_eq!(s["population"]["app_uptake"], 0.7);
    assert_eq!(
        s["detection"]["attenuation_thresholds_db"],
        serde_json::json!([50, 60, 70])
    );
    assert_eq!(s["detection"]["minimum_daily_score"], 900.0);
    assert_eq!(s["epidemic"]["beta"], 0.011);
    assert_eq!(s["radio"]["tx_power_dbm"], expected.radio.tx_power_dbm);
    assert_eq!(summary["seed"], 9);

    // A second run into the same folder is refused before it starts, and leaves the first
    // run's files as they were.
    let before = std::fs::read(out.join("summary.json")).unwrap();
    let second = run();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("never overwrites"), "{stderr}");
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), before);
    std::fs::remove_dir_all(&base).unwrap();
}
