//! Frozen test vectors for venue check-in (`proto::venue`), for this and other
//! implementations.
//!
//! `tests/vectors/venue.json` holds two parts:
//! - `crowdnotifier`: CrowdNotifier's own published vectors for the HKDF nonces and the
//!   hourly identities (transcribed from its Android SDK, source cited in the file), which
//!   do not touch the curve: [`crowdnotifier_vectors_hold`] checks them byte for byte.
//! - everything else was printed once by the ignored test [`print_vectors`] from a seeded
//!   RNG and is frozen: [`frozen_vectors_hold`] recomputes every value, and checks each
//!   derived one independently where it can (HKDF and SHA-256 straight from `ring`, curve
//!   operations straight from `blstrs`). If it fails, the protocol changed; do not
//!   regenerate the file to make it pass.
//!
//! Every byte string is lower-case hex; points are compressed (48 bytes in G1, 96 in G2),
//! scalars 32 bytes big-endian.

use std::collections::BTreeMap;

use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar};
use ephemera_proto::UnixTime;
use ephemera_proto::sealed::SealingSecretKey;
use ephemera_proto::venue::identity::{
    self, PayloadSecrets, identity_from_parts, pre_identity, time_key,
};
use ephemera_proto::venue::{
    self, CheckIn, CheckInIndex, EntryCode, MasterSecretShare, Notice, TraceCode, VenueHour,
    VenueTrace, check_in, create_venue, open_authority_share,
};
use group::Group;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ring::digest;
use serde::{Deserialize, Serialize};

