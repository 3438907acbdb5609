//! Venue releases between nodes: the [`RELEASES_PROTOCOL`] request-response protocol
//! (`docs/PROTOCOL.md` §10.1, "Federation").
//!
//! A request lists the ids of the releases the asker holds, or refused (at most
//! [`MAX_HAVE_IDS`]); the answer carries the frames of the releases the answerer holds and
//! the asker lacks, newest first, at most [`MAX_RELEASES_PER_ANSWER`]. A node asks each peer
//! on connection and every sync round, and asks every peer at once after it made or took a
//! new release; a node that hears ids it lacks in a peer's request asks that peer back. So
//! a release made at one node reaches each node of its authority within two round trips per
//! hop, and a node that was offline catches up from the first peer it reconnects to, a full
//! answer at a time.
//!
//! Releases authenticate themselves (the authority's signature), so a peer can relay any
//! release without being trusted. What a peer sends is handed, unchecked, to the node's
//! [`ReleaseKeeper`], which checks it (`NodeCore::admit_venue_release`) and says whether
//! the sender is to blame: not for a valid release of an authority this node does not trust
//! (partial trust is not misbehaviour, issue 16).
//!
//! Bounds (the event loop's side, `event_loop/venue_releases.rs`): a request or an answer
//! whose length prefix passes its cap is refused before anything more is read, and costs the
//! peer score, as does one that is misshapen; each release checked spends a per-peer
//! budget, and past it is dropped without penalty (it comes again next round).

use std::fmt;
use std::io;
use std::sync::Arc;

use ephemera_proto::venue::{MAX_RELEASE_LEN, ReleaseId};
use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite};
use libp2p::{StreamProtocol, request_response};

use super::frame::{read_frame_within, write_frame};

/// The venue-release protocol's name.
pub const RELEASES_PROTOCOL: StreamProtocol = StreamProtocol::new("/ephemera/venue-releases/1");

/// Most ids one request lists (256 KiB): two weeks of releases at 500 a day, with room.
pub const MAX_HAVE_IDS: usize = 8_192;

/// Most release frames one answer carries (about 1 MiB); the rest come with the next ask.
pub const MAX_RELEASES_PER_ANSWER: usize = 64;

/// Largest request body: [`MAX_HAVE_IDS`] ids of 32 bytes.
const MAX_REQUEST_BYTES: usize = MAX_HAVE_IDS * 32;

/// Largest answer body: [`MAX_RELEASES_PER_ANSWER`] frames, each with its 4-byte length.
const MAX_ANSWER_BYTES: usize = MAX_RELEASES_PER_ANSWER * (MAX_RELEASE_LEN + 4);

/// What a peer's release is to this node, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseAdmission {
    /// New here, and now stored.
    Stored,
    /// Held already.
    Known,
    /// Not taken. `blame`: whether the sender is at fault (a forged or misshapen release,
    /// not one of an authority this node does not trust, nor one past its retention).
    Refused {
        /// Whether the sender is at fault.
        blame: bool,
    },
    /// Not taken now, maybe later: issued after this node's clock. Not remembered as
    /// refused, no one blamed; a later ask fetches it again.
    Later,
}

/// The node's side of the exchange. Every call runs in a task of its own, not in the
/// event loop.
pub trait ReleaseKeeper: Send + Sync + 'static {
    /// The ids of the releases held, oldest first; the newest [`MAX_HAVE_IDS`] are offered.
    fn held(&self) -> BoxFuture<'static, Vec<ReleaseId>>;
    /// The frames of those of `ids` still held, in the order given.
    fn frames(&self, ids: Vec<ReleaseId>) -> BoxFuture<'static, Vec<Vec<u8>>>;
    /// A release frame a peer sent: checked and, when valid and new, stored durably.
    fn offered(&self, frame: Vec<u8>) -> BoxFuture<'static, ReleaseAdmission>;
}

/// The [`ReleaseKeeper`] federation exchanges releases for; `None` in the config asks for
/// none and answers peers with none.
#[derive(Clone)]
pub struct ReleaseSink(pub Arc<dyn ReleaseKeeper>);

impl fmt::Debug for ReleaseSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReleaseSink")
    }
}

/// A message of [`RELEASES_PROTOCOL`] as read: the message, or bytes that are not one
/// (over the cap, or misshapen), of which nothing more was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Received<T> {
    /// A well-formed message.
    Message(T),
    /// Not a message of this protocol: the peer is penalised. Only ever read, never
    /// written.
    Junk,
}

