//! Sending a request to a server (lb.md §6): a connection from the server's pool
//! (connector.rs), retries on connect failures, redispatch (on the last attempt, or at once
//! when the request is not pinned and another server is up), `connect`/`server` timeouts.
//! The request body and when it can be replayed: body.rs.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Incoming;

use crate::upstream::backend::{Acquire, Backend, Slot};
use crate::upstream::body::{BodySource, ClientFailure, RequestBody};
use crate::upstream::connector::{ConnectError, HyperConn};
use crate::upstream::fields::ForwardedFields;
use crate::upstream::h1::{self, ClientAddrs, RawBody, SendError};
use crate::upstream::response_rules;

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
    /// The server closed or reset the connection before a complete header (502 `SH--`).
    BadResponse,
    /// A response that cannot be framed or forwarded without doubt (502 `PH--`).
    InvalidResponse,
    /// The client's body failed or stalled while being sent (`CH--` / `cH--`).
    Client(ClientFailure),
}

/// Timings and counters of one forwarded exchange, for the access log.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Attempts {
    /// The server was chosen by the client's persistence cookie: retries stay on it until
    /// the last one.
    pub pinned: bool,
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
    /// The client's source and destination address (the PROXY header's with `accept_proxy`),
    /// for `send_proxy`.
    pub client: ClientAddrs,
    /// `forwarded_for` fields still to be written after `parts.headers` (direct exchanges).
    pub forwarded: Option<ForwardedFields>,
    /// An HTTP/2 request without `Host` (direct exchanges): `Host` is written from the URI's
    /// authority when the head is encoded.
    pub host_from_authority: bool,
}

fn build_request(out: &Outgoing) -> Request<RequestBody> {
    debug_assert!(
        out.forwarded.is_none() && !out.host_from_authority,
        "only direct exchanges defer fields"
    );
    // Origin form (`/path?query`), as a client talking to the server directly sends it
    // (CONNECT is always a direct exchange).
    let uri = Uri::from(out.path_and_query.clone());
    let mut req = Request::new(RequestBody::new(&out.body));
    *req.method_mut() = out.parts.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = match out.parts.version {
        Version::HTTP_10 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    *req.headers_mut() = out.parts.headers.clone();
    // hyper's client sends a GET, HEAD or OPTIONS body of unknown length as no body at all
    // (and the server would read it as the next request): frame it explicitly.
    if out.body.is_some() && !req.headers().contains_key(http::header::CONTENT_LENGTH) {
        req.headers_mut().insert(
            http::header::TRANSFER_ENCODING,
            http::HeaderValue::from_static("chunked"),
        );
    }
    req
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

/// A server's response body and what it came on.
pub(crate) enum ServerBody {
    /// Through hyper's client (requests with a body), with whether the response allows
    /// another request on the connection.
    Hyper(Incoming, HyperConn, bool),
    /// A direct exchange (h1.rs).
    Raw(RawBody),
}

/// How one attempt ended.
// Returned once per attempt and matched at once: boxing the response would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Response(Response<ServerBody>),
    ConnectFailed(ConnectError),
    /// The server closed or reset the connection without a response.
    Empty(String),
    /// The connection failed within the response head (502 `SH--`).
    Bad(String),
    /// An invalid response head (502 `PH--`).
    Invalid(String),
    Timeout,
}

/// Requests sent directly (h1.rs): no body, HTTP/1.1 (or HTTP/2 from the client, sent as
/// 1.1); every CONNECT (it has no body: request.rs refuses one), whose server connection
/// becomes the tunnel's.
fn direct(out: &Outgoing) -> bool {
    out.body.is_none()
        && (out.parts.version != Version::HTTP_10 || out.parts.method == Method::CONNECT)
}

/// One attempt through a direct exchange. `started`: when the first attempt started,
/// `attempt_start`: when this one did.
// Not an `async fn`: one keeps its arguments and also copies them into locals, room that
// every request's future would hold twice (rustc -Zprint-type-sizes).
#[allow(clippy::manual_async_fn)]
fn attempt_direct<'a>(
    server: &'a crate::upstream::backend::Server,
    out: &'a Outgoing,
    server_timeout: Duration,
    (started, attempt_start): (Instant, Instant),
    stats: &'a mut Attempts,
    reused: &'a mut bool,
) -> impl Future<Output = Outcome> + Send + 'a {
    async move {
        let conn = match server.upstream.checkout(out.client, attempt_start).await {
            Ok(c) => c,
            Err(e) => return Outcome::ConnectFailed(e),
        };
        *reused = conn.reused;
        // A pooled connection is taken without waiting: no second clock read for it.
        let connected = if conn.reused {
            attempt_start
        } else {
            Instant::now()
        };
        stats.connect = Some(connected.saturating_duration_since(started));
        // CONNECT names the client's authority (`host:port`), as a forward proxy behind
        // expects; request.rs made sure there is one.
        let target = match out.parts.uri.authority() {
            Some(a) if out.parts.method == Method::CONNECT => a.as_str(),
            _ => out.path_and_query.as_str(),
        };
        let host = match out.parts.uri.authority() {
            Some(a) if out.host_from_authority => Some(a.as_str()),
            _ => None,
        };
        let r = h1::send(
            conn,
            &out.parts.method,
            target,
            (host, &out.parts.headers),
            out.forwarded.as_ref(),
            tokio::time::Instant::from_std(connected) + server_timeout,
        )
        .await;
        stats.response = Some(connected.elapsed());
        match r {
            Ok(resp) => Outcome::Response(resp.map(ServerBody::Raw)),
            Err(SendError::Timeout) => Outcome::Timeout,
            Err(e @ SendError::Empty(_)) => Outcome::Empty(e.to_string()),
            Err(e @ SendError::Closed(_)) => Outcome::Bad(e.to_string()),
            Err(e @ SendError::Bad(_)) => Outcome::Invalid(e.to_string()),
        }
    }
}

