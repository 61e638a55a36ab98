//! A frontend at run time: its routes, error pages, header templates, the hyper server
//! settings and its counters. What happens to one request through it: request.rs.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;

use crate::config::FrontendConfig;
use crate::http::errorpage::{ErrorPageError, ErrorPages};
use crate::http::h2_streams::StreamExec;
use crate::http::headers::{self, HeaderTemplate, TemplateError};
use crate::http::route::Router;
use crate::observe::counters::ProxyCounters;
use crate::observe::meters::Meters;
use crate::upstream::backend::Backend;

/// Largest request head hyper buffers (≈ HAProxy's tune.bufsize); beyond it hyper answers 431.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

pub(crate) struct Frontend {
    pub(crate) name: Arc<str>,
    pub(crate) cfg: FrontendConfig,
    pub(crate) router: Router,
    pub(crate) backends: Arc<[Arc<Backend>]>,
    pub(crate) errors: ErrorPages,
    pub(crate) page_408: Option<Bytes>,
    pub(crate) set_headers: Vec<(HeaderName, HeaderTemplate)>,
    /// Each backend's `set_headers`, by backend index (parsed here: templates are http's).
    pub(crate) backend_set_headers: Vec<Vec<(HeaderName, HeaderTemplate)>>,
    /// `del_headers`, as field names.
    pub(crate) del_headers: Vec<HeaderName>,
    /// `monitor_uri` or `rules` is set: requests are screened before routing.
    pub(crate) screens: bool,
    /// The backends this frontend routes to (routes and default), for `monitor_uri`.
    pub(crate) own_backends: Vec<usize>,
    pub(crate) http: HttpServer,
    /// `Strict-Transport-Security` value for responses on TLS connections.
    pub(crate) hsts: Option<HeaderValue>,
    pub(crate) access_log: bool,
    pub(crate) counters: Arc<ProxyCounters>,
    /// Client connections open on this frontend (log `fc`); shared with its tcp-mode
    /// state when it has one.
    pub(crate) connections: Arc<AtomicUsize>,
    /// Stats counters; the same ones across reloads.
    pub(crate) meters: Arc<Meters>,
}

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("frontend {frontend}: {source}")]
    ErrorPage {
        frontend: String,
        source: ErrorPageError,
    },
    #[error("frontend {frontend}: set_headers {header}: {source}")]
    SetHeader {
        frontend: String,
        header: String,
        source: TemplateError,
    },
    #[error("backend {backend}: set_headers {header}: {source}")]
    BackendSetHeader {
        backend: String,
        header: String,
        source: TemplateError,
    },
    #[error("frontend {frontend}: del_headers: `{header}` is not a header name")]
    DelHeader { frontend: String, header: String },
}

