//! Sunset orders between nodes: the [`SUNSET_PROTOCOL`] request-response protocol
//! (`docs/PROTOCOL.md` §9.6 and §11).
//!
//! On every new connection and every `sync_interval` a node sends each peer the order it
//! holds (or nothing) and gets the peer's back; when the node adopts a new order it sends it
//! to every connected peer at once. So an order posted at one node reaches every node that
//! can check it within a hop's round trip per hop, and a node that was offline gets it from
//! the first peer it reconnects to.
//!
//! What a peer sends is handed, still unchecked, to the node's [`SunsetWitness`], which
//! checks it against its own committee and federation name (`Node::offer_sunset`): all the
//! checks stay in one place. Orders authenticate themselves (k of n committee signatures),
//! so a peer can relay any order without being trusted. A node that holds no committee, or
//! another committee, cannot check an order and does not relay it; it does not blame the
//! peer either (partial trust is not misbehaviour, issue 16).
//!
//! Bounds (the event loop's side, `event_loop/sunset.rs`): a message carries at most one
//! order frame, of at most [`SignedSunsetOrder`]'s wire cap; a longer length prefix is
//! refused before anything is read. Only bytes that are provably bad cost the peer score:
//! an oversized frame or one that does not decode as an order. A frame equal to the held
//! order is dropped unread; others spend a small per-peer budget, and past it are dropped
//! without penalty; at most a few orders are checked at once.

use std::fmt;
use std::io;
use std::sync::Arc;

use ephemera_proto::sunset::SignedSunsetOrder;
use ephemera_proto::wire::WireMessage;
use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite};
use libp2p::{StreamProtocol, request_response};

use super::frame::{read_frame_within, write_frame};

/// The sunset-order protocol's name.
pub const SUNSET_PROTOCOL: StreamProtocol = StreamProtocol::new("/ephemera/sunset/1");

/// Largest order frame a peer may send: [`SignedSunsetOrder`]'s wire cap.
pub const MAX_SUNSET_FRAME: usize = <SignedSunsetOrder as WireMessage>::MAX_SIZE;

/// The node's side of the exchange. Called from the event loop: `held` must be quick.
pub trait SunsetWitness: Send + Sync + 'static {
    /// The frame of the order the node holds, if any.
    fn held(&self) -> Option<Vec<u8>>;
    /// An order frame a peer sent (decoded once, not verified): the node checks it and,
    /// when it adopts it, spreads it to its peers (`FederationHandle::spread_sunset`).
    fn offered(&self, frame: Vec<u8>) -> BoxFuture<'static, ()>;
}

/// The [`SunsetWitness`] federation hands orders to; `None` in the config sends no order
/// and ignores peers' (they are answered with nothing).
#[derive(Clone)]
pub struct SunsetSink(pub Arc<dyn SunsetWitness>);

impl fmt::Debug for SunsetSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SunsetSink")
    }
}

/// One message of [`SUNSET_PROTOCOL`], either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SunsetMessage {
    /// An order frame, or empty for "none held".
    Frame(Vec<u8>),
    /// What a peer sent announced a length over [`MAX_SUNSET_FRAME`]; nothing more was read.
    /// Only ever read, never written.
    Oversized,
}

/// The codec of [`SUNSET_PROTOCOL`]: a 4-byte big-endian length, at most
/// [`MAX_SUNSET_FRAME`], then the frame's bytes (none for "none held"). The frame is not
/// decoded here, and an oversized one is reported rather than failed (libp2p does not tell
/// the behaviour of a request that failed to read), so the event loop can tell junk
/// (penalised) from an order this node cannot check (not penalised).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SunsetCodec;

impl SunsetCodec {
    async fn read<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<SunsetMessage> {
        Ok(match read_frame_within(io, MAX_SUNSET_FRAME).await? {
            Ok(frame) => SunsetMessage::Frame(frame),
            Err(_) => SunsetMessage::Oversized,
        })
    }

    async fn write<T: AsyncWrite + Unpin + Send>(
        io: &mut T,
        message: SunsetMessage,
    ) -> io::Result<()> {
        match message {
            SunsetMessage::Frame(frame) if frame.len() <= MAX_SUNSET_FRAME => {
                write_frame(io, &frame).await
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "sunset frame exceeds its cap",
            )),
        }
    }
}

impl request_response::Codec for SunsetCodec {
    type Protocol = StreamProtocol;
    type Request = SunsetMessage;
    type Response = SunsetMessage;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SunsetMessage>
    where
        T: AsyncRead + Unpin + Send,
    {
        Self::read(io).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SunsetMessage>
    where
        T: AsyncRead + Unpin + Send,
    {
        Self::read(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SunsetMessage,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Self::write(io, request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: SunsetMessage,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Self::write(io, response).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use libp2p::request_response::Codec as _;
    use proptest::prelude::*;

    use super::*;

    fn framed(len: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[tokio::test]
    async fn the_codec_round_trips_and_refuses_oversized_or_short_frames() {
        let mut codec = SunsetCodec;
        for body in [Vec::new(), vec![7u8; 10], vec![1u8; MAX_SUNSET_FRAME]] {
            let mut out = Cursor::new(Vec::new());
            codec
                .write_request(
                    &SUNSET_PROTOCOL,
                    &mut out,
                    SunsetMessage::Frame(body.clone()),
                )
                .await
                .unwrap();
            let mut input = Cursor::new(out.into_inner());
            let read = codec
                .read_response(&SUNSET_PROTOCOL, &mut input)
                .await
                .unwrap();
            assert_eq!(read, SunsetMessage::Frame(body));
        }
        // One byte over the cap: told from the prefix, before the body is read.
        let over = u32::try_from(MAX_SUNSET_FRAME + 1).unwrap();
        let mut input = Cursor::new(framed(over, &[5; 16]));
        let read = codec.read_request(&SUNSET_PROTOCOL, &mut input).await;
        assert_eq!(read.unwrap(), SunsetMessage::Oversized);
        assert_eq!(input.position(), 4);
        for message in [
            SunsetMessage::Frame(vec![0; MAX_SUNSET_FRAME + 1]),
            SunsetMessage::Oversized,
        ] {
            let err = codec
                .write_response(&SUNSET_PROTOCOL, &mut Cursor::new(Vec::new()), message)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        // A body shorter than its prefix says.
        let err = codec
            .read_request(&SUNSET_PROTOCOL, &mut Cursor::new(framed(10, &[1, 2, 3])))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    proptest! {
        #[test]
        fn the_codec_never_panics_and_never_reads_past_the_cap(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            len in any::<u32>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            for input in [bytes.clone(), framed(len, &bytes)] {
                let read = runtime.block_on(
                    SunsetCodec.read_request(&SUNSET_PROTOCOL, &mut Cursor::new(input.clone())),
                );
                if let Ok(SunsetMessage::Frame(frame)) = read {
                    prop_assert!(frame.len() <= MAX_SUNSET_FRAME);
                    prop_assert!(frame.len() + 4 <= input.len());
                }
            }
        }
    }
}
