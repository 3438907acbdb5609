//! The venue comparison (`ephemera-sim venues`): the relations between the three schemes
//! that must hold whatever the seed, and the observer's test with the real cryptography.

use ephemera_sim::rooms::{Comparison, RoomsScenario, compare};

fn small(seed: u64) -> RoomsScenario {
    RoomsScenario {
        agents: 4_000,
        days: 10,
        seed,
        // More cases than a real wave, so a small town has enough to score.
        daily_case_rate: 0.003,
        crypto_sample: 12,
        ..RoomsScenario::default()
    }
}

fn run(s: &RoomsScenario) -> Comparison {
    compare(s).expect("a valid scenario runs")
}

#[test]
fn the_schemes_relate_as_their_mechanisms_say() {
    let s = small(3);
    let c = run(&s);
    assert!(
        c.cases > 10 && c.exposures > 50,
        "{} cases, {} exposures",
        c.cases,
        c.exposures
    );
    let published = c.scheme("published places").unwrap();
    let check_in = c.scheme("venue check-in").unwrap();
    let bluetooth = c.scheme("Bluetooth alone").unwrap();
    // Published hours cover every minute a case spent there: everyone exposed is named,
    // and so are people in other rooms and other parts of the hour.
    assert_eq!(published.recall, 1.0);
    assert!(published.precision < 1.0, "{}", published.precision);
    // Both visits must be checked in: recall is at most the share checked in, and some.
    assert!(
        check_in.recall > 0.0 && check_in.recall <= s.check_in_share,
        "{}",
        check_in.recall
    );
    // The curve rises with the share; nobody is warned at 0, every exposure at 1, and
    // check-in, matching times in one room, is more precise than whole published hours.
    let curve = &c.check_in_curve;
    assert!(curve.windows(2).all(|w| w[0].1 <= w[1].1), "{curve:?}");
    assert_eq!(curve.first(), Some(&(0.0, 0.0)));
    assert_eq!(curve.last(), Some(&(1.0, 1.0)));
    let full = run(&RoomsScenario {
        check_in_share: 1.0,
        ..s.clone()
    });
    let full_check_in = full.scheme("venue check-in").unwrap();
    assert!(full_check_in.precision > published.precision);
    // People in one room are mostly further apart than Bluetooth counts: it misses most
    // room-shared exposures, and less than full check-in does.
    assert!(
        bluetooth.recall > 0.0 && bluetooth.recall < 0.5,
        "{}",
        bluetooth.recall
    );
    assert!(bluetooth.recall < full_check_in.recall);
    assert!(bluetooth.risk_recall <= 1.0 && check_in.risk_recall <= 1.0);
}

#[test]
fn the_observer_reconstructs_every_published_trail_and_check_in_trails_only_with_codes() {
    // Hourly batches: in a small town most hold one case.
    let s = RoomsScenario {
        batch_hours: 1,
        ..small(4)
    };
    let c = run(&s);
    assert!(c.cases_with_trails > 0);
    for row in &c.observer {
        // The published practice hands every trail to everyone.
        assert_eq!(row.published, 1.0);
        assert_eq!(row.bluetooth, 0.0);
        assert_eq!(row.check_in.len(), s.other_cases_per_batch.len());
        // More cases from elsewhere in a batch never make linking easier.
        assert!(row.check_in.windows(2).all(|w| w[0] >= w[1]), "{row:?}");
        assert!(row.check_in.iter().all(|v| *v <= row.published));
    }
    let first = &c.observer[0];
    assert_eq!(first.coverage, 0.0);
    assert_eq!(first.traces_identified, 0.0);
    assert!(first.check_in.iter().all(|v| *v == 0.0));
    // Holding more codes never recognises less.
    for w in c.observer.windows(2) {
        assert!(w[0].traces_identified <= w[1].traces_identified);
        assert!(w[0].check_in[0] <= w[1].check_in[0]);
    }
    let last = c.observer.last().unwrap();
    assert_eq!(last.coverage, 1.0);
    assert_eq!(last.traces_identified, 1.0);
    assert!(last.check_in[0] > 0.0, "{last:?}");
    // Longer batches mix more cases: they never let the observer link more.
    let daily = run(&RoomsScenario {
        batch_hours: 24,
        ..s.clone()
    });
    for (hourly, daily) in c.observer.iter().zip(&daily.observer) {
        assert!(
            daily.check_in[0] <= hourly.check_in[0],
            "{daily:?} {hourly:?}"
        );
    }
    // The real cryptography: the observer's identity test recognises exactly the traces
    // of the venues whose codes it holds, and names the right room.
    assert!(c.crypto.traces >= 1 && c.crypto.codes_held >= 1);
    assert!(c.crypto.agree, "{:?}", c.crypto);
    assert_eq!(c.crypto.identified, c.crypto.modelled);
}

#[test]
fn a_seed_gives_the_same_comparison_and_the_outputs_are_written() {
    let s = RoomsScenario {
        agents: 1_500,
        days: 8,
        crypto_sample: 4,
        ..small(5)
    };
    let a = run(&s);
    assert_eq!(a, run(&s));
    assert_ne!(
        a,
        run(&RoomsScenario {
            seed: 6,
            ..s.clone()
        })
    );
    let dir = std::env::temp_dir().join(format!("ephemera-sim-venues-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    a.write(&dir).unwrap();
    let svg = std::fs::read_to_string(dir.join("venues.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("venue check-in"));
    let md = std::fs::read_to_string(dir.join("venues.md")).unwrap();
    assert!(md.contains("| published places |"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("venues.json")).unwrap()).unwrap();
    assert_eq!(json["comparison"]["cases"], a.cases);
    assert!(a.write(&dir).is_err(), "never overwrites");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_invalid_scenario_is_refused_with_its_reason() {
    for (s, what) in [
        (
            RoomsScenario {
                check_in_share: 1.5,
                ..small(1)
            },
            "shares",
        ),
        (
            RoomsScenario {
                days: 3,
                ..small(1)
            },
            "trace_days",
        ),
        (
            RoomsScenario {
                batch_hours: 0,
                ..small(1)
            },
            "batch_hours",
        ),
    ] {
        let err = compare(&s).unwrap_err().to_string();
        assert!(err.contains(what), "{err}");
    }
}
