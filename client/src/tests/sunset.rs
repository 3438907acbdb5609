//! The end of purpose on the phone: sunset orders read from the node's index, the end of
//! life, the erasure (in memory and on disk) and the stopped phone.

use ephemera_proto::batch::BatchIndex;
use ephemera_proto::signing::{Ed25519PublicKey, Ed25519SigningKey};
use ephemera_proto::sunset::{SignedSunsetOrder, SunsetCommittee, SunsetOrder, SunsetScope};
use ephemera_proto::{SchemeKind, UnixTime};

use super::forgetting::{contains, folder_bytes};
use super::util::{T0, hear, reopen};
use crate::store::{MemoryStore, MetaKey, SledStore, Store};
use crate::{
    ClientConfig, ClientError, EndReason, Phone, PhoneEvent, Purpose, Response, Sighting, Signal,
};

const DAY: u64 = 86_400;

/// The three sunset keys of the tests (2 of 3 approve).
fn sunset_keys() -> Vec<Ed25519SigningKey> {
    (1..=3u8)
        .map(|i| Ed25519SigningKey::from_seed(&[0x50 + i; 32]))
        .collect()
}

fn committee() -> SunsetCommittee {
    let keys: Vec<Ed25519PublicKey> = sunset_keys().iter().map(|k| k.public_key()).collect();
    SunsetCommittee::new(&keys, 2).unwrap()
}

/// The authority this phone pins.
fn authority() -> Ed25519PublicKey {
    ephemera_proto::auth::AuthoritySigningKey::from_seed(&[0x41; 32]).public_key()
}

fn config() -> ClientConfig {
    let mut config = ClientConfig::new(SchemeKind::Pet)
        .with_decoy_rate(0.0)
        .with_trusted_authority(authority())
        .with_sunset_committee(committee());
    config.encounter.scan_period_seconds = 60;
    config
}

/// An order for `federation` with `scope`, issued at `issued`, effective at `effective`,
/// approved by the sunset keys numbered in `signers`.
fn order_for(
    federation: &str,
    scope: SunsetScope,
    issued: UnixTime,
    effective: UnixTime,
    signers: &[usize],
) -> SignedSunsetOrder {
    let mut order = SignedSunsetOrder::draft(SunsetOrder {
        federation: federation.into(),
        committee: committee().id(),
        scope,
        issued_at: issued,
        effective_at: effective,
        reason: "the epidemic is over".into(),
    });
    let keys = sunset_keys();
    for &i in signers {
        order.sign(&keys[i]);
    }
    order
}

/// A valid order of the whole default federation, issued at `issued`, effective 30 days
/// later.
fn valid_order(issued: UnixTime) -> SignedSunsetOrder {
    order_for(
        crate::config::DEFAULT_FEDERATION,
        SunsetScope::Federation,
        issued,
        issued.plus_seconds(30 * DAY),
        &[0, 2],
    )
}

fn index_with(order: Option<SignedSunsetOrder>) -> Vec<u8> {
    serde_json::to_vec(&BatchIndex {
        batches: vec![],
        next_cursor: 0,
        key_rollovers: Vec::new(),
        head: None,
        token_filters: false,
        sunset: order,
    })
    .unwrap()
}

/// A sync round at `now` whose index carries `order`; other requests fail (no network).
/// Gives the index answer's result.
fn sync_with<S: Store>(
    phone: &mut Phone<S>,
    now: UnixTime,
    order: Option<SignedSunsetOrder>,
) -> Result<(), ClientError> {
    phone.start_sync(now)?;
    let mut result = Ok(());
    while let Some(request) = phone.poll_request() {
        if request.purpose == Purpose::FetchIndex {
            let body = index_with(order.clone());
            result = phone.handle_response(now, request.id, Response { status: 200, body });
        } else {
            let _ = phone.handle_failure(now, request.id);
        }
    }
    result
}

