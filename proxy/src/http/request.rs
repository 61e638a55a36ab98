//! The life of one HTTP request through a frontend (lb.md §1): route → backend →
//! persistence or algorithm → queue → forward → response ops → log.
//!
//! `prepare` (the steps before anything waits) and `forwarding` (the queue, the server, the
//! response operations) read as the list of those steps. The steps they call once per
//! request are `#[inline(always)]`: as separate calls they cost ~1.5% more instructions per
//! request (callgrind), inlined they cost nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::Either;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;

use crate::config::{AccessRule, RuleAction};
use crate::http::client_conn::{CloseSilently, ConnShared, RequestGuard};
use crate::http::errorpage::Reply;
use crate::http::exchange::{head_size, request_head_size, Exchange, ResponseBody};
use crate::http::frontend::Frontend;
use crate::http::headers::{self, ConnInfo, ForwardedFields, HeaderTemplate};
use crate::http::route::RouteDecision;
use crate::http::upgrade::Tunnel;
use crate::http::{cookie, request_rules, rewrite};
use crate::observe::accesslog::{
    AccessLogEntry, ClientCookie, LogServer, RequestLine, ServerCookie, TermCause, TermPhase,
    TerminationState,
};
use crate::observe::meters::Meters;
use crate::upstream::backend::{Acquire, Backend, Slot, Ticket};
use crate::upstream::body::{BodySource, ClientFailure};
use crate::upstream::forward::{self, Attempts, ForwardError, Outgoing, ServerBody};

impl Frontend {
    /// A locally generated answer (error page or redirect), logged as such.
    fn local(
        &self,
        mut ex: Box<Exchange>,
        guard: RequestGuard,
        (status, cause, phase): Refusal,
    ) -> Result<Response<ResponseBody>, CloseSilently> {
        ex.entry.termination.cause = cause;
        ex.entry.termination.phase = phase;
        match self.errors.response(status) {
            Reply::Response(resp) => {
                ex.entry.status = resp.status().as_u16();
                Ok(into_local(resp, ex, guard))
            }
            Reply::CloseSilently => {
                ex.entry.status = status.as_u16();
                ex.finish(0);
                drop(guard);
                Err(CloseSilently)
            }
        }
    }
}

impl Frontend {
    /// 400 to a request that breaks an HTTP/1 rule (request_rules.rs), logged `PR--` with a
    /// line giving the reason and counted as a request error (`ereq`, as HAProxy counts an
    /// invalid request; a `rules` deny is not an error).
    fn bad_request(
        &self,
        ex: Box<Exchange>,
        guard: RequestGuard,
        conn: &ConnInfo,
        bad: request_rules::BadRequest,
    ) -> Result<Response<ResponseBody>, CloseSilently> {
        tracing::info!(frontend = %self.name, client = %conn.src, reason = bad.reason(), "bad request");
        Meters::add(&self.meters.errors_request, 1);
        let why = (
            StatusCode::BAD_REQUEST,
            TermCause::Proxy,
            TermPhase::Request,
        );
        self.local(ex, guard, why)
    }
}

fn into_local(
    resp: Response<Full<Bytes>>,
    ex: Box<Exchange>,
    guard: RequestGuard,
) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    if ex.entry.tls {
        if let Some(v) = &ex.frontend.hsts {
            parts
                .headers
                .insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
    }
    let head = head_size(17, &parts.headers);
    Response::from_parts(parts, ResponseBody::local(body, head, ex, guard))
}

/// Why a request ends before reaching a server: the status of the local answer and how the
/// log line shows it.
type Refusal = (StatusCode, TermCause, TermPhase);

/// No route, no such backend, or no usable server: 503 `SC--`.
const NO_SERVER: Refusal = (
    StatusCode::SERVICE_UNAVAILABLE,
    TermCause::ServerAbort,
    TermPhase::Connect,
);

/// What a request's handling ends with: its answer, or `CloseSilently`.
type Answer = Result<Response<ResponseBody>, CloseSilently>;

