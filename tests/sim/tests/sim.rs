//! The simulator on tiny scenarios: determinism, end-to-end matching, and the sniffer
//! attack on both schemes. Each run is a few hundred people for a few days.

use ephemera_sim::scenario::{DetectionConfig, RadioConfig};
use ephemera_sim::{RunOptions, Scenario, SchemeName, Summary, run_with};

/// A few hundred people with many early positives who all upload.
fn tiny(scheme: SchemeName) -> Scenario {
    let mut s = Scenario::tiny(400, 3, 7, scheme);
    s.epidemic.initial_infected = 0.06;
    s.testing.symptomatic_tested = 1.0;
    s.testing.asymptomatic_tested = 1.0;
    s.testing.upload_consent = 1.0;
    s.testing.delay_days = [0.2, 0.5];
    s.population.venues_per_1000 = 25.0;
    s.attack.sniffers = 4;
    s
}

fn run(scenario: &Scenario, threads: usize) -> Summary {
    let options = RunOptions {
        threads: Some(threads),
        progress: false,
    };
    let mut summary = run_with(scenario, &options).expect("run").summary;
    summary.wall_seconds = 0.0;
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
}