fn events<S: Store>(phone: &mut Phone<S>) -> Vec<PhoneEvent> {
    let mut out = Vec::new();
    while let Some(record) = phone.poll_event_record() {
        phone.acknowledge_event(record.id).unwrap();
        out.push(record.event);
    }
    out
}

/// `phone` hears a fresh peer for 10 minutes from `start`, and the encounter is closed.
fn meet<S: Store>(phone: &mut Phone<S>, seed: u8, start: UnixTime) {
    let mut peer = Phone::new(config(), MemoryStore::new(), [seed; 32]).unwrap();
    for scan in 0..=10 {
        hear(
            phone,
            &mut peer,
            start.plus_seconds(scan * 60),
            Signal::Attenuation(50),
        );
    }
    phone.handle_timeout(start.plus_seconds(3600)).unwrap();
    while let Some(r) = phone.poll_request() {
        let _ = phone.handle_failure(start.plus_seconds(3600), r.id);
    }
}

/// A phone in memory that met someone; the time after the meeting.
fn phone_that_met() -> (Phone<MemoryStore>, UnixTime) {
    let start = T0.plus_seconds(600);
    let mut phone = Phone::new(config(), MemoryStore::new(), [1; 32]).unwrap();
    meet(&mut phone, 9, start);
    (phone, start.plus_seconds(2 * 3600))
}

/// Every input that would broadcast, record, sync, report or match fails with `Ended`.
fn assert_stopped<S: Store>(phone: &mut Phone<S>, now: UnixTime) {
    let payload = [7u8; 32];
    let sighting = Sighting {
        payload: &payload,
        signal: Signal::Attenuation(50),
    };
    let code = ephemera_proto::auth::UploadCode::generate(
        &mut <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(5),
    );
    assert_eq!(phone.advertisement(now), Err(ClientError::Ended));
    assert_eq!(
        phone.handle_sighting(now, &sighting),
        Err(ClientError::Ended)
    );
    assert_eq!(phone.start_sync(now), Err(ClientError::Ended));
    assert_eq!(phone.handle_timeout(now), Err(ClientError::Ended));
    assert!(matches!(
        phone.start_report(now, &code, None, None),
        Err(ClientError::Ended)
    ));
    assert_eq!(phone.retry_report(now), Err(ClientError::Ended));
    assert!(matches!(
        phone.handle_batch(now, &[0u8; 64]),
        Err(ClientError::Ended)
    ));
    assert_eq!(phone.exposures(now), Err(ClientError::Ended));
    assert_eq!(phone.set_paused(false), Err(ClientError::Ended));
    assert_eq!(
        phone.confirm_time(now, now).map(|_| ()),
        Err(ClientError::Ended)
    );
    assert_eq!(phone.poll_request(), None);
    assert_eq!(phone.poll_timeout(), None);
    let status = phone.status();
    assert!(status.ended && !status.tracing, "{status:?}");
    assert_eq!(status.ends_at, None);
    assert_eq!(phone.stored_encounters().unwrap(), 0);
}

/// The order was rejected, and the sync round went on without it.
fn assert_only_rejected(seen: &[PhoneEvent], what: &str) {
    assert_eq!(
        seen.first(),
        Some(&PhoneEvent::SunsetOrderRejected),
        "{what}"
    );
    assert!(
        seen[1..]
            .iter()
            .all(|e| matches!(e, PhoneEvent::SyncCompleted { .. })),
        "{what}: {seen:?}"
    );
}

