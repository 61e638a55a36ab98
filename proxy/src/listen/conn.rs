//! One client connection: the socket wrapper that enforces the frontend timeouts hyper does
//! not (lb.md §12, §18), and the task that serves the connection and drains it on request.
//!
//! [`ClientIo`] sits between the socket and hyper and tracks the HTTP/1 request cycle from
//! what it reads plus two counters the service bumps (request started / exchange finished):
//! - idle (no request byte yet): `keep_alive` (first request: `http_request`) → silent close;
//! - headers (first byte read, service not called yet): `http_request` → the 408 page is
//!   written straight to the socket and the connection ends (hyper's own header timeout
//!   closes without a response);
//! - in a request: no read deadline (the request body has its own `client` timeout);
//! - any write blocked longer than `client` fails the connection.
//!
//! HTTP/2 (prior knowledge, detected from the preface) has no header phase: only idle time
//! between streams is limited, by `client`.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::config::FrontendTimeouts;
use crate::http::client_conn::{ConnShared, RequestGuard};
use crate::http::frontend::{auto_server, h2_server, Frontend, HttpServer};
use crate::http::h2_streams::{StreamExec, WithStreams};
use crate::http::headers::ConnInfo;
use crate::http::request;
use crate::listen::drain::{self, DrainWatch};
use crate::observe::accesslog::{
    AccessLogEntry, LogServer, TermCause, TermPhase, TerminationState, TlsFacts,
};
use crate::upstream::deadline::Deadline;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Headers,
    InRequest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// Still matching the HTTP/2 preface (`n` bytes matched so far).
    Sniffing(usize),
    Http1,
    Http2,
}

/// Generic over the stream: a plain `TcpStream` or a TLS stream over one (each is its own
/// monomorphised copy, so the plain path pays nothing for TLS).
pub(crate) struct ClientIo<S> {
    io: S,
    timeouts: FrontendTimeouts,
    page_408: Option<Bytes>,
    shared: Arc<ConnShared>,
    phase: Phase,
    protocol: Protocol,
    seen_started: u64,
    read_deadline: Deadline,
    /// A new deadline for `read_deadline`, set on it only when it is next polled (most
    /// requests arrive whole, and the timer is then never polled in the headers phase).
    pending_deadline: Option<tokio::time::Instant>,
    write_deadline: Option<Pin<Box<Sleep>>>,
    /// The connection's first byte, read by [`ClientIo::poll_first_byte`] before hyper's
    /// connection existed, and given to hyper's first read.
    held: Option<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientIo<S> {
    fn new(
        io: S,
        timeouts: FrontendTimeouts,
        page_408: Option<Bytes>,
        shared: Arc<ConnShared>,
    ) -> Self {
        ClientIo {
            io,
            page_408,
            phase: Phase::Idle,
            protocol: Protocol::Sniffing(0),
            seen_started: 0,
            read_deadline: Deadline::new(tokio::time::Instant::now() + timeouts.http_request),
            pending_deadline: None,
            write_deadline: None,
            held: None,
            timeouts,
            shared,
        }
    }

    /// Waits for the connection's first byte (within the idle timeouts of a connection that
    /// has sent nothing) and keeps it for hyper: false if the connection ended first.
    fn poll_first_byte(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut byte = [0u8; 1];
        let mut one = ReadBuf::new(&mut byte);
        match Pin::new(&mut *self).poll_read(cx, &mut one) {
            Poll::Ready(Ok(())) if one.filled().len() == 1 => {
                self.held = Some(byte[0]);
                Poll::Ready(true)
            }
            Poll::Ready(_) => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    }

    /// hyper's first read: the held byte, and what arrived with it.
    fn read_held(
        &mut self,
        held: u8,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        buf.put_slice(&[held]);
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) | Poll::Pending => {}
        }
        if buf.filled().len() > before {
            let filled = &buf.filled()[before..];
            self.on_bytes(filled);
        }
        Poll::Ready(Ok(()))
    }

    fn arm(&mut self, after: Duration) {
        self.pending_deadline = None;
        self.read_deadline.set(tokio::time::Instant::now() + after);
    }

    fn idle_timeout(&self) -> Duration {
        match self.protocol {
            Protocol::Http2 => self.timeouts.client,
            _ => self
                .timeouts
                .keep_alive
                .unwrap_or(self.timeouts.http_request),
        }
    }