impl Frontend {
    pub(crate) fn new(
        cfg: FrontendConfig,
        backends: Arc<[Arc<Backend>]>,
        access_log: bool,
        counters: Arc<ProxyCounters>,
        meters: Arc<Meters>,
    ) -> Result<Self, FrontendError> {
        let files: Vec<_> = cfg
            .error_pages
            .iter()
            .map(|(c, p)| (*c, p.clone()))
            .collect();
        let errors = ErrorPages::load(&files).map_err(|source| FrontendError::ErrorPage {
            frontend: cfg.name.clone(),
            source,
        })?;
        let set_headers = cfg
            .set_headers
            .iter()
            .map(|(n, v)| {
                headers::parse_set_header(n, v).map_err(|source| FrontendError::SetHeader {
                    frontend: cfg.name.clone(),
                    header: n.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let backend_set_headers = backends
            .iter()
            .map(|b| {
                b.cfg
                    .set_headers
                    .iter()
                    .map(|(n, v)| {
                        headers::parse_set_header(n, v).map_err(|source| {
                            FrontendError::BackendSetHeader {
                                backend: b.cfg.name.clone(),
                                header: n.clone(),
                                source,
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let del_headers = cfg
            .del_headers
            .iter()
            .map(|n| {
                HeaderName::try_from(n.as_str()).map_err(|_| FrontendError::DelHeader {
                    frontend: cfg.name.clone(),
                    header: n.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut own_backends: Vec<usize> = cfg
            .routes
            .iter()
            .map(|r| r.backend.as_str())
            .chain(cfg.default_backend.as_deref())
            .filter_map(|name| backends.iter().position(|b| &*b.name == name))
            .collect();
        own_backends.sort_unstable();
        own_backends.dedup();
        let router = Router::new(&cfg.routes, cfg.default_backend.as_deref(), |name| {
            backends.iter().position(|b| &*b.name == name)
        });
        let http = server_builder(&cfg);
        let hsts = cfg
            .hsts
            .and_then(|d| HeaderValue::try_from(format!("max-age={}", d.as_secs())).ok());
        Ok(Frontend {
            hsts,
            name: cfg.name.as_str().into(),
            page_408: errors.raw(StatusCode::REQUEST_TIMEOUT),
            errors,
            router,
            backends,
            set_headers,
            backend_set_headers,
            del_headers,
            screens: cfg.monitor_uri.is_some() || !cfg.rules.is_empty(),
            own_backends,
            http,
            access_log,
            counters,
            connections: Arc::new(AtomicUsize::new(0)),
            meters,
            cfg,
        })
    }
}

/// The HTTP/1 settings of a frontend's server (`http1::Builder` and the `auto` builder's
/// HTTP/1 part are different types with the same methods).
macro_rules! h1_settings {
    ($b:expr) => {
        $b.timer(TokioTimer::new())
            // `http_request` is enforced (with a 408) by listen/conn.rs's ClientIo instead.
            .header_read_timeout(None)
            .max_buf_size(MAX_REQUEST_HEAD)
            // No read from the client while its request is in flight (see HALF_CLOSE).
            .half_close(HALF_CLOSE)
            .keep_alive(true)
    };
}

/// The HTTP/2 limits of both of hyper's HTTP/2 builders (ALPN's and the sniffing one).
macro_rules! h2_limits {
    ($b:expr, $max_streams:expr) => {
        $b.max_concurrent_streams($max_streams)
            .max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
            .max_local_error_reset_streams(Some(H2_MAX_ERROR_RESETS))
            .max_header_list_size(MAX_REQUEST_HEAD as u32)
    };
}

/// hyper's server for a frontend's connections (HTTP/1 serves WebSocket upgrades).
pub(crate) enum HttpServer {
    /// HTTP/1 only: hyper's HTTP/1 server, no protocol sniffing.
    Http1(http1::Builder),
    /// HTTP/2 offered: a TLS connection whose ALPN chose `h2` or `http/1.1` gets that
    /// protocol's server (`h2_server`, `h1`), any other connection (h2c, or TLS without
    /// ALPN) the server that tells them apart by the client's first bytes (`auto_server`).
    /// Each connection's HTTP/2 server is built for it, with the executor that runs its
    /// streams in its own task.
    Auto {
        h1: http1::Builder,
        h2_max_streams: u32,
    },
}

/// hyper's HTTP/2 server for one connection chosen by ALPN, whose streams run in the
/// connection's task through `exec` (http/h2_streams.rs).
pub(crate) fn h2_server(max_streams: u32, exec: StreamExec) -> http2::Builder<StreamExec> {
    let mut h2 = http2::Builder::new(exec);
    h2.timer(TokioTimer::new());
    h2_limits!(h2, max_streams);
    h2
}

/// hyper's server for one connection that has not said which HTTP it speaks (h2c prior
/// knowledge or HTTP/1 on a plain listener, or TLS without ALPN): HTTP/2 if it opens with
/// the HTTP/2 preface, with its streams run as [`h2_server`]'s are, else HTTP/1 as `h1`.
pub(crate) fn auto_server(max_streams: u32, exec: StreamExec) -> auto::Builder<StreamExec> {
    let mut auto = auto::Builder::new(exec);
    h1_settings!(auto.http1());
    let mut h2 = auto.http2();
    h2.timer(TokioTimer::new());
    h2_limits!(h2, max_streams);
    auto
}

/// hyper's server settings. HTTP/2 only where the config asks for it (TLS with `h2` in ALPN,
/// or `h2c` on a plain listener); otherwise a client's HTTP/2 preface is a bad request.
/// Streams per connection are bounded, so `maxconn` connections carry at most
/// `maxconn × h2_max_streams` requests; resetting streams faster than they are served
/// (rapid reset) or provoking error resets ends the connection with GOAWAY.
fn server_builder(cfg: &FrontendConfig) -> HttpServer {
    let h2 = match &cfg.tls {
        Some(tls) => tls.offers_h2(),
        None => cfg.h2c,
    };
    let mut h1 = http1::Builder::new();
    h1_settings!(h1);
    if !h2 {
        return HttpServer::Http1(h1);
    }
    HttpServer::Auto {
        h1,
        h2_max_streams: cfg.h2_max_streams,
    }
}

/// A client's end of stream (FIN) while its request is in flight does not cancel the request:
/// the answer is still sent, as HAProxy does without `option abortonclose`; a client that is
/// really gone shows when the answer is written (`CD--`). Without it hyper reads the client
/// socket once more during every exchange to look for that end of stream, and as the request
/// still points into its read buffer, each of those reads allocates a new 8 KiB buffer
/// (callgrind, plain keep-alive: see the commit that set it).
const HALF_CLOSE: bool = true;

/// Streams a client may reset before they are accepted (hyper's default, stated here).
const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams we may reset for protocol errors on one connection before closing it.
const H2_MAX_ERROR_RESETS: usize = 100;
