//! Faithful contact time: credited from the phone's own scan cadence, across key
//! rotations, within 10 % of the truth for scan periods of 1 to 5 minutes.

use ephemera_proto::{SchemeKind, UnixTime};

use super::util::{T0, credited_seconds, hear};
use crate::store::MemoryStore;
use crate::{ClientConfig, Phone, Signal};

/// Seconds credited to a contact of `duration` s starting `offset` s into an interval,
/// scanned every `period` s with the first scan `phase` s after the contact starts.
fn credited(scheme: SchemeKind, period: u64, duration: u64, offset: u64, phase: u64) -> u64 {
    let mut config = ClientConfig::new(scheme).with_decoy_rate(0.0);
    config.encounter.scan_period_seconds = period as u32;
    let mut phone = Phone::new(config.clone(), MemoryStore::new(), [1; 32]).unwrap();
    let mut peer = Phone::new(config, MemoryStore::new(), [2; 32]).unwrap();
    let begin = T0
        .day()
        .plus(1)
        .first_interval()
        .plus(30)
        .start()
        .plus_seconds(offset);
    let end = begin.plus_seconds(duration);
    // The phone scans all along; it hears the peer only during the contact.
    let mut scan = begin.plus_seconds(phase).minus_seconds(period * 5);
    while scan < end.plus_seconds(period * 3) {
        phone.handle_timeout(scan).unwrap();
        if scan >= begin && scan < end {
            // The peer broadcasts its key of the moment: it rotates every interval.
            let signal = Signal::Rssi {
                rssi: -60,
                tx_power: Some(-8),
            };
            hear(&mut phone, &mut peer, scan, signal);
        }
        while phone.poll_request().is_some() {}
        scan = scan.plus_seconds(period);
    }
    phone.close_all_encounters().unwrap();
    credited_seconds(phone.store())
}

#[test]
fn credited_duration_is_within_10_percent_for_scan_periods_of_1_to_5_minutes() {
    let mut worst: f64 = 0.0;
    for scheme in [SchemeKind::Gaen, SchemeKind::Pet] {
        for period in [60, 90, 120, 180, 240, 300] {
            for duration in [20 * 60, 30 * 60, 60 * 60] {
                let mut errors = Vec::new();
                for (offset, phase) in [(0, 0), (170, 7), (420, 0), (599, 59), (300, 131)] {
                    let phase = phase % period;
                    let got = credited(scheme, period, duration, offset, phase);
                    let error = (got as f64 - duration as f64) / duration as f64;
                    assert!(
                        error.abs() <= 0.10 + 1e-9,
                        "{scheme:?} scan every {period} s, contact {duration} s \
                         (offset {offset}, phase {phase}): credited {got} s ({:+.1} %)",
                        error * 100.0
                    );
                    errors.push(error);
                    worst = worst.max(error.abs());
                }
                let max = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
                println!(
                    "{scheme:?} scan period {period:>3} s, contact {:>2} min: worst error {:.1} %",
                    duration / 60,
                    max * 100.0
                );
            }
        }
    }
    println!(
        "worst credited-duration error over all cases: {:.1} %",
        worst * 100.0
    );
}

#[test]
fn scans_within_the_scan_window_count_once() {
    // Continuous scanning delivering a sighting every 2 s: instances of about 20 s.
    let mut config = ClientConfig::new(SchemeKind::Gaen).with_decoy_rate(0.0);
    config.encounter.scan_period_seconds = 60;
    let mut phone = Phone::new(config.clone(), MemoryStore::new(), [1; 32]).unwrap();
    let mut peer = Phone::new(config, MemoryStore::new(), [2; 32]).unwrap();
    let begin: UnixTime = T0.day().plus(1).first_interval().plus(30).start();
    for i in 0..450 {
        hear(
            &mut phone,
            &mut peer,
            begin.plus_seconds(2 * i),
            Signal::Attenuation(50),
        );
    }
    phone.close_all_encounters().unwrap();
    let total = credited_seconds(phone.store());
    // 900 s of contact: credited in scan instances of 20-22 s, to within one instance.
    assert!((880..=960).contains(&total), "{total}");
}
