//! Frozen test vectors for the `pet` scheme, for this and other implementations.
//!
//! `tests/vectors/pet.json` was printed once by the ignored test [`print_vectors`] and is
//! frozen: [`frozen_vectors_hold`] recomputes every value from its inputs. If it fails, the
//! protocol changed; do not regenerate the file to make it pass.
//!
//! Every value is lower-case hex. Per phone: daily secret + interval → `private_key` (the
//! 32-byte HKDF output, before X25519 clamping) → `public_key` → `slice_tag` and the four
//! encoded `slices`. Per encounter: both public keys (and phone A's key pair) →
//! `shared_secret`, `token_low`, `token_high` and the role of phone A.

mod pet_common;

use std::collections::BTreeMap;

use ephemera_proto::pet::{
    self, DailySecret, EphemeralKeyPair, EphemeralPublicKey, KeySlice, Role, encounter_tokens,
    reassemble, slice_tag, slices,
};
use ephemera_proto::{IntervalNumber, PetError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use pet_common::{hkdf, label_map, unhex};

/// The seed of the phones' daily secrets.
const SEED: u64 = 0x6570_6865_6d65_7261; // "ephemera"
/// Intervals: 2020-07-01 00:00, 00:10 and 23:50 UTC.
const INTERVALS: [u32; 3] = [2_655_936, 2_655_937, 2_656_079];
/// When the file was generated and frozen.
const FROZEN_ON: &str = "2026-11-23";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Vectors {
    source: String,
    labels: BTreeMap<String, String>,
    phones: Vec<Phone>,
    encounters: Vec<Encounter>,
    invalid_slices: Vec<InvalidSlice>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Phone {
    name: String,
    daily_secret: String,
    keys: Vec<KeyVector>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct KeyVector {
    interval: u32,
    private_key: String,
    public_key: String,
    slice_tag: String,
    slices: Vec<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Encounter {
    interval: u32,
    a: String,
    b: String,
    a_public_key: String,
    b_public_key: String,
    shared_secret: String,
    a_role: String,
    token_low: String,
    token_high: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct InvalidSlice {
    bytes: String,
    error: String,
}

/// The scheme's HKDF salts and labels, by the name of their Rust constant.
fn labels() -> BTreeMap<String, String> {
    label_map(&[
        ("EPHEMERAL_KEY_SALT", pet::EPHEMERAL_KEY_SALT),
        ("EPHEMERAL_KEY_INFO", pet::EPHEMERAL_KEY_INFO),
        ("SLICE_TAG_SALT", pet::SLICE_TAG_SALT),
        ("SLICE_TAG_INFO", pet::SLICE_TAG_INFO),
        ("ENCOUNTER_SALT", pet::ENCOUNTER_SALT),
        ("TOKEN_LOW_INFO", pet::TOKEN_LOW_INFO),
        ("TOKEN_HIGH_INFO", pet::TOKEN_HIGH_INFO),
    ])
}

/// The interval's private key as the spec states it: HKDF output before clamping.
fn private_key(secret: &[u8; 32], interval: u32) -> [u8; 32] {
    let mut sk = [0u8; 32];
    hkdf(
        pet::EPHEMERAL_KEY_SALT,
        secret,
        &[pet::EPHEMERAL_KEY_INFO, &interval.to_le_bytes()],
        &mut sk,
    );
    sk
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Low => "low",
        Role::High => "high",
    }
}

fn error_name(e: PetError) -> &'static str {
    match e {
        PetError::MalformedSlice => "malformed-slice",
        PetError::BadSliceIndex { .. } => "bad-slice-index",
        _ => "other",
    }
}

/// Malformed slices every implementation must reject, and why.
fn invalid_slice_inputs(valid: [u8; 16]) -> Vec<Vec<u8>> {
    let mut cases = vec![
        valid[..15].to_vec(),
        [&valid[..], &[0]].concat(),
        Vec::new(),
    ];
    for first in [0x00, 0x20, 0xf0, 0x14, 0x1f] {
        let mut bytes = valid;
        bytes[0] = first;
        cases.push(bytes.to_vec());
    }
    cases
}

fn generate() -> Vectors {
    let mut rng = ChaCha20Rng::seed_from_u64(SEED);
    let phones: Vec<(&str, DailySecret)> = vec![
        ("a", DailySecret::generate(&mut rng)),
        ("b", DailySecret::generate(&mut rng)),
        ("c", DailySecret::generate(&mut rng)),
    ];
    let pair = |secret: &DailySecret, i: u32| secret.ephemeral_key_pair(IntervalNumber(i));

    let phone_vectors = phones
        .iter()
        .map(|(name, secret)| Phone {
            name: (*name).to_owned(),
            daily_secret: hex::encode(secret.as_bytes()),
            keys: INTERVALS
                .iter()
                .map(|&i| {
                    let pk = pair(secret, i).public();
                    KeyVector {
                        interval: i,
                        private_key: hex::encode(private_key(secret.as_bytes(), i)),
                        public_key: hex::encode(pk.0),
                        slice_tag: hex::encode(slice_tag(&pk)),
                        slices: slices(&pk)
                            .iter()
                            .map(|s| hex::encode(s.encode()))
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();

    // a and b in every interval; then b and c, c and a in the first.
    let meetings = INTERVALS
        .iter()
        .map(|&i| (i, 0, 1))
        .chain([(INTERVALS[0], 1, 2), (INTERVALS[0], 2, 0)]);
    let encounters: Vec<Encounter> = meetings
        .map(|(i, x, y)| {
            let ((a_name, a_secret), (b_name, b_secret)) = (&phones[x], &phones[y]);
            let (a, b) = (pair(a_secret, i), pair(b_secret, i));
            let shared = x25519_dalek::x25519(private_key(a_secret.as_bytes(), i), b.public().0);
            let t = encounter_tokens(&a, &b.public()).expect("honest keys");
            let (low, high) = match t.role {
                Role::Low => (t.own, t.peer),
                Role::High => (t.peer, t.own),
            };
            Encounter {
                interval: i,
                a: (*a_name).to_owned(),
                b: (*b_name).to_owned(),
                a_public_key: hex::encode(a.public().0),
                b_public_key: hex::encode(b.public().0),
                shared_secret: hex::encode(shared),
                a_role: role_name(t.role).to_owned(),
                token_low: hex::encode(low.0),
                token_high: hex::encode(high.0),
            }
        })
        .collect();
    for role in ["low", "high"] {
        assert!(
            encounters.iter().any(|e| e.a_role == role),
            "no {role} role"
        );
    }

    let valid = slices(&pair(&phones[0].1, INTERVALS[0]).public())[0].encode();
    let invalid_slices = invalid_slice_inputs(valid)
        .into_iter()
        .map(|bytes| InvalidSlice {
            error: error_name(KeySlice::decode(&bytes).expect_err("invalid by construction"))
                .to_owned(),
            bytes: hex::encode(bytes),
        })
        .collect();

    Vectors {
        source: format!(
            "Generated by the ignored test `print_vectors` in proto/tests/pet_vectors.rs \
             (cargo test -p ephemera-proto --test pet_vectors -- --ignored print_vectors \
             --nocapture; daily secrets from ChaCha20Rng::seed_from_u64({SEED:#x})) on \
             {FROZEN_ON} and frozen: never regenerate it, a change here is a protocol change."
        ),
        labels: labels(),
        phones: phone_vectors,
        encounters,
        invalid_slices,
    }
}

/// Prints the vectors as JSON; run once, saved as `tests/vectors/pet.json`.
#[test]
#[ignore = "generator for tests/vectors/pet.json, which is frozen"]
fn print_vectors() {
    let json = serde_json::to_string_pretty(&generate()).expect("serialisable");
    println!("{json}");
}

fn key_pair(v: &Vectors, name: &str, interval: u32) -> (EphemeralKeyPair, [u8; 32]) {
    let phone = v
        .phones
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no phone {name:?}"));
    let secret: [u8; 32] = unhex(&phone.daily_secret);
    let pair = DailySecret::from_bytes(secret).ephemeral_key_pair(IntervalNumber(interval));
    (pair, private_key(&secret, interval))
}

#[test]
fn frozen_vectors_hold() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/pet.json");
    let json = std::fs::read_to_string(path).expect("tests/vectors/pet.json is readable");
    let v: Vectors = serde_json::from_str(&json).expect("pet.json parses");
    assert!(v.source.contains("print_vectors") && v.source.contains("frozen"));
    assert_eq!(
        v.labels,
        labels(),
        "a label changed: that is a protocol change"
    );
    assert!(!v.phones.is_empty() && !v.encounters.is_empty() && !v.invalid_slices.is_empty());

    for phone in &v.phones {
        assert!(!phone.keys.is_empty());
        for k in &phone.keys {
            let (pair, sk) = key_pair(&v, &phone.name, k.interval);
            assert_eq!(
                hex::encode(sk),
                k.private_key,
                "{} {}",
                phone.name,
                k.interval
            );
            let pk: [u8; 32] = unhex(&k.public_key);
            assert_eq!(pair.public().0, pk);
            assert_eq!(
                x25519_dalek::x25519(sk, x25519_dalek::X25519_BASEPOINT_BYTES),
                pk
            );
            let pk = EphemeralPublicKey(pk);
            assert_eq!(hex::encode(slice_tag(&pk)), k.slice_tag);
            let mut expected_tag = [0u8; 4];
            hkdf(
                pet::SLICE_TAG_SALT,
                &pk.0,
                &[pet::SLICE_TAG_INFO],
                &mut expected_tag,
            );
            assert_eq!(hex::encode(expected_tag), k.slice_tag);
            let ours: Vec<String> = slices(&pk)
                .iter()
                .map(|s| hex::encode(s.encode()))
                .collect();
            assert_eq!(ours, k.slices);
            // Any 3 of the frozen slices rebuild the key.
            let decoded: Vec<KeySlice> = k
                .slices
                .iter()
                .map(|s| KeySlice::decode(&unhex::<16>(s)).expect("valid slice"))
                .collect();
            for lost in 0..decoded.len() {
                let mut kept = decoded.clone();
                kept.remove(lost);
                assert_eq!(reassemble(&kept), Ok(pk));
            }
        }
    }

    for e in &v.encounters {
        let (a, a_sk) = key_pair(&v, &e.a, e.interval);
        let (b, b_sk) = key_pair(&v, &e.b, e.interval);
        assert_eq!(hex::encode(a.public().0), e.a_public_key);
        assert_eq!(hex::encode(b.public().0), e.b_public_key);
        let shared = x25519_dalek::x25519(a_sk, b.public().0);
        assert_eq!(shared, x25519_dalek::x25519(b_sk, a.public().0));
        assert_eq!(hex::encode(shared), e.shared_secret);

        // The tokens as the spec states them, computed here with `ring` alone.
        let (low, high) = if a.public() < b.public() {
            (a.public(), b.public())
        } else {
            (b.public(), a.public())
        };
        let ikm = [&shared[..], &low.0, &high.0].concat();
        let mut token_low = [0u8; 16];
        let mut token_high = [0u8; 16];
        hkdf(
            pet::ENCOUNTER_SALT,
            &ikm,
            &[pet::TOKEN_LOW_INFO],
            &mut token_low,
        );
        hkdf(
            pet::ENCOUNTER_SALT,
            &ikm,
            &[pet::TOKEN_HIGH_INFO],
            &mut token_high,
        );
        assert_eq!(hex::encode(token_low), e.token_low);
        assert_eq!(hex::encode(token_high), e.token_high);

        // And as the library derives them, from both sides.
        let ta = encounter_tokens(&a, &b.public()).expect("honest keys");
        let tb = encounter_tokens(&b, &a.public()).expect("honest keys");
        assert_eq!(role_name(ta.role), e.a_role);
        assert_eq!(ta.role, tb.role.opposite());
        let (a_own, a_peer) = match ta.role {
            Role::Low => (&e.token_low, &e.token_high),
            Role::High => (&e.token_high, &e.token_low),
        };
        assert_eq!(&hex::encode(ta.own.0), a_own);
        assert_eq!(&hex::encode(ta.peer.0), a_peer);
        assert_eq!(&hex::encode(tb.own.0), a_peer);
        assert_eq!(&hex::encode(tb.peer.0), a_own);
    }

    for role in [Role::Low, Role::High] {
        assert!(v.encounters.iter().any(|e| e.a_role == role_name(role)));
    }

    for case in &v.invalid_slices {
        let bytes = hex::decode(&case.bytes).expect("hex");
        let err = KeySlice::decode(&bytes).expect_err(&case.bytes);
        assert_eq!(error_name(err), case.error, "{}", case.bytes);
    }
}
