use proptest::prelude::*;
use ring::rand::SystemRandom;

use super::*;

/// A fixed P-256 test key (private scalar 0x1234567890abcdef), PKCS#8 v1 with public key.
const TEST_PKCS8: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420\
    0000000000000000000000000000000000000000000000001234567890abcdefa14403420004\
    9fad84aeae08bbef7f010014d82cef6a09de2b0cf871b5ce0c4f1d13a59a593407cb45769f10\
    70e2c2470fe5b1bfe63133c0b0cdc64ea4bf3791a8ec2a07fd4f";
/// Its public key as an uncompressed point.
const TEST_PUBLIC_POINT: &str = "049fad84aeae08bbef7f010014d82cef6a09de2b0cf871b5ce0c4f1d13a59a5934\
    07cb45769f1070e2c2470fe5b1bfe63133c0b0cdc64ea4bf3791a8ec2a07fd4f";
/// Its public key as PEM (written by Python `cryptography`, independent of this module).
const TEST_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEn62Erq4Iu+9/AQAU2CzvagneKwz4
cbXODE8dE6WaWTQHy0V2nxBw4sJHD+Wxv+YxM8CwzcZOpL83kajsKgf9Tw==
-----END PUBLIC KEY-----
";

fn signer() -> ExportSigner {
    let pkcs8 = hex::decode(TEST_PKCS8).expect("hex");
    ExportSigner::from_pkcs8(
        &pkcs8,
        SignatureInfo::new("v1", "310"),
        &SystemRandom::new(),
    )
    .expect("valid key")
}

fn other_signer() -> ExportSigner {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("gen");
    ExportSigner::from_pkcs8(pkcs8.as_ref(), SignatureInfo::new("v1", "999"), &rng).expect("key")
}

fn key(
    byte: u8,
    start: u32,
    period: u8,
    report_type: ReportType,
    onset: Option<i8>,
) -> DiagnosisKey {
    DiagnosisKey {
        key: TemporaryExposureKey([byte; 16]),
        rolling_start: IntervalNumber(start),
        rolling_period: period,
        report_type,
        days_since_onset: onset,
    }
}

fn sample_file() -> ExportFile {
    let mut file = ExportFile::new(UnixTime(1_593_561_600), UnixTime(1_593_565_200), "310");
    file.keys = vec![
        key(0x11, 2_655_936, 144, ReportType::ConfirmedTest, Some(-2)),
        key(0x01, 0, 72, ReportType::SelfReport, None),
        key(
            0xfe,
            2_655_792,
            144,
            ReportType::ConfirmedClinicalDiagnosis,
            Some(14),
        ),
    ];
    file.revised_keys = vec![key(0x42, 2_655_648, 144, ReportType::Revoked, Some(0))];
    file
}

/// The two entries of an archive, inflated without any check.
fn unzip(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).expect("zip");
    let mut read = |name| {
        let mut out = Vec::new();
        archive
            .by_name(name)
            .expect("entry")
            .read_to_end(&mut out)
            .expect("read");
        out
    };
    let bin = read(EXPORT_BIN_NAME);
    let sig = read(EXPORT_SIG_NAME);
    (bin, sig)
}

fn public_point() -> Vec<u8> {
    hex::decode(TEST_PUBLIC_POINT).expect("hex")
}

#[test]
fn round_trip() {
    let signer = signer();
    let file = sample_file();
    let zip = encode_export_zip(&file, &signer, &SystemRandom::new()).expect("encode");
    let decoded = decode_export_zip(&zip, signer.public_key()).expect("decode");

    let mut expected = file.clone();
    expected
        .keys
        .sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    expected.signature_infos = vec![signer.info().clone()];
    assert_eq!(decoded, expected);

    // Decoded files encode again: their signature infos are the signer's.
    let again = encode_export_zip(&decoded, &signer, &SystemRandom::new()).expect("re-encode");
    assert_eq!(unzip(&again).0, unzip(&zip).0);
}