/// Handles one request (the hyper service): route, request operations, server pick,
/// forward, response operations. The exchange logs the request when its response ends.
///
/// The steps up to the server pick run here, before the future is made ([`prepare`]): a
/// request answered locally needs no future of its own, and the request's parts, used up by
/// then, take no room in the future every request in flight holds (rustc keeps an async
/// fn's arguments and moved-from locals in its state). What waits (the queue, the server)
/// runs in [`forwarding`].
pub(crate) fn handle(
    fe: Arc<Frontend>,
    conn: ConnInfo,
    shared: Arc<ConnShared>,
    guard: RequestGuard,
    req: Request<Incoming>,
) -> impl Future<Output = Answer> + Send + 'static {
    match prepare(&fe, &conn, &shared, guard, req) {
        Prepared::Answered(answer) => Either::Left(std::future::ready(answer)),
        Prepared::Forward(go) => Either::Right(forwarding(fe, conn.tls, shared, go)),
    }
}

/// What [`prepare`] ends with. Lives only until the request's future is made, which holds
/// the `Forwarding` itself: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Prepared {
    /// A local answer (a bad request, a deny, a redirect, no server).
    Answered(Answer),
    Forward(Forwarding),
}

/// A request on its way to a server: what [`prepare`] found, for [`forwarding`].
struct Forwarding {
    ex: Box<Exchange>,
    guard: RequestGuard,
    be: Arc<Backend>,
    /// A server slot, or a place in the backend's queue.
    acquired: Picked,
    out: Outgoing,
    /// A strip route's prefix and the Host the client asked for (boxed: rare, and every
    /// request's future holds this).
    strip: Option<Box<Strip>>,
    persist: Option<usize>,
    client_cookie: ClientCookie,
    upgrade: Option<OnUpgrade>,
}

/// A server pick that did not fail: a slot now, or a place in the backend's queue.
enum Picked {
    Now(Slot),
    Queued(Ticket),
}

/// What a route that strips a prefix reverses on the response.
struct Strip {
    /// The route's prefix removed from the path (owned: the future outlives the route's
    /// borrow).
    prefix: Box<str>,
    /// The Host the client asked for.
    original_host: Option<String>,
}

/// The steps before anything waits: HTTP/1 rules, screening, redirects, route, request
/// operations, the server pick (or a place in the queue).
#[inline(always)]
fn prepare(
    fe: &Arc<Frontend>,
    conn: &ConnInfo,
    shared: &ConnShared,
    guard: RequestGuard,
    mut req: Request<Incoming>,
) -> Prepared {
    let mut ex = open_exchange(fe, conn, shared, &req);
    let host = match http1_rules(&mut req).and_then(|()| request_host(&req)) {
        Ok(host) => host,
        Err(bad) => return Prepared::Answered(fe.bad_request(ex, guard, conn, bad)),
    };
    if req.method() == Method::CONNECT {
        let has_body = !req.body().is_end_stream();
        if let Err(bad) = request_rules::check_connect(req.uri(), has_body) {
            return Prepared::Answered(fe.bad_request(ex, guard, conn, bad));
        }
    }
    if fe.screens {
        if let Some(answer) = screen(fe, conn, &req, &mut ex) {
            return Prepared::Answered(fe.local(ex, guard, answer));
        }
    }
    if let Some(r) = fe.cfg.redirect_https.as_ref().filter(|_| !conn.tls) {
        return Prepared::Answered(Ok(redirect(
            &https_location(&req, r.port),
            r.code,
            ex,
            guard,
        )));
    }
    // X-Forwarded-Host copies Host, which the header operations before it never remove; an
    // HTTP/2 request names its host in :authority instead (request_ops).
    let forwarded_host = host.filter(|_| fe.cfg.forwarded_for).cloned();
    let (backend_index, strip) = match route(fe, host, req.uri()) {
        RouteDecision::NoMatch => return Prepared::Answered(fe.local(ex, guard, NO_SERVER)),
        RouteDecision::Redirect(location) => {
            return Prepared::Answered(Ok(redirect(&location, 301, ex, guard)))
        }
        RouteDecision::Backend { backend, strip } => (backend, strip),
    };
    let Some(be) = fe.backends.get(backend_index).cloned() else {
        return Prepared::Answered(fe.local(ex, guard, NO_SERVER));
    };
    ex.entry.backend = be.name.clone();
    ex.backend = Some(be.clone());

    let (mut parts, body) = req.into_parts();
    let original_host = match strip {
        Some(_) => request_host_parts(&parts).map(str::to_owned),
        None => None,
    };
    let (persist, client_cookie) = persistence(&be, &parts.headers, &mut ex);
    let bodiless = body.is_end_stream();
    let be_headers = fe
        .backend_set_headers
        .get(backend_index)
        .map_or(&[][..], Vec::as_slice);
    let (forwarded, upgrade, host_from_authority) = request_ops(
        fe,
        &be,
        be_headers,
        conn,
        shared,
        &mut parts,
        bodiless,
        forwarded_host,
    );
    let path_and_query = target_path(strip, &parts.uri);
    let acquired = match be.acquire(persist, None, conn.src.ip()) {
        Acquire::Slot(s) => Picked::Now(s),
        Acquire::Queued(ticket) => Picked::Queued(ticket),
        Acquire::NoServer => return Prepared::Answered(fe.local(ex, guard, NO_SERVER)),
    };
    let out = Outgoing {
        parts,
        path_and_query,
        body: BodySource::new(body, fe.cfg.timeouts.client),
        client: (conn.src, conn.dst),
        forwarded,
        host_from_authority,
    };
    Prepared::Forward(Forwarding {
        ex,
        guard,
        be,
        acquired,
        out,
        strip: strip.map(|prefix| {
            Box::new(Strip {
                prefix: prefix.into(),
                original_host,
            })
        }),
        persist,
        client_cookie,
        upgrade,
    })
}

