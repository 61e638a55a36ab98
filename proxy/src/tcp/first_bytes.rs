//! Reading the first bytes of a connection before a server is picked: the PROXY header
//! (`accept_proxy`) and, for SNI routing, the whole ClientHello. Both read with a deadline
//! into one buffer that the session later forwards (minus the PROXY header).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::clienthello::{self, Inspect, MAX_CLIENT_HELLO};
use crate::proxy_header::{self, Parse, ProxyHeader, ProxyHeaderError};

/// Why the connection is closed before a server was picked (logged once with the reason).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FirstBytesError {
    #[error("closed before sending anything")]
    Silent,
    #[error("closed in the middle of the PROXY header")]
    ProxyTruncated,
    #[error("no PROXY header within {0:?}")]
    ProxyTimeout(Duration),
    #[error("{0}")]
    ProxyBad(#[from] ProxyHeaderError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads into `buf` until the PROXY header is complete; returns the addresses it carries
/// (the real ones for LOCAL/UNKNOWN) and leaves only the bytes after it in `buf`.
pub(crate) async fn read_proxy_header(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    local: SocketAddr,
    timeout: Duration,
) -> Result<(SocketAddr, SocketAddr), FirstBytesError> {
    let deadline = Instant::now() + timeout;
    loop {
        match proxy_header::parse(buf)? {
            Parse::Done { header, len } => {
                buf.drain(..len);
                return Ok(match header {
                    ProxyHeader::Tcp { src, dst } => (src, dst),
                    ProxyHeader::Local | ProxyHeader::Unknown => (peer, local),
                });
            }
            Parse::NeedMore => {}
        }
        let read = tokio::time::timeout_at(deadline, read_some(stream, buf, 256)).await;
        match read {
            Err(_) => return Err(FirstBytesError::ProxyTimeout(timeout)),
            Ok(Ok(0)) if buf.is_empty() => return Err(FirstBytesError::Silent),
            Ok(Ok(0)) => return Err(FirstBytesError::ProxyTruncated),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}

/// What SNI inspection decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hello {
    /// The whole ClientHello was read.
    Read(Inspect),
    /// The deadline passed first (the bytes read so far are still forwarded).
    TimedOut,
}

/// Reads into `buf` (which may already hold bytes) until [`clienthello::inspect`] decides or
/// `timeout` passes. A client that closes first is an error ([`FirstBytesError::Silent`] when
/// it sent nothing).
pub(crate) async fn read_client_hello(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> Result<Hello, FirstBytesError> {
    let deadline = Instant::now() + timeout;
    loop {
        match clienthello::inspect(buf) {
            Inspect::NeedMore => {}
            verdict => return Ok(Hello::Read(verdict)),
        }
        let room = MAX_CLIENT_HELLO.saturating_sub(buf.len()).max(1);
        match tokio::time::timeout_at(deadline, read_some(stream, buf, room)).await {
            Err(_) => return Ok(Hello::TimedOut),
            Ok(Ok(0)) if buf.is_empty() => return Err(FirstBytesError::Silent),
            Ok(Ok(0)) => {
                return Err(FirstBytesError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed in the middle of the ClientHello",
                )))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}

/// One read of at most `max` bytes appended to `buf`.
async fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    buf.reserve(max);
    let mut limited = (&mut *stream).take(max as u64);
    limited.read_buf(buf).await
}
