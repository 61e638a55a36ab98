//! A frontend at run time: its routes, error pages, header templates, the hyper server
//! settings and its counters. What happens to one request through it: request.rs.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderName;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use crate::config::FrontendConfig;
use crate::http::errorpage::{ErrorPageError, ErrorPages};
use crate::http::headers::{self, HeaderTemplate, TemplateError};
use crate::http::route::Router;
use crate::observe::counters::ProxyCounters;
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
    pub(crate) http: auto::Builder<TokioExecutor>,
    pub(crate) access_log: bool,
    pub(crate) counters: Arc<ProxyCounters>,
    /// Client connections open on this frontend (log `fc`).
    pub(crate) connections: AtomicUsize,
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
}

impl Frontend {
    pub(crate) fn new(
        cfg: FrontendConfig,
        backends: Arc<[Arc<Backend>]>,
        access_log: bool,
        counters: Arc<ProxyCounters>,
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
        let router = Router::new(&cfg.routes, cfg.default_backend.as_deref(), |name| {
            backends.iter().position(|b| &*b.name == name)
        });
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            // `http_request` is enforced (with a 408) by conn::ClientIo instead.
            .header_read_timeout(None)
            .max_buf_size(MAX_REQUEST_HEAD)
            .keep_alive(true);
        http.http2().timer(TokioTimer::new());
        Ok(Frontend {
            name: cfg.name.as_str().into(),
            page_408: errors.raw(StatusCode::REQUEST_TIMEOUT),
            errors,
            router,
            backends,
            set_headers,
            http,
            access_log,
            counters,
            connections: AtomicUsize::new(0),
            cfg,
        })
    }
}
