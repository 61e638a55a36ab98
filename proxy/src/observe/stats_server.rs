//! The stats listener (`global.stats`, lb.md §16): its own socket, never gated (both boxes
//! answer), GET/HEAD only, HTTP Basic auth on every path, bounded like a frontend (a
//! connection limit, a deadline for the request head and one for the whole connection), so a
//! slow or hoarding scraper costs a few sockets and never the balancer or the VRRP engine.
//!
//! Paths: `uri` (HTML; `;norefresh` stops the auto-refresh), `<uri>;csv`, `<uri>;json`,
//! `/metrics`; anything else is 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::snapshot::Snapshot;
use super::{metrics, stats_csv, stats_html};

/// What `global.stats` configures.
#[derive(Clone, Debug)]
pub struct StatsConfig {
    pub bind: SocketAddr,
    pub uri: String,
    pub refresh: Option<Duration>,
    pub show_node: bool,
    /// HTTP Basic credentials; `None` = no auth.
    pub auth: Option<(String, String)>,
    pub realm: String,
    /// Connections served at once; more wait in the kernel's backlog.
    pub maxconn: usize,
    /// Time to send the request head.
    pub request_timeout: Duration,
    /// Longest a connection may live (a scraper that keeps one open gets it cut).
    pub connection_timeout: Duration,
}

impl StatsConfig {
    pub fn new(bind: SocketAddr) -> StatsConfig {
        StatsConfig {
            bind,
            uri: "/stats".into(),
            refresh: None,
            show_node: false,
            auth: None,
            realm: DEFAULT_REALM.into(),
            maxconn: 100,
            request_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
        }
    }
}

pub const DEFAULT_REALM: &str = "vrrplb Statistics";

/// Builds a fresh snapshot for each request.
pub type SnapshotSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// A running stats listener; dropping it stops it.
pub struct StatsServer {
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl StatsServer {
    /// Binds and starts serving. Must be called inside a tokio runtime.
    pub fn start(cfg: StatsConfig, source: SnapshotSource) -> std::io::Result<StatsServer> {
        let listener = bind(cfg.bind)?;
        let local = listener.local_addr()?;
        let limit = Arc::new(Semaphore::new(cfg.maxconn.clamp(1, 10_000)));
        let cfg = Arc::new(cfg);
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!("stats listener: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let cfg = cfg.clone();
                let source = source.clone();
                tokio::spawn(async move {
                    let svc_cfg = cfg.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let resp = answer(&svc_cfg, &source, &req);
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(cfg.request_timeout)
                        .max_buf_size(16 * 1024)
                        .serve_connection(TokioIo::new(stream), svc);
                    match tokio::time::timeout(cfg.connection_timeout, conn).await {
                        Ok(Err(e)) => debug!("stats client {peer}: {e}"),
                        Err(_) => debug!("stats client {peer}: connection time limit"),
                        Ok(Ok(())) => {}
                    }
                    drop(permit);
                });
            }
        });
        Ok(StatsServer { local, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for StatsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restart or a reload that moves the listener must not wait for TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    TcpListener::from_std(socket.into())
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// What a path asks for.
enum Page {
    Html { refresh: bool },
    Csv,
    Json,
    Metrics,
}

fn route(uri: &str, path: &str) -> Option<Page> {
    if path == "/metrics" || path.starts_with("/metrics?") {
        return Some(Page::Metrics);
    }
    let rest = path.strip_prefix(uri)?;
    match rest {
        "" | "/" => Some(Page::Html { refresh: true }),
        ";norefresh" => Some(Page::Html { refresh: false }),
        ";csv" | ";csv;norefresh" => Some(Page::Csv),
        ";json" | ";json;norefresh" => Some(Page::Json),
        _ => None,
    }
}

fn answer(
    cfg: &StatsConfig,
    source: &SnapshotSource,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Some((user, pass)) = &cfg.auth {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(basic_credentials)
            .is_some_and(|(u, p)| same(&u, user) & same(&p, pass));
        if !ok {
            let mut r = plain(StatusCode::UNAUTHORIZED, "401 Unauthorized");
            let challenge = format!("Basic realm=\"{}\"", cfg.realm.replace('"', "'"));
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return r;
        }
    }
    let has_body = !req.body().is_end_stream()
        || req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let head = req.method() == Method::HEAD;
    if !(req.method() == Method::GET || head) || has_body {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed: GET or HEAD, without a body",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        // The body may not have been read: do not reuse the connection.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    // HAProxy matches `stats uri` against the whole target, query included
    // (`/haproxy?stats`).
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Some(page) = route(&cfg.uri, target) else {
        return plain(StatusCode::NOT_FOUND, "404 Not Found");
    };
    let snap = source();
    let (body, ctype, refresh) = match page {
        Page::Html { refresh } => {
            let period = cfg.refresh.filter(|_| refresh).map(|d| d.as_secs().max(1));
            let text = stats_html::render(
                &snap,
                &stats_html::PageOptions {
                    uri: &cfg.uri,
                    refresh: period,
                    refresh_configured: cfg.refresh.is_some(),
                    show_node: cfg.show_node,
                },
            );
            (text, "text/html; charset=utf-8", period)
        }
        Page::Csv => (stats_csv::render(&snap), "text/csv; charset=utf-8", None),
        Page::Json => (
            serde_json::to_string_pretty(&snap).unwrap_or_else(|_| "{}".into()),
            "application/json",
            None,
        ),
        Page::Metrics => (metrics::render(&snap), metrics::CONTENT_TYPE, None),
    };
    let len = body.len();
    let mut r = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    }));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(n) = refresh {
        h.insert("refresh", HeaderValue::from(n));
    }
    r
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

/// `Basic <base64 user:password>` → (user, password).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64_decode(token.trim())?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_decodes() {
        // "admin:change-me"
        assert_eq!(
            basic_credentials("Basic YWRtaW46Y2hhbmdlLW1l"),
            Some(("admin".into(), "change-me".into()))
        );
        assert_eq!(basic_credentials("Bearer YWRtaW46"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Basic YWRtaW4="), None, "no colon");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn paths() {
        assert!(matches!(
            route("/stats", "/stats"),
            Some(Page::Html { refresh: true })
        ));
        assert!(matches!(route("/stats", "/stats;csv"), Some(Page::Csv)));
        assert!(matches!(route("/stats", "/stats;json"), Some(Page::Json)));
        assert!(matches!(route("/stats", "/metrics"), Some(Page::Metrics)));
        assert!(matches!(
            route("/stats", "/stats;norefresh"),
            Some(Page::Html { refresh: false })
        ));
        assert!(route("/stats", "/statsx").is_none());
        assert!(route("/stats", "/").is_none());
        assert!(matches!(
            route("/haproxy?stats", "/haproxy?stats;csv"),
            Some(Page::Csv)
        ));
        assert!(route("/haproxy?stats", "/haproxy").is_none());
    }
}