#[test]
fn forged_partial_and_foreign_orders_are_ignored_and_erase_nothing() {
    let (mut phone, now) = phone_that_met();
    let met = phone.stored_encounters().unwrap();
    assert!(met > 0);
    let issued = now.minus_seconds(DAY);
    let effective = now.plus_seconds(DAY);
    let fed = crate::config::DEFAULT_FEDERATION;
    let outsider = Ed25519SigningKey::from_seed(&[0x99; 32]);
    let mut forged = order_for(fed, SunsetScope::Federation, issued, effective, &[0]);
    forged.sign(&outsider);
    let mut altered = order_for(fed, SunsetScope::Federation, issued, effective, &[0, 1]);
    altered.order.reason = "altered after signing".into();
    let mut other_committee = order_for(fed, SunsetScope::Federation, issued, effective, &[0, 1]);
    other_committee.order.committee = ephemera_proto::sunset::CommitteeId([7; 32]);
    let cases = [
        ("forged", forged),
        ("altered", altered),
        (
            "partial",
            order_for(fed, SunsetScope::Federation, issued, effective, &[1]),
        ),
        (
            "another federation",
            order_for(
                "elsewhere",
                SunsetScope::Federation,
                issued,
                effective,
                &[0, 1],
            ),
        ),
        ("another committee", other_committee),
        (
            "post-dated",
            order_for(
                fed,
                SunsetScope::Federation,
                now.plus_seconds(3600),
                effective.plus_seconds(DAY),
                &[0, 1],
            ),
        ),
    ];
    for (i, (what, order)) in cases.into_iter().enumerate() {
        // Already in effect, were it valid: nothing may be erased.
        let mut past = order.clone();
        past.order.effective_at = past.order.issued_at;
        for order in [order, past] {
            assert_eq!(sync_with(&mut phone, now, Some(order)), Ok(()), "{what}");
            assert_only_rejected(&events(&mut phone), what);
        }
        let status = phone.status();
        assert_eq!(status.sunset_orders_rejected, 2 * (i as u64 + 1), "{what}");
        assert_eq!(status.ends_at, None, "{what}: nothing kept");
        assert!(!status.ended, "{what}");
        assert_eq!(phone.store().meta(MetaKey::SunsetOrder).unwrap(), None);
        assert_eq!(phone.stored_encounters().unwrap(), met, "{what}: erased");
        phone.advertisement(now).unwrap();
    }
    // A phone configured with no committee verifies no order, even a valid one.
    let mut unconfigured = config();
    unconfigured.sunset.committee = None;
    let mut bare = Phone::new(unconfigured, MemoryStore::new(), [2; 32]).unwrap();
    let valid_now = order_for(fed, SunsetScope::Federation, issued, issued, &[0, 1]);
    assert_eq!(sync_with(&mut bare, now, Some(valid_now)), Ok(()));
    assert_only_rejected(&events(&mut bare), "no committee");
    bare.advertisement(now).unwrap();
}

#[test]
fn an_order_for_another_authority_is_not_ours_and_one_for_ours_is() {
    let now = T0.plus_seconds(600);
    let issued = now.minus_seconds(DAY);
    let fed = crate::config::DEFAULT_FEDERATION;
    let other = Ed25519SigningKey::from_seed(&[0x42; 32]).public_key();
    let mut phone = Phone::new(config(), MemoryStore::new(), [1; 32]).unwrap();
    let theirs = order_for(fed, SunsetScope::Authority(other), issued, issued, &[0, 1]);
    assert_eq!(sync_with(&mut phone, now, Some(theirs)), Ok(()));
    let status = phone.status();
    assert!(!status.ended && status.ends_at.is_none(), "{status:?}");
    assert_eq!(status.sunset_orders_rejected, 0, "valid, only not ours");
    assert!(!events(&mut phone).contains(&PhoneEvent::SunsetOrderRejected));
    let ours = order_for(
        fed,
        SunsetScope::Authority(authority()),
        issued,
        now.plus_seconds(DAY),
        &[1, 2],
    );
    assert_eq!(sync_with(&mut phone, now, Some(ours)), Ok(()));
    assert_eq!(phone.status().ends_at, Some(now.plus_seconds(DAY)));
}

