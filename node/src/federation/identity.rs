//! The node's persistent libp2p identity (an Ed25519 key pair).
//!
//! The node creates it on first start, stores [`NodeIdentity::to_bytes`] beside its other
//! keys and hands [`NodeIdentity::from_bytes`] back on every start, so its peer id survives
//! restarts and peers can keep it in their bootstrap lists.

use std::fmt;

use libp2p::PeerId;
use libp2p::identity::{KeyType, Keypair};
use zeroize::Zeroizing;

/// The stored identity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The bytes are not a protobuf-encoded libp2p private key.
    #[error("malformed identity key")]
    Malformed,
    /// A key of another type than Ed25519.
    #[error("identity key must be Ed25519")]
    WrongKeyType,
}

/// The node's libp2p key pair; its public half is the node's [`PeerId`].
///
/// # Privacy
/// `Debug` shows the peer id only, never the private key.
#[derive(Clone)]
pub struct NodeIdentity {
    keypair: Keypair,
}

impl NodeIdentity {
    /// Draws a new Ed25519 identity from the operating system's RNG.
    pub fn generate() -> Self {
        NodeIdentity {
            keypair: Keypair::generate_ed25519(),
        }
    }

    /// The identity whose Ed25519 secret key is `seed` (the node keeps it in
    /// `keys/libp2p-identity.seed`).
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> Self {
        let mut bytes = *seed;
        let keypair = Keypair::ed25519_from_bytes(&mut bytes).expect("32 bytes is a valid seed");
        zeroize::Zeroize::zeroize(&mut bytes);
        NodeIdentity { keypair }
    }

    /// Reads an identity stored with [`Self::to_bytes`].
    ///
    /// # Errors
    /// [`IdentityError::Malformed`] or [`IdentityError::WrongKeyType`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let keypair =
            Keypair::from_protobuf_encoding(bytes).map_err(|_| IdentityError::Malformed)?;
        if keypair.key_type() != KeyType::Ed25519 {
            return Err(IdentityError::WrongKeyType);
        }
        Ok(NodeIdentity { keypair })
    }

    /// The private key in libp2p's protobuf encoding, for storage. A secret: it is zeroed
    /// when dropped; write it to a file only the node can read.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(
            self.keypair
                .to_protobuf_encoding()
                .expect("Ed25519 keys always encode"),
        )
    }

    /// The peer id other nodes know this node by.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.keypair
    }
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("peer_id", &self.peer_id())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_hides_its_key() {
        let identity = NodeIdentity::generate();
        let bytes = identity.to_bytes();
        let back = NodeIdentity::from_bytes(&bytes).unwrap();
        assert_eq!(back.peer_id(), identity.peer_id());
        let shown = format!("{identity:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&hex::encode(&bytes[..])));
        assert_eq!(
            NodeIdentity::from_bytes(&[1, 2, 3]).unwrap_err(),
            IdentityError::Malformed
        );
    }
}
