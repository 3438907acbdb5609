//! GAEN key export files: `export.bin` and `export.sig` in a zip archive.
//!
//! Written as google/exposure-notifications-server writes them
//! (`internal/export/exportfile.go`):
//!
//! - `export.bin` is the 16-byte header `"EK Export v1    "` followed by a
//!   `TemporaryExposureKeyExport` protobuf. Keys are sorted by their bytes (so file order
//!   says nothing about upload order); `rolling_start_interval_number` is omitted when 0 and
//!   `rolling_period` when 144 (the proto default); `transmission_risk_level` is always set,
//!   backfilled from the report type for v1.0 clients.
//! - `export.sig` is a `TEKSignatureList` with one ECDSA P-256 / SHA-256 signature (X9.62 DER)
//!   over all of `export.bin`, algorithm OID `1.2.840.10045.4.3.2`.
//! - Both are deflated into one zip, `export.bin` first.
//!
//! Decoding checks the archive's size and entry count before inflating anything, caps what
//! it inflates, checks the header, verifies the signature over the exact bytes, and only
//! then parses the protobuf.

mod pb;

use std::fmt;
use std::io::{Cursor, Read, Write};

use prost::Message;
use ring::rand::SecureRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use thiserror::Error;
use zip::result::ZipError;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use super::tek::{DiagnosisKey, TemporaryExposureKey};
use crate::report::ReportType;
use crate::time::{INTERVALS_PER_DAY, IntervalNumber, UnixTime};

/// The 16-byte, space-padded header that starts every `export.bin`.
pub const EXPORT_HEADER: &[u8; 16] = b"EK Export v1    ";
/// Name of the key file inside the archive.
pub const EXPORT_BIN_NAME: &str = "export.bin";
/// Name of the signature file inside the archive.
pub const EXPORT_SIG_NAME: &str = "export.sig";
/// ASN.1 OID of ECDSA with SHA-256, the signature algorithm written and accepted.
pub const SIGNATURE_ALGORITHM_OID: &str = "1.2.840.10045.4.3.2";
/// Largest archive `decode_export_zip` reads, in bytes.
pub const MAX_EXPORT_ZIP_BYTES: usize = 64 * 1024 * 1024;
/// Most bytes `decode_export_zip` inflates for `export.bin` (zip bomb cap).
pub const MAX_EXPORT_UNCOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;
/// Most entries an archive may list (Google's files have two).
pub const MAX_EXPORT_ENTRIES: usize = 16;
/// Report type given to keys whose file names none (files from before GAEN v1.5).
pub const REPORT_TYPE_WHEN_MISSING: ReportType = ReportType::ConfirmedTest;

/// Most bytes inflated for `export.sig`: a signature list is a few hundred bytes.
const MAX_EXPORT_SIG_BYTES: u64 = 64 * 1024;
/// The `rolling_period` a key has when its file omits it (proto default, 24 h).
const DEFAULT_ROLLING_PERIOD: i32 = 144;
/// DER of a P-256 SubjectPublicKeyInfo up to its point: SEQUENCE { SEQUENCE {
/// id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) ... }. The 65-byte uncompressed
/// point `0x04 ‖ X ‖ Y` follows.
const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Bytes of an uncompressed P-256 point: 0x04 ‖ X ‖ Y.
const P256_POINT_LEN: usize = 65;
const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";