#[test]
fn export_bin_bytes_follow_export_proto() {
    let mut file = ExportFile::new(UnixTime(1_593_561_600), UnixTime(1_593_565_200), "310");
    file.keys = vec![
        key(0x11, 2_655_936, 144, ReportType::ConfirmedTest, Some(-2)),
        key(0x01, 0, 72, ReportType::SelfReport, None),
    ];
    let bin = encode_export_bin(&file, &[SignatureInfo::new("v1", "310")]).expect("encode");
    let expected = [
        "454b204578706f7274207631202020", // "EK Export v1"
        "20",                             // header padding, 16 bytes in all
        "0900d2fb5e00000000",             // 1 start_timestamp, fixed64
        "1110e0fb5e00000000",             // 2 end_timestamp, fixed64
        "1a03333130",                     // 3 region "310"
        "2001",                           // 4 batch_num 1
        "2801",                           // 5 batch_size 1
        // 6 signature_infos: 3 version "v1", 4 id "310", 5 algorithm OID (19 bytes)
        "321e",
        "1a027631",
        "2203333130",
        "2a13312e322e3834302e31303034352e342e332e32",
        // 7 keys, sorted by key bytes: [0x01; 16] first.
        "3a18",
        "0a1001010101010101010101010101010101", // 1 key_data
        "1000",                                 // 2 transmission_risk_level 0 (self report)
        // 3 rolling_start_interval_number omitted (0)
        "2048", // 4 rolling_period 72
        "2803", // 5 report_type SELF_REPORT
        // 6 days_since_onset_of_symptoms absent
        "3a1d",
        "0a1011111111111111111111111111111111", // 1 key_data
        "1002",                                 // 2 transmission_risk_level 2 (confirmed)
        "18c08da201",                           // 3 rolling_start_interval_number 2655936
        // 4 rolling_period omitted (144, the default)
        "2801", // 5 report_type CONFIRMED_TEST
        "3003", // 6 days_since_onset_of_symptoms -2, sint32 zigzag
    ]
    .concat();
    assert_eq!(hex::encode(&bin), expected);
}

#[test]
fn export_sig_holds_a_der_signature_over_export_bin() {
    let signer = signer();
    let zip = encode_export_zip(&sample_file(), &signer, &SystemRandom::new()).expect("encode");
    let (bin, sig) = unzip(&zip);
    let list = pb::TekSignatureList::decode(sig.as_slice()).expect("sig list");
    assert_eq!(list.signatures.len(), 1);
    let entry = &list.signatures[0];
    assert_eq!(entry.batch_num, Some(1));
    assert_eq!(entry.batch_size, Some(1));
    assert_eq!(
        entry.signature_info,
        Some(SignatureInfo::new("v1", "310").to_pb())
    );
    let der = entry.signature.as_deref().expect("signature");
    assert_eq!(der[0], 0x30, "X9.62 DER SEQUENCE");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_point())
        .verify(&bin, der)
        .expect("verifies over the whole export.bin, header included");
}

#[test]
fn an_overlap_archive_is_signed_by_both_keys_and_names_both() {
    let (old, new) = (signer(), other_signer());
    let zip = encode_export_zip_signed_by(&sample_file(), &[&old, &new], &SystemRandom::new())
        .expect("encode");
    let (_, sig) = unzip(&zip);
    assert_eq!(
        pb::TekSignatureList::decode(sig.as_slice())
            .expect("sig list")
            .signatures
            .len(),
        2
    );
    // A phone configured with either key accepts the file.
    for key in [old.public_key(), new.public_key()] {
        let file = decode_export_zip(&zip, key).expect("verifies");
        assert_eq!(
            file.signature_infos,
            vec![old.info().clone(), new.info().clone()]
        );
    }
    assert_eq!(
        encode_export_zip_signed_by(&sample_file(), &[], &SystemRandom::new()),
        Err(ExportError::SignatureInfoMismatch)
    );
}

#[test]
fn archive_layout_is_googles() {
    let zip = encode_export_zip(&sample_file(), &signer(), &SystemRandom::new()).expect("encode");
    let mut archive = ZipArchive::new(Cursor::new(zip.as_slice())).expect("zip");
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.expect("name").into_owned())
        .collect();
    assert_eq!(names, [EXPORT_BIN_NAME, EXPORT_SIG_NAME]);
    let entry = archive.by_index(0).expect("entry");
    assert_eq!(entry.compression(), CompressionMethod::Deflated);
}

