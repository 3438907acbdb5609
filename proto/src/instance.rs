//! The `/ephemera/instance/1` messages: how two copies of one node (same keys, same libp2p
//! identity) learn of each other through the peers they share.
//!
//! Twins never hear each other directly: they share a peer id, and libp2p neither dials
//! its own id nor delivers a node's gossip back to its source. So each node tells its peers
//! `Hello` (a random instance drawn at start, when it started, when it spoke), signed with
//! its batch key, and a peer answers with the *other* instances it heard under that same
//! batch key. Only a holder of the batch key can make a hello that verifies under it, and
//! the node only believes hellos under its own batch key, so a peer (honest or not) can
//! report a twin only if a twin really signed that hello; `sent_at` (signed) lets the node
//! ignore replays of its own earlier runs.

use serde::{Deserialize, Serialize};

use crate::UnixTime;
use crate::signing::{Ed25519PublicKey, Ed25519SigningKey, Signature};
use crate::wire::{self, WireMessage};

/// Domain label of a hello signature.
const HELLO_LABEL: &[u8] = b"ephemera/instance-hello/v1";

/// Most hellos one answer carries (others are left out, the newest first are kept).
pub const MAX_REPORTED: usize = 8;

/// What one run of a node says about itself.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Drawn at random when the node starts; differs between twins.
    pub instance: [u8; 16],
    /// When this run started (wall clock).
    pub started_at: UnixTime,
    /// When this hello was made (wall clock).
    pub sent_at: UnixTime,
}

/// A [`Hello`] signed with the batch key of the node that sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHello {
    /// The hello.
    pub hello: Hello,
    /// The batch public key that signed it.
    pub signer: Ed25519PublicKey,
    /// Ed25519 over label ‖ postcard(hello).
    pub signature: Signature,
}

impl SignedHello {
    /// Signs `hello` with the batch key `key`.
    pub fn sign(hello: Hello, key: &Ed25519SigningKey) -> Self {
        SignedHello {
            signature: key.sign(HELLO_LABEL, &hello_bytes(&hello)),
            signer: key.public_key(),
            hello,
        }
    }

    /// Whether the signature verifies under the key the hello names.
    pub fn verifies(&self) -> bool {
        self.signer
            .verify(HELLO_LABEL, &hello_bytes(&self.hello), &self.signature)
    }
}

fn hello_bytes(hello: &Hello) -> Vec<u8> {
    postcard::to_allocvec(hello).expect("postcard encoding into a Vec")
}

/// A node's hello to a peer (the request of `/ephemera/instance/1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloRequest(pub SignedHello);

impl WireMessage for HelloRequest {
    const KIND: u8 = wire::kind::INSTANCE_HELLO;
    // A hello is 2 + 16 + 2×10 + 32 + 65 bytes at most.
    const MAX_SIZE: usize = 256;
}

/// A peer's answer: the other instances it heard under the requester's batch key lately,
/// at most [`MAX_REPORTED`] (a receiver ignores any beyond).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResponse {
    /// Hellos of other instances, as they were signed.
    pub others: Vec<SignedHello>,
}

impl WireMessage for HelloResponse {
    const KIND: u8 = wire::kind::INSTANCE_OTHERS;
    const MAX_SIZE: usize = 16 + MAX_REPORTED * 200;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn key(seed: u64) -> Ed25519SigningKey {
        Ed25519SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(seed))
    }

    fn hello(instance: u8) -> Hello {
        Hello {
            instance: [instance; 16],
            started_at: UnixTime(u64::MAX),
            sent_at: UnixTime(u64::MAX),
        }
    }

    #[test]
    fn a_hello_verifies_only_as_signed() {
        let signed = SignedHello::sign(hello(1), &key(1));
        assert!(signed.verifies());
        let mut later = signed.clone();
        later.hello.sent_at = UnixTime(1);
        assert!(!later.verifies(), "sent_at is signed");
        let mut other_key = signed.clone();
        other_key.signer = key(2).public_key();
        assert!(!other_key.verifies(), "the signer is checked");
    }

    #[test]
    fn the_largest_messages_fit_their_caps() {
        let signed = SignedHello::sign(hello(1), &key(1));
        let request = wire::encode(&HelloRequest(signed.clone()));
        assert!(request.len() <= HelloRequest::MAX_SIZE, "{}", request.len());
        let full = HelloResponse {
            others: vec![signed; MAX_REPORTED],
        };
        let bytes = wire::encode(&full);
        assert!(bytes.len() <= HelloResponse::MAX_SIZE, "{}", bytes.len());
        assert_eq!(wire::decode::<HelloResponse>(&bytes), Ok(full));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut framed = vec![wire::WIRE_VERSION, wire::kind::INSTANCE_HELLO];
            framed.extend_from_slice(&bytes);
            if let Ok(HelloRequest(hello)) = wire::decode::<HelloRequest>(&framed) {
                // Random bytes never carry a valid signature (2^-128 at best).
                prop_assert!(!hello.verifies());
            }
            framed[1] = wire::kind::INSTANCE_OTHERS;
            if let Ok(response) = wire::decode::<HelloResponse>(&framed) {
                prop_assert!(framed.len() <= HelloResponse::MAX_SIZE);
                prop_assert!(response.others.iter().all(|h| !h.verifies()));
            }
        }

        #[test]
        fn signed_hellos_round_trip(instance in any::<[u8; 16]>(), started in any::<u64>(), sent in any::<u64>()) {
            let hello = Hello { instance, started_at: UnixTime(started), sent_at: UnixTime(sent) };
            let request = HelloRequest(SignedHello::sign(hello, &key(3)));
            let decoded = wire::decode::<HelloRequest>(&wire::encode(&request)).unwrap();
            prop_assert!(decoded.0.verifies());
            prop_assert_eq!(decoded, request);
        }
    }
}