/// A key export file could not be written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The archive, or an entry once inflated, exceeds its size cap.
    #[error("export is too large: more than {max} bytes")]
    TooLarge {
        /// The cap that was exceeded.
        max: u64,
    },
    /// The archive lists more entries than an export file has.
    #[error("export archive lists {got} entries, at most {max} allowed")]
    TooManyEntries {
        /// Entries listed.
        got: usize,
        /// The cap.
        max: usize,
    },
    /// The bytes are not a readable zip archive, or an entry is corrupt.
    #[error("export is not a readable zip archive")]
    BadArchive,
    /// The archive lacks `export.bin` or `export.sig`.
    #[error("export archive has no `{name}`")]
    MissingEntry {
        /// The missing entry.
        name: &'static str,
    },
    /// `export.bin` does not start with `"EK Export v1    "`.
    #[error("export.bin does not start with the export header")]
    BadHeader,
    /// `export.sig` holds no signature with the supported algorithm.
    #[error("export.sig holds no ECDSA P-256 SHA-256 signature")]
    NoSignature,
    /// No signature in `export.sig` verifies over `export.bin` with the given key.
    #[error("export signature does not verify")]
    BadSignature,
    /// The verification key is not a P-256 public key (raw point, SPKI DER or PEM).
    #[error("verification key is not a P-256 public key")]
    BadPublicKey,
    /// The signing key is not a PKCS#8 P-256 ECDSA key.
    #[error("signing key is not a PKCS#8 ECDSA P-256 key")]
    BadSigningKey,
    /// The signer's algorithm is not ECDSA P-256 SHA-256.
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// The file names signature infos other than the signer's.
    #[error("export file's signature infos differ from the signer's")]
    SignatureInfoMismatch,
    /// Producing the signature failed.
    #[error("signing the export failed")]
    Signing,
    /// Writing the archive failed.
    #[error("writing the export archive failed")]
    ArchiveWrite,
    /// A protobuf does not decode, or a field holds a value outside its domain.
    #[error("malformed export: `{what}`")]
    Malformed {
        /// The message or field at fault.
        what: &'static str,
    },
    /// A value to encode does not fit its protobuf field.
    #[error("cannot encode field `{field}`: value out of range")]
    InvalidField {
        /// The field.
        field: &'static str,
    },
}

/// Which key signed an export: GAEN's `SignatureInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignatureInfo {
    /// Key version for rollovers, e.g. `"v1"` (`[a-zA-Z0-9_]`); empty when not set.
    pub verification_key_version: String,
    /// Alias of the verification key, e.g. a mobile country code; empty when not set.
    pub verification_key_id: String,
    /// ASN.1 OID of the signature algorithm; see [`SIGNATURE_ALGORITHM_OID`].
    pub signature_algorithm: String,
}

impl SignatureInfo {
    /// An ECDSA P-256 SHA-256 signature info with this key version and id.
    pub fn new(
        verification_key_version: impl Into<String>,
        verification_key_id: impl Into<String>,
    ) -> Self {
        SignatureInfo {
            verification_key_version: verification_key_version.into(),
            verification_key_id: verification_key_id.into(),
            signature_algorithm: SIGNATURE_ALGORITHM_OID.to_owned(),
        }
    }

    fn to_pb(&self) -> pb::SignatureInfo {
        // As Google's createSignatureInfo: the algorithm always, the rest when non-empty.
        let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
        pb::SignatureInfo {
            verification_key_version: non_empty(&self.verification_key_version),
            verification_key_id: non_empty(&self.verification_key_id),
            signature_algorithm: Some(self.signature_algorithm.clone()),
        }
    }

    fn from_pb(info: pb::SignatureInfo) -> Self {
        SignatureInfo {
            verification_key_version: info.verification_key_version.unwrap_or_default(),
            verification_key_id: info.verification_key_id.unwrap_or_default(),
            signature_algorithm: info.signature_algorithm.unwrap_or_default(),
        }
    }
}

/// The contents of one key export file (`TemporaryExposureKeyExport`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    /// Start of the window of upload times the file covers.
    pub start_timestamp: UnixTime,
    /// End of that window.
    pub end_timestamp: UnixTime,
    /// Region the keys come from (e.g. a country code).
    pub region: String,
    /// This file's number in its batch, 1-based (Google always writes 1; absent reads as 1).
    pub batch_num: u32,
    /// Files in the batch (Google always writes 1; absent reads as 1).
    pub batch_size: u32,
    /// Who signed the file. Filled in from the signer when empty on encoding.
    pub signature_infos: Vec<SignatureInfo>,
    /// Keys released for the first time.
    pub keys: Vec<DiagnosisKey>,
    /// Keys released before whose report type or onset changed, or that were revoked.
    pub revised_keys: Vec<DiagnosisKey>,
}

