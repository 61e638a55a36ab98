//! Sending a request to a server (lb.md §6): one pooled hyper client per server, retries on
//! connect failures, redispatch on the last attempt, `connect`/`server` timeouts.
//!
//! A request body is replayable only while no byte of it has been handed to a connection:
//! [`RequestBody`] takes the client's body out of a shared slot on its first poll, so after a
//! failed connect the slot still holds it and the next attempt can send it; once polled, it
//! is gone and the request is never replayed.

use std::error::Error as StdError;
use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::{capture_connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Sleep;

use crate::backend::{Acquire, Backend, Slot};
use crate::config::BackendTimeouts;
use crate::connector::{was_reused, StampingConnector};

type BoxError = Box<dyn StdError + Send + Sync>;
type HttpClient = Client<StampingConnector, RequestBody>;

/// The pooled client of one server. Replaced (dropping its idle connections) when the server
/// goes DOWN.
pub(crate) struct Upstream {
    client: RwLock<HttpClient>,
    timeouts: BackendTimeouts,
}

impl Upstream {
    pub(crate) fn new(timeouts: &BackendTimeouts) -> Self {
        Upstream {
            client: RwLock::new(build_client(timeouts)),
            timeouts: *timeouts,
        }
    }

    fn client(&self) -> HttpClient {
        match self.client.read() {
            Ok(c) => c.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    pub(crate) fn reset(&self) {
        let fresh = build_client(&self.timeouts);
        match self.client.write() {
            Ok(mut c) => *c = fresh,
            Err(e) => *e.into_inner() = fresh,
        }
    }
}

fn build_client(t: &BackendTimeouts) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(t.connect));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(t.server_idle)
        .pool_timer(TokioTimer::new())
        .retry_canceled_requests(true)
        .set_host(false)
        .build(StampingConnector(connector))
}

/// The client's request body on its way to a server, with the `client` inactivity timeout.
pub(crate) struct RequestBody {
    source: Option<Arc<BodySource>>,
    body: Option<Incoming>,
    idle: Option<Pin<Box<Sleep>>>,
    progressed: bool,
}

pub(crate) struct BodySource {
    slot: Mutex<Option<Incoming>>,
    hint: SizeHint,
    client_timeout: Duration,
    /// Set when reading from the client failed or timed out, to tell client aborts from
    /// server failures.
    failed: Mutex<Option<ClientFailure>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientFailure {
    Aborted,
    TimedOut,
}

impl BodySource {
    /// `None` for a request without a body (always replayable).
    pub(crate) fn new(body: Incoming, client_timeout: Duration) -> Option<Arc<Self>> {
        if body.is_end_stream() {
            return None;
        }
        Some(Arc::new(BodySource {
            hint: body.size_hint(),
            slot: Mutex::new(Some(body)),
            client_timeout,
            failed: Mutex::new(None),
        }))
    }

    fn available(&self) -> bool {
        self.slot.lock().map(|s| s.is_some()).unwrap_or(false)
    }

    pub(crate) fn failure(&self) -> Option<ClientFailure> {
        self.failed.lock().ok().and_then(|f| *f)
    }

    fn fail(&self, f: ClientFailure) {
        if let Ok(mut slot) = self.failed.lock() {
            *slot = Some(f);
        }
    }
}

impl RequestBody {
    fn new(source: &Option<Arc<BodySource>>) -> Self {
        RequestBody {
            source: source.clone(),
            body: None,
            idle: None,
            progressed: true,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(source) = &this.source else {
            return Poll::Ready(None);
        };
        if this.body.is_none() {
            match source.slot.lock().ok().and_then(|mut s| s.take()) {
                Some(b) => this.body = Some(b),
                None => return Poll::Ready(Some(Err("request body already consumed".into()))),
            }
        }
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.progressed = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                source.fail(ClientFailure::Aborted);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + source.client_timeout;
                if this.progressed {
                    this.progressed = false;
                    match &mut this.idle {
                        Some(sleep) => sleep.as_mut().reset(deadline),
                        None => this.idle = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                if let Some(sleep) = &mut this.idle {
                    if sleep.as_mut().poll(cx).is_ready() {
                        source.fail(ClientFailure::TimedOut);
                        return Poll::Ready(Some(Err(
                            "client timeout reading the request body".into()
                        )));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match (&self.source, &self.body) {
            (None, _) => true,
            (Some(_), Some(b)) => b.is_end_stream(),
            (Some(_), None) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.source, &self.body) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Some(b)) => b.size_hint(),
            (Some(s), None) => s.hint,
        }
    }
}

/// Why no response came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ForwardError {
    /// Every attempt failed to connect (503 `SC--`, `sC--` when the last was a timeout).
    ConnectFailed { timeout: bool },
    /// No usable server for a redispatch/retry (503 `SC--`).
    NoServer,
    /// Waited too long in a queue during a redispatch (503 `sQ--`).
    QueueTimeout,
    /// No response headers within `server` (504 `sH--`).
    ServerTimeout,
    /// The server closed, reset or sent garbage before a complete header (502 `SH--`).
    BadResponse,
    /// The client's body failed or stalled while being sent (`CH--` / `cH--`).
    Client(ClientFailure),
}

/// Timings and counters of one forwarded exchange, for the access log.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Attempts {
    /// Connection attempts beyond the first.
    pub retries: u32,
    pub redispatched: bool,
    /// Time to get a connection (all attempts).
    pub connect: Option<Duration>,
    /// Time from connection to response headers.
    pub response: Option<Duration>,
}

/// The request as it is re-sent on each attempt.
pub(crate) struct Outgoing {
    pub parts: Parts,
    pub path_and_query: PathAndQuery,
    pub body: Option<Arc<BodySource>>,
    pub client_ip: IpAddr,
}

fn build_request(out: &Outgoing, server: &crate::backend::Server) -> Option<Request<RequestBody>> {
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(server.authority.clone())
        .path_and_query(out.path_and_query.clone())
        .build()
        .ok()?;
    let mut req = Request::new(RequestBody::new(&out.body));
    *req.method_mut() = out.parts.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = match out.parts.version {
        Version::HTTP_10 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    *req.headers_mut() = out.parts.headers.clone();
    Some(req)
}

fn is_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

fn idempotent(m: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(m)
}

/// The server closed or reset the connection without a response (hyper cannot tell whether
/// part of a response head had arrived; a partial head is rare enough to accept).
fn is_empty_response(e: &(dyn StdError + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            );
        }
        cur = err.source();
    }
    false
}

/// Sends `out` through `slot`'s server, retrying connect failures (lb.md §6). Returns the
/// response with the slot it occupies (kept until the response body ends).
pub(crate) async fn forward(
    backend: &Arc<Backend>,
    mut slot: Slot,
    out: &Outgoing,
    stats: &mut Attempts,
) -> Result<(Response<Incoming>, Slot), ForwardError> {
    let cfg = &backend.cfg;
    let attempts = cfg.retries.saturating_add(1);
    let started = Instant::now();
    let mut last_timeout = false;
    // One transparent re-send after a reused pooled connection died without answering
    // (see connector.rs); it is not a retry and has no back-off.
    let mut replayed = false;
    let mut replay_now = false;
    let mut attempt = 0;
    while attempt < attempts {
        let replaying = std::mem::take(&mut replay_now);
        if attempt > 0 && !replaying {
            stats.retries = attempt;
            if out.body.as_ref().is_some_and(|b| !b.available()) {
                // The body started flowing to a server: never replay it.
                return Err(ForwardError::BadResponse);
            }
            let failed = slot.server_index();
            let mut moved = false;
            if cfg.redispatch && attempt + 1 == attempts {
                drop(slot);
                slot = match backend.acquire(None, Some(failed), out.client_ip) {
                    Acquire::Slot(s) => s,
                    Acquire::Queued(t) => t
                        .wait(cfg.timeouts.queue)
                        .await
                        .ok_or(ForwardError::QueueTimeout)?,
                    Acquire::NoServer => return Err(ForwardError::NoServer),
                };
                moved = slot.server_index() != failed;
                stats.redispatched |= moved;
            }
            if !moved {
                tokio::time::sleep(cfg.timeouts.connect.min(Duration::from_secs(1))).await;
            }
        }
        let server = slot.server();
        let Some(mut req) = build_request(out, server) else {
            return Err(ForwardError::BadResponse);
        };
        let mut capture = capture_connection(&mut req);
        let attempt_start = Instant::now();
        let client = server.upstream.client();
        let mut response = client.request(req);
        let early = tokio::select! {
            biased;
            r = &mut response => Some(r),
            _ = capture.wait_for_connection_metadata() => None,
        };
        let result = match early {
            Some(r) => Ok(r),
            None => {
                stats.connect = Some(started.elapsed());
                let connected = Instant::now();
                let r = tokio::time::timeout(cfg.timeouts.server, &mut response).await;
                stats.response = Some(connected.elapsed());
                r
            }
        };
        match result {
            Ok(Ok(resp)) => {
                if stats.connect.is_none() {
                    stats.connect = Some(attempt_start.duration_since(started));
                }
                return Ok((resp, slot));
            }
            Ok(Err(e)) => {
                if let Some(f) = out.body.as_ref().and_then(|b| b.failure()) {
                    return Err(ForwardError::Client(f));
                }
                if e.is_connect() {
                    last_timeout = is_timeout(&e);
                    tracing::debug!(backend = %backend.name, server = %server.cfg.name, error = %e, "connect failed");
                    attempt += 1;
                    continue;
                }
                let empty =
                    out.body.is_none() && idempotent(&out.parts.method) && is_empty_response(&e);
                if empty
                    && !replayed
                    && was_reused(capture.connection_metadata().as_ref(), attempt_start)
                {
                    replayed = true;
                    replay_now = true;
                    // The server closed this idle connection; the pool's other idle ones are
                    // likely gone too (a restart, a crash): start afresh.
                    server.upstream.reset();
                    tracing::debug!(backend = %backend.name, server = %server.cfg.name, error = ?e, "reused connection closed without a response, sending again");
                    continue;
                }
                if cfg.retry_on_empty_response && empty {
                    last_timeout = false;
                    tracing::debug!(backend = %backend.name, server = %server.cfg.name, error = ?e, "empty response, retrying");
                    attempt += 1;
                    continue;
                }
                tracing::debug!(backend = %backend.name, server = %server.cfg.name, error = ?e, "bad response");
                return Err(ForwardError::BadResponse);
            }
            Err(_) => return Err(ForwardError::ServerTimeout),
        }
    }
    stats.connect = Some(started.elapsed());
    Err(ForwardError::ConnectFailed {
        timeout: last_timeout,
    })
}
