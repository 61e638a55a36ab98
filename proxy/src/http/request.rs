//! The life of one HTTP request through a frontend (lb.md §1): route → backend →
//! persistence or algorithm → queue → forward → response ops → log.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};

use crate::http::client_conn::{CloseSilently, ConnShared, RequestGuard};
use crate::http::errorpage::Reply;
use crate::http::exchange::{head_size, Exchange, ResponseBody};
use crate::http::frontend::Frontend;
use crate::http::headers::{self, ConnInfo};
use crate::http::route::RouteDecision;
use crate::http::{cookie, request_rules, rewrite};
use crate::observe::accesslog::{
    AccessLogEntry, ClientCookie, LogServer, RequestLine, ServerCookie, TermCause, TermPhase,
    TerminationState,
};
use crate::upstream::backend::Acquire;
use crate::upstream::body::{BodySource, ClientFailure};
use crate::upstream::forward::{self, Attempts, ForwardError, Outgoing, ServerBody};

impl Frontend {
    /// A locally generated answer (error page or redirect), logged as such.
    fn local(
        &self,
        mut ex: Box<Exchange>,
        guard: RequestGuard,
        status: StatusCode,
        cause: TermCause,
        phase: TermPhase,
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

    /// 400 to a request that breaks an HTTP/1 rule (request_rules.rs), logged `PR--` with a
    /// line giving the reason.
    fn bad_request(
        &self,
        ex: Box<Exchange>,
        guard: RequestGuard,
        conn: &ConnInfo,
        bad: request_rules::BadRequest,
    ) -> Result<Response<ResponseBody>, CloseSilently> {
        tracing::info!(frontend = %self.name, client = %conn.src, reason = bad.reason(), "bad request");
        self.local(
            ex,
            guard,
            StatusCode::BAD_REQUEST,
            TermCause::Proxy,
            TermPhase::Request,
        )
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

/// Handles one request (the hyper service).
pub(crate) async fn handle(
    fe: Arc<Frontend>,
    conn: ConnInfo,
    shared: Arc<ConnShared>,
    guard: RequestGuard,
    mut req: Request<Incoming>,
) -> Result<Response<ResponseBody>, CloseSilently> {
    let now = Instant::now();
    let start = if req.version() == Version::HTTP_2 {
        now
    } else {
        shared.request_start(now)
    };
    let tr = now.saturating_duration_since(start);
    let mut ex = Box::new(Exchange {
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
        frontend: fe.clone(),
        backend: None,
        server: None,
        phase: TermPhase::Request,
        logged: false,
    });

    // HTTP/1 framing and Host rules (request_rules.rs); the rare absolute form first, as it
    // replaces Host.
    let http1 = req.version() == Version::HTTP_11 || req.version() == Version::HTTP_10;
    if http1 && req.uri().authority().is_some() {
        match request_rules::absolute_form_host(req.version(), req.uri(), req.headers()) {
            Ok(Some(host)) => {
                req.headers_mut().insert(header::HOST, host);
            }
            Ok(None) => {}
            Err(bad) => return fe.bad_request(ex, guard, &conn, bad),
        }
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host_header = hosts.next();
    if http1 {
        let checked = request_rules::check_host(req.version(), host_header, hosts.next().is_some())
            .and_then(|()| match req.body().is_end_stream() {
                true => Ok(()),
                false => request_rules::check_transfer_encoding(req.headers()),
            });
        if let Err(bad) = checked {
            return fe.bad_request(ex, guard, &conn, bad);
        }
    }
    if let Some(r) = &fe.cfg.redirect_https {
        if !conn.tls {
            let location = https_location(&req, r.port);
            return Ok(redirect(&location, r.code, ex, guard));
        }
    }
    // X-Forwarded-Host copies Host, which the header operations before it never remove.
    let forwarded_host = host_header.filter(|_| fe.cfg.forwarded_for).cloned();
    // The Host a request names: its Host header, else the authority of an absolute-form or
    // HTTP/2 target.
    let routed_host = match host_header {
        Some(h) => h.to_str().ok(),
        None => req.uri().authority().map(|a| a.as_str()),
    };
    let decision = fe
        .router
        .decide(routed_host, req.uri().path(), req.uri().query(), |b| {
            fe.backends.get(b).is_some_and(|b| b.has_usable_server())
        });
    let (backend_index, strip) = match decision {
        RouteDecision::NoMatch => {
            return fe.local(
                ex,
                guard,
                StatusCode::SERVICE_UNAVAILABLE,
                TermCause::ServerAbort,
                TermPhase::Connect,
            );
        }
        RouteDecision::Redirect(location) => return Ok(redirect(&location, 301, ex, guard)),
        RouteDecision::Backend { backend, strip } => (backend, strip),
    };
    let Some(be) = fe.backends.get(backend_index).cloned() else {
        return fe.local(
            ex,
            guard,
            StatusCode::SERVICE_UNAVAILABLE,
            TermCause::ServerAbort,
            TermPhase::Connect,
        );
    };
    ex.entry.backend = be.name.clone();
    ex.backend = Some(be.clone());

    let (mut parts, body) = req.into_parts();
    let original_host = match strip {
        Some(_) => request_host_parts(&parts).map(str::to_owned),
        None => None,
    };

    // Persistence cookie (lb.md §5).
    let mut persist = None;
    let mut client_cookie = ClientCookie::NotConfigured;
    if let Some(policy) = &be.cookie {
        client_cookie = match cookie::find_server_cookie(&parts.headers, &policy.name) {
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
    }

    // Request header operations, in lb.md §8 order.
    if headers::remove_hop_by_hop_request(&mut parts.headers) {
        // WebSocket upgrades are not forwarded yet: send a plain request.
        parts.headers.remove(header::UPGRADE);
        parts.headers.remove(header::CONNECTION);
    }
    let mut forwarded = None;
    if fe.cfg.forwarded_for {
        // A request for a direct exchange (HTTP/1.1, no body, not CONNECT) that has none of
        // the fields gets them written after its own when its head is encoded, unless a
        // later operation could see or move them.
        let deferred = parts.version == Version::HTTP_11
            && body.is_end_stream()
            && parts.method != Method::CONNECT
            && fe.set_headers.is_empty()
            && !be.cookie.as_ref().is_some_and(|p| p.indirect)
            && headers::ForwardedFields::can_append_to(&parts.headers);
        if deferred {
            forwarded = Some(headers::ForwardedFields {
                client: shared.client_ip.clone(),
                tls: conn.tls,
                host: forwarded_host,
            });
        } else {
            headers::forwarded_for_value(
                &mut parts.headers,
                &shared.client_ip,
                conn.tls,
                forwarded_host,
            );
        }
    }
    headers::apply_set_headers(&mut parts.headers, &fe.set_headers, &conn);
    if let Some(policy) = be.cookie.as_ref().filter(|p| p.indirect) {
        cookie::remove_cookie(&mut parts.headers, &policy.name);
    }
    // HTTP/2 carries the host in :authority; an HTTP/1.1 server needs it as Host.
    if parts.version == Version::HTTP_2 && !parts.headers.contains_key(header::HOST) {
        if let Some(a) = parts.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                parts.headers.insert(header::HOST, v);
            }
        }
    }
    let path_and_query = match (strip, parts.uri.path_and_query()) {
        (Some(prefix), Some(pq)) => rewrite::strip_prefix(pq.as_str(), prefix)
            .and_then(|s| PathAndQuery::try_from(s).ok())
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        (None, Some(pq)) => pq.clone(),
        (_, None) => PathAndQuery::from_static("/"),
    };

    // Server selection, queueing.
    let slot = match be.acquire(persist, None, conn.src.ip()) {
        Acquire::Slot(s) => {
            ex.entry.tw = Some(std::time::Duration::ZERO);
            s
        }
        Acquire::Queued(ticket) => {
            ex.phase = TermPhase::Queue;
            let queued_at = Instant::now();
            ex.entry.bq = u32::try_from(ticket.position()).unwrap_or(u32::MAX);
            let got = ticket.wait(be.cfg.timeouts.queue).await;
            ex.entry.tw = Some(queued_at.elapsed());
            match got {
                Some(s) => s,
                None => {
                    return fe.local(
                        ex,
                        guard,
                        StatusCode::SERVICE_UNAVAILABLE,
                        TermCause::ServerTimeout,
                        TermPhase::Queue,
                    );
                }
            }
        }
        Acquire::NoServer => {
            return fe.local(
                ex,
                guard,
                StatusCode::SERVICE_UNAVAILABLE,
                TermCause::ServerAbort,
                TermPhase::Connect,
            );
        }
    };
    ex.set_server(&be, slot.server_index());

    let mut out = Outgoing {
        parts,
        path_and_query,
        body: BodySource::new(body, fe.cfg.timeouts.client),
        client_ip: conn.src.ip(),
        forwarded,
    };
    ex.phase = TermPhase::Connect;
    let mut attempts = Attempts::default();
    let result = forward::forward(&be, slot, &out, &mut attempts).await;
    ex.entry.retries = attempts.retries;
    ex.entry.redispatched = attempts.redispatched;
    ex.entry.tc = attempts.connect;
    ex.entry.tr_server = attempts.response;
    let (resp, slot) = match result {
        Ok(r) => r,
        Err(e) => {
            let (status, cause, phase) = match e {
                ForwardError::ConnectFailed { timeout: true } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    TermCause::ServerTimeout,
                    TermPhase::Connect,
                ),
                ForwardError::ConnectFailed { timeout: false } | ForwardError::NoServer => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    TermCause::ServerAbort,
                    TermPhase::Connect,
                ),
                ForwardError::QueueTimeout => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    TermCause::ServerTimeout,
                    TermPhase::Queue,
                ),
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
            };
            return fe.local(ex, guard, status, cause, phase);
        }
    };
    if ex.server != Some(slot.server_index()) {
        // Redispatched to another server.
        ex.set_server(&be, slot.server_index());
    }

