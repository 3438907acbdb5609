//! One interface over both token schemes, so phones, nodes and the simulator treat them
//! alike: what to broadcast at an interval, and how to read a heard payload.

use rand_core::CryptoRng;

use crate::error::DecodeError;
use crate::gaen::{
    AssociatedEncryptedMetadata, Metadata, RollingProximityIdentifier, TemporaryExposureKey,
};
use crate::pet::{DailySecret, EphemeralPublicKey, KeySlice, SliceCarousel};
use crate::report::SchemeKind;
use crate::time::IntervalNumber;

/// Bytes of a `gaen` payload: RPI ‖ AEM.
pub const GAEN_PAYLOAD_LEN: usize = 20;
/// Bytes of a whole `pet` key payload (extended advertising or GATT).
pub const PET_KEY_PAYLOAD_LEN: usize = 32;
/// Bytes of a `pet` slice payload (fits a legacy advertisement).
pub const PET_SLICE_PAYLOAD_LEN: usize = crate::pet::SLICE_LEN;

/// A phone's secret for one UTC day, in either scheme.
///
/// `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub enum DailyKey {
    /// A GAEN Temporary Exposure Key.
    Gaen(TemporaryExposureKey),
    /// A `pet` daily secret.
    Pet(DailySecret),
}

impl DailyKey {
    /// Draws a fresh daily key for `scheme`.
    pub fn generate(scheme: SchemeKind, rng: &mut impl CryptoRng) -> Self {
        match scheme {
            SchemeKind::Gaen => DailyKey::Gaen(TemporaryExposureKey::generate(rng)),
            SchemeKind::Pet => DailyKey::Pet(DailySecret::generate(rng)),
        }
    }

    /// The scheme this key belongs to.
    pub fn scheme(&self) -> SchemeKind {
        match self {
            DailyKey::Gaen(_) => SchemeKind::Gaen,
            DailyKey::Pet(_) => SchemeKind::Pet,
        }
    }

    /// What to broadcast during `interval`. `metadata` (tx power) is used by `gaen` only.
    pub fn broadcast(&self, interval: IntervalNumber, metadata: &Metadata) -> Broadcast {
        match self {
            DailyKey::Gaen(tek) => {
                let (rpi, aem) = tek.advertisement(interval, metadata);
                Broadcast::Gaen { rpi, aem }
            }
            DailyKey::Pet(secret) => {
                let public = secret.ephemeral_key_pair(interval).public();
                Broadcast::Pet {
                    key: public,
                    carousel: SliceCarousel::new(&public),
                }
            }
        }
    }
}

/// What a phone broadcasts during one interval.
#[derive(Debug, Clone)]
pub enum Broadcast {
    /// A GAEN identifier and its metadata: one 20-byte payload.
    Gaen {
        /// The interval's identifier.
        rpi: RollingProximityIdentifier,
        /// Encrypted metadata.
        aem: AssociatedEncryptedMetadata,
    },
    /// A `pet` ephemeral key, whole or in slices.
    Pet {
        /// The whole key, for extended advertising or GATT.
        key: EphemeralPublicKey,
        /// The slice carousel for legacy advertising.
        carousel: SliceCarousel,
    },
}

impl Broadcast {
    /// The payload of advertisement number `counter` within the interval: the GAEN payload,
    /// or the `pet` slice due at that counter for a legacy advertiser.
    pub fn legacy_payload(&self, counter: u64) -> Vec<u8> {
        match self {
            Broadcast::Gaen { .. } => self.full_payload(),
            Broadcast::Pet { carousel, .. } => carousel.advertisement(counter).to_vec(),
        }
    }

    /// The payload for extended advertising or GATT: the GAEN payload or the whole key.
    pub fn full_payload(&self) -> Vec<u8> {
        match self {
            Broadcast::Gaen { rpi, aem } => {
                let mut out = Vec::with_capacity(GAEN_PAYLOAD_LEN);
                out.extend_from_slice(rpi.as_bytes());
                out.extend_from_slice(aem.as_bytes());
                out
            }
            Broadcast::Pet { key, .. } => key.0.to_vec(),
        }
    }
}

