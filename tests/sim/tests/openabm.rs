//! The outside check against OpenABM-Covid19 (issue 19, item 4): the shipped scenario says
//! what the parameter table of docs/SIMULATION.md says, and a run without phones may last a
//! whole epidemic.

use ephemera_sim::{RunOptions, Scenario, run_with};

const SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scenarios/openabm-baseline.toml"
);
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/SIMULATION.md");
const SECTION: &str = "## Outside check: OpenABM-Covid19";

fn scenario() -> Scenario {
    let text = std::fs::read_to_string(SCENARIO).expect("openabm-baseline.toml");
    Scenario::from_toml(&text).expect("openabm-baseline.toml parses")
}

/// The `` `key` = value `` settings of the ephemera-sim column (the third) of the
/// section's parameter table; several in one cell are separated by "; ".
fn documented_settings() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(DOC).expect("SIMULATION.md");
    let start = doc.find(SECTION).expect("the OpenABM section");
    let section = &doc[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let table = section
        .split("\n\n")
        .find(|block| block.trim_start().starts_with("| quantity | OpenABM"))
        .expect("the parameter table");
    let mut settings = Vec::new();
    for row in table.lines().skip(2) {
        let cell = row.split(" | ").nth(2).expect("three columns");
        for part in cell.trim_end_matches(" |").split("; ") {
            let Some((key, value)) = part.split_once(" = ") else {
                continue;
            };
            let key = key.trim().trim_matches('`');
            settings.push((key.to_owned(), value.trim().to_owned()));
        }
    }
    settings
}

#[test]
fn the_openabm_scenario_says_what_the_docs_table_says() {
    let scenario = scenario();
    scenario.validate().expect("valid");
    let effective = toml::Value::try_from(&scenario).expect("serialises");
    let settings = documented_settings();
    assert!(settings.len() >= 15, "{settings:?}");
    for (key, value) in settings {
        let mut actual = &effective;
        for part in key.split('.') {
            actual = actual
                .get(part)
                .unwrap_or_else(|| panic!("the table names `{key}`, which no scenario has"));
        }
        let documented: toml::Table =
            toml::from_str(&format!("v = {value}")).expect("a TOML value");
        assert_eq!(actual, &documented["v"], "`{key}`: the table says {value}");
    }
}

#[test]
fn an_epidemic_without_phones_runs_past_28_days() {
    let mut s = scenario();
    s.agents = 3_000;
    s.days = 40;
    s.epidemic.initial_infected = 0.003;
    let options = RunOptions {
        threads: Some(2),
        progress: false,
        gaen_found: None,
        line_lists: false,
    };
    let run = run_with(&s, &options).expect("run");
    assert_eq!(run.summary.app_users, 0);
    assert_eq!(run.daily.len(), 40);
    assert_eq!(
        run.daily.last().map(|d| d.cumulative_infected),
        Some(run.summary.infected)
    );
    // R0 about 3: a handful of cases become a large share of the town within 40 days.
    assert!(run.summary.infected > 600, "{}", run.summary.infected);
    s.population.app_uptake = 0.01;
    assert!(s.validate().is_err(), "phones keep the 28-day bound");
}
