//! `gaen`: exactly Google/Apple Exposure Notification Cryptography v1.2.
//!
//! A phone makes one [`TemporaryExposureKey`] per UTC day. From it come the Rolling
//! Proximity Identifier Key (RPIK) and the Associated Encrypted Metadata Key (AEMK); each
//! 10-minute interval it broadcasts a [`RollingProximityIdentifier`] and its
//! [`AssociatedEncryptedMetadata`]. A positive phone uploads its keys as
//! [`DiagnosisKey`]s; other phones re-derive the identifiers and look for them in what they
//! heard.

mod tek;

pub use tek::{DiagnosisKey, TemporaryExposureKey};