/// A request: the ids the asker holds or refused.
pub(crate) type HaveRequest = Received<Vec<ReleaseId>>;
/// An answer: release frames, each at most [`MAX_RELEASE_LEN`] bytes (not decoded here).
pub(crate) type ReleasesAnswer = Received<Vec<Vec<u8>>>;

/// The codec of [`RELEASES_PROTOCOL`]. A request is a 4-byte big-endian length, at most
/// [`MAX_HAVE_IDS`] × 32 and a multiple of 32, then the ids. An answer is a 4-byte length,
/// then that many bytes of frames, each a 4-byte length (at most [`MAX_RELEASE_LEN`]) and
/// its bytes, at most [`MAX_RELEASES_PER_ANSWER`] of them. Junk is reported, not failed
/// (libp2p does not tell the behaviour of a request that failed to read), so the event
/// loop can penalise it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReleaseCodec;

/// Parses a request body.
fn parse_have(body: &[u8]) -> Option<Vec<ReleaseId>> {
    let ids = body.chunks_exact(32);
    ids.remainder().is_empty().then(|| {
        ids.map(|id| ReleaseId(id.try_into().expect("32 bytes")))
            .collect()
    })
}

/// Parses an answer body.
fn parse_answer(mut body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        let (len, rest) = body.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_RELEASE_LEN || len > rest.len() || frames.len() == MAX_RELEASES_PER_ANSWER {
            return None;
        }
        let (frame, rest) = rest.split_at(len);
        frames.push(frame.to_vec());
        body = rest;
    }
    Some(frames)
}

/// An answer body for `frames`, or `None` when they pass a cap.
fn answer_body(frames: &[Vec<u8>]) -> Option<Vec<u8>> {
    if frames.len() > MAX_RELEASES_PER_ANSWER {
        return None;
    }
    let mut body = Vec::new();
    for frame in frames {
        if frame.len() > MAX_RELEASE_LEN {
            return None;
        }
        body.extend_from_slice(&u32::try_from(frame.len()).ok()?.to_be_bytes());
        body.extend_from_slice(frame);
    }
    Some(body)
}

fn over_cap() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "venue-release message exceeds its cap",
    )
}