/// One attempt through hyper's client.
async fn attempt_hyper(
    server: &crate::upstream::backend::Server,
    out: &Outgoing,
    server_timeout: Duration,
    started: Instant,
    stats: &mut Attempts,
    reused: &mut bool,
) -> Outcome {
    let mut req = build_request(out);
    // A request the connection never took (it was closing as we picked it) goes out on
    // another one (hyper-util's `retry_canceled_requests`); not a retry.
    loop {
        let conn = match server.upstream.checkout(out.client, Instant::now()).await {
            Ok(c) => c,
            Err(e) => return Outcome::ConnectFailed(e),
        };
        *reused = conn.reused;
        stats.connect = Some(started.elapsed());
        let mut conn = match server.upstream.lend(conn).await {
            Ok(c) => c,
            Err(e) => return Outcome::ConnectFailed(e),
        };
        let connected = Instant::now();
        let sent = conn.tx.try_send_request(req);
        let r = tokio::time::timeout(server_timeout, sent).await;
        stats.response = Some(connected.elapsed());
        return match r {
            Ok(Ok(mut resp)) => {
                let upgrade_asked = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS
                    && out.parts.headers.contains_key(http::header::UPGRADE);
                let (status, headers) = (resp.status(), resp.headers_mut());
                if let Err(why) =
                    response_rules::check_hyper_response(status, headers, upgrade_asked)
                {
                    return Outcome::Invalid(why.to_string());
                }
                let keep_alive = keep_alive(&resp);
                Outcome::Response(resp.map(|b| ServerBody::Hyper(b, conn, keep_alive)))
            }
            Ok(Err(mut e)) => {
                if conn.reused {
                    if let Some(r) = e.take_message() {
                        req = r;
                        continue;
                    }
                }
                let e = e.into_error();
                if is_empty_response(&e) {
                    Outcome::Empty(format!("{e:?}"))
                } else if e.is_parse() {
                    Outcome::Invalid(format!("{e:?}"))
                } else {
                    Outcome::Bad(format!("{e:?}"))
                }
            }
            Err(_) => Outcome::Timeout,
        };
    }
}

/// Whether a response lets its connection serve another request (as hyper decides).
fn keep_alive<B>(resp: &Response<B>) -> bool {
    if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        return false;
    }
    let mut keep = resp.version() == Version::HTTP_11;
    for v in resp.headers().get_all(http::header::CONNECTION) {
        for t in v.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if t.eq_ignore_ascii_case(b"close") {
                return false;
            }
            if t.eq_ignore_ascii_case(b"keep-alive") {
                keep = true;
            }
        }
    }
    keep
}