#[test]
fn key_order_does_not_show_in_the_file() {
    let signer = signer();
    let file = sample_file();
    let mut reversed = file.clone();
    reversed.keys.reverse();
    let a = encode_export_zip(&file, &signer, &SystemRandom::new()).expect("encode");
    let b = encode_export_zip(&reversed, &signer, &SystemRandom::new()).expect("encode");
    assert_eq!(unzip(&a).0, unzip(&b).0);
}

/// Rebuilds an archive with a changed `export.bin` and the original `export.sig`.
fn with_export_bin(zip: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let (mut bin, sig) = unzip(zip);
    change(&mut bin);
    zip_entries(&[(EXPORT_BIN_NAME, &bin), (EXPORT_SIG_NAME, &sig)]).expect("zip")
}

#[test]
fn tampered_export_bin_fails_the_signature() {
    let signer = signer();
    let zip = encode_export_zip(&sample_file(), &signer, &SystemRandom::new()).expect("encode");
    let last = with_export_bin(&zip, |bin| {
        let end = bin.len() - 1;
        bin[end] ^= 1;
    });
    assert_eq!(
        decode_export_zip(&last, signer.public_key()),
        Err(ExportError::BadSignature)
    );
    let key_byte = with_export_bin(&zip, |bin| bin[60] ^= 0x80);
    assert_eq!(
        decode_export_zip(&key_byte, signer.public_key()),
        Err(ExportError::BadSignature)
    );
    let appended = with_export_bin(&zip, |bin| bin.push(0));
    assert_eq!(
        decode_export_zip(&appended, signer.public_key()),
        Err(ExportError::BadSignature)
    );
}

#[test]
fn another_key_fails_the_signature() {
    let zip = encode_export_zip(&sample_file(), &signer(), &SystemRandom::new()).expect("encode");
    let other = other_signer();
    assert_eq!(
        decode_export_zip(&zip, other.public_key()),
        Err(ExportError::BadSignature)
    );
}

#[test]
fn header_is_checked() {
    let signer = signer();
    let zip = encode_export_zip(&sample_file(), &signer, &SystemRandom::new()).expect("encode");
    let bad = with_export_bin(&zip, |bin| bin[11] = b'2');
    assert_eq!(
        decode_export_zip(&bad, signer.public_key()),
        Err(ExportError::BadHeader)
    );
    let short = with_export_bin(&zip, |bin| bin.truncate(5));
    assert_eq!(
        decode_export_zip(&short, signer.public_key()),
        Err(ExportError::BadHeader)
    );
}

#[test]
fn missing_entries_are_named() {
    let signer = signer();
    let zip = encode_export_zip(&sample_file(), &signer, &SystemRandom::new()).expect("encode");
    let (bin, sig) = unzip(&zip);
    let only_bin = zip_entries(&[(EXPORT_BIN_NAME, &bin)]).expect("zip");
    assert_eq!(
        decode_export_zip(&only_bin, signer.public_key()),
        Err(ExportError::MissingEntry {
            name: EXPORT_SIG_NAME
        })
    );
    let only_sig = zip_entries(&[(EXPORT_SIG_NAME, &sig)]).expect("zip");
    assert_eq!(
        decode_export_zip(&only_sig, signer.public_key()),
        Err(ExportError::MissingEntry {
            name: EXPORT_BIN_NAME
        })
    );
}

#[test]
fn empty_signature_list_is_no_signature() {
    let signer = signer();
    let zip = encode_export_zip(&sample_file(), &signer, &SystemRandom::new()).expect("encode");
    let (bin, _) = unzip(&zip);
    let empty = zip_entries(&[(EXPORT_BIN_NAME, &bin), (EXPORT_SIG_NAME, &[])]).expect("zip");
    assert_eq!(
        decode_export_zip(&empty, signer.public_key()),
        Err(ExportError::NoSignature)
    );
}