#[test]
fn a_valid_order_is_scheduled_then_erases_and_stops_the_phone_at_its_time() {
    let (mut phone, now) = phone_that_met();
    let order = valid_order(now.minus_seconds(3600));
    let effective = order.order.effective_at;
    assert_eq!(sync_with(&mut phone, now, Some(order.clone())), Ok(()));
    let seen = events(&mut phone);
    assert!(
        seen.contains(&PhoneEvent::SunsetScheduled {
            effective_at: effective,
            reason: "the epidemic is over".into()
        }),
        "{seen:?}"
    );
    assert_eq!(phone.status().ends_at, Some(effective));
    assert!(phone.poll_timeout().unwrap() <= effective);
    // The same order again is not announced again.
    assert_eq!(sync_with(&mut phone, now, Some(order.clone())), Ok(()));
    assert!(
        !events(&mut phone)
            .iter()
            .any(|e| matches!(e, PhoneEvent::SunsetScheduled { .. }))
    );
    // The phone works until the order's time, even if it never syncs again.
    let met = phone.stored_encounters().unwrap();
    meet(&mut phone, 10, now.plus_seconds(3600));
    assert!(phone.stored_encounters().unwrap() > met);
    phone.advertisement(effective.minus_seconds(60)).unwrap();
    // At the time, queries refuse and the first input ends it.
    assert!(phone.exposures(effective.minus_seconds(60)).is_ok());
    assert_eq!(phone.exposures(effective), Err(ClientError::Ended));
    assert!(!phone.status().ended, "a query erases nothing");
    assert_eq!(phone.advertisement(effective), Err(ClientError::Ended));
    let ended = EndReason::Order {
        id: order.order.id(),
        effective_at: effective,
        reason: "the epidemic is over".into(),
    };
    assert_eq!(events(&mut phone), vec![PhoneEvent::Ended(ended.clone())]);
    assert_eq!(phone.ended(), Some(&ended));
    assert_stopped(&mut phone, effective.plus_seconds(60));
    // The store keeps the end marker and nothing else of the phone.
    let store = phone.into_store();
    assert!(store.meta(MetaKey::Ended).unwrap().is_some());
    for key in [
        MetaKey::SyncCursor,
        MetaKey::PetRatchet,
        MetaKey::OpenEncounters2,
        MetaKey::PendingReport2,
        MetaKey::Clock,
        MetaKey::SunsetOrder,
    ] {
        assert_eq!(store.meta(key).unwrap(), None, "{key:?}");
    }
    assert_eq!(store.encounter_count(), 0);
    assert!(store.window_days().unwrap().is_empty());
    // A phone made again on the store stays ended.
    let mut again = Phone::new(config(), store, [3; 32]).unwrap();
    assert_stopped(&mut again, effective.plus_seconds(DAY));
}

#[test]
fn an_order_already_in_effect_ends_the_phone_on_the_index_that_carries_it() {
    let (mut phone, now) = phone_that_met();
    let fed = crate::config::DEFAULT_FEDERATION;
    let issued = now.minus_seconds(DAY);
    let order = order_for(
        fed,
        SunsetScope::Federation,
        issued,
        now.minus_seconds(60),
        &[0, 1],
    );
    assert_eq!(
        sync_with(&mut phone, now, Some(order)),
        Err(ClientError::Ended)
    );
    let seen = events(&mut phone);
    assert!(
        matches!(
            seen.last(),
            Some(PhoneEvent::Ended(EndReason::Order { .. }))
        ),
        "{seen:?}"
    );
    assert_stopped(&mut phone, now);
}