/// The steps that wait: the queue (when no server was free), forwarding with its retries,
/// then the response operations. `go`'s fields are used where they are (not moved into
/// locals) so that the future holds them once.
// Not an `async fn`: one keeps its arguments and also copies them into locals, twice the
// room in every request's future (rustc -Zprint-type-sizes).
#[allow(clippy::manual_async_fn)]
fn forwarding(
    fe: Arc<Frontend>,
    tls: bool,
    shared: Arc<ConnShared>,
    mut go: Forwarding,
) -> impl Future<Output = Answer> + Send + 'static {
    async move {
        // The slot goes into forward's future: its binding ends with this block, before the
        // await, so that the future does not keep room for it too (nor for the attempts,
        // which the exchange holds).
        let result = {
            // When forwarding starts (connect time counts from it): a server free at once is
            // taken within microseconds of the request's own clock read, which stands for it.
            let (slot, forward_start) = match go.acquired {
                Picked::Now(s) => {
                    go.ex.entry.tw = Some(Duration::ZERO);
                    (s, go.ex.opened)
                }
                Picked::Queued(ticket) => match wait_in_queue(&go.be, ticket, &mut go.ex).await {
                    Some(s) => (s, Instant::now()),
                    None => return fe.local(go.ex, go.guard, QUEUE_TIMEOUT),
                },
            };
            go.ex.set_server(&go.be, slot.server_index());
            if let Some(b) = &go.out.body {
                go.ex.body_in = Some(b.clone());
            }
            go.ex.phase = TermPhase::Connect;
            go.ex.attempts = Attempts {
                pinned: go.persist == Some(slot.server_index()),
                ..Attempts::default()
            };
            let ex = &mut *go.ex;
            forward::forward(&go.be, slot, &go.out, forward_start, &mut ex.attempts)
        }
        .await;
        let (resp, slot) = match note_attempts(&mut go.ex, &go.be, result) {
            Ok(r) => r,
            Err(e) => return fe.local(go.ex, go.guard, forward_failure(e)),
        };
        if let Some(client) = go.upgrade {
            let switched = if go.out.parts.method == Method::CONNECT {
                resp.status().is_success()
            } else {
                resp.status() == StatusCode::SWITCHING_PROTOCOLS
            };
            if switched {
                return switch_protocols(
                    &fe, &go.be, tls, &shared, resp, slot, client, go.ex, go.guard,
                );
            }
        }
        let ctx = ResponseContext {
            fe: &fe,
            be: &go.be,
            strip: go.strip.as_ref().map(|s| &*s.prefix),
            original_host: go.strip.as_ref().and_then(|s| s.original_host.as_deref()),
            tls,
            cookie_kept: go.client_cookie == ClientCookie::Valid && !go.ex.attempts.redispatched,
        };
        Ok(respond(
            ctx,
            resp,
            slot,
            &mut go.out.parts.headers,
            go.ex,
            go.guard,
        ))
    }
}