/// A payload heard over the air, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeardPayload {
    /// A GAEN identifier with its encrypted metadata.
    Gaen {
        /// The identifier.
        rpi: RollingProximityIdentifier,
        /// Its encrypted metadata.
        aem: AssociatedEncryptedMetadata,
    },
    /// A whole `pet` key.
    PetKey(EphemeralPublicKey),
    /// One slice of a `pet` key.
    PetSlice(KeySlice),
}

impl HeardPayload {
    /// Parses the service data heard for `scheme`; the length tells a whole `pet` key from a
    /// slice.
    ///
    /// # Errors
    /// [`DecodeError::InvalidField`] for a length the scheme does not use or a malformed
    /// slice.
    pub fn parse(scheme: SchemeKind, bytes: &[u8]) -> Result<HeardPayload, DecodeError> {
        match (scheme, bytes.len()) {
            (SchemeKind::Gaen, GAEN_PAYLOAD_LEN) => {
                let mut rpi = [0u8; 16];
                let mut aem = [0u8; 4];
                rpi.copy_from_slice(&bytes[..16]);
                aem.copy_from_slice(&bytes[16..]);
                Ok(HeardPayload::Gaen {
                    rpi: RollingProximityIdentifier(rpi),
                    aem: AssociatedEncryptedMetadata(aem),
                })
            }
            (SchemeKind::Pet, PET_KEY_PAYLOAD_LEN) => {
                let mut key = [0u8; 32];
                key.copy_from_slice(bytes);
                Ok(HeardPayload::PetKey(EphemeralPublicKey(key)))
            }
            (SchemeKind::Pet, PET_SLICE_PAYLOAD_LEN) => KeySlice::decode(bytes)
                .map(HeardPayload::PetSlice)
                .map_err(|_| DecodeError::InvalidField { field: "slice" }),
            _ => Err(DecodeError::InvalidField {
                field: "payload length",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::pet::SliceAssembler;
    use crate::time::UnixTime;

    #[test]
    fn gaen_broadcast_parses_back() {
        let key = DailyKey::generate(SchemeKind::Gaen, &mut ChaCha20Rng::seed_from_u64(1));
        let broadcast = key.broadcast(IntervalNumber(2_800_000), &Metadata::v1_0(-8));
        let payload = broadcast.legacy_payload(0);
        assert_eq!(payload.len(), GAEN_PAYLOAD_LEN);
        assert_eq!(payload, broadcast.full_payload());
        let DailyKey::Gaen(tek) = &key else {
            unreachable!()
        };
        let Ok(HeardPayload::Gaen { rpi, aem }) = HeardPayload::parse(SchemeKind::Gaen, &payload)
        else {
            panic!()
        };
        assert_eq!(rpi, tek.rpik().rpi(IntervalNumber(2_800_000)));
        assert_eq!(tek.aemk().decrypt(&rpi, &aem).tx_power(), -8);
    }

    #[test]
    fn pet_broadcast_parses_back_whole_and_in_slices() {
        let key = DailyKey::generate(SchemeKind::Pet, &mut ChaCha20Rng::seed_from_u64(2));
        let broadcast = key.broadcast(IntervalNumber(2_800_000), &Metadata::v1_0(0));
        let Broadcast::Pet { key: public, .. } = &broadcast else {
            unreachable!()
        };
        assert_eq!(
            HeardPayload::parse(SchemeKind::Pet, &broadcast.full_payload()),
            Ok(HeardPayload::PetKey(*public))
        );
        let mut assembler = SliceAssembler::new(16, 600);
        let mut rebuilt = None;
        for counter in [1u64, 2, 3] {
            let Ok(HeardPayload::PetSlice(slice)) =
                HeardPayload::parse(SchemeKind::Pet, &broadcast.legacy_payload(counter))
            else {
                panic!("slice expected")
            };
            rebuilt = rebuilt.or(assembler.handle_slice(UnixTime(0), slice));
        }
        assert_eq!(rebuilt, Some(*public));
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert!(HeardPayload::parse(SchemeKind::Gaen, &[0; 16]).is_err());
        assert!(HeardPayload::parse(SchemeKind::Pet, &[0; 20]).is_err());
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_payloads_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = HeardPayload::parse(SchemeKind::Gaen, &bytes);
            let _ = HeardPayload::parse(SchemeKind::Pet, &bytes);
        }
    }
}
