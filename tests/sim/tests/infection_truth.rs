//! Truth by infection (issue 26, item 3): who the uploaders infected and whether they were
//! warned, the attack rate among the warned over a follow-up, and the share of all close
//! contacts of all positives (app or not) that were warned.

use std::collections::HashSet;

use ephemera_sim::{RunOptions, Scenario, SchemeName, Scored, Summary, run_with};

/// A small town with many uploads: every positive tested quickly and uploading.
fn town(uptake: f64) -> Scenario {
    let mut s = Scenario::tiny(800, 10, 6, SchemeName::Gaen).with_eager_testing(0.04);
    s.population.app_uptake = uptake;
    s
}

fn scored(scenario: &Scenario) -> Scored {
    let options = RunOptions {
        threads: Some(2),
        progress: false,
        gaen_found: None,
        line_lists: false,
    };
    run_with(scenario, &options).expect("run")
}

fn run(scenario: &Scenario) -> Summary {
    scored(scenario).summary
}

#[test]
fn infectees_of_uploaders_are_counted_with_and_without_the_app() {
    let everyone = run(&town(1.0));
    let t = &everyone.infection_truth;
    assert!(
        t.uploader_infectees > 0 && t.infectees_notified > 0,
        "{t:?}"
    );
    // Everyone has the app: recall by infection is coverage of the infectees.
    assert_eq!(t.infectees_with_app, t.uploader_infectees);
    assert_eq!(t.infection_recall, t.infectee_coverage);

    let half = run(&town(0.5));
    let t = &half.infection_truth;
    assert!(t.infectees_with_app < t.uploader_infectees, "{t:?}");
    assert!(t.infectees_notified <= t.infectees_with_app);
    // Infectees without the app cannot be warned: coverage is below recall.
    assert!(t.infectee_coverage < t.infection_recall, "{t:?}");
    // So are the contacts of positives without the app, and of positives who did not
    // upload: population coverage is below the recall among app pairs.
    assert!(t.contacts_of_positives > half.close_contacts_true, "{t:?}");
    assert!(t.population_coverage < half.recall, "{t:?} {}", half.recall);
}

#[test]
fn the_attack_rate_among_the_notified_counts_each_person_once_over_a_whole_follow_up() {
    let mut scenario = town(1.0);
    scenario.ground_truth.follow_up_days = 0;
    let all = scored(&scenario);
    let now = &all.summary;
    let t = &now.infection_truth;
    // A follow-up of 0 days leaves every notified person in, once.
    let people: HashSet<u32> = all.notified.iter().map(|(person, _)| *person).collect();
    assert!(t.notified_followed_up > 0, "{t:?}");
    assert_eq!(t.notified_followed_up, people.len() as u64);
    // Infected in the follow-up: some of the notified people infected at any time.
    let infected_ever = now.notified_infected_share * people.len() as f64;
    assert!(t.infected_in_follow_up > 0, "{t:?}");
    assert!(
        t.infected_in_follow_up as f64 <= infected_ever + 0.5,
        "{t:?}"
    );
    // A test result takes longer than no time at all.
    assert_eq!(t.tested_positive_in_follow_up, 0);

    // Over a week, some are tested positive (tests come 1–3 days after onset).
    scenario.ground_truth.follow_up_days = 5;
    let t = run(&scenario).infection_truth;
    assert!(t.tested_positive_in_follow_up > 0, "{t:?}");
    assert!(
        t.tested_positive_in_follow_up <= t.notified_followed_up,
        "{t:?}"
    );

    // A follow-up as long as the run leaves no notification a whole follow-up.
    scenario.ground_truth.follow_up_days = scenario.days;
    let t = run(&scenario).infection_truth;
    assert_eq!(t.notified_followed_up, 0, "{t:?}");
    assert_eq!((t.attack_rate_tested, t.attack_rate_infected), (0.0, 0.0));
}