/// The seed of every random draw, in the order [`generate`] makes them.
const SEED: u64 = 0x7665_6e75_6531; // "venue1"
/// When the file was generated and frozen.
const FROZEN_ON: &str = "2026-12-07";
const ARRIVAL: u64 = 1_700_000_000; // 2023-11-14 22:13:20 UTC
const DEPARTURE: u64 = ARRIVAL + 5400;
const CASE_FROM: u64 = ARRIVAL + 600;
const CASE_UNTIL: u64 = DEPARTURE + 600;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Vectors {
    source: String,
    labels: BTreeMap<String, String>,
    crowdnotifier: CrowdNotifier,
    venue: Venue,
    hours: Vec<Hour>,
    visit: Visit,
    notice: NoticeVector,
    warnings: Vec<WarningVector>,
    invalid: Vec<Invalid>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct CrowdNotifier {
    source: String,
    hkdf: Vec<CnHkdf>,
    identity: Vec<CnIdentity>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct CnHkdf {
    payload: String,
    nonce_preid: String,
    nonce_timekey: String,
    notification_key: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct CnIdentity {
    payload: String,
    interval_start: u64,
    interval_length: u32,
    identity: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Venue {
    authority_seed: String,
    authority_public_key: String,
    venue_share: String,
    authority_share: String,
    master_public_key: String,
    description: String,
    address: String,
    valid_from: u64,
    valid_until: u64,
    entry_code: String,
    nonce_preid: String,
    nonce_timekey: String,
    notification_key: String,
    pre_identity: String,
    sealed_authority_share: String,
    trace_code: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Hour {
    hour: u32,
    interval_start: u64,
    time_key: String,
    identity: String,
    h1: String,
    venue_partial_key: String,
    authority_partial_key: String,
    trace_key: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Visit {
    arrival: u64,
    departure: u64,
    record: String,
    check_ins: Vec<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct NoticeVector {
    case_from: u64,
    case_until: u64,
    message: String,
    venue_traces: Vec<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct WarningVector {
    day: u32,
    hours: Vec<u32>,
    message: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Invalid {
    kind: String,
    bytes: String,
    error: String,
}

fn labels() -> BTreeMap<String, String> {
    let list: [(&str, &[u8]); 10] = [
        ("H1_DST", venue::hash::H1_DST),
        ("H3_DST", venue::hash::H3_DST),
        ("HT_LABEL", venue::hash::HT_LABEL),
        ("H4_LABEL", venue::hash::H4_LABEL),
        ("NONCES_INFO", identity::NONCES_INFO),
        ("PREID_LABEL", identity::PREID_LABEL),
        ("TIMEKEY_LABEL", identity::TIMEKEY_LABEL),
        ("ID_LABEL", identity::ID_LABEL),
        ("AUTHORITY_SHARE_INFO", venue::AUTHORITY_SHARE_INFO),
        ("NOTICE_LABEL", venue::NOTICE_LABEL),
    ];
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), String::from_utf8(v.to_vec()).unwrap()))
        .collect()
}

/// A compressed point with a small x on the curve but outside the prime-order subgroup.
fn off_subgroup<const N: usize>(decode: impl Fn(&[u8; N]) -> Option<bool>) -> [u8; N] {
    (1u8..=255)
        .map(|x| {
            let mut bytes = [0u8; N];
            bytes[0] = 0x80;
            bytes[N - 1] = x;
            bytes
        })
        .find(|b| decode(b) == Some(false))
        .expect("a small x off the subgroup")
}

fn off_subgroup_g1() -> [u8; 48] {
    off_subgroup(|b| {
        Option::<G1Affine>::from(G1Affine::from_compressed_unchecked(b))
            .map(|p| bool::from(p.is_torsion_free()))
    })
}

fn off_subgroup_g2() -> [u8; 96] {
    off_subgroup(|b| {
        Option::<G2Affine>::from(G2Affine::from_compressed_unchecked(b))
            .map(|p| bool::from(p.is_torsion_free()))
    })
}

/// The error decoding `bytes` as a `kind` gives, as `Debug` prints it.
fn decode_error(kind: &str, bytes: &[u8]) -> String {
    match kind {
        "entry_code" => format!("{:?}", EntryCode::from_bytes(bytes).unwrap_err()),
        "check_in" => format!("{:?}", CheckIn::from_bytes(bytes).unwrap_err()),
        "venue_trace" => format!("{:?}", VenueTrace::from_bytes(bytes).unwrap_err()),
        other => panic!("unknown kind {other}"),
    }
}

fn invalid_inputs(entry: &[u8], check_in: &[u8], trace: &[u8]) -> Vec<Invalid> {
    let mut g1_identity = [0u8; 48];
    g1_identity[0] = 0xc0;
    let mut g2_identity = [0u8; 96];
    g2_identity[0] = 0xc0;
    let with = |base: &[u8], at: usize, patch: &[u8]| {
        let mut b = base.to_vec();
        b[at..at + patch.len()].copy_from_slice(patch);
        b
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("entry_code", with(entry, 1, &g2_identity)),
        ("entry_code", with(entry, 1, &off_subgroup_g2())),
        ("entry_code", with(entry, 1, &[0xff; 96])),
        ("entry_code", with(entry, 0, &[2])),
        ("entry_code", entry[..entry.len() - 1].to_vec()),
        ("check_in", with(check_in, 5, &g2_identity)),
        ("check_in", with(check_in, 5, &off_subgroup_g2())),
        ("check_in", check_in[..100].to_vec()),
        ("venue_trace", with(trace, 37, &g1_identity)),
        ("venue_trace", with(trace, 37, &off_subgroup_g1())),
        ("venue_trace", with(trace, 0, &[0])),
    ];
    cases
        .drain(..)
        .map(|(kind, bytes)| Invalid {
            kind: kind.to_owned(),
            error: decode_error(kind, &bytes),
            bytes: hex::encode(bytes),
        })
        .collect()
}

/// The warnings matching `traces` against `check_ins` gives, as the file lists them.
fn warnings_of(check_ins: Vec<CheckIn>, traces: &[VenueTrace]) -> Vec<WarningVector> {
    CheckInIndex::new(check_ins)
        .match_traces(traces)
        .into_iter()
        .map(|w| WarningVector {
            day: w.day.0,
            hours: w.hours.iter().map(|h| h.0).collect(),
            message: w.message,
        })
        .collect()
}

fn generate(crowdnotifier: CrowdNotifier) -> Vectors {
    let mut rng = ChaCha20Rng::seed_from_u64(SEED);
    let authority = SealingSecretKey::generate(&mut rng);
    let (description, address) = ("Café du Commerce", "Rue du Marché 1, 1204 Genève");
    let (valid_from, valid_until) = (UnixTime(1_699_999_200), UnixTime(1_731_535_200));
    let (entry, trace) = create_venue(
        &authority.public_key(),
        description,
        address,
        valid_from,
        valid_until,
        &mut rng,
    )
    .expect("valid venue");
    let trace_bytes = trace.to_bytes();
    let entry_bytes = entry.to_bytes();
    // The venue share sits just before the sealed authority share at the end.
    let share_at = trace_bytes.len() - venue::SEALED_SHARE_LEN - 32;
    let venue_share: [u8; 32] = trace_bytes[share_at..share_at + 32].try_into().unwrap();
    let venue_share = MasterSecretShare::from_bytes(&venue_share, "venue share").unwrap();
    let authority_share =
        open_authority_share(&authority, &entry, trace.sealed_authority_share()).unwrap();
    let secrets = PayloadSecrets::derive(&entry_bytes);
    let preid = pre_identity(&entry_bytes, &secrets);

    let check_ins = check_in(&entry, UnixTime(ARRIVAL), UnixTime(DEPARTURE), &mut rng).unwrap();
    let first = check_ins.first().unwrap().hour();
    let last = check_ins.last().unwrap().hour();
    let keys = trace.trace_keys(&authority, first, last).unwrap();
    let hours = keys
        .iter()
        .map(|k| {
            let start = k.hour.start().0;
            let id = k.identity;
            Hour {
                hour: k.hour.0,
                interval_start: start,
                time_key: hex::encode(time_key(&secrets, start, 3600)),
                identity: hex::encode(id.0),
                h1: hex::encode(
                    G1Affine::from(G1Projective::hash_to_curve(&id.0, venue::hash::H1_DST, &[]))
                        .to_compressed(),
                ),
                venue_partial_key: hex::encode(venue_share.derive_key(&id).to_bytes()),
                authority_partial_key: hex::encode(authority_share.derive_key(&id).to_bytes()),
                trace_key: hex::encode(k.key.to_bytes()),
            }
        })
        .collect();
    let notice = Notice {
        case_from: UnixTime(CASE_FROM),
        case_until: UnixTime(CASE_UNTIL),
        message: "You shared a room with a case: watch for symptoms for 10 days.".into(),
    };
    let traces: Vec<VenueTrace> = keys
        .into_iter()
        .map(|k| notice.seal(&entry, k, &mut rng).unwrap())
        .collect();
    let warnings = warnings_of(check_ins.clone(), &traces);
    let mut record = Vec::new();
    record.extend_from_slice(&ARRIVAL.to_be_bytes());
    record.extend_from_slice(&DEPARTURE.to_be_bytes());
    record.extend_from_slice(&secrets.notification_key);
    let invalid = invalid_inputs(
        &entry_bytes,
        &check_ins[0].to_bytes(),
        &traces[0].to_bytes(),
    );

    Vectors {
        source: format!(
            "Generated by the ignored test `print_vectors` in proto/tests/venue_vectors.rs \
             (cargo test -p ephemera-proto --test venue_vectors -- --ignored print_vectors \
             --nocapture; every random draw from ChaCha20Rng::seed_from_u64({SEED:#x}), in \
             the order of `generate`) on {FROZEN_ON} and frozen: never regenerate it, a \
             change here is a protocol change. `crowdnotifier` is CrowdNotifier's, cited in \
             its own `source`."
        ),
        labels: labels(),
        crowdnotifier,
        venue: Venue {
            authority_seed: hex::encode(authority.seed()),
            authority_public_key: hex::encode(authority.public_key().0),
            venue_share: hex::encode(venue_share.to_bytes().as_ref()),
            authority_share: hex::encode(authority_share.to_bytes().as_ref()),
            master_public_key: hex::encode(entry.master_public_key().to_bytes()),
            description: description.into(),
            address: address.into(),
            valid_from: valid_from.0,
            valid_until: valid_until.0,
            entry_code: hex::encode(&entry_bytes),
            nonce_preid: hex::encode(secrets.nonce_preid),
            nonce_timekey: hex::encode(secrets.nonce_timekey),
            notification_key: hex::encode(secrets.notification_key),
            pre_identity: hex::encode(preid),
            sealed_authority_share: hex::encode(trace.sealed_authority_share()),
            trace_code: hex::encode(trace_bytes.as_slice()),
        },
        hours,
        visit: Visit {
            arrival: ARRIVAL,
            departure: DEPARTURE,
            record: hex::encode(record),
            check_ins: check_ins
                .iter()
                .map(|c| hex::encode(c.to_bytes()))
                .collect(),
        },
        notice: NoticeVector {
            case_from: CASE_FROM,
            case_until: CASE_UNTIL,
            message: notice.message,
            venue_traces: traces.iter().map(|t| hex::encode(t.to_bytes())).collect(),
        },
        warnings,
        invalid,
    }
}

fn frozen() -> Vectors {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/venue.json");
    let json = std::fs::read_to_string(path).expect("tests/vectors/venue.json is readable");
    serde_json::from_str(&json).expect("venue.json parses")
}

/// Prints the vectors as JSON, keeping the transcribed `crowdnotifier` part of the
/// existing file; run once, saved as `tests/vectors/venue.json`.
#[test]
#[ignore = "generator for tests/vectors/venue.json, which is frozen"]
fn print_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/venue.json");
    let crowdnotifier = std::fs::read_to_string(path)
        .ok()
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
        .and_then(|v| serde_json::from_value(v["crowdnotifier"].clone()).ok())
        .unwrap_or_default();
    let json = serde_json::to_string_pretty(&generate(crowdnotifier)).expect("serialisable");
    println!("{json}");
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

fn hkdf96(ikm: &[u8], info: &[u8]) -> Vec<u8> {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            96
        }
    }
    let mut out = vec![0u8; 96];
    ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[])
        .extract(ikm)
        .expand(&[info], Len)
        .and_then(|okm| okm.fill(&mut out))
        .unwrap();
    out
}

fn scalar(hex_be: &str) -> Scalar {
    let bytes: [u8; 32] = unhex(hex_be).try_into().unwrap();
    Option::from(Scalar::from_bytes_be(&bytes)).expect("canonical scalar")
}

#[test]
fn crowdnotifier_vectors_hold() {
    let cn = frozen().crowdnotifier;
    assert!(cn.source.contains("crowdnotifier-sdk-android"));
    assert!(!cn.hkdf.is_empty() && !cn.identity.is_empty());
    for v in &cn.hkdf {
        let s = PayloadSecrets::derive(&unhex(&v.payload));
        assert_eq!(hex::encode(s.nonce_preid), v.nonce_preid);
        assert_eq!(hex::encode(s.nonce_timekey), v.nonce_timekey);
        assert_eq!(hex::encode(s.notification_key), v.notification_key);
    }
    for v in &cn.identity {
        let id = identity::identity(&unhex(&v.payload), v.interval_start, v.interval_length);
        assert_eq!(hex::encode(id.0), v.identity);
    }
}

#[test]
fn frozen_vectors_hold() {
    let f = frozen();
    assert!(f.source.contains("print_vectors") && f.source.contains("frozen"));
    assert_eq!(
        f.labels,
        labels(),
        "a label changed: that is a protocol change"
    );
    assert!(!f.hours.is_empty() && !f.invalid.is_empty() && !f.warnings.is_empty());

    // Independent checks of the frozen values.
    let v = &f.venue;
    let entry_bytes = unhex(&v.entry_code);
    let okm = hkdf96(&entry_bytes, b"CrowdNotifier_v3");
    assert_eq!(hex::encode(&okm[..32]), v.nonce_preid);
    assert_eq!(hex::encode(&okm[32..64]), v.nonce_timekey);
    assert_eq!(hex::encode(&okm[64..]), v.notification_key);
    assert_eq!(
        hex::encode(sha256(&[b"CN-PREID", &entry_bytes, &okm[..32]])),
        v.pre_identity
    );
    let (sv, sa) = (scalar(&v.venue_share), scalar(&v.authority_share));
    let mpk = G2Affine::from(G2Projective::generator() * (sv + sa));
    assert_eq!(hex::encode(mpk.to_compressed()), v.master_public_key);
    assert_eq!(&entry_bytes[1..97], mpk.to_compressed().as_slice());
    let entry = EntryCode::from_bytes(&entry_bytes).unwrap();
    assert_eq!(entry.description(), v.description);
    assert_eq!(entry.address(), v.address);
    let authority = SealingSecretKey::from_seed(&unhex(&v.authority_seed).try_into().unwrap());
    assert_eq!(
        hex::encode(authority.public_key().0),
        v.authority_public_key
    );
    let sealed: [u8; 80] = unhex(&v.sealed_authority_share).try_into().unwrap();
    let opened = open_authority_share(&authority, &entry, &sealed).unwrap();
    assert_eq!(hex::encode(opened.to_bytes().as_ref()), v.authority_share);
    let trace = TraceCode::from_bytes(&unhex(&v.trace_code)).unwrap();
    assert_eq!(trace.entry_code(), &entry);

    for h in &f.hours {
        assert_eq!(h.interval_start, u64::from(h.hour) * 3600);
        let tk = sha256(&[
            b"CN-TIMEKEY",
            &3600u32.to_be_bytes(),
            &h.interval_start.to_be_bytes(),
            &okm[32..64],
        ]);
        assert_eq!(hex::encode(&tk), h.time_key);
        let id = sha256(&[
            b"CN-ID",
            &unhex(&v.pre_identity),
            &3600u32.to_be_bytes(),
            &h.interval_start.to_be_bytes(),
            &tk,
        ]);
        assert_eq!(hex::encode(&id), h.identity);
        let h1 = G1Projective::hash_to_curve(&id, venue::hash::H1_DST, &[]);
        assert_eq!(hex::encode(G1Affine::from(h1).to_compressed()), h.h1);
        let part = |s: Scalar| hex::encode(G1Affine::from(h1 * s).to_compressed());
        assert_eq!(part(sv), h.venue_partial_key);
        assert_eq!(part(sa), h.authority_partial_key);
        assert_eq!(part(sv + sa), h.trace_key);
        // The crate's own derivation agrees.
        let pre = pre_identity(&entry_bytes, &PayloadSecrets::derive(&entry_bytes));
        let ours = identity_from_parts(
            &pre,
            &tk.clone().try_into().unwrap(),
            h.interval_start,
            3600,
        );
        assert_eq!(hex::encode(ours.0), h.identity);
    }

    // The frozen check-ins open with the frozen trace keys, to the frozen record.
    let check_ins: Vec<CheckIn> = f
        .visit
        .check_ins
        .iter()
        .map(|c| CheckIn::from_bytes(&unhex(c)).unwrap())
        .collect();
    let traces: Vec<VenueTrace> = f
        .notice
        .venue_traces
        .iter()
        .map(|t| VenueTrace::from_bytes(&unhex(t)).unwrap())
        .collect();
    for (c, (t, h)) in check_ins.iter().zip(traces.iter().zip(&f.hours)) {
        assert_eq!(c.hour(), VenueHour(h.hour));
        assert_eq!(t.key.hour, VenueHour(h.hour));
        assert_eq!(hex::encode(t.key.key.to_bytes()), h.trace_key);
    }
    assert_eq!(warnings_of(check_ins, &traces), f.warnings);
    assert_eq!(f.warnings[0].message, f.notice.message);

    // Every invalid input still gets its error.
    for i in &f.invalid {
        let bytes = unhex(&i.bytes);
        assert_eq!(
            decode_error(&i.kind, &bytes),
            i.error,
            "{} {}",
            i.kind,
            i.bytes
        );
    }

    // And the whole file is what the seeded generator makes today.
    let regenerated = generate(CrowdNotifier {
        source: f.crowdnotifier.source.clone(),
        hkdf: vec![],
        identity: vec![],
    });
    assert_eq!(regenerated.venue, f.venue);
    assert_eq!(regenerated.hours, f.hours);
    assert_eq!(regenerated.visit, f.visit);
    assert_eq!(regenerated.notice, f.notice);
    assert_eq!(regenerated.warnings, f.warnings);
    assert_eq!(regenerated.invalid, f.invalid);
    assert_eq!(regenerated.source, f.source);
}