#[test]
fn size_and_entry_caps() {
    let signer = signer();
    let zip = encode_export_zip(&sample_file(), &signer, &SystemRandom::new()).expect("encode");
    let (bin, sig) = unzip(&zip);

    let tight = |export_bin, entries, zip_bytes| Limits {
        zip_bytes,
        entries,
        export_bin,
        export_sig: MAX_EXPORT_SIG_BYTES,
    };
    let exact = tight(bin.len() as u64, 2, zip.len());
    assert!(decode_with_limits(&zip, signer.public_key(), &exact).is_ok());

    let small_bin = tight(bin.len() as u64 - 1, 2, zip.len());
    assert_eq!(
        decode_with_limits(&zip, signer.public_key(), &small_bin),
        Err(ExportError::TooLarge {
            max: bin.len() as u64 - 1
        })
    );
    let small_zip = tight(bin.len() as u64, 2, zip.len() - 1);
    assert!(matches!(
        decode_with_limits(&zip, signer.public_key(), &small_zip),
        Err(ExportError::TooLarge { .. })
    ));
    let three =
        zip_entries(&[(EXPORT_BIN_NAME, &bin), (EXPORT_SIG_NAME, &sig), ("x", b"")]).expect("zip");
    let two_entries = tight(bin.len() as u64, 2, three.len());
    assert_eq!(
        decode_with_limits(&three, signer.public_key(), &two_entries),
        Err(ExportError::TooManyEntries { got: 3, max: 2 })
    );
}

#[test]
fn zip_bomb_is_capped_not_inflated() {
    // 4 MiB of zeros deflates to a few KiB; with a 1 MiB cap decoding stops early.
    let signer = signer();
    let mut bin = EXPORT_HEADER.to_vec();
    bin.resize(4 << 20, 0);
    let bomb = zip_entries(&[(EXPORT_BIN_NAME, &bin), (EXPORT_SIG_NAME, b"")]).expect("zip");
    assert!(bomb.len() < 64 << 10);
    let limits = Limits {
        export_bin: 1 << 20,
        ..Limits::DEFAULT
    };
    assert_eq!(
        decode_with_limits(&bomb, signer.public_key(), &limits),
        Err(ExportError::TooLarge { max: 1 << 20 })
    );
}

#[test]
fn decoded_fields_are_checked() {
    let good = || pb::TemporaryExposureKey {
        key_data: Some(vec![7; 16]),
        transmission_risk_level: Some(3),
        rolling_start_interval_number: Some(2_655_936),
        rolling_period: None,
        report_type: None,
        days_since_onset_of_symptoms: None,
    };
    let k = key_from_pb(good()).expect("valid");
    assert_eq!(k.rolling_period, 144);
    assert_eq!(k.report_type, REPORT_TYPE_WHEN_MISSING);
    assert_eq!(k.days_since_onset, None);

    let bad = |change: fn(&mut pb::TemporaryExposureKey), what| {
        let mut k = good();
        change(&mut k);
        assert_eq!(
            key_from_pb(k),
            Err(ExportError::Malformed { what }),
            "{what}"
        );
    };
    bad(|k| k.key_data = Some(vec![7; 15]), "key_data");
    bad(|k| k.key_data = None, "key_data");
    bad(
        |k| k.rolling_start_interval_number = Some(-1),
        "rolling_start_interval_number",
    );
    bad(|k| k.rolling_period = Some(0), "rolling_period");
    bad(|k| k.rolling_period = Some(145), "rolling_period");
    bad(|k| k.rolling_period = Some(400), "rolling_period");
    bad(|k| k.report_type = Some(6), "report_type");
    bad(|k| k.report_type = Some(-1), "report_type");
    bad(
        |k| k.days_since_onset_of_symptoms = Some(200),
        "days_since_onset_of_symptoms",
    );
}

#[test]
fn encoding_rejects_values_outside_the_proto() {
    let signer = signer();
    let rng = SystemRandom::new();
    let mut file = sample_file();
    file.keys[0].rolling_period = 0;
    assert_eq!(
        encode_export_zip(&file, &signer, &rng),
        Err(ExportError::InvalidField {
            field: "rolling_period"
        })
    );
    let mut file = sample_file();
    file.keys[0].rolling_start = IntervalNumber(u32::MAX);
    assert_eq!(
        encode_export_zip(&file, &signer, &rng),
        Err(ExportError::InvalidField {
            field: "rolling_start_interval_number"
        })
    );
    let mut file = sample_file();
    file.signature_infos = vec![SignatureInfo::new("v2", "310")];
    assert_eq!(
        encode_export_zip(&file, &signer, &rng),
        Err(ExportError::SignatureInfoMismatch)
    );
}

