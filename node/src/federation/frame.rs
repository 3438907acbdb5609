//! The framing every Ephemera request-response protocol shares: a 4-byte big-endian
//! length checked against the message kind's cap before anything is read, then a
//! `proto::wire` frame. [`WireCodec`] is the codec of a protocol whose requests and
//! answers are plain wire messages.

use std::fmt;
use std::io;
use std::marker::PhantomData;

use ephemera_proto::wire::{self, WireMessage};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

/// Reads one frame of at most `max` bytes.
///
/// # Errors
/// `InvalidData` when the length announces more than `max`, `UnexpectedEof` when the
/// stream ends early, and the stream's own errors.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    read_frame_within(io, max).await?.map_err(|len| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {max}"),
        )
    })
}

/// Reads one frame of at most `max` bytes, or only its length prefix when that announces
/// more: `Err(length)`, nothing more read, for a caller that tells an oversized frame
/// apart from a broken stream.
///
/// # Errors
/// `UnexpectedEof` when the stream ends early, and the stream's own errors.
pub(crate) async fn read_frame_within<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Result<Vec<u8>, usize>> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Ok(Err(len));
    }
    // Read through `take` so memory grows with the bytes that really arrive, not with the
    // announced length.
    let mut buf = Vec::new();
    io.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Ok(buf))
}

/// Writes `frame` with its length in front, and flushes.
///
/// # Errors
/// `InvalidInput` for a frame over 4 GiB, and the stream's own errors.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(frame).await?;
    io.flush().await
}

/// Decodes a wire message, any refusal as `InvalidData`.
pub(crate) fn decode<M: WireMessage>(bytes: &[u8]) -> io::Result<M> {
    wire::decode(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Encodes a wire message, refusing one over its kind's cap (a peer would refuse it).
pub(crate) fn encode_capped<M: WireMessage>(message: &M) -> io::Result<Vec<u8>> {
    let frame = wire::encode(message);
    if frame.len() > M::MAX_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message exceeds its cap",
        ));
    }
    Ok(frame)
}

/// The `request_response` codec of a protocol whose requests are `Req` and answers `Resp`,
/// each framed as above and capped at its kind's `MAX_SIZE`.
pub struct WireCodec<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Default for WireCodec<Req, Resp> {
    fn default() -> Self {
        WireCodec(PhantomData)
    }
}

impl<Req, Resp> Clone for WireCodec<Req, Resp> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Resp> Copy for WireCodec<Req, Resp> {}

impl<Req, Resp> fmt::Debug for WireCodec<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireCodec")
    }
}

impl<Req, Resp> request_response::Codec for WireCodec<Req, Resp>
where
    Req: WireMessage + Send + 'static,
    Resp: WireMessage + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_frame(io, Req::MAX_SIZE).await?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_frame(io, Resp::MAX_SIZE).await?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Req,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode_capped(&request)?).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode_capped(&response)?).await
    }
}