/// HTTP/1 framing rules (request_rules.rs) and the rare absolute form, which replaces Host
/// (its own Host is checked first).
#[inline(always)]
fn http1_rules(req: &mut Request<Incoming>) -> Result<(), request_rules::BadRequest> {
    if !is_http1(req.version()) {
        return Ok(());
    }
    if req.uri().authority().is_some() {
        if let Some(host) =
            request_rules::absolute_form_host(req.version(), req.uri(), req.headers())?
        {
            req.headers_mut().insert(header::HOST, host);
        }
    }
    if !req.body().is_end_stream() {
        request_rules::check_transfer_encoding(req.headers())?;
    }
    Ok(())
}

/// The request's Host field, found once for both the HTTP/1 Host rules and routing: exactly
/// one valid Host in HTTP/1.1, at most one in HTTP/1.0 (HTTP/2 has `:authority` instead).
#[inline(always)]
fn request_host<B>(req: &Request<B>) -> Result<Option<&HeaderValue>, request_rules::BadRequest> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if is_http1(req.version()) {
        request_rules::check_host(req.version(), first, hosts.next().is_some())?;
    }
    Ok(first)
}

/// A request's authority as a header value.
fn authority_value(uri: &http::Uri) -> Option<HeaderValue> {
    uri.authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

fn is_http1(v: Version) -> bool {
    v == Version::HTTP_11 || v == Version::HTTP_10
}

/// The exchange of a request that just arrived, with the log fields known at that point.
#[inline(always)]
fn open_exchange(
    fe: &Arc<Frontend>,
    conn: &ConnInfo,
    shared: &ConnShared,
    req: &Request<Incoming>,
) -> Box<Exchange> {
    let (start, now) = if req.version() == Version::HTTP_2 {
        let now = Instant::now();
        (now, now)
    } else if let Some(at) = shared.head_read_at() {
        (at, at)
    } else {
        let now = Instant::now();
        (shared.request_start(now), now)
    };
    let tr = now.saturating_duration_since(start);
    Box::new(Exchange {
        entry: AccessLogEntry {
            client: conn.src,
            // Only the log line shows it.
            accept_date: if fe.access_log {
                SystemTime::now() - tr
            } else {
                SystemTime::UNIX_EPOCH
            },
            frontend: fe.name.clone(),
            tls: conn.tls,
            backend: fe.name.clone(),
            server: LogServer::NoServer,
            tr: Some(tr),
            tw: None,
            tc: None,
            tr_server: None,
            ta: None,
            status: 0,
            bytes: 0,
            termination: TerminationState::default(),
            ac: 0,
            fc: 0,
            bc: 0,
            sc: 0,
            retries: 0,
            redispatched: false,
            sq: 0,
            bq: 0,
            request: Some(RequestLine {
                method: req.method().clone(),
                // Only the log line shows the target.
                uri: if fe.access_log {
                    req.uri().clone()
                } else {
                    Uri::default()
                },
                version: req.version(),
            }),
            tls_facts: shared.tls.clone(),
        },
        start,
        opened: now,
        frontend: fe.clone(),
        backend: None,
        server: None,
        phase: TermPhase::Request,
        logged: false,
        quiet: false,
        head_in: request_head_size(req),
        body_in: None,
        attempts: Attempts::default(),
    })
}

/// The routing decision for a request (lb.md §2), given its Host field.
#[inline(always)]
fn route<'f>(fe: &'f Frontend, host: Option<&HeaderValue>, uri: &Uri) -> RouteDecision<'f> {
    // The Host a request names: its Host header, else the authority of an absolute-form or
    // HTTP/2 target.
    let routed_host = match host {
        Some(h) => h.to_str().ok(),
        None => uri.authority().map(|a| a.as_str()),
    };
    fe.router.decide(routed_host, uri.path(), uri.query(), |b| {
        fe.backends.get(b).is_some_and(|b| b.has_usable_server())
    })
}

