//! The threshold curves come from each scheme's own client scoring (issue 26, item 4): at
//! the shipped bounds each curve reproduces its run's own notifications, and the two
//! schemes' curves differ where their windows do.

use ephemera_sim::{RunOptions, Scenario, SchemeName, Scored, run_with};

/// A small town with many early positives who all upload (as `tests/sim.rs`'s).
fn town(scheme: SchemeName) -> Scenario {
    let mut s = Scenario::tiny(1_000, 4, 11, scheme).with_eager_testing(0.06);
    s.attack.sniffers = 0;
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

#[test]
fn each_schemes_curve_meets_its_run_at_the_shipped_bounds_and_the_schemes_differ() {
    let mut curves = Vec::new();
    for scheme in [SchemeName::Gaen, SchemeName::Pet] {
        let scenario = town(scheme);
        let run = scored(&scenario);
        let s = &run.summary;
        assert!(s.notified > 5, "{scheme:?} must notify: {s:?}");
        let shipped = scenario.detection.attenuation_thresholds_db[2];
        let point = run
            .sweep
            .iter()
            .find(|p| p.threshold_db == shipped)
            .expect("the sweep covers the shipped bound");
        assert_eq!(
            (point.notified, point.true_positives),
            (s.notified, s.true_positives),
            "{scheme:?}: the client curve at {shipped} dB is the run itself"
        );
        assert_eq!((point.precision, point.recall), (s.precision, s.recall));
        // Lower bounds notify no more; the lowest notifies fewer than the run.
        for pair in run.sweep.windows(2) {
            assert!(pair[0].notified <= pair[1].notified, "{scheme:?}: {pair:?}");
        }
        assert!(run.sweep[0].notified < s.notified, "{scheme:?}");
        // The idealised detector is scheme-blind: it is kept apart, in sweep_ideal.csv.
        curves.push((run.sweep.clone(), run.ideal_sweep.clone()));
    }
    let (gaen, pet) = (&curves[0], &curves[1]);
    assert_eq!(
        gaen.1, pet.1,
        "the idealised detector replays the same scans"
    );
    let counts = |c: &[ephemera_sim::metrics::SweepPoint]| {
        c.iter()
            .map(|p| (p.notified, p.true_positives))
            .collect::<Vec<_>>()
    };
    assert_ne!(
        counts(&gaen.0),
        counts(&pet.0),
        "per key and day (gaen) against per encounter (pet) scoring must differ somewhere"
    );
}
