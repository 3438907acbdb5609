//! Forgetting on disk: what a phone heard is sealed under its day's key, the key is
//! destroyed after retention, and disk use levels off.

use ephemera_proto::{DayNumber, SchemeKind, UnixTime};

use super::util::{T0, hear};
use crate::store::day_keys::{FILE_NAME, SLOT_LEN};
use crate::store::{MemoryStore, SledStore};
use crate::{ClientConfig, Phone, Signal};

pub(super) fn folder_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.extend(std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn folder_size(dir: &std::path::Path) -> u64 {
    folder_bytes(dir).len() as u64
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The key of `day` in a store folder's key file, if it has one.
fn day_key(dir: &std::path::Path, day: DayNumber) -> Option<Vec<u8>> {
    let file = std::fs::read(dir.join(FILE_NAME)).unwrap();
    file.chunks_exact(SLOT_LEN)
        .find(|s| s[0] == 1 && s[1..5] == day.0.to_be_bytes())
        .map(|s| s[5..].to_vec())
}

/// A 28-day run of a `gaen` phone meeting 40 people a day: the identifiers heard on day 1
/// are never on disk in clear, the day-1 key is gone from the disk after retention, and
/// the folder stops growing. Prints the folder size per day (`--nocapture`).
#[test]
fn forgetting_on_disk_over_28_days() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ClientConfig::new(SchemeKind::Gaen).with_decoy_rate(0.0);
    config.encounter.scan_period_seconds = 120;
    config.sync.interval_seconds = 86_400;
    let mut phone = Phone::new(
        config.clone(),
        SledStore::open(dir.path()).unwrap(),
        [1; 32],
    )
    .unwrap();
    let first = T0.day().plus(1);
    let mut heard_day1: Vec<Vec<u8>> = Vec::new();
    let mut key_day1 = None;
    let mut sizes = Vec::new();
    for d in 0..28u32 {
        let day = first.plus(d);
        for contact in 0..40u64 {
            let mut seed = [0xaa; 32];
            seed[..2].copy_from_slice(&[d as u8, contact as u8]);
            let mut peer = Phone::new(config.clone(), MemoryStore::new(), seed).unwrap();
            let start = day.start().plus_seconds(8 * 3600 + contact * 900);
            for scan in 0..5 {
                let now: UnixTime = start.plus_seconds(scan * 120);
                if d == 0 && scan == 0 {
                    heard_day1.push(peer.advertisement(now).unwrap().full[..16].to_vec());
                }
                hear(&mut phone, &mut peer, now, Signal::Attenuation(55));
            }
        }
        let evening = day.start().plus_seconds(23 * 3600);
        phone.handle_timeout(evening).unwrap();
        while phone.poll_request().is_some() {}
        let disk = folder_bytes(dir.path());
        for rpi in &heard_day1 {
            assert!(
                !contains(&disk, rpi),
                "day {d}: an identifier heard on day 1 is in clear"
            );
        }
        if d == 0 {
            key_day1 = day_key(dir.path(), first);
            assert!(key_day1.is_some(), "day 1 has a key");
        }
        let key = key_day1.as_ref().unwrap();
        let after_retention = d >= 15;
        assert_eq!(
            contains(&disk, key),
            !after_retention,
            "day {d}: the day-1 key on disk"
        );
        sizes.push(folder_size(dir.path()));
    }
    let kib: Vec<u64> = sizes.iter().map(|s| s / 1024).collect();
    println!("folder size per day (KiB), 40 contacts a day, 28 days: {kib:?}");
    // Levels off: the last week grows less than a tenth of what the first two weeks did.
    let first_two_weeks = sizes[13].saturating_sub(sizes[0]);
    let last_week = sizes[27].saturating_sub(sizes[20]);
    println!(
        "growth: days 1-14 {} KiB, days 21-28 {} KiB",
        first_two_weeks / 1024,
        last_week / 1024
    );
    assert!(
        last_week <= first_two_weeks / 10 + 16 * 1024,
        "disk use does not level off: {kib:?}"
    );
    assert!(sizes[27] <= sizes[14] + 64 * 1024, "{kib:?}");
}
