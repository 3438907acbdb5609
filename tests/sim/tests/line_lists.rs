//! Line lists (issue 26, item 5): with `line_lists`, a run's folder holds every contact,
//! every infection with its source and every notification with its time, and they agree
//! with the summary; without it, none is kept.

use std::collections::HashMap;

use ephemera_sim::{RunOptions, Scenario, SchemeName, run_with, write_outputs};

fn run(line_lists: bool) -> ephemera_sim::Scored {
    let mut scenario = Scenario::tiny(600, 6, 3, SchemeName::Gaen).with_eager_testing(0.04);
    scenario.population.app_uptake = 0.8;
    let options = RunOptions {
        threads: Some(2),
        progress: false,
        gaen_found: None,
        line_lists,
    };
    run_with(&scenario, &options).expect("run")
}

/// The rows of a CSV text, each a map from its header's names.
fn rows(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

#[test]
fn line_lists_hold_every_contact_infection_and_notification_of_the_summary() {
    let scored = run(true);
    let dir = std::env::temp_dir().join(format!("ephemera-line-lists-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_outputs(&dir, &scored, &[]).expect("outputs");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect(name);
    let s = &scored.summary;

    let contacts = rows(&read("contacts.csv"));
    assert_eq!(contacts.len() as u64, s.cost.episodes);
    assert!(contacts.iter().all(|c| c["a"] != c["b"]));

    let infections = rows(&read("infections.csv"));
    assert_eq!(infections.len() as u64, s.infected);
    let infected_at: HashMap<&str, i64> = infections
        .iter()
        .map(|i| {
            (
                i["agent"].as_str(),
                i["infected_at_s"].parse().expect("time"),
            )
        })
        .collect();
    let mut sourced = 0;
    for i in &infections {
        if i["source"].is_empty() {
            assert!(
                i["infected_at_s"].parse::<i64>().expect("time") <= 0,
                "{i:?}"
            );
            continue;
        }
        sourced += 1;
        // The source was infected before, and the two had a contact that day.
        let at: i64 = i["infected_at_s"].parse().expect("time");
        assert!(infected_at[i["source"].as_str()] < at, "{i:?}");
        let day = (at / 86_400).to_string();
        assert!(
            contacts.iter().any(|c| c["day"] == day
                && [&c["a"], &c["b"]].contains(&&i["agent"])
                && [&c["a"], &c["b"]].contains(&&i["source"])),
            "{i:?}"
        );
    }
    assert!(sourced > 0, "the run must transmit");

    let notifications = rows(&read("notifications.csv"));
    assert_eq!(notifications.len() as u64, s.notified);
    assert!(s.notified > 0, "the run must notify");
    for n in &notifications {
        let key = (
            n["agent"].parse::<u32>().expect("agent"),
            n["exposure_day"].parse::<u32>().expect("day"),
        );
        assert!(scored.notified.contains(&key), "{n:?}");
        // A phone warns after the exposure day began.
        let at: u64 = n["notified_at_s"].parse().expect("time");
        assert!(at >= u64::from(key.1) * 86_400, "{n:?}");
    }
    std::fs::remove_dir_all(&dir).expect("clean up");

    // Without the option the run keeps none, and its summary is the same.
    let plain = run(false);
    assert!(plain.line_lists.is_none());
    let without_time = |mut s: ephemera_sim::Summary| {
        s.wall_seconds = 0.0;
        s.peak_rss_bytes = None;
        serde_json::to_string(&s).expect("json")
    };
    assert_eq!(
        without_time(plain.summary),
        without_time(scored.summary.clone())
    );
}
