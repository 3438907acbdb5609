//! Interventions that feed back into transmission, and the infections the app averted
//! against the app-off counterfactual (issue 26, item 1).

use ephemera_sim::interventions::{Impact, app_off};
use ephemera_sim::population::Population;
use ephemera_sim::scenario::InterventionConfig;
use ephemera_sim::{RunOptions, Scenario, SchemeName, Summary, run_with};

/// A small town with an epidemic that grows over two weeks, most people on the app and
/// every positive tested quickly and uploading.
fn town(interventions: InterventionConfig) -> Scenario {
    let mut s = Scenario::tiny(600, 10, 5, SchemeName::Gaen).with_eager_testing(0.03);
    s.population.app_uptake = 0.8;
    s.epidemic.beta *= 2.0;
    s.interventions = Some(interventions);
    s
}

fn run(scenario: &Scenario, threads: usize) -> Summary {
    let options = RunOptions {
        threads: Some(threads),
        progress: false,
        gaen_found: None,
        line_lists: false,
    };
    let mut summary = run_with(scenario, &options).expect("run").summary;
    summary.wall_seconds = 0.0;
    summary.peak_rss_bytes = None;
    summary
}

fn impact(summary: &Summary) -> &Impact {
    summary
        .impact
        .as_ref()
        .expect("a run with interventions has an impact")
}

/// The app-off epidemic of `scenario`, without phones: people infected by the end.
fn infected_app_off(scenario: &Scenario) -> usize {
    let config = scenario.interventions.as_ref().expect("interventions");
    app_off(config, scenario, &Population::build(scenario))
        .0
        .total_infected()
}

#[test]
fn tracing_averts_infections_against_the_same_town_with_the_app_off() {
    let scenario = town(InterventionConfig::default());
    let summary = run(&scenario, 2);
    let i = impact(&summary);
    assert!(
        i.uploaders > 0 && i.quarantined_on_notification > 0,
        "{i:?}"
    );
    assert!(i.traced_tests > 0 && i.traced_positives > 0, "{i:?}");
    assert!(i.infections_averted > 0, "{i:?}");
    assert!(i.r_app < i.r_app_off && i.r_reduction > 0.0, "{i:?}");
    assert_eq!(i.infected_app, summary.infected);
    assert!(i.averted_per_consenting_index_case > 0.0, "{i:?}");

    // The counterfactual is the very run with nobody on the app: same people, contacts,
    // seed and interventions.
    let mut off = scenario.clone();
    off.population.app_uptake = 0.0;
    let off = run(&off, 1);
    assert_eq!(off.infected, i.infected_app_off);
    assert_eq!(impact(&off).infections_averted, 0);

    // The thread count changes nothing, interventions included.
    assert_eq!(summary, run(&scenario, 1));
}

#[test]
fn with_every_compliance_zero_the_epidemic_is_the_one_without_interventions() {
    let scenario = town(InterventionConfig::none_comply());
    let summary = run(&scenario, 2);
    let i = impact(&summary);
    assert!(
        summary.notified > 0,
        "notifications that nobody acts on: {summary:?}"
    );
    assert_eq!(
        (i.infected_app, i.infections_averted),
        (i.infected_app_off, 0)
    );
    assert_eq!((i.person_days_home_app, i.person_days_home_app_off), (0, 0));
    let without = Scenario {
        interventions: None,
        ..scenario.clone()
    };
    let plain = run(&without, 2);
    assert_eq!(plain.infected, summary.infected);
    assert!(plain.impact.is_none());
}

#[test]
fn isolation_of_positives_alone_reduces_infections() {
    let none = town(InterventionConfig::none_comply());
    let isolate = town(InterventionConfig {
        quarantine_compliance_positive: 1.0,
        quarantine_household_on_positive: false,
        ..InterventionConfig::none_comply()
    });
    let (before, after) = (infected_app_off(&none), infected_app_off(&isolate));
    assert!(after < before, "isolating positives: {after} vs {before}");
    // Their households too: fewer still.
    let households = town(InterventionConfig {
        quarantine_compliance_positive: 1.0,
        quarantine_compliance_traced_positive: 1.0,
        quarantine_household_on_positive: true,
        ..InterventionConfig::none_comply()
    });
    assert!(infected_app_off(&households) < after);
}

#[test]
fn quarantine_of_length_zero_without_tests_averts_nothing_beyond_isolation() {
    let scenario = town(InterventionConfig {
        quarantine_length_traced_positive: 0,
        test_on_traced: false,
        ..InterventionConfig::default()
    });
    let i = run(&scenario, 2).impact.expect("impact");
    assert!(i.quarantined_on_notification > 0, "{i:?}");
    assert!(
        i.person_days_home_app_off > 0,
        "positives still isolate: {i:?}"
    );
    assert_eq!(i.infected_app, i.infected_app_off, "{i:?}");
    assert_eq!(i.infections_averted, 0);
}

#[test]
fn seeds_report_the_impact_with_intervals_and_plain_runs_leave_it_out() {
    let out =
        std::env::temp_dir().join(format!("ephemera-sim-interventions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let sim = |extra: &[&str], dir: &std::path::Path| {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_ephemera-sim"))
            .args(["--agents", "300", "--days", "3", "--seed", "3"])
            .args(["--scheme", "gaen", "--threads", "2", "--seeds", "2"])
            .args(extra)
            .arg("--out")
            .arg(dir)
            .output()
            .expect("runs");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    let stdout = sim(&["--interventions"], &out.join("on"));
    assert!(
        stdout.contains("| gaen | infections_averted | 2 |"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out.join("on/seeds.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for column in [
        "infected_app_off",
        "infections_averted",
        "r_app",
        "r_app_off",
    ] {
        assert!(header.split(',').any(|c| c == column), "{header}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("on/summary.json")).unwrap())
            .unwrap();
    let averted = &json["aggregate"]["gaen"]["infections_averted"];
    assert!(averted["ci95_low"].as_f64().unwrap() <= averted["mean"].as_f64().unwrap());
    let seed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("on/seed-3/summary.json")).unwrap())
            .unwrap();
    assert_eq!(seed["impact"]["horizon_days"], 3);
    assert!(seed["scenario"]["interventions"].is_object());

    let stdout = sim(&[], &out.join("off"));
    assert!(!stdout.contains("infections_averted"), "{stdout}");
    let seed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("off/seed-3/summary.json")).unwrap(),
    )
    .unwrap();
    assert!(seed.get("impact").is_none() && seed["scenario"].get("interventions").is_none());
    let csv = std::fs::read_to_string(out.join("off/seeds.csv")).unwrap();
    assert!(!csv.contains("infections_averted"), "{csv}");
    let _ = std::fs::remove_dir_all(&out);
}
