//! The `pet` key ratchet on the phone: what a seized folder reveals, tokens computed before
//! the key that made them is erased, and a restart that resumes the chain.

use ephemera_proto::pet::EncounterToken;
use ephemera_proto::{IntervalNumber, SchemeKind, UnixTime};

use super::forgetting::{contains, folder_bytes};
use super::util::{Air, FakeNode, PhonePair, T0, hear, stored_ratchet};
use crate::store::{Evidence, MemoryStore, SledStore, Store};
use crate::{ClientConfig, Phone, Signal};

/// An interval well inside a day.
fn first_interval() -> IntervalNumber {
    T0.day().plus(1).first_interval().plus(40)
}

fn config() -> ClientConfig {
    ClientConfig::new(SchemeKind::Pet).with_decoy_rate(0.0)
}

/// `sk(i)` from the state at `i`, as docs/PROTOCOL.md states it (HKDF from `ring`, not
/// from proto).
fn spec_private_key(state: &[u8; 32], interval: IntervalNumber) -> [u8; 32] {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"ephemera/pet/v1/salt/ratchet")
        .extract(state);
    let info: [&[u8]; 2] = [b"ephemera/pet/v1/ratchet-key", &interval.0.to_le_bytes()];
    let mut sk = [0u8; 32];
    prk.expand(&info, Len)
        .and_then(|okm| okm.fill(&mut sk))
        .unwrap();
    sk
}

/// Six intervals of a phone on a folder, hearing a peer in each: after every step the
/// folder holds the current state (the scan finds it) and no earlier state or interval
/// key; the day after, none of the day's.
#[test]
fn a_seized_folder_holds_no_state_or_key_of_an_earlier_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut phone = Phone::new(config(), SledStore::open(dir.path()).unwrap(), [1; 32]).unwrap();
    let mut peer = Phone::new(config(), MemoryStore::new(), [2; 32]).unwrap();
    let mut seen: Vec<(IntervalNumber, [u8; 32], [u8; 32])> = Vec::new();
    for step in 0..6 {
        let interval = first_interval().plus(step);
        let mut broadcast = Vec::new();
        for scan in 0..4 {
            let now = interval.start().plus_seconds(scan * 150);
            broadcast = phone.advertisement(now).unwrap().full;
            hear(&mut phone, &mut peer, now, Signal::Attenuation(55));
        }
        let kept = stored_ratchet(phone.store()).expect("a ratchet is kept");
        assert_eq!(kept.interval(), interval);
        let sk = spec_private_key(kept.state_bytes(), interval);
        // What the phone broadcasts is the key of the state it keeps (proto's vectors tie
        // that key to the spec's `sk`).
        assert_eq!(broadcast, kept.key_pair().public().0);
        seen.push((interval, *kept.state_bytes(), sk));
        let disk = folder_bytes(dir.path());
        assert!(
            contains(&disk, kept.state_bytes()),
            "the scan finds the current state"
        );
        for (old, state, sk) in &seen[..seen.len() - 1] {
            assert!(!contains(&disk, state), "step {step}: the state of {old:?}");
            assert!(!contains(&disk, sk), "step {step}: the key of {old:?}");
        }
    }
    assert!(phone.store().own_key_days().unwrap().is_empty());
    let mut kept_encounters = 0;
    phone.close_all_encounters().unwrap();
    phone
        .store()
        .for_each_encounter(&mut |r| {
            assert!(matches!(r.evidence, Evidence::Pet { .. }));
            kept_encounters += 1;
        })
        .unwrap();
    assert!(kept_encounters >= 6, "{kept_encounters}");

    // The first input of the next day erases the last state of this one.
    let next_day = first_interval().day().plus(1).start().plus_seconds(60);
    phone.handle_timeout(next_day).unwrap();
    assert!(stored_ratchet(phone.store()).is_none());
    let disk = folder_bytes(dir.path());
    for (old, state, sk) in &seen {
        assert!(!contains(&disk, state), "next day: the state of {old:?}");
        assert!(!contains(&disk, sk), "next day: the key of {old:?}");
    }
}

/// The tokens of a meeting are computed while it happens; closed 40 minutes later, after
/// both ratchets moved on four times, each phone's own tokens are the other's peer tokens.
#[test]
fn tokens_computed_when_heard_match_after_the_ratchets_moved_on() {
    let node = FakeNode::new(3);
    let start: UnixTime = first_interval().start().plus_seconds(30);
    let mut pair = PhonePair::new(node.config(SchemeKind::Pet), start, Air::Full);
    pair.together(8 * 60, 10);
    pair.apart(40 * 60);
    let tokens = |phone: &Phone<MemoryStore>| {
        let (mut own, mut peer) = (Vec::<EncounterToken>::new(), Vec::new());
        phone
            .store()
            .for_each_encounter(&mut |r| {
                assert_eq!(r.interval, first_interval());
                if let Evidence::Pet { own: o, peer: p } = r.evidence {
                    own.push(o);
                    peer.push(p);
                }
            })
            .unwrap();
        own.sort();
        peer.sort();
        (own, peer)
    };
    let (a_own, a_peer) = tokens(&pair.a);
    let (b_own, b_peer) = tokens(&pair.b);
    assert_eq!(a_own.len(), 1, "one encounter each, in one interval");
    assert_eq!(a_own, b_peer);
    assert_eq!(b_own, a_peer);
    assert_ne!(a_own, a_peer);
    for phone in [&pair.a, &pair.b] {
        let kept = stored_ratchet(phone.store()).expect("kept");
        assert!(kept.interval() >= first_interval().plus(4), "{kept:?}");
    }
}

/// A phone killed mid-day and made again on its folder (with another seed, so nothing can
/// be drawn anew to the same effect) broadcasts what a phone never stopped would: the same
/// key within the interval, and the chain's key intervals later.
#[test]
fn a_restart_mid_day_resumes_the_ratchet() {
    let dir = tempfile::tempdir().unwrap();
    let t = first_interval().start().plus_seconds(100);
    let times = [t, t.plus_seconds(100), t.plus_seconds(1500)];
    let mut twin = Phone::new(config(), MemoryStore::new(), [5; 32]).unwrap();
    let expected: Vec<Vec<u8>> = times
        .iter()
        .map(|now| twin.advertisement(*now).unwrap().full)
        .collect();
    assert_eq!(expected[0], expected[1]);
    assert_ne!(expected[1], expected[2]);
    let seeds = [[5; 32], [6; 32], [7; 32]];
    for (now, (seed, want)) in times.iter().zip(seeds.iter().zip(&expected)) {
        // Dropped at the end of each pass as if killed: no shutdown call.
        let mut phone = Phone::new(config(), SledStore::open(dir.path()).unwrap(), *seed).unwrap();
        assert_eq!(&phone.advertisement(*now).unwrap().full, want, "{now:?}");
        assert_eq!(
            stored_ratchet(phone.store()).unwrap().interval(),
            now.interval()
        );
    }
}