impl ExportFile {
    /// An empty file for one region and time window, batch 1 of 1.
    pub fn new(start: UnixTime, end: UnixTime, region: impl Into<String>) -> Self {
        ExportFile {
            start_timestamp: start,
            end_timestamp: end,
            region: region.into(),
            batch_num: 1,
            batch_size: 1,
            signature_infos: Vec::new(),
            keys: Vec::new(),
            revised_keys: Vec::new(),
        }
    }
}

/// An ECDSA P-256 key that signs export files, with the info that names it.
pub struct ExportSigner {
    key_pair: EcdsaKeyPair,
    info: SignatureInfo,
}

impl ExportSigner {
    /// Loads a PKCS#8 (v1 or v2) P-256 private key; `rng` serves ring's key check.
    pub fn from_pkcs8(
        pkcs8: &[u8],
        info: SignatureInfo,
        rng: &dyn SecureRandom,
    ) -> Result<Self, ExportError> {
        if info.signature_algorithm != SIGNATURE_ALGORITHM_OID {
            return Err(ExportError::UnsupportedAlgorithm);
        }
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, rng)
            .map_err(|_| ExportError::BadSigningKey)?;
        Ok(ExportSigner { key_pair, info })
    }

    /// The signature info written beside each signature.
    pub fn info(&self) -> &SignatureInfo {
        &self.info
    }

    /// The verification key as a raw uncompressed point (65 bytes), as
    /// [`decode_export_zip`] takes it.
    pub fn public_key(&self) -> &[u8] {
        self.key_pair.public_key().as_ref()
    }

    /// The verification key as a DER SubjectPublicKeyInfo (what a `PUBLIC KEY` PEM holds).
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        let mut der = P256_SPKI_HEADER.to_vec();
        der.extend_from_slice(self.public_key());
        der
    }
}

