//! A venue release: the traces of one case worker's action, signed by the health
//! authority, as nodes store, publish and relay it and phones download it.
//!
//! A release always holds [`RELEASE_TRACES`] traces, one per hour of 24 consecutive
//! hours: the case's hours (at most 24, [`MAX_TRACE_HOURS`]) and decoys for the others,
//! placed so that the window starts at a random hour that still covers the real ones. A
//! decoy is a trace of the same length whose identity, key (a random point of the
//! subgroup), nonce and sealed notice are random: it decodes like a real one and opens no
//! check-in, so neither the size of a release nor its records tell which hours the case
//! was there. Traces are sorted by their bytes (by hour), so their order tells nothing
//! either.
//!
//! ```text
//! frame   = 0x01 ‖ 0x13 ‖ postcard{ authority KeyId (8), issued_at (varint),
//!                                   expires_at (varint), traces (24 × length-prefixed),
//!                                   signature (64, length-prefixed) }
//! signed  = "ephemera/venue-release/v1" ‖ postcard{ authority, issued_at, expires_at, traces }
//! ReleaseId = SHA-256(frame)
//! ```

use std::fmt;

use rand_core::CryptoRng;
use ring::digest;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::error::VenueDecodeError;
use super::ibe::MasterSecretShare;
use super::identity::Identity;
use super::trace::{TraceKey, VenueTrace};
use super::trace_code::MAX_TRACE_HOURS;
use super::visit::VenueHour;
use crate::auth::{AuthoritySigningKey, TrustedAuthorities};
use crate::error::DecodeError;
use crate::signing::{KeyId, Signature, Untrusted};
use crate::time::UnixTime;
use crate::venue::MAX_VENUE_TRACE_LEN;
use crate::wire::{self, WireMessage};

/// Traces in every release: one per hour of a 24-hour window.
pub const RELEASE_TRACES: usize = MAX_TRACE_HOURS as usize;
/// Domain label of a release's signature.
const RELEASE_LABEL: &[u8] = b"ephemera/venue-release/v1";
/// How far a release's issue time may lie ahead of the checker's clock.
pub const MAX_RELEASE_CLOCK_SKEW_SECONDS: u64 = 300;
/// Largest release frame: header, key id, two varint times, the traces with their
/// length prefixes, and the signature with its own.
pub const MAX_RELEASE_LEN: usize =
    2 + 8 + 10 + 10 + 1 + RELEASE_TRACES * (2 + MAX_VENUE_TRACE_LEN) + 1 + 64;

/// What the authority signs: the padded traces of one case at one venue, and until when
/// nodes keep them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueRelease {
    /// The id of the authority key that signs it.
    pub authority: KeyId,
    /// When the case worker released it.
    pub issued_at: UnixTime,
    /// When nodes erase it and phones stop matching it (the issue time plus retention).
    pub expires_at: UnixTime,
    /// [`RELEASE_TRACES`] encoded [`VenueTrace`]s of one length, sorted, of 24 consecutive
    /// hours.
    pub traces: Vec<Vec<u8>>,
}

/// A release with the authority's Ed25519 signature: what travels.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVenueRelease {
    /// The signed release.
    pub release: VenueRelease,
    /// Ed25519 over `"ephemera/venue-release/v1"` ‖ postcard(release).
    pub signature: Signature,
}

impl fmt::Debug for SignedVenueRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedVenueRelease")
            .field("id", &self.id())
            .field("authority", &self.release.authority)
            .finish_non_exhaustive()
    }
}

impl WireMessage for SignedVenueRelease {
    const KIND: u8 = wire::kind::VENUE_RELEASE;
    const MAX_SIZE: usize = MAX_RELEASE_LEN;
}

/// SHA-256 of a release's frame: its content address in URLs, `ETag`s, stores and gossip.
/// Hex in JSON, 32 bytes in binary formats.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseId(pub [u8; 32]);

