//! Google's GAEN Exposure Notification Cryptography v1.2 test vectors, byte for byte.
//!
//! `vectors/gaen.json` is transcribed from Google's published vectors; its `source` field
//! names the repository, path and commit.

use ephemera_proto::IntervalNumber;
use ephemera_proto::gaen::{
    AssociatedEncryptedMetadata, AssociatedEncryptedMetadataKey, Metadata,
    RollingProximityIdentifier, RollingProximityIdentifierKey, TemporaryExposureKey,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Source {
    repo: String,
    path: String,
}

#[derive(Deserialize)]
struct Advertised {
    index: u32,
    interval: u32,
    rpi: String,
    aem: String,
}

#[derive(Deserialize)]
struct Vectors {
    source: Source,
    key_generation_unix_seconds: u64,
    rolling_start_interval: u32,
    rolling_period: u32,
    tek: String,
    rpik: String,
    aemk: String,
    metadata: String,
    advertised: Vec<Advertised>,
}

fn vectors() -> Vectors {
    let text = include_str!("vectors/gaen.json");
    serde_json::from_str(text).expect("gaen.json parses")
}

fn bytes<const N: usize>(hex_str: &str) -> [u8; N] {
    let v = hex::decode(hex_str).expect("valid hex");
    v.try_into().expect("right length")
}

#[test]
fn vectors_name_their_source() {
    let v = vectors();
    assert_eq!(v.source.repo, "google/exposure-notifications-internals");
    assert!(v.source.path.ends_with("TestVectors.java"));
    assert_eq!(v.advertised.len(), 144);
    assert_eq!(v.rolling_period, 144);
}

#[test]
fn interval_number_of_the_key() {
    let v = vectors();
    let t = ephemera_proto::UnixTime(v.key_generation_unix_seconds);
    assert_eq!(t.interval(), IntervalNumber(v.rolling_start_interval));
    assert_eq!(t.interval().day_start(), t.interval());
}

#[test]
fn rpik_and_aemk() {
    let v = vectors();
    let tek = TemporaryExposureKey(bytes(&v.tek));
    assert_eq!(hex::encode(tek.rpik().as_bytes()), v.rpik);
    assert_eq!(hex::encode(tek.aemk().as_bytes()), v.aemk);
}

#[test]
fn every_rpi_and_aem() {
    let v = vectors();
    let tek = TemporaryExposureKey(bytes(&v.tek));
    let rpik = RollingProximityIdentifierKey::derive(&tek);
    let aemk = AssociatedEncryptedMetadataKey::derive(&tek);
    let metadata = Metadata(bytes(&v.metadata));
    assert_eq!(metadata, Metadata::v1_0(8));

    // One interval at a time, and through the advertisement convenience.
    for a in &v.advertised {
        assert_eq!(a.interval, v.rolling_start_interval + a.index);
        let interval = IntervalNumber(a.interval);
        let rpi = rpik.rpi(interval);
        assert_eq!(hex::encode(rpi.as_bytes()), a.rpi, "RPI {}", a.index);
        let aem = aemk.encrypt(&rpi, &metadata);
        assert_eq!(hex::encode(aem.as_bytes()), a.aem, "AEM {}", a.index);
        assert_eq!(tek.advertisement(interval, &metadata), (rpi, aem));
        let heard = AssociatedEncryptedMetadata(bytes(&a.aem));
        assert_eq!(
            aemk.decrypt(&RollingProximityIdentifier(bytes(&a.rpi)), &heard),
            metadata
        );
    }

    // The whole day at once (the matching fast path) and lazily.
    let start = IntervalNumber(v.rolling_start_interval);
    let mut day = [RollingProximityIdentifier([0; 16]); 144];
    rpik.rpis_into(start, &mut day);
    let lazy: Vec<_> = rpik.rpis(start, v.rolling_period).collect();
    for (i, a) in v.advertised.iter().enumerate() {
        assert_eq!(hex::encode(day[i].as_bytes()), a.rpi, "batched RPI {i}");
        assert_eq!(lazy[i], day[i]);
    }
}

#[test]
fn raw_key_constructors_agree_with_derivation() {
    let v = vectors();
    let rpik = RollingProximityIdentifierKey::from_bytes(bytes(&v.rpik));
    let first = &v.advertised[0];
    assert_eq!(
        hex::encode(rpik.rpi(IntervalNumber(first.interval)).as_bytes()),
        first.rpi
    );
    let tek = TemporaryExposureKey(bytes(&v.tek));
    assert_eq!(rpik, tek.rpik());
    assert_eq!(
        AssociatedEncryptedMetadataKey::from_bytes(bytes(&v.aemk)),
        tek.aemk()
    );
}

/// The export API from outside the crate: sign, zip, verify, unzip, and match a published key.
#[test]
fn export_round_trip_and_match() {
    use ephemera_proto::ReportType;
    use ephemera_proto::UnixTime;
    use ephemera_proto::gaen::{
        DiagnosisKey, ExportError, ExportFile, ExportSigner, MATCH_TOLERANCE_INTERVALS,
        SignatureInfo, decode_export_zip, encode_export_zip,
    };
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

    let v = vectors();
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let signer = ExportSigner::from_pkcs8(pkcs8.as_ref(), SignatureInfo::new("v1", "310"), &rng)
        .expect("signer");

    let published = DiagnosisKey {
        key: TemporaryExposureKey(bytes(&v.tek)),
        rolling_start: IntervalNumber(v.rolling_start_interval),
        rolling_period: 144,
        report_type: ReportType::ConfirmedTest,
        days_since_onset: Some(1),
    };
    let mut file = ExportFile::new(UnixTime(1_585_872_000), UnixTime(1_585_875_600), "310");
    file.keys.push(published.clone());
    let zip = encode_export_zip(&file, &signer, &rng).expect("encode");
    let decoded = decode_export_zip(&zip, signer.public_key()).expect("decode");
    assert_eq!(decoded.keys, [published]);

    // A phone that heard RPI 100 at interval start + 100 finds it in the published key.
    let heard = RollingProximityIdentifier(bytes(&v.advertised[100].rpi));
    let heard_at = IntervalNumber(v.rolling_start_interval + 100);
    let dk = &decoded.keys[0];
    assert!(dk.window_contains(heard_at, MATCH_TOLERANCE_INTERVALS));
    let found = dk
        .key
        .rpik()
        .rpis(dk.rolling_start, u32::from(dk.rolling_period))
        .position(|rpi| rpi == heard);
    assert_eq!(found, Some(100));

    let mut tampered = zip.clone();
    let end = tampered.len() - 1;
    tampered.truncate(end);
    assert!(decode_export_zip(&tampered, signer.public_key()).is_err());
    assert_eq!(
        decode_export_zip(b"PK\x03\x04 not really", signer.public_key()),
        Err(ExportError::BadArchive)
    );
}
