//! Cached bodies sent with `sendfile(2)` from an anonymous memory file.
//!
//! A signed batch is served thousands of times a second and never changes. Written with
//! `writev`, every answer copies the whole body from the node's memory into the socket;
//! nginx serves the same file with `sendfile`, which hands the file's pages to the socket
//! without that copy (measured: the copy was about a quarter of the node's CPU when serving
//! a 44 KB batch). So each cached body above [`MIN_SENDFILE_BYTES`] also lives in a sealed
//! memory file (`memfd_create`), and [`BodyFiles`] maps the body's address in memory to that
//! file. The connection's writer ([`poll_write_vectored`]) looks up each slice hyper hands
//! it: a slice inside a registered body goes out by `sendfile` from the file at the same
//! offset, the head before it by `send` with `MSG_MORE` (so head and body still leave in one
//! segment); anything else is written as before.
//!
//! Why an address is a safe key: the index holds a clone of every registered body, so its
//! memory stays allocated (and, being `Bytes`, unchanged) for as long as its entry exists; a
//! slice that lies inside it is part of that body. Entries are removed when their batch
//! leaves the cache, after which slices of the body (answers still in flight) are simply
//! written from memory.
//!
//! The file costs as much memory as the body again (the batch cache's 64 MiB bound becomes
//! 128 MiB at most; fourteen days of hourly batches take about 30 MB with both).

use std::collections::BTreeMap;
use std::io::{self, IoSlice};
use std::os::fd::OwnedFd;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use axum::body::Bytes;
use tokio::net::TcpStream;

/// Bodies shorter than this are written from memory: for them the copy costs less than the
/// extra system call.
pub(crate) const MIN_SENDFILE_BYTES: usize = 16 * 1024;

/// One body's sealed memory file.
#[derive(Debug)]
struct BodyFile {
    fd: OwnedFd,
}

impl BodyFile {
    /// A memory file holding `bytes`, sealed against any change.
    #[cfg(not(target_os = "linux"))]
    fn new(_bytes: &[u8]) -> io::Result<BodyFile> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// A memory file holding `bytes`, sealed against any change.
    #[cfg(target_os = "linux")]
    fn new(bytes: &[u8]) -> io::Result<BodyFile> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let fd = rustix::fs::memfd_create(
            "ephemera-batch",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, bytes)?;
        let fd = OwnedFd::from(file);
        rustix::fs::fcntl_add_seals(
            &fd,
            SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
        )?;
        Ok(BodyFile { fd })
    }
}

/// A registered body: a clone that keeps its memory allocated, and its file.
#[derive(Debug)]
struct Registered {
    body: Bytes,
    file: Arc<BodyFile>,
}

/// The index from the start address of each registered body to its memory file.
#[derive(Debug, Default)]
pub struct BodyFiles {
    by_start: RwLock<BTreeMap<usize, Registered>>,
}

impl BodyFiles {
    /// Registers `body` (when it is long enough, and a memory file can be made: otherwise it
    /// is simply written from memory).
    pub(crate) fn add(&self, body: &Bytes) {
        if body.len() < MIN_SENDFILE_BYTES {
            return;
        }
        let start = body.as_ptr() as usize;
        if self.read().contains_key(&start) {
            return;
        }
        let Ok(file) = BodyFile::new(body) else {
            return;
        };
        self.write().insert(
            start,
            Registered {
                body: body.clone(),
                file: Arc::new(file),
            },
        );
    }

    /// Forgets `body` (its batch left the cache).
    pub(crate) fn remove(&self, body: &Bytes) {
        let start = body.as_ptr() as usize;
        let mut by_start = self.write();
        if by_start
            .get(&start)
            .is_some_and(|r| r.body.len() == body.len())
        {
            by_start.remove(&start);
        }
    }