impl Serialize for ReleaseId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for ReleaseId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            ReleaseId::from_hex(&text)
                .ok_or_else(|| serde::de::Error::custom("a release id is 64 hex characters"))
        } else {
            Ok(ReleaseId(<[u8; 32]>::deserialize(deserializer)?))
        }
    }
}

/// One release in a node's index of the releases it holds (`GET /v1/venue-releases`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseIndexEntry {
    /// Its content address.
    pub id: ReleaseId,
    /// Its place in the node's order of arrival: only grows.
    pub sequence: u64,
    /// Bytes of its frame.
    pub size: u64,
}

impl ReleaseId {
    /// Lower-case hex, as used in URLs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<ReleaseId> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(ReleaseId(bytes))
    }
}

impl fmt::Debug for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReleaseId({})", self.to_hex())
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A page of a node's release index (`GET /v1/venue-releases?after=<cursor>`, JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseIndex {
    /// Releases with a sequence above the cursor, in sequence order.
    pub releases: Vec<ReleaseIndexEntry>,
    /// The cursor of the next page: the last sequence listed (the cursor asked for when
    /// the page is empty).
    pub next_cursor: u64,
}

/// Why a release could not be made or was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// No trusted authority key has the release's key id.
    #[error("the release's authority is not trusted")]
    UntrustedAuthority,
    /// The signature does not verify under any trusted key with the release's key id.
    #[error("the release's signature does not verify")]
    BadSignature,
    /// Not [`RELEASE_TRACES`] traces (or, to pad, none or more than that).
    #[error("{got} traces, {expected} expected")]
    TraceCount {
        /// Traces given.
        got: usize,
        /// Traces required.
        expected: usize,
    },
    /// A trace that does not decode.
    #[error("trace {index}: {error}")]
    BadTrace {
        /// Its position.
        index: usize,
        /// Why it does not decode.
        error: VenueDecodeError,
    },
    /// Traces of different lengths: a decoy would stand out.
    #[error("the traces are not all of one length")]
    UnevenTraces,
    /// The traces are not sorted by hour with one per hour of 24 consecutive hours (or,
    /// to pad, two real traces share an hour or span more than 24 hours).
    #[error("the traces are not one per hour of 24 consecutive hours, in order")]
    BadHours,
    /// Issued after the checker's clock (beyond the allowed skew).
    #[error("issued at {issued_at:?}, after now ({now:?})")]
    PostDated {
        /// The release's issue time.
        issued_at: UnixTime,
        /// The checker's clock.
        now: UnixTime,
    },
    /// Its expiry is not after its issue time.
    #[error("the release expires before it is issued")]
    ExpiresBeforeIssued,
    /// Past its expiry.
    #[error("the release expired at {expires_at:?}")]
    Expired {
        /// When it expired.
        expires_at: UnixTime,
    },
}

impl VenueRelease {
    /// Pads the traces of one case (one per hour, as [`crate::venue::Notice::seal`] makes
    /// them) with decoys to a release of [`RELEASE_TRACES`], for `authority` to sign.
    ///
    /// # Errors
    /// [`ReleaseError::TraceCount`] for no trace or more than [`RELEASE_TRACES`];
    /// [`ReleaseError::UnevenTraces`] for traces of different lengths (different
    /// notices); [`ReleaseError::BadHours`] for two traces of one hour or hours more than
    /// 24 apart; [`ReleaseError::ExpiresBeforeIssued`].
    pub fn pad(
        traces: &[VenueTrace],
        authority: KeyId,
        issued_at: UnixTime,
        expires_at: UnixTime,
        rng: &mut impl CryptoRng,
    ) -> Result<VenueRelease, ReleaseError> {
        if traces.is_empty() || traces.len() > RELEASE_TRACES {
            return Err(ReleaseError::TraceCount {
                got: traces.len(),
                expected: RELEASE_TRACES,
            });
        }
        if expires_at <= issued_at {
            return Err(ReleaseError::ExpiresBeforeIssued);
        }
        let mut real: Vec<Vec<u8>> = traces.iter().map(VenueTrace::to_bytes).collect();
        let len = real[0].len();
        if real.iter().any(|t| t.len() != len) {
            return Err(ReleaseError::UnevenTraces);
        }
        let mut hours: Vec<u32> = traces.iter().map(|t| t.key.hour.0).collect();
        hours.sort_unstable();
        hours.dedup();
        let (first, last) = (hours[0], hours[hours.len() - 1]);
        if hours.len() != traces.len() || last - first >= RELEASE_TRACES as u32 {
            return Err(ReleaseError::BadHours);
        }
        // The window's first hour: uniform over those that keep every real hour inside it
        // and the window below hour u32::MAX.
        let span = RELEASE_TRACES as u32 - 1;
        let lowest = last.saturating_sub(span);
        let highest = first.min(u32::MAX - span);
        if highest < lowest {
            return Err(ReleaseError::BadHours);
        }
        let start = lowest + (rng.next_u64() % (u64::from(highest - lowest) + 1)) as u32;
        for hour in start..=start + span {
            if hours.binary_search(&hour).is_err() {
                real.push(decoy(VenueHour(hour), len, rng));
            }
        }
        real.sort_unstable();
        Ok(VenueRelease {
            authority,
            issued_at,
            expires_at,
            traces: real,
        })
    }

