//! A connection to a server as a byte stream: plain TCP or TLS over TCP (backend `tls`).
//!
//! An enum rather than a trait object or a generic: the direct exchange (h1.rs) and hyper's
//! client both take it as it is, and the plain case costs one predictable branch per read
//! or write, no allocation and no dynamic call.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub(crate) enum ServerIo {
    Plain(TcpStream),
    /// Boxed: rustls' connection state is ~1 KiB and pooled connections move around.
    Tls(Box<TlsStream<TcpStream>>),
}

impl ServerIo {
    /// An idle connection is usable when nothing arrived on it since its last response (no
    /// end of stream, no stray bytes). Costs no system call when the socket has not become
    /// readable. On TLS, records that carry no data (a TLS 1.3 session ticket sent after the
    /// handshake) are consumed and the connection stays usable; a close_notify is an end.
    pub(crate) fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match self {
            ServerIo::Plain(io) => match io.poll_read_ready(&mut cx) {
                Poll::Pending => true,
                Poll::Ready(Err(_)) => false,
                Poll::Ready(Ok(())) => {
                    let mut b = [0u8; 1];
                    matches!(io.try_read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                }
            },
            ServerIo::Tls(tls) => {
                match tls.get_ref().0.poll_read_ready(&mut cx) {
                    Poll::Pending => return true,
                    Poll::Ready(Err(_)) => return false,
                    Poll::Ready(Ok(())) => {}
                }
                let mut b = [0u8; 1];
                let mut buf = ReadBuf::new(&mut b);
                // Pending: only handshake records were there. Ready: end of stream, stray
                // data or an error; none leaves the connection fit for a request.
                Pin::new(&mut **tls)
                    .poll_read(&mut cx, &mut buf)
                    .is_pending()
            }
        }
    }
}

impl AsyncRead for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(io) => Pin::new(io).poll_read(cx, buf),
            ServerIo::Tls(io) => Pin::new(&mut **io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerIo::Plain(io) => Pin::new(io).poll_write(cx, buf),
            ServerIo::Tls(io) => Pin::new(&mut **io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerIo::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            ServerIo::Tls(io) => Pin::new(&mut **io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerIo::Plain(io) => io.is_write_vectored(),
            ServerIo::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(io) => Pin::new(io).poll_flush(cx),
            ServerIo::Tls(io) => Pin::new(&mut **io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(io) => Pin::new(io).poll_shutdown(cx),
            ServerIo::Tls(io) => Pin::new(&mut **io).poll_shutdown(cx),
        }
    }
}
