//! One request/response exchange: the access-log record that follows it, and the response
//! body that ends it. The log line is written when the body ends or is dropped (lb.md §15:
//! "one access-log line when the exchange ends"); the server slot is freed at that moment too.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use crate::http::client_conn::RequestGuard;
use crate::http::frontend::Frontend;
use crate::observe::accesslog::{format_httplog, AccessLogEntry, LogServer, TermCause, TermPhase};
use crate::observe::meters::Meters;
use crate::upstream::backend::{Backend, Slot};
use crate::upstream::body::BodySource;
use crate::upstream::connector::HyperConn;
use crate::upstream::forward::{Attempts, ServerBody};
use crate::upstream::h1::RawBody;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The access-log record of one exchange, filled in as it progresses.
pub(crate) struct Exchange {
    pub(crate) entry: AccessLogEntry,
    /// First byte of the request.
    pub(crate) start: Instant,
    /// When the service got the request (the clock read that gives `tr`).
    pub(crate) opened: Instant,
    pub(crate) frontend: Arc<Frontend>,
    pub(crate) backend: Option<Arc<Backend>>,
    pub(crate) server: Option<usize>,
    /// Where the exchange stands, for the log of a client that leaves before the answer.
    pub(crate) phase: TermPhase,
    pub(crate) logged: bool,
    /// Counted but never logged (`monitor_uri` answers, as in HAProxy).
    pub(crate) quiet: bool,
    /// Request head bytes as received (HTTP/1 text size), for the `bin` counters.
    pub(crate) head_in: u64,
    /// The request body, when there is one: its bytes read count in `bin`.
    pub(crate) body_in: Option<Arc<BodySource>>,
    /// The forwarding's attempts and timings (noted in `entry` when it ends); here rather
    /// than in the request's future, which every request in flight holds.
    pub(crate) attempts: Attempts,
}

impl Exchange {
    pub(crate) fn set_server(&mut self, backend: &Arc<Backend>, server: usize) {
        if let Some(s) = backend.servers.get(server) {
            self.entry.server = LogServer::Named(s.name.clone());
        }
        self.server = Some(server);
    }

    /// Writes the log line (when access logging is on).
    pub(crate) fn finish(self: Box<Self>, bytes: u64) {
        self.finish_at(bytes, Instant::now());
    }

    /// [`Exchange::finish`] with the time it ended, read by the caller.
    pub(crate) fn finish_at(mut self: Box<Self>, bytes: u64, now: Instant) {
        self.log(bytes, now);
    }

    fn log(&mut self, bytes: u64, now: Instant) {
        if self.logged {
            return;
        }
        self.logged = true;
        let ta = now.saturating_duration_since(self.start);
        self.count(bytes, ta);
        // Only the log line shows the entry.
        if !self.frontend.access_log || self.quiet {
            return;
        }
        self.entry.ta = Some(ta);
        self.entry.bytes = bytes;
        let e = &mut self.entry;
        e.ac = clamp(self.frontend.counters.connections.load(Ordering::Relaxed));
        e.fc = clamp(self.frontend.connections.load(Ordering::Relaxed));
        if let Some(b) = &self.backend {
            let inflight: usize = b.servers.iter().map(|s| s.inflight()).sum();
            e.bc = clamp(inflight + b.queued());
            if let Some(s) = self.server.and_then(|i| b.servers.get(i)) {
                e.sc = clamp(s.inflight());
            }
        }
        tracing::info!(target: "access", "{}", format_httplog(e));
    }
}