#[test]
fn the_end_of_life_stops_a_phone_that_never_hears_of_an_order() {
    let start = T0.plus_seconds(600);
    let end_of_life = start.plus_seconds(5 * DAY);
    let config = config().with_end_of_life(end_of_life);
    let mut phone = Phone::new(config.clone(), MemoryStore::new(), [1; 32]).unwrap();
    meet(&mut phone, 9, start);
    assert_eq!(phone.status().ends_at, Some(end_of_life));
    // Timers lead the app to the end: the last one fires at the end of life.
    let mut now = start.plus_seconds(3600);
    let mut fired = Ok(());
    while fired.is_ok() {
        now = phone.poll_timeout().unwrap();
        assert!(now <= end_of_life);
        fired = phone.handle_timeout(now);
        while let Some(r) = phone.poll_request() {
            let _ = phone.handle_failure(now, r.id);
        }
    }
    assert_eq!(fired, Err(ClientError::Ended));
    assert_eq!(now, end_of_life);
    assert_eq!(
        events(&mut phone).last(),
        Some(&PhoneEvent::Ended(EndReason::EndOfLife { at: end_of_life }))
    );
    assert_stopped(&mut phone, end_of_life);
    // An order taking effect after the end of life changes nothing (the earlier end
    // wins); an earlier order wins over the end of life.
    let mut late = Phone::new(config, MemoryStore::new(), [2; 32]).unwrap();
    let after = end_of_life.plus_seconds(DAY);
    let sooner = start.plus_seconds(DAY);
    for (effective, ends_at) in [(after, end_of_life), (sooner, sooner)] {
        let fed = crate::config::DEFAULT_FEDERATION;
        let order = order_for(fed, SunsetScope::Federation, start, effective, &[0, 1]);
        sync_with(&mut late, start, Some(order)).unwrap();
        assert_eq!(late.status().ends_at, Some(ends_at));
    }
}

#[test]
fn deleting_the_data_keeps_the_scheduled_order_and_the_end() {
    let now = T0.plus_seconds(600);
    let mut phone = Phone::new(config(), MemoryStore::new(), [1; 32]).unwrap();
    let order = valid_order(now);
    sync_with(&mut phone, now, Some(order.clone())).unwrap();
    phone.erase_all_data().unwrap();
    assert_eq!(phone.status().ends_at, Some(order.order.effective_at));
    let store = phone.into_store();
    let mut phone = Phone::new(config(), store, [2; 32]).unwrap();
    assert_eq!(phone.status().ends_at, Some(order.order.effective_at));
    assert_eq!(
        phone.handle_timeout(order.order.effective_at),
        Err(ClientError::Ended)
    );
    phone.erase_all_data().unwrap();
    let mut phone = Phone::new(config(), phone.into_store(), [3; 32]).unwrap();
    assert_stopped(&mut phone, order.order.effective_at);
}

#[test]
fn an_app_update_with_another_committee_drops_the_kept_order() {
    let now = T0.plus_seconds(600);
    let mut phone = Phone::new(config(), MemoryStore::new(), [1; 32]).unwrap();
    sync_with(&mut phone, now, Some(valid_order(now))).unwrap();
    let other =
        SunsetCommittee::new(&[Ed25519SigningKey::from_seed(&[0x77; 32]).public_key()], 1).unwrap();
    let phone = Phone::new(
        config().with_sunset_committee(other),
        phone.into_store(),
        [2; 32],
    )
    .unwrap();
    assert_eq!(phone.status().ends_at, None);
}

