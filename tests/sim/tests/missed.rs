//! Every true close contact the run did not notify gets one primary cause (issue 26,
//! item 5), and a risk configuration that rules a stage out moves the misses to it.

use ephemera_sim::{RunOptions, Scenario, SchemeName, Summary, run_with};

fn summary(scenario: &Scenario) -> Summary {
    let options = RunOptions {
        threads: Some(2),
        progress: false,
        gaen_found: None,
        line_lists: false,
    };
    run_with(scenario, &options).expect("run").summary
}

fn town(scheme: SchemeName) -> Scenario {
    let mut s = Scenario::tiny(600, 3, 5, scheme).with_eager_testing(0.06);
    s.attack.sniffers = 0;
    s
}

fn check_sums(s: &Summary) {
    let m = &s.missed;
    assert_eq!(m.total, s.close_contacts_true - s.true_positives, "{m:?}");
    let causes = m.not_heard
        + m.not_uploaded
        + m.synced_too_late
        + m.too_weak
        + m.below_window_score
        + m.below_daily_score
        + m.other;
    assert_eq!(causes, m.total, "{m:?}");
}

#[test]
fn each_miss_has_one_cause_and_the_stage_that_fails_gets_it() {
    for scheme in [SchemeName::Gaen, SchemeName::Pet] {
        let shipped = summary(&town(scheme));
        check_sums(&shipped);
        assert!(shipped.close_contacts_true > 5, "{shipped:?}");

        // A daily minimum no day reaches: every contact whose windows were stored misses
        // on the daily score, none on the stages before it.
        let mut unreachable = town(scheme);
        unreachable.detection.minimum_daily_score = 1e12;
        let s = summary(&unreachable);
        check_sums(&s);
        assert_eq!(s.notified, 0);
        assert!(s.missed.below_daily_score > 0, "{scheme:?}: {:?}", s.missed);
        assert_eq!(s.missed.too_weak + s.missed.other, 0, "{:?}", s.missed);

        // Every bound at 0 dB: all time falls beyond the last bound. (Only `gaen`: a `pet`
        // phone then uploads no encounter at all, since none could count for its peer.)
        if scheme == SchemeName::Pet {
            continue;
        }
        let mut deaf = town(scheme);
        deaf.detection.attenuation_thresholds_db = [0, 0, 0];
        let s = summary(&deaf);
        check_sums(&s);
        assert_eq!(s.notified, 0);
        assert!(s.missed.too_weak > 0, "{scheme:?}: {:?}", s.missed);
        assert_eq!(
            s.missed.below_window_score + s.missed.below_daily_score,
            0,
            "{:?}",
            s.missed
        );
    }
}
