//! `export verify`: checks a GAEN export zip against a PEM public key.

use std::io::Write;

use ephemera_proto::gaen::{decode_export_zip, p256_public_key_from_pem};

use super::{CliError, ExportVerifyArgs};

/// Verifies the zip's `export.sig` over `export.bin` with the PEM key and prints
/// `<key hex> <rolling start> <rolling period>` per key: the file's `keys`, then its
/// `revised_keys`.
///
/// # Errors
/// [`CliError::Io`] when a file cannot be read, [`CliError::Export`] with a clear reason
/// when the key, the signature or the format is wrong.
pub fn export_verify(args: &ExportVerifyArgs, out: &mut impl Write) -> Result<(), CliError> {
    let pem = std::fs::read_to_string(&args.public_key).map_err(|source| CliError::Io {
        what: format!("reading {}", args.public_key.display()),
        source,
    })?;
    let zip = std::fs::read(&args.zip).map_err(|source| CliError::Io {
        what: format!("reading {}", args.zip.display()),
        source,
    })?;
    write_verified_keys(&pem, &zip, out)
}

/// The work of [`export_verify`] on bytes already read.
///
/// # Errors
/// As [`export_verify`].
pub fn write_verified_keys(pem: &str, zip: &[u8], out: &mut impl Write) -> Result<(), CliError> {
    let key =
        p256_public_key_from_pem(pem).map_err(|e| CliError::Export(format!("public key: {e}")))?;
    let file = decode_export_zip(zip, &key).map_err(|e| CliError::Export(e.to_string()))?;
    for key in file.keys.iter().chain(&file.revised_keys) {
        writeln!(
            out,
            "{} {} {}",
            hex::encode(key.key.as_bytes()),
            key.rolling_start.0,
            key.rolling_period
        )
        .map_err(|source| CliError::Io {
            what: "writing output".to_owned(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ephemera_proto::gaen::{
        DiagnosisKey, ExportFile, SignatureInfo, TemporaryExposureKey, encode_export_zip,
    };
    use ephemera_proto::report::ReportType;
    use ephemera_proto::{IntervalNumber, UnixTime};
    use ring::rand::SystemRandom;

    use super::*;
    use crate::keys::NodeKeys;

    fn signed_zip() -> (NodeKeys, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = NodeKeys::load_or_create(dir.path(), &mut rand::rng()).unwrap();
        let mut file = ExportFile::new(UnixTime(1_700_000_000), UnixTime(1_700_003_600), "ZZ");
        file.keys = vec![
            DiagnosisKey {
                key: TemporaryExposureKey([0x11; 16]),
                rolling_start: IntervalNumber(2_833_200),
                rolling_period: 144,
                report_type: ReportType::ConfirmedTest,
                days_since_onset: Some(1),
            },
            DiagnosisKey {
                key: TemporaryExposureKey([0x22; 16]),
                rolling_start: IntervalNumber(2_833_344),
                rolling_period: 70,
                report_type: ReportType::ConfirmedTest,
                days_since_onset: None,
            },
        ];
        let signer = keys
            .export
            .export_signer(SignatureInfo::new("v1", "ephemera"))
            .unwrap();
        let zip = encode_export_zip(&file, &signer, &SystemRandom::new()).unwrap();
        (keys, zip)
    }

    #[test]
    fn prints_each_key_of_a_valid_export() {
        let (keys, zip) = signed_zip();
        let mut out = Vec::new();
        write_verified_keys(&keys.export.public_key_pem(), &zip, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "{} 2833200 144\n{} 2833344 70\n",
                "11".repeat(16),
                "22".repeat(16)
            )
        );
    }

    #[test]
    fn wrong_key_tampering_and_garbage_are_refused_clearly() {
        let (_, zip) = signed_zip();
        let (other, _) = signed_zip();
        let err =
            write_verified_keys(&other.export.public_key_pem(), &zip, &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("signature does not verify"),
            "{err}"
        );
        let err = write_verified_keys("not a pem", &zip, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("public key"), "{err}");
        let err = write_verified_keys(&other.export.public_key_pem(), b"garbage", &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("zip"), "{err}");
    }
}