    // Response operations.
    let (mut rparts, mut rbody) = resp.into_parts();
    if let ServerBody::Raw(raw) = &mut rbody {
        // The request's header map is done with: the connection parses its next response
        // into it.
        raw.recycle(&mut out.parts.headers);
    }
    if !matches!(&rbody, ServerBody::Raw(raw) if raw.hop_by_hop_removed()) {
        headers::remove_hop_by_hop_response(&mut rparts.headers, rparts.status, false);
    }
    if let Some(prefix) = strip {
        let rw = rewrite::ReverseRewrite {
            prefix,
            request_host: original_host.as_deref(),
            client_scheme: if conn.tls { "https" } else { "http" },
            server_authorities: &be.authorities,
            persistence_cookie: be.cookie.as_ref().map(|c| c.name.as_str()),
        };
        rewrite::rewrite_response_headers(&mut rparts.headers, &rw);
    }
    if let Some(policy) = &be.cookie {
        let kept = client_cookie == ClientCookie::Valid && !attempts.redispatched;
        if !kept {
            let value = slot.server().cfg.cookie_value();
            cookie::insert_set_cookie(&mut rparts.headers, policy, Some(value));
            ex.entry.termination.server_cookie = ServerCookie::Inserted;
        }
    }
    if conn.tls {
        if let Some(v) = &fe.hsts {
            rparts
                .headers
                .insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
    }
    ex.entry.status = rparts.status.as_u16();
    // The byte count is only logged.
    let head = if fe.access_log {
        head_size(17, &rparts.headers)
    } else {
        0
    };
    let body = ResponseBody::upstream(rbody, be.cfg.timeouts.server, head, slot, ex, guard);
    Ok(Response::from_parts(rparts, body))
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