/// Sends `out` through `slot`'s server, retrying connect failures (lb.md §6). Returns the
/// response with the slot it occupies (kept until the response body ends). `started`: when
/// forwarding began (the connect time counts from it).
// Not an `async fn`: one keeps its arguments and also copies them into locals, room that
// every request's future would hold twice (rustc -Zprint-type-sizes).
#[allow(clippy::manual_async_fn)]
pub(crate) fn forward<'a>(
    backend: &'a Arc<Backend>,
    mut slot: Slot,
    out: &'a Outgoing,
    started: Instant,
    stats: &'a mut Attempts,
) -> impl Future<Output = Result<(Response<ServerBody>, Slot), ForwardError>> + Send + 'a {
    async move {
        let cfg = &backend.cfg;
        let attempts = cfg.retries.saturating_add(1);
        let mut last_timeout = false;
        // One transparent re-send after a reused pooled connection died without answering
        // (see connector.rs); it is not a retry and has no back-off.
        let mut replayed = false;
        let mut replay_now = false;
        let mut attempt = 0;
        let direct = direct(out);
        while attempt < attempts {
            let replaying = std::mem::take(&mut replay_now);
            if attempt > 0 && !replaying {
                stats.retries = attempt;
                slot = prepare_retry(backend, slot, out, attempt + 1 == attempts, stats).await?;
            }
            let server = slot.server();
            let mut reused = false;
            let outcome = if direct {
                let attempt_start = if attempt == 0 && !replaying {
                    started
                } else {
                    Instant::now()
                };
                attempt_direct(
                    server,
                    out,
                    cfg.timeouts.server,
                    (started, attempt_start),
                    stats,
                    &mut reused,
                )
                .await
            } else {
                // Boxed: requests with a body (and HTTP/1.0 ones) take this path, and its state
                // (896 bytes) would otherwise be part of every request's future.
                Box::pin(attempt_hyper(
                    server,
                    out,
                    cfg.timeouts.server,
                    started,
                    stats,
                    &mut reused,
                ))
                .await
            };
            let why = match outcome {
                Outcome::Response(resp) => return Ok((resp, slot)),
                Outcome::Timeout => return Err(ForwardError::ServerTimeout),
                Outcome::ConnectFailed(e) => {
                    client_failure(out)?;
                    last_timeout = matches!(e, ConnectError::Timeout);
                    if let ConnectError::Tls(_) = e {
                        // A configuration problem an operator must see (an expired or foreign
                        // certificate), unlike a refused connect during a restart.
                        tracing::warn!(backend = %backend.name, server = %server.cfg.name, error = %e, "connect failed");
                    } else {
                        tracing::debug!(backend = %backend.name, server = %server.cfg.name, error = %e, "connect failed");
                    }
                    attempt += 1;
                    continue;
                }
                Outcome::Empty(why) => why,
                Outcome::Invalid(why) => {
                    if let Some(f) = out.body.as_ref().and_then(|b| b.failure()) {
                        return Err(ForwardError::Client(f));
                    }
                    tracing::info!(backend = %backend.name, server = %server.cfg.name, reason = %why, "invalid response");
                    return Err(ForwardError::InvalidResponse);
                }
                Outcome::Bad(why) => {
                    client_failure(out)?;
                    tracing::debug!(backend = %backend.name, server = %server.cfg.name, error = %why, "bad response");
                    return Err(ForwardError::BadResponse);
                }
            };
            client_failure(out)?;
            match after_empty(backend, server, out, reused, &mut replayed, &why) {
                AfterEmpty::Replay => replay_now = true,
                AfterEmpty::Retry => {
                    last_timeout = false;
                    attempt += 1;
                }
                AfterEmpty::Fail => return Err(ForwardError::BadResponse),
            }
        }
        stats.connect = Some(started.elapsed());
        Err(ForwardError::ConnectFailed {
            timeout: last_timeout,
        })
    }
}

/// A failure reading the client's body explains a failed attempt better than the server.
fn client_failure(out: &Outgoing) -> Result<(), ForwardError> {
    match out.body.as_ref().and_then(|b| b.failure()) {
        Some(f) => Err(ForwardError::Client(f)),
        None => Ok(()),
    }
}

/// Before a retry: gives up when the body already went to a server, moves the last attempt
/// to another server when `redispatch` allows it (Backend::redispatch_now), else waits a
/// back-off (at most 1 s).
async fn prepare_retry(
    backend: &Arc<Backend>,
    mut slot: Slot,
    out: &Outgoing,
    last: bool,
    stats: &mut Attempts,
) -> Result<Slot, ForwardError> {
    let cfg = &backend.cfg;
    if out.body.as_ref().is_some_and(|b| !b.available()) {
        // The body started flowing to a server: never replay it.
        return Err(ForwardError::BadResponse);
    }
    let failed = slot.server_index();
    let mut moved = false;
    if backend.redispatch_now(failed, stats.pinned, last) {
        drop(slot);
        slot = match backend.acquire(None, Some(failed), out.client.0.ip()) {
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
    Ok(slot)
}

/// What follows a connection that closed without a response.
enum AfterEmpty {
    /// Send again at once on a fresh connection (not a retry).
    Replay,
    /// Count a retry (`retry_on_empty_response`).
    Retry,
    Fail,
}

fn after_empty(
    backend: &Backend,
    server: &crate::upstream::backend::Server,
    out: &Outgoing,
    reused: bool,
    replayed: &mut bool,
    why: &str,
) -> AfterEmpty {
    let empty = out.body.is_none() && idempotent(&out.parts.method);
    if empty && !*replayed && reused {
        *replayed = true;
        // The server closed this idle connection; the pool's other idle ones are likely
        // gone too (a restart, a crash): start afresh.
        server.upstream.reset();
        tracing::debug!(backend = %backend.name, server = %server.cfg.name, error = %why, "reused connection closed without a response, sending again");
        return AfterEmpty::Replay;
    }
    if backend.cfg.retry_on_empty_response && empty {
        tracing::debug!(backend = %backend.name, server = %server.cfg.name, error = %why, "empty response, retrying");
        return AfterEmpty::Retry;
    }
    tracing::debug!(backend = %backend.name, server = %server.cfg.name, error = %why, "bad response");
    AfterEmpty::Fail
}