impl fmt::Debug for ExportSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportSigner")
            .field("key_pair", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

/// Writes `file` as a signed export archive (zip of `export.bin` and `export.sig`).
///
/// `file.signature_infos` must be empty (the signer's info is written) or exactly the
/// signer's. ECDSA signatures are randomized, so two archives of one file differ in
/// `export.sig` only.
pub fn encode_export_zip(
    file: &ExportFile,
    signer: &ExportSigner,
    rng: &dyn SecureRandom,
) -> Result<Vec<u8>, ExportError> {
    encode_export_zip_signed_by(file, &[signer], rng)
}

/// Writes `file` as an archive signed by every one of `signers`, in order: what a key
/// rotation's overlap publishes, so phones configured with either key accept it (GAEN's
/// `TEKSignatureList` holds one signature per key, and `export.bin` names every key).
///
/// `file.signature_infos` must be empty or exactly the signers' infos, in order.
pub fn encode_export_zip_signed_by(
    file: &ExportFile,
    signers: &[&ExportSigner],
    rng: &dyn SecureRandom,
) -> Result<Vec<u8>, ExportError> {
    let infos: Vec<SignatureInfo> = signers.iter().map(|s| s.info.clone()).collect();
    if signers.is_empty() || !(file.signature_infos.is_empty() || file.signature_infos == infos) {
        return Err(ExportError::SignatureInfoMismatch);
    }
    let export_bin = encode_export_bin(file, &infos)?;
    let mut signatures = Vec::with_capacity(signers.len());
    for signer in signers {
        let signature = signer
            .key_pair
            .sign(rng, &export_bin)
            .map_err(|_| ExportError::Signing)?;
        signatures.push(pb::TekSignature {
            signature_info: Some(signer.info.to_pb()),
            batch_num: Some(to_i32(file.batch_num, "batch_num")?),
            batch_size: Some(to_i32(file.batch_size, "batch_size")?),
            signature: Some(signature.as_ref().to_vec()),
        });
    }
    let export_sig = pb::TekSignatureList { signatures }.encode_to_vec();
    zip_entries(&[
        (EXPORT_BIN_NAME, &export_bin),
        (EXPORT_SIG_NAME, &export_sig),
    ])
}

/// Reads a signed export archive, verifying it with a P-256 public key.
///
/// `public_key` is a raw uncompressed point (65 bytes, `0x04 ‖ X ‖ Y`) or a DER
/// SubjectPublicKeyInfo; for a PEM use [`p256_public_key_from_pem`] first. The file is
/// accepted if any of its ECDSA P-256 SHA-256 signatures verifies over all of
/// `export.bin`. Keys whose file names no report type (or `UNKNOWN`) get
/// [`REPORT_TYPE_WHEN_MISSING`]; `transmission_risk_level` is ignored.
pub fn decode_export_zip(bytes: &[u8], public_key: &[u8]) -> Result<ExportFile, ExportError> {
    decode_with_limits(bytes, public_key, &Limits::DEFAULT)
}

/// Extracts the raw uncompressed point from a DER SubjectPublicKeyInfo of a P-256 key.
pub fn p256_public_key_from_spki_der(der: &[u8]) -> Result<[u8; 65], ExportError> {
    let point = der
        .strip_prefix(&P256_SPKI_HEADER[..])
        .ok_or(ExportError::BadPublicKey)?;
    raw_point(point)
}

/// Extracts the raw uncompressed point from a PEM `PUBLIC KEY` (SPKI) of a P-256 key.
pub fn p256_public_key_from_pem(pem: &str) -> Result<[u8; 65], ExportError> {
    let start = pem.find(PEM_BEGIN).ok_or(ExportError::BadPublicKey)? + PEM_BEGIN.len();
    let len = pem[start..]
        .find(PEM_END)
        .ok_or(ExportError::BadPublicKey)?;
    let der = base64_decode(&pem[start..start + len]).ok_or(ExportError::BadPublicKey)?;
    p256_public_key_from_spki_der(&der)
}

/// Accepts exactly a 65-byte uncompressed point.
fn raw_point(point: &[u8]) -> Result<[u8; 65], ExportError> {
    match <[u8; P256_POINT_LEN]>::try_from(point) {
        Ok(raw) if raw[0] == 0x04 => Ok(raw),
        _ => Err(ExportError::BadPublicKey),
    }
}

/// A raw point or an SPKI DER, as `decode_export_zip` accepts.
fn verification_key(public_key: &[u8]) -> Result<[u8; 65], ExportError> {
    if public_key.len() == P256_POINT_LEN {
        raw_point(public_key)
    } else {
        p256_public_key_from_spki_der(public_key)
    }
}

/// Size caps applied while decoding; tests shrink them.
struct Limits {
    zip_bytes: usize,
    entries: usize,
    export_bin: u64,
    export_sig: u64,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        zip_bytes: MAX_EXPORT_ZIP_BYTES,
        entries: MAX_EXPORT_ENTRIES,
        export_bin: MAX_EXPORT_UNCOMPRESSED_BYTES,
        export_sig: MAX_EXPORT_SIG_BYTES,
    };
}

fn decode_with_limits(
    bytes: &[u8],
    public_key: &[u8],
    limits: &Limits,
) -> Result<ExportFile, ExportError> {
    let public_key = verification_key(public_key)?;
    if bytes.len() > limits.zip_bytes {
        return Err(ExportError::TooLarge {
            max: limits.zip_bytes as u64,
        });
    }
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|_| ExportError::BadArchive)?;
    if archive.len() > limits.entries {
        return Err(ExportError::TooManyEntries {
            got: archive.len(),
            max: limits.entries,
        });
    }
    let export_bin = read_entry(&mut archive, EXPORT_BIN_NAME, limits.export_bin)?;
    let export_sig = read_entry(&mut archive, EXPORT_SIG_NAME, limits.export_sig)?;

    if !export_bin.starts_with(EXPORT_HEADER) {
        return Err(ExportError::BadHeader);
    }
    verify_signature(&export_bin, &export_sig, &public_key)?;
    decode_export_bin(&export_bin[EXPORT_HEADER.len()..])
}

