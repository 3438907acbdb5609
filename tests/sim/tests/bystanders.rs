//! Bystanders (issue 26, item 2): crowds, neighbours through walls and passers-by are
//! heard through the radio model like contacts, so they raise false alarms, and both
//! breakdowns (`per_layer`: close contacts, misses, false alarms) name them.

use std::collections::HashSet;

use ephemera_sim::metrics::LayerCounts;
use ephemera_sim::scenario::BystanderConfig;
use ephemera_sim::{RunOptions, Scenario, SchemeName, Scored, run_with};

/// A small town with many uploads: most people on the app, every positive tested quickly.
fn town(bystanders: Option<BystanderConfig>) -> Scenario {
    let mut s = Scenario::tiny(800, 8, 4, SchemeName::Gaen).with_eager_testing(0.04);
    s.population.app_uptake = 0.8;
    s.bystanders = bystanders;
    s
}

fn run(scenario: &Scenario) -> Scored {
    let options = RunOptions {
        threads: Some(2),
        progress: false,
        gaen_found: None,
        line_lists: false,
    };
    run_with(scenario, &options).expect("run")
}

/// Every layer's counts add up to the run's totals.
fn assert_layers_add_up(scored: &Scored) {
    let s = &scored.summary;
    let sum = |f: fn(&LayerCounts) -> u64| s.per_layer.values().map(f).sum::<u64>();
    assert_eq!(sum(|l| l.close_contacts), s.close_contacts_true);
    assert_eq!(sum(|l| l.missed), s.missed.total);
    assert_eq!(sum(|l| l.false_alarms), s.notified - s.true_positives);
}

#[test]
fn bystanders_change_what_phones_hear_not_the_epidemic_and_show_in_both_breakdowns() {
    let without = run(&town(None));
    let with = run(&town(Some(BystanderConfig::default())));
    let (a, b) = (&without.summary, &with.summary);
    // They do not transmit: the same epidemic, tests and uploads.
    assert_eq!(
        (a.infected, a.positives, a.uploads),
        (b.infected, b.positives, b.uploads)
    );
    assert!(a.uploads > 5, "{}", a.uploads);
    // Every layer is listed, and without bystanders theirs are empty.
    for layer in ["crowd", "neighbour", "passer_by"] {
        assert_eq!(a.per_layer[layer], LayerCounts::default(), "{layer}");
    }
    assert_eq!(a.per_layer.len(), b.per_layer.len());
    // Phones hear more people: close contacts can only be added, and crowds add false
    // alarms, so precision falls.
    assert!(b.cost.episodes > a.cost.episodes);
    let truth: HashSet<_> = with.truth.iter().collect();
    assert!(without.truth.iter().all(|k| truth.contains(k)));
    let crowd = &b.per_layer["crowd"];
    assert!(crowd.false_alarms > 0, "{crowd:?}");
    assert!(b.precision < a.precision, "{} {}", b.precision, a.precision);
    assert_eq!(b.per_layer["neighbour"].close_contacts, 0, "a wall apart");
    assert_layers_add_up(&without);
    assert_layers_add_up(&with);
}

#[test]
fn neighbours_close_to_the_wall_are_false_alarms_never_close_contacts() {
    // Only neighbours: every household in a block of flats, home every evening, a metre
    // from the wall.
    let config = BystanderConfig {
        crowd_max: 0,
        passers_by_per_day: 0.0,
        apartment_share: 1.0,
        neighbour_daily_fraction: 1.0,
        neighbour_median_distance_m: 1.0,
        neighbour_median_minutes: 120.0,
        ..BystanderConfig::default()
    };
    let scored = run(&town(Some(config)));
    let s = &scored.summary;
    let neighbour = &s.per_layer["neighbour"];
    assert!(neighbour.false_alarms > 0, "{neighbour:?}");
    assert_eq!(neighbour.close_contacts, 0);
    assert_eq!(s.per_layer["crowd"], LayerCounts::default());
    assert_eq!(s.per_layer["passer_by"], LayerCounts::default());
    assert_layers_add_up(&scored);
}
