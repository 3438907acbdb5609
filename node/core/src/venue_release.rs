//! Venue releases (issue 20, `docs/PROTOCOL.md` §10.1): a case worker's trace of one case
//! at one venue becomes a release this node's authority signs; a release from anywhere
//! (this node's own, a peer's) is checked against the trusted authorities and stored until
//! its expiry or this node's retention, whichever comes first.
//!
//! The trace code, the case's times and the message live only in the request: the release
//! holds them sealed inside its traces (the notice) or not at all (the venue), and nothing
//! here logs.

use ephemera_proto::UnixTime;
use ephemera_proto::venue::{
    MAX_MESSAGE_LEN, MAX_TRACE_HOURS, Notice, ReleaseError, ReleaseId, ReleaseIndexEntry,
    SignedVenueRelease, TraceCode, VenueDecodeError, VenueError, VenueHour, VenueRelease,
};
use rand_core::CryptoRng;
use thiserror::Error;

use crate::NodeCore;
use crate::keys::venue_key;
use crate::store::{ReportStore, StoreError};

/// What a case worker asks to trace.
pub struct TraceRequest<'a> {
    /// The venue's trace code, as its bytes.
    pub trace_code: &'a [u8],
    /// When the case arrived at the venue.
    pub case_from: UnixTime,
    /// When the case left.
    pub case_until: UnixTime,
    /// The message shown to the people warned (UTF-8, at most [`MAX_MESSAGE_LEN`] bytes).
    pub message: &'a str,
}

impl std::fmt::Debug for TraceRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceRequest").finish_non_exhaustive()
    }
}

/// Why a case worker's trace request was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceError {
    /// The trace code's text is neither base64 nor hex.
    #[error("the trace code must be given in base64 or hex")]
    UnreadableTraceCode,
    /// The trace code does not decode.
    #[error("not a trace code: {0}")]
    BadTraceCode(VenueDecodeError),
    /// The trace code's authority share does not open with this authority's venue key:
    /// a venue of another authority (or an altered code).
    #[error("the trace code belongs to another authority")]
    OtherAuthority,
    /// The case's times end before they start.
    #[error("the case's times end before they start")]
    InvertedTimes,
    /// The case's times span more hours than one release holds.
    #[error("the case's times span {got} hours, at most {max} allowed")]
    TooManyHours {
        /// Hours spanned.
        got: u64,
        /// The cap.
        max: u64,
    },
    /// The message is longer than a notice holds.
    #[error("the message is {got} bytes, at most {max} allowed")]
    MessageTooLong {
        /// Bytes given.
        got: usize,
        /// The cap.
        max: usize,
    },
}

impl TraceError {
    /// The error code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            TraceError::UnreadableTraceCode | TraceError::BadTraceCode(_) => "invalid-trace-code",
            TraceError::OtherAuthority => "trace-code-of-another-authority",
            TraceError::InvertedTimes => "invalid-time-range",
            TraceError::TooManyHours { .. } => "too-many-hours",
            TraceError::MessageTooLong { .. } => "message-too-long",
        }
    }
}

/// Why a release from outside (a peer, a file) was not taken.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseRefusal {
    /// Not a release frame.
    #[error("not a venue release: {0}")]
    Malformed(ephemera_proto::error::DecodeError),
    /// A release that fails its checks ([`ReleaseError`]): untrusted, forged, misshapen or
    /// expired.
    #[error("{0}")]
    Invalid(ReleaseError),
    /// Valid, but older than this node's retention period.
    #[error("issued before this node's retention period")]
    PastRetention,
}

impl ReleaseRefusal {
    /// Whether the peer that relayed it is to blame: not for another authority's valid
    /// release (issue 16: an honest peer relays what its own authorities trust), nor for
    /// one this node no longer keeps, nor for one issued after this node's clock.
    pub fn blames_sender(&self) -> bool {
        !self.is_for_later()
            && !matches!(
                self,
                ReleaseRefusal::Invalid(ReleaseError::UntrustedAuthority)
                    | ReleaseRefusal::Invalid(ReleaseError::Expired { .. })
                    | ReleaseRefusal::PastRetention
            )
    }

    /// Whether the same bytes may be taken later: a release issued after this node's clock
    /// (a clock behind, or jumped back) is refused now and taken once the clock has caught
    /// up, so it must not be remembered as refused.
    pub fn is_for_later(&self) -> bool {
        matches!(
            self,
            ReleaseRefusal::Invalid(ReleaseError::PostDated { .. })
        )
    }
}