    /// Number of registered bodies.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    /// The file holding `slice` and the slice's offset in it, when `slice` lies inside a
    /// registered body.
    fn find(&self, slice: &[u8]) -> Option<(Arc<BodyFile>, u64)> {
        if slice.len() < MIN_SENDFILE_BYTES {
            return None;
        }
        let at = slice.as_ptr() as usize;
        let by_start = self.read();
        let (&start, registered) = by_start.range(..=at).next_back()?;
        let offset = at - start;
        (offset + slice.len() <= registered.body.len())
            .then(|| (registered.file.clone(), offset as u64))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<usize, Registered>> {
        self.by_start.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<usize, Registered>> {
        self.by_start.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes `bufs` to `stream` as `AsyncWrite::poll_write_vectored` does, sending a slice
/// that lies in a registered body with `sendfile`; `None` when no slice does (the caller
/// writes them as usual).
///
/// What is before the body (hyper's head) goes first with `MSG_MORE`; the count returned
/// is contiguous from the first slice, as the trait requires, and stops at the body's end
/// (hyper calls again for whatever follows).
#[cfg(target_os = "linux")]
pub(crate) fn poll_write_vectored(
    stream: &TcpStream,
    files: &BodyFiles,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Option<Poll<io::Result<usize>>> {
    let (index, file, offset) = bufs
        .iter()
        .enumerate()
        .find_map(|(i, b)| files.find(b).map(|(file, offset)| (i, file, offset)))?;
    let body_len = bufs[index].len();
    let head: Vec<&[u8]> = bufs[..index]
        .iter()
        .map(|b| &**b)
        .filter(|b| !b.is_empty())
        .collect();
    let head_len: usize = head.iter().map(|b| b.len()).sum();
    Some(poll_io(stream, cx, || {
        let mut written = 0;
        if head_len > 0 {
            // Usually one slice (hyper's head buffer); several are joined (a few hundred bytes).
            let joined;
            let head = match head.as_slice() {
                [one] => *one,
                many => {
                    joined = many.concat();
                    &joined
                }
            };
            written = rustix::net::send(
                stream,
                head,
                rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
            )?;
            if written < head_len {
                return Ok(written);
            }
        }
        let mut at = offset;
        match rustix::fs::sendfile(stream, &file.fd, Some(&mut at), body_len) {
            Ok(sent) => Ok(written + sent),
            // The head is out; the body waits for the next call.
            Err(e) if e == rustix::io::Errno::AGAIN && written > 0 => Ok(written),
            Err(e) => Err(e.into()),
        }
    }))
}

/// Elsewhere than Linux no body is registered ([`BodyFile::new`] fails): always `None`.
#[cfg(not(target_os = "linux"))]
pub(crate) fn poll_write_vectored(
    _stream: &TcpStream,
    _files: &BodyFiles,
    _cx: &mut Context<'_>,
    _bufs: &[IoSlice<'_>],
) -> Option<Poll<io::Result<usize>>> {
    None
}

/// Runs the non-blocking `write` once the socket is writable, registering `cx` to be woken
/// when it would block.
#[cfg(target_os = "linux")]
fn poll_io(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    mut write: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        std::task::ready!(stream.poll_write_ready(cx))?;
        match stream.try_io(tokio::io::Interest::WRITABLE, &mut write) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return Poll::Ready(result),
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    fn body(len: usize) -> Bytes {
        Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
    }

    #[test]
    fn a_slice_inside_a_registered_body_finds_its_file_at_the_same_offset() {
        let files = BodyFiles::default();
        let long = body(64 * 1024);
        let short = body(MIN_SENDFILE_BYTES - 1);
        files.add(&long);
        files.add(&short);
        files.add(&long);
        assert_eq!(files.len(), 1, "short bodies are not registered, nor twice");
        let (_, offset) = files.find(&long[1000..1000 + MIN_SENDFILE_BYTES]).unwrap();
        assert_eq!(offset, 1000);
        assert!(files.find(&long[..]).is_some());
        assert!(
            files.find(&long[1..MIN_SENDFILE_BYTES]).is_none(),
            "too short to be worth it"
        );
        // The same bytes elsewhere in memory are another body.
        let copy = Bytes::copy_from_slice(&long);
        assert!(files.find(&copy).is_none());
        files.remove(&copy);
        assert_eq!(
            files.len(),
            1,
            "removing an unregistered body changes nothing"
        );
        files.remove(&long);
        assert!(files.find(&long).is_none());
    }

    #[test]
    fn the_batch_cache_registers_what_it_keeps_and_forgets_what_it_drops() {
        let files = Arc::new(BodyFiles::default());
        let cache = crate::batch_cache::BatchCache::with_files(100 * 1024, files.clone());
        let id = |n: u8| ephemera_proto::batch::BatchId([n; 32]);
        let first = cache.insert(id(1), body(40 * 1024));
        cache.insert(id(2), body(40 * 1024));
        assert_eq!(files.len(), 2);
        // 120 KiB > 100 KiB: the first goes, and with it its file.
        cache.insert(id(3), body(40 * 1024));
        assert_eq!(files.len(), 2);
        assert!(files.find(first.body()).is_none());
        cache.retain(|b| b.0[0] != 2);
        assert_eq!(files.len(), 1);
    }

    /// Writes `bufs` through [`poll_write_vectored`] until all is written, as hyper does.
    async fn write_all(stream: &TcpStream, files: &BodyFiles, bufs: &[&[u8]]) -> usize {
        let mut calls = 0;
        let mut skip = 0;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        while skip < total {
            // The slices still to write, the first one advanced past what is written.
            let mut left = skip;
            let slices: Vec<IoSlice<'_>> = bufs
                .iter()
                .filter_map(|b| {
                    if left >= b.len() {
                        left -= b.len();
                        None
                    } else {
                        let slice = IoSlice::new(&b[left..]);
                        left = 0;
                        Some(slice)
                    }
                })
                .collect();
            let n = std::future::poll_fn(|cx| {
                poll_write_vectored(stream, files, cx, &slices).expect("a registered body")
            })
            .await
            .unwrap();
            assert!(n > 0);
            skip += n;
            calls += 1;
        }
        calls
    }

    #[tokio::test]
    async fn head_and_body_arrive_whole_and_in_order_even_when_the_socket_fills() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server_side, _) = listener.accept().await.unwrap();
        let files = BodyFiles::default();
        // Larger than a loopback socket's buffers, so sendfile stops part way.
        let long = body(8 << 20);
        files.add(&long);
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 8388608\r\n\r\n".to_vec();
        let tail = &long[100..];
        let expected_len = head.len() + tail.len();
        let reader = tokio::spawn(async move {
            // Slow at first, so the writer meets a full socket.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let mut received = Vec::new();
            while received.len() < expected_len {
                let mut chunk = vec![0u8; 64 * 1024];
                let n = server_side.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed early");
                received.extend_from_slice(&chunk[..n]);
            }
            received
        });
        let calls = write_all(&client, &files, &[&head, tail]).await;
        let received = reader.await.unwrap();
        assert_eq!(&received[..head.len()], &head[..]);
        assert!(received[head.len()..] == *tail, "the body from its offset");
        assert!(calls > 1, "the socket filled and the body went in parts");
    }

    #[test]
    fn slices_outside_registered_bodies_are_left_to_the_caller() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let files = BodyFiles::default();
            let unregistered = body(64 * 1024);
            let answer = std::future::poll_fn(|cx| {
                Poll::Ready(poll_write_vectored(
                    &client,
                    &files,
                    cx,
                    &[IoSlice::new(b"head"), IoSlice::new(&unregistered)],
                ))
            })
            .await;
            assert!(answer.is_none());
        });
    }
}