/// The persistence cookie of a request (lb.md §5): the server it names if that one is up,
/// and what the log says of it.
#[inline(always)]
fn persistence(
    be: &Backend,
    headers: &HeaderMap,
    ex: &mut Exchange,
) -> (Option<usize>, ClientCookie) {
    let Some(policy) = &be.cookie else {
        return (None, ClientCookie::NotConfigured);
    };
    let mut persist = None;
    let client_cookie = match cookie::find_server_cookie(headers, &policy.name) {
        None => ClientCookie::None,
        Some(v) => match be.server_by_cookie(&v) {
            Some(i) if be.servers[i].is_up() => {
                persist = Some(i);
                ClientCookie::Valid
            }
            Some(_) => ClientCookie::Down,
            None => ClientCookie::Invalid,
        },
    };
    ex.entry.termination.client_cookie = client_cookie;
    ex.entry.termination.server_cookie = ServerCookie::None;
    (persist, client_cookie)
}

/// `monitor_uri` and `rules` (only called when the frontend has one of them): the local
/// answer that ends the request here, if any.
fn screen(
    fe: &Frontend,
    conn: &ConnInfo,
    req: &Request<Incoming>,
    ex: &mut Exchange,
) -> Option<Refusal> {
    let path = req.uri().path();
    if fe.cfg.monitor_uri.as_deref() == Some(path) {
        ex.quiet = true;
        let up = fe
            .own_backends
            .iter()
            .filter_map(|&i| fe.backends.get(i))
            .any(|b| b.has_usable_server());
        return Some(if up { MONITOR_OK } else { MONITOR_FAIL });
    }
    let action = AccessRule::first_match(&fe.cfg.rules, conn.src.ip(), req.method().as_str(), path);
    match action {
        Some(RuleAction::Deny(code)) => {
            Meters::add(&fe.meters.denied_requests, 1);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN);
            Some((status, TermCause::Proxy, TermPhase::Request))
        }
        Some(RuleAction::Allow) | None => None,
    }
}

/// `monitor_uri` while a backend of the frontend can serve.
const MONITOR_OK: Refusal = (StatusCode::OK, TermCause::Normal, TermPhase::Done);
/// `monitor_uri` while none can.
const MONITOR_FAIL: Refusal = (
    StatusCode::SERVICE_UNAVAILABLE,
    TermCause::Normal,
    TermPhase::Done,
);

/// Request header operations, in lb.md §8 order (`del_headers` first, so what the frontend
/// deletes the later operations may write again). Returns the X-Forwarded-* fields when they
/// are written with the head instead of into the map, and the client side of a WebSocket
/// upgrade that is forwarded.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn request_ops(
    fe: &Frontend,
    be: &Backend,
    be_headers: &[(HeaderName, HeaderTemplate)],
    conn: &ConnInfo,
    shared: &ConnShared,
    parts: &mut Parts,
    bodiless: bool,
    forwarded_host: Option<HeaderValue>,
) -> (Option<ForwardedFields>, Option<OnUpgrade>, bool) {
    for name in &fe.del_headers {
        parts.headers.remove(name);
    }
    let mut upgrade = None;
    if parts.method == Method::CONNECT {
        // Checked bodiless (handle): a 2xx makes it a tunnel. hyper offers the upgrade on
        // HTTP/1 and, per stream, on HTTP/2 (RFC 9113 §8.5).
        upgrade = parts.extensions.remove::<OnUpgrade>();
    }
    if headers::remove_hop_by_hop_request(&mut parts.headers) {
        // A WebSocket upgrade goes through when hyper can hand the client connection over
        // (HTTP/1.1) and the request is a direct exchange (no body), whose server
        // connection becomes the tunnel's; otherwise it is sent as a plain request.
        let connect = parts.method == Method::CONNECT;
        if bodiless && parts.version == Version::HTTP_11 && !connect {
            upgrade = parts.extensions.remove::<OnUpgrade>();
        }
        if upgrade.is_none() || connect {
            parts.headers.remove(header::UPGRADE);
            parts.headers.remove(header::CONNECTION);
        }
    }
    // An HTTP/2 request without Host (its host is its :authority), as the operations above
    // left it; only `set_headers` below could still add a Host.
    let no_host = parts.version == Version::HTTP_2
        && parts.uri.authority().is_some()
        && !parts.headers.contains_key(header::HOST);
    let mut forwarded = None;
    if fe.cfg.forwarded_for {
        // A request for a direct exchange (HTTP/1.1, no body, not CONNECT) that has none of
        // the fields gets them written after its own when its head is encoded, unless a
        // later operation could see or move them.
        let deferred = matches!(parts.version, Version::HTTP_11 | Version::HTTP_2)
            && bodiless
            && parts.method != Method::CONNECT
            && fe.set_headers.is_empty()
            && be_headers.is_empty()
            && !be.cookie.as_ref().is_some_and(|p| p.indirect)
            && ForwardedFields::can_append_to(&parts.headers);
        // An HTTP/2 request without Host: its :authority, written as Host when the head is
        // encoded (below) and then as X-Forwarded-Host too, or copied into the map.
        let from_authority = forwarded_host.is_none() && no_host;
        if deferred {
            forwarded = Some(ForwardedFields {
                client: shared.client_ip.clone(),
                tls: conn.tls,
                host: forwarded_host,
                host_is_authority: from_authority,
            });
        } else {
            let host = match forwarded_host {
                None if from_authority => authority_value(&parts.uri),
                h => h,
            };
            headers::forwarded_for_value(&mut parts.headers, &shared.client_ip, conn.tls, host);
        }
    }
    headers::apply_set_headers(&mut parts.headers, &fe.set_headers, conn);
    headers::apply_set_headers(&mut parts.headers, be_headers, conn);
    if let Some(policy) = be.cookie.as_ref().filter(|p| p.indirect) {
        cookie::remove_cookie(&mut parts.headers, &policy.name);
    }
    // HTTP/2 carries the host in :authority; an HTTP/1.1 server needs it as Host. A direct
    // exchange writes it from the URI when it encodes the head (no copy into a new value,
    // no map insertion: the operations above are done with the map).
    let mut host_from_authority = false;
    let set_any = !fe.set_headers.is_empty() || !be_headers.is_empty();
    if no_host && !(set_any && parts.headers.contains_key(header::HOST)) {
        if bodiless {
            host_from_authority = true;
        } else if let Some(v) = authority_value(&parts.uri) {
            parts.headers.insert(header::HOST, v);
        }
    }
    (forwarded, upgrade, host_from_authority)
}