/// A release that passed every check, with what the store needs.
#[derive(Debug)]
pub struct AdmittedRelease {
    /// Its content address.
    pub id: ReleaseId,
    /// Its frame, as received (canonical: it re-encodes to the same bytes).
    pub frame: Vec<u8>,
    /// When this node forgets it.
    pub purge_at: UnixTime,
}

impl NodeCore {
    /// Makes the release for a case worker's request at `now`: opens the trace code's
    /// authority share with this authority's venue key, makes the trace key of every hour
    /// the case's times touch, seals the notice under each, pads to a release and signs it
    /// with the authority key. It expires after the retention period.
    ///
    /// # Errors
    /// [`TraceError`], checked in this order: message, times, trace code, authority.
    pub fn trace_venue(
        &self,
        request: &TraceRequest<'_>,
        now: UnixTime,
        rng: &mut impl CryptoRng,
    ) -> Result<SignedVenueRelease, TraceError> {
        if request.message.len() > MAX_MESSAGE_LEN {
            return Err(TraceError::MessageTooLong {
                got: request.message.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        if request.case_until < request.case_from {
            return Err(TraceError::InvertedTimes);
        }
        let first = VenueHour::containing(request.case_from).map_err(|_| too_many(u64::MAX))?;
        let last = VenueHour::containing(request.case_until).map_err(|_| too_many(u64::MAX))?;
        let hours = u64::from(last.0 - first.0) + 1;
        if hours > MAX_TRACE_HOURS {
            return Err(too_many(hours));
        }
        let trace_code =
            TraceCode::from_bytes(request.trace_code).map_err(TraceError::BadTraceCode)?;
        let keys = trace_code
            .trace_keys(&venue_key(&self.keys.pepper), first, last)
            .map_err(|error| match error {
                VenueError::TooManyHours { got, .. } => too_many(got),
                VenueError::BadTimeRange => TraceError::InvertedTimes,
                _ => TraceError::OtherAuthority,
            })?;
        let notice = Notice {
            case_from: request.case_from,
            case_until: request.case_until,
            message: request.message.to_owned(),
        };
        let traces = keys
            .into_iter()
            .map(|key| notice.seal(trace_code.entry_code(), key, rng))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TraceError::InvertedTimes)?;
        let authority = self.keys.authority.public_key().key_id();
        let release = VenueRelease::pad(
            &traces,
            authority,
            now,
            now.plus_seconds(self.policy.retention_seconds()),
            rng,
        )
        // One notice, hours checked above: padding cannot fail.
        .expect("the traces of one notice over at most 24 hours pad");
        Ok(release.sign(&self.keys.authority))
    }

    /// Checks a release's frame from anywhere at `now`: it decodes, re-encodes to the same
    /// bytes, verifies under a trusted authority key, and is within this node's retention.
    ///
    /// # Errors
    /// [`ReleaseRefusal`].
    pub fn admit_venue_release(
        &self,
        frame: &[u8],
        now: UnixTime,
    ) -> Result<AdmittedRelease, ReleaseRefusal> {
        let release = SignedVenueRelease::from_bytes(frame).map_err(ReleaseRefusal::Malformed)?;
        if release.to_bytes() != frame {
            // One encoding per release, so its id is the same at every node.
            return Err(ReleaseRefusal::Malformed(
                ephemera_proto::error::DecodeError::Malformed,
            ));
        }
        release
            .verify(&self.trusted, now)
            .map_err(ReleaseRefusal::Invalid)?;
        let own_end = release
            .release
            .issued_at
            .plus_seconds(self.policy.retention_seconds());
        if own_end < now {
            return Err(ReleaseRefusal::PastRetention);
        }
        Ok(AdmittedRelease {
            id: release.id(),
            frame: frame.to_vec(),
            purge_at: own_end.min(release.release.expires_at),
        })
    }

    /// Stores an admitted release durably at `now`: its index entry when it is new, `None`
    /// when the store held it already.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn store_venue_release(
        &self,
        store: &dyn ReportStore,
        admitted: &AdmittedRelease,
        now: UnixTime,
    ) -> Result<Option<ReleaseIndexEntry>, StoreError> {
        store.insert_venue_release(&admitted.id, &admitted.frame, now, admitted.purge_at)
    }
}

fn too_many(got: u64) -> TraceError {
    TraceError::TooManyHours {
        got,
        max: MAX_TRACE_HOURS,
    }
}

#[cfg(test)]
mod tests {
    use ephemera_proto::venue::{CheckIn, check_in, create_venue, match_check_ins};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::store::MemoryReportStore;
    use crate::tests::core;

