//! Benchmarks that print one JSON line per figure:
//! `{"bench","value","unit","limit","ratio"}`, where `limit` is the physical bound or the
//! peer measured in the same run and `ratio = value / limit`.
//!
//! Speed targets live here, never in timed unit tests.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;

pub mod client;
pub mod decoy_timing;
pub mod federation;
pub mod flood;
pub mod http;
pub mod ingest;
pub mod load;
pub mod matching;
pub mod proto;
pub mod serve;
pub mod sim;
pub mod venue;

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// What was measured, e.g. `gaen-rpi-derivation`.
    pub bench: String,
    /// The measured rate or amount.
    pub value: f64,
    /// Unit of `value` and `limit`, e.g. `keys/s`.
    pub unit: String,
    /// The bound or peer this is compared with, in the same unit.
    pub limit: f64,
    /// `value / limit`.
    pub ratio: f64,
}

impl Figure {
    /// A figure compared with `limit`.
    pub fn new(bench: &str, value: f64, unit: &str, limit: f64) -> Figure {
        let ratio = if limit > 0.0 { value / limit } else { 0.0 };
        Figure {
            bench: bench.to_owned(),
            value: round(value),
            unit: unit.to_owned(),
            limit: round(limit),
            ratio: round(ratio),
        }
    }

    /// The JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("plain JSON")
    }
}

fn round(x: f64) -> f64 {
    if x.abs() >= 100.0 {
        x.round()
    } else {
        (x * 1000.0).round() / 1000.0
    }
}

/// Runs `op` (which performs `ops_per_call` operations) repeatedly for about `budget` and
/// returns operations per second.
pub fn rate(budget: Duration, ops_per_call: u64, mut op: impl FnMut()) -> f64 {
    // Warm up caches and lazy tables.
    for _ in 0..3 {
        op();
    }
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        for _ in 0..8 {
            op();
        }
        calls += 8;
    }
    black_box(&mut op);
    (calls * ops_per_call) as f64 / start.elapsed().as_secs_f64()
}

/// The process's resident set in bytes (Linux `/proc/self/status`), 0 where unknown.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// The runtime the HTTP benches run on: two workers, the reference machine's two cores.
pub fn two_core_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A phone's upload of `contents`, certified at `now` for an hour by `authority`, as the
/// encoded request body of `POST /v1/uploads`.
pub fn certified_upload_body(
    authority: &ephemera_proto::auth::AuthoritySigningKey,
    contents: ephemera_proto::report::ReportContents,
    now: ephemera_proto::UnixTime,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Vec<u8> {
    use ephemera_proto::auth::{CertificateRequest, ReportHmacKey};
    use ephemera_proto::upload::{SignedUpload, UploadRequest};
    let hmac_key = ReportHmacKey::generate(rng);
    let request = CertificateRequest {
        report_hmac: hmac_key.authenticate_bound(
            &contents,
            ephemera_proto::revision::HmacBinding::Upload(
                ephemera_proto::revision::RevisionSecret::from_seed(&[7; 32]).key(),
            ),
        ),
        test_type: ephemera_proto::report::ReportType::ConfirmedTest,
        symptom_onset: None,
    };
    let certificate = authority.issue(&request, now, 3600, rng);
    ephemera_proto::wire::encode(&UploadRequest::real(
        SignedUpload {
            contents,
            certificate,
            hmac_key,
        },
        ephemera_proto::revision::RevisionSecret::from_seed(&[7; 32]).key(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_serialize_with_the_contract_fields() {
        let line = Figure::new("x", 50.0, "ops/s", 200.0).to_json_line();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        for field in ["bench", "value", "unit", "limit", "ratio"] {
            assert!(value.get(field).is_some(), "{field} missing in {line}");
        }
        assert_eq!(value["ratio"], 0.25);
    }

    #[test]
    fn rate_counts_operations() {
        let mut n = 0u64;
        let r = rate(Duration::from_millis(20), 10, || n += 1);
        assert!(r > 0.0 && n > 0);
    }
}