/// The path and query sent to the server: the client's, less a stripped prefix.
#[inline(always)]
fn target_path(strip: Option<&str>, uri: &Uri) -> PathAndQuery {
    match (strip, uri.path_and_query()) {
        (Some(prefix), Some(pq)) => rewrite::strip_prefix(pq.as_str(), prefix)
            .and_then(|s| PathAndQuery::try_from(s).ok())
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        (None, Some(pq)) => pq.clone(),
        (_, None) => PathAndQuery::from_static("/"),
    }
}

/// Waited `queue` in the backend's queue without a server: 503 `sQ--`.
const QUEUE_TIMEOUT: Refusal = (
    StatusCode::SERVICE_UNAVAILABLE,
    TermCause::ServerTimeout,
    TermPhase::Queue,
);

/// Waits in the backend's queue for a server, at most the backend's `queue` timeout.
async fn wait_in_queue(be: &Backend, ticket: Ticket, ex: &mut Exchange) -> Option<Slot> {
    ex.phase = TermPhase::Queue;
    let queued_at = Instant::now();
    ex.entry.bq = u32::try_from(ticket.position()).unwrap_or(u32::MAX);
    let got = ticket.wait(be.cfg.timeouts.queue).await;
    ex.entry.tw = Some(queued_at.elapsed());
    got
}

/// Notes the attempts of [`forward::forward`] in the log, and the server that answered
/// when the request was redispatched.
#[inline(always)]
fn note_attempts(
    ex: &mut Exchange,
    be: &Arc<Backend>,
    result: Result<(Response<ServerBody>, Slot), ForwardError>,
) -> Result<(Response<ServerBody>, Slot), ForwardError> {
    let attempts = ex.attempts;
    ex.entry.retries = attempts.retries;
    ex.entry.redispatched = attempts.redispatched;
    ex.entry.tc = attempts.connect;
    ex.entry.tr_server = attempts.response;
    let (resp, slot) = result?;
    if ex.server != Some(slot.server_index()) {
        // Redispatched to another server.
        ex.set_server(be, slot.server_index());
    }
    Ok((resp, slot))
}