/// Inflates one entry, reading at most `cap` bytes whatever its header claims.
fn read_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &'static str,
    cap: u64,
) -> Result<Vec<u8>, ExportError> {
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(ZipError::FileNotFound) => return Err(ExportError::MissingEntry { name }),
        Err(_) => return Err(ExportError::BadArchive),
    };
    if entry.size() > cap {
        return Err(ExportError::TooLarge { max: cap });
    }
    let mut content = Vec::new();
    entry
        .take(cap.saturating_add(1))
        .read_to_end(&mut content)
        .map_err(|_| ExportError::BadArchive)?;
    if content.len() as u64 > cap {
        return Err(ExportError::TooLarge { max: cap });
    }
    Ok(content)
}

fn verify_signature(
    export_bin: &[u8],
    export_sig: &[u8],
    public_key: &[u8; 65],
) -> Result<(), ExportError> {
    let list = pb::TekSignatureList::decode(export_sig)
        .map_err(|_| ExportError::Malformed { what: "export.sig" })?;
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key);
    let mut candidates = list
        .signatures
        .iter()
        .filter(|s| {
            s.signature_info
                .as_ref()
                .and_then(|i| i.signature_algorithm.as_deref())
                .is_none_or(|alg| alg == SIGNATURE_ALGORITHM_OID)
        })
        .filter_map(|s| s.signature.as_deref())
        .peekable();
    if candidates.peek().is_none() {
        return Err(ExportError::NoSignature);
    }
    if candidates.any(|sig| key.verify(export_bin, sig).is_ok()) {
        Ok(())
    } else {
        Err(ExportError::BadSignature)
    }
}

fn encode_export_bin(file: &ExportFile, infos: &[SignatureInfo]) -> Result<Vec<u8>, ExportError> {
    let message = pb::TemporaryExposureKeyExport {
        start_timestamp: Some(file.start_timestamp.0),
        end_timestamp: Some(file.end_timestamp.0),
        region: Some(file.region.clone()),
        batch_num: Some(to_i32(file.batch_num, "batch_num")?),
        batch_size: Some(to_i32(file.batch_size, "batch_size")?),
        signature_infos: infos.iter().map(SignatureInfo::to_pb).collect(),
        keys: keys_to_pb(&file.keys)?,
        revised_keys: keys_to_pb(&file.revised_keys)?,
    };
    let mut out = Vec::with_capacity(EXPORT_HEADER.len() + message.encoded_len());
    out.extend_from_slice(EXPORT_HEADER);
    message
        .encode(&mut out)
        .map_err(|_| ExportError::ArchiveWrite)?;
    Ok(out)
}

/// Google's keys in Google's order: sorted by key bytes.
fn keys_to_pb(keys: &[DiagnosisKey]) -> Result<Vec<pb::TemporaryExposureKey>, ExportError> {
    let mut sorted: Vec<&DiagnosisKey> = keys.iter().collect();
    sorted.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    sorted.into_iter().map(key_to_pb).collect()
}

fn key_to_pb(key: &DiagnosisKey) -> Result<pb::TemporaryExposureKey, ExportError> {
    let period = i32::from(key.rolling_period);
    if !(1..=INTERVALS_PER_DAY as i32).contains(&period) {
        return Err(ExportError::InvalidField {
            field: "rolling_period",
        });
    }
    let start = to_i32(key.rolling_start.0, "rolling_start_interval_number")?;
    Ok(pb::TemporaryExposureKey {
        key_data: Some(key.key.as_bytes().to_vec()),
        transmission_risk_level: Some(backfilled_transmission_risk(key.report_type)),
        rolling_start_interval_number: (start != 0).then_some(start),
        rolling_period: (period != DEFAULT_ROLLING_PERIOD).then_some(period),
        report_type: Some(i32::from(key.report_type.code())),
        days_since_onset_of_symptoms: key.days_since_onset.map(i32::from),
    })
}

/// The transmission risk Google's server backfills for v1.0 clients when the upload gave
/// none (`ReportTypeTransmissionRisk`): confirmed 2, clinical 4, revoked (negative) 6.
fn backfilled_transmission_risk(report_type: ReportType) -> i32 {
    match report_type {
        ReportType::ConfirmedTest => 2,
        ReportType::ConfirmedClinicalDiagnosis => 4,
        ReportType::Revoked => 6,
        ReportType::SelfReport | ReportType::Recursive => 0,
    }
}

