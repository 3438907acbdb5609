//! The protobuf messages of GAEN key export files, written by hand for `prost`.
//!
//! Field numbers, types and labels follow `internal/pb/export/export.proto` of
//! google/exposure-notifications-server (proto2, every field `optional`):
//!
//! ```text
//! TemporaryExposureKeyExport { fixed64 start_timestamp = 1; fixed64 end_timestamp = 2;
//!   string region = 3; int32 batch_num = 4; int32 batch_size = 5;
//!   repeated SignatureInfo signature_infos = 6; repeated TemporaryExposureKey keys = 7;
//!   repeated TemporaryExposureKey revised_keys = 8; }
//! SignatureInfo { reserved 1, 2; string verification_key_version = 3;
//!   string verification_key_id = 4; string signature_algorithm = 5; }
//! TemporaryExposureKey { bytes key_data = 1; int32 transmission_risk_level = 2;
//!   int32 rolling_start_interval_number = 3; int32 rolling_period = 4 [default = 144];
//!   ReportType report_type = 5; sint32 days_since_onset_of_symptoms = 6; }
//! TEKSignatureList { repeated TEKSignature signatures = 1; }
//! TEKSignature { SignatureInfo signature_info = 1; int32 batch_num = 2;
//!   int32 batch_size = 3; bytes signature = 4; }
//! ```

/// `TemporaryExposureKeyExport`: the body of `export.bin` after its 16-byte header.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TemporaryExposureKeyExport {
    #[prost(fixed64, optional, tag = "1")]
    pub(super) start_timestamp: Option<u64>,
    #[prost(fixed64, optional, tag = "2")]
    pub(super) end_timestamp: Option<u64>,
    #[prost(string, optional, tag = "3")]
    pub(super) region: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub(super) batch_num: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    pub(super) batch_size: Option<i32>,
    #[prost(message, repeated, tag = "6")]
    pub(super) signature_infos: Vec<SignatureInfo>,
    #[prost(message, repeated, tag = "7")]
    pub(super) keys: Vec<TemporaryExposureKey>,
    #[prost(message, repeated, tag = "8")]
    pub(super) revised_keys: Vec<TemporaryExposureKey>,
}

/// `SignatureInfo`: which key signed, and how.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct SignatureInfo {
    #[prost(string, optional, tag = "3")]
    pub(super) verification_key_version: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub(super) verification_key_id: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub(super) signature_algorithm: Option<String>,
}

/// `TemporaryExposureKey.ReportType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(super) enum ReportType {
    Unknown = 0,
    ConfirmedTest = 1,
    ConfirmedClinicalDiagnosis = 2,
    SelfReport = 3,
    Recursive = 4,
    Revoked = 5,
}

/// `TemporaryExposureKey`: one published key.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TemporaryExposureKey {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) key_data: Option<Vec<u8>>,
    #[prost(int32, optional, tag = "2")]
    pub(super) transmission_risk_level: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub(super) rolling_start_interval_number: Option<i32>,
    #[prost(int32, optional, tag = "4", default = "144")]
    pub(super) rolling_period: Option<i32>,
    #[prost(enumeration = "ReportType", optional, tag = "5")]
    pub(super) report_type: Option<i32>,
    #[prost(sint32, optional, tag = "6")]
    pub(super) days_since_onset_of_symptoms: Option<i32>,
}

/// `TEKSignatureList`: the whole of `export.sig`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TekSignatureList {
    #[prost(message, repeated, tag = "1")]
    pub(super) signatures: Vec<TekSignature>,
}

/// `TEKSignature`: one signature over `export.bin`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TekSignature {
    #[prost(message, optional, tag = "1")]
    pub(super) signature_info: Option<SignatureInfo>,
    #[prost(int32, optional, tag = "2")]
    pub(super) batch_num: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub(super) batch_size: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(super) signature: Option<Vec<u8>>,
}