    /// Follows the request cycle from the service's counters.
    fn update_phase(&mut self) {
        let started = self.shared.started.load(Ordering::Acquire);
        let finished = self.shared.finished.load(Ordering::Acquire);
        if started != finished {
            self.phase = Phase::InRequest;
            self.seen_started = started;
        } else if self.seen_started != started || self.phase == Phase::InRequest {
            self.seen_started = started;
            self.phase = Phase::Idle;
            let t = self.idle_timeout();
            self.arm(t);
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        if let Protocol::Sniffing(matched) = self.protocol {
            let want = &H2_PREFACE[matched..];
            let n = want.len().min(bytes.len());
            self.protocol = if bytes[..n] != want[..n] {
                Protocol::Http1
            } else if matched + n == H2_PREFACE.len() {
                self.phase = Phase::Idle;
                let t = self.timeouts.client;
                self.arm(t);
                Protocol::Http2
            } else {
                Protocol::Sniffing(matched + n)
            };
        }
        if self.phase == Phase::Idle && self.protocol != Protocol::Http2 {
            self.phase = Phase::Headers;
            let now = Instant::now();
            let since = now.saturating_duration_since(self.shared.accepted);
            let us = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
            self.shared.first_byte.store(us, Ordering::Release);
            self.shared.head_reads.store(1, Ordering::Release);
            let deadline = tokio::time::Instant::from_std(now) + self.timeouts.http_request;
            self.pending_deadline = Some(deadline);
        } else if self.phase == Phase::Headers {
            self.shared.head_reads.store(2, Ordering::Release);
        }
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.phase == Phase::InRequest {
            return Poll::Pending;
        }
        if let Some(deadline) = self.pending_deadline.take() {
            self.read_deadline.set(deadline);
        }
        if self.read_deadline.poll_due(cx).is_pending() {
            return Poll::Pending;
        }
        if self.phase == Phase::Headers {
            // 408, written once and best effort: the send buffer of a connection waiting for
            // request bytes is empty, so the page fits.
            if let Some(page) = self.page_408.take() {
                let _ = Pin::new(&mut self.io).poll_write(cx, &page);
            }
            self.shared.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "http_request timeout",
            )));
        }
        // Idle: end of stream, which hyper takes as a quiet close.
        Poll::Ready(Ok(()))
    }

    fn write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let client = self.timeouts.client;
        let d = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(client)));
        match d.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "client timeout writing",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(held) = this.held.take() {
            return this.read_held(held, cx, buf);
        }
        this.update_phase();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let filled = &buf.filled()[before..];
                    this.on_bytes(filled);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => this.write_stalled(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => this.write_stalled(cx).map(Err),
        }
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

/// The plain TCP socket of an upgraded HTTP/1 connection (http/client_conn.rs `TakeSocket`).
fn plain_socket(upgraded: Upgraded) -> Result<(TcpStream, Bytes), Upgraded> {
    let parts = upgraded.downcast::<TokioIo<ClientIo<TcpStream>>>()?;
    Ok((parts.io.into_inner().io, parts.read_buf))
}

/// The protocol a TLS client chose by ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// None chosen (or a plain connection): the client's first bytes tell.
    None,
    Http1,
    H2,
}

impl Alpn {
    pub(crate) fn of(protocol: Option<&[u8]>) -> Alpn {
        match protocol {
            Some(b"h2") => Alpn::H2,
            Some(b"http/1.1") => Alpn::Http1,
            _ => Alpn::None,
        }
    }
}

