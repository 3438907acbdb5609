//! The simulator on tiny scenarios: determinism, end-to-end matching, and the sniffer
//! attack on both schemes. Each run is a few hundred people for a few days.

use ephemera_sim::scenario::{DetectionConfig, RadioConfig};
use ephemera_sim::{RunOptions, Scenario, SchemeName, Summary, run_with};

/// A few hundred people with many early positives who all upload.
fn tiny(scheme: SchemeName) -> Scenario {
    let mut s = Scenario::tiny(400, 3, 7, scheme).with_eager_testing(0.06);
    s.population.venues_per_1000 = 25.0;
    s.attack.sniffers = 4;
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
    // Measured by the runner, outside the model: the time, and the peak memory the
    // summary must record wherever the system says it.
    if cfg!(target_os = "linux") {
        let peak = summary.peak_rss_bytes.expect("Linux reports VmHWM");
        assert!(peak > 1 << 20, "a run holds more than a MiB: {peak}");
    }
    summary.wall_seconds = 0.0;
    summary.peak_rss_bytes = None;
    summary
}

#[test]
fn a_tiny_scenario_is_deterministic_whatever_the_thread_count() {
    for scheme in [SchemeName::Gaen, SchemeName::Pet] {
        let scenario = tiny(scheme);
        let one = run(&scenario, 1);
        assert!(
            one.uploads > 0,
            "the scenario must exercise uploads: {one:?}"
        );
        assert!(one.notified > 0, "and notifications: {one:?}");
        assert_eq!(one, run(&scenario, 3), "{scheme:?}: 1 vs 3 threads");
        let other = run(
            &Scenario {
                seed: 8,
                ..scenario
            },
            2,
        );
        assert_ne!(one, other, "another seed gives another run");
    }
}

#[test]
fn with_zero_noise_and_full_uptake_every_close_contact_is_found() {
    for scheme in [SchemeName::Gaen, SchemeName::Pet] {
        let mut scenario = tiny(scheme);
        scenario.radio = RadioConfig::default().noiseless();
        scenario.population.app_uptake = 1.0;
        scenario.detection = DetectionConfig::any_match();
        let summary = run(&scenario, 2);
        assert!(summary.close_contacts_true > 10, "{summary:?}");
        assert_eq!(summary.recall, 1.0, "{scheme:?}: {summary:?}");
        assert_eq!(summary.batches_rejected, 0);
    }
}

#[test]
fn sniffers_link_gaen_positives_and_no_pet_positives() {
    let gaen = run(&tiny(SchemeName::Gaen), 2);
    assert!(gaen.attack.sniffer_records > 0);
    assert!(gaen.attack.positives_linked > 0, "{:?}", gaen.attack);
    assert!(gaen.attack.linked_fraction > 0.0);
    assert!(gaen.attack.places_per_linked_positive_day >= 1.0);
    assert_eq!(gaen.attack.wrong_links, 0);

    let pet = run(&tiny(SchemeName::Pet), 2);
    assert!(pet.attack.sniffer_records > 0);
    assert!(pet.attack.published_examined > 0 && pet.attack.candidates_tried > 0);
    assert_eq!(pet.attack.positives_linked, 0, "{:?}", pet.attack);
    assert_eq!(pet.attack.sightings_linked, 0);
    assert_eq!(pet.attack.linked_fraction, 0.0);
    // Every candidate also tried in every token filter the node published: none answers.
    assert!(pet.attack.filter_probes > 0, "{:?}", pet.attack);
    assert_eq!(pet.attack.filter_matches, 0, "{:?}", pet.attack);
    assert_eq!(gaen.attack.filter_probes, 0);
    // `pet` phones took the filters in, `gaen` phones the batches; the false notifications
    // the filters could cause are far below one in a million phone-days.
    assert!(pet.filters.fetched > 0 && pet.filters.lookups_per_phone_day > 0.0);
    assert!(pet.filters.false_notifications_per_million_phone_days < 1.0);
    assert_eq!(gaen.filters.fetched, 0);
}

fn scored(scenario: &Scenario, gaen_found: Option<Vec<(u32, u32)>>) -> ephemera_sim::Scored {
    let options = RunOptions {
        threads: Some(2),
        progress: false,
        gaen_found: gaen_found.map(std::sync::Arc::new),
        line_lists: false,
    };
    run_with(scenario, &options).expect("run")
}

/// The same tiny town under both schemes: every close contact `pet` misses and `gaen`
/// finds gets exactly one cause, and the download projection at the runs' own upload
/// rate lands near what their phones measured.
#[test]
fn misses_are_classified_once_each_and_the_projection_meets_the_runs() {
    // Larger than `tiny`, so that `pet` misses some contact `gaen` finds.
    let small = |scheme| Scenario {
        agents: 1_000,
        days: 5,
        ..tiny(scheme)
    };
    let gaen = scored(&small(SchemeName::Gaen), None);
    let found: Vec<(u32, u32)> = gaen
        .truth
        .iter()
        .filter(|k| gaen.notified.binary_search(k).is_ok())
        .copied()
        .collect();
    assert_eq!(found.len() as u64, gaen.summary.true_positives);
    let pet = scored(&small(SchemeName::Pet), Some(found.clone()));
    let report = pet.misses.as_ref().expect("a pet run compared with gaen");
    assert_eq!(report.gaen_found, found.len() as u64);
    assert_eq!(report.pet_truth, pet.summary.close_contacts_true);
    assert_eq!(report.pet_found, pet.summary.true_positives);
    assert!(report.missed > 0, "{report:?}");
    assert!(report.missed <= report.pet_truth - report.pet_found);
    let classified: u64 = report.causes.iter().map(|c| c.count).sum();
    assert_eq!(classified, report.missed, "{report:?}");

    let projection =
        ephemera_sim::projection::project(&gaen.summary.publication, &pet.summary.publication)
            .expect("projection");
    for (model, measured) in &projection.checks {
        let ratio = measured / model.total_bytes() as f64;
        assert!(
            (0.95..1.25).contains(&ratio),
            "{model:?}: measured {measured}"
        );
    }
}