/// The local answer for a request no server answered.
fn forward_failure(e: ForwardError) -> Refusal {
    match e {
        ForwardError::ConnectFailed { timeout: true } => (
            StatusCode::SERVICE_UNAVAILABLE,
            TermCause::ServerTimeout,
            TermPhase::Connect,
        ),
        ForwardError::ConnectFailed { timeout: false } | ForwardError::NoServer => NO_SERVER,
        ForwardError::QueueTimeout => QUEUE_TIMEOUT,
        ForwardError::ServerTimeout => (
            StatusCode::GATEWAY_TIMEOUT,
            TermCause::ServerTimeout,
            TermPhase::Headers,
        ),
        ForwardError::BadResponse => (
            StatusCode::BAD_GATEWAY,
            TermCause::ServerAbort,
            TermPhase::Headers,
        ),
        ForwardError::InvalidResponse => (
            StatusCode::BAD_GATEWAY,
            TermCause::Proxy,
            TermPhase::Headers,
        ),
        ForwardError::Client(ClientFailure::TimedOut) => (
            StatusCode::REQUEST_TIMEOUT,
            TermCause::ClientTimeout,
            TermPhase::Data,
        ),
        ForwardError::Client(ClientFailure::Aborted) => (
            StatusCode::BAD_REQUEST,
            TermCause::ClientAbort,
            TermPhase::Data,
        ),
    }
}

/// What the response operations read besides the response.
struct ResponseContext<'a> {
    fe: &'a Frontend,
    be: &'a Arc<Backend>,
    /// The route's prefix removed from the path, reversed on the response.
    strip: Option<&'a str>,
    /// The Host the client asked for, when a prefix is stripped.
    original_host: Option<&'a str>,
    tls: bool,
    /// The client's persistence cookie named the server that answered.
    cookie_kept: bool,
}