impl Exchange {
    /// The stats counters of the frontend, backend and server this exchange went through.
    fn count(&self, bytes: u64, ta: Duration) {
        let e = &self.entry;
        let (cause, phase) = (e.termination.cause, e.termination.phase);
        let server_side = matches!(cause, TermCause::ServerAbort | TermCause::ServerTimeout);
        let client_side = matches!(cause, TermCause::ClientAbort | TermCause::ClientTimeout);
        let bytes_in = self.head_in + self.body_in.as_ref().map_or(0, |b| b.received());
        let fe = &self.frontend.meters;
        fe.response(e.status, bytes);
        Meters::add(&fe.bytes_in, bytes_in);
        if client_side && phase == TermPhase::Request {
            Meters::add(&fe.errors_request, 1);
        }
        let Some(b) = &self.backend else {
            return;
        };
        let server = self
            .server
            .and_then(|i| b.servers.get(i))
            .map(|s| &*s.meters);
        for m in std::iter::once(&*b.meters).chain(server) {
            m.response(e.status, bytes);
            Meters::add(&m.bytes_in, bytes_in);
            if let Some(tr) = e.tr_server {
                m.response_time.add(tr);
            }
            m.total_time.add(ta);
            if e.retries > 0 {
                Meters::add(&m.retries, u64::from(e.retries));
            }
            if e.redispatched {
                Meters::add(&m.redispatches, 1);
            }
            if server_side {
                match phase {
                    TermPhase::Connect => Meters::add(&m.errors_connect, 1),
                    TermPhase::Headers | TermPhase::Data | TermPhase::LastData => {
                        Meters::add(&m.errors_response, 1)
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Drop for Exchange {
    /// The request future was dropped before an answer: the client went away (`CQ--`,
    /// `CC--`, `CH--`; status 0 as no status was sent).
    fn drop(&mut self) {
        if !self.logged {
            self.entry.termination.cause = TermCause::ClientAbort;
            self.entry.termination.phase = self.phase;
            self.log(0, Instant::now());
        }
    }
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Size of a request head as HTTP/1 text (request line, fields, blank line), for `bin`
/// (an HTTP/2 head counts as if it were sent as HTTP/1).
pub(crate) fn request_head_size<B>(req: &http::Request<B>) -> u64 {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    // "METHOD SP target SP HTTP/1.1 CRLF"
    let line = req.method().as_str().len() + target + 12;
    head_size(line, req.headers())
}

/// Approximate size of a response head on the wire, for the log's byte count.
pub(crate) fn head_size(status_line: usize, headers: &HeaderMap) -> u64 {
    let h: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    (status_line + h + 2) as u64
}

enum Inner {
    Local(Full<Bytes>),
    Upstream(Incoming),
    Raw(RawBody),
}

/// The body hyper sends to the client: a local page, or the server's body with the `server`
/// inactivity timeout, the server slot and the exchange's log record riding along.
pub struct ResponseBody {
    inner: Inner,
    server_timeout: Duration,
    idle: Option<Pin<Box<Sleep>>>,
    progressed: bool,
    exchange: Option<Box<Exchange>>,
    slot: Option<Slot>,
    /// The server connection of a hyper exchange and whether it may serve again; it goes
    /// back to the pool when the body ends cleanly.
    conn: Option<(HyperConn, bool)>,
    guard: Option<RequestGuard>,
    bytes: u64,
    /// `on_marked_down: shutdown_sessions`: resolves when a check marks the server DOWN,
    /// which cuts the response (and the client connection with it).
    cut: Option<MarkedDown>,
}

/// Waits for the next DOWN of a server (its `marked_down` counter changing).
type MarkedDown = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl ResponseBody {
    pub(crate) fn local(
        body: Full<Bytes>,
        head: u64,
        exchange: Box<Exchange>,
        guard: RequestGuard,
    ) -> Self {
        ResponseBody {
            inner: Inner::Local(body),
            server_timeout: Duration::ZERO,
            idle: None,
            progressed: true,
            exchange: Some(exchange),
            slot: None,
            conn: None,
            guard: Some(guard),
            bytes: head,
            cut: None,
        }
    }

    /// The empty body of a `101` whose exchange continues as a tunnel (upgrade.rs), which
    /// holds the exchange, the slot and the guard instead.
    pub(crate) fn empty() -> Self {
        ResponseBody {
            inner: Inner::Local(Full::new(Bytes::new())),
            server_timeout: Duration::ZERO,
            idle: None,
            progressed: true,
            exchange: None,
            slot: None,
            conn: None,
            guard: None,
            bytes: 0,
            cut: None,
        }
    }

    pub(crate) fn upstream(
        body: ServerBody,
        server_timeout: Duration,
        head: u64,
        slot: Slot,
        exchange: Box<Exchange>,
        guard: RequestGuard,
    ) -> Self {
        let (inner, conn) = match body {
            ServerBody::Hyper(b, conn, keep_alive) => {
                (Inner::Upstream(b), Some((conn, keep_alive)))
            }
            ServerBody::Raw(b) => (Inner::Raw(b), None),
        };
        let cut = slot.backend().cfg.shutdown_sessions_on_down.then(|| {
            let mut rx = slot.server().marked_down();
            rx.borrow_and_update();
            Box::pin(async move {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }) as MarkedDown
        });
        ResponseBody {
            inner,
            server_timeout,
            idle: None,
            progressed: true,
            exchange: Some(exchange),
            slot: Some(slot),
            conn,
            guard: Some(guard),
            bytes: head,
            cut,
        }
    }

    fn end(&mut self, cause: Option<(TermCause, TermPhase)>) {
        // One clock read for the log's total time and the pooled connection's idle start.
        let now = Instant::now();
        if let (None, Some(slot)) = (cause, &self.slot) {
            if let Some((conn, true)) = self.conn.take() {
                conn.release();
            } else if let Inner::Raw(body) = &mut self.inner {
                if let Some(conn) = body.reusable() {
                    slot.server().upstream.put(conn, now);
                }
            }
        }
        self.conn = None;
        self.slot = None;
        if let Some(mut ex) = self.exchange.take() {
            if let Some((c, p)) = cause {
                ex.entry.termination.cause = c;
                ex.entry.termination.phase = p;
            }
            ex.finish_at(self.bytes, now);
        }
        // Last: the connection counts as idle again only once the exchange is logged.
        self.guard = None;
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.inner {
            Inner::Local(full) => match Pin::new(full).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            inner => {
                if let Some(cut) = &mut this.cut {
                    if cut.as_mut().poll(cx).is_ready() {
                        this.cut = None;
                        this.end(Some((TermCause::Proxy, TermPhase::Data)));
                        return Poll::Ready(Some(Err(
                            "server marked DOWN (shutdown_sessions)".into()
                        )));
                    }
                }
                let polled = match inner {
                    Inner::Upstream(body) => Pin::new(body)
                        .poll_frame(cx)
                        .map(|f| f.map(|r| r.map_err(BoxError::from))),
                    Inner::Raw(body) => Pin::new(body).poll_frame(cx),
                    Inner::Local(_) => Poll::Ready(None),
                };
                match polled {
                    Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                    Poll::Ready(Some(Err(e))) => {
                        this.end(Some((TermCause::ServerAbort, TermPhase::Data)));
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => {
                        if this.progressed {
                            this.progressed = false;
                            let deadline = tokio::time::Instant::now() + this.server_timeout;
                            match &mut this.idle {
                                Some(s) => s.as_mut().reset(deadline),
                                None => {
                                    this.idle = Some(Box::pin(tokio::time::sleep_until(deadline)))
                                }
                            }
                        }
                        if let Some(s) = &mut this.idle {
                            if s.as_mut().poll(cx).is_ready() {
                                this.end(Some((TermCause::ServerTimeout, TermPhase::Data)));
                                return Poll::Ready(Some(Err(
                                    "server timeout during the response body".into(),
                                )));
                            }
                        }
                        Poll::Pending
                    }
                }
            }
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.progressed = true;
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.end(None);
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Local(f) => f.is_end_stream(),
            Inner::Upstream(b) => b.is_end_stream(),
            Inner::Raw(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Local(f) => f.size_hint(),
            Inner::Upstream(b) => b.size_hint(),
            Inner::Raw(b) => b.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.exchange.is_some() {
            // Dropped before its end: hyper gave up on the client (abort), unless there was
            // nothing left to send (HEAD, 204, 304).
            let head = self
                .exchange
                .as_ref()
                .and_then(|e| e.entry.request.as_ref())
                .is_some_and(|r| r.method == http::Method::HEAD);
            let cause = if head || self.is_end_stream() {
                None
            } else {
                Some((TermCause::ClientAbort, TermPhase::Data))
            };
            self.end(cause);
        }
    }
}
