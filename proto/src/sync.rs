//! Catch-up messages between nodes: per-day digests, id pages and upload fetches.
//!
//! Nodes file every upload under its *sync day* ([`sync_day`]) and compare what they hold
//! day by day: first [`DayDigest`]s (count and XOR of ids), then pages of ids for a day that
//! differs, then the uploads they lack. The transport (a libp2p request-response stream in
//! `ephemera-node`) frames each message with [`crate::wire`]; every size here is capped so a
//! peer cannot make another allocate or send without bound.

use serde::{Deserialize, Serialize};

use crate::DayNumber;
use crate::federated::FederatedReport;
use crate::upload::{SignedUpload, UploadId};
use crate::wire::{self, WireMessage};

/// The day an upload is filed under for catch-up: the UTC day its certificate was issued.
///
/// Relayed verification bounds a certificate's age by the retention period from this same
/// instant, so a day older than retention holds nothing any node would accept.
pub fn sync_day(upload: &SignedUpload) -> DayNumber {
    upload.certificate.certificate.issued_at.day()
}

/// A summary of one day's uploads: count and XOR of their ids.
///
/// Two nodes holding the same set of ids for a day have equal digests; XOR makes the digest
/// independent of order and cheap to maintain incrementally (XOR the id in on insert, out on
/// purge).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayDigest {
    /// The sync day.
    pub day: DayNumber,
    /// Number of uploads filed under that day.
    pub count: u32,
    /// XOR of their [`UploadId`]s.
    pub xor: [u8; 32],
}

impl DayDigest {
    /// The digest of a day with nothing in it.
    pub fn empty(day: DayNumber) -> Self {
        DayDigest {
            day,
            count: 0,
            xor: [0; 32],
        }
    }

    /// Takes `id` out of the digest (retention purge).
    pub fn remove(&mut self, id: &UploadId) {
        self.count = self.count.saturating_sub(1);
        for (x, b) in self.xor.iter_mut().zip(id.0) {
            *x ^= b;
        }
    }

    /// Adds `id` to the digest.
    pub fn add(&mut self, id: &UploadId) {
        self.count = self.count.saturating_add(1);
        for (x, b) in self.xor.iter_mut().zip(id.0) {
            *x ^= b;
        }
    }
}

/// Most days one digest response covers (a retention window of up to 31 days, plus one
/// day of clock skew).
pub const MAX_DIGEST_DAYS: u32 = 32;
/// Most ids in one page.
pub const MAX_IDS_PER_PAGE: usize = 4096;
/// Most ids in one fetch request.
pub const MAX_FETCH_IDS: usize = 256;
/// Uploads in one fetch response stop once this many encoded bytes are reached (one upload,
/// up to 1 MiB, is always allowed).
pub const MAX_UPLOAD_BYTES: usize = 4 << 20;

/// A catch-up request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Digests of the days `from..=to` (clamped by the responder to its retention window
    /// and [`MAX_DIGEST_DAYS`]).
    Digests {
        /// First day wanted.
        from: DayNumber,
        /// Last day wanted.
        to: DayNumber,
    },
    /// One page of the ids filed under `day`, ascending, strictly after `after`.
    Ids {
        /// The sync day.
        day: DayNumber,
        /// Cursor: the last id of the previous page.
        after: Option<UploadId>,
        /// Page size wanted (clamped to [`MAX_IDS_PER_PAGE`]).
        limit: u32,
    },
    /// The uploads with these ids (only the first [`MAX_FETCH_IDS`] are considered), as a
    /// node of version 1 asks: answered with the unbound ones only
    /// ([`SyncResponse::Uploads`]).
    Fetch {
        /// Ids wanted.
        ids: Vec<UploadId>,
    },
    /// Version 2: the uploads with these ids with their bindings (revision keys, revision
    /// signatures), answered with [`SyncResponse::Reports`].
    FetchReports {
        /// Ids wanted.
        ids: Vec<UploadId>,
    },
}

impl WireMessage for SyncRequest {
    const KIND: u8 = wire::kind::SYNC_REQUEST;
    // A fetch of MAX_FETCH_IDS ids is about 8 KiB.
    const MAX_SIZE: usize = 64 << 10;
    const VERSIONS: &'static [u8] = &[wire::WIRE_VERSION, wire::WIRE_VERSION_2];

    fn wire_version(&self) -> u8 {
        match self {
            SyncRequest::FetchReports { .. } => wire::WIRE_VERSION_2,
            _ => wire::WIRE_VERSION,
        }
    }
}

impl SyncRequest {
    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncRequest::Digests { .. } => "digests",
            SyncRequest::Ids { .. } => "ids",
            SyncRequest::Fetch { .. } | SyncRequest::FetchReports { .. } => "fetch",
        }
    }
}