/// Response operations (lb.md §8, §2 reverse rewrite, §5 cookie) and the body that relays
/// the server's response and logs the exchange at its end.
#[inline(always)]
fn respond(
    ctx: ResponseContext<'_>,
    resp: Response<ServerBody>,
    slot: Slot,
    request_headers: &mut HeaderMap,
    mut ex: Box<Exchange>,
    guard: RequestGuard,
) -> Response<ResponseBody> {
    let be = ctx.be;
    let (mut rparts, mut rbody) = resp.into_parts();
    if let ServerBody::Raw(raw) = &mut rbody {
        // The request's header map is done with: the connection parses its next response
        // into it.
        raw.recycle(request_headers);
    }
    if !matches!(&rbody, ServerBody::Raw(raw) if raw.hop_by_hop_removed()) {
        headers::remove_hop_by_hop_response(&mut rparts.headers, rparts.status, false);
    }
    if let Some(prefix) = ctx.strip {
        let rw = rewrite::ReverseRewrite {
            prefix,
            request_host: ctx.original_host,
            client_scheme: if ctx.tls { "https" } else { "http" },
            server_authorities: &be.authorities,
            persistence_cookie: be.cookie.as_ref().map(|c| c.name.as_str()),
        };
        rewrite::rewrite_response_headers(&mut rparts.headers, &rw);
    }
    if let Some(policy) = &be.cookie {
        if !ctx.cookie_kept {
            let value = slot.server().cfg.cookie_value();
            cookie::insert_set_cookie(&mut rparts.headers, policy, Some(value));
            ex.entry.termination.server_cookie = ServerCookie::Inserted;
        }
    }
    if ctx.tls {
        if let Some(v) = &ctx.fe.hsts {
            rparts
                .headers
                .insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
    }
    ex.entry.status = rparts.status.as_u16();
    // The byte count is only logged.
    let head = if ctx.fe.access_log {
        head_size(17, &rparts.headers)
    } else {
        0
    };
    let body = ResponseBody::upstream(rbody, be.cfg.timeouts.server, head, slot, ex, guard);
    Response::from_parts(rparts, body)
}

/// A `101 Switching Protocols` to a forwarded WebSocket upgrade, or a 2xx to a CONNECT: the
/// answer goes to the client with an empty body, and the exchange continues as a tunnel
/// between the two connections (upgrade.rs), run by the connection task once hyper hands the
/// client socket over (HTTP/1), or beside the connection on the CONNECT's stream (HTTP/2).
#[allow(clippy::too_many_arguments)]
fn switch_protocols(
    fe: &Frontend,
    be: &Arc<Backend>,
    tls: bool,
    shared: &ConnShared,
    resp: Response<ServerBody>,
    slot: Slot,
    client: OnUpgrade,
    mut ex: Box<Exchange>,
    guard: RequestGuard,
) -> Result<Response<ResponseBody>, CloseSilently> {
    let (mut rparts, rbody) = resp.into_parts();
    let server = match rbody {
        ServerBody::Raw(raw) => raw.into_upgraded(),
        ServerBody::Hyper(..) => None,
    };
    let Some((server, server_early)) = server else {
        let why = (
            StatusCode::BAD_GATEWAY,
            TermCause::Proxy,
            TermPhase::Headers,
        );
        return fe.local(ex, guard, why);
    };
    headers::remove_hop_by_hop_response(&mut rparts.headers, rparts.status, true);
    // A 2xx to CONNECT has no content (RFC 9110 §9.3.6): no framing field may reach the
    // client, which would wait for a body that never comes.
    rparts.headers.remove(header::CONTENT_LENGTH);
    rparts.headers.remove(header::TRANSFER_ENCODING);
    if tls {
        if let Some(v) = &fe.hsts {
            rparts
                .headers
                .insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
    }
    ex.entry.status = rparts.status.as_u16();
    ex.phase = TermPhase::Data;
    let tunnel = Tunnel {
        client,
        server,
        server_early,
        idle: be
            .cfg
            .timeouts
            .tunnel
            .unwrap_or(fe.cfg.timeouts.client.min(be.cfg.timeouts.server)),
        head: head_size(32, &rparts.headers),
        marked_down: be.cfg.shutdown_sessions_on_down.then(|| {
            let mut rx = slot.server().marked_down();
            rx.borrow_and_update();
            rx
        }),
        slot,
        exchange: ex,
        guard,
        take_socket: shared.take_socket(),
    };
    let h2 = ex_version(&tunnel.exchange) == Some(Version::HTTP_2);
    if h2 {
        // A CONNECT stream of an HTTP/2 connection: the connection goes on serving other
        // streams (and carries this one's frames), so the tunnel runs beside it.
        tokio::spawn(tunnel.run());
    } else {
        shared.set_tunnel(Box::pin(tunnel.run()));
    }
    Ok(Response::from_parts(rparts, ResponseBody::empty()))
}

fn ex_version(ex: &Exchange) -> Option<Version> {
    ex.entry.request.as_ref().map(|r| r.version)
}

fn request_host_parts(parts: &http::request::Parts) -> Option<&str> {
    match parts.headers.get(header::HOST) {
        Some(h) => h.to_str().ok(),
        None => parts.uri.authority().map(|a| a.as_str()),
    }
}

/// A redirect with an empty body, logged `LR--` with `<NOSRV>`: 301 to a prefix with its
/// slash (lb.md §2), or `redirect_https` (lb.md §10).
fn redirect(
    location: &str,
    code: u16,
    mut ex: Box<Exchange>,
    guard: RequestGuard,
) -> Response<ResponseBody> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    ex.entry.status = resp.status().as_u16();
    ex.entry.termination.cause = TermCause::Local;
    ex.entry.termination.phase = TermPhase::Request;
    into_local(resp, ex, guard)
}

/// `https://<host>[:port]<path>?<query>`: the request's host without its port, `:port`
/// unless it is 443; no host gives `https://` + path (lb.md §10).
fn https_location(req: &Request<Incoming>, port: u16) -> String {
    let host = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok(),
        None => req.uri().authority().map(|a| a.as_str()),
    };
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut location = String::with_capacity(16 + host.map_or(0, str::len) + target.len());
    location.push_str("https://");
    if let Some(host) = host {
        location.push_str(strip_port(host));
        if port != 443 {
            location.push(':');
            location.push_str(&port.to_string());
        }
    }
    location.push_str(target);
    location
}

/// `www.example.test:8080` → `www.example.test`; `[2001:db8::1]:80` → `[2001:db8::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && (host.starts_with('[') || !host[..i].contains(':')) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn strip_port_keeps_names_and_ipv6_literals() {
        assert_eq!(strip_port("www.example.test:8080"), "www.example.test");
        assert_eq!(strip_port("www.example.test"), "www.example.test");
        assert_eq!(strip_port("[2001:db8::1]:80"), "[2001:db8::1]");
        assert_eq!(strip_port("[2001:db8::1]"), "[2001:db8::1]");
        assert_eq!(strip_port("203.0.113.7:80"), "203.0.113.7");
    }
}