/// Serves one accepted connection until it ends, or until `drain` asks it to stop: then
/// in-flight requests may finish within the given grace time and the connection is cut.
pub(crate) async fn serve<S>(
    fe: Arc<Frontend>,
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<Arc<TlsFacts>>,
    alpn: Alpn,
    drain: watch::Receiver<Option<Duration>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = ConnInfo {
        src: peer,
        dst: local,
        tls: tls.is_some(),
    };
    let shared = Arc::new(
        ConnShared::new(crate::http::headers::client_ip_value(peer.ip()), tls)
            .with_take_socket(plain_socket),
    );
    let mut io = ClientIo::new(stream, fe.cfg.timeouts, fe.page_408.clone(), shared.clone());
    let svc_fe = fe.clone();
    let svc_shared = shared.clone();
    let handle = move |req| {
        // The request counts as started as soon as hyper has its head, before the service
        // future first runs (hyper reads the socket again in between).
        let guard = RequestGuard::new(&svc_shared);
        request::handle(svc_fe.clone(), info, svc_shared.clone(), guard, req)
    };
    let wait = std::pin::pin!(drain::requested(drain));
    let mut drain = DrainWatch::new(wait);
    // hyper's connection (8 KiB read and write buffers, and kilobytes of state, boxed below
    // so that they are not part of this task while it waits) is made for a connection that
    // has sent its first byte: an idle one holds only its socket, its TLS session and this.
    let Some(drain_by) = first_byte(&mut io, &mut drain).await else {
        return;
    };
    // Only a connection whose first byte is the HTTP/2 preface's (`PRI * HTTP/2.0`) can be
    // h2c: any other goes straight to HTTP/1 without the server that sniffs the preface.
    let alpn = match io.held {
        Some(b) if alpn == Alpn::None && b != H2_PREFACE[0] => Alpn::Http1,
        _ => alpn,
    };
    let io = TokioIo::new(io);
    let served = match (&fe.http, alpn) {
        (HttpServer::Http1(h1), _) | (HttpServer::Auto { h1, .. }, Alpn::Http1) => {
            let conn = Box::pin(h1.serve_connection(io, service_fn(handle)).with_upgrades());
            drive(conn, &mut drain, drain_by, |c| {
                c.get_mut().as_mut().graceful_shutdown()
            })
            .await
        }
        (HttpServer::Auto { h2_max_streams, .. }, Alpn::H2) => {
            // hyper moves each stream's future several times on the way (into its stream
            // state, into the executor): boxed, the request future moves as a pointer
            // (callgrind, h2load -c1 -m32: 84,100 -> 39,900 instructions per request).
            let service = service_fn(move |req| Box::pin(handle(req)));
            let exec = StreamExec::default();
            let conn = h2_server(*h2_max_streams, exec.clone()).serve_connection(io, service);
            let conn = WithStreams::new(conn, exec);
            drive(conn, &mut drain, drain_by, |c| c.conn().graceful_shutdown()).await
        }
        (HttpServer::Auto { h2_max_streams, .. }, Alpn::None) => {
            let service = service_fn(move |req| Box::pin(handle(req)));
            let exec = StreamExec::default();
            let auto = auto_server(*h2_max_streams, exec.clone());
            let conn = WithStreams::new(auto.serve_connection_with_upgrades(io, service), exec);
            drive(conn, &mut drain, drain_by, |c| c.conn().graceful_shutdown()).await
        }
    };
    let Some(result) = served else { return };
    if let Some(tunnel) = shared.take_tunnel() {
        // A WebSocket upgrade (http/upgrade.rs): the connection is the tunnel's now.
        tokio::pin!(tunnel);
        tokio::select! {
            () = tunnel.as_mut() => {}
            grace = drain.wait() => {
                let _ = tokio::time::timeout(grace, tunnel.as_mut()).await;
            }
        }
        return;
    }
    let Err(err) = result else { return };
    if shared.timed_out.load(Ordering::Acquire) {
        log_unparsed(&fe, peer, &shared, 408, TermCause::ClientTimeout);
        return;
    }
    let hyper_err = err.downcast_ref::<hyper::Error>();
    if let Some(e) = hyper_err.filter(|e| e.is_parse() || e.is_parse_too_large()) {
        let status = if e.is_parse_too_large() { 431 } else { 400 };
        log_unparsed(&fe, peer, &shared, status, TermCause::Proxy);
    } else {
        tracing::debug!(frontend = %fe.name, client = %peer, error = %err, "connection error");
    }
}

