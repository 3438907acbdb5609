//! `gaen`: exactly Google/Apple Exposure Notification Cryptography v1.2.
//!
//! A phone makes one [`TemporaryExposureKey`] per UTC day. From it come the Rolling
//! Proximity Identifier Key (RPIK) and the Associated Encrypted Metadata Key (AEMK); each
//! 10-minute interval it broadcasts a [`RollingProximityIdentifier`] and its
//! [`AssociatedEncryptedMetadata`]. A positive phone uploads its keys as
//! [`DiagnosisKey`]s; other phones re-derive the identifiers and look for them in what they
//! heard.

mod aem;
mod rpi;
mod tek;

pub use aem::{
    AEM_LEN, AEMK_INFO, AssociatedEncryptedMetadata, AssociatedEncryptedMetadataKey, Metadata,
};
pub use rpi::{
    RPI_LEN, RPI_PADDING, RPIK_INFO, RollingProximityIdentifier, RollingProximityIdentifierKey,
    Rpis,
};
pub use tek::{DiagnosisKey, MATCH_TOLERANCE_INTERVALS, TemporaryExposureKey};
