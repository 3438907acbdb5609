//! `gaen`: exactly Google/Apple Exposure Notification Cryptography v1.2.
//!
//! A phone makes one [`TemporaryExposureKey`] per UTC day. From it come the Rolling
//! Proximity Identifier Key (RPIK) and the Associated Encrypted Metadata Key (AEMK); each
//! 10-minute interval it broadcasts a [`RollingProximityIdentifier`] and its
//! [`AssociatedEncryptedMetadata`]. A positive phone uploads its keys as
//! [`DiagnosisKey`]s; other phones re-derive the identifiers and look for them in what they
//! heard.

mod aem;
mod export;
mod rpi;
mod tek;

pub use aem::{
    AEM_LEN, AEMK_INFO, AssociatedEncryptedMetadata, AssociatedEncryptedMetadataKey, Metadata,
};
pub use export::{
    EXPORT_BIN_NAME, EXPORT_HEADER, EXPORT_SIG_NAME, ExportError, ExportFile, ExportSigner,
    MAX_EXPORT_ENTRIES, MAX_EXPORT_UNCOMPRESSED_BYTES, MAX_EXPORT_ZIP_BYTES,
    REPORT_TYPE_WHEN_MISSING, SIGNATURE_ALGORITHM_OID, SignatureInfo, decode_export_zip,
    encode_export_zip, encode_export_zip_signed_by, p256_public_key_from_pem,
    p256_public_key_from_spki_der,
};
pub use rpi::{
    RPI_LEN, RPI_PADDING, RPIK_INFO, RollingProximityIdentifier, RollingProximityIdentifierKey,
    Rpis,
};
pub use tek::{DiagnosisKey, MATCH_TOLERANCE_INTERVALS, TemporaryExposureKey};