fn decode_export_bin(body: &[u8]) -> Result<ExportFile, ExportError> {
    let message = pb::TemporaryExposureKeyExport::decode(body)
        .map_err(|_| ExportError::Malformed { what: "export.bin" })?;
    let batch = |value: Option<i32>, what| {
        u32::try_from(value.unwrap_or(1)).map_err(|_| ExportError::Malformed { what })
    };
    Ok(ExportFile {
        start_timestamp: UnixTime(message.start_timestamp.unwrap_or(0)),
        end_timestamp: UnixTime(message.end_timestamp.unwrap_or(0)),
        region: message.region.unwrap_or_default(),
        batch_num: batch(message.batch_num, "batch_num")?,
        batch_size: batch(message.batch_size, "batch_size")?,
        signature_infos: message
            .signature_infos
            .into_iter()
            .map(SignatureInfo::from_pb)
            .collect(),
        keys: keys_from_pb(message.keys)?,
        revised_keys: keys_from_pb(message.revised_keys)?,
    })
}

fn keys_from_pb(keys: Vec<pb::TemporaryExposureKey>) -> Result<Vec<DiagnosisKey>, ExportError> {
    keys.into_iter().map(key_from_pb).collect()
}

fn key_from_pb(key: pb::TemporaryExposureKey) -> Result<DiagnosisKey, ExportError> {
    let malformed = |what| ExportError::Malformed { what };
    let bytes: [u8; 16] = key
        .key_data
        .as_deref()
        .and_then(|k| k.try_into().ok())
        .ok_or(malformed("key_data"))?;
    let rolling_start = u32::try_from(key.rolling_start_interval_number.unwrap_or(0))
        .map_err(|_| malformed("rolling_start_interval_number"))?;
    let rolling_period = key.rolling_period.unwrap_or(DEFAULT_ROLLING_PERIOD);
    let rolling_period = u8::try_from(rolling_period)
        .ok()
        .filter(|p| (1..=INTERVALS_PER_DAY).contains(&u32::from(*p)))
        .ok_or(malformed("rolling_period"))?;
    let report_type = match key.report_type {
        None | Some(0) => REPORT_TYPE_WHEN_MISSING,
        Some(code) => u8::try_from(code)
            .ok()
            .and_then(ReportType::from_code)
            .ok_or(malformed("report_type"))?,
    };
    let days_since_onset = key
        .days_since_onset_of_symptoms
        .map(i8::try_from)
        .transpose()
        .map_err(|_| malformed("days_since_onset_of_symptoms"))?;
    Ok(DiagnosisKey {
        key: TemporaryExposureKey(bytes),
        rolling_start: IntervalNumber(rolling_start),
        rolling_period,
        report_type,
        days_since_onset,
    })
}

fn to_i32(value: u32, field: &'static str) -> Result<i32, ExportError> {
    i32::try_from(value).map_err(|_| ExportError::InvalidField { field })
}

/// Deflates `entries` into a zip, in order, with a fixed timestamp (no clock read).
fn zip_entries(entries: &[(&str, &[u8])]) -> Result<Vec<u8>, ExportError> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default());
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        writer
            .start_file(*name, options)
            .map_err(|_| ExportError::ArchiveWrite)?;
        writer
            .write_all(content)
            .map_err(|_| ExportError::ArchiveWrite)?;
    }
    let cursor = writer.finish().map_err(|_| ExportError::ArchiveWrite)?;
    Ok(cursor.into_inner())
}

/// Strict standard base64 (RFC 4648 §4) ignoring ASCII whitespace; `None` on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let symbols: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if !symbols.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() / 4 * 3);
    let quads = symbols.len() / 4;
    for (i, quad) in symbols.chunks_exact(4).enumerate() {
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && i + 1 != quads) {
            return None;
        }
        let mut acc = 0u32;
        for &c in &quad[..4 - padding] {
            acc = (acc << 6) | value(c)?;
        }
        acc <<= 6 * padding as u32;
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
