//! Versioned framing for every message that crosses a wire.
//!
//! A frame is `[version][kind][postcard body]`. [`decode`] is the one entry point for
//! outside bytes: it checks the size cap, the version and the kind before it parses, and
//! rejects trailing bytes, so every decoder shares the same checks.
//!
//! The version byte is per message: a message that protocol version 2 changed (the upload
//! request, `docs/PROTOCOL.md` §5.1) is framed with `2` and still decodes from `1` during
//! the transition; every other message is framed with [`WIRE_VERSION`] (1).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::DecodeError;

/// The wire version of the messages protocol version 2 left unchanged.
pub const WIRE_VERSION: u8 = 1;

/// The wire version of the messages protocol version 2 changed (the upload request).
pub const WIRE_VERSION_2: u8 = 2;

/// The wire version of publication version 3's token filters ([`crate::filter`]).
pub const WIRE_VERSION_3: u8 = 3;

/// Bytes before the body: version and kind.
pub const HEADER_LEN: usize = 2;

/// A message with a fixed kind byte and a size cap.
pub trait WireMessage: Serialize + DeserializeOwned {
    /// The kind byte that follows the version byte.
    const KIND: u8;
    /// The largest frame accepted, header included.
    const MAX_SIZE: usize;
    /// The version bytes a frame of this kind may carry, oldest first.
    const VERSIONS: &'static [u8] = &[WIRE_VERSION];

    /// The version byte this message is framed with.
    fn wire_version(&self) -> u8 {
        WIRE_VERSION
    }

    /// Whether this decoded message may travel in a frame of `version` (a message with
    /// variants of several versions refuses a variant framed in the wrong one).
    fn fits_version(&self, version: u8) -> bool {
        version == self.wire_version()
    }
}

/// Encodes `message` as a versioned frame.
pub fn encode<T: WireMessage>(message: &T) -> Vec<u8> {
    let mut out = vec![message.wire_version(), T::KIND];
    // Serializing into a Vec cannot fail for our types (no maps with non-string keys,
    // no unsized sequences): postcard only errors on a full fixed buffer.
    let body = postcard::to_allocvec(message).expect("postcard encoding into a Vec");
    out.extend_from_slice(&body);
    out
}

/// Decodes one frame of kind `T` from outside bytes.
///
/// # Errors
/// A [`DecodeError`] naming the first check that failed; it never panics on any input.
pub fn decode<T: WireMessage>(bytes: &[u8]) -> Result<T, DecodeError> {
    let body = check_header_versions(bytes, T::KIND, T::MAX_SIZE, T::VERSIONS)?;
    let (message, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { extra: rest.len() });
    }
    if !message.fits_version(bytes[0]) {
        return Err(DecodeError::NotInVersion { version: bytes[0] });
    }
    Ok(message)
}

/// Checks size, version (one of `versions`) and kind; returns the body after the header.
pub(crate) fn check_header_versions<'a>(
    bytes: &'a [u8],
    kind: u8,
    max_size: usize,
    versions: &[u8],
) -> Result<&'a [u8], DecodeError> {
    if bytes.len() > max_size {
        return Err(DecodeError::TooLarge {
            got: bytes.len(),
            max: max_size,
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            got: bytes.len(),
            min: HEADER_LEN,
        });
    }
    if !versions.contains(&bytes[0]) {
        return Err(DecodeError::UnsupportedVersion {
            got: bytes[0],
            supported: versions.iter().copied().max().unwrap_or(WIRE_VERSION),
        });
    }
    if bytes[1] != kind {
        return Err(DecodeError::WrongKind {
            got: bytes[1],
            expected: kind,
        });
    }
    Ok(&bytes[HEADER_LEN..])
}

/// Serde for an optional framed message as the hex of its frame in JSON, and as the
/// structure in binary formats (the batch index's `head` and `sunset`).
pub mod as_optional_hex_frame {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{WireMessage, decode, encode};
    use crate::error::DecodeError;

    /// Serializes a present message as the hex of its frame.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<T: WireMessage, S: Serializer>(
        message: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match message {
            Some(message) if s.is_human_readable() => {
                s.serialize_some(&hex::encode(encode(message)))
            }
            Some(message) => s.serialize_some(message),
            None => s.serialize_none(),
        }
    }

    /// Reads an optional hex frame, checking its size before decoding the hex.
    ///
    /// # Errors
    /// A string that is not the hex of a frame of `T`.
    pub fn deserialize<'de, T: WireMessage, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        if !d.is_human_readable() {
            return Option::<T>::deserialize(d);
        }
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        if text.len() > 2 * T::MAX_SIZE {
            return Err(serde::de::Error::custom(DecodeError::TooLarge {
                got: text.len() / 2,
                max: T::MAX_SIZE,
            }));
        }
        let bytes =
            hex::decode(&text).map_err(|_| serde::de::Error::custom(DecodeError::Malformed))?;
        decode(&bytes).map(Some).map_err(serde::de::Error::custom)
    }
}

