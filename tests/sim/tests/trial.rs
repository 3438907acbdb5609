//! Field trials replayed (issue 26, item 6): the "Tram" scenario file reproduces Leith and
//! Farrell's rates, every rule is the client's own decision for each scheme, and the
//! replay neither depends on the thread count nor accepts a trial it cannot run.

use ephemera_sim::scenario::TrialConfig;
use ephemera_sim::trial::{ProfileResult, RuleRates, TrialReport, run};
use ephemera_sim::{Scenario, SchemeName};

/// The shipped tram scenario, with `replications` and a sweep every `step` dB.
fn tram(replications: u32, step: u8) -> Scenario {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/tram.toml");
    let text = std::fs::read_to_string(path).expect("tram.toml");
    let mut scenario = Scenario::from_toml(&text).expect("tram.toml parses");
    let trial = scenario.trial.as_mut().expect("tram.toml has a [trial]");
    trial.replications = replications;
    trial.sweep_step_db = step;
    scenario
}

/// A change that spoils a trial.
type Edit = fn(&mut TrialConfig);

fn in_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool")
        .install(f)
}

fn result<'a>(report: &'a TrialReport, profile: &str, scheme: SchemeName) -> &'a ProfileResult {
    report
        .results
        .iter()
        .find(|r| r.profile == profile && r.scheme == scheme)
        .expect("profile and scheme")
}

fn rule<'a>(result: &'a ProfileResult, name: &str) -> &'a RuleRates {
    result.rules.iter().find(|r| r.rule == name).expect("rule")
}

#[test]
fn the_tram_replay_lands_within_leith_and_farrells_published_rates() {
    let report = in_threads(2, || run(&tram(2, 28))).expect("replay");
    assert_eq!((report.close_pairs, report.far_pairs), (34, 38));
    // Both profiles, both schemes.
    assert_eq!(report.results.len(), 4);
    for scheme in [SchemeName::Gaen, SchemeName::Pet] {
        let tram = result(&report, "tram", scheme);
        // The Italian rule notifies about half the pairs, near or far: no better than chance.
        let italian = rule(tram, "italian-2020-06");
        assert_eq!(italian.published, Some((0.5, 0.5)));
        for rate in [italian.tpr.mean, italian.fpr.mean] {
            assert!((0.3..=0.7).contains(&rate), "{scheme:?}: {italian:?}");
        }
        assert!(
            (italian.tpr.mean - italian.fpr.mean).abs() < 0.2,
            "{italian:?}"
        );
        // The Swiss and German rules notify (almost) nobody: a metal tram is lossy.
        for name in ["swiss-2020-06", "german-2020-06"] {
            let r = rule(tram, name);
            assert!(r.tpr.mean + r.fpr.mean <= 0.06, "{scheme:?} {name}: {r:?}");
        }
        // Under the default radio the same pairs are heard closer: the Swiss rule fires.
        let default = result(&report, "default", scheme);
        assert!(
            rule(default, "swiss-2020-06").tpr.mean > rule(tram, "swiss-2020-06").tpr.mean,
            "{scheme:?}"
        );
        // Distance barely shows in a tram: the sweep is close to chance.
        assert!((0.4..0.65).contains(&tram.auc), "{}", tram.auc);
        // Each scheme's client recorded about the 15 minutes the pairs were held.
        let [_, median, _] = tram.recorded_minutes;
        assert!((14.0..=18.0).contains(&median), "{median}");
    }
}

#[test]
fn the_sweep_passes_through_the_shipped_rule_for_each_schemes_client() {
    // The shipped last bound is 73 dB: with an 11 dB step from 40 the sweep holds 73 itself.
    let mut scenario = tram(2, 11);
    scenario.trial.as_mut().expect("trial").pairs.truncate(6);
    let report = in_threads(2, || run(&scenario)).expect("replay");
    for r in &report.results {
        let shipped = rule(r, "ephemera");
        let point = r
            .roc
            .iter()
            .find(|p| p.threshold_db == 73)
            .expect("73 dB in the sweep");
        assert_eq!(
            (point.tpr, point.fpr),
            (shipped.tpr.mean, shipped.fpr.mean),
            "{} {:?}",
            r.profile,
            r.scheme
        );
        // A higher last bound never notifies fewer pairs: weights only grow with it.
        for w in r.roc.windows(2) {
            assert!(
                w[1].tpr + 1e-9 >= w[0].tpr && w[1].fpr + 1e-9 >= w[0].fpr,
                "{w:?}"
            );
        }
    }
}

#[test]
fn the_replay_does_not_depend_on_the_thread_count() {
    let mut scenario = tram(2, 28);
    let trial = scenario.trial.as_mut().expect("trial");
    trial.pairs.truncate(2);
    let one = in_threads(1, || run(&scenario)).expect("one thread");
    let two = in_threads(2, || run(&scenario)).expect("two threads");
    let key = |r: &TrialReport| serde_json::to_string(&r.results).expect("json");
    assert_eq!(key(&one), key(&two));
}

#[test]
fn a_scenario_without_a_trial_or_with_a_bad_one_is_refused_before_any_phone_runs() {
    let err = run(&Scenario::default()).expect_err("no [trial]");
    assert!(err.to_string().contains("[trial]"), "{err}");

    let mut scenario = tram(2, 28);
    let trial: &mut TrialConfig = scenario.trial.as_mut().expect("trial");
    trial.published[0].rule = "dutch-2020-06".into();
    let err = run(&scenario).expect_err("unknown rule");
    assert!(err.to_string().contains("dutch-2020-06"), "{err}");

    let edits: [(Edit, &str); 5] = [
        (|t| t.minutes = 0, "trial.minutes"),
        (|t| t.replications = 1, "trial.replications"),
        (|t| t.close_m = -1.0, "trial.close_m"),
        (|t| t.sweep_step_db = 0, "trial.sweep_step_db"),
        (|t| t.pairs[0].distance_m = 0.0, "trial.pairs"),
    ];
    for (edit, said) in edits {
        let mut scenario = tram(2, 28);
        edit(scenario.trial.as_mut().expect("trial"));
        let err = run(&scenario).expect_err(said);
        assert!(err.to_string().contains(said), "{said}: {err}");
    }

    let unknown = "[trial]\nname = \"x\"\nradio_profile = \"x\"\nenvironment = \"transit\"\n\
                   minutes = 15\npairs = []\ncolour = \"blue\"\n";
    let err = Scenario::from_toml(unknown).expect_err("unknown key");
    assert!(err.to_string().contains("colour"), "{err}");
}