/// Waits for the connection's first byte (held for hyper). `None`: the connection ended
/// first (closed, idle timeout) or a drain's grace ran out before it spoke; `Some(until)`:
/// a drain was asked meanwhile, and the connection is served until `until` only.
async fn first_byte<S, D>(
    io: &mut ClientIo<S>,
    drain: &mut DrainWatch<'_, D>,
) -> Option<Option<tokio::time::Instant>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: std::future::Future<Output = Duration>,
{
    let first = std::future::poll_fn(|cx| {
        if let Poll::Ready(spoke) = io.poll_first_byte(cx) {
            return Poll::Ready(Ok(spoke));
        }
        drain.poll_requested(cx).map(Err)
    })
    .await;
    match first {
        Ok(true) => Some(None),
        Ok(false) => None,
        Err(grace) => {
            // Accepted just before the drain (or its TLS handshake just ended): it is owed
            // its first request, if that comes within the grace.
            let until = tokio::time::Instant::now() + grace;
            let spoke = std::future::poll_fn(|cx| io.poll_first_byte(cx));
            match tokio::time::timeout_at(until, spoke).await {
                Ok(true) => Some(Some(until)),
                _ => None,
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs a hyper connection to its end; on a drain request (or with one already asked,
/// `drain_by`), shuts it down gracefully and waits at most until the grace time ends
/// (`None`: it was cut).
async fn drive<C, E, D>(
    conn: C,
    drain: &mut DrainWatch<'_, D>,
    drain_by: Option<tokio::time::Instant>,
    graceful: impl FnOnce(Pin<&mut C>),
) -> Option<Result<(), BoxError>>
where
    C: std::future::Future<Output = Result<(), E>>,
    E: Into<BoxError>,
    D: std::future::Future<Output = Duration>,
{
    tokio::pin!(conn);
    let until = match drain_by {
        Some(until) => {
            // hyper closes at once, unanswered, a connection it has read nothing from: one
            // poll lets it read the first bytes (held, so they are there) before the drain.
            let first = std::future::poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx))).await;
            if let Poll::Ready(r) = first {
                return Some(r.map_err(Into::into));
            }
            until
        }
        None => {
            // The connection first, and the drain request only as a flag on its other wakes.
            let first = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                    return Poll::Ready(Ok(r));
                }
                drain.poll_requested(cx).map(Err)
            })
            .await;
            match first {
                Ok(r) => return Some(r.map_err(Into::into)),
                Err(grace) => tokio::time::Instant::now() + grace,
            }
        }
    };
    graceful(conn.as_mut());
    let r = tokio::time::timeout_at(until, conn.as_mut()).await.ok()?;
    Some(r.map_err(Into::into))
}

/// The log line of a request hyper or the 408 timer answered before any service ran.
fn log_unparsed(
    fe: &Frontend,
    peer: SocketAddr,
    shared: &ConnShared,
    status: u16,
    cause: TermCause,
) {
    if !fe.access_log {
        return;
    }
    let now = Instant::now();
    let start = shared.request_start(now);
    let age = now.saturating_duration_since(start);
    let entry = AccessLogEntry {
        client: peer,
        accept_date: SystemTime::now() - age,
        frontend: fe.name.clone(),
        tls: shared.tls.is_some(),
        backend: fe.name.clone(),
        server: LogServer::NoServer,
        tr: if status == 408 { None } else { Some(age) },
        tw: None,
        tc: None,
        tr_server: None,
        ta: Some(age),
        status,
        bytes: 0,
        termination: TerminationState {
            cause,
            phase: TermPhase::Request,
            ..TerminationState::default()
        },
        ac: u32::try_from(fe.counters.connections.load(Ordering::Relaxed)).unwrap_or(u32::MAX),
        fc: u32::try_from(fe.connections.load(Ordering::Relaxed)).unwrap_or(u32::MAX),
        bc: 0,
        sc: 0,
        retries: 0,
        redispatched: false,
        sq: 0,
        bq: 0,
        request: None,
        tls_facts: shared.tls.clone(),
    };
    tracing::info!(target: "access", "{}", crate::observe::accesslog::format_httplog(&entry));
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A head that comes whole in one read lends that read's time to its request (no second
    /// clock read); a head in pieces, and a second request of the same read, do not.
    #[tokio::test]
    async fn only_a_head_read_whole_lends_its_read_time() {
        let (mut client, server) = tokio::io::duplex(1024);
        let shared = Arc::new(ConnShared::new(
            HeaderValue::from_static("203.0.113.7"),
            None,
        ));
        let mut io = ClientIo::new(server, FrontendTimeouts::default(), None, shared.clone());
        let mut buf = [0u8; 256];

        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let guard = RequestGuard::new(&shared);
        let at = shared
            .head_read_at()
            .expect("a whole head lends its read time");
        assert_eq!(at, shared.request_start(Instant::now()));
        // Taken: a request pipelined behind it in the same read reads the clock.
        assert_eq!(shared.head_read_at(), None);
        drop(guard);

        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        client.write_all(b"Host: x\r\n\r\n").await.unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let _guard = RequestGuard::new(&shared);
        assert_eq!(shared.head_read_at(), None, "a head in two reads");
    }
}
