//! The connector of the pooled server clients: hyper-util's `HttpConnector`, with each
//! connection stamped with the time it was made. hyper does not say whether a request went
//! out on a reused pooled connection; the stamp does, and that decides whether a request
//! that got no response at all may be sent again (RFC 9112 §9.3.1: a client may retry an
//! idempotent request that failed on a reused connection, the classic race where the
//! server closed an idle connection as we picked it; a fresh connection that dies without
//! an answer is a real failure, and replaying it could take a second server down).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

/// When a server connection was established (found in `Connected::get_extras`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Born(pub Instant);

/// A server connection carrying its [`Born`] stamp.
pub(crate) struct Stamped {
    inner: TokioIo<TcpStream>,
    born: Instant,
}

impl Connection for Stamped {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(Born(self.born))
    }
}

impl Read for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl Write for Stamped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
}

type ConnectError = <HttpConnector as Service<Uri>>::Error;

/// `HttpConnector` that returns [`Stamped`] connections.
#[derive(Clone)]
pub(crate) struct StampingConnector(pub HttpConnector);

impl Service<Uri> for StampingConnector {
    type Response = Stamped;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Stamped, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let inner = connecting.await?;
            Ok(Stamped {
                inner,
                born: Instant::now(),
            })
        })
    }
}

/// Whether the captured connection existed before `since` (it came from the pool).
pub(crate) fn was_reused(connected: Option<&Connected>, since: Instant) -> bool {
    let Some(c) = connected else { return false };
    let mut ext = http::Extensions::new();
    c.get_extras(&mut ext);
    ext.get::<Born>().is_some_and(|b| b.0 < since)
}