    const ARRIVAL: UnixTime = UnixTime(1_700_000_000);

    fn venue_of(
        core: &NodeCore,
        rng: &mut ChaCha20Rng,
    ) -> (ephemera_proto::venue::EntryCode, Vec<u8>) {
        let authority = venue_key(&core.keys().pepper).public_key();
        let (entry, code) = create_venue(
            &authority,
            "Café",
            "Main Street 1",
            UnixTime(0),
            UnixTime(u64::MAX),
            rng,
        )
        .unwrap();
        (entry, code.to_bytes().to_vec())
    }

    fn request(code: &[u8]) -> TraceRequest<'_> {
        TraceRequest {
            trace_code: code,
            case_from: ARRIVAL,
            case_until: ARRIVAL.plus_seconds(5400),
            message: "Get tested.",
        }
    }

    /// The whole flow in the core: a case worker's trace becomes a release the node
    /// admits and stores, whose traces warn a phone that checked in then and no phone that
    /// checked in elsewhere.
    #[test]
    fn a_traced_case_warns_its_visitors_through_a_stored_release() {
        let core = core();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (entry, code) = venue_of(&core, &mut rng);
        let release = core
            .trace_venue(&request(&code), ARRIVAL, &mut rng)
            .unwrap();
        let now = ARRIVAL.plus_seconds(7200);
        let admitted = core.admit_venue_release(&release.to_bytes(), now).unwrap();
        assert_eq!(admitted.id, release.id());
        assert_eq!(
            admitted.purge_at,
            ARRIVAL.plus_seconds(core.policy().retention_seconds())
        );
        let store = MemoryReportStore::new();
        let entry_made = core
            .store_venue_release(&store, &admitted, now)
            .unwrap()
            .unwrap();
        assert_eq!(
            core.store_venue_release(&store, &admitted, now).unwrap(),
            None
        );

        let served = store.venue_release(&entry_made.id).unwrap().unwrap();
        let traces = SignedVenueRelease::from_bytes(&served)
            .unwrap()
            .verify(core.trusted(), now)
            .unwrap();
        let visitor: Vec<CheckIn> = check_in(
            &entry,
            ARRIVAL.plus_seconds(600),
            ARRIVAL.plus_seconds(1200),
            &mut rng,
        )
        .unwrap();
        let warnings = match_check_ins(&traces, &visitor);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].message, "Get tested.");
        let (elsewhere, _) = venue_of(&core, &mut rng);
        let stranger = check_in(&elsewhere, ARRIVAL, ARRIVAL.plus_seconds(600), &mut rng).unwrap();
        assert!(match_check_ins(&traces, &stranger).is_empty());
        // Nor a visitor of the same venue on another day.
        let later = ARRIVAL.plus_seconds(3 * 86_400);
        let other_day = check_in(&entry, later, later.plus_seconds(600), &mut rng).unwrap();
        assert!(match_check_ins(&traces, &other_day).is_empty());
    }

    #[test]
    fn each_bad_request_is_refused_with_its_own_error() {
        let core = core();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (_, code) = venue_of(&core, &mut rng);
        let refused = |request: TraceRequest<'_>, rng: &mut ChaCha20Rng| {
            core.trace_venue(&request, ARRIVAL, rng).unwrap_err()
        };
        assert!(matches!(
            refused(request(&code[..code.len() - 1]), &mut rng),
            TraceError::BadTraceCode(_)
        ));
        assert!(matches!(
            refused(request(b"hello"), &mut rng),
            TraceError::BadTraceCode(_)
        ));

        // A venue of another authority: its share does not open with this one's key.
        let other = crate::tests::core_with_seed(99);
        let (_, foreign) = venue_of(&other, &mut rng);
        assert_eq!(
            refused(request(&foreign), &mut rng),
            TraceError::OtherAuthority
        );
        assert_eq!(
            TraceError::OtherAuthority.code(),
            "trace-code-of-another-authority"
        );

        let mut inverted = request(&code);
        inverted.case_until = ARRIVAL.minus_seconds(1);
        assert_eq!(refused(inverted, &mut rng), TraceError::InvertedTimes);

        let mut long = request(&code);
        long.case_until = ARRIVAL.plus_seconds(24 * 3600);
        assert_eq!(
            refused(long, &mut rng),
            TraceError::TooManyHours { got: 25, max: 24 }
        );
        let mut day = request(&code);
        day.case_from = UnixTime(ARRIVAL.0 / 3600 * 3600);
        day.case_until = day.case_from.plus_seconds(24 * 3600 - 1);
        assert!(core.trace_venue(&day, ARRIVAL, &mut rng).is_ok());

        let message = "x".repeat(MAX_MESSAGE_LEN + 1);
        let mut wordy = request(&code);
        wordy.message = &message;
        assert_eq!(
            refused(wordy, &mut rng),
            TraceError::MessageTooLong { got: 501, max: 500 }
        );
    }

    /// A release of an authority this node does not trust is refused without blame (an
    /// honest peer relays its own authority's); a forged one, with blame.
    #[test]
    fn untrusted_forged_and_outdated_releases_are_refused() {
        let core = core();
        let other = crate::tests::core_with_seed(99);
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (_, code) = venue_of(&other, &mut rng);
        let foreign = other
            .trace_venue(&request(&code), ARRIVAL, &mut rng)
            .unwrap();
        let refusal = core
            .admit_venue_release(&foreign.to_bytes(), ARRIVAL)
            .unwrap_err();
        assert_eq!(
            refusal,
            ReleaseRefusal::Invalid(ReleaseError::UntrustedAuthority)
        );
        assert!(!refusal.blames_sender());

        let (_, own_code) = venue_of(&core, &mut rng);
        let own = core
            .trace_venue(&request(&own_code), ARRIVAL, &mut rng)
            .unwrap();
        let mut forged = own.clone();
        forged.release.expires_at = forged.release.expires_at.plus_seconds(86_400);
        let refusal = core
            .admit_venue_release(&forged.to_bytes(), ARRIVAL)
            .unwrap_err();
        assert_eq!(refusal, ReleaseRefusal::Invalid(ReleaseError::BadSignature));
        assert!(refusal.blames_sender());

        let mut bytes = own.to_bytes();
        bytes.push(0);
        assert!(matches!(
            core.admit_venue_release(&bytes, ARRIVAL),
            Err(ReleaseRefusal::Malformed(_))
        ));
        let past = ARRIVAL.plus_seconds(core.policy().retention_seconds() + 1);
        let refusal = core.admit_venue_release(&own.to_bytes(), past).unwrap_err();
        assert!(!refusal.blames_sender(), "{refusal:?}");
        assert!(!refusal.is_for_later(), "{refusal:?}");

        // Seen by a node whose clock is an hour behind: refused for now, without blame,
        // and taken once the clock has caught up.
        let behind = ARRIVAL.minus_seconds(3600);
        let refusal = core
            .admit_venue_release(&own.to_bytes(), behind)
            .unwrap_err();
        assert!(
            matches!(
                refusal,
                ReleaseRefusal::Invalid(ReleaseError::PostDated { .. })
            ),
            "{refusal:?}"
        );
        assert!(!refusal.blames_sender() && refusal.is_for_later());
        assert!(core.admit_venue_release(&own.to_bytes(), ARRIVAL).is_ok());
    }

    /// Nothing of the venue, the trace code or the message is in the stored bytes in clear.
    #[test]
    fn the_store_holds_no_venue_code_or_message_in_clear() {
        let core = core();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (entry, code) = venue_of(&core, &mut rng);
        let release = core
            .trace_venue(&request(&code), ARRIVAL, &mut rng)
            .unwrap();
        let admitted = core
            .admit_venue_release(&release.to_bytes(), ARRIVAL)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SledReportStore::open(
            &dir.path().join("db"),
            &dir.path().join("blobs"),
            &dir.path().join("keys"),
        )
        .unwrap();
        core.store_venue_release(&store, &admitted, ARRIVAL)
            .unwrap()
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let entry_bytes = entry.to_bytes();
        let secrets: [&[u8]; 5] = [
            b"Get tested.",
            b"Main Street 1",
            "Café".as_bytes(),
            &entry_bytes[1..33],
            // The venue's master secret share, before the sealed authority share.
            &code[code.len() - 112..code.len() - 80],
        ];
        for file in walk(dir.path()) {
            let bytes = std::fs::read(&file).unwrap();
            for secret in secrets {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret),
                    "{} holds a secret",
                    file.display()
                );
            }
        }
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }
}