#[test]
fn public_key_forms() {
    let raw = public_point();
    assert_eq!(
        p256_public_key_from_pem(TEST_PUBLIC_PEM)
            .expect("pem")
            .to_vec(),
        raw
    );
    let signer = signer();
    assert_eq!(signer.public_key(), raw.as_slice());
    let der = signer.public_key_spki_der();
    assert_eq!(
        p256_public_key_from_spki_der(&der).expect("der").to_vec(),
        raw
    );
    let body: String = TEST_PUBLIC_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(base64_decode(&body).expect("base64"), der);

    // decode_export_zip takes the raw point or the DER.
    let zip = encode_export_zip(&sample_file(), &signer, &SystemRandom::new()).expect("encode");
    assert!(decode_export_zip(&zip, &der).is_ok());
    assert!(decode_export_zip(&zip, &raw).is_ok());

    assert_eq!(
        decode_export_zip(&zip, &raw[1..]),
        Err(ExportError::BadPublicKey)
    );
    let mut compressed = raw.clone();
    compressed[0] = 0x02;
    assert_eq!(
        decode_export_zip(&zip, &compressed),
        Err(ExportError::BadPublicKey)
    );
    assert_eq!(
        p256_public_key_from_pem("no pem here"),
        Err(ExportError::BadPublicKey)
    );
    let broken = TEST_PUBLIC_PEM.replace("MFkw", "MF*w");
    assert_eq!(
        p256_public_key_from_pem(&broken),
        Err(ExportError::BadPublicKey)
    );
    let p384_ish = TEST_PUBLIC_PEM.replace(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD",
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQgD",
    );
    assert_eq!(
        p256_public_key_from_pem(&p384_ish),
        Err(ExportError::BadPublicKey)
    );
}

#[test]
fn base64_is_strict() {
    assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
    assert_eq!(base64_decode("Zg==").as_deref(), Some(&b"f"[..]));
    assert_eq!(base64_decode("Zm8=").as_deref(), Some(&b"fo"[..]));
    assert_eq!(base64_decode("Zm9v\n").as_deref(), Some(&b"foo"[..]));
    assert_eq!(base64_decode("Zm9vYg=="), Some(b"foob".to_vec()));
    assert_eq!(base64_decode("Zm9"), None);
    assert_eq!(base64_decode("Z==="), None);
    assert_eq!(base64_decode("Zg==Zg=="), None);
    assert_eq!(base64_decode("Z=g="), None);
}

#[test]
fn signing_key_checks() {
    let rng = SystemRandom::new();
    assert_eq!(
        ExportSigner::from_pkcs8(b"not a key", SignatureInfo::new("v1", "1"), &rng).err(),
        Some(ExportError::BadSigningKey)
    );
    let mut info = SignatureInfo::new("v1", "1");
    info.signature_algorithm = "1.2.840.10045.4.3.4".to_owned();
    let pkcs8 = hex::decode(TEST_PKCS8).expect("hex");
    assert_eq!(
        ExportSigner::from_pkcs8(&pkcs8, info, &rng).err(),
        Some(ExportError::UnsupportedAlgorithm)
    );
    let shown = format!("{:?}", signer());
    assert!(shown.contains("<redacted>"));
    assert!(!shown.contains("1234567890abcdef"));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(decode_export_zip(&bytes, &public_point()).is_err());
    }

    #[test]
    fn truncated_or_flipped_archives_never_panic(cut in 0usize..4096, flip in 0usize..4096, bit in 0u8..8) {
        let zip = encode_export_zip(&sample_file(), &signer(), &SystemRandom::new()).expect("encode");
        let truncated = &zip[..cut % zip.len()];
        prop_assert!(decode_export_zip(truncated, &public_point()).is_err());
        let mut flipped = zip.clone();
        let at = flip % zip.len();
        flipped[at] ^= 1 << bit;
        // A flip may land in bytes nobody checks (a timestamp); it must never panic, and if
        // it decodes it must decode to the signed contents.
        if let Ok(file) = decode_export_zip(&flipped, &public_point()) {
            let original = decode_export_zip(&zip, &public_point()).expect("decode");
            prop_assert_eq!(file, original);
        }
    }
}