    fn signed_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encoding into a Vec")
    }

    /// Signs the release with `key` (whose id it must carry to verify).
    pub fn sign(self, key: &AuthoritySigningKey) -> SignedVenueRelease {
        let signature = key.ed25519().sign(RELEASE_LABEL, &self.signed_bytes());
        SignedVenueRelease {
            release: self,
            signature,
        }
    }

    /// Checks times and shape at `now` and decodes the traces.
    fn check(&self, now: UnixTime) -> Result<Vec<VenueTrace>, ReleaseError> {
        if self.issued_at > now.plus_seconds(MAX_RELEASE_CLOCK_SKEW_SECONDS) {
            return Err(ReleaseError::PostDated {
                issued_at: self.issued_at,
                now,
            });
        }
        if self.expires_at <= self.issued_at {
            return Err(ReleaseError::ExpiresBeforeIssued);
        }
        if now > self.expires_at {
            return Err(ReleaseError::Expired {
                expires_at: self.expires_at,
            });
        }
        if self.traces.len() != RELEASE_TRACES {
            return Err(ReleaseError::TraceCount {
                got: self.traces.len(),
                expected: RELEASE_TRACES,
            });
        }
        if self.traces.iter().any(|t| t.len() != self.traces[0].len()) {
            return Err(ReleaseError::UnevenTraces);
        }
        let traces = self
            .traces
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                VenueTrace::from_bytes(bytes)
                    .map_err(|error| ReleaseError::BadTrace { index, error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let first = traces[0].key.hour.0;
        let consecutive = traces
            .iter()
            .enumerate()
            .all(|(i, t)| u64::from(t.key.hour.0) == u64::from(first) + i as u64);
        if !consecutive || !self.traces.is_sorted() {
            return Err(ReleaseError::BadHours);
        }
        Ok(traces)
    }
}

/// A random trace of `hour`, `len` bytes long: a random identity, the key a random share
/// gives it (a point of the subgroup like a real key), a random nonce and notice.
fn decoy(hour: VenueHour, len: usize, rng: &mut impl CryptoRng) -> Vec<u8> {
    let mut identity = Identity([0; 32]);
    rng.fill_bytes(&mut identity.0);
    let key = MasterSecretShare::generate(rng).derive_key(&identity);
    let mut bytes = TraceKey {
        hour,
        identity,
        key,
    }
    .to_bytes()
    .to_vec();
    let mut rest = vec![0u8; len - bytes.len()];
    rng.fill_bytes(&mut rest);
    bytes.extend_from_slice(&rest);
    bytes
}

impl SignedVenueRelease {
    /// The release's content address: SHA-256 of its frame.
    pub fn id(&self) -> ReleaseId {
        let mut id = [0u8; 32];
        id.copy_from_slice(digest::digest(&digest::SHA256, &self.to_bytes()).as_ref());
        ReleaseId(id)
    }

    /// Verifies the signature against `trusted` and the times and shape at `now`; returns
    /// the traces, decoys included, for [`crate::venue::match_check_ins`].
    ///
    /// # Errors
    /// [`ReleaseError::UntrustedAuthority`] or [`ReleaseError::BadSignature`] first, then
    /// as [`SignedVenueRelease::traces`].
    pub fn verify(
        &self,
        trusted: &TrustedAuthorities,
        now: UnixTime,
    ) -> Result<Vec<VenueTrace>, ReleaseError> {
        trusted
            .signer(
                &self.release.authority,
                RELEASE_LABEL,
                &self.release.signed_bytes(),
                &self.signature,
            )
            .map_err(|error| match error {
                Untrusted::Id => ReleaseError::UntrustedAuthority,
                Untrusted::Signature => ReleaseError::BadSignature,
            })?;
        self.traces(now)
    }

    /// The traces after checking times and shape at `now` but not the signature: for a
    /// phone that pins no authority key and trusts its node (over TLS) instead.
    ///
    /// # Errors
    /// [`ReleaseError::PostDated`], [`ReleaseError::ExpiresBeforeIssued`],
    /// [`ReleaseError::Expired`], [`ReleaseError::TraceCount`],
    /// [`ReleaseError::UnevenTraces`], [`ReleaseError::BadTrace`] or
    /// [`ReleaseError::BadHours`].
    pub fn traces(&self, now: UnixTime) -> Result<Vec<VenueTrace>, ReleaseError> {
        self.release.check(now)
    }

    /// The versioned frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self)
    }

    /// Decodes a frame (signature and shape unchecked: call [`SignedVenueRelease::verify`]).
    ///
    /// # Errors
    /// A [`DecodeError`]; never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        wire::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::sealed::SealingSecretKey;
    use crate::venue::{CheckIn, Notice, TraceCode, check_in, create_venue, match_check_ins};

    const ARRIVAL: UnixTime = UnixTime(1_700_000_000);

    struct Venue {
        entry: crate::venue::EntryCode,
        trace_code: TraceCode,
        authority: SealingSecretKey,
    }

    fn venue(rng: &mut ChaCha20Rng) -> Venue {
        let authority = SealingSecretKey::generate(rng);
        let (entry, trace_code) = create_venue(
            &authority.public_key(),
            "Café",
            "Main Street 1",
            UnixTime(0),
            UnixTime(u64::MAX),
            rng,
        )
        .unwrap();
        Venue {
            entry,
            trace_code,
            authority,
        }
    }

    /// The sealed traces of the case's hours `first..=last` at `venue`.
    fn traces(
        venue: &Venue,
        first: VenueHour,
        last: VenueHour,
        rng: &mut ChaCha20Rng,
    ) -> Vec<VenueTrace> {
        let notice = Notice {
            case_from: first.start(),
            case_until: last.start().plus_seconds(3599),
            message: "Get tested.".into(),
        };
        venue
            .trace_code
            .trace_keys(&venue.authority, first, last)
            .unwrap()
            .into_iter()
            .map(|key| notice.seal(&venue.entry, key, rng).unwrap())
            .collect()
    }

    fn signed(rng: &mut ChaCha20Rng, key: &AuthoritySigningKey) -> (Venue, SignedVenueRelease) {
        let venue = venue(rng);
        let hour = VenueHour::containing(ARRIVAL).unwrap();
        let real = traces(&venue, hour, VenueHour(hour.0 + 1), rng);
        let release = VenueRelease::pad(
            &real,
            key.public_key().key_id(),
            ARRIVAL,
            ARRIVAL.plus_seconds(14 * 86_400),
            rng,
        )
        .unwrap()
        .sign(key);
        (venue, release)
    }

    /// A phone that checked in during the case's hours is warned from the downloaded
    /// release's bytes, decoys and all; a phone that checked in elsewhere is not.
    #[test]
    fn a_padded_release_warns_visitors_and_no_one_else() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let key = AuthoritySigningKey::from_seed(&[3; 32]);
        let (venue, release) = signed(&mut rng, &key);
        let bytes = release.to_bytes();
        assert!(bytes.len() <= MAX_RELEASE_LEN);
        let trusted = TrustedAuthorities::new().with(key.public_key());
        let downloaded = SignedVenueRelease::from_bytes(&bytes).unwrap();
        assert_eq!(downloaded.id(), release.id());
        let traces = downloaded
            .verify(&trusted, ARRIVAL.plus_seconds(60))
            .unwrap();
        assert_eq!(traces.len(), RELEASE_TRACES);

        let visitor: Vec<CheckIn> =
            check_in(&venue.entry, ARRIVAL, ARRIVAL.plus_seconds(1800), &mut rng).unwrap();
        let warnings = match_check_ins(&traces, &visitor);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].message, "Get tested.");
        assert_eq!(
            warnings[0].hours,
            vec![VenueHour::containing(ARRIVAL).unwrap()]
        );

        let elsewhere = self::venue(&mut rng);
        let stranger = check_in(
            &elsewhere.entry,
            ARRIVAL,
            ARRIVAL.plus_seconds(1800),
            &mut rng,
        )
        .unwrap();
        assert!(match_check_ins(&traces, &stranger).is_empty());
    }

    /// Every trace has the same length and the hours are 24 consecutive ones holding the
    /// case's, whatever the case's hours.
    #[test]
    fn padding_hides_the_real_hours() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let venue = venue(&mut rng);
        let hour = VenueHour::containing(ARRIVAL).unwrap();
        let mut starts = std::collections::BTreeSet::new();
        for hours in [1, 3, 24] {
            let real = traces(&venue, hour, VenueHour(hour.0 + hours - 1), &mut rng);
            for _ in 0..8 {
                let release = VenueRelease::pad(
                    &real,
                    KeyId([1; 8]),
                    ARRIVAL,
                    ARRIVAL.plus_seconds(60),
                    &mut rng,
                )
                .unwrap();
                let decoded = release.check(ARRIVAL).unwrap();
                let first = decoded[0].key.hour.0;
                assert!(first <= hour.0 && hour.0 + hours - 1 <= first + 23);
                starts.insert(first);
                for t in &real {
                    assert!(release.traces.contains(&t.to_bytes()));
                }
            }
        }
        // The window moves: a release does not start at the case's first hour.
        assert!(starts.len() > 1);
    }

    #[test]
    fn pad_refuses_what_cannot_be_padded() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let venue = venue(&mut rng);
        let hour = VenueHour::containing(ARRIVAL).unwrap();
        let a = traces(&venue, hour, hour, &mut rng);
        let later = traces(
            &venue,
            VenueHour(hour.0 + 24),
            VenueHour(hour.0 + 24),
            &mut rng,
        );
        let id = KeyId([1; 8]);
        let until = ARRIVAL.plus_seconds(60);
        assert_eq!(
            VenueRelease::pad(&[], id, ARRIVAL, until, &mut rng),
            Err(ReleaseError::TraceCount {
                got: 0,
                expected: RELEASE_TRACES
            })
        );
        let spread = [a[0].clone(), later[0].clone()];
        assert_eq!(
            VenueRelease::pad(&spread, id, ARRIVAL, until, &mut rng),
            Err(ReleaseError::BadHours)
        );
        let twice = [a[0].clone(), a[0].clone()];
        assert_eq!(
            VenueRelease::pad(&twice, id, ARRIVAL, until, &mut rng),
            Err(ReleaseError::BadHours)
        );
        assert_eq!(
            VenueRelease::pad(&a, id, ARRIVAL, ARRIVAL, &mut rng),
            Err(ReleaseError::ExpiresBeforeIssued)
        );
        let other = Notice {
            case_from: ARRIVAL,
            case_until: ARRIVAL,
            message: "Longer message.".into(),
        };
        let key = venue
            .trace_code
            .trace_keys(
                &venue.authority,
                VenueHour(hour.0 + 1),
                VenueHour(hour.0 + 1),
            )
            .unwrap();
        let uneven = [
            a[0].clone(),
            other.seal(&venue.entry, key[0].clone(), &mut rng).unwrap(),
        ];
        assert_eq!(
            VenueRelease::pad(&uneven, id, ARRIVAL, until, &mut rng),
            Err(ReleaseError::UnevenTraces)
        );
    }

    #[test]
    fn verify_refuses_forged_untrusted_and_expired_releases() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let key = AuthoritySigningKey::from_seed(&[3; 32]);
        let (_, release) = signed(&mut rng, &key);
        let trusted = TrustedAuthorities::new().with(key.public_key());
        let now = ARRIVAL.plus_seconds(60);

        let stranger = AuthoritySigningKey::from_seed(&[4; 32]);
        let only_stranger = TrustedAuthorities::new().with(stranger.public_key());
        assert_eq!(
            release.verify(&only_stranger, now),
            Err(ReleaseError::UntrustedAuthority)
        );

        let mut forged = release.clone();
        forged.release.traces.swap(0, 1);
        assert_eq!(
            forged.verify(&trusted, now),
            Err(ReleaseError::BadSignature)
        );
        let mut resigned = forged.release.clone();
        resigned.authority = key.public_key().key_id();
        // Signed by the right key, but out of order: refused for its shape.
        assert_eq!(
            resigned.sign(&key).verify(&trusted, now),
            Err(ReleaseError::BadHours)
        );

        let expires_at = release.release.expires_at;
        assert_eq!(
            release.verify(&trusted, expires_at.plus_seconds(1)),
            Err(ReleaseError::Expired { expires_at })
        );
        assert!(matches!(
            release.verify(&trusted, UnixTime(ARRIVAL.0 - 301)),
            Err(ReleaseError::PostDated { .. })
        ));
        let mut short = release.release.clone();
        short.traces.pop();
        assert_eq!(
            short.sign(&key).verify(&trusted, now),
            Err(ReleaseError::TraceCount {
                got: 23,
                expected: RELEASE_TRACES
            })
        );
        let mut broken = release.release.clone();
        broken.traces[5][0] = 9;
        assert!(matches!(
            broken.sign(&key).verify(&trusted, now),
            Err(ReleaseError::BadTrace { index: 5, .. })
        ));
    }

    /// A frame a peer or cache altered by one byte anywhere is refused: by the decoder, the
    /// shape checks or the signature, never accepted with other traces.
    #[test]
    fn a_flipped_byte_never_verifies() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let key = AuthoritySigningKey::from_seed(&[3; 32]);
        let (_, release) = signed(&mut rng, &key);
        let trusted = TrustedAuthorities::new().with(key.public_key());
        let bytes = release.to_bytes();
        for position in (0..bytes.len()).step_by(97) {
            let mut altered = bytes.clone();
            altered[position] ^= 0x40;
            if let Ok(decoded) = SignedVenueRelease::from_bytes(&altered) {
                assert!(
                    decoded.verify(&trusted, ARRIVAL.plus_seconds(60)).is_err(),
                    "byte {position}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(release) = SignedVenueRelease::from_bytes(&bytes) {
                let _ = release.traces(ARRIVAL);
                prop_assert_eq!(SignedVenueRelease::from_bytes(&release.to_bytes()), Ok(release));
            }
        }

        #[test]
        fn decoding_a_framed_prefix_never_panics(
            tail in proptest::collection::vec(any::<u8>(), 0..1024),
        ) {
            let mut bytes = vec![wire::WIRE_VERSION, wire::kind::VENUE_RELEASE];
            bytes.extend_from_slice(&tail);
            if let Ok(release) = SignedVenueRelease::from_bytes(&bytes) {
                let _ = release.traces(ARRIVAL);
            }
        }
    }
}
