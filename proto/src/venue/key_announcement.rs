//! The health authority's venue key, signed by its authority key: what `GET /v1/venue-key`
//! serves, so a venue's tool that knows the authority's public key (`GET /v1/authority`,
//! or the authority's own publication) knows the key it seals the authority's share to
//! came from the authority and not from whoever relayed it.

use serde::{Deserialize, Serialize};

use crate::auth::AuthoritySigningKey;
use crate::sealed::{AnnouncementError, SealingPublicKey};
use crate::signing::{Ed25519PublicKey, Signature};

/// The signature's label: Ed25519 over label ‖ the 32-byte X25519 key.
pub const VENUE_KEY_ANNOUNCEMENT_LABEL: &[u8] = b"ephemera/venue-key-announcement/v1";

/// The authority's venue key (X25519, HPKE), signed by its authority key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueKeyAnnouncement {
    /// The X25519 key, 64 hex characters.
    pub public_key: String,
    /// The authority key that signed it, 64 hex characters.
    pub authority: String,
    /// Ed25519 over [`VENUE_KEY_ANNOUNCEMENT_LABEL`] ‖ key, 128 hex characters.
    pub signature: String,
}

impl VenueKeyAnnouncement {
    /// Signs `key` with the authority's key.
    pub fn sign(key: &SealingPublicKey, authority: &AuthoritySigningKey) -> Self {
        let signature = authority
            .ed25519()
            .sign(VENUE_KEY_ANNOUNCEMENT_LABEL, &key.0);
        VenueKeyAnnouncement {
            public_key: key.to_hex(),
            authority: authority.public_key().to_hex(),
            signature: hex::encode(signature.0),
        }
    }

    /// The authority key it names, unchecked: compare it with the one the authority
    /// publishes before trusting [`VenueKeyAnnouncement::verify`] against it.
    ///
    /// # Errors
    /// [`AnnouncementError::Malformed`] when it is not 64 hex characters.
    pub fn named_authority(&self) -> Result<Ed25519PublicKey, AnnouncementError> {
        Ed25519PublicKey::from_hex(&self.authority).ok_or(AnnouncementError::Malformed)
    }

    /// The venue key, if `authority` signed it and the signature verifies.
    ///
    /// # Errors
    /// [`AnnouncementError::Malformed`] for a field that is not hex of its length,
    /// [`AnnouncementError::UntrustedSigner`] when another key signed it,
    /// [`AnnouncementError::BadSignature`] when the signature does not verify.
    pub fn verify(
        &self,
        authority: &Ed25519PublicKey,
    ) -> Result<SealingPublicKey, AnnouncementError> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.public_key, &mut key)
            .map_err(|_| AnnouncementError::Malformed)?;
        let signer = self.named_authority()?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut signature)
            .map_err(|_| AnnouncementError::Malformed)?;
        if signer != *authority {
            return Err(AnnouncementError::UntrustedSigner);
        }
        if !signer.verify(VENUE_KEY_ANNOUNCEMENT_LABEL, &key, &Signature(signature)) {
            return Err(AnnouncementError::BadSignature);
        }
        Ok(SealingPublicKey(key))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::sealed::SealingSecretKey;

    fn signed() -> (VenueKeyAnnouncement, SealingPublicKey, Ed25519PublicKey) {
        let key = SealingSecretKey::from_seed(&[3; 32]).public_key();
        let authority = AuthoritySigningKey::from_seed(&[4; 32]);
        (
            VenueKeyAnnouncement::sign(&key, &authority),
            key,
            authority.public_key(),
        )
    }

    #[test]
    fn verifies_for_its_authority_only() {
        let (announcement, key, authority) = signed();
        assert_eq!(announcement.verify(&authority).unwrap(), key);
        assert_eq!(announcement.named_authority().unwrap(), authority);
        let other = AuthoritySigningKey::from_seed(&[5; 32]).public_key();
        assert_eq!(
            announcement.verify(&other).unwrap_err(),
            AnnouncementError::UntrustedSigner
        );
        // A relay that swaps in its own key and signs it with another key is refused.
        let forged = VenueKeyAnnouncement::sign(
            &SealingSecretKey::from_seed(&[6; 32]).public_key(),
            &AuthoritySigningKey::from_seed(&[5; 32]),
        );
        assert_eq!(
            forged.verify(&authority).unwrap_err(),
            AnnouncementError::UntrustedSigner
        );
        // Swapping the key but keeping the authority's name and signature fails.
        let swapped = VenueKeyAnnouncement {
            public_key: forged.public_key.clone(),
            ..announcement.clone()
        };
        assert_eq!(
            swapped.verify(&authority).unwrap_err(),
            AnnouncementError::BadSignature
        );
        let truncated = VenueKeyAnnouncement {
            signature: announcement.signature[..126].to_owned(),
            ..announcement
        };
        assert_eq!(
            truncated.verify(&authority).unwrap_err(),
            AnnouncementError::Malformed
        );
    }

    #[test]
    fn round_trips_as_json() {
        let (announcement, key, authority) = signed();
        let json = serde_json::to_string(&announcement).unwrap();
        let back: VenueKeyAnnouncement = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verify(&authority).unwrap(), key);
    }

    proptest! {
        #[test]
        fn altered_fields_never_verify_nor_panic(
            field in 0usize..3,
            text in "[0-9a-f]{0,130}|\\PC{0,140}",
        ) {
            let (mut announcement, _, authority) = signed();
            let original = announcement.clone();
            match field {
                0 => announcement.public_key = text,
                1 => announcement.authority = text,
                _ => announcement.signature = text,
            }
            if announcement != original {
                prop_assert!(announcement.verify(&authority).is_err());
            }
        }
    }
}
