//! A minimal HTTP/1.1 keep-alive client over one TCP connection, for load generators that
//! must not spend more CPU than the server they measure (no pooling, no TLS, no chunked
//! bodies: the node always answers with `Content-Length`).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One response: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// What went wrong on the connection.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting, writing or reading failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before a whole response arrived.
    #[error("the server closed the connection mid-response")]
    Closed,
    /// The response head could not be parsed, or had no `Content-Length`.
    #[error("malformed response head: {0}")]
    Malformed(&'static str),
}

/// A keep-alive connection to one server.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to `addr` with `TCP_NODELAY`.
    ///
    /// # Errors
    /// [`HttpError::Io`] when the connection is refused.
    pub async fn open(addr: SocketAddr) -> Result<Connection, HttpError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    /// Sends one request (`headers` as `name: value` lines without the line ends) and reads
    /// its response.
    ///
    /// # Errors
    /// [`HttpError`] when the exchange fails; any status is a response, not an error.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n");
        for header in headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes()).await?;
        if !body.is_empty() {
            self.stream.write_all(body).await?;
        }
        self.read_response().await
    }

    /// `POST path` with a body of `content_type`.
    ///
    /// # Errors
    /// As [`Connection::request`].
    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let header = format!("Content-Type: {content_type}");
        self.request("POST", path, &[&header], body).await
    }

    async fn fill(&mut self) -> Result<(), HttpError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HttpError::Closed);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Response, HttpError> {
        let head_end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            self.fill().await?;
        };
        let (status, length) = parse_head(&self.buf[..head_end])?;
        let body_start = head_end + 4;
        while self.buf.len() < body_start + length {
            self.fill().await?;
        }
        let body = self.buf[body_start..body_start + length].to_vec();
        self.buf.drain(..body_start + length);
        Ok(Response { status, body })
    }
}

/// Status code and `Content-Length` of a response head (without the blank line).
fn parse_head(head: &[u8]) -> Result<(u16, usize), HttpError> {
    let head = std::str::from_utf8(head).map_err(|_| HttpError::Malformed("not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or(HttpError::Malformed("status line"))?;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| HttpError::Malformed("Content-Length"))?,
            );
        }
    }
    // 204 and 304 carry no body and may omit the length.
    let length = match (length, status) {
        (Some(length), _) => length,
        (None, 204 | 304) => 0,
        (None, _) => return Err(HttpError::Malformed("no Content-Length")),
    };
    Ok((status, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_with_length() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: x\r\nContent-Length: 42";
        assert_eq!(parse_head(head).unwrap(), (200, 42));
    }

    #[test]
    fn not_modified_needs_no_length() {
        assert_eq!(parse_head(b"HTTP/1.1 304 Not Modified").unwrap(), (304, 0));
    }

    #[test]
    fn bad_heads_are_errors() {
        for head in [
            &b"HTTP/1.0 200 OK\r\nContent-Length: 1"[..],
            b"HTTP/1.1 2x0 OK\r\nContent-Length: 1",
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1",
        ] {
            assert!(
                parse_head(head).is_err(),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[tokio::test]
    async fn keep_alive_exchange_with_a_real_server() {
        // A one-shot server answering two requests on one connection.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut answered = 0;
            while answered < 2 {
                let mut chunk = [0u8; 1024];
                let n = socket.read(&mut chunk).await.unwrap();
                seen.extend_from_slice(&chunk[..n]);
                // The first request carries a 5-byte body after its head.
                let heads = seen.windows(4).filter(|w| w == b"\r\n\r\n").count();
                while answered < heads.min(2) {
                    let reply: &[u8] = if answered == 0 {
                        b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"
                    } else {
                        b"HTTP/1.1 304 Not Modified\r\n\r\n"
                    };
                    socket.write_all(reply).await.unwrap();
                    answered += 1;
                }
            }
            String::from_utf8(seen).unwrap()
        });
        let mut connection = Connection::open(addr).await.unwrap();
        let first = connection
            .request("POST", "/a", &["X-Test: 1"], b"hello")
            .await
            .unwrap();
        assert_eq!(first.status, 201);
        assert_eq!(first.body, b"abc");
        let second = connection.request("GET", "/b", &[], b"").await.unwrap();
        assert_eq!((second.status, second.body.len()), (304, 0));
        let seen = server.await.unwrap();
        assert!(seen.starts_with("POST /a HTTP/1.1\r\n"));
        assert!(seen.contains("Content-Length: 5\r\n\r\nhello"));
        assert!(seen.contains("GET /b HTTP/1.1\r\n"));
    }
}