impl request_response::Codec for ReleaseCodec {
    type Protocol = StreamProtocol;
    type Request = HaveRequest;
    type Response = ReleasesAnswer;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<HaveRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame_within(io, MAX_REQUEST_BYTES).await?;
        Ok(match body.ok().as_deref().and_then(parse_have) {
            Some(ids) => Received::Message(ids),
            None => Received::Junk,
        })
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<ReleasesAnswer>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame_within(io, MAX_ANSWER_BYTES).await?;
        Ok(match body.ok().as_deref().and_then(parse_answer) {
            Some(frames) => Received::Message(frames),
            None => Received::Junk,
        })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: HaveRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match request {
            Received::Message(ids) if ids.len() <= MAX_HAVE_IDS => {
                write_frame(io, &ids.iter().flat_map(|id| id.0).collect::<Vec<u8>>()).await
            }
            _ => Err(over_cap()),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: ReleasesAnswer,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match response {
            Received::Message(frames) => match answer_body(&frames) {
                Some(body) => write_frame(io, &body).await,
                None => Err(over_cap()),
            },
            Received::Junk => Err(over_cap()),
        }
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

    async fn request_round_trip(ids: Vec<ReleaseId>) -> HaveRequest {
        let mut out = Cursor::new(Vec::new());
        ReleaseCodec
            .write_request(&RELEASES_PROTOCOL, &mut out, Received::Message(ids))
            .await
            .unwrap();
        ReleaseCodec
            .read_request(&RELEASES_PROTOCOL, &mut Cursor::new(out.into_inner()))
            .await
            .unwrap()
    }

    async fn answer_round_trip(frames: Vec<Vec<u8>>) -> ReleasesAnswer {
        let mut out = Cursor::new(Vec::new());
        ReleaseCodec
            .write_response(&RELEASES_PROTOCOL, &mut out, Received::Message(frames))
            .await
            .unwrap();
        ReleaseCodec
            .read_response(&RELEASES_PROTOCOL, &mut Cursor::new(out.into_inner()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn requests_and_answers_round_trip_up_to_their_caps() {
        for ids in [
            Vec::new(),
            vec![ReleaseId([7; 32])],
            (0..MAX_HAVE_IDS)
                .map(|i| ReleaseId([(i % 251) as u8; 32]))
                .collect(),
        ] {
            assert_eq!(
                request_round_trip(ids.clone()).await,
                Received::Message(ids)
            );
        }
        for frames in [
            Vec::new(),
            vec![Vec::new(), vec![1, 2, 3]],
            vec![vec![9u8; MAX_RELEASE_LEN]; MAX_RELEASES_PER_ANSWER],
        ] {
            assert_eq!(
                answer_round_trip(frames.clone()).await,
                Received::Message(frames)
            );
        }
    }

    #[tokio::test]
    async fn over_the_caps_nothing_is_written() {
        let too_many_ids = vec![ReleaseId([1; 32]); MAX_HAVE_IDS + 1];
        let too_many_frames = vec![vec![1u8]; MAX_RELEASES_PER_ANSWER + 1];
        let too_long_frame = vec![vec![1u8; MAX_RELEASE_LEN + 1]];
        let mut out = Cursor::new(Vec::new());
        let err = ReleaseCodec
            .write_request(
                &RELEASES_PROTOCOL,
                &mut out,
                Received::Message(too_many_ids),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        for frames in [too_many_frames, too_long_frame] {
            let err = ReleaseCodec
                .write_response(&RELEASES_PROTOCOL, &mut out, Received::Message(frames))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(out.into_inner().is_empty());
    }

    #[tokio::test]
    async fn oversized_and_misshapen_messages_are_junk_read_no_further() {
        // A request over its cap: told from the prefix, before the body is read.
        let over = u32::try_from(MAX_REQUEST_BYTES + 32).unwrap();
        let mut input = Cursor::new(framed(over, &[5; 64]));
        let read = ReleaseCodec
            .read_request(&RELEASES_PROTOCOL, &mut input)
            .await;
        assert_eq!(read.unwrap(), Received::Junk);
        assert_eq!(input.position(), 4);
        // Ids that are not whole.
        let read = ReleaseCodec
            .read_request(&RELEASES_PROTOCOL, &mut Cursor::new(framed(33, &[0; 33])))
            .await;
        assert_eq!(read.unwrap(), Received::Junk);
        // An answer over its cap, a frame over a release's, a frame longer than the body.
        let over = u32::try_from(MAX_ANSWER_BYTES + 1).unwrap();
        let long = u32::try_from(MAX_RELEASE_LEN + 1).unwrap();
        for input in [
            framed(over, &[]),
            framed(4, &long.to_be_bytes()),
            framed(6, &framed(3, &[1, 2])),
        ] {
            let read = ReleaseCodec
                .read_response(&RELEASES_PROTOCOL, &mut Cursor::new(input))
                .await;
            assert_eq!(read.unwrap(), Received::Junk);
        }
        // One frame more than an answer holds.
        let body: Vec<u8> = (0..=MAX_RELEASES_PER_ANSWER)
            .flat_map(|_| framed(0, &[]))
            .collect();
        let input = framed(u32::try_from(body.len()).unwrap(), &body);
        let read = ReleaseCodec
            .read_response(&RELEASES_PROTOCOL, &mut Cursor::new(input))
            .await;
        assert_eq!(read.unwrap(), Received::Junk);
        // A body shorter than its prefix says: a broken stream, not junk.
        let err = ReleaseCodec
            .read_request(&RELEASES_PROTOCOL, &mut Cursor::new(framed(64, &[1; 3])))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    proptest! {
        #[test]
        fn reading_never_panics_and_stays_within_the_caps(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            len in any::<u32>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            for input in [bytes.clone(), framed(len, &bytes), framed(bytes.len() as u32, &bytes)] {
                let request = runtime.block_on(
                    ReleaseCodec.read_request(&RELEASES_PROTOCOL, &mut Cursor::new(input.clone())),
                );
                if let Ok(Received::Message(ids)) = request {
                    prop_assert!(ids.len() <= MAX_HAVE_IDS);
                    prop_assert!(ids.len() * 32 + 4 <= input.len());
                }
                let answer = runtime.block_on(
                    ReleaseCodec.read_response(&RELEASES_PROTOCOL, &mut Cursor::new(input.clone())),
                );
                if let Ok(Received::Message(frames)) = answer {
                    prop_assert!(frames.len() <= MAX_RELEASES_PER_ANSWER);
                    prop_assert!(frames.iter().all(|f| f.len() <= MAX_RELEASE_LEN));
                    let total: usize = frames.iter().map(|f| f.len() + 4).sum();
                    prop_assert!(total + 4 <= input.len());
                }
            }
        }
    }
}