/// A catch-up response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Digests of the non-empty days in the clamped range; a day left out is empty.
    Digests {
        /// First day actually covered.
        from: DayNumber,
        /// Last day actually covered.
        to: DayNumber,
        /// One digest per non-empty day, ascending.
        days: Vec<DayDigest>,
    },
    /// One page of a day's ids.
    Ids {
        /// The day asked for.
        day: DayNumber,
        /// Ascending ids after the cursor.
        ids: Vec<UploadId>,
        /// Whether more ids follow the last one.
        more: bool,
    },
    /// Uploads asked for, in canonical form; ids the responder lacks (or that fell out of
    /// retention) are left out, and the list stops at [`MAX_UPLOAD_BYTES`].
    Uploads {
        /// The uploads.
        uploads: Vec<SignedUpload>,
    },
    /// Version 2: uploads asked for by [`SyncRequest::FetchReports`], each with its
    /// binding, under the same rules as [`SyncResponse::Uploads`].
    Reports {
        /// The uploads and their bindings.
        reports: Vec<FederatedReport>,
    },
}

impl WireMessage for SyncResponse {
    const KIND: u8 = wire::kind::SYNC_RESPONSE;
    // MAX_UPLOAD_BYTES plus one more upload of up to 1 MiB, plus framing.
    const MAX_SIZE: usize = MAX_UPLOAD_BYTES + (1 << 20) + (64 << 10);
    const VERSIONS: &'static [u8] = &[wire::WIRE_VERSION, wire::WIRE_VERSION_2];

    fn wire_version(&self) -> u8 {
        match self {
            SyncResponse::Reports { .. } => wire::WIRE_VERSION_2,
            _ => wire::WIRE_VERSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn day() -> impl Strategy<Value = DayNumber> {
        any::<u32>().prop_map(DayNumber)
    }

    fn id() -> impl Strategy<Value = UploadId> {
        any::<[u8; 32]>().prop_map(UploadId)
    }

    fn request() -> impl Strategy<Value = SyncRequest> {
        prop_oneof![
            (day(), day()).prop_map(|(from, to)| SyncRequest::Digests { from, to }),
            (day(), proptest::option::of(id()), any::<u32>())
                .prop_map(|(day, after, limit)| SyncRequest::Ids { day, after, limit }),
            proptest::collection::vec(id(), 0..300).prop_map(|ids| SyncRequest::Fetch { ids }),
            proptest::collection::vec(id(), 0..300)
                .prop_map(|ids| SyncRequest::FetchReports { ids }),
        ]
    }

    fn response() -> impl Strategy<Value = SyncResponse> {
        let digest = (day(), any::<u32>(), any::<[u8; 32]>())
            .prop_map(|(day, count, xor)| DayDigest { day, count, xor });
        prop_oneof![
            (day(), day(), proptest::collection::vec(digest, 0..40))
                .prop_map(|(from, to, days)| SyncResponse::Digests { from, to, days }),
            (
                day(),
                proptest::collection::vec(id(), 0..300),
                any::<bool>()
            )
                .prop_map(|(day, ids, more)| SyncResponse::Ids { day, ids, more }),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(request in request()) {
            let bytes = wire::encode(&request);
            prop_assert_eq!(wire::decode::<SyncRequest>(&bytes).unwrap(), request);
        }

        #[test]
        fn responses_round_trip(response in response()) {
            let bytes = wire::encode(&response);
            prop_assert_eq!(wire::decode::<SyncResponse>(&bytes).unwrap(), response);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            for version in [wire::WIRE_VERSION, wire::WIRE_VERSION_2] {
                let mut framed = vec![version, wire::kind::SYNC_REQUEST];
                framed.extend_from_slice(&bytes);
                let _ = wire::decode::<SyncRequest>(&framed);
                framed[1] = wire::kind::SYNC_RESPONSE;
                let _ = wire::decode::<SyncResponse>(&framed);
            }
        }

        /// Each variant travels in its own version only: a variant of the other version is
        /// refused, so a node of version 1 never reads a binding it cannot check.
        #[test]
        fn a_variant_in_the_other_version_is_refused(request in request()) {
            let mut bytes = wire::encode(&request);
            bytes[0] = if bytes[0] == wire::WIRE_VERSION { wire::WIRE_VERSION_2 } else { wire::WIRE_VERSION };
            let refused = matches!(wire::decode::<SyncRequest>(&bytes), Err(crate::DecodeError::NotInVersion { .. }));
            prop_assert!(refused);
        }

        #[test]
        fn a_request_under_another_kind_is_refused(request in request()) {
            let bytes = wire::encode(&request);
            prop_assert!(wire::decode::<SyncResponse>(&bytes).is_err());
        }
    }

    #[test]
    fn digests_are_order_independent_and_undo() {
        let (a, b) = (UploadId([1; 32]), UploadId([2; 32]));
        let mut ab = DayDigest::empty(DayNumber(5));
        ab.add(&a);
        ab.add(&b);
        let mut ba = DayDigest::empty(DayNumber(5));
        ba.add(&b);
        ba.add(&a);
        assert_eq!(ab, ba);
        ab.remove(&a);
        ab.remove(&b);
        assert_eq!(ab, DayDigest::empty(DayNumber(5)));
    }

    #[test]
    fn oversized_requests_are_refused_before_decoding() {
        let mut framed = vec![wire::WIRE_VERSION, wire::kind::SYNC_REQUEST];
        framed.resize(SyncRequest::MAX_SIZE + 1, 0);
        assert!(wire::decode::<SyncRequest>(&framed).is_err());
    }
}
