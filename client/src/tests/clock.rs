//! The clock contract: no time before the first input, no past key, no purge on an
//! unconfirmed jump.

use ephemera_proto::{SchemeKind, UnixTime};

use super::util::{self, T0, hear};
use crate::store::{MemoryStore, Store};
use crate::{ClientConfig, ClientError, Phone, Sighting, Signal};

fn start() -> UnixTime {
    T0.day().plus(1).first_interval().plus(40).start()
}

fn config(scheme: SchemeKind) -> ClientConfig {
    ClientConfig::new(scheme).with_decoy_rate(0.0)
}

fn encounters(store: &impl Store) -> usize {
    let mut n = 0;
    store.for_each_encounter(&mut |_| n += 1).unwrap();
    n
}

/// `phone` hears a peer for 15 minutes from `t`, then closes the encounter.
fn meet<S: Store>(phone: &mut Phone<S>, t: UnixTime) {
    let mut peer = Phone::new(phone.config().clone(), MemoryStore::new(), [9; 32]).unwrap();
    for i in 0..=15 {
        hear(
            phone,
            &mut peer,
            t.plus_seconds(60 * i),
            Signal::Attenuation(50),
        );
    }
    phone.close_all_encounters().unwrap();
}

#[test]
fn poll_timeout_is_none_until_a_time_is_known() {
    let mut phone = Phone::new(config(SchemeKind::Pet), MemoryStore::new(), [1; 32]).unwrap();
    assert_eq!(phone.poll_timeout(), None);
    assert_eq!(phone.status().latest_time, None);
    phone.handle_timeout(start()).unwrap();
    let next = phone.poll_timeout().unwrap();
    assert!(next > start() && next <= start().interval().plus(1).start());
}

#[test]
fn a_time_going_back_is_refused_and_no_past_key_is_broadcast() {
    for scheme in [SchemeKind::Gaen, SchemeKind::Pet] {
        let dir = tempfile::tempdir().unwrap();
        let mut phone = Phone::new(config(scheme), util::reopen(dir.path()), [1; 32]).unwrap();
        let now = start().plus_seconds(3600);
        let current = phone.advertisement(now).unwrap();
        // An hour back, or 1970: refused, with nothing done.
        for past in [now.minus_seconds(3600), UnixTime(0)] {
            assert_eq!(
                phone.advertisement(past),
                Err(ClientError::ClockWentBack {
                    seconds: now.0 - past.0
                }),
                "{scheme:?}"
            );
            let payload = current.full.clone();
            let sighting = Sighting {
                payload: &payload,
                signal: Signal::Attenuation(40),
            };
            assert!(matches!(
                phone.handle_sighting(past, &sighting),
                Err(ClientError::ClockWentBack { .. })
            ));
            assert!(phone.handle_timeout(past).is_err());
        }
        assert_eq!(phone.status().clock_refusals, 6);
        assert_eq!(phone.status().last_error, Some("clock-went-back"));
        // Within the tolerance (threads racing): taken as the latest time.
        let raced = phone.advertisement(now.minus_seconds(30)).unwrap();
        assert_eq!(raced.interval, current.interval);
        assert_eq!(raced.full, current.full);
        // After a restart, an earlier interval than the last one seen is still refused.
        drop(phone);
        let mut phone = Phone::new(config(scheme), util::reopen(dir.path()), [2; 32]).unwrap();
        assert!(matches!(
            phone.advertisement(now.minus_seconds(700)),
            Err(ClientError::ClockWentBack { .. })
        ));
        let again = phone.advertisement(now).unwrap();
        assert_eq!(
            again.full, current.full,
            "{scheme:?}: the same interval's key"
        );
    }
}

#[test]
fn answers_are_not_lost_to_a_clock_going_back() {
    let mut phone = Phone::new(config(SchemeKind::Pet), MemoryStore::new(), [1; 32]).unwrap();
    let now = start();
    phone.start_sync(now).unwrap();
    let index = super::util::next_past_key(&mut phone);
    let body = br#"{"batches":[],"next_cursor":0}"#.to_vec();
    phone
        .handle_response(
            now.minus_seconds(7200),
            index.id,
            crate::Response { status: 200, body },
        )
        .unwrap();
    assert!(matches!(
        phone.poll_event(),
        Some(crate::PhoneEvent::SyncCompleted { .. })
    ));
    // Taken at the latest time seen, and kept across a restart.
    assert_eq!(phone.status().last_sync, Some(now));
    let phone = Phone::new(config(SchemeKind::Pet), phone.into_store(), [2; 32]).unwrap();
    assert_eq!(phone.status().last_sync, Some(now));
}

#[test]
fn a_forward_jump_purges_nothing_until_confirmed() {
    for scheme in [SchemeKind::Gaen, SchemeKind::Pet] {
        let mut phone = Phone::new(config(scheme), MemoryStore::new(), [1; 32]).unwrap();
        meet(&mut phone, start());
        let met = encounters(phone.store());
        assert!(met >= 1, "{scheme:?}");
        // The clock jumps 20 days ahead and a timer fires: nothing is purged.
        let jumped = start().plus_seconds(20 * 86_400);
        phone.handle_timeout(jumped).unwrap();
        phone.advertisement(jumped).unwrap();
        assert!(phone.status().clock_jump_pending);
        assert_eq!(encounters(phone.store()), met, "{scheme:?}: kept");
        // A thread racing a few seconds back inside the jumped time confirms nothing.
        phone.handle_timeout(jumped.minus_seconds(5)).unwrap();
        assert!(phone.status().clock_jump_pending);
        // A node that disagrees does not confirm it.
        assert!(
            !phone
                .confirm_time(jumped, start().plus_seconds(3600))
                .unwrap()
        );
        phone.handle_timeout(jumped.plus_seconds(60)).unwrap();
        assert_eq!(encounters(phone.store()), met, "{scheme:?}: still kept");
        assert_eq!(phone.status().clock_disagreements, 1);
        // The user sets the clock right: back on the confirmed timeline, nothing lost.
        let fixed = start().plus_seconds(7200);
        phone.handle_timeout(fixed).unwrap();
        assert!(!phone.status().clock_jump_pending);
        assert_eq!(encounters(phone.store()), met, "{scheme:?}: nothing lost");

        // A real long sleep: the same jump, confirmed by the node's Date, purges.
        let mut phone = Phone::new(config(scheme), MemoryStore::new(), [2; 32]).unwrap();
        meet(&mut phone, start());
        phone.handle_timeout(jumped).unwrap();
        assert_eq!(encounters(phone.store()), met);
        assert!(phone.confirm_time(jumped, jumped.plus_seconds(5)).unwrap());
        phone.handle_timeout(jumped.plus_seconds(1)).unwrap();
        assert_eq!(
            encounters(phone.store()),
            0,
            "{scheme:?}: purged once confirmed"
        );
        assert!(!phone.status().clock_jump_pending);
    }
}

#[test]
fn small_forward_steps_are_trusted_without_a_node() {
    let mut phone = Phone::new(config(SchemeKind::Gaen), MemoryStore::new(), [1; 32]).unwrap();
    meet(&mut phone, start());
    // Day by day for 16 days: each step is within the bound, so retention acts.
    for day in 1..=16 {
        phone
            .handle_timeout(start().plus_seconds(day * 86_400))
            .unwrap();
    }
    assert!(!phone.status().clock_jump_pending);
    assert_eq!(encounters(phone.store()), 0);
}
