//! `accept_proxy` on HTTP frontends (lb.md §11): the PROXY header that a load balancer in
//! front sends before anything else (on a TLS frontend, before the ClientHello) is read
//! first, and the addresses it carries replace the TCP peer's for everything after it: the
//! access log, X-Forwarded-For, `set_headers` variables and `source` balancing all see the
//! client, never the load balancer in front.
//!
//! A missing, truncated, oversized or malformed header, or none within `http_request`,
//! closes the connection before any HTTP byte is read: logged once with the reason and
//! counted in the frontend's request errors (a connection that closes without sending a
//! byte is a probe, closed silently as in the rest of HTTP mode).
//!
//! The header is read in small reads, so the client's first bytes may arrive with it;
//! [`Prefixed`] hands those to hyper (or rustls) before the socket's own.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http::frontend::Frontend;
use crate::observe::meters::Meters;
use crate::tcp::first_bytes::{self, FirstBytesError};

/// Reads the PROXY header of a new connection. `Some((stream, src, dst))`: the stream with
/// the bytes read past the header in front, and the addresses the header carries (the TCP
/// ones for a LOCAL or UNKNOWN header). `None`: the connection is to be closed (done here).
pub(crate) async fn read_header(
    fe: &Frontend,
    mut stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<(Prefixed<TcpStream>, SocketAddr, SocketAddr)> {
    let mut after = Vec::new();
    let timeout = fe.cfg.timeouts.http_request;
    match first_bytes::read_proxy_header(&mut stream, &mut after, peer, local, timeout).await {
        Ok((src, dst)) => Some((Prefixed::new(after, stream), src, dst)),
        Err(FirstBytesError::Silent) => None,
        Err(e) => {
            Meters::add(&fe.meters.errors_request, 1);
            tracing::warn!(frontend = %fe.name, client = %peer, "connection closed: {e}");
            None
        }
    }
}

/// A stream with bytes already read from it put back in front.
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    /// How much of `prefix` was handed out.
    taken: usize,
    io: S,
}

impl<S> Prefixed<S> {
    fn new(prefix: Vec<u8>, io: S) -> Self {
        Prefixed {
            prefix,
            taken: 0,
            io,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.taken < this.prefix.len() {
            let rest = &this.prefix[this.taken..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.taken += n;
            if this.taken == this.prefix.len() {
                this.prefix = Vec::new();
                this.taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn prefix_comes_before_the_stream() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut p = Prefixed::new(b"GET / ".to_vec(), a);
        tokio::io::AsyncWriteExt::write_all(&mut b, b"HTTP/1.1\r\n")
            .await
            .unwrap();
        drop(b);
        let mut small = [0u8; 4];
        let n = p.read(&mut small).await.unwrap();
        assert_eq!(&small[..n], b"GET ");
        let mut rest = Vec::new();
        p.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"/ HTTP/1.1\r\n");
    }
}