/// A `pet` phone on a folder meets people and gets an order; it restarts (the order is
/// kept), and at the order's time erases everything: afterwards no file of the folder holds
/// any value its database held, its day keys or its key ratchet, and after another restart
/// the phone is still stopped.
#[test]
fn erasure_on_a_folder_store_leaves_no_byte_of_the_data_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let start = T0.plus_seconds(600);
    let mut phone = Phone::new(config(), SledStore::open(dir.path()).unwrap(), [1; 32]).unwrap();
    for (i, seed) in [9u8, 10, 11].into_iter().enumerate() {
        meet(&mut phone, seed, start.plus_seconds(i as u64 * 4 * 3600));
    }
    let now = start.plus_seconds(14 * 3600);
    phone.advertisement(now).unwrap();
    let order = valid_order(now);
    sync_with(&mut phone, now, Some(order.clone())).unwrap();
    let met = phone.stored_encounters().unwrap();
    assert!(met >= 3, "{met}");
    drop(phone);

    // Restart: the order is kept, and everything else.
    let mut phone = Phone::new(config(), reopen(dir.path()), [2; 32]).unwrap();
    assert_eq!(phone.status().ends_at, Some(order.order.effective_at));
    assert_eq!(phone.stored_encounters().unwrap(), met);
    let later = now.plus_seconds(3600);
    phone.advertisement(later).unwrap();
    // What is on disk now: every sealed value, the day keys and the ratchet, each found
    // by the scan (so the scan below would find them too).
    let mut secrets: Vec<Vec<u8>> = phone.store().raw_values();
    assert!(secrets.len() >= 5, "{} values", secrets.len());
    let keys_file = std::fs::read(dir.path().join(crate::store::day_keys::FILE_NAME)).unwrap();
    let slot = crate::store::day_keys::SLOT_LEN;
    secrets.extend(
        keys_file
            .chunks_exact(slot)
            .filter(|s| s[0] == 1)
            .map(|s| s[5..].to_vec()),
    );
    let ratchet = phone.store().meta(MetaKey::PetRatchet).unwrap().unwrap();
    secrets.push(ratchet);
    let disk = folder_bytes(dir.path());
    for secret in &secrets {
        assert!(
            contains(&disk, secret),
            "a value is not found on disk before"
        );
    }
    let before = disk.len();
    drop(phone);

    // Restart again, past the order's time: the first input ends the phone.
    let mut phone = Phone::new(config(), reopen(dir.path()), [3; 32]).unwrap();
    let effective = order.order.effective_at;
    assert_eq!(phone.handle_timeout(effective), Err(ClientError::Ended));
    let disk = folder_bytes(dir.path());
    for secret in &secrets {
        assert!(
            !contains(&disk, secret),
            "a value is still on disk after the end"
        );
    }
    println!(
        "folder before the end {before} bytes, after {} bytes",
        disk.len()
    );
    assert_stopped(&mut phone, effective);
    drop(phone);

    let mut phone = Phone::new(config(), reopen(dir.path()), [4; 32]).unwrap();
    let seen = events(&mut phone);
    assert!(
        matches!(
            seen.as_slice(),
            [PhoneEvent::Ended(EndReason::Order { .. })]
        ),
        "{seen:?}"
    );
    assert_stopped(&mut phone, effective.plus_seconds(DAY));
}

/// `client/bindings/python/sunset_fixture.json`: a committee and orders for the Python
/// test, which cannot sign. Deterministic (Ed25519 signatures are): regenerated with
/// `EPHEMERA_WRITE_FIXTURE=1`, and checked to be what this code makes.
#[test]
fn the_python_fixture_is_current() {
    let issued = UnixTime(1_767_225_600); // 2026-01-01
    let valid = valid_order(issued);
    let mut forged = valid_order(issued);
    forged.order.reason = "altered after signing".into();
    let partial = order_for(
        crate::config::DEFAULT_FEDERATION,
        SunsetScope::Federation,
        issued,
        issued.plus_seconds(30 * DAY),
        &[1],
    );
    let keys: Vec<String> = sunset_keys()
        .iter()
        .map(|k| k.public_key().to_hex())
        .collect();
    let json = serde_json::json!({
        "committee_keys": keys,
        "threshold": 2,
        "issued_at": issued.0,
        "effective_at": valid.order.effective_at.0,
        "reason": valid.order.reason,
        "order_id": valid.order.id().to_string(),
        "index_with_valid": String::from_utf8(index_with(Some(valid))).unwrap(),
        "index_with_forged": String::from_utf8(index_with(Some(forged))).unwrap(),
        "index_with_partial": String::from_utf8(index_with(Some(partial))).unwrap(),
    });
    let text = serde_json::to_string_pretty(&json).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bindings/python/sunset_fixture.json");
    if std::env::var_os("EPHEMERA_WRITE_FIXTURE").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == text,
        "{} is stale: run with EPHEMERA_WRITE_FIXTURE=1",
        path.display()
    );
}