/// Kind bytes of every framed message, in one place so they never collide.
pub mod kind {
    /// [`crate::auth::SignedCertificate`].
    pub const SIGNED_CERTIFICATE: u8 = 0x01;
    /// [`crate::upload::UploadRequest`].
    pub const UPLOAD_REQUEST: u8 = 0x02;
    /// [`crate::upload::SignedUpload`] as gossiped between nodes.
    pub const SIGNED_UPLOAD: u8 = 0x03;
    /// [`crate::batch::SignedBatch`] (custom layout, see `batch`).
    pub const SIGNED_BATCH: u8 = 0x04;
    /// [`crate::batch::BatchIndex`].
    pub const BATCH_INDEX: u8 = 0x05;
    /// Federation catch-up request (`SyncRequest`).
    pub const SYNC_REQUEST: u8 = 0x06;
    /// Federation catch-up response (`SyncResponse`).
    pub const SYNC_RESPONSE: u8 = 0x07;
    // 0x08 is reserved: named once for report contents, never sent (docs/PROTOCOL.md §5.1).
    /// [`crate::rollover::KeyRollover`].
    pub const KEY_ROLLOVER: u8 = 0x09;
    /// [`crate::instance::HelloRequest`], federation's twin check.
    pub const INSTANCE_HELLO: u8 = 0x0a;
    /// [`crate::instance::HelloResponse`], federation's twin check.
    pub const INSTANCE_OTHERS: u8 = 0x0b;
    /// [`crate::federated::FederatedReport`]: an upload bound to a revision key, or a
    /// revision, as nodes relay it (protocol version 2).
    pub const FEDERATED_REPORT: u8 = 0x0c;
    /// [`crate::batch_log::SignedHead`]: a node's signed batch-log head (protocol version
    /// 2).
    pub const SIGNED_HEAD: u8 = 0x0d;
    /// [`crate::batch_log::HeadList`]: the heads a node holds, as nodes exchange them on
    /// `/ephemera/heads/1` (protocol version 2).
    pub const HEAD_LIST: u8 = 0x0e;
    /// `SignedTokenKeySet` (an authority's blind-token keys, version 2).
    pub const TOKEN_KEY_SET: u8 = 0x0f;
    /// [`crate::filter::TokenFilter`] (custom layout, publication version 3).
    pub const TOKEN_FILTER: u8 = 0x10;
    /// [`crate::sunset::SignedSunsetOrder`]: the end of purpose.
    pub const SUNSET_ORDER: u8 = 0x11;
    /// [`crate::sunset::SignedDeletionReceipt`]: what a node erased under an order.
    pub const SUNSET_RECEIPT: u8 = 0x12;
    /// [`crate::venue::SignedVenueRelease`]: an authority's venue traces for one case.
    pub const VENUE_RELEASE: u8 = 0x13;
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Probe {
        a: u32,
        b: Vec<u8>,
    }

    impl WireMessage for Probe {
        const KIND: u8 = 0x7f;
        const MAX_SIZE: usize = 64;
    }

    #[test]
    fn round_trip_and_header_checks() {
        let probe = Probe {
            a: 7,
            b: vec![1, 2, 3],
        };
        let bytes = encode(&probe);
        assert_eq!(&bytes[..2], &[WIRE_VERSION, 0x7f]);
        assert_eq!(decode::<Probe>(&bytes), Ok(probe));

        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert_eq!(
            decode::<Probe>(&wrong_version),
            Err(DecodeError::UnsupportedVersion {
                got: 9,
                supported: WIRE_VERSION
            })
        );
        let mut wrong_kind = bytes.clone();
        wrong_kind[1] = 1;
        assert_eq!(
            decode::<Probe>(&wrong_kind),
            Err(DecodeError::WrongKind {
                got: 1,
                expected: 0x7f
            })
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            decode::<Probe>(&trailing),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            decode::<Probe>(&bytes[..1]),
            Err(DecodeError::Truncated { got: 1, min: 2 })
        );
        assert_eq!(decode::<Probe>(&bytes[..4]), Err(DecodeError::Malformed));
        assert_eq!(
            decode::<Probe>(&[0; 65]),
            Err(DecodeError::TooLarge { got: 65, max: 64 })
        );
    }

    /// docs/PROTOCOL.md §5.1's table names exactly the kinds this module defines, and
    /// `0x08` as reserved (it was defined here for "report contents" and used nowhere).
    #[test]
    fn the_specified_kinds_are_the_defined_ones() {
        let defined = [
            kind::SIGNED_CERTIFICATE,
            kind::UPLOAD_REQUEST,
            kind::SIGNED_UPLOAD,
            kind::SIGNED_BATCH,
            kind::BATCH_INDEX,
            kind::SYNC_REQUEST,
            kind::SYNC_RESPONSE,
            kind::KEY_ROLLOVER,
            kind::INSTANCE_HELLO,
            kind::INSTANCE_OTHERS,
            kind::FEDERATED_REPORT,
            kind::SIGNED_HEAD,
            kind::HEAD_LIST,
            kind::TOKEN_KEY_SET,
            kind::TOKEN_FILTER,
            kind::VENUE_RELEASE,
        ];
        let spec = include_str!("../../docs/PROTOCOL.md");
        let section = &spec[spec.find("### 5.1").expect("§5.1")..];
        let section = &section[..section.find("\n### ").expect("§5.2 follows")];
        let mut specified = Vec::new();
        let mut reserved = Vec::new();
        for row in section.lines().filter(|l| l.starts_with("| 0x")) {
            let mut cells = row.split('|').skip(1);
            let kinds = cells.next().expect("kind cell");
            let what = cells.next().expect("message cell");
            for k in kinds.split(',') {
                let k =
                    u8::from_str_radix(k.trim().trim_start_matches("0x"), 16).expect("a hex kind");
                if what.contains("reserved") {
                    reserved.push(k);
                } else {
                    specified.push(k);
                }
            }
        }
        specified.sort_unstable();
        let mut defined = defined.to_vec();
        defined.sort_unstable();
        assert_eq!(specified, defined);
        assert_eq!(reserved, [0x08]);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let _ = decode::<Probe>(&bytes);
        }
    }
}
