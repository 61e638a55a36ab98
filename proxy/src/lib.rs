//! The embedded HTTP load balancer of vrrplb (docs/lb.md).
//!
//! ```text
//! Proxy::start(ProxyConfig)  ─ binds ungated frontends, starts health checks
//!   listen/    listener: accept within maxconn ─> conn (timeouts, 408) ─> http::request::handle
//!   http/      request: route ─> backend pick ─> upstream::forward ─> response ops ─> exchange (log)
//!   upstream/  backend (cookie | balance, queues) ─> forward (retries) ─> connector pool ─> h1
//!              health: probes ─> backend state ─> watch<BackendHealth>
//!   observe/   access log, counters, stats snapshot and its renderings, stats listener
//! Gate::set_serving(bool) opens/closes gated frontends; Proxy::shutdown(drain) ends it all.
//! ```
//!
//! Layers: listen → http → upstream → observe; each reads only lower ones (and config.rs),
//! and no two files import each other (tests/layers.rs).

mod http;
mod listen;
pub mod observe;
mod upstream;

pub mod config;
pub mod proxy_header;
pub mod tcp;

/// Entry points for the fuzz targets (proxy/fuzz); not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::upstream::h1::{http1_connect_responses, http1_responses};
}

// The public API as it was before the layers (src/, tests and benches use these paths).
pub use crate::http::{cookie, errorpage, headers, rewrite, route};
pub use listen::tls;
pub use observe::accesslog;
pub use upstream::tls as upstream_tls;
pub use upstream::{balance, health, probe};

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub use crate::http::exchange::ResponseBody;
pub use crate::http::frontend::FrontendError;
pub use config::ProxyConfig;
pub use listen::gate::Gate;
pub use listen::listener::ProxyError;
pub use observe::snapshot::{BackendStats, FrontendStats, ProxyStats, ServerStats};
pub use upstream::backend::BackendHealth;

use crate::http::frontend::Frontend;
use listen::listener::{self as listener, Limits, ListenerSet};
use listen::tls::accept::TlsTerm;
use observe::counters::ProxyCounters;
use observe::meters::Meters;
use upstream::backend::Backend;

/// A running load balancer.
pub struct Proxy {
    inherited: listener::Inherited,
    sets: Vec<Arc<ListenerSet>>,
    backends: Arc<[Arc<Backend>]>,
    gate: Gate,
    gate_drain: Duration,
    checks: Vec<JoinHandle<()>>,
    counters: Arc<ProxyCounters>,
    certs: tls::TlsCertificates,
    maxconn: usize,
}

impl Proxy {
    /// Builds the proxy, binds every ungated frontend and starts the health checks of every
    /// backend (gated or not, so a box becoming MASTER already knows its servers). Must be
    /// called inside a tokio runtime.
    /// TLS certificates are loaded here, on the calling thread; the daemon loads them on a
    /// blocking thread instead and calls [`Proxy::start_with`].
    pub fn start(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let (certs, _) = tls::TlsCertificates::load(&config, None)?;
        Proxy::start_seeded(config, certs, None)
    }

    /// Starts with certificates loaded beforehand by [`tls::TlsCertificates::load`].
    pub fn start_with(
        config: ProxyConfig,
        certs: tls::TlsCertificates,
    ) -> Result<Proxy, ProxyError> {
        Proxy::start_seeded(config, certs, None)
    }

    /// A reload: starts a balancer for `config` next to `previous`, which keeps serving until
    /// it is shut down. Listening sockets of `previous` open for an address the new config
    /// binds are taken over (for gated frontends: when opened before [`Proxy::reload_done`]);
    /// servers found in `previous` (same backend, name and address) keep their health state.
    /// `certs` comes from [`tls::TlsCertificates::load`] given `previous.certificates()`.
    pub fn start_after(
        config: ProxyConfig,
        previous: &Proxy,
        certs: tls::TlsCertificates,
    ) -> Result<Proxy, ProxyError> {
        Proxy::start_seeded(config, certs, Some(previous))
    }

    /// The certificates this balancer serves, for the next reload to start from.
    pub fn certificates(&self) -> &tls::TlsCertificates {
        &self.certs
    }

    fn start_seeded(
        config: ProxyConfig,
        certs: tls::TlsCertificates,
        previous: Option<&Proxy>,
    ) -> Result<Proxy, ProxyError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ProxyError::NoRuntime);
        }
        let backends: Arc<[Arc<Backend>]> = config
            .backends
            .iter()
            .map(|b| {
                let old = previous.and_then(|p| p.backends.iter().find(|o| *o.name == b.name));
                Backend::with_meters(b.clone(), old.map(|o| &**o)).map_err(|source| {
                    ProxyError::ServerTls {
                        backend: b.name.clone(),
                        source,
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        if let Some(prev) = previous {
            for b in backends.iter() {
                if let Some(old) = prev.backends.iter().find(|o| o.name == b.name) {
                    b.seed_from(old);
                }
            }
        }
        let counters = Arc::new(ProxyCounters::default());
        let inherited: listener::Inherited = Arc::default();
        if let Some(prev) = previous {
            let mut pool = inherited.lock().unwrap_or_else(|e| e.into_inner());
            for set in &prev.sets {
                pool.extend(set.sockets());
            }
        }
        let global = Arc::new(Semaphore::new(
            config.maxconn.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let mut sets = Vec::with_capacity(config.frontends.len());
        for fc in &config.frontends {
            let maxconn = fc
                .maxconn
                .unwrap_or(config.maxconn)
                .clamp(1, Semaphore::MAX_PERMITS);
            // A reload continues the counters of the frontend of the same name.
            let meters = previous
                .and_then(|p| p.sets.iter().find(|s| s.fe.cfg.name == fc.name))
                .map(|s| s.fe.meters.clone())
                .unwrap_or_else(|| Arc::new(Meters::new()));
            let fe = Frontend::new(
                fc.clone(),
                backends.clone(),
                config.access_log,
                counters.clone(),
                meters,
            )?;
            let limits = Limits {
                global: global.clone(),
                frontend: Arc::new(Semaphore::new(maxconn)),
            };
            let tcp = (fc.mode == config::Mode::Tcp).then(|| {
                Arc::new(tcp::TcpFrontend::new(
                    fc.clone(),
                    backends.clone(),
                    config.access_log,
                    counters.clone(),
                    fe.connections.clone(),
                    fe.meters.clone(),
                ))
            });
            let term = match (&fc.tls, certs.get(&fc.name)) {
                (None, _) => None,
                (Some(t), Some(resolver)) => {
                    let server = tls::server_config(t, resolver.clone()).map_err(|source| {
                        ProxyError::TlsSettings {
                            frontend: fc.name.clone(),
                            source,
                        }
                    })?;
                    Some(Arc::new(TlsTerm::new(server, fc.timeouts.client)))
                }
                (Some(_), None) => {
                    return Err(ProxyError::TlsSettings {
                        frontend: fc.name.clone(),
                        source: rustls::Error::General("certificates were not loaded".into()),
                    })
                }
            };
            sets.push(ListenerSet::new(
                Arc::new(fe),
                term,
                tcp,
                limits,
                inherited.clone(),
            ));
        }
        let mut proxy = Proxy {
            inherited,
            gate: Gate::new(
                sets.iter().filter(|s| s.fe.cfg.gated).cloned().collect(),
                config.gate_drain,
            ),
            gate_drain: config.gate_drain,
            sets,
            backends,
            checks: Vec::new(),
            counters,
            certs,
            maxconn: config.maxconn,
        };
        for set in proxy.sets.iter().filter(|s| !s.fe.cfg.gated) {
            if let Err(e) = set.open() {
                return Err(ProxyError::Bind {
                    frontend: set.fe.cfg.name.clone(),
                    addr: e.addr,
                    source: e.source,
                });
            }
        }
        proxy.checks = proxy
            .backends
            .iter()
            .flat_map(health::spawn_checks)
            .collect();
        Ok(proxy)
    }

    /// The gate of every gated frontend at once.
    /// Ends a reload: listening sockets of the previous balancer not taken over are let go
    /// (they close with it).
    pub fn reload_done(&self) {
        self.inherited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn gate(&self) -> Gate {
        self.gate.clone()
    }

    /// A gate for one gated frontend only (frontends gated by different VRRP instances);
    /// `None` for an unknown or ungated frontend. Use either these or [`Proxy::gate`].
    pub fn frontend_gate(&self, frontend: &str) -> Option<Gate> {
        let set = self
            .sets
            .iter()
            .find(|s| s.fe.cfg.gated && s.fe.cfg.name == frontend)?;
        Some(Gate::new(vec![set.clone()], self.gate_drain))
    }

    /// Usable servers of backend `name`, updated on every UP/DOWN change (VRRP
    /// `track_backends`, stats).
    pub fn backend_health(&self, name: &str) -> Option<watch::Receiver<BackendHealth>> {
        self.backends
            .iter()
            .find(|b| &*b.name == name)
            .map(|b| b.health())
    }

    /// Addresses a frontend is listening on right now (empty when closed or unknown); useful
    /// when it was bound to port 0.
    pub fn local_addrs(&self, frontend: &str) -> Vec<SocketAddr> {
        self.sets
            .iter()
            .find(|s| s.fe.cfg.name == frontend)
            .map(|s| s.local_addrs())
            .unwrap_or_default()
    }

    /// The numbers of the stats page now.
    pub fn stats(&self) -> ProxyStats {
        self.stats_handle().stats()
    }

    /// A handle that reads this balancer's numbers for as long as it is kept (the stats
    /// listener holds the running balancer's and swaps it on a reload).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            sets: self.sets.clone(),
            backends: self.backends.clone(),
            counters: self.counters.clone(),
            maxconn: self.maxconn,
        }
    }

    /// Stops accepting on every frontend, lets in-flight requests finish for at most
    /// `drain`, then stops the health checks. Connections still open after `drain` are cut.
    pub async fn shutdown(&self, drain: Duration) {
        for set in &self.sets {
            set.close(drain).await;
        }
        let idle = futures_util::future::join_all(self.sets.iter().map(|s| s.wait_idle()));
        // Connections cut themselves at `drain`; the margin lets them finish doing so.
        let _ = tokio::time::timeout(drain + Duration::from_millis(200), idle).await;
        for c in &self.checks {
            c.abort();
        }
    }
}

/// Reads a balancer's numbers (see [`Proxy::stats_handle`]).
#[derive(Clone)]
pub struct StatsHandle {
    sets: Vec<Arc<ListenerSet>>,
    backends: Arc<[Arc<Backend>]>,
    counters: Arc<ProxyCounters>,
    maxconn: usize,
}

impl StatsHandle {
    /// Process-wide connection limit.
    pub fn maxconn(&self) -> usize {
        self.maxconn
    }

    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            connections: self.counters.connections.load(Ordering::Relaxed),
            frontends: self
                .sets
                .iter()
                .map(|s| listen::stats::frontend(s, self.maxconn))
                .collect(),
            backends: self.backends.iter().map(upstream::stats::backend).collect(),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for c in &self.checks {
            c.abort();
        }
        for s in &self.sets {
            s.abort();
        }
    }
}
